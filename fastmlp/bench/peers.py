"""The compiled peers — torch.compile, JAX + optax, Keras 3 on JAX, ONNX Runtime — each timed in
a child process of its own.

Design
------
A user who wants the fastest MLP on a CPU also tries a jit-compiled step, so these are the peers
to beat. Each runs in a fresh process (`python -m fastmlp.bench --peer-child SYSTEM SPEC`): their
runtimes (XLA's thread pool, inductor's compiled kernels, Keras's backend, chosen by
KERAS_BACKEND before the import) must not share a process with each other or with the
in-process systems, and a peer that crashes or cannot compile takes only its own row with it.
The child makes the same arrays (`make_blobs` from the same seed) and trains one warm-up epoch
(compilation included). A training peer then serves epochs (PeerEpochs): the parent asks for
one epoch at a time, in turn with the in-process systems' epochs (timing.bench_fit), and the
child replies with that epoch's wall and CPU seconds, timed by itself, and its mean training
loss. Why in turn: the ratio between two systems timed minutes apart on a shared machine is
the machine's as much as theirs. With every peer timed after the in-process systems, one build
read 1.20x Keras's epoch on `mnist-f64` (fastmlp 0.481 s, Keras 0.579, JAX 0.672) and, 14
minutes later, 1.38x Keras's and 1.28x JAX's (0.415, 0.570, 0.531: 2-core AMD EPYC VM,
benchmarks/compare.py); round by round, a burst of load lands on every system alike, as it
already did for the in-process ones. Idle between its epochs, a child blocks on its stdin and
takes no CPU, and the pause before every timed call (timing.SETTLE_SECONDS) lets its
runtime's threads stop spinning before the next system is timed. ONNX Runtime's predictions
stay in one child run after the others, each bulk call after the same pause as every
in-process system's (timed back to back, its calls found its threads spinning and ran in
0.78x the time they take from a pause, against fastmlp's 0.92x: benchmarks/bulk_pause.py),
and one-row predictions back to back, as for every system (alternating systems call by call
would have each evict the others' weights from the cache). Every peer trains the in-process
systems' problem: ReLU hidden layers, softmax cross-entropy, Adam(lr=1e-3, eps=1e-8),
scikit-learn's L2 penalty alpha=1e-4 (0.5 x alpha x sum of squared weights / batch rows, added
to each batch's loss), shuffled mini-batches of the workload's size, in its dtype; the losses in
the table show it.

Each peer is optional: `unavailable(system)` says in one line why it cannot run (a package
missing, no C++ compiler for inductor) without importing anything heavy, so `fastmlp bench`
stays fast where none is installed.
"""
import importlib.util
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict

import numpy as np

from .timing import SETTLE_SECONDS, OwnTiming, TaskFailed
from .workloads import (
    N_CLASSES, PREDICT_BULK_ROWS, PREDICT_ONE_CALLS, Workload, make_blobs,
)

FIT_PEERS = ("torch-compile", "jax", "keras")
PREDICT_PEERS = ("onnxruntime",)
PEERS = FIT_PEERS + PREDICT_PEERS
ALPHA = 1e-4
INSTALL = "pip install 'fastmlp[bench]'"
_NEEDS = {"torch-compile": ("torch",), "jax": ("jax", "jaxlib", "optax"),
          "keras": ("keras", "jax", "jaxlib"), "onnxruntime": ("onnxruntime", "skl2onnx")}


def unavailable(system):
    """Why `system` cannot run here, in one line, or None when it can."""
    missing = [m for m in _NEEDS[system] if importlib.util.find_spec(m) is None]
    if missing:
        return f"{system} ({', '.join(missing)} not installed: {INSTALL})"
    if system == "torch-compile" and not shutil.which(os.environ.get("CXX", "g++")):
        return "torch-compile (inductor, its default backend, needs a C++ compiler: none found)"
    return None


def _child_env(system, threads, dtype):
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    env["KERAS_BACKEND"] = "jax"
    if dtype == "float64":  # without it JAX, and so Keras on JAX, computes float64 in float32
        env["JAX_ENABLE_X64"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if threads == 1:  # XLA's CPU client otherwise sizes its pool to the machine
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false "
                            "intra_op_parallelism_threads=1").strip()
    return env


def run_child(system, spec, threads, timeout=1800):
    """Start the child for `system` with `spec` (a dict); its JSON record, or {"error": line}."""
    command = [sys.executable, "-m", "fastmlp.bench", "--peer-child", system, json.dumps(spec),
               "--threads", str(threads)]
    try:
        env = _child_env(system, threads, spec["workload"]["dtype"])
        out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout,
                             check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"no result within {timeout} s"}
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        return {"error": _why_failed(out.stderr, out.returncode)}
    return json.loads(lines[-1])


def _why_failed(stderr, status):
    """A failed child's reason in one line: its stderr's last line, or its exit status."""
    errors = [line for line in stderr.splitlines() if line.strip()]
    return (errors[-1] if errors else f"exit status {status}")[:300]


REPLY = "fastmlp-peer: "  # how a serving child's replies begin on its stdout (a framework
                          # may print lines of its own there)


class PeerFailed(TaskFailed):
    """A fit peer's child process could not start, compile, or go on: the one line why."""


class PeerEpochs:
    """A fit peer's child process, serving epochs: it makes the workload's data, builds the
    peer's trainer and trains one warm-up epoch (compiling) as it starts; then each `epoch()`
    has it train and time one more and returns its seconds (timing.OwnTiming: time_interleaved
    takes them as they are), so that its epochs go in turn with the in-process
    systems' (timing.bench_fit). `final_loss` is the last epoch's mean training loss."""

    def __init__(self, system, workload, threads, timeout=1800):
        self.system, self.timeout = system, timeout
        self.warmup_s = self.final_loss = None
        self._buffer = b""
        command = self._command(system, workload, threads)
        # stderr to a file, not a pipe that nobody reads while the child works (a full pipe
        # would stop it); its last line is the reason when the child fails.
        self._stderr = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            command, env=_child_env(system, threads, workload.dtype), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._stderr)

    @staticmethod
    def _command(system, workload, threads):
        return [sys.executable, "-m", "fastmlp.bench", "--peer-child", system,
                json.dumps({"workload": asdict(workload)}),
                "--threads", str(threads)]

    def wait_ready(self):
        """Wait for the child's warm-up epoch; PeerFailed if it could not get there."""
        self.warmup_s = self._reply()["warmup_s"]

    def epoch(self):
        try:
            self._process.stdin.write(b"epoch\n")
            self._process.stdin.flush()
        except OSError:  # the child is gone; _reply says why
            pass
        reply = self._reply()
        self.final_loss = reply["loss"]
        return OwnTiming(reply["wall"], reply["cpu"])

    def close(self):
        """End the child (its stdin's end is its cue; killed if it has not ended in 30 s)."""
        try:
            self._process.stdin.close()
        except OSError:  # a child that died left a broken pipe
            pass
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process.stdout.close()
        self._stderr.close()

    def _reply(self):
        """The child's next reply (a dict), read from its stdout by the file descriptor (a
        buffered reader could hold a reply that select then never reports)."""
        deadline = time.monotonic() + self.timeout
        fd = self._process.stdout.fileno()
        while True:
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([fd], [], [], left)[0]:
                    self._process.kill()
                    raise PeerFailed(f"no result within {self.timeout} s")
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise PeerFailed(self._why_ended())
                self._buffer += chunk
            line, self._buffer = self._buffer.split(b"\n", 1)
            text = line.decode(errors="replace")
            if text.startswith(REPLY):
                return json.loads(text[len(REPLY):])

    def _why_ended(self):
        status = self._process.wait()
        self._stderr.seek(0)
        return _why_failed(self._stderr.read().decode(errors="replace"), status)


def start_fit_peers(workload, systems, threads, log):
    """The fit peers in `systems`, each warmed up in its child: ({system: PeerEpochs},
    {system: {"error": why}} for those that could not start). The children warm up (and
    compile) side by side, before anything is timed."""
    started = {}
    for system in systems:
        log(f"  {workload.name}: {system} in a child process (warm-up epoch compiles)")
        started[system] = PeerEpochs(system, workload, threads)
    failed = {}
    for system, peer in list(started.items()):
        try:
            peer.wait_ready()
        except PeerFailed as error:
            peer.close()
            del started[system]
            failed[system] = {"error": str(error)}
    return started, failed


def bench_peer_fit(workload, system, threads, repeats, budget, log):
    """Epochs of `workload` by one fit peer alone in its child: a summary like
    timing.summarize's, with the final loss and the warm-up (compiling) epoch's seconds; or
    {"error": ...}. (`fastmlp bench` times the peers in turn with the other systems instead:
    timing.bench_fit.)"""
    from .timing import bench_fit
    serving, failed = start_fit_peers(workload, [system], threads, log)
    if failed:
        return failed[system]
    try:
        results, _, _ = bench_fit(workload, [], threads, repeats, budget, log, peers=serving)
    finally:
        serving[system].close()
    return results[system]


def bench_peer_predict(workload, system, threads, repeats, kinds, log):
    """predict-bulk / predict-one of ONNX Runtime running fastmlp's exported network (trained
    one epoch on `workload` in the child): {kind: summary}, or {"error": ...}."""
    from .timing import summarize
    log(f"  predict: {system} in a child process")
    record = run_child(system, {"workload": asdict(workload), "repeats": repeats,
                                "kinds": sorted(kinds)}, threads)
    if "error" in record:
        return record
    results = {}
    if "predict-bulk" in record:
        rows = min(PREDICT_BULK_ROWS, workload.n_samples)
        results["predict-bulk"] = summarize(record["predict-bulk"], rows,
                                            2 * workload.n_weights * rows)
    if "predict-one" in record:
        results["predict-one"] = summarize(record["predict-one"], 1, 2 * workload.n_weights)
    return results


# ---- in the child ----------------------------------------------------------------------------

def peer_child(system, spec_json, threads):
    """Runs in a fresh process. A fit peer serves epochs (PeerEpochs, the parent): after its
    warm-up epoch it replies with the warm-up's seconds, then for each line "epoch" on stdin it
    trains one more and replies with its wall and CPU seconds and mean training loss, until
    stdin ends. ONNX Runtime times its predictions and prints one JSON line."""
    spec = json.loads(spec_json)
    fields = spec["workload"]
    workload = Workload(**{**fields, "hidden": tuple(fields["hidden"])})
    X, y = make_blobs(workload.n_samples, workload.n_features, workload.dtype)
    if system in PREDICT_PEERS:
        print(json.dumps(_onnxruntime_child(workload, X, y, threads, spec)))
        return
    if system == "keras":
        epoch = _keras_trainer(workload, X, y)
    else:
        epoch = _timed((_jax_trainer if system == "jax" else _torch_compile_trainer)(
            workload, X, y, threads))
    _, seconds, _ = epoch()
    _reply({"warmup_s": seconds})
    for line in sys.stdin:
        if line.strip() != "epoch":
            break
        loss, seconds, cpu = epoch()
        _reply({"wall": seconds, "cpu": cpu, "loss": loss})


def _reply(record):
    sys.stdout.write(REPLY + json.dumps(record) + "\n")
    sys.stdout.flush()


def _timed(epoch):
    """An epoch function that returns its mean training loss, as one that returns (loss, wall
    seconds, CPU seconds of the process)."""
    def timed():
        start, cpu = time.perf_counter(), time.process_time()
        loss = epoch()
        return loss, time.perf_counter() - start, time.process_time() - cpu

    return timed


def _check_dtype(dtype, workload):
    """A peer must compute in the workload's dtype (JAX without x64 turns float64 into float32
    silently): fail the peer, and so leave it out of the table, rather than time another
    problem."""
    if str(dtype) != workload.dtype:
        raise RuntimeError(f"computes in {dtype}, not the workload's {workload.dtype}")


def _torch_compile_trainer(workload, X, y, threads):
    """The in-process PyTorch loop with the model and the optimizer's step compiled by
    torch.compile (inductor, CPU)."""
    from .systems import TorchSystem
    system = TorchSystem(workload, compile=True)
    system.set_threads(threads)

    def epoch():
        system.fit_epoch(X, y)
        return system.final_loss

    return epoch


def _jax_trainer(workload, X, y, threads, seed=0):
    """One jax.jit step (forward, loss, gradient, optax Adam update) with donated parameters and
    optimizer state; the data on the device once, each batch gathered inside the step."""
    import jax
    if workload.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import optax

    dtype = jnp.dtype(workload.dtype)
    widths = (workload.n_features, *workload.hidden, N_CLASSES)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(widths) - 1)
    params = []
    for key, fan_in, fan_out in zip(keys, widths[:-1], widths[1:]):
        bound = np.sqrt(6.0 / (fan_in + fan_out))  # scikit-learn's Glorot-uniform bound
        params.append((jax.random.uniform(key, (fan_in, fan_out), dtype, -bound, bound),
                       jnp.zeros(fan_out, dtype)))
    optimizer = optax.adam(1e-3, eps=1e-8)
    state = {"params": params, "opt": optimizer.init(params)}

    def loss_fn(params, xb, yb):
        h = xb
        for W, b in params[:-1]:
            h = jax.nn.relu(h @ W + b)
        logits = h @ params[-1][0] + params[-1][1]
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()
        return loss + 0.5 * ALPHA * sum(jnp.sum(W * W) for W, _ in params) / xb.shape[0]

    def step(params, opt_state, X, y, index):
        xb, yb = jnp.take(X, index, axis=0), jnp.take(y, index, axis=0)
        loss, grads = jax.value_and_grad(loss_fn)(params, xb, yb)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss * index.shape[0]

    _check_dtype(params[0][0].dtype, workload)
    step = jax.jit(step, donate_argnums=(0, 1))
    Xd, yd = jax.device_put(X), jax.device_put(y.astype(np.int32))
    rng = np.random.default_rng(seed)
    n, batch = X.shape[0], workload.batch_size

    def epoch():
        order = rng.permutation(n).astype(np.int32)
        losses = []
        for start in range(0, n, batch):
            state["params"], state["opt"], loss = step(state["params"], state["opt"], Xd, yd,
                                                       order[start:start + batch])
            losses.append(loss)
        return float(jnp.sum(jnp.stack(losses))) / n  # waits for the last step

    return epoch


def _keras_trainer(workload, X, y, seed=0):
    """Keras 3 on JAX (KERAS_BACKEND=jax, set by the parent): each epoch one model.fit of one
    epoch, timed by a callback from the epoch's beginning to its end (so that what fit() does
    around it, once per call, is not counted: one fit of all the epochs would do it once);
    returns (loss, wall, CPU seconds). The train function is compiled in the first epoch and
    kept by the model."""
    import keras

    keras.utils.set_random_seed(seed)
    keras.backend.set_floatx(workload.dtype)
    # Keras adds l2 x sum(W^2) once per batch; scikit-learn 0.5 x alpha x sum(W^2) / batch rows
    l2 = keras.regularizers.L2(0.5 * ALPHA / workload.batch_size)
    layers = [keras.Input((workload.n_features,), dtype=workload.dtype)]
    layers += [keras.layers.Dense(h, activation="relu", kernel_regularizer=l2)
               for h in workload.hidden]
    layers.append(keras.layers.Dense(N_CLASSES, kernel_regularizer=l2))
    model = keras.Sequential(layers)
    model.compile(optimizer=keras.optimizers.Adam(1e-3, epsilon=1e-8),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    _check_dtype(model.layers[0].kernel.value.dtype, workload)
    timed = {}

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            timed["start"], timed["cpu"] = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            timed["wall"] = time.perf_counter() - timed["start"]
            timed["cpu"] = time.process_time() - timed["cpu"]

    def epoch():
        history = model.fit(X, y, batch_size=workload.batch_size, epochs=1, shuffle=True,
                            verbose=0, callbacks=[EpochTimer()])
        return float(history.history["loss"][-1]), timed["wall"], timed["cpu"]

    return epoch


def onnx_predict_proba(model, X, threads):
    """A fitted fastmlp estimator exported by fastmlp's ONNX converter (probabilities as a plain
    tensor, no ZipMap) and run by an ONNX Runtime session of `threads` intra-op threads (0: its
    default): its predict_proba. X: rows of the model's input (the first gives the type)."""
    import onnxruntime
    from skl2onnx import to_onnx

    from .._onnx import register_onnx_converters

    register_onnx_converters()
    graph = to_onnx(model, X[:1], options={"zipmap": False})
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(graph.SerializeToString(), options,
                                           providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    output = [o.name for o in session.get_outputs() if "prob" in o.name][:1] or None

    def predict_proba(rows):
        return session.run(output, {name: rows})
    return predict_proba


def _onnxruntime_child(workload, X, y, threads, spec):
    """fastmlp's network, trained one epoch, run by ONNX Runtime (onnx_predict_proba), timed
    as bench_predict times the in-process systems."""
    from .systems import EstimatorSystem

    runner = EstimatorSystem("fastmlp", workload)
    runner.fit_epoch(X, y)
    predict_proba = onnx_predict_proba(runner.model, X, threads)
    record = {}
    if "predict-bulk" in spec["kinds"]:
        bulk = np.ascontiguousarray(X[:PREDICT_BULK_ROWS])
        predict_proba(bulk)
        record["predict-bulk"] = []
        for _ in range(max(spec["repeats"], 5)):
            # the pause bench_predict leaves before each in-process system's bulk call: back
            # to back, ONNX Runtime's calls found its threads spinning and the caches warm
            # from its own call before, and were timed against fastmlp's from a pause
            time.sleep(SETTLE_SECONDS)
            start = time.perf_counter()
            predict_proba(bulk)
            record["predict-bulk"].append(time.perf_counter() - start)
    if "predict-one" in spec["kinds"]:
        rows = [X[i:i + 1] for i in range(PREDICT_ONE_CALLS)]
        for row in rows[:20]:
            predict_proba(row)
        record["predict-one"] = []
        for row in rows:
            start = time.perf_counter()
            predict_proba(row)
            record["predict-one"].append(time.perf_counter() - start)
    return record
