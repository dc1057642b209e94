"""Numba kernels of eSPA+: passes over the samples, chunk by chunk.

Each kernel walks the row chunks ``tid, tid + n_threads, ...`` of ``X``; per chunk a
matrix product (BLAS, called from inside numba) gives the distance terms, and the
loops do the label-aware argmin and the per-box accumulation. The kernels release
the GIL, so the caller runs one per thread; they are compiled once per dtype and
cached on disk.
"""

import numba as nb
import numpy as np


@nb.njit(nogil=True, cache=True, inline="always")
def _best_box(G, i, cost_row):
    """argmin_k cost_row[k] - 2 G[i, k]; the first box on ties."""
    best = np.inf
    best_k = 0
    for k in range(G.shape[1]):
        c = cost_row[k] - 2.0 * G[i, k]
        if c < best:
            best = c
            best_k = k
    return best_k


@nb.njit(nogil=True, cache=True)
def assign_rows(X, A_t, cost0, labels, tid, n_threads, chunk):
    """Write the nearest box of each sample in this thread's chunks into ``labels``.

    ``A_t`` is ``(W * (S - mu)).T`` and ``cost0`` the per-box constants (see
    ``_estimator._distance_terms``), so ``cost0 - 2 x A_t`` ranks the boxes by
    W-weighted squared distance.
    """
    n = X.shape[0]
    G = np.empty((chunk, A_t.shape[1]), dtype=X.dtype)
    for start in range(tid * chunk, n, n_threads * chunk):
        stop = min(start + chunk, n)
        Gc = G[: stop - start]
        np.dot(X[start:stop], A_t, Gc)
        for i in range(stop - start):
            labels[start + i] = _best_box(Gc, i, cost0)


@nb.njit(nogil=True, cache=True)
def assign_accumulate_rows(
    X, w, wx, y, A_t, cost, S, labels, sums, resid, wcount, count, class_w, tid, n_threads,
    chunk,
):
    """Assign this thread's samples to boxes and add them to the per-box statistics.

    Sample t goes to argmin_k ``cost[y_t, k] - 2 x_t A_t[:, k]``: ``cost`` (classes x
    boxes) holds the distance constants minus eps_C log Lambda. Then ``sums[k, d]``
    gets sum w x, ``resid[k, d]`` sum w (x - S[k, d])^2 (the residual to the box the
    sample was assigned to), ``wcount[k]`` the weight, ``count[k]`` the number of
    samples with positive weight and ``class_w[k, c]`` the weight of class c. ``S``
    has the dtype of ``X``; sums within a chunk are in that dtype, across chunks in
    float64. Samples with zero weight are assigned but add nothing.
    """
    n, n_features = X.shape
    n_boxes = A_t.shape[1]
    G = np.empty((chunk, n_boxes), dtype=X.dtype)
    chunk_sums = np.zeros((n_boxes, n_features), dtype=X.dtype)
    chunk_resid = np.zeros((n_boxes, n_features), dtype=X.dtype)
    for start in range(tid * chunk, n, n_threads * chunk):
        stop = min(start + chunk, n)
        Gc = G[: stop - start]
        np.dot(X[start:stop], A_t, Gc)
        chunk_sums[:] = 0
        chunk_resid[:] = 0
        for i in range(stop - start):
            t = start + i
            k = _best_box(Gc, i, cost[y[t]])
            labels[t] = k
            if w[t] == 0.0:
                continue
            count[k] += 1
            wcount[k] += w[t]
            class_w[k, y[t]] += w[t]
            wt = wx[t]
            for d in range(n_features):
                x = X[t, d]
                chunk_sums[k, d] += wt * x
                r = x - S[k, d]
                chunk_resid[k, d] += wt * r * r
        sums += chunk_sums
        resid += chunk_resid


@nb.njit(nogil=True, cache=True)
def first_nonfinite_column(X):
    """Return ``(column, row)``: the leftmost column holding NaN or inf, and its first
    bad row; ``(-1, -1)`` when every value is finite."""
    n, n_features = X.shape
    best_col = n_features
    for i in range(n):
        for d in range(best_col):
            if not np.isfinite(X[i, d]):
                best_col = d
                break
    if best_col == n_features:
        return -1, -1
    for i in range(n):
        if not np.isfinite(X[i, best_col]):
            return best_col, i
    return best_col, -1


@nb.njit(nogil=True, cache=True)
def proba_rows(X, rows, A_t, cost0, starts, inv_tau, lam, out, score, spread, tid,
               n_threads, chunk):
    """Class probabilities of this thread's samples, averaged over ensemble members.

    Member m owns the box columns ``starts[m]:starts[m + 1]`` of ``A_t``/``cost0`` and
    the rows of ``lam`` (boxes x classes). Its cost ``cost0 - 2 x A_t`` is the
    W-weighted squared distance up to a per-sample constant, so softmax(-cost * inv_tau)
    is the soft assignment; ``inv_tau[m] = inf`` takes the nearest box alone (the hard
    read-out). ``rows`` picks samples of ``X`` (``out`` has one row per entry); an empty
    ``rows`` means every sample, in order. A non-empty ``spread`` (one per entry of
    ``out``) receives the standard deviation over members of ``p @ score``, a member's
    probability of the classes ``score`` weighs.
    """
    gather = rows.shape[0] > 0
    spreads = spread.shape[0] > 0
    n = rows.shape[0] if gather else X.shape[0]
    n_members = inv_tau.shape[0]
    n_classes = lam.shape[1]
    G = np.empty((chunk, A_t.shape[1]), dtype=X.dtype)
    buf = np.empty((chunk, X.shape[1]), dtype=X.dtype)
    acc = np.empty(n_classes)
    for start in range(tid * chunk, n, n_threads * chunk):
        stop = min(start + chunk, n)
        Gc = G[: stop - start]
        if gather:
            for i in range(stop - start):
                buf[i] = X[rows[start + i]]
            np.dot(buf[: stop - start], A_t, Gc)
        else:
            np.dot(X[start:stop], A_t, Gc)
        for i in range(stop - start):
            t = start + i
            for c in range(n_classes):
                out[t, c] = 0.0
            s1 = 0.0
            s2 = 0.0
            for m in range(n_members):
                a, b = starts[m], starts[m + 1]
                best = np.inf
                best_k = a
                for k in range(a, b):
                    cost = cost0[k] - 2.0 * np.float64(Gc[i, k])
                    if cost < best:
                        best = cost
                        best_k = k
                z = 0.0
                for c in range(n_classes):
                    acc[c] = 0.0
                if inv_tau[m] != np.inf:
                    for k in range(a, b):
                        e = (cost0[k] - 2.0 * np.float64(Gc[i, k]) - best) * inv_tau[m]
                        if e < 40.0:  # exp(-40) < 5e-18: no weight beyond
                            p = np.exp(-e)
                            z += p
                            for c in range(n_classes):
                                acc[c] += p * lam[k, c]
                v = 0.0
                if z > 0.0:
                    for c in range(n_classes):
                        out[t, c] += acc[c] / z
                        v += acc[c] / z * score[c]
                else:  # the hard read-out: the nearest box alone
                    for c in range(n_classes):
                        out[t, c] += lam[best_k, c]
                        v += lam[best_k, c] * score[c]
                s1 += v
                s2 += v * v
            if spreads:
                mean = s1 / n_members
                spread[t] = np.sqrt(max(s2 / n_members - mean * mean, 0.0))
            if n_members > 1:
                for c in range(n_classes):
                    out[t, c] /= n_members


@nb.njit(nogil=True, cache=True)
def gap_rows(X, rows, A_t, cost0, out):
    """W-weighted squared distance of each sample in ``rows`` to every box, less the
    nearest one's: ``out`` (len(rows) x boxes), zero at the nearest box."""
    n_boxes = A_t.shape[1]
    g = np.empty(n_boxes)
    for j in range(rows.shape[0]):
        x = X[rows[j]]
        best = np.inf
        for k in range(n_boxes):
            s = 0.0
            for d in range(x.shape[0]):
                s += x[d] * A_t[d, k]
            g[k] = cost0[k] - 2.0 * s
            if g[k] < best:
                best = g[k]
        for k in range(n_boxes):
            out[j, k] = g[k] - best


@nb.njit(cache=True)
def column_profile(X, w):
    """Per column: the number of distinct values among samples of positive weight (counted
    up to 3) and the weight share of its most frequent value.

    One pass finds each column's weighted-majority candidate (Boyer-Moore), a second
    weighs it; a value held by more than half the weight is always the candidate.
    Rows are read in order, so ``X`` is walked in memory order.
    """
    n, n_features = X.shape
    vals = np.empty((n_features, 3))
    n_vals = np.zeros(n_features, dtype=np.int64)
    cand = np.zeros(n_features)
    cand_w = np.zeros(n_features)
    wsum = 0.0
    for i in range(n):
        wi = w[i]
        if wi <= 0.0:
            continue
        wsum += wi
        for d in range(n_features):
            x = X[i, d]
            if n_vals[d] < 3:
                seen = False
                for j in range(n_vals[d]):
                    if vals[d, j] == x:
                        seen = True
                        break
                if not seen:
                    vals[d, n_vals[d]] = x
                    n_vals[d] += 1
            if cand_w[d] == 0.0:
                cand[d] = x
                cand_w[d] = wi
            elif cand[d] == x:
                cand_w[d] += wi
            elif cand_w[d] >= wi:
                cand_w[d] -= wi
            else:
                cand[d] = x
                cand_w[d] = wi - cand_w[d]
    share = np.zeros(n_features)
    for i in range(n):
        if w[i] <= 0.0:
            continue
        for d in range(n_features):
            if X[i, d] == cand[d]:
                share[d] += w[i]
    if wsum > 0.0:
        share /= wsum
    return n_vals, share


@nb.njit(cache=True)
def row_hash_uniform(bits, negative_zero, seed):
    """A number in [0, 1) for each sample, a hash of its features' bit patterns ``bits``
    (X viewed as unsigned integers) and ``seed``: equal rows get equal numbers, whatever
    their order or repetition. ``negative_zero`` (the bits of -0.0) hashes as 0.0."""
    n, n_features = bits.shape
    out = np.empty(n)
    for i in range(n):
        h = np.uint64(seed) ^ np.uint64(0x9E3779B97F4A7C15)
        for d in range(n_features):
            b = np.uint64(bits[i, d])
            if b == negative_zero:
                b = np.uint64(0)
            h = (h ^ b) * np.uint64(0xBF58476D1CE4E5B9)
            h ^= h >> np.uint64(31)
            h *= np.uint64(0x94D049BB133111EB)
            h ^= h >> np.uint64(29)
        out[i] = np.float64(h >> np.uint64(11)) * (1.0 / 9007199254740992.0)
    return out
