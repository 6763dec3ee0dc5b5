"""Reliability: bad input, divergence, Ctrl-C, threads, determinism, memory.

Each behaviour scikit-learn has is checked side by side with scikit-learn's MLP (same exception
type and message, same outcome); where scikit-learn is weaker (a failed call that leaves half-new
attributes, an L-BFGS fit that a Ctrl-C aborts), fastmlp's stronger promise is checked alone.
Signals, thread counts and memory are measured in subprocesses, so that each starts clean.
The test of arrays past 2^31 elements needs ~12 GB and minutes: it runs only with
FASTMLP_BIG_TESTS=1.
"""
import os
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn.neural_network as sk
from sklearn.datasets import load_digits
from threadpoolctl import threadpool_info

import fastmlp
from fastmlp import MLPClassifier, MLPRegressor
from fastmlp import _runtime

pd = pytest.importorskip("pandas")

RNG = np.random.RandomState(0)
X = RNG.rand(40, 3)
Y_CLASS = np.arange(40) % 3
Y_REG = RNG.rand(40)


def _with(array, index, value):
    array = array.copy()
    array[index] = value
    return array


def fitted(module, name, **params):
    """A small model of `module` (fastmlp or scikit-learn), fitted quietly."""
    params = {"hidden_layer_sizes": (5,), "max_iter": 3, "random_state": 0, **params}
    y = Y_CLASS if name == "MLPClassifier" else Y_REG
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(module, name)(**params).fit(X, y)


# -- bad input: scikit-learn's exception and message ------------------------------------------------
# Each case is a call on a module (fastmlp, or scikit-learn's sklearn.neural_network).

BAD_INPUT = {
    "nan in X": lambda m: m.MLPClassifier(max_iter=2).fit(_with(X, (0, 0), np.nan), Y_CLASS),
    "inf in X": lambda m: m.MLPRegressor(max_iter=2).fit(_with(X, (3, 1), np.inf), Y_REG),
    "-inf in X, float32": lambda m: m.MLPRegressor(max_iter=2).fit(
        _with(X, (3, 1), -np.inf).astype(np.float32), Y_REG),
    "nan in y (regression)": lambda m: m.MLPRegressor(max_iter=2).fit(X, _with(Y_REG, 0, np.nan)),
    "inf in y (regression)": lambda m: m.MLPRegressor(max_iter=2).fit(X, _with(Y_REG, 0, np.inf)),
    "nan in y (classification)": lambda m: m.MLPClassifier(max_iter=2).fit(
        X, _with(Y_CLASS.astype(float), 0, np.nan)),
    "nan in sparse X": lambda m: m.MLPClassifier(max_iter=2).fit(
        sp.csr_matrix(_with(X, (0, 0), np.nan)), Y_CLASS),
    "empty X": lambda m: m.MLPClassifier(max_iter=2).fit(np.empty((0, 3)), np.empty(0)),
    "no features": lambda m: m.MLPRegressor(max_iter=2).fit(np.empty((5, 0)), np.ones(5)),
    "1-D X": lambda m: m.MLPClassifier(max_iter=2).fit(X[:, 0], Y_CLASS),
    "3-D X": lambda m: m.MLPRegressor(max_iter=2).fit(X[:, :, None], Y_REG),
    "1-D X at predict": lambda m: fitted(m, "MLPRegressor").predict(X[0]),
    "mismatched lengths": lambda m: m.MLPClassifier(max_iter=2).fit(X, Y_CLASS[:-1]),
    "strings in X": lambda m: m.MLPClassifier(max_iter=2).fit(np.array([["a", "b"], ["c", "d"]]),
                                                              [0, 1]),
    "objects in X": lambda m: m.MLPRegressor(max_iter=2).fit(
        np.array([[1, "b"], [2, "d"]], dtype=object), [0.0, 1.0]),
    "complex X": lambda m: m.MLPClassifier(max_iter=2).fit(X.astype(complex), Y_CLASS),
    "ragged X": lambda m: m.MLPClassifier(max_iter=2).fit([[1, 2], [3]], [0, 1]),
    "continuous y for a classifier": lambda m: m.MLPClassifier(max_iter=2).fit(X, Y_REG),
    "fewer features at predict": lambda m: fitted(m, "MLPClassifier").predict(X[:, :2]),
    "more features at predict_proba": lambda m: fitted(m, "MLPClassifier").predict_proba(
        np.ones((2, 5))),
    "wrong features at predict (regressor)": lambda m: fitted(m, "MLPRegressor").predict(
        np.ones((2, 5))),
    "wrong features at score": lambda m: fitted(m, "MLPClassifier").score(X[:, :2], Y_CLASS),
    "nan at predict": lambda m: fitted(m, "MLPClassifier").predict(_with(X, (0, 0), np.nan)),
    "empty X at predict": lambda m: fitted(m, "MLPRegressor").predict(np.empty((0, 3))),
    "predict before fit": lambda m: m.MLPClassifier().predict(X),
    "predict_proba before fit": lambda m: m.MLPClassifier().predict_proba(X),
    "labels unseen by partial_fit": lambda m: m.MLPClassifier().partial_fit(
        X, Y_CLASS, classes=[0, 1, 2]).partial_fit(X, Y_CLASS + 1),
    "partial_fit without classes": lambda m: m.MLPClassifier().partial_fit(X, Y_CLASS),
    "partial_fit with other classes": lambda m: m.MLPClassifier().partial_fit(
        X, Y_CLASS, classes=[0, 1, 2]).partial_fit(X, Y_CLASS, classes=[0, 1, 2, 3]),
    "partial_fit with fewer features": lambda m: m.MLPClassifier().partial_fit(
        X, Y_CLASS, classes=[0, 1, 2]).partial_fit(X[:, :2], Y_CLASS),
    "partial_fit with lbfgs": lambda m: m.MLPClassifier(solver="lbfgs").partial_fit(
        X, Y_CLASS, classes=[0, 1, 2]),
    "partial_fit with early_stopping": lambda m: m.MLPClassifier(early_stopping=True).partial_fit(
        X, Y_CLASS, classes=[0, 1, 2]),
    "warm_start with other classes": lambda m: fitted(m, "MLPClassifier", warm_start=True).fit(
        X, Y_CLASS % 2),
    "warm_start with other features": lambda m: fitted(m, "MLPRegressor", warm_start=True).fit(
        X[:, :2], Y_REG),
    "validation set too small": lambda m: m.MLPClassifier(
        early_stopping=True, validation_fraction=0.01).fit(X, Y_CLASS),
    "early stopping on one sample": lambda m: m.MLPRegressor(early_stopping=True).fit(
        X[:1], Y_REG[:1]),
    "sample_weight of the wrong length": lambda m: m.MLPClassifier(max_iter=2).fit(
        X, Y_CLASS, sample_weight=np.ones(5)),
    "sample_weight with nan": lambda m: m.MLPRegressor(max_iter=2).fit(
        X, Y_REG, sample_weight=_with(np.ones(40), 0, np.nan)),
    "sample_weight all zero": lambda m: m.MLPClassifier(max_iter=2).fit(
        X, Y_CLASS, sample_weight=np.zeros(40)),
    "sample_weight 2-D": lambda m: m.MLPClassifier(max_iter=2).fit(
        X, Y_CLASS, sample_weight=np.ones((40, 1))),
    "sample_weight of strings": lambda m: m.MLPClassifier(max_iter=2).fit(
        X, Y_CLASS, sample_weight=["a"] * 40),
    "hidden_layer_sizes 0": lambda m: m.MLPClassifier(hidden_layer_sizes=(0,)).fit(X, Y_CLASS),
    "hidden_layer_sizes negative": lambda m: m.MLPRegressor(hidden_layer_sizes=(3, -1)).fit(
        X, Y_REG),
    "hidden_layer_sizes a string": lambda m: m.MLPClassifier(hidden_layer_sizes="abc").fit(
        X, Y_CLASS),
    "learning_rate_init negative": lambda m: m.MLPClassifier(learning_rate_init=-1).fit(
        X, Y_CLASS),
    "unknown solver": lambda m: m.MLPClassifier(solver="newton").fit(X, Y_CLASS),
    "unknown activation": lambda m: m.MLPRegressor(activation="no-such").fit(X, Y_REG),
    "unknown loss": lambda m: m.MLPRegressor(loss="hinge").fit(X, Y_REG),
    "batch_size 0": lambda m: m.MLPClassifier(batch_size=0).fit(X, Y_CLASS),
    "max_iter 0": lambda m: m.MLPClassifier(max_iter=0).fit(X, Y_CLASS),
    "alpha negative": lambda m: m.MLPClassifier(alpha=-1.0).fit(X, Y_CLASS),
    "momentum above 1": lambda m: m.MLPClassifier(solver="sgd", momentum=1.5).fit(X, Y_CLASS),
    "beta_2 of 1": lambda m: m.MLPClassifier(beta_2=1.0).fit(X, Y_CLASS),
    "validation_fraction 1": lambda m: m.MLPClassifier(
        early_stopping=True, validation_fraction=1.0).fit(X, Y_CLASS),
    "n_iter_no_change 0": lambda m: m.MLPClassifier(n_iter_no_change=0).fit(X, Y_CLASS),
    "max_fun 0": lambda m: m.MLPClassifier(solver="lbfgs", max_fun=0).fit(X, Y_CLASS),
    "shuffle not a bool": lambda m: m.MLPClassifier(shuffle="yes").fit(X, Y_CLASS),
    # What scikit-learn accepts, fastmlp accepts the same way.
    "a single class": lambda m: fitted(m, "MLPClassifier").fit(X, np.zeros(40)).predict(X[:3]),
    "a single class, lbfgs": lambda m: m.MLPClassifier(solver="lbfgs", max_iter=5).fit(
        X, ["a"] * 40).predict_proba(X[:3]).shape,
    "one sample": lambda m: m.MLPRegressor(max_iter=2).fit(X[:1], Y_REG[:1]).predict(X).shape,
    "integer X": lambda m: m.MLPRegressor(max_iter=2).fit((X * 10).astype(int), Y_REG).n_iter_,
    "boolean y, regression": lambda m: m.MLPRegressor(max_iter=2).fit(X, Y_CLASS == 0).n_iter_,
    "negative sample_weight": lambda m: m.MLPRegressor(max_iter=2).fit(
        X, Y_REG, sample_weight=-np.ones(40)).n_iter_,
}


def outcome(call, module):
    """('raised', type, message) or ('returned', repr of the result)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = call(module)
        except Exception as exc:  # noqa: BLE001 - the exception is what is compared
            return ("raised", type(exc).__name__, str(exc))
    if hasattr(result, "get_params"):
        result = type(result).__name__
    return ("returned", repr(result))


def options_apart(message):
    """The message with each {option, ...} set taken out, and those sets (whose order of
    printing is a set's, not a promise)."""
    sets = [frozenset(re.findall(r"'([^']*)'", found)) for found in re.findall(r"{[^}]*}", message)]
    return re.sub(r"{[^}]*}", "{...}", message), sets


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_gets_sklearns_exception_and_message(case):
    ours, theirs = outcome(BAD_INPUT[case], fastmlp), outcome(BAD_INPUT[case], sk)
    if case in ("a single class", "a single class, lbfgs", "one sample", "integer X",
                "boolean y, regression", "negative sample_weight"):
        assert theirs[0] == "returned"
    else:
        assert theirs[0] == "raised"
    if ours[0] == "raised" and "{" in theirs[2]:
        (our_text, our_sets), (their_text, their_sets) = options_apart(ours[2]), options_apart(
            theirs[2])
        assert ours[:2] == theirs[:2] and our_text == their_text
        # fastmlp may offer more (activations, solvers) than scikit-learn, never fewer.
        assert all(mine >= its for mine, its in zip(our_sets, their_sets))
    else:
        assert ours == theirs


def test_string_targets_for_a_regressor_raise_a_clear_error():
    # scikit-learn fails deep in numpy (UFuncTypeError from its loss); fastmlp says what is wrong.
    with pytest.raises(ValueError, match="could not convert string to float"):
        MLPRegressor(max_iter=2).fit(X[:2], ["a", "b"])


def test_another_number_of_outputs_in_partial_fit_is_refused():
    # scikit-learn fails in a matmul; fastmlp names the cause.
    reg = MLPRegressor(random_state=0).partial_fit(X, Y_REG)
    with pytest.raises(ValueError, match="number of outputs cannot change"):
        reg.partial_fit(X, np.c_[Y_REG, Y_REG])


# -- a call that fails leaves the model exactly as it was --------------------------------------------

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
    """Every attribute of the estimator (the engine's cached geometry aside), frozen."""
    return {k: frozen(v) for k, v in vars(est).items() if k != "_network_cache"}


def _frame(array, prefix="f"):
    return pd.DataFrame(array, columns=[f"{prefix}{i}" for i in range(array.shape[1])])


# (estimator, how it was fitted, the failing call); each failing call raises.
FAILING_CALLS = {
    "nan X after a DataFrame fit": (
        "MLPClassifier", {}, lambda e: e.fit(_with(X, (0, 0), np.nan), Y_CLASS)),
    "new classes with a bad sample_weight": (
        "MLPClassifier", {}, lambda e: e.fit(X, np.array(list("ab") * 20),
                                             sample_weight=np.ones(3))),
    "new features with an all-zero sample_weight": (
        "MLPRegressor", {}, lambda e: e.fit(np.ones((40, 7)), Y_REG,
                                            sample_weight=np.zeros(40))),
    "new column names with a bad y": (
        "MLPRegressor", {}, lambda e: e.fit(_frame(X, "g"), _with(Y_REG, 1, np.inf))),
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
    "warm start with a hidden layer changed": (
        "MLPRegressor", {"warm_start": True},
        lambda e: e.set_params(hidden_layer_sizes=(6,)).fit(X, Y_REG)),
    "warm start with nan y": (
        "MLPRegressor", {"warm_start": True, "solver": "lbfgs"},
        lambda e: e.fit(X, _with(Y_REG, 2, np.nan))),
    "an invalid parameter": (
        "MLPClassifier", {}, lambda e: e.set_params(alpha=-1).fit(X, Y_CLASS)),
    "a single row with nan": (
        "MLPRegressor", {"solver": "sgd"}, lambda e: e.fit(_frame(np.full((1, 3), np.nan)), [1.0])),
}


def fitted_on_a_frame(name, how):
    params = {k: v for k, v in how.items() if k != "partial_fit"}
    est = getattr(fastmlp, name)(hidden_layer_sizes=(5,), max_iter=3, random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if how.get("partial_fit") and name == "MLPClassifier":
            est.partial_fit(_frame(X), Y_CLASS, classes=[0, 1, 2])
        elif how.get("partial_fit"):
            est.partial_fit(_frame(X), Y_REG)
        else:
            est.fit(_frame(X), Y_CLASS if name == "MLPClassifier" else Y_REG)
    return est


@pytest.mark.parametrize("case", list(FAILING_CALLS))
def test_a_failed_call_leaves_a_fitted_model_as_it_was(case):
    name, how, call = FAILING_CALLS[case]
    est = fitted_on_a_frame(name, how)
    probe = _frame(X[:7])
    predictions = est.predict(probe)
    with pytest.raises(Exception):  # noqa: B017 - each case raises its own error
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call(est)
    # The same model, fitted again, given the hyper-parameters the failing call set (set_params
    # is the user's doing): every fitted attribute must be bitwise the same.
    reference = fitted_on_a_frame(name, how).set_params(**est.get_params())
    assert state(est) == state(reference)
    assert all(c.base is est._theta for c in est.coefs_ + est.intercepts_)
    np.testing.assert_array_equal(est.predict(probe), predictions)


def test_a_failed_first_partial_fit_leaves_the_model_unfitted():
    clf = MLPClassifier()
    with pytest.raises(ValueError, match="NaN"):
        clf.partial_fit(_with(X, (0, 0), np.nan), Y_CLASS, classes=[0, 1, 2])
    assert state(clf) == state(MLPClassifier())
    # ... so the next call is a first call again, and must give classes.
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, Y_CLASS)


# -- divergence ----------------------------------------------------------------------------------------

def digits(n=300, dtype=np.float64):
    X, y = load_digits(return_X_y=True)
    return X[:n].astype(dtype), y[:n]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("params", [
    dict(solver="sgd", learning_rate_init=1e6),
    dict(solver="sgd", learning_rate_init=1e6, batch_size=7, shuffle=False),
    dict(loss="poisson", solver="sgd", learning_rate_init=10.0),
], ids=["sgd", "sgd-small-batches", "poisson"])
def test_divergence_is_reported_as_sklearn_does(params, dtype):
    Xd, yd = digits(dtype=dtype)
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
    Xd, yd = digits()
    reg = MLPRegressor(solver="sgd", learning_rate_init=1e6, random_state=0)
    with pytest.raises(ValueError, match="non-finite parameter weights"):
        for _ in range(5):
            reg.partial_fit(Xd, yd)


@pytest.mark.parametrize("name", ["MLPRegressor", "MLPClassifier"])
def test_divergence_with_early_stopping_gives_nan_scores_and_keeps_the_best_weights(name):
    Xd, yd = digits()
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
    Xd, yd = digits()
    for module in (fastmlp, sk):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reg = module.MLPRegressor(solver="lbfgs", max_iter=5, random_state=0).fit(
                Xd * 1e200, yd)
        assert np.isnan(reg.loss_)
        assert all(np.isfinite(w).all() for w in reg.coefs_ + reg.intercepts_)


# -- Ctrl-C ----------------------------------------------------------------------------------------------

INTERRUPTED_FIT = """
import sys, time, warnings
import numpy as np
from {module} import MLPClassifier
n, n_features, hidden, solver, batch_size = {n}, {n_features}, {hidden}, "{solver}", {batch}
X = np.random.RandomState(0).rand(n, n_features)
y = np.arange(n) % 3
clf = MLPClassifier((hidden,), solver=solver, batch_size=batch_size, shuffle=False,
                    max_iter=100000, max_fun=10**9, tol=0, n_iter_no_change=10**9,
                    random_state=0)
print("fitting", flush=True)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    clf.fit(X, y)
print("returned", flush=True)
assert [str(w.message) for w in caught] == ["Training interrupted by user."], caught
assert clf.n_iter_ < 100000
assert all(np.isfinite(w).all() for w in clf.coefs_ + clf.intercepts_)
proba = clf.predict_proba(X[:50])
assert np.isfinite(proba).all() and np.allclose(proba.sum(axis=1), 1)
assert set(clf.predict(X[:50])) <= {{0, 1, 2}}
print("ok", flush=True)
"""


def interrupt_latency(module, **settings):
    """Start a long fit in a subprocess, send SIGINT once it trains, return the seconds until
    fit returned (and the subprocess's verdict on the model)."""
    script = INTERRUPTED_FIT.format(module=module, **settings)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        started = proc.stdout.readline().strip()
        if started == "fitting":
            time.sleep(2.0)  # well into training: validation of this data takes ~0.1 s
            assert proc.poll() is None
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            line = proc.stdout.readline().strip()
            latency = time.monotonic() - sent
        proc.wait(timeout=60)
        # Read through the same buffered files (communicate() would read the pipes beneath them
        # and miss what readline() has already buffered).
        out, err = proc.stdout.read(), proc.stderr.read()
    finally:
        proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    assert started == "fitting", err
    assert line == "returned", err
    assert out.strip() == "ok", err
    return latency


@pytest.mark.parametrize("solver, n, n_features, hidden, batch", [
    # One mini-batch is the whole data set and takes ~2 s on 2 cores.
    ("sgd", 40000, 500, 512, 40000),
    # Small batches.
    ("adam", 20000, 100, 256, 200),
    # L-BFGS: each full-batch gradient takes ~1.5 s.
    ("lbfgs", 40000, 500, 512, 200),
], ids=["one-batch-is-the-data", "small-batches", "lbfgs"])
def test_ctrl_c_stops_fit_within_a_fraction_of_a_second(solver, n, n_features, hidden, batch):
    latency = interrupt_latency("fastmlp", solver=solver, n=n, n_features=n_features,
                                hidden=hidden, batch=batch)
    assert latency < 0.5


# -- threads ---------------------------------------------------------------------------------------------

def longest_pause_of_this_thread(work):
    """Run work() in another thread; the longest time this thread then waited to run Python."""
    worker = threading.Thread(target=work)
    worker.start()
    longest, last = 0.0, time.monotonic()
    while worker.is_alive():
        time.sleep(0.001)
        now = time.monotonic()
        longest, last = max(longest, now - last), now
    worker.join()
    return longest


def test_the_gil_is_released_while_training_and_predicting():
    # One epoch is one engine call of about a second (100000 rows through 256 x 256 units), one
    # prediction another: were the GIL held during them, this thread would wait that long.
    rng = np.random.RandomState(0)
    X_big = rng.rand(100000, 100)
    y_big = np.arange(100000) % 3
    clf = MLPClassifier((256, 256), max_iter=1, random_state=0)

    def train():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X_big, y_big)

    X_many = rng.rand(200000, 100)
    for work in (train, lambda: clf.predict_proba(X_many)):
        started = time.monotonic()
        pause = longest_pause_of_this_thread(work)
        duration = time.monotonic() - started
        assert duration > 0.25  # the call did take long...
        assert pause < 0.5 * duration  # ...and this thread ran meanwhile


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_many_threads_predicting_with_one_model_agree(dtype):
    Xd, yd = digits(n=1797, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier((64, 32), max_iter=5, random_state=0).fit(Xd, yd)
    # Large inputs run on OpenMP threads, small ones (<= 128 rows) on the caller's alone.
    inputs = [Xd, Xd[:100], Xd[5:6]]
    expected = [clf.predict_proba(x) for x in inputs]

    def predict_many(_):
        return [[clf.predict_proba(x) for x in inputs] for _ in range(10)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        for results in pool.map(predict_many, range(16)):
            for probas in results:
                for proba, reference in zip(probas, expected):
                    np.testing.assert_array_equal(proba, reference)


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_two_models_train_at_once_in_two_threads_as_they_would_alone(solver):
    Xd, yd = digits(n=1797)

    def train(seed, dtype):
        est = (MLPClassifier if seed % 2 else MLPRegressor)(
            hidden_layer_sizes=(64, 32), solver=solver, max_iter=8, random_state=seed, batch_size=300)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(Xd.astype(dtype), yd)
        return est._theta.copy()

    jobs = [(0, np.float64), (1, np.float32), (2, np.float32), (3, np.float64)]
    alone = [train(*job) for job in jobs]
    with ThreadPoolExecutor(max_workers=2) as pool:
        together = list(pool.map(lambda job: train(*job), jobs))
    for a, b in zip(alone, together):
        np.testing.assert_array_equal(a, b)


def blas_threads():
    return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]


def test_overlapping_blas_limits_keep_blas_single_threaded_until_the_last_ends():
    original = blas_threads()
    first, second = _runtime.single_threaded_blas(), _runtime.single_threaded_blas()
    first.__enter__()
    second.__enter__()
    assert set(blas_threads()) <= {1}
    first.__exit__(None, None, None)  # the other is still inside: BLAS stays at one thread
    assert set(blas_threads()) <= {1}
    second.__exit__(None, None, None)
    assert blas_threads() == original


def test_blas_is_held_to_one_thread_in_worker_threads_too():
    # threadpoolctl ignores limits set from any thread but its "controlling" one; a fit in a
    # worker thread must still run with single-threaded BLAS (else it rounds differently).
    seen = []

    def inside():
        with _runtime.single_threaded_blas():
            seen.append(blas_threads())

    threading.Thread(target=inside).start()
    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(lambda _: inside(), range(6)))
    while len(seen) < 7:
        time.sleep(0.01)
    assert all(set(threads) <= {1} for threads in seen)


def test_concurrent_fits_and_predictions_restore_blas_threads():
    original = blas_threads()
    Xd, yd = digits(n=1797)

    def work(seed):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf = MLPClassifier((32,), max_iter=3, random_state=seed).fit(Xd, yd)
        for _ in range(5):
            clf.predict_proba(Xd)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(work, range(8)))
    assert blas_threads() == original


# -- determinism -----------------------------------------------------------------------------------------

DETERMINISM = """
import hashlib, sys, warnings
import numpy as np
from sklearn.datasets import load_digits
from threadpoolctl import threadpool_limits
from fastmlp import MLPClassifier, MLPRegressor
from fastmlp._runtime import effective_n_threads
warnings.simplefilter("ignore")
X, y = load_digits(return_X_y=True)
X = X / 16.0
w = np.random.RandomState(0).rand(len(y))
threads = int(sys.argv[1])
with threadpool_limits(threads, user_api="openmp"):
    print(effective_n_threads())
    for dtype in (np.float32, np.float64):
        for solver in ("adam", "sgd", "lbfgs"):
            for Est, extra in ((MLPClassifier, dict(batch_size=1024)),
                               (MLPRegressor, dict(batch_size=700, early_stopping=True)),
                               (MLPClassifier, dict(batch_size=512, alpha=1e-2))):
                est = Est(hidden_layer_sizes=(96, 48), solver=solver, max_iter=6,
                          random_state=3, **extra)
                if solver == "lbfgs":
                    est.set_params(early_stopping=False)
                est.fit(X.astype(dtype), y, sample_weight=w if "alpha" in extra else None)
                digest = hashlib.sha256(est._theta.tobytes())
                for rows in (slice(None), slice(0, 100), slice(7, 8)):  # OpenMP / caller alone
                    x = X[rows].astype(dtype)
                    digest.update((est.predict_proba(x) if Est is MLPClassifier
                                   else est.predict(x)).tobytes())
                print(dtype.__name__, solver, Est.__name__, digest.hexdigest())
"""


def test_same_seed_gives_bitwise_the_same_weights_with_any_thread_count():
    outputs = {}
    for threads in (1, 2, 3, 4):
        out = subprocess.run([sys.executable, "-c", DETERMINISM, str(threads)],
                             capture_output=True, text=True, check=True).stdout.splitlines()
        assert out[0] == str(threads)
        outputs[threads] = out[1:]
    assert len(outputs[1]) == 18
    for threads in (2, 3, 4):
        assert outputs[threads] == outputs[1]


def test_the_layout_of_X_does_not_change_the_fit():
    # C order is read in place, other layouts are gathered batch by batch (large data) or
    # copied once (small data): every route gives bitwise the same weights and predictions.
    Xd, yd = digits(n=600)
    wide = np.hstack([Xd, np.ones((len(Xd), 3))])
    layouts = {"F order": np.asfortranarray(Xd), "DataFrame": pd.DataFrame(Xd).to_numpy(),
               "column slice": wide[:, :64], "every other column": np.repeat(Xd, 2, axis=1)[:, ::2],
               "reversed rows": np.ascontiguousarray(Xd[::-1])[::-1]}
    for solver, shuffle in (("adam", True), ("sgd", False), ("lbfgs", False)):
        params = dict(hidden_layer_sizes=(16,), solver=solver, shuffle=shuffle, max_iter=3,
                      batch_size=128, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = MLPClassifier(**params).fit(Xd, yd)
            for name, X_layout in layouts.items():
                for copy_below in (0, 2**62):  # in place, and copied
                    with pytest.MonkeyPatch.context() as patch:
                        patch.setattr(fastmlp._validation, "_COPY_STRIDED_BELOW",
                                      copy_below)
                        est = MLPClassifier(**params).fit(X_layout, yd)
                        proba = est.predict_proba(X_layout)
                    np.testing.assert_array_equal(est._theta, reference._theta, err_msg=name)
                    np.testing.assert_array_equal(proba, reference.predict_proba(Xd))


# -- memory ----------------------------------------------------------------------------------------------

PEAK_MEMORY = """
import sys, warnings
import numpy as np
from fastmlp import MLPClassifier, MLPRegressor

def status_mb(field):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(field)) / 1024

name, solver, dtype, layout = sys.argv[1:5]
Est = MLPClassifier if name == "clf" else MLPRegressor
warnings.simplefilter("ignore")
Est(hidden_layer_sizes=(8,), max_iter=2, solver=solver).fit(np.random.rand(50, 4).astype(dtype),
                                         np.arange(50) % 2)  # load everything once
n, n_features = 300000, 200
if layout == "frame":  # a DataFrame's values are column-major: read in place, not copied
    import pandas as pd
    X = pd.DataFrame({f"c{j}": np.random.RandomState(j).rand(n).astype(dtype)
                      for j in range(n_features)})
    y = X["c0"].to_numpy(dtype=np.float64)
else:
    X = np.empty((n, n_features), dtype=dtype)
    for start in range(0, n, 10000):
        X[start:start + 10000] = np.random.RandomState(start).rand(10000, n_features)
    y = np.arange(n) % 5 if name == "clf" else X[:, 0].astype(np.float64)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # VmHWM := VmRSS now, so the peak below is the fit's alone
before = status_mb("VmRSS")
Est(hidden_layer_sizes=(64, 32), max_iter=1, solver=solver, max_fun=30,
    random_state=0).fit(X, y)
print(n * n_features * np.dtype(dtype).itemsize / 2**20, status_mb("VmHWM") - before)
"""


@pytest.mark.parametrize("name, solver, dtype, layout", [
    ("reg", "adam", "float64", "array"), ("clf", "sgd", "float32", "array"),
    ("clf", "lbfgs", "float64", "array"), ("reg", "adam", "float64", "frame"),
    ("reg", "lbfgs", "float32", "frame"),
])
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
def test_fit_adds_little_memory_beyond_the_data(name, solver, dtype, layout):
    # Every block of 64 kB or more straight from (and back to) the OS, so that memory freed
    # before the fit cannot hide what the fit allocates.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    out = subprocess.run([sys.executable, "-c", PEAK_MEMORY, name, solver, dtype, layout],
                         env=env,
                         capture_output=True, text=True, check=True).stdout
    data_mb, extra_mb = map(float, out.split())
    # Beside X a fit holds the targets (the classifier's as scikit-learn's LabelBinarizer gives
    # them, int64, then as bool and as floats: 17 bytes per sample and class), the sample order
    # and O(batch x width + parameters) of buffers. A copy of X would add data_mb (229 or 458);
    # scikit-learn's L-BFGS adds 644 MB on the DataFrame of 458 MB, its Adam 8 MB.
    targets_mb = 300000 * 5 * 17 / 2**20 if name == "clf" else 300000 * 8 / 2**20
    assert extra_mb < targets_mb + 0.05 * data_mb, (data_mb, extra_mb)


LEAK = """
import pickle, warnings
import numpy as np
from fastmlp import MLPClassifier, MLPRegressor

def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024

warnings.simplefilter("ignore")
rng = np.random.RandomState(0)
X64 = rng.rand(64, 6)
X32 = X64.astype(np.float32)
y = np.arange(64) % 3
def one_round(i):
    X = X32 if i % 2 else X64
    solver = ("adam", "sgd", "lbfgs")[i % 3]
    clf = MLPClassifier((8,), solver=solver, max_iter=3, random_state=i,
                        early_stopping=(i % 4 == 0 and solver != "lbfgs")).fit(X, y)
    clf.predict_proba(X)
    reg = MLPRegressor(hidden_layer_sizes=(4,), max_iter=2, random_state=i).partial_fit(
        X, X[:, 0])
    pickle.loads(pickle.dumps(reg)).predict(X)
    try:
        clf.predict(X[:, :3])
    except ValueError:
        pass
for i in range(200):
    one_round(i)
start = rss_mb()
for i in range(200, 1200):
    one_round(i)
print(rss_mb() - start)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
def test_thousands_of_fits_do_not_leak():
    out = subprocess.run([sys.executable, "-c", LEAK], capture_output=True, text=True,
                         check=True).stdout
    # A leak of even the smallest buffer per fit (64 rows x 8 units x 8 bytes = 4 kB) would
    # add 4 MB over these 1000 rounds of two fits.
    assert float(out) < 2.0


# -- arrays past 2^31 elements (opt-in: ~12 GB of memory and minutes) -------------------------------

BIG = """
import warnings
import numpy as np
from fastmlp import MLPRegressor
warnings.simplefilter("ignore")
n_features = 64
n = 2**31 // n_features + 20000           # X has 2^31 + 1,280,000 float32 elements
tail = slice(n - 20000, n)                # rows that lie wholly past element 2^31
X = np.empty((n, n_features), dtype=np.float32)
for start in range(0, n, 1 << 20):
    stop = min(n, start + (1 << 20))
    X[start:stop] = np.random.RandomState(start % 1000).rand(stop - start, n_features)
y = X[:, :4].sum(axis=1, dtype=np.float32)
assert X.size > 2**31
# Prediction reads rows past 2^31 elements at their place.
reg = MLPRegressor(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=3, random_state=0)
reg.fit(X[tail], y[tail])
np.testing.assert_array_equal(reg.predict(X)[tail], reg.predict(X[tail].copy()))
# L-BFGS on all rows, with only the tail weighted: the gradient comes from the rows past 2^31
# elements alone, so the fit matches the one on a copy of those rows.
weights = np.zeros(n, dtype=np.float32)
weights[tail] = 1.0
big = MLPRegressor(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=3, random_state=0)
big.fit(X, y, sample_weight=weights)
np.testing.assert_allclose(big._theta, reg._theta, rtol=1e-4, atol=1e-6)
# Shuffled mini-batches gather rows from everywhere, the tail included.
sgd = MLPRegressor(hidden_layer_sizes=(16,), solver="sgd", max_iter=1, batch_size=4096,
                   random_state=0).fit(X, y)
assert np.isfinite(sgd._theta).all() and sgd.loss_ < 1.0, sgd.loss_
print("ok")
"""


@pytest.mark.skipif(os.environ.get("FASTMLP_BIG_TESTS") != "1",
                    reason="needs ~12 GB and minutes; set FASTMLP_BIG_TESTS=1")
def test_arrays_past_2_31_elements():
    out = subprocess.run([sys.executable, "-c", BIG], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_fit_validation_skips_only_a_finiteness_check_that_passed():
    from fastmlp._validation import _validate_training_data
    y = np.arange(6) % 2
    clf = MLPClassifier()
    huge = np.full((6, 3), 1e200)  # finite; its sum of squares overflows: scikit-learn decides
    X, _ = _validate_training_data(clf, huge, y, reset=True)
    np.testing.assert_array_equal(X, huge)
    for bad, message in [(np.nan, "Input X contains NaN"), (np.inf, "Input X contains infinity")]:
        for dtype in (np.float32, np.float64):
            X_bad = np.ones((6, 3), dtype=dtype)
            X_bad[4, 1] = bad
            with pytest.raises(ValueError, match=message):
                _validate_training_data(clf, X_bad, y, reset=True)
            with pytest.raises(ValueError, match=message):
                MLPClassifier().fit(X_bad, y)


@pytest.mark.parametrize("y_kind", ["int", "float", "bool"])
def test_plain_arrays_skip_validation_with_the_same_result(y_kind):
    # A later partial_fit on plain arrays skips validate_data (_validate_training_data): the
    # model must end exactly as with inputs that take scikit-learn's path.
    rng = np.random.RandomState(0)
    X = rng.standard_normal((120, 5))
    y = {"int": rng.randint(0, 2, 120), "float": rng.randint(0, 2, 120).astype(float),
         "bool": rng.randint(0, 2, 120).astype(bool)}[y_kind]
    plain = MLPClassifier((7,), random_state=0)
    checked = MLPClassifier((7,), random_state=0)
    classes = np.unique(y)
    plain.partial_fit(X, y, classes=classes)
    checked.partial_fit(X.tolist(), y.tolist(), classes=classes)
    for _ in range(3):
        plain.partial_fit(X, y)
        checked.partial_fit(X.tolist(), y.tolist())
    for a, b in zip(plain.coefs_ + plain.intercepts_, checked.coefs_ + checked.intercepts_):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="X has 4 features"):
        plain.partial_fit(X[:, :4].copy(), y)
    y_bad = y.astype(float)
    y_bad[3] = np.nan
    with pytest.raises(ValueError, match="Input y contains NaN"):
        plain.partial_fit(X, y_bad)
