"""The backported fixes give the libraries' own answers."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.ensemble._hist_gradient_boosting import binning

from entropice.runs.backports import FIXED_IN, fast_weighted_binning

ORIGINAL = getattr(binning._find_binning_thresholds, "original",
                   binning._find_binning_thresholds)


@pytest.fixture(scope="module")
def patched():
    if not fast_weighted_binning():
        pytest.skip(f"scikit-learn has the fix (>= {FIXED_IN}): nothing to compare")
    return binning._find_binning_thresholds


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 3000),
       kind=st.sampled_from(["normal", "integers", "gaps", "ties"]),
       max_bins=st.integers(2, 255))
def test_weighted_binning_thresholds_are_scikit_learns(patched, seed, n, kind, max_bins):
    """Bit for bit the thresholds scikit-learn computes, with ties, gaps (NaN) and zero
    weights."""
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=n) if kind == "normal"
         else rng.integers(0, int(rng.integers(2, 600)), n).astype(float))
    if kind == "gaps":
        x[rng.random(n) < 0.2] = np.nan
    w = rng.choice([0.0, 0.3, 1.0, 7.5], n) if kind != "normal" else rng.random(n)
    try:
        expected = ORIGINAL(x.copy(), max_bins, w.copy())
    except ValueError:  # no value left with a weight: scikit-learn's own error
        with pytest.raises(ValueError):
            patched(x.copy(), max_bins, w.copy())
        return
    got = patched(x.copy(), max_bins, w.copy())
    assert got.dtype == expected.dtype and np.array_equal(got, expected)
    assert np.array_equal(patched(x.copy(), max_bins), ORIGINAL(x.copy(), max_bins))


def test_balanced_gradient_boosting_unchanged(patched, monkeypatch):
    """A class-weighted HistGradientBoosting fit predicts exactly as without the fix."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 6))
    X[rng.random(X.shape) < 0.05] = np.nan
    y = (np.nan_to_num(X[:, 0]) + rng.normal(size=len(X)) > 1.5).astype(int)

    def fit():
        return HistGradientBoostingClassifier(max_iter=20, random_state=0,
                                              class_weight="balanced").fit(X, y)

    fast = fit().predict_proba(X)
    monkeypatch.setattr(binning, "_find_binning_thresholds", ORIGINAL)
    assert np.array_equal(fast, fit().predict_proba(X))
