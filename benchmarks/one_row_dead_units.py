"""One-row predict_proba of a model whose units died, as a serving loop makes it: rmsprop on
`tiny-batch`'s blobs (784 -> 256 -> 128 -> 10, float32, batch 32), whose first-layer units that
never fire leave their weights to L2 until they are subnormal floats, against a copy of the same
model with those weights zeroed (in theta, before its first prediction), in turns in one
process: microseconds per call, the median over rounds of each round's median.

    python benchmarks/one_row_dead_units.py [--epochs 4] [--rounds 7] [--samples 20000]

On processors whose multiplies take an assist on a subnormal operand, each vector multiply
that meets one costs ~100 cycles; csrc/small_product.c ("Subnormal weights") keeps them out of
the model's packed copy and computes the columns they touch again exactly. Neither model's
`coefs_` is read (reading them hands the views out, and the model then serves from W itself:
fastmlp/_serving.py). Run it with PYTHONPATH on each of two builds to compare them.
"""
import argparse
import pickle
import statistics
import time
import warnings

import numpy as np

from fastmlp import MLPClassifier
from fastmlp.bench.workloads import FIT_WORKLOADS, N_CLASSES, make_blobs


def round_median(model, rows):
    times = []
    for row in rows:
        start = time.perf_counter()
        model.predict_proba(row)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=4, help="partial_fit epochs after the first")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--samples", type=int, default=FIT_WORKLOADS["tiny-batch"].n_samples)
    args = parser.parse_args(argv)
    workload = FIT_WORKLOADS["tiny-batch"]
    X, y = make_blobs(args.samples, workload.n_features, "float32")
    model = MLPClassifier(hidden_layer_sizes=workload.hidden, batch_size=workload.batch_size,
                          solver="rmsprop", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.partial_fit(X, y, classes=np.arange(N_CLASSES))
        for _ in range(args.epochs):
            model.partial_fit(X, y)
    zeroed = pickle.loads(pickle.dumps(model))
    theta, tiny = model._packed_parameters(), np.finfo(np.float32).tiny
    subnormal = (theta != 0) & (np.abs(theta) < tiny)
    zeroed._packed_parameters()[subnormal] = 0  # (before its first prediction: no copy yet)
    print(f"subnormal weights: {subnormal.sum():,} of {theta.size:,} parameters "
          f"after {args.epochs + 1} epochs")
    rows = [X[i:i + 1] for i in range(200)]
    models = {"as trained": model, "zeroed": zeroed}
    for m in models.values():
        for row in rows[:20]:
            m.predict_proba(row)
    medians = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, m in models.items():
            medians[name].append(round_median(m, rows))
    for name, values in medians.items():
        print(f"{name}: {statistics.median(values):.1f} us a call "
              f"(rounds {' '.join(f'{v:.1f}' for v in values)})")
    print(f"as trained / zeroed: "
          f"{statistics.median(medians['as trained']) / statistics.median(medians['zeroed']):.2f}")


if __name__ == "__main__":
    main()
