"""The eSPA+ classifier as a scikit-learn estimator."""

from __future__ import annotations

import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.cluster import kmeans_plusplus
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)
from threadpoolctl import threadpool_limits

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


def _n_threads(n_jobs):
    """Threads to use for ``n_jobs`` (None: 1; negative: counted back from the cores)."""
    if n_jobs is None:
        return 1
    cores = _cpu_count()
    return max(1, n_jobs if n_jobs > 0 else cores + 1 + n_jobs)


def _cpu_count():
    from joblib import cpu_count

    return cpu_count(only_physical_cores=False)


class _Threads:
    """A fixed set of worker threads for the passes of one fit (none for one thread)."""

    def __init__(self, n_threads):
        self.n = n_threads
        self._pool = ThreadPoolExecutor(n_threads) if n_threads > 1 else None

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


def _distance_terms(S, W, mu, dtype):
    """Matrix ``A_t`` and per-box constants ``c`` such that c_k - 2 x A_t[:, k] ranks boxes.

    With A = W * (S - mu) and c_k = |S_k - mu|_W^2 + 2 mu . A_k, the cost differs from
    the W-weighted squared distance |x - S_k|_W^2 only by a per-sample constant, so
    its argmin is the nearest box. Centring on the data mean ``mu`` keeps the
    cancellation in the matrix product small.
    """
    centred = S - mu
    A = centred * W
    cost0 = np.einsum("kd,kd->k", A, centred) + 2.0 * (A @ mu)
    return np.ascontiguousarray(A.T, dtype=dtype), cost0


def _assign_all(X, S, W, mu, threads):
    """Nearest box of every sample under the feature weights."""
    A_t, cost0 = _distance_terms(S, W, mu, X.dtype)
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
    A_t, cost0 = _distance_terms(S, W, mu, X.dtype)
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


def _regularisation(W, eps_w):
    """The -eps_W H(W) term; constant (taken as 0) when eps_W is infinite."""
    return 0.0 if math.isinf(eps_w) else -eps_w * _entropy(W)


@dataclass
class _Fit:
    """One restart's result."""

    boxes: np.ndarray
    weights: np.ndarray
    label_proba: np.ndarray
    counts: np.ndarray
    loss_curve: list
    loss: float


def _fit_one(X, w, y, n_classes, init_boxes, mu, eps_c, eps_w, max_iter, tol, threads):
    """Run eSPA+ from the given boxes: the alternating steps, then the final re-assignment."""
    wsum = float(w.sum())
    wx = w.astype(X.dtype, copy=False)
    n_boxes, n_features = init_boxes.shape
    prior = np.bincount(y, weights=w, minlength=n_classes) / wsum
    S = np.array(init_boxes, dtype=np.float64)
    W = np.full(n_features, 1.0 / n_features)
    lam = np.tile(prior, (n_boxes, 1))
    loss_curve = []
    for it in range(max_iter):
        log_lam = np.log(np.maximum(lam, LOG_FLOOR)).T  # (M, K)
        st = _pass(X, w, wx, y, n_classes, S, W, mu, log_lam, eps_c, threads)
        keep = st.wcount > 0
        # W step: residuals to the boxes the samples were just assigned to
        W = _softmax_weights(st.resid.sum(axis=0) / wsum, eps_w)
        wcount = st.wcount[keep]
        S_old = S[keep].astype(X.dtype).astype(np.float64)  # the residuals' reference
        S = st.sums[keep] / wcount[:, None]
        lam = st.class_w[keep] / wcount[:, None]
        # residual to the new means = residual to the old boxes - shift of the means
        resid = np.maximum(st.resid[keep] - wcount[:, None] * (S - S_old) ** 2, 0.0)
        loss = (
            float(resid.sum(axis=0) @ W) / wsum
            + _regularisation(W, eps_w)
            + eps_c * _cross_entropy(st.class_w[keep], wsum)
        )
        loss_curve.append(loss)
        if it > 0 and abs(loss_curve[-2] - loss) <= tol * abs(loss_curve[-2]):
            break
    # final state: nearest box under W, without the label term
    st = _pass(X, w, wx, y, n_classes, S, W, mu, None, 0.0, threads)
    keep = st.wcount > 0
    return _Fit(
        boxes=S[keep],
        weights=W,
        label_proba=st.class_w[keep] / st.wcount[keep][:, None],
        counts=st.count[keep],
        loss_curve=loss_curve,
        loss=loss_curve[-1],
    )


class ESPAClassifier(ClassifierMixin, BaseEstimator):
    """Entropy-optimal Scalable Probabilistic Approximation classifier (eSPA+).

    Partitions the feature space into ``n_boxes`` boxes, learns one weight per
    feature (on the simplex, entropy-regularised) and, for every box, the
    probability of each class. A sample is classified by the label
    probabilities of its nearest box under the feature-weighted distance, so the
    whole model is a short table a researcher can read.

    The fit minimises, per sample mean,

        L = sum_d W_d (x_d - S_kd)^2 - eps_W H(W) + eps_C (-log Lambda_{y,k})

    by alternating closed-form steps: assign samples to boxes, drop empty boxes,
    W = softmax(-b / eps_W) with ``b`` the mean squared residual per feature,
    S = box means, Lambda = label frequencies per box; until the relative loss
    change is at most ``tol``. Then samples are re-assigned without the label
    term and Lambda re-estimated. With ``eps_C=0``, ``eps_W=inf`` and given
    initial boxes, one restart is Lloyd's k-means.

    Parameters
    ----------
    n_boxes : int, default=8
        Number of boxes K. Boxes that end up empty are dropped, so the fitted
        model may have fewer.
    eps_C : float, default=1.0
        Weight of the classification term; 0 gives unsupervised boxes.
    eps_W : float, default=1.0
        Entropy regularisation of the feature weights: small values concentrate
        the weight on few features, ``np.inf`` keeps the weights uniform.
    n_restarts : int, default=4
        Independent restarts; the one with the lowest loss is kept.
    max_iter : int, default=100
        Most iterations per restart.
    tol : float, default=1e-6
        Stop when ``|L_prev - L| <= tol * |L_prev|``.
    init : {"k-means++", "random"} or array of shape (n_boxes, n_features), default="k-means++"
        Initial boxes: k-means++ seeding (under the initial, uniform feature
        weights), ``n_boxes`` distinct random samples, or given boxes.
    class_weight : dict, "balanced" or None, default=None
        Weights per class, multiplied into the sample weights; they weigh every
        term of the loss.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial boxes of every restart.
    n_jobs : int or None, default=None
        Threads: restarts run in parallel, and a single restart spreads its
        passes over the data on the threads left. None means 1, -1 all cores.

    Attributes
    ----------
    boxes_ : ndarray of shape (n_boxes_, n_features_in_)
        Box centres S.
    feature_weights_ : ndarray of shape (n_features_in_,)
        Feature weights W (non-negative, summing to 1).
    box_label_proba_ : ndarray of shape (n_boxes_, n_classes)
        Probability of each class in each box (Lambda transposed); rows sum to 1.
    box_counts_ : ndarray of shape (n_boxes_,)
        Training samples (with positive weight) in each box.
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    loss_curve_ : ndarray of shape (n_iter_,)
        Loss after each iteration of the kept restart.
    loss_ : float
        Loss of the kept restart at convergence.
    n_iter_ : int
        Iterations of the kept restart.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Feature names, when ``X`` has string column names.

    Examples
    --------
    >>> from sklearn.datasets import load_wine
    >>> from sklearn.preprocessing import StandardScaler
    >>> from entropice.espa import ESPAClassifier
    >>> X, y = load_wine(return_X_y=True)
    >>> clf = ESPAClassifier(n_boxes=6, random_state=0).fit(StandardScaler().fit_transform(X), y)
    >>> clf.box_label_proba_.shape
    (6, 3)
    """

    _parameter_constraints: dict = {
        "n_boxes": [Interval(Integral, 1, None, closed="left")],
        "eps_C": [Interval(Real, 0, None, closed="left")],
        "eps_W": [Interval(Real, 0, None, closed="both")],
        "n_restarts": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "init": [StrOptions({"k-means++", "random"}), "array-like"],
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "random_state": ["random_state"],
        "n_jobs": [Integral, None],
    }

    def __init__(
        self,
        n_boxes=8,
        *,
        eps_C=1.0,
        eps_W=1.0,
        n_restarts=4,
        max_iter=100,
        tol=1e-6,
        init="k-means++",
        class_weight=None,
        random_state=None,
        n_jobs=None,
    ):
        self.n_boxes = n_boxes
        self.eps_C = eps_C
        self.eps_W = eps_W
        self.n_restarts = n_restarts
        self.max_iter = max_iter
        self.tol = tol
        self.init = init
        self.class_weight = class_weight
        self.random_state = random_state
        self.n_jobs = n_jobs

    # -- input checks ------------------------------------------------------

    def _check_X(self, X, y="no_validation", reset=False):
        """Validate X (and y when given); NaN or inf in X is an error naming the column."""
        kw = dict(reset=reset, dtype=[np.float64, np.float32], order="C",
                  ensure_all_finite=False)
        fit = not (isinstance(y, str) and y == "no_validation")
        if fit:
            X, y = validate_data(self, X, y, **kw)  # y: 1d (warns on a column), finite
        else:
            X = validate_data(self, X, **kw)
        col, row = _kernels.first_nonfinite_column(X)
        if col >= 0:
            names = getattr(self, "feature_names_in_", None)
            label = f"column {col}" + (f" ({names[col]!r})" if names is not None else "")
            raise ValueError(
                f"Input X contains NaN or infinity in {label}, first at row {row}. "
                f"{type(self).__name__} needs finite features: impute or drop the "
                "missing values first."
            )
        return (X, y) if fit else X

    def _initial_boxes(self, X, w, rng):
        if isinstance(self.init, str) and self.init == "k-means++":
            boxes, _ = kmeans_plusplus(X, self.n_boxes, sample_weight=w, random_state=rng)
            return boxes.astype(np.float64)
        if isinstance(self.init, str) and self.init == "random":
            p = w / w.sum()
            if np.count_nonzero(p) < self.n_boxes:
                raise ValueError(
                    f"init='random' needs at least n_boxes={self.n_boxes} samples with "
                    f"positive weight; got {np.count_nonzero(p)}."
                )
            idx = rng.choice(X.shape[0], self.n_boxes, replace=False, p=p)
            return X[np.sort(idx)].astype(np.float64)
        boxes = np.asarray(self.init, dtype=np.float64)
        expected = (self.n_boxes, X.shape[1])
        if boxes.shape != expected:
            raise ValueError(
                f"init has shape {boxes.shape}; expected (n_boxes, n_features) = {expected}."
            )
        if not np.isfinite(boxes).all():
            raise ValueError("init contains NaN or infinity.")
        return boxes

    # -- fitting ---------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the boxes, feature weights and box label probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; float32 is used as is, other types become float64.
        y : array-like of shape (n_samples,)
            Class labels (strings or integers).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; they weigh every term of the loss.

        Returns
        -------
        self : ESPAClassifier
        """
        X, y = self._check_X(X, y, reset=True)
        check_classification_targets(y)
        self.classes_, y_enc = np.unique(y, return_inverse=True)
        y_enc = y_enc.astype(np.intp)
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes; y has only "
                f"one class: {np.asarray(self.classes_[0]).item()!r}."
            )
        n_samples = X.shape[0]
        if self.n_boxes > n_samples:
            raise ValueError(
                f"n_boxes={self.n_boxes} is larger than the number of samples "
                f"(n_samples={n_samples}); use at most {n_samples} boxes."
            )
        w = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        if self.class_weight is not None:
            w = w * compute_sample_weight(self.class_weight, y)
        if not w.sum() > 0:
            raise ValueError("sample_weight sums to 0: no sample to fit.")

        n_threads = _n_threads(self.n_jobs)
        n_restarts = self.n_restarts
        if not isinstance(self.init, str) and n_restarts != 1:
            warnings.warn(
                f"init is an array of boxes, so all restarts would be identical; doing 1 "
                f"instead of n_restarts={n_restarts}.",
                RuntimeWarning,
                stacklevel=2,
            )
            n_restarts = 1
        rng = check_random_state(self.random_state)
        seeds = rng.randint(np.iinfo(np.int32).max, size=n_restarts)
        # centre of the data, so that the matrix-product distances lose few digits
        mu = (w.astype(X.dtype) @ X).astype(np.float64) / w.sum()
        eps_w = float(self.eps_W)
        eps_c = float(self.eps_C)
        parallel = min(n_threads, n_restarts)
        inner = max(1, n_threads // parallel)

        def run(seed):
            boxes = self._initial_boxes(X, w, np.random.RandomState(seed))
            with _Threads(inner) as threads:
                return _fit_one(X, w, y_enc, n_classes, boxes, mu, eps_c, eps_w,
                                self.max_iter, self.tol, threads)

        with threadpool_limits(limits=1, user_api="blas") if n_threads > 1 else nullcontext():
            if parallel > 1:
                with ThreadPoolExecutor(parallel) as pool:
                    fits = list(pool.map(run, seeds))
            else:
                fits = [run(s) for s in seeds]
        best = min(range(len(fits)), key=lambda i: fits[i].loss)  # first on ties
        fit = fits[best]

        self.boxes_ = fit.boxes
        self.feature_weights_ = fit.weights
        self.box_label_proba_ = fit.label_proba
        self.box_counts_ = fit.counts
        self.loss_curve_ = np.asarray(fit.loss_curve)
        self.loss_ = fit.loss
        self.n_iter_ = len(fit.loss_curve)
        return self

    # -- prediction ---------------------------------------------------------------

    def apply(self, X):
        """Index of each sample's box: the nearest box under the feature weights.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        boxes : ndarray of shape (n_samples,)
            Row index into ``boxes_``.
        """
        check_is_fitted(self)
        X = self._check_X(X)
        n_threads = _n_threads(self.n_jobs)
        limits = threadpool_limits(limits=1, user_api="blas") if n_threads > 1 else nullcontext()
        with limits, _Threads(n_threads) as threads:
            return _assign_all(X, self.boxes_, self.feature_weights_, self._centre(), threads)

    def _centre(self):
        """Centre for the distance products: the boxes' mean, weighted by their sizes.

        It depends on the learned attributes alone, so a model rebuilt from them
        predicts exactly as the fitted one.
        """
        return np.average(self.boxes_, axis=0, weights=self.box_counts_)

    def predict_proba(self, X):
        """Class probabilities: the label probabilities of each sample's box.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``.
        """
        check_is_fitted(self)
        return self.box_label_proba_[self.apply(X)]

    def predict(self, X):
        """Most probable class of each sample's box.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        boxes = self.apply(X)
        return self.classes_[np.argmax(self.box_label_proba_, axis=1)][boxes]
