"""How good a model's out-of-fold probabilities are: scores, calibration, and the triage
curve (how much land must be scanned to find the RTS area)."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def evaluate(y_true, proba, labels) -> dict:
    """The metrics of a model's class probabilities on test samples."""
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=np.float64)
    labels = np.asarray(labels)
    pred = labels[np.argmax(proba, axis=1)]
    # each sample's squared error, a chunk of samples at a time (no one-hot copy)
    sq = np.empty(len(y_true))
    for a in range(0, len(y_true), 2**18):
        onehot = (y_true[a:a + 2**18, None] == labels[None, :]).astype(float)
        sq[a:a + 2**18] = np.sum((proba[a:a + 2**18] - onehot) ** 2, axis=1)
    out = {
        "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, pred)),
        "macro_f1": float(skm.f1_score(y_true, pred, average="macro", labels=labels,
                                       zero_division=0)),
        "log_loss": float(skm.log_loss(y_true, np.clip(proba, 1e-15, 1), labels=labels)),
        "brier": float(np.mean(sq)),
        "confusion_matrix": skm.confusion_matrix(y_true, pred, labels=labels).tolist(),
    }
    out["roc_auc"] = macro_roc_auc(y_true, proba, labels)
    return out


def macro_roc_auc(y_true, proba, labels) -> float:
    """One-vs-rest ROC AUC averaged over the classes present (NaN with fewer than two),
    the probabilities renormalised over them: scikit-learn's ``roc_auc_score(...,
    multi_class="ovr")``, from mid-ranks (Mann-Whitney), without its checks' cost
    (permutation importance asks for thousands)."""
    from scipy.stats import rankdata

    y_true, labels = np.asarray(y_true), np.asarray(labels)
    proba = np.asarray(proba, dtype=np.float64)
    present = np.isin(labels, y_true)
    if present.sum() < 2:
        return float("nan")
    p = proba[:, present] / np.maximum(proba[:, present].sum(axis=1, keepdims=True), 1e-15)
    classes = labels[present]
    if len(classes) == 2:  # the second class's score ranks both
        p, classes = p[:, 1:], classes[1:]
    aucs = []
    for k, c in enumerate(classes):
        pos = y_true == c
        n_pos, n_neg = pos.sum(), (~pos).sum()
        ranks = rankdata(p[:, k])
        aucs.append((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return float(np.mean(aucs))


def ranking_auc(estimator, X, y) -> float:
    """How well a classifier ranks samples by their class (a scorer for searches).

    The score of a sample is its expected class index under the predicted
    probabilities; the result is the mean ROC AUC of "class >= t" over the thresholds t
    the samples have. It ranks cells as the triage does (denser classes first), and,
    unlike a multi-class ROC AUC, holds when a fold lacks a class.
    """
    y = np.asarray(y)
    score = estimator.predict_proba(X) @ np.asarray(estimator.classes_, dtype=np.float64)
    aucs = [skm.roc_auc_score(y >= t, score) for t in np.unique(y)[1:]]
    return float(np.mean(aucs)) if aucs else 0.5


def reliability_curve(y_true, proba, labels, n_bins=10) -> dict:
    """Calibration: in bins of the predicted probability of each sample's predicted class,
    the mean prediction against the observed accuracy."""
    labels = np.asarray(labels)
    conf = np.max(proba, axis=1)
    correct = labels[np.argmax(proba, axis=1)] == np.asarray(y_true)
    edges = np.linspace(0, 1, n_bins + 1)
    b = np.clip(np.digitize(conf, edges) - 1, 0, n_bins - 1)
    n = np.bincount(b, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(b, weights=conf, minlength=n_bins) / n
        accuracy = np.bincount(b, weights=correct, minlength=n_bins) / n
    return {"bin_edges": edges.tolist(), "count": n.tolist(),
            "mean_predicted": mean_conf.tolist(), "observed": accuracy.tolist()}


CURVE_POINTS = 1001
"""Most points of a stored triage curve."""


def triage_curve(score, rts_area, land_area, recalls=(0.5, 0.8, 0.9, 0.95)) -> dict:
    """How much land must be scanned, cells ranked by ``score``, to find the RTS area.

    Returns the curve (cumulative share of land area, of RTS area; at most
    ``CURVE_POINTS`` of its points, evenly spread over the land) and, for each
    recall, the share of land area needed, beside the same for a random ranking
    (whose expected curve is the diagonal). Cells of equal score are scanned in random
    order, so the curve is the expected one: a straight line across each tie (eSPA+'s
    probabilities take one value per box, so its ties are many).
    """
    score = np.asarray(score, dtype=np.float64)
    rts = np.nan_to_num(np.asarray(rts_area, dtype=np.float64))
    land = np.nan_to_num(np.asarray(land_area, dtype=np.float64))
    if rts.sum() <= 0:
        raise ValueError("no mapped RTS area: the triage curve needs some.")
    order = np.argsort(-score, kind="stable")
    s = score[order]
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])  # last index of each tie
    land_share = np.r_[0.0, np.cumsum(land[order])[ends] / land.sum()]
    rts_share = np.r_[0.0, np.cumsum(rts[order])[ends] / rts.sum()]
    needed = {}
    for r in recalls:  # the first point reaching r, linear inside its tie
        k = min(int(np.searchsorted(rts_share, r * (1 - 1e-12))), len(rts_share) - 1)
        r0, r1, l0, l1 = rts_share[k - 1], rts_share[k], land_share[k - 1], land_share[k]
        frac = 1.0 if r1 <= r0 else min(1.0, (r - r0) / (r1 - r0))
        needed[f"{r:.2f}"] = float(l0 + (l1 - l0) * frac)
    # the curve as stored: at most CURVE_POINTS points, spread evenly over the land share
    # (the shares needed above come from every point; a group of 8M cells has millions)
    keep = np.unique(np.r_[np.searchsorted(land_share, np.linspace(0, 1, CURVE_POINTS)),
                           0, len(land_share) - 1].clip(0, len(land_share) - 1))
    land_share, rts_share = land_share[keep], rts_share[keep]
    return {"land_share": land_share.tolist(), "rts_share": rts_share.tolist(),
            "land_share_needed": needed,
            "random_land_share_needed": {f"{r:.2f}": float(r) for r in recalls}}
