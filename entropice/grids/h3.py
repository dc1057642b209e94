"""H3 hexagons (levels 0-9), vectorised through h3ronpy."""

from __future__ import annotations

import h3
import h3ronpy
import h3ronpy.vector as h3v
import numpy as np
import pyarrow as pa
import shapely

from . import geometry
from .base import DEFAULT_MIN_LAT, Grid


def _np(arr) -> np.ndarray:
    return np.asarray(arr)


def _list_to_numpy(arr):
    """(values, offsets) of an arrow list array."""
    la = pa.array(arr)
    return la.values.to_numpy(zero_copy_only=False), la.offsets.to_numpy(zero_copy_only=False)


class H3Grid(Grid):
    """Uber's H3 hexagonal grid; cell ids are the 64-bit H3 indexes.

    Parents and children follow H3's hierarchy, in which a parent's seven
    children cover it only approximately.
    """

    name = "h3"
    max_level = 9
    fold_levels_up = 2  # 49 cells a block

    def format_id(self, cell) -> str:
        return format(int(cell), "x")

    @property
    def grid_attrs(self):
        return {"grid_name": "h3", "level": self.level}

    def domain_ids(self, min_lat=DEFAULT_MIN_LAT):
        # refine from the 122 base cells, keeping parents whose descendants may
        # have centres north of min_lat (3 mean edge lengths of margin)
        ids = np.array([h3.str_to_int(c) for c in h3.get_res0_cells()], dtype=np.uint64)
        for res in range(self.level):
            margin = 3.0 * h3.average_hexagon_edge_length(res, "km") / 111.0
            lat, _ = H3Grid(res).centres(ids)
            ids = ids[lat >= min_lat - margin]
            ids, _ = _list_to_numpy(h3ronpy.change_resolution_list(ids, res + 1))
        lat, _ = self.centres(ids)
        return np.sort(ids[lat >= min_lat]).astype(np.uint64)

    def latlon_to_cells(self, lat, lon):
        lat = np.ascontiguousarray(lat, dtype=np.float64).ravel()
        lon = np.ascontiguousarray(lon, dtype=np.float64).ravel()
        return _np(h3v.coordinates_to_cells(lat, lon, self.level)).astype(np.uint64)

    def centres(self, ids):
        ids = np.ascontiguousarray(ids, dtype=np.uint64)
        if len(ids) == 0:
            return np.empty(0), np.empty(0)
        rb = h3v.cells_to_coordinates(ids)
        lat = _np(rb.column("lat")).astype(np.float64)
        lon = geometry.wrap_lon(_np(rb.column("lng")))
        return lat, lon

    def vertices(self, ids):
        ids = np.ascontiguousarray(ids, dtype=np.uint64)
        polys = shapely.from_wkb(_np(h3v.cells_to_wkb_polygons(ids)))
        coords, index = shapely.get_coordinates(shapely.get_exterior_ring(polys),
                                                return_index=True)
        bounds = np.searchsorted(index, np.arange(len(ids) + 1))
        # great-circle edges, densified to ~50 km segments
        n = max(1, int(np.ceil(h3.average_hexagon_edge_length(self.level, "km") / 50.0)))
        return [geometry.slerp_densify(coords[a:b - 1], n) for a, b in zip(bounds[:-1],
                                                                            bounds[1:])]

    def spherical_areas(self, ids):
        ids = np.ascontiguousarray(ids, dtype=np.uint64)
        return _np(h3ronpy.cells_area_rads2(ids)).astype(np.float64)

    def neighbours(self, ids):
        ids = np.ascontiguousarray(ids, dtype=np.uint64)
        disk = _np(h3ronpy.grid_disk(ids, 1, flatten=True)).astype(np.uint64)
        return np.unique(disk)

    def parents(self, ids, level):
        self._check_level(level, finer=False)
        ids = np.ascontiguousarray(ids, dtype=np.uint64)
        return _np(h3ronpy.change_resolution(ids, level)).astype(np.uint64)

    def children(self, ids, level):
        self._check_level(level, finer=True)
        ids = np.ascontiguousarray(ids, dtype=np.uint64)
        values, offsets = _list_to_numpy(h3ronpy.change_resolution_list(ids, level))
        return values.astype(np.uint64), offsets.astype(np.int64)
