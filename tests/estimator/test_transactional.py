"""A call that fails leaves the model exactly as it was: every attribute bitwise the same as a
model that never saw the call (scikit-learn is weaker here: a failed call may leave half-new
attributes), and a failed first partial_fit leaves the model unfitted."""
import warnings

import numpy as np
import pytest
import sklearn.neural_network

import fastmlp
from fastmlp import MLPClassifier

from _helpers import tiny_problem, with_value

pd = pytest.importorskip("pandas")

X, Y_CLASS, Y_REG = tiny_problem()


def frozen(value):
    """A comparable, hashable image of an attribute's value (arrays by bytes, NaN-safe)."""
    if isinstance(value, np.ndarray) and value.dtype == object:
        return ("ndarray", value.shape, tuple(frozen(v) for v in value.ravel()))
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(frozen(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((k, frozen(v)) for k, v in sorted(value.items(), key=str)))
    if isinstance(value, np.random.RandomState):
        return ("RandomState", frozen(value.get_state()))
    if isinstance(value, float):
        return ("float", repr(value))
    if isinstance(value, (str, int, bool, type(None), np.generic)):
        return value
    if hasattr(value, "__dict__"):
        return (type(value).__name__, frozen(vars(value)))
    return (type(value).__name__, repr(value))


def state(est):
    """Every attribute of the estimator (the engine's cached geometry and partial_fit's kept
    trainer aside: scratch, tested in test_partial_fit_steady), frozen."""
    return {k: frozen(v) for k, v in vars(est).items()
            if k not in ("_network_cache", "_trainer_cache")}


def _frame(array, prefix="f"):
    return pd.DataFrame(array, columns=[f"{prefix}{i}" for i in range(array.shape[1])])


# (estimator, how it was fitted, the failing call); each failing call raises.
FAILING_CALLS = {
    "nan X after a DataFrame fit": (
        "MLPClassifier", {}, lambda e: e.fit(with_value(X, (0, 0), np.nan), Y_CLASS)),
    "new classes with a bad sample_weight": (
        "MLPClassifier", {}, lambda e: e.fit(X, np.array(list("ab") * 20),
                                             sample_weight=np.ones(3))),
    "new features with an all-zero sample_weight": (
        "MLPRegressor", {}, lambda e: e.fit(np.ones((40, 7)), Y_REG,
                                            sample_weight=np.zeros(40))),
    "new column names with a bad y": (
        "MLPRegressor", {}, lambda e: e.fit(_frame(X, "g"), with_value(Y_REG, 1, np.inf))),
    "early stopping with a validation set too small": (
        "MLPClassifier", {}, lambda e: e.set_params(early_stopping=True).fit(X[:9], Y_CLASS[:9])),
    "early stopping on one sample": (
        "MLPRegressor", {}, lambda e: e.set_params(early_stopping=True).fit(X[:1], Y_REG[:1])),
    "unseen labels in partial_fit": (
        "MLPClassifier", {"partial_fit": True}, lambda e: e.partial_fit(X, Y_CLASS + 5)),
    "fewer features in partial_fit": (
        "MLPClassifier", {"partial_fit": True}, lambda e: e.partial_fit(X[:, :2], Y_CLASS)),
    "more outputs in partial_fit": (
        "MLPRegressor", {"partial_fit": True}, lambda e: e.partial_fit(X, np.c_[Y_REG, Y_REG])),
    "warm start with other classes": (
        "MLPClassifier", {"warm_start": True}, lambda e: e.fit(X, Y_CLASS % 2)),
    "warm start with a hidden layer size no integer": (  # (another integer size trains on)
        "MLPRegressor", {"warm_start": True},
        lambda e: e.set_params(hidden_layer_sizes=(6.5,)).fit(X, Y_REG)),
    "warm start with nan y": (
        "MLPRegressor", {"warm_start": True, "solver": "lbfgs"},
        lambda e: e.fit(X, with_value(Y_REG, 2, np.nan))),
    "an invalid parameter": (
        "MLPClassifier", {}, lambda e: e.set_params(alpha=-1).fit(X, Y_CLASS)),
    "a single row with nan": (
        "MLPRegressor", {"solver": "sgd"}, lambda e: e.fit(_frame(np.full((1, 3), np.nan)), [1.0])),
}


# Where scikit-learn has no error of its own, fastmlp's (else each case raises scikit-learn's
# exception with scikit-learn's message, checked against scikit-learn's MLP on the same call).
FASTMLPS_OWN_ERRORS = {
    # scikit-learn fails inside numpy's matmul
    "more outputs in partial_fit": "y has 2 outputs where the model was fitted with 1; the number "
                                   "of outputs cannot change with warm_start or partial_fit.",
}


def fitted_on_a_frame(name, how, module=fastmlp):
    params = {k: v for k, v in how.items() if k != "partial_fit"}
    est = getattr(module, name)(hidden_layer_sizes=(5,), max_iter=3, random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if how.get("partial_fit") and name == "MLPClassifier":
            est.partial_fit(_frame(X), Y_CLASS, classes=[0, 1, 2])
        elif how.get("partial_fit"):
            est.partial_fit(_frame(X), Y_REG)
        else:
            est.fit(_frame(X), Y_CLASS if name == "MLPClassifier" else Y_REG)
    return est


# What scikit-learn 1.9 raises where an older installed scikit-learn has no such check (its MLP
# takes sample_weight from 1.7 on, and checks the early-stopping split's size in later releases
# than 1.5): fastmlp keeps the newer, stricter behaviour on every version.
NEWER_SKLEARNS_ERRORS = {
    "new classes with a bad sample_weight": "sample_weight.shape == (3,), expected (40,)!",
    "new features with an all-zero sample_weight":
        "Sample weights must contain at least one non-zero number.",
    "early stopping with a validation set too small":
        "The validation set is too small. Increase 'validation_fraction' or the size of your "
        "dataset.",
}


def sklearns_error(case, name, how, call):
    """(type, message) of what scikit-learn's own MLP raises on the same call, or scikit-learn
    1.9's where the installed one lacks the check (NEWER_SKLEARNS_ERRORS)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call(fitted_on_a_frame(name, how, sklearn.neural_network))
    except Exception as exc:
        lacks_sample_weight = isinstance(exc, TypeError) and "sample_weight" in str(exc)
        if not (lacks_sample_weight and case in NEWER_SKLEARNS_ERRORS):
            return type(exc), str(exc)
    if case not in NEWER_SKLEARNS_ERRORS:
        pytest.fail(f"scikit-learn {sklearn.__version__} raises nothing on {case!r}")
    return ValueError, NEWER_SKLEARNS_ERRORS[case]


@pytest.mark.parametrize("case", list(FAILING_CALLS))
def test_a_failed_call_leaves_a_fitted_model_as_it_was(case):
    name, how, call = FAILING_CALLS[case]
    est = fitted_on_a_frame(name, how)
    probe = _frame(X[:7])
    predictions = est.predict(probe)
    if case in FASTMLPS_OWN_ERRORS:
        expected_type, expected_message = ValueError, FASTMLPS_OWN_ERRORS[case]
    else:
        expected_type, expected_message = sklearns_error(case, name, how, call)
    with pytest.raises(expected_type) as ours:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call(est)
    assert ours.type is expected_type and str(ours.value) == expected_message
    # The same model, fitted again, given the hyper-parameters the failing call set (set_params
    # is the user's doing): every fitted attribute must be bitwise the same.
    reference = fitted_on_a_frame(name, how).set_params(**est.get_params())
    assert state(est) == state(reference)
    assert all(c.base is est._theta for c in est.coefs_ + est.intercepts_)
    np.testing.assert_array_equal(est.predict(probe), predictions)


def test_a_failed_first_partial_fit_leaves_the_model_unfitted():
    clf = MLPClassifier()
    with pytest.raises(ValueError, match="NaN"):
        clf.partial_fit(with_value(X, (0, 0), np.nan), Y_CLASS, classes=[0, 1, 2])
    assert state(clf) == state(MLPClassifier())
    # ... so the next call is a first call again, and must give classes.
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, Y_CLASS)
