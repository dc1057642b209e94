"""Which cell each pixel of a raster falls in, computed once and cached.

The index is run-length encoded along raster rows: a run is a stretch of consecutive
pixels of one row whose centres lie in the same domain cell. Rasters are much finer
than cells, so there are tens of times fewer runs than pixels; reductions then read
each run as a contiguous slice, and grouping runs by cell gives every cell's pixels.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ..grids import geometry

log = logging.getLogger(__name__)

BLOCK_PIXELS = 2**21
"""Pixels whose cells are looked up at once while building an index."""

_MEMORY_CACHE: OrderedDict = OrderedDict()
_MEMORY_CACHE_SIZE = 16


@dataclass(frozen=True, eq=False)
class PixelIndex:
    """Run-length encoded pixel -> cell index of one raster grid on one cell grid."""

    shape: tuple  # (ny, nx) of the raster
    row: np.ndarray  # (R,) int32 row of each run
    start: np.ndarray  # (R,) int32 first column
    length: np.ndarray  # (R,) int32 pixels in the run
    cell: np.ndarray  # (R,) int32 position of the run's cell in ``cell_ids``
    weight: np.ndarray  # (R,) float64 true area of the run's first pixel, km2
    slope: np.ndarray  # (R,) float64 change of the area from one pixel to the next
    cell_ids: np.ndarray = field(repr=False)  # (C,) uint64 the domain
    memo: dict = field(default_factory=dict, repr=False)  # derived, per raster grid

    @property
    def n_runs(self):
        return len(self.row)

    @cached_property
    def touched(self):
        """Domain positions of the cells with at least one pixel centre, sorted."""
        return np.unique(self.cell)

    @cached_property
    def local_cell(self):
        """Each run's cell as a position in ``touched`` (kernels work on these)."""
        return np.searchsorted(self.touched, self.cell).astype(np.int32)

    @cached_property
    def local_pixels(self):
        """Pixels (valid or not) whose centre lies in each touched cell."""
        return np.bincount(self.local_cell, weights=self.length,
                           minlength=len(self.touched)).astype(np.int64)

    @cached_property
    def order(self):
        """Runs sorted by cell (stable: row-major within a cell)."""
        return np.argsort(self.local_cell, kind="stable")

    @cached_property
    def cell_start(self):
        """Offsets into ``order``: touched cell c's runs are order[cell_start[c]:...[c + 1]]."""
        counts = np.bincount(self.local_cell, minlength=len(self.touched))
        return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    @cached_property
    def max_pixels_per_cell(self):
        return int(self.local_pixels.max()) if self.n_runs else 0

    def prepare(self):
        """Compute the derived arrays now (at build time rather than on first use)."""
        for attr in ("touched", "local_cell", "local_pixels", "order", "cell_start",
                     "max_pixels_per_cell"):
            getattr(self, attr)
        return self

    def nbytes(self):
        return sum(a.nbytes for a in (self.row, self.start, self.length, self.cell,
                                      self.weight, self.slope))

    def to_npz(self, path):
        np.savez(path, shape=np.asarray(self.shape), row=self.row, start=self.start,
                 length=self.length, cell=self.cell, weight=self.weight, slope=self.slope)

    @classmethod
    def from_npz(cls, path, cell_ids):
        with np.load(path) as f:
            return cls(tuple(int(v) for v in f["shape"]), f["row"], f["start"], f["length"],
                       f["cell"], f["weight"], f["slope"], cell_ids)


def _key(crs_wkt, x, y, grid, min_lat):
    h = hashlib.sha1()
    for part in (crs_wkt, grid.name, str(grid.level), repr(float(min_lat))):
        h.update(part.encode())
        h.update(b"\0")
    h.update(np.ascontiguousarray(x, dtype=np.float64).tobytes())
    h.update(b"\0")
    h.update(np.ascontiguousarray(y, dtype=np.float64).tobytes())
    return h.hexdigest()


def cache_dir():
    """Directory of the on-disk index cache (``ENTROPICE_CACHE_DIR``), or None."""
    path = os.environ.get("ENTROPICE_CACHE_DIR")
    return Path(path) / "pixel-index" if path else None


def clear_cache():
    """Forget the indexes held in memory (the on-disk cache is left alone)."""
    _MEMORY_CACHE.clear()


def get_index(x, y, crs, grid, cell_ids, min_lat):
    """The index of the raster with pixel-centre coordinates ``x`` and ``y`` (1-D) in
    ``crs`` on ``grid``, from the memory cache, the disk cache or built anew."""
    key = _key(crs.to_wkt(), x, y, grid, min_lat)
    if key in _MEMORY_CACHE:
        _MEMORY_CACHE.move_to_end(key)
        return _MEMORY_CACHE[key]
    directory = cache_dir()
    path = directory / f"{key}.npz" if directory else None
    index = None
    if path is not None and path.exists():
        try:
            index = PixelIndex.from_npz(path, cell_ids)
        except (OSError, ValueError, KeyError):
            log.warning("ignoring an unreadable cached pixel index %s", path)
    if index is None:
        index = build_index(x, y, crs, grid, cell_ids)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
            index.to_npz(tmp)
            os.replace(tmp, path)
    _MEMORY_CACHE[key] = index.prepare()
    while len(_MEMORY_CACHE) > _MEMORY_CACHE_SIZE:
        _MEMORY_CACHE.popitem(last=False)
    return index


def _pixel_sizes(c):
    """Width of each pixel along a 1-D coordinate of pixel centres."""
    if len(c) == 1:
        return np.ones(1)
    return np.abs(np.gradient(np.asarray(c, dtype=np.float64)))


def lookup(grid, cell_ids, lat, lon):
    """Positions in ``cell_ids`` of the cells containing the points; -1 outside."""
    ids = grid.latlon_to_cells(lat, lon)
    pos = np.searchsorted(cell_ids, ids)
    pos[pos == len(cell_ids)] = 0
    found = cell_ids[pos] == ids if len(cell_ids) else np.zeros(len(ids), dtype=bool)
    return np.where(found & np.isfinite(lat), pos, -1)


def build_index(x, y, crs, grid, cell_ids):
    """Look up the cell of every pixel centre, block by block, and run-length encode."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    nx, ny = len(x), len(y)
    to_lonlat = None if crs.is_geographic else geometry.transformer(crs.to_wkt(), "EPSG:4326")
    rows_per_block = max(1, BLOCK_PIXELS // max(nx, 1))
    parts = []
    for r0 in range(0, ny, rows_per_block):
        r1 = min(r0 + rows_per_block, ny)
        xx, yy = np.meshgrid(x, y[r0:r1])
        if to_lonlat is None:
            lon, lat = xx.ravel(), yy.ravel()
        else:
            lon, lat = to_lonlat.transform(xx.ravel(), yy.ravel())
        pos = lookup(grid, cell_ids, lat, geometry.wrap_lon(lon)).reshape(r1 - r0, nx)
        change = np.ones(pos.shape, dtype=bool)
        change[:, 1:] = pos[:, 1:] != pos[:, :-1]
        flat = np.flatnonzero(change)
        length = np.diff(np.append(flat, pos.size))
        rr, cc = np.divmod(flat, nx)
        cell = pos.ravel()[flat]
        keep = cell >= 0
        parts.append((rr[keep] + r0, cc[keep], length[keep], cell[keep]))
    row, start, length, cell = (np.concatenate([p[i] for p in parts]) if parts else
                                np.empty(0, dtype=np.int64) for i in range(4))
    first = _pixel_areas(x, y, crs, row, start, to_lonlat)
    last = _pixel_areas(x, y, crs, row, start + length - 1, to_lonlat)
    slope = np.where(length > 1, (last - first) / np.maximum(length - 1, 1), 0.0)
    return PixelIndex((ny, nx), row.astype(np.int32), start.astype(np.int32),
                      length.astype(np.int32), cell.astype(np.int32), first, slope, cell_ids)


def pixel_area_at(x, y, crs, row, col):
    """True area (km2) of the pixel at (row, col) of a raster grid."""
    to_lonlat = None if crs.is_geographic else geometry.transformer(crs.to_wkt(), "EPSG:4326")
    area = _pixel_areas(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64), crs,
                        np.array([row]), np.array([col]), to_lonlat)
    return float(area[0])


def _pixel_areas(x, y, crs, row, col, to_lonlat):
    """True area (km2) of the pixels at (row, col).

    On a lon/lat grid a pixel is a lon/lat rectangle on the ellipsoid; in a
    projection its nominal area is divided by the projection's areal scale there.
    Along a run the area is taken as linear between its first and last pixel, which
    is exact to ~1e-9 over a run no longer than a cell.
    """
    if len(row) == 0:
        return np.empty(0)
    dx, dy = _pixel_sizes(x)[col], _pixel_sizes(y)[row]
    if to_lonlat is None:
        lat = y[row]
        sphere = np.radians(dx) * np.radians(dy) * np.cos(np.radians(lat))
        return _snap(sphere * geometry.ellipsoid_area_factor_km2(lat))
    from pyproj import Proj

    unit = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    lon, lat = to_lonlat.transform(x[col], y[row])
    factors = Proj(crs).get_factors(lon, lat, errcheck=False)
    areal = np.asarray(factors.areal_scale, dtype=np.float64)
    areal = np.where(np.isfinite(areal) & (areal > 0), areal, 1.0)
    return _snap(dx * dy * unit * unit / 1e6 / areal)


def _snap(w, digits=9):
    """Areas rounded to ``digits`` significant digits: the projection's scale factors
    carry ~1e-10 of numerical noise, which would otherwise make equal-area pixels
    unequal and move quantiles that fall exactly between two pixels."""
    w = np.asarray(w, dtype=np.float64)
    scale = 10.0 ** (np.floor(np.log10(np.where(w > 0, w, 1.0))) - (digits - 1))
    return np.round(w / scale) * scale
