"""Discrete global grids of the Arctic: H3 hexagons and HEALPix pixels.

``get_grid("h3", 5)`` or ``get_grid("healpix", 8)`` gives a :class:`Grid`; its
``cells(min_lat=50.0)`` is the domain as an xdggs-ready ``xarray.Dataset``.
"""

from .base import DEFAULT_MIN_LAT, Grid
from .h3 import H3Grid
from .healpix import HealpixGrid

GRIDS = {"h3": H3Grid, "healpix": HealpixGrid}


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
            f"unknown grid {name!r}; choose one of {', '.join(sorted(GRIDS))}."
        ) from None
    return cls(level)


__all__ = ["DEFAULT_MIN_LAT", "GRIDS", "Grid", "H3Grid", "HealpixGrid", "get_grid"]
