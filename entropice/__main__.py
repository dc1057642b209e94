"""``python -m entropice`` runs the ``entropice`` command."""

from .cli import app

app(prog_name="entropice")
