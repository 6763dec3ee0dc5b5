"""One-row predict_proba on real MNIST images and on dense Gaussian rows of the same width, with
the `mnist` network (784 -> 256 -> 128 -> 10, float32, fitted on 5,000 of the images): microseconds
per call, the best of 7 rounds of 5 x 200 calls. A row of fewer than four rows never reaches BLAS
(csrc/small_product.c), and that loop skips the rows of W whose input is 0, which most of an
image's pixels are; the Gaussian rows have none.

    python benchmarks/predict_one_row.py [--mnist-dir ../shared/data/mnist10k]
"""
import argparse
import timeit
import warnings

import numpy as np

from fastmlp import MLPClassifier
from fastmlp.bench.workloads import load_mnist10k


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist-dir", default="../shared/data/mnist10k")
    args = parser.parse_args()
    X, y = load_mnist10k(args.mnist_dir)
    X = X.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MLPClassifier((256, 128), max_iter=2, random_state=0).fit(X[:5000], y[:5000])
    images = [X[i:i + 1] for i in range(5000, 5200)]
    dense = np.random.default_rng(0).standard_normal((200, X.shape[1])).astype(np.float32)
    gaussian = [dense[i:i + 1] for i in range(200)]
    print(f"zeros: {np.mean(X[5000:5200] == 0):.0%} of the images' pixels")
    for name, rows in (("MNIST images", images), ("Gaussian rows", gaussian)):
        best = min(timeit.repeat(lambda: [model.predict_proba(r) for r in rows], number=5,
                                 repeat=7))
        print(f"{name}: {best / (5 * len(rows)) * 1e6:.2f} us per one-row predict_proba")


if __name__ == "__main__":
    main()
