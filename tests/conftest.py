"""Shared test set-up."""

import os

# scikit-learn skips its array-API estimator check unless SciPy's array API is on;
# it must be set before SciPy is first imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")
