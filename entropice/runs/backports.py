"""Fixes from unreleased versions of the libraries the runs use, applied only to the
versions that lack them."""

from __future__ import annotations

import numpy as np

FIXED_IN = (1, 10)
"""The scikit-learn release that bins weighted samples quickly (scikit-learn#34248)."""


def fast_weighted_binning() -> bool:
    """Make HistGradientBoosting's binning of weighted samples compute a feature's
    quantiles in one call, not one call per bin edge; returns whether it was needed.

    scikit-learn 1.7-1.9 ask ``_weighted_percentile`` once per edge (254 sorts of the
    column) when a fit has fewer than 200,000 samples and sample weights, as
    ``class_weight="balanced"`` gives: about 40 of the 45 s of a fit on 100,000 x 113.
    Here the column's two sorts (scikit-learn's own, then ``_weighted_percentile``'s,
    whose order of ties the edges depend on) are made once, and every edge is found in
    the weights' cumulative sum together, as ``_weighted_percentile`` finds each
    ("averaged_inverted_cdf"): the thresholds are the same, bit for bit.
    """
    import sklearn
    from sklearn.ensemble._hist_gradient_boosting import binning

    version = tuple(int(p) for p in sklearn.__version__.split(".")[:2] if p.isdigit())
    if version >= FIXED_IN or not hasattr(binning, "_weighted_percentile"):
        return False
    original = getattr(binning._find_binning_thresholds, "original",
                       binning._find_binning_thresholds)

    def thresholds(col_data, max_bins, sample_weight=None):
        if sample_weight is None:
            return original(col_data, max_bins)
        keep = ~np.isnan(col_data) & (sample_weight != 0)
        col, weight = col_data[keep], sample_weight[keep]
        order = np.argsort(col)
        col, weight = col[order], weight[order]
        if len(np.unique(col)) <= max_bins:  # midpoints of the values: no quantiles
            return original(col_data, max_bins, sample_weight)
        ranks = np.linspace(0, 100, num=max_bins + 1)[1:-1]
        edges = np.unique(_weighted_percentiles(col, weight, ranks))
        np.clip(edges, a_min=None, a_max=binning.ALMOST_INF, out=edges)
        return edges

    thresholds.original = original
    binning._find_binning_thresholds = thresholds
    return True


def _weighted_percentiles(values, weights, ranks):
    """The weighted percentiles ``ranks`` of ``values`` (no NaN, no zero weight) by the
    "averaged_inverted_cdf" rule, computed as scikit-learn's ``_weighted_percentile``
    computes each: its sort (ties in its order), its cumulative sum, its comparisons."""
    order = np.argsort(values)
    values, cdf = values[order], np.cumsum(weights[order])
    rank = ranks / 100 * cdf[-1]
    rank[rank == 0] = np.nextafter(rank[rank == 0], 1)
    at = np.clip(np.searchsorted(cdf, rank), 0, len(values) - 1)
    above = cdf[at] - rank > np.finfo(values.dtype).eps
    after = np.clip(at + 1, 0, len(values) - 1)
    return np.where(above, values[at], (values[at] + values[after]) / 2)
