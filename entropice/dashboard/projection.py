"""The first two principal axes of a group's features in a year: the plane the feature
space shows beside that of two features, and every cell's coordinates in it (``PC1``,
``PC2``), which a brush in that plane is evaluated on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import layers

PC_NAMES = ("PC1", "PC2")
"""The principal axes as a brush names them, across and up."""
FIT_CELLS = 200_000
"""The axes are fitted on at most this many cells, drawn at random; every cell is then
projected on them."""
FIT_VALUES = 25_000_000
"""At most this many values (cells times features) in the fitting sample (200 MB)."""
LOADINGS = 3
"""Features an axis's label names: those that weigh most in it."""


@dataclass(frozen=True)
class Projection:
    """Every cell of a group in the plane of its features' first two principal axes.

    Attributes
    ----------
    names : tuple of str
        The features the axes are made of (those with values and some spread).
    coords : ndarray, shape (n_cells, 2)
        Each cell's coordinates on the two axes; NaN for a cell with no feature value.
    ratio : ndarray, shape (2,)
        The share of the standardised features' total variance along each axis.
    components : ndarray, shape (2, n_features)
        The axes' loadings on the standardised features (largest one positive).
    imputed : int
        Cells with some, not all, features missing: placed at those features' medians.
    fitted : int
        Cells the axes were fitted on.
    """

    names: tuple
    coords: np.ndarray
    ratio: np.ndarray
    components: np.ndarray
    imputed: int
    fitted: int

    def label(self, axis: int) -> str:
        """An axis in words: its number, its share of the variance and the features that
        weigh most in it (``principal axis 1 (34 % of variance): +0.52 dem_slope_mean,
        -0.41 era5_tdd_sum, ...``)."""
        load = self.components[axis]
        top = np.argsort(-np.abs(load))[:LOADINGS]
        terms = ", ".join(f"{load[j]:+.2f} {self.names[j]}" for j in top)
        more = ", ..." if len(load) > LOADINGS else ""
        return (f"principal axis {axis + 1} ({100 * self.ratio[axis]:.0f} % of variance): "
                f"{terms}{more}")


def principal_axes(ds, names, year, seed: int = 0) -> Projection | None:
    """The first two principal axes of features of a group in a year, and every cell on
    them.

    Each feature is standardised (its mean and standard deviation over the fitting
    sample); a cell's missing values are set to the feature's median (as the models
    impute them), a cell with no value at all is left out (NaN). The axes are fitted by
    scikit-learn's PCA on at most ``FIT_CELLS`` cells drawn at random (and at most
    ``FIT_VALUES`` values), then every cell is projected, one feature at a time (no
    matrix of every cell's features is made: 1.66M cells times hundreds of features
    would not fit).

    Parameters
    ----------
    ds : xarray.Dataset
        The group.
    names : sequence of str
        Its features to take (a feature without values in ``year`` or without spread is
        left out).
    year : int
        The year of the yearly features.
    seed : int
        Seed of the fitting sample: the same axes each time.

    Returns
    -------
    Projection or None
        None if fewer than two features have values and spread.
    """
    from sklearn.decomposition import PCA

    n = len(ds.cell_ids)
    rng = np.random.default_rng(seed)
    m = int(min(n, FIT_CELLS, max(1000, FIT_VALUES // max(len(names), 1))))
    sample = np.sort(rng.choice(n, m, replace=False))
    # two passes over the features: the sample's values (their statistics, the fit),
    # then every cell's (its projection)
    raw = {}
    for name in names:
        s = layers.values(ds, name, year)[sample]
        if np.isfinite(s).any():
            raw[name] = s
    # the statistics over the sampled cells with a value, then again without the
    # features that make no axis (their cells may have no other value)
    rows = np.any([np.isfinite(s) for s in raw.values()], axis=0) if raw else None
    stats = {k: st for k in raw if (st := _stats(raw[k][rows]))}
    rows = np.any([np.isfinite(raw[k]) for k in stats], axis=0) if stats else None
    stats = {k: st for k in stats if (st := _stats(raw[k][rows]))}
    kept = list(stats)
    if len(kept) < 2 or rows.sum() < 3:
        return None
    X = np.column_stack([(np.where(np.isfinite(raw[k][rows]), raw[k][rows], stats[k][0])
                          - stats[k][1]) / stats[k][2] for k in kept])
    pca = PCA(n_components=2, svd_solver="covariance_eigh" if len(X) > len(kept) else "full")
    pca.fit(X)
    comps = pca.components_.copy()
    sign = np.sign(comps[np.arange(2), np.argmax(np.abs(comps), axis=1)])
    comps *= sign[:, None]  # the largest loading positive: the same axes every time
    coords = np.zeros((n, 2))
    coords -= pca.mean_ @ comps.T
    found = np.zeros(n, dtype=np.int32)  # features with a value, by cell
    for name, load in zip(kept, comps.T):
        median, mean, sd = stats[name]
        v = layers.values(ds, name, year)
        finite = np.isfinite(v)
        found += finite
        z = (np.where(finite, v, median) - mean) / sd
        coords += z[:, None] * load[None, :]
    coords[found == 0] = np.nan
    imputed = int(((found > 0) & (found < len(kept))).sum())
    return Projection(tuple(kept), coords, pca.explained_variance_ratio_.copy(), comps,
                      imputed, int(len(X)))


def _stats(values: np.ndarray) -> tuple[float, float, float] | None:
    """(median, mean, sd) of a feature's values, missing ones at the median; None
    without values or spread (it makes no axis)."""
    finite = np.isfinite(values)
    if not finite.any():
        return None
    median = float(np.median(values[finite]))
    filled = np.where(finite, values, median)
    mean, sd = float(filled.mean()), float(filled.std())
    return (median, mean, sd) if sd > 0 else None
