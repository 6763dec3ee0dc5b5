"""Divergence: a fit or partial_fit whose weights become non-finite is reported with scikit-learn's
exception and message; with early stopping the scores turn NaN and the best weights are kept; an
L-BFGS loss of NaN keeps finite weights, as in scikit-learn."""
import warnings

import numpy as np
import pytest
import sklearn.neural_network as sk

import fastmlp
from fastmlp import MLPRegressor

from _helpers import SKLEARN_VERSION, digits, needs_sklearn_loss


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("params", [
    dict(solver="sgd", learning_rate_init=1e6),
    dict(solver="sgd", learning_rate_init=1e6, batch_size=7, shuffle=False),
    pytest.param(dict(loss="poisson", solver="sgd", learning_rate_init=10.0),
                 marks=needs_sklearn_loss),
], ids=["sgd", "sgd-small-batches", "poisson"])
def test_divergence_is_reported_as_sklearn_does(params, dtype):
    Xd, yd = digits(300, dtype, scaled=False)
    messages = []
    for module in (fastmlp, sk):
        est = module.MLPRegressor(max_iter=5, random_state=0, **params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(ValueError, match="non-finite parameter weights") as info:
                est.fit(Xd, yd)
        messages.append(str(info.value))
    assert messages[0] == messages[1]


def test_divergence_in_partial_fit_is_reported():
    Xd, yd = digits(300, scaled=False)
    reg = MLPRegressor(solver="sgd", learning_rate_init=1e6, random_state=0)
    with pytest.raises(ValueError, match="non-finite parameter weights"):
        for _ in range(5):
            reg.partial_fit(Xd, yd)


@pytest.mark.parametrize("name", [
    pytest.param("MLPRegressor", marks=pytest.mark.skipif(
        SKLEARN_VERSION < (1, 6), reason="scikit-learn < 1.6's MLPRegressor raises 'Input "
        "contains NaN' scoring a diverged epoch; 1.6 gives a NaN score, as fastmlp does")),
    "MLPClassifier"])
def test_divergence_with_early_stopping_gives_nan_scores_and_keeps_the_best_weights(name):
    Xd, yd = digits(300, scaled=False)
    results = []
    for module in (fastmlp, sk):
        est = getattr(module, name)(solver="sgd", learning_rate_init=1e6, max_iter=15,
                                    random_state=0, early_stopping=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(Xd, yd)
        assert all(np.isfinite(w).all() for w in est.coefs_ + est.intercepts_)
        assert np.isfinite(est.predict(Xd).astype(float)).all()
        results.append((est.n_iter_, np.isnan(est.validation_scores_).tolist(),
                        est.best_validation_score_))
    (n_ours, nan_ours, best_ours), (n_theirs, nan_theirs, best_theirs) = results
    assert (n_ours, nan_ours) == (n_theirs, nan_theirs)
    assert best_ours == pytest.approx(best_theirs, rel=1e-9)
    if name == "MLPRegressor":
        assert any(nan_ours)


def test_nan_loss_from_lbfgs_keeps_finite_weights_as_sklearn_does():
    Xd, yd = digits(300, scaled=False)
    for module in (fastmlp, sk):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reg = module.MLPRegressor(solver="lbfgs", max_iter=5, random_state=0).fit(
                Xd * 1e200, yd)
        assert np.isnan(reg.loss_)
        assert all(np.isfinite(w).all() for w in reg.coefs_ + reg.intercepts_)
