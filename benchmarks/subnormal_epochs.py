"""Epoch by epoch, a network trained on MNIST's images: its time and its subnormal parameters.

    python benchmarks/subnormal_epochs.py [--mnist-dir ../shared/data/mnist10k] [--epochs 9]
                                          [--in-turns 3] [--input-scale 0.00392]

Why: the harness trains on Gaussian blobs, whose weights never come near float32's subnormal
range. Real images do: pixels that are zero in nearly every image give their weights no
gradient but L2's, and Adam shrinks those weights ~0.7x a step (csrc/optimizers.c, "Subnormal
numbers") until they and their moments are subnormal, where each vector operation that meets
one takes a microcode assist on Intel's cores. This trains `tiny-batch`'s network (784 -> 256
-> 128 -> 10, batch 32, Adam, float32) on the images scaled to [0, 1] and prints each epoch's
seconds beside how many parameters are subnormal and how many are below 2^-40 (the careful
step's bound for a weight). --in-turns N then runs N more epochs each way in turns: with the
engine's careful ways around subnormal numbers (the processor's verdict as measured) and
without them (_engine.subnormals_slow(False): every operation takes its assist), the same
bits either way. --input-scale multiplies the pixels (1/255 = 0.00392: images divided by 255
once more than they should be, a user's slip that leaves W1's gradients 255 times smaller).
"""
import argparse
import time
import warnings

import numpy as np

from fastmlp import MLPClassifier
from fastmlp import _engine  # (its verdict, not _testing's: each compiled module has its own,
                             # and only the engine's reaches partial_fit)
from fastmlp.bench.workloads import load_mnist10k


def counts(theta):
    """(subnormal, below 2^-40 and not 0) parameters of a float32 theta."""
    magnitude = np.abs(theta)
    nonzero = magnitude > 0
    return (int((nonzero & (magnitude < np.finfo(np.float32).tiny)).sum()),
            int((nonzero & (magnitude < 2.0 ** -40)).sum()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist-dir", default="../shared/data/mnist10k")
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--in-turns", type=int, default=0)
    parser.add_argument("--samples", type=int, default=None, help="the first N images only")
    parser.add_argument("--input-scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    X, y = load_mnist10k(args.mnist_dir)  # (pixels in [0, 1], float32)
    X, y = X[:args.samples] * np.float32(args.input_scale), y[:args.samples]
    clf = MLPClassifier((256, 128), batch_size=32, random_state=0)
    verdict = _engine.subnormals_slow()
    print(f"{X.shape[0]} images, pixels in [0, {args.input_scale:g}]; the processor's verdict: "
          f"subnormal operands {'slow' if verdict else 'not slow'}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (partial_fit's convergence warnings)
        for epoch in range(1, args.epochs + 1):
            start = time.perf_counter()
            if epoch == 1:
                clf.partial_fit(X, y, classes=np.arange(10))
            else:
                clf.partial_fit(X, y)
            seconds = time.perf_counter() - start
            sub, tiny = counts(clf._packed_parameters())
            print(f"epoch {epoch}: {seconds:.3f} s; subnormal parameters {sub:,}, "
                  f"below 2^-40 {tiny:,} of {clf._packed_parameters().size:,}", flush=True)
        try:
            for _ in range(args.in_turns):
                for careful in (verdict, False):
                    _engine.subnormals_slow(careful)
                    start = time.perf_counter()
                    clf.partial_fit(X, y)
                    print(f"{'careful' if careful else 'assists'}: "
                          f"{time.perf_counter() - start:.3f} s", flush=True)
        finally:
            _engine.subnormals_slow(verdict)


if __name__ == "__main__":
    main()
