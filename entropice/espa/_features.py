"""Which features carry weight, and the optional prior on the feature weights.

Indicator columns (missing-value flags, binary or near-constant columns) are kept out of
the W-weighted distance: one box holding all the flagged samples makes such a column's
within-box dispersion exactly zero, and softmax(-b / eps_W) would then give it all the
weight. W is a distribution over the environmental proxies only.
"""

from __future__ import annotations

import numpy as np

from . import _kernels

NEAR_CONSTANT_SHARE = 0.95
"""A column whose most frequent value holds this share of the sample weight is an indicator."""

PRIOR_FLOOR = 0.01
"""The prior W_ref is floored at this fraction of the uniform weight, so no feature is
excluded by the prior alone."""


def find_indicators(X, sample_weight=None, *, share=NEAR_CONSTANT_SHARE):
    """Mark the indicator columns of ``X``: binary or near-constant.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    sample_weight : ndarray of shape (n_samples,), optional
        Samples of zero weight are ignored, and the share of a value is its weight share,
        so weights and repeated samples give the same answer.
    share : float, default=0.95
        A column whose most frequent value holds at least this share is near-constant.

    Returns
    -------
    mask : ndarray of bool, shape (n_features,)
        True for columns with at most two distinct values or a dominant value.
    """
    X = np.ascontiguousarray(X)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    w = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, float)
    n_values, top_share = _kernels.column_profile(X, w)
    return (n_values <= 2) | (top_share >= share)


def resolve_indicators(indicators, X, w, feature_names=None):
    """The boolean mask of weighted features for the ``indicators`` parameter (None: all).

    ``"auto"`` detects them; an array gives column indices, a boolean mask or (with
    named columns) feature names. Should every column be an indicator under ``"auto"``,
    all are weighted: there would be nothing else to measure distances with.
    """
    n_features = X.shape[1]
    if indicators is None:
        return None
    if isinstance(indicators, str):  # "auto" (validated by the estimator)
        mask = find_indicators(X, w)
        if mask.all() or not mask.any():
            return None
        return ~mask
    spec = np.asarray(indicators)
    if spec.size == 0:
        return None
    if spec.dtype.kind == "O" and all(isinstance(v, str) for v in spec.ravel()):
        spec = spec.astype(str)  # names from a pandas Index
    if spec.dtype == bool:
        if spec.shape != (n_features,):
            raise ValueError(f"indicators is a boolean mask of shape {spec.shape}; expected "
                             f"({n_features},), one entry per feature.")
        mask = spec.copy()
    else:
        if spec.dtype.kind in "US":
            if feature_names is None:
                raise ValueError("indicators names features, but X has no column names; "
                                 "give column indices instead.")
            names = list(feature_names)
            unknown = [s for s in spec.tolist() if s not in names]
            if unknown:
                raise ValueError(f"indicators names {unknown[0]!r}, which is not a feature "
                                 f"of X (features: {', '.join(names[:8])}...).")
            idx = np.array([names.index(s) for s in spec.tolist()])
        elif spec.dtype.kind in "iu":
            idx = spec.ravel()
            bad = idx[(idx < 0) | (idx >= n_features)]
            if bad.size:
                raise ValueError(f"indicators holds column index {int(bad[0])}; X has "
                                 f"{n_features} features (0 to {n_features - 1}).")
        else:
            raise ValueError(f"indicators must be 'auto', None, column indices, a boolean "
                             f"mask or feature names; got an array of {spec.dtype}.")
        mask = np.zeros(n_features, dtype=bool)
        mask[idx] = True
    if mask.all():
        raise ValueError("indicators marks every feature; at least one must carry weight.")
    return ~mask


def weight_prior(kind, X, y, w, n_classes, weighted, random_state):
    """W_ref over all features (zero on indicators), or None for no prior.

    ``kind`` is "corr" (the largest squared correlation of a feature with a class's
    one-hot label, sample-weighted: the share of that label's variance the feature
    explains linearly), "mi" (mutual information with the label, on at most 5,000
    samples) or an array of non-negative relevances.

    Squared, not absolute: many environmental proxies are moderately correlated with
    the label and with each other (five statistics of each terrain quantity), and a
    prior linear in |corr| spreads W almost evenly over them, so that the distance is
    dominated by the redundant many rather than the strongest few.
    """
    if kind is None:
        return None
    n_features = X.shape[1]
    on = np.ones(n_features, bool) if weighted is None else weighted
    if isinstance(kind, str) and kind == "corr":
        r = _squared_correlation(X, y, w, n_classes)
    elif isinstance(kind, str) and kind == "mi":
        r = _mutual_information(X, y, w, random_state)
    else:
        r = np.asarray(kind, dtype=np.float64)
        if r.shape != (n_features,):
            raise ValueError(f"weight_prior has shape {r.shape}; expected ({n_features},), "
                             "one relevance per feature.")
        if not np.all(np.isfinite(r)) or np.any(r < 0):
            raise ValueError("weight_prior must be finite and non-negative.")
    r = np.where(on, np.nan_to_num(r, nan=0.0), 0.0)
    n_on = int(on.sum())
    ref = np.where(on, 1.0 / n_on, 0.0) if r.sum() <= 0 else r / r.sum()
    ref = np.where(on, np.maximum(ref, PRIOR_FLOOR / n_on), 0.0)
    return ref / ref.sum()


def _squared_correlation(X, y, w, n_classes, chunk=2048):
    """max_c corr_w(x_d, [y == c])^2 per feature, reading ``X`` in row chunks."""
    wsum = w.sum()
    onehot_w = np.zeros((n_classes,))
    sx = np.zeros(X.shape[1])
    sxx = np.zeros(X.shape[1])
    sxy = np.zeros((X.shape[1], n_classes))
    for a in range(0, X.shape[0], chunk):
        xc = X[a:a + chunk].astype(np.float64)
        wc, yc = w[a:a + chunk], y[a:a + chunk]
        sx += wc @ xc
        sxx += wc @ (xc * xc)
        Y = np.zeros((len(yc), n_classes))
        Y[np.arange(len(yc)), yc] = wc
        sxy += xc.T @ Y
        onehot_w += Y.sum(axis=0)
    mx, p = sx / wsum, onehot_w / wsum
    var_x = np.maximum(sxx / wsum - mx * mx, 0.0)
    cov = sxy / wsum - np.outer(mx, p)
    var_y = p * (1 - p)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = cov**2 / np.outer(var_x, var_y)
    return np.nanmax(np.where(np.isfinite(r2), r2, 0.0), axis=1)


def _mutual_information(X, y, w, random_state, max_samples=5000):
    from sklearn.feature_selection import mutual_info_classif
    from sklearn.utils import check_random_state

    rng = check_random_state(random_state)
    rows = np.flatnonzero(w > 0)
    if len(rows) > max_samples:
        rows = np.sort(rng.choice(rows, max_samples, replace=False))
    return mutual_info_classif(X[rows], y[rows], random_state=rng)
