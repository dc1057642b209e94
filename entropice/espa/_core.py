"""The exact eSPA+ core: alternating closed-form steps from given initial boxes.

With no indicator columns and no weight prior it is the reference algorithm (Horenko's
SPACL, eps_C per sample) step for step; ``tests/data/espa_reference.npz`` pins it.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import _kernels

LOG_FLOOR = 1e-12
"""Floor of the label probabilities inside the logarithm."""

CHUNK_ROWS = 1024
"""Samples per chunk of a pass: small enough for a chunk to stay in cache."""


@dataclass
class _Stats:
    """Per-box statistics of one pass over the data."""

    labels: np.ndarray  # (T,) box of each sample
    sums: np.ndarray  # (K, D) sum w x
    resid: np.ndarray  # (K, D) sum w (x - S)^2
    wcount: np.ndarray  # (K,) sum w
    count: np.ndarray  # (K,) number of samples with w > 0
    class_w: np.ndarray  # (K, M) sum w per class


def n_threads(n_jobs):
    """Threads to use for ``n_jobs`` (None: 1; negative: counted back from the cores)."""
    if n_jobs is None:
        return 1
    from joblib import cpu_count

    cores = cpu_count(only_physical_cores=False)
    return max(1, n_jobs if n_jobs > 0 else cores + 1 + n_jobs)


class Threads:
    """A fixed set of worker threads for the passes of one fit (none for one thread)."""

    def __init__(self, n):
        self.n = n
        self._pool = ThreadPoolExecutor(n) if n > 1 else None

    def run(self, fn):
        """Run ``fn(tid)`` for every thread id; the results in thread order."""
        if self._pool is None:
            return [fn(0)]
        return list(self._pool.map(fn, range(self.n)))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._pool is not None:
            self._pool.shutdown()
        return False


def centre(boxes, counts):
    """Centre for the distance products: the boxes' mean weighted by their sizes. It
    depends on the learned boxes alone, so a model rebuilt from them predicts exactly
    as the fitted one."""
    return np.average(boxes, axis=0, weights=counts)


def distance_terms(S, W, mu, dtype):
    """Matrix ``A_t`` and per-box constants ``c`` such that c_k - 2 x A_t[:, k] ranks boxes.

    With A = W * (S - mu) and c_k = |S_k - mu|_W^2 + 2 mu . A_k, the cost differs from
    the W-weighted squared distance |x - S_k|_W^2 only by a per-sample constant, so
    its argmin is the nearest box (and its softmax the soft assignment). Centring on
    the data mean ``mu`` keeps the cancellation in the matrix product small.
    """
    centred = S - mu
    A = centred * W
    cost0 = np.einsum("kd,kd->k", A, centred) + 2.0 * (A @ mu)
    return np.ascontiguousarray(A.T, dtype=dtype), cost0


def assign_all(X, S, W, mu, threads):
    """Nearest box of every sample under the feature weights."""
    A_t, cost0 = distance_terms(S, W, mu, X.dtype)
    labels = np.empty(X.shape[0], dtype=np.intp)
    threads.run(
        lambda tid: _kernels.assign_rows(X, A_t, cost0, labels, tid, threads.n, CHUNK_ROWS)
    )
    return labels


def _pass(X, w, wx, y, n_classes, S, W, mu, log_lam, eps_c, threads):
    """Assign every sample, then gather the per-box statistics of that assignment.

    ``log_lam`` (classes x boxes) enters the assignment as -eps_c log Lambda. The
    residuals are to ``S`` rounded to the dtype of ``X``. Each thread sums into its
    own arrays, added up in thread order, so a fit is reproducible for a given
    number of threads.
    """
    n_samples, n_features = X.shape
    n_boxes = S.shape[0]
    A_t, cost0 = distance_terms(S, W, mu, X.dtype)
    cost = cost0 - eps_c * log_lam if eps_c else np.tile(cost0, (n_classes, 1))
    S_x = S.astype(X.dtype)
    labels = np.empty(n_samples, dtype=np.intp)

    def work(tid):
        acc = (
            np.zeros((n_boxes, n_features)),
            np.zeros((n_boxes, n_features)),
            np.zeros(n_boxes),
            np.zeros(n_boxes, dtype=np.int64),
            np.zeros((n_boxes, n_classes)),
        )
        _kernels.assign_accumulate_rows(
            X, w, wx, y, A_t, cost, S_x, labels, *acc, tid, threads.n, CHUNK_ROWS
        )
        return acc

    parts = threads.run(work)
    return _Stats(labels, *(sum(p[i] for p in parts) for i in range(5)))


@dataclass
class WeightRule:
    """How the W step turns per-feature residuals into weights.

    ``weighted`` marks the features that carry weight (indicator columns do not; None:
    all). ``prior`` is W_ref over all features, or None for the entropy term -H(W);
    with a prior the term is KL(W || W_ref) and W is proportional to
    W_ref exp(-b / eps_W).
    """

    eps_w: float
    weighted: np.ndarray | None = None
    prior: np.ndarray | None = None

    def initial(self, n_features):
        """Weights before the first W step: the prior, or uniform over the weighted features."""
        if self.prior is not None:
            return self.prior.copy()
        if self.weighted is None:
            return np.full(n_features, 1.0 / n_features)
        return self.weighted / self.weighted.sum()

    def weights(self, b):
        """W minimising sum W b + eps_W (KL(W || W_ref) or -H(W)) over the simplex."""
        if self.weighted is None and self.prior is None:
            return _softmax_weights(b, self.eps_w)
        W = np.zeros_like(b)
        on = np.ones(b.shape[0], bool) if self.weighted is None else self.weighted
        if self.prior is None:
            W[on] = _softmax_weights(b[on], self.eps_w)
            return W
        ref = self.prior[on]
        if math.isinf(self.eps_w):
            W[on] = ref
        elif self.eps_w == 0.0:
            W[on] = _softmax_weights(b[on], 0.0)
        else:
            z = ref * np.exp(-(b[on] - b[on].min()) / self.eps_w)
            W[on] = z / z.sum()
        return W

    def regularisation(self, W):
        """The eps_W term of the loss; 0 when eps_W is infinite."""
        if math.isinf(self.eps_w):
            return 0.0
        if self.prior is None:
            return -self.eps_w * _entropy(W)
        nz = W > 0
        return self.eps_w * float(np.sum(W[nz] * np.log(W[nz] / self.prior[nz])))


def _softmax_weights(b, eps_w):
    """Feature weights minimising sum W b - eps_w H(W) over the simplex."""
    D = b.shape[0]
    if math.isinf(eps_w):
        return np.full(D, 1.0 / D)
    if eps_w == 0.0:
        W = (b == b.min()).astype(float)
        return W / W.sum()
    z = np.exp(-(b - b.min()) / eps_w)
    return z / z.sum()


def _entropy(W):
    nz = W[W > 0]
    return float(-(nz * np.log(nz)).sum())


def _cross_entropy(class_w, wsum):
    """Weighted mean of -log Lambda_{y, k} when Lambda is the label frequency per box."""
    wcount = class_w.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(class_w > 0, class_w * np.log(class_w / wcount), 0.0)
    return float(-terms.sum() / wsum)


@dataclass
class Fit:
    """One restart's result: boxes, weights, label frequencies, counts, loss."""

    boxes: np.ndarray
    weights: np.ndarray
    label_counts: np.ndarray  # (K, M) weight of each class in each box
    wcount: np.ndarray  # (K,) weight in each box
    counts: np.ndarray  # (K,) samples of positive weight in each box
    loss_curve: list
    loss: float

    @property
    def label_proba(self):
        """Label frequencies per box (rows sum to 1): the reference Lambda."""
        return self.label_counts / self.wcount[:, None]


def fit_one(X, w, y, n_classes, init_boxes, mu, eps_c, rule, max_iter, tol, threads,
            init_weights=None):
    """Run eSPA+ from the given boxes: the alternating steps, then the final re-assignment.

    Samples of zero weight are assigned but add nothing, so a held-out part or a
    bootstrap sample is a weight vector, never a copy of ``X``.
    """
    wsum = float(w.sum())
    wx = w.astype(X.dtype, copy=False)
    n_boxes, n_features = init_boxes.shape
    prior = np.bincount(y, weights=w, minlength=n_classes) / wsum
    S = np.array(init_boxes, dtype=np.float64)
    W = rule.initial(n_features) if init_weights is None else np.array(init_weights)
    lam = np.tile(prior, (n_boxes, 1))
    loss_curve = []
    for it in range(max_iter):
        log_lam = np.log(np.maximum(lam, LOG_FLOOR)).T  # (M, K)
        st = _pass(X, w, wx, y, n_classes, S, W, mu, log_lam, eps_c, threads)
        keep = st.wcount > 0
        # W step: residuals to the boxes the samples were just assigned to
        W = rule.weights(st.resid.sum(axis=0) / wsum)
        wcount = st.wcount[keep]
        S_old = S[keep].astype(X.dtype).astype(np.float64)  # the residuals' reference
        S = st.sums[keep] / wcount[:, None]
        lam = st.class_w[keep] / wcount[:, None]
        # residual to the new means = residual to the old boxes - shift of the means
        resid = np.maximum(st.resid[keep] - wcount[:, None] * (S - S_old) ** 2, 0.0)
        loss = (
            float(resid.sum(axis=0) @ W) / wsum
            + rule.regularisation(W)
            + eps_c * _cross_entropy(st.class_w[keep], wsum)
        )
        loss_curve.append(loss)
        if it > 0 and abs(loss_curve[-2] - loss) <= tol * abs(loss_curve[-2]):
            break
    # final state: nearest box under W, without the label term
    st = _pass(X, w, wx, y, n_classes, S, W, mu, None, 0.0, threads)
    keep = st.wcount > 0
    return Fit(
        boxes=S[keep],
        weights=W,
        label_counts=st.class_w[keep],
        wcount=st.wcount[keep],
        counts=st.count[keep],
        loss_curve=loss_curve,
        loss=loss_curve[-1],
    )
