"""Ctrl-C: a SIGINT during fit (one huge batch, small batches, L-BFGS) returns from the engine's
nogil loops within half a second, with scikit-learn's warning and a usable model. Each fit runs in
a subprocess, so that the signal reaches a process that starts clean."""
import signal
import subprocess
import sys
import time

import pytest


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
