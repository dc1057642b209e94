"""HEALPix pixels in nested indexing (levels 0-12), through healpy.

The level is the HEALPix order: nside = 2**level. Cells are equal-area on the sphere;
latitudes are read as geodetic on the WGS84 ellipsoid, as healpy and xdggs do.
"""

from __future__ import annotations

import healpy as hp
import numpy as np

from . import geometry
from .base import DEFAULT_MIN_LAT, Grid

AREA_LEVEL = 10
"""Areas on the ellipsoid are summed over descendants at this level (or the cell's own)."""


class HealpixGrid(Grid):
    """HEALPix in nested indexing; a parent's four children tile it exactly."""

    name = "healpix"
    max_level = 12
    fold_levels_up = 3  # 64 cells a block

    def check_attrs(self, attrs):
        problem = super().check_attrs(attrs)
        if problem is None and attrs.get("indexing_scheme") != "nested":
            return "HEALPix cell_ids need indexing_scheme 'nested'"
        return problem

    @property
    def nside(self):
        return 2**self.level

    @property
    def grid_attrs(self):
        return {"grid_name": "healpix", "level": self.level, "indexing_scheme": "nested"}

    def domain_ids(self, min_lat=DEFAULT_MIN_LAT):
        # a strip a little wider than needed, then the exact test on centres
        theta = np.radians(90.0 - min_lat) + 2.0 * hp.max_pixrad(self.nside)
        ids = hp.query_strip(self.nside, 0.0, min(theta, np.pi), inclusive=False, nest=True)
        ids = np.asarray(ids, dtype=np.uint64)
        lat, _ = self.centres(ids)
        return np.sort(ids[lat >= min_lat])

    def latlon_to_cells(self, lat, lon):
        lat = np.asarray(lat, dtype=np.float64).ravel()
        lon = np.asarray(lon, dtype=np.float64).ravel()
        return hp.ang2pix(self.nside, lon, lat, nest=True, lonlat=True).astype(np.uint64)

    def centres(self, ids):
        ids = np.asarray(ids, dtype=np.int64)
        lon, lat = hp.pix2ang(self.nside, ids, nest=True, lonlat=True)
        return np.asarray(lat, dtype=np.float64), geometry.wrap_lon(lon)

    def vertices(self, ids):
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return []
        # HEALPix edges are curves: follow them with ~50 km steps
        cell_km = np.sqrt(4 * np.pi / hp.nside2npix(self.nside)) * geometry.WGS84_A_KM
        step = max(1, int(np.ceil(cell_km / 50.0)))
        xyz = hp.boundaries(self.nside, ids, step=step, nest=True)  # (n, 3, 4 step)
        xyz = np.asarray(xyz).reshape(len(ids), 3, -1).transpose(0, 2, 1)
        lon, lat = geometry.xyz_to_lonlat(xyz)
        return list(np.stack([lon, lat], axis=-1))

    def spherical_areas(self, ids):
        return np.full(len(np.asarray(ids)), 4.0 * np.pi / hp.nside2npix(self.nside))

    def areas_km2(self, ids):
        """Area on the WGS84 ellipsoid: the sphere-to-ellipsoid area ratio summed over
        descendants at level 10 (for coarser cells), exact to ~1e-8."""
        ids = np.asarray(ids, dtype=np.uint64)
        if self.level >= AREA_LEVEL or len(ids) == 0:
            return super().areas_km2(ids)
        fine = HealpixGrid(AREA_LEVEL)
        kids, offsets = self.children(ids, AREA_LEVEL)
        per_kid = fine.areas_km2(kids)
        return np.add.reduceat(per_kid, offsets[:-1])

    def neighbours(self, ids):
        ids = np.asarray(ids, dtype=np.int64)
        around = np.asarray(hp.get_all_neighbours(self.nside, ids, nest=True)).ravel()
        return np.unique(np.concatenate([ids, around[around >= 0]])).astype(np.uint64)

    def parents(self, ids, level):
        self._check_level(level, finer=False)
        return np.asarray(ids, dtype=np.uint64) >> np.uint64(2 * (self.level - level))

    def children(self, ids, level):
        self._check_level(level, finer=True)
        ids = np.asarray(ids, dtype=np.uint64)
        n = 4 ** (level - self.level)
        kids = (ids[:, None] << np.uint64(2 * (level - self.level))) + np.arange(
            n, dtype=np.uint64)
        return kids.ravel(), np.arange(len(ids) + 1, dtype=np.int64) * n
