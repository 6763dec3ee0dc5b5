"""The engine's own products inside an epoch against the same kernels alone, in one process.

    python benchmarks/epoch_products.py [--workload wide] [--threads 1,2] [--rounds 4]
                                        [--scale 0.25]

Why: comparing a profile of the epochs (benchmarks/profile_breakdown.py: GFLOP per CPU-second
of the products) with benchmarks/few_rows_product.py's kernels alone, run minutes apart, once
read a fifth lost inside `wide`'s epoch (RESULTS.md, 2026-12-06). On a host whose speed moves
by a third within minutes, two runs cannot tell that. Here one process alternates, round by
round, an epoch of the workload and the same kernels called alone on its blocks' shapes (the
product of a block of a 512-row batch cut in two, the way a two-CPU machine cuts it on either
thread count; each call after an 8 MB buffer is read, so W comes from past the core's caches as
the optimizer's step leaves it), under `perf record -e cpu-clock -k CLOCK_MONOTONIC`. Each
perf sample is put in the phase its time falls in, and each phase gives the products' GFLOP
per CPU-second of their samples (csrc/rows_product.c's functions and BLAS's GEMM: an epoch's
products are all of them). The epoch's GFLOP are the network's products counted from its shape
(forward, the input gradients of every layer but the first, the weight gradients).
Needs `perf` (Debian's linux-perf) and csrc/rows_product.c's kernel on this processor.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FREQUENCY = 1999  # perf samples per CPU-second


def block_shapes(workload):
    """(rows, n_in, n_out, kind) of the products of one batch of the workload's widths, a
    batch cut in two row blocks; kind as benchmarks/few_rows_product.py's: "W" forward, "W^T"
    an input gradient, "a^T" a weight gradient over the whole batch."""
    from fastmlp.bench.workloads import N_CLASSES
    widths = (workload.n_features, *workload.hidden, N_CLASSES)
    half = workload.batch_size // 2
    shapes = []
    for layer, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        shapes += [(half, n_in, n_out, "W")] * 2
        if layer > 0:
            shapes += [(half, n_in, n_out, "W^T")] * 2
        shapes.append((workload.batch_size, n_in, n_out, "a^T"))
    return shapes


def product_flops(shapes):
    return sum(2 * rows * n_in * n_out for rows, n_in, n_out, _ in shapes)


def child(args):
    """Alternate epochs and the kernels alone; print each phase's CLOCK_MONOTONIC bounds."""
    from fastmlp._engine import _testing as K
    from fastmlp.bench.systems import make_system
    from fastmlp.bench.workloads import FIT_WORKLOADS, make_blobs
    workload = FIT_WORKLOADS[args.workload].scaled(args.scale)
    X, y = make_blobs(workload.n_samples, workload.n_features, workload.dtype)
    runner = make_system("fastmlp", workload, args.child)
    runner.fit_epoch(X, y)  # (the warm-up epoch: classes, buffers, threads)
    rng = np.random.RandomState(0)
    calls = []
    for rows, n_in, n_out, kind in block_shapes(workload):
        if kind == "a^T":  # out (n_in x n_out) = a^T delta: W here holds delta
            a = rng.standard_normal((rows, n_in)).astype(np.float32)
            W = rng.standard_normal((rows, n_out)).astype(np.float32)
            out = np.empty((n_in, n_out), np.float32)
        else:
            W = (0.05 * rng.standard_normal((n_in, n_out))).astype(np.float32)
            a = rng.standard_normal((rows, n_out if kind == "W^T" else n_in)).astype(np.float32)
            out = np.empty((rows, n_in if kind == "W^T" else n_out), np.float32)
        calls.append((kind, out, a, W))
    evict = np.ones(8 << 20, dtype=np.uint8)
    batches = workload.n_samples // workload.batch_size
    now = lambda: time.clock_gettime_ns(time.CLOCK_MONOTONIC)  # noqa: E731 (perf's -k clock)
    for _ in range(args.rounds):
        start = now()
        runner.fit_epoch(X, y)
        print("epoch", start, now(), flush=True)
        start = now()
        for _ in range(batches // 2):  # (half an epoch's products: each phase ~1/3 of a round)
            for kind, out, a, W in calls:
                evict[::64] += 1
                if kind == "a^T":
                    K.kernel_rows_product(out, a, W, a_transposed=True)
                else:
                    K.kernel_rows_product(out, a, W, kind == "W^T")
        print("alone", start, now(), batches // 2, flush=True)


def is_product(symbol):
    return "rp_" in symbol or "rows_product" in symbol or "gemm" in symbol


def split_samples(script, phases):
    """Per phase (start, stop): [product samples, all samples], from `perf script -F
    time,ip,sym` lines (perf prints no symbol without its address)."""
    counts = [[0, 0] for _ in phases]
    for line in script.splitlines():
        fields = line.split()
        if not fields or not fields[0].endswith(":"):
            continue
        seconds, _, fraction = fields[0][:-1].partition(".")
        t = int(seconds) * 10**9 + int(fraction.ljust(9, "0")[:9])
        for count, (start, stop) in zip(counts, phases):
            if start <= t <= stop:
                count[0] += is_product(" ".join(fields[2:]))
                count[1] += 1
                break
    return counts


def measure(workload_name, threads, rounds, scale, workdir):
    from fastmlp.bench.workloads import FIT_WORKLOADS
    workload = FIT_WORKLOADS[workload_name].scaled(scale)
    data = os.path.join(workdir, f"perf.{threads}")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.dirname(HERE),
                                                      env.get("PYTHONPATH")]))
    out = subprocess.run(
        ["perf", "record", "-q", "-e", "cpu-clock", "-F", str(FREQUENCY), "-k",
         "CLOCK_MONOTONIC", "-o", data, "--", sys.executable, os.path.abspath(__file__),
         "--workload", workload_name, "--rounds", str(rounds), "--scale", str(scale),
         "--child", str(threads)], env=env, capture_output=True, text=True, check=True).stdout
    script = subprocess.run(["perf", "script", "-i", data, "-F", "time,ip,sym", "--ns"],
                            capture_output=True, text=True, check=True).stdout
    lines = [line.split() for line in out.splitlines() if line.startswith(("epoch", "alone"))]
    counts = split_samples(script, [(int(f[1]), int(f[2])) for f in lines])
    shapes = block_shapes(workload)
    batch_flops = product_flops(shapes)
    rows = []
    for fields, (products, total) in zip(lines, counts):
        flops = (batch_flops * workload.n_samples / workload.batch_size if fields[0] == "epoch"
                 else batch_flops * int(fields[3]))
        wall = (int(fields[2]) - int(fields[1])) / 1e9
        rows.append((fields[0], wall, total / FREQUENCY, products / FREQUENCY,
                     flops / max(products, 1) * FREQUENCY / 1e9))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="wide")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--scale", type=float, default=0.25)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)  # (the process perf runs)
    args = parser.parse_args()
    if args.child:
        return child(args)
    print("GFLOP per CPU-second of the products' perf samples; epoch and alone in turns")
    with tempfile.TemporaryDirectory() as workdir:
        for threads in (int(t) for t in args.threads.split(",")):
            rows = measure(args.workload, threads, args.rounds, args.scale, workdir)
            print(f"\n{args.workload}, {threads} thread(s) in the epochs (alone: one thread)")
            for phase, wall, cpu, products, rate in rows:
                print(f"  {phase:5s} wall {wall:6.3f} s  CPU {cpu:6.3f} s  products {products:6.3f}"
                      f" s ({products / max(cpu, 1e-9):4.0%})  {rate:6.1f} GFLOP/s")
            ratios = [e[4] / a[4] for e, a in zip(rows[0::2], rows[1::2])]
            print(f"  epoch / alone, round by round: {', '.join(f'{r:.2f}' for r in ratios)}; "
                  f"median {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
