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
