"""Run fastmlp epochs of one benchmark workload, for a profiler to watch.

    mkfifo /tmp/perf.ctl
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=2 \
        perf record -e cpu-clock -D -1 --control fifo:/tmp/perf.ctl -o perf.data -- \
        python benchmarks/profile_epochs.py mnist 5 --perf-ctl /tmp/perf.ctl
    py-spy record --native -o mnist.svg -- python benchmarks/profile_epochs.py mnist 5
    OMP_NUM_THREADS=1 valgrind --tool=callgrind --toggle-collect='*Trainer_*epoch*' \
        python benchmarks/profile_epochs.py tiny-batch 1 --scale 0.1

Arguments: workload (from fastmlp/bench/workloads.py), epochs after one warm-up epoch, --scale
(a fraction of the samples), --perf-ctl (a perf control fifo: recording is enabled for the timed
epochs only, not for imports, data and the warm-up epoch). Prints the seconds of each epoch. Under
valgrind, OpenBLAS and fastmlp's kernels take their AVX2 paths (valgrind has no AVX-512): count
instructions with it, but split time with perf.
"""
import argparse
import time

from fastmlp.bench.systems import make_system
from fastmlp.bench.workloads import FIT_WORKLOADS, make_blobs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=list(FIT_WORKLOADS))
    parser.add_argument("epochs", type=int, nargs="?", default=5)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--system", default="fastmlp", choices=["fastmlp", "sklearn", "torch"])
    parser.add_argument("--perf-ctl", help="perf's control fifo (perf record -D -1 --control)")
    args = parser.parse_args()
    workload = FIT_WORKLOADS[args.workload].scaled(args.scale)
    X, y = make_blobs(workload.n_samples, workload.n_features, workload.dtype)
    from threadpoolctl import threadpool_info
    threads = max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp")
    runner = make_system(args.system, workload, threads)
    runner.fit_epoch(X, y)
    control = open(args.perf_ctl, "w") if args.perf_ctl else None
    if control:
        control.write("enable\n")
        control.flush()
    for _ in range(args.epochs):
        start = time.perf_counter()
        runner.fit_epoch(X, y)
        print(f"{args.workload} ({workload.n_samples} samples): "
              f"{time.perf_counter() - start:.4f} s", flush=True)
    if control:
        control.write("disable\n")
        control.close()


if __name__ == "__main__":
    main()
