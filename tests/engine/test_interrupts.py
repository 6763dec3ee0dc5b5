"""Ctrl-C: a SIGINT during fit (one huge batch, small batches, L-BFGS) stops the engine's nogil
loops, with scikit-learn's warning and the model README's "Reliability" promises: the weights of
the last completed step (a step cut short updates each block of weights fully or not at all), for
L-BFGS the last accepted iterate. Each is checked against a fit of that many steps made from
scratch.

Each fit runs in a fresh Python, so that the signal reaches a process that starts clean. The
signal is sent from a timer that a callback starts when an epoch (or an L-BFGS iteration)
begins: it arrives inside the engine's work on that epoch, whatever the machine's speed."""
import subprocess
import sys

import pytest

pytest.importorskip("sklearn.callback", reason="scikit-learn without callbacks")


INTERRUPTED_FIT = """
import os, signal, sys, threading, warnings
import numpy as np
from fastmlp import MLPClassifier
n, n_features, hidden, solver, batch_size = {n}, {n_features}, {hidden}, "{solver}", {batch}
X = np.random.RandomState(0).rand(n, n_features)
y = np.arange(n) % 3
params = dict(hidden_layer_sizes=hidden, solver=solver, batch_size=batch_size, shuffle=False,
              tol=0, n_iter_no_change=10**9, max_fun=10**9, random_state=0,
              batch_norm={batch_norm})


class CtrlCInSecondIteration:
    # A timer started as the second epoch (L-BFGS iteration) begins sends SIGINT 50 ms later.
    def setup(self, estimator, context):
        pass

    def teardown(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context, **kwargs):
        if context.task_name in ("epoch", "lbfgs-iter") and context.task_id == 1:
            threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()

    def on_fit_task_end(self, estimator, context, **kwargs):
        return False


# Python's own Ctrl-C handler, whatever this process inherited: started in the background of a
# non-interactive shell (`nohup ... &`, a CI runner), a process inherits SIGINT ignored, Python
# then installs no handler, and the signal would never reach the fit.
signal.signal(signal.SIGINT, signal.default_int_handler)
clf = MLPClassifier(max_iter=100000, **params).set_callbacks(CtrlCInSecondIteration())
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    clf.fit(X, y)
assert [str(w.message) for w in caught] == ["Training interrupted by user."], caught
proba = clf.predict_proba(X[:50])
assert np.isfinite(proba).all() and np.allclose(proba.sum(axis=1), 1)

warnings.simplefilter("ignore")
if solver == "lbfgs":
    # The last accepted iterate is the result of a fit stopped after that many iterations.
    assert clf.n_iter_ >= 1, clf.n_iter_
    reference = MLPClassifier(max_iter=clf.n_iter_, **params).fit(X, y)
    assert np.array_equal(clf._theta, reference._theta), "not the last accepted iterate"
    assert clf.loss_ == reference.loss_
else:
    # The engine counts every step it began: the cut one is the t-th. The weights are those of
    # t - 1 steps, except blocks whose update the t-th step completed, which are those of t.
    # (A signal that comes between two epochs, in Python, cuts no step: those of t.)
    t = clf._optimizer.t
    per_epoch = -(-n // batch_size)
    assert clf.n_iter_ in ((t - 1) // per_epoch, t // per_epoch), (clf.n_iter_, t)
    assert clf.n_iter_ >= 1 and len(clf.loss_curve_) == clf.n_iter_
    epochs, steps = divmod(t - 1, per_epoch)
    reference = MLPClassifier(max_iter=epochs, **params).fit(X, y)
    if steps:
        reference.partial_fit(X[:steps * batch_size], y[:steps * batch_size])
    assert reference._optimizer.t == t - 1
    before = [a.copy() for a in reference.coefs_ + reference.intercepts_]
    running_before = getattr(reference, "_batch_norm_running", np.empty(0)).copy()
    reference.partial_fit(X[steps * batch_size:(steps + 1) * batch_size],
                          y[steps * batch_size:(steps + 1) * batch_size])
    if params["batch_norm"]:
        # batch normalization's running statistics move only with a whole step: those of t - 1
        # steps, or of t if the t-th step completed
        running = clf._batch_norm_running
        assert (np.array_equal(running, running_before)
                or np.array_equal(running, reference._batch_norm_running)), "a step's half"
    after = reference.coefs_ + reference.intercepts_
    # A block is some rows of one layer's weights, or its whole bias: each such row, each bias,
    # is all of one step or all of the other.
    for ours, old, new in zip(clf.coefs_ + clf.intercepts_, before, after):
        whole = (lambda same: same.all(axis=1)) if ours.ndim == 2 else (lambda same: same.all())
        assert (whole(ours == old) | whole(ours == new)).all(), "weights of no step"
print("ok", flush=True)
"""


@pytest.mark.parametrize("solver, n, n_features, hidden, batch, batch_norm", [
    # One mini-batch is the whole data set: the signal comes inside the step.
    ("sgd", 20000, 300, (256,), 20000, False),
    # Small batches (100 a epoch): the signal comes between two of them, or inside one.
    ("adam", 20000, 100, (256, 256), 200, False),
    # L-BFGS: the signal comes inside a full-batch gradient.
    ("lbfgs", 10000, 200, (256,), 200, False),
    # Batch normalization's passes, and its running statistics.
    ("sgd", 20000, 300, (256, 128), 20000, True),
    # Batches of 32 rows whose first layer is multiplied in column tiles before the row blocks
    # (_schedule.pxd's first_tiles), which wait for them.
    ("adam", 20000, 784, (256, 128), 32, False),
], ids=["one-batch-is-the-data", "small-batches", "lbfgs", "batch-norm", "tiled-first-layer"])
def test_ctrl_c_keeps_the_last_completed_step(solver, n, n_features, hidden, batch, batch_norm):
    script = INTERRUPTED_FIT.format(solver=solver, n=n, n_features=n_features, hidden=hidden,
                                    batch=batch, batch_norm=batch_norm)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
