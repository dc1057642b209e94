"""From boxes to probabilities: smoothed box label probabilities, soft assignment with a
fitted temperature, and the average over ensemble members.

The hard read-out (the label frequencies of the nearest box) is the reference; it gives
at most one distinct probability vector per box, and zero to classes a box never saw.
Dirichlet smoothing removes the zeros, and the soft assignment (softmax of minus the
W-weighted squared distance over a temperature tau) blends neighbouring boxes, so the
probabilities vary within a box.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from . import _kernels
from ._core import CHUNK_ROWS, distance_terms

MAX_TEMPERATURE_SAMPLES = 10_000
"""Samples on which the temperature is fitted (a one-parameter fit needs no more)."""

PROBA_FLOOR = 1e-15


def smoothed(label_counts, wcount, alpha):
    """Box label probabilities with ``alpha`` pseudo-samples of each class per box
    (Dirichlet smoothing); ``alpha=0`` gives the frequencies exactly."""
    if alpha == 0:
        return label_counts / wcount[:, None]
    n_classes = label_counts.shape[1]
    return (label_counts + alpha) / (wcount[:, None] + alpha * n_classes)


class Readout:
    """Stacked ensemble members, ready to turn samples into class probabilities.

    Each member is ``(boxes, weights, centre, label_proba, temperature)``; temperature 0
    is the hard read-out.
    """

    def __init__(self, members, dtype):
        A, c, lam, starts, inv_tau = [], [], [], [0], []
        for boxes, weights, centre, label_proba, tau in members:
            A_t, cost0 = distance_terms(boxes, weights, centre, dtype)
            A.append(A_t)
            c.append(cost0)
            lam.append(label_proba)
            starts.append(starts[-1] + boxes.shape[0])
            inv_tau.append(np.inf if tau == 0 else 1.0 / tau)
        self.A_t = np.ascontiguousarray(np.hstack(A))
        self.cost0 = np.concatenate(c)
        self.lam = np.ascontiguousarray(np.vstack(lam))
        self.starts = np.asarray(starts, dtype=np.int64)
        self.inv_tau = np.asarray(inv_tau)

    def proba(self, X, threads, rows=None, score=None):
        """Probabilities of every sample (or of the samples ``rows``), classes in order;
        with ``score`` (a weight per class) also the standard deviation over the members
        of each sample's ``proba @ score``."""
        rows = np.empty(0, dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
        n = rows.shape[0] if rows.shape[0] else X.shape[0]
        out = np.empty((n, self.lam.shape[1]))
        want = score is not None
        spread = np.empty(n if want else 0)
        score = np.asarray(score, float) if want else np.zeros(self.lam.shape[1])
        threads.run(lambda tid: _kernels.proba_rows(
            X, rows, self.A_t, self.cost0, self.starts, self.inv_tau, self.lam, out, score,
            spread, tid, threads.n, CHUNK_ROWS))
        return (out, spread) if want else out


def log_loss(proba, y, w):
    """Sample-weighted mean of -log P(true class)."""
    p = np.maximum(proba[np.arange(len(y)), y], PROBA_FLOOR)
    return float(-(w * np.log(p)).sum() / w.sum())


def fit_temperature(X, y, w, boxes, weights, centre, label_proba, rng):
    """The tau minimising the weighted log loss of the soft read-out on the samples of
    positive weight in ``w`` (at most 10,000 of them, drawn at random), searched between
    1e-3 and 1e2 times the mean gap to the second-nearest box; 0 (hard) when there is
    one box."""
    if boxes.shape[0] == 1:
        return 0.0
    rows = np.flatnonzero(w > 0)
    if len(rows) > MAX_TEMPERATURE_SAMPLES:
        rows = np.sort(rng.choice(rows, MAX_TEMPERATURE_SAMPLES, replace=False))
    A_t, cost0 = distance_terms(boxes, weights, centre, np.float64)
    gaps = np.empty((len(rows), boxes.shape[0]))
    _kernels.gap_rows(X, rows, A_t, cost0, gaps)
    wr = w[rows] / w[rows].sum()
    scale = float(wr @ np.partition(gaps, 1, axis=1)[:, 1])  # mean gap to the second box
    if not scale > 0:
        return 0.0
    lam_y = label_proba[:, y[rows]].T  # (rows, boxes): P(own class) in each box

    def loss(log_tau):
        z = -gaps / np.exp(log_tau)
        e = np.exp(z)  # the nearest box has z = 0, so the sum is at least 1
        p = (e * lam_y).sum(axis=1) / e.sum(axis=1)
        return float(-(wr * np.log(np.maximum(p, PROBA_FLOOR))).sum())

    res = minimize_scalar(loss, bounds=(np.log(1e-3 * scale), np.log(1e2 * scale)),
                          method="bounded", options={"xatol": 1e-6})
    # on a grid of 0.1 % steps, so that rounding in the loss (weights against repeated
    # samples, another order) does not move tau
    return float(np.exp(np.round(res.x, 3)))
