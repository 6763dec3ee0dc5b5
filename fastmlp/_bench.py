"""Side-by-side benchmarks: fastmlp, scikit-learn's MLP and a plain PyTorch CPU loop.

`fastmlp bench` and `python benchmarks/compare.py` both run `main(argv)`.

Design
------
A speed claim is a ratio measured in one process, on the same data, at the same time: this
machine is shared and noisy, so absolute seconds mean little and a ratio between runs made
minutes apart means less. Hence:

- Every system trains on the same arrays (generated once per workload) with the same network,
  batch size and optimizer (Adam, learning rate 1e-3), and is timed as one epoch per call: one
  `partial_fit` for fastmlp and scikit-learn (the first call, with `classes=`, is the warm-up
  epoch and is not timed), one pass of the training loop for PyTorch.
- Repeats are interleaved (fastmlp, scikit-learn, torch, fastmlp, ...), with a 0.3 s pause before
  each so that one system's idle BLAS threads have gone to sleep when the next is timed, and a
  burst of load from another process lands on all systems alike; the median over repeats is reported. A slow system
  stops repeating once it has spent its time budget (never with fewer than three samples unless
  fewer were asked for); the table says how many epochs each median is over.
- Throughput uses one convention for everyone: training costs 6 x weights x samples flops per
  epoch (2 forward, 4 backward; weights = all W entries, biases ignored), inference
  2 x weights x rows. The machine's ceiling is the best single sgemm/dgemm of scipy's BLAS (the
  library fastmlp's engine calls) on large square matrices with every thread.
- OpenBLAS picks its kernel at load time; OPENBLAS_CORETYPE overrides it. The table prints the
  kernel threadpoolctl reports so that a run with a slower forced kernel cannot pass unnoticed.
- Peak memory is measured in a child process per system (a fresh heap), after the data exist and
  the imports are done: the kernel's RSS high-water mark is reset (/proc/self/clear_refs) and read
  back after one epoch, so the number is what the fit itself added.
"""
import argparse
import gc
import gzip
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import asdict, dataclass

import numpy as np

N_CLASSES = 10
SYSTEMS = ("fastmlp", "sklearn", "torch")


@dataclass(frozen=True)
class Workload:
    """A training problem: Gaussian blobs of n_samples x n_features in N_CLASSES classes."""
    name: str
    n_samples: int
    n_features: int
    hidden: tuple
    batch_size: int
    dtype: str

    @property
    def n_weights(self):
        widths = (self.n_features, *self.hidden, N_CLASSES)
        return sum(a * b for a, b in zip(widths[:-1], widths[1:]))

    def scaled(self, factor):
        n = max(self.batch_size * 4, int(self.n_samples * factor))
        return Workload(self.name, min(n, self.n_samples), self.n_features, self.hidden,
                        self.batch_size, self.dtype)


FIT_WORKLOADS = {w.name: w for w in (
    Workload("small", 20_000, 64, (100,), 200, "float32"),  # scikit-learn's defaults
    Workload("tiny-batch", 20_000, 784, (256, 128), 32, "float32"),
    Workload("mnist", 60_000, 784, (256, 128), 256, "float32"),
    Workload("mnist-f64", 30_000, 784, (256, 128), 256, "float64"),
    Workload("wide", 30_000, 784, (1024, 1024), 512, "float32"),
)}
PREDICT_BULK_ROWS = 20_000
PREDICT_ONE_CALLS = 200
OTHER_WORKLOADS = ("predict-bulk", "predict-one", "threads", "gemm", "memory", "accuracy")
ALL_WORKLOADS = tuple(FIT_WORKLOADS) + OTHER_WORKLOADS
# The targets: fastmlp's epoch time at least this many times below the faster peer's.
SPEEDUP_TARGETS = {"small": 4.0, "tiny-batch": 3.0, "mnist": 1.5, "mnist-f64": 1.5, "wide": 1.2}
WIDE_CEILING_FRACTION = 0.8
PREDICT_ONE_FRACTION = 1 / 3
THREAD_SPEEDUP = 1.7
ACCURACY_THRESHOLDS = (0.97, 0.95)
MEMORY_SLACK_MIB = 16  # allocator arenas, lazily imported modules: not the fit's own arrays


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------

def make_blobs(n_samples, n_features, dtype, seed=0):
    """Gaussian blobs: N_CLASSES centres ~ N(0, 1), unit-variance noise around them. Generated
    in chunks so that no temporary as large as X exists (the memory benchmark relies on it)."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    centers = rng.standard_normal((N_CLASSES, n_features)).astype(dtype)
    y = rng.integers(0, N_CLASSES, n_samples)
    X = np.empty((n_samples, n_features), dtype=dtype)
    for start in range(0, n_samples, 4096):
        stop = min(start + 4096, n_samples)
        rng.standard_normal((stop - start, n_features), dtype=dtype, out=X[start:stop])
        X[start:stop] += centers[y[start:stop]]
    return X, y


def read_idx(path):
    """An IDX file (the MNIST format), gzipped or not, as a numpy array of its own shape."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    types = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if data[2] not in types:
        raise ValueError(f"{path}: unknown IDX element type 0x{data[2]:02x}")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(types[data[2]])
    expected = 4 + 4 * ndim + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"{path}: {len(data)} bytes, expected {expected} for shape {shape}")
    return np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim).reshape(shape).astype(
        dtype.newbyteorder("="))


def load_mnist10k(directory):
    """The MNIST test set (10,000 images) as float32 pixels in [0, 1] and int labels."""
    images = read_idx(os.path.join(directory, "t10k-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(directory, "t10k-labels-idx1-ubyte.gz"))
    X = images.reshape(images.shape[0], -1).astype(np.float32) / np.float32(255.0)
    return X, labels.astype(np.int64)


def shifted_copies(X, y, side=28):
    """X's square images together with four copies moved by one pixel (up, down, left, right;
    the edge that comes in is zero), and y repeated to match: the classic augmentation of
    MNIST's training images (LeCun et al. 1998). Trained on 8,000 images alone, an MLP of the
    `mnist` shape peaks near 95.7 % held out, scikit-learn's and ours alike; on these 40,000 it
    passes 97 %, so the time-to-97 % target becomes measurable."""
    images = X.reshape(-1, side, side)
    copies = [images]
    for axis in (1, 2):
        for step in (1, -1):
            moved = np.zeros_like(images)
            target = [slice(None)] * 3
            source = [slice(None)] * 3
            target[axis] = slice(step, None) if step > 0 else slice(None, step)
            source[axis] = slice(None, -step) if step > 0 else slice(-step, None)
            moved[tuple(target)] = images[tuple(source)]
            copies.append(moved)
    return np.concatenate(copies).reshape(-1, side * side), np.tile(y, len(copies))


# ---------------------------------------------------------------------------------------------
# The systems: one epoch per call, predict_proba
# ---------------------------------------------------------------------------------------------

class EstimatorSystem:
    """fastmlp's or scikit-learn's MLPClassifier; an epoch is one partial_fit call."""

    def __init__(self, name, workload, seed=0):
        if name == "fastmlp":
            from fastmlp import MLPClassifier
        else:
            from sklearn.neural_network import MLPClassifier
        self.name = name
        self.model = MLPClassifier(hidden_layer_sizes=workload.hidden,
                                   batch_size=workload.batch_size, random_state=seed)
        self.started = False

    def fit_epoch(self, X, y):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.started:
                self.model.partial_fit(X, y)
            else:
                self.model.partial_fit(X, y, classes=np.arange(N_CLASSES))
                self.started = True

    def predict_proba(self, X):
        return self.model.predict_proba(X)

    def set_threads(self, n):
        pass  # OpenMP and BLAS limits are set by the caller through threadpoolctl


class TorchSystem:
    """The plain PyTorch CPU loop: Linear/ReLU layers, cross-entropy, Adam(lr=1e-3), shuffled
    mini-batches by torch.randperm indexing (no DataLoader), in the workload's dtype."""

    def __init__(self, workload, seed=0):
        import torch
        self.torch = torch
        torch.manual_seed(seed)
        dtype = torch.float64 if workload.dtype == "float64" else torch.float32
        widths = (workload.n_features, *workload.hidden, N_CLASSES)
        layers = []
        for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(torch.nn.Linear(fan_in, fan_out, dtype=dtype))
            if i < len(widths) - 2:
                layers.append(torch.nn.ReLU())
        self.name = "torch"
        self.model = torch.nn.Sequential(*layers)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.loss = torch.nn.CrossEntropyLoss()
        self.batch_size = workload.batch_size
        self._tensors = (None, None, None)

    def _as_tensors(self, X, y):
        # Converted once per dataset, outside the timed epoch: torch.from_numpy shares X's memory.
        if self._tensors[0] is not X:
            self._tensors = (X, self.torch.from_numpy(X),
                             self.torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)))
        return self._tensors[1], self._tensors[2]

    def fit_epoch(self, X, y):
        torch = self.torch
        Xt, yt = self._as_tensors(X, y)
        self.model.train()
        order = torch.randperm(Xt.shape[0])
        for start in range(0, Xt.shape[0], self.batch_size):
            index = order[start:start + self.batch_size]
            loss = self.loss(self.model(Xt[index]), yt[index])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()

    def predict_proba(self, X):
        torch = self.torch
        self.model.eval()
        with torch.no_grad():
            return torch.softmax(self.model(torch.from_numpy(X)), dim=1).numpy()

    def set_threads(self, n):
        self.torch.set_num_threads(n)


def torch_available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def make_system(name, workload, threads, seed=0):
    if name == "torch":
        system = TorchSystem(workload, seed)
        system.set_threads(threads)
        return system
    return EstimatorSystem(name, workload, seed)


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------

SETTLE_SECONDS = 0.3


def time_interleaved(tasks, repeats, budget):
    """tasks: {key: callable}. Call each once per round, in turn, for up to `repeats` rounds; a
    task whose calls have taken more than `budget` seconds in all stops after 3 (or `repeats`)
    samples. Returns {key: [wall seconds, ...]} and {key: [CPU seconds of the process, ...]}."""
    times = {key: [] for key in tasks}
    cpu_times = {key: [] for key in tasks}
    min_samples = min(3, repeats)
    for _ in range(repeats):
        for key, task in tasks.items():
            if len(times[key]) >= min_samples and sum(times[key]) > budget:
                continue
            if len(tasks) > 1:
                # OpenBLAS's idle threads spin for ~0.1 s after a call before they sleep: left
                # alone, numpy's (scikit-learn's matmuls) would be timed as part of the next
                # system's call. Measured: fastmlp's bulk predict 33 ms alone, 55 ms right after
                # scikit-learn's.
                time.sleep(SETTLE_SECONDS)
            start, cpu = time.perf_counter(), time.process_time()
            task()
            times[key].append(time.perf_counter() - start)
            cpu_times[key].append(time.process_time() - cpu)
    return times, cpu_times


def summarize(times, n_samples, flops, cpu_times=None):
    median = statistics.median(times)
    summary = {"n": len(times), "median_s": median, "min_s": min(times), "max_s": max(times),
               "samples_per_s": n_samples / median, "gflops": flops / median / 1e9}
    if cpu_times:
        # CPU seconds over wall seconds: about the thread count when every thread works or
        # spins, lower when threads wait for cores the machine's other processes hold.
        summary["cpu_per_wall"] = statistics.median(c / t for c, t in zip(cpu_times, times))
    return summary


def threadpool_limits(limits, user_api=None):
    from threadpoolctl import threadpool_limits as limits_
    return limits_(limits=limits, user_api=user_api)


def bench_fit(workload, systems, threads, repeats, budget, log):
    X, y = make_blobs(workload.n_samples, workload.n_features, workload.dtype)
    runners = {name: make_system(name, workload, threads) for name in systems}
    for name, runner in runners.items():
        log(f"  {workload.name}: warm-up epoch of {name}")
        runner.fit_epoch(X, y)
    times, cpu = time_interleaved({name: (lambda r=runner: r.fit_epoch(X, y))
                                   for name, runner in runners.items()}, repeats, budget)
    flops = 6 * workload.n_weights * workload.n_samples
    results = {name: summarize(t, workload.n_samples, flops, cpu[name])
               for name, t in times.items()}
    return results, runners, X


def bench_predict(workload, runners, X, kinds, repeats, budget, log):
    """predict_proba of PREDICT_BULK_ROWS rows (median over `repeats` calls) and of one row
    (median over PREDICT_ONE_CALLS calls, a different row each time)."""
    results = {}
    if "predict-bulk" in kinds:
        bulk = np.ascontiguousarray(X[:PREDICT_BULK_ROWS])
        log(f"  predict-bulk: {bulk.shape[0]} rows")
        for runner in runners.values():
            runner.predict_proba(bulk)
        times, cpu = time_interleaved({name: (lambda r=runner: r.predict_proba(bulk))
                                       for name, runner in runners.items()},
                                      max(repeats, 5), budget)
        flops = 2 * workload.n_weights * bulk.shape[0]
        results["predict-bulk"] = {name: summarize(t, bulk.shape[0], flops, cpu[name])
                                   for name, t in times.items()}
    if "predict-one" in kinds:
        log(f"  predict-one: {PREDICT_ONE_CALLS} calls of one row")
        rows = [X[i:i + 1] for i in range(PREDICT_ONE_CALLS)]
        times = {name: [] for name in runners}
        # Each system's calls back to back, as a serving loop makes them: alternating systems
        # call by call would have each evict the others' weights (~1 MB each) from the cache.
        for name, runner in runners.items():
            time.sleep(SETTLE_SECONDS)
            for row in rows[:20]:
                runner.predict_proba(row)
            for row in rows:
                start = time.perf_counter()
                runner.predict_proba(row)
                times[name].append(time.perf_counter() - start)
        results["predict-one"] = {name: summarize(t, 1, 2 * workload.n_weights)
                                  for name, t in times.items()}
    return results


def bench_threads(workload, systems, threads, repeats, budget, log):
    """Epoch time of `workload` with 1 thread and with `threads`, interleaved, per system."""
    X, y = make_blobs(workload.n_samples, workload.n_features, workload.dtype)
    counts = sorted({1, threads})
    runners = {name: make_system(name, workload, threads) for name in systems}
    for runner in runners.values():
        runner.fit_epoch(X, y)

    def epoch(runner, n):
        with threadpool_limits(n):
            runner.set_threads(n)
            runner.fit_epoch(X, y)
        runner.set_threads(threads)

    log(f"  threads: {workload.name} with {counts} threads")
    tasks = {(name, n): (lambda r=runner, n=n: epoch(r, n))
             for name, runner in runners.items() for n in counts}
    times, cpu = time_interleaved(tasks, repeats, budget)
    flops = 6 * workload.n_weights * workload.n_samples
    results = {}
    for name in runners:
        per_count = {str(n): summarize(times[(name, n)], workload.n_samples, flops,
                                       cpu[(name, n)])
                     for n in counts}
        speedup = per_count["1"]["median_s"] / per_count[str(counts[-1])]["median_s"]
        results[name] = {"by_threads": per_count, "speedup": speedup}
    return results


def bench_gemm(sizes, threads, log, repeats=5):
    """The machine's GEMM ceiling: best GFLOP/s of scipy.linalg.blas sgemm and dgemm on square
    matrices of each size with every thread, and on the smallest size with one thread.

    Another process busy on one core halves an all-thread GEMM but leaves a one-thread GEMM on
    the other core whole, so the ceiling the targets use is the larger of the all-thread best
    and threads x the one-thread best: noise can only lower either, never raise it."""
    from scipy.linalg import blas
    rng = np.random.default_rng(0)
    results = {}
    for routine, dtype in (("sgemm", np.float32), ("dgemm", np.float64)):
        gemm = getattr(blas, routine)
        per_size, one_thread = {}, 0.0
        for n in sizes:
            log(f"  gemm: {routine} {n} x {n}")
            a = np.asfortranarray(rng.standard_normal((n, n)).astype(dtype))
            b = np.asfortranarray(rng.standard_normal((n, n)).astype(dtype))
            counts = [threads, 1] if n == min(sizes) and threads > 1 else [threads]
            best = dict.fromkeys(counts, float("inf"))
            for count in counts:  # warm-up: OpenBLAS starts its threads, pages are touched
                with threadpool_limits(count, user_api="blas"):
                    gemm(1.0, a, b)
            for _ in range(repeats):  # thread counts interleaved, like the systems elsewhere
                for count in counts:
                    with threadpool_limits(count, user_api="blas"):
                        start = time.perf_counter()
                        gemm(1.0, a, b)
                        best[count] = min(best[count], time.perf_counter() - start)
            per_size[str(n)] = 2 * n ** 3 / best[threads] / 1e9
            if 1 in best and threads > 1:
                one_thread = 2 * n ** 3 / best[1] / 1e9
            del a, b
        all_threads = max(per_size.values())
        results[routine] = {"best_gflops": max(all_threads, threads * one_thread),
                            "all_threads_gflops": all_threads, "by_size": per_size,
                            "one_thread_gflops": one_thread or all_threads}
    return results


def bench_accuracy(directory, systems, threads, max_epochs, log):
    """Seconds of training (partial_fit epochs; the held-out scoring between epochs is not
    counted) until held-out accuracy first reaches each threshold, on the MNIST test set split
    8,000 / 2,000, the 8,000 training images with their one-pixel shifts (`shifted_copies`:
    40,000 rows; the 2,000 held out are scored as they are), with the `mnist` workload's network
    and batch size. A trajectory is timed
    once, so a burst of load from another process lands on whichever epoch it hits: beside the
    summed seconds, each threshold also gets epochs x the median epoch, which such bursts do not
    move."""
    from sklearn.model_selection import train_test_split
    X, y = load_mnist10k(directory)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, train_size=8000, test_size=2000, random_state=0, stratify=y)
    X_train, y_train = shifted_copies(X_train, y_train)
    workload = Workload("accuracy", len(X_train), X.shape[1], (256, 128), 256, "float32")
    runners = {name: make_system(name, workload, threads) for name in systems}
    state = {name: {"seconds": 0.0, "curve": [], "reached": {}, "epoch_seconds": []}
             for name in runners}
    log(f"  accuracy: up to {max_epochs} epochs on {directory}")
    for epoch in range(1, max_epochs + 1):
        for name, runner in runners.items():
            record = state[name]
            if len(record["reached"]) == len(ACCURACY_THRESHOLDS):
                continue
            start = time.perf_counter()
            runner.fit_epoch(X_train, y_train)
            record["epoch_seconds"].append(time.perf_counter() - start)
            record["seconds"] += record["epoch_seconds"][-1]
            accuracy = float(np.mean(runner.predict_proba(X_test).argmax(axis=1) == y_test))
            record["curve"].append([epoch, round(record["seconds"], 4), accuracy])
            for threshold in ACCURACY_THRESHOLDS:
                if accuracy >= threshold and str(threshold) not in record["reached"]:
                    record["reached"][str(threshold)] = {"epoch": epoch,
                                                         "seconds": record["seconds"]}
    for record in state.values():
        record["best_accuracy"] = max(a for _, _, a in record["curve"])
        record["epochs_run"] = len(record["curve"])
        record["median_epoch_s"] = statistics.median(record["epoch_seconds"])
        for reached in record["reached"].values():
            reached["epochs_x_median_s"] = reached["epoch"] * record["median_epoch_s"]
    return {"max_epochs": max_epochs, "systems": state}


# ---------------------------------------------------------------------------------------------
# Peak memory, in a child process per system
# ---------------------------------------------------------------------------------------------

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


def bench_memory(workload, systems, threads, log):
    import fastmlp
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(fastmlp.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    # Fixed glibc thresholds: every large block is its own mapping, returned when freed. Left
    # dynamic, glibc keeps the data generator's freed chunks resident and the fit reuses them
    # unseen by the high-water mark.
    env["MALLOC_MMAP_THRESHOLD_"] = env["MALLOC_TRIM_THRESHOLD_"] = str(128 * 1024)
    results = {}
    for system in systems:
        log(f"  memory: one {workload.name} epoch of {system} in a child process")
        command = [sys.executable, "-m", "fastmlp._bench", "--memory-child", system,
                   json.dumps(asdict(workload)), "--threads", str(threads)]
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            results[system] = {"error": out.stderr.strip().splitlines()[-1:]}
            continue
        record = json.loads(out.stdout.strip().splitlines()[-1])
        peak = record["peak_rss"] or record["ru_maxrss"]
        record["fit_added"] = peak - record["baseline_rss"]
        results[system] = record
    results["fastmlp_estimate"] = fastmlp_fit_estimate(workload)
    return results


# ---------------------------------------------------------------------------------------------
# Machine, targets and the table
# ---------------------------------------------------------------------------------------------

def machine_info(threads):
    from threadpoolctl import threadpool_info
    import scipy
    import sklearn
    import fastmlp
    from fastmlp._runtime import OPENMP_ENABLED
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
                "fastmlp": fastmlp.__version__}
    try:
        import torch
        versions["torch"] = torch.__version__
    except ImportError:
        versions["torch"] = "absent"
    try:
        here = os.path.dirname(os.path.abspath(fastmlp.__file__))
        versions["fastmlp_commit"] = subprocess.run(
            ["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True,
            text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    forced = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                         "OMP_NUM_THREADS") if k in os.environ}
    return {"cpu": cpu, "isa": isa, "logical_cpus": os.cpu_count(),
            "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count(), "threads": threads, "blas": blas,
            "fastmlp_openmp": OPENMP_ENABLED, "environment": forced,
            "versions": versions, "load_average_start": list(os.getloadavg())}


def check_targets(results):
    """The issue's targets against this run: [(target, measured, PASS/FAIL/n/a), ...]."""
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
        allowed = memory["fastmlp_estimate"]["total"] + MEMORY_SLACK_MIB * 2 ** 20
        checks.append((label, f"+{added / 2**20:.1f} MiB (estimate "
                              f"{memory['fastmlp_estimate']['total'] / 2**20:.1f} MiB "
                              f"+ {MEMORY_SLACK_MIB} slack; data "
                              f"{memory['fastmlp']['data_bytes'] / 2**20:.0f} MiB)",
                       "PASS" if added <= allowed else "FAIL"))
    else:
        checks.append((label, "not measured", "n/a"))
    return checks


def _row(cells, widths):
    return "  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                     for i, (c, w) in enumerate(zip(cells, widths)))


def format_report(report):
    """The whole report as plain text (also what RESULTS.md quotes)."""
    lines = []
    m = report["machine"]
    lines.append(f"machine: {m['cpu']} ({m['isa']}), {m['usable_cpus']} usable of "
                 f"{m['logical_cpus']} logical CPUs; {m['threads']} threads; "
                 f"load average at start {m['load_average_start'][0]:.2f}"
                 + (f", at end {m['load_average_end'][0]:.2f}" if "load_average_end" in m
                    else ""))
    lines.append("BLAS: " + "; ".join(m["blas"]))
    lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()))
    if m["environment"]:
        lines.append("environment: " + ", ".join(f"{k}={v}" for k, v in
                                                  m["environment"].items()))
        if "OPENBLAS_CORETYPE" in m["environment"]:
            lines.append("WARNING: OPENBLAS_CORETYPE forces OpenBLAS's kernel; for numbers of "
                         "this machine run with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`")
    lines.append(f"command: {report['command']}")
    results = report["results"]
    widths = (12, 8, 4, 10, 10, 8, 9, 9)
    header = ("workload", "system", "n", "median s", "samples/s", "GFLOP/s", "x fastmlp",
              "CPU/wall")
    if results.get("fit") or results.get("predict"):
        lines.append("")
        lines.append("Training: seconds per epoch (median of n epochs after a warm-up epoch); "
                     "GFLOP/s = 6 x weights x samples / s. Inference: median seconds per "
                     "predict_proba call; GFLOP/s = 2 x weights x rows / s. "
                     "'x fastmlp' = system's time / fastmlp's (above 1: fastmlp is faster); "
                     "CPU/wall = the process's CPU seconds per wall second.")
        lines.append(_row(header, widths))
        sections = list(results.get("fit", {}).items()) + list(results.get("predict",
                                                                           {}).items())
        for name, rows in sections:
            base = rows.get("fastmlp", {}).get("median_s")
            for i, (system, r) in enumerate(rows.items()):
                ratio = f"{r['median_s'] / base:.2f}" if base else "-"
                lines.append(_row((name if i == 0 else "", system, r["n"],
                                   f"{r['median_s']:.4g}", f"{r['samples_per_s']:.4g}",
                                   f"{r['gflops']:.1f}", ratio,
                                   f"{r['cpu_per_wall']:.2f}" if "cpu_per_wall" in r else "-"),
                                  widths))
    if "gemm" in results:
        g = results["gemm"]
        lines.append("")
        lines.append("GEMM ceiling (scipy.linalg.blas, best of 5): " + "; ".join(
            f"{k} {v['best_gflops']:.0f} GFLOP/s (all threads "
            + ", ".join(f"{n}: {x:.0f}" for n, x in v["by_size"].items())
            + f"; one thread {v['one_thread_gflops']:.0f})" for k, v in g.items()))
        lines.append("  the ceiling is the larger of the all-thread best and threads x the "
                     "one-thread best (a competing process lowers the first)")
    if "threads" in results:
        lines.append("")
        lines.append("Thread scaling on mnist (median s/epoch by thread count):")
        for system, r in results["threads"].items():
            lines.append(f"  {system:8s} " + ", ".join(
                f"{n} thread(s) {v['median_s']:.3f} s (n={v['n']})"
                for n, v in r["by_threads"].items()) + f"; speed-up {r['speedup']:.2f}x")
    if "memory" in results:
        mem = results["memory"]
        lines.append("")
        lines.append("Peak memory of one mnist epoch, each system in its own process "
                     "(RSS high-water mark reset after data, imports and a tiny warm-up fit):")
        for system, r in mem.items():
            if system == "fastmlp_estimate":
                continue
            if "error" in r:
                lines.append(f"  {system:8s} failed: {r['error']}")
                continue
            peak = r["peak_rss"] or r["ru_maxrss"]
            lines.append(f"  {system:8s} data {r['data_bytes'] / 2**20:7.1f} MiB; RSS before "
                         f"the fit {r['baseline_rss'] / 2**20:7.1f} MiB, peak {peak / 2**20:7.1f}"
                         f" MiB: the fit added {r['fit_added'] / 2**20:6.1f} MiB")
        e = mem["fastmlp_estimate"]
        lines.append(f"  fastmlp's own arrays, by design: parameters+gradient+Adam "
                     f"{e['params'] / 2**20:.1f} MiB, labels+index {e['labels'] / 2**20:.1f} "
                     f"MiB, batch buffers {e['batch'] / 2**20:.1f} MiB")
    if "accuracy" in results:
        acc = results["accuracy"]
        lines.append("")
        lines.append(f"Time to accuracy, MNIST test set split 8,000 / 2,000, the 8,000 with "
                     f"their one-pixel shifts (40,000 rows), (256, 128), "
                     f"batch 256, Adam; training seconds (scoring excluded), at most "
                     f"{acc['max_epochs']} epochs:")
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
    if results.get("load_average"):
        lines.append("")
        lines.append("1-minute load average as each workload started (2 cores; above ~2 other "
                     "processes were competing): " + ", ".join(
                         f"{k} {v:.1f}" for k, v in results["load_average"].items()))
    if report.get("targets"):
        lines.append("")
        lines.append("Targets:")
        for label, measured, verdict in report["targets"]:
            lines.append(f"  [{verdict:4s}] {label}: {measured}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

def build_parser(prog=None):
    parser = argparse.ArgumentParser(
        prog=prog, description="Time fastmlp, scikit-learn's MLP and a PyTorch loop side by side "
        "(one process, same data, interleaved repeats) and check the project's speed targets.")
    parser.add_argument("--workloads", default=",".join(ALL_WORKLOADS),
                        help="comma-separated, from: " + ", ".join(ALL_WORKLOADS)
                        + " (default: all)")
    parser.add_argument("--systems", default=",".join(SYSTEMS),
                        help="comma-separated, from: fastmlp, sklearn, torch (torch is skipped "
                        "when not installed)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed epochs per system and workload, after one warm-up epoch")
    parser.add_argument("--budget", type=float, default=30.0,
                        help="seconds per system and workload after which a system stops "
                        "repeating (it still gets 3 epochs)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for every system (default: all usable CPUs)")
    parser.add_argument("--mnist-dir", default=os.path.join("..", "shared", "data", "mnist10k"),
                        help="folder with t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz"
                        " (relative to the current directory)")
    parser.add_argument("--accuracy-epochs", type=int, default=30,
                        help="epochs at most for the time-to-accuracy run")
    parser.add_argument("--json", metavar="FILE", help="also save every number as JSON")
    parser.add_argument("--quick", action="store_true",
                        help="a short run: a tenth of the samples, 3 repeats, small GEMMs")
    parser.add_argument("--memory-child", nargs=2, metavar=("SYSTEM", "WORKLOAD"),
                        help=argparse.SUPPRESS)
    return parser


def _split(text, allowed, what):
    items = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in items if s not in allowed]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (choose from "
                         f"{', '.join(allowed)})")
    return items


def run(args, log):
    threads = args.threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                               else os.cpu_count())
    workloads = _split(args.workloads, ALL_WORKLOADS, "workload")
    systems = _split(args.systems, SYSTEMS, "system")
    skipped = []
    if "torch" in systems and not torch_available():
        systems.remove("torch")
        skipped.append("torch (not installed: pip install 'fastmlp[bench]')")
    scale = 0.1 if args.quick else 1.0
    repeats = min(args.repeats, 3) if args.quick else args.repeats
    budget = args.budget
    report = {"command": " ".join([os.path.basename(sys.argv[0]) or "python"] + sys.argv[1:]),
              "argv": sys.argv, "machine": machine_info(threads), "skipped": skipped,
              "config": {"workloads": workloads, "systems": systems, "repeats": repeats,
                         "budget_s": budget, "scale": scale}, "results": {}}
    results = report["results"]
    for line in skipped:
        log(f"skipped: {line}")
    mnist = FIT_WORKLOADS["mnist"].scaled(scale)
    with threadpool_limits(threads):
        for name, workload in FIT_WORKLOADS.items():
            wants_predict = name == "mnist" and {"predict-bulk", "predict-one"} & set(workloads)
            if name not in workloads and not wants_predict:
                continue
            workload = workload.scaled(scale)
            results.setdefault("load_average", {})[name] = round(os.getloadavg()[0], 2)
            log(f"{name}: {workload.n_samples} x {workload.n_features}, hidden "
                f"{workload.hidden}, batch {workload.batch_size}, {workload.dtype}")
            if name in workloads:
                fit, runners, X = bench_fit(workload, systems, threads, repeats, budget, log)
                results.setdefault("fit", {})[name] = fit
            else:  # inference alone: train each network one epoch first
                X, y = make_blobs(workload.n_samples, workload.n_features, workload.dtype)
                runners = {s: make_system(s, workload, threads) for s in systems}
                for runner in runners.values():
                    runner.fit_epoch(X, y)
            if wants_predict:
                results["predict"] = bench_predict(workload, runners, X, workloads, repeats,
                                                   budget, log)
            del runners, X
            gc.collect()
            if name == "mnist" and "threads" in workloads:
                results["threads"] = bench_threads(mnist, systems, threads, repeats, budget,
                                                   log)
                gc.collect()
        if "threads" in workloads and "threads" not in results:
            results["threads"] = bench_threads(mnist, systems, threads, repeats, budget, log)
        if "gemm" in workloads:
            results["gemm"] = bench_gemm((1024, 2048) if args.quick else (2048, 4096), threads,
                                         log)
        if "memory" in workloads:
            results["memory"] = bench_memory(mnist, systems, threads, log)
        if "accuracy" in workloads:
            if os.path.isdir(args.mnist_dir):
                results["accuracy"] = bench_accuracy(
                    args.mnist_dir, systems, threads,
                    min(args.accuracy_epochs, 3) if args.quick else args.accuracy_epochs, log)
            else:
                skipped.append(f"accuracy (no MNIST folder at {os.path.abspath(args.mnist_dir)})")
                log(f"skipped: {skipped[-1]}")
    report["machine"]["load_average_end"] = list(os.getloadavg())
    report["targets"] = check_targets(results)
    return report


def main(argv=None, prog=None):
    """Run the benchmarks named on the command line; print the table; return 0."""
    args = build_parser(prog).parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child[0], args.memory_child[1], args.threads or 1)
        return 0

    def log(message):
        print(message, file=sys.stderr, flush=True)

    report = run(args, log)
    text = format_report(report)
    print(text, flush=True)
    if report["skipped"]:
        print("skipped: " + "; ".join(report["skipped"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**report, "text": text}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
