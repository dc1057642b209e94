"""Entropice: where are Retrogressive Thaw Slumps dense across the Arctic?

Importing the package does no I/O and imports no heavy dependencies; the
sub-packages (``entropice.espa``, ...) are imported on use.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("entropice")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
