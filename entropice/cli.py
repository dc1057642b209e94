"""The ``entropice`` command: one sub-command per pipeline stage, the demo and the app."""

import typer

from . import __version__

app = typer.Typer(
    name="entropice",
    help=(
        "Entropice: where are Retrogressive Thaw Slumps dense across the Arctic? "
        "Build the multi-resolution grid cube, fit eSPA+ and explore it."
    ),
    no_args_is_help=True,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"entropice {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """Entropice command line."""
