"""Epochs after pauses and beside a busy process: the worker-placement fix (csrc/placement.c).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/pauses.py

Times `partial_fit` epochs of a workload (default `small`) in fresh child processes, with the
worker's move off the caller's CPU on and off (FASTMLP_NO_SPREAD=1), in two settings: a pause
between epochs (what a loop that reads, scores or waits between calls does) and back to back
beside a process that keeps one core busy. The settings take turns, so the machine's own noise
falls on all of them alike. Prints the median and the worst epoch of each.
"""
import argparse
import os
import statistics
import subprocess
import sys

from harness_runs import spinning_core

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = r"""
import sys, time, json, warnings
import numpy as np
from fastmlp import MLPClassifier
from fastmlp.bench.workloads import FIT_WORKLOADS, make_blobs
workload, epochs, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
w = FIT_WORKLOADS[workload]
X, y = make_blobs(w.n_samples, w.n_features, w.dtype)
model = MLPClassifier(hidden_layer_sizes=w.hidden, batch_size=w.batch_size, random_state=0)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    model.partial_fit(X, y, classes=np.arange(10))
    times = []
    for _ in range(epochs):
        time.sleep(pause)
        start = time.perf_counter()
        model.partial_fit(X, y)
        times.append(time.perf_counter() - start)
print(json.dumps(times))
"""


def run(workload, epochs, pause, spread, busy):
    env = dict(os.environ)
    env.pop("FASTMLP_NO_SPREAD", None)
    if not spread:
        env["FASTMLP_NO_SPREAD"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.dirname(HERE),
                                                      env.get("PYTHONPATH")]))
    with spinning_core(busy):
        out = subprocess.run([sys.executable, "-c", CHILD, workload, str(epochs), str(pause)],
                             env=env, capture_output=True, text=True, check=True).stdout
    import json
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="small")
    parser.add_argument("--epochs", type=int, default=12, help="timed epochs per child")
    parser.add_argument("--rounds", type=int, default=2, help="children per setting")
    parser.add_argument("--pause", type=float, default=0.3, help="seconds between epochs")
    args = parser.parse_args()
    settings = [(f"{args.pause:g} s pauses", args.pause, False), ("beside a busy core", 0.0, True)]
    times = {(label, spread): [] for label, _, _ in settings for spread in (True, False)}
    for _ in range(args.rounds):
        for label, pause, busy in settings:
            for spread in (True, False):
                times[(label, spread)] += run(args.workload, args.epochs, pause, spread, busy)
    print(f"{args.workload}: partial_fit epochs, {args.rounds} x {args.epochs} per setting, "
          f"ms (median / worst)")
    for label, _, _ in settings:
        cells = []
        for spread in (True, False):
            t = times[(label, spread)]
            cells.append(f"{'moves off' if spread else 'stays (FASTMLP_NO_SPREAD=1)'}: "
                         f"{statistics.median(t) * 1e3:6.1f} / {max(t) * 1e3:6.1f}")
        print(f"  {label:20s} " + "   ".join(cells))


if __name__ == "__main__":
    main()
