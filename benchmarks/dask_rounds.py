"""fastmlp.dask against the single-machine fit on MNIST's 10,000 test digits: accuracy with the
same epochs, and time per epoch / per L-BFGS iteration with one worker x 2 threads and two
workers x 1 thread (LocalCluster of processes), and the overhead of a round.

    PYTHONPATH=. python benchmarks/dask_rounds.py --mnist-dir /work/shared/data/mnist10k

8,000 digits train, 2,000 are held out; network 784-256-128-10 (θ: 235,146 parameters).
"""
import argparse
import time

import dask.array as da
import numpy as np
from distributed import Client, LocalCluster

import fastmlp
import fastmlp.dask
from fastmlp.bench.workloads import load_mnist10k


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mnist-dir", required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lbfgs-iter", type=int, default=20)
    parser.add_argument("--sync-every", type=int, default=16)
    args = parser.parse_args()
    X, y = load_mnist10k(args.mnist_dir)
    X = np.asarray(X, dtype=np.float32).reshape(len(X), -1)  # pixels in [0, 1]
    Xtr, ytr, Xte, yte = X[:8000], y[:8000], X[8000:], y[8000:]
    common = dict(hidden_layer_sizes=(256, 128), random_state=0)
    adam = dict(common, solver="adam", max_iter=args.epochs, n_iter_no_change=10**6)
    lbfgs = dict(common, solver="lbfgs", max_iter=args.lbfgs_iter)

    t = time.perf_counter()
    single = fastmlp.MLPClassifier(**adam).fit(Xtr, ytr)
    s_epoch = (time.perf_counter() - t) / single.n_iter_
    t = time.perf_counter()
    single_l = fastmlp.MLPClassifier(**lbfgs).fit(Xtr, ytr)
    s_iter = (time.perf_counter() - t) / single_l.n_iter_
    print(f"single machine: adam {s_epoch:.3f} s/epoch, acc {single.score(Xte, yte):.4f}; "
          f"lbfgs {s_iter:.3f} s/iter, acc {single_l.score(Xte, yte):.4f}")

    for workers, threads in ((1, 2), (2, 1)):
        with LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                          dashboard_address=":0") as cluster, Client(cluster) as client:
            Xd = da.from_array(Xtr, chunks=(4000, 784)).persist()  # two partitions
            yd = da.from_array(ytr, chunks=4000).persist()
            t = time.perf_counter()
            model = fastmlp.dask.MLPClassifier(sync_every=args.sync_every, **adam).fit(Xd, yd)
            d_epoch = (time.perf_counter() - t) / model.n_iter_
            t = time.perf_counter()
            model_l = fastmlp.dask.MLPClassifier(**lbfgs).fit(Xd, yd)
            d_iter = (time.perf_counter() - t) / model_l.n_iter_
            # a round's overhead: an L-BFGS-sized round on 2 rows per partition
            tiny = fastmlp.dask.MLPClassifier(**dict(lbfgs, max_iter=10))
            Xs, ys = da.from_array(Xtr[:8], chunks=(4, 784)), da.from_array(ytr[:8], chunks=4)
            t = time.perf_counter()
            tiny.fit(Xs, ys)
            overhead = (time.perf_counter() - t) / max(tiny.n_iter_, 1)
            print(f"{workers} worker(s) x {threads} thread(s), 2 partitions: adam "
                  f"{d_epoch:.3f} s/epoch (sync_every={args.sync_every}), acc "
                  f"{model.score(Xte, yte):.4f}; lbfgs {d_iter:.3f} s/iter, acc "
                  f"{model_l.score(Xte, yte):.4f}; round overhead ~{overhead * 1000:.0f} ms "
                  f"per L-BFGS iteration on 8 rows")


if __name__ == "__main__":
    import warnings
    warnings.filterwarnings("ignore")
    main()
