"""Rasters to cells: per-cell statistics of the pixels whose centres lie in each cell."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import xarray as xr

from ..grids import DEFAULT_MIN_LAT, Grid, geometry
from . import _index, _kernels

MOMENT_STATS = ("count", "sum", "mean", "std", "min", "max")
QUANTILE_RE = re.compile(r"^p(\d{1,2}|100)$")
ALIASES = {"median": "p50"}


# -- inputs ----------------------------------------------------------------------------


def _label(raster):
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
    g_cells: np.ndarray  # pixels of cells split across blocks: cell, value, weight
    g_values: np.ndarray
    g_weights: np.ndarray


def _reduce_block(values, index, nodata, want_spread, want_range, qs, complete=None):
    """Moments of every touched cell; quantiles for cells entirely in this block
    (``complete``, a mask over ``index.touched``; by default all) and the raw pixels of
    the others. Works on the block's own cells, not the whole domain."""
    has_nodata = nodata is not None
    nodata_value = values.dtype.type(nodata) if has_nodata else values.dtype.type(0)
    touched = index.touched
    n = len(touched)
    args = (values, nodata_value, has_nodata, index.row, index.start, index.length,
            index.local_cell, index.weight, index.slope)
    count, wsum, mean, m2, vsum, vmin, vmax = _kernels.moments(
        *args, n, want_spread, want_range)
    empty = np.empty(0)
    if not want_spread:  # not kept: a block's partials live until every block is done
        m2 = empty
    if not want_range:
        vmin = vmax = empty
    q_cells, q_values = np.empty(0, dtype=np.int64), np.empty((0, len(qs)))
    g_cells, g_values, g_weights = np.empty(0, dtype=np.int64), empty, empty
    if len(qs):
        complete = np.ones(n, dtype=bool) if complete is None else complete
        out = _kernels.quantiles(*args, index.order, index.cell_start, np.asarray(qs),
                                 index.max_pixels_per_cell, complete)
        q_cells = touched[complete]
        q_values = out[complete]
        split = ~complete
        if split.any():
            n_split = int(index.local_pixels[split].sum())
            local, g_values, g_weights = _kernels.gather(*args, split, n_split)
            g_cells = touched[local]
    return _Partial(touched, count, wsum, mean, m2, vsum, vmin, vmax, q_cells, q_values,
                    g_cells, g_values, g_weights)


def _merge(partials, n_cells, qs):
    """Combine block statistics per cell (exact: Chan's formula for the variance)."""
    cells = np.concatenate([p.cells for p in partials])
    cat = {k: np.concatenate([getattr(p, k) for p in partials])
           for k in ("count", "wsum", "mean", "m2", "vsum", "vmin", "vmax")}
    count = np.bincount(cells, weights=cat["count"], minlength=n_cells).astype(np.int64)
    wsum = np.bincount(cells, weights=cat["wsum"], minlength=n_cells)
    # means relative to each cell's first block mean: exact for one block or a constant
    ref = np.zeros(n_cells)
    ref[cells[::-1]] = cat["mean"][::-1]
    dev = np.where(cat["wsum"] > 0, cat["mean"] - ref[cells], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = ref + np.bincount(cells, weights=cat["wsum"] * dev, minlength=n_cells) / wsum
    shift = np.where(cat["wsum"] > 0, cat["mean"] - mean[cells], 0.0)
    m2 = vmin = vmax = None  # unless the partials carry them (std; min and max)
    if len(cat["m2"]) == len(cells):
        m2 = np.bincount(cells, weights=cat["m2"] + cat["wsum"] * shift**2,
                         minlength=n_cells)
    vsum = np.bincount(cells, weights=cat["vsum"], minlength=n_cells)
    if len(cat["vmin"]) == len(cells):
        vmin = np.full(n_cells, np.inf)
        np.minimum.at(vmin, cells, cat["vmin"])
        vmax = np.full(n_cells, -np.inf)
        np.maximum.at(vmax, cells, cat["vmax"])
    quant = np.full((n_cells, len(qs)), np.nan)
    if len(qs):
        for p in partials:
            quant[p.q_cells] = p.q_values
        g = [p for p in partials if len(p.g_cells)]
        if g:
            g_cells = np.concatenate([p.g_cells for p in g])
            gq = _kernels.grouped_quantiles(
                g_cells, np.concatenate([p.g_values for p in g]),
                np.concatenate([p.g_weights for p in g]), n_cells, np.asarray(qs))
            split = np.unique(g_cells)
            quant[split] = gq[split]
    stats = dict(count=count, wsum=wsum, mean=mean, m2=m2, vsum=vsum, vmin=vmin, vmax=vmax,
                 quantiles=quant)
    return np.unique(cells), stats


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


def _interpolate(vals, w, nodata):
    """Bilinear values from the corners' values and weights (4, n); NaN corners are left
    out and the weights renormalised."""
    vals = np.asarray(vals, dtype=np.float64)
    if nodata is not None:
        vals = np.where(vals == nodata, np.nan, vals)
    w = np.where(np.isfinite(vals), w, 0.0)
    # relative to the heaviest valid corner, so that a constant field stays exact
    ref = vals[np.argmax(w, axis=0), np.arange(vals.shape[1])]
    wsum = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        offset = (w * np.where(w > 0, vals - ref, 0.0)).sum(axis=0) / wsum
    return np.where(wsum > 0, ref + offset, np.nan)


def _bilinear(slices, row, col, nodata):
    """Bilinear samples of each 2-D slice at fractional (row, col), one slice at a time;
    dask-backed slices are read in one pass, only at the pixels needed."""
    rows, cols, w = _corners(row, col, slices[0].shape)
    if slices[0].chunks is None:
        return (_interpolate(np.asarray(sl.values)[rows, cols], w, nodata) for sl in slices)
    import dask

    got = dask.compute(*[sl.data.vindex[rows.ravel(), cols.ravel()] for sl in slices])
    return (_interpolate(g.reshape(rows.shape), w, nodata) for g in got)


# -- the public function -----------------------------------------------------------------


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
        Quantiles are area-weighted inverted-CDF quantiles.
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
    """
    if isinstance(raster, xr.Dataset):
        return _dataset_to_cells(raster, grid, stats, min_lat, nodata, domain, dtype)
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
    cells_ds = grid.cells(min_lat)
    cell_ids = cells_ds.cell_ids.values
    lazy = raster.chunks is not None
    if lazy:  # no index of the whole raster: each chunk builds (and caches) its own
        index = None
        row, col = _centre_positions(x, y, crs, grid, cells_ds)
        pixel_km2 = _index.pixel_area_at(x, y, crs, len(y) // 2, len(x) // 2)
        touched = np.empty(0, dtype=np.int64)
    else:
        index = _index.get_index(x, y, crs, grid, cell_ids, min_lat)
        if "centres" not in index.memo:
            index.memo["centres"] = _centre_positions(x, y, crs, grid, cells_ds)
        row, col = index.memo["centres"]
        pixel_km2 = float(np.median(index.weight)) if index.n_runs else np.inf
        touched = index.touched
    under = np.isfinite(row) & np.isfinite(col)
    no_overlap = ValueError(
        f"{_label(raster)} does not overlap the domain (cells of {grid.name} level "
        f"{grid.level} with centres north of {min_lat} deg).")
    if not lazy and index.n_runs == 0 and not under.any():
        raise no_overlap
    # pixels larger than the cells under the raster: sample at the cell centres instead
    near = under.copy()
    near[touched] = True
    areas = cells_ds.area_km2.values
    cell_km2 = float(np.median(areas[near] if near.any() else areas))
    sampled_mode = pixel_km2 > cell_km2
    if sampled_mode and lazy:  # fewer pixels than cells: read once, not once per slice
        raster = raster.compute()
    qs = [int(QUANTILE_RE.match(s).group(1)) / 100 for s in names if QUANTILE_RE.match(s)]
    want_spread = "std" in names
    want_range = "min" in names or "max" in names

    other_dims = raster.dims[:-2]
    other_shape = raster.shape[:-2]
    positions = list(np.ndindex(*other_shape))
    # the 2-D slices of the raster, one per position along its other dimensions
    slices = [raster[dict(zip(other_dims, pos))] if other_dims else raster
              for pos in positions]
    if sampled_mode:
        covered, results = np.empty(0, dtype=np.int64), (None for _ in positions)
    elif lazy:  # every slice, block by block, in one dask pass
        covered, results = _reduce_dask(slices, x, y, crs, grid, cell_ids, min_lat, nodata,
                                        want_spread, want_range, qs)
    else:
        covered = index.touched
        results = (_merge([_reduce_block(np.asarray(sl.values), index, nodata, want_spread,
                                         want_range, qs)], len(cell_ids), qs)
                   for sl in slices)
    # cells under the raster that no pixel centre falls in are sampled at their centre
    fill = under.copy()
    fill[covered] = False
    samples = _bilinear(slices, row[fill], col[fill], nodata) if fill.any() else None

    # one slice at a time into the arrays, on every domain cell; then the cells of the
    # result: under pixel centres, or (sampled) under the raster
    out_shape = (*other_shape, len(cell_ids))
    arrays = {s: np.zeros(out_shape, dtype=np.int64) if s == "count"
              else np.full(out_shape, np.nan, dtype=dtype) for s in names}
    keep = under.copy()
    keep[covered] = True
    for pos, res in zip(positions, results):
        if res is None:
            filled = _sampled_stats(names, np.full(len(cell_ids), np.nan))
        else:
            filled = _binned_stats(names, res[1], qs)
            del res
        if samples is not None:
            sample = next(samples)
            for s in names:
                if s not in ("count", "sum", "std"):
                    filled[s][fill] = sample
        for s in names:
            arrays[s][pos] = filled[s]
    if not keep.any():
        raise no_overlap
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


def _dataset_to_cells(ds, grid, stats, min_lat, nodata, domain, dtype):
    """Every variable of a dataset on one raster grid, in one pass over the data."""
    if not ds.data_vars:
        raise ValueError("the raster dataset has no variables.")
    names = list(ds.data_vars)
    stacked = ds.to_dataarray("variable")
    stacked.name = None
    result = raster_to_cells(stacked, grid, stats, min_lat, nodata=nodata, domain=domain,
                             dtype=dtype)
    sampled = "sampled" in result.attrs["aggregation"]
    out = xr.Dataset(coords={"cell_ids": result.cell_ids}, attrs=result.attrs)
    for v in names:
        for st in result.data_vars:
            out[f"{v}_{st}"] = result[st].sel(variable=v, drop=True).assign_attrs(
                _stat_attrs(ds[v], st, sampled))
    return out


def _binned_stats(names, st, qs):
    count = st["count"]
    valid = count > 0
    out = {}
    q_iter = iter(range(len(qs)))
    with np.errstate(invalid="ignore", divide="ignore"):
        for s in names:
            if s == "count":
                out[s] = count
            elif s == "sum":
                out[s] = np.where(valid, st["vsum"], np.nan)
            elif s == "mean":
                out[s] = np.where(valid, st["mean"], np.nan)
            elif s == "std":
                out[s] = np.where(valid, np.sqrt(np.maximum(st["m2"], 0) / st["wsum"]), np.nan)
            elif s == "min":
                out[s] = np.where(valid, st["vmin"], np.nan)
            elif s == "max":
                out[s] = np.where(valid, st["vmax"], np.nan)
            else:
                out[s] = st["quantiles"][:, next(q_iter)].copy()
    return out


def _sampled_stats(names, sample):
    out = {}
    for s in names:
        if s == "count":
            out[s] = np.zeros(len(sample), dtype=np.int64)
        elif s in ("sum", "std"):
            out[s] = np.full(len(sample), np.nan)
        else:
            out[s] = sample.copy()
    return out


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


def _block_counts(x, y, crs, grid, cell_ids, min_lat):
    index = _index.get_index(x, y, crs, grid, cell_ids, min_lat)
    return index.touched, index.local_pixels


def _block_partials(blocks, x, y, crs, grid, cell_ids, min_lat, nodata, want_spread,
                    want_range, qs, totals):
    """Partial statistics of one block of every slice (they share the index)."""
    index = _index.get_index(x, y, crs, grid, cell_ids, min_lat)
    complete = index.local_pixels == totals[index.touched] if len(qs) else None
    return [_reduce_block(np.asarray(b), index, nodata, want_spread, want_range, qs, complete)
            for b in blocks]


def _reduce_dask(slices, x, y, crs, grid, cell_ids, min_lat, nodata, want_spread, want_range,
                 qs):
    """Reduce dask-backed 2-D slices (same grid, same chunks) block by block, all slices of
    a block in one task, on the current scheduler: the cells with a pixel centre, and a
    generator of each slice's merged statistics.

    Moments merge exactly. For quantiles a first pass counts every cell's pixels per
    block: cells inside one block get their quantiles there, the pixels of cells
    split between blocks are gathered and reduced together, so the result is exact.
    """
    import dask

    ychunks, xchunks = slices[0].data.chunks
    yb = np.concatenate([[0], np.cumsum(ychunks)])
    xb = np.concatenate([[0], np.cumsum(xchunks)])
    blocks = [(i, j) for i in range(len(ychunks)) for j in range(len(xchunks))]
    totals = None
    if len(qs):
        counts = dask.compute(*[
            dask.delayed(_block_counts)(x[xb[j]:xb[j + 1]], y[yb[i]:yb[i + 1]], crs, grid,
                                        cell_ids, min_lat)
            for i, j in blocks
        ])
        totals = np.zeros(len(cell_ids))
        for touched, n in counts:
            totals[touched] += n
    per_block = dask.compute(*[
        dask.delayed(_block_partials)([sl.data.blocks[i, j] for sl in slices],
                                      x[xb[j]:xb[j + 1]], y[yb[i]:yb[i + 1]], crs, grid,
                                      cell_ids, min_lat, nodata, want_spread, want_range, qs,
                                      totals)
        for i, j in blocks
    ])
    covered = np.unique(np.concatenate([b[0].cells for b in per_block]))

    def merged():  # one slice at a time, its partials then freed
        for k in range(len(slices)):
            parts = [b[k] for b in per_block]
            for b in per_block:
                b[k] = None
            yield _merge(parts, len(cell_ids), qs)

    return covered, merged()
