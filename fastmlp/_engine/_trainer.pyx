# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""The trainer and prediction: the engine's entry points from Python, with the GIL released.

Design
------
Every buffer a fit needs (each layer's activations and deltas, the gather block, per-row
losses, and what a layer kind keeps: z, dropout's outputs, maxout's winners) is allocated once
per fit by ``Trainer``; nothing is allocated inside an epoch. The whole epoch runs in one call
with the GIL released (fastmlp/_engine/_schedule.pxd runs each mini-batch); it takes the GIL back
only for a moment now and then, to let Ctrl-C through (_interrupt.pxd). The solver arrives as
one plain record (OPTIM_SPEC, csrc/fastmlp_kernels.h's fm_optim): the engine reads no Python
attribute, and advances the record's step count (and NAdam's mu_product) in place.

Prediction: rows are independent, so each block of rows runs through every layer on one thread,
with that thread's own scratch; no barrier between layers.

Arrays are indexed with Py_ssize_t / ptrdiff_t throughout (past 2^31 elements); only BLAS sizes
are int, and each of those is one dimension of one block.
"""
from cython cimport floating
from cpython.buffer cimport (
    PyBUF_C_CONTIGUOUS, PyBUF_FORMAT, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer,
)
from cpython.dict cimport PyDict_GetItem
from cpython.ref cimport PyObject
from cython.parallel cimport parallel, prange, threadid
from libc.math cimport isfinite
from libc.stdlib cimport free, malloc

import numpy as np

from fastmlp._engine._blas cimport BLAS_INT_MAX
from fastmlp._engine._geometry cimport Geometry
from fastmlp._engine._interrupt cimport (
    Interrupt, interrupt_init, interrupted, reraise_interrupt,
)
from fastmlp._engine._kernels cimport (
    FM_MAXOUT, FM_WATCH_SIZE, all_finite, fm_optim, fm_optim_begin_step, fm_rows_pack_d,
    fm_rows_pack_f, fm_rows_packed_size, fm_rows_packed_size_d, fm_rows_product_kernel,
    fm_rows_product_kernel_d, fm_rows_product_packed_d, fm_rows_product_packed_f,
    fm_rows_product_set_fetch, fm_scratch_allocations, fm_scratch_kept, fm_scratch_set_poison,
    fm_scratch_threads, fm_set_subnormals_slow, fm_subnormals_slow, small_pack,
    small_pack_record, small_pack_size, small_product_packed, small_product_part, small_split,
)
from fastmlp._engine._layer_dense cimport (
    OWN_PRODUCT_ROWS, SMALL_ROWS, own_rows_product, own_rows_product_d,
)
from fastmlp._engine._layer_dropout cimport dropout_at_step
from fastmlp._engine._layers cimport (
    forward_product, layer_activate, layer_product,
)
from fastmlp._engine._network cimport Network
from fastmlp._engine._openmp cimport (
    FASTMLP_HAVE_OPENMP, fm_current_cpu, fm_fp_give_back, fm_fp_modes, fm_fp_take, fm_leave_cpu,
    fm_spare_seconds, fm_split_begin, fm_split_end, fm_split_mode, fm_split_run,
    fm_helper_slices, fm_helper_yields, omp_get_max_threads,
)
from fastmlp._engine._rows cimport Rows, gather_rows
from fastmlp._engine._schedule cimport (
    MAX_BLOCKS, MIN_WEIGHT_ROWS, NORM_JOB, WEIGHT_SPLIT, Pool, Step, Work, add_layer_norms,
    batch_step, block_start, finish_all, may_stream, n_blocks, pool_close, pool_help, pool_init,
    sum_partials,
)
from fastmlp._engine._stores cimport (
    ClockWays, StoreChoice, clock_next, clock_record, store_next, store_record,
)
from fastmlp._engine._threads cimport (
    ThreadChoice, choice_for, choice_gate, choice_init, choice_next, choice_record,
    choice_threads, choice_wants_gate, seconds_now,
)

OPENMP_ENABLED = bool(FASTMLP_HAVE_OPENMP)
SMALL_PREDICT_ROWS = SMALL_ROWS  # fewer rows than this predict without calling BLAS

#: The solver's record, field for field csrc/fastmlp_kernels.h's fm_optim (Cython checks the
#: layout once, below, when the engine is imported: a mismatch fails the import with its
#: ValueError, never a misread field).
OPTIM_SPEC = np.dtype([
    ("solver", np.intc), ("lr", np.float64), ("eps", np.float64),
    ("weight_decay", np.float64), ("beta_1", np.float64), ("beta_2", np.float64),
    ("rho", np.float64), ("momentum", np.float64), ("nesterov", np.intc),
    ("lr_decay", np.float64), ("momentum_decay", np.float64), ("centered", np.intc),
    ("amsgrad", np.intc), ("decoupled_weight_decay", np.intc), ("lr_power", np.float64),
    ("l1", np.float64), ("l2", np.float64), ("l2_shrinkage", np.float64),
    ("ftrl_beta", np.float64), ("t", np.longlong),
    ("mu_product", np.float64), ("c0", np.float64), ("c1", np.float64), ("c2", np.float64),
    ("c3", np.float64),
], align=True)


cdef int _check_optim_layout(fm_optim[::1] record) except -1:
    """Nothing: taking an OPTIM_SPEC record as a typed view makes Cython compare the dtype's
    layout with fm_optim's, field by field (epoch() then takes the record's bytes alone)."""
    return 0


_check_optim_layout(np.zeros(1, OPTIM_SPEC))


cdef enum:
    # Rows a block of a prediction that BLAS multiplies (the Prediction block below). Tried on
    # `predict-bulk` (benchmarks/ab_builds.py, 12,000 rows, 2-core AMD EPYC VM), each against
    # 1024: 4096 1.34x the time (three blocks: one thread idles for the third), 2048 1.00x (16
    # rounds), 512 0.91x then 1.01x (10 and 16 rounds), 256 1.04x: no gain past the host's
    # noise, so 1024. Where csrc/rows_product.c's kernel multiplies float32 rows, blocks are
    # the most it takes (OWN_PRODUCT_ROWS, 256: predict's block_rows); against 1024 on BLAS:
    # 0.964x and 0.944x (10 and 12 rounds), 128 0.964x; 20,000 rows in one process per build,
    # builds alternating, medians of 30 calls: 52.6-54.6 ms against 56.1-60.3. Float64 in
    # blocks of 256 on BLAS read 172-177 ms against 168-174 for 1024 (20,000 rows), so BLAS
    # keeps 1024. Where the kernel's AVX-512 version multiplies float64 rows too, they go in its
    # blocks as float32's do, W packed once (Zen 4 host, 2026-12-04, a (784, 256, 128, 10)
    # network, one process per build in turns, medians of 30-200 calls, against BLAS's blocks
    # of 1024: 20,000 rows 88.7-92.9 ms against 104.6-108.3, 1,000 rows 4.7-5.1 against
    # 10.6-10.7 (one block on one thread before), 300 rows 2.4-2.7 against 3.1-3.6, 100 rows
    # 0.90-1.02 against 0.97-1.11).
    PREDICT_ROWS = 1024
    SURE_CHUNKS = 16  # surely_finite's blocks of rows
    PARALLEL_CHECK = 1 << 24  # PARALLEL_CHECK_VALUES (at surely_finite, which says why)


def max_threads():
    """OpenMP's thread count: all cores unless OMP_NUM_THREADS or threadpoolctl limit it."""
    return omp_get_max_threads()


# -- BLAS held to one thread ----------------------------------------------------------------------
# fastmlp/_runtime.py's Design says why BLAS runs on one thread while the engine runs, and why the
# limit is one shared, reference-counted one. Where every loaded BLAS is an OpenBLAS whose own
# thread-count functions threadpoolctl found, _runtime hands their addresses here
# (`blas_thread_calls`) and the limit is these few C calls: made with the GIL held, by calls that
# never release it, so no other Python thread runs between reading a count and setting it and the
# shared count needs no lock. (A free-threaded Python keeps its GIL for this module: it does not
# declare itself free-threading compatible, which this count, among others, relies on.) Taken
# and released through Python's context manager it costs ~0.4 us, where calling the same two
# functions of each library through ctypes cost ~4 us of a ~90 us partial_fit of 32 rows. Any
# other BLAS keeps _runtime's own limit (its controllers' Python methods, under its lock).

ctypedef int (*blas_get_threads)() noexcept nogil
ctypedef void (*blas_set_threads)(int) noexcept nogil

cdef enum:
    MAX_BLAS_LIBRARIES = 8

cdef blas_get_threads blas_get[MAX_BLAS_LIBRARIES]
cdef blas_set_threads blas_set[MAX_BLAS_LIBRARIES]
cdef int blas_restore[MAX_BLAS_LIBRARIES]  # each library's count before the limit (0: was 1)
cdef int n_blas_libraries = 0
cdef Py_ssize_t blas_users = 0


def blas_thread_calls(addresses):
    """Take the limit's calls: one (get, set) pair of function addresses per BLAS library,
    `int get(void)` and `void set(int)` (OpenBLAS's openblas_get_num_threads and
    openblas_set_num_threads, or OpenMP's pair under its OpenMP threading layer). Refused while
    the limit is held."""
    global n_blas_libraries
    cdef Py_ssize_t i
    cdef size_t get_address, set_address
    if blas_users:
        raise RuntimeError("the BLAS limit's calls cannot change while it is held")
    addresses = list(addresses)
    if len(addresses) > MAX_BLAS_LIBRARIES:
        raise ValueError(f"at most {MAX_BLAS_LIBRARIES} BLAS libraries")
    for get_address, set_address in addresses:
        if get_address == 0 or set_address == 0:
            raise ValueError("a BLAS thread-count function's address is 0")
    for i, (get_address, set_address) in enumerate(addresses):
        blas_get[i] = <blas_get_threads> get_address
        blas_set[i] = <blas_set_threads> set_address
    n_blas_libraries = len(addresses)


cdef void hold_blas() noexcept:
    """Enter the limit (with the GIL): the first to enter sets every library to one thread."""
    global blas_users
    cdef int i, n
    if blas_users == 0:
        for i in range(n_blas_libraries):
            n = blas_get[i]()
            blas_restore[i] = n if n != 1 else 0
            if n != 1:
                blas_set[i](1)
    blas_users += 1


cdef void release_blas() noexcept:
    """Leave the limit (with the GIL): the last to leave sets back what the first found."""
    global blas_users
    cdef int i
    blas_users -= 1
    if blas_users == 0:
        for i in range(n_blas_libraries):
            if blas_restore[i] != 0:
                blas_set[i](blas_restore[i])


def blas_limit_enter():
    """Python's entry to the limit (fastmlp._runtime.single_threaded_blas)."""
    hold_blas()


def blas_limit_exit():
    """Python's exit from the limit; an exit without an entry is refused."""
    if blas_users <= 0:
        raise RuntimeError("the BLAS limit was left more often than entered")
    release_blas()


cdef inline void set_dense_input(Rows *rows, const void *X, Py_ssize_t cols) noexcept:
    """Point rows at a C-ordered dense X of `cols` columns (set_input adjusts other strides)."""
    rows.X = X
    rows.ldx = cols
    rows.col_stride = 1
    rows.strided = False
    rows.sparse = False
    rows.wide_index = False
    rows.sp_data = rows.sp_indices = rows.sp_indptr = NULL


cdef int set_input(Rows *rows, object X, const floating *like) except -1:
    """Point rows at X: a dense array with any strides, or a CSR matrix (of the same dtype as
    `like`) whose indices and indptr are both int32 or both int64."""
    cdef const floating[:, :] dense
    cdef const floating[::1] data
    cdef const int[::1] indices_32, indptr_32
    cdef const long long[::1] indices_64, indptr_64
    # (No Python attribute is asked of an ndarray: this runs on every one-row prediction.)
    if isinstance(X, np.ndarray) or not hasattr(X, "indptr"):
        dense = X
        set_dense_input(rows, &dense[0, 0] if dense.shape[0] > 0 and dense.shape[1] > 0
                        else NULL, dense.shape[1])
        if (dense.shape[0] > 1 and dense.strides[0] != dense.shape[1] * <Py_ssize_t> sizeof(floating)
                or dense.shape[1] > 1 and dense.strides[1] != <Py_ssize_t> sizeof(floating)):
            rows.ldx = dense.strides[0] // <Py_ssize_t> sizeof(floating)
            rows.col_stride = dense.strides[1] // <Py_ssize_t> sizeof(floating)
            # BLAS reads rows in place only at unit column stride and a row stride >= width.
            rows.strided = rows.col_stride != 1 or rows.ldx < dense.shape[1]
        return 0
    set_dense_input(rows, NULL, X.shape[1])
    rows.sparse = True
    data = X.data
    rows.sp_data = &data[0] if data.shape[0] > 0 else NULL
    if X.indices.dtype == np.int32 and X.indptr.dtype == np.int32:
        indices_32, indptr_32 = X.indices, X.indptr
        rows.sp_indices = &indices_32[0] if indices_32.shape[0] > 0 else NULL
        rows.sp_indptr = &indptr_32[0]
    elif X.indices.dtype == np.int64 and X.indptr.dtype == np.int64:
        # (The pointers must outlive this call: X's own arrays, never converted copies.)
        indices_64, indptr_64 = X.indices, X.indptr
        rows.wide_index = True
        rows.sp_indices = &indices_64[0] if indices_64.shape[0] > 0 else NULL
        rows.sp_indptr = &indptr_64[0]
    else:
        raise TypeError("a CSR matrix's indices and indptr must both be int32 or both int64")
    return 0


cdef int take_record(spec, Py_buffer *record) except -1:
    """Take the bytes of `spec`, one OPTIM_SPEC record (the caller releases `record`), without
    the buffer's format: numpy writes out the 25 fields' format string at every request that
    asks for it (~1.3 us, 5 % of a 32-row partial_fit's engine time); the layout was checked at
    import and the dtype is checked here, by identity first (spec() makes every record with
    OPTIM_SPEC itself)."""
    if not (isinstance(spec, np.ndarray) and spec.shape == (1,)
            and (spec.dtype is OPTIM_SPEC or spec.dtype == OPTIM_SPEC)):
        raise ValueError("spec must hold exactly one OPTIM_SPEC record")
    PyObject_GetBuffer(spec, record, PyBUF_WRITABLE)
    return 0


cdef void run_batches(const Geometry *g, ThreadChoice *choice, StoreChoice *store,
                      StoreChoice *step_store, StoreChoice *fetch, Step *step, Work *work,
                      Rows *rows, Py_ssize_t n_samples, const Py_ssize_t *order,
                      Py_ssize_t batch_size, floating *theta, floating *grad, floating *state_1,
                      floating *state_2, floating *state_3, fm_optim *optim,
                      unsigned long long dropout_seed, double *norm_sums,
                      double *accumulated) noexcept nogil:
    """Trainer._epoch's batches, in turn, on the calling thread: each takes the thread count
    that the run-time choice gives it (_threads.pxd), gathers its rows the way `store` gives
    and stores its step's W the way `step_store` gives, its products fetching the next rows of
    W or not as `fetch` gives (_stores.pxd), and adds its loss x its length to *accumulated; a
    raised interrupt (work.interrupt) ends them."""
    cdef Py_ssize_t start = 0, stop, b
    cdef double batch_loss, started, gathering, per_row
    cdef int which, way, threads
    cdef bint timed, step_timed
    cdef ClockWays ways
    # (the fetch is the AVX-512 kernel's alone: elsewhere its choice times nothing)
    cdef bint fetching = fm_rows_product_kernel() == 2
    while start < n_samples:
        stop = start + batch_size
        if stop > n_samples:
            stop = n_samples
        rows.n = stop - start
        rows.first = start
        rows.index = &order[start] if order != NULL else NULL
        # The step's counter and scalars; dropout's mask depends on the counter.
        fm_optim_begin_step(optim)
        dropout_at_step(&work.kept.dropout, g.dropout, dropout_seed, optim.t)
        which = choice_next(choice)
        threads = choice_threads(choice, which)
        timed = may_stream(threads, rows.n)  # (batch_step keeps the way only there)
        way = store_next(store)
        step.stream_rows = way == 1
        step_timed = timed and step.weight_clip == 0  # (where batch_step keeps step.stream)
        # The step's choice and the fetch's share the batch's clock: one probes at a time
        # (_stores.pxd, "The next group's rows of W").
        ways = clock_next(step_store, fetch, step_timed)
        step.stream = ways.step == 1
        if fetching:
            fm_rows_product_set_fetch(ways.fetch == 0)
        for b in range(MAX_BLOCKS):
            work.gather_seconds[b] = 0.0
        started = seconds_now()
        batch_loss = batch_step(g, theta, grad, state_1, state_2, state_3, step, False, rows,
                                work, threads)
        if work.interrupt.raised:
            break
        if rows.n == batch_size:  # (a short last batch is not a fair measure)
            per_row = (seconds_now() - started) / rows.n
            choice_record(choice, which, per_row)
            clock_record(step_store, fetch, &ways, step.stream, step_timed, fetching and timed,
                         per_row)
            gathering = 0.0
            for b in range(MAX_BLOCKS):
                gathering += work.gather_seconds[b]
            if timed and gathering > 0:  # (a pass that gathers in its row blocks)
                store_record(store, way, gathering / (rows.n * g.units[0] * sizeof(floating)))
            if choice_wants_gate(choice, rows.n):
                choice_gate(choice, rows.n, fm_spare_seconds(), seconds_now())
        else:
            clock_record(step_store, fetch, &ways, step.stream, step_timed, fetching and timed,
                         -1.0)
        if norm_sums != NULL:
            add_layer_norms(g, work, norm_sums)
        batch_loss = (batch_loss / step.divisor
                      + 0.5 * g.alpha * sum_partials(work.partial, work.n_jobs) / step.divisor)
        accumulated[0] = accumulated[0] + batch_loss * rows.n
        start = stop
        if interrupted(work.interrupt, True):
            break
    if fetching:
        fm_rows_product_set_fetch(1)  # (the default, for the process's other products)


cdef class Trainer:
    """Every buffer a fit needs, allocated once; runs epochs and full-batch gradients.

    Besides the network's own buffers, those its layer kinds keep (z for activations whose
    derivative needs it, the dropped-out hidden outputs, maxout's winners: see _layers.pxd's
    Kept), dropout's seed, and the clipping of the gradient's norm and of the parameters after
    each step (0: none). A batch-normalised network keeps its normalised z and each batch's
    statistics (_layer_batchnorm.pxd); its running statistics are the caller's (`running`, laid
    out as Network.running_views says), updated in place by every training step."""
    cdef Network network
    cdef readonly object acts, deltas, gathered, row_loss, partial, jobs, dispatch, counters
    cdef readonly object gather_seconds, input_seen
    cdef readonly object pre, dropped, argmax, grad_partial, watch
    cdef readonly object xhat, bn_stats, row_w, bn_batch
    cdef readonly Py_ssize_t capacity
    # The schedule class (_schedule.pxd's Design: Block sizes): the blocks are cut for a machine
    # of this many CPUs, whatever the number of threads that then run them.
    cdef readonly Py_ssize_t schedule_cpus
    cdef readonly bint double_precision  # the buffers' dtype: float64, else float32
    # Set per fit, or per partial_fit call of an estimator that keeps its trainer between calls:
    # they are read at each epoch, and size no buffer.
    cdef public unsigned long long dropout_seed
    cdef public double max_grad_norm, weight_clip
    # Every pointer into the buffers above, taken once here: they never move (the attributes
    # are read-only). Taking them at each epoch cost ~3 us of a ~25 us small epoch (a dozen
    # memoryview acquisitions, each parsing a buffer format).
    cdef Work template

    def __init__(self, Network network, Py_ssize_t capacity, Py_ssize_t n_features, dtype,
                 bint sparse=False, *, unsigned long long dropout_seed=0,
                 double max_grad_norm=0.0, double weight_clip=0.0, Py_ssize_t schedule_cpus=2):
        if capacity > BLAS_INT_MAX:  # a whole batch is the inner size of a gradient's GEMM
            raise ValueError(f"batch_size must be at most {BLAS_INT_MAX} (a BLAS dimension).")
        if schedule_cpus < 1:
            raise ValueError(f"schedule_cpus must be at least 1, got {schedule_cpus}")
        self.schedule_cpus = schedule_cpus
        self.network = network
        self.capacity = capacity
        g = &network.g
        self.acts = np.empty(capacity * g.act_prefix[g.n_layers], dtype=dtype)
        self.deltas = np.empty(capacity * g.col_prefix[g.n_layers], dtype=dtype)
        # A sparse X is read in place: nothing to gather.
        self.gathered = np.empty(0 if sparse else capacity * n_features, dtype=dtype)
        self.row_loss = np.empty(capacity, dtype=np.float64)
        # The weight jobs: every layer's W cut into blocks of rows (fixed by the shapes and the
        # schedule class, so the same whatever the thread count), and its bias.
        jobs = []
        for l in range(g.n_layers):
            blocks = n_blocks(g.units[l], MIN_WEIGHT_ROWS, schedule_cpus, WEIGHT_SPLIT)
            for b in range(blocks):
                jobs.append((l, block_start(g.units[l], blocks, b),
                             block_start(g.units[l], blocks, b + 1)))
            jobs.append((l, 0, -1))
        for l in range(g.n_layers - 1 if g.batch_norm else 0):
            jobs.append((l, 0, NORM_JOB))
        self.jobs = np.ascontiguousarray(np.array(jobs, dtype=np.intp).T)
        # batch_jobs hands the weight jobs out from the top layer down: its deltas are the first
        # complete, while a slower thread is still on the lower layers' (each layer's jobs in
        # their own order; a job keeps its index, so sums over jobs keep their order and bits).
        self.dispatch = np.array(sorted(range(len(jobs)), key=lambda j: -jobs[j][0]),
                                 dtype=np.intp)
        self.counters = np.zeros(g.n_layers + 2, dtype=np.intc)
        self.gather_seconds = np.zeros(MAX_BLOCKS, dtype=np.float64)
        self.input_seen = np.zeros(MAX_BLOCKS, dtype=np.uint8)
        self.partial = np.zeros(len(jobs), dtype=np.float64)
        self.grad_partial = np.zeros(len(jobs), dtype=np.float64)
        self.watch = np.zeros(len(jobs) * FM_WATCH_SIZE, dtype=np.float64)
        hidden = capacity * g.n_hidden
        self.pre = np.empty(hidden if g.keep_z else 0, dtype=dtype)
        self.dropped = np.empty(hidden if g.dropout > 0 else 0, dtype=dtype)
        self.argmax = np.empty(hidden if g.hidden_activation == FM_MAXOUT else 0, dtype=np.intc)
        normalised = capacity * g.n_bn_features
        self.xhat = np.empty(normalised, dtype=dtype)
        self.bn_stats = np.zeros(5 * g.n_bn_features, dtype=np.float64)
        self.row_w = np.empty(capacity if g.batch_norm else 0, dtype=np.float64)
        self.bn_batch = np.zeros(2, dtype=np.float64)
        self.dropout_seed = dropout_seed
        self.max_grad_norm = max_grad_norm
        self.weight_clip = weight_clip
        cdef float[::1] acts_32, deltas_32, gathered_32
        cdef double[::1] acts_64, deltas_64, gathered_64
        if self.acts.dtype == np.float64:
            self.double_precision = True
            acts_64, deltas_64, gathered_64 = self.acts, self.deltas, self.gathered
            self.template = self._work(acts_64, deltas_64, gathered_64)
        elif self.acts.dtype == np.float32:
            self.double_precision = False
            acts_32, deltas_32, gathered_32 = self.acts, self.deltas, self.gathered
            self.template = self._work(acts_32, deltas_32, gathered_32)
        else:
            raise ValueError(f"dtype must be float32 or float64, got {self.acts.dtype}")

    def seen_nonfinite(self):
        """Whether the last epoch (Trainer.epoch's, or a SteadyCall's) found a row of the first
        layer's product not finite (_layers.pxd's note_nonfinite): X held a NaN or an infinity,
        or it overflowed."""
        cdef const unsigned char[::1] seen = self.input_seen
        cdef Py_ssize_t b
        for b in range(MAX_BLOCKS):
            if seen[b]:
                return True
        return False

    cdef int _check_dtype(self, const floating *like) except -1:
        """Refuse arrays of another dtype than the buffers' (the pointers are untyped)."""
        cdef bint same
        if floating is double:
            same = self.double_precision
        else:
            same = not self.double_precision
        if not same:
            raise ValueError("Buffer dtype mismatch: theta's dtype is not the trainer's")
        return 0

    cdef Work _work(self, floating[::1] acts, floating[::1] deltas, floating[::1] gathered):
        cdef Work work
        cdef Py_ssize_t n_bn = self.network.g.n_bn_features
        cdef floating[::1] xhat = self.xhat
        cdef double[::1] bn_stats = self.bn_stats
        cdef double[::1] row_w = self.row_w
        cdef double[::1] bn_batch = self.bn_batch
        cdef double[::1] row_loss = self.row_loss
        cdef double[::1] partial = self.partial
        cdef double[::1] grad_partial = self.grad_partial
        cdef double[::1] watch = self.watch
        cdef Py_ssize_t[:, ::1] jobs = self.jobs
        cdef Py_ssize_t[::1] dispatch = self.dispatch
        cdef int[::1] counters = self.counters
        cdef double[::1] gather_seconds = self.gather_seconds
        cdef unsigned char[::1] input_seen = self.input_seen
        cdef floating[::1] pre = self.pre
        cdef floating[::1] dropped = self.dropped
        cdef int[::1] argmax = self.argmax
        work.kept.acts = &acts[0]
        work.kept.pre = &pre[0] if pre.shape[0] > 0 else NULL
        work.kept.argmax = &argmax[0] if argmax.shape[0] > 0 else NULL
        work.kept.dropout.dropped = &dropped[0] if dropped.shape[0] > 0 else NULL
        work.kept.dropout.key = 0
        work.kept.dropout.threshold = 0
        work.kept.dropout.scale = 1.0 / (1.0 - self.network.g.dropout)
        work.kept.bn.xhat = &xhat[0] if n_bn > 0 else NULL
        work.kept.bn.mean = &bn_stats[0] if n_bn > 0 else NULL
        work.kept.bn.inv_std = &bn_stats[n_bn] if n_bn > 0 else NULL
        work.kept.bn.s1 = &bn_stats[2 * n_bn] if n_bn > 0 else NULL
        work.kept.bn.s2 = &bn_stats[3 * n_bn] if n_bn > 0 else NULL
        work.kept.bn.unbiased_var = &bn_stats[4 * n_bn] if n_bn > 0 else NULL
        work.kept.bn.row_w = &row_w[0] if row_w.shape[0] > 0 else NULL
        work.kept.bn.batch = &bn_batch[0]
        work.kept.bn.running = NULL  # the caller's, when its passes update them
        work.kept.bn.momentum = self.network.g.bn_momentum
        work.deltas = &deltas[0]
        work.gathered = &gathered[0] if gathered.shape[0] > 0 else NULL
        work.gather_seconds = &gather_seconds[0]
        work.input_seen = &input_seen[0]
        work.row_loss = &row_loss[0]
        work.partial = &partial[0]
        work.grad_partial = &grad_partial[0]
        work.watch = &watch[0]
        work.job_layer = &jobs[0, 0]
        work.job_lo = &jobs[1, 0]
        work.job_hi = &jobs[2, 0]
        work.n_jobs = jobs.shape[1]
        work.cpus = self.schedule_cpus
        work.dispatch = &dispatch[0]
        work.counters = &counters[0]
        work.interrupt = NULL  # the caller points it at its Interrupt to make batches stoppable
        work.pool = NULL  # Trainer._epoch's, while its region runs
        return work

    def epoch(self, floating[::1] theta, floating[::1] grad, floating[::1] state_1,
              floating[::1] state_2, X, const floating[:, ::1] Y,
              const floating[::1] sample_weight, const Py_ssize_t[::1] order,
              Py_ssize_t batch_size, spec, int n_threads, state_3=None,
              grad_norms=None, running=None):
        """One epoch of mini-batch training: batches are order[0:b], order[b:2b], ... (or the
        consecutive rows of X when order is empty). X is a C-contiguous array or a CSR matrix.
        Returns sum over batches of batch loss x batch length, as scikit-learn accumulates it.
        spec (one OPTIM_SPEC record) is the solver; its t (and NAdam's mu_product) advance with
        every step taken, also when Ctrl-C stops the epoch. state_3 is the third state vector
        of the solvers that have one. grad_norms (float64, one per layer), if given, is set to
        the sum over the epoch's steps of each layer's |dLoss/dW| before clipping. running (a
        batch-normalised network's running statistics, Network.n_running of theta's dtype) is
        updated by every step."""
        cdef Geometry *g = &self.network.g
        cdef floating[::1] third_state
        cdef floating *state_3_ptr = NULL
        cdef double[::1] norm_sums
        cdef double *norm_sums_ptr = NULL
        cdef Work work = self.template
        cdef Rows rows
        cdef Py_buffer record
        self._check_dtype(&theta[0])
        if batch_size > self.capacity:
            raise ValueError("batch_size exceeds the trainer's capacity")
        take_record(spec, &record)
        try:
            if state_3 is not None and len(state_3) > 0:
                third_state = state_3
                state_3_ptr = &third_state[0]
            self._point_running(&work, running, &theta[0], True)
            if grad_norms is not None:
                norm_sums = grad_norms
                if norm_sums.shape[0] != g.n_layers:
                    raise ValueError("grad_norms must have one element per layer")
                norm_sums_ptr = &norm_sums[0]
            set_input(&rows, X, &theta[0])
            rows.Y = &Y[0, 0]
            rows.w = &sample_weight[0] if sample_weight.shape[0] > 0 else NULL
            return self._epoch(&work, &rows, Y.shape[0], &order[0] if order.shape[0] > 0 else NULL,
                               batch_size, &theta[0], &grad[0], &state_1[0],
                               &state_2[0] if state_2.shape[0] > 0 else NULL, state_3_ptr,
                               <fm_optim *> record.buf, n_threads, norm_sums_ptr)
        finally:
            PyBuffer_Release(&record)

    cdef double _epoch(self, Work *work, Rows *rows, Py_ssize_t n_samples,
                       const Py_ssize_t *order, Py_ssize_t batch_size, floating *theta,
                       floating *grad, floating *state_1, floating *state_2, floating *state_3,
                       fm_optim *optim, int n_threads, double *norm_sums) except? -1.0:
        """epoch's batches, on checked pointers: `work` (a copy of the template, pointed at the
        running statistics) and `rows` (X, Y and the weights) are the caller's; order is NULL
        for the rows in turn. With threads (and neither batch normalization nor the gradient's
        clipping, whose passes keep a region each), the batches run in one parallel region,
        the helpers in _schedule.pxd's pool (its comment says why)."""
        cdef Geometry *g = &self.network.g
        cdef Interrupt interrupt
        cdef Step step
        cdef Pool pool
        cdef double accumulated = 0.0
        cdef int l
        cdef bint pooled = (FASTMLP_HAVE_OPENMP and n_threads > 1 and not g.batch_norm
                            and self.max_grad_norm == 0)
        if norm_sums != NULL:
            for l in range(g.n_layers):
                norm_sums[l] = 0.0
        for l in range(MAX_BLOCKS):  # (seen_nonfinite: this epoch's)
            work.input_seen[l] = 0
        step.finish = step.take_step = True
        step.optim = optim
        step.max_grad_norm = self.max_grad_norm
        step.weight_clip = self.weight_clip
        step.grad_scale = 1.0
        step.stream = False  # (run_batches sets it per batch, batch_step keeps it where it may)
        step.stream_rows = False  # (run_batches sets it per batch)
        interrupt_init(&interrupt)
        work.interrupt = &interrupt
        choice_for(&self.network.choice, &self.network.kept_choice, n_threads)
        with nogil:
            if pooled:
                pool_init(&pool, n_threads)
                work.pool = &pool
                with parallel(num_threads=n_threads):
                    if threadid() == 0:
                        run_batches(g, &self.network.choice, &self.network.store,
                                    &self.network.step_store, &self.network.fetch, &step, work,
                                    rows, n_samples, order, batch_size, theta, grad, state_1,
                                    state_2, state_3, optim, self.dropout_seed, norm_sums,
                                    &accumulated)
                        pool_close(&pool)
                    else:
                        pool_help(g, theta, grad, state_1, state_2, state_3, &step, rows, work)
                work.pool = NULL
            else:
                run_batches(g, &self.network.choice, &self.network.store,
                            &self.network.step_store, &self.network.fetch, &step, work, rows,
                            n_samples, order, batch_size, theta, grad, state_1, state_2,
                            state_3, optim, self.dropout_seed, norm_sums, &accumulated)
        reraise_interrupt(&interrupt)
        return accumulated

    cdef int _point_running(self, Work *work, running, const floating *like,
                            bint required) except -1:
        """Point work at the caller's running statistics (checked: the engine writes them)."""
        cdef floating[::1] values
        if not self.network.g.batch_norm or (running is None and not required):
            return 0
        if running is None:
            raise ValueError("a batch-normalised network's epoch needs its running statistics")
        values = running
        if values.shape[0] != 2 * self.network.g.n_bn_features:
            raise ValueError("running must hold Network.n_running values")
        work.kept.bn.running = &values[0]
        return 0

    def loss_gradient(self, floating[::1] theta, floating[::1] grad, X,
                      const floating[:, ::1] Y, const floating[::1] sample_weight,
                      int n_threads, long long dropout_step=-1, running=None):
        """Full-batch loss and gradient at theta (for L-BFGS), in chunks of `capacity` rows
        whose gradients accumulate in order. Returns the loss; grad receives the gradient.
        dropout_step >= 0 applies the dropout masks of that optimizer step (for gradient checks;
        by default, as in prediction, there is no dropout). A batch-normalised network takes
        the whole batch in one chunk (its statistics are the batch's): capacity must hold every
        row. running, if given, receives the whole batch's statistics (momentum 1)."""
        cdef Geometry *g = &self.network.g
        cdef Work work = self.template
        cdef Interrupt interrupt
        cdef Rows rows
        cdef Step step
        cdef Py_ssize_t n_samples = Y.shape[0], start, r
        cdef bint weighted = sample_weight.shape[0] > 0
        cdef double data_loss = 0.0, sum_w2 = 0.0
        step.finish = step.take_step = False
        step.divisor = <double> n_samples
        step.optim = NULL
        step.max_grad_norm = step.weight_clip = 0.0
        step.stream = False
        step.stream_rows = False
        self._check_dtype(&theta[0])
        if g.batch_norm and n_samples > self.capacity:
            raise ValueError("a batch-normalised network's full-batch gradient needs capacity "
                             "for every row")
        self._point_running(&work, running, &theta[0], False)
        work.kept.bn.momentum = 1.0
        set_input(&rows, X, &theta[0])
        rows.Y = &Y[0, 0]
        rows.w = &sample_weight[0] if weighted else NULL
        rows.index = NULL
        interrupt_init(&interrupt)
        work.interrupt = &interrupt
        with nogil:
            dropout_at_step(&work.kept.dropout, g.dropout, self.dropout_seed, dropout_step)
            if weighted:
                step.divisor = 0.0
                for r in range(n_samples):
                    step.divisor = step.divisor + sample_weight[r]
            start = 0
            while start < n_samples:
                rows.n = min(self.capacity, n_samples - start)
                rows.first = start
                data_loss += batch_step(g, &theta[0], &grad[0], <floating *> NULL,
                                        <floating *> NULL, <floating *> NULL, &step, start > 0,
                                        &rows, &work, n_threads)
                if interrupted(&interrupt, True):
                    break
                start += rows.n
            if not interrupt.raised:
                step.finish = True
                sum_w2 = finish_all(g, &theta[0], &grad[0], &step, &work, n_threads)
        reraise_interrupt(&interrupt)
        return data_loss / step.divisor + 0.5 * g.alpha * sum_w2 / step.divisor


# ---------------------------------------------------------------------------------------------
# Prediction: rows are independent, so each block of rows runs through every layer on one
# thread, with that thread's own scratch; no barrier between layers. The blocks are handed out
# dynamically (a thread that the OS deschedules on a busy machine does not hold the others
# back): each block is computed by the same calls whichever thread takes it, so the bits do
# not change.
#
# A plain X (the estimator's fast path) is proven finite by the pass itself, instead of by a
# pass of its own over X (1.2 ms of a 30 ms prediction of 20,000 x 784 float32 rows on two
# threads, reading 63 MB): a NaN or an infinity in a row of X makes every element of that row of
# the first layer's product non-finite (NaN times anything is NaN, infinity times 0 is NaN,
# and no product skips an input that is not 0: OpenBLAS's GEMM computes every term, the
# reference BLAS skips zero inputs only, as csrc/small_product.c does), so the product's first
# column, checked before the activation (relu may turn NaN into 0), is finite only if the row
# is. Its cost is one load per row, where the pass over X read all of it. A non-finite
# value there means "not known": X may also be finite and overflow (or W hold a non-finite
# weight), so the caller runs the exact check.
# ---------------------------------------------------------------------------------------------

cdef struct SplitPart:
    # one part of split_product's columns, for split_part on either thread
    void *out
    const void *a
    const void *W
    const void *copy
    Py_ssize_t lda, rows, n_in, n_out, c0, c1
    bint doubles


cdef void split_part(void *arg) noexcept nogil:
    cdef SplitPart *p = <SplitPart *> arg
    if p.doubles:
        small_product_part(<double *> p.out, <const double *> p.a, p.lda, <const double *> p.W,
                           <const double *> p.copy, p.rows, p.n_in, p.n_out, p.c0, p.c1)
    else:
        small_product_part(<float *> p.out, <const float *> p.a, p.lda, <const float *> p.W,
                           <const float *> p.copy, p.rows, p.n_in, p.n_out, p.c0, p.c1)


cdef void split_product(floating *out, const floating *a, Py_ssize_t lda, const floating *W,
                        const floating *copy, Py_ssize_t rows, Py_ssize_t n_in, Py_ssize_t n_out,
                        Py_ssize_t cut, double *wait) noexcept nogil:
    """A few rows' product (small_product_packed's, or small_product's where copy is NULL) in
    two parts, columns 0..cut on the caller and cut..n_out on the split's helper thread where it
    can be had (csrc/placement.c's fm_split_run, which says why it is not an OpenMP region):
    the same bits. *wait becomes the longer of itself and the caller's time after its own part
    (csrc/placement.c's fm_split_end judges it; -1: no helper, both parts ran here)."""
    cdef SplitPart parts[2]
    cdef double waited
    cdef int p
    for p in range(2):
        parts[p].out, parts[p].a, parts[p].W, parts[p].copy = out, a, W, copy
        parts[p].lda, parts[p].rows, parts[p].n_in, parts[p].n_out = lda, rows, n_in, n_out
        parts[p].doubles = floating is double
    parts[0].c0, parts[0].c1 = 0, cut
    parts[1].c0, parts[1].c1 = cut, n_out
    waited = fm_split_run(split_part, &parts[0], &parts[1])
    if waited > wait[0]:
        wait[0] = waited


cdef bint predict_block(const Geometry *g, const floating *theta, const Rows *rows,
                        Py_ssize_t r0, Py_ssize_t r1, floating *out, floating *scratch,
                        Py_ssize_t cap, const floating *fold, bint check,
                        const floating **copies, const floating **packs,
                        double *split_wait) noexcept nogil:
    """out rows r0..r1 (at most cap rows) = the network's output for rows r0..r1 of X.
    scratch: two blocks of cap x max_width, then (a maxout network) one for a layer's pieces,
    then (a strided X) one of cap x n_features for its gathered rows (see predict_scratch).
    copies (NULL, or one per layer, each NULL or small_pack_copies' copy of that layer's W):
    a layer with a copy multiplies by it (fewer than SMALL_ROWS rows, a dense input; the same
    bits). packs (NULL, or one per layer, each NULL or that layer's W packed once for
    the whole prediction: predict_packs): a layer with one multiplies a block of at least
    SMALL_ROWS rows from it (the same bits as from W). split_wait (NULL, or a few rows on one
    thread outside any parallel region): each layer whose product fm_small_split cuts runs on
    two threads (split_product; the same bits), the caller's longest wait for its helper kept
    there. Returns whether `check` found the first layer's product finite (False if not
    checked)."""
    cdef Py_ssize_t l, r, n_out, cut, ld_in = rows.ldx
    cdef const floating *a_in = NULL
    cdef floating *a_out
    cdef floating *product
    cdef floating *pieces = scratch + 2 * cap * g.max_width
    cdef bint finite = check
    for l in range(g.n_layers):
        n_out = g.units[l + 1]
        if l == g.n_layers - 1:
            a_out = out + r0 * n_out
        else:
            a_out = scratch + (l % 2) * cap * g.max_width
        if l == 0 and not rows.sparse and rows.strided:
            a_in = pieces + (cap * g.max_width if g.hidden_activation == FM_MAXOUT else 0)
            gather_rows(<floating *> a_in, r0, rows, r0, r1, g.units[0])
            ld_in = g.units[0]
        elif l == 0 and not rows.sparse:
            a_in = <const floating *> rows.X + r0 * rows.ldx
        # layer_forward in its two halves: the product (by the layer's copy of W where it
        # has one), the first layer's check, then bias and activation
        product = forward_product(g, l, a_out, pieces)
        cut = 0
        if split_wait != NULL and r1 - r0 < SMALL_ROWS and not (l == 0 and rows.sparse):
            cut = small_split(theta, g.units[l], g.cols[l])
        if cut > 0:
            split_product(product, a_in, ld_in, theta + g.coef_offset[l],
                          copies[l] if copies != NULL else NULL, r1 - r0, g.units[l],
                          g.cols[l], cut, split_wait)
        elif copies != NULL and copies[l] != NULL:
            small_product_packed(product, a_in, ld_in, theta + g.coef_offset[l], copies[l],
                                 r1 - r0, g.units[l], g.cols[l])
        elif packs != NULL and packs[l] != NULL and r1 - r0 >= SMALL_ROWS:
            # (fewer rows: layer_product's row-by-row loop, whose bits differ)
            if floating is float:
                fm_rows_product_packed_f(fm_rows_product_kernel(), product, g.cols[l], a_in,
                                         ld_in, packs[l], r1 - r0, g.units[l], g.cols[l])
            else:
                fm_rows_product_packed_d(fm_rows_product_kernel_d(), product, g.cols[l], a_in,
                                         ld_in, packs[l], r1 - r0, g.units[l], g.cols[l])
        else:
            layer_product(g, l, product, a_in, ld_in, rows, r0, r1, theta)
        if l == 0 and check:
            for r in range(r1 - r0):
                if not isfinite(product[r * g.cols[0]]):
                    finite = False
        layer_activate(g, l, a_out, <floating *> NULL, NULL, pieces, r1 - r0, theta, fold)
        a_in = a_out
        ld_in = n_out
    return finite


cdef Py_ssize_t predict_scratch(const Geometry *g, const Rows *rows, Py_ssize_t cap) noexcept:
    """The elements of one thread's scratch for blocks of cap rows (see predict_block)."""
    cdef Py_ssize_t size = 2 * cap * g.max_width
    if g.hidden_activation == FM_MAXOUT:
        size += cap * g.max_width
    if not rows.sparse and rows.strided:
        size += cap * g.units[0]
    return size


cdef floating *predict_packs(const Geometry *g, const floating *theta, bint sparse,
                             const floating **packs) noexcept nogil:
    """Every dense layer's W packed once (csrc/rows_product.c's fm_rows_pack_f or _d) for a bulk
    prediction, whose blocks of rows would each pack it again: packs[l] is layer l's copy, or
    NULL where the machine has no such kernel (then every layer's is NULL) or the layer's input
    is a sparse X. Returns the allocation that holds them (free it), NULL where there is none or
    malloc failed (all NULL: the blocks pack W as before). The copies hold W's values (each
    layer's columns rounded up to a panel's), for the call only: O(parameters), as a fit's
    buffers. Float64 has a copy where csrc/rows_product.c's AVX-512 kernel runs (its only one
    for doubles).

    Each block of rows packed W1 again: `predict-bulk`'s (784, 256, 128, 10) network over
    20,000 rows packed its 800 KB 79 times. Packed once (one thread, before the blocks: W1's
    copy and 4 rows' product took ~40 us by _testing.kernel_rows_product_packed, of a ~27 ms
    call), 2-core Xeon VM (AVX-512), 2026-12-04: benchmarks/ab_builds.py
    --workloads predict-bulk, 7 rounds, 0.955x the time; 20,000 rows in one process per build,
    builds in turns, medians of 40 calls: 27.9, 27.3, 26.7 ms against 28.9, 28.2, 27.8. The
    AVX2 kernel's copy (its panels of 16 columns), timed on the same VM with the AVX2 kernel
    forced in both builds (a scratch edit of rp_settle_available): 0.989x (7 rounds); not timed
    on an AVX2-only host."""
    cdef Py_ssize_t l, size, total = 0
    cdef int kernel = (fm_rows_product_kernel() if floating is float
                       else fm_rows_product_kernel_d())
    cdef floating *held
    cdef floating *at
    for l in range(g.n_layers):
        packs[l] = NULL
        total += packed_size(theta, kernel, g, l, sparse)
    if total == 0:
        return NULL
    held = <floating *> malloc(total * sizeof(floating) + 64)
    if held == NULL:
        return NULL
    at = <floating *> ((<size_t> held + 63) & ~(<size_t> 63))  # the kernel's aligned loads
    for l in range(g.n_layers):
        size = packed_size(theta, kernel, g, l, sparse)
        if size == 0:
            continue
        if floating is float:
            fm_rows_pack_f(kernel, at, theta + g.coef_offset[l], g.cols[l], g.units[l],
                           g.cols[l])
        else:
            fm_rows_pack_d(kernel, at, theta + g.coef_offset[l], g.cols[l], g.units[l],
                           g.cols[l])
        packs[l] = at
        at += size
    return held


cdef inline Py_ssize_t packed_size(const floating *theta, int kernel, const Geometry *g,
                                   Py_ssize_t l, bint sparse) noexcept nogil:
    """The elements of layer l's copy in predict_packs (0: none; a sparse X's first layer has
    none); theta only picks the dtype."""
    if l == 0 and sparse:
        return 0
    if floating is float:
        return fm_rows_packed_size(kernel, g.units[l], g.cols[l])
    else:
        return fm_rows_packed_size_d(kernel, g.units[l], g.cols[l])


def small_pack_copies(Network network, const floating[::1] theta):
    """A copy of the network's W laid out for one-row predictions (csrc/small_product.c's packed
    copy: each block of columns' rows one after another; on AVX-512, W's rows each on cache
    lines of their own), every layer's in turn in one array;
    None where no layer's copy would hold anything on this processor. It holds theta's weights
    as they are now: `predict(..., copies=...)` must be given it only while theta is unchanged
    (fastmlp/_serving.py's copy_for keeps that promise)."""
    cdef Geometry *g = &network.g
    cdef Py_ssize_t l, records = 0
    cdef floating[::1] copy
    cdef const floating **at
    cdef floating *record
    if theta.shape[0] != network.n_params:
        raise ValueError("theta must hold Network.n_params values")
    cdef Py_ssize_t size = copy_layout(g, &theta[0], NULL)
    if size == 0:
        return None
    # After the copies, each layer's record of its W's subnormal values (float32 copies on
    # AVX-512; csrc/small_product.c's "Subnormal weights"), as long as W's contents ask.
    with nogil:
        for l in range(g.n_layers):
            records += small_pack_record(&theta[g.coef_offset[l]], g.units[l], g.cols[l])
    # On a cache line (numpy places a large array 16 bytes past one), so that a block's
    # 256-byte row spans 4 lines, not 5: benchmarks/one_row_layout.c's 0.72 is of a copy on a
    # line, and a first build without this read 0.82 in the engine (perf of 300,000 one-row
    # calls, its run against the plain product's).
    itemsize = np.asarray(theta).itemsize
    array = np.empty(size + records + 64 // itemsize, dtype=np.asarray(theta).dtype)
    start = (-array.ctypes.data % 64) // itemsize
    array = array[start:start + size + records]
    copy = array
    at = <const floating **> malloc(g.n_layers * sizeof(floating *))
    if at == NULL:
        raise MemoryError()
    with nogil:
        copy_layout(g, &copy[0], at)
        record = &copy[0] + size
        for l in range(g.n_layers):
            if at[l] != NULL:
                records = small_pack_record(&theta[g.coef_offset[l]], g.units[l], g.cols[l])
                small_pack(<floating *> at[l], &theta[g.coef_offset[l]], g.units[l], g.cols[l],
                           record, records)
                record += records
    free(at)
    return array


cdef Py_ssize_t copy_layout(const Geometry *g, const floating *base,
                            const floating **at) noexcept nogil:
    """The packed copies' layout, written here only: every layer's copy in turn, each of
    fm_small_pack_size(units, cols) elements (none on processors whose loop would not gain).
    Returns the elements of the copies; the array may hold more after them (the records of
    small_pack_copies). With `at` (n_layers pointers), sets at[l] to where layer l's copy
    starts in the array at `base`, or NULL where the layer has none. (`base` picks the dtype
    even when it is only theta, for the size.)"""
    cdef Py_ssize_t l, length, size = 0
    for l in range(g.n_layers):
        length = small_pack_size(base, g.units[l], g.cols[l])
        if at != NULL:
            at[l] = base + size if length > 0 else NULL
        size += length
    return size


def predict(Network network, const floating[::1] theta, X, floating[:, ::1] out,
            int n_threads, fold=None, bint check_finite=False, copies=None):
    """out = the network's output activation for every row of X (a dense array with any
    strides, or CSR). A batch-normalised network needs `fold`, its normalization with the
    running statistics (Network.batch_norm_fold). check_finite (a dense X): returns True when
    the pass proved every value of X finite, False when it could not (see above: the caller
    then checks X itself); without it, returns None. copies: small_pack_copies(network, theta)
    of this very theta, unchanged since, or None; taken by fewer than SMALL_ROWS rows."""
    cdef Geometry *g = &network.g
    cdef Rows rows
    # Blocks of block_rows rows, or all of them if fewer: one row must not allocate (and
    # spread its few values over) scratch for a thousand.
    cdef Py_ssize_t n = out.shape[0], block_rows = PREDICT_ROWS, b
    cdef bint own_blocks = (own_rows_product(OWN_PRODUCT_ROWS) if floating is float
                            else own_rows_product_d(OWN_PRODUCT_ROWS))
    if own_blocks:
        block_rows = OWN_PRODUCT_ROWS  # the most rows csrc/rows_product.c's kernel takes
    cdef Py_ssize_t blocks = (n + block_rows - 1) // block_rows
    cdef Py_ssize_t cap = min(n, block_rows), scratch_size
    cdef int caller_cpu
    cdef unsigned int modes, own
    cdef bint check = check_finite, finite = True
    cdef const floating[::1] folded
    cdef const floating *fold_ptr = NULL
    cdef floating *scratch
    cdef unsigned char *block_finite
    cdef const floating[::1] copy
    cdef const floating **copy_ptrs = NULL
    cdef const floating **packs = NULL
    cdef floating *packs_held = NULL
    cdef double split_began = 0, split_wait = -1
    cdef double *split_at = NULL
    cdef bint gated = False
    if g.batch_norm:
        if fold is None:
            raise ValueError("a batch-normalised network predicts with its folded statistics")
        folded = fold
        if folded.shape[0] != 2 * g.n_bn_features:
            raise ValueError("fold must hold Network.n_running values")
        fold_ptr = &folded[0]
    if n == 0:
        return True if check else None
    set_input(&rows, X, &theta[0])
    if check and rows.sparse:
        raise ValueError("check_finite needs a dense X")
    rows.index = NULL
    rows.first = 0
    scratch_size = predict_scratch(g, &rows, cap)
    if n < SMALL_ROWS and n_threads > 1:
        # A few rows: one block on this thread, whose large products may take a helper
        # (csrc/placement.c's fm_split_begin says when)
        gated = True
        split_began = seconds_now()
        if fm_split_begin(split_began):
            split_at = &split_wait
    if blocks < n_threads:
        n_threads = <int> blocks
    # Per-thread scratch, allocated here so that a failure is a MemoryError, not a lost block
    # (malloc, not a numpy array: ~0.3 us of a one-row prediction's ~13); then each block's
    # verdict on finiteness (one byte per block, so that threads never write the same one).
    scratch = <floating *> malloc(n_threads * scratch_size * sizeof(floating) + blocks)
    if scratch == NULL:
        raise MemoryError()
    block_finite = <unsigned char *> (scratch + n_threads * scratch_size)
    try:
        if copies is not None and n < SMALL_ROWS:
            copy = copies
            if copy.shape[0] < copy_layout(g, &theta[0], NULL):
                raise ValueError("copies must be small_pack_copies(network, theta)")
            copy_ptrs = <const floating **> malloc(g.n_layers * sizeof(floating *))
            if copy_ptrs == NULL:
                raise MemoryError()
            copy_layout(g, &copy[0], copy_ptrs)
            if rows.sparse:
                copy_ptrs[0] = NULL  # a CSR first layer keeps W (its own product)
        if blocks > 1 and block_rows == OWN_PRODUCT_ROWS:
            packs = <const floating **> malloc(g.n_layers * sizeof(floating *))
            if packs == NULL:
                raise MemoryError()
            packs_held = predict_packs(g, &theta[0], rows.sparse, packs)
            if packs_held == NULL:
                free(packs)
                packs = NULL
        if n_threads == 1:
            with nogil:
                for b in range(blocks):
                    block_finite[b] = predict_block(
                        g, &theta[0], &rows, b * block_rows, min(n, (b + 1) * block_rows),
                        &out[0, 0], scratch, cap, fold_ptr, check, copy_ptrs, packs, split_at)
        else:
            caller_cpu = fm_current_cpu()
            modes = fm_fp_modes()  # each block under the caller's (csrc/fm_openmp.h says why)
            for b in prange(blocks, nogil=True, schedule='dynamic', num_threads=n_threads):
                if threadid() != 0:
                    fm_leave_cpu(caller_cpu)  # as in batch_step (csrc/placement.c)
                own = fm_fp_take(modes)
                block_finite[b] = predict_block(
                    g, &theta[0], &rows, b * block_rows, min(n, (b + 1) * block_rows),
                    &out[0, 0], scratch + threadid() * scratch_size, cap, fold_ptr, check,
                    copy_ptrs, packs, NULL)
                fm_fp_give_back(own, modes)
        if not check:
            return None
        for b in range(blocks):
            finite = finite and block_finite[b]
        return finite
    finally:
        if gated:
            fm_split_end(split_began, seconds_now(), split_wait)
        free(packs_held)
        free(packs)
        free(copy_ptrs)
        free(scratch)


def scratch_counts():
    """(blocks allocated so far, threads holding blocks now) by csrc/scratch.c in this module,
    whose threads run the epochs: the kernels' working memory is the threads' own, so once their
    blocks have grown to the largest call each runs, an epoch allocates none. For tests. (Here,
    not in _testing: each compiled module links its own copy of csrc/.)"""
    return fm_scratch_allocations(), fm_scratch_threads()


def scratch_kept():
    """Whether csrc/scratch.c keeps a thread's blocks from call to call (not where the engine is
    built with AddressSanitizer: there every call gets a block of its own size)."""
    return bool(fm_scratch_kept())


def scratch_poison(bint on):
    """Whether csrc/scratch.c fills every block it hands out with NaNs first (tests: a kernel
    must not read a part of its scratch it did not write in the same call)."""
    fm_scratch_set_poison(on)


def few_row_split(int mode):
    """Whether few-row predictions split a large W's product over two threads
    (csrc/placement.c): 0 by its rule (the default), 1 always, -1 never; for tests and
    benchmarks. Returns the mode before. (Here, not in _testing: each compiled module links its
    own copy of csrc/, so only this module's setting reaches predict.)"""
    global fm_split_mode
    cdef int before = fm_split_mode
    fm_split_mode = mode
    return before


def helper_slices(bint on):
    """Whether the epoch's pool helpers keep to their time slices (csrc/placement.c's
    fm_helper_slice: a helper yields before a job that its slice would end inside, and spins
    instead of yielding while it waits for a call); on by default; for tests and benchmarks.
    Returns the setting before. (Here, as few_row_split: each compiled module links its own
    copy of csrc/.)"""
    global fm_helper_slices
    cdef bint before = fm_helper_slices
    fm_helper_slices = on
    return before


def helper_yields():
    """How many times this process's pool helpers have yielded before a job that their time
    slice would have ended inside (csrc/placement.c's fm_helper_slice); for tests and
    benchmarks."""
    return fm_helper_yields


def subnormals_slow(verdict=None):
    """Whether this processor takes its time over subnormal numbers, as training and prediction
    see it (csrc/optimizers.c's fm_subnormals_slow: measured once); with `verdict` (True,
    False, or -1: measure again), set first; for tests. (Here as well as in _testing, as
    few_row_split is: each compiled module links its own copy of csrc/, so _testing's setting
    does not reach the estimators' fits and predictions. On an AMD Zen 4 host, which takes
    subnormal numbers in stride, a test that forced only _testing's verdict found no record of
    subnormal weights in the estimator's packed copies.)"""
    if verdict is not None:
        fm_set_subnormals_slow(-1 if verdict == -1 else int(bool(verdict)))
    return bool(fm_subnormals_slow())


# X's finiteness is proven on every thread from this many values on (a fit's X by
# fastmlp/_validation.py, a steady partial_fit's by SteadyCall.accepts), on one thread below.
# One thread reads ~3 values a nanosecond: 2**24 values are ~5 ms, and a second thread saves half.
# Below, a second thread saves under ~3 ms while risking more: beside a process that keeps a
# core busy, the region waits for a worker that the OS may start a time slice late. Measured
# on the 2-core AMD EPYC VM, `small` (20,000 x 64 float32 = 1.3 M values, half the workload)
# beside a spinning process, benchmarks/harness_runs.py's busy-core method (2 threads' epoch
# over 1 thread's, three runs of three epochs each, twice): with the check on two threads
# 1.09, 1.41, 1.17, 0.87, 1.11, 1.03, although its batches run on one thread either way; with
# it on one 0.92, 0.99, 1.05, 1.00, 0.80, 0.95 (the same code against itself: 0.80-1.25).
PARALLEL_CHECK_VALUES = PARALLEL_CHECK

# A steady partial_fit leaves X's finiteness to its epoch where X has at least this many times
# the values that the epoch changes (theta, the optimizer's state vectors, the running
# statistics), which it then copies once a call to put them back if X was not finite (SteadyCall):
# `mnist`'s X is 67 times them (float32, Adam), `wide`'s 4 (which keeps its pass: the copy would
# cost what the pass does), a 32-row call's under 1.
cdef enum:
    LATE_CHECK_FACTOR = 8


class InputNotFinite(Exception):
    """A steady partial_fit's epoch found X not finite, and put back everything it had changed:
    the caller runs the call's whole path, which raises scikit-learn's error."""


def surely_finite(const floating[:, ::1] X, int n_threads=1):
    """True when every value of X is finite, False when one is not, by one vectorised pass
    (fm_all_finite), exact for any finite value (a sum of squares in double, which this was,
    overflowed past ~1e154). Much cheaper than np.isfinite(X).all() on one row (no temporary);
    a large X is cut into SURE_CHUNKS blocks of rows shared by n_threads threads."""
    cdef Py_ssize_t rows = X.shape[0], cols = X.shape[1], c, r0, r1
    cdef unsigned char[::1] finite
    cdef bint all_of_it
    if rows == 0 or cols == 0:
        return True
    if rows * cols < 65536:
        return all_finite(&X[0, 0], rows * cols)
    if n_threads <= 1:
        with nogil:
            all_of_it = all_finite(&X[0, 0], rows * cols)
        return all_of_it
    finite = np.ones(SURE_CHUNKS, dtype=np.uint8)
    # Blocks handed out as threads come free, as the training passes hand out theirs
    # (_schedule.pxd): a thread that shares its core with another process takes fewer blocks
    # instead of leaving the others waiting for its half (on `mnist`, a 188 MB X, each epoch).
    for c in prange(SURE_CHUNKS, nogil=True, schedule='dynamic', num_threads=n_threads):
        r0 = block_start(rows, SURE_CHUNKS, c)
        r1 = block_start(rows, SURE_CHUNKS, c + 1)
        if r1 > r0:
            finite[c] = all_finite(&X[r0, 0], (r1 - r0) * cols)
    for c in range(SURE_CHUNKS):
        if not finite[c]:
            return False
    return True




# -- a partial_fit call in its steady state ------------------------------------------------------

cdef enum:
    TARGET_OWN_INDEX = 0  # integer classes 0..k-1: a label is its own index
    TARGET_SEARCH = 1     # other sorted integer classes: a label's index by bisection
    TARGET_VALUES = 2     # a regressor's one output

cdef object MISSING = object()  # a watched attribute the estimator did not have


cdef bint c_ordered(X, const void **data, Py_ssize_t *shape) except -1:
    """Whether X gives a C-ordered buffer; if it does, its data and, for a 2-D X, its shape
    (else -1, -1). numpy never moves an array's data: the pointer holds while X is held."""
    cdef Py_buffer view
    try:
        PyObject_GetBuffer(X, &view, PyBUF_C_CONTIGUOUS)
    except (BufferError, ValueError):  # (numpy raises the latter)
        return False
    data[0] = view.buf
    shape[0] = view.shape[0] if view.ndim == 2 else -1
    shape[1] = view.shape[1] if view.ndim == 2 else -1
    PyBuffer_Release(&view)
    return True


cdef bint same_objects(object d, tuple names, tuple values, tuple views) except -1:
    """Whether an estimator's __dict__ `d` (a plain dict: another mapping is refused) still
    holds, under each of `names`, the very object of `values` (MISSING: still no such
    attribute), and under each name of `views` (pairs of a name and a tuple) a list of the very
    elements of the tuple: what a compiled call (SteadyCall, SteadyPrediction) was made from."""
    cdef Py_ssize_t i
    cdef PyObject *found
    if type(d) is not dict:
        return False
    for i in range(len(names)):
        found = PyDict_GetItem(d, names[i])
        if found == NULL:
            if values[i] is not MISSING:
                return False
        elif <object> found is not values[i]:
            return False
    for name, elements in views:
        current = d[name]
        if len(current) != len(elements):
            return False
        for i in range(len(elements)):
            if current[i] is not elements[i]:
                return False
    return True


cdef class SteadyCall:
    """A partial_fit call in its steady state, compiled: what a model's partial_fit(X, y) reads
    and does when nothing but the data changed since its last call, at the cost of a few C
    checks where the estimator's Python (checks of the data, of the options against the fitted
    model, the target's indicator, the seeded shuffle, the optimizer's bookkeeping) cost ~60 us
    of a ~90 us call of 32 rows.

    The estimator makes one after a steady call that took its Python path
    (fastmlp/_multilayer_perceptron.py, `_make_steady_call`), from what that call read: the
    trainer and buffers, the optimizer, the rows' order it drew and the dropout seed, how the
    target is made. `accepts` checks a later call against it: the estimator's parameters and
    fitted attributes must be the very objects it was made from (any parameter set since, any
    attribute replaced, refuses), X a C-ordered array of the compute dtype, the same shape and
    finite, and y a 1-D array of the kind it was made for (integer labels, all known; or finite
    floats); it writes only its own target's rows, nothing of the estimator's. An X of at least
    LATE_CHECK_FACTOR times the values the epoch changes is proven finite by the epoch instead
    (the first layer's product, _layers.pxd's note_nonfinite); where it is not, `epoch` puts
    back everything it changed (_save, _put_back) and raises InputNotFinite, and the
    estimator takes the call's whole path, which raises scikit-learn's error. `epoch` runs
    the epoch as the Python path's _StochasticRun.epoch does, on the same buffers, with the
    same order and dropout seed (for an integer random_state: the seeded RandomState draws the
    same ones at every call, so they are the ones that call drew, and the held RandomState is
    already in the state those draws leave; for None or a RandomState, drawn from it at each
    call, in its order). The estimator keeps its Python bookkeeping after it
    (_stochastic_epochs), and drops this object whenever any other path runs, so nothing else
    can have moved the held RandomState. tests/estimator/test_partial_fit_steady.py compares the two paths bit for bit,
    option by option."""
    cdef Trainer trainer
    cdef readonly Py_ssize_t n_samples
    cdef readonly object theta
    cdef tuple names, values, views
    cdef object estimator_type, layer_sizes
    cdef object grad, state_1, state_2, state_3, optimizer, running, Y, order
    cdef object random_state, blas_limit, dtype, label_dtype, classes, X
    cdef Py_ssize_t n_features, n_outputs, n_classes, batch_size, n_steps, thread_cap
    cdef int target
    cdef bint shuffle, fixed_order, draws_dropout
    # X's finiteness left to the epoch (accepts: an X of at least LATE_CHECK_FACTOR x
    # saved_size values), and what the epoch then puts back if X was not (`epoch`).
    cdef bint check_later
    cdef readonly Py_ssize_t saved_size, late_checks  # (late_checks: the calls that left it)
    cdef tuple changed  # theta and the optimizer's state vectors that it has (not empty)
    cdef object saved, saved_running
    cdef unsigned long long dropout_seed
    cdef double max_grad_norm, weight_clip
    # Pointers into the arrays above, taken once (they are kept, and never move), and into the
    # accepted call's X: typed views taken at every call cost ~3 us, and their objects the
    # garbage collector's time.
    cdef void *theta_data
    cdef void *grad_data
    cdef void *state_data[3]
    cdef void *Y_data
    cdef Py_ssize_t *order_data
    cdef const long long *classes_data
    cdef const void *X_data

    def __init__(self, estimator, names, views, Trainer trainer, theta, grad, optimizer,
                 Py_ssize_t n_samples, Py_ssize_t n_features, Py_ssize_t batch_size,
                 Py_ssize_t thread_cap, order, bint fixed_order, random_state,
                 bint draws_dropout, target, classes, Py_ssize_t n_outputs, running,
                 blas_limit):
        """names: the attributes of the estimator that must stay the same objects; views: the
        names of lists whose elements must (coefs_, intercepts_). order: the rows' order (a
        permutation of n_samples rows that the trainer's dropout seed goes with, when
        fixed_order; else a buffer that random_state shuffles at each call; empty: no
        shuffle). target: "labels" (classes: sorted integer classes; n_outputs 1 for two of
        them, else one per class) or "values" (a regressor's one output). blas_limit: None
        (the engine's own limit, hold_blas) or a context manager."""
        cdef dict d = estimator.__dict__
        cdef Py_ssize_t i
        self.estimator_type = type(estimator)
        self.names = tuple(names)
        self.values = tuple([d.get(name, MISSING) for name in self.names])
        self.views = tuple([(name, tuple(d[name])) for name in views])
        # (A list may change in place. Sizes of another type than a tuple or a list of ints,
        # an array's, take the whole path: none of their calls makes a SteadyCall.)
        sizes = d.get("hidden_layer_sizes")
        self.layer_sizes = list(sizes) if type(sizes) is list else None
        self.trainer = trainer
        self.dtype = theta.dtype
        if self.dtype != (np.float64 if trainer.double_precision else np.float32):
            raise ValueError("theta's dtype is not the trainer's")
        if n_samples < 1 or batch_size < 1 or batch_size > trainer.capacity:
            raise ValueError("the call's rows do not fit the trainer")
        self.theta, self.grad, self.optimizer, self.running = theta, grad, optimizer, running
        self.state_1, self.state_2, self.state_3 = optimizer.state
        self.n_samples, self.n_features, self.batch_size = n_samples, n_features, batch_size
        self.n_steps = (n_samples + batch_size - 1) // batch_size
        self.thread_cap = max(1, thread_cap)
        self.order = np.array(order, dtype=np.intp)  # (its own: a shuffle writes it)
        self.shuffle = self.order.shape[0] > 0
        if self.shuffle and self.order.shape[0] != n_samples:
            raise ValueError("order must list every row")
        self.fixed_order = fixed_order
        self.random_state = None if fixed_order else random_state
        if self.shuffle and not fixed_order and random_state is None:
            raise ValueError("a shuffle drawn at each call needs its RandomState")
        self.draws_dropout = draws_dropout
        self.dropout_seed = trainer.dropout_seed
        self.max_grad_norm, self.weight_clip = trainer.max_grad_norm, trainer.weight_clip
        self.n_outputs = n_outputs
        if target == "values":
            self.target = TARGET_VALUES
            if n_outputs != 1:
                raise ValueError("a regressor's steady call has one output")
        elif target == "labels":
            self.label_dtype = classes.dtype
            if self.label_dtype not in (np.int64, np.int32) or classes.ndim != 1:
                raise ValueError("classes must be a 1-D array of int32 or int64")
            self.classes = np.ascontiguousarray(classes, dtype=np.int64)
            self.n_classes = self.classes.shape[0]
            if self.n_classes < 2 or n_outputs != (1 if self.n_classes == 2 else self.n_classes):
                raise ValueError("n_outputs does not fit the classes")
        else:
            raise ValueError(f"target must be 'labels' or 'values', got {target!r}")
        self.Y = np.empty((n_samples, n_outputs), dtype=self.dtype)
        self.blas_limit = blas_limit
        itemsize = self.dtype.itemsize
        self.theta_data = array_data(theta, itemsize, True)
        self.grad_data = array_data(grad, itemsize, True)
        if len(grad) != len(theta):
            raise ValueError("grad must have theta's length")
        for i, state in enumerate(optimizer.state):
            self.state_data[i] = array_data(state, itemsize, True)
            if len(state) not in (0, len(theta)):
                raise ValueError("an optimizer's state must have theta's length, or none")
        self.changed = tuple([part for part in (theta, *optimizer.state) if len(part) > 0])
        self.saved_size = (len(theta) * len(self.changed)
                           + (len(running) if running is not None else 0))
        self.Y_data = array_data(self.Y, itemsize, True)
        self.order_data = <Py_ssize_t *> array_data(self.order, sizeof(Py_ssize_t), True)
        self.classes_data = (<const long long *> array_data(self.classes, 8, False)
                             if self.classes is not None else NULL)
        if self.classes_data != NULL:
            for i in range(1, self.n_classes):
                if self.classes_data[i] <= self.classes_data[i - 1]:
                    raise ValueError("classes must be sorted and unique")
            own = (self.classes_data[0] == 0
                   and self.classes_data[self.n_classes - 1] == self.n_classes - 1)
            self.target = TARGET_OWN_INDEX if own else TARGET_SEARCH

    def accepts(self, estimator, X, y):
        """Whether partial_fit(X, y) on `estimator` is this call: True having made its target
        (and kept X for `epoch`), False having changed nothing of the estimator's."""
        cdef dict d
        cdef Py_ssize_t shape[2]
        cdef const void *data
        cdef bint finite
        if type(estimator) is not self.estimator_type:
            return False
        d = estimator.__dict__
        if not same_objects(d, self.names, self.values, self.views):
            return False
        if self.layer_sizes is not None and d["hidden_layer_sizes"] != self.layer_sizes:
            return False
        if (type(X) is not np.ndarray or X.ndim != 2 or X.shape[0] != self.n_samples
                or X.shape[1] != self.n_features
                or not (X.dtype is self.dtype or X.dtype == self.dtype)):
            return False
        if type(y) is not np.ndarray or y.ndim != 1 or y.shape[0] != self.n_samples:
            return False
        # (X's data stays where it is for as long as X is kept: self.X, until the epoch)
        if not c_ordered(X, &data, shape):
            return False
        # An X many times the size of what the epoch changes is not read for its check: the
        # epoch proves it finite as it goes (`epoch`). A pass of its own over X runs at
        # memory's speed: 5.2 ms of `mnist`'s ~0.25 s epoch, 8.7 ms of `mnist-f64`'s (perf:
        # 2.2 % and 3.1 % of their CPU; 2-core Intel Xeon VM, 2026-12-06). Builds in turns
        # (benchmarks/ab_builds.py, 10-16 rounds, three runs), the epoch after / before this:
        # `mnist` 0.996x, 0.989x, 0.996x, `mnist-f64` 0.971x, 0.970x; against a build that
        # checks nothing, 0.984x and 1.000x (12 rounds): the check in the epoch costs nothing
        # seen. Tried before (2026-12-03): each row checked as the epoch's gather copied it, a
        # copy loop slower than memcpy, which cost what it saved; here the check is one load a
        # row of the first layer's product.
        self.check_later = (self.n_samples * self.n_features
                            >= LATE_CHECK_FACTOR * self.saved_size)
        if self.check_later:
            finite = True  # (or the epoch puts everything back and says so: InputNotFinite)
        elif self.n_samples * self.n_features >= PARALLEL_CHECK:
            # As the Python path checks a large X (fastmlp/_validation.py): on every thread
            # (60,000 x 784 float32: 8 ms against 13 on one, 2-core AMD EPYC VM).
            finite = surely_finite(X, max(1, omp_get_max_threads()))
        elif self.trainer.double_precision:
            finite = all_finite(<const double *> data, self.n_samples * self.n_features)
        else:
            finite = all_finite(<const float *> data, self.n_samples * self.n_features)
        if not finite:  # (the Python path raises scikit-learn's error)
            return False
        if self.trainer.double_precision:
            made = self._make_target(<double *> self.Y_data, y)
        else:
            made = self._make_target(<float *> self.Y_data, y)
        if made:
            self.X, self.X_data = X, data
        return made

    cdef bint _make_target(self, floating *Y, y) except -1:
        """Y's rows (n_samples x n_outputs, C order) from y, as the Python path makes them;
        False when y is not of the kind this call takes, or holds a label that is not a
        class."""
        cdef Py_ssize_t n = self.n_samples, k = self.n_outputs, i, lo, hi, mid, column
        cdef long long label
        cdef Py_buffer view
        cdef const void *values
        cdef bint finite, wide
        if self.target == TARGET_VALUES:
            wide = y.dtype == np.float64
            if not wide and y.dtype != np.float32:
                return False
        elif y.dtype is self.label_dtype or y.dtype == self.label_dtype:
            wide = self.label_dtype == np.int64
        else:
            return False
        try:
            PyObject_GetBuffer(y, &view, PyBUF_C_CONTIGUOUS)
        except (BufferError, ValueError):
            return False
        values = view.buf  # (y is the caller's, alive for this call)
        PyBuffer_Release(&view)
        if self.target == TARGET_VALUES:
            if wide:
                if not all_finite(<const double *> values, n):
                    return False
                for i in range(n):
                    Y[i] = <floating> (<const double *> values)[i]
            else:
                if not all_finite(<const float *> values, n):
                    return False
                for i in range(n):
                    Y[i] = <floating> (<const float *> values)[i]
            return True
        # Each label's class index, written as found: a refused call leaves Y half written,
        # which nothing reads (the next call this one takes writes all of it).
        if k > 1:
            for i in range(n * k):
                Y[i] = 0
        for i in range(n):
            label = (<const long long *> values)[i] if wide else (<const int *> values)[i]
            if self.target == TARGET_OWN_INDEX:
                if label < 0 or label >= self.n_classes:
                    return False
                column = <Py_ssize_t> label
            else:
                lo, hi = 0, self.n_classes
                while lo < hi:
                    mid = (lo + hi) // 2
                    if self.classes_data[mid] < label:
                        lo = mid + 1
                    else:
                        hi = mid
                if lo == self.n_classes or self.classes_data[lo] != label:
                    return False
                column = lo
            if k == 1:
                Y[i] = 1 if column == 1 else 0
            else:
                Y[i * k + column] = 1
        return True

    def epoch(self, estimator, norm_sums):
        """The accepted call's epoch (as _StochasticRun.epoch): returns the sum over batches
        of batch loss x batch length; norm_sums (float64, one per layer) receives the mean
        over the steps of each layer's gradient norm."""
        cdef Py_ssize_t i, n_layers = self.trainer.network.g.n_layers
        cdef int n_threads
        cdef double accumulated
        cdef double *sums
        cdef Py_buffer view
        X, self.X = self.X, None
        if X is None:
            raise RuntimeError("epoch() runs the call that accepts() took, once")
        PyObject_GetBuffer(norm_sums, &view, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE | PyBUF_FORMAT)
        try:
            if view.len != n_layers * 8 or view.format[0] != b"d" or view.format[1] != 0:
                raise ValueError("norm_sums must be float64, one per layer")
            sums = <double *> view.buf
        finally:
            PyBuffer_Release(&view)  # (the caller keeps it: a row of its own buffer)
        # _runtime.threads_for_batch: OpenMP's threads (as the user limits them now), at most
        # those the batch's work pays for.
        n_threads = max(1, min(max(1, omp_get_max_threads()), self.thread_cap))
        check_later, self.check_later = self.check_later, False
        random_before = None
        if check_later:
            self.late_checks += 1
            self._save()
            if not self.fixed_order and (self.draws_dropout or self.shuffle):
                random_before = self.random_state.get_state()
        if self.fixed_order:
            self.trainer.dropout_seed = self.dropout_seed
        else:
            self.trainer.dropout_seed = 0
            if self.draws_dropout:
                self.trainer.dropout_seed = int(self.random_state.randint(0, 2**62,
                                                                         dtype=np.int64))
            if self.shuffle:  # scikit-learn's sample_idx: arange(n), shuffled
                for i in range(self.n_samples):
                    self.order_data[i] = i
                self.random_state.shuffle(self.order)
        self.trainer.max_grad_norm, self.trainer.weight_clip = self.max_grad_norm, self.weight_clip
        optimizer = self.optimizer
        spec = optimizer.spec()
        spec_before = spec.copy() if check_later else None
        interrupted = False
        if self.blas_limit is None:
            hold_blas()
        else:
            self.blas_limit.__enter__()
        try:
            if self.trainer.double_precision:
                accumulated = self._epoch(<double *> NULL, spec, n_threads, sums)
            else:
                accumulated = self._epoch(<float *> NULL, spec, n_threads, sums)
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            if self.blas_limit is None:
                release_blas()
            else:
                self.blas_limit.__exit__(None, None, None)
            optimizer.took_steps(spec)
            # After Ctrl-C too (the rows with a NaN may not have been reached), where this then
            # replaces the KeyboardInterrupt: the call's error is X's, as it is where X is
            # checked before the epoch begins.
            if (check_later and (interrupted or self.trainer.seen_nonfinite())
                    and not surely_finite(X, max(1, omp_get_max_threads()))):
                self._put_back(spec, spec_before, random_before)
                raise InputNotFinite()
        if self.n_steps > 1:  # (x / 1 is x, bit for bit)
            for i in range(n_layers):
                sums[i] /= self.n_steps
        return accumulated

    cdef _save(self):
        """Keep theta, the optimizer's state vectors and the running statistics as they are
        (in `saved`, made at the first call that needs it), for _put_back."""
        if self.saved is None:
            self.saved = np.empty((len(self.changed), len(self.theta)), dtype=self.dtype)
            if self.running is not None:
                self.saved_running = np.empty_like(self.running)
        for kept, part in zip(self.saved, self.changed):
            kept[...] = part
        if self.running is not None:
            self.saved_running[...] = self.running

    cdef _put_back(self, spec, spec_before, random_before):
        """Everything an epoch changed, as _save (and `epoch`) found it: theta, the state
        vectors, the running statistics, the solver's record and scalars (its step count), the
        held RandomState. (What else the epoch wrote is scratch that every epoch writes before
        it reads, or the caller's row of gradient norms, which it then does not count.)"""
        for kept, part in zip(self.saved, self.changed):
            part[...] = kept
        if self.running is not None:
            self.running[...] = self.saved_running
        spec[...] = spec_before
        self.optimizer.took_steps(spec)
        if random_before is not None:
            self.random_state.set_state(random_before)

    def weights_finite(self):
        """True when every weight is finite (after the epoch)."""
        if self.trainer.double_precision:
            return all_finite(<const double *> self.theta_data, len(self.theta))
        return all_finite(<const float *> self.theta_data, len(self.theta))

    cdef double _epoch(self, floating *like, spec, int n_threads,
                       double *norm_sums) except? -1.0:
        cdef Work work = self.trainer.template
        cdef Rows rows
        cdef Py_buffer record
        self.trainer._point_running(&work, self.running, <floating *> self.theta_data, True)
        set_dense_input(&rows, self.X_data, self.n_features)
        rows.Y = self.Y_data
        rows.w = NULL
        take_record(spec, &record)
        try:
            return self.trainer._epoch(
                &work, &rows, self.n_samples, self.order_data if self.shuffle else NULL,
                self.batch_size, <floating *> self.theta_data, <floating *> self.grad_data,
                <floating *> self.state_data[0], <floating *> self.state_data[1],
                <floating *> self.state_data[2], <fm_optim *> record.buf, n_threads, norm_sums)
        finally:
            PyBuffer_Release(&record)


# -- a few-row prediction in its steady state ----------------------------------------------------

cdef class SteadyPrediction:
    """A prediction of a few rows (fewer than SMALL_ROWS) in its steady state, compiled: what an
    estimator's `_forward_pass_fast(X)` does for a plain X (fastmlp/_validation.py's
    _is_plain_input) when nothing but X changed since the prediction it was made from, at the
    cost of a few C checks where that path's Python (the fitted model's checks, the weights'
    views, the network's key, X's checks, the output's allocation, the engine's fused-type
    dispatch and typed views of its arguments) cost ~1.8 us of a ~11 us one-row prediction of
    `mnist`'s network (benchmarks/RESULTS.md, 2026-12-03 20:49 UTC).

    The estimator makes one after such a prediction took its Python path
    (fastmlp/_multilayer_perceptron.py, `_forward_pass_fast`), from what that path read: its
    network, theta, and `copies`, a callable that gives the packed copy of W that a prediction
    may read now or None (fastmlp/_serving.py's copy_for for this network and theta, asked at
    every call as the Python path asks it, so that its rules stay in one place). `predict`
    refuses (returns None) unless the estimator's watched attributes are the very objects it
    was made from (absent ones still absent) and its lists of views hold the same elements,
    and X is a C-ordered ndarray of theta's dtype with 1 to SMALL_ROWS - 1 rows of the
    network's width; it refuses too when its pass could not prove X finite (the Python path
    then raises scikit-learn's error, or predicts a finite X whose products overflow). It runs
    predict_block as `predict` does on one thread (its large products shared with a helper
    where self.choice and csrc/placement.c's rule say so): the same bits
    (tests/estimator/test_steady_prediction.py compares the two paths). A batch-normalised
    network's prediction needs its folded statistics at every call: it has none."""
    cdef Network network
    cdef readonly object theta
    cdef object estimator_type, dtype, copies
    cdef tuple names, values, views, shapes
    cdef Py_ssize_t n_features, n_outputs, n_copy
    cdef bint double_precision, splits
    cdef const void *theta_data
    # Whether a call splits its large products over two threads, chosen by what each way has
    # cost this model's calls (_threads.pxd's choice, as for a Trainer's batches): on the
    # 2-core AMD EPYC VM the split took 0.55-0.75x one thread's time in most processes and
    # 1.25-1.3x in some (a helper whose CPU or L2 is shared elsewhere, it seems), lasting.
    cdef ThreadChoice choice

    def __init__(self, estimator, names, views, Network network, theta, copies):
        """names: the estimator's attributes that must stay the same objects; views: the names
        of lists whose elements must (coefs_, intercepts_)."""
        d = estimator.__dict__
        cdef Geometry *g = &network.g
        cdef Py_ssize_t n
        if g.batch_norm:
            raise ValueError("a batch-normalised network predicts with its folded statistics")
        self.estimator_type = type(estimator)
        self.names = tuple(names)
        self.values = tuple([d.get(name, MISSING) for name in self.names])
        self.views = tuple([(name, tuple(d[name])) for name in views])
        self.network, self.theta, self.copies = network, theta, copies
        self.dtype = theta.dtype
        self.double_precision = self.dtype == np.float64
        if not self.double_precision and self.dtype != np.float32:
            raise ValueError("theta must be float32 or float64")
        if theta.ndim != 1 or theta.shape[0] != network.n_params:
            raise ValueError("theta must hold Network.n_params values")
        self.theta_data = array_data(theta, self.dtype.itemsize, False)
        self.n_features, self.n_outputs = g.units[0], g.units[g.n_layers]
        self.shapes = tuple([(n, self.n_outputs) for n in range(SMALL_ROWS)])
        if self.double_precision:
            self.n_copy = copy_layout(g, <const double *> NULL, NULL)
        else:
            self.n_copy = copy_layout(g, <const float *> NULL, NULL)
        self.splits = False
        for n in range(g.n_layers):
            if self.double_precision:
                self.splits |= small_split(<const double *> NULL, g.units[n], g.cols[n]) > 0
            else:
                self.splits |= small_split(<const float *> NULL, g.units[n], g.cols[n]) > 0
        choice_init(&self.choice, 2)

    def predict(self, estimator, X):
        """The network's output for X's rows (a new C-ordered array, n x outputs), or None:
        refused, and nothing of the estimator's changed."""
        cdef Py_ssize_t shape[2]
        cdef const void *data
        cdef Py_ssize_t n
        if type(estimator) is not self.estimator_type or type(X) is not np.ndarray:
            return None
        if not same_objects(estimator.__dict__, self.names, self.values, self.views):
            return None
        dtype = X.dtype
        if not (dtype is self.dtype or dtype == self.dtype):
            return None
        # (X's data stays where it is: the caller holds X for the call)
        if not c_ordered(X, &data, shape) or shape[1] != self.n_features:
            return None
        n = shape[0]
        if n < 1 or n >= SMALL_ROWS:
            return None
        copy = self.copies()
        out = np.empty(self.shapes[n], dtype=self.dtype)
        if self.double_precision:
            finite = self._predict(<const double *> data, n, out, copy)
        else:
            finite = self._predict(<const float *> data, n, out, copy)
        return out if finite else None

    cdef bint _predict(self, const floating *X, Py_ssize_t n, out, copy) except -1:
        cdef Geometry *g = &self.network.g
        cdef Rows rows
        cdef Py_ssize_t scratch_bytes
        cdef char *scratch
        cdef const floating **copy_ptrs = NULL
        cdef floating *out_data = <floating *> array_data(out, sizeof(floating), True)
        cdef bint finite
        cdef double split_began = 0, split_ended, split_wait = -1
        cdef double *split_at = NULL
        cdef int which = 0
        cdef bint chose = self.splits and omp_get_max_threads() > 1
        # a helper where this model's choice asks for one (self.choice), OpenMP may give it,
        # and fm_split_begin finds it still spinning; a call that asked and was refused is not
        # counted either way. (A model with nothing to split reads no clock: ~0.1 us of a
        # ~2.6 us call.)
        if chose:  # (few_row_split's mode, where set, overrides the choice, and its calls
                   # are not counted: benchmarks/one_row_threads.py's rounds of one thread
                   # would otherwise read as the choice's probes)
            split_began = seconds_now()
            which = choice_next(&self.choice) if fm_split_mode == 0 else fm_split_mode > 0
            if which == 1 and fm_split_begin(split_began):
                split_at = &split_wait
        set_dense_input(&rows, X, self.n_features)
        rows.index = NULL
        rows.first = 0
        # One allocation: the scratch, then (with a copy) the copy's pointers, one a layer,
        # on a line of their own.
        scratch_bytes = (predict_scratch(g, &rows, n) * sizeof(floating) + 63) // 64 * 64
        scratch = <char *> malloc(scratch_bytes + g.n_layers * sizeof(floating *))
        if scratch == NULL:
            raise MemoryError()
        try:
            if copy is not None:
                if len(copy) < self.n_copy:
                    raise ValueError("copies() must give small_pack_copies(network, theta)")
                copy_ptrs = <const floating **> (scratch + scratch_bytes)
                copy_layout(g, <const floating *> array_data(copy, sizeof(floating), False),
                            copy_ptrs)
            with nogil:
                finite = predict_block(g, <const floating *> self.theta_data, &rows, 0, n,
                                       out_data, <floating *> scratch, n, NULL, True, copy_ptrs,
                                       NULL, split_at)
        finally:
            if chose:
                split_ended = seconds_now()
                fm_split_end(split_began, split_ended, split_wait)
            free(scratch)
        if chose and fm_split_mode == 0 and (which == 0 or split_at != NULL):
            choice_record(&self.choice, which, (split_ended - split_began) / n)
        return finite


cdef void *array_data(array, Py_ssize_t itemsize, bint writable) except? NULL:
    """The data of a C-contiguous array of `itemsize`-byte items (NULL when it is empty), for a
    pointer kept as long as the array is: numpy never moves an array's data."""
    cdef Py_buffer view
    cdef void *data
    PyObject_GetBuffer(array, &view, PyBUF_C_CONTIGUOUS | (PyBUF_WRITABLE if writable else 0))
    try:
        if view.itemsize != itemsize:
            raise ValueError(f"an array of {itemsize}-byte items was expected")
        data = view.buf if view.len > 0 else NULL
    finally:
        PyBuffer_Release(&view)
    return data
