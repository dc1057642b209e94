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


cube_app = typer.Typer(help="Inspect the cube.", no_args_is_help=True)
app.add_typer(cube_app, name="cube")


@cube_app.command("info")
def cube_info(
    path: str = typer.Argument("data/cube.zarr", help="Path of the cube (a zarr store)."),
) -> None:
    """Print the cube's grids, levels, cell counts, variables with units and provenance."""
    from .cube import Cube, CubeError

    try:
        typer.echo(Cube(path).info())
    except CubeError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
