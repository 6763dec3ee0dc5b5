"""The compiled peers — torch.compile, JAX + optax, Keras 3 on JAX, ONNX Runtime — each timed in
a child process of its own.

Design
------
A user who wants the fastest MLP on a CPU also tries a jit-compiled step, so these are the peers
to beat. Each runs in a fresh process (`python -m fastmlp.bench --peer-child SYSTEM SPEC`): their
runtimes (XLA's thread pool, inductor's compiled kernels, Keras's backend, chosen by
KERAS_BACKEND before the import) must not share a process with each other or with the
in-process systems, and a peer that crashes or cannot compile takes only its own row with it.
The child makes the same arrays (`make_blobs` from the same seed), trains one warm-up epoch
(compilation included), then times epochs with the in-process rule (at least 3, or `repeats`,
then stop once the budget is spent) and prints one JSON line: wall and CPU seconds per epoch
and the last epoch's mean training loss. Every peer trains the in-process systems' problem:
ReLU hidden layers, softmax cross-entropy, Adam(lr=1e-3, eps=1e-8), scikit-learn's L2 penalty
alpha=1e-4 (0.5 x alpha x sum of squared weights / batch rows, added to each batch's loss),
shuffled mini-batches of the workload's size, in its dtype; the losses in the table show it.

Each peer is optional: `unavailable(system)` says in one line why it cannot run (a package
missing, no C++ compiler for inductor) without importing anything heavy, so `fastmlp bench`
stays fast where none is installed.
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict

import numpy as np

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
        errors = [line for line in out.stderr.strip().splitlines() if line.strip()]
        return {"error": (errors[-1] if errors else f"exit status {out.returncode}")[:300]}
    return json.loads(lines[-1])


def bench_peer_fit(workload, system, threads, repeats, budget, log):
    """Epochs of `workload` by one fit peer in its child: a summary like timing.summarize's,
    with the final loss and the warm-up (compiling) epoch's seconds; or {"error": ...}."""
    from .timing import summarize
    log(f"  {workload.name}: {system} in a child process (warm-up epoch compiles)")
    record = run_child(system, {"workload": asdict(workload), "repeats": repeats,
                                "budget": budget}, threads)
    if "error" in record:
        return record
    flops = 6 * workload.n_weights * workload.n_samples
    summary = summarize(record["times"], workload.n_samples, flops, record["cpu_times"])
    summary.update(final_loss=record["final_loss"], warmup_s=record["warmup_s"])
    return summary


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
    """Runs in a fresh process: time `system` on the spec's workload; print one JSON line."""
    spec = json.loads(spec_json)
    fields = spec["workload"]
    workload = Workload(**{**fields, "hidden": tuple(fields["hidden"])})
    X, y = make_blobs(workload.n_samples, workload.n_features, workload.dtype)
    if system in PREDICT_PEERS:
        record = _onnxruntime_child(workload, X, y, threads, spec)
    elif system == "keras":
        record = _keras_child(workload, X, y, spec)
    else:
        epoch = (_jax_trainer if system == "jax" else _torch_compile_trainer)(workload, X, y,
                                                                            threads)
        record = _time_epochs(epoch, spec["repeats"], spec["budget"])
    print(json.dumps(record))


def _time_epochs(epoch, repeats, budget):
    """One warm-up epoch, then epochs until `repeats`, or until the budget is spent and at least
    min(3, repeats) were timed. `epoch()` returns its mean training loss."""
    start = time.perf_counter()
    loss = epoch()
    record = {"warmup_s": time.perf_counter() - start, "times": [], "cpu_times": []}
    for _ in range(repeats):
        if len(record["times"]) >= min(3, repeats) and sum(record["times"]) > budget:
            break
        start, cpu = time.perf_counter(), time.process_time()
        loss = epoch()
        record["times"].append(time.perf_counter() - start)
        record["cpu_times"].append(time.process_time() - cpu)
    record["final_loss"] = loss
    return record


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


def _keras_child(workload, X, y, spec, seed=0):
    """Keras 3 on JAX (KERAS_BACKEND=jax, set by the parent): one model.fit of warm-up + repeats
    epochs, each epoch timed by a callback; the budget stops the fit as it does the others."""
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
    repeats, budget = spec["repeats"], spec["budget"]
    record = {"times": [], "cpu_times": []}

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start, self.cpu = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self.start
            if epoch == 0:
                record["warmup_s"] = seconds
            else:
                record["times"].append(seconds)
                record["cpu_times"].append(time.process_time() - self.cpu)
            if len(record["times"]) >= min(3, repeats) and sum(record["times"]) > budget:
                self.model.stop_training = True

    history = model.fit(X, y, batch_size=workload.batch_size, epochs=1 + repeats, shuffle=True,
                        verbose=0, callbacks=[EpochTimer()])
    record["final_loss"] = float(history.history["loss"][-1])
    _check_dtype(model.layers[0].kernel.value.dtype, workload)
    return record


def _onnxruntime_child(workload, X, y, threads, spec):
    """fastmlp's network, trained one epoch, exported by fastmlp's ONNX converter and run by
    ONNX Runtime (probabilities as a plain tensor, no ZipMap), timed as bench_predict times the
    in-process systems."""
    import onnxruntime
    from skl2onnx import to_onnx

    from .._onnx import register_onnx_converters
    from .systems import EstimatorSystem

    runner = EstimatorSystem("fastmlp", workload)
    runner.fit_epoch(X, y)
    register_onnx_converters()
    graph = to_onnx(runner.model, X[:1], options={"zipmap": False})
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(graph.SerializeToString(), options,
                                           providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    output = [o.name for o in session.get_outputs() if "prob" in o.name][:1] or None

    def predict_proba(rows):
        return session.run(output, {name: rows})

    record = {}
    if "predict-bulk" in spec["kinds"]:
        bulk = np.ascontiguousarray(X[:PREDICT_BULK_ROWS])
        predict_proba(bulk)
        record["predict-bulk"] = []
        for _ in range(max(spec["repeats"], 5)):
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
