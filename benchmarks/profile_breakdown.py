"""Where a fastmlp epoch's CPU time goes: perf samples of the timed epochs, grouped by kind.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/profile_breakdown.py \
        --workloads small,tiny-batch,mnist --threads 1,2 --epochs 5

For each workload and thread count it runs benchmarks/profile_epochs.py under
`perf record -e cpu-clock` (a software clock: it works in VMs without hardware counters), records
only the timed epochs (perf's control fifo), and prints the CPU microseconds per mini-batch spent
in: GEMM kernels, GEMM packing (OpenBLAS copies operands into panels on every call), OpenBLAS's
other work (zeroing C for beta = 0, its thread server), libgomp (fork/join and threads spinning at
barriers), the Adam step, the gradient finish (L2 term, averaging, sum of W^2), the element-wise
kernels, the output softmax + loss, the gather of shuffled rows (memcpy), libc's memset (OpenBLAS
clearing C before a beta = 0 product), the engine's own loops (bias gradient, Cython glue),
Python + numpy (the per-epoch work around the engine) and the OS.
Needs `perf` (Debian's linux-perf).
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

from fastmlp.bench.workloads import FIT_WORKLOADS

HERE = os.path.dirname(os.path.abspath(__file__))

FREQUENCY = 1999  # samples per CPU-second

ENGINE_MODULES = ("_trainer", "_network", "_testing", "vocabulary")  # fastmlp/_engine's .so files

CATEGORIES = [  # (label, predicate on (dso, symbol)); the first match wins
    ("GEMM kernel", lambda d, s: "openblas" in d and re.search(r"gemm_(small_)?kernel", s)),
    ("GEMM packing", lambda d, s: "openblas" in d and "copy" in s),
    # csrc/rows_product.c's product of few float32 rows: its kernel and packing are inlined
    # into one function (rp_product), so they show as one.
    ("own few-rows product (kernel + packing)", lambda d, s: "rp_product" in s
     or "rows_product" in s),
    ("OpenBLAS other (beta=0 zeroing, threads)", lambda d, s: "openblas" in d),
    ("libgomp (fork/join, barrier spin)", lambda d, s: "libgomp" in d),
    ("Adam step", lambda d, s: "adam_step" in s),
    # (the finish and Adam's, SGD's or AdamW's step in one pass: optimizers.c's fm_finish_step,
    # and its copy of a block's new W past the caches, fm_stream_copy, where not inlined)
    ("gradient finish + step (Adam, SGD, AdamW), one pass", lambda d, s: "finish_step" in s
     or "stream_copy" in s),
    ("gradient finish (L2, /n, sum W^2)", lambda d, s: "finalize_gradient" in s
     or "finish_gradient" in s or "sum_squares" in s),
    ("bias + activation forward", lambda d, s: "bias_activation_forward" in s),
    ("activation backward", lambda d, s: "activation_backward" in s),
    ("output softmax + loss (incl. libm log)", lambda d, s: "output_delta" in s or "libm" in d),
    ("gather of shuffled rows (memcpy)", lambda d, s: "libc" in d and "mem" in s and "set" not in s),
    # (perf -g: in a training epoch nearly all of it is called from OpenBLAS's sgemm_nn/nt)
    ("memset (OpenBLAS zeroing C for beta = 0)", lambda d, s: "libc" in d and "memset" in s),
    # (perf names a DSO by its file name: the engine's modules are _trainer.cpython-*.so and
    # its siblings, whose "cpython" the Python category below would otherwise claim.)
    ("engine loops (bias gradient, glue)", lambda d, s: "_engine" in d
     or d.split(".")[0] in ENGINE_MODULES),
    ("Python + numpy around the engine", lambda d, s: "python" in d or "numpy" in d
     or "multiarray" in d or "_sklearn" in d or "sklearn" in d or "libc" in d),
    ("operating system", lambda d, s: "kernel" in d),
    ("other", lambda d, s: True),
]


def profile(workload, threads, epochs, scale, workdir):
    data = os.path.join(workdir, f"perf.{workload}.{threads}")
    fifo = os.path.join(workdir, f"ctl.{workload}.{threads}")
    if os.path.exists(fifo):
        os.unlink(fifo)
    os.mkfifo(fifo)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.dirname(HERE),
                                                      env.get("PYTHONPATH")]))
    out = subprocess.run(
        ["perf", "record", "-q", "-e", "cpu-clock", "-F", str(FREQUENCY), "-D", "-1",
         "--control", f"fifo:{fifo}", "-o", data, "--", sys.executable,
         os.path.join(HERE, "profile_epochs.py"), workload, str(epochs), "--scale", str(scale),
         "--perf-ctl", fifo], env=env, capture_output=True, text=True, check=True)
    seconds = [float(line.split(":")[1].split()[0]) for line in out.stdout.splitlines()
               if line.strip().endswith(" s")]
    report = subprocess.run(
        ["perf", "report", "-i", data, "--stdio", "--no-children", "-n", "-g", "none",
         "--sort", "dso,sym"], capture_output=True, text=True, check=True).stdout
    samples = {}
    for line in report.splitlines():
        m = re.match(r"\s*[\d.]+%\s+(\d+)\s+(\S+)\s+\[[.k]\]\s+(.*)$", line)
        if not m:
            continue
        count, dso, symbol = int(m.group(1)), m.group(2), m.group(3).strip()
        label = next(label for label, match in CATEGORIES if match(dso, symbol))
        samples[label] = samples.get(label, 0) + count
    return seconds, samples


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="small,tiny-batch,mnist")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.workloads.split(","):
            workload = FIT_WORKLOADS[name].scaled(args.scale)
            batches = -(-workload.n_samples // workload.batch_size)
            for threads in (int(t) for t in args.threads.split(",")):
                seconds, samples = profile(name, threads, args.epochs, args.scale, workdir)
                total = sum(samples.values())
                wall = sorted(seconds)[len(seconds) // 2]
                cpu_per_batch = total / FREQUENCY / (args.epochs * batches) * 1e6
                print(f"\n{name} ({workload.n_samples} x {workload.n_features}, hidden "
                      f"{workload.hidden}, batch {workload.batch_size}), {threads} thread(s): "
                      f"median epoch {wall:.4f} s = {wall / batches * 1e6:.0f} us wall per batch "
                      f"({batches} batches); {cpu_per_batch:.0f} us CPU per batch")
                for label, _ in CATEGORIES:
                    if label in samples:
                        share = samples[label] / total
                        print(f"  {label:42s} {share:6.1%}  {share * cpu_per_batch:8.1f} us "
                              "CPU/batch")


if __name__ == "__main__":
    main()
