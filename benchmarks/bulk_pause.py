"""Bulk predict_proba (20,000 rows of `mnist`'s network) by fastmlp and by ONNX Runtime, in one
process, each timed two ways in turn: right after two calls of its own (back to back, as a loop
of predictions makes them: threads spinning, caches warm) and after a pause of the harness's
SETTLE_SECONDS (as benchmarks/compare.py times every system's bulk call: threads asleep).
Medians over rounds, milliseconds, and ONNX Runtime's time over fastmlp's for each way.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bulk_pause.py [--rounds 8]

Needs onnxruntime and skl2onnx (pip install "fastmlp[bench]").
"""
import argparse
import statistics
import time
import warnings

import numpy as np

from fastmlp.bench.peers import onnx_predict_proba
from fastmlp.bench.systems import EstimatorSystem
from fastmlp.bench.timing import SETTLE_SECONDS
from fastmlp.bench.workloads import FIT_WORKLOADS, PREDICT_BULK_ROWS, make_blobs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime's (0: every CPU)")
    args = parser.parse_args()
    workload = FIT_WORKLOADS["mnist"]
    X, y = make_blobs(workload.n_samples, workload.n_features, workload.dtype)
    runner = EstimatorSystem("fastmlp", workload)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner.fit_epoch(X, y)
    bulk = np.ascontiguousarray(X[:PREDICT_BULK_ROWS])
    calls = {"fastmlp": runner.model.predict_proba,
             "onnxruntime": onnx_predict_proba(runner.model, X, args.threads)}
    ways = ("after a pause", "back to back")
    times = {(name, way): [] for name in calls for way in ways}
    for call in calls.values():
        call(bulk)
    for _ in range(args.rounds):
        for name, call in calls.items():
            for way in ways:
                if way == "after a pause":
                    time.sleep(SETTLE_SECONDS)
                else:  # two calls of its own just before the timed one
                    call(bulk)
                    call(bulk)
                start = time.perf_counter()
                call(bulk)
                times[name, way].append(time.perf_counter() - start)
    for way in reversed(ways):
        ours = statistics.median(times["fastmlp", way])
        theirs = statistics.median(times["onnxruntime", way])
        print(f"{way:14s} fastmlp {1e3 * ours:6.2f} ms, ONNX Runtime {1e3 * theirs:6.2f} ms: "
              f"ONNX Runtime / fastmlp {theirs / ours:.2f}")


if __name__ == "__main__":
    main()
