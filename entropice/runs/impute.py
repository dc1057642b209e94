"""The training pipelines' imputer: scikit-learn's median imputer, fitted fast.

``SimpleImputer(strategy="median")`` takes the median through masked arrays, about 5 s
for 160,000 samples of 113 features, in every fit of every fold; ``np.nanmedian`` gives
the same statistics in a fraction of that.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data


class MedianImputer(TransformerMixin, BaseEstimator):
    """Replace NaN by each feature's median over the fitted samples (0 for a feature
    with none), as ``SimpleImputer(strategy="median", keep_empty_features=True)``.

    Attributes
    ----------
    statistics_ : ndarray of shape (n_features_in_,)
        The medians.
    n_features_in_ : int
        Number of features seen in ``fit``.
    """

    def fit(self, X, y=None):
        """Learn the medians of ``X`` (array-like of shape (n_samples, n_features))."""
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_all_finite="allow-nan")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            self.statistics_ = np.nan_to_num(np.nanmedian(X, axis=0).astype(np.float64))
        return self

    def transform(self, X):
        """``X`` with its NaN replaced by the medians."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_all_finite="allow-nan",
                          reset=False, copy=True)
        rows, cols = np.nonzero(np.isnan(X))
        X[rows, cols] = self.statistics_[cols]
        return X

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags
