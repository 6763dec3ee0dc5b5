"""Peak memory of one training epoch, each system in a child process of its own.

Design
------
One process per system gives each a fresh heap: a system measured after another would reuse the
other's freed pages unseen. In the child (`python -m fastmlp.bench --memory-child SYSTEM
WORKLOAD`), the data, the imports and a tiny warm-up fit come first; then the kernel's RSS
high-water mark is reset (/proc/self/clear_refs) and read back after one epoch, so the number is
what the fit itself added. Where the mark cannot be reset, the child reports getrusage's peak
instead, which includes the data.
"""
import gc
import json
import os
import resource
import subprocess
import sys
from dataclasses import asdict

import numpy as np

from .systems import make_system
from .workloads import N_CLASSES, Workload, make_blobs


def _read_status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return None


def memory_child(system, workload_json, threads):
    """Runs in a fresh process: data, imports and a tiny warm-up fit first, then the RSS
    high-water mark is reset and one full epoch runs. Prints one JSON line."""
    fields = json.loads(workload_json)
    workload = Workload(**{**fields, "hidden": tuple(fields["hidden"])})
    X, y = make_blobs(workload.n_samples, workload.n_features, workload.dtype)
    warm = Workload("warm-up", 64, workload.n_features, (8,), 16, workload.dtype)
    make_system(system, warm, threads).fit_epoch(X[:64], np.arange(64) % N_CLASSES)
    runner = make_system(system, workload, threads)
    gc.collect()
    reset = True
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    except OSError:
        reset = False
    baseline = _read_status("VmRSS")
    runner.fit_epoch(X, y)
    print(json.dumps({
        "baseline_rss": baseline,
        "peak_rss": _read_status("VmHWM") if reset else None,
        "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "hwm_reset": reset,
        "data_bytes": X.nbytes,
    }))


def bench_memory(workload, systems, threads, log):
    """Peak memory of one epoch of `workload`, per system, each in a child process."""
    # The children import the fastmlp this process runs, wherever it was imported from.
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    # Fixed glibc thresholds: every large block is its own mapping, returned when freed. Left
    # dynamic, glibc keeps the data generator's freed chunks resident and the fit reuses them
    # unseen by the high-water mark.
    env["MALLOC_MMAP_THRESHOLD_"] = env["MALLOC_TRIM_THRESHOLD_"] = str(128 * 1024)
    results = {}
    for system in systems:
        log(f"  memory: one {workload.name} epoch of {system} in a child process")
        command = [sys.executable, "-m", "fastmlp.bench", "--memory-child", system,
                   json.dumps(asdict(workload)), "--threads", str(threads)]
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            results[system] = {"error": out.stderr.strip().splitlines()[-1:]}
            continue
        record = json.loads(out.stdout.strip().splitlines()[-1])
        peak = record["peak_rss"] or record["ru_maxrss"]
        record["fit_added"] = peak - record["baseline_rss"]
        results[system] = record
    return results
