"""A few-row prediction shares a large W's product with a second thread (the engine's
split_product; csrc/small_product.c's Design says why): when it does (csrc/placement.c's rule),
and that its results keep every bit."""
import math
import multiprocessing
import os
import threading
import time
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from fastmlp import MLPClassifier
from fastmlp import _engine as E
from fastmlp import _serving
from fastmlp._engine import _testing as K

GAP, LATE, WAKE = 30e-6, 10e-6, 200e-6  # csrc/fm_openmp.h's FM_SPLIT_GAP, _LATE, _WAKE
BACKOFF_MIN, BACKOFF_MAX = 16, 4096


def _in_a_fresh_thread(run):
    """run() in a thread of its own (the rule's record is per thread): what it returned."""
    result = []
    thread = threading.Thread(target=lambda: result.append(run()))
    thread.start()
    thread.join()
    return result[0]


def _calls(n, late=lambda i: False, took=5e-6, pause=2e-6, first_pause=2e-6):
    """n predictions back to back (pause apart), each split where the rule says; a split call
    i with late(i) waits 1 ms for its helper, others 1 us. Which calls split."""
    def run():
        splits, t = [], 0.0
        for i in range(n):
            split = K.split_gate([("begin", t)])[0]
            wait = (1e-3 if late(i) else 1e-6) if split else -1.0
            end = t + took + max(wait, 0.0)
            K.split_gate([("end", t, end, wait)])
            splits.append(split)
            t = end + (first_pause if i == 0 else pause)
        return splits
    return _in_a_fresh_thread(run)


def _runs_on_one_thread(splits):
    """The lengths of the runs of calls on one thread between two split calls."""
    runs, run, started = [], 0, False
    for split in splits:
        if split and started:
            runs.append(run)
        if split:
            started, run = True, 0
        else:
            run += 1
    return runs


def test_a_prediction_splits_only_right_after_another():
    # the first of a run on one thread (its helper asleep), the next ones on two
    assert _calls(5) == [False, True, True, True, True]
    # calls further apart than the helper spins: each on one thread
    assert _calls(4, pause=2 * GAP, first_pause=2 * GAP) == [False] * 4
    assert _calls(3, first_pause=2 * GAP) == [False, False, True]


def test_a_late_helper_puts_the_next_calls_on_one_thread_ever_longer_then_less():
    # every helper late from call 5 on: after each late split the next calls stay on one
    # thread, BACKOFF_MIN of them, then twice as many, up to BACKOFF_MAX
    splits = _calls(40_000, late=lambda i: i >= 5)
    assert splits[:6] == [False] + [True] * 5
    runs = _runs_on_one_thread(splits[5:])
    assert runs[:3] == [BACKOFF_MIN, 2 * BACKOFF_MIN, 4 * BACKOFF_MIN]
    assert max(runs) == BACKOFF_MAX and runs[-2:] == [BACKOFF_MAX, BACKOFF_MAX]
    # helpers on time again after a few late ones: each timely split halves the back-off
    splits = _calls(2_000, late=lambda i: 5 <= i < 200)
    runs = _runs_on_one_thread(splits[5:])
    assert max(runs) > 2 * BACKOFF_MIN
    assert splits[-50:] == [True] * 50


def test_a_helper_that_had_to_wake_is_judged_by_the_longer_bound():
    # a split whose previous split region ended more than the gap before found its helper
    # asleep: a wake (tens of microseconds) is no sign of a busy machine, a millisecond is
    def run(wait):
        t, answers = 0.0, []
        for _ in range(3):  # one call on one thread, then one split that waits `wait`
            answers += K.split_gate([("begin", t), ("end", t, t + 5e-6, -1.0),
                                     ("begin", t + 7e-6), ("end", t + 7e-6, t + 1e-4, wait)])
            t += 1.0
        return answers + K.split_gate([("begin", t - 1.0 + 1e-4 + 2e-6)])
    assert _in_a_fresh_thread(lambda: run(WAKE / 2)) == [False, True] * 3 + [True]
    assert _in_a_fresh_thread(lambda: run(2 * WAKE)) == [False, True] + [False, False] * 2 + [
        False]


def test_a_helper_still_waking_is_not_judged_late():
    # A split that wakes the helper is taken back by a caller done before the helper runs (a
    # wait of TAKEN: csrc/fm_openmp.h's FM_SPLIT_TAKEN), and so may the next ones, back to
    # back, while the helper is still on its way (~30-60 us on a virtual machine). Those are
    # judged by the wake's bound for WAKE after the wake, not as a spinning helper's: judged
    # late, each wake put the next calls on one thread, where the helper fell asleep again, so
    # that back-to-back calls split once in hundreds.
    taken, step = 20e-6, 9e-6  # (calls 9 us apart: no call begins on the bound itself)

    def run(waits):
        t, answers = 0.0, []
        for wait in waits:
            split = K.split_gate([("begin", t)])[0]
            answers.append(split)
            K.split_gate([("end", t, t + 7e-6, wait if split else -1.0)])
            t += step
        return answers
    # one call on one thread, then splits: the first three taken back (the helper waking),
    # then every one on time
    waits = [-1.0, taken, taken, taken] + [1e-6] * 30
    assert _in_a_fresh_thread(lambda: run(waits)) == [False] + [True] * 33
    # a helper that never comes: taken back for WAKE after its wake (call 1), then late
    waits = [-1.0] + [taken] * 60
    answers = _in_a_fresh_thread(lambda: run(waits))
    late = math.ceil(WAKE / step) + 1  # the first split judged as a spinning helper's
    assert answers[:late + 1] == [False] + [True] * late
    assert answers[late + 1:late + 1 + BACKOFF_MIN] == [False] * BACKOFF_MIN


def _fitted(dtype, **options):
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MLPClassifier(max_iter=2, random_state=0, **options).fit(
            rng.standard_normal((120, 784)).astype(dtype), np.arange(120) % 5)


def _predict(network, theta, x, copies, n_threads, mode, rows):
    before = E.few_row_split(mode)
    try:
        out = np.full((rows, 5), np.nan, theta.dtype)
        E.predict(network, theta, x, out, n_threads, None, False, copies)
        return out
    finally:
        E.few_row_split(before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", [
    dict(hidden_layer_sizes=(256, 128)),  # `mnist`'s: W1 split, W2 not (128 KB in float32)
    dict(hidden_layer_sizes=(300, 400), activation="tanh"),  # two layers split, ragged ends
    dict(hidden_layer_sizes=(100,), activation="maxout", maxout_pieces=3),  # W1 300 wide
])
def test_a_split_prediction_gives_the_same_bits(dtype, options):
    """Split on two threads (forced), on one, or never: the same bits, with and without the
    packed copy, one and three rows, inputs with zeros (listed terms) and without, a strided X
    and a CSR one (whose first layer is not split)."""
    clf = _fitted(dtype, **options)
    theta, network = clf._packed_parameters(), clf._network()
    first_columns = options["hidden_layer_sizes"][0] * options.get("maxout_pieces", 1)
    assert K.kernel_small_split(784, first_columns, dtype) > 0  # (so the split is tried)
    copies = E.small_pack_copies(network, theta)
    rng = np.random.default_rng(1)
    for rows in (1, 3):
        X = rng.standard_normal((rows, 2 * 784)).astype(dtype)[:, ::2]
        X[:, ::3] = 0.0
        for x in (X, np.ascontiguousarray(X), np.abs(X) + 1, sp.csr_matrix(X)):
            for copy in (None, copies):
                never = _predict(network, theta, x, copy, 2, -1, rows)
                assert not np.isnan(never).any()
                for n_threads in (1, 2):
                    split = _predict(network, theta, x, copy, n_threads, 1, rows)
                    assert split.tobytes() == never.tobytes(), (rows, n_threads)


def test_predict_proba_of_one_row_keeps_its_bits_split_or_not():
    # the estimator's compiled few-row call (SteadyPrediction) and its Python path alike
    clf = _fitted(np.float32, hidden_layer_sizes=(256, 128))
    rows = np.random.default_rng(2).standard_normal((30, 784)).astype(np.float32)
    before = E.few_row_split(-1)
    try:
        expected = [clf.predict_proba(rows[i:i + 1]) for i in range(30)]
        E.few_row_split(1)
        got = [clf.predict_proba(rows[i:i + 1]) for i in range(30)]
        assert _serving.steady_prediction(clf) is not None
    finally:
        E.few_row_split(before)
    for e, g in zip(expected, got):
        assert e.tobytes() == g.tobytes()


# The split's second thread (csrc/placement.c's fm_split_run): a helper of the engine's own,
# spinning between calls, from which a caller takes its part back if it has not started it.
# (These drive the _testing module's copy of it: each compiled module links its own csrc/.)
TAKEN = 20e-6  # csrc/fm_openmp.h's FM_SPLIT_TAKEN


def _ran_once_each(trace):
    return all(mine == 1 and theirs == 1 for mine, theirs, _, _ in trace)


def _on_helper(trace):
    """Whether the later calls' other parts ran on the helper, mostly. The first calls may
    find it just started on the caller's CPU (it runs, and moves off, once the OS lets it);
    then, called every 50 us, it spins between calls (a wait of ~80 us of pauses, then
    yields, before it sleeps) and takes each part within a microsecond or two."""
    on_helper = [elsewhere for _, _, elsewhere, _ in trace[-40:]]
    return sum(on_helper) >= len(on_helper) // 2


def _until(passes, take, attempts=3, pause=0.05):
    """take() a trace up to `attempts` times, `pause` seconds more apart each time, until one
    passes(trace); each must have run every part once. Returns the last. The OS may leave a
    new helper on the caller's CPU, or without a CPU, for a whole trace (~3 ms of a caller
    that never sleeps; a fresh clone's CI, 2026-12-07: every part taken back by the caller, as
    it should be then), and the caller's sleep lets it run and move off. A helper that never
    runs its part fails every attempt."""
    for attempt in range(attempts):
        time.sleep(pause * attempt)
        trace = take()
        assert _ran_once_each(trace)
        if passes(trace):
            break
    return trace


def test_the_helper_runs_the_other_part_while_the_caller_runs_its_own():
    trace = _until(_on_helper, lambda: K.split_run_trace(60, mine_busy=50e-6))
    assert _on_helper(trace), trace
    for _, _, elsewhere, waited in trace:
        assert waited >= 0.0
        if elsewhere:
            assert waited < 0.1  # (its part keeps it busy no time at all)


def test_a_part_the_helper_has_not_taken_runs_on_the_caller_and_counts_as_late():
    # a helper that the OS has queued behind another process, as the stall makes it: the
    # caller never waits for it, and fm_split_end sees at least FM_SPLIT_TAKEN
    trace = K.split_run_trace(5, mine_busy=50e-6, theirs_busy=30e-6, stall=True)
    assert _ran_once_each(trace)
    assert not any(elsewhere for _, _, elsewhere, _ in trace)
    assert all(waited >= 30e-6 for _, _, _, waited in trace)
    quick = K.split_run_trace(5, stall=True)
    assert _ran_once_each(quick)
    assert all(TAKEN <= waited < TAKEN + 0.1 for _, _, _, waited in quick)


def _narrowed_threads():
    """This process's threads whose CPU mask lacks exactly one of the main thread's CPUs."""
    allowed, narrowed = os.sched_getaffinity(0), set()
    for tid in os.listdir("/proc/self/task"):
        try:
            mask = os.sched_getaffinity(int(tid))
        except OSError:  # (a thread that has just ended)
            continue
        if mask < allowed and len(allowed - mask) == 1:
            narrowed.add(int(tid))
    return narrowed


@pytest.mark.skipif(not os.path.isdir("/proc/self/task") or not hasattr(os, "sched_getaffinity")
                    or len(os.sched_getaffinity(0)) < 2 or "FASTMLP_NO_SPREAD" in os.environ,
                    reason="Linux, two CPUs or more, the spread on")
def test_a_sleeping_helper_leaves_the_callers_cpu_out_of_its_mask_until_it_wakes():
    # Woken onto the caller's CPU, a helper would run only when the OS next preempts the
    # caller or balances the other CPU (1-4 ms on the 2-core AMD EPYC VM), every part taken
    # back meanwhile: asleep, it leaves that CPU out of its mask, and puts the mask back as it
    # wakes (csrc/placement.c's fm_wait_word).
    K.split_run_trace(3)  # (its helper up)
    time.sleep(0.1)  # it spins ~80 us, yields, then sleeps
    asleep = _narrowed_threads()
    assert asleep  # (this module's helper; the engine's too if a test started it)
    # the next split wakes it, and both parts keep their threads busy 0.3 s
    caller = threading.Thread(target=K.split_run_trace, args=(1, 0.3, 0.3))
    caller.start()
    try:
        time.sleep(0.1)
        awake = _narrowed_threads()
    finally:
        caller.join()
    assert len(awake) == len(asleep) - 1 and awake < asleep


def test_a_second_caller_runs_both_parts_itself_while_another_holds_the_helper():
    holder = threading.Thread(target=K.split_run_trace, args=(1, 5e-3, 0.3))
    holder.start()
    try:
        threading.Event().wait(0.05)  # (the holder is inside its 305 ms split)
        trace = K.split_run_trace(3)
    finally:
        holder.join()
    assert _ran_once_each(trace)
    assert [(elsewhere, waited) for _, _, elsewhere, waited in trace] == [(False, -1.0)] * 3


def _child_trace(conn):
    conn.send(K.split_run_trace(200, mine_busy=50e-6))
    conn.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX")
def test_a_forked_child_splits_with_a_helper_of_its_own():
    # the parent's helper is up (and may be mid-spin) when it forks; the child has no such
    # thread, and its first split starts one (pthread_atfork), or every part would fall back
    # on the caller
    assert _ran_once_each(K.split_run_trace(3, mine_busy=50e-6))
    context = multiprocessing.get_context("fork")

    def child_trace():  # (a fresh child each time: its helper, too, may get no CPU)
        ours, theirs = context.Pipe()
        child = context.Process(target=_child_trace, args=(theirs,))
        child.start()
        trace = ours.recv()
        child.join()
        assert child.exitcode == 0
        return trace

    trace = _until(lambda t: any(elsewhere for _, _, elsewhere, _ in t), child_trace)
    # Without a helper of its own the child's parts never run elsewhere, however many calls;
    # with one, some do. (That most do, the test above holds in the parent: in a full suite run
    # on the 2-core VM the child's last 40 of 200 calls ran mostly on the caller twice, its
    # first ones on its helper: a thread of another test's, or the OS, had a CPU.)
    assert any(elsewhere for _, _, elsewhere, _ in trace), trace


def test_threads_predicting_at_once_keep_every_bit():
    # one holds the helper at a time, the others run both parts themselves: the same bits
    clf = _fitted(np.float32, hidden_layer_sizes=(256, 128))
    rows = np.random.default_rng(3).standard_normal((40, 784)).astype(np.float32)
    before = E.few_row_split(-1)
    try:
        expected = [clf.predict_proba(rows[i:i + 1]).tobytes() for i in range(40)]
        E.few_row_split(1)
        results = [None] * 4

        def predict(t):
            results[t] = [clf.predict_proba(rows[i:i + 1]).tobytes()
                          for _ in range(5) for i in range(40)]

        threads = [threading.Thread(target=predict, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        E.few_row_split(before)
    for got in results:
        assert got == expected * 5
