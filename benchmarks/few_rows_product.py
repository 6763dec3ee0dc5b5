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

    python benchmarks/few_rows_product.py [--calls 201] [--dtype float64]

--dtype float64 times the AVX-512 kernel's float64 products against dgemm on `mnist-f64`'s
shapes (float64 has that kernel alone: elsewhere the engine multiplies doubles with BLAS).
"""
import argparse
import statistics
import time

import numpy as np
from scipy.linalg.blas import dgemm, sgemm
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
# float64 (--dtype float64): `mnist-f64`'s products on two threads (row blocks of 128 rows of a
# 256-row batch; weight jobs over all 256), and one thread's 256-row blocks.
SHAPES_F64 = [
    (128, 784, 256, "W", "mnist-f64: a row block's first layer"),
    (128, 256, 128, "W", "mnist-f64: a row block's second layer"),
    (128, 256, 128, "W^T", "mnist-f64: a row block's delta times W2^T"),
    (128, 128, 10, "W", "mnist-f64: a row block's output layer"),
    (128, 128, 10, "W^T", "mnist-f64: a row block's delta times W3^T"),
    (256, 392, 256, "a^T", "mnist-f64: a weight job of W1"),
    (256, 128, 128, "a^T", "mnist-f64: a weight job of W2"),
    (256, 128, 10, "a^T", "mnist-f64: W3's gradient"),
    (256, 784, 256, "W", "mnist-f64 on one thread: a batch's first layer"),
]


def time_shape(rows, n_in, n_out, kind, calls, rng, dtype=np.float32):
    """Median thread CPU time of one call, microseconds: (OpenBLAS, own)."""
    gemm = sgemm if dtype == np.float32 else dgemm
    W = rng.standard_normal((n_in, n_out)).astype(dtype)  # (a^T: delta, rows x n_out)
    if kind == "a^T":
        W = rng.standard_normal((rows, n_out)).astype(dtype)
        a = rng.standard_normal((rows, n_in)).astype(dtype)
        out = np.empty((n_in, n_out), dtype=dtype)
    elif kind == "W^T":
        a = rng.standard_normal((rows, n_out)).astype(dtype)
        out = np.empty((rows, n_in), dtype=dtype)
    else:
        a = rng.standard_normal((rows, n_in)).astype(dtype)
        out = np.empty((rows, n_out), dtype=dtype)
    # Row-major arrays are their transposes in column-major order, which sgemm reads and writes
    # in place: out^T = W^T a^T, out^T = W delta^T, out^T = delta^T a.
    out_t = out.T
    evict = np.ones(8 << 20, dtype=np.uint8)
    blas, own = [], []
    for _ in range(calls):
        evict[::64] += 1
        start = time.thread_time_ns()
        if kind == "a^T":
            gemm(1.0, W.T, a.T, c=out_t, overwrite_c=1, trans_b=1)
        elif kind == "W^T":
            gemm(1.0, W.T, a.T, c=out_t, overwrite_c=1, trans_a=1)
        else:
            gemm(1.0, W.T, a.T, c=out_t, overwrite_c=1)
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
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = parser.parse_args()
    dtype = np.dtype(args.dtype).type
    if not K.rows_product_kernels(dtype):
        raise SystemExit(f"csrc/rows_product.c does not run {args.dtype} on this processor (it "
                         "needs AVX2 and FMA, AVX-512 for float64): the engine multiplies with "
                         "BLAS here.")
    rng = np.random.RandomState(0)
    print("thread CPU time per call, medians of %d calls alternating; W read from memory"
          % args.calls)
    print(f"{'rows x n_in x n_out':>22} {'kind':4} {'OpenBLAS us':>11} {'own us':>8} "
          f"{'own/BLAS':>8}")
    with threadpool_limits(1):
        for rows, n_in, n_out, kind, what in SHAPES if dtype == np.float32 else SHAPES_F64:
            blas, own = time_shape(rows, n_in, n_out, kind, args.calls, rng, dtype)
            shape = f"{rows} x {n_in} x {n_out}"
            print(f"{shape:>22} {kind:4} {blas:11.1f} {own:8.1f} {own / blas:8.3f}   {what}")


if __name__ == "__main__":
    main()
