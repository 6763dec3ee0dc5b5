"""partial_fit in its steady state: what a call no longer redoes once the model is fitted (labels
known to be known, the seeded RandomState, the checked layer sizes, the gradient norms so far,
the engine's trainer and the optimizer's record it keeps, scikit-learn's fit context) must leave
every error of scikit-learn's MLP in place and every result bit as it was."""
import pickle
import warnings

import numpy as np
import pytest
import sklearn.neural_network as sk
from threadpoolctl import threadpool_limits

import fastmlp
from fastmlp import MLPClassifier, _runtime
from fastmlp import _multilayer_perceptron as _mlp

from _helpers import (
    PARTIAL_FIT_OPTIONS, assert_same_state, digits, fitted_state, started_model,
)

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
    # Every batch spread over two threads, or all on one: the same weights. (The rule is patched
    # where the estimator calls it: its threshold also decides which batches are one block,
    # _runtime.batch_schedule, and that is a rule of the shapes that must not move with it.)
    X_digits, y_digits = digits(300, np.float32)
    weights = []
    for threads in (2, 1):
        monkeypatch.setattr(_mlp, "threads_for_batch", lambda rows, n_params, t=threads: t)
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


# -- what a steady partial_fit keeps between calls: the trainer, the optimizer's record ----------

def kept_trainer(model):
    return vars(model)["_trainer_cache"][2]


def test_the_trainer_is_kept_while_what_it_is_made_from_stays():
    model = steady(fastmlp)
    trainer = kept_trainer(model)
    model.partial_fit(X, Y)
    assert kept_trainer(model) is trainer
    model.set_params(tol=1e-3, max_grad_norm=0.5, weight_clip=2.0).partial_fit(X, Y)
    assert kept_trainer(model) is trainer  # read at each epoch, sizes no buffer
    assert (trainer.max_grad_norm, trainer.weight_clip) == (0.5, 2.0)
    changes = [{"batch_size": 7}, {"alpha": 0.01}, {"activation": "tanh"}, {"dropout": 0.2}]
    for params in changes:
        model.set_params(**params).partial_fit(X, Y)
        assert kept_trainer(model) is not trainer, params
        trainer = kept_trainer(model)
    import scipy.sparse as sp
    model.partial_fit(sp.csr_matrix(X), Y)
    assert kept_trainer(model) is not trainer


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_kept_trainer_trains_to_the_bits_of_a_new_one(dtype):
    # Every call on a pickled copy makes its trainer anew; the same calls on one model reuse
    # it (and the optimizer's record), through changes of what the trainer is made from.
    data = X.astype(dtype)
    calls = [None, {"batch_size": 7}, None, {"alpha": 0.01}, {"dropout": 0.3}, None,
             {"max_grad_norm": 0.05}, None, {"solver": "sgd"}, None]

    def run(fresh_each_call):
        model = MLPClassifier(hidden_layer_sizes=(5,), batch_size=10, random_state=0)
        model.partial_fit(data, Y, classes=CLASSES)
        for params in calls:
            if fresh_each_call:
                model = pickle.loads(pickle.dumps(model))
            if params:
                model.set_params(**params)
            model.partial_fit(data, Y)
        return model

    kept, fresh = run(False), run(True)
    np.testing.assert_array_equal(kept._theta, fresh._theta)
    np.testing.assert_array_equal(kept.gradient_norms_, fresh.gradient_norms_)
    assert kept.loss_curve_ == fresh.loss_curve_


def test_fit_keeps_no_trainer_and_drops_partial_fits():
    model = steady(fastmlp)
    assert "_trainer_cache" in vars(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, Y)
    assert "_trainer_cache" not in vars(model)
    model.partial_fit(X, Y)
    model.set_params(warm_start=True, max_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, Y)
    assert "_trainer_cache" not in vars(model)


def test_a_failed_call_leaves_the_kept_trainer_as_it_was():
    model = steady(fastmlp)
    before = vars(model)["_trainer_cache"]
    record = vars(model._optimizer)["_record"]
    for bad in (lambda: model.partial_fit(X, np.where(Y == 2, 3, Y)),
                lambda: model.set_params(batch_size=7).partial_fit(with_nan(X), Y),
                lambda: model.partial_fit(X[:, :4].copy(), Y)):
        with pytest.raises(ValueError):
            bad()
        assert vars(model)["_trainer_cache"] is before
    assert vars(model._optimizer)["_record"] is record


def test_nothing_kept_is_pickled_or_copied_into_a_clone():
    import copy

    from sklearn.base import clone

    model = steady(fastmlp)
    state = model.__getstate__()
    assert "_trainer_cache" not in state and "_network_cache" not in state
    assert "_record" not in vars(pickle.loads(pickle.dumps(model._optimizer)))
    assert "_trainer_cache" not in vars(copy.deepcopy(model))
    assert clone(model).get_params() == model.get_params()
    loaded = pickle.loads(pickle.dumps(model))
    model.partial_fit(X, Y)
    loaded.partial_fit(X, Y)
    np.testing.assert_array_equal(model._theta, loaded._theta)


def test_a_steady_call_skips_nested_validation_as_fit_context_does(monkeypatch):
    # scikit-learn's _fit_context validates no parameter of a fitted model's partial_fit and
    # skips the validation of what it calls; the cheap path must do the same, and put the
    # configuration back however the call ends.
    import sklearn

    seen = []
    model = steady(fastmlp)
    validate = type(model)._validate_input

    def spy(self, *args, **kwargs):
        seen.append(sklearn.get_config()["skip_parameter_validation"])
        return validate(self, *args, **kwargs)

    monkeypatch.setattr(type(model), "_validate_input", spy)
    model.set_params(alpha=-1.0)  # scikit-learn does not validate it again either
    # (Labels as a list: plain arrays would take the steady path, which calls nothing of
    # scikit-learn's, so has nothing to skip: test_the_steady_path_calls_no_check.)
    model.partial_fit(X, Y.tolist())
    with pytest.raises(ValueError):
        model.partial_fit(X, np.where(Y == 2, 3, Y))
    with sklearn.config_context(skip_parameter_validation=True):
        model.partial_fit(X, Y.tolist())
        assert sklearn.get_config()["skip_parameter_validation"]
    assert seen == [True, True, True]
    assert not sklearn.get_config()["skip_parameter_validation"]
    # A first call validates its parameters, as scikit-learn's.
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError):
        MLPClassifier(alpha=-1.0).partial_fit(X, Y, classes=CLASSES)


def test_the_optimizer_record_follows_a_changed_field():
    # A learning-rate schedule changes the record between epochs (sgd, adaptive).
    model = steady(fastmlp, solver="sgd", learning_rate="adaptive", n_iter_no_change=1,
                   tol=1e9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(4):
            model.partial_fit(X, Y)
    record = model._optimizer.spec()
    assert record["lr"][0] == model._optimizer.learning_rate < 0.001
    assert record["t"][0] == model._optimizer.t


# -- the steady path: a plain call on a model whose last call was a partial_fit ------------------

def taken_steady(model, monkeypatch):
    """A list that records, for each later partial_fit of `model`'s class, whether it took the
    steady path (_steady_partial_fit returned True)."""
    taken = []
    steady_call = type(model)._steady_partial_fit

    def spy(self, X, y):
        taken.append(steady_call(self, X, y))
        return taken[-1]

    monkeypatch.setattr(type(model), "_steady_partial_fit", spy)
    return taken


def the_whole_path_only(monkeypatch, *classes):
    for cls in classes:
        monkeypatch.setattr(cls, "_steady_partial_fit", lambda self, X, y: False)


def run_of_calls(estimator, options, dtype, y, monkeypatch=None):
    data = X.astype(dtype)
    model = started_model(estimator, {"hidden_layer_sizes": (5,), "batch_size": 10,
                                      "random_state": 0, **options}, data, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        states = []
        for _ in range(6):
            model.partial_fit(data, y)
            states.append(fitted_state(model))
            states[-1]["compiled call"] = id(vars(model).get("_steady_call"))
    return model, states


@pytest.mark.parametrize("options", list(PARTIAL_FIT_OPTIONS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("target", ["multiclass", "binary", "regression"])
def test_the_steady_path_trains_the_whole_paths_bits(monkeypatch, options, dtype, target):
    from fastmlp import MLPRegressor

    estimator = MLPRegressor if target == "regression" else MLPClassifier
    y = {"multiclass": Y, "binary": Y % 2, "regression": X[:, 0] * 2 - X[:, 1]}[target]
    opts = PARTIAL_FIT_OPTIONS[options]
    taken = taken_steady(estimator(), monkeypatch)
    steady_model, steady_states = run_of_calls(estimator, opts, dtype, y)
    assert taken == [True] * 6  # every call after the first
    the_whole_path_only(monkeypatch, estimator)
    whole_model, whole_states = run_of_calls(estimator, opts, dtype, y)
    # The second steady call of the same rows makes the compiled call (SteadyCall), which takes
    # every later one (it stays, where a call it refused would have made another); the whole
    # path makes none, nor a call that warns (a batch_size clipped to the rows).
    compiled = [state.pop("compiled call") for state in steady_states]
    if options == "batch larger than the data":
        assert compiled == [id(None)] * 6
    else:
        assert compiled[0] == id(None) and compiled[1] != id(None)
        assert compiled[1:] == compiled[1:2] * 5
    assert {state.pop("compiled call") for state in whole_states} == {id(None)}
    for a, b in zip(steady_states, whole_states):
        assert_same_state(a, b)
    np.testing.assert_array_equal(steady_model.predict(X.astype(dtype)),
                                  whole_model.predict(X.astype(dtype)))


def test_the_steady_path_is_taken_by_plain_calls_only(monkeypatch):
    import scipy.sparse as sp

    model = steady(fastmlp)
    taken = taken_steady(model, monkeypatch)
    model.partial_fit(X, Y)
    model.partial_fit(X.astype(np.float32), Y.astype(np.int32))  # dtype and labels' dtype
    model.partial_fit(X[:7], Y[:7])  # another number of rows
    model.set_params(hidden_layer_sizes=[5], alpha=0.1).partial_fit(X, Y)  # the fitted sizes
    assert taken == [True, True, True, True]
    whole_path = [
        lambda m: m.partial_fit(X, Y, sample_weight=np.ones(len(Y))),
        lambda m: m.partial_fit(X, Y, classes=CLASSES),
        lambda m: m.partial_fit(X, y=Y),
        lambda m: m.partial_fit(X.tolist(), Y),
        lambda m: m.partial_fit(np.asfortranarray(X), Y),
        lambda m: m.partial_fit(sp.csr_matrix(X), Y),
        lambda m: m.partial_fit(X, Y.tolist()),
        lambda m: m.partial_fit(X, Y.astype(float)),
        lambda m: m.partial_fit(X, Y.reshape(-1, 1)),
        lambda m: m.set_params(warm_start=True).partial_fit(X, Y),
        lambda m: m.set_params(class_weight={0: 2.0}).partial_fit(X, Y),
        lambda m: m.set_params(hidden_layer_sizes=(7,)).partial_fit(X, Y),  # warns
        lambda m: m.set_params(solver="lbfgs").partial_fit(X, Y),  # (no partial_fit)
    ]
    for call in whole_path:
        model = steady(fastmlp)
        taken = taken_steady(model, monkeypatch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                call(model)
            except AttributeError:  # lbfgs: MLPClassifier has no partial_fit then
                pass
        assert taken in ([], [False]), whole_path.index(call)
    # A model whose last call was fit (no kept trainer) or that has never been fitted.
    model = MLPClassifier(hidden_layer_sizes=(5,), max_iter=2, random_state=0)
    taken = taken_steady(model, monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.partial_fit(X, Y, classes=CLASSES)
        model.fit(X, Y)
    model.partial_fit(X, Y)
    model.partial_fit(X, Y)
    assert taken == [False, True]


def test_a_regressors_steady_path_is_taken_by_plain_calls_only(monkeypatch):
    from fastmlp import MLPRegressor

    target = X[:, 0] - X[:, 1]
    model = MLPRegressor(hidden_layer_sizes=(5,), batch_size=10, random_state=0)
    model.partial_fit(X, target)
    taken = taken_steady(model, monkeypatch)
    model.partial_fit(X, target)
    model.partial_fit(X, (target > 0).astype(int))  # integer targets pass as they are
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.partial_fit(X, target.reshape(-1, 1))  # a column: scikit-learn warns
    with pytest.raises(ValueError, match="outputs"):
        model.partial_fit(X, np.column_stack([target, target]))
    with pytest.raises(ValueError, match="NaN"):
        model.partial_fit(X, np.where(target > 0, np.nan, target))
    model.set_params(solver="lbfgs", max_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.partial_fit(X, target)  # L-BFGS: scikit-learn's regressor has partial_fit then
    assert taken == [True, True, False, False, False, False]


def test_the_steady_path_keeps_the_whole_paths_warnings():
    model = steady(fastmlp).set_params(batch_size=100)
    for _ in range(3):  # (also once the steady path has run: no compiled call skips it)
        with pytest.warns(UserWarning, match="It is going to be clipped"):
            model.partial_fit(X, Y)
    model.set_params(hidden_layer_sizes=(7,))
    with pytest.warns(UserWarning, match="hidden_layer_sizes=.* is ignored"):
        model.partial_fit(X, Y)


def test_the_steady_path_calls_no_check(monkeypatch):
    # What it skips: scikit-learn's validation and the configuration context around it.
    import sklearn

    from fastmlp import _validation

    model = steady(fastmlp)

    def refuse(*args, **kwargs):
        raise AssertionError("the steady path validated")

    monkeypatch.setattr(_mlp, "_validate_training_data", refuse)
    monkeypatch.setattr(_mlp, "set_config", refuse)
    monkeypatch.setattr(_validation, "validate_data", refuse)
    model.partial_fit(X, Y)
    assert not sklearn.get_config()["skip_parameter_validation"]


# -- the compiled steady call (SteadyCall) -------------------------------------------------------

def with_list_sizes(model):
    model.hidden_layer_sizes.append(3)  # the list the model was made with, mutated in place
    return model


# Each change, made to a model whose compiled call is in place: the calls after it train the bits
# of calls that start afresh (a pickled copy: nothing compiled, nothing cached).
CHANGES = {
    "a coefs_ array replaced": lambda m: m.coefs_.__setitem__(0, m.coefs_[0] * 0.5),
    "the coefs_ list replaced": lambda m: setattr(m, "coefs_", [c * 0.5 for c in m.coefs_]),
    "an intercept edited in place": lambda m: m.intercepts_[0].__setitem__(slice(None), 0.25),
    "hidden_layer_sizes mutated in place": with_list_sizes,
    "a parameter set to an equal new object": lambda m: m.set_params(alpha=m.alpha * 1.0),
    "a new seed": lambda m: m.set_params(random_state=3),
    "the loss curve replaced": lambda m: setattr(m, "loss_curve_", [9.0]),
}
LATER_CALLS = [(X, Y), (X[:30], Y[:30]), (X, Y.astype(np.int32)), (X.astype(np.float32), Y),
               (X, Y), (X, Y)]


@pytest.mark.parametrize("change", list(CHANGES))
def test_the_compiled_call_trains_the_bits_of_fresh_calls_after_a_change(change):
    def run(fresh_each_call):
        model = MLPClassifier(hidden_layer_sizes=[5], batch_size=10, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.partial_fit(X, Y, classes=CLASSES)
            model.partial_fit(X, Y)
            model.partial_fit(X, Y)  # (the compiled call's first)
            CHANGES[change](model)
            for data, labels in LATER_CALLS:
                if fresh_each_call:
                    model = pickle.loads(pickle.dumps(model))
                model.partial_fit(data, labels)
        return model

    compiled, fresh = run(False), run(True)
    # (sizes that are no longer the fitted ones keep every call on the whole path, which warns)
    assert ("_steady_call" in vars(compiled)) == (change != "hidden_layer_sizes mutated in place")
    np.testing.assert_array_equal(compiled._theta, fresh._theta)
    np.testing.assert_array_equal(compiled.gradient_norms_, fresh.gradient_norms_)
    assert compiled.loss_curve_ == fresh.loss_curve_
    assert compiled.t_ == fresh.t_ and compiled._optimizer.t == fresh._optimizer.t


def test_calls_that_alternate_between_sizes_make_no_compiled_call():
    model = steady(fastmlp)  # (with a compiled call for its 40 rows)
    for k in range(6):
        rows = 40 if k % 2 else 30
        model.partial_fit(X[:rows], Y[:rows])
        assert vars(model).get("_steady_call") is None
    model.partial_fit(X[:30], Y[:30])  # two calls of the same rows in a row
    model.partial_fit(X[:30], Y[:30])
    assert vars(model).get("_steady_call") is not None


def test_the_compiled_call_checks_a_large_x_on_every_thread_and_refuses_its_nan():
    # From _engine.PARALLEL_CHECK_VALUES values on, the compiled call proves X finite as the
    # Python path does, on every thread (surely_finite's blocks of rows): a NaN in its last
    # block gets scikit-learn's error, and nothing of the model changes.
    from fastmlp import _engine
    rows, width = 2048, _engine.PARALLEL_CHECK_VALUES // 2048
    big = np.zeros((rows, width), np.float32)
    big[:, :6] = np.tile(X[:32].astype(np.float32), (rows // 32, 1))
    labels = np.tile(Y[:32], rows // 32)
    model = MLPClassifier(hidden_layer_sizes=(2,), batch_size=rows, random_state=0)
    model.partial_fit(big, labels, classes=CLASSES)
    model.partial_fit(big, labels)
    model.partial_fit(big, labels)  # (the second of these rows made the compiled call)
    call = vars(model)["_steady_call"]
    model.partial_fit(big, labels)
    assert vars(model)["_steady_call"] is call  # (it took the call)
    before = [c.copy() for c in model.coefs_], model.loss_curve_[:], model.t_
    big[-1, -1] = np.nan
    with threadpool_limits(2, user_api="openmp"), pytest.raises(ValueError, match="NaN"):
        model.partial_fit(big, labels)
    for kept, now in zip(before[0], model.coefs_):
        np.testing.assert_array_equal(kept, now)
    assert (model.loss_curve_, model.t_) == before[1:]


def test_the_compiled_call_refuses_what_the_python_path_must_see(monkeypatch):
    # Each call here must not be taken by the compiled call (it is dropped, then made again by
    # the Python path's steady call, or not at all).
    model = steady(fastmlp)
    calls = [lambda m: m.partial_fit(X[:30], Y[:30]),                # other rows
             lambda m: m.partial_fit(X, Y.astype(np.int32)),          # labels of another dtype
             lambda m: m.partial_fit(X.astype(np.float32), Y),        # X of another dtype
             lambda m: m.partial_fit(np.asfortranarray(X), Y),        # X in another layout
             lambda m: m.partial_fit(X, Y[::-1].copy()[::-1]),        # y in another layout
             lambda m: m.set_params(tol=1e-3).partial_fit(X, Y)]      # a parameter set
    for call in calls:
        model.partial_fit(X, Y)  # (twice: the second of these rows makes it again)
        model.partial_fit(X, Y)
        kept = vars(model)["_steady_call"]
        call(model)
        assert vars(model).get("_steady_call") is not kept


def test_the_compiled_call_holds_blas_through_python_where_the_engine_cannot(monkeypatch):
    # A BLAS the engine cannot call by address (MKL, BLIS): the compiled call enters the Python
    # limit, and trains the same bits.
    import threadpoolctl

    seen = []

    class Spy:
        def __enter__(self):
            seen.append(set(info["num_threads"] for info in threadpoolctl.threadpool_info()
                            if info["user_api"] == "blas"))
            return _runtime.single_threaded_blas().__enter__()

        def __exit__(self, *exc_info):
            return _runtime.single_threaded_blas().__exit__(*exc_info)

    monkeypatch.setattr(_mlp, "engine_holds_blas", lambda: False)
    monkeypatch.setattr(_mlp, "single_threaded_blas", lambda: Spy())
    model, reference = steady(fastmlp), steady(fastmlp)
    for _ in range(3):
        model.partial_fit(X, Y)
    monkeypatch.undo()
    for _ in range(3):
        reference.partial_fit(X, Y)
    assert len(seen) >= 3  # the Python path's epochs and the compiled call's
    np.testing.assert_array_equal(model._theta, reference._theta)
