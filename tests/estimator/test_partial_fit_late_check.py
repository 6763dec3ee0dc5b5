"""A steady partial_fit whose X is much larger than the model leaves X's finiteness to its epoch
(fastmlp/_engine/_trainer.pyx's SteadyCall: the first layer's product tells, one load a row),
and puts back everything the epoch changed when X was not finite. The call must then raise
scikit-learn's error and leave the model in the very state it was in, bit for bit: the next
calls train as if the failed one had never been made. (That every path of the first layer
tells: tests/engine/test_first_product_check.py.)"""
import warnings

import numpy as np
import pytest
import sklearn.neural_network as sk

from fastmlp import MLPClassifier, MLPRegressor

from _helpers import (
    PARTIAL_FIT_OPTIONS, assert_same_state, fitted_state, run_python, started_model,
)

RNG = np.random.RandomState(1)
N_ROWS, N_FEATURES = 600, 12
X = RNG.standard_normal((N_ROWS, N_FEATURES))
Y = RNG.randint(0, 3, N_ROWS)
Y_VALUES = X[:, 0] * 2 - X[:, 1]

# Each case's X is at least 8 times what its epoch changes (SteadyCall's LATE_CHECK_FACTOR).
OPTIONS = {**PARTIAL_FIT_OPTIONS,
           "one batch of every row": {"batch_size": N_ROWS},
           "no hidden layer": {"hidden_layer_sizes": ()}}

BAD = {
    "nan in the first row": (0, 3, np.nan),
    "nan in the last row": (N_ROWS - 1, N_FEATURES - 1, np.nan),
    "infinity": (N_ROWS // 2, 0, np.inf),
    "minus infinity": (17, 5, -np.inf),
}


def steady(estimator, options, data, y):
    """A model after its first partial_fit and three more: the compiled call is made."""
    model = started_model(estimator, {"hidden_layer_sizes": (5,), "batch_size": 10,
                                      "random_state": 0, **options}, data, y)
    calls(model, data, y, 3)
    return model


def calls(model, data, y, n):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(n):
            model.partial_fit(data, y)


def with_bad(data, where):
    row, column, value = BAD[where]
    data = data.copy()
    data[row, column] = value
    return data


def sklearns_error(data, y, classifier):
    model = (sk.MLPClassifier if classifier else sk.MLPRegressor)(hidden_layer_sizes=(4,))
    with pytest.raises(ValueError) as error:
        model.partial_fit(data, y, **({"classes": np.unique(y)} if classifier else {}))
    return str(error.value)


@pytest.mark.parametrize("where", list(BAD))
@pytest.mark.parametrize("options", list(OPTIONS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("estimator", [MLPClassifier, MLPRegressor])
def test_a_late_check_raises_sklearns_error_and_puts_everything_back(estimator, dtype, options,
                                                                      where):
    data = X.astype(dtype)
    y = Y if estimator is MLPClassifier else Y_VALUES
    model = steady(estimator, OPTIONS[options], data, y)
    call = vars(model)["_steady_call"]
    assert N_ROWS * N_FEATURES >= 8 * call.saved_size
    late = call.late_checks
    calls(model, data, y, 1)
    assert call.late_checks == late + 1  # (the case takes the late check)
    before = fitted_state(model)
    bad = with_bad(data, where)
    with pytest.raises(ValueError) as error:
        model.partial_fit(bad, y)
    assert str(error.value) == sklearns_error(bad, y, estimator is MLPClassifier)
    assert_same_state(fitted_state(model), before)
    # and the model goes on as one that never saw the call
    calls(model, data, y, 2)
    reference = steady(estimator, OPTIONS[options], data, y)
    calls(reference, data, y, 3)
    assert_same_state(fitted_state(model), fitted_state(reference))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_finite_x_that_overflows_trains_as_the_whole_path_does(monkeypatch, dtype):
    # The first layer's product is not finite, X is: the epoch stands, as it does where X was
    # checked first (the whole path), and the call ends as that one does.
    huge = X.astype(dtype) * (np.finfo(dtype).max / 4)
    outcomes = []
    for whole_path in (False, True):
        if whole_path:
            monkeypatch.setattr(MLPClassifier, "_steady_partial_fit", lambda self, X, y: False)
        model = steady(MLPClassifier, {}, X.astype(dtype), Y)
        call = vars(model).get("_steady_call")
        late = call.late_checks if call is not None else None
        try:
            calls(model, huge, Y, 1)
            outcome = "returned"
        except ValueError as error:
            outcome = str(error)
        if not whole_path:
            assert call.late_checks == late + 1  # (the steady call took it, X unchecked)
        outcomes.append((outcome, model._theta.copy(), model.n_iter_, list(model.loss_curve_)))
    (a, theta_a, n_a, curve_a), (b, theta_b, n_b, curve_b) = outcomes
    assert a == b and a.startswith("Solver produced non-finite parameter weights")
    np.testing.assert_array_equal(theta_a, theta_b, strict=True)
    assert (n_a, len(curve_a)) == (n_b, len(curve_b))
    np.testing.assert_array_equal(curve_a, curve_b)


def test_a_small_x_is_checked_before_its_epoch():
    # 32 rows against a model of 67 weights: the copy to put back would cost more than the
    # check, so the call checks X first, as before.
    data, y = X[:32].copy(), Y[:32]
    model = steady(MLPClassifier, {"batch_size": 10}, data, y)
    call = vars(model)["_steady_call"]
    calls(model, data, y, 2)
    assert call.late_checks == 0
    with pytest.raises(ValueError, match="Input X contains NaN"):
        model.partial_fit(with_bad(data, "nan in the first row"), y)


INTERRUPTED_CALL = """
import os, signal, threading, time, warnings
import numpy as np
from fastmlp import MLPClassifier
signal.signal(signal.SIGINT, signal.default_int_handler)  # (see test_interrupts.py)
warnings.simplefilter("ignore")
rng = np.random.RandomState(0)
X = rng.standard_normal((100000, 64)).astype(np.float32)
y = rng.randint(0, 3, X.shape[0])
model = MLPClassifier(hidden_layer_sizes=(256,), batch_size=8, shuffle=False, random_state=0)
model.partial_fit(X, y, classes=[0, 1, 2])
for _ in range(2):
    model.partial_fit(X, y)
call = model._steady_call
start = time.perf_counter()
model.partial_fit(X, y)
took = time.perf_counter() - start
before, late = model._theta.copy(), call.late_checks
bad = X.copy()
bad[-1, 0] = np.nan  # (in the last batch: not reached when Ctrl-C comes)
threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()
try:
    model.partial_fit(bad, y)
    outcome = "returned"
except ValueError as error:
    outcome = str(error)
print(late, call.late_checks, took > 0.2, (model._theta == before).all(), outcome.splitlines()[0])
"""


def test_ctrl_c_in_a_late_checked_epoch_still_raises_xs_error():
    # Ctrl-C 50 ms into an epoch of a few tenths of a second, before the batch with the NaN:
    # the call raises X's error, as a call that checks X first does, and changes nothing.
    out = run_python(INTERRUPTED_CALL).split(maxsplit=4)
    late, after, long_enough, unchanged, first_line = out
    assert long_enough == "True"  # (else Ctrl-C would come after the call: nothing tested)
    assert int(after) == int(late) + 1 and unchanged == "True"
    assert first_line.strip() == "Input X contains NaN."
