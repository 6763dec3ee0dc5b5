"""Helpers the tests import by name: digits as arrays, central differences, a snippet run in a
fresh Python, and the fit whose weights must be bitwise equal on one and two threads.

Why a module and not conftest.py: these are called from other helpers (a gradient check, a
fitted model for a persistence test), at module level (a test table) and with arguments, which a
fixture cannot be; and conftest.py is pytest's to load, not a module to import. The fixtures built
on them are in conftest.py. pyproject.toml puts tests/ on the path (`pythonpath`), so every test
file, in whichever folder, imports them as `from _helpers import ...`.
"""
import inspect
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import sklearn
import sklearn.neural_network as sk
from sklearn.datasets import load_digits
from sklearn.utils.fixes import parse_version

# Equivalence is with the installed scikit-learn. Where it is older than a feature fastmlp has
# and the test compares, the test is skipped there, with these reasons (.ci/oldest.txt's set).
SKLEARN_VERSION = parse_version(sklearn.__version__).release  # a tuple: (1, 5, 0)
SKLEARN_MLP_HAS_SAMPLE_WEIGHT = (
    "sample_weight" in inspect.signature(sk.MLPClassifier.fit).parameters)
SKLEARN_MLP_HAS_LOSS = "loss" in sk.MLPRegressor._parameter_constraints
needs_sklearn_sample_weight = pytest.mark.skipif(
    not SKLEARN_MLP_HAS_SAMPLE_WEIGHT, reason="scikit-learn < 1.7: its MLP takes no sample_weight")
needs_sklearn_loss = pytest.mark.skipif(
    not SKLEARN_MLP_HAS_LOSS, reason="scikit-learn < 1.7: its MLPRegressor has no `loss`")


def digits(n=None, dtype=np.float64, scaled=True):
    """The first `n` of scikit-learn's digits (all by default), scaled to [0, 1] unless
    `scaled=False` (pixel values 0..16), as `dtype`."""
    X, y = load_digits(return_X_y=True)
    X = X[:n]
    if scaled:
        X = X / 16.0
    return X.astype(dtype), y[:n]


def tiny_problem():
    """40 samples of 3 features, 3 classes and a continuous target: the data of the bad-input
    and failed-call tables, drawn in this order from RandomState(0)."""
    rng = np.random.RandomState(0)
    X = rng.rand(40, 3)
    return X, np.arange(40) % 3, rng.rand(40)


def with_value(array, index, value):
    """A copy of `array` with `array[index] = value`."""
    array = array.copy()
    array[index] = value
    return array


def central_differences(loss, theta, h=1e-6):
    """The numerical gradient of `loss`, a function of θ alone: for every i,
    (loss(θ + h eᵢ) − loss(θ − h eᵢ)) / 2h. θ is moved in place one entry at a time and
    restored."""
    numeric = np.empty_like(theta)
    for i in range(theta.size):
        old = theta[i]
        theta[i] = old + h
        up = loss(theta)
        theta[i] = old - h
        down = loss(theta)
        theta[i] = old
        numeric[i] = (up - down) / (2 * h)
    return numeric


def run_python(code, *args, omp_threads=None, env=None):
    """Run `code` in a fresh Python (`python -c code *args`), with OMP_NUM_THREADS set when
    `omp_threads` is given; return its standard output. A failing snippet fails the test."""
    env = dict(os.environ if env is None else env)
    if omp_threads is not None:
        env["OMP_NUM_THREADS"] = str(omp_threads)
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env,
                          capture_output=True, text=True, check=True).stdout


# The thread count is fixed when OpenMP starts, so each count needs its own process. The snippet
# reports the count the engine resolved, so that a test cannot pass on two runs of one thread.
THREADED_FIT = """
import ast, sys, warnings
from sklearn.datasets import load_digits
from fastmlp import MLPClassifier
from fastmlp._runtime import effective_n_threads
X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(sys.argv[1])
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    clf = MLPClassifier(**ast.literal_eval(sys.argv[2])).fit(X, y)
sys.stdout.write(str(effective_n_threads()) + " " + clf._theta.tobytes().hex())
"""


def weights_on_threads(threads, dtype, **params):
    """The weights (as hex) of MLPClassifier(**params) fitted on all digits scaled to [0, 1] as
    `dtype`, in a fresh Python on `threads` OpenMP threads."""
    out = run_python(THREADED_FIT, dtype, repr(params), omp_threads=threads)
    used, weights = out.split()
    assert used == str(threads)
    return weights


def assert_bitwise_equal_on_one_and_two_threads(dtype, **params):
    assert weights_on_threads(1, dtype, **params) == weights_on_threads(2, dtype, **params)


def fitted_state(model):
    """Everything a partial_fit changes, to compare bit for bit: weights, curves, counters, the
    optimizer's state and step count, running statistics, the RandomState's state."""
    state = {name: getattr(model, name, None) for name in (
        "_theta", "loss_curve_", "gradient_norms_", "t_", "n_iter_", "loss_", "best_loss_",
        "_no_improvement_count", "n_outputs_", "_batch_norm_running")}
    for k, vector in enumerate(model._optimizer.state):
        state[f"optimizer state {k}"] = vector.copy()
    state["optimizer t"] = model._optimizer.t
    state["learning rate"] = getattr(model._optimizer, "learning_rate", None)
    state["random state"] = model._random_state.get_state()[1].copy()
    return {name: np.array(value, copy=True) if isinstance(value, (np.ndarray, list)) else value
            for name, value in state.items()}


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for name, value in a.items():
        if isinstance(value, np.ndarray):
            assert value.dtype == b[name].dtype, name
            np.testing.assert_array_equal(value, b[name], err_msg=name, strict=True)
        else:
            assert value == b[name], name


def seeded_model(estimator, params):
    """estimator(**params), where random_state "a RandomState" becomes RandomState(5) (a user's
    own) and None leaves the global RandomState, which scikit-learn then draws from, seeded
    with 3: each call from the same params draws the same numbers."""
    params = dict(params)
    if isinstance(params.get("random_state"), str) and params["random_state"] == "a RandomState":
        params["random_state"] = np.random.RandomState(5)
    if "random_state" in params and params["random_state"] is None:
        np.random.seed(3)
    return estimator(**params)


def started_model(estimator, params, X, y):
    """seeded_model(estimator, params) after its first partial_fit on X and y (a classifier's
    with classes=np.unique(y)), warnings ignored."""
    model = seeded_model(estimator, params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if sklearn.base.is_classifier(model):
            model.partial_fit(X, y, classes=np.unique(y))
        else:
            model.partial_fit(X, y)
    return model


# Options for runs of plain partial_fits: each trains the same bits on the steady path and on the
# whole path (the steady path reads them where the whole path does:
# tests/estimator/test_partial_fit_steady.py), and each puts back everything its epoch changed
# when X turns out not finite (test_partial_fit_late_check.py).
PARTIAL_FIT_OPTIONS = {
    "defaults": {},
    "sgd, nesterov": {"solver": "sgd"},
    "sgd, adaptive, stopping early": {"solver": "sgd", "learning_rate": "adaptive",
                                      "n_iter_no_change": 1, "tol": 1e9},
    "sgd, invscaling": {"solver": "sgd", "learning_rate": "invscaling"},
    "adam, stopping early": {"n_iter_no_change": 1, "tol": 1e9},
    "no shuffle": {"shuffle": False},
    "batch larger than the data": {"batch_size": 100},
    "one batch": {"batch_size": 40},
    "dropout": {"dropout": 0.3},
    "clipping": {"max_grad_norm": 0.05, "weight_clip": 0.5},
    "batch norm": {"batch_norm": True},
    "maxout": {"activation": "maxout", "maxout_pieces": 3},
    "tanh, two layers": {"activation": "tanh", "hidden_layer_sizes": (6, 4)},
    "adamw": {"solver": "adamw"},
    "rmsprop, centered": {"solver": "rmsprop", "centered": True},
    "nadam": {"solver": "nadam"},
    "ftrl": {"solver": "ftrl"},
    "a user's RandomState": {"random_state": "a RandomState"},
    "no seed": {"random_state": None},
}
