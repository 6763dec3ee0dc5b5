"""What runs on the Dask workers: one partition's arithmetic by the compiled engine.

Design
------
Every function here is a pure function of its arguments (θ, the optimizer's state, one
partition's rows, the round's numbers): Dask may run it on any worker, twice, or again after
the worker that held its result died, and the bits are the same. Nothing is kept on a worker
between rounds but the persisted partitions themselves, which the scheduler can recompute from
the graph; so a lost worker costs time, never a different model.

Sums, not means. A partition returns its *weighted sums* (loss x weight, gradient x weight, the
weight), or for local steps its θ and state times its rows; `tree_sum` adds two of them. The
client builds a fixed binary tree of `tree_sum` over the partitions in their order, so the
float additions are the same whatever worker finishes first.

Threads. A worker's engine uses the worker's own threads (its `nthreads`), shared among the
tasks it is running at that moment, never the host's cores: a host with several workers would
otherwise run cores x workers threads. (The engine's results do not depend on its thread count,
so this choice moves no bit.)
"""

import copy

import numpy as np

from fastmlp import _engine
from fastmlp._runtime import batch_schedule, effective_n_threads, single_threaded_blas
from fastmlp._validation import _engine_input

# The engine's own chunking for a full-batch gradient (as fastmlp/_multilayer_perceptron.py's
# _LBFGS_CHUNK_ROWS), so that one partition holding all the data adds in the same order as a
# single-machine fit.
from fastmlp._multilayer_perceptron import _LBFGS_CHUNK_ROWS


def worker_threads():
    """This worker's threads, shared among the tasks running on it (1 at least)."""
    try:
        from distributed import get_worker
        worker = get_worker()
    except (ImportError, ValueError):  # not on a worker (a test calling directly)
        return effective_n_threads()
    running = max(1, worker.state.executing_count)
    return max(1, worker.state.nthreads // running)


def _network(model):
    """The engine's Network for the model's geometry. Built on a copy: the shared model must
    stay free of the (unpicklable) cached Network, since Dask may move it between workers."""
    return copy.copy(model)._network()


def prepare_block(X, dtype):
    """One block of X as the engine reads it (C-contiguous or CSR, in the compute dtype)."""
    return _engine_input(X, dtype)


def binarize_block(y, binarizer, dtype):
    """One block of labels as the classifier's targets (0/1 columns), in the compute dtype."""
    Y = binarizer.transform(y)
    return np.ascontiguousarray(Y, dtype=dtype).reshape(len(y), -1)


def target_block(y, dtype):
    """One block of regression targets as a C-contiguous 2-D array."""
    return np.ascontiguousarray(y, dtype=dtype).reshape(len(y), -1)


def _total_weight(w, n_rows):
    # The engine's divisor: the weights added one after another in double (or the row count).
    if w is None:
        return float(n_rows)
    return float(np.add.accumulate(w.astype(np.float64))[-1]) if n_rows else 0.0


def loss_gradient_sums(model, theta, X, Y, w, schedule_cpus):
    """(Σ weight x loss, Σ weight x gradient, Σ weight) of one partition's rows at theta,
    without the L2 term (the model's alpha is 0; the client adds it once, over the total
    weight); the blocks cut for the client's schedule class (the chunk, so whether it is one
    block, is this partition's)."""
    n_rows = X.shape[0]
    weight = _total_weight(w, n_rows)
    grad = np.zeros_like(theta)
    if n_rows == 0:
        return 0.0, grad, 0.0
    chunk = min(n_rows, _LBFGS_CHUNK_ROWS)
    trainer = _engine.Trainer(_network(model), chunk, X.shape[1], theta.dtype,
                              not isinstance(X, np.ndarray),
                              schedule_cpus=batch_schedule(chunk, theta.shape[0], schedule_cpus))
    weights = w if w is not None else np.empty(0, theta.dtype)
    with single_threaded_blas():
        loss = trainer.loss_gradient(theta, grad, X, Y, weights, worker_threads())
    return loss * weight, grad * theta.dtype.type(weight), weight


def round_rows(n_rows, seed, partition, epoch, first_batch, n_batches, batch_size, shuffle):
    """The rows of one partition's local steps in one round: its epoch's order (a permutation
    drawn from (seed, partition, epoch) when shuffling), batches first_batch.. of it."""
    if shuffle:
        rng = np.random.default_rng([seed, partition, epoch])
        order = rng.permutation(n_rows).astype(np.intp)
    else:
        order = np.arange(n_rows, dtype=np.intp)
    start = first_batch * batch_size
    return np.ascontiguousarray(order[start:min(n_rows, start + n_batches * batch_size)])


def local_steps(model, shared, X, Y, w, rows_args, batch_size, trainer_args):
    """One partition's round of local SGD: from the shared (θ, optimizer), mini-batch steps
    over the round's rows; returns its contribution to the row-weighted average."""
    theta, optimizer = shared
    theta = theta.copy()                   # the shared objects may be another task's too
    optimizer = copy.deepcopy(optimizer)
    rows = round_rows(X.shape[0], *rows_args)
    # The engine's epoch runs over every row of what it is given: give it the round's rows, in
    # the round's order (a copy of sync_every batches, which the engine would gather anyway).
    X, Y = X[rows], np.ascontiguousarray(Y[rows])
    w = np.ascontiguousarray(w[rows]) if w is not None else None
    grad = np.empty_like(theta)
    trainer = _engine.Trainer(_network(model), batch_size, X.shape[1], theta.dtype,
                              not isinstance(X, np.ndarray), **trainer_args)
    weights = w if w is not None else np.empty(0, theta.dtype)
    no_order = np.empty(0, dtype=np.intp)
    state_1, state_2, state_3 = optimizer.state
    spec = optimizer.spec()
    with single_threaded_blas():
        loss_sum = trainer.epoch(theta, grad, state_1, state_2, X, Y, weights, no_order,
                                 batch_size, spec, worker_threads(), state_3=state_3)
    optimizer.took_steps(spec)
    n = rows.shape[0]
    scale = theta.dtype.type(n)
    return {
        "rows": n,
        "loss_sum": loss_sum,
        "theta": theta * scale,
        "state": [s * scale if s is not None and len(s) else s for s in optimizer.state],
        "t": optimizer.t,
        "mu_product": getattr(optimizer, "mu_product", None),
    }


def shared_value(value):
    """The round's θ (and optimizer), as a task's result that every partition reads."""
    return value


def tree_sum(a, b):
    """a + b for two partitions' (or subtrees') results; the later step count wins."""
    if isinstance(a, tuple):
        return a[0] + b[0], a[1] + b[1], a[2] + b[2]
    later = b if b["t"] > a["t"] else a
    return {
        "rows": a["rows"] + b["rows"],
        "loss_sum": a["loss_sum"] + b["loss_sum"],
        "theta": a["theta"] + b["theta"],
        "state": [x + y if x is not None and len(x) else x
                  for x, y in zip(a["state"], b["state"])],
        "t": later["t"],
        "mu_product": later["mu_product"],
    }


def predict_block(X, model, method):
    """model.<method>(X) on one block (the fitted plain fastmlp estimator)."""
    return getattr(model, method)(X)
