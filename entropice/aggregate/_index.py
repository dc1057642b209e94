"""Which cell each pixel of a raster falls in, computed once and cached.

The index is run-length encoded along raster rows: a run is a stretch of consecutive
pixels of one row whose centres lie in the same domain cell. Rasters are much finer
than cells, so there are tens of times fewer runs than pixels; reductions then read
each run as a contiguous slice, and grouping runs by cell gives every cell's pixels.

An index is built without looking most pixels up: a raster row meets each cell in one
stretch, so only the pixels around the run boundaries (tracked from the row above and
bisected) need their cells, and the rows are then checked against their neighbours. The
per-pixel build is kept, and the tests hold the two equal.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import numba as nb
import numpy as np

from ..grids import geometry

log = logging.getLogger(__name__)

BLOCK_PIXELS = 2**21
"""Pixels whose cells are looked up at once while building an index pixel by pixel."""

BAND_ROWS = 32
"""Rows of a band: its first row is searched afresh, the others track the row above."""
FIRST_ROW_STEP = 64
"""Spacing of the pixels looked up first in a band's first row."""
TRACK_STEP = 256
"""Spacing of the pixels looked up in every tracked row, besides those near boundaries."""
POLAR_DEGREES = 5.0
POLAR_CELLS = 20
"""Rows of a lon/lat raster nearer a pole than ``POLAR_DEGREES`` or ``POLAR_CELLS`` cell
widths are looked up pixel by pixel (see ``_polar_rows``)."""

_MEMORY_CACHE: OrderedDict = OrderedDict()
_LOCK = threading.RLock()
MEMORY_CACHE_BYTES = 1 << 30
"""Indexes kept in memory, least recently used dropped first: a chunk's index is a few
hundred kB, so every chunk of a raster stays indexed between its passes."""


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
        """Bytes of the runs, and of the indexes derived from them."""
        own = sum(a.nbytes for a in (self.row, self.start, self.length, self.cell,
                                     self.weight, self.slope))
        return own + sum(v.nbytes() if isinstance(v, PixelIndex) else np.asarray(v).nbytes
                         for v in list(self.memo.values()))

    def derive(self, grid, level, target_ids):
        """The index of the coarser ``level`` (or the same level on a smaller domain)
        of the same grid system: each run goes to the ancestor of its cell, or is left
        out where that ancestor is not in ``target_ids``. ``grid`` is this index's grid.

        For nested grids (HEALPix) this is the index built for ``level`` directly; for
        H3 a pixel goes to the parent of its fine cell, which is not always the coarse
        cell holding the pixel (children cover their parent only approximately).
        """
        ids = self.cell_ids[self.touched]
        if level != grid.level:
            ids = grid.parents(ids, level)
        from_base = _positions(target_ids, np.asarray(ids, dtype=np.uint64), np.zeros(len(ids)))
        pos = from_base[self.local_cell]
        keep = pos >= 0
        index = PixelIndex(self.shape, self.row[keep], self.start[keep], self.length[keep],
                           pos[keep].astype(np.int32), self.weight[keep], self.slope[keep],
                           target_ids).prepare()
        index.memo["from_base"] = from_base  # where each cell this index touches goes
        return index

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
    with _LOCK:
        _MEMORY_CACHE.clear()
        _MEMO.clear()


def get_index(x, y, crs, grid, cell_ids, min_lat):
    """The index of the raster with pixel-centre coordinates ``x`` and ``y`` (1-D) in
    ``crs`` on ``grid``, from the memory cache, the disk cache or built anew."""
    key = _key(crs.to_wkt(), x, y, grid, min_lat)
    with _LOCK:  # dask's threads share the cache
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
    index.prepare()
    with _LOCK:
        _MEMORY_CACHE[key] = index
    _trim_cache()
    return index


_MEMO: OrderedDict = OrderedDict()
MEMO_BYTES = 256 << 20


def memo(what, x, y, crs, compute):
    """``compute()`` once per ``what`` and raster grid: arrays derived from a raster grid
    and a cell grid (such as the cell centres' positions), least recently used dropped
    first beyond ``MEMO_BYTES``."""
    h = hashlib.sha1(repr(what).encode())
    h.update(crs.to_wkt().encode())
    for c in (x, y):
        h.update(np.ascontiguousarray(c, dtype=np.float64).tobytes())
    key = h.hexdigest()
    with _LOCK:
        if key in _MEMO:
            _MEMO.move_to_end(key)
            return _MEMO[key]
    value = compute()
    size = lambda v: sum(np.asarray(a).nbytes for a in v)  # noqa: E731
    with _LOCK:
        _MEMO[key] = value
        total = sum(size(v) for v in _MEMO.values())
        while len(_MEMO) > 1 and total > MEMO_BYTES:
            total -= size(_MEMO.popitem(last=False)[1])
    return value


def _trim_cache():
    with _LOCK:
        total = sum(ix.nbytes() for ix in list(_MEMORY_CACHE.values()))
        while len(_MEMORY_CACHE) > 1 and total > MEMORY_CACHE_BYTES:
            total -= _MEMORY_CACHE.popitem(last=False)[1].nbytes()


@lru_cache(maxsize=8)
def _domain_ids(grid, min_lat):
    """The ids of a domain that only an index needs (not the cells' centres and areas)."""
    ids = grid.domain_ids(min_lat)
    ids.setflags(write=False)
    return ids


def base_index(x, y, crs, grid, min_lat):
    """The index that coarser levels are derived from (:func:`level_index`)."""
    return get_index(x, y, crs, grid, _domain_ids(grid, min_lat), min_lat)


def level_index(x, y, crs, grid, min_lat, base=None):
    """The index of ``grid`` on its domain north of ``min_lat``, derived from the index of
    ``base`` (a finer grid of the same system, on a wider domain: ``(grid, min_lat)``)
    when given, so that one index serves every level; else built for ``grid`` itself."""
    if base is None:
        return get_index(x, y, crs, grid, grid.cells(min_lat).cell_ids.values, min_lat)
    base_grid, base_min_lat = base
    index = base_index(x, y, crs, base_grid, base_min_lat)
    key = ("level", grid.level, float(min_lat))
    derived = index.memo.get(key)
    if derived is None:
        derived = index.derive(base_grid, grid.level, grid.cells(min_lat).cell_ids.values)
        with _LOCK:
            index.memo.setdefault(key, derived)
        _trim_cache()
    return derived


def _pixel_sizes(c):
    """Width of each pixel along a 1-D coordinate of pixel centres."""
    if len(c) == 1:
        return np.ones(1)
    return np.abs(np.gradient(np.asarray(c, dtype=np.float64)))


def lookup(grid, cell_ids, lat, lon):
    """Positions in ``cell_ids`` of the cells containing the points; -1 outside."""
    return _positions(cell_ids, grid.latlon_to_cells(lat, lon), lat)


def _positions(cell_ids, ids, lat):
    """Positions in ``cell_ids`` of the cells ``ids`` (-1 where absent or ``lat`` is not
    finite)."""
    pos = np.searchsorted(cell_ids, ids)
    pos[pos == len(cell_ids)] = 0
    found = cell_ids[pos] == ids if len(cell_ids) else np.zeros(len(ids), dtype=bool)
    return np.where(found & np.isfinite(lat), pos, -1)


def build_index(x, y, crs, grid, cell_ids, per_pixel=False):
    """The index of a raster grid on ``grid``: its runs and their pixel areas.

    Cells are found by tracking run boundaries from row to row (``tracked_runs``), or
    by looking every pixel up: with ``per_pixel``, for a non-monotonic ``x``, and for
    the rows of a lon/lat raster near a pole (``_polar_rows``). Both give the same index.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    nx, ny = len(x), len(y)
    to_lonlat = None if crs.is_geographic else geometry.transformer(crs.to_wkt(), "EPSG:4326")
    steps = np.diff(x)
    slow = np.ones(ny, dtype=bool)
    if not per_pixel and nx > 0 and (np.all(steps > 0) or np.all(steps < 0)):
        slow = _polar_rows(y, grid) if to_lonlat is None else np.zeros(ny, dtype=bool)
    parts = []
    for rows, runs in ((slow, _per_pixel_runs), (~slow, tracked_runs)):
        if rows.any():
            r, start, length, cell = runs(x, y[rows], grid, cell_ids, to_lonlat)
            parts.append((np.flatnonzero(rows)[r], start, length, cell))
    row, start, length, cell = (np.concatenate([p[i] for p in parts]) if parts else
                                np.empty(0, dtype=np.int64) for i in range(4))
    order = np.lexsort((start, row))
    row, start, length, cell = row[order], start[order], length[order], cell[order]
    first = _pixel_areas(x, y, crs, row, start, to_lonlat)
    last = _pixel_areas(x, y, crs, row, start + length - 1, to_lonlat)
    slope = np.where(length > 1, (last - first) / np.maximum(length - 1, 1), 0.0)
    return PixelIndex((ny, nx), row.astype(np.int32), start.astype(np.int32),
                      length.astype(np.int32), cell.astype(np.int32), first, slope, cell_ids)


def _polar_rows(lat, grid):
    """Rows of a lon/lat raster too near a pole for tracking (or without a finite lat).

    Near a pole a cell spans a wide range of longitudes, its great-circle edges bow in
    lon/lat and a row can leave and re-enter it; within ``POLAR_CELLS`` cell widths of
    the pole (at least ``POLAR_DEGREES``) the rows are looked up pixel by pixel.
    """
    width = np.degrees(np.sqrt(grid.spherical_areas(grid.latlon_to_cells([90.0], [0.0]))[0]))
    limit = max(POLAR_DEGREES, POLAR_CELLS * width)
    return ~(np.abs(lat) < 90.0 - limit)


def _per_pixel_runs(x, y, grid, cell_ids, to_lonlat):
    """Runs (row, start, length, cell) from the cell of every pixel, block by block."""
    nx, ny = len(x), len(y)
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
    return tuple(np.concatenate([p[i] for p in parts]) if parts else
                 np.empty(0, dtype=np.int64) for i in range(4))


def _probe(x, y, grid, cell_ids, to_lonlat, rows, cols):
    """Cell keys (grid cell id, -1 where the point has no finite lon/lat) and domain
    positions (as ``lookup`` gives them) of the pixels at (rows, cols)."""
    if to_lonlat is None:
        lon, lat = x[cols], y[rows]
    else:
        lon, lat = to_lonlat.transform(x[cols], y[rows])
    lon = geometry.wrap_lon(lon)
    ids = grid.latlon_to_cells(lat, lon)
    keys = np.where(np.isfinite(lat) & np.isfinite(lon), ids.view(np.int64), -1)
    return keys, _positions(cell_ids, ids, lat)


def tracked_runs(x, y, grid, cell_ids, to_lonlat):
    """Runs (row, start, length, cell) from the cells of a few pixels of each row.

    A row meets each cell in one stretch (cells are convex at the scale of a row's
    crossing of them), so two pixels of a row in the same cell have every pixel between
    them in it. A row is known once each pair of consecutive looked-up pixels is in one
    cell or adjacent; pairs that are neither are bisected. The first row of each band
    of ``BAND_ROWS`` rows starts from every ``FIRST_ROW_STEP``-th pixel; each further
    row from its ends, every ``TRACK_STEP``-th pixel and the pixels around each
    boundary of the row above, moved as it moved from the row before. The bands'
    rows are looked up together, one row of each band at a time. The rows are then
    checked against each other (``_verify``).
    """
    nx, ny = len(x), len(y)

    def probe(rows, ptr, cols):
        return _probe(x, y, grid, cell_ids, to_lonlat, np.repeat(rows, np.diff(ptr)), cols)

    band0 = np.arange(0, ny, BAND_ROWS, dtype=np.int64)
    empty = np.zeros(len(band0) + 1, dtype=np.int64), *(np.empty(0, dtype=np.int64),) * 3
    above, above2 = empty, empty
    counts = np.zeros(ny, dtype=np.int64)
    steps = []
    for k in range(min(BAND_ROWS, ny)):
        rows = band0[band0 + k < ny] + k
        n = len(rows)
        if k == 0:
            ptr, cols = _grid_probes(n, nx, FIRST_ROW_STEP)
        else:
            ptr, cols = _predicted_probes(*_bands(above, n), *_bands(above2, n), nx,
                                          TRACK_STEP)
        ptr, cols, keys, pos = _resolve(probe, rows, ptr, cols, *probe(rows, ptr, cols))
        counts[rows] = np.diff(ptr)
        steps.append((rows, ptr, cols, keys, pos))
        above2, above = above, _boundaries(ptr, cols, keys)
    # all rows' probes, in row order
    gptr = np.concatenate([[0], np.cumsum(counts)])
    size = gptr[-1]
    gcols, gkeys, gpos = (np.empty(size, dtype=np.int64) for _ in range(3))
    for rows, ptr, cols, keys, pos in steps:
        n = np.diff(ptr)
        dest = np.repeat(gptr[rows] - ptr[:-1], n) + np.arange(len(cols))
        gcols[dest], gkeys[dest], gpos[dest] = cols, keys, pos
    gptr, gcols, gkeys, gpos = _verify(probe, nx, gptr, gcols, gkeys, gpos)
    return _encode(gptr, gcols, gpos, nx)


def _resolve(probe, rows, ptr, cols, keys, pos):
    """Probes of ``rows`` bisected until each pair of consecutive probes of a row is in
    one cell or adjacent; ``probe(rows, ptr, cols)`` looks pixels up."""
    while True:
        qptr, qcols = _bisect(ptr, cols, keys)
        if len(qcols) == 0:
            return ptr, cols, keys, pos
        ptr, cols, keys, pos = _merge(ptr, cols, keys, pos, qptr, qcols,
                                      *probe(rows, qptr, qcols))


def _verify(probe, nx, ptr, cols, keys, pos):
    """All rows' probes, with every pixel looked up whose neighbour in the row above or
    below is (so far) in another cell, and all of the first and last rows.

    A pixel a row's tracking got wrong lies in a stretch of the row that the rows above
    and below were given the same cell as; looking up where vertically adjacent pixels
    differ corrects such a stretch where it borders the cell it belongs to, and the
    rows it changes are checked again, until no row changes. What could remain is a
    patch of a cell whose pixel centres are all enclosed by another cell's.
    """
    ny = len(ptr) - 1
    rows = np.arange(ny, dtype=np.int64)
    check = np.ones(max(ny - 1, 0), dtype=bool)
    edges = np.unique([0, ny - 1])
    extra = (edges[:, None] * nx + np.arange(nx)).ravel()  # the first and last rows
    while True:
        qrow, qcol = _vertical_gaps(ptr, cols, keys, check, nx)
        qrow, qcol = np.divmod(np.unique(np.concatenate([qrow * nx + qcol, extra])), nx)
        extra = extra[:0]
        qptr = np.searchsorted(qrow, np.arange(ny + 1)).astype(np.int64)
        qptr, qcol = _drop_known(ptr, cols, qptr, qcol)
        if len(qcol) == 0:
            return ptr, cols, keys, pos
        qkeys, qpos = probe(rows, qptr, qcol)
        changed = _changed(ptr, cols, keys, qptr, qcol, qkeys)
        ptr, cols, keys, pos = _resolve(probe, rows, *_merge(ptr, cols, keys, pos, qptr,
                                                             qcol, qkeys, qpos))
        check = changed[:-1] | changed[1:]


def _bands(boundaries, n):
    """Row boundaries (as ``_boundaries`` gives them) of the first ``n`` bands only."""
    return (boundaries[0][:n + 1], *boundaries[1:])


@nb.njit(cache=True)
def _grid_probes(n_rows, nx, step):
    """Probe columns 0, step, 2 step, ... and nx - 1 of each of ``n_rows`` rows."""
    base = np.unique(np.append(np.arange(0, nx, step), nx - 1))
    ptr = np.arange(n_rows + 1) * len(base)
    cols = np.empty(n_rows * len(base), dtype=np.int64)
    for i in range(n_rows):
        cols[ptr[i]:ptr[i + 1]] = base
    return ptr, cols


@nb.njit(cache=True)
def _predicted_probes(ptr1, t1, left1, right1, ptr2, t2, left2, right2, nx, step):
    """Probe columns of each row: its ends, every ``step``-th pixel and the four pixels
    around where each boundary of the row above (``*1``) should be, moved by as much as
    it moved from the row before (``*2``, the same pair of cells) - sorted, unique."""
    n_rows = len(ptr1) - 1
    n_grid = (nx - 1) // step + 2
    ptr = np.zeros(n_rows + 1, dtype=np.int64)
    out = np.empty(n_rows * n_grid + 4 * len(t1), dtype=np.int64)
    m = 0
    for i in range(n_rows):
        a = m
        for c in range(0, nx, step):
            out[m] = c
            m += 1
        out[m] = nx - 1
        m += 1
        for j in range(ptr1[i], ptr1[i + 1]):
            move = 0
            for q in range(ptr2[i], ptr2[i + 1]):
                if left2[q] == left1[j] and right2[q] == right1[j]:
                    move = t1[j] - t2[q]
                    break
            p = t1[j] + move
            for c in range(p - 2, p + 2):
                out[m] = min(max(c, 0), nx - 1)
                m += 1
        row = np.unique(out[a:m])
        out[a:a + len(row)] = row
        m = a + len(row)
        ptr[i + 1] = m
    return ptr, out[:m]


@nb.njit(cache=True)
def _bisect(ptr, cols, keys):
    """The midpoint of each gap between consecutive probes of a row that are neither in
    one cell (the same key, not -1) nor adjacent."""
    n_rows = len(ptr) - 1
    qptr = np.zeros(n_rows + 1, dtype=np.int64)
    out = np.empty(len(cols), dtype=np.int64)
    m = 0
    for i in range(n_rows):
        for j in range(ptr[i], ptr[i + 1] - 1):
            a, b = cols[j], cols[j + 1]
            if b - a > 1 and (keys[j] != keys[j + 1] or keys[j] < 0):
                out[m] = (a + b) // 2
                m += 1
        qptr[i + 1] = m
    return qptr, out[:m]


@nb.njit(cache=True)
def _merge(ptr, cols, keys, pos, qptr, qcols, qkeys, qpos):
    """Two sets of probes of the same rows, each sorted by column within a row, as one."""
    n_rows = len(ptr) - 1
    size = len(cols) + len(qcols)
    optr = np.zeros(n_rows + 1, dtype=np.int64)
    ocols = np.empty(size, dtype=np.int64)
    okeys = np.empty(size, dtype=np.int64)
    opos = np.empty(size, dtype=np.int64)
    m = 0
    for i in range(n_rows):
        j, q = ptr[i], qptr[i]
        while j < ptr[i + 1] or q < qptr[i + 1]:
            if q == qptr[i + 1] or (j < ptr[i + 1] and cols[j] < qcols[q]):
                ocols[m], okeys[m], opos[m] = cols[j], keys[j], pos[j]
                j += 1
            else:
                ocols[m], okeys[m], opos[m] = qcols[q], qkeys[q], qpos[q]
                q += 1
            m += 1
        optr[i + 1] = m
    return optr, ocols, okeys, opos


@nb.njit(cache=True)
def _boundaries(ptr, cols, keys):
    """Each row's boundaries: the column where a new cell starts (or a pixel without a
    cell starts or ends) and the keys of the cells on either side."""
    n_rows = len(ptr) - 1
    bptr = np.zeros(n_rows + 1, dtype=np.int64)
    t = np.empty(len(cols), dtype=np.int64)
    left = np.empty(len(cols), dtype=np.int64)
    right = np.empty(len(cols), dtype=np.int64)
    m = 0
    for i in range(n_rows):
        for j in range(ptr[i] + 1, ptr[i + 1]):
            if keys[j] != keys[j - 1] or keys[j] < 0:
                t[m], left[m], right[m] = cols[j], keys[j - 1], keys[j]
                m += 1
        bptr[i + 1] = m
    return bptr, t[:m], left[:m], right[:m]


@nb.njit(cache=True)
def _encode(ptr, cols, pos, nx):
    """Runs (row, start, length, cell) of resolved rows: probes in one cell or adjacent
    from 0 to ``nx - 1``; runs without a cell (-1) are left out."""
    n_rows = len(ptr) - 1
    row = np.empty(len(cols), dtype=np.int64)
    start = np.empty(len(cols), dtype=np.int64)
    length = np.empty(len(cols), dtype=np.int64)
    cell = np.empty(len(cols), dtype=np.int64)
    m = 0
    for i in range(n_rows):
        s, cur = cols[ptr[i]], pos[ptr[i]]
        for j in range(ptr[i] + 1, ptr[i + 1] + 1):
            if j == ptr[i + 1] or pos[j] != cur:
                end = nx if j == ptr[i + 1] else cols[j]
                if cur >= 0:
                    row[m], start[m], length[m], cell[m] = i, s, end - s, cur
                    m += 1
                if j < ptr[i + 1]:
                    s, cur = cols[j], pos[j]
    return row[:m], start[:m], length[:m], cell[:m]


@nb.njit(cache=True)
def _vertical_gaps(ptr, cols, keys, check, nx):
    """(row, col) of the pixels, not yet probes, of rows r and r + 1 (for each r with
    ``check[r]``) in the stretches where the two rows are (so far) in different cells."""
    out_row = np.empty(0, dtype=np.int64)
    out_col = np.empty(0, dtype=np.int64)
    for fill in (False, True):
        m = 0
        for r in range(len(check)):
            if not check[r]:
                continue
            ia, ib = ptr[r], ptr[r + 1]
            c = 0
            while c < nx:
                na = cols[ia + 1] if ia + 1 < ptr[r + 1] else nx
                nb_ = cols[ib + 1] if ib + 1 < ptr[r + 2] else nx
                v = min(na, nb_)
                if keys[ia] != keys[ib] or keys[ia] < 0:
                    for q in range(c, v):
                        for rr, probe_col in ((r, cols[ia]), (r + 1, cols[ib])):
                            if q != probe_col:
                                if fill:
                                    out_row[m], out_col[m] = rr, q
                                m += 1
                c = v
                if na == v:
                    ia += 1
                if nb_ == v:
                    ib += 1
        if not fill:
            out_row = np.empty(m, dtype=np.int64)
            out_col = np.empty(m, dtype=np.int64)
    return out_row, out_col


@nb.njit(cache=True)
def _drop_known(ptr, cols, qptr, qcols):
    """Pixels (per-row sorted ``qcols``) that are not yet probes, as (qptr, qcols)."""
    n_rows = len(ptr) - 1
    optr = np.zeros(n_rows + 1, dtype=np.int64)
    ocols = np.empty(len(qcols), dtype=np.int64)
    m = 0
    for i in range(n_rows):
        j = ptr[i]
        for q in range(qptr[i], qptr[i + 1]):
            while j < ptr[i + 1] and cols[j] < qcols[q]:
                j += 1
            if j == ptr[i + 1] or cols[j] != qcols[q]:
                ocols[m] = qcols[q]
                m += 1
        optr[i + 1] = m
    return optr, ocols[:m]


@nb.njit(cache=True)
def _changed(ptr, cols, keys, qptr, qcols, qkeys):
    """Rows where a new probe's cell differs from the one its row had given it."""
    n_rows = len(ptr) - 1
    out = np.zeros(n_rows, dtype=np.bool_)
    for i in range(n_rows):
        j = ptr[i]
        for q in range(qptr[i], qptr[i + 1]):
            while j + 1 < ptr[i + 1] and cols[j + 1] < qcols[q]:
                j += 1
            if keys[j] != qkeys[q]:
                out[i] = True
    return out


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
