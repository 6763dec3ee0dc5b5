"""Threads: the GIL is released while the engine trains and predicts; one model predicts from many
threads at once, and two models train at once, bitwise as alone; BLAS is held to one thread
inside the engine's parallel work (overlapping limits, worker threads) and given back after."""
import os
import re
import subprocess
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from fastmlp import MLPClassifier, MLPRegressor
from fastmlp import _runtime

from _helpers import digits


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
    # An epoch is one engine call (100000 rows through 256 x 256 units), a prediction another:
    # were the GIL held during them, this thread would wait that long. Two epochs and three
    # predictions, so that the work takes over 0.25 s on a fast machine too (one of each took
    # 0.247 s on a 2-core Intel Xeon VM, 2026-12-05).
    rng = np.random.RandomState(0)
    X_big = rng.rand(100000, 100)
    y_big = np.arange(100000) % 3
    clf = MLPClassifier((256, 256), max_iter=2, random_state=0)

    def train():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X_big, y_big)

    X_many = rng.rand(200000, 100)
    for work in (train, lambda: [clf.predict_proba(X_many) for _ in range(3)]):
        started = time.monotonic()
        pause = longest_pause_of_this_thread(work)
        duration = time.monotonic() - started
        assert duration > 0.25  # the call did take long...
        assert pause < 0.5 * duration  # ...and this thread ran meanwhile


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_many_threads_predicting_with_one_model_agree(dtype):
    Xd, yd = digits(1797, dtype, scaled=False)
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
    Xd, yd = digits(1797, scaled=False)

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


@pytest.fixture(params=["engine", "python"])
def blas_limit(request, monkeypatch):
    """The limit as it runs here (the engine's, where every BLAS is an OpenBLAS it can call),
    and _runtime's Python limit through threadpoolctl's controllers (MKL's, BLIS's)."""
    engine_holds = _runtime.engine_holds_blas()  # (finds the libraries: both limits need them)
    if request.param == "engine" and not engine_holds:
        pytest.skip("a BLAS the engine cannot call by address")
    if request.param == "python":
        monkeypatch.setattr(_runtime, "_engine_holds_blas", False)
    return request.param


def test_the_engine_holds_blas_where_every_library_is_an_openblas():
    # ... whose own thread-count functions threadpoolctl exposes (its newer releases; with 3.1,
    # the oldest supported, the limit is the Python one).
    from threadpoolctl import ThreadpoolController

    controllers = ThreadpoolController().select(user_api="blas").lib_controllers
    if controllers and all(c.internal_api == "openblas" and hasattr(c, "_real_set_num_threads")
                           and hasattr(c, "_get_symbol") for c in controllers):
        assert _runtime.engine_holds_blas()


def test_the_engines_blas_limit_refuses_a_lone_exit_and_a_change_while_held():
    from fastmlp import _engine

    original = blas_threads()
    with pytest.raises(RuntimeError, match="left more often"):
        _engine.blas_limit_exit()
    _engine.blas_limit_enter()
    try:
        with pytest.raises(RuntimeError, match="cannot change"):
            _engine.blas_thread_calls([])
    finally:
        _engine.blas_limit_exit()
    assert blas_threads() == original


def test_overlapping_blas_limits_keep_blas_single_threaded_until_the_last_ends(blas_limit):
    original = blas_threads()
    first, second = _runtime.single_threaded_blas(), _runtime.single_threaded_blas()
    first.__enter__()
    second.__enter__()
    assert set(blas_threads()) <= {1}
    first.__exit__(None, None, None)  # the other is still inside: BLAS stays at one thread
    assert set(blas_threads()) <= {1}
    second.__exit__(None, None, None)
    assert blas_threads() == original


def test_blas_is_held_to_one_thread_in_worker_threads_too(blas_limit):
    # threadpoolctl ignores limits set from any thread but its "controlling" one; a fit in a
    # worker thread must still run with single-threaded BLAS (else it rounds differently).
    # Seven threads, three at a time inside; each is waited for with a deadline, so that a
    # thread that dies leaves fewer records and one that hangs is reported, not waited for.
    seen = []
    inside_together = threading.Semaphore(3)

    def inside():
        with inside_together, _runtime.single_threaded_blas():
            seen.append(blas_threads())

    threads = [threading.Thread(target=inside, daemon=True) for _ in range(7)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), "a thread hangs in the BLAS limit"
    assert len(seen) == 7, "a thread failed inside the BLAS limit"
    assert all(set(threads) <= {1} for threads in seen)


def test_concurrent_fits_and_predictions_restore_blas_threads():
    original = blas_threads()
    Xd, yd = digits(1797, scaled=False)

    def work(seed):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf = MLPClassifier((32,), max_iter=3, random_state=seed).fit(Xd, yd)
        for _ in range(5):
            clf.predict_proba(Xd)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(work, range(8)))
    assert blas_threads() == original


# libgomp reads GOMP_SPINCOUNT once, when it is loaded, and prints what it read when
# OMP_DISPLAY_ENV=verbose. scikit-learn's own libgomp is loaded first, so that what is printed
# between the two marks is the engine's libgomp alone.
SPIN_COUNT_AT_LOAD = """
import os, subprocess, sys
import sklearn.neural_network, sklearn.utils._openmp_helpers
os.write(2, b"engine loads\\n")
import fastmlp
os.write(2, b"engine loaded\\n")
print(os.environ.get("GOMP_SPINCOUNT"))
print(subprocess.run([sys.executable, "-c", "import os; print(os.environ.get('GOMP_SPINCOUNT'))"],
                     capture_output=True, text=True, check=True).stdout.strip())
"""


@pytest.mark.skipif(not _runtime.OPENMP_ENABLED, reason="a serial build has no libgomp")
@pytest.mark.parametrize("users_value", [None, "7"])
def test_the_engine_loads_with_a_short_spin_count_unless_the_user_set_one(users_value):
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    env["OMP_DISPLAY_ENV"] = "verbose"
    if users_value is not None:
        env["GOMP_SPINCOUNT"] = users_value
    done = subprocess.run([sys.executable, "-c", SPIN_COUNT_AT_LOAD], env=env,
                          capture_output=True, text=True, check=True)
    at_load = done.stderr.split("engine loads\n")[1].split("engine loaded\n")[0]
    if "OPENMP DISPLAY ENVIRONMENT" not in at_load:
        pytest.skip("the engine shares a libgomp loaded before it")
    assert re.findall(r"GOMP_SPINCOUNT = '(\d+)'", at_load) == [users_value or "2000"]
    # The shortened count was set for the load alone: Python and its children see the user's.
    assert done.stdout.split("\n")[:2] == [str(users_value), str(users_value)]


# -- one thread or all, per batch, chosen at run time (fastmlp/_engine/_threads.pxd) ------------

def _trace(most, costs, **options):
    """_testing.thread_choice_trace: its options are the switch's cost and the gate's idle CPUs."""
    from fastmlp._engine._testing import thread_choice_trace
    return thread_choice_trace(most, costs, **options)


PROBE_BATCHES, PROBE_EARLY, MAX_PROBE_GAP = 8, 2, 1024  # _threads.pxd's
# A probe runs one batch more than it counts: its first, after the thread count changed.
PROBE_RUN, PROBE_EARLY_RUN = PROBE_BATCHES + 1, PROBE_EARLY + 1


def _runs(trace, threads):
    """(start, length) of each run of consecutive batches on `threads` threads."""
    runs, start = [], None
    for i, t in enumerate(trace + [None]):
        if t == threads and start is None:
            start = i
        elif t != threads and start is not None:
            runs.append((start, i - start))
            start = None
    return runs


def test_a_quiet_machine_keeps_every_thread_and_probes_ever_less_often():
    trace = _trace(2, [(2.0, 1.0)] * 12000)  # one thread costs twice as much per row
    probes = _runs(trace, 1)
    # each probe of one thread ends after PROBE_EARLY batches: it is clearly slower
    assert trace[0] == 2 and all(length == PROBE_EARLY_RUN for _, length in probes)
    assert trace[2000:].count(1) < 0.01 * len(trace[2000:])  # once the gaps have grown
    gaps = [b - a for (a, _), (b, _) in zip(probes, probes[1:])]
    assert gaps == sorted(gaps) and gaps[-1] >= MAX_PROBE_GAP


def test_a_probe_that_finds_one_thread_clearly_slower_puts_the_next_four_times_as_far():
    """_threads.pxd's PROBE_GROWTH: after a probe of one thread that ends early (one thread
    clearly slower), the gap to the next probe grows 4x (32 -> 128 -> 512 -> MAX_PROBE_GAP);
    after one that ran its PROBE_BATCHES (one thread slower, but not clearly), 2x."""
    clearly = _runs(_trace(2, [(2.0, 1.0)] * 3000), 1)
    gaps = [b - (a + n) for (a, n), (b, _) in zip(clearly, clearly[1:])]
    assert gaps[:3] == [128, 512, MAX_PROBE_GAP]
    barely = _runs(_trace(2, [(1.1, 1.0)] * 3000), 1)  # under 1.25x: the whole probe runs
    assert all(length == PROBE_RUN for _, length in barely)
    gaps = [b - (a + n) for (a, n), (b, _) in zip(barely, barely[1:])]
    assert gaps[:4] == [64, 128, 256, 512]


def test_a_busy_core_moves_the_batches_to_one_thread_and_back_when_it_frees():
    quiet, busy = [(1.0, 0.55)] * 300, [(1.0, 1.6)] * 300
    trace = _trace(4, quiet + busy + quiet * 6)
    assert trace[:300].count(4) > 250
    # at once when the threads' batches slow down (once the threads' next PROBE_BATCHES
    # batches have confirmed the probe of one thread)
    assert trace[300 + 10:600].count(1) > 250 - PROBE_BATCHES
    # back to all threads at the next probe (the one-thread batches do not get faster when
    # the neighbour stops: only a probe can see it), at most MAX_PROBE_GAP batches later
    back = trace[600 + MAX_PROBE_GAP + PROBE_BATCHES:]
    assert back.count(4) > 0.97 * len(back)


def test_threads_that_are_fast_only_now_and_then_are_judged_by_their_mean():
    # Beside a busy core the OS runs both threads at once for some batches and time-slices one
    # away for others: the threads' batches cost 0.6 or 3.0 (mean 1.8) where one thread's cost
    # 1.0. A probe of one batch caught a fast one half of the time and switched.
    rng = np.random.RandomState(0)
    costs = [(1.0, 0.6 if rng.rand() < 0.5 else 3.0) for _ in range(3000)]
    assert _trace(2, costs)[100:].count(1) > 0.9 * 2900
    # and the other way round: threads that pay off on average are kept
    costs = [(1.0, 0.3 if rng.rand() < 0.5 else 1.2) for _ in range(3000)]
    assert _trace(2, costs)[100:].count(2) > 0.85 * 2900


def test_one_slow_batch_does_not_flip_the_choice():
    steady = [(2.0, 1.0)] * 100
    costs = list(steady)
    costs[20] = (2.0, 50.0)  # a hiccup on the threads' side
    trace = _trace(2, costs)
    # (it may start a probe of one thread, as a neighbour's arrival would, and no more)
    assert trace[22:].count(1) <= _trace(2, steady)[22:].count(1) + PROBE_RUN
    assert all(length <= PROBE_RUN for _, length in _runs(trace, 1))  # probes, no switch


def test_a_probe_of_one_thread_ends_early_only_when_clearly_slower():
    # one thread 1.5x the threads' cost: two batches say so, the rest of the probe is not run
    assert all(length == PROBE_EARLY_RUN
               for _, length in _runs(_trace(2, [(1.5, 1.0)] * 3000), 1))
    # one thread 1.1x: too close to tell from two batches, the probe runs its PROBE_BATCHES
    probes = _runs(_trace(2, [(1.1, 1.0)] * 3000), 1)
    assert probes and all(length == PROBE_RUN for _, length in probes)


def test_the_batch_after_a_change_of_thread_count_is_not_counted():
    # mnist beside a busy core: one thread costs 1.0 where the threads cost 1.2 on average, but
    # one thread's first batch after threaded ones pays 2.5x for the change. Counted, it ended
    # every probe of one thread early ("clearly slower": (2.5 + 1.0) / 2 > 1.25 x 1.2) and the
    # threads kept the batches.
    costs = [(1.0, 1.2)] * 3000
    assert _trace(2, costs, switch=1.0)[100:].count(1) > 0.9 * 2900
    assert _trace(2, costs, switch=2.5)[100:].count(1) > 0.9 * 2900
    # and threads that are cheaper stay so, the change paid or not
    assert _trace(2, [(1.5, 1.0)] * 3000, switch=2.5)[100:].count(2) > 0.97 * 2900


def test_a_stall_after_the_change_neither_ends_nor_sways_a_probe_of_one_thread():
    # mnist beside a busy core, traced batch by batch (2-core Intel Xeon VM): one thread's
    # batches cost ~1.9 ms, but the second after threaded ones took 6.1 (a stall of ~4 ms); the
    # probe ended early ("clearly slower": (6.1 + 2.3) / 2 > 1.25 x the threads' 2.6) and the
    # threads kept 1,536 batches. A probe of one thread leaves its slowest batch out: where one
    # thread is 8 % cheaper, it takes the batches, wherever the stall falls.
    costs = [(1.0, 1.08)] * 3000
    assert _trace(2, costs, switch=(1.0, 3.0))[100:].count(1) > 0.9 * 2900
    assert _trace(2, costs, switch=(1.0, 1.0, 3.0))[100:].count(1) > 0.9 * 2900
    # and where one thread is clearly slower, its probes still end after two batches
    probes = _runs(_trace(2, [(1.5, 1.0)] * 3000, switch=(1.0, 3.0)), 1)
    assert probes and all(length == PROBE_EARLY_RUN for _, length in probes)
    assert _trace(2, [(1.5, 1.0)] * 3000, switch=(1.0, 3.0))[100:].count(2) > 0.97 * 2900


def test_where_the_two_cost_about_the_same_one_thread_has_the_batches():
    # mnist-f64 beside a busy core: one thread 5 % cheaper than the threads. With a margin of
    # 10 % both ways the threads kept the batches (two threads 1.05x one, against the target of
    # never slower); one thread takes over when 3 % cheaper.
    trace = _trace(2, [(1.0, 1.05)] * 3000)
    assert trace[100:].count(1) > 0.95 * 2900
    # while all threads still need 5 %: 3 % cheaper, they do not take the batches back; 8 %
    # cheaper (beside a busy core since a waiting thread sleeps: _threads.pxd), they do
    trace = _trace(2, [(1.0, 1.05)] * 200 + [(1.0, 0.97)] * 2800)
    assert trace[300:].count(1) > 0.95 * 2700
    trace = _trace(2, [(1.0, 1.05)] * 200 + [(1.0, 0.92)] * 2800)
    assert trace[300 + 2 * MAX_PROBE_GAP:].count(2) > 0.95 * len(trace[300 + 2 * MAX_PROBE_GAP:])
    # and one thread 2 % cheaper leaves them on the threads (within the margin: noise)
    trace = _trace(2, [(1.0, 1.02)] * 3000)
    assert trace[100:].count(2) > 0.95 * 2900


def test_a_burst_that_has_passed_does_not_move_the_batches_to_one_thread():
    # The threads' batches slow down for a while (the machine's burst, not a neighbour that
    # stays), which raises their smoothed cost above one thread's; the probe of one thread that
    # the slowdown starts then beats that estimate. The threads' next batches, back to their
    # cost, decide: no switch. Before that confirmation the batches went to one thread for
    # FIRST_PROBE (32) batches, at 1.2x the threads' cost each.
    steady = [(1.2, 1.0)] * 200
    burst = [(1.2, 3.0)] * 4
    trace = _trace(2, steady + burst + steady)
    assert all(length <= PROBE_RUN for _, length in _runs(trace[200:], 1))
    assert trace[200:].count(1) <= 2 * PROBE_RUN


def test_alternating_thread_limits_keep_what_each_learned():
    # Epochs of 200 batches, by turns on at most 1 and at most 2 threads (a benchmark timing
    # both, fits inside and outside threadpool_limits), beside a busy core: two threads cost
    # 1.5x one. Each epoch on 2 goes on from the last one on 2 (one thread, probes ever further
    # apart) instead of starting again from both threads and probing from its third batch.
    epochs = [1, 2] * 6
    limits = [limit for limit in epochs for _ in range(200)]
    trace = _trace(limits, [(1.0, 1.5)] * len(limits))
    on_two = [trace[i * 200:(i + 1) * 200] for i, limit in enumerate(epochs) if limit == 2]
    anew = _trace(2, [(1.0, 1.5)] * 200)  # what each would cost if it started again
    assert on_two[0] == anew and anew.count(2) > 2 * PROBE_BATCHES
    assert all(trace[i * 200:(i + 1) * 200] == [1] * 200
               for i, limit in enumerate(epochs) if limit == 1)
    later = [epoch.count(2) for epoch in on_two[1:]]
    assert all(count <= PROBE_RUN for count in later)  # probes only
    assert sum(later) <= 3 * PROBE_RUN < 5 * anew.count(2)


def test_one_thread_allowed_is_one_thread():
    assert set(_trace(1, [(1.0, 0.5)] * 50)) == {1}


def _held_on_all_threads(X, y):
    """A (256, 128) classifier after its first partial_fit of X, y, every coming batch held on
    all the threads its 256-row batches may have, and that count (skips where it is one)."""
    from fastmlp._engine._testing import hold_all_threads
    from fastmlp._runtime import threads_for_batch
    clf = MLPClassifier((256, 128), batch_size=256, random_state=0)
    clf.partial_fit(X, y, classes=np.unique(y))
    threads = threads_for_batch(256, clf._network().n_params)
    if threads < 2:
        pytest.skip("these batches get one thread here")
    hold_all_threads(clf._network(), threads)
    return clf, threads


def test_the_network_counts_the_full_batches_each_thread_count_ran():
    # Network.thread_batches, which benchmarks read to tell a busy-core run whose threads ran
    # from one whose 2-thread epochs all went to one thread: {limit: (on one, on all)}.
    from threadpoolctl import threadpool_limits
    X, y = digits(1536, np.float32)  # 6 full batches of 256
    clf, threads = _held_on_all_threads(X, y)
    with threadpool_limits(threads):
        clf.partial_fit(X, y)
    assert clf._network().thread_batches[threads] == (0, 6)
    with threadpool_limits(1):
        clf.partial_fit(X, y)
        clf.partial_fit(X[:1500], y[:1500])  # 5 full batches and a short one, not counted
    assert clf._network().thread_batches == {threads: (0, 6), 1: (11, 0)}


def test_turns_alternate_the_thread_counts_record_each_batch_and_change_no_bit():
    # Network.record_thread_turns, which benchmarks/choice_replay.py records with: 2 full
    # batches on all threads, 2 on one, whatever they cost, each batch's count and seconds
    # per row kept; the weights as the run-time choice's.
    from threadpoolctl import threadpool_limits

    from fastmlp._runtime import threads_for_batch
    X, y = digits(1600, np.float32)  # 6 full batches of 256 and a short one (not recorded)
    fits = []
    for turns in (None, 2):
        clf = MLPClassifier((256, 128), batch_size=256, random_state=0)
        clf.partial_fit(X, y, classes=np.unique(y))
        threads = threads_for_batch(256, clf._network().n_params)
        if threads < 2:
            pytest.skip("these batches get one thread here")
        if turns:
            clf._network().record_thread_turns(turns, capacity=10)
            before = clf._network().thread_batches[threads]
        with threadpool_limits(threads):
            clf.partial_fit(X, y)
            clf.partial_fit(X, y)
        fits.append(clf)
    network = fits[1]._network()
    counts, seconds = network.thread_turn_costs
    assert counts.tolist() == [threads, threads, 1, 1] * 2 + [threads, threads]  # (capacity)
    assert np.all(seconds > 0) and seconds.dtype == np.float64
    after = network.thread_batches[threads]
    assert (after[0] - before[0], after[1] - before[1]) == (6, 6)
    for a, b in zip(fits[0].coefs_ + fits[0].intercepts_, fits[1].coefs_ + fits[1].intercepts_):
        np.testing.assert_array_equal(a, b)
    network.record_thread_turns(0)  # the end: the run-time choice again, nothing recorded
    assert [len(a) for a in network.thread_turn_costs] == [0, 0]
    with pytest.raises(ValueError, match="turns and capacity must be >= 0"):
        network.record_thread_turns(-1)


# -- the gate: no probe of all threads where no CPU stands free (_threads.pxd) -----------------

def _gated(most, costs, idle, unit=1e-5):
    return _trace(most, costs, idle=idle, rows=32, unit=unit)


def test_beside_a_busy_core_short_batches_stop_probing_all_threads():
    # tiny-batch beside a spinning process: 32 rows, one thread 0.32 ms a batch, two threads
    # 1.5x that on average; no CPU idles. Without the gate the threads are probed at every gap
    # (and by every slowdown of the one thread); with it only before the first look's window.
    costs = [(1.0, 1.5)] * 6000
    ungated = _trace(2, costs)
    gated = _gated(2, costs, [0.0] * 6000)
    assert gated[:40] == ungated[:40]  # the switch to one thread is the choice's, as before
    assert ungated[40:].count(2) >= 4 * PROBE_BATCHES
    assert gated[40:].count(2) == 0


def test_a_free_cpu_lets_the_probes_run_and_all_threads_come_back():
    # The neighbour stops at batch 3000: a CPU idles, the next due probe runs and the threads,
    # cheaper now, take the batches back.
    costs = [(1.0, 1.5)] * 3000 + [(1.0, 0.55)] * 3000
    idle = [0.0] * 3000 + [1.0] * 3000
    trace = _gated(2, costs, idle)
    assert trace[40:3000].count(2) == 0
    back = trace[3000 + MAX_PROBE_GAP + 400:]
    assert back.count(2) > 0.97 * len(back)
    # on a quiet machine that the choice left on one thread, a probe waits at most the
    # gate's first window (0.1 s: ~300 of these batches) before it runs
    trace = _gated(2, [(1.0, 1.5)] * 40 + [(1.0, 0.55)] * 2000, [1.0] * 2040)
    assert trace[40 + 320 + PROBE_BATCHES + 1:].count(1) < 0.03 * len(trace[40 + 329:])


def test_the_gate_covers_batches_of_about_a_millisecond():
    # tiny-batch's batches on a slower host: ~1 ms on one thread. Beside a busy core the
    # threads' probes there cost more than they find (a fork and a join each batch): the gate
    # keeps the threads away.
    costs = [(1.0, 1.5)] * 3000
    gated = _gated(2, costs, [0.0] * 3000, unit=3.4e-5)  # 1.1 ms a one-thread batch
    assert gated[40:].count(2) == 0 < _trace(2, costs)[40:].count(2)


def test_the_gate_leaves_batches_of_a_few_milliseconds_to_the_probes():
    # mnist's batches: ~1.8-4.3 ms on one thread. Since a waiting thread sleeps
    # (csrc/fm_openmp.h), two threads beside a busy core beat one there (_threads.pxd): where
    # they do, they get the batches back, gate or no gate.
    costs = [(1.0, 1.5)] * 40 + [(1.0, 0.8)] * 3000
    for unit in (5.8e-5, 1.3e-4):  # 1.9 and 4.2 ms a one-thread batch
        later = _gated(2, costs, [0.0] * 3040, unit=unit)[40 + 2 * MAX_PROBE_GAP:]
        assert later.count(2) > 0.9 * len(later)


def test_the_gate_leaves_long_batches_to_the_probes():
    # mnist-f64's batches: ~10 ms on one thread. Beside a busy core two threads win about as
    # often as they lose there: the probes decide, gate or no gate.
    costs = [(1.0, 1.2)] * 3000
    assert _gated(2, costs, [0.0] * 3000, unit=3e-4) == _trace(2, costs)


# -- a thread that waits for a row block (csrc/fm_openmp.h's fm_wait_count) --------------------

def _in_a_thread(wait):
    """Run wait() in a thread of its own: (thread, {"value": what it returned, "cpu": that
    thread's CPU seconds in it}). A daemon: a wait that never ends fails its test, not the
    interpreter's exit."""
    result = {}

    def run():
        cpu = time.thread_time()
        result["value"] = wait()
        result["cpu"] = time.thread_time() - cpu
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def _asleep_until_woken(thread, result, wake):
    """The wait in `thread` (_in_a_thread's) goes on for 0.3 s, then wake() ends it; it must
    have taken under 0.3x that time's CPU: it slept rather than spun or yielded."""
    start = time.perf_counter()
    time.sleep(0.3)
    assert thread.is_alive()
    wake()
    thread.join(5.0)
    wall = time.perf_counter() - start
    assert not thread.is_alive()
    assert result["cpu"] < 0.3 * wall


def _waiter(count, target, stop):
    from fastmlp._engine._testing import wait_count
    return _in_a_thread(lambda: wait_count(count, target, stop))


@pytest.mark.skipif(sys.platform == "win32", reason="the wait sleeps on POSIX only")
def test_a_long_wait_sleeps_and_ends_when_the_count_arrives():
    # Beside a busy process the thread waited for may sit queued behind it for milliseconds: a
    # waiter that spins or yields keeps its CPU busy, and the kernel never moves that thread
    # onto it. Past a short spin the waiter sleeps between looks: little CPU of its own.
    from fastmlp._engine._testing import count_done
    count, stop = np.zeros(1, np.int32), np.zeros(1, np.int32)
    thread, result = _waiter(count, 2, stop)
    count_done(count)  # one of two: still waiting
    _asleep_until_woken(thread, result, lambda: count_done(count))
    assert result["value"] == 1


def test_a_stop_ends_a_long_wait():
    from fastmlp._engine._testing import raise_stop
    count, stop = np.zeros(1, np.int32), np.zeros(1, np.int32)
    thread, result = _waiter(count, 1, stop)
    time.sleep(0.1)
    assert thread.is_alive()
    raise_stop(stop)
    thread.join(5.0)
    assert not thread.is_alive() and result["value"] == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat is Linux's")
def test_spare_seconds_count_idle_cpus_and_our_own_time():
    from fastmlp._engine._testing import spare_seconds
    cpus = len(os.sched_getaffinity(0))
    first, start = spare_seconds(), time.perf_counter()
    while time.perf_counter() - start < 0.3:  # our CPU busy: it counts as our CPU time
        pass
    second, wall = spare_seconds(), time.perf_counter() - start
    assert first > 0
    # at least the CPU time we spun (a shared host may steal some), at most every CPU's wall
    # time (+ the idle counts' 10 ms ticks)
    assert 0.5 * wall <= second - first <= cpus * wall + 0.02 * cpus + 0.01


# -- the epoch's pool (fastmlp/_engine/_schedule.pxd's Pool) ------------------------------------

def test_every_job_of_a_batch_is_claimed_once_by_threads_claiming_at_once():
    from fastmlp._engine._testing import claim_all, publish_jobs
    word, jobs = np.zeros(1, np.int64), 60000
    publish_jobs(word, 7, jobs)
    outs = [np.full(jobs, -1, np.int32) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        counts = list(pool.map(lambda out: claim_all(word, 7, out), outs))
    taken = np.concatenate([out[:n] for out, n in zip(outs, counts)])
    assert sum(counts) == jobs and np.array_equal(np.sort(taken), np.arange(jobs))
    assert claim_all(word, 7, outs[0]) == 0  # none left


def test_a_helper_late_for_a_batch_takes_no_job_of_the_next():
    # A helper called to batch 7 that runs only once the caller has moved to batch 8 must not
    # take batch 8's jobs as batch 7's: the word's generation says whose they are.
    from fastmlp._engine._testing import claim_all, publish_jobs
    word, out = np.zeros(1, np.int64), np.zeros(8, np.int32)
    publish_jobs(word, 7, 3)
    assert claim_all(word, 7, out[:1]) == 1 and out[0] == 0
    publish_jobs(word, 8, 5)
    assert claim_all(word, 7, out) == 0
    assert claim_all(word, 8, out) == 5 and list(out[:5]) == [0, 1, 2, 3, 4]


def test_tiles_and_row_blocks_go_first_then_each_thread_takes_its_homes_weight_jobs():
    # 2 tiles and 2 row blocks (jobs 0-3), then 9 weight jobs (4-12) dealt to two homes: thread
    # 0 gets weight jobs 0, 2, 4, ... of the dispatch order, thread 1 the others, batch after
    # batch, whoever is the first to ask (_schedule.pxd's pool_next)
    from fastmlp._engine._testing import pool_claims
    assert pool_claims(2, 4, 9, [1, 0, 0, 1]) == [0, 1, 2, 3]
    turns = pool_claims(2, 4, 9, [1, 0, 0, 1] + [1, 0, 1, 0, 0, 1, 0, 1, 0])
    assert turns[4:] == [5, 4, 7, 6, 8, 9, 10, 11, 12]
    assert pool_claims(2, 4, 9, [0] * 4 + [1] * 9)[4:] == [5, 7, 9, 11, 12, 10, 8, 6, 4]


def test_a_thread_done_with_its_home_takes_the_others_jobs_and_every_job_goes_once():
    from fastmlp._engine._testing import pool_claims
    # the caller alone (its helper left out or late) takes every job, its own home's first,
    # then the other's from its end (the lowest layer's, the largest, first)
    alone = pool_claims(2, 4, 9, [0] * 14)
    assert alone == [0, 1, 2, 3, 4, 6, 8, 10, 12, 11, 9, 7, 5, -1]
    # four homes, thread 2 first done: it steals from home 3, then 0, then 1, each from its end
    four = pool_claims(4, 2, 10, [2] * 13)
    assert four == [0, 1, 4, 8, 9, 5, 10, 6, 2, 11, 7, 3, -1]
    # an owner and a thief meet in the middle: each job once
    assert pool_claims(2, 0, 8, [1, 0, 0, 0, 0, 0, 1, 1]) == [1, 0, 2, 4, 6, 7, 3, 5]
    # more threads than homes (POOL_HOMES, 16): thread t's home is t % 16
    many = pool_claims(20, 1, 40, [17, 1, 17])
    assert many == [0, 2, 18]
    for threads, shared, weights in ((2, 4, 9), (3, 2, 7), (16, 16, 45), (20, 3, 17)):
        order = np.random.default_rng(weights).integers(0, threads, 4 * (shared + weights))
        taken = [t for t in pool_claims(threads, shared, weights, list(order)) if t >= 0]
        assert sorted(taken) == list(range(shared + weights))
        assert taken[:shared] == list(range(shared))  # no weight job before every row block


def test_without_homes_the_weight_jobs_go_in_order_to_whoever_asks():
    # batches of HOME_ROWS rows or more: the one counter, as for the tiles and row blocks
    from fastmlp._engine._testing import pool_claims
    assert pool_claims(2, 4, 9, [0] * 4 + [1, 0, 0, 1, 1, 1, 0, 0, 1, 0],
                       homes=False) == list(range(13)) + [-1]


def test_a_late_helper_claims_no_weight_job_of_the_next_batch():
    from fastmlp._engine._testing import pool_claims
    assert pool_claims(2, 2, 4, [1, 1, 1], generation=2) == [-1, -1, -1]


def _call_waiter(value, seen, sleepers):
    from fastmlp._engine._testing import wait_call
    return _in_a_thread(lambda: wait_call(value, seen, sleepers))


@pytest.mark.skipif(sys.platform == "win32", reason="the wait sleeps on POSIX only")
def test_a_helper_left_out_sleeps_until_it_is_called():
    # Batches on one thread (the run-time choice's) leave the helpers out: they must not spin or
    # yield meanwhile, and the next call must wake them.
    from fastmlp._engine._testing import call
    value, sleepers = np.zeros(1, np.int32), np.zeros(1, np.int32)
    thread, result = _call_waiter(value, 0, sleepers)
    _asleep_until_woken(thread, result, lambda: call(value, 1, sleepers))
    assert result["value"] == 1 and sleepers[0] == 0


@pytest.mark.skipif(sys.platform == "win32", reason="the wait sleeps on POSIX only")
def test_the_caller_sleeps_until_the_helpers_last_job_is_done():
    # At a batch's end the caller waits for the jobs its helpers claimed: asleep past a short
    # spin, and woken by the last one's count (a nap would oversleep it by up to ~100 us).
    from fastmlp._engine._testing import job_done, wait_done
    done, sleepers = np.zeros(1, np.int32), np.zeros(1, np.int32)
    thread, result = _in_a_thread(lambda: wait_done(done, 2, sleepers))
    job_done(done, sleepers)  # one of two
    _asleep_until_woken(thread, result, lambda: job_done(done, sleepers))
    assert done[0] == 2 and sleepers[0] == 0


def test_no_call_is_missed_whatever_phase_of_its_wait_the_helper_is_in():
    # Called at once, after a spin, during the yields, or asleep: the helper sees every call (a
    # call lost between its last look and its sleep would leave it asleep for good).
    from fastmlp._engine._testing import call
    value, sleepers = np.zeros(1, np.int32), np.zeros(1, np.int32)
    delays = np.random.RandomState(0).choice([0.0, 2e-5, 1e-4, 1e-3], 120)
    for generation, delay in enumerate(delays, start=1):
        thread, result = _call_waiter(value, generation - 1, sleepers)
        time.sleep(delay)
        call(value, generation, sleepers)
        thread.join(5.0)
        assert not thread.is_alive() and result["value"] == generation


def test_pool_helpers_keep_to_their_time_slices_and_the_bits_stay():
    # A helper yields before a job that its time slice would end inside (csrc/placement.c's
    # fm_helper_slice): where nothing else wants its CPU, every ~3.6 ms of its jobs (a tick of
    # 4 ms; up to 10 ms elsewhere). Off, it never does; the weights are the same either way.
    from threadpoolctl import threadpool_limits

    from fastmlp import _engine
    X, y = digits(1536, np.float32)
    fits, yields = [], []
    before = _engine.helper_slices(True)
    try:
        for on in (True, False):
            _engine.helper_slices(on)
            clf, threads = _held_on_all_threads(X, y)
            count = _engine.helper_yields()
            with threadpool_limits(threads):
                for _ in range(60):  # ~0.5 s of batches
                    clf.partial_fit(X, y)
            yields.append(_engine.helper_yields() - count)
            fits.append(clf)
    finally:
        _engine.helper_slices(before)
    assert yields[0] > 0 and yields[1] == 0
    for a, b in zip(fits[0].coefs_ + fits[0].intercepts_, fits[1].coefs_ + fits[1].intercepts_):
        np.testing.assert_array_equal(a, b)
