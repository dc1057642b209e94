"""scikit-learn's estimator checks on ESPAClassifier: every check, expected failures named."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from entropice.espa import ESPAClassifier

# No check is expected to fail. (tests/conftest.py sets SCIPY_ARRAY_API=1 so that the
# array-API input check runs instead of being skipped.)


@parametrize_with_checks([ESPAClassifier(random_state=0)])
def test_sklearn_compatible(estimator, check):
    check(estimator)
