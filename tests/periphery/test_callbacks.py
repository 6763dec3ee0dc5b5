"""Progress in the library: scikit-learn's callback API (sklearn.callback) on fastmlp's fits,
fastmlp's TrainingProgress line, and `verbose` printing scikit-learn's own lines."""
import io
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import sklearn.neural_network as sk
from sklearn.base import clone
from sklearn.datasets import make_regression
from sklearn.exceptions import ConvergenceWarning

import fastmlp._callbacks
from fastmlp import MLPClassifier, MLPRegressor, TrainingProgress

from _helpers import digits

callback_api = pytest.importorskip("sklearn.callback", reason="scikit-learn without callbacks")

SOLVERS = {"adam": dict(solver="adam"), "sgd": dict(solver="sgd", learning_rate_init=0.1),
           "lbfgs": dict(solver="lbfgs")}


class Recorder:
    """Records every hook call: (hook, task_name, task_id, max_subtasks, depth), and the weights
    at the end of each epoch; stops the fit at the end of iteration `stop_at` (1-based) when
    given."""

    def __init__(self, stop_at=None):
        self.calls = []
        self.epoch_weights = []
        self.stop_at = stop_at

    def setup(self, estimator, context):
        self.calls.append(("setup", context.task_name))

    def teardown(self, estimator, context):
        self.calls.append(("teardown", context.task_name))

    def on_fit_task_begin(self, estimator, context, *, X=None, y=None, metadata=None):
        self.calls.append(("begin", context.task_name, context.task_id, context.max_subtasks))
        self.last_args = (X, y, metadata)

    def on_fit_task_end(self, estimator, context, *, X=None, y=None, metadata=None):
        self.calls.append(("end", context.task_name, context.task_id, context.max_subtasks))
        if context.task_name == "epoch":
            self.epoch_weights.append(estimator._theta.copy())
        return (self.stop_at is not None and context.parent is not None and X is not None
                and context.task_id + 1 == self.stop_at)

    def iterations(self, hook):
        return [c for c in self.calls if c[0] == hook and c[1] in ("epoch", "lbfgs-iter")]


def fit_quietly(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_callbacks_do_not_change_the_fit(solver):
    """Hooks read, never write: a fit with callbacks is bitwise the fit without."""
    X, y = digits(300)
    params = dict(hidden_layer_sizes=(16,), max_iter=8, random_state=0, **SOLVERS[solver])
    plain = fit_quietly(MLPClassifier(**params), X, y)
    watched = fit_quietly(MLPClassifier(**params).set_callbacks(Recorder()), X, y)
    np.testing.assert_array_equal(plain._theta, watched._theta)
    assert plain.n_iter_ == watched.n_iter_
    assert plain.loss_ == watched.loss_


def test_epochs_are_subtasks_of_the_fit():
    X, y = digits(300)
    weights = np.ones(len(y))
    recorder = Recorder()
    clf = fit_quietly(MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
                      .set_callbacks(recorder), X, y, sample_weight=weights)
    assert recorder.calls[0] == ("setup", "fit")
    assert recorder.calls[1] == ("begin", "fit", 0, 5)
    assert recorder.calls[-2] == ("end", "fit", 0, 5)
    assert recorder.calls[-1] == ("teardown", "fit")
    assert recorder.iterations("begin") == [("begin", "epoch", i, 0) for i in range(5)]
    assert recorder.iterations("end") == [("end", "epoch", i, 0) for i in range(5)]
    # the hooks see the data as the caller passed it
    seen_X, seen_y, metadata = recorder.last_args
    assert seen_X is X and seen_y is y and metadata["sample_weight"] is weights
    # nothing of the callback machinery stays on the fitted estimator
    assert not hasattr(clf, "_callback_fit_ctx")
    assert not hasattr(clf, "_skl_callbacks_to_teardown")


class PropagatedRecorder(Recorder):
    """A Recorder that a meta-estimator hands down to its steps (AutoPropagatedCallback)."""

    max_propagation_depth = None


def test_a_meta_estimators_callbacks_reach_the_epochs():
    # An estimator with no callbacks of its own makes no callback context (FitTask); one in a
    # pipeline whose callbacks propagate to it must still report its epochs.
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = digits(300)
    recorder = PropagatedRecorder()
    pipe = make_pipeline(StandardScaler(),
                         MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0))
    fit_quietly(pipe.set_callbacks(recorder), X, y)
    assert recorder.iterations("end") == [("end", "epoch", i, 0) for i in range(3)]
    assert not hasattr(pipe[-1], "_skl_callbacks")  # the pipeline took its callbacks back


def test_partial_fit_is_one_task_with_one_epoch():
    X, y = digits(300)
    recorder = Recorder()
    clf = MLPClassifier(hidden_layer_sizes=(8,), random_state=0).set_callbacks(recorder)
    clf.partial_fit(X, y, classes=np.arange(10))
    clf.partial_fit(X, y)
    begins = [c for c in recorder.calls if c[0] == "begin"]
    assert begins == [("begin", "partial_fit", 0, 1), ("begin", "epoch", 0, 0)] * 2


def test_lbfgs_iterations_are_subtasks():
    X, y = digits(300)
    recorder = Recorder()
    clf = fit_quietly(MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=6,
                                    random_state=0).set_callbacks(recorder), X, y)
    assert recorder.calls[1] == ("begin", "fit", 0, 7)
    # one task per iteration scipy ran, plus the one scipy's last callback opened (closed empty)
    assert len(recorder.iterations("begin")) == clf.n_iter_ + 1
    assert len(recorder.iterations("end")) == clf.n_iter_ + 1


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_a_callback_stops_training(solver):
    X, y = digits(300)
    params = dict(hidden_layer_sizes=(16,), max_iter=50, random_state=0, **SOLVERS[solver])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # a requested stop is no failure
        clf = MLPClassifier(**params).set_callbacks(Recorder(stop_at=3)).fit(X, y)
    assert clf.n_iter_ == 3
    # the model it leaves is the one of 3 iterations
    reference = fit_quietly(MLPClassifier(**dict(params, max_iter=3)), X, y)
    np.testing.assert_allclose(clf._theta, reference._theta, rtol=1e-12)


def test_stop_with_early_stopping_keeps_the_best_weights():
    X, y = digits(300)
    recorder = Recorder(stop_at=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # a requested stop is no failure
        clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=50, early_stopping=True,
                            random_state=0).set_callbacks(recorder).fit(X, y)
    assert clf.n_iter_ == 4 and len(clf.validation_scores_) == 4
    # the weights are those of the best epoch (the first of equals), not the last one's
    best = int(np.argmax(clf.validation_scores_))
    assert best < 3, "no restore to check: the last epoch was the best"
    assert len(recorder.epoch_weights) == 4
    np.testing.assert_array_equal(clf._theta, recorder.epoch_weights[best])
    assert clf.best_validation_score_ == clf.validation_scores_[best]


def test_scoring_monitor_scores_each_epoch_with_that_epochs_weights():
    X, y = digits(300)
    monitor = callback_api.ScoringMonitor(scoring="accuracy")
    clf = fit_quietly(MLPClassifier(hidden_layer_sizes=(16,), max_iter=6, random_state=0)
                      .set_callbacks(monitor), X, y)
    rows = [r for r in monitor.get_logs().data if r["task_name"] == "epoch"]
    assert [r["task_id"] for r in rows] == list(range(6))
    # the last epoch's score is the fitted model's; earlier epochs scored other weights
    assert rows[-1]["accuracy"] == clf.score(X, y)
    assert rows[0]["accuracy"] < rows[-1]["accuracy"]


def test_scoring_monitor_on_a_regressor_with_lbfgs():
    X, y = make_regression(n_samples=200, n_features=6, noise=1.0, random_state=0)
    monitor = callback_api.ScoringMonitor(scoring="r2")
    reg = fit_quietly(MLPRegressor(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=20,
                                   random_state=0).set_callbacks(monitor), X, y)
    rows = [r for r in monitor.get_logs().data if r["task_name"] == "lbfgs-iter" and "r2" in r]
    assert len(rows) == reg.n_iter_
    assert rows[-1]["r2"] == pytest.approx(reg.score(X, y), rel=1e-12)


def test_progress_bar_runs_on_a_fit():
    pytest.importorskip("rich")
    X, y = digits(300)
    clf = fit_quietly(MLPClassifier(hidden_layer_sizes=(8,), max_iter=4, random_state=0)
                      .set_callbacks(callback_api.ProgressBar()), X, y)
    assert clf.n_iter_ == 4 and not hasattr(clf, "_callback_fit_ctx")


def test_callbacks_survive_clone_and_pickle():
    X, y = digits(300)
    recorder = Recorder()
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0)
    clf.set_callbacks(recorder)
    assert clone(clf)._skl_callbacks == [recorder]
    fitted = pickle.loads(pickle.dumps(fit_quietly(clf, X, y)))
    assert isinstance(fitted._skl_callbacks[0], Recorder)
    np.testing.assert_array_equal(fitted.predict(X), clf.predict(X))


def test_set_callbacks_rejects_non_callbacks():
    with pytest.raises(TypeError, match="FitCallback protocol"):
        MLPClassifier().set_callbacks(print)


def test_fit_without_callback_support_runs_no_hooks(monkeypatch):
    """With a scikit-learn lacking the API, the estimator has no _init_callback_context: the
    fit runs, without hooks, and gives the same model."""
    X, y = digits(300)
    params = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    expected = fit_quietly(MLPClassifier(**params), X, y)
    monkeypatch.setattr(MLPClassifier, "_init_callback_context", None, raising=False)
    clf = fit_quietly(MLPClassifier(**params), X, y)
    np.testing.assert_array_equal(clf._theta, expected._theta)


def test_the_callback_bridge_works_without_sklearn_callback():
    """Loaded where `import sklearn.callback` fails (scikit-learn 1.9's own modules need it, so
    the module is loaded alone): a mixin without set_callbacks, whose AttributeError says what
    is missing, and hooks that do nothing."""
    code = (
        "import importlib.util, sys; sys.modules['sklearn.callback'] = None\n"
        f"path = {fastmlp._callbacks.__file__!r}\n"
        "spec = importlib.util.spec_from_file_location('bridge', path)\n"
        "bridge = importlib.util.module_from_spec(spec); spec.loader.exec_module(bridge)\n"
        "CallbackSupportMixin, FitTask = bridge.CallbackSupportMixin, bridge.FitTask\n"
        "assert not hasattr(CallbackSupportMixin(), 'set_callbacks')\n"
        "try: CallbackSupportMixin().set_callbacks()\n"
        "except AttributeError as e: assert 'scikit-learn >= 1.9' in str(e), e\n"
        "else: raise AssertionError('set_callbacks did not raise')\n"
        "task = FitTask(object(), None, None, None, task_name='fit', max_subtasks=1)\n"
        "task.begin_iteration(None); assert task.end_iteration(None) is False\n"
        "assert task.lbfgs_callback(None) is None; task.end()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- fastmlp's plain-text progress line ----------------------------------------------------------

def test_training_progress_writes_epochs_loss_validation_and_time_left():
    X, y = digits(300)
    out = io.StringIO()
    clf = fit_quietly(MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, early_stopping=True,
                                    random_state=0)
                      .set_callbacks(TrainingProgress(file=out, interval=0)), X, y)
    lines = out.getvalue().splitlines()
    assert len(lines) == clf.n_iter_ == 5
    assert lines[0].startswith("epoch 1/5 [####")
    assert f"loss {clf.loss_curve_[0]:.6f}" in lines[0]
    assert f"validation {clf.validation_scores_[0]:.4f}" in lines[0]
    assert "left" in lines[0] and "left" not in lines[-1]
    assert lines[-1].startswith("epoch 5/5 [####################]")


def test_training_progress_throttles_but_always_writes_the_last_epoch():
    X, y = digits(300)
    out = io.StringIO()
    fit_quietly(MLPClassifier(hidden_layer_sizes=(8,), max_iter=6, random_state=0)
                .set_callbacks(TrainingProgress(file=out, interval=3600)), X, y)
    lines = out.getvalue().splitlines()
    assert [line.split("[")[0].strip() for line in lines] == ["epoch 1/6", "epoch 6/6"]


def test_training_progress_on_lbfgs_counts_iterations():
    X, y = digits(300)
    out = io.StringIO()
    clf = fit_quietly(MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=4,
                                    random_state=0)
                      .set_callbacks(TrainingProgress(file=out, interval=0)), X, y)
    lines = out.getvalue().splitlines()
    assert len(lines) == clf.n_iter_
    assert lines[-1].startswith(f"iteration {clf.n_iter_}/4")


# -- verbose ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("params", [
    dict(solver="adam", early_stopping=True, n_iter_no_change=2, tol=0.5),
    dict(solver="sgd", learning_rate="adaptive", n_iter_no_change=1, tol=10.0),
    dict(solver="lbfgs"),
], ids=["adam-early-stopping", "sgd-adaptive", "lbfgs"])
def test_verbose_prints_what_scikit_learn_prints(params, capsys):
    X, y = digits(300)
    params = dict(hidden_layer_sizes=(8,), max_iter=12, random_state=0, verbose=True, **params)
    printed = []
    for module in (sk, sys.modules["fastmlp"]):
        fit_quietly(module.MLPClassifier(**params), X, y)
        printed.append(capsys.readouterr().out)
    assert printed[0] == printed[1]
    if params["solver"] != "lbfgs":
        assert "Iteration 1, loss = " in printed[1]
