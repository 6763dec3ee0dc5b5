"""Timing: interleaved repeats, medians, and the measurements built on them (training epochs,
inference, thread scaling, the machine's GEMM ceiling, time to accuracy).

Design
------
A speed comparison is a ratio measured in one process, on the same data, at the same time: a
shared machine is noisy, so absolute seconds mean little and a ratio between runs made minutes
apart means less. Hence:

- Repeats are interleaved (fastmlp, scikit-learn, torch, the peers in their child processes,
  fastmlp, ...: peers.PeerEpochs), with a pause before each
  so that one system's idle BLAS threads have gone to sleep when the next is timed, and a burst
  of load from another process lands on all systems alike; the median over repeats is reported.
  A slow system stops repeating once it has spent its time budget (never with fewer than three
  samples unless fewer were asked for); the table says how many epochs each median is over.
- Throughput uses one convention for everyone: training costs 6 x weights x samples flops per
  epoch (2 forward, 4 backward; weights = all W entries, biases ignored), inference
  2 x weights x rows. The machine's ceiling is the best single sgemm/dgemm of scipy's BLAS (the
  library fastmlp's engine calls) on large square matrices with every thread.
"""
import statistics
import time
from typing import NamedTuple

import numpy as np
from threadpoolctl import threadpool_limits

from .systems import make_system
from .workloads import (
    ACCURACY_THRESHOLDS, PREDICT_BULK_ROWS, PREDICT_ONE_CALLS, Workload, load_mnist10k,
    make_blobs, shifted_copies,
)

SETTLE_SECONDS = 0.3


class OwnTiming(NamedTuple):
    """What a task timed elsewhere returns to time_interleaved: its own seconds."""
    wall: float
    cpu: float


class TaskFailed(Exception):
    """Raised by a task of time_interleaved that cannot go on (a peer's child process that
    died): the task is dropped from the rounds, with the reason, and the others go on."""


def time_interleaved(tasks, repeats, budget, failed=None, settle=None):
    """tasks: {key: callable}. Call each once per round, in turn, for up to `repeats` rounds; a
    task whose calls have taken more than `budget` seconds in all stops after 3 (or `repeats`)
    samples. Returns {key: [wall seconds, ...]} and {key: [CPU seconds of the process, ...]}.
    Each call follows a pause of SETTLE_SECONDS where there is more than one task (below), or
    where `settle` says so (True: always; False: never).

    A task timed elsewhere (a peer's epoch in its child process, which times itself so that
    the round trip through the pipe is not counted) returns an OwnTiming; the others are timed
    here (whatever they return). A task that raises TaskFailed is called no more, and
    `failed[key]` says why (without a `failed` dict, the exception propagates)."""
    times = {key: [] for key in tasks}
    cpu_times = {key: [] for key in tasks}
    min_samples = min(3, repeats)
    for _ in range(repeats):
        for key, task in tasks.items():
            if failed is not None and key in failed:
                continue
            if len(times[key]) >= min_samples and sum(times[key]) > budget:
                continue
            if settle if settle is not None else len(tasks) > 1:
                # OpenBLAS's idle threads spin for ~0.1 s after a call before they sleep: left
                # alone, numpy's (scikit-learn's matmuls) would be timed as part of the next
                # system's call. Measured: fastmlp's bulk predict 33 ms alone, 55 ms right after
                # scikit-learn's.
                time.sleep(SETTLE_SECONDS)
            start, cpu = time.perf_counter(), time.process_time()
            try:
                own = task()
            except TaskFailed as error:
                if failed is None:
                    raise
                failed[key] = str(error)
                continue
            wall, cpu = (own if isinstance(own, OwnTiming)
                         else (time.perf_counter() - start, time.process_time() - cpu))
            times[key].append(wall)
            cpu_times[key].append(cpu)
    return times, cpu_times


def summarize(times, n_samples, flops, cpu_times=None):
    median = statistics.median(times)
    summary = {"n": len(times), "median_s": median, "min_s": min(times), "max_s": max(times),
               "samples_per_s": n_samples / median, "gflops": flops / median / 1e9}
    if cpu_times:
        # CPU seconds over wall seconds: about the thread count when every thread works or
        # spins, lower when threads wait for cores the machine's other processes hold.
        summary["cpu_per_wall"] = statistics.median(c / t for c, t in zip(cpu_times, times))
    return summary


def bench_fit(workload, systems, threads, repeats, budget, log, peers=None):
    """Epochs of `workload` by the in-process `systems` and by `peers` ({name: a started
    peers.PeerEpochs, its warm-up done}), all interleaved round by round: {name: summary}
    ({"error": why} for a peer whose child failed meanwhile), the runners and X."""
    peers = peers or {}
    X, y = make_blobs(workload.n_samples, workload.n_features, workload.dtype)
    runners = {name: make_system(name, workload, threads) for name in systems}
    for name, runner in runners.items():
        log(f"  {workload.name}: warm-up epoch of {name}")
        runner.fit_epoch(X, y)
    tasks = {name: (lambda r=runner: r.fit_epoch(X, y)) for name, runner in runners.items()}
    tasks.update((name, peer.epoch) for name, peer in peers.items())
    failed = {}
    times, cpu = time_interleaved(tasks, repeats, budget, failed)
    flops = 6 * workload.n_weights * workload.n_samples
    results = {name: ({"error": failed[name]} if name in failed
                      else summarize(t, workload.n_samples, flops, cpu[name]))
               for name, t in times.items()}
    for name, runner in runners.items():
        results[name]["final_loss"] = runner.final_loss
    for name, peer in peers.items():
        if name not in failed:
            results[name].update(final_loss=peer.final_loss, warmup_s=peer.warmup_s)
    return results, runners, X


def bench_predict(workload, runners, X, kinds, repeats, budget, log):
    """predict_proba of PREDICT_BULK_ROWS rows (median over `repeats` calls) and of one row
    (median over PREDICT_ONE_CALLS calls, a different row each time)."""
    results = {}
    if "predict-bulk" in kinds:
        bulk = np.ascontiguousarray(X[:PREDICT_BULK_ROWS])
        log(f"  predict-bulk: {bulk.shape[0]} rows")
        for runner in runners.values():
            runner.predict_proba(bulk)
        # Every call after the same pause, however many systems run here, as ONNX Runtime's
        # in its child process (peers.py): each system's bulk call starts from the same idle
        # machine (threads asleep, clocks down), not from the warmth of its own call before.
        times, cpu = time_interleaved({name: (lambda r=runner: r.predict_proba(bulk))
                                       for name, runner in runners.items()},
                                      max(repeats, 5), budget, settle=True)
        flops = 2 * workload.n_weights * bulk.shape[0]
        results["predict-bulk"] = {name: summarize(t, bulk.shape[0], flops, cpu[name])
                                   for name, t in times.items()}
    if "predict-one" in kinds:
        log(f"  predict-one: {PREDICT_ONE_CALLS} calls of one row")
        rows = [X[i:i + 1] for i in range(PREDICT_ONE_CALLS)]
        times = {name: [] for name in runners}
        # Each system's calls back to back, as a serving loop makes them: alternating systems
        # call by call would have each evict the others' weights (~1 MB each) from the cache.
        for name, runner in runners.items():
            time.sleep(SETTLE_SECONDS)
            for row in rows[:20]:
                runner.predict_proba(row)
            for row in rows:
                start = time.perf_counter()
                runner.predict_proba(row)
                times[name].append(time.perf_counter() - start)
        results["predict-one"] = {name: summarize(t, 1, 2 * workload.n_weights)
                                  for name, t in times.items()}
    return results


def bench_threads(workload, systems, threads, repeats, budget, log):
    """Epoch time of `workload` with 1 thread and with `threads`, interleaved, per system; for
    fastmlp also how many full batches of its `threads` epochs ran on one thread and on more
    ("batches": {"one": n, "more": n}): its run-time choice may give them one."""
    X, y = make_blobs(workload.n_samples, workload.n_features, workload.dtype)
    counts = sorted({1, threads})
    runners = {name: make_system(name, workload, threads) for name in systems}
    for runner in runners.values():
        runner.fit_epoch(X, y)
    batches = {name: [0, 0] for name, runner in runners.items()
               if getattr(runner, "thread_batches", lambda: None)() is not None}

    def epoch(runner, n):
        counted = n == threads and runner.name in batches
        before = runner.thread_batches() if counted else None
        with threadpool_limits(n):
            runner.set_threads(n)
            runner.fit_epoch(X, y)
        runner.set_threads(threads)
        if counted:
            after = runner.thread_batches()
            batches[runner.name][0] += after[0] - before[0]
            batches[runner.name][1] += after[1] - before[1]

    log(f"  threads: {workload.name} with {counts} threads")
    tasks = {(name, n): (lambda r=runner, n=n: epoch(r, n))
             for name, runner in runners.items() for n in counts}
    times, cpu = time_interleaved(tasks, repeats, budget)
    flops = 6 * workload.n_weights * workload.n_samples
    results = {}
    for name in runners:
        per_count = {str(n): summarize(times[(name, n)], workload.n_samples, flops,
                                       cpu[(name, n)])
                     for n in counts}
        speedup = per_count["1"]["median_s"] / per_count[str(counts[-1])]["median_s"]
        results[name] = {"by_threads": per_count, "speedup": speedup}
        if name in batches:
            results[name]["batches"] = dict(zip(("one", "more"), batches[name]))
    return results


def bench_gemm(sizes, threads, log, repeats=5):
    """The machine's GEMM ceiling: best GFLOP/s of scipy.linalg.blas sgemm and dgemm on square
    matrices of each size with every thread, and on the smallest size with one thread.

    Another process busy on one core halves an all-thread GEMM but leaves a one-thread GEMM on
    the other core whole, so the ceiling reported is the larger of the all-thread best
    and threads x the one-thread best: noise can only lower either, never raise it."""
    from scipy.linalg import blas
    rng = np.random.default_rng(0)
    results = {}
    for routine, dtype in (("sgemm", np.float32), ("dgemm", np.float64)):
        gemm = getattr(blas, routine)
        per_size, one_thread = {}, 0.0
        for n in sizes:
            log(f"  gemm: {routine} {n} x {n}")
            a = np.asfortranarray(rng.standard_normal((n, n)).astype(dtype))
            b = np.asfortranarray(rng.standard_normal((n, n)).astype(dtype))
            counts = [threads, 1] if n == min(sizes) and threads > 1 else [threads]
            best = dict.fromkeys(counts, float("inf"))
            for count in counts:  # warm-up: OpenBLAS starts its threads, pages are touched
                with threadpool_limits(count, user_api="blas"):
                    gemm(1.0, a, b)
            for _ in range(repeats):  # thread counts interleaved, like the systems elsewhere
                for count in counts:
                    with threadpool_limits(count, user_api="blas"):
                        start = time.perf_counter()
                        gemm(1.0, a, b)
                        best[count] = min(best[count], time.perf_counter() - start)
            per_size[str(n)] = 2 * n ** 3 / best[threads] / 1e9
            if 1 in best and threads > 1:
                one_thread = 2 * n ** 3 / best[1] / 1e9
            del a, b
        all_threads = max(per_size.values())
        results[routine] = {"best_gflops": max(all_threads, threads * one_thread),
                            "all_threads_gflops": all_threads, "by_size": per_size,
                            "one_thread_gflops": one_thread or all_threads}
    return results


def bench_accuracy(directory, systems, threads, max_epochs, log):
    """Seconds of training (partial_fit epochs; the held-out scoring between epochs is not
    counted) until held-out accuracy first reaches each threshold, on the MNIST test set split
    8,000 / 2,000, the 8,000 training images with their one-pixel shifts (`shifted_copies`:
    40,000 rows; the 2,000 held out are scored as they are), with the `mnist` workload's network
    and batch size. A trajectory is timed
    once, so a burst of load from another process lands on whichever epoch it hits: beside the
    summed seconds, each threshold also gets epochs x the median epoch, which such bursts do not
    move."""
    from sklearn.model_selection import train_test_split
    X, y = load_mnist10k(directory)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, train_size=8000, test_size=2000, random_state=0, stratify=y)
    X_train, y_train = shifted_copies(X_train, y_train)
    workload = Workload("accuracy", len(X_train), X.shape[1], (256, 128), 256, "float32")
    runners = {name: make_system(name, workload, threads) for name in systems}
    state = {name: {"seconds": 0.0, "curve": [], "reached": {}, "epoch_seconds": []}
             for name in runners}
    log(f"  accuracy: up to {max_epochs} epochs on {directory}")
    for epoch in range(1, max_epochs + 1):
        for name, runner in runners.items():
            record = state[name]
            if len(record["reached"]) == len(ACCURACY_THRESHOLDS):
                continue
            start = time.perf_counter()
            runner.fit_epoch(X_train, y_train)
            record["epoch_seconds"].append(time.perf_counter() - start)
            record["seconds"] += record["epoch_seconds"][-1]
            accuracy = float(np.mean(runner.predict_proba(X_test).argmax(axis=1) == y_test))
            record["curve"].append([epoch, round(record["seconds"], 4), accuracy])
            for threshold in ACCURACY_THRESHOLDS:
                if accuracy >= threshold and str(threshold) not in record["reached"]:
                    record["reached"][str(threshold)] = {"epoch": epoch,
                                                         "seconds": record["seconds"]}
    for record in state.values():
        record["best_accuracy"] = max(a for _, _, a in record["curve"])
        record["epochs_run"] = len(record["curve"])
        record["median_epoch_s"] = statistics.median(record["epoch_seconds"])
        for reached in record["reached"].values():
            reached["epochs_x_median_s"] = reached["epoch"] * record["median_epoch_s"]
    return {"max_epochs": max_epochs, "systems": state}
