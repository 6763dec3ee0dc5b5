"""One-row predict_proba with a large W's product shared with a second thread (the engine's
split_product; csrc/small_product.c's Design) against one thread, in turns in one process:
microseconds per call, the median over rounds of each round's median.

    python benchmarks/one_row_threads.py [--rounds 8] [--pause-us 0] [--busy]

The model is the harness's `mnist` network (784 -> 256 -> 128 -> 10, float32) after one epoch
of partial_fit, and the rows are 200 rows of its data, as benchmarks/compare.py's predict-one
takes them. Each round makes 20 calls untimed, then 200 timed, with each of: the engine's rule
(`split`: csrc/placement.c's, the model's own choice first), and the split forbidden
(`one thread`: _engine.few_row_split(-1)). --pause-us spins that long between calls (a
serving loop's own work: the helper spins 40-80 us after a split before it sleeps); --busy
starts a process that keeps one core busy for the run. The two ways give the same bits
(tests/engine/test_few_row_split.py); only the time differs.
"""
import argparse
import multiprocessing
import statistics
import time

import numpy as np

from fastmlp import _engine
from fastmlp.bench.systems import EstimatorSystem
from fastmlp.bench.workloads import FIT_WORKLOADS, make_blobs


def _spin():
    while True:
        pass


def round_median(model, rows, pause):
    for row in rows[:20]:
        model.predict_proba(row)
    times = []
    for row in rows:
        if pause:
            until = time.perf_counter() + pause
            while time.perf_counter() < until:
                pass
        start = time.perf_counter()
        model.predict_proba(row)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6, statistics.mean(times) * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--pause-us", type=float, default=0.0)
    parser.add_argument("--busy", action="store_true", help="a spinning process beside the run")
    args = parser.parse_args()
    workload = FIT_WORKLOADS["mnist"]
    X, y = make_blobs(20_000, workload.n_features, workload.dtype)
    runner = EstimatorSystem("fastmlp", workload)
    runner.fit_epoch(X, y)
    rows = [X[i:i + 1] for i in range(200)]
    busy = None
    if args.busy:
        busy = multiprocessing.Process(target=_spin, daemon=True)
        busy.start()
        time.sleep(0.5)
    results = {"split": [], "one thread": []}
    try:
        for _ in range(args.rounds):
            for name, mode in (("split", 0), ("one thread", -1)):
                before = _engine.few_row_split(mode)
                try:
                    results[name].append(round_median(runner.model, rows, args.pause_us * 1e-6))
                finally:
                    _engine.few_row_split(before)
    finally:
        if busy is not None:
            busy.terminate()
    print(f"one-row predict_proba, `mnist` network, {args.rounds} rounds of 200 calls, pause "
          f"{args.pause_us:g} us{', beside a spinning process' if args.busy else ''}:")
    for name, rounds in results.items():
        medians = [m for m, _ in rounds]
        means = [m for _, m in rounds]
        print(f"  {name:10s} median {statistics.median(medians):6.2f} us (rounds "
              f"{min(medians):.1f}-{max(medians):.1f}); mean of calls {statistics.median(means):6.2f} "
              f"us (rounds {min(means):.1f}-{max(means):.1f})")
    ratio = statistics.median(m for m, _ in results["split"]) / statistics.median(
        m for m, _ in results["one thread"])
    print(f"  split / one thread: {ratio:.2f}")


if __name__ == "__main__":
    main()
