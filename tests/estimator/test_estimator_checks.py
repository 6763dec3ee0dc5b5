"""scikit-learn's own estimator checks, with no expected failures."""
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastmlp import MLPClassifier, MLPRegressor


@parametrize_with_checks([
    MLPClassifier(max_iter=200),
    MLPRegressor(max_iter=200),
    MLPClassifier(solver="lbfgs", max_iter=100),
    MLPRegressor(solver="sgd", max_iter=200),
])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
