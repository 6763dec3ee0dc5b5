"""The report: the machine it ran on, a plain-text table, and every number as JSON.

Design
------
The report is a plain dict (machine, command, config, results, skipped) so that the text and
the JSON say the same thing: `format_report` only reads it, and `publish` prints the text and
saves the dict with the text inside. The machine section records what decides the numbers
besides the code: CPU and ISA, usable CPUs and threads, the load average, each BLAS library
with the kernel OpenBLAS picked (OPENBLAS_CORETYPE overrides it; the report warns so that a run
with a slower forced kernel cannot pass unnoticed), and the versions of every system.
"""
import json
import os
import platform
import sys

import numpy as np

from .workloads import ACCURACY_THRESHOLDS


def log(message):
    """Progress goes to stderr, so that stdout holds the report alone."""
    print(message, file=sys.stderr, flush=True)


def machine_info(threads):
    """What decides the numbers besides the code (see the Design block)."""
    from threadpoolctl import threadpool_info
    import scipy
    import sklearn
    from .._runtime import OPENMP_ENABLED
    from .._version import __version__
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line
                    break
    except OSError:
        pass
    isa = "avx512f" if " avx512f" in flags else "avx2" if " avx2" in flags else "baseline"
    blas = sorted({f"{i['internal_api']} {i.get('version')} kernel={i.get('architecture')} "
                   f"({os.path.basename(i['filepath'])})"
                   for i in threadpool_info() if i["user_api"] == "blas"})
    versions = {"python": platform.python_version(), "numpy": np.__version__,
                "scipy": scipy.__version__, "scikit-learn": sklearn.__version__,
                "fastmlp": __version__}
    from importlib.metadata import PackageNotFoundError, version
    for package in ("torch", "jax", "jaxlib", "optax", "keras", "onnxruntime", "skl2onnx"):
        try:  # read from the installed metadata: nothing heavy is imported here
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "absent"
    forced = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                         "OMP_NUM_THREADS") if k in os.environ}
    return {"cpu": cpu, "isa": isa, "logical_cpus": os.cpu_count(),
            "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count(), "threads": threads, "blas": blas,
            "fastmlp_openmp": OPENMP_ENABLED, "environment": forced,
            "versions": versions, "load_average_start": list(os.getloadavg())}


def format_report(report):
    """The report as plain text: the machine, then one section per kind of workload run."""
    results = report["results"]
    lines = _machine_lines(report)
    for section in (_timing_table, _gemm_lines, _thread_lines, _memory_lines, _accuracy_lines,
                    _load_lines):
        body = section(results, report["machine"])
        if body:
            lines += [""] + body
    return "\n".join(lines)


def _machine_lines(report):
    m = report["machine"]
    lines = [f"machine: {m['cpu']} ({m['isa']}), {m['usable_cpus']} usable of "
             f"{m['logical_cpus']} logical CPUs; {m['threads']} threads; "
             f"load average at start {m['load_average_start'][0]:.2f}"
             + (f", at end {m['load_average_end'][0]:.2f}" if "load_average_end" in m else ""),
             "BLAS: " + "; ".join(m["blas"]),
             "versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items())]
    if m["environment"]:
        lines.append("environment: " + ", ".join(f"{k}={v}" for k, v in
                                                  m["environment"].items()))
        if "OPENBLAS_CORETYPE" in m["environment"]:
            lines.append("WARNING: OPENBLAS_CORETYPE forces OpenBLAS's kernel; for numbers of "
                         "this machine run with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`")
    lines.append(f"command: {report['command']}")
    return lines


def _row(cells, widths):
    return "  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                     for i, (c, w) in enumerate(zip(cells, widths)))


def _timing_table(results, machine):
    if not (results.get("fit") or results.get("predict")):
        return []
    widths = (12, 13, 4, 10, 10, 8, 9, 9, 10)
    header = ("workload", "system", "n", "median s", "samples/s", "GFLOP/s", "x fastmlp",
              "CPU/wall", "loss")
    lines = ["Training: seconds per epoch (median of n epochs after a warm-up epoch); "
             "GFLOP/s = 6 x weights x samples / s. Inference: median seconds per "
             "predict_proba call; GFLOP/s = 2 x weights x rows / s. "
             "'x fastmlp' = system's time / fastmlp's (above 1: fastmlp is faster); "
             "CPU/wall = the process's CPU seconds per wall second; loss = the last timed "
             "epoch's mean training loss (cross-entropy + L2), the same problem in every "
             "system. torch-compile, jax, keras and onnxruntime each ran in a process of "
             "their own: the first three's epochs in turn with the others', onnxruntime after "
             "them.",
             _row(header, widths)]
    sections = list(results.get("fit", {}).items()) + list(results.get("predict", {}).items())
    for name, rows in sections:
        base = rows.get("fastmlp", {}).get("median_s")
        for i, (system, r) in enumerate(rows.items()):
            ratio = f"{r['median_s'] / base:.2f}" if base else "-"
            lines.append(_row((name if i == 0 else "", system, r["n"],
                               f"{r['median_s']:.4g}", f"{r['samples_per_s']:.4g}",
                               f"{r['gflops']:.1f}", ratio,
                               f"{r['cpu_per_wall']:.2f}" if "cpu_per_wall" in r else "-",
                               f"{r['final_loss']:.3g}" if r.get("final_loss") is not None
                               else "-"),
                              widths))
    return lines


def _gemm_lines(results, machine):
    if "gemm" not in results:
        return []
    return ["GEMM ceiling (scipy.linalg.blas, best of 5): " + "; ".join(
                f"{k} {v['best_gflops']:.0f} GFLOP/s (all threads "
                + ", ".join(f"{n}: {x:.0f}" for n, x in v["by_size"].items())
                + f"; one thread {v['one_thread_gflops']:.0f})"
                for k, v in results["gemm"].items()),
            "  the ceiling is the larger of the all-thread best and threads x the "
            "one-thread best (a competing process lowers the first)"]


def _thread_lines(results, machine):
    if "threads" not in results:
        return []
    return ["Thread scaling on mnist (median s/epoch by thread count):"] + [
        f"  {system:8s} " + ", ".join(f"{n} thread(s) {v['median_s']:.3f} s (n={v['n']})"
                                      for n, v in r["by_threads"].items())
        + f"; speed-up {r['speedup']:.2f}x" for system, r in results["threads"].items()]


def _memory_lines(results, machine):
    if "memory" not in results:
        return []
    lines = ["Peak memory of one mnist epoch, each system in its own process "
             "(RSS high-water mark reset after data, imports and a tiny warm-up fit):"]
    for system, r in results["memory"].items():
        if "error" in r:
            lines.append(f"  {system:8s} failed: {r['error']}")
            continue
        peak = r["peak_rss"] or r["ru_maxrss"]
        lines.append(f"  {system:8s} data {r['data_bytes'] / 2**20:7.1f} MiB; RSS before "
                     f"the fit {r['baseline_rss'] / 2**20:7.1f} MiB, peak {peak / 2**20:7.1f}"
                     f" MiB: the fit added {r['fit_added'] / 2**20:6.1f} MiB")
    return lines


def _accuracy_lines(results, machine):
    if "accuracy" not in results:
        return []
    acc = results["accuracy"]
    lines = [f"Time to accuracy, MNIST test set split 8,000 / 2,000, the 8,000 with "
             f"their one-pixel shifts (40,000 rows), (256, 128), "
             f"batch 256, Adam; training seconds (scoring excluded), at most "
             f"{acc['max_epochs']} epochs:"]
    for system, r in acc["systems"].items():
        reached = ", ".join(
            f"{t:.0%}: " + (f"{r['reached'][str(t)]['seconds']:.2f} s (epoch "
                            f"{r['reached'][str(t)]['epoch']}; epochs x median epoch "
                            f"{r['reached'][str(t)]['epochs_x_median_s']:.2f} s)"
                            if str(t) in r["reached"] else "not reached")
            for t in ACCURACY_THRESHOLDS)
        lines.append(f"  {system:8s} {reached}; best held-out accuracy "
                     f"{r['best_accuracy']:.4f} in {r['epochs_run']} epochs "
                     f"({r['seconds']:.2f} s, median epoch {r['median_epoch_s']:.3f} s)")
    return lines


def _load_lines(results, machine):
    if not results.get("load_average"):
        return []
    cpus = machine["usable_cpus"]
    return [f"1-minute load average as each workload started ({cpus} usable CPUs; above "
            f"{cpus} other processes were competing): "
            + ", ".join(f"{k} {v:.1f}" for k, v in results["load_average"].items())]


def publish(report, text, json_path=None):
    """Print the text (and what was skipped, and why); save the report with its text as JSON."""
    print(text, flush=True)
    if report["skipped"]:
        print("skipped: " + "; ".join(report["skipped"]))
    if json_path:
        with open(json_path, "w") as f:
            json.dump({**report, "text": text}, f, indent=1)
