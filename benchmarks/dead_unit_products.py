"""The AVX-512 float32 product over W whose dead units' columns hold subnormal weights, against
the same product with those columns zeroed, in turns in one process: microseconds per call (one
thread, the median over rounds of each round's median) and their ratio.

    python benchmarks/dead_unit_products.py [--calls 41] [--rounds 5]

A unit that never fires leaves its incoming weights to L2 until they are subnormal floats. On
processors whose multiplies take an assist on a subnormal operand, csrc/rows_product.c
("Subnormal weights") puts zeros in their place in the packed panels and computes the lanes
they change again exactly (rp_exact_lanes512); the zeroed copy's time is the product with no
such lane. The shapes are `tiny-batch`'s and `mnist`'s first-layer row blocks and a hidden
layer's, with 3 to 20 dead columns. Run it with PYTHONPATH on each of two builds to compare
them; it needs the AVX-512 kernel (it says so and stops elsewhere).
"""
import argparse
import statistics
import time

import numpy as np

from fastmlp._engine import _testing as K

# (rows, n_in, n_out, dead columns)
SHAPES = [(12, 784, 256, 3), (32, 784, 256, 20), (128, 784, 256, 3), (128, 256, 128, 8)]


def dead_unit_weights(rng, n_in, n_out, dead):
    """W (n_in x n_out, normal weights) and a copy whose `dead` random columns hold subnormal
    floats of either sign (the first) or zeros (the second)."""
    W = rng.standard_normal((n_in, n_out)).astype(np.float32)
    columns = rng.choice(n_out, dead, replace=False)
    tiny = np.exp2(rng.uniform(-149, -127, (n_in, dead))) * rng.choice([-1, 1], (n_in, dead))
    W[:, columns] = tiny.astype(np.float32)
    zeroed = W.copy()
    zeroed[:, columns] = 0.0
    assert (np.abs(W[:, columns]) < np.finfo(np.float32).tiny).all()
    return W, zeroed


def call_median(out, a, W, calls):
    times = []
    for _ in range(calls):
        K.rows_product_looks(1000)  # (this product looks, as one after a flag was raised)
        start = time.perf_counter()
        K.kernel_rows_product(out, a, W, False, False, False, 2)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=41)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    if 2 not in K.rows_product_kernels(np.float32):
        print("the AVX-512 kernel of csrc/rows_product.c does not run here: nothing to time")
        return
    was = K.subnormals_slow()
    K.subnormals_slow(True)  # (the products look for subnormal weights, as on Intel's cores)
    rng = np.random.RandomState(0)
    print(f"{'rows x n_in x n_out, dead':>28} {'subnormal us':>13} {'zeroed us':>10} ratio")
    try:
        for rows, n_in, n_out, dead in SHAPES:
            a = np.abs(rng.standard_normal((rows, n_in))).astype(np.float32)
            W, zeroed = dead_unit_weights(rng, n_in, n_out, dead)
            out = np.empty((rows, n_out), np.float32)
            got = {"subnormal": [], "zeroed": []}
            for _ in range(args.rounds):
                got["subnormal"].append(call_median(out, a, W, args.calls))
                got["zeroed"].append(call_median(out, a, zeroed, args.calls))
            sub, zero = (statistics.median(got[k]) for k in ("subnormal", "zeroed"))
            print(f"{f'{rows} x {n_in} x {n_out}, {dead}':>28} {sub:13.1f} {zero:10.1f} "
                  f"{sub / zero:5.2f}")
    finally:
        K.subnormals_slow(was)
        K.rows_product_looks(0)


if __name__ == "__main__":
    main()
