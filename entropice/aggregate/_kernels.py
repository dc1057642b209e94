"""Numba reductions of raster values over the runs of a pixel index.

Each run is a contiguous slice of one raster row with one cell and one pixel area.
Missing pixels (NaN, or equal to ``nodata`` when ``has_nodata``) are skipped.
"""

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True, inline="always")
def _missing(v, nodata, has_nodata):
    return v != v or (has_nodata and v == nodata)


@nb.njit(cache=True, nogil=True)
def moments(data, nodata, has_nodata, row, start, length, cell, weight, slope, n_cells,
            want_spread, want_range):
    """Per-cell count, sum, area-weighted mean and M2 (sum of w (v - mean)^2), min, max.

    Pixel i of a run weighs ``weight + i * slope`` (its area, linear along the run).
    Runs are reduced on their own and merged into their cell with Chan's update,
    which keeps the variance accurate. M2 needs a second read of each run and is
    skipped unless ``want_spread``; min and max unless ``want_range``.
    """
    count = np.zeros(n_cells, dtype=np.int64)
    wsum = np.zeros(n_cells)
    mean = np.zeros(n_cells)
    m2 = np.zeros(n_cells)
    vsum = np.zeros(n_cells)
    vmin = np.full(n_cells, np.inf)
    vmax = np.full(n_cells, -np.inf)
    for r in range(len(row)):
        values = data[row[r], start[r]:start[r] + length[r]]
        w0 = weight[r]
        g = slope[r]
        n = 0
        s = 0.0  # sum of v
        ds = 0.0  # sum of v - ref: exact means for constant runs
        si = 0.0  # sum of i (v - ref)
        ii = 0.0  # sum of i
        ref = 0.0
        lo = np.inf
        hi = -np.inf
        for i in range(len(values)):
            v = values[i]
            if _missing(v, nodata, has_nodata):
                continue
            fv = np.float64(v)
            if n == 0:
                ref = fv
            n += 1
            s += fv
            ds += fv - ref
            if g != 0.0:
                si += i * (fv - ref)
                ii += i
            if want_range:
                lo = min(lo, fv)
                hi = max(hi, fv)
        if n == 0:
            continue
        c = cell[r]
        w_run = w0 * n + g * ii
        run_mean = ref + (ds / n if g == 0.0 else (w0 * ds + g * si) / w_run)
        run_m2 = 0.0
        if want_spread:
            for i in range(len(values)):
                v = values[i]
                if not _missing(v, nodata, has_nodata):
                    d = v - run_mean
                    run_m2 += (w0 + g * i) * d * d
        total = wsum[c] + w_run
        delta = run_mean - mean[c]
        mean[c] += delta * (w_run / total)
        m2[c] += run_m2 + delta * delta * (wsum[c] * (w_run / total))
        wsum[c] = total
        count[c] += n
        vsum[c] += s
        if want_range:
            vmin[c] = min(vmin[c], lo)
            vmax[c] = max(vmax[c], hi)
    return count, wsum, mean, m2, vsum, vmin, vmax


@nb.njit(cache=True, nogil=True)
def weighted_quantiles(values, weights, qs, out):
    """Inverted-CDF weighted quantiles of one cell's values, written into ``out``.

    For each q the smallest value whose cumulative weight reaches q times the total,
    as ``numpy.quantile(..., weights=..., method="inverted_cdf")``. ``values`` is
    sorted in place, with ``weights``.
    """
    n = len(values)
    order = np.argsort(values, kind="mergesort")
    v = values[order]
    w = weights[order]
    cum = np.cumsum(w)
    total = cum[n - 1]
    for j in range(len(qs)):
        target = qs[j] * total
        k = np.searchsorted(cum, target, side="left")
        # cumulative sums round; accept a value whose sum is within rounding of target
        while k > 0 and cum[k - 1] >= target * (1 - 1e-9):
            k -= 1
        out[j] = v[min(k, n - 1)]


@nb.njit(cache=True, nogil=True)
def quantiles(data, nodata, has_nodata, row, start, length, cell, weight, slope, order,
              cell_start, qs, max_pixels, select):
    """Per-cell weighted quantiles over the runs of each cell; NaN for cells without
    valid pixels. Only cells with ``select[c]`` are computed."""
    n_cells = len(cell_start) - 1
    out = np.full((n_cells, len(qs)), np.nan)
    vbuf = np.empty(max_pixels)
    wbuf = np.empty(max_pixels)
    for c in range(n_cells):
        if not select[c] or cell_start[c] == cell_start[c + 1]:
            continue
        n = 0
        for j in range(cell_start[c], cell_start[c + 1]):
            r = order[j]
            values = data[row[r], start[r]:start[r] + length[r]]
            for i in range(len(values)):
                if not _missing(values[i], nodata, has_nodata):
                    vbuf[n] = values[i]
                    wbuf[n] = weight[r] + i * slope[r]
                    n += 1
        if n > 0:
            weighted_quantiles(vbuf[:n], wbuf[:n], qs, out[c])
    return out


@nb.njit(cache=True, nogil=True)
def gather(data, nodata, has_nodata, row, start, length, cell, weight, slope, select, n_out):
    """Valid values of the runs of selected cells as flat (cell, value, weight) arrays."""
    cells = np.empty(n_out, dtype=np.int64)
    values = np.empty(n_out)
    weights = np.empty(n_out)
    n = 0
    for r in range(len(row)):
        c = cell[r]
        if not select[c]:
            continue
        run = data[row[r], start[r]:start[r] + length[r]]
        for i in range(len(run)):
            if not _missing(run[i], nodata, has_nodata):
                cells[n] = c
                values[n] = run[i]
                weights[n] = weight[r] + i * slope[r]
                n += 1
    return cells[:n], values[:n], weights[:n]


@nb.njit(cache=True, nogil=True)
def grouped_quantiles(cells, values, weights, n_cells, qs):
    """Weighted quantiles of values grouped by cell (the cells need not be sorted)."""
    out = np.full((n_cells, len(qs)), np.nan)
    order = np.argsort(cells, kind="mergesort")
    i = 0
    n = len(cells)
    while i < n:
        c = cells[order[i]]
        j = i
        while j < n and cells[order[j]] == c:
            j += 1
        idx = order[i:j]
        weighted_quantiles(values[idx].copy(), weights[idx].copy(), qs, out[c])
        i = j
    return out
