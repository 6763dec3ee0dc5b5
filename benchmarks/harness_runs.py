"""The harness's own runs beside the side-by-side table: steadiness, two threads beside a busy
core, and the cost of one small `partial_fit` call (issue 12's "Steady" and "Per call").

Design
------
These measure fastmlp against itself, so they are the project's, not `fastmlp bench`'s: a user
comparing systems has no use for them. Each is built on the package's timing code, so it times
what the table times:

- steadiness: five back-to-back runs of `tiny-batch` and `small` (each a fresh model, a warm-up
  epoch and `repeats` timed epochs, as `bench_fit` does); the figure is max/min of the five
  medians, which a noisy neighbour or an unlucky schedule moves. Right after, the same runs of
  a fixed one-thread sgemm loop in units as long as the epochs (host_control): what the host
  alone moves in that minute, reported beside fastmlp's figure (the target judges fastmlp's).
- busy core: a second process spins on one core (a `while True` loop, not pinned) while every
  training workload runs with 1 and with 2 threads, interleaved (`bench_threads`): two threads
  must never be slower than one. Each thread count gets epochs until they add up to
  BUSY_SECONDS (at least 3, at most BUSY_EPOCHS): the median of 3 epochs of `small` (~12 ms
  each, one thread with either count) read 0.93-1.08 for the same code both ways, which says
  nothing; 15 epochs read 0.97-1.00. With 1.5 seconds, `mnist` (~0.45 s an epoch beside the
  busy core) got 4 epochs a count and read 0.95-1.06 from run to run (2-core Intel Xeon VM,
  2026-12-05: four full runs; alone, 5 epochs a count, 0.93-0.98); with 3 seconds (7
  epochs) 0.89-0.99 in three full runs, `mnist-f64` 0.92-0.97, `wide` (3 epochs either way)
  0.85-0.89. Beside each ratio the report gives how many of the 2-thread epochs' full batches
  took two threads (the engine counts them: Network.thread_batches): where none did (`small`,
  whose batches never take two; `tiny-batch`, which the thread choice's gate keeps on one
  beside a busy core), both counts ran the same one-thread work, and their ratio is the host's
  noise, on either side of 1.00 by the run. And the process's CPU seconds a wall second in
  each count's epochs: how much of the CPUs two threads got beside the spinner.
- per call: `partial_fit` of the same 32 rows on a (64 -> 100 -> 10) network, fastmlp and
  scikit-learn, microseconds per call (median), after the first call that sets the classes.

compare.py runs them after its table; alone (the same runs, without the table):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/harness_runs.py \
        --runs busy-core,per-call --threads 2

and one workload's busy-core run, longer (how _threads.pxd's gate was measured):

    python benchmarks/harness_runs.py --runs busy-core --workloads tiny-batch --scale 0.5 \
        --repeats 7
"""
import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

from fastmlp.bench.timing import bench_fit, bench_threads
from fastmlp.bench.workloads import FIT_WORKLOADS, N_CLASSES, make_blobs

HARNESS_RUNS = ("steadiness", "busy-core", "per-call")
STEADY_WORKLOADS = ("tiny-batch", "small")
STEADY_RUNS = 5
BUSY_SECONDS, BUSY_EPOCHS = 3.0, 25  # a full run's busy-core epochs per thread count (above)
PER_CALL_ROWS, PER_CALL_HIDDEN, PER_CALL_FEATURES = 32, (100,), 64


@contextlib.contextmanager
def spinning_core(busy=True, settle=0.0):
    """While the block runs, with `busy`, another process keeps one core busy (a `while True`
    loop, not pinned), started `settle` seconds before the block (to let the scheduler see it
    busy) and killed after it: the busy-core run's neighbour, shared by the benchmarks that
    run beside one (choice_replay.py, batch_threads.py, pauses.py)."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        if busy and settle > 0:
            time.sleep(settle)
        yield
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()


def steadiness(threads, repeats, budget, scale, log, runs=STEADY_RUNS,
               names=STEADY_WORKLOADS):
    """{workload: {"medians": [s, ...], "max_over_min": ratio, "host": {the same of
    host_control's runs}}} of fastmlp's epoch medians; with 2 threads or more, also each run's
    full batches ("batches") and how many of them took more than one thread ("batches_on_2"):
    a slow run whose batches went to one thread is the thread choice's answer to the host (on
    the 2-core AMD EPYC VM, `tiny-batch` takes ~0.29 s an epoch on one thread, ~0.20 on two)."""
    results = {}
    with threadpool_limits(threads):
        for name in names:
            workload = FIT_WORKLOADS[name].scaled(scale)
            medians, batches = [], []
            for run in range(runs):
                log(f"steadiness: {name}, run {run + 1} of {runs}")
                fit, runners, _ = bench_fit(workload, ["fastmlp"], threads, repeats, budget,
                                            lambda message: None)
                medians.append(fit["fastmlp"]["median_s"])
                batches.append(runners["fastmlp"].thread_batches())
            log(f"steadiness: {name}, the host's control")
            results[name] = {"medians": medians, "max_over_min": max(medians) / min(medians),
                             "host": host_control(statistics.median(medians), runs,
                                                  fit["fastmlp"]["n"])}
            if threads >= 2 and None not in batches:
                results[name]["batches_on_2"] = [more for _, more in batches]
                results[name]["batches"] = [one + more for one, more in batches]
    return results


def host_control(seconds, runs, repeats):
    """The steadiness run's protocol on a fixed one-thread sgemm loop instead of fastmlp:
    `runs` back-to-back runs of a warm-up and `repeats` timed units of about `seconds` each;
    {"medians": [...], "max_over_min": ratio}. Whatever moves it is the host's (its other
    tenants, its clock), not fastmlp's: on the 2-core Intel Xeon VM (2026-12-07) the loop's
    max/min read 1.00-1.46 over sixteen groups of five runs, half of them over 1.25."""
    a = np.ones((200, 256), dtype=np.float32)
    b = np.ones((256, 256), dtype=np.float32)
    with threadpool_limits(1):
        start = time.perf_counter()
        a @ b
        once = max(time.perf_counter() - start, 1e-6)
        calls = max(1, min(100_000, int(seconds / once)))
        for _ in range(3):  # (the first calls pay for the threads' and caches' warm-up)
            start = time.perf_counter()
            for _ in range(calls):
                a @ b
            calls = max(1, min(100_000, int(calls * seconds / (time.perf_counter() - start))))
        medians = []
        for _ in range(runs):
            units = []
            for _ in range(repeats + 1):
                start = time.perf_counter()
                for _ in range(calls):
                    a @ b
                units.append(time.perf_counter() - start)
            medians.append(statistics.median(units[1:]))
    return {"medians": medians, "max_over_min": max(medians) / min(medians)}


def busy_core(repeats, budget, scale, log, names=None):
    """{workload: {"1": s, "2": s, "two_over_one": ratio}}: fastmlp's epoch medians with 1 and
    2 threads while another process keeps one core busy (`repeats` epochs each, or fewer, but
    at least 3, once they add up to `budget` seconds: BUSY_EPOCHS and BUSY_SECONDS in a full
    run, which keeps `wide` at 3 epochs, ~20 s a thread count)."""
    results = {}
    with spinning_core(settle=0.5), threadpool_limits(2):
        for name in (tuple(FIT_WORKLOADS) if names is None else names):
            log(f"busy core: {name} with 1 and 2 threads")
            workload = FIT_WORKLOADS[name].scaled(scale)
            run = bench_threads(workload, ["fastmlp"], 2, repeats, budget,
                                lambda message: None)["fastmlp"]
            r = run["by_threads"]
            results[name] = {"1": r["1"]["median_s"], "2": r["2"]["median_s"],
                             "two_over_one": r["2"]["median_s"] / r["1"]["median_s"]}
            if "batches" in run:  # (the 2-thread epochs' batches, by the threads they got)
                results[name]["batches_on_2"] = run["batches"]["more"]
                results[name]["batches"] = run["batches"]["one"] + run["batches"]["more"]
            if all("cpu_per_wall" in r[n] for n in ("1", "2")):
                results[name]["cpu_per_wall"] = {n: r[n]["cpu_per_wall"] for n in ("1", "2")}
    return results


def per_call(threads, log, calls=(("fastmlp", 2000), ("sklearn", 300))):
    """{system: {"median_us": ..., "min_us": ..., "calls": n}} of one partial_fit call."""
    X, y = make_blobs(PER_CALL_ROWS, PER_CALL_FEATURES, "float32", seed=1)
    results = {}
    with threadpool_limits(threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for system, n in calls:
            log(f"per call: {n} partial_fit calls of {system}, {PER_CALL_ROWS} rows")
            if system == "fastmlp":
                from fastmlp import MLPClassifier
            else:
                from sklearn.neural_network import MLPClassifier
            model = MLPClassifier(hidden_layer_sizes=PER_CALL_HIDDEN, random_state=0)
            model.partial_fit(X, y, classes=np.arange(N_CLASSES))
            for _ in range(20):
                model.partial_fit(X, y)
            times = []
            for _ in range(n):
                start = time.perf_counter()
                model.partial_fit(X, y)
                times.append(time.perf_counter() - start)
            results[system] = {"median_us": statistics.median(times) * 1e6,
                               "min_us": min(times) * 1e6, "calls": n}
    return results


def run_harness(runs, threads, repeats, budget, scale, log, workloads=None):
    """The runs named (from HARNESS_RUNS) as {name: result}; busy-core needs 2 usable CPUs.
    `workloads` narrows steadiness and busy-core to those of theirs named (all: None)."""
    results = {}
    if "steadiness" in runs:
        names = [w for w in STEADY_WORKLOADS if workloads is None or w in workloads]
        results["steadiness"] = steadiness(threads, repeats, budget, scale, log, names=names)
    if "busy-core" in runs and threads >= 2:
        names = [w for w in FIT_WORKLOADS if workloads is None or w in workloads]
        results["busy-core"] = (busy_core(BUSY_EPOCHS, BUSY_SECONDS, scale, log, names=names)
                                if workloads is None else
                                busy_core(repeats, budget, scale, log, names=names))
    if "per-call" in runs:
        calls = (("fastmlp", max(20, int(2000 * scale))), ("sklearn", max(10, int(300 * scale))))
        results["per-call"] = per_call(threads, log, calls)
    return results


def threads_used(result):
    """How many of a busy-core run's 2-thread batches took both threads, as the report says it
    ("" where not counted): where none did, both counts ran the same one-thread work, and their
    ratio is the host's noise (`small`'s batches never take two threads; `tiny-batch`'s are
    held on one beside a busy core by _threads.pxd's gate)."""
    if "batches" not in result:
        return ""
    return (f" (2-thread epochs: {result['batches_on_2']:,} of {result['batches']:,} "
            "batches on 2 threads)")


def cpu_used(result):
    """The process's CPU seconds a wall second in each count's epochs (median), as the report
    says it ("" where not timed): beside the spinning process one thread gets ~1.0; two threads
    of a pass that waits for the one the OS queued behind the spinner get ~1.1, not the 4/3 that
    three runnable threads on two CPUs would share (benchmarks/RESULTS.md, 2026-12-05 22:15)."""
    if "cpu_per_wall" not in result:
        return ""
    cpu = result["cpu_per_wall"]
    return f"; CPU a wall second {cpu['1']:.2f} and {cpu['2']:.2f}"


def format_harness(results):
    lines = []
    if "steadiness" in results:
        lines += ["", f"Steadiness: fastmlp's median s/epoch in {STEADY_RUNS} back-to-back runs:"]
        lines += [f"  {name:11s} " + ", ".join(f"{m:.4f}" for m in r["medians"])
                  + f"; max/min {r['max_over_min']:.2f}"
                  + (f" (the host's control right after: max/min "
                     f"{r['host']['max_over_min']:.2f})" if "host" in r else "")
                  for name, r in results["steadiness"].items()]
        lines += [f"  {name:11s} batches on 2 threads, each run's warm-up epoch included: "
                  + ", ".join(f"{more:,} of {n:,}" for more, n in zip(r["batches_on_2"],
                                                                      r["batches"]))
                  for name, r in results["steadiness"].items() if "batches_on_2" in r]
        if any("host" in r for r in results["steadiness"].values()):
            lines += ["  (the control: the same runs of a fixed one-thread sgemm loop, units as "
                      "long as the epochs: what the host alone moves)"]
    if "busy-core" in results:
        lines += ["", "Beside a process spinning on one core: fastmlp's median s/epoch, "
                      "1 vs 2 threads:"]
        lines += [f"  {name:11s} 1 thread {r['1']:.4f}, 2 threads {r['2']:.4f}: "
                  f"2/1 = {r['two_over_one']:.2f}{threads_used(r)}{cpu_used(r)}"
                  for name, r in results["busy-core"].items()]
    if "per-call" in results:
        lines += ["", f"partial_fit of {PER_CALL_ROWS} rows, ({PER_CALL_FEATURES} -> "
                      f"{PER_CALL_HIDDEN[0]} -> {N_CLASSES}), float32, per call:"]
        lines += [f"  {system:8s} median {r['median_us']:.0f} us, min {r['min_us']:.0f} us "
                  f"({r['calls']} calls)" for system, r in results["per-call"].items()]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description="The harness's own runs, without the table "
                                     "(compare.py runs them after it).")
    parser.add_argument("--runs", default=",".join(HARNESS_RUNS),
                        help="comma-separated, from: " + ", ".join(HARNESS_RUNS))
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads for steadiness and per-call (busy-core: 1 and 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs per run")
    parser.add_argument("--budget", type=float, default=30.0, help="seconds per workload")
    parser.add_argument("--scale", type=float, default=1.0, help="workload size factor")
    parser.add_argument("--workloads", default=None,
                        help="comma-separated training workloads for steadiness and busy-core "
                        "(default: theirs, and busy-core's 3 epochs; named, --repeats epochs)")
    args = parser.parse_args(argv)
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    unknown = [r for r in runs if r not in HARNESS_RUNS]
    if unknown:
        parser.error(f"unknown run: {', '.join(unknown)}")
    workloads = None
    if args.workloads is not None:
        workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
        unknown = [w for w in workloads if w not in FIT_WORKLOADS]
        if unknown:
            parser.error(f"unknown workload: {', '.join(unknown)}")
    results = run_harness(runs, args.threads, args.repeats, args.budget, args.scale,
                          lambda message: print(message, file=sys.stderr), workloads)
    print(f"load average {os.getloadavg()[0]:.2f}" + format_harness(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
