"""Persistence: pickle and joblib as scikit-learn, skops' secure format with fastmlp's types trusted
by full name, the version stamp and its warning, and loaded states checked before use."""
import copy
import pickle
import subprocess
import sys
import warnings

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_regression

import fastmlp
from fastmlp import MLPClassifier, MLPRegressor
from fastmlp._engine.vocabulary import SOLVERS
from fastmlp.exceptions import InconsistentVersionWarning

from _helpers import digits


def fitted(solver="adam", dtype=np.float64, **params):
    X, y = digits(300, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MLPClassifier(hidden_layer_sizes=(12,), solver=solver, max_iter=5,
                             random_state=0, **params).fit(X, y), X, y


def assert_same_predictions(loaded, model, X):
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded._theta, model._theta)
    assert loaded._theta.dtype == model._theta.dtype
    # the weights are views into one owned flat vector again, as after fit
    assert all(a.base is loaded._theta for a in loaded.coefs_ + loaded.intercepts_)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    if hasattr(model, "predict_proba"):
        np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pickle_and_joblib_round_trip(tmp_path, dtype):
    model, X, _ = fitted(dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same version: no warning
        assert_same_predictions(pickle.loads(pickle.dumps(model)), model, X)
        joblib.dump(model, tmp_path / "model.joblib")
        assert_same_predictions(joblib.load(tmp_path / "model.joblib"), model, X)


def test_pickles_carry_fastmlp_version():
    model, _, _ = fitted()
    assert model.__getstate__()["_fastmlp_version"] == fastmlp.__version__
    assert MLPRegressor().__getstate__()["_fastmlp_version"] == fastmlp.__version__


def test_a_model_saved_before_batch_norm_existed_loads_and_trains_on():
    model, X, y = fitted()
    state = dict(model.__getstate__())
    for name in ("batch_norm", "batch_norm_momentum", "batch_norm_eps"):
        del state[name]
    state["_fastmlp_version"] = "0.0.9"
    loaded = MLPClassifier.__new__(MLPClassifier)
    with pytest.warns(InconsistentVersionWarning):
        loaded.__setstate__(state)
    assert loaded.get_params()["batch_norm"] is False
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    loaded.partial_fit(X, y)


@pytest.mark.parametrize("stamp, shown", [("0.0.1", "0.0.1"), (None, "unknown")])
def test_loading_another_version_warns(stamp, shown):
    model, X, _ = fitted()
    state = model.__getstate__()
    if stamp is None:
        del state["_fastmlp_version"]
    else:
        state["_fastmlp_version"] = stamp
    loaded = MLPClassifier.__new__(MLPClassifier)
    with pytest.warns(InconsistentVersionWarning) as record:
        loaded.__setstate__(state)
    warning = record[0].message
    assert warning.original_fastmlp_version == shown
    assert warning.current_fastmlp_version == fastmlp.__version__
    assert f"MLPClassifier from fastmlp version {shown} when using version" in str(warning)
    assert "_fastmlp_version" not in loaded.__dict__
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_unfitted_estimator_round_trips():
    model = MLPRegressor(hidden_layer_sizes=(3, 4), solver="sgd")
    loaded = pickle.loads(pickle.dumps(model))
    assert loaded.get_params() == model.get_params()


@pytest.mark.parametrize("damage, message", [
    (lambda s: s.update(_theta=s["_theta"][:-1]), "do not match its layer sizes"),
    (lambda s: s.update(n_features_in_=7), "do not match its layer sizes"),
    (lambda s: s.update(_theta=s["_theta"].astype(np.int64)), "not a 1-D float32 or float64"),
    (lambda s: s.update(_theta=s["_theta"].reshape(1, -1)), "not a 1-D float32 or float64"),
    (lambda s: s.update(activation="rot13"), "network cannot be built"),
    (lambda s: s.update(_batch_norm_running=s["_batch_norm_running"][:-1]),
     "batch normalization statistics do not match"),
    (lambda s: s.pop("_batch_norm_running"), "batch normalization statistics do not match"),
])
def test_an_inconsistent_state_fails_at_load(damage, message):
    model, _, _ = fitted()
    if "_batch_norm_running" in message or "batch normalization" in message:
        X, y = digits(100)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = MLPClassifier(hidden_layer_sizes=(8,), batch_norm=True, max_iter=2,
                                  random_state=0).fit(X, y)
    state = dict(model.__getstate__())
    damage(state)
    with pytest.raises(ValueError, match=message):
        MLPClassifier.__new__(MLPClassifier).__setstate__(state)


# -- skops -------------------------------------------------------------------------------------------

def test_trusted_types_are_full_names_of_fastmlp_types():
    assert "fastmlp._multilayer_perceptron.MLPClassifier" in fastmlp.SKOPS_TRUSTED_TYPES
    assert "fastmlp._multilayer_perceptron.MLPRegressor" in fastmlp.SKOPS_TRUSTED_TYPES
    assert all(name.startswith("fastmlp.") for name in fastmlp.SKOPS_TRUSTED_TYPES)


def every_fitted_model():
    X, y = digits(300)
    Xr, yr = make_regression(n_samples=120, n_features=5, n_targets=2, random_state=0)
    solvers = sorted(MLPClassifier._parameter_constraints["solver"][0].options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for solver in solvers:
            yield MLPClassifier(hidden_layer_sizes=(8,), solver=solver, max_iter=3,
                                random_state=0).fit(X, y), X
            yield MLPRegressor(hidden_layer_sizes=(8,), solver=solver, max_iter=3,
                               random_state=0).fit(Xr, yr), Xr
        yield MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, max_iter=3,
                            random_state=np.random.RandomState(0)).fit(X, y), X
        yield MLPClassifier(hidden_layer_sizes=(8, 6), batch_norm=True, max_iter=3,
                            random_state=0).fit(X, y), X
        yield MLPRegressor(hidden_layer_sizes=(8,), batch_norm=True, solver="lbfgs",
                           max_iter=3, random_state=0).fit(Xr, yr), Xr
        yield MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(
            X.astype(np.float32), np.array(["odd", "even"])[y % 2]), X.astype(np.float32)


def test_skops_round_trip_of_every_solver_and_task(tmp_path):
    sio = pytest.importorskip("skops.io")
    for model, X in every_fitted_model():
        path = tmp_path / "model.skops"
        sio.dump(model, path)
        assert set(sio.get_untrusted_types(file=path)) <= set(fastmlp.SKOPS_TRUSTED_TYPES)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loaded = sio.load(path, trusted=fastmlp.SKOPS_TRUSTED_TYPES)
        assert_same_predictions(loaded, model, X)


def test_skops_refuses_fastmlp_types_unless_trusted(tmp_path):
    sio = pytest.importorskip("skops.io")
    model, _, _ = fitted()
    sio.dump(model, tmp_path / "model.skops")
    from skops.io.exceptions import UntrustedTypesFoundException
    with pytest.raises(UntrustedTypesFoundException, match="Untrusted types found") as refused:
        sio.load(tmp_path / "model.skops")
    # fastmlp's own types are the ones refused, nothing else
    untrusted = sio.get_untrusted_types(file=tmp_path / "model.skops")
    assert untrusted and all(name.startswith("fastmlp.") for name in untrusted)
    assert all(name in str(refused.value) for name in untrusted)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_training_goes_on_after_a_skops_round_trip(tmp_path, solver):
    """The solver's state survives: partial_fit on the loaded model is bitwise partial_fit on
    the original."""
    sio = pytest.importorskip("skops.io")
    X, y = digits(300)
    model = MLPClassifier(hidden_layer_sizes=(8,), solver=solver, random_state=0)
    model.partial_fit(X, y, classes=np.arange(10))
    sio.dump(model, tmp_path / "model.skops")
    loaded = sio.load(tmp_path / "model.skops", trusted=fastmlp.SKOPS_TRUSTED_TYPES)
    for _ in range(2):
        model.partial_fit(X, y)
        loaded.partial_fit(X, y)
    np.testing.assert_array_equal(loaded._theta, model._theta)


# -- pickle / joblib: a fresh process, and training that goes on ---------------------------------

def models_to_persist():
    """(name, model, X, y): every solver, both dtypes, both tasks, string and multilabel
    targets, early stopping, a RandomState instance as random_state."""
    X, y = digits(300)
    X32 = X.astype(np.float32)
    Xr, yr = make_regression(n_samples=150, n_features=6, n_targets=2, random_state=0)
    multilabel = np.c_[y % 2, y > 4, y == 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield "adam-float32", MLPClassifier(hidden_layer_sizes=(16,), max_iter=5,
                                            random_state=0).fit(X32, y), X32, y
        strings = np.array(list("abc"))[y % 3]
        yield "sgd-strings-early-stopping", MLPClassifier(
            hidden_layer_sizes=(16, 8), solver="sgd", early_stopping=True, max_iter=5,
            random_state=np.random.RandomState(1)).fit(X, strings), X, strings
        yield "lbfgs-multilabel", MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs",
                                                max_iter=5, random_state=0).fit(X, multilabel), \
            X, multilabel
        yield "regressor-two-outputs", MLPRegressor(hidden_layer_sizes=(8,), max_iter=5,
                                                    random_state=0).fit(Xr, yr), Xr, yr
        counts = np.abs(yr[:, 0])
        yield "poisson-lbfgs", MLPRegressor(loss="poisson", solver="lbfgs", max_iter=5,
                                            hidden_layer_sizes=(4,), random_state=0).fit(
            Xr, counts), Xr, counts


def outputs(model, X):
    if hasattr(model, "predict_proba"):
        return [model.predict(X), model.predict_proba(X)]
    return [model.predict(X)]


FRESH_PROCESS = """
import sys, joblib, numpy as np
for path in sys.argv[1:]:
    model, X, y = joblib.load(path)
    result = [model.predict(X)]
    if hasattr(model, "predict_proba"):
        result.append(model.predict_proba(X))
    model.set_params(warm_start=True, max_iter=2)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    result.append(model._theta)
    joblib.dump(result, path + ".out")
"""


def test_a_fresh_process_predicts_and_trains_on_as_this_one(tmp_path):
    paths, expected = [], []
    for name, model, X, y in models_to_persist():
        path = str(tmp_path / f"{name}.joblib")
        joblib.dump((model, X, y), path)
        continued = pickle.loads(pickle.dumps(model)).set_params(warm_start=True, max_iter=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            continued.fit(X, y)
        paths.append(path)
        expected.append(outputs(model, X) + [continued._theta])
    subprocess.run([sys.executable, "-c", FRESH_PROCESS, *paths], check=True)
    for path, wanted in zip(paths, expected):
        got = joblib.load(path + ".out")
        assert len(got) == len(wanted)
        for a, b in zip(got, wanted):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("how", ["pickle", "joblib", "joblib-mmap", "deepcopy"])
def test_round_trips_predict_the_same(tmp_path, how):
    for name, model, X, _ in models_to_persist():
        if how == "pickle":
            loaded = pickle.loads(pickle.dumps(model))
        elif how == "deepcopy":
            loaded = copy.deepcopy(model)
        else:
            joblib.dump(model, tmp_path / "m.joblib")
            loaded = joblib.load(tmp_path / "m.joblib",
                                 mmap_mode="r" if how == "joblib-mmap" else None)
        assert all(a.base is loaded._theta for a in loaded.coefs_ + loaded.intercepts_)
        for a, b in zip(outputs(loaded, X), outputs(model, X)):
            np.testing.assert_array_equal(a, b)


# Every stochastic solver, the torch.optim ones too: each keeps its own state (moments, sums of
# squares, NAdam's product of momenta) that must survive the round trip.
STOCHASTIC_SOLVERS = list(SOLVERS)


@pytest.mark.parametrize("solver", STOCHASTIC_SOLVERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_partial_fit_goes_on_identically_after_pickle(solver, dtype, batch_norm):
    X, y = digits(300, dtype)
    model = MLPClassifier(hidden_layer_sizes=(8,), solver=solver, batch_norm=batch_norm,
                          random_state=np.random.RandomState(0))
    model.partial_fit(X, y, classes=np.arange(10))
    loaded = pickle.loads(pickle.dumps(model))
    first_layer = loaded.coefs_[0]
    before = first_layer.copy()
    for _ in range(3):
        model.partial_fit(X, y)
        loaded.partial_fit(X, y)
    np.testing.assert_array_equal(loaded._theta, model._theta)
    if batch_norm:
        np.testing.assert_array_equal(loaded._batch_norm_running, model._batch_norm_running)
    # coefs_ are views into the weights again: the array held before training moved with them.
    assert first_layer is loaded.coefs_[0] and first_layer.base is loaded._theta
    assert not np.array_equal(first_layer, before)
    assert loaded.t_ == model.t_ and loaded.loss_curve_ == model.loss_curve_


@pytest.mark.parametrize("solver", STOCHASTIC_SOLVERS + ["lbfgs"])
def test_warm_start_goes_on_identically_after_joblib(tmp_path, solver):
    X, y = digits(300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MLPRegressor(hidden_layer_sizes=(8,), solver=solver, max_iter=4, warm_start=True,
                             early_stopping=solver != "lbfgs", random_state=0).fit(X, y)
        joblib.dump(model, tmp_path / "m.joblib")
        loaded = joblib.load(tmp_path / "m.joblib")
        model.fit(X, y)
        loaded.fit(X, y)
    np.testing.assert_array_equal(loaded._theta, model._theta)
    assert loaded.n_iter_ == model.n_iter_


def test_clone_of_a_fitted_model_is_unfitted_with_the_same_parameters():
    model, X, y = fitted(solver="sgd", alpha=1e-3)
    twin = clone(model)
    assert twin.get_params() == model.get_params() and not hasattr(twin, "coefs_")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(twin.fit(X, y)._theta, model._theta)
