"""One mini-batch on 1 and on 2 threads, over batch rows and widths: the measurements behind
fastmlp/_runtime.py's MIN_MULTIPLY_ADDS_PER_THREAD (which shapes pay for a second thread).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/batch_threads.py --reps 21

Each case is a float32 partial_fit epoch (one call, many batches) timed alternately on 1 and 2
threads with the rule switched off (every batch on the threads allowed); it prints microseconds
per batch, the best and the median over `--reps` epochs. The best is the nearest this shared
machine comes to a quiet one; the median is what a busy one gives.
"""
import argparse
import statistics
import sys
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

from fastmlp import MLPClassifier, _runtime
from harness_runs import spinning_core

CASES = [  # (n_features, hidden layers, batch rows)
    (64, (100,), 32), (64, (100,), 200), (64, (100,), 1024), (256, (256,), 64),
    (256, (256,), 128), (256, (256,), 256), (784, (256, 128), 32), (784, (256, 128), 48),
    (784, (256, 128), 64), (784, (256, 128), 128), (784, (256, 128), 256),
]


def per_batch_us(n_features, hidden, batch, reps, rng):
    widths = (n_features, *hidden, 10)
    multiply_adds = batch * sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    n = batch * int(min(400, max(8, 1e8 // multiply_adds)))
    X = rng.standard_normal((n, n_features)).astype(np.float32)
    y = rng.integers(0, 10, n)
    models, times = {}, {1: [], 2: []}
    for threads in (1, 2):
        models[threads] = MLPClassifier(hidden_layer_sizes=hidden, batch_size=batch,
                                        random_state=0)
        with threadpool_limits(threads):
            models[threads].partial_fit(X, y, classes=np.arange(10))
    for rep in range(reps):
        for threads in ((1, 2) if rep % 2 else (2, 1)):
            with threadpool_limits(threads):
                start = time.perf_counter()
                models[threads].partial_fit(X, y)
                times[threads].append((time.perf_counter() - start) / (n // batch) * 1e6)
    return widths, multiply_adds, times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=21, help="epochs per thread count")
    parser.add_argument("--busy", action="store_true",
                        help="beside a process spinning on one core")
    args = parser.parse_args(argv)
    _runtime.MIN_MULTIPLY_ADDS_PER_THREAD = 1  # every batch on the threads allowed
    warnings.simplefilter("ignore")
    with spinning_core(args.busy):
        rng = np.random.default_rng(0)
        for n_features, hidden, batch in CASES:
            widths, multiply_adds, t = per_batch_us(n_features, hidden, batch, args.reps, rng)
            best = {k: min(v) for k, v in t.items()}
            median = {k: statistics.median(v) for k, v in t.items()}
            print(f"{str(widths):20s} x {batch:4d} rows {multiply_adds / 1e6:6.2f} M: best "
                  f"{best[1]:7.0f} vs {best[2]:7.0f} us (2/1 {best[2] / best[1]:.2f}), median "
                  f"2/1 {median[2] / median[1]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
