"""eSPA+: the entropy-optimal, interpretable classifier at the heart of Entropice."""

from ._estimator import REFERENCE, ESPAClassifier
from ._features import find_indicators

__all__ = ["REFERENCE", "ESPAClassifier", "find_indicators"]
