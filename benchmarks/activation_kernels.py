"""The element-wise activations' kernels, one call at a time: a forward pass (bias add and
activation) over a block of rows, for each activation and dtype, beside numpy computing the
same function on the same block (what scikit-learn's MLP runs).

    python benchmarks/activation_kernels.py [--rows 32 --cols 256 --calls 2000 --rounds 3]

Each round times `--calls` calls of each kernel in turn (thread CPU time is not used: a call is
a few microseconds, below its resolution) and keeps the 10th percentile, the quiet cost on a VM
whose speed comes and goes; the figure printed is the least over the rounds. softmax, an output
activation, runs on `--classes` columns. To compare two builds, run it from a directory outside
both with each checkout first on PYTHONPATH, in turns (setup.py's -fno-trapping-math was measured
so: the exp-based kinds ran scalar on AVX2 before it).
"""
import argparse

import numpy as np
from scipy.special import expit

from fastmlp import _engine as E
from fastmlp._engine import _testing as K
from per_call_parts import timed  # (median, 10th percentile) of n calls, in us

NUMPY = {  # the same function in numpy, on z = a + b (scikit-learn's ACTIVATIONS, and torch's)
    "identity": lambda z: z,
    "logistic": expit,
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0, out=z),
    "softmax": lambda z: np.exp(z - z.max(axis=1, keepdims=True)),
    "exp": np.exp,
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "elu": lambda z: np.where(z > 0, z, np.expm1(z)),
    "gelu": None,  # (no numpy function: scipy.special.ndtr would be a different algorithm)
    "silu": lambda z: z * expit(z),
    "mish": lambda z: z * np.tanh(np.logaddexp(z, 0)),
    "softplus": lambda z: np.logaddexp(z, 0),
}


def time_kernels(rows, cols, classes, calls, rounds, dtypes=(np.float32, np.float64)):
    """{(activation, dtype name): (own us, numpy us or None)}, the least over the rounds."""
    rng = np.random.RandomState(0)
    results = {}
    for dtype in dtypes:
        for name, code in E.ACTIVATION_CODES.items():
            width = classes if name == "softmax" else cols
            z = (rng.standard_normal((rows, width)) * 3).astype(dtype)
            b = rng.standard_normal(width).astype(dtype)
            a = np.empty_like(z)
            keeps = np.empty_like(z) if K.activation_needs_preactivation(code) else None

            def own():
                np.copyto(a, z)
                K.kernel_bias_activation(a, b, code, keeps)

            reference = NUMPY.get(name)

            def numpy_call():
                reference(z + b)

            best_own = best_numpy = float("inf")
            for _ in range(rounds):
                best_own = min(best_own, timed(own, calls)[1])
                if reference is not None:
                    best_numpy = min(best_numpy, timed(numpy_call, calls)[1])
            results[name, np.dtype(dtype).name] = (
                best_own, best_numpy if reference is not None else None)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--cols", type=int, default=256)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"forward (bias + activation) of {args.rows} x {args.cols} rows (softmax: "
          f"{args.rows} x {args.classes}); 10th percentile of {args.calls} calls, least of "
          f"{args.rounds} rounds; fastmlp from {E.__file__}")
    print(f"{'activation':>11} {'dtype':>8} {'fastmlp us':>11} {'numpy us':>9}")
    for (name, dtype), (own, reference) in time_kernels(
            args.rows, args.cols, args.classes, args.calls, args.rounds).items():
        shown = f"{reference:9.2f}" if reference is not None else f"{'-':>9}"
        print(f"{name:>11} {dtype:>8} {own:11.2f} {shown}")


if __name__ == "__main__":
    main()
