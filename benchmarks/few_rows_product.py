"""csrc/rows_product.c against scipy's OpenBLAS, product by product, on one thread.

The engine multiplies a block of at most OWN_PRODUCT_ROWS float32 rows by W (forward) or by W^T
(the gradient of a layer's input) with its own packing and kernel where the processor runs it
(fastmlp/_engine/_layer_dense.pxd). This times the two side by side on the shapes of the
benchmark workloads' row blocks: each call's thread CPU time, the two alternating call by call,
with an 8 MB buffer read before each call so that W comes from memory as it does in an epoch
(the optimizer's step wrote it last). Both are called from Python (scipy.linalg.blas.sgemm on
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

# (rows, n_in, n_out, transposed): out (rows x n_out) = a (rows x n_in) @ W, W (n_in x n_out);
# transposed: out (rows x n_in) = delta (rows x n_out) @ W^T, the backward pass's product.
SHAPES = [
    (16, 256, 128, False, "tiny-batch: a row block's second layer"),
    (16, 256, 128, True, "tiny-batch: a row block's delta times W2^T"),
    (32, 784, 128, False, "tiny-batch: a first-layer column tile"),
    (32, 64, 100, False, "partial_fit of 32 rows (64 -> 100 -> 10)"),
    (100, 64, 100, False, "small: a row block's hidden layer"),
    (128, 784, 256, False, "mnist: a row block's first layer"),
    (128, 256, 128, False, "mnist: a row block's second layer"),
    (128, 256, 128, True, "mnist: a row block's delta times W2^T"),
    (256, 784, 1024, False, "(wide's row block, 256 rows: stays with BLAS)"),
]


def time_shape(rows, n_in, n_out, transposed, calls, rng):
    W = rng.standard_normal((n_in, n_out)).astype(np.float32)
    if transposed:
        a = rng.standard_normal((rows, n_out)).astype(np.float32)
        out = np.empty((rows, n_in), dtype=np.float32)
    else:
        a = rng.standard_normal((rows, n_in)).astype(np.float32)
        out = np.empty((rows, n_out), dtype=np.float32)
    # out is row-major: its transpose is column-major, what sgemm writes in place.
    out_t = out.T
    evict = np.ones(8 << 20, dtype=np.uint8)
    blas, own = [], []
    for _ in range(calls):
        evict[::64] += 1
        start = time.thread_time_ns()
        if transposed:  # out^T = W (n_in x n_out) delta^T
            sgemm(1.0, W.T, a.T, c=out_t, overwrite_c=1, trans_a=1)
        else:  # out^T = W^T a^T
            sgemm(1.0, W.T, a.T, c=out_t, overwrite_c=1)
        blas.append(time.thread_time_ns() - start)
        evict[::64] += 1
        start = time.thread_time_ns()
        K.kernel_rows_product(out, a, W, transposed)  # (transposed: W as n_in x n_out)
        own.append(time.thread_time_ns() - start)
    return statistics.median(blas) / 1e3, statistics.median(own) / 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=201)
    args = parser.parse_args()
    if not K.ROWS_PRODUCT:
        raise SystemExit("csrc/rows_product.c does not run on this processor (it needs AVX2 and "
                         "FMA, without AVX-512): the engine multiplies with BLAS here.")
    rng = np.random.RandomState(0)
    print("thread CPU time per call, medians of %d calls alternating; W read from memory"
          % args.calls)
    print(f"{'rows x n_in x n_out':>22} {'':4} {'OpenBLAS us':>11} {'own us':>8} {'own/BLAS':>8}")
    with threadpool_limits(1):
        for rows, n_in, n_out, transposed, what in SHAPES:
            blas, own = time_shape(rows, n_in, n_out, transposed, args.calls, rng)
            shape = f"{rows} x {n_in} x {n_out}"
            print(f"{shape:>22} {'W^T' if transposed else 'W':4} {blas:11.1f} {own:8.1f} "
                  f"{own / blas:8.3f}   {what}")


if __name__ == "__main__":
    main()
