"""What batch_norm=True costs per epoch: the `mnist` shape (784 -> 256 -> 128 -> 10, batches of 256,
float32) on 30,000 random rows, with and without batch normalization, alternating in one process;
medians of 4 rounds of 2 epochs each.

    python benchmarks/batch_norm_cost.py

The cost is the batch's statistics (a pass over every hidden z forward, two sums backward) and the
four extra barriers per hidden layer and batch (fastmlp/_engine/_schedule.pxd).
"""
import time
import warnings

import numpy as np

from fastmlp import MLPClassifier


def main():
    rng = np.random.RandomState(0)
    X = rng.rand(30_000, 784).astype(np.float32)
    y = rng.randint(10, size=30_000)
    times = {False: [], True: []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(4):
            for batch_norm in (False, True):
                model = MLPClassifier((256, 128), batch_size=256, batch_norm=batch_norm,
                                      max_iter=1, random_state=0)
                model.fit(X[:2048], y[:2048])  # warm-up: buffers, threads
                model.set_params(warm_start=True, max_iter=2)
                start = time.perf_counter()
                model.fit(X, y)
                times[batch_norm].append((time.perf_counter() - start) / 2)
    off, on = np.median(times[False]), np.median(times[True])
    print(f"s/epoch, 30,000 rows of 784 -> 256 -> 128 -> 10, batches of 256, float32: "
          f"batch_norm=False {off:.3f}, batch_norm=True {on:.3f}, ratio {on / off:.2f}")


if __name__ == "__main__":
    main()
