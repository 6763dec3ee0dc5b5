"""csrc/rows_product.c against scipy's OpenBLAS, product by product, on one thread.

The engine multiplies a block of at most OWN_PRODUCT_ROWS float32 rows by W (forward) or by W^T
(the gradient of a layer's input), and computes a weight job's gradient a^T delta where its
block is small enough (on AVX-512: every block), with its own packing and kernel where the
processor runs it (fastmlp/_engine/_layer_dense.pxd). This times the two side by side on the
shapes of the benchmark workloads' blocks (a shape marked "stays with BLAS" is timed for
comparison only: the engine gives it to BLAS, where marked "on AVX2" only there): each call's
thread CPU time, the two alternating call by call, with an 8 MB buffer read before each call so
that W comes from memory as it does in an epoch (the optimizer's step wrote it last). Both are called from Python (scipy.linalg.blas.sgemm on
arrays it takes without a copy, and the engine's kernel test entry point): the ~1-2 us of a
call from Python is in both.

    python benchmarks/few_rows_product.py [--calls 201]
"""
import argparse
import statistics
import time

import numpy as np
from scipy.linalg.blas import sgemm
from threadpoolctl import threadpool_limits

from fastmlp._engine import _testing as K

# (rows, n_in, n_out, kind, what). kind "W": out (rows x n_out) = a (rows x n_in) @ W, W (n_in x
# n_out); "W^T": out (rows x n_in) = delta (rows x n_out) @ W^T, the backward pass's product;
# "a^T": out (n_in x n_out) = a^T (n_in x rows) @ delta (rows x n_out), a weight job's gradient
# (its n_in rows of W) over a batch of `rows` rows.
SHAPES = [
    (16, 256, 128, "W", "tiny-batch: a row block's second layer"),
    (16, 256, 128, "W^T", "tiny-batch: a row block's delta times W2^T"),
    (32, 784, 128, "W", "tiny-batch: a first-layer column tile"),
    (32, 392, 256, "a^T", "tiny-batch: a weight job of W1"),
    (32, 64, 100, "W", "partial_fit of 32 rows (64 -> 100 -> 10)"),
    (32, 64, 100, "a^T", "partial_fit of 32 rows: W1's gradient"),
    (100, 64, 100, "W", "small: a row block's hidden layer"),
    (200, 32, 100, "a^T", "small: a weight job of W1"),
    (128, 784, 256, "W", "mnist: a row block's first layer"),
    (128, 256, 128, "W", "mnist: a row block's second layer"),
    (128, 256, 128, "W^T", "mnist: a row block's delta times W2^T"),
    (256, 128, 128, "a^T", "mnist: a weight job of W2"),
    (256, 392, 256, "a^T", "mnist: a weight job of W1 (stays with BLAS on AVX2)"),
    (256, 784, 1024, "W", "wide: a row block's first layer"),
    (256, 1024, 1024, "W", "wide: a row block's second layer"),
    (256, 1024, 1024, "W^T", "wide: a row block's delta times W2^T"),
    (512, 784, 1024, "W", "(a row block of 512 rows: stays with BLAS)"),
    (512, 392, 1024, "a^T", "wide: a weight job of W1 (stays with BLAS on AVX2)"),
    (512, 256, 1024, "a^T", "wide: a weight job of W2 (stays with BLAS on AVX2)"),
]


def time_shape(rows, n_in, n_out, kind, calls, rng):
    """Median thread CPU time of one call, microseconds: (OpenBLAS, own)."""
    W = rng.standard_normal((n_in, n_out)).astype(np.float32)  # (a^T: delta, rows x n_out)
    if kind == "a^T":
        W = rng.standard_normal((rows, n_out)).astype(np.float32)
        a = rng.standard_normal((rows, n_in)).astype(np.float32)
        out = np.empty((n_in, n_out), dtype=np.float32)
    elif kind == "W^T":
        a = rng.standard_normal((rows, n_out)).astype(np.float32)
        out = np.empty((rows, n_in), dtype=np.float32)
    else:
        a = rng.standard_normal((rows, n_in)).astype(np.float32)
        out = np.empty((rows, n_out), dtype=np.float32)
    # Row-major arrays are their transposes in column-major order, which sgemm reads and writes
    # in place: out^T = W^T a^T, out^T = W delta^T, out^T = delta^T a.
    out_t = out.T
    evict = np.ones(8 << 20, dtype=np.uint8)
    blas, own = [], []
    for _ in range(calls):
        evict[::64] += 1
        start = time.thread_time_ns()
        if kind == "a^T":
            sgemm(1.0, W.T, a.T, c=out_t, overwrite_c=1, trans_b=1)
        elif kind == "W^T":
            sgemm(1.0, W.T, a.T, c=out_t, overwrite_c=1, trans_a=1)
        else:
            sgemm(1.0, W.T, a.T, c=out_t, overwrite_c=1)
        blas.append(time.thread_time_ns() - start)
        evict[::64] += 1
        start = time.thread_time_ns()
        if kind == "a^T":
            K.kernel_rows_product(out, a, W, a_transposed=True)
        else:
            K.kernel_rows_product(out, a, W, kind == "W^T")  # (W^T: W as n_in x n_out)
        own.append(time.thread_time_ns() - start)
    return statistics.median(blas) / 1e3, statistics.median(own) / 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=201)
    args = parser.parse_args()
    if not K.ROWS_PRODUCT:
        raise SystemExit("csrc/rows_product.c does not run on this processor (it needs AVX2 and "
                         "FMA): the engine multiplies with BLAS here.")
    rng = np.random.RandomState(0)
    print("thread CPU time per call, medians of %d calls alternating; W read from memory"
          % args.calls)
    print(f"{'rows x n_in x n_out':>22} {'kind':4} {'OpenBLAS us':>11} {'own us':>8} "
          f"{'own/BLAS':>8}")
    with threadpool_limits(1):
        for rows, n_in, n_out, kind, what in SHAPES:
            blas, own = time_shape(rows, n_in, n_out, kind, args.calls, rng)
            shape = f"{rows} x {n_in} x {n_out}"
            print(f"{shape:>22} {kind:4} {blas:11.1f} {own:8.1f} {own / blas:8.3f}   {what}")


if __name__ == "__main__":
    main()
