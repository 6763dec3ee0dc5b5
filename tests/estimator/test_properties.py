"""Property tests (hypothesis): whatever the shapes, dtypes, targets and hyper-parameters, a fit
ends in a usable model or in one of scikit-learn's errors — never a crash — and its outputs are
finite, of the documented shapes, with probabilities that sum to one.

The search covers one sample per class, one feature, batch_size above n_samples, sample weights,
every solver and every activation the estimators accept; max_iter stays small so that each example
costs milliseconds.
"""
import os
import warnings

import numpy as np
import pytest
import sklearn.neural_network as sk

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import fastmlp  # noqa: E402
from fastmlp import MLPClassifier, MLPRegressor  # noqa: E402

from _helpers import (  # noqa: E402
    SKLEARN_MLP_HAS_LOSS,
    SKLEARN_MLP_HAS_SAMPLE_WEIGHT,
    SKLEARN_VERSION,
)

ACTIVATIONS = sorted(MLPClassifier._parameter_constraints["activation"][0].options)
SKLEARN_ACTIVATIONS = sk.MLPClassifier._parameter_constraints["activation"][0].options
SKLEARN_SOLVERS = sk.MLPClassifier._parameter_constraints["solver"][0].options
SOLVERS = sorted(MLPClassifier._parameter_constraints["solver"][0].options)
TASKS = ["binary", "multiclass", "one-per-class", "single-class", "multilabel", "strings",
         "regression", "multi-output", "poisson"]

DIVERGED = "Solver produced non-finite parameter weights"

# 60 examples a test by default (seconds); FASTMLP_HYPOTHESIS_EXAMPLES=5000 for a long search.
QUICK = settings(max_examples=int(os.environ.get("FASTMLP_HYPOTHESIS_EXAMPLES", "60")),
                 deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def problems(draw):
    """(X, y, sample_weight, task) of a random shape, dtype and scale."""
    task = draw(st.sampled_from(TASKS))
    n_features = draw(st.integers(1, 8))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.RandomState(seed)
    if task == "one-per-class":
        n_classes = draw(st.integers(2, 6))
        n_samples = n_classes
    else:
        n_classes = draw(st.integers(2, 5))
        n_samples = draw(st.integers(1, 60))
    scale = 10.0 ** draw(st.integers(-3, 3))
    X = (rng.standard_normal((n_samples, n_features)) * scale).astype(dtype)
    if task == "binary":
        y = rng.randint(0, 2, n_samples)
    elif task in ("multiclass", "one-per-class"):
        y = np.arange(n_samples) % n_classes
        rng.shuffle(y)
    elif task == "single-class":
        y = np.full(n_samples, 7)
    elif task == "multilabel":
        y = rng.randint(0, 2, (n_samples, n_classes))
    elif task == "strings":
        y = np.array(["cat", "dog", "eel"])[rng.randint(0, 3, n_samples)]
    elif task == "regression":
        y = rng.standard_normal(n_samples) * scale
    elif task == "multi-output":
        y = rng.standard_normal((n_samples, n_classes))
    else:  # poisson counts
        y = rng.poisson(2.0, n_samples).astype(float)
    weighted = draw(st.booleans())
    sample_weight = rng.uniform(0.1, 2.0, n_samples) if weighted else None
    return X, y, sample_weight, task


@st.composite
def hyper_parameters(draw, n_samples):
    solver = draw(st.sampled_from(SOLVERS))
    params = dict(
        hidden_layer_sizes=tuple(draw(st.lists(st.integers(1, 10), min_size=0, max_size=3))),
        activation=draw(st.sampled_from(ACTIVATIONS)),
        solver=solver,
        alpha=draw(st.sampled_from([0.0, 1e-4, 0.1, 1.0])),
        batch_size=draw(st.one_of(st.just("auto"), st.integers(1, n_samples + 10))),
        learning_rate_init=draw(st.sampled_from([1e-4, 1e-3, 1e-2, 0.1])),
        max_iter=draw(st.integers(1, 4)),
        shuffle=draw(st.booleans()),
        random_state=draw(st.integers(0, 1000)),
        early_stopping=draw(st.booleans()) if solver != "lbfgs" else False,
        momentum=draw(st.sampled_from([0.0, 0.9])),
        nesterovs_momentum=draw(st.booleans()),
        learning_rate=draw(st.sampled_from(["constant", "invscaling", "adaptive"])),
    )
    return params


def fit_or_sklearns_error(name, params, X, y, sample_weight):
    """The fitted estimator; or None when fit reported divergence, or raised the very error
    scikit-learn's MLP raises on the same call (e.g. a validation split too small to stratify).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return getattr(fastmlp, name)(**params).fit(X, y, sample_weight=sample_weight)
        except ValueError as exc:
            if str(exc).startswith(DIVERGED):
                return None  # float32 diverges in fastmlp where scikit-learn computes in float64
            ours = str(exc)
        if params["activation"] not in SKLEARN_ACTIVATIONS:  # fastmlp's own: not in the error
            params = dict(params, activation="relu")
        if params["solver"] not in SKLEARN_SOLVERS:  # likewise
            params = dict(params, solver="adam")
        fit_params = {"sample_weight": sample_weight}
        # scikit-learn < 1.7 has no sample_weight and no `loss` (squared error only), and
        # validates on a single sample: an error of such a fit has nothing to be compared with.
        if SKLEARN_VERSION < (1, 7) and ours.startswith("The validation set is too small"):
            hypothesis.reject()
        if not SKLEARN_MLP_HAS_SAMPLE_WEIGHT:
            if sample_weight is not None:
                hypothesis.reject()
            fit_params = {}
        if not SKLEARN_MLP_HAS_LOSS and "loss" in params:
            if params["loss"] != "squared_error":
                hypothesis.reject()
            params = {key: value for key, value in params.items() if key != "loss"}
        with pytest.raises(ValueError) as theirs:
            getattr(sk, name)(**params).fit(X, y, **fit_params)
        assert str(theirs.value) == ours
        return None


def assert_usable(est, X, task):
    """Outputs of the documented shapes for new data of several sizes; finite, and
    probabilities that sum to one, unless the weights have grown so large (finite, but near a
    diverged fit's) that the data overflow them, as they would scikit-learn's."""
    dtype = np.float32 if X.dtype == np.float32 else np.float64
    assert all(w.dtype == dtype and np.isfinite(w).all() for w in est.coefs_ + est.intercepts_)
    assert all(c.base is est._theta for c in est.coefs_ + est.intercepts_)
    assert est.n_iter_ <= est.max_iter
    tame = np.abs(est._theta).max() < 1e6 and task != "poisson"  # exp() overflows by design
    rng = np.random.RandomState(0)
    for n in (1, X.shape[0], 300):  # one row, the training size, OpenMP's threaded path
        X_new = (rng.standard_normal((n, X.shape[1])) * np.abs(X).max()).astype(X.dtype)
        predicted = est.predict(X_new)
        if task in ("regression", "poisson"):
            assert predicted.shape == (n,)
            assert np.isfinite(predicted).all() or not tame
        elif task == "multi-output":
            assert predicted.shape == (n, est.n_outputs_)
            assert np.isfinite(predicted).all() or not tame
        else:
            proba = est.predict_proba(X_new)
            if task == "multilabel":
                assert proba.shape == predicted.shape == (n, len(est.classes_))
                assert set(np.unique(predicted)) <= {0, 1}
            else:
                assert proba.shape == (n, max(2, len(est.classes_)))
                assert predicted.shape == (n,) and set(predicted) <= set(est.classes_)
                assert est.predict_log_proba(X_new).shape == proba.shape
            if tame:
                assert np.isfinite(proba).all() and (proba >= 0).all() and (proba <= 1).all()
                if task != "multilabel":
                    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5 if
                                               dtype == np.float32 else 1e-12)


@QUICK
@given(data=st.data())
def test_any_fit_gives_a_usable_model_or_sklearns_error(data):
    X, y, sample_weight, task = data.draw(problems())
    params = data.draw(hyper_parameters(X.shape[0]))
    if task in ("regression", "multi-output", "poisson"):
        name = "MLPRegressor"
        params["loss"] = "poisson" if task == "poisson" else "squared_error"
    else:
        name = "MLPClassifier"
    fitted = fit_or_sklearns_error(name, params, X, y, sample_weight)
    if fitted is not None:
        assert_usable(fitted, X, task)


@QUICK
@given(data=st.data())
def test_partial_fit_over_random_batches_stays_usable(data):
    X, y, sample_weight, task = data.draw(problems())
    if task in ("multilabel", "single-class", "poisson"):
        task = "regression"
        y = np.asarray(X[:, 0], dtype=np.float64)
    params = data.draw(hyper_parameters(X.shape[0]))
    params.update(solver=data.draw(st.sampled_from(["sgd", "adam"])), early_stopping=False)
    regression = task in ("regression", "multi-output")
    est = (MLPRegressor if regression else MLPClassifier)(**params)
    classes = {} if regression else {"classes": np.unique(y)}
    cuts = sorted(data.draw(st.lists(st.integers(0, X.shape[0]), min_size=1, max_size=4)))
    bounds = [0, *cuts, X.shape[0]]
    fitted = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            if hi == lo:
                continue
            weights = None if sample_weight is None else sample_weight[lo:hi]
            try:
                est.partial_fit(X[lo:hi], y[lo:hi], sample_weight=weights, **classes)
            except ValueError as exc:
                assert str(exc).startswith(DIVERGED)
                return
            fitted = True
    if fitted:
        assert_usable(est, X, task)


@QUICK
@given(data=st.data())
def test_refit_with_the_same_seed_is_bitwise_the_same(data):
    X, y, sample_weight, task = data.draw(problems())
    if task in ("regression", "multi-output", "poisson"):
        return
    params = data.draw(hyper_parameters(X.shape[0]))
    first = fit_or_sklearns_error("MLPClassifier", params, X, y, sample_weight)
    second = fit_or_sklearns_error("MLPClassifier", params, X, y, sample_weight)
    assert (first is None) == (second is None)
    if first is not None:
        np.testing.assert_array_equal(first._theta, second._theta)
        np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
