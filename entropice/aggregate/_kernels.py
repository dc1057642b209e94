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
def _weighted_select(v, w, target):
    """Smallest value whose cumulative weight (in sorted order) reaches ``target``.

    Weighted quickselect: three-way partitions around a median-of-three pivot narrow
    the range that holds the answer, in linear expected time; short ranges are
    finished by insertion sort. ``v`` and ``w`` are reordered in place.
    """
    lo = 0
    hi = len(v)
    below = 0.0  # weight of the values known to sort before v[lo:hi]
    while hi - lo > 24:
        a, b, c = v[lo], v[(lo + hi) // 2], v[hi - 1]
        pivot = max(min(a, b), min(max(a, b), c))
        # Dutch-flag partition: [lo, lt) < pivot, [lt, i) == pivot, (gt, hi) > pivot
        lt = lo
        i = lo
        gt = hi - 1
        w_less = 0.0
        w_equal = 0.0
        while i <= gt:
            x = v[i]
            if x < pivot:
                v[i], v[lt] = v[lt], v[i]
                w[i], w[lt] = w[lt], w[i]
                w_less += w[lt]
                lt += 1
                i += 1
            elif x > pivot:
                v[i], v[gt] = v[gt], v[i]
                w[i], w[gt] = w[gt], w[i]
                gt -= 1
            else:
                w_equal += w[i]
                i += 1
        if below + w_less >= target:
            hi = lt
        elif below + w_less + w_equal >= target:
            return pivot
        else:
            below += w_less + w_equal
            lo = gt + 1
    # insertion sort of the rest, then the cumulative scan
    for i in range(lo + 1, hi):
        x, y = v[i], w[i]
        j = i - 1
        while j >= lo and v[j] > x:
            v[j + 1] = v[j]
            w[j + 1] = w[j]
            j -= 1
        v[j + 1] = x
        w[j + 1] = y
    cum = below
    for i in range(lo, hi):
        cum += w[i]
        if cum >= target:
            return v[i]
    return v[hi - 1]


N_BUCKETS = 256


@nb.njit(cache=True, nogil=True)
def _quantiles_into(values, weights, qs, out, tmp_v, tmp_w, hist):
    """Weighted inverted-CDF quantiles (see ``weighted_quantiles``) with scratch buffers.

    Many values: one pass spreads their weights over ``N_BUCKETS`` equal-width value
    buckets, which tells the bucket each quantile lies in; that bucket's values are
    copied out and the quantile selected among them. Buckets are ordered by value, so
    the result is exact, in about two passes over the values.
    """
    n = len(values)
    total = 0.0
    lo = np.inf
    hi = -np.inf
    for i in range(n):
        total += weights[i]
        lo = min(lo, values[i])
        hi = max(hi, values[i])
    small = n <= 64 or not (np.isfinite(lo) and np.isfinite(hi)) or lo == hi
    if not small:
        hist[:] = 0.0
        scale = (N_BUCKETS - 1e-9) / (hi - lo)
        for i in range(n):
            hist[int((values[i] - lo) * scale)] += weights[i]
    for j in range(len(qs)):
        target = qs[j] * total * (1 - 1e-9)
        if target <= 0.0 or lo == hi:
            out[j] = lo
            continue
        if small:
            tmp_v[:n] = values
            tmp_w[:n] = weights
            out[j] = _weighted_select(tmp_v[:n], tmp_w[:n], target)
            continue
        below = 0.0
        b = 0
        while b < N_BUCKETS - 1 and below + hist[b] < target:
            below += hist[b]
            b += 1
        m = 0
        for i in range(n):
            if int((values[i] - lo) * scale) == b:
                tmp_v[m] = values[i]
                tmp_w[m] = weights[i]
                m += 1
        out[j] = _weighted_select(tmp_v[:m], tmp_w[:m], target - below)


@nb.njit(cache=True, nogil=True)
def weighted_quantiles(values, weights, qs, out):
    """Inverted-CDF weighted quantiles of one cell's values, written into ``out``.

    For each q the smallest value whose cumulative weight reaches q times the total,
    as ``numpy.quantile(..., weights=..., method="inverted_cdf")``; the target is
    lowered by 1e-9 of itself, so that pixel areas equal but for rounding count as
    equal.
    """
    n = len(values)
    _quantiles_into(values, weights, qs, out, np.empty(n), np.empty(n), np.empty(N_BUCKETS))


@nb.njit(cache=True, nogil=True)
def quantiles(data, nodata, has_nodata, row, start, length, cell, weight, slope, order,
              cell_start, qs, max_pixels, select):
    """Per-cell weighted quantiles over the runs of each cell; NaN for cells without
    valid pixels. Only cells with ``select[c]`` are computed."""
    n_cells = len(cell_start) - 1
    out = np.full((n_cells, len(qs)), np.nan)
    vbuf = np.empty(max_pixels)
    wbuf = np.empty(max_pixels)
    tmp_v = np.empty(max_pixels)
    tmp_w = np.empty(max_pixels)
    hist = np.empty(N_BUCKETS)
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
            _quantiles_into(vbuf[:n], wbuf[:n], qs, out[c], tmp_v, tmp_w, hist)
    return out


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
        weighted_quantiles(values[idx], weights[idx], qs, out[c])
        i = j
    return out


@nb.njit(cache=True, nogil=True)
def summarise(data, nodata, has_nodata, row, start, length, cell, weight, slope, order,
              cell_start, select, max_pixels, m, n_out):
    """The valid pixels of each selected cell as flat (cell, value, weight) arrays: all
    of them where there are at most ``m``, else a summary of ``m`` points, the weighted
    inverted-CDF quantiles at (j + 1/2) / m, each weighing 1/m of the cell's weight.

    A summary's cumulative weight is within 1/(2m) of the cell's weight of the true
    one at every value, so summaries of a cell's parts in several blocks, merged, give
    quantiles whose rank is off by at most 1/(2m); parts of at most ``m`` pixels stay
    exact. ``n_out`` bounds the points: the sum of min(pixels, m) over selected cells.
    """
    n_cells = len(cell_start) - 1
    cells = np.empty(n_out, dtype=np.int64)
    values = np.empty(n_out)
    weights = np.empty(n_out)
    vbuf = np.empty(max_pixels)
    wbuf = np.empty(max_pixels)
    k = 0
    for c in range(n_cells):
        if not select[c]:
            continue
        n = 0
        total = 0.0
        for j in range(cell_start[c], cell_start[c + 1]):
            r = order[j]
            run = data[row[r], start[r]:start[r] + length[r]]
            for i in range(len(run)):
                if not _missing(run[i], nodata, has_nodata):
                    vbuf[n] = run[i]
                    wbuf[n] = weight[r] + i * slope[r]
                    total += wbuf[n]
                    n += 1
        if n <= m:
            for i in range(n):
                cells[k], values[k], weights[k] = c, vbuf[i], wbuf[i]
                k += 1
            continue
        idx = np.argsort(vbuf[:n], kind="mergesort")
        cum = 0.0
        i = 0
        for j in range(m):
            target = (j + 0.5) / m * total
            while i < n - 1 and cum + wbuf[idx[i]] < target:
                cum += wbuf[idx[i]]
                i += 1
            cells[k], values[k], weights[k] = c, vbuf[idx[i]], total / m
            k += 1
    return cells[:k], values[:k], weights[:k]
