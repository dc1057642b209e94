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
    small = (n <= 64 or not (np.isfinite(lo) and np.isfinite(hi)) or lo == hi
             or not np.isfinite((N_BUCKETS - 1e-9) / (hi - lo)))  # a subnormal range
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


@nb.njit(cache=True, nogil=True, inline="always")
def _bucket_of(hist, target):
    """The value bucket where the weights of ``hist`` (buckets in value order) add up
    to ``target``, and the weight of the buckets below it."""
    acc = 0.0
    b = 0
    while b < len(hist) - 1 and acc + hist[b] < target:
        acc += hist[b]
        b += 1
    return b, acc


@nb.njit(cache=True, nogil=True, inline="always")
def _select_in_buckets(bucket, below, slot, count, vbuf, wbuf, qs, total, out):
    """Each quantile ``qs[q]`` (of ``total`` weight) selected among the pixels of its
    bucket ``bucket[q]`` (-1: already set), copied at ``slot`` by :func:`_copy_buckets`,
    ``below[q]`` the weight of the buckets under it."""
    for q in range(len(bucket)):
        b = bucket[q]
        if b >= 0:
            a, e = slot[b], slot[b] + count[b]
            out[q] = _weighted_select(vbuf[a:e], wbuf[a:e], qs[q] * total * (1 - 1e-9) - below[q])


@nb.njit(cache=True, nogil=True, inline="always")
def _copy_buckets(data, nodata, has_nodata, row, start, length, weight, slope, order, j0, j1,
                  lo, scale, slot, fill, vbuf, wbuf):
    """Copy the pixels of runs ``order[j0:j1]`` whose bucket has a slot (``slot[b] >= 0``)
    into ``vbuf``/``wbuf`` at ``fill[b]`` (advanced), each bucket contiguous: the pixels
    a cell's percentiles are selected from."""
    for j in range(j0, j1):
        r = order[j]
        run = data[row[r], start[r]:start[r] + length[r]]
        for i in range(len(run)):
            if not _missing(run[i], nodata, has_nodata):
                b = int((np.float64(run[i]) - lo) * scale)
                if slot[b] >= 0:
                    vbuf[fill[b]] = run[i]
                    wbuf[fill[b]] = weight[r] + i * slope[r]
                    fill[b] += 1


@nb.njit(cache=True, nogil=True)
def quantiles(data, nodata, has_nodata, row, start, length, cell, weight, slope, order,
              cell_start, qs, max_pixels, select):
    """Per-cell weighted quantiles over the runs of each cell; NaN for cells without
    valid pixels. Only cells with ``select[c]`` are computed.

    Three passes over a cell's runs, its pixels never gathered: the range and total
    weight; a histogram of ``N_BUCKETS`` equal-width value buckets (weights and
    counts), which tells the bucket each quantile lies in; and a copy of those
    buckets' pixels, among which each quantile is selected. Buckets are ordered by
    value, so the result is exact (as ``weighted_quantiles``).
    """
    n_cells = len(cell_start) - 1
    nq = len(qs)
    out = np.full((n_cells, nq), np.nan)
    hist = np.empty(N_BUCKETS)
    counts = np.empty(N_BUCKETS, dtype=np.int64)
    slot = np.full(N_BUCKETS, -1, dtype=np.int64)  # a wanted bucket's place in the buffer
    fill = np.empty(N_BUCKETS, dtype=np.int64)
    bucket = np.empty(nq, dtype=np.int64)
    below = np.empty(nq)
    vbuf = np.empty(max_pixels)
    wbuf = np.empty(max_pixels)
    tmp_v = np.empty(64)
    tmp_w = np.empty(64)
    for c in range(n_cells):
        if not select[c] or cell_start[c] == cell_start[c + 1]:
            continue
        n = 0
        total = 0.0
        lo = np.inf
        hi = -np.inf
        for j in range(cell_start[c], cell_start[c + 1]):
            r = order[j]
            run = data[row[r], start[r]:start[r] + length[r]]
            for i in range(len(run)):
                if not _missing(run[i], nodata, has_nodata):
                    v = np.float64(run[i])
                    total += weight[r] + i * slope[r]
                    lo = min(lo, v)
                    hi = max(hi, v)
                    n += 1
        if n == 0:
            continue
        scale = (N_BUCKETS - 1e-9) / (hi - lo) if lo != hi else 0.0
        if n <= 64 or not (np.isfinite(lo) and np.isfinite(hi) and np.isfinite(scale)
                           and scale > 0.0):  # one value, infinities or a subnormal range
            _gather((data, nodata, has_nodata, row, start, length, weight, slope), order,
                    cell_start[c], cell_start[c + 1], vbuf, wbuf)
            if n <= 64:
                _quantiles_into(vbuf[:n], wbuf[:n], qs, out[c], tmp_v, tmp_w, hist)
            else:
                _quantiles_into(vbuf[:n], wbuf[:n], qs, out[c], np.empty(n), np.empty(n), hist)
            continue
        hist[:] = 0.0
        counts[:] = 0
        for j in range(cell_start[c], cell_start[c + 1]):
            r = order[j]
            run = data[row[r], start[r]:start[r] + length[r]]
            for i in range(len(run)):
                if not _missing(run[i], nodata, has_nodata):
                    b = int((np.float64(run[i]) - lo) * scale)
                    hist[b] += weight[r] + i * slope[r]
                    counts[b] += 1
        size = 0
        for q in range(nq):
            target = qs[q] * total * (1 - 1e-9)
            if target <= 0.0:
                bucket[q] = -1
                out[c, q] = lo
                continue
            b, below[q] = _bucket_of(hist, target)
            bucket[q] = b
            if slot[b] < 0:
                slot[b] = size
                fill[b] = size
                size += counts[b]
        if size > 0:  # the wanted buckets' pixels, each bucket contiguous
            _copy_buckets(data, nodata, has_nodata, row, start, length, weight, slope, order,
                          cell_start[c], cell_start[c + 1], lo, scale, slot, fill, vbuf, wbuf)
        _select_in_buckets(bucket, below, slot, counts, vbuf, wbuf, qs, total, out[c])
        for q in range(nq):
            if bucket[q] >= 0:
                slot[bucket[q]] = -1
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



@nb.njit(cache=True, nogil=True, inline="always")
def _blend(v0, v1, v2, v3, w0, w1, w2, w3, nodata, has_nodata, we):
    """One bilinear value from four corners: missing and infinite corners left out and
    the weights renormalised, relative to the heaviest valid corner so that a constant
    field stays exact; NaN where none is valid. Sums run over the corners in order, as
    numpy's along the first axis of a (4, n) array."""
    vs = (v0, v1, v2, v3)
    ws = (w0, w1, w2, w3)
    best = 0
    for j in range(4):
        v = vs[j]
        we[j] = ws[j] if np.isfinite(v) and not (has_nodata and v == nodata) else 0.0
        if we[j] > we[best]:
            best = j
    wsum = we[0] + we[1] + we[2] + we[3]
    if not wsum > 0:
        return np.nan
    ref = vs[best]
    acc = 0.0
    for j in range(4):
        t = we[j] * (vs[j] - ref) if we[j] > 0 else 0.0
        acc = t if j == 0 else acc + t
    return ref + acc / wsum


@nb.njit(cache=True, nogil=True)
def interpolate(vals, w, nodata, has_nodata):
    """Bilinear values from the four corners' values and weights, both (4, n)."""
    n = vals.shape[1]
    out = np.empty(n)
    we = np.empty(4)
    for i in range(n):
        out[i] = _blend(np.float64(vals[0, i]), np.float64(vals[1, i]),
                        np.float64(vals[2, i]), np.float64(vals[3, i]),
                        w[0, i], w[1, i], w[2, i], w[3, i], nodata, has_nodata, we)
    return out


@nb.njit(cache=True, nogil=True)
def bilinear(data, row, col, nodata, has_nodata):
    """Bilinear samples of a 2-D array at fractional (row, col): rows clamped to the
    array, columns wrapped around (a global raster's seam)."""
    ny, nx = data.shape
    out = np.empty(len(row))
    we = np.empty(4)
    for i in range(len(row)):
        r0 = min(max(np.floor(row[i]), 0.0), ny - 1.0)
        c0 = np.floor(col[i])
        fr = min(max(row[i] - r0, 0.0), 1.0)
        fc = col[i] - c0
        r0i = int(r0)
        r1i = min(r0i + 1, ny - 1)
        c0w = int(c0) % nx
        c1w = (int(c0) + 1) % nx
        out[i] = _blend(np.float64(data[r0i, c0w]), np.float64(data[r0i, c1w]),
                        np.float64(data[r1i, c0w]), np.float64(data[r1i, c1w]),
                        (1 - fr) * (1 - fc), (1 - fr) * fc, fr * (1 - fc), fr * fc,
                        nodata, has_nodata, we)
    return out


@nb.njit(cache=True, nogil=True, inline="always")
def _bucket(v, lo, scale, n):
    """Equal-width bucket of ``v`` among ``n`` from ``lo`` (0 where the range is not
    finite)."""
    b = int((v - lo) * scale) if scale > 0.0 else 0
    return min(max(b, 0), n - 1)


@nb.njit(cache=True, nogil=True)
def summarise(data, nodata, has_nodata, row, start, length, cell, weight, slope, order,
              cell_start, select, counts, totals, lows, highs, max_pixels, m, n_out):
    """The valid pixels of each selected cell as flat (cell, value, weight) arrays: all
    of them where there are at most ``m``, else a summary of at most ``m`` points.

    ``counts``, ``totals``, ``lows`` and ``highs`` are each cell's valid pixels, their
    weight, and the smallest and largest value (from ``moments``). Point j stands for
    the weighted inverted-CDF quantile at (j + 1/2) / m and weighs 1/m of the cell's
    weight. It is found in a histogram of 4m equal-width value buckets, each heavier
    than 1/(2m) of the weight histogrammed again within its own range: in a bucket
    lighter than that, the bucket's smallest value (at most 1/(2m) off in rank); in a
    heavier one holding one value, that value; else (rare) the exact quantile, from the
    bucket's pixels sorted. So a summary's cumulative weight is within 1/m of the true
    one at every value, and summaries of a cell's parts in several blocks, merged, give
    quantiles whose rank is off by at most 1/m; parts of at most ``m`` pixels stay
    exact. A cell's valid pixels are gathered once, and ``_summary`` reads the copy.
    ``n_out`` bounds the points: the sum of min(pixels, m) over selected cells.
    """
    n_cells = len(cell_start) - 1
    cells = np.empty(n_out, dtype=np.int64)
    values = np.empty(n_out)
    weights = np.empty(n_out)
    scratch = _summary_scratch(m, max_pixels)
    pv = np.empty(max_pixels)
    pw = np.empty(max_pixels)
    k = 0
    for c in range(n_cells):
        if not select[c] or counts[c] == 0:
            continue
        n = _gather((data, nodata, has_nodata, row, start, length, weight, slope), order,
                    cell_start[c], cell_start[c + 1], pv, pw)
        k = _summary(pv, pw, n, c, totals[c], lows[c], highs[c], m, cells, values, weights,
                     k, scratch)
    return cells[:k], values[:k], weights[:k]


@nb.njit(cache=True, nogil=True)
def _summary_scratch(m, max_pixels):
    """The scratch arrays of ``_summary`` (histograms of 4m buckets and of their heavy
    ones' sub-buckets, sorted pixels, each pixel's bucket)."""
    n1 = 4 * m
    n2_max = 16 * m + 4 * n1
    return (np.empty(n1), np.empty(n1, dtype=np.int64), np.empty(n1), np.empty(n1),
            np.empty(n1, dtype=np.int64), np.empty(n1, dtype=np.int64), np.empty(n1),
            np.empty(n2_max + 1), np.empty(n2_max + 1, dtype=np.int64), np.empty(n2_max + 1),
            np.empty(n2_max + 1), np.empty(n2_max, dtype=np.int64),
            np.empty(n2_max + 1, dtype=np.int64), np.empty(max_pixels), np.empty(max_pixels),
            np.empty(max_pixels, dtype=np.int32), np.empty(max_pixels, dtype=np.int32))


@nb.njit(cache=True, nogil=True, inline="always")
def _stable_sort(v, w):
    """``v`` sorted in place (``w`` along), equal values kept in their order: by insertion
    for a few, else by numpy's mergesort (as ``np.argsort(kind="mergesort")`` orders)."""
    n = len(v)
    if n <= 48:
        for i in range(1, n):
            x, y = v[i], w[i]
            j = i - 1
            while j >= 0 and v[j] > x:
                v[j + 1] = v[j]
                w[j + 1] = w[j]
                j -= 1
            v[j + 1] = x
            w[j + 1] = y
        return
    idx = np.argsort(v, kind="mergesort")
    v[:] = v[idx]
    w[:] = w[idx]


@nb.njit(cache=True, nogil=True)
def _summary(pv, pw, n, c, total, lo, hi, m, cells, values, weights, k, scratch):
    """One cell's summary (see ``summarise``) from its ``n`` valid pixels ``pv``, ``pw``
    (in the order of its runs), written at ``k`` of the output; returns the new ``k``.

    The first pass keeps each pixel's bucket; the pixels of the heavy buckets are then
    listed (without a branch per pixel: many are heavy) and only they are bucketed
    again; the few still heavy are sorted in place."""
    (h1, c1, lo1, hi1, sub0, nsub, sscale, h2, c2, lo2, hi2, off2, fill, vbuf, wbuf,
     bk, hidx) = scratch
    n1 = len(h1)
    n2_max = len(off2)
    if n <= m:  # the pixels themselves
        for i in range(n):
            cells[k], values[k], weights[k] = c, pv[i], pw[i]
            k += 1
        return k
    if lo == hi:  # one value: one point holds it exactly
        cells[k], values[k], weights[k] = c, lo, total
        return k + 1
    heavy = total / (2 * m)
    scale = (n1 - 1e-9) / (hi - lo)
    scale = scale if np.isfinite(scale) else 0.0  # infinite or subnormal ranges
    h1[:] = 0.0
    c1[:] = 0
    lo1[:] = np.inf
    hi1[:] = -np.inf
    for i in range(n):
        v = pv[i]
        b = _bucket(v, lo, scale, n1)
        bk[i] = b
        h1[b] += pw[i]
        c1[b] += 1
        lo1[b] = min(lo1[b], v)
        hi1[b] = max(hi1[b], v)
    n2 = 0  # heavy buckets of several values: sub-buckets, 4 per 1/(2m) of weight
    for b in range(n1):
        sub0[b] = -1
        if h1[b] > heavy and lo1[b] < hi1[b]:
            nsub[b] = min(4 * (int(h1[b] / heavy) + 1), n2_max - n2)
            sub0[b] = n2
            sscale[b] = (nsub[b] - 1e-9) / (hi1[b] - lo1[b])
            if not np.isfinite(sscale[b]):
                sscale[b] = 0.0
            n2 += nsub[b]
    nh = 0
    if n2 > 0:
        # the pixels of heavy buckets, in order (without a branch per pixel)
        for i in range(n):
            hidx[nh] = i
            nh += sub0[bk[i]] >= 0
        h2[:n2] = 0.0
        c2[:n2] = 0
        lo2[:n2] = np.inf
        hi2[:n2] = -np.inf
        for t in range(nh):
            i = hidx[t]
            v = pv[i]
            b = bk[i]
            s = sub0[b] + _bucket(v, lo1[b], sscale[b], nsub[b])
            hidx[t] = s  # now the pixel's sub-bucket
            h2[s] += pw[i]
            c2[s] += 1
            lo2[s] = min(lo2[s], v)
            hi2[s] = max(hi2[s], v)
    # sub-buckets still heavy with several values (rare): their pixels, to be sorted
    size = 0
    for s in range(n2):
        off2[s] = -1
        if h2[s] > heavy and lo2[s] < hi2[s]:
            off2[s] = size
            fill[s] = size
            size += c2[s]
    if size > 0:
        t = 0
        for i in range(n):
            if sub0[bk[i]] >= 0:
                s = hidx[t]
                t += 1
                if off2[s] >= 0:
                    vbuf[fill[s]] = pv[i]
                    wbuf[fill[s]] = pw[i]
                    fill[s] += 1
        for s in range(n2):
            if off2[s] >= 0:
                _stable_sort(vbuf[off2[s]:off2[s] + c2[s]], wbuf[off2[s]:off2[s] + c2[s]])
    acc = 0.0  # weight before bucket b (and before sub-bucket s, pixel p)
    b = 0
    s = -1
    acc2 = 0.0
    p = -1
    cum = 0.0
    for j in range(m):
        target = (j + 0.5) / m * total
        while b < n1 - 1 and acc + h1[b] < target:
            acc += h1[b]
            b += 1
            s = -1
        if c1[b] == 0:  # past the last pixel by rounding: the largest value
            value = hi
        elif sub0[b] < 0:
            value = lo1[b]
        else:
            if s < 0:
                s, acc2, p = sub0[b], acc, -1
            last = sub0[b] + nsub[b] - 1
            while s < last and acc2 + h2[s] < target:
                acc2 += h2[s]
                s += 1
                p = -1
            if c2[s] == 0:  # past the bucket's last pixel by rounding
                value = hi1[b]
            elif off2[s] < 0:
                value = lo2[s]
            else:
                if p < 0:
                    p, cum = off2[s], acc2
                e = off2[s] + c2[s]
                while p < e - 1 and cum + wbuf[p] < target:
                    cum += wbuf[p]
                    p += 1
                value = vbuf[p]
        cells[k], values[k], weights[k] = c, value, total / m
        k += 1
    return k


def by_value(cells, values, weights):
    """The points sorted by value, equal values in index order (as
    ``np.argsort(values, kind="stable")`` orders them). Where every value is a float32
    (the low 29 bits of its float64 zero: a float32 raster's) and they are fewer than
    2**29, one sort of integer keys that hold each value's bits and, in those low bits,
    its index; else numpy's unstable sort, each run of equal values put back in index
    order."""
    ok, keys = _value_keys(values)
    if ok:
        keys.sort()
        return _take_keyed(cells, values, weights, keys)
    return _ties_in_order(cells, values, weights, np.argsort(values))


_INDEX_BITS = 29  # the low mantissa bits of a float64 that holds a float32: zero


@nb.njit(cache=True, nogil=True)
def _value_keys(values):
    """Keys that sort as ``values`` do, equal values in index order: each value's bits,
    made to sort as an unsigned integer (-0.0 as 0.0), with its index in the low
    ``_INDEX_BITS``. Returns whether they could be made (every value's low bits zero,
    and few enough values), and the keys."""
    n = len(values)
    keys = np.empty(n, dtype=np.uint64)
    low = np.uint64((1 << _INDEX_BITS) - 1)
    sign = np.uint64(1) << np.uint64(63)
    if n > 1 << _INDEX_BITS:
        return False, keys
    for i in range(n):
        bits = np.float64(values[i] + 0.0).view(np.uint64)
        if bits & low:
            return False, keys
        keys[i] = ((~bits if bits & sign else bits | sign) & ~low) | np.uint64(i)
    return True, keys


@nb.njit(cache=True, nogil=True)
def _take_keyed(cells, values, weights, keys):
    """The points in the order of ``keys`` (sorted; the index in their low bits)."""
    low = np.uint64((1 << _INDEX_BITS) - 1)
    n = len(keys)
    out_c = np.empty(n, dtype=cells.dtype)
    out_v = np.empty(n, dtype=values.dtype)
    out_w = np.empty(n, dtype=weights.dtype)
    for i in range(n):
        j = np.int64(keys[i] & low)
        out_c[i], out_v[i], out_w[i] = cells[j], values[j], weights[j]
    return out_c, out_v, out_w


@nb.njit(cache=True, nogil=True)
def _ties_in_order(cells, values, weights, order):
    """The points in ``order`` (an unstable argsort of ``values``), each run of equal
    values taken in index order: as ``np.argsort(values, kind="stable")`` orders them,
    at the cost of a faster sort and a pass."""
    sorted_values = values[order]
    n = len(order)
    i = 0
    while i < n:
        j = i + 1
        while j < n and sorted_values[j] == sorted_values[i]:
            j += 1
        if j - i > 1:
            order[i:j] = np.sort(order[i:j])
        i = j
    # the values taken again: equal values may differ in sign (0.0 and -0.0), and each
    # point keeps its own
    return cells[order], values[order], weights[order]


@nb.njit(cache=True, nogil=True)
def merge(cells, values, weights, to_cell, whole, qs, m):
    """Weighted points sorted by value (``cells`` their finest cells) merged into the
    coarser cells ``to_cell[cells]`` (-1: none), in one pass over them in value order:
    the quantiles ``qs`` of the cells ``whole`` (NaN for the others and for cells without
    points), as ``grouped_quantiles`` gives them; of the others at most ``m`` points per
    cell, sorted by cell and value: a cell's points where it has no more, else the
    inverted-CDF quantiles of its points at (j + 1/2) / m, each weighing 1/m of its
    weight (their cumulative weight within 1/(2m) of the points'). Each cell's weights
    are summed in value order, as those functions sum the points sorted by cell."""
    n_cells = len(whole)
    nq = len(qs)
    total = np.zeros(n_cells)
    count = np.zeros(n_cells, dtype=np.int64)
    for i in range(len(cells)):
        c = to_cell[cells[i]]
        if c >= 0:
            total[c] += weights[i]
            count[c] += 1
    quant = np.full((n_cells, nq), np.nan)
    q_order = np.argsort(qs)  # the quantiles are met in increasing order
    start = np.zeros(n_cells + 1, dtype=np.int64)  # each split cell's output points
    nxt = np.zeros(n_cells, dtype=np.int64)  # a cell's next quantile (or point) to find
    at = np.empty(n_cells)  # the cumulative weight that reaches it (-inf: every point)
    for c in range(n_cells):
        start[c + 1] = start[c] + (0 if whole[c] else min(count[c], m))
        if whole[c]:
            at[c] = _merge_target(qs, q_order, 0, total[c])
        else:
            at[c] = -np.inf if count[c] <= m else 0.5 / m * total[c]
    out_c = np.empty(start[n_cells], dtype=np.int64)
    out_v = np.empty(start[n_cells])
    out_w = np.empty(start[n_cells])
    cum = np.zeros(n_cells)  # weight of a cell's points so far
    last = np.empty(n_cells)  # its largest value so far
    for i in range(len(cells)):
        c = to_cell[cells[i]]
        if c < 0:
            continue
        v = values[i]
        reach = cum[c] + weights[i]
        if reach >= at[c]:
            if whole[c]:  # the smallest value whose cumulative weight reaches the target
                while nxt[c] < nq and reach >= at[c]:
                    quant[c, q_order[nxt[c]]] = v
                    nxt[c] += 1
                    at[c] = _merge_target(qs, q_order, nxt[c], total[c])
            elif count[c] <= m:  # every point
                k = start[c] + nxt[c]
                out_c[k], out_v[k], out_w[k] = c, v, weights[i]
                nxt[c] += 1
            else:
                while nxt[c] < m and reach >= at[c]:
                    k = start[c] + nxt[c]
                    out_c[k], out_v[k], out_w[k] = c, v, total[c] / m
                    nxt[c] += 1
                    at[c] = (nxt[c] + 0.5) / m * total[c] if nxt[c] < m else np.inf
        cum[c] = reach
        last[c] = v
    for c in range(n_cells):  # targets past the last point by rounding: the largest value
        if count[c] == 0:
            continue
        if whole[c]:
            while nxt[c] < nq:
                quant[c, q_order[nxt[c]]] = last[c]
                nxt[c] += 1
        elif count[c] > m:
            while nxt[c] < m:
                k = start[c] + nxt[c]
                out_c[k], out_v[k], out_w[k] = c, last[c], total[c] / m
                nxt[c] += 1
    return quant, (out_c, out_v, out_w)


@nb.njit(cache=True, nogil=True, inline="always")
def _merge_target(qs, q_order, j, total):
    """The cumulative weight that reaches the ``j``-th smallest quantile of ``qs`` (at
    most 0: the first point; inf past the last quantile), as ``_quantiles_into`` has it."""
    if j >= len(qs):
        return np.inf
    target = qs[q_order[j]] * total * (1 - 1e-9)
    return target if target > 0.0 else -np.inf


SKETCH_BUCKETS = 8
"""Histogram buckets per summary point in ``sketch``: enough that most buckets are
lighter than half a point, so that few pixels need sorting."""


def sketch(runs, order, cell_start, moments, m, qs, exact, split):
    """Every cell's summary of at most ``m`` points, for coarser cells to merge; where
    ``exact[c]`` also its quantiles ``qs`` (exact, as ``quantiles`` gives them), and
    where ``split[c]`` its summary as ``summarise`` makes it (for its own level, whose
    blocks' summaries are merged), in one pass over the pixels.

    ``runs`` are the kernels' leading arguments (``data`` to ``slope``, as the other
    kernels take them), ``order`` and ``cell_start`` the runs of each cell, ``moments``
    what ``moments`` gave for them (their range wanted).

    The pass spreads a cell's pixels over ``SKETCH_BUCKETS * m`` equal-width value
    buckets (weight, count and smallest value), keeping each pixel's value, weight and
    bucket. Point j, at the weighted quantile (j + 1/2) / m, lies in the first bucket
    whose weight and the weight below it reach that: in a bucket lighter than half a
    point, or holding one value, it is the bucket's smallest value (its rank off by at
    most 1/(2m)); the pixels of the heavier buckets with points, and of the buckets the
    quantiles lie in, are copied out (without a branch per pixel), the former bucketed
    again (``_refine``): point j is a light sub-bucket's smallest value or the exact
    pixel of a sorted one. Cells of at most ``m`` pixels give their pixels. So sketches
    merge with the rank bound of ``summarise``. A split cell's ``summarise`` summary is
    made from the kept pixels (``_summary``), not from the raster again.

    Returns ``(cells, values, weights)``, the points (sorted by cell); the quantiles
    (NaN for cells not ``exact`` or without pixels); and ``(cells, values, weights)``,
    the split cells' summaries.
    """
    data, nodata, has_nodata, row, start, length, _, weight, slope = runs
    counts, totals, _, _, _, lows, highs = moments
    n_out = int(np.minimum(counts, m).sum())
    n_split = int(np.minimum(counts[split], m).sum())
    # each pixel's bucket, in 16 bits where they are few enough (less to write and read)
    buckets = np.empty(int(counts.max(initial=0)),
                       dtype=np.uint16 if SKETCH_BUCKETS * m <= 2**16 else np.int64)
    # each bucket's smallest value, in the data's type where it is float32 (the same
    # values in less memory)
    lo1 = np.empty(SKETCH_BUCKETS * m, dtype=np.float32 if data.dtype == np.float32 else
                   np.float64)
    return _sketch((data, nodata, has_nodata, row, start, length, weight, slope),
                   order, cell_start, (counts, totals, lows, highs), m,
                   np.asarray(qs, dtype=np.float64), exact, split, n_out, n_split, buckets,
                   lo1)


@nb.njit(cache=True, nogil=True)
def _sketch(runs, order, cell_start, moments, m, qs, exact, split, n_out, n_split, bk, lo1):
    """``sketch``, with ``bk`` for each pixel's bucket and ``lo1`` for each bucket's
    smallest value."""
    counts, totals, lows, highs = moments
    n_cells = len(cell_start) - 1
    max_pixels = len(bk)
    nq = len(qs)
    n1 = SKETCH_BUCKETS * m
    quant = np.full((n_cells, nq), np.nan)
    cells = np.empty(n_out, dtype=np.int64)
    values = np.empty(n_out)
    weights = np.empty(n_out)
    s_cells = np.empty(n_split, dtype=np.int64)
    s_values = np.empty(n_split)
    s_weights = np.empty(n_split)
    h1 = np.empty(n1)
    c1 = np.empty(n1, dtype=np.int32)
    hi1 = np.empty(n1)  # the largest value of the buckets copied out
    before = np.empty(n1 + 1)  # the weight before each bucket
    point_bucket = np.empty(m, dtype=np.int64)
    # the buckets with points (the first point in each), then of those the heavy ones
    # (their points ``first`` to ``ends``) and the quantiles': the buckets copied out
    kept = np.empty(m + nq, dtype=np.int64)
    first = np.empty(m + 1, dtype=np.int64)
    ends = np.empty(m, dtype=np.int64)
    off = np.full(n1, -1, dtype=np.int64)  # a copied bucket's place in the buffer (-1: not)
    # where the next pixel of each bucket is copied to, and the step after it: the pixels
    # of the other buckets all go to the last slot
    fill = np.full(n1, max_pixels, dtype=np.uint32)
    step = np.zeros(n1, dtype=np.uint32)
    bucket = np.empty(nq, dtype=np.int64)
    below = np.empty(nq)
    vbuf = np.empty(max_pixels + 1)  # and a slot for the pixels not copied
    wbuf = np.empty(max_pixels + 1)
    tmp_v = np.empty(max_pixels)
    tmp_w = np.empty(max_pixels)
    hist = np.empty(N_BUCKETS)
    n2 = SKETCH_BUCKETS * (2 * m + 2)  # sub-buckets of the heaviest bucket
    sub = (np.empty(n2), np.empty(n2, dtype=np.int64), np.empty(n2), np.empty(n2),
           np.empty(n2 + 1, dtype=np.int64), np.empty(n2 + 1, dtype=np.int64))
    scratch = _summary_scratch(m, max_pixels if n_split > 0 else 0)  # split cells' only
    k = 0
    ks = 0
    for c in range(n_cells):
        if counts[c] == 0:
            continue
        total, lo, hi = totals[c], lows[c], highs[c]
        scale = (n1 - 1e-9) / (hi - lo) if hi > lo else 0.0
        if counts[c] <= m or not (np.isfinite(scale) and scale > 0.0):
            n = _gather(runs, order, cell_start[c], cell_start[c + 1], vbuf, wbuf)
            if split[c]:
                ks = _summary(vbuf, wbuf, n, c, total, lo, hi, m, s_cells, s_values,
                              s_weights, ks, scratch)
            k = _sketch_whole(vbuf, wbuf, n, c, counts[c] <= m, total, lo, hi, m, qs,
                              exact[c], quant[c], tmp_v, tmp_w, hist, cells, values,
                              weights, k)
            continue
        h1[:] = 0.0
        c1[:] = 0
        lo1[:] = np.inf
        qtotal, n = _spread(runs, order, cell_start[c], cell_start[c + 1], lo, scale, h1, c1,
                            lo1, tmp_v, tmp_w, bk)
        if split[c]:  # the finest level's summary of a cell split between blocks
            ks = _summary(tmp_v, tmp_w, n, c, total, lo, hi, m, s_cells, s_values,
                          s_weights, ks, scratch)
        heavy = total / (2 * m)
        n_landing = _landing(h1, total, m, before, point_bucket, kept, first)
        n_kept = 0  # of the buckets with points the heavy ones, copied out
        for i in range(n_landing):
            if h1[kept[i]] > heavy:
                kept[n_kept], first[n_kept], ends[n_kept] = kept[i], first[i], first[i + 1]
                n_kept += 1
        n_heavy = n_kept
        for q in range(nq):  # the quantiles' buckets, copied out too
            bucket[q] = -1
            target = qs[q] * qtotal * (1 - 1e-9)
            if not exact[c]:
                continue
            if target <= 0.0:
                quant[c, q] = lo
                continue
            # the first bucket whose weight and the weight before it reach the target (as
            # ``_bucket_of`` walks to it: ``before`` holds its sums)
            b = np.searchsorted(before[1:n1], target)
            bucket[q], below[q] = b, before[b]
            kept[n_kept] = b
            n_kept += 1
        size = 0
        for i in range(n_kept):
            b = kept[i]
            if off[b] < 0:
                off[b] = size
                fill[b], step[b] = size, 1
                size += c1[b]
        _copy_kept(tmp_v, tmp_w, bk, n, fill, step, vbuf, wbuf)
        for i in range(n_heavy):  # (before the quantiles are selected: in the pixels' order)
            b = kept[i]
            hi1[b] = _largest(vbuf[off[b]:off[b] + c1[b]])
        _select_in_buckets(bucket, below, off, c1, vbuf, wbuf, qs, qtotal, quant[c])
        k = _sketch_points(h1, c1, lo1, hi1, before, point_bucket, kept, first, ends,
                           n_heavy, off, vbuf, wbuf, heavy, c, total, hi, m, cells, values,
                           weights, k, tmp_v, tmp_w, sub)
        for i in range(n_kept):
            b = kept[i]
            off[b] = -1
            fill[b], step[b] = max_pixels, 0
    return (cells[:k], values[:k], weights[:k]), quant, (s_cells[:ks], s_values[:ks],
                                                        s_weights[:ks])


@nb.njit(cache=True, nogil=True, inline="always")
def _gather(runs, order, j0, j1, vbuf, wbuf):
    """The valid pixels of runs ``order[j0:j1]`` into ``vbuf``, their areas into
    ``wbuf``, in order; returns how many."""
    data, nodata, has_nodata, row, start, length, weight, slope = runs
    n = 0
    for j in range(j0, j1):
        r = order[j]
        run = data[row[r], start[r]:start[r] + length[r]]
        for i in range(len(run)):
            if not _missing(run[i], nodata, has_nodata):
                vbuf[n] = run[i]
                wbuf[n] = weight[r] + i * slope[r]
                n += 1
    return n


@nb.njit(cache=True, nogil=True, inline="always")
def _spread(runs, order, j0, j1, lo, scale, h1, c1, lo1, tmp_v, tmp_w, bk):
    """The valid pixels of runs ``order[j0:j1]`` spread over the buckets of ``h1``
    (weight, count and smallest value), their values, weights and buckets kept
    in ``tmp_v``, ``tmp_w`` and ``bk``; returns their weight (summed pixel by pixel, as
    ``quantiles`` does) and how many. (Indexes unsigned: no wrap-around to check.)"""
    data, nodata, has_nodata, row, start, length, weight, slope = runs
    qtotal = 0.0
    n = np.uint64(0)
    for j in range(j0, j1):
        r = order[j]
        run = data[row[r], start[r]:start[r] + length[r]]
        w0, g = weight[r], slope[r]
        for i in range(len(run)):
            x = run[i]
            if not _missing(x, nodata, has_nodata):
                v = np.float64(x)
                w = w0 + i * g
                qtotal += w
                b = np.uint64((v - lo) * scale)
                tmp_v[n] = v
                tmp_w[n] = w
                bk[n] = b
                n += np.uint64(1)
                h1[b] += w
                c1[b] += 1
                lo1[b] = min(lo1[b], x)
    return qtotal, np.int64(n)


@nb.njit(cache=True, nogil=True, inline="always")
def _copy_kept(values, weights, buckets, n, fill, step, vbuf, wbuf):
    """The first ``n`` pixels (``values``, ``weights`` and ``buckets``, in the order of
    the cell's runs) copied to ``fill[b]`` of their bucket, which advances by ``step[b]``:
    the copied buckets' pixels each bucket contiguous (step 1), as ``_copy_buckets``
    copies them, those of the others all to one slot (step 0). Without a branch per
    pixel: the copied buckets are many, their pixels spread among the others."""
    for i in range(n):
        b = buckets[i]
        p = fill[b]
        vbuf[p] = values[i]
        wbuf[p] = weights[i]
        fill[b] = p + step[b]


@nb.njit(cache=True, nogil=True)
def _landing(h1, total, m, before, point_bucket, kept, first):
    """The weight before each bucket (``before``, summed bucket by bucket as the walks up
    the histogram sum it) and the bucket each point lies in: point j, at ``(j + 0.5) / m
    * total``, in the first bucket whose weight and the weight before it reach that. The
    buckets with points go to ``kept`` (in order), the first point in each to ``first``;
    returns how many."""
    n1 = len(h1)
    acc = 0.0
    for b in range(n1):
        before[b] = acc
        acc += h1[b]
    before[n1] = acc
    b = 0
    n = 0
    for j in range(m):
        target = (j + 0.5) / m * total
        while b < n1 - 1 and before[b + 1] < target:
            b += 1
        point_bucket[j] = b
        if n == 0 or kept[n - 1] != b:
            kept[n], first[n] = b, j
            n += 1
    first[n] = m
    return n


@nb.njit(cache=True, nogil=True, inline="always")
def _largest(values):
    """The largest of ``values`` (-inf for none), taken in their order."""
    hi = -np.inf
    for i in range(len(values)):
        hi = max(hi, values[i])
    return hi


@nb.njit(cache=True, nogil=True)
def _sketch_points(h1, c1, lo1, hi1, before, point_bucket, kept, first, ends, n_heavy, off,
                   vbuf, wbuf, heavy, c, total, hi, m, cells, values, weights, k, tmp_v,
                   tmp_w, sub):
    """A cell's ``m`` points (written from ``k``): in a light bucket, or one of a single
    value, the bucket's smallest value (past the last pixel by rounding: the largest
    value); in a heavy bucket holding several values (its pixels copied out, at ``off``)
    from its sub-histogram (``_refine``). ``point_bucket`` is the bucket of each point,
    ``kept[:n_heavy]`` the heavy buckets with points (``first[i]`` to ``ends[i]``),
    ``before`` the weight before each bucket."""
    h2, c2, lo2, hi2, pos, _ = sub
    for j in range(m):
        b = point_bucket[j]
        cells[k + j] = c
        values[k + j] = hi if c1[b] == 0 else np.float64(lo1[b])
        weights[k + j] = total / m
    for i in range(n_heavy):
        b = kept[i]
        if not lo1[b] < hi1[b]:
            continue
        ns = _refine(vbuf, wbuf, off[b], off[b] + c1[b], np.float64(lo1[b]), hi1[b],
                     SKETCH_BUCKETS * (int(h1[b] / heavy) + 1), heavy, tmp_v, tmp_w, sub)
        s = 0
        acc2 = before[b]  # weight before sub-bucket s, and before pixel p of a sorted one
        p = -1
        cum = 0.0
        for j in range(first[i], ends[i]):
            target = (j + 0.5) / m * total
            while s < ns - 1 and acc2 + h2[s] < target:
                acc2 += h2[s]
                s += 1
                p = -1
            if c2[s] == 0:
                value = hi1[b]
            elif h2[s] > heavy and lo2[s] < hi2[s]:
                if p < 0:
                    p, cum = pos[s], acc2
                while p < pos[s + 1] - 1 and cum + wbuf[p] < target:
                    cum += wbuf[p]
                    p += 1
                value = vbuf[p]
            else:
                value = lo2[s]
            values[k + j] = value
    return k + m


@nb.njit(cache=True, nogil=True)
def _refine(vbuf, wbuf, a, e, lo, hi, ns, heavy, tmp_v, tmp_w, sub):
    """A heavy bucket's pixels ``vbuf[a:e]`` spread over ``ns`` equal-width
    sub-buckets (weight, count, smallest and largest value into ``sub``); where some
    sub-bucket is still heavy holding several values, reordered sub-bucket by sub-bucket
    (starting at ``pos``), those sorted. Returns ``ns``."""
    h2, c2, lo2, hi2, pos, fill = sub
    scale = (ns - 1e-9) / (hi - lo)
    scale = scale if np.isfinite(scale) else 0.0
    h2[:ns] = 0.0
    c2[:ns] = 0
    lo2[:ns] = np.inf
    hi2[:ns] = -np.inf
    for i in range(a, e):
        s = _bucket(vbuf[i], lo, scale, ns)
        h2[s] += wbuf[i]
        c2[s] += 1
        lo2[s] = min(lo2[s], vbuf[i])
        hi2[s] = max(hi2[s], vbuf[i])
    pos[0] = a
    sorted_any = False
    for s in range(ns):
        pos[s + 1] = pos[s] + c2[s]
        sorted_any |= h2[s] > heavy and lo2[s] < hi2[s]
    if not sorted_any:  # the points are the sub-buckets' smallest values: no reordering
        return ns
    fill[:ns] = pos[:ns]
    for i in range(a, e):
        s = _bucket(vbuf[i], lo, scale, ns)
        tmp_v[fill[s]], tmp_w[fill[s]] = vbuf[i], wbuf[i]
        fill[s] += 1
    vbuf[a:e] = tmp_v[a:e]
    wbuf[a:e] = tmp_w[a:e]
    for s in range(ns):
        if h2[s] > heavy and lo2[s] < hi2[s]:  # rare
            _stable_sort(vbuf[pos[s]:pos[s + 1]], wbuf[pos[s]:pos[s + 1]])
    return ns


@nb.njit(cache=True, nogil=True)
def _sketch_whole(vbuf, wbuf, n, c, few, total, lo, hi, m, qs, want_exact, quant, tmp_v,
                  tmp_w, hist, cells, values, weights, k):
    """``sketch`` of a cell of at most ``m`` pixels (``few``: the pixels are its points),
    of one value, or of an infinite or subnormal range (its pixels sorted), from its
    ``n`` valid pixels ``vbuf`` (weights ``wbuf``)."""
    if want_exact:
        _quantiles_into(vbuf[:n], wbuf[:n], qs, quant, tmp_v, tmp_w, hist)
    if few:
        for i in range(n):
            cells[k], values[k], weights[k] = c, vbuf[i], wbuf[i]
            k += 1
    elif lo == hi:
        cells[k], values[k], weights[k] = c, lo, total
        k += 1
    else:
        idx = np.argsort(vbuf[:n], kind="mergesort")
        p = 0
        cum = 0.0
        for j in range(m):
            target = (j + 0.5) / m * total
            while p < n - 1 and cum + wbuf[idx[p]] < target:
                cum += wbuf[idx[p]]
                p += 1
            cells[k], values[k], weights[k] = c, vbuf[idx[p]], total / m
            k += 1
    return k
