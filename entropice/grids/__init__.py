"""Discrete global grids of the Arctic: H3 hexagons and HEALPix pixels.

``get_grid("h3", 5)`` or ``get_grid("healpix", 8)`` gives a :class:`Grid`; its
``cells(min_lat=50.0)`` is the domain as an xdggs-ready ``xarray.Dataset``, and
``grid_of(ds)`` rebuilds the grid of a dataset from its ``cell_ids`` attributes.

A grid system is one module with a :class:`Grid` subclass (its ``name``,
``max_level``, ``fold_levels_up`` and primitives) and one ``register_grid`` line here;
nothing outside this package tests a grid's name.
"""

from .base import DEFAULT_MIN_LAT, Grid
from .h3 import H3Grid
from .healpix import HealpixGrid

GRIDS: dict[str, type[Grid]] = {}
"""The registered grid systems by name, in the order they are listed."""


def register_grid(cls: type[Grid]) -> type[Grid]:
    """Add a grid system to the registry (usable as a class decorator)."""
    GRIDS[cls.name] = cls
    return cls


register_grid(H3Grid)
register_grid(HealpixGrid)


def get_grid(name: str, level: int) -> Grid:
    """The grid ``name`` ("h3" or "healpix") at ``level``.

    Raises
    ------
    ValueError
        For an unknown grid name or a level out of the grid's range.
    """
    try:
        cls = GRIDS[str(name).lower()]
    except KeyError:
        raise ValueError(
            f"unknown grid {name!r}; choose one of {', '.join(GRIDS)}."
        ) from None
    return cls(level)


def grid_of(obj) -> Grid:
    """The grid of a dataset or data array, from its ``cell_ids`` attributes (as
    ``xdggs.decode`` reads them), or of such an attribute dict.

    Raises
    ------
    ValueError
        Without ``cell_ids``, or with attributes that name no registered grid.
    """
    attrs = obj if isinstance(obj, dict) else (
        obj["cell_ids"].attrs if "cell_ids" in getattr(obj, "coords", {}) else None)
    if attrs is None:
        raise ValueError("no cell_ids coordinate: not on a grid.")
    if "grid_name" not in attrs or "level" not in attrs:
        raise ValueError(f"the cell_ids attributes {sorted(attrs)} lack grid_name and level.")
    grid = get_grid(attrs["grid_name"], int(attrs["level"]))
    problem = grid.check_attrs(attrs)
    if problem:
        raise ValueError(problem + ".")
    return grid


__all__ = ["DEFAULT_MIN_LAT", "GRIDS", "Grid", "H3Grid", "HealpixGrid", "get_grid", "grid_of",
           "register_grid"]
