"""Two builds of fastmlp side by side: is a change (a restructuring, a compiler flag) as fast as
the code before it?

    python benchmarks/ab_builds.py BEFORE_CHECKOUT AFTER_CHECKOUT [--rounds 5] [--workloads ...]

Each checkout must be built in place (`python setup.py build_ext --inplace`). Every measurement
runs in a fresh process with that checkout first on PYTHONPATH, and the two builds alternate
round after round (A B, B A, A B, ...), so that a burst of load on this shared machine falls on
both alike. Per workload it prints the median over rounds of each build's median epoch (or
call), and after/before: below 1 is faster. Workloads are those of `fastmlp bench`
(fastmlp/bench/workloads.py, read from AFTER_CHECKOUT so both builds train on the same arrays),
timed through the public API only (partial_fit epochs, as the harness calls them; predict),
so any two builds compare.

With --mnist-dir (a folder holding MNIST's t10k IDX files, as for `fastmlp bench`'s accuracy
workload) every workload trains on MNIST's 10,000 test images instead of Gaussian blobs, scaled
to [0, 1], repeated to the workload's rows (784 features: the shapes of all but `small`):
real images are mostly zeros, which blobs never are, and some costs follow the data (the
products skip terms at which a tile of X is zero; weights that decay to subnormal numbers).

With --solver NAME every training workload fits with that solver (the estimators' `solver`,
its other options at their defaults; learning_rate_init stays 1e-3) instead of Adam: a change
to one solver's step is timed on that step.
"""
import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import importlib.util, json, sys, time, warnings
import numpy as np
spec = importlib.util.spec_from_file_location("workloads", sys.argv[1])
workloads = importlib.util.module_from_spec(spec)
spec.loader.exec_module(workloads)
import fastmlp
name, epochs, mnist_dir, solver = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
warnings.simplefilter("ignore")
w = workloads.FIT_WORKLOADS["mnist" if name.startswith("predict") else name]
if name.startswith("predict"):
    w = w.scaled(0.2)
if mnist_dir:
    images, labels = workloads.load_mnist10k(mnist_dir)
    if images.shape[1] != w.n_features:
        sys.exit(f"{name}: {w.n_features} features, MNIST's images {images.shape[1]}")
    repeat = -(-w.n_samples // len(images))
    X = np.tile(images, (repeat, 1))[:w.n_samples].astype(w.dtype)
    y = np.tile(labels, repeat)[:w.n_samples]
else:
    X, y = workloads.make_blobs(w.n_samples, w.n_features, w.dtype)
clf = fastmlp.MLPClassifier(hidden_layer_sizes=w.hidden, batch_size=w.batch_size,
                            random_state=0, **({"solver": solver} if solver else {}))
classes = np.unique(y)
times = []
if name.startswith("predict"):
    clf.partial_fit(X, y, classes=classes)
    rows = X[:1] if name == "predict-one" else X
    calls = 200 if name == "predict-one" else 1
    for _ in range(epochs + 1):
        start = time.perf_counter()
        for _ in range(calls):
            clf.predict_proba(rows)
        times.append((time.perf_counter() - start) / calls)
else:
    # As the harness and a user's loop call it: classes= on the first call only, so that the
    # later calls take partial_fit's steady path (its compiled SteadyCall from the fourth call
    # on), which a call with keyword arguments never takes.
    clf.partial_fit(X, y, classes=classes)
    for _ in range(epochs + 1):  # the first timed epoch warms up and is not counted
        start = time.perf_counter()
        clf.partial_fit(X, y)
        times.append(time.perf_counter() - start)
times = sorted(times[1:])
print(json.dumps({"median": times[len(times) // 2], "file": fastmlp.__file__}))
"""

WORKLOADS = ("small", "tiny-batch", "mnist", "mnist-f64", "wide", "predict-bulk", "predict-one")


def measure(checkout, workloads_file, workload, epochs, mnist_dir="", solver=""):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(checkout))
    # (cwd: not a checkout, or `python -c` would import the fastmlp of the current folder first)
    result = subprocess.run([sys.executable, "-c", CHILD, workloads_file, workload, str(epochs),
                             mnist_dir, solver], env=env, capture_output=True, text=True,
                            check=True, cwd=tempfile.gettempdir())
    out = json.loads(result.stdout.strip().splitlines()[-1])
    if not out["file"].startswith(os.path.abspath(checkout)):
        sys.exit(f"{checkout}: fastmlp came from {out['file']} (build it in place first)")
    return out["median"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (calls) per process")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--mnist-dir", default="",
                        help="train on MNIST's t10k images from this folder (above)")
    parser.add_argument("--solver", default="", help="fit with this solver instead of Adam")
    args = parser.parse_args(argv)
    mnist_dir = os.path.abspath(args.mnist_dir) if args.mnist_dir else ""
    workloads_file = os.path.join(os.path.abspath(args.after), "fastmlp", "bench", "workloads.py")
    print(f"{'workload':<13} {'before':>10} {'after':>10} {'after/before':>13}   (medians of "
          f"{args.rounds} rounds; s per epoch, s per call for predict)")
    spec = importlib.util.spec_from_file_location("workloads", workloads_file)
    workloads = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(workloads)
    for workload in args.workloads.split(","):
        shape = workloads.FIT_WORKLOADS["mnist" if workload.startswith("predict") else workload]
        if mnist_dir and shape.n_features != 784:
            print(f"{workload:<13} skipped: {shape.n_features} features, MNIST's images 784")
            continue
        runs = {"before": [], "after": []}
        for r in range(args.rounds):
            order = ("before", "after") if r % 2 == 0 else ("after", "before")
            for which in order:
                runs[which].append(measure(getattr(args, which), workloads_file, workload,
                                           args.epochs, mnist_dir, args.solver))
        before, after = statistics.median(runs["before"]), statistics.median(runs["after"])
        print(f"{workload:<13} {before:>10.3g} {after:>10.3g} {after / before:>13.3f}",
              flush=True)


if __name__ == "__main__":
    main()
