"""The project's speed targets, checked against a run of `fastmlp bench`'s workloads.

Design
------
These are the ratios the project promises, so they live with the project's harness, not in the
installed package: `fastmlp bench` measures, this module judges. Every target is a ratio
measured within one run — fastmlp against the faster peer of the same run, or against the
machine's GEMM ceiling measured in the same run — never an absolute time, so that a busy or
slower machine moves both sides alike. A target whose workload was not run (or
has no peer) is "n/a", never a pass.
"""
import numpy as np

from fastmlp.bench.workloads import N_CLASSES

# fastmlp's epoch time at least this many times below the faster peer's.
SPEEDUP_TARGETS = {"small": 4.0, "tiny-batch": 3.0, "mnist": 1.5, "mnist-f64": 1.5, "wide": 1.2}
WIDE_CEILING_FRACTION = 0.8
PREDICT_ONE_FRACTION = 1 / 3
THREAD_SPEEDUP = 1.7
MEMORY_SLACK_MIB = 16  # allocator arenas, lazily imported modules: not the fit's own arrays


def fastmlp_fit_estimate(workload):
    """What a fastmlp fit should add beyond X: theta, gradient and Adam's two moments; the
    one-hot labels (int64 from LabelBinarizer, then a float copy) and the shuffle index; the
    trainer's per-batch buffers (each layer's activations and deltas, the gathered batch)."""
    itemsize = np.dtype(workload.dtype).itemsize
    widths = (*workload.hidden, N_CLASSES)
    n_params = workload.n_weights + sum(widths)
    n, b = workload.n_samples, workload.batch_size
    params = 4 * n_params * itemsize
    labels = n * N_CLASSES * (8 + itemsize) + 2 * n * 8
    batch = b * (2 * sum(widths) + workload.n_features) * itemsize + b * 8
    return {"params": params, "labels": labels, "batch": batch,
            "total": params + labels + batch}


def check_targets(results, memory_workload):
    """The targets against a report's results: [(target, measured, PASS/FAIL/n/a), ...].
    memory_workload: the workload the memory benchmark ran (mnist, scaled as the run was)."""
    checks = []
    fit = results.get("fit", {})
    for name, factor in SPEEDUP_TARGETS.items():
        label = f"{name}: epoch >= {factor:g}x faster than the faster peer"
        rows = fit.get(name)
        peers = {s: r["median_s"] for s, r in (rows or {}).items() if s != "fastmlp"}
        if not rows or "fastmlp" not in rows or not peers:
            checks.append((label, "not measured", "n/a"))
            continue
        peer = min(peers, key=peers.get)
        ratio = peers[peer] / rows["fastmlp"]["median_s"]
        checks.append((label, f"{ratio:.2f}x vs {peer}", "PASS" if ratio >= factor else "FAIL"))
    label = f"wide: >= {WIDE_CEILING_FRACTION:.0%} of the sgemm ceiling"
    if "wide" in fit and "fastmlp" in fit["wide"] and "gemm" in results:
        share = fit["wide"]["fastmlp"]["gflops"] / results["gemm"]["sgemm"]["best_gflops"]
        checks.append((label, f"{share:.0%} ({fit['wide']['fastmlp']['gflops']:.0f} of "
                              f"{results['gemm']['sgemm']['best_gflops']:.0f} GFLOP/s)",
                       "PASS" if share >= WIDE_CEILING_FRACTION else "FAIL"))
    else:
        checks.append((label, "not measured", "n/a"))
    for kind, fraction, label in (
            ("predict-one", PREDICT_ONE_FRACTION,
             "predict-one: latency <= 1/3 of the faster peer's"),
            ("predict-bulk", 1.0, "predict-bulk: no slower than either peer")):
        rows = results.get("predict", {}).get(kind)
        peers = {s: r["median_s"] for s, r in (rows or {}).items() if s != "fastmlp"}
        if not rows or "fastmlp" not in rows or not peers:
            checks.append((label, "not measured", "n/a"))
            continue
        ours, best = rows["fastmlp"]["median_s"], min(peers.values())
        checks.append((label, f"{ours * 1e6:.0f} us vs {best * 1e6:.0f} us ({ours / best:.2f})",
                       "PASS" if ours <= fraction * best else "FAIL"))
    label = f"mnist: 1 -> 2 threads >= {THREAD_SPEEDUP}x"
    threads = results.get("threads", {}).get("fastmlp")
    if threads and len(threads["by_threads"]) > 1:
        checks.append((label, f"{threads['speedup']:.2f}x",
                       "PASS" if threads["speedup"] >= THREAD_SPEEDUP else "FAIL"))
    else:
        checks.append((label, "not measured", "n/a"))
    label = "memory: fit adds O(batch x width + parameters) (+ labels), not O(data)"
    memory = results.get("memory", {})
    if "fastmlp" in memory and "fit_added" in memory["fastmlp"]:
        added = memory["fastmlp"]["fit_added"]
        e = fastmlp_fit_estimate(memory_workload)
        allowed = e["total"] + MEMORY_SLACK_MIB * 2 ** 20
        checks.append((label, f"+{added / 2**20:.1f} MiB (estimate {e['total'] / 2**20:.1f} MiB: "
                              f"parameters+gradient+Adam {e['params'] / 2**20:.1f}, "
                              f"labels+index {e['labels'] / 2**20:.1f}, "
                              f"batch buffers {e['batch'] / 2**20:.1f}; "
                              f"+ {MEMORY_SLACK_MIB} slack; data "
                              f"{memory['fastmlp']['data_bytes'] / 2**20:.0f} MiB)",
                       "PASS" if added <= allowed else "FAIL"))
    else:
        checks.append((label, "not measured", "n/a"))
    return checks


def format_targets(checks):
    """The verdicts as the report's last section."""
    return "\n".join(["", "Targets:"] + [f"  [{verdict:4s}] {label}: {measured}"
                                         for label, measured, verdict in checks])
