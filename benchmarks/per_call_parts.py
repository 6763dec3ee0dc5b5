"""Where a small `partial_fit` call's time goes: the whole call, the compiled steady call's check
and epoch alone (`SteadyCall.accepts` + `SteadyCall.epoch`: what the engine costs), and the
call on the Python path (the compiled call refused), timed in turns in one process.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/per_call_parts.py \
        [--rows 32 --features 64 --hidden 100 --rounds 5 --calls 2000]

The model is harness_runs.py's per-call one: 32 float32 rows of 64 features, one hidden layer
of 100, 10 classes, 2 threads allowed. Each round times `--calls` calls of each part in turn,
and prints the part's median and 10th percentile in microseconds: on a shared VM whose speed
comes and goes, the 10th percentile is the quiet cost and the median says how often it was not.
The last line gives each part's median over the rounds of those figures. The Python path's
model is a copy trained the same number of calls, whose compiled call is dropped before each
call, with the rows of the call before (as for calls that alternate between sizes: none is
made again).
"""
import argparse
import copy
import statistics
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

from fastmlp import MLPClassifier
from fastmlp.bench.workloads import N_CLASSES, make_blobs


def timed(call, n):
    """(median, 10th percentile) of n calls, in microseconds."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    times.sort()
    return statistics.median(times) * 1e6, times[len(times) // 10] * 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args(argv)
    X, y = make_blobs(args.rows, args.features, "float32", seed=1)
    model = MLPClassifier(hidden_layer_sizes=(args.hidden,), random_state=0)
    with threadpool_limits(2), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.partial_fit(X, y, classes=np.arange(N_CLASSES))
        for _ in range(20):
            model.partial_fit(X, y)
        python_path = copy.deepcopy(model)  # (no compiled call: it is never copied)
        call = vars(model)["_steady_call"]
        norms = np.zeros(len(model.coefs_))

        def engine():
            if not call.accepts(model, X, y):
                raise RuntimeError("the compiled call refused the benchmark's call")
            call.epoch(model, norms)

        def on_python_path():  # (as a call of another size than the last: nothing compiled)
            vars(python_path).pop("_steady_call", None)
            vars(python_path).pop("_steady_rows", None)
            python_path.partial_fit(X, y)

        parts = {"partial_fit": lambda: model.partial_fit(X, y),
                 "accepts + epoch": engine,
                 "python path": on_python_path}
        results = {name: [] for name in parts}
        for round_ in range(args.rounds):
            line = []
            for name, part in parts.items():
                median, p10 = timed(part, args.calls)
                results[name].append((median, p10))
                line.append(f"{name} {median:.1f} / {p10:.1f}")
            print(f"round {round_ + 1}: " + "; ".join(line) + "  (us: median / 10th pct)")
    print("over the rounds: " + "; ".join(
        f"{name} {statistics.median(m for m, _ in values):.1f} / "
        f"{statistics.median(p for _, p in values):.1f}" for name, values in results.items()))


if __name__ == "__main__":
    main()
