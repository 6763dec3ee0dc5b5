"""partial_fit in its steady state: what a call no longer redoes once the model is fitted (labels
known to be known, the seeded RandomState, the checked layer sizes, the gradient norms so far)
must leave every error of scikit-learn's MLP in place and every result bit as it was."""
import pickle
import warnings

import numpy as np
import pytest
import sklearn.neural_network as sk
from threadpoolctl import threadpool_limits

import fastmlp
from fastmlp import MLPClassifier, _runtime

from _helpers import digits

RNG = np.random.RandomState(0)
X = RNG.standard_normal((40, 6))
Y = RNG.randint(0, 3, 40)
CLASSES = np.arange(3)


def steady(module, **params):
    """A classifier of `module` after its first partial_fit and three more on plain arrays
    (every cache of a later call is in place)."""
    model = module.MLPClassifier(hidden_layer_sizes=(5,), batch_size=10, random_state=0,
                                  **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.partial_fit(X, Y, classes=CLASSES)
        for _ in range(3):
            model.partial_fit(X, Y)
    return model


def with_nan(array):
    array = array.copy()
    array[2, 3] = np.nan
    return array


# Each case: a call on a steady model; scikit-learn's MLP refuses it, and so must fastmlp.
BAD_CALLS = {
    "an unseen label": lambda m: m.partial_fit(X, np.where(Y == 2, 3, Y)),
    "an unseen negative label, int32": lambda m: m.partial_fit(X, (Y - 1).astype(np.int32)),
    "an unseen label, uint64 beyond int64": lambda m: m.partial_fit(
        X, np.where(Y == 2, 2**63 + 1, Y).astype(np.uint64)),
    "labels that are no integers": lambda m: m.partial_fit(X, Y + 0.5),
    "string labels": lambda m: m.partial_fit(X, np.array(["a", "b"] * 20)),
    "fewer features": lambda m: m.partial_fit(X[:, :4].copy(), Y),
    "more features": lambda m: m.partial_fit(np.hstack([X, X]), Y),
    "strings in X": lambda m: m.partial_fit(np.full(X.shape, "a"), Y),
    "complex X": lambda m: m.partial_fit(X.astype(complex), Y),
    "nan in X": lambda m: m.partial_fit(with_nan(X), Y),
    "nan in X, float32": lambda m: m.partial_fit(with_nan(X).astype(np.float32), Y),
    "mismatched lengths": lambda m: m.partial_fit(X, Y[:-1]),
    "the fitted layer size as a float": lambda m: m.set_params(
        hidden_layer_sizes=(5.0,)).partial_fit(X, Y),
    "a layer size of 0": lambda m: m.set_params(hidden_layer_sizes=(0,)).partial_fit(X, Y),
    "a negative seed": lambda m: m.set_params(random_state=-1).partial_fit(X, Y),
    "a seed beyond 2**32": lambda m: m.set_params(random_state=2**32).partial_fit(X, Y),
    "a float seed": lambda m: m.set_params(random_state=1.5).partial_fit(X, Y),
}


def outcome(call, module):
    model = steady(module)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            call(model)
        except Exception as exc:  # noqa: BLE001 - the exception is what is compared
            return type(exc).__name__, str(exc)
    return "returned", None


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_a_steady_partial_fit_raises_sklearns_error(case):
    ours, theirs = outcome(BAD_CALLS[case], fastmlp), outcome(BAD_CALLS[case], sk)
    assert theirs[0] != "returned"
    assert ours == theirs


def test_a_steady_partial_fit_after_a_failed_one_goes_on_as_before():
    model, reference = steady(fastmlp), steady(fastmlp)
    with pytest.raises(ValueError):
        model.partial_fit(X, np.where(Y == 2, 3, Y))
    with pytest.raises(ValueError):
        model.set_params(random_state=-1).partial_fit(X, Y)
    model.set_params(random_state=0).partial_fit(X, Y)
    reference.partial_fit(X, Y)
    np.testing.assert_array_equal(model._theta, reference._theta)


def continued(model, calls, fresh_each_call):
    """`calls` (each a dict of parameters to set, or None) as partial_fits; with
    `fresh_each_call`, each on a pickled copy: nothing cached survives from one call to the
    next (the RandomStates the estimator keeps for its seed, in particular)."""
    for params in calls:
        if fresh_each_call:
            model = pickle.loads(pickle.dumps(model))
        if params:
            model.set_params(**params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.partial_fit(X, Y)
    return model


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_cached_steady_state_gives_the_bits_of_fresh_calls(solver):
    calls = [None, None, {"random_state": 7}, None, {"random_state": 0}, None, None]
    cached = continued(steady(fastmlp, solver=solver), calls, fresh_each_call=False)
    fresh = continued(steady(fastmlp, solver=solver), calls, fresh_each_call=True)
    np.testing.assert_array_equal(cached._theta, fresh._theta)
    np.testing.assert_array_equal(cached.gradient_norms_, fresh.gradient_norms_)
    assert cached.loss_curve_ == fresh.loss_curve_
    assert cached.gradient_norms_.shape == (len(calls) + 4, 2)


def test_a_users_randomstate_advances_and_is_never_reseeded():
    # scikit-learn draws each call's shuffle from the user's RandomState as it stands.
    a = steady(fastmlp).set_params(random_state=np.random.RandomState(3))
    b = steady(fastmlp).set_params(random_state=np.random.RandomState(3))
    a.partial_fit(X, Y)
    a.partial_fit(X, Y)
    b.partial_fit(X, Y)
    b = pickle.loads(pickle.dumps(b))
    b.partial_fit(X, Y)
    np.testing.assert_array_equal(a._theta, b._theta)
    once = steady(fastmlp).set_params(random_state=np.random.RandomState(3))
    once.partial_fit(X, Y)
    once.set_params(random_state=np.random.RandomState(3)).partial_fit(X, Y)
    assert not np.array_equal(a._theta, once._theta)  # the second call drew other indices


def test_gradient_norms_of_an_older_pickle_go_on():
    # fastmlp before the steady-state buffer kept the rows in a list.
    model, reference = steady(fastmlp), steady(fastmlp)
    model._gradient_norm_rows = [row.copy() for row in model.gradient_norms_]
    model.partial_fit(X, Y)
    reference.partial_fit(X, Y)
    np.testing.assert_array_equal(model.gradient_norms_, reference.gradient_norms_)
    assert model.gradient_norms_.shape == (5, 2)


# -- the thread count chosen from a mini-batch's shape --------------------------------------------

@pytest.mark.parametrize("rows, n_weights, available, expected", [
    (32, 64 * 100 + 100 * 10, 2, 1),          # the per-call partial_fit: 0.24 M multiply-adds
    (200, 64 * 100 + 100 * 10, 2, 1),         # small: 1.5 M
    (32, 784 * 256 + 256 * 128 + 128 * 10, 2, 2),   # tiny-batch: 7.5 M
    (256, 784 * 256 + 256 * 128 + 128 * 10, 2, 2),  # mnist: 60 M
    (256, 784 * 256 + 256 * 128 + 128 * 10, 16, 16),
    (1, 2 * 2**21 - 1, 8, 1),
    (1, 2 * 2**21, 8, 2),
    (512, 784 * 1024 + 1024 * 1024 + 1024 * 10, 1, 1),  # never more than OpenMP allows
])
def test_threads_follow_the_work_of_a_batch(monkeypatch, rows, n_weights, available, expected):
    monkeypatch.setattr(_runtime, "effective_n_threads", lambda: available)
    assert _runtime.threads_for_batch(rows, n_weights) == expected


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_the_thread_rule_changes_no_bit(monkeypatch, solver):
    # Every batch spread over two threads, or all on one: the same weights.
    X_digits, y_digits = digits(300, np.float32)
    weights = []
    for minimum in (1, 2**62):
        monkeypatch.setattr(_runtime, "MIN_MULTIPLY_ADDS_PER_THREAD", minimum)
        with threadpool_limits(2), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            weights.append(MLPClassifier((9,), solver=solver, max_iter=3, random_state=0)
                           .fit(X_digits, y_digits)._theta)
    np.testing.assert_array_equal(weights[0], weights[1])


def test_partial_fit_is_not_refused_by_a_meta_estimator_context():
    # No callbacks: no callback context is made, and a fitted model says so to scikit-learn.
    model = steady(fastmlp)
    assert model.__sklearn_is_fitted__()
    assert not MLPClassifier().__sklearn_is_fitted__()
    assert "_callback_fit_ctx" not in vars(model)
