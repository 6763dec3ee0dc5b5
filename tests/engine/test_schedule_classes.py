"""The schedule class (fastmlp._runtime.schedule_cpus): the blocks of a mini-batch are cut for
the machine's CPUs, rounded down to 2, 4, 8 or 16, or for FASTMLP_SCHEDULE_CPUS; every thread
count then gives the class's bits. The one proof this 2-core machine can give of a 16-core
server's schedule: its blocks, run on 16 threads (and on 1), give the same bits."""
import os
import warnings

import numpy as np
import pytest

from fastmlp import MLPClassifier, _engine, _runtime

from _helpers import run_python


@pytest.fixture(autouse=True)
def unresolved_class(monkeypatch):
    """Each test resolves the class anew (a process resolves it once, at its first fit)."""
    monkeypatch.setattr(_runtime, "_schedule", None)


@pytest.mark.parametrize("cpus, cls", [(1, 2), (2, 2), (3, 2), (4, 4), (7, 4), (8, 8),
                                       (15, 8), (16, 16), (64, 16), (256, 16)])
def test_the_class_is_the_process_cpus_rounded_down(monkeypatch, cpus, cls):
    monkeypatch.delenv(_runtime.SCHEDULE_CPUS_VARIABLE, raising=False)
    monkeypatch.setattr(_runtime, "_PROCESS_CPUS", cpus)
    assert _runtime.schedule_cpus() == cls


def test_the_class_is_resolved_once(monkeypatch):
    monkeypatch.setenv(_runtime.SCHEDULE_CPUS_VARIABLE, "8")
    assert _runtime.schedule_cpus() == 8
    monkeypatch.setenv(_runtime.SCHEDULE_CPUS_VARIABLE, "4")
    assert _runtime.schedule_cpus() == 8  # a process keeps its class


def test_the_class_is_the_cpus_this_process_may_run_on():
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no affinity mask on this OS")
    assert _runtime._PROCESS_CPUS == len(os.sched_getaffinity(0))


def test_the_variable_sets_the_class(monkeypatch):
    monkeypatch.setattr(_runtime, "_PROCESS_CPUS", 2)
    for value in ("2", "4", "8", "16"):
        monkeypatch.setenv(_runtime.SCHEDULE_CPUS_VARIABLE, value)
        monkeypatch.setattr(_runtime, "_schedule", None)
        assert _runtime.schedule_cpus() == int(value)


@pytest.mark.parametrize("value", ["12", "1", "0", "-4", "32", "sixteen", ""])
def test_a_bad_class_is_refused_before_the_model_changes(monkeypatch, value):
    rng = np.random.RandomState(0)
    X, y = rng.standard_normal((60, 5)), rng.randint(0, 3, 60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = MLPClassifier((7,), max_iter=2, random_state=0).fit(X, y)
    theta, n_iter = fitted._theta.copy(), fitted.n_iter_
    monkeypatch.setenv(_runtime.SCHEDULE_CPUS_VARIABLE, value)
    monkeypatch.setattr(_runtime, "_schedule", None)  # as in a new process
    message = "FASTMLP_SCHEDULE_CPUS must be one of 2, 4, 8, 16, got " + repr(value)
    for call in (lambda: fitted.partial_fit(X, y), lambda: fitted.set_params(warm_start=True)
                 .fit(X, y)):
        with pytest.raises(ValueError, match=message):
            call()
        np.testing.assert_array_equal(fitted._theta, theta)
        assert fitted.n_iter_ == n_iter
    new = MLPClassifier((7,), max_iter=2)
    with pytest.raises(ValueError, match=message):
        new.fit(X, y)
    assert not hasattr(new, "coefs_")


def test_each_class_cuts_the_weights_into_its_jobs():
    network = _engine.Network([784, 256, 128, 10], "relu", "softmax")

    def jobs(cls):
        return [tuple(int(v) for v in job)
                for job in _engine.Trainer(network, 256, 784, np.float32,
                                           schedule_cpus=cls).jobs.T]
    # Class 2: the rules before classes (blocks of >= 256 of W's rows, an even count).
    assert jobs(2) == [(0, 0, 392), (0, 392, 784), (0, 0, -1), (1, 0, 128), (1, 128, 256),
                       (1, 0, -1), (2, 0, 64), (2, 64, 128), (2, 0, -1)]
    # Class 16: as many blocks as it wants where they keep >= 64 rows (784 // 64 = 12).
    sixteen = jobs(16)
    assert [sum(1 for job in sixteen if job[0] == l and job[2] >= 0) for l in range(3)] == \
        [12, 4, 2]
    for l, rows in enumerate((784, 256, 128)):
        blocks = [(lo, hi) for layer, lo, hi in sixteen if layer == l and hi >= 0]
        assert blocks[0][0] == 0 and blocks[-1][1] == rows
        assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
    assert _engine.Trainer(network, 256, 784, np.float32, schedule_cpus=16).schedule_cpus == 16
    with pytest.raises(ValueError, match="schedule_cpus must be at least 1"):
        _engine.Trainer(network, 256, 784, np.float32, schedule_cpus=0)


def test_a_kept_trainer_follows_the_class(monkeypatch):
    rng = np.random.RandomState(0)
    X, y = rng.standard_normal((64, 300)).astype(np.float32), rng.randint(0, 3, 64)
    clf = MLPClassifier((300,), batch_size=64, random_state=0)
    monkeypatch.setenv(_runtime.SCHEDULE_CPUS_VARIABLE, "2")
    clf.partial_fit(X, y, classes=[0, 1, 2])
    assert clf._trainer_cache[2].schedule_cpus == 2
    monkeypatch.setenv(_runtime.SCHEDULE_CPUS_VARIABLE, "8")
    monkeypatch.setattr(_runtime, "_schedule", None)
    clf.partial_fit(X, y)
    assert clf._trainer_cache[2].schedule_cpus == 8


# mnist's, wide's and tiny-batch's shapes (issue 12's workloads; tiny-batch's first layer in
# column tiles, _schedule.pxd's first_tiles), a few steps each with every batch held on all the
# threads OpenMP has (the run-time choice would give a 2-core machine's batches one), under the
# class of FASTMLP_SCHEDULE_CPUS.
HELD_IN_A_CLASS = """
import sys, warnings
import numpy as np
from fastmlp import MLPClassifier
from fastmlp._engine._testing import hold_all_threads
from fastmlp._runtime import effective_n_threads, schedule_cpus, threads_for_batch
warnings.simplefilter("ignore")
rng = np.random.RandomState(0)
out = [str(effective_n_threads()), str(schedule_cpus())]
for hidden, batch, dtype in (((256, 128), 256, "float32"), ((256, 128), 256, "float64"),
                             ((1024, 1024), 512, "float32"), ((256, 128), 32, "float32")):
    X = rng.standard_normal((2 * batch, 784)).astype(dtype)
    y = rng.randint(0, 10, 2 * batch)
    clf = MLPClassifier(hidden, batch_size=batch, random_state=0, alpha=1e-4)
    clf.partial_fit(X[:batch], y[:batch], classes=list(range(10)))
    # (all the threads its batches may have: tiny-batch's 7.5 M multiply-adds get 3)
    hold_all_threads(clf._network(), threads_for_batch(batch, clf._network().n_params))
    for _ in range(2):
        clf.partial_fit(X, y)
    out += [str(clf._network().thread_choice[0]), str(clf._trainer_cache[2].jobs.shape[1]),
            clf._theta.tobytes().hex(), clf.predict_proba(X[:50]).tobytes().hex()]
print(" ".join(out))
"""


def test_a_16_core_schedule_gives_its_bits_on_1_2_and_16_threads():
    env = dict(os.environ, **{_runtime.SCHEDULE_CPUS_VARIABLE: "16"})
    runs = {n: run_python(HELD_IN_A_CLASS, omp_threads=n, env=env).split() for n in (1, 2, 16)}
    for n, out in runs.items():
        assert out[:2] == [str(n), "16"]  # n threads, class 16
        assert out[2::4] == [str(n)] * 3 + [str(min(n, 3))]  # every batch on all it may have
    # class 16's weight jobs (class 2: 9, 9, 13, 9)
    assert runs[1][3::4] == ["21", "21", "47", "21"]
    for n in (2, 16):
        assert runs[n][4::4] == runs[1][4::4]  # the weights
        assert runs[n][5::4] == runs[1][5::4]  # the predictions


@pytest.mark.parametrize("rows, n_params, expected", [
    (32, 64 * 100 + 100 + 100 * 10 + 10, 1),     # the per-call partial_fit: 0.24 M multiply-adds
    (200, 64 * 100 + 100 + 100 * 10 + 10, 1),    # small: 1.5 M
    (1, 2 * 2**21 - 1, 1),
    (1, 2 * 2**21, 16),
    (32, 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10, 16),  # tiny-batch: 7.5 M
])
def test_a_batch_no_machine_threads_is_one_block(monkeypatch, rows, n_params, expected):
    monkeypatch.setenv(_runtime.SCHEDULE_CPUS_VARIABLE, "16")
    assert _runtime.batch_schedule(rows, n_params) == expected
    assert _runtime.batch_schedule(rows, n_params, 4) == (1 if expected == 1 else 4)


def test_partial_fit_of_a_small_network_keeps_whole_blocks():
    rng = np.random.RandomState(0)
    X, y = rng.standard_normal((32, 64)).astype(np.float32), rng.randint(0, 10, 32)
    clf = MLPClassifier((100,), random_state=0).partial_fit(X, y, classes=list(range(10)))
    trainer = clf._trainer_cache[2]
    assert trainer.schedule_cpus == 1
    assert [tuple(int(v) for v in job) for job in trainer.jobs.T] == [
        (0, 0, 64), (0, 0, -1), (1, 0, 100), (1, 0, -1)]
