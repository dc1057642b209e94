"""eSPA+: the entropy-optimal, interpretable classifier at the heart of Entropice."""

from ._estimator import ESPAClassifier

__all__ = ["ESPAClassifier"]
