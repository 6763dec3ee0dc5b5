# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""The training engine: forward, backward and optimizer steps over one flat parameter vector.

Design
------
Parameters. One flat vector theta holds every W^l (row-major, fan_in x fan_out, as scikit-learn's
``coefs_``) followed by every b^l; the estimator's ``coefs_``/``intercepts_`` are views into it.
The gradient and the optimizer's state vectors have the same layout, so finishing the gradient
and stepping the optimizer is one element-wise pass (csrc/optimizers.c).

Data. Batches are row-major (batch x features). With shuffling, a batch's rows are gathered into
a scratch block inside the first layer's forward job, while they are being read anyway; without
it the engine works on the slice of X in place. An X whose rows are not contiguous (a
DataFrame's values are column-major) is gathered the same way, batch by batch, never copied
whole. Every buffer (each layer's activations and deltas, the gather block, per-row losses, and
what an option needs: z, dropout's outputs, maxout's winners) is allocated once per fit by
``Trainer``; nothing is allocated inside an epoch. The whole epoch runs in one call with the GIL released; it
takes the GIL back only for a moment now and then, to let Ctrl-C through (see Interrupts below).

Layers. For layer l with input a (rows x n_in) and output width n_out:
    forward   z = a W + b, a' = act(z)              one GEMM, then bias + activation in one pass
    output    delta = (p - y) * w                   output activation fused with its loss
    backward  dW = a^T delta, db = sum_rows delta    (the weight gradient)
              delta_prev = (delta W^T) * act'(a)      (skipped for the first layer: no input grad)

Threads. A mini-batch is two parallel passes, each over its own outputs, cut into blocks whose
boundaries depend only on the shapes, never on the thread count:
  1. row blocks: everything that is row by row — the forward pass through every layer, the
     output delta, every hidden delta (delta_prev for a row needs only that row's delta);
  2. weight blocks: each layer's W cut into blocks of rows, and each bias; a job computes its
     block's gradient over the whole batch (one GEMM), then finishes it and takes the
     optimizer's step on it while it is in cache.
So every output element is computed by the same sequence of BLAS calls whatever the number of
threads (bitwise-identical fits with 1 thread or 16), no per-thread gradient copies or
reductions are needed, and a mini-batch waits at two barriers whatever the depth. (DESIGN.md
sketches per-shard gradients summed in a fixed order; blocking the outputs gives the same
determinism with O(params) instead of O(shards x params) memory and no summation pass.)
Measured on this 2-core machine under load: one barrier per layer and pass made two threads
75x slower than one on `small`; two barriers per batch brought that to 2x, and on a quiet machine
the barriers cost a few microseconds. BLAS runs single-threaded inside these loops; the caller
holds it to one thread (threadpoolctl).

Beyond scikit-learn (README.md, "Beyond scikit-learn"). Activations whose derivative needs z
(gelu, silu, mish, softplus) keep it in one more buffer laid out as the activations, allocated
only for them. A maxout layer's W has k columns per unit (cols[l] = k units[l + 1]); its product
goes to the layer's delta rows (free until backward reaches them), the max to the activations and
the winner's index to an int buffer; backward widens each delta row in place to the k pieces
(hidden_backward), so deltas are laid out by cols, not units. Dropout writes the kept, rescaled
outputs to a separate buffer that the next layer reads, so the activations stay intact for act';
its mask is a hash of (seed, step, sample, unit), recomputed in backward, the same whichever
thread computes it. Weight jobs step the torch.optim solvers in C (fm_optim) and clamp the
parameters after the step; clipping the gradient's global norm needs every block's gradient
first, so then the step moves to a third pass, after the norm is summed from per-job partial sums
in job order.

Interrupts. Python runs its signal handlers (Ctrl-C's KeyboardInterrupt) only when C code asks,
with the GIL. The calling thread asks after each mini-batch and, so that one long batch (a
full-batch step on large data, an L-BFGS gradient) does not hold Ctrl-C back, before each job of
every pass; at most every INTERRUPT_SECONDS, so the GIL is taken rarely. Once a handler has
raised, every thread skips its remaining jobs and the exception propagates: a batch stopped in
pass 1 changes nothing; one stopped later leaves each weight block either fully stepped or
untouched (a block's step is taken only on its complete gradient), so theta stays finite.
Arrays are indexed with Py_ssize_t / ptrdiff_t throughout (past 2^31 elements); only BLAS sizes
are int, and each of those is one dimension of one block.
"""
from cython cimport floating
from cython.parallel cimport prange, threadid
from cpython.exc cimport PyErr_CheckSignals
from cpython.ref cimport PyObject, Py_INCREF, Py_XDECREF
from libc.math cimport isfinite, pow, sqrt
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

import numpy as np

from fastmlp._blas cimport NoTrans, Trans, gemm
from fastmlp._kernels cimport (
    small_product, FM_EXP, FM_IDENTITY, FM_LOGISTIC, FM_LOSS_BINARY_LOG, FM_LOSS_LOG, FM_LOSS_POISSON,
    FM_LOSS_SQUARED, FM_RELU, FM_SOFTMAX, FM_TANH, activation_backward, adam_step,
    fm_exp_array_d, fm_exp_array_f,
    bias_activation_forward, finalize_gradient, output_delta, sgd_step, sum_squares,
)
# Beyond scikit-learn: torch.nn.functional's activations, maxout, dropout, more losses, the
# torch.optim solvers and gradient / weight clipping.
from fastmlp._kernels cimport (
    FM_ELU, FM_GELU, FM_LEAKY_RELU, FM_LOSS_ABSOLUTE, FM_LOSS_HUBER, FM_LOSS_SQUARED_LOGISTIC,
    FM_LOSS_SQUARED_SOFTMAX, FM_MAXOUT, FM_MISH, FM_SILU, FM_SOFTPLUS, FM_SOLVER_ADADELTA,
    FM_SOLVER_ADAGRAD, FM_SOLVER_ADAMAX, FM_SOLVER_ADAMW, FM_SOLVER_NADAM, FM_SOLVER_RMSPROP,
    clamp, dropout_backward, dropout_forward, fm_activation_needs_preactivation,
    fm_activation_params, fm_dropout_key, fm_expm1_array_d, fm_expm1_array_f,
    fm_log1p_unit_array_d, fm_log1p_unit_array_f, fm_optim, fm_optim_begin_step,
    maxout_backward, maxout_forward, optim_step, scale,
)

cdef extern from "fm_openmp.h" nogil:
    int omp_get_max_threads()
    double omp_get_wtime()
    int fm_load_flag(const int *flag)
    void fm_store_flag(int *flag, int value)
    int fm_current_cpu()
    void fm_leave_cpu(int cpu)
    int FASTMLP_HAVE_OPENMP

ACTIVATION_CODES = {
    "identity": FM_IDENTITY, "logistic": FM_LOGISTIC, "tanh": FM_TANH, "relu": FM_RELU,
    "softmax": FM_SOFTMAX, "exp": FM_EXP, "leaky_relu": FM_LEAKY_RELU, "elu": FM_ELU,
    "gelu": FM_GELU, "silu": FM_SILU, "mish": FM_MISH, "softplus": FM_SOFTPLUS,
}
# The hidden layers take every activation but the output-only ones, plus maxout (a layer kind
# of its own, never a kernel code of bias_activation_forward).
HIDDEN_ACTIVATIONS = {name: code for name, code in ACTIVATION_CODES.items()
                      if name not in ("softmax", "exp")}
HIDDEN_ACTIVATIONS["maxout"] = FM_MAXOUT
LOSS_CODES = {
    "squared_error": FM_LOSS_SQUARED, "log_loss": FM_LOSS_LOG,
    "binary_log_loss": FM_LOSS_BINARY_LOG, "poisson": FM_LOSS_POISSON,
    "absolute_error": FM_LOSS_ABSOLUTE, "huber": FM_LOSS_HUBER,
    "softmax_squared_error": FM_LOSS_SQUARED_SOFTMAX,
    "logistic_squared_error": FM_LOSS_SQUARED_LOGISTIC,
}
OUTPUT_LOSSES = {  # out_activation_ -> (activation code, loss code)
    "softmax": (FM_SOFTMAX, FM_LOSS_LOG),
    "logistic": (FM_LOGISTIC, FM_LOSS_BINARY_LOG),
    "identity": (FM_IDENTITY, FM_LOSS_SQUARED),
    "exp": (FM_EXP, FM_LOSS_POISSON),
}
# (out_activation_, the estimator's loss) -> loss code, where the loss is not the output's
# canonical one (every other pair takes OUTPUT_LOSSES's).
OTHER_LOSSES = {
    ("identity", "absolute_error"): FM_LOSS_ABSOLUTE,
    ("identity", "huber"): FM_LOSS_HUBER,
    ("softmax", "squared_error"): FM_LOSS_SQUARED_SOFTMAX,
    ("logistic", "squared_error"): FM_LOSS_SQUARED_LOGISTIC,
}

cdef enum Solver:
    SOLVER_SGD = 0
    SOLVER_ADAM = 1

SOLVERS = {
    "sgd": SOLVER_SGD, "adam": SOLVER_ADAM, "adagrad": FM_SOLVER_ADAGRAD,
    "rmsprop": FM_SOLVER_RMSPROP, "adadelta": FM_SOLVER_ADADELTA, "adamax": FM_SOLVER_ADAMAX,
    "nadam": FM_SOLVER_NADAM, "adamw": FM_SOLVER_ADAMW,
}
OPENMP_ENABLED = bool(FASTMLP_HAVE_OPENMP)

# Block sizes. n rows are cut into an even number (for two cores) of blocks of MIN_ROWS rows or
# more (a W's rows: MIN_WEIGHT_ROWS), at most MAX_BLOCKS of them, and into two as soon as there
# are MIN_SPLIT rows. Each block's GEMM packs its whole other operand again (W in the forward pass, the deltas
# in the weight pass), so few large blocks are best: on the 2-core machine, row blocks of >= 64
# rows against >= 256 took mnist from 0.27 to 0.22-0.25 s per epoch and wide from 1.07 to 0.94 s
# (scipy's OpenBLAS, SkylakeX kernel). The weight pass keeps smaller blocks (>= 128 of W's rows):
# with only two per layer, mnist ran 1.45x faster on 2 threads than on 1; with >= 128, 1.73-1.88x.
# Below 16 rows a split costs more than it saves. Below
# SMALL_ROWS rows a product is done row by row without BLAS (csrc/small_product.c).
DEF MIN_ROWS = 256
DEF MIN_WEIGHT_ROWS = 128
DEF MIN_SPLIT = 16
DEF SMALL_ROWS = 4
SMALL_PREDICT_ROWS = SMALL_ROWS  # fewer rows than this predict without calling BLAS
DEF MAX_BLOCKS = 16
DEF PREDICT_ROWS = 1024
DEF SURE_CHUNKS = 16  # surely_finite's blocks of rows
DEF INTERRUPT_SECONDS = 0.02
DEF BLAS_INT_MAX = 2147483647  # BLAS (LP64) takes sizes as int: each dimension must fit


def max_threads():
    """OpenMP's thread count: all cores unless OMP_NUM_THREADS or threadpoolctl limit it."""
    return omp_get_max_threads()


cdef struct Geometry:
    Py_ssize_t n_layers            # weight layers (scikit-learn's n_layers_ - 1)
    Py_ssize_t *units              # n_layers + 1 widths, the input first
    Py_ssize_t *coef_offset        # where W^l starts in theta
    Py_ssize_t *intercept_offset   # where b^l starts in theta
    Py_ssize_t *act_prefix         # sum of units[1..l]: where layer l's output starts, per row
    Py_ssize_t n_coefs             # every W; the intercepts follow
    Py_ssize_t n_params
    Py_ssize_t max_width           # widest layer after the input
    int hidden_activation
    int output_activation
    int loss
    double alpha                   # L2 penalty, as scikit-learn's alpha
    # Beyond scikit-learn:
    Py_ssize_t *cols               # columns of W^l: units[l + 1], times k for a maxout layer
    Py_ssize_t *col_prefix         # sum of cols[0..l-1]: where layer l's delta starts, per row
    Py_ssize_t maxout_pieces       # k, the linear pieces of a maxout unit (1 if not maxout)
    Py_ssize_t n_hidden            # hidden units per row (act_prefix[n_layers - 1])
    fm_activation_params act_params
    bint keep_z                    # hidden layers keep z = a W + b: their act' needs it
    double loss_param              # huber's delta
    double dropout                 # rate on hidden units; 0: none


cdef inline Py_ssize_t n_blocks(Py_ssize_t n, Py_ssize_t min_rows) noexcept nogil:
    """How many blocks n rows are cut into: depends on n only, never on the thread count."""
    cdef Py_ssize_t k = n // min_rows
    if k > MAX_BLOCKS:
        k = MAX_BLOCKS
    if k < 2:
        return 2 if n >= MIN_SPLIT else 1
    return k - (k % 2)


cdef inline Py_ssize_t block_start(Py_ssize_t n, Py_ssize_t blocks, Py_ssize_t b) noexcept nogil:
    return (n * b) // blocks


cdef class Network:
    """The geometry of a perceptron: widths, activations, loss and where each W and b live.

    Beyond scikit-learn's options: `loss` (the estimator's loss name; None or the output's
    canonical loss keep OUTPUT_LOSSES's pairing), the activations' parameters, `maxout_pieces`
    (k: a maxout hidden layer's W^l is fan_in x (fan_out k), column j k + p being piece p of unit
    j), huber's delta and the dropout rate on hidden units."""
    cdef Geometry g
    cdef Py_ssize_t[::1] _sizes  # owns the memory the Geometry's pointers point into
    cdef readonly Py_ssize_t n_coefs, n_params

    def __init__(self, layer_units, hidden_activation, out_activation, double alpha=0.0,
                 loss=None, *, double negative_slope=0.01, double elu_alpha=1.0,
                 double softplus_beta=1.0, double softplus_threshold=20.0,
                 Py_ssize_t maxout_pieces=2, double huber_delta=1.0, double dropout=0.0):
        units = [int(u) for u in layer_units]
        if max(units) * max(1, maxout_pieces) > BLAS_INT_MAX:
            raise ValueError(f"Layer widths and the number of features must be at most "
                             f"{BLAS_INT_MAX} (BLAS takes each dimension as a 32-bit int).")
        cdef Py_ssize_t L = len(units) - 1, l
        self._sizes = np.zeros(6 * (L + 1), dtype=np.intp)
        self.g.n_layers = L
        self.g.units = &self._sizes[0]
        self.g.coef_offset = &self._sizes[L + 1]
        self.g.intercept_offset = &self._sizes[2 * (L + 1)]
        self.g.act_prefix = &self._sizes[3 * (L + 1)]
        self.g.cols = &self._sizes[4 * (L + 1)]
        self.g.col_prefix = &self._sizes[5 * (L + 1)]
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


# ---------------------------------------------------------------------------------------------
# Interrupts: the calling thread runs Python's signal handlers now and then (see Design).
# ---------------------------------------------------------------------------------------------

cdef struct Interrupt:
    double next_check      # omp_get_wtime() after which the calling thread asks again
    int raised             # a handler raised: every thread skips the rest of the batch
    PyObject *exception    # what it raised (a new reference), re-raised by reraise_interrupt


cdef inline void interrupt_init(Interrupt *it) noexcept nogil:
    it.next_check = 0.0    # ask at the first chance: every engine call checks at least once
    it.raised = 0
    it.exception = NULL


cdef bint interrupted(Interrupt *it, bint calling_thread) noexcept nogil:
    """True once a signal handler raised. The calling thread (the only one with a Python thread
    state) runs the pending handlers if INTERRUPT_SECONDS have passed since it last did."""
    cdef double now
    if it == NULL:
        return False
    if fm_load_flag(&it.raised) or not calling_thread:
        return fm_load_flag(&it.raised)
    now = omp_get_wtime()
    if now < it.next_check:
        return False
    it.next_check = now + INTERRUPT_SECONDS
    with gil:
        try:
            PyErr_CheckSignals()
        except BaseException as exc:
            it.exception = <PyObject *> exc
            Py_INCREF(exc)
            fm_store_flag(&it.raised, 1)
    return fm_load_flag(&it.raised)


cdef int reraise_interrupt(Interrupt *it) except -1:
    """Raise what a signal handler raised during the engine call, if anything."""
    cdef object exc
    if it.exception == NULL:
        return 0
    exc = <object> it.exception
    Py_XDECREF(it.exception)
    it.exception = NULL
    raise exc


# ---------------------------------------------------------------------------------------------
# One layer: forward and backward side by side. Arguments: outputs first, then inputs, then sizes.
# ---------------------------------------------------------------------------------------------

cdef void dense_product(floating *out, const floating *a_in, Py_ssize_t ld_in,
                        const floating *W, Py_ssize_t rows, Py_ssize_t n_in,
                        Py_ssize_t n_out) noexcept nogil:
    """out (rows x n_out) = a_in (rows x n_in, leading dim ld_in) @ W: a layer's z before the
    bias (layer_forward adds the bias and the activation)."""
    if rows < SMALL_ROWS:
        # A few rows (one-row prediction): no BLAS at all (csrc/small_product.c says why).
        small_product(out, a_in, ld_in, W, rows, n_in, n_out)
    else:
        gemm(NoTrans, NoTrans, <int> rows, <int> n_out, <int> n_in, <floating> 1.0,
             a_in, <int> ld_in, W, <int> n_out, <floating> 0.0, out, <int> n_out)


cdef void dense_backward_weights(floating *dW, const floating *a_in, Py_ssize_t ld_in,
                                 const floating *delta, Py_ssize_t rows, Py_ssize_t n_in_block,
                                 Py_ssize_t n_out, bint accumulate) noexcept nogil:
    """dW (n_in_block x n_out) (+)= a_in[:, block]^T @ delta: rows of W's gradient."""
    gemm(Trans, NoTrans, <int> n_in_block, <int> n_out, <int> rows, <floating> 1.0,
         a_in, <int> ld_in, delta, <int> n_out, <floating> (1.0 if accumulate else 0.0),
         dW, <int> n_out)


cdef void dense_backward_bias(floating *db, const floating *delta, Py_ssize_t rows,
                              Py_ssize_t n_out, bint accumulate) noexcept nogil:
    """db (+)= sum over rows of delta, row after row (numpy's order for sum(axis=0))."""
    cdef Py_ssize_t r, j
    cdef const floating *row
    if not accumulate:
        memset(db, 0, n_out * sizeof(floating))
    for r in range(rows):
        row = delta + r * n_out
        for j in range(n_out):
            db[j] += row[j]


cdef void dense_backward_input(floating *delta_in, const floating *delta, const floating *W,
                               Py_ssize_t rows, Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil:
    """delta_in (rows x n_in) = delta @ W^T, for every layer but the first: dLoss/d(its input),
    which hidden_backward then turns into the previous layer's delta."""
    gemm(NoTrans, Trans, <int> rows, <int> n_in, <int> n_out, <floating> 1.0,
         delta, <int> n_out, W, <int> n_out, <floating> 0.0, delta_in, <int> n_in)


# ---------------------------------------------------------------------------------------------
# Sparse input (CSR): only the first layer ever sees X, so only its forward and its weight
# gradient have sparse versions; they visit each row's non-zeros in order, as scipy does.
# ---------------------------------------------------------------------------------------------

cdef struct Rows:
    # The rows a pass works on: row r of the pass is source row index[r] when index is not NULL,
    # else first + r. X (dense: element (i, j) at i * ldx + j * col_stride) or the CSR triplet,
    # Y and w point at row 0.
    const void *X
    Py_ssize_t ldx
    Py_ssize_t col_stride
    bint strided             # X's rows are not BLAS operands (see gathers)
    const void *sp_data
    const void *sp_indices   # int32 or int64 (wide_index), like sp_indptr
    const void *sp_indptr
    bint sparse
    bint wide_index
    const void *Y
    const void *w
    const Py_ssize_t *index
    Py_ssize_t first
    Py_ssize_t n


cdef inline Py_ssize_t source_row(const Rows *rows, Py_ssize_t r) noexcept nogil:
    return rows.index[r] if rows.index != NULL else rows.first + r


cdef inline Py_ssize_t csr_at(const Rows *rows, const void *array, Py_ssize_t k) noexcept nogil:
    if rows.wide_index:
        return <Py_ssize_t> (<const long long *> array)[k]
    return <Py_ssize_t> (<const int *> array)[k]


cdef void sparse_product(floating *a_out, const Rows *rows, Py_ssize_t r0, Py_ssize_t r1,
                         const floating *W, Py_ssize_t n_out) noexcept nogil:
    """a_out (rows r0..r1 x n_out) = X[rows] @ W, X in CSR (layer_forward adds the bias and the
    activation)."""
    cdef Py_ssize_t r, k, j, src, col
    cdef floating value
    cdef floating *out_row
    cdef const floating *w_row
    cdef const floating *data = <const floating *> rows.sp_data
    for r in range(r0, r1):
        src = source_row(rows, r)
        out_row = a_out + (r - r0) * n_out
        memset(out_row, 0, n_out * sizeof(floating))
        for k in range(csr_at(rows, rows.sp_indptr, src), csr_at(rows, rows.sp_indptr, src + 1)):
            value = data[k]
            w_row = W + csr_at(rows, rows.sp_indices, k) * n_out
            for j in range(n_out):
                out_row[j] += value * w_row[j]


cdef void sparse_backward_weights(floating *dW, const Rows *rows, const floating *delta,
                                  Py_ssize_t n_out, Py_ssize_t i0, Py_ssize_t i1,
                                  bint accumulate) noexcept nogil:
    """dW[i0:i1] (+)= (X[rows]^T @ delta)[i0:i1], X in CSR: a block of W's rows. Each block
    scans the batch's non-zeros and keeps those of its columns; for sparse data that scan is
    small next to the dense rows it writes."""
    cdef Py_ssize_t r, k, j, src, col
    cdef floating value
    cdef floating *dw_row
    cdef const floating *d_row
    cdef const floating *data = <const floating *> rows.sp_data
    if not accumulate:
        memset(dW + i0 * n_out, 0, (i1 - i0) * n_out * sizeof(floating))
    for r in range(rows.n):
        src = source_row(rows, r)
        d_row = delta + r * n_out
        for k in range(csr_at(rows, rows.sp_indptr, src), csr_at(rows, rows.sp_indptr, src + 1)):
            col = csr_at(rows, rows.sp_indices, k)
            if col < i0 or col >= i1:
                continue
            value = data[k]
            dw_row = dW + col * n_out
            for j in range(n_out):
                dw_row[j] += value * d_row[j]


# ---------------------------------------------------------------------------------------------
# A whole network over a set of rows.
# ---------------------------------------------------------------------------------------------

cdef struct Work:
    void *acts        # each layer's output, layer l at n * act_prefix[l], row-major
    void *deltas      # each layer's delta, layer l at n * col_prefix[l] (as acts unless maxout)
    void *gathered    # capacity x n_features: the shuffled batch's input rows
    double *row_loss  # capacity
    double *partial   # one sum(W^2) per weight job
    const Py_ssize_t *job_layer   # weight job j: layer, and W's rows lo..hi (hi < 0: the bias)
    const Py_ssize_t *job_lo
    const Py_ssize_t *job_hi
    Py_ssize_t n_jobs
    Py_ssize_t capacity
    # Beyond scikit-learn; each NULL unless the network needs it. Hidden layers only, laid out
    # as acts (layer l at n * act_prefix[l]).
    void *pre         # z = a W + b, for activations whose derivative needs z
    void *dropped     # the hidden outputs after dropout: the next layer's input
    int *argmax       # maxout: the winning piece of each unit
    double *grad_partial             # one sum(g^2) per weight job (max_grad_norm)
    unsigned long long dropout_key   # this step's key (fm_dropout_key)
    long long dropout_threshold      # p 2^53; 0: no dropout in this pass
    double dropout_scale             # 1 / (1 - p)
    Interrupt *interrupt             # NULL: not stoppable


cdef struct Step:
    # What the weight jobs do once a block's gradient is complete.
    bint finish           # add the L2 term and divide by the batch's weight (else leave it raw)
    bint take_step        # then update the parameters
    double divisor        # sum of the batch's sample weights (its size when unweighted)
    int solver
    double learning_rate  # SGD's rate, or Adam's bias-corrected step size for this step
    double momentum
    bint nesterov
    double beta_1
    double beta_2
    double epsilon
    # Beyond scikit-learn:
    fm_optim *optim       # the torch.optim solvers: hyper-parameters and this step's scalars
    double max_grad_norm  # 0: the gradient's norm is not clipped
    double grad_scale     # this step's clip factor, min(1, max_grad_norm / (|g| + 1e-6))
    double weight_clip    # 0: the parameters are not clamped


cdef inline bint gathers(const Rows *rows) noexcept nogil:
    """Whether the first layer reads its rows from the gather block: for a shuffled batch, and
    for an X whose columns are not contiguous (a DataFrame's column-major values, a strided
    view), which is read where it lies rather than copied whole into C order."""
    return rows.index != NULL or rows.strided


cdef void gather_rows(floating *dst, Py_ssize_t dst_first, const Rows *rows, Py_ssize_t r0,
                      Py_ssize_t r1, Py_ssize_t n_in) noexcept nogil:
    """dst[r - dst_first] = row r of the pass, for r in r0..r1 (dst row-major, n_in columns)."""
    cdef const floating *X = <const floating *> rows.X
    cdef const floating *column
    cdef Py_ssize_t r, j
    if rows.col_stride == 1:
        for r in range(r0, r1):
            memcpy(dst + (r - dst_first) * n_in, X + source_row(rows, r) * rows.ldx,
                   n_in * sizeof(floating))
        return
    for j in range(n_in):  # column by column: a column-major X is read along its columns
        column = X + j * rows.col_stride
        for r in range(r0, r1):
            dst[(r - dst_first) * n_in + j] = column[source_row(rows, r) * rows.ldx]


cdef const floating *dense_input(const Rows *rows, const floating *gathered) noexcept nogil:
    """The first layer's dense input for this pass: the gather block (n_features columns; see
    gathers), or X's consecutive rows in place (rows.ldx apart)."""
    if gathers(rows):
        return gathered
    return <const floating *> rows.X + rows.first * rows.ldx


cdef inline const void *hidden_input(const Work *work) noexcept nogil:
    """The buffer of what hidden layers pass on to the next: their output, or that output after
    dropout (laid out as acts)."""
    return work.dropped if work.dropout_threshold > 0 else work.acts


cdef void layer_forward(const Geometry *g, Py_ssize_t l, floating *a_out, floating *z_out,
                        int *argmax, floating *pieces, const floating *a_in, Py_ssize_t ld_in,
                        const Rows *rows, Py_ssize_t r0, Py_ssize_t r1,
                        const floating *theta) noexcept nogil:
    """Layer l's output for rows r0..r1 (a_out: rows x units[l + 1]): its product (the sparse X
    for the first layer of a sparse pass, else a_in @ W), bias and activation, keeping z in z_out
    if not NULL. A maxout layer's k pieces per unit go to `pieces` (rows x cols[l]) and the
    winners to argmax (if not NULL)."""
    cdef Py_ssize_t n_out = g.units[l + 1], n_cols = g.cols[l]
    cdef bint maxout = l < g.n_layers - 1 and g.hidden_activation == FM_MAXOUT
    cdef floating *product = pieces if maxout else a_out
    cdef const floating *W = theta + g.coef_offset[l]
    cdef const floating *b = theta + g.intercept_offset[l]
    if l == 0 and rows.sparse:
        sparse_product(product, rows, r0, r1, W, n_cols)
    else:
        dense_product(product, a_in, ld_in, W, r1 - r0, g.units[l], n_cols)
    if maxout:
        maxout_forward(a_out, argmax, pieces, b, r1 - r0, n_out, g.maxout_pieces)
    else:
        bias_activation_forward(a_out, z_out, b, r1 - r0, n_out,
                                g.output_activation if l == g.n_layers - 1
                                else g.hidden_activation, &g.act_params)


cdef void hidden_backward(const Geometry *g, Py_ssize_t l, floating *delta, Py_ssize_t r0,
                          Py_ssize_t r1, const Rows *rows, const Work *work) noexcept nogil:
    """Rows r0..r1 of hidden layer l: dLoss/d(output after dropout), compact (units[l + 1] wide)
    at delta, becomes the layer's delta dLoss/dz in place: times dropout's mask, then times act'
    or, for maxout, routed to the winning pieces (the rows widen to cols[l])."""
    cdef Py_ssize_t n = g.units[l + 1]
    cdef Py_ssize_t slot = rows.n * g.act_prefix[l] + r0 * n
    if work.dropout_threshold > 0:
        dropout_backward(delta, r1 - r0, n, work.dropout_key,
                         rows.index + r0 if rows.index != NULL else NULL, rows.first + r0,
                         g.n_hidden, g.act_prefix[l], work.dropout_threshold,
                         work.dropout_scale)
    if g.hidden_activation == FM_MAXOUT:
        maxout_backward(delta, work.argmax + slot, r1 - r0, n, g.maxout_pieces)
    else:
        activation_backward(delta, <const floating *> work.acts + slot,
                            <const floating *> work.pre + slot if g.keep_z else NULL,
                            (r1 - r0) * n, g.hidden_activation, &g.act_params)


cdef void rows_job(const Geometry *g, Py_ssize_t job, Py_ssize_t blocks,
                   const floating *theta, const Rows *rows, const Work *work) noexcept nogil:
    """Everything that is row by row, for one block of rows: the forward pass through every
    layer, the output delta, and every hidden layer's delta. No other block is waited for."""
    cdef Py_ssize_t r0 = block_start(rows.n, blocks, job)
    cdef Py_ssize_t r1 = block_start(rows.n, blocks, job + 1), r, l, slot
    cdef Py_ssize_t n_in, n_out, ld_in, L = g.n_layers
    cdef floating *acts = <floating *> work.acts
    cdef floating *deltas = <floating *> work.deltas
    cdef floating *a_out
    cdef const floating *a_in = NULL
    cdef const floating *X = <const floating *> rows.X
    cdef floating *gathered = <floating *> work.gathered
    cdef const floating *Y = <const floating *> rows.Y
    cdef const floating *w = <const floating *> rows.w
    cdef floating *delta_out
    if r1 == r0:
        return
    for l in range(L):
        n_in, n_out = g.units[l], g.units[l + 1]
        slot = rows.n * g.act_prefix[l] + r0 * n_out
        ld_in = n_in
        if l == 0 and not rows.sparse and gathers(rows):
            gather_rows(gathered, 0, rows, r0, r1, n_in)
            a_in = gathered + r0 * n_in
        elif l == 0 and not rows.sparse:
            a_in = X + (rows.first + r0) * rows.ldx
            ld_in = rows.ldx
        elif l > 0:
            a_in = <const floating *> hidden_input(work) + rows.n * g.act_prefix[l - 1] + r0 * n_in
        # A maxout layer's pieces go to its delta rows, not needed before backward reaches them.
        layer_forward(g, l, acts + slot,
                      <floating *> work.pre + slot if g.keep_z and l < L - 1 else <floating *> NULL,
                      work.argmax + slot if work.argmax != NULL else NULL,
                      deltas + rows.n * g.col_prefix[l] + r0 * g.cols[l], a_in, ld_in, rows, r0,
                      r1, theta)
        if l < L - 1 and work.dropout_threshold > 0:
            dropout_forward(<floating *> work.dropped + slot, acts + slot, r1 - r0, n_out,
                            work.dropout_key, rows.index + r0 if rows.index != NULL else NULL,
                            rows.first + r0, g.n_hidden, g.act_prefix[l], work.dropout_threshold,
                            work.dropout_scale)
    n_out = g.units[L]
    a_out = acts + rows.n * g.act_prefix[L - 1] + r0 * n_out
    delta_out = deltas + rows.n * g.col_prefix[L - 1] + r0 * n_out
    if rows.index != NULL:
        output_delta(delta_out, work.row_loss + r0, a_out, Y, w, rows.index + r0, r1 - r0,
                     n_out, g.loss, g.loss_param)
    else:
        output_delta(delta_out, work.row_loss + r0, a_out, Y + (rows.first + r0) * n_out,
                     w + rows.first + r0 if w != NULL else NULL, NULL, r1 - r0, n_out, g.loss,
                     g.loss_param)
    for l in range(L - 1, 0, -1):
        # Rows r0..r1 of layer l - 1's delta start at r0 * cols[l - 1], the layout its weight
        # jobs read; the product is compact (units[l] wide) until hidden_backward.
        delta_out = deltas + rows.n * g.col_prefix[l - 1] + r0 * g.cols[l - 1]
        dense_backward_input(delta_out, deltas + rows.n * g.col_prefix[l] + r0 * g.cols[l],
                             theta + g.coef_offset[l], r1 - r0, g.units[l], g.cols[l])
        hidden_backward(g, l - 1, delta_out, r0, r1, rows, work)


cdef void step_job(const Geometry *g, Py_ssize_t job, floating *theta, floating *grad,
                   floating *state_1, floating *state_2, floating *state_3, const Step *step,
                   const Work *work) noexcept nogil:
    """Weight job j's step, its gradient finished: scale it (max_grad_norm), update the
    parameters, clamp them (weight_clip)."""
    cdef Py_ssize_t l = work.job_layer[job], lo = work.job_lo[job], hi = work.job_hi[job]
    cdef Py_ssize_t n_out = g.cols[l], offset, count
    if hi < 0:
        offset, count = g.intercept_offset[l], n_out
    else:
        offset, count = g.coef_offset[l] + lo * n_out, (hi - lo) * n_out
    if step.grad_scale != 1.0:
        scale(grad + offset, count, step.grad_scale)
    if step.solver == SOLVER_SGD:
        sgd_step(theta + offset, grad + offset, state_1 + offset, count, step.learning_rate,
                 step.momentum, step.nesterov)
    elif step.solver == SOLVER_ADAM:
        adam_step(theta + offset, grad + offset, state_1 + offset, state_2 + offset, count,
                  step.learning_rate, step.beta_1, step.beta_2, step.epsilon)
    else:
        optim_step(step.optim, theta + offset, grad + offset, state_1 + offset,
                   state_2 + offset if state_2 != NULL else NULL,
                   state_3 + offset if state_3 != NULL else NULL, count)
    if step.weight_clip > 0:
        clamp(theta + offset, count, step.weight_clip)


cdef void finish_job(const Geometry *g, Py_ssize_t job, floating *theta, floating *grad,
                     floating *state_1, floating *state_2, floating *state_3, const Step *step,
                     const Work *work) noexcept nogil:
    """Weight job j once its gradient is complete: note sum(W^2) for the loss, finish the
    gradient ((g + alpha W) / sum(w); intercepts unpenalised), take the optimizer's step (or,
    with max_grad_norm, note sum(g^2): the step waits for the whole gradient's norm)."""
    cdef Py_ssize_t l = work.job_layer[job], lo = work.job_lo[job], hi = work.job_hi[job]
    cdef Py_ssize_t n_out = g.cols[l], offset, count
    work.partial[job] = 0.0
    if hi < 0:
        offset, count = g.intercept_offset[l], n_out
        finalize_gradient(grad + offset, <floating *> NULL, count, 0.0, step.divisor)
    else:
        offset, count = g.coef_offset[l] + lo * n_out, (hi - lo) * n_out
        work.partial[job] = sum_squares(theta + offset, count)
        finalize_gradient(grad + offset, theta + offset, count, g.alpha, step.divisor)
    if not step.take_step:
        return
    if step.max_grad_norm > 0:
        work.grad_partial[job] = sum_squares(grad + offset, count)
        return
    step_job(g, job, theta, grad, state_1, state_2, state_3, step, work)


cdef void weights_job(const Geometry *g, Py_ssize_t job, floating *theta, floating *grad,
                      floating *state_1, floating *state_2, floating *state_3, const Step *step,
                      bint accumulate, const Rows *rows, const Work *work) noexcept nogil:
    """Weight job j: a block of rows of one layer's W (or its bias) — its gradient over the
    whole batch, then (step.finish) finished and applied while it is still in cache."""
    cdef Py_ssize_t l = work.job_layer[job], lo = work.job_lo[job], hi = work.job_hi[job]
    cdef Py_ssize_t n_in = g.units[l], n_out = g.cols[l], ld_in = n_in
    cdef const floating *delta = <const floating *> work.deltas + rows.n * g.col_prefix[l]
    cdef const floating *a_in
    if hi < 0:
        dense_backward_bias(grad + g.intercept_offset[l], delta, rows.n, n_out, accumulate)
    elif l == 0 and rows.sparse:
        sparse_backward_weights(grad + g.coef_offset[0], rows, delta, n_out, lo, hi, accumulate)
    else:
        if l == 0:
            a_in = dense_input(rows, <const floating *> work.gathered)
            ld_in = n_in if gathers(rows) else rows.ldx
        else:
            a_in = <const floating *> hidden_input(work) + rows.n * g.act_prefix[l - 1]
        dense_backward_weights(grad + g.coef_offset[l] + lo * n_out, a_in + lo, ld_in, delta,
                               rows.n, hi - lo, n_out, accumulate)
    if step.finish:
        finish_job(g, job, theta, grad, state_1, state_2, state_3, step, work)


cdef double batch_step(const Geometry *g, floating *theta, floating *grad, floating *state_1,
                       floating *state_2, floating *state_3, Step *step, bint accumulate,
                       const Rows *rows, const Work *work, int n_threads) noexcept nogil:
    """Backpropagation over rows in two parallel passes, then (step.finish) the update.
    Pass 1 is row by row (forward, deltas), pass 2 is weight block by weight block (gradient,
    finish, step): two barriers per mini-batch whatever the depth; with max_grad_norm a third
    pass steps, once the gradient's norm is known. Returns sum_rows w_r loss_r; step.divisor is
    set to sum_rows w_r when step.finish, else left as given. Once work.interrupt is raised, the
    remaining jobs are skipped (the caller must check it)."""
    cdef Py_ssize_t job, r, r_blocks = n_blocks(rows.n, MIN_ROWS)
    cdef double total = 0.0, divisor = 0.0, norm = 0.0
    cdef const floating *w = <const floating *> rows.w
    cdef Interrupt *it = work.interrupt
    cdef int caller_cpu = fm_current_cpu() if n_threads > 1 else -1
    for job in prange(r_blocks, schedule='static', num_threads=n_threads):
        if threadid() != 0:
            fm_leave_cpu(caller_cpu)  # csrc/placement.c: why
        if not interrupted(it, threadid() == 0):
            rows_job(g, job, r_blocks, theta, rows, work)
    if it != NULL and it.raised:
        return 0.0
    for r in range(rows.n):
        if w == NULL:
            total += work.row_loss[r]
        else:
            total += w[source_row(rows, r)] * work.row_loss[r]
            divisor += w[source_row(rows, r)]
    if step.finish:
        step.divisor = divisor if w != NULL else <double> rows.n
    step.grad_scale = 1.0
    for job in prange(work.n_jobs, schedule='dynamic', num_threads=n_threads):
        if not interrupted(it, threadid() == 0):
            weights_job(g, job, theta, grad, state_1, state_2, state_3, step, accumulate, rows,
                        work)
    if it != NULL and it.raised:
        return total
    if step.finish and step.take_step and step.max_grad_norm > 0:
        # torch.nn.utils.clip_grad_norm_: g *= min(1, max_norm / (|g| + 1e-6)), the norm summed
        # from the jobs' partial sums in job order (the same whatever the thread count).
        for job in range(work.n_jobs):
            norm = norm + work.grad_partial[job]
        norm = sqrt(norm)
        if step.max_grad_norm / (norm + 1e-6) < 1.0:
            step.grad_scale = step.max_grad_norm / (norm + 1e-6)
        for job in prange(work.n_jobs, schedule='static', num_threads=n_threads):
            if not interrupted(it, threadid() == 0):
                step_job(g, job, theta, grad, state_1, state_2, state_3, step, work)
    return total


cdef double finish_all(const Geometry *g, floating *theta, floating *grad, const Step *step,
                       const Work *work, int n_threads) noexcept nogil:
    """Finish an accumulated gradient without stepping (L-BFGS); returns sum(W^2)."""
    cdef Py_ssize_t job
    cdef double total = 0.0
    for job in prange(work.n_jobs, schedule='static', num_threads=n_threads):
        finish_job(g, job, theta, grad, <floating *> NULL, <floating *> NULL, <floating *> NULL,
                   step, work)
    for job in range(work.n_jobs):
        total = total + work.partial[job]
    return total


cdef inline double sum_partials(const Work *work) noexcept nogil:
    cdef Py_ssize_t job
    cdef double total = 0.0
    for job in range(work.n_jobs):
        total = total + work.partial[job]
    return total


cdef int set_input(Rows *rows, object X, const floating *like) except -1:
    """Point rows at X: a dense array with any strides, or a CSR matrix (of the same dtype as
    `like`) whose indices and indptr are both int32 or both int64."""
    cdef const floating[:, :] dense
    cdef const floating[::1] data
    cdef const int[::1] indices_32, indptr_32
    cdef const long long[::1] indices_64, indptr_64
    rows.X = rows.sp_data = rows.sp_indices = rows.sp_indptr = NULL
    # (No Python attribute is asked of an ndarray: this runs on every one-row prediction.)
    rows.sparse = not isinstance(X, np.ndarray) and hasattr(X, "indptr")
    rows.wide_index = False
    rows.col_stride = 1
    rows.strided = False
    if not rows.sparse:
        dense = X
        rows.ldx = dense.shape[1]
        rows.X = &dense[0, 0] if dense.shape[0] > 0 and dense.shape[1] > 0 else NULL
        if (dense.shape[0] > 1 and dense.strides[0] != dense.shape[1] * <Py_ssize_t> sizeof(floating)
                or dense.shape[1] > 1 and dense.strides[1] != <Py_ssize_t> sizeof(floating)):
            rows.ldx = dense.strides[0] // <Py_ssize_t> sizeof(floating)
            rows.col_stride = dense.strides[1] // <Py_ssize_t> sizeof(floating)
            # BLAS reads rows in place only at unit column stride and a row stride >= width.
            rows.strided = rows.col_stride != 1 or rows.ldx < dense.shape[1]
        return 0
    rows.ldx = X.shape[1]
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


cdef fm_optim read_optim(optimizer) except *:
    """A torch.optim solver's hyper-parameters and scalar state, from its Python object."""
    cdef fm_optim o
    o.solver = optimizer.solver
    o.lr = optimizer.learning_rate_init
    o.eps = optimizer.eps
    o.weight_decay = optimizer.weight_decay
    o.beta_1 = optimizer.beta_1
    o.beta_2 = optimizer.beta_2
    o.rho = optimizer.rho
    o.momentum = optimizer.momentum
    o.lr_decay = optimizer.lr_decay
    o.momentum_decay = optimizer.momentum_decay
    o.centered = optimizer.centered
    o.amsgrad = optimizer.amsgrad
    o.decoupled_weight_decay = optimizer.decoupled_weight_decay
    o.t = optimizer.t
    o.mu_product = optimizer.mu_product
    o.c0 = o.c1 = o.c2 = o.c3 = 0.0
    return o


cdef class Trainer:
    """Every buffer a fit needs, allocated once; runs epochs and full-batch gradients.

    Beyond scikit-learn: the buffers that the network's options need (z for activations whose
    derivative needs it, the dropped-out hidden outputs, maxout's winners), dropout's seed, and
    the clipping of the gradient's norm and of the parameters after each step (0: none)."""
    cdef Network network
    cdef readonly object acts, deltas, gathered, row_loss, partial, jobs
    cdef readonly object pre, dropped, argmax, grad_partial
    cdef readonly Py_ssize_t capacity
    cdef readonly unsigned long long dropout_seed
    cdef readonly double max_grad_norm, weight_clip

    def __init__(self, Network network, Py_ssize_t capacity, Py_ssize_t n_features, dtype,
                 bint sparse=False, *, unsigned long long dropout_seed=0,
                 double max_grad_norm=0.0, double weight_clip=0.0):
        if capacity > BLAS_INT_MAX:  # a whole batch is the inner size of a gradient's GEMM
            raise ValueError(f"batch_size must be at most {BLAS_INT_MAX} (a BLAS dimension).")
        self.network = network
        self.capacity = capacity
        g = &network.g
        self.acts = np.empty(capacity * g.act_prefix[g.n_layers], dtype=dtype)
        self.deltas = np.empty(capacity * g.col_prefix[g.n_layers], dtype=dtype)
        # A sparse X is read in place: nothing to gather.
        self.gathered = np.empty(0 if sparse else capacity * n_features, dtype=dtype)
        self.row_loss = np.empty(capacity, dtype=np.float64)
        # The weight jobs: every layer's W cut into blocks of rows (fixed by the shapes, so the
        # same whatever the thread count), and its bias; the largest layers first.
        jobs = []
        for l in range(g.n_layers):
            blocks = n_blocks(g.units[l], MIN_WEIGHT_ROWS)
            for b in range(blocks):
                jobs.append((l, block_start(g.units[l], blocks, b),
                             block_start(g.units[l], blocks, b + 1)))
            jobs.append((l, 0, -1))
        self.jobs = np.ascontiguousarray(np.array(jobs, dtype=np.intp).T)
        self.partial = np.zeros(len(jobs), dtype=np.float64)
        self.grad_partial = np.zeros(len(jobs), dtype=np.float64)
        hidden = capacity * g.n_hidden
        self.pre = np.empty(hidden if g.keep_z else 0, dtype=dtype)
        self.dropped = np.empty(hidden if g.dropout > 0 else 0, dtype=dtype)
        self.argmax = np.empty(hidden if g.hidden_activation == FM_MAXOUT else 0, dtype=np.intc)
        self.dropout_seed = dropout_seed
        self.max_grad_norm = max_grad_norm
        self.weight_clip = weight_clip

    cdef Work _work(self, floating[::1] acts, floating[::1] deltas, floating[::1] gathered):
        cdef Work work
        cdef double[::1] row_loss = self.row_loss
        cdef double[::1] partial = self.partial
        cdef double[::1] grad_partial = self.grad_partial
        cdef Py_ssize_t[:, ::1] jobs = self.jobs
        cdef floating[::1] pre = self.pre
        cdef floating[::1] dropped = self.dropped
        cdef int[::1] argmax = self.argmax
        work.acts = &acts[0]
        work.deltas = &deltas[0]
        work.gathered = &gathered[0] if gathered.shape[0] > 0 else NULL
        work.row_loss = &row_loss[0]
        work.partial = &partial[0]
        work.job_layer = &jobs[0, 0]
        work.job_lo = &jobs[1, 0]
        work.job_hi = &jobs[2, 0]
        work.n_jobs = jobs.shape[1]
        work.capacity = self.capacity
        work.pre = &pre[0] if pre.shape[0] > 0 else NULL
        work.dropped = &dropped[0] if dropped.shape[0] > 0 else NULL
        work.argmax = &argmax[0] if argmax.shape[0] > 0 else NULL
        work.grad_partial = &grad_partial[0]
        work.dropout_key = 0
        work.dropout_threshold = 0
        work.dropout_scale = 1.0 / (1.0 - self.network.g.dropout)
        work.interrupt = NULL  # the caller points it at its Interrupt to make batches stoppable
        return work

    cdef void _dropout_step(self, Work *work, long long step) noexcept nogil:
        """Dropout's key for optimizer step `step` (1, 2, ...; < 0: no dropout in this pass)."""
        cdef double p = self.network.g.dropout
        work.dropout_threshold = 0
        if p > 0 and step >= 0:
            work.dropout_key = fm_dropout_key(self.dropout_seed, step)
            work.dropout_threshold = <long long> (p * 9007199254740992.0)  # p 2^53

    def epoch(self, floating[::1] theta, floating[::1] grad, floating[::1] state_1,
              floating[::1] state_2, X, const floating[:, ::1] Y,
              const floating[::1] sample_weight, const Py_ssize_t[::1] order,
              Py_ssize_t batch_size, optimizer, int n_threads, state_3=None):
        """One epoch of mini-batch training: batches are order[0:b], order[b:2b], ... (or the
        consecutive rows of X when order is empty). X is a C-contiguous array or a CSR matrix.
        Returns sum over batches of batch loss x batch length, as scikit-learn accumulates it.
        The optimizer object gives the solver and its hyper-parameters, and keeps its step
        count t (and NAdam's mu_product); state_3 is the third state vector of the torch.optim
        solvers that have one."""
        cdef Geometry *g = &self.network.g
        cdef floating[::1] acts = self.acts
        cdef floating[::1] deltas = self.deltas
        cdef floating[::1] gathered = self.gathered
        cdef floating[::1] third_state
        cdef floating *state_3_ptr = NULL
        cdef Work work = self._work(acts, deltas, gathered)
        cdef Interrupt interrupt
        cdef Rows rows
        cdef Step step
        cdef fm_optim optim
        cdef Py_ssize_t n_samples = Y.shape[0], start, stop
        cdef bint shuffled = order.shape[0] > 0, weighted = sample_weight.shape[0] > 0
        cdef double learning_rate, batch_loss, accumulated = 0.0
        cdef long t = optimizer.t
        if batch_size > self.capacity:
            raise ValueError("batch_size exceeds the trainer's capacity")
        step.finish = step.take_step = True
        step.solver = optimizer.solver
        step.momentum = step.beta_1 = step.beta_2 = step.epsilon = 0.0
        step.nesterov = False
        if step.solver == SOLVER_SGD:
            learning_rate = optimizer.learning_rate
            step.momentum = optimizer.momentum
            step.nesterov = optimizer.nesterov
        elif step.solver == SOLVER_ADAM:
            learning_rate = optimizer.learning_rate_init
            step.beta_1, step.beta_2 = optimizer.beta_1, optimizer.beta_2
            step.epsilon = optimizer.epsilon
        else:
            learning_rate = optimizer.learning_rate_init
            optim = read_optim(optimizer)
        step.learning_rate = learning_rate
        step.optim = &optim
        step.max_grad_norm = self.max_grad_norm
        step.weight_clip = self.weight_clip
        step.grad_scale = 1.0
        if state_3 is not None and len(state_3) > 0:
            third_state = state_3
            state_3_ptr = &third_state[0]
        set_input(&rows, X, &theta[0])
        rows.Y = &Y[0, 0]
        rows.w = &sample_weight[0] if weighted else NULL
        interrupt_init(&interrupt)
        work.interrupt = &interrupt
        try:
            with nogil:
                start = 0
                while start < n_samples:
                    stop = start + batch_size
                    if stop > n_samples:
                        stop = n_samples
                    rows.n = stop - start
                    rows.first = start
                    rows.index = &order[start] if shuffled else NULL
                    # The step's counter and scalars; dropout's mask depends on the counter.
                    if step.solver >= FM_SOLVER_ADAGRAD:
                        fm_optim_begin_step(&optim)
                        t = optim.t
                    else:
                        t += 1
                    if step.solver == SOLVER_ADAM:
                        step.learning_rate = (learning_rate * sqrt(1.0 - pow(step.beta_2, t))
                                              / (1.0 - pow(step.beta_1, t)))
                    self._dropout_step(&work, t)
                    batch_loss = batch_step(g, &theta[0], &grad[0], &state_1[0],
                                            &state_2[0] if state_2.shape[0] > 0 else NULL,
                                            state_3_ptr, &step, False, &rows, &work, n_threads)
                    if interrupt.raised:
                        break
                    batch_loss = (batch_loss / step.divisor
                                  + 0.5 * g.alpha * sum_partials(&work) / step.divisor)
                    accumulated = accumulated + batch_loss * rows.n
                    start = stop
                    if interrupted(&interrupt, True):
                        break
            reraise_interrupt(&interrupt)
        finally:
            optimizer.t = t
            if step.solver >= FM_SOLVER_ADAGRAD:
                optimizer.mu_product = optim.mu_product
        return accumulated

    def loss_gradient(self, floating[::1] theta, floating[::1] grad, X,
                      const floating[:, ::1] Y, const floating[::1] sample_weight,
                      int n_threads, long long dropout_step=-1):
        """Full-batch loss and gradient at theta (for L-BFGS), in chunks of `capacity` rows
        whose gradients accumulate in order. Returns the loss; grad receives the gradient.
        dropout_step >= 0 applies the dropout masks of that optimizer step (for gradient checks;
        by default, as in prediction, there is no dropout)."""
        cdef Geometry *g = &self.network.g
        cdef floating[::1] acts = self.acts
        cdef floating[::1] deltas = self.deltas
        cdef floating[::1] gathered = self.gathered
        cdef Work work = self._work(acts, deltas, gathered)
        cdef Interrupt interrupt
        cdef Rows rows
        cdef Step step
        cdef Py_ssize_t n_samples = Y.shape[0], start, r
        cdef bint weighted = sample_weight.shape[0] > 0
        cdef double data_loss = 0.0, sum_w2 = 0.0
        step.finish = step.take_step = False
        step.divisor = <double> n_samples
        step.max_grad_norm = step.weight_clip = 0.0
        set_input(&rows, X, &theta[0])
        rows.Y = &Y[0, 0]
        rows.w = &sample_weight[0] if weighted else NULL
        rows.index = NULL
        interrupt_init(&interrupt)
        work.interrupt = &interrupt
        with nogil:
            self._dropout_step(&work, dropout_step)
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
# thread, with that thread's own two scratch buffers; no barrier between layers.
# ---------------------------------------------------------------------------------------------

cdef void predict_block(const Geometry *g, const floating *theta, const Rows *rows,
                        Py_ssize_t r0, Py_ssize_t r1, floating *out, floating *scratch,
                        Py_ssize_t cap) noexcept nogil:
    """out rows r0..r1 (at most cap rows) = the network's output for rows r0..r1 of X.
    scratch: two blocks of cap x max_width, a third for a maxout layer's pieces, then (a
    strided X) one of cap x n_features for its gathered rows."""
    cdef Py_ssize_t l, n_out, ld_in = rows.ldx
    cdef const floating *a_in = NULL
    cdef floating *a_out
    for l in range(g.n_layers):
        n_out = g.units[l + 1]
        if l == g.n_layers - 1:
            a_out = out + r0 * n_out
        else:
            a_out = scratch + (l % 2) * cap * g.max_width
        if l == 0 and not rows.sparse and rows.strided:
            a_in = scratch + 3 * cap * g.max_width
            gather_rows(<floating *> a_in, r0, rows, r0, r1, g.units[0])
            ld_in = g.units[0]
        elif l == 0 and not rows.sparse:
            a_in = <const floating *> rows.X + r0 * rows.ldx
        layer_forward(g, l, a_out, <floating *> NULL, NULL,
                      scratch + 2 * cap * g.max_width, a_in, ld_in, rows, r0, r1, theta)
        a_in = a_out
        ld_in = n_out


def predict(Network network, const floating[::1] theta, X, floating[:, ::1] out,
            int n_threads):
    """out = the network's output activation for every row of X (a dense array with any
    strides, or CSR)."""
    cdef Geometry *g = &network.g
    cdef Rows rows
    cdef Py_ssize_t n = out.shape[0], blocks = (n + PREDICT_ROWS - 1) // PREDICT_ROWS, b
    # Blocks of PREDICT_ROWS rows, or all of them if fewer: one row must not allocate (and
    # spread its few values over) scratch for a thousand.
    cdef Py_ssize_t cap = min(n, PREDICT_ROWS)
    cdef Py_ssize_t scratch_size = 3 * cap * g.max_width
    cdef int caller_cpu
    if n == 0:
        return
    set_input(&rows, X, &theta[0])
    rows.index = NULL
    rows.first = 0
    if rows.strided:
        scratch_size += cap * g.units[0]
    if blocks < n_threads:
        n_threads = <int> blocks
    # Per-thread scratch, allocated here so that a failure is a MemoryError, not a lost block
    # (malloc, not a numpy array: ~0.3 us of a one-row prediction's ~13).
    cdef floating *scratch = <floating *> malloc(n_threads * scratch_size * sizeof(floating))
    if scratch == NULL:
        raise MemoryError()
    try:
        if n_threads == 1:
            with nogil:
                for b in range(blocks):
                    predict_block(g, &theta[0], &rows, b * PREDICT_ROWS,
                                  min(n, (b + 1) * PREDICT_ROWS), &out[0, 0], scratch, cap)
            return
        caller_cpu = fm_current_cpu()
        for b in prange(blocks, nogil=True, schedule='static', num_threads=n_threads):
            if threadid() != 0:
                fm_leave_cpu(caller_cpu)  # as in batch_step (csrc/placement.c)
            predict_block(g, &theta[0], &rows, b * PREDICT_ROWS, min(n, (b + 1) * PREDICT_ROWS),
                          &out[0, 0], scratch + threadid() * scratch_size, cap)
    finally:
        free(scratch)


def surely_finite(const floating[:, ::1] X, int n_threads=1):
    """True when every value of X is finite, by one vectorised pass: the sum of the squares in
    double is finite then, and NaN or infinite as soon as one value is. False means "not known":
    a float64 X of values beyond ~1e154 overflows the sum (a float32 X cannot), so the caller
    runs the full check. Much cheaper than np.isfinite(X).all() on one row (no temporary); a
    large X is cut into SURE_CHUNKS blocks of rows shared by n_threads threads."""
    cdef Py_ssize_t rows = X.shape[0], cols = X.shape[1], c, r0, r1
    cdef double[::1] sums
    cdef double total
    if rows == 0 or cols == 0:
        return True
    if rows * cols < 65536:
        return isfinite(sum_squares(&X[0, 0], rows * cols)) != 0
    if n_threads <= 1:
        with nogil:
            total = sum_squares(&X[0, 0], rows * cols)
        return isfinite(total) != 0
    sums = np.zeros(SURE_CHUNKS, dtype=np.float64)
    for c in prange(SURE_CHUNKS, nogil=True, schedule='static', num_threads=n_threads):
        r0 = block_start(rows, SURE_CHUNKS, c)
        r1 = block_start(rows, SURE_CHUNKS, c + 1)
        if r1 > r0:
            sums[c] = sum_squares(&X[r0, 0], (r1 - r0) * cols)
    for c in range(SURE_CHUNKS):
        if not isfinite(sums[c]):
            return False
    return True


# ---------------------------------------------------------------------------------------------
# The kernels one by one, on numpy arrays: entry points for tests/test_kernels.py, which checks
# each against a plain numpy reference in both dtypes.
# ---------------------------------------------------------------------------------------------

cdef fm_activation_params activation_params(double negative_slope, double elu_alpha,
                                             double softplus_beta, double softplus_threshold):
    cdef fm_activation_params params
    params.negative_slope = negative_slope
    params.elu_alpha = elu_alpha
    params.softplus_beta = softplus_beta
    params.softplus_threshold = softplus_threshold
    return params


def kernel_bias_activation(floating[:, ::1] a, const floating[::1] b, int activation, z=None,
                           double negative_slope=0.01, double elu_alpha=1.0,
                           double softplus_beta=1.0, double softplus_threshold=20.0):
    """a = act(a + b) in place, row by row; z (if given, a's shape) receives a + b where the
    activation keeps it."""
    cdef fm_activation_params params = activation_params(negative_slope, elu_alpha,
                                                         softplus_beta, softplus_threshold)
    cdef floating[:, ::1] zv
    cdef floating *z_ptr = NULL
    if z is not None:
        zv = z
        z_ptr = &zv[0, 0]
    bias_activation_forward(&a[0, 0], z_ptr, &b[0], a.shape[0], a.shape[1], activation, &params)


def kernel_activation_backward(floating[::1] delta, const floating[::1] a, int activation,
                               z=None, double negative_slope=0.01, double elu_alpha=1.0,
                               double softplus_beta=1.0, double softplus_threshold=20.0):
    """delta *= act'(z), from a = act(z) (or from z where given), in place."""
    cdef fm_activation_params params = activation_params(negative_slope, elu_alpha,
                                                         softplus_beta, softplus_threshold)
    cdef const floating[::1] zv
    cdef const floating *z_ptr = NULL
    if z is not None:
        zv = z
        z_ptr = &zv[0]
    activation_backward(&delta[0], &a[0], z_ptr, delta.shape[0], activation, &params)


def activation_needs_preactivation(int activation, double negative_slope=0.01,
                                   double elu_alpha=1.0):
    cdef fm_activation_params params = activation_params(negative_slope, elu_alpha, 1.0, 20.0)
    return bool(fm_activation_needs_preactivation(activation, &params))


def kernel_maxout_forward(floating[:, ::1] a, int[:, ::1] argmax, const floating[:, ::1] z,
                          const floating[::1] b, Py_ssize_t pieces):
    """a[r, j] = max_p z[r, j k + p] + b[j k + p]; argmax the winning p."""
    maxout_forward(&a[0, 0], &argmax[0, 0], &z[0, 0], &b[0], a.shape[0], a.shape[1], pieces)


def kernel_maxout_backward(floating[::1] delta, const int[:, ::1] argmax, Py_ssize_t pieces):
    """delta[:rows * cols] (compact) -> delta[:rows * cols * k] (the pieces'), in place."""
    maxout_backward(&delta[0], &argmax[0, 0], argmax.shape[0], argmax.shape[1], pieces)


def kernel_dropout(floating[:, ::1] out, const floating[:, ::1] inp, unsigned long long seed,
                   long long step, double p, Py_ssize_t first_sample=0, Py_ssize_t stride=0,
                   Py_ssize_t offset=0, bint backward=False):
    """out = inp after inverted dropout of rate p at (seed, step); samples first_sample, ...;
    unit j of a row is counter sample * stride + offset + j (stride defaults to the width).
    backward=True applies the mask to out in place (inp unused)."""
    cdef unsigned long long key = fm_dropout_key(seed, step)
    cdef long long threshold = <long long> (p * 9007199254740992.0)
    if stride == 0:
        stride = out.shape[1]
    if backward:
        dropout_backward(&out[0, 0], out.shape[0], out.shape[1], key, NULL, first_sample,
                         stride, offset, threshold, 1.0 / (1.0 - p))
    else:
        dropout_forward(&out[0, 0], &inp[0, 0], out.shape[0], out.shape[1], key, NULL,
                        first_sample, stride, offset, threshold, 1.0 / (1.0 - p))


def kernel_output_delta(floating[:, ::1] delta, double[::1] row_loss, const floating[:, ::1] p,
                        const floating[:, ::1] y, const floating[::1] w, int loss,
                        double loss_param=1.0):
    """delta = dLoss/dz * w (w empty: unweighted); row_loss = each row's loss."""
    output_delta(&delta[0, 0], &row_loss[0], &p[0, 0], &y[0, 0],
                 &w[0] if w.shape[0] > 0 else NULL, NULL, p.shape[0], p.shape[1], loss,
                 loss_param)


def kernel_exp(floating[::1] out, const floating[::1] x):
    if floating is float:
        fm_exp_array_f(&out[0], &x[0], x.shape[0])
    else:
        fm_exp_array_d(&out[0], &x[0], x.shape[0])


def kernel_finalize_gradient(floating[::1] g, const floating[::1] w, double alpha,
                             double divisor):
    finalize_gradient(&g[0], &w[0], g.shape[0], alpha, divisor)


def kernel_sgd_step(floating[::1] param, const floating[::1] grad, floating[::1] velocity,
                    double learning_rate, double momentum, bint nesterov):
    sgd_step(&param[0], &grad[0], &velocity[0], param.shape[0], learning_rate, momentum,
             nesterov)


def kernel_adam_step(floating[::1] param, const floating[::1] grad, floating[::1] m,
                     floating[::1] v, double step_size, double beta_1, double beta_2,
                     double epsilon):
    adam_step(&param[0], &grad[0], &m[0], &v[0], param.shape[0], step_size, beta_1, beta_2,
              epsilon)


def kernel_optim_step(optimizer, floating[::1] param, const floating[::1] grad,
                      floating[::1] s1, floating[::1] s2, floating[::1] s3):
    """One step of a torch.optim solver described by `optimizer` (its t and mu_product are
    advanced); empty state vectors stand for unused ones."""
    cdef fm_optim o = read_optim(optimizer)
    fm_optim_begin_step(&o)
    optim_step(&o, &param[0], &grad[0], &s1[0] if s1.shape[0] > 0 else NULL,
               &s2[0] if s2.shape[0] > 0 else NULL, &s3[0] if s3.shape[0] > 0 else NULL,
               param.shape[0])
    optimizer.t = o.t
    optimizer.mu_product = o.mu_product


def kernel_scale(floating[::1] g, double factor):
    scale(&g[0], g.shape[0], factor)


def kernel_clamp(floating[::1] w, double c):
    clamp(&w[0], w.shape[0], c)


def kernel_expm1(floating[::1] out, const floating[::1] x):
    if floating is float:
        fm_expm1_array_f(&out[0], &x[0], x.shape[0])
    else:
        fm_expm1_array_d(&out[0], &x[0], x.shape[0])


def kernel_log1p_unit(floating[::1] out, const floating[::1] x):
    """log1p(x) for x in [0, 1]."""
    if floating is float:
        fm_log1p_unit_array_f(&out[0], &x[0], x.shape[0])
    else:
        fm_log1p_unit_array_d(&out[0], &x[0], x.shape[0])


def kernel_small_product(floating[:, ::1] out, const floating[:, ::1] a,
                         const floating[:, ::1] W):
    """out = a @ W by the few-rows loop (no BLAS)."""
    small_product(&out[0, 0], &a[0, 0], a.shape[1], &W[0, 0], a.shape[0], a.shape[1],
                  W.shape[1])


def current_cpu():
    """The CPU the calling thread runs on (-1 where the platform does not say)."""
    return fm_current_cpu()


def leave_cpu(int cpu):
    """What a worker does at a mini-batch's start (csrc/placement.c): if the calling thread runs
    on `cpu`, move it to another CPU it may use and leave its affinity mask as it was."""
    with nogil:
        fm_leave_cpu(cpu)
