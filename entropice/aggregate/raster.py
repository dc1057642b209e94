"""Rasters to cells: per-cell statistics of the pixels whose centres lie in each cell."""

from __future__ import annotations

import os
import re
import sys
from collections import deque
from dataclasses import dataclass

import numpy as np
import xarray as xr

from ..grids import DEFAULT_MIN_LAT, Grid, geometry
from . import _index, _kernels

MOMENT_STATS = ("count", "sum", "mean", "std", "min", "max")
SUMMARY_POINTS = 1024
"""Points that summarise the pixels of a cell's part in one dask chunk, for the
quantiles of cells split between chunks (their rank exact to 1/1024, 0.1 %), and of a
finest cell, for its coarser levels' (1/1024; 1.5/1024 where split)."""
QUANTILE_RE = re.compile(r"^p(\d{1,2}|100)$")
ALIASES = {"median": "p50"}


# -- inputs ----------------------------------------------------------------------------


def _label(raster):
    """The raster as messages name it: its files if it says them, else its name."""
    if raster.attrs.get("source_files"):
        return f"the raster of {raster.attrs['source_files']}"
    return f"raster {raster.name!r}" if raster.name is not None else "the raster"


def raster_crs(raster):
    """The raster's CRS: rioxarray's ``.rio.crs``, else EPSG:4326 for lat/lon coordinates."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    crs = None
    try:
        import rioxarray  # noqa: F401  (registers the .rio accessor)

        crs = raster.rio.crs
    except ImportError:  # pragma: no cover - rioxarray is a dependency
        pass
    if crs is not None:
        try:
            return CRS.from_user_input(crs)
        except CRSError as err:
            raise ValueError(f"{_label(raster)} has a CRS that cannot be read: {err}") from None
    if _latlon_dims(raster) is not None:
        return CRS.from_epsg(4326)
    raise ValueError(
        f"{_label(raster)} has no CRS: give it one with raster.rio.write_crs(...) "
        "(rioxarray), or name its coordinates lat/lon (latitude/longitude) for EPSG:4326."
    )


def _latlon_dims(raster):
    names = {d.lower(): d for d in raster.dims}
    for ylat, xlon in (("lat", "lon"), ("latitude", "longitude")):
        if ylat in names and xlon in names:
            return names[ylat], names[xlon]
    return None


def spatial_dims(raster, crs):
    """(y, x) dimension names of the raster."""
    if crs.is_geographic and _latlon_dims(raster) is not None:
        return _latlon_dims(raster)
    try:
        return raster.rio.y_dim, raster.rio.x_dim
    except Exception:  # noqa: BLE001 - rioxarray raises its own error types
        pass
    if {"y", "x"} <= set(raster.dims):
        return "y", "x"
    raise ValueError(f"{_label(raster)}: cannot tell its y and x dimensions among "
                     f"{tuple(raster.dims)}.")


def _nodata(raster, nodata):
    if nodata is not None:
        return nodata
    for getter in (lambda: raster.rio.nodata, lambda: raster.rio.encoded_nodata):
        try:
            value = getter()
        except Exception:  # noqa: BLE001
            value = None
        if value is not None and not (isinstance(value, float) and np.isnan(value)):
            return value
    for key in ("_FillValue", "nodata", "missing_value"):
        value = raster.attrs.get(key, raster.encoding.get(key))
        if value is not None:
            return value
    return None


def _wanted(names):
    """What the reductions compute for the statistics ``names``: the spread, the range,
    and the quantiles (fractions, in the order of ``names``)."""
    return dict(want_spread="std" in names, want_range="min" in names or "max" in names,
                qs=[int(QUANTILE_RE.match(s).group(1)) / 100 for s in names
                    if QUANTILE_RE.match(s)])


def _parse_stats(stats):
    if isinstance(stats, str):
        stats = (stats,)
    names = []
    for s in stats:
        s = ALIASES.get(s, s)
        if s not in MOMENT_STATS and not QUANTILE_RE.match(s):
            raise ValueError(
                f"unknown statistic {s!r}; use any of {', '.join(MOMENT_STATS)}, median, "
                "or a percentile such as p10, p50, p90."
            )
        if s not in names:
            names.append(s)
    return names


def _check_transformable(raster, crs):
    from pyproj.exceptions import ProjError

    try:
        t = geometry.transformer(crs.to_wkt(), "EPSG:4326")
        t.transform(0.0, 0.0, errcheck=False)
    except (ProjError, Exception) as err:  # noqa: BLE001 - pyproj raises several types
        raise ValueError(
            f"{_label(raster)}: its CRS ({crs.name}) cannot be transformed to "
            f"longitude/latitude: {err}"
        ) from None


# -- the reduction of one 2-D block ------------------------------------------------------


_MOMENTS = ("count", "wsum", "mean", "m2", "vsum", "vmin", "vmax")


@dataclass
class _Partial:
    """Statistics of one raster block for the cells it touches (positions ``cells``)."""

    cells: np.ndarray
    count: np.ndarray
    wsum: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    vsum: np.ndarray
    vmin: np.ndarray
    vmax: np.ndarray
    q_cells: np.ndarray  # cells whose quantiles this block computed completely
    q_values: np.ndarray  # (len(q_cells), n_quantiles)
    g_cells: np.ndarray  # points summarising the pixels of split cells: cell, value, weight
    g_values: np.ndarray
    g_weights: np.ndarray

    @classmethod
    def of(cls, cells, moments, want_spread, want_range, nq, quantiles=None, points=None):
        """From the moments (in ``_MOMENTS`` order), the spread and range kept only when
        wanted (a block's partials are sent to the driver); the quantiles of complete
        cells and the points of split ones, none by default."""
        empty = np.empty(0)
        count, wsum, mean, m2, vsum, vmin, vmax = moments
        m2 = m2 if want_spread else empty
        vmin, vmax = (vmin, vmax) if want_range else (empty, empty)
        q_cells, q_values = quantiles or (np.empty(0, dtype=np.int64), np.empty((0, nq)))
        g = points or (np.empty(0, dtype=np.int64), empty, empty)
        return cls(cells, count, wsum, mean, m2, vsum, vmin, vmax, q_cells, q_values, *g)


def _runs(values, index, nodata):
    """The kernels' leading arguments: a block's values and the runs of its index."""
    has_nodata = nodata is not None
    return (values, values.dtype.type(nodata if has_nodata else 0), has_nodata, index.row,
            index.start, index.length, index.local_cell, index.weight, index.slope)


def _reduce_block(values, index, nodata, want_spread, want_range, qs, complete=None):
    """Moments of every touched cell; quantiles for cells entirely in this block
    (``complete``, a mask over ``index.touched``; by default all) and the pixels of the
    others, or a summary of them (``_kernels.summarise``). Works on the block's own
    cells, not the whole domain."""
    touched = index.touched
    n = len(touched)
    args = _runs(values, index, nodata)
    moments = _kernels.moments(*args, n, want_spread,
                               want_range or (len(qs) and complete is not None))
    quantiles = points = None
    if len(qs):
        complete = np.ones(n, dtype=bool) if complete is None else complete
        out = _kernels.quantiles(*args, index.order, index.cell_start, np.asarray(qs),
                                 index.max_pixels_per_cell, complete)
        quantiles = touched[complete], out[complete]
        split = ~complete
        if split.any():
            count, wsum, _, _, _, vmin, vmax = moments
            n_out = int(np.minimum(index.local_pixels[split], SUMMARY_POINTS).sum())
            local, g_values, g_weights = _kernels.summarise(
                *args, index.order, index.cell_start, split, count, wsum, vmin, vmax,
                index.max_pixels_per_cell, SUMMARY_POINTS, n_out)
            points = touched[local], g_values, g_weights
    return _Partial.of(touched, moments, want_spread, want_range, len(qs), quantiles, points)


def _combine(inv, n_cells, count, wsum, mean, m2, vsum, vmin, vmax):
    """Moments of groups (item i in group ``inv[i]`` of ``n_cells``) from the items'
    moments, exactly (Chan's formula for the variance); m2, vmin and vmax may be empty
    (not wanted), and stay None."""
    out_count = np.bincount(inv, weights=count, minlength=n_cells).astype(np.int64)
    out_wsum = np.bincount(inv, weights=wsum, minlength=n_cells)
    # means relative to each group's first mean (of an item with pixels): exact for one
    # item or a constant; 0 for a group without valid pixels, as the kernel gives
    has = wsum > 0
    ref = np.zeros(n_cells)
    ref[inv[has][::-1]] = mean[has][::-1]
    dev = np.where(has, mean - ref[inv], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out_mean = np.where(out_wsum > 0, ref + np.bincount(
            inv, weights=wsum * dev, minlength=n_cells) / out_wsum, 0.0)
    out_m2 = out_min = out_max = None
    if len(m2) == len(inv):
        shift = np.where(has, mean - out_mean[inv], 0.0)
        out_m2 = np.bincount(inv, weights=m2 + wsum * shift**2, minlength=n_cells)
    out_sum = np.bincount(inv, weights=vsum, minlength=n_cells)
    if len(vmin) == len(inv):
        out_min = np.full(n_cells, np.inf)
        np.minimum.at(out_min, inv, vmin)
        out_max = np.full(n_cells, -np.inf)
        np.maximum.at(out_max, inv, vmax)
    return dict(count=out_count, wsum=out_wsum, mean=out_mean, m2=out_m2, vsum=out_sum,
                vmin=out_min, vmax=out_max)




class _Fold:
    """One target's statistics, its blocks' partials folded in one block at a time.

    Blocks come in a fixed order, so the result does not depend on which finished
    first. Moments combine exactly. A cell's moments are held only while it is open:
    once its last part has come (its pixels add up to ``total``) its statistics are
    made final, in ``dtype``, and its moments' row goes to the next cells opened. A
    cell whole in one block is made final from that block's partials, its quantiles
    too; the points of a cell split between blocks are held until it closes, then its
    quantiles are computed from them. The driver holds the final statistics and the
    open cells' moments and points, not every block's partials nor every cell's
    moments.
    """

    def __init__(self, total, n_slices, names, dtype):
        self.cells = np.flatnonzero(total > 0)  # domain positions with a pixel centre
        self.total = total[self.cells]
        self.seen = np.zeros(len(self.cells))
        want = _wanted(names)
        self.qs = np.asarray(want["qs"], dtype=np.float64)
        self.quantile_names = [s for s in names if QUANTILE_RE.match(s)]
        self.moment_names = [s for s in names if not QUANTILE_RE.match(s)]
        kept = dict(m2=want["want_spread"], vmin=want["want_range"], vmax=want["want_range"])
        self.kept = [k for k in _MOMENTS if kept.get(k, True)]  # the moments wanted
        n = len(self.cells)
        self.final = [{s: np.zeros(n, dtype=np.int64) if s == "count" else
                       np.full(n, np.nan, dtype=dtype) for s in names}
                      for _ in range(n_slices)]
        self.room = np.full(n, -1, dtype=np.int64)  # an open cell's row in the moments
        self.free = np.empty(0, dtype=np.int64)  # rows free for the next cells opened
        self.moments = [{k: np.empty(0, dtype=np.int64 if k == "count" else np.float64)
                         for k in _MOMENTS} for _ in range(n_slices)]
        self.open = [{} for _ in range(n_slices)]  # slot -> [(values, weights), ...]

    @property
    def held_points(self):
        """Points of open cells held now (for benchmarks: the driver's frontier)."""
        return sum(len(v) for per_slice in self.open for parts in per_slice.values()
                   for v, _ in parts)

    @property
    def held_rows(self):
        """Rows of moments held now, of open cells or free (for tests)."""
        return len(self.moments[0]["count"]) if self.moments else 0

    def _rows(self, slots):
        """The moments' rows of ``slots``, a row given (zeroed) to each cell not yet open;
        the rows grow when none are free."""
        rows = self.room[slots]
        new = np.flatnonzero(rows < 0)
        if len(new) > len(self.free):
            have = self.held_rows
            grow = max(have, len(new) - len(self.free), 64)
            for st in self.moments:
                for k in self.kept:
                    st[k] = np.concatenate([st[k], np.empty(grow, dtype=st[k].dtype)])
            self.free = np.concatenate([np.arange(have + grow - 1, have - 1, -1), self.free])
        taken, self.free = self.free[len(self.free) - len(new):], self.free[
            :len(self.free) - len(new)]
        rows[new] = taken
        self.room[slots[new]] = taken
        for st in self.moments:
            for k in self.kept:
                st[k][taken] = np.inf if k == "vmin" else -np.inf if k == "vmax" else 0
        return rows

    def add(self, touched, pixels, partials):
        """Fold in one block: its cells (domain positions), their pixel centres in the
        block, and its partials, one per slice. A cell whose pixels are all in this block
        is combined on its own (as with an empty row) and made final; the others are
        combined with what came before, and made final if this block was their last."""
        slots = np.searchsorted(self.cells, touched)
        opened = self.room[slots] >= 0
        self.seen[slots] += pixels
        done = self.seen[slots] == self.total[slots]
        whole = done & ~opened
        rows = self._rows(slots[~whole])
        n_rows = len(rows)
        # the block's cells as groups of one combination: the open ones with their rows'
        # moments (groups 0 to n_rows - 1), each whole one on its own (after them)
        group = np.empty(len(slots), dtype=np.int64)
        group[~whole] = np.arange(n_rows)
        group[whole] = n_rows + np.arange(len(slots) - n_rows)
        groups = np.concatenate([np.arange(n_rows), group])
        closing = slots[done]
        for s, p in enumerate(partials):
            st = self.moments[s]
            new = _combine(groups, len(slots), *(
                np.concatenate([st[k][rows], getattr(p, k)]) if k in self.kept
                else np.empty(0) for k in _MOMENTS))
            for k in self.kept:
                st[k][rows] = new[k][:n_rows]
            self._finish(s, closing, {k: new[k][group[done]] for k in self.kept})
            if len(self.qs):
                q_slots = np.searchsorted(self.cells, p.q_cells)
                for j, name in enumerate(self.quantile_names):
                    self.final[s][name][q_slots] = p.q_values[:, j]
                self._points(s, np.searchsorted(self.cells, p.g_cells), p.g_values,
                             p.g_weights, closing)
        freed = slots[done & opened]  # their rows go to the next cells opened
        self.free = np.concatenate([self.free, self.room[freed]])
        self.room[freed] = -1

    def _finish(self, s, slots, m):
        """The final statistics of slice ``s``'s cells ``slots`` from their moments ``m``."""
        final = self.final[s]
        valid = m["count"] > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            for name in self.moment_names:
                if name == "count":
                    final[name][slots] = m["count"]
                elif name == "sum":
                    final[name][slots] = np.where(valid, m["vsum"], np.nan)
                elif name == "mean":
                    final[name][slots] = np.where(valid, m["mean"], np.nan)
                elif name == "std":
                    final[name][slots] = np.where(valid, np.sqrt(np.maximum(m["m2"], 0)
                                                                 / m["wsum"]), np.nan)
                else:
                    final[name][slots] = np.where(valid, m["v" + name], np.nan)

    def _points(self, s, g_slots, values, weights, closing):
        """Hold a block's points of split cells; the quantiles of the cells now whole."""
        held = self.open[s]
        order = np.argsort(g_slots, kind="stable")
        g_slots, values, weights = g_slots[order], values[order], weights[order]
        starts = np.flatnonzero(np.diff(g_slots, prepend=-1) != 0)
        for a, b in zip(starts, np.append(starts[1:], len(g_slots))):
            held.setdefault(int(g_slots[a]), []).append((values[a:b], weights[a:b]))
        done = [c for c in closing.tolist() if c in held]
        if done:
            groups = [held.pop(c) for c in done]
            cell = np.repeat(np.arange(len(done)), [sum(len(v) for v, _ in g) for g in groups])
            quantiles = _kernels.grouped_quantiles(
                cell, np.concatenate([v for g in groups for v, _ in g]),
                np.concatenate([w for g in groups for _, w in g]), len(done), self.qs)
            for j, name in enumerate(self.quantile_names):
                self.final[s][name][done] = quantiles[:, j]

    def results(self):
        """The cells with a pixel centre (domain positions) and, per slice, a generator
        of their final statistics by name (each slice's arrays freed as it is taken)."""
        if self.room.max(initial=-1) >= 0:
            raise RuntimeError("a cell's pixels did not all come: the fold is not done.")
        self.moments = None

        def each():
            for s in range(len(self.final)):
                out, self.final[s] = self.final[s], None
                yield out
        return self.cells, each()


# -- every level of a grid system from its finest one ------------------------------------


def _reduce_levels(values, base, targets, indexes, nodata, want_spread, want_range, qs,
                   complete):
    """Partials of ``targets`` (levels of one grid system, derived from the index of
    ``base``, its finest level on a wider domain) from one reduction of the base;
    ``indexes`` holds the block's indexes (:func:`_block_indexes`).

    The base's moments are computed once and combined per cell of each level (exact).
    For quantiles every base cell is sketched once (``_kernels.sketch``, one pass over
    its pixels and one over a copy of them): the finest level's complete cells get their
    exact quantiles from it, its split cells their summaries (as ``_kernels.summarise``
    makes them on its own, from the pixels the sketch keeps); a coarser cell complete in
    this block gets its quantiles from its children's sketches merged (rank within 1 /
    SUMMARY_POINTS), a split one sends them, compressed to at most SUMMARY_POINTS points
    (within 1.5 / SUMMARY_POINTS): the sketches' points are sorted by value once, and
    each coarser level takes them in one pass (``_kernels.merge``).
    """
    bi = indexes[base]
    args = _runs(values, bi, nodata)
    n_base = len(bi.touched)
    moments = _kernels.moments(*args, n_base, want_spread, want_range or bool(len(qs)))
    wanted = _Partial.of(bi.touched, moments, want_spread, want_range, len(qs))
    if len(qs):
        finest = [k for k, t in enumerate(targets) if t.grid == base[0]]
        exact = split = np.zeros(n_base, dtype=bool)
        if finest:  # its cells whole in the block, and those split between blocks
            index = indexes[targets[finest[0]].key]
            exact = _base_mask(index, complete[finest[0]], n_base)
            split = (index.memo["from_base"] >= 0) & ~exact
        sketch, exact_q, summaries = _kernels.sketch(args, bi.order, bi.cell_start, moments,
                                                     SUMMARY_POINTS, qs, exact, split)
        sketch = _kernels.by_value(*sketch)  # sorted by value, for every coarser level
    out = []
    for t, done in zip(targets, complete):
        index = indexes[t.key]
        touched = index.touched
        to_t = index.memo["from_base"]
        keep = to_t >= 0
        inv = np.searchsorted(touched, to_t[keep])
        st = _combine(inv, len(touched), *(a[keep] if len(a) else a for a in
                                           (getattr(wanted, k) for k in _MOMENTS)))
        quantiles = points = None
        if len(qs):
            done = np.ones(len(touched), dtype=bool) if done is None else done
            if t.grid == base[0]:
                q, (g_local, g_values, g_weights) = _finest_quantiles(
                    keep, inv, done, exact_q, summaries)
            else:
                q, (g_local, g_values, g_weights) = _coarse_quantiles(
                    sketch, keep, inv, done, qs)
            quantiles = touched[done], q[done]
            points = touched[g_local], g_values, g_weights
        out.append(_Partial.of(touched, [st[k] for k in _MOMENTS], want_spread, want_range,
                               len(qs), quantiles, points))
    return out


def _base_mask(index, done, n_base):
    """The base cells whose cell in ``index`` (derived from the base) is ``done``."""
    done = np.ones(len(index.touched), dtype=bool) if done is None else done
    to_t = index.memo["from_base"]
    mask = np.zeros(n_base, dtype=bool)
    keep = to_t >= 0
    mask[keep] = done[np.searchsorted(index.touched, to_t[keep])]
    return mask


def _finest_quantiles(keep, inv, done, exact_q, summaries):
    """The finest level's quantiles (exact, from the base's sketch) and the points of
    its split cells (the sketch's ``summaries``, as the level on its own sends them);
    ``inv`` holds the level's cell of each base cell ``keep``."""
    q = np.full((len(done), exact_q.shape[1]), np.nan)
    q[inv] = exact_q[keep]
    local, values, weights = summaries
    to_level = np.full(len(keep), -1)
    to_level[keep] = inv
    return q, (to_level[local], values, weights)


def _coarse_quantiles(sketch, keep, inv, done, qs):
    """A coarser level's quantiles from its finest cells' sketches (sorted by value)
    merged, where its cell is whole in the block, and the compressed points of the
    others (``_kernels.merge``, one pass over the points in value order); ``inv`` holds
    the level's cell (a position in its ``touched``) of each base cell ``keep``."""
    to_cell = np.full(len(keep), -1, dtype=np.int64)
    to_cell[keep] = inv
    return _kernels.merge(*sketch, to_cell, done, np.asarray(qs, dtype=np.float64),
                          SUMMARY_POINTS)


# -- sampling at cell centres (coarse rasters) ---------------------------------------------


def _fractional(coord, values):
    """Fractional index of ``values`` along a monotonic 1-D coordinate (NaN outside)."""
    coord = np.asarray(coord, dtype=np.float64)
    idx = np.arange(len(coord), dtype=np.float64)
    if len(coord) > 1 and coord[0] > coord[-1]:
        coord, idx = coord[::-1], idx[::-1]
    half = 0.5 * (np.abs(coord[1] - coord[0]) if len(coord) > 1 else 1.0)
    out = np.interp(values, coord, idx)
    inside = (values >= coord[0] - half) & (values <= coord[-1] + half)
    return np.where(inside, out, np.nan)


def _centre_positions(x, y, crs, grid, cells_ds):
    """Fractional (row, col) of every domain cell centre in the raster; NaN outside."""
    lat, lon = cells_ds.lat.values, cells_ds.lon.values
    if crs.is_geographic:
        cx, cy = lon, lat
        if np.nanmax(x) > 180.0:  # longitudes 0..360
            cx = np.mod(lon, 360.0)
        col = _fractional(x, cx)
        span = np.abs(x[-1] - x[0]) + np.abs(x[1] - x[0]) if len(x) > 1 else 0.0
        if np.isclose(span, 360.0):  # global: wrap between the last and first column
            col = np.where(np.isnan(col), np.mod((cx - x[0]) / (x[1] - x[0]), len(x)), col)
    else:
        cx, cy = geometry.transformer("EPSG:4326", crs.to_wkt()).transform(lon, lat,
                                                                            errcheck=False)
        col = _fractional(x, np.asarray(cx))
    row = _fractional(y, np.asarray(cy))
    return row, col


def _corners(row, col, shape):
    """The four pixels around each fractional (row, col) and their bilinear weights."""
    ny, nx = shape
    r0 = np.clip(np.floor(row), 0, ny - 1).astype(np.int64)
    c0 = np.floor(col).astype(np.int64)
    fr = np.clip(row - r0, 0.0, 1.0)
    fc = col - c0
    r1 = np.minimum(r0 + 1, ny - 1)
    c0w, c1w = np.mod(c0, nx), np.mod(c0 + 1, nx)
    rows = np.stack([r0, r0, r1, r1])
    cols = np.stack([c0w, c1w, c0w, c1w])
    w = np.stack([(1 - fr) * (1 - fc), (1 - fr) * fc, fr * (1 - fc), fr * fc])
    return rows, cols, w


def _bilinear(slices, row, col, nodata):
    """Bilinear samples of each 2-D slice at fractional (row, col), one slice at a time;
    dask-backed slices are read in one pass, only at the pixels needed."""
    has, nd = nodata is not None, 0.0 if nodata is None else float(nodata)
    if slices[0].chunks is None:
        return (_kernels.bilinear(np.asarray(sl.values), row, col, nd, has) for sl in slices)
    import dask

    rows, cols, w = _corners(row, col, slices[0].shape)
    got = dask.compute(*[sl.data.vindex[rows.ravel(), cols.ravel()] for sl in slices])
    return (_kernels.interpolate(g.reshape(rows.shape), w, nd, has) for g in got)


# -- the grids reduced onto ------------------------------------------------------------------


@dataclass(eq=False)
class _Target:
    """One grid a raster is reduced onto: its domain, and the finer grid (on a wider
    domain) whose pixel index it is derived from, if any."""

    grid: Grid
    min_lat: float
    base: tuple | None = None

    @property
    def cells(self):
        return self.grid.cells(self.min_lat)

    @property
    def key(self):
        return self.grid.name, self.grid.level

    def index(self, x, y, crs):
        return _index.level_index(x, y, crs, self.grid, self.min_lat, self.base)


def derive_margin(grid) -> float:
    """Degrees by which the domain of the index that coarser levels are derived from
    extends south of theirs: two widths of ``grid``'s cells (the coarsest level), so that
    every pixel of a domain cell's descendants is indexed."""
    polar = grid.latlon_to_cells(np.array([90.0]), np.array([0.0]))
    return 2.0 * float(np.degrees(np.sqrt(grid.spherical_areas(polar)[0])))


def _targets(grids, min_lat, finest=()):
    """A target per grid; the levels of one grid system share the index of its finest
    level, or of the level ``finest`` names for it (built on a domain wider by
    ``derive_margin`` of its coarsest)."""
    grids = list(dict.fromkeys(grids))
    if not grids:
        raise ValueError("no grids to put the raster on.")
    finer = {g.name: g for g in finest}
    out = []
    for name in dict.fromkeys(g.name for g in grids):
        system = [g for g in grids if g.name == name]
        base_grid = max(system + ([finer[name]] if name in finer else []),
                        key=lambda g: g.level)
        if system == [base_grid]:
            out.append(_Target(base_grid, min_lat))
            continue
        coarsest = min(system, key=lambda g: g.level)
        base = (base_grid, max(-90.0, float(min_lat) - derive_margin(coarsest)))
        out.extend(_Target(g, min_lat, base) for g in system)
    return out


# -- the public functions -------------------------------------------------------------------


def raster_to_cells(raster: xr.DataArray, grid: Grid, stats=("mean",),
                    min_lat: float = DEFAULT_MIN_LAT, *, nodata=None,
                    domain: bool = False, dtype=np.float64) -> xr.Dataset:
    """Per-cell statistics of a raster's pixels.

    Each pixel belongs to the cell that contains its centre; its weight in means,
    standard deviations and quantiles is its true area on the ellipsoid (equal
    weights on an equal-area raster). The pixel -> cell index is computed once per
    raster grid and cell grid and cached (in memory, and on disk under
    ``$ENTROPICE_CACHE_DIR``). Rasters whose pixels are larger than the cells are
    instead sampled bilinearly at the cell centres, and cells that no pixel centre
    falls in are sampled too, so that no cell under the raster is left empty.

    Parameters
    ----------
    raster : xarray.DataArray or xarray.Dataset
        2-D (y, x), optionally with more dimensions (band, time, ...), which the
        result keeps. A Dataset's variables (on one grid) are reduced in one pass
        over the data, into variables ``<name>_<stat>``. The CRS comes from
        rioxarray (``raster.rio.crs``) or, for lat/lon (latitude/longitude)
        coordinates, is EPSG:4326. Backed by a dask
        array, it is reduced chunk by chunk on the current dask scheduler.
    grid : Grid
        The cell grid, from :func:`entropice.grids.get_grid`.
    stats : sequence of str, default ("mean",)
        Any of count, sum, mean, std, min, max, median and percentiles p0..p100.
        Quantiles are area-weighted inverted-CDF quantiles; of cells split between
        dask chunks, each chunk's part is summarised by at most ``SUMMARY_POINTS``
        points, so that their rank is exact to ``1 / SUMMARY_POINTS``.
    min_lat : float, default 50.0
        The domain's southern boundary.
    nodata : number, optional
        Value of missing pixels; by default the raster's own (rioxarray, or the
        ``_FillValue``/``nodata`` attributes). NaN is always missing.
    domain : bool, default False
        Give every cell of the domain (NaN, and a count of 0, where the raster does not
        reach) instead of the cells under the raster: what the cube stores, without a
        copy onto the domain after.
    dtype : numpy dtype, default float64
        Of the statistics (not ``count``): float32 halves the memory of the result, and
        is what the cube stores.

    Returns
    -------
    xarray.Dataset
        Indexed by ``cell_ids`` (the cells under the raster, or with ``domain`` all of
        the domain's), one variable per statistic. ``count`` is the number of valid
        pixels (0 for sampled cells, whose ``sum`` and ``std`` are NaN).

    Raises
    ------
    ValueError
        If the raster has no CRS, a CRS that cannot be transformed to lon/lat, does
        not overlap the domain, or a statistic is unknown.

    See Also
    --------
    raster_to_levels : several grids and levels in one pass over the raster.
    """
    return raster_to_levels(raster, [grid], stats, min_lat, nodata=nodata, domain=domain,
                            dtype=dtype)[grid.name, grid.level]


def raster_to_levels(raster: xr.DataArray, grids, stats=("mean",),
                     min_lat: float = DEFAULT_MIN_LAT, *, nodata=None,
                     domain: bool = False, dtype=np.float64, finest=(),
                     progress=None) -> dict:
    """:func:`raster_to_cells` on several grids and levels in one pass over the raster.

    A dask-backed raster (terrain derived from a DEM, say) is computed once for all of
    them, and the levels of one grid system share one pixel index, that of the finest
    level: a pixel goes to the ancestor of its fine cell. For HEALPix, whose cells
    nest, that is the cell holding the pixel: every level holds the pixels it holds on
    its own. H3's children cover their parent only approximately, so a coarse H3 cell
    gets the pixels of its finest descendants (as :func:`rollup` does), a few per cent
    of its area different from its own outline. A coarser level's moments are combined
    exactly from its finest descendants'; its percentiles come from their summaries
    (rank within 1 / SUMMARY_POINTS, 1.5 / SUMMARY_POINTS for cells split between dask
    chunks); the finest level's are as :func:`raster_to_cells` gives them.

    Parameters
    ----------
    grids : sequence of Grid
        The grids and levels; the other parameters are :func:`raster_to_cells`'s.
    finest : sequence of Grid, optional
        Per grid system, a finer level to derive the levels from instead of the finest
        of ``grids`` (so that a level's values do not depend on which others are asked
        for at the same time).
    progress : callable, optional
        Called as ``progress(done, total)``: with 0 before any work (the total known
        up front), then as a dask-backed raster's blocks are counted and reduced (a
        raster in memory: indexed and reduced) and as each level is assembled, so that
        a raster in one block shows its steps too. For progress bars.

    Returns
    -------
    dict
        ``{(grid name, level): xarray.Dataset}``, each as :func:`raster_to_cells`
        gives it.
    """
    if isinstance(raster, xr.Dataset):
        return _dataset_to_cells(raster, grids, stats, min_lat, nodata, domain, dtype, finest,
                                 progress)
    targets = _targets(grids, min_lat, finest)
    if not isinstance(raster, xr.DataArray):
        raise TypeError("raster_to_cells takes an xarray.DataArray or Dataset; got "
                        f"{type(raster).__name__}.")
    names = _parse_stats(stats)
    crs = raster_crs(raster)
    _check_transformable(raster, crs)
    ydim, xdim = spatial_dims(raster, crs)
    raster = raster.transpose(..., ydim, xdim)
    x = np.asarray(raster[xdim].values, dtype=np.float64)
    y = np.asarray(raster[ydim].values, dtype=np.float64)
    nodata = _nodata(raster, nodata)
    want = _wanted(names)

    lazy = raster.chunks is not None
    if lazy:  # pixels larger than some grid's cells: fewer pixels than cells, read once
        pixel_km2 = _index.pixel_area_at(x, y, crs, len(y) // 2, len(x) // 2)
        if any(pixel_km2 > _cell_km2(t, x, y, crs) for t in targets):
            raster, lazy = raster.compute(), False
    other_dims = raster.dims[:-2]
    positions = list(np.ndindex(*raster.shape[:-2]))
    # the 2-D slices of the raster, one per position along its other dimensions
    slices = [raster[dict(zip(other_dims, pos))] if other_dims else raster
              for pos in positions]
    n_blocks = int(np.prod(slices[0].data.numblocks)) if lazy else 1
    step = _Steps(progress, 2 * n_blocks + len(targets))
    if lazy:  # every slice and every grid, block by block, in one dask pass
        reduced = {t.key: fold.results() for t, fold in
                   zip(targets, _reduce_dask(slices, x, y, crs, targets, nodata, names,
                                             dtype, step=step))}
    else:  # the raster is one block
        reduced, live = {}, []
        for t in targets:
            index = t.index(x, y, crs)
            pixel_km2 = float(np.median(index.weight)) if index.n_runs else np.inf
            if pixel_km2 > _cell_km2(t, x, y, crs, index):  # sampled at the cell centres
                reduced[t.key] = (None, None)
            else:
                live.append(t)
        if live:
            counts, parts = _block_partials([sl.values for sl in slices],
                                            _block_indexes(x, y, crs, live), live, nodata,
                                            **want)
            for t, (touched, pixels), per_slice in zip(live, counts, parts):
                total = np.zeros(len(t.cells.cell_ids))
                total[touched] = pixels
                fold = _Fold(total, len(slices), names, dtype)
                fold.add(touched, pixels, per_slice)
                reduced[t.key] = fold.results()
        step()  # indexed (or every grid sampled at its cells' centres)
        step()  # reduced
    out = {}
    for t in targets:
        out[t.key] = _assemble(raster, slices, t, *reduced[t.key], x, y, crs, names,
                               nodata, domain, dtype)
        step()  # a level assembled
    return out


class _Steps:
    """The steps of a reduction, each reported as ``progress(done, total)``: every
    block counted and reduced (a raster in memory: indexed and reduced), then every
    level assembled; the total is reported before the first step."""

    def __init__(self, progress, total):
        self.progress, self.total, self.done = progress, total, 0
        if progress is not None:
            progress(0, total)

    def __call__(self):
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)


def _centres(t, x, y, crs):
    """Fractional (row, col) of the target's cell centres in the raster (cached per
    raster grid and cell grid: rasters of one grid, such as ERA5's years, share them)."""
    return _index.memo(("centres", t.key, t.min_lat), x, y, crs,
                       lambda: _centre_positions(x, y, crs, t.grid, t.cells))


def _cell_km2(t, x, y, crs, index=None):
    """Median area of the target's cells under the raster (or touched by its pixels)."""
    row, col = _centres(t, x, y, crs)
    near = np.isfinite(row) & np.isfinite(col)
    if index is not None:
        near[index.touched] = True
    areas = t.cells.area_km2.values
    return float(np.median(areas[near] if near.any() else areas))


def _assemble(raster, slices, t, covered, results, x, y, crs, names, nodata, domain, dtype):
    """The dataset of one target from its reduced slices (``results``, a generator of
    each slice's statistics of the ``covered`` cells, or None: sampled at the cell
    centres)."""
    grid, min_lat = t.grid, t.min_lat
    cells_ds = t.cells
    cell_ids = cells_ds.cell_ids.values
    row, col = _centres(t, x, y, crs)
    under = np.isfinite(row) & np.isfinite(col)
    sampled_mode = results is None
    if sampled_mode:
        covered, results = np.empty(0, dtype=np.int64), (None for _ in slices)
    if not sampled_mode and len(covered) == 0 and not under.any():
        raise _no_overlap(raster, grid, min_lat)
    # cells under the raster that no pixel centre falls in are sampled at their centre
    fill = under.copy()
    fill[covered] = False
    samples = _bilinear(slices, row[fill], col[fill], nodata) if fill.any() else None

    # one slice at a time into the arrays, on every domain cell; then the cells of the
    # result: under pixel centres, or (sampled) under the raster
    other_dims = raster.dims[:-2]
    out_shape = (*raster.shape[:-2], len(cell_ids))
    arrays = {s: np.zeros(out_shape, dtype=np.int64) if s == "count"
              else np.full(out_shape, np.nan, dtype=dtype) for s in names}
    keep = under.copy()
    keep[covered] = True
    for pos, res in zip(np.ndindex(*raster.shape[:-2]), results):
        if res is not None:  # statistics of the cells with pixel centres
            for s in names:
                arrays[s][pos][covered] = res[s]
            del res
        if samples is not None:
            sample = next(samples)
            for s in names:
                if s not in ("count", "sum", "std"):
                    arrays[s][pos][fill] = sample
    if not keep.any():
        raise _no_overlap(raster, grid, min_lat)
    keep_idx = np.flatnonzero(keep) if not domain else np.arange(len(cell_ids))
    if len(keep_idx) < len(cell_ids):
        arrays = {s: a[..., keep_idx] for s, a in arrays.items()}

    out_dims = (*other_dims, "cells")
    data_vars = {}
    for s in names:
        attrs = _stat_attrs(raster, s, sampled_mode)
        data_vars[s] = (out_dims, arrays[s], attrs)
    coords = {d: raster[d] for d in other_dims if d in raster.coords}
    coords["cell_ids"] = grid.cell_ids_coord(cell_ids[keep_idx])
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs.update(aggregation="sampled at cell centres" if sampled_mode else
                    "pixels binned by centre, area-weighted")
    return ds


def _no_overlap(raster, grid, min_lat):
    return ValueError(
        f"{_label(raster)} does not overlap the domain (cells of {grid.name} level "
        f"{grid.level} with centres north of {min_lat} deg).")


def _dataset_to_cells(ds, grids, stats, min_lat, nodata, domain, dtype, finest=(),
                      progress=None):
    """Every variable of a dataset on one raster grid, in one pass over the data."""
    if not ds.data_vars:
        raise ValueError("the raster dataset has no variables.")
    names = list(ds.data_vars)
    stacked = ds.to_dataarray("variable")
    stacked.name = None
    results = raster_to_levels(stacked, grids, stats, min_lat, nodata=nodata, domain=domain,
                               dtype=dtype, finest=finest, progress=progress)
    out = {}
    for key, result in results.items():
        sampled = "sampled" in result.attrs["aggregation"]
        # each variable's row of each statistic, a view (as ``.sel(variable=v)`` gives
        # it, without a DataArray for each), with such a selection's coords
        position = {v: i for i, v in enumerate(result.indexes["variable"])}
        coords = result[next(iter(result.data_vars))].sel(variable=names[0], drop=True).coords
        out[key] = xr.Dataset({
            f"{v}_{st}": xr.Variable(
                *_row(result[st].variable, position[v]),
                {**result[st].attrs, **_stat_attrs(ds[v], st, sampled)})
            for v in names for st in result.data_vars},
            coords=coords, attrs=result.attrs)
    return out


def _row(var, i):
    """The dims and data of ``var`` at position ``i`` along "variable"."""
    row = var.isel(variable=i)
    return row.dims, row.data


def _stat_attrs(raster, stat, sampled):
    units = raster.attrs.get("units")
    long_name = raster.attrs.get("long_name", raster.name or "value")
    attrs = {}
    if stat == "count":
        attrs.update(units="1", long_name=f"valid pixels of {long_name} in the cell")
    else:
        if units is not None:
            attrs["units"] = units
        what = {"sum": "sum", "mean": "area-weighted mean", "std": "area-weighted std",
                "min": "minimum", "max": "maximum"}.get(stat, f"area-weighted {stat}")
        attrs["long_name"] = (f"{long_name} at the cell centre" if sampled and stat not in
                              ("sum", "std") else f"{what} of {long_name} over the cell")
    attrs["cell_methods"] = f"area: {'sum' if stat in ('count', 'sum') else 'mean'}"
    return attrs


# -- dask: chunk by chunk ------------------------------------------------------------------


def _block_indexes(x, y, crs, targets):
    """A block's pixel indexes: each target's, and each base's its levels derive from."""
    out = {t.key: t.index(x, y, crs) for t in targets}
    for t in targets:
        if t.base is not None:
            out[t.base] = _index.base_index(x, y, crs, *t.base)
    return out


def _block_counts(indexes, targets):
    """Per target: the cells a block's pixel centres fall in, and how many of them."""
    return [(indexes[t.key].touched, indexes[t.key].local_pixels) for t in targets]


def _block_partials(blocks, indexes, targets, nodata, want_spread, want_range, qs,
                    totals=None):
    """Partial statistics of one block of every slice (they share the indexes, from
    :func:`_block_indexes`), per target. With ``totals`` (per target, every cell's
    pixels in the raster) the cells whose pixels are not all in this block are split:
    their quantiles are left to the merge. Levels derived from one base index are
    reduced together (``_reduce_levels``)."""
    values = [np.asarray(b) for b in blocks]
    complete = [None if totals is None else
                indexes[t.key].local_pixels == total[indexes[t.key].touched]
                for t, total in zip(targets, totals or [None] * len(targets))]
    out = [None] * len(targets)
    shared = {}
    for k, t in enumerate(targets):
        if t.base is None:
            out[k] = [_reduce_block(v, indexes[t.key], nodata, want_spread, want_range, qs,
                                    complete[k]) for v in values]
        else:
            shared.setdefault(t.base, []).append(k)
    for base, ks in shared.items():
        per_slice = [_reduce_levels(v, base, [targets[k] for k in ks], indexes, nodata,
                                    want_spread, want_range, qs, [complete[k] for k in ks])
                     for v in values]
        for j, k in enumerate(ks):
            out[k] = [parts[j] for parts in per_slice]
    return _block_counts(indexes, targets), out


def _client():
    """The dask.distributed client that computations go to, if any."""
    import dask

    try:
        from distributed import default_client
        client = default_client()
    except (ImportError, ValueError):
        return None
    return client if dask.base.get_scheduler() == client.get else None


def _in_order(tasks):
    """Compute ``tasks`` (dask.delayed) on the current scheduler and yield their results
    in order, holding few at a time. A dask.distributed client gets them all at once (its
    scheduler plans the whole graph) and the driver gathers one at a time; the local
    schedulers compute them in batches of four per thread."""
    import dask

    client = _client()
    if client is not None:
        futures = deque(client.compute(tasks))
        del tasks  # (and the futures their graphs hold, as their tasks finish)
        while futures:
            yield futures.popleft().result()  # and released
        return
    batch = 4 * (dask.config.get("num_workers", None) or os.cpu_count() or 1)
    for k in range(0, len(tasks), batch):
        yield from dask.compute(*tasks[k:k + batch])


def _reduce_dask(slices, x, y, crs, targets, nodata, names, dtype, step=None):
    """Reduce dask-backed 2-D slices (same grid, same chunks) block by block, every
    target of a block's slices in one task, on the current scheduler: per target, a
    :class:`_Fold` of the blocks' statistics ``names``, final in ``dtype``.

    Two passes over the blocks' pixel indexes: the first sums every cell's pixel
    centres (the blocks' counts), which tells each block of the second which of its
    cells it holds whole. Cells inside one block get their exact quantiles there; of a
    cell split between blocks each block sends its pixels, or a summary of at most
    ``SUMMARY_POINTS`` of them. The driver folds the blocks' results in as they come.

    On a dask.distributed cluster the first pass's indexes stay on the workers that
    built them (:class:`_KeptIndexes`, as much as the workers' index caches hold) and
    the second pass's task of a block takes them from there (the scheduler weighs the
    indexes' size, ``sys.getsizeof``, against the block's pixels' in placing it). With
    few blocks per worker thread a block's slices are shared out between several tasks
    (:func:`_slice_groups`).
    """
    import dask

    ychunks, xchunks = slices[0].data.chunks
    yb = np.concatenate([[0], np.cumsum(ychunks)])
    xb = np.concatenate([[0], np.cumsum(xchunks)])
    blocks = [(i, j) for i in range(len(ychunks)) for j in range(len(xchunks))]
    step = step or (lambda: None)  # a block counted or reduced
    coords = [(x[xb[j]:xb[j + 1]], y[yb[i]:yb[i + 1]]) for i, j in blocks]
    sizes = [len(t.cells.cell_ids) for t in targets]
    totals = [np.zeros(n) for n in sizes]
    client = _client()
    if client is None:  # the second pass finds the indexes in the process's cache
        kept = [None] * len(blocks)
        counted = _in_order([dask.delayed(_block_counts, pure=True)(
            dask.delayed(_block_indexes, pure=True)(bx, by, crs, targets), targets)
            for bx, by in coords])
    else:
        kept = client.compute([dask.delayed(_KeptIndexes, pure=True)(bx, by, crs, targets)
                               for bx, by in coords])
        counted = _in_order([dask.delayed(_kept_counts, pure=True)(k, targets)
                             for k in kept])
        room = _index.MEMORY_CACHE_BYTES * max(len(client.nthreads()), 1)
    for b, counts in enumerate(counted):
        if client is not None:
            counts, nbytes = counts
            room -= nbytes
            if room < 0:  # beyond what the caches hold: indexed again in the second pass
                kept[b] = None
        for total, (touched, n) in zip(totals, counts):
            total[touched] += n
        step()
    want = _wanted(names)
    folds = [_Fold(total, len(slices), names, dtype) for total in totals]
    shared = None
    if len(want["qs"]):  # sent to each worker once, not in the graph of every task
        shared = (client.scatter(totals, broadcast=True) if client is not None else
                  dask.delayed(totals, pure=True))
    # every slice's blocks from its graph as it is: a block of ``.blocks[i, j]`` is a
    # collection of its own, whose graph names its inputs anew, so that the chunks its
    # neighbours share (a halo's) were computed once per block that reads them; and a
    # slice's graph optimised on its own fuses what the slices share (a blockwise
    # source) into each slice's tasks, computed once per slice
    chunks = [sl.data.to_delayed(optimize_graph=False) for sl in slices]
    groups = _slice_groups(len(slices), len(blocks), client)
    reduced = _in_order([dask.delayed(_block_task, pure=True)(
        [c[i, j] for c in chunks[a:b]], bx, by, crs, targets, nodata, want["want_spread"],
        want["want_range"], want["qs"], shared, k)
        for (i, j), (bx, by), k in zip(blocks, coords, kept) for a, b in groups])
    del kept  # each block's indexes released once its tasks are done with them
    for _ in blocks:
        parts = [next(reduced) for _ in groups]  # a block's slices, in order
        counts = parts[0][0]
        for t, (fold, (touched, pixels)) in enumerate(zip(folds, counts)):
            fold.add(touched, pixels, [p for _, partials in parts for p in partials[t]])
        step()
    return folds


TASKS_PER_THREAD = 8
"""On a dask.distributed cluster with fewer blocks than this per worker thread, a
block's slices are reduced in several tasks (:func:`_slice_groups`)."""


def _slice_groups(n_slices, n_blocks, client):
    """The slices each task of a block reduces, as (start, stop): all in one task, but
    on a cluster with few blocks per thread, in groups of them, so that the workers
    finish together (a worker given the last block's task alone leaves the others
    idle; a task per group shares out its slices, each reduced as on its own)."""
    threads = sum(client.nthreads().values()) if client is not None else 0
    n = min(n_slices, -(-TASKS_PER_THREAD * threads // max(n_blocks, 1))) if threads else 1
    bounds = np.linspace(0, n_slices, max(n, 1) + 1).round().astype(int)
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))


def _block_task(blocks, x, y, crs, targets, nodata, want_spread, want_range, qs, totals,
                kept=None):
    """One block of every slice: its counts and partials (:func:`_block_partials`), with
    the indexes the first pass ``kept``, or else built where the task runs (or taken
    from that worker's cache)."""
    indexes = kept.indexes if kept is not None else _block_indexes(x, y, crs, targets)
    return _block_partials(blocks, indexes, targets, nodata, want_spread, want_range, qs,
                           totals)


_RUNS = ("row", "start", "length", "cell", "weight", "slope")


class _KeptIndexes:
    """A block's indexes (:func:`_block_indexes`), built by the first pass on a worker
    and kept there for the second (a dask.distributed future).

    Their size is what dask's memory accounting sees (``sys.getsizeof``). Sent to
    another worker they travel as their runs alone: the domains' cell ids and what is
    derived from the runs are made again there, from that worker's own caches (about
    13 MB for a 2048^2 chunk on nine levels, against 76 MB whole; made whole in 0.01 CPU
    s where indexing the block anew takes 0.3).
    """

    def __init__(self, x, y, crs, targets, indexes=None):
        self.targets = targets
        self.indexes = _block_indexes(x, y, crs, targets) if indexes is None else indexes

    def __sizeof__(self):
        return sum(ix.nbytes() for ix in self._own().values()) + object.__sizeof__(self)

    def _own(self):
        """The indexes not derived from another one (whose ``nbytes`` counts those)."""
        derived = {t.key for t in self.targets if t.base is not None}
        return {k: ix for k, ix in self.indexes.items() if k not in derived}

    def __reduce__(self):
        runs = {k: (ix.shape, [getattr(ix, a) for a in _RUNS], ix.memo.get("from_base"))
                for k, ix in self.indexes.items()}
        return _kept_indexes, (self.targets, runs)


def _kept_indexes(targets, runs):
    """:class:`_KeptIndexes` from the runs of its indexes (``__reduce__``)."""
    domains = {t.key: t.cells.cell_ids.values for t in targets}
    domains.update({t.base: _index._domain_ids(*t.base) for t in targets
                    if t.base is not None})
    indexes = {}
    for key, (shape, arrays, from_base) in runs.items():
        index = _index.PixelIndex(shape, *arrays, domains[key]).prepare()
        if from_base is not None:
            index.memo["from_base"] = from_base
        indexes[key] = index
    for t in targets:  # the base's memo, as :func:`_index.level_index` leaves it
        if t.base is not None:
            indexes[t.base].memo[("level", t.grid.level, float(t.min_lat))] = indexes[t.key]
    return _KeptIndexes(None, None, None, targets, indexes)


def _kept_counts(kept, targets):
    """The first pass's result of a block: its counts, and the bytes of its kept
    indexes."""
    return _block_counts(kept.indexes, targets), sys.getsizeof(kept)
