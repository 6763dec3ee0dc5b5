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
it the engine works on the slice of X in place. Every buffer (activations of each layer, two delta
buffers used in turn, the gather block, per-row losses) is allocated once per fit by ``Trainer``;
nothing is allocated inside an epoch. The whole epoch runs in one call with the GIL released; it
takes the GIL back only for a moment after each mini-batch, to let Ctrl-C through.

Layers. For layer l with input a (rows x n_in) and output width n_out:
    forward   z = a W + b, a' = act(z)              one GEMM, then bias + activation in one pass
    output    delta = (p - y) * w                   output activation fused with its loss
    backward  dW = a^T delta, db = sum_rows delta    (the weight gradient)
              delta_prev = (delta W^T) * act'(a)      (skipped for the first layer: no input grad)

Threads. Every operation is parallel over its own output, cut into blocks whose boundaries depend
only on the shapes, never on the thread count: forward and delta_prev over blocks of rows, dW over
blocks of W's rows (fan_in), db as one job beside them. Each output element is therefore computed
by exactly the same sequence of BLAS calls whatever the number of threads, so a fit is bitwise
identical with 1 thread or 16, and no per-thread gradient copies or reductions are needed
(DESIGN.md sketches per-shard gradients summed in a fixed order; blocking the outputs gives the
same determinism with O(params) instead of O(shards x params) memory and no summation pass).
BLAS runs single-threaded inside these loops; the caller holds it to one thread (threadpoolctl).

Beyond scikit-learn (README.md, "Beyond scikit-learn"). Activations whose derivative needs z
(gelu, silu, mish, softplus) keep it in one more buffer laid out as the activations, allocated
only for them. A maxout layer's W has k columns per unit; its GEMM writes the k pieces into the
first delta buffer (free during forward), the max goes to the activations and the winner's index
to an int buffer; backward widens each delta row in place to the k pieces (hidden_backward).
Dropout writes the kept, rescaled outputs to a separate buffer that the next layer reads, so the
activations stay intact for act'; its mask is a hash of (seed, step, sample, unit), recomputed in
backward, so it is the same whichever thread computes it. The optimizer pass takes a Step: the
torch.optim solvers step in C (fm_optim), the gradient's global norm is clipped between two
passes (block partial sums added in order), and the parameters are clamped after the step.
"""
from cython cimport floating
from cython.parallel cimport prange, threadid
from cpython.exc cimport PyErr_CheckSignals
from libc.math cimport pow, sqrt
from libc.string cimport memcpy, memset

import numpy as np

from fastmlp._blas cimport NoTrans, Trans, gemm
from fastmlp._kernels cimport (
    FM_EXP, FM_IDENTITY, FM_LOGISTIC, FM_LOSS_BINARY_LOG, FM_LOSS_LOG, FM_LOSS_POISSON,
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
    int FASTMLP_HAVE_OPENMP

HIDDEN_ACTIVATIONS = {
    "identity": FM_IDENTITY, "logistic": FM_LOGISTIC, "tanh": FM_TANH, "relu": FM_RELU,
    "leaky_relu": FM_LEAKY_RELU, "elu": FM_ELU, "gelu": FM_GELU, "silu": FM_SILU,
    "mish": FM_MISH, "softplus": FM_SOFTPLUS, "maxout": FM_MAXOUT,
}
ACTIVATION_CODES = {
    "identity": FM_IDENTITY, "logistic": FM_LOGISTIC, "tanh": FM_TANH, "relu": FM_RELU,
    "softmax": FM_SOFTMAX, "exp": FM_EXP, "leaky_relu": FM_LEAKY_RELU, "elu": FM_ELU,
    "gelu": FM_GELU, "silu": FM_SILU, "mish": FM_MISH, "softplus": FM_SOFTPLUS,
}
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

# Block sizes. Rows are cut into an even number (for two cores) of blocks of at least MIN_ROWS
# rows, at most MAX_BLOCKS of them; a block smaller than that costs more in BLAS call overhead
# than it gains in parallelism. PARAM_BLOCK elements per job in the optimizer pass.
DEF MIN_ROWS = 32
DEF MAX_BLOCKS = 16
DEF PARAM_BLOCK = 32768
DEF PREDICT_ROWS = 128


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
    Py_ssize_t maxout_pieces       # k, the linear pieces of a maxout unit (1 if not maxout)
    Py_ssize_t n_hidden            # hidden units per row (act_prefix[n_layers - 1])
    fm_activation_params act_params
    bint keep_z                    # hidden layers keep z = a W + b: their act' needs it
    double loss_param              # huber's delta
    double dropout                 # rate on hidden units; 0: none


cdef inline Py_ssize_t n_blocks(Py_ssize_t n) noexcept nogil:
    """How many blocks n rows are cut into: depends on n only, never on the thread count."""
    cdef Py_ssize_t k = n // MIN_ROWS
    if k > MAX_BLOCKS:
        k = MAX_BLOCKS
    if k < 2:
        return 2 if n >= MIN_ROWS // 2 else 1
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
        cdef Py_ssize_t L = len(units) - 1, l
        self._sizes = np.zeros(5 * (L + 1), dtype=np.intp)
        self.g.n_layers = L
        self.g.units = &self._sizes[0]
        self.g.coef_offset = &self._sizes[L + 1]
        self.g.intercept_offset = &self._sizes[2 * (L + 1)]
        self.g.act_prefix = &self._sizes[3 * (L + 1)]
        self.g.cols = &self._sizes[4 * (L + 1)]
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
# One layer: forward and backward side by side. Arguments: outputs first, then inputs, then sizes.
# ---------------------------------------------------------------------------------------------

cdef void dense_forward(floating *a_out, floating *z_out, const floating *a_in, Py_ssize_t ld_in,
                        const floating *W, const floating *b, Py_ssize_t rows, Py_ssize_t n_in,
                        Py_ssize_t n_out, int activation,
                        const fm_activation_params *params) noexcept nogil:
    """a_out (rows x n_out) = act(a_in (rows x n_in, leading dim ld_in) @ W + b); z_out (if not
    NULL) keeps a_in @ W + b for the activations whose derivative needs it."""
    gemm(NoTrans, NoTrans, <int> rows, <int> n_out, <int> n_in, <floating> 1.0,
         a_in, <int> ld_in, W, <int> n_out, <floating> 0.0, a_out, <int> n_out)
    bias_activation_forward(a_out, z_out, b, rows, n_out, activation, params)


cdef void maxout_layer_forward(floating *a_out, int *argmax, floating *pieces_out,
                               const floating *a_in, Py_ssize_t ld_in, const floating *W,
                               const floating *b, Py_ssize_t rows, Py_ssize_t n_in,
                               Py_ssize_t n_out, Py_ssize_t k) noexcept nogil:
    """a_out (rows x n_out) = max over the k pieces of a_in @ W + b, W being n_in x (n_out k);
    pieces_out (rows x n_out k) is scratch for the GEMM; argmax (if not NULL) keeps the winners."""
    gemm(NoTrans, NoTrans, <int> rows, <int> (n_out * k), <int> n_in, <floating> 1.0,
         a_in, <int> ld_in, W, <int> (n_out * k), <floating> 0.0, pieces_out, <int> (n_out * k))
    maxout_forward(a_out, argmax, pieces_out, b, rows, n_out, k)


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
# A whole network over a set of rows.
# ---------------------------------------------------------------------------------------------

cdef struct Rows:
    # The rows a pass works on. Row r of the pass is X[index[r]] (and Y, w likewise) when index is
    # not NULL; otherwise X, Y and w already point at the first row and rows are consecutive.
    const void *X
    Py_ssize_t ldx
    const void *Y
    const void *w
    const Py_ssize_t *index
    Py_ssize_t n
    Py_ssize_t first  # without index: the sample number of the first row (dropout's counter)


cdef struct Work:
    void *acts        # each layer's output, layer l at n * act_prefix[l], row-major
    void *deltas      # two buffers of capacity x max_width, used in turn from the last layer down
    void *gathered    # capacity x n_features: the shuffled batch's input rows
    double *row_loss  # capacity
    double *partial   # one partial sum of squares per optimizer block
    Py_ssize_t capacity
    # Beyond scikit-learn; each NULL unless the network needs it. Hidden layers only, laid out
    # as acts (layer l at n * act_prefix[l]).
    void *pre         # z = a W + b, for activations whose derivative needs z
    void *dropped     # the hidden outputs after dropout: the next layer's input
    int *argmax       # maxout: the winning piece of each unit
    double *grad_partial       # one partial sum of squared gradients per block (max_grad_norm)
    unsigned long long dropout_key   # this step's key (fm_dropout_key)
    long long dropout_threshold      # p 2^53; 0: no dropout in this pass
    double dropout_scale             # 1 / (1 - p)


cdef inline const void *hidden_input(const Work *work) noexcept nogil:
    """The buffer of what hidden layers pass on to the next: their output, or that output after
    dropout (laid out as acts)."""
    return work.dropped if work.dropout_threshold > 0 else work.acts


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


cdef void forward_job(const Geometry *g, Py_ssize_t l, Py_ssize_t job, Py_ssize_t blocks,
                      const floating *theta, const Rows *rows, const Work *work) noexcept nogil:
    """Layer l's forward on one block of rows; the last layer also forms the output delta."""
    cdef Py_ssize_t r0 = block_start(rows.n, blocks, job)
    cdef Py_ssize_t r1 = block_start(rows.n, blocks, job + 1), r
    cdef Py_ssize_t n_in = g.units[l], n_out = g.units[l + 1], ld_in = n_in
    cdef floating *acts = <floating *> work.acts
    cdef floating *a_out = acts + rows.n * g.act_prefix[l]
    cdef const floating *a_in
    cdef const floating *X = <const floating *> rows.X
    cdef floating *gathered = <floating *> work.gathered
    cdef const floating *Y = <const floating *> rows.Y
    cdef int activation = g.hidden_activation
    if r1 == r0:
        return
    if l == 0:
        if rows.index != NULL:
            for r in range(r0, r1):
                memcpy(gathered + r * n_in, X + rows.index[r] * rows.ldx, n_in * sizeof(floating))
            a_in = gathered
        else:
            a_in = X
            ld_in = rows.ldx
    else:
        a_in = <const floating *> hidden_input(work) + rows.n * g.act_prefix[l - 1]
    if l < g.n_layers - 1:
        hidden_forward(g, l, r0, r1, a_in + r0 * ld_in, ld_in, theta, rows, work)
        return
    activation = g.output_activation
    dense_forward(a_out + r0 * n_out, <floating *> NULL, a_in + r0 * ld_in, ld_in,
                  theta + g.coef_offset[l], theta + g.intercept_offset[l],
                  r1 - r0, n_in, n_out, activation, &g.act_params)
    output_delta(<floating *> work.deltas + r0 * n_out, work.row_loss + r0,
                 a_out + r0 * n_out,
                 Y if rows.index != NULL else Y + r0 * n_out,
                 <const floating *> rows.w if (rows.index != NULL or rows.w == NULL)
                 else <const floating *> rows.w + r0,
                 rows.index + r0 if rows.index != NULL else NULL,
                 r1 - r0, n_out, g.loss, g.loss_param)


cdef void hidden_forward(const Geometry *g, Py_ssize_t l, Py_ssize_t r0, Py_ssize_t r1,
                         const floating *a_in, Py_ssize_t ld_in, const floating *theta,
                         const Rows *rows, const Work *work) noexcept nogil:
    """Rows r0..r1 of hidden layer l (a_in points at row r0 of its input): the layer's output,
    with what backward needs of it (z, maxout's winners) and, under dropout, the next layer's
    input. Maxout's GEMM of k pieces per unit goes to the first delta buffer, unused in forward."""
    cdef Py_ssize_t n_in = g.units[l], n_out = g.units[l + 1]
    cdef Py_ssize_t slot = rows.n * g.act_prefix[l] + r0 * n_out
    cdef floating *a_out = <floating *> work.acts + slot
    if g.hidden_activation == FM_MAXOUT:
        maxout_layer_forward(a_out, work.argmax + slot, <floating *> work.deltas + r0 * g.cols[l],
                             a_in, ld_in, theta + g.coef_offset[l],
                             theta + g.intercept_offset[l], r1 - r0, n_in, n_out,
                             g.maxout_pieces)
    else:
        dense_forward(a_out, <floating *> work.pre + slot if g.keep_z else <floating *> NULL,
                      a_in, ld_in, theta + g.coef_offset[l], theta + g.intercept_offset[l],
                      r1 - r0, n_in, n_out, g.hidden_activation, &g.act_params)
    if work.dropout_threshold > 0:
        dropout_forward(<floating *> work.dropped + slot, a_out, r1 - r0, n_out,
                        work.dropout_key, rows.index + r0 if rows.index != NULL else NULL,
                        rows.first + r0, g.n_hidden, g.act_prefix[l], work.dropout_threshold,
                        work.dropout_scale)


cdef void backward_job(const Geometry *g, Py_ssize_t l, Py_ssize_t job, Py_ssize_t w_blocks,
                       Py_ssize_t r_blocks, const floating *theta, floating *grad,
                       bint accumulate, const Rows *rows, const Work *work) noexcept nogil:
    """One job of layer l's backward: a block of W's gradient rows, the bias gradient, or a
    block of rows of the previous layer's delta."""
    cdef Py_ssize_t n_in = g.units[l], n_out = g.cols[l], ld_in = n_in
    cdef Py_ssize_t i0, i1
    cdef floating *acts = <floating *> work.acts
    cdef floating *delta_buffers = <floating *> work.deltas
    cdef Py_ssize_t parity = (g.n_layers - 1 - l) % 2
    cdef floating *delta = delta_buffers + parity * work.capacity * g.max_width
    cdef floating *delta_prev = delta_buffers + (1 - parity) * work.capacity * g.max_width
    cdef const floating *a_in
    if l == 0:
        if rows.index != NULL:
            a_in = <const floating *> work.gathered
        else:
            a_in = <const floating *> rows.X
            ld_in = rows.ldx
    else:
        a_in = <const floating *> hidden_input(work) + rows.n * g.act_prefix[l - 1]
    if job < w_blocks:
        i0 = block_start(n_in, w_blocks, job)
        i1 = block_start(n_in, w_blocks, job + 1)
        if i1 > i0:
            dense_backward_weights(grad + g.coef_offset[l] + i0 * n_out, a_in + i0, ld_in,
                                   delta, rows.n, i1 - i0, n_out, accumulate)
    elif job == w_blocks:
        dense_backward_bias(grad + g.intercept_offset[l], delta, rows.n, n_out, accumulate)
    else:
        job -= w_blocks + 1
        i0 = block_start(rows.n, r_blocks, job)
        i1 = block_start(rows.n, r_blocks, job + 1)
        if i1 > i0:
            # Rows i0..i1 of the previous layer's delta start at i0 * cols[l - 1], the layout
            # its backward reads; the product is compact (n_in wide) until hidden_backward.
            dense_backward_input(delta_prev + i0 * g.cols[l - 1], delta + i0 * n_out,
                                 theta + g.coef_offset[l], i1 - i0, n_in, n_out)
            hidden_backward(g, l - 1, delta_prev + i0 * g.cols[l - 1], i0, i1, rows, work)


cdef double backprop(const Geometry *g, const floating *theta, floating *grad, bint accumulate,
                     const Rows *rows, const Work *work, int n_threads) noexcept nogil:
    """Forward and backward over rows; (accumulates) the raw gradient sum_rows w_r dLoss_r into
    grad and returns sum_rows w_r loss_r. The L2 term and the division by sum(w) come later."""
    cdef Py_ssize_t l, job, r, w_blocks, r_blocks = n_blocks(rows.n)
    cdef double total = 0.0
    cdef const floating *w = <const floating *> rows.w
    for l in range(g.n_layers):
        for job in prange(r_blocks, schedule='static', num_threads=n_threads):
            forward_job(g, l, job, r_blocks, theta, rows, work)
    for l in range(g.n_layers - 1, -1, -1):
        w_blocks = n_blocks(g.units[l])
        for job in prange(w_blocks + 1 + (r_blocks if l > 0 else 0),
                          schedule='dynamic', num_threads=n_threads):
            backward_job(g, l, job, w_blocks, r_blocks if l > 0 else 0, theta, grad,
                         accumulate, rows, work)
    for r in range(rows.n):
        if w == NULL:
            total += work.row_loss[r]
        elif rows.index != NULL:
            total += w[rows.index[r]] * work.row_loss[r]
        else:
            total += w[r] * work.row_loss[r]
    return total


cdef struct Step:
    # One optimizer step, as the epoch loop sets it up for each mini-batch.
    int solver
    double learning_rate      # sgd: the rate; adam: the bias-corrected step size of this step
    double momentum
    bint nesterov
    double beta_1, beta_2, epsilon
    fm_optim *optim           # the torch.optim solvers: hyper-parameters and this step's scalars
    void *state_1             # the optimizer's state vectors (theta's layout), NULL if unused
    void *state_2
    void *state_3
    double max_grad_norm      # 0: the gradient's norm is not clipped
    double grad_scale         # this step's clip factor, min(1, max_grad_norm / (|g| + 1e-6))
    double weight_clip        # 0: the parameters are not clamped


cdef enum:
    # What one pass of optimizer_job does to its block.
    PASS_FINISH = 1    # finish the gradient, note sum(W^2) for the loss
    PASS_NORM = 2      # note sum(g^2) of the finished gradient (max_grad_norm)
    PASS_STEP = 4      # scale the gradient (if clipped), step, clamp the parameters


cdef void optimizer_job(const Geometry *g, Py_ssize_t job, floating *theta, floating *grad,
                        double divisor, const Step *s, int passes, double *partial,
                        double *grad_partial) noexcept nogil:
    """One block of the flat vector: note sum(W^2) for the loss, finish the gradient
    ((g + alpha W) / sum(w), intercepts unpenalised), then take the optimizer's step."""
    cdef Py_ssize_t lo = job * PARAM_BLOCK, hi = lo + PARAM_BLOCK, mid
    cdef floating *state_1
    cdef floating *state_2
    cdef floating *state_3
    if hi > g.n_params:
        hi = g.n_params
    if passes & PASS_FINISH:
        mid = g.n_coefs if g.n_coefs < hi else hi
        partial[job] = 0.0
        if mid > lo:
            partial[job] = sum_squares(theta + lo, mid - lo)
            finalize_gradient(grad + lo, theta + lo, mid - lo, g.alpha, divisor)
        if mid < lo:
            mid = lo
        if hi > mid:
            finalize_gradient(grad + mid, <floating *> NULL, hi - mid, 0.0, divisor)
    if passes & PASS_NORM:
        grad_partial[job] = sum_squares(grad + lo, hi - lo)
    if not (passes & PASS_STEP):
        return
    state_1 = <floating *> s.state_1 + lo if s.state_1 != NULL else NULL
    state_2 = <floating *> s.state_2 + lo if s.state_2 != NULL else NULL
    state_3 = <floating *> s.state_3 + lo if s.state_3 != NULL else NULL
    if s.grad_scale != 1.0:
        scale(grad + lo, hi - lo, s.grad_scale)
    if s.solver == SOLVER_SGD:
        sgd_step(theta + lo, grad + lo, state_1, hi - lo, s.learning_rate, s.momentum,
                 s.nesterov)
    elif s.solver == SOLVER_ADAM:
        adam_step(theta + lo, grad + lo, state_1, state_2, hi - lo, s.learning_rate,
                  s.beta_1, s.beta_2, s.epsilon)
    else:
        optim_step(s.optim, theta + lo, grad + lo, state_1, state_2, state_3, hi - lo)
    if s.weight_clip > 0:
        clamp(theta + lo, hi - lo, s.weight_clip)


cdef double finish_and_step(const Geometry *g, floating *theta, floating *grad, double divisor,
                            Step *s, double *partial, double *grad_partial,
                            int n_threads) noexcept nogil:
    """Finish the gradient and (if s is not NULL) update theta, in parallel blocks; returns
    sum(W^2). Clipping the gradient's global norm needs that norm before any block steps, so it
    takes two passes, the norm summed between them from per-block partial sums in block order
    (the same sum whatever the thread count); without it, one pass does both."""
    cdef Py_ssize_t job, blocks = (g.n_params + PARAM_BLOCK - 1) // PARAM_BLOCK
    cdef double total = 0.0, norm = 0.0
    cdef int first_pass = PASS_FINISH
    if s != NULL:
        s.grad_scale = 1.0
        first_pass = (PASS_FINISH | PASS_NORM) if s.max_grad_norm > 0 else (PASS_FINISH | PASS_STEP)
    for job in prange(blocks, schedule='static', num_threads=n_threads):
        optimizer_job(g, job, theta, grad, divisor, s, first_pass, partial, grad_partial)
    if first_pass & PASS_NORM:
        # torch.nn.utils.clip_grad_norm_: g *= min(1, max_norm / (|g| + 1e-6)).
        for job in range(blocks):
            norm = norm + grad_partial[job]
        norm = sqrt(norm)
        if s.max_grad_norm / (norm + 1e-6) < 1.0:
            s.grad_scale = s.max_grad_norm / (norm + 1e-6)
        for job in prange(blocks, schedule='static', num_threads=n_threads):
            optimizer_job(g, job, theta, grad, divisor, s, PASS_STEP, partial, grad_partial)
    for job in range(blocks):
        total = total + partial[job]
    return total


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
    cdef readonly object acts, deltas, gathered, row_loss, partial
    cdef readonly object pre, dropped, argmax, grad_partial
    cdef readonly Py_ssize_t capacity
    cdef readonly unsigned long long dropout_seed
    cdef readonly double max_grad_norm, weight_clip

    def __init__(self, Network network, Py_ssize_t capacity, Py_ssize_t n_features, dtype, *,
                 unsigned long long dropout_seed=0, double max_grad_norm=0.0,
                 double weight_clip=0.0):
        self.network = network
        self.capacity = capacity
        g = &network.g
        self.acts = np.empty(capacity * g.act_prefix[g.n_layers], dtype=dtype)
        self.deltas = np.empty(2 * capacity * g.max_width, dtype=dtype)
        self.gathered = np.empty(capacity * n_features, dtype=dtype)
        self.row_loss = np.empty(capacity, dtype=np.float64)
        self.partial = np.empty((g.n_params + PARAM_BLOCK - 1) // PARAM_BLOCK, dtype=np.float64)
        self.grad_partial = np.empty_like(self.partial)
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
        cdef floating[::1] pre = self.pre
        cdef floating[::1] dropped = self.dropped
        cdef int[::1] argmax = self.argmax
        work.acts = &acts[0]
        work.deltas = &deltas[0]
        work.gathered = &gathered[0] if gathered.shape[0] > 0 else NULL
        work.row_loss = &row_loss[0]
        work.partial = &partial[0]
        work.capacity = self.capacity
        work.pre = &pre[0] if pre.shape[0] > 0 else NULL
        work.dropped = &dropped[0] if dropped.shape[0] > 0 else NULL
        work.argmax = &argmax[0] if argmax.shape[0] > 0 else NULL
        work.grad_partial = &grad_partial[0]
        work.dropout_key = 0
        work.dropout_threshold = 0
        work.dropout_scale = 1.0 / (1.0 - self.network.g.dropout)
        return work

    cdef void _dropout_step(self, Work *work, long long step) noexcept nogil:
        """Dropout's key for optimizer step `step` (1, 2, ...; < 0: no dropout in this pass)."""
        cdef double p = self.network.g.dropout
        work.dropout_threshold = 0
        if p > 0 and step >= 0:
            work.dropout_key = fm_dropout_key(self.dropout_seed, step)
            work.dropout_threshold = <long long> (p * 9007199254740992.0)  # p 2^53

    def epoch(self, floating[::1] theta, floating[::1] grad, floating[::1] state_1,
              floating[::1] state_2, const floating[:, ::1] X, const floating[:, ::1] Y,
              const floating[::1] sample_weight, const Py_ssize_t[::1] order,
              Py_ssize_t batch_size, optimizer, int n_threads, state_3=None):
        """One epoch of mini-batch training: batches are order[0:b], order[b:2b], ... (or the
        consecutive rows of X when order is empty). Returns sum over batches of batch loss x
        batch length, as scikit-learn accumulates it. The optimizer object gives the solver and
        its hyper-parameters, and keeps its step count t (and NAdam's mu_product); state_3 is
        the third state vector of the torch.optim solvers that have one."""
        cdef Geometry *g = &self.network.g
        cdef floating[::1] acts = self.acts
        cdef floating[::1] deltas = self.deltas
        cdef floating[::1] gathered = self.gathered
        cdef floating[::1] third_state
        cdef Work work = self._work(acts, deltas, gathered)
        cdef Rows rows
        cdef Step step
        cdef fm_optim optim
        cdef Py_ssize_t n_samples = X.shape[0], start, stop
        cdef bint shuffled = order.shape[0] > 0, weighted = sample_weight.shape[0] > 0
        cdef int solver = optimizer.solver
        cdef double learning_rate = optimizer.learning_rate, momentum = 0.0
        cdef double beta_1 = 0.0, beta_2 = 0.0, epsilon = 0.0, step_size = 0.0
        cdef double divisor, batch_loss, accumulated = 0.0, sum_w2
        cdef bint nesterov = False
        cdef long t = optimizer.t
        cdef Py_ssize_t r
        if batch_size > self.capacity:
            raise ValueError("batch_size exceeds the trainer's capacity")
        if solver == SOLVER_SGD:
            momentum = optimizer.momentum
            nesterov = optimizer.nesterov
        elif solver == SOLVER_ADAM:
            beta_1, beta_2, epsilon = optimizer.beta_1, optimizer.beta_2, optimizer.epsilon
            learning_rate = optimizer.learning_rate_init
        else:
            optim = read_optim(optimizer)
        step.solver = solver
        step.momentum = momentum
        step.nesterov = nesterov
        step.beta_1, step.beta_2, step.epsilon = beta_1, beta_2, epsilon
        step.optim = &optim
        step.state_1 = &state_1[0] if state_1.shape[0] > 0 else NULL
        step.state_2 = &state_2[0] if state_2.shape[0] > 0 else NULL
        step.state_3 = NULL
        if state_3 is not None and len(state_3) > 0:
            third_state = state_3
            step.state_3 = &third_state[0]
        step.max_grad_norm = self.max_grad_norm
        step.weight_clip = self.weight_clip
        rows.ldx = X.shape[1]
        try:
            with nogil:
                start = 0
                while start < n_samples:
                    stop = start + batch_size
                    if stop > n_samples:
                        stop = n_samples
                    rows.n = stop - start
                    rows.first = start
                    if shuffled:
                        rows.X = &X[0, 0]
                        rows.Y = &Y[0, 0]
                        rows.w = &sample_weight[0] if weighted else NULL
                        rows.index = &order[start]
                    else:
                        rows.X = &X[start, 0]
                        rows.Y = &Y[start, 0]
                        rows.w = &sample_weight[start] if weighted else NULL
                        rows.index = NULL
                    # The step's counter and per-step scalars (dropout's mask depends on it).
                    if solver >= FM_SOLVER_ADAGRAD:
                        fm_optim_begin_step(&optim)
                        t = optim.t
                    else:
                        t += 1
                    self._dropout_step(&work, t)
                    batch_loss = backprop(g, &theta[0], &grad[0], False, &rows, &work, n_threads)
                    divisor = <double> rows.n
                    if weighted:
                        divisor = 0.0
                        for r in range(rows.n):
                            divisor = divisor + (sample_weight[order[start + r]] if shuffled
                                                 else sample_weight[start + r])
                    if solver == SOLVER_ADAM:
                        step_size = (learning_rate * sqrt(1.0 - pow(beta_2, <double> t))
                                     / (1.0 - pow(beta_1, <double> t)))
                    step.learning_rate = step_size if solver == SOLVER_ADAM else learning_rate
                    sum_w2 = finish_and_step(g, &theta[0], &grad[0], divisor, &step,
                                             work.partial, work.grad_partial, n_threads)
                    batch_loss = batch_loss / divisor + 0.5 * g.alpha * sum_w2 / divisor
                    accumulated = accumulated + batch_loss * rows.n
                    start = stop
                    with gil:
                        PyErr_CheckSignals()
        finally:
            optimizer.t = t
            if solver >= FM_SOLVER_ADAGRAD:
                optimizer.mu_product = optim.mu_product
        return accumulated

    def loss_gradient(self, floating[::1] theta, floating[::1] grad, const floating[:, ::1] X,
                      const floating[:, ::1] Y, const floating[::1] sample_weight,
                      int n_threads, long long dropout_step=-1):
        """Full-batch loss and gradient at theta (for L-BFGS), in chunks of `capacity` rows
        whose gradients accumulate in order. Returns the loss; grad receives the gradient.
        dropout_step >= 0 applies the dropout mask of that optimizer step (for gradient checks;
        the default, like prediction, uses no dropout)."""
        cdef Geometry *g = &self.network.g
        cdef floating[::1] acts = self.acts
        cdef floating[::1] deltas = self.deltas
        cdef floating[::1] gathered = self.gathered
        cdef Work work = self._work(acts, deltas, gathered)
        cdef Rows rows
        cdef Py_ssize_t n_samples = X.shape[0], start, r
        cdef bint weighted = sample_weight.shape[0] > 0
        cdef double data_loss = 0.0, divisor = <double> n_samples, sum_w2
        rows.ldx = X.shape[1]
        rows.index = NULL
        with nogil:
            self._dropout_step(&work, dropout_step)
            if weighted:
                divisor = 0.0
                for r in range(n_samples):
                    divisor = divisor + sample_weight[r]
            start = 0
            while start < n_samples:
                rows.n = min(self.capacity, n_samples - start)
                rows.first = start
                rows.X = &X[start, 0]
                rows.Y = &Y[start, 0]
                rows.w = &sample_weight[start] if weighted else NULL
                data_loss += backprop(g, &theta[0], &grad[0], start > 0, &rows, &work,
                                      n_threads)
                start += rows.n
            sum_w2 = finish_and_step(g, &theta[0], &grad[0], divisor, NULL, work.partial,
                                     NULL, n_threads)
        return data_loss / divisor + 0.5 * g.alpha * sum_w2 / divisor


# ---------------------------------------------------------------------------------------------
# Prediction: rows are independent, so each block of rows runs through every layer on one
# thread, with that thread's own two scratch buffers; no barrier between layers.
# ---------------------------------------------------------------------------------------------

cdef void predict_block(const Geometry *g, const floating *theta, const floating *X,
                        Py_ssize_t ldx, floating *out, Py_ssize_t rows, floating *scratch)\
        noexcept nogil:
    cdef Py_ssize_t l, n_out
    cdef const floating *a_in = X
    cdef Py_ssize_t ld_in = ldx
    cdef floating *a_out
    for l in range(g.n_layers):
        n_out = g.units[l + 1]
        if l == g.n_layers - 1:
            dense_forward(out, <floating *> NULL, a_in, ld_in, theta + g.coef_offset[l],
                          theta + g.intercept_offset[l], rows, g.units[l], n_out,
                          g.output_activation, &g.act_params)
        else:
            a_out = scratch + (l % 2) * PREDICT_ROWS * g.max_width
            if g.hidden_activation == FM_MAXOUT:  # the k pieces go to a third scratch slot
                maxout_layer_forward(a_out, NULL, scratch + 2 * PREDICT_ROWS * g.max_width,
                                     a_in, ld_in, theta + g.coef_offset[l],
                                     theta + g.intercept_offset[l], rows, g.units[l], n_out,
                                     g.maxout_pieces)
            else:
                dense_forward(a_out, <floating *> NULL, a_in, ld_in, theta + g.coef_offset[l],
                              theta + g.intercept_offset[l], rows, g.units[l], n_out,
                              g.hidden_activation, &g.act_params)
            a_in = a_out
            ld_in = n_out


def predict(Network network, const floating[::1] theta, const floating[:, ::1] X,
            floating[:, ::1] out, int n_threads):
    """out = the network's output activation for every row of X."""
    cdef Geometry *g = &network.g
    cdef Py_ssize_t n = X.shape[0], blocks = (n + PREDICT_ROWS - 1) // PREDICT_ROWS, b
    cdef Py_ssize_t scratch_size = ((3 if g.hidden_activation == FM_MAXOUT else 2)
                                    * PREDICT_ROWS * g.max_width)
    if n == 0:
        return
    if blocks < n_threads:
        n_threads = <int> blocks
    # Per-thread scratch, allocated here so that a failure is a MemoryError, not a lost block.
    cdef floating[::1] scratch = np.empty(n_threads * scratch_size,
                                          dtype=np.float32 if floating is float else np.float64)
    if n_threads == 1:
        with nogil:
            for b in range(blocks):
                predict_block(g, &theta[0], &X[b * PREDICT_ROWS, 0], X.shape[1],
                              &out[b * PREDICT_ROWS, 0], min(PREDICT_ROWS, n - b * PREDICT_ROWS),
                              &scratch[0])
        return
    for b in prange(blocks, nogil=True, schedule='static', num_threads=n_threads):
        predict_block(g, &theta[0], &X[b * PREDICT_ROWS, 0], X.shape[1],
                      &out[b * PREDICT_ROWS, 0], min(PREDICT_ROWS, n - b * PREDICT_ROWS),
                      &scratch[threadid() * scratch_size])


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
