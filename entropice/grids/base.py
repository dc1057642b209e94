"""The ``Grid`` interface shared by the H3 and HEALPix grids.

A grid object is one level of one discrete global grid system. Everything takes and
returns numpy arrays of uint64 cell ids and degrees; ``cells`` builds the Arctic domain
as an ``xarray.Dataset`` that ``xdggs.decode`` understands.
"""

from __future__ import annotations

import abc
from functools import lru_cache

import numpy as np
import xarray as xr

from . import geometry

DEFAULT_MIN_LAT = 50.0
"""Southern boundary of the domain: cells whose centre lies at or north of it."""


def _plain(value):
    """A numpy scalar as the Python number it holds (messages print ``3``, not
    ``np.int64(3)``)."""
    return value.item() if isinstance(value, np.generic) else value


class Grid(abc.ABC):
    """One level of a discrete global grid system.

    Subclasses implement the primitive, vectorised operations; this class builds
    the domain, areas on the ellipsoid and cell polygons from them.
    """

    name: str
    """``"h3"`` or ``"healpix"``, as in the ``grid_name`` attribute of xdggs."""
    max_level: int
    fold_levels_up: int
    """How many levels up the ancestors whose cells make one block of a spatial fold lie
    (about 50 cells a block)."""

    def __init__(self, level: int):
        if isinstance(level, bool) or not isinstance(level, (int, np.integer)):
            raise TypeError(f"{self.name} level must be an integer; got {_plain(level)!r}.")
        if not 0 <= level <= self.max_level:
            raise ValueError(
                f"{self.name} level must be between 0 and {self.max_level}; got {level}."
            )
        self.level = int(level)

    def __repr__(self):
        return f"{type(self).__name__}(level={self.level})"

    def __eq__(self, other):
        return type(self) is type(other) and self.level == other.level

    def __hash__(self):
        return hash((self.name, self.level))

    # -- facts every grid system states ----------------------------------------

    def fold_level(self) -> int:
        """The level of the ancestors that group cells into spatial-fold blocks."""
        return max(0, self.level - self.fold_levels_up)

    def format_id(self, cell) -> str:
        """A cell id as people write it (H3: hexadecimal; HEALPix: decimal)."""
        return str(int(cell))

    def check_attrs(self, attrs: dict) -> str | None:
        """What is wrong with a ``cell_ids`` coordinate's attributes for this grid (None:
        nothing): ``grid_name`` and ``level``, and what else the system needs."""
        if attrs.get("grid_name") != self.name or int(attrs.get("level", -1)) != self.level:
            return (f"cell_ids say grid {attrs.get('grid_name')!r} level "
                    f"{_plain(attrs.get('level'))!r}, not {self.name} level {self.level}")
        return None

    def on_domain(self, part, cell_ids, fill=np.nan):
        """``part`` (a DataArray or Dataset on ``cells`` with ``cell_ids``, such as a
        reduction's result on the cells it touched) on every cell of ``cell_ids``,
        ``fill`` elsewhere. The cells must be among ``cell_ids``."""
        cell_ids = np.asarray(cell_ids, dtype=np.uint64)
        ids = np.asarray(part.cell_ids.values, dtype=np.uint64)
        pos = np.searchsorted(cell_ids, ids)
        if len(ids) and (pos.max() >= len(cell_ids) or np.any(cell_ids[pos] != ids)):
            raise ValueError(f"{len(ids)} {self.name} level {self.level} cells are not all "
                             "in the domain given.")

        def spread(da):
            shape = [len(cell_ids) if d == "cells" else n for d, n in da.sizes.items()]
            out = np.full(shape, fill, dtype=np.result_type(da.dtype, np.asarray(fill)))
            out[tuple(pos if d == "cells" else slice(None) for d in da.dims)] = da.values
            return xr.DataArray(out, dims=da.dims, attrs=da.attrs, coords={
                k: v for k, v in da.coords.items() if "cells" not in v.dims})

        coord = self.cell_ids_coord(cell_ids)
        if isinstance(part, xr.Dataset):
            out = xr.Dataset({k: spread(v) for k, v in part.data_vars.items()},
                             attrs=part.attrs)
        else:
            out = spread(part.drop_vars([c for c in part.coords if c != "cell_ids"
                                         and "cells" in part[c].dims]))
            out.name = part.name
        return out.assign_coords(cell_ids=coord)

    # -- primitives, per grid system ------------------------------------------

    @property
    @abc.abstractmethod
    def grid_attrs(self) -> dict:
        """Attributes of the ``cell_ids`` coordinate that ``xdggs.decode`` reads."""

    @abc.abstractmethod
    def domain_ids(self, min_lat: float = DEFAULT_MIN_LAT) -> np.ndarray:
        """Sorted ids of all cells whose centre lies at or north of ``min_lat``."""

    @abc.abstractmethod
    def latlon_to_cells(self, lat, lon) -> np.ndarray:
        """Id of the cell containing each point (degrees)."""

    @abc.abstractmethod
    def centres(self, ids) -> tuple[np.ndarray, np.ndarray]:
        """Centre ``(lat, lon)`` of each cell, in degrees, lon in [-180, 180)."""

    @abc.abstractmethod
    def vertices(self, ids) -> list[np.ndarray]:
        """Boundary of each cell as an ``(n, 2)`` array of (lon, lat), counter-clockwise.

        Consecutive vertices are close enough that straight lines between them in
        lon/lat or in a polar projection follow the true edge.
        """

    @abc.abstractmethod
    def spherical_areas(self, ids) -> np.ndarray:
        """Area of each cell on the unit sphere (steradians)."""

    @abc.abstractmethod
    def neighbours(self, ids) -> np.ndarray:
        """The cells themselves and every cell sharing an edge or corner with them
        (unique, sorted)."""

    @abc.abstractmethod
    def parents(self, ids, level: int) -> np.ndarray:
        """Ancestor of each cell at the coarser ``level``."""

    @abc.abstractmethod
    def children(self, ids, level: int) -> tuple[np.ndarray, np.ndarray]:
        """Descendants at the finer ``level``: ``(children, offsets)``, the children of
        ``ids[i]`` being ``children[offsets[i]:offsets[i + 1]]``."""

    # -- derived ---------------------------------------------------------------

    def areas_km2(self, ids) -> np.ndarray:
        """Area of each cell on the WGS84 ellipsoid, in km2.

        The cell is the region with the grid's boundary in (lon, geodetic lat); its
        area is its unit-sphere area times the ratio of the ellipsoid's area element
        to the sphere's at the cell centre (exact to second order in the cell size).
        """
        ids = np.asarray(ids, dtype=np.uint64)
        lat, _ = self.centres(ids)
        return self.spherical_areas(ids) * geometry.ellipsoid_area_factor_km2(lat)

    def polygons(self, ids) -> np.ndarray:
        """Cell boundaries as shapely polygons in lon/lat, ready to draw.

        Cells that cross the antimeridian become MultiPolygons split at +-180 deg;
        the cell that contains the pole is closed along the pole.
        """
        return geometry.lonlat_polygons(self.vertices(ids))

    def cells(self, min_lat: float = DEFAULT_MIN_LAT) -> xr.Dataset:
        """The domain: every cell whose centre lies at or north of ``min_lat``.

        Returns
        -------
        xarray.Dataset
            Dimension ``cells``; coordinate ``cell_ids`` (uint64, with the xdggs
            attributes); variables ``lat``, ``lon`` (centre, degrees) and
            ``area_km2`` (on the WGS84 ellipsoid).
        """
        return _cells(self.name, self.level, float(min_lat)).copy()

    def cell_ids_coord(self, ids) -> xr.DataArray:
        """A ``cell_ids`` coordinate with this grid's xdggs attributes."""
        return xr.DataArray(np.asarray(ids, dtype=np.uint64), dims="cells",
                            attrs=dict(self.grid_attrs))

    def _check_level(self, level, finer):
        """Validate a target level for ``parents`` (coarser) or ``children`` (finer)."""
        ok = self.level <= level <= self.max_level if finer else 0 <= level <= self.level
        if not ok:
            kind = "finer" if finer else "coarser"
            raise ValueError(
                f"level {level} is not a {kind} {self.name} level than {self.level}."
            )


@lru_cache(maxsize=64)  # every level of both systems, on the domain and a wider one
def _cells(name, level, min_lat):
    from . import get_grid

    grid = get_grid(name, level)
    if not -90.0 <= min_lat <= 90.0:
        raise ValueError(f"min_lat must be between -90 and 90 degrees; got {min_lat}.")
    ids = grid.domain_ids(min_lat)
    lat, lon = grid.centres(ids)
    ds = xr.Dataset(
        {
            "lat": ("cells", lat, {"units": "degrees_north", "long_name": "cell centre latitude",
                                   "standard_name": "latitude"}),
            "lon": ("cells", lon, {"units": "degrees_east", "long_name": "cell centre longitude",
                                   "standard_name": "longitude"}),
            "area_km2": ("cells", grid.areas_km2(ids),
                         {"units": "km2", "long_name": "cell area on the WGS84 ellipsoid"}),
        },
        coords={"cell_ids": grid.cell_ids_coord(ids)},
        attrs={"grid_name": name, "level": level, "min_lat": min_lat},
    )
    return ds
