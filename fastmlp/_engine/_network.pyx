# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Network: a perceptron's geometry (fastmlp/_engine/_geometry.pxd), built from names.

The estimator builds one per fitted model (cached) and hands it to the trainer and to predict;
`views` makes coefs_ and intercepts_ as numpy views into the flat parameter vector theta.
"""
import operator

import numpy as np

from fastmlp._engine._blas cimport BLAS_INT_MAX
from fastmlp._engine._kernels cimport FM_MAXOUT, fm_activation_needs_preactivation
from fastmlp._engine._stores cimport (
    StoreChoice, fetch_init, step_store_init, store_init, store_next,
)
from fastmlp._engine._threads cimport (
    ThreadChoice, choice_init, choice_next, choice_threads, choice_turns,
)

from fastmlp._engine.vocabulary import HIDDEN_ACTIVATIONS, OTHER_LOSSES, OUTPUT_LOSSES


cdef tuple store_state(const StoreChoice *c):
    """A _stores.pxd choice as Network's properties give it: (the coming batch's way, its
    cost a unit measured lately each way, 0 where not measured; batches timed, and of those
    the second way's)."""
    return (store_next(c), c.per_byte[0], c.per_byte[1], c.timed, c.streamed)


cdef int forced_way(way) except -2:
    """A force_* method's `way` as a choice's `forced`: -1 (None, chosen at run time), 0 or 1."""
    if way not in (None, 0, 1):
        raise ValueError(f"way must be None, 0 or 1, got {way!r}")
    return -1 if way is None else way


cdef class Network:
    """The geometry of a perceptron: widths, activations, loss and where each W and b live.

    Beyond scikit-learn's options: `loss` (the estimator's loss name; None or the output's
    canonical loss keep OUTPUT_LOSSES's pairing), the activations' parameters, `maxout_pieces`
    (k: a maxout hidden layer's W^l is fan_in x (fan_out k), column j k + p being piece p of unit
    j), huber's delta, the dropout rate on hidden units, and batch normalization of the hidden
    layers (`batch_norm`, with torch's `momentum` and `eps`)."""

    def __init__(self, layer_units, hidden_activation, out_activation, double alpha=0.0,
                 loss=None, *, double negative_slope=0.01, double elu_alpha=1.0,
                 double softplus_beta=1.0, double softplus_threshold=20.0,
                 Py_ssize_t maxout_pieces=2, double huber_delta=1.0, double dropout=0.0,
                 bint batch_norm=False, double batch_norm_momentum=0.1,
                 double batch_norm_eps=1e-5):
        units = [int(u) for u in layer_units]
        if max(units) * max(1, maxout_pieces) > BLAS_INT_MAX:
            raise ValueError(f"Layer widths and the number of features must be at most "
                             f"{BLAS_INT_MAX} (BLAS takes each dimension as a 32-bit int).")
        cdef Py_ssize_t L = len(units) - 1, l
        self._sizes = np.zeros(7 * (L + 1), dtype=np.intp)
        self.g.n_layers = L
        self.g.units = &self._sizes[0]
        self.g.coef_offset = &self._sizes[L + 1]
        self.g.intercept_offset = &self._sizes[2 * (L + 1)]
        self.g.act_prefix = &self._sizes[3 * (L + 1)]
        self.g.cols = &self._sizes[4 * (L + 1)]
        self.g.col_prefix = &self._sizes[5 * (L + 1)]
        self.g.bn_offset = &self._sizes[6 * (L + 1)]
        self.g.hidden_activation = HIDDEN_ACTIVATIONS[hidden_activation]
        self.g.maxout_pieces = maxout_pieces if self.g.hidden_activation == FM_MAXOUT else 1
        if self.g.maxout_pieces < 1:
            raise ValueError(f"maxout_pieces must be >= 1, got {maxout_pieces}")
        offset = 0
        for l in range(L + 1):
            self.g.units[l] = units[l]
        for l in range(L):
            self.g.cols[l] = units[l + 1] * (self.g.maxout_pieces if l < L - 1 else 1)
            self.g.coef_offset[l] = offset
            offset += units[l] * self.g.cols[l]
        self.g.n_coefs = offset
        for l in range(L):
            self.g.intercept_offset[l] = offset
            offset += self.g.cols[l]
            self.g.act_prefix[l + 1] = self.g.act_prefix[l] + units[l + 1]
            self.g.col_prefix[l + 1] = self.g.col_prefix[l] + self.g.cols[l]
        self.g.batch_norm = batch_norm and L > 1
        self.g.bn_momentum = batch_norm_momentum
        self.g.bn_eps = batch_norm_eps
        self.g.n_bn_features = self.g.col_prefix[L - 1] if self.g.batch_norm else 0
        for l in range(L - 1 if self.g.batch_norm else 0):
            self.g.bn_offset[l] = offset
            offset += 2 * self.g.cols[l]
        self.g.n_params = offset
        self.g.max_width = 0
        for l in range(L):
            self.g.max_width = max(self.g.max_width, self.g.cols[l])
        self.g.n_hidden = self.g.act_prefix[L - 1]
        self.g.output_activation, self.g.loss = OUTPUT_LOSSES[out_activation]
        self.g.loss = OTHER_LOSSES.get((out_activation, loss), self.g.loss)
        self.g.loss_param = huber_delta
        self.g.alpha = alpha
        self.g.act_params.negative_slope = negative_slope
        self.g.act_params.elu_alpha = elu_alpha
        self.g.act_params.softplus_beta = softplus_beta
        self.g.act_params.softplus_threshold = softplus_threshold
        self.g.keep_z = (L > 1 and self.g.hidden_activation != FM_MAXOUT
                         and fm_activation_needs_preactivation(self.g.hidden_activation,
                                                               &self.g.act_params))
        self.g.dropout = dropout if L > 1 else 0.0
        self.n_coefs = self.g.n_coefs
        self.n_params = self.g.n_params
        self.n_running = 2 * self.g.n_bn_features
        choice_init(&self.choice, 0)  # the first epoch sets its thread count
        choice_init(&self.kept_choice, 0)
        store_init(&self.store, -1)
        step_store_init(&self.step_store, -1)
        fetch_init(&self.fetch, -1)

    @property
    def thread_choice(self):
        """(threads the next batch gets, seconds per row measured lately with one thread and
        with all, 0 where not measured): the run-time choice of _threads.pxd, for tests and
        benchmarks."""
        cdef ThreadChoice *c = &self.choice
        return (choice_threads(c, choice_next(c)) if c.most else 0, c.per_row[0], c.per_row[1])

    @property
    def thread_batches(self):
        """{thread limit: (full batches run on one thread, on all of them)} since the network
        first trained under each of the two limits it keeps (_threads.pxd's choice_for), for
        benchmarks: whether a limit's threads ran at all."""
        cdef ThreadChoice *kept = &self.kept_choice
        cdef ThreadChoice *c = &self.choice
        counts = {kept.most: (kept.batches[0], kept.batches[1])} if kept.most > 0 else {}
        if c.most > 0:
            counts[c.most] = (c.batches[0], c.batches[1])
        return counts

    def record_thread_turns(self, turns, Py_ssize_t capacity=1_000_000):
        """Run the coming batches in turns, `turns` on all the caller's threads, then `turns` on
        one, and so on, whatever each costs, and record each full batch's thread count and
        seconds per row (the first `capacity` of them: thread_turn_costs); `turns` 0 ends the
        turns, and the run-time choice goes on from what it had learned before them. For
        benchmarks (benchmarks/choice_replay.py): both choices' costs side by side, batch by
        batch, on the machine as it is, to replay through _threads.pxd's choice offline. The
        bits are the same either way; the turns hold across changes of thread count. Call it
        between fits, never while one runs: it replaces the buffers the batches write to."""
        cdef int[::1] threads
        cdef double[::1] seconds
        cdef int *threads_at = NULL
        cdef double *seconds_at = NULL
        turns = operator.index(turns)
        if turns < 0 or capacity < 0:
            raise ValueError(f"turns and capacity must be >= 0, got {turns} and {capacity}")
        self.turn_threads = threads = np.zeros(capacity if turns else 0, dtype=np.intc)
        self.turn_seconds = seconds = np.zeros(capacity if turns else 0, dtype=np.float64)
        if turns and capacity:
            threads_at, seconds_at = &threads[0], &seconds[0]
        # (the kept choice's turns are never read: choice_for carries the current one's)
        choice_turns(&self.choice, turns, capacity, threads_at, seconds_at)

    @property
    def thread_turn_costs(self):
        """(thread counts, seconds per row): a copy of each full batch's, in order, recorded
        since record_thread_turns started its turns (empty arrays where none ran)."""
        cdef Py_ssize_t n = min(self.choice.turns.at, self.choice.turns.cap)
        if self.turn_threads is None:
            return np.zeros(0, dtype=np.intc), np.zeros(0, dtype=np.float64)
        return self.turn_threads[:n].copy(), self.turn_seconds[:n].copy()

    @property
    def store_choice(self):
        """(the way of the next gather that may stream: 1 streamed, 0 cached; its seconds per
        byte measured lately cached and streamed, 0 where not measured; batches timed, and of
        those streamed): the run-time choice of _stores.pxd, for tests and benchmarks."""
        return store_state(&self.store)

    def force_store(self, way):
        """Gather every batch that may stream `way` (1 streamed, 0 cached), or choose at run
        time (None, the default): for tests and benchmarks. The bits are the same either way."""
        store_init(&self.store, forced_way(way))

    @property
    def step_store_choice(self):
        """(the way of the next optimizer step that may stream its W: 1 streamed, 0 cached; its
        batches' seconds per row measured lately each way, 0 where not measured; batches timed,
        and of those streamed): the run-time choice of _stores.pxd, for tests and benchmarks."""
        return store_state(&self.step_store)

    def force_step_store(self, way):
        """Store every optimizer step's W that may stream `way` (1 streamed, 0 cached), or
        choose at run time (None, the default): for tests and benchmarks. The bits are the same
        either way."""
        step_store_init(&self.step_store, forced_way(way))

    @property
    def fetch_choice(self):
        """(the way of the next batch's products: 0 they fetch the next rows of W, 1 they do
        not; its batches' seconds per row measured lately each way, 0 where not measured;
        batches timed, and of those without the fetch): the run-time choice of _stores.pxd,
        for tests and benchmarks."""
        return store_state(&self.fetch)

    def force_fetch(self, way):
        """Run every timed batch's products `way` (0 fetching the next rows of W, 1 not), or
        choose at run time (None, the default): for tests and benchmarks. The bits are the
        same either way."""
        fetch_init(&self.fetch, forced_way(way))

    @property
    def batch_norm(self):
        """Whether the hidden layers are batch-normalised (never without hidden layers)."""
        return bool(self.g.batch_norm)

    @property
    def keeps_preactivation(self):
        """Whether training keeps z for the hidden layers (their act' cannot be formed from a)."""
        return bool(self.g.keep_z)

    def views(self, theta):
        """coefs_ and intercepts_ as numpy views into the flat vector theta."""
        cdef Py_ssize_t l
        coefs, intercepts = [], []
        for l in range(self.g.n_layers):
            start = self.g.coef_offset[l]
            n_in, n_out = self.g.units[l], self.g.cols[l]
            coefs.append(theta[start:start + n_in * n_out].reshape(n_in, n_out))
            start = self.g.intercept_offset[l]
            intercepts.append(theta[start:start + n_out])
        return coefs, intercepts

    def batch_norm_views(self, theta):
        """Each hidden layer's gamma and beta as numpy views into theta (empty lists without
        batch normalization)."""
        cdef Py_ssize_t l
        gammas, betas = [], []
        for l in range(self.g.n_layers - 1 if self.g.batch_norm else 0):
            start, n = self.g.bn_offset[l], self.g.cols[l]
            gammas.append(theta[start:start + n])
            betas.append(theta[start + n:start + 2 * n])
        return gammas, betas

    def running_views(self, running):
        """Each hidden layer's running mean and running variance as views into `running`, the
        flat vector of n_running values the trainer updates (every mean, then every variance)."""
        cdef Py_ssize_t l
        means, variances = [], []
        for l in range(self.g.n_layers - 1 if self.g.batch_norm else 0):
            start, n = self.g.col_prefix[l], self.g.cols[l]
            means.append(running[start:start + n])
            start += self.g.n_bn_features
            variances.append(running[start:start + n])
        return means, variances

    def batch_norm_fold(self, theta, running):
        """Prediction's batch normalization folded per hidden layer into a scale of z before its
        bias, gamma / sqrt(running_var + eps), and a shift in the bias's place,
        (b - running_mean) scale + beta (torch's eval-mode BatchNorm1d after the Linear), flat:
        each layer's scale, then its shift, in theta's dtype. None without batch normalization."""
        if not self.g.batch_norm:
            return None
        theta = np.asarray(theta)
        fold = np.empty(self.n_running, dtype=theta.dtype)
        _, intercepts = self.views(theta)
        gammas, betas = self.batch_norm_views(theta)
        means, variances = self.running_views(np.asarray(running, dtype=theta.dtype))
        start = 0
        for b, gamma, beta, mean, var in zip(intercepts, gammas, betas, means, variances):
            n = gamma.shape[0]
            scale = fold[start:start + n]
            scale[...] = gamma / np.sqrt(var + self.g.bn_eps)
            fold[start + n:start + 2 * n] = (b - mean) * scale + beta
            start += 2 * n
        return fold
