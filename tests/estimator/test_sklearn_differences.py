"""Where fastmlp's behaviour is scikit-learn's although it could be surprising, and where it
differs on purpose (README.md, "Where fastmlp differs from scikit-learn, on purpose")."""
import re
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris

from fastmlp import MLPClassifier, MLPRegressor

from _helpers import tiny_problem

X, Y_CLASS, Y_REG = tiny_problem()


def quietly(call):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call()


@pytest.mark.parametrize("how", ["warm_start", "partial_fit"])
@pytest.mark.parametrize("new_sizes", [(7,), (7, 3)], ids=["same depth", "another depth"])
def test_other_hidden_layer_sizes_continue_the_fitted_network_with_a_warning(how, new_sizes):
    """scikit-learn trains the fitted layers on, silently (tests/estimator/test_validation.py
    checks it side by side), and fails with an AttributeError when the number of layers
    changes; fastmlp trains the fitted layers on in both cases, and warns."""
    params = dict(hidden_layer_sizes=(5,), max_iter=3, random_state=0, warm_start=True)
    same = quietly(lambda: MLPRegressor(**params).fit(X, Y_REG))
    changed = quietly(lambda: MLPRegressor(**params).fit(X, Y_REG))
    changed.set_params(hidden_layer_sizes=new_sizes)
    with pytest.warns(UserWarning, match=rf"hidden_layer_sizes={re.escape(repr(new_sizes))} "
                      r"is ignored.*of hidden layer sizes \(5,\)"):
        (changed.fit if how == "warm_start" else changed.partial_fit)(X, Y_REG)
    quietly(lambda: (same.fit if how == "warm_start" else same.partial_fit)(X, Y_REG))
    for a, b in zip(changed.coefs_ + changed.intercepts_, same.coefs_ + same.intercepts_):
        np.testing.assert_array_equal(a, b)


def test_warm_start_after_early_stopping_goes_on_from_the_best_weights():
    """scikit-learn's coefs_ become the very arrays of its saved best after an early-stopping
    fit, so a warm_start fit trains them in place, and with no better epoch it "restores" the
    drifted weights. fastmlp keeps the best weights apart: with no better epoch, a warm_start
    fit ends on exactly the best weights of the fits so far."""
    X_iris, y_iris = load_iris(return_X_y=True)
    clf = quietly(lambda: MLPClassifier(
        (8,), early_stopping=True, warm_start=True, learning_rate_init=0.01, max_iter=200,
        random_state=0).fit(X_iris, y_iris))
    best = [a.copy() for a in clf.coefs_ + clf.intercepts_]
    best_score, n_scores = clf.best_validation_score_, len(clf.validation_scores_)
    clf.set_params(learning_rate_init=1.0, max_iter=5)  # epochs that only make it worse
    quietly(lambda: clf.fit(X_iris, y_iris))
    assert max(clf.validation_scores_[n_scores:]) < best_score  # no better epoch
    assert clf.best_validation_score_ == best_score
    for a, b in zip(clf.coefs_ + clf.intercepts_, best):
        np.testing.assert_array_equal(a, b)
