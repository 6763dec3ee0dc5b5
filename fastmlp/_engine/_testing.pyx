# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The engine's kernels one by one, on numpy arrays: entry points for the tests
(tests/engine/test_kernels.py and others), which check each against a plain numpy reference in
both dtypes. Not used by the estimators; a module of its own so that the trainer holds only what
training and prediction need.
"""
import numpy as np
from cython cimport floating
from libc.math cimport fma, fmaf

from fastmlp._engine._kernels cimport (
    FM_WATCH_SIZE, activation_backward, adam_step, bias_activation_forward, bias_gradient, clamp,
    fm_flush_modes, fm_rows_product_looks, fm_set_subnormals_slow, fm_subnormals_slow,
    dropout_backward, dropout_forward, finish_gradient, finish_step,
    fm_activation_needs_preactivation,
    fm_activation_params, fm_rows_product_at_d, fm_rows_product_at_f, fm_rows_product_available,
    fm_rows_product_by, fm_rows_product_by_d, fm_rows_pack_d, fm_rows_pack_f,
    fm_rows_packed_size, fm_rows_packed_size_d, fm_rows_product_d, fm_rows_product_f,
    fm_rows_product_kernel, fm_rows_product_kernel_d, fm_rows_product_packed_d,
    fm_rows_product_packed_f, fm_rows_product_picked_d, fm_rows_product_picked_f,
    fm_rows_product_t_d, fm_rows_product_t_f,
    FM_STREAM_MIN_BYTES, fm_dropout_key, fm_scratch_allocations, fm_scratch_set_poison,
    fm_scratch_threads, fm_store_fence, fm_stream_store, fm_exp_array_d, fm_exp_array_f,
    fm_expm1_array_d, fm_expm1_array_f,
    fm_log1p_unit_array_d, fm_log1p_unit_array_f, fm_optim, fm_optim_begin_step,
    maxout_backward, maxout_forward, optim_step, output_delta, scale, sgd_step, small_pack,
    small_pack_record, small_pack_size,
    small_product, small_product_part, small_split, sum_squares,
)
from fastmlp._engine._network cimport Network
from fastmlp._engine._openmp cimport (
    FM_SLICE_END, FM_SLICE_GAP, FM_SLICE_LONG, fm_call, fm_claim, fm_count_done,
    fm_current_cpu, fm_done, fm_leave_cpu, fm_publish_jobs, fm_slice, fm_slice_look,
    fm_spare_seconds, fm_split_begin, fm_split_end, fm_split_helper_stall, fm_split_run,
    fm_store_flag, fm_wait_call, fm_wait_count, fm_wait_done,
)
from fastmlp._engine._schedule cimport first_tiles as schedule_first_tiles
from fastmlp._engine._schedule cimport Pool, pool_deal, pool_init, pool_next
from fastmlp._engine._stores cimport STORE_PROBE_BATCHES as _STORE_PROBE_BATCHES
from fastmlp._engine._stores cimport STORE_PROBE_GAP as _STORE_PROBE_GAP
from fastmlp._engine._stores cimport STEP_PROBE_BATCHES as _STEP_PROBE_BATCHES
from fastmlp._engine._stores cimport FETCH_PROBE_BATCHES as _FETCH_PROBE_BATCHES
from fastmlp._engine._stores cimport (
    ClockWays, StoreChoice, clock_next, clock_record, fetch_init, step_store_init, store_init,
    store_next, store_ran, store_record)
from fastmlp._engine._threads cimport (
    ThreadChoice, choice_for, choice_gate, choice_init, choice_next, choice_record,
    choice_threads, choice_wants_gate, seconds_now,
)


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
                        double loss_param=1.0, const Py_ssize_t[::1] index=None):
    """delta = dLoss/dz * w (w empty: unweighted); row_loss = each row's loss. With `index`
    (a shuffled batch's), row r's target is y[index[r]] and its weight w[index[r]]."""
    cdef Py_ssize_t r
    if index is not None:
        if index.shape[0] != p.shape[0]:
            raise ValueError("index must have one entry per row of p")
        for r in range(index.shape[0]):
            if not 0 <= index[r] < y.shape[0] or (w.shape[0] > 0 and index[r] >= w.shape[0]):
                raise IndexError("an index is outside y or w")
    elif y.shape[0] != p.shape[0]:
        raise ValueError("y must have one row per row of p")
    output_delta(&delta[0, 0], &row_loss[0], &p[0, 0], &y[0, 0],
                 &w[0] if w.shape[0] > 0 else NULL, &index[0] if index is not None else NULL,
                 p.shape[0], p.shape[1], loss, loss_param)


def kernel_bias_gradient(floating[::1] db, const floating[:, ::1] delta, bint accumulate=False):
    """db (+)= the sum of delta's rows (csrc/activations.c's fm_bias_gradient: a dense layer's
    bias gradient)."""
    if db.shape[0] != delta.shape[1] or delta.shape[0] == 0 or db.shape[0] == 0:
        raise ValueError("db must have one element per column of delta, both non-empty")
    bias_gradient(&db[0], &delta[0, 0], delta.shape[0], delta.shape[1], accumulate)


def kernel_exp(floating[::1] out, const floating[::1] x):
    if floating is float:
        fm_exp_array_f(&out[0], &x[0], x.shape[0])
    else:
        fm_exp_array_d(&out[0], &x[0], x.shape[0])


def kernel_finalize_gradient(floating[::1] g, const floating[::1] w, double alpha,
                             double divisor):
    """g = (g + alpha w) / divisor in place: the engine's finish without its sums."""
    finish_gradient(&g[0], &w[0], g.shape[0], alpha, divisor, NULL, NULL)


def kernel_finish_gradient(floating[::1] g, const floating[::1] w, double alpha, double divisor,
                           bint want_w2, bint want_g2):
    """g (at least one value) finished in place, penalised by w (None: a bias's, unpenalised);
    returns (sum(w^2), sum(g^2)) as the pass summed them, None for a sum not asked for or,
    without w, sum(w^2)."""
    cdef double sum_w2 = 0.0, sum_g2 = 0.0
    if w is not None and w.shape[0] != g.shape[0]:
        raise ValueError("g and w differ in length")
    finish_gradient(&g[0], &w[0] if w is not None else NULL, g.shape[0], alpha, divisor,
                    &sum_w2 if want_w2 else NULL, &sum_g2 if want_g2 else NULL)
    return (sum_w2 if want_w2 and w is not None else None), (sum_g2 if want_g2 else None)


def kernel_sum_squares(const floating[::1] x):
    return sum_squares(&x[0] if x.shape[0] > 0 else NULL, x.shape[0])


def kernel_sgd_step(floating[::1] param, const floating[::1] grad, floating[::1] velocity,
                    double learning_rate, double momentum, bint nesterov):
    sgd_step(&param[0], &grad[0], &velocity[0], param.shape[0], learning_rate, momentum,
             nesterov)


def kernel_adam_step(floating[::1] param, const floating[::1] grad, floating[::1] m,
                     floating[::1] v, double step_size, double beta_1, double beta_2,
                     double epsilon):
    adam_step(&param[0], &grad[0], &m[0], &v[0], param.shape[0], step_size, beta_1, beta_2,
              epsilon)


def kernel_optim_step(fm_optim[::1] spec, floating[::1] param, const floating[::1] grad,
                      floating[::1] s1, floating[::1] s2, floating[::1] s3):
    """One step of the solver of `spec` (an OPTIM_SPEC record, whose t and mu_product are
    advanced); empty state vectors stand for unused ones."""
    if spec.shape[0] != 1 or grad.shape[0] != param.shape[0]:
        raise ValueError("one OPTIM_SPEC record, and a gradient as long as the parameters")
    fm_optim_begin_step(&spec[0])
    optim_step(&spec[0], &param[0], &grad[0], &s1[0] if s1.shape[0] > 0 else NULL,
               &s2[0] if s2.shape[0] > 0 else NULL, &s3[0] if s3.shape[0] > 0 else NULL,
               param.shape[0])


def kernel_finish_step(fm_optim[::1] spec, floating[::1] g, floating[::1] param, bint penalize,
                       double alpha, double divisor, floating[::1] s1, floating[::1] s2,
                       floating[::1] s3, bint want_w2, bint want_g2, bint stream=False,
                       double[::1] watch=None, int flush=0):
    """finish_gradient and the step of `spec`'s solver (its t advanced), as a weight job takes
    them (in one pass where the solver has one): returns (sum(w^2), sum(g^2)) as
    kernel_finish_gradient returns them. An empty s2 or s3 stands for none; `stream` as a job
    of a two-thread batch takes it; `watch` (FM_WATCH_SIZE doubles, updated; None: none) the
    block's watch over subnormal numbers, as a weight job keeps it (csrc/optimizers.c's
    "Subnormal numbers"); `flush` the processor's flush-to-zero (1) and denormals-are-zero (2)
    modes during the call (fm_flush_modes)."""
    cdef double sum_w2 = 0.0, sum_g2 = 0.0
    cdef int modes
    if (spec.shape[0] != 1 or not g.shape[0] == param.shape[0] == s1.shape[0]
            or s2.shape[0] not in (0, g.shape[0]) or s3.shape[0] not in (0, g.shape[0])):
        raise ValueError("one OPTIM_SPEC record, and g, param and the state of one length")
    if watch is not None and watch.shape[0] != FM_WATCH_SIZE:
        raise ValueError(f"watch holds {FM_WATCH_SIZE} doubles")
    fm_optim_begin_step(&spec[0])
    modes = fm_flush_modes(flush)
    finish_step(&spec[0], &g[0], &param[0], penalize, g.shape[0], alpha, divisor,
                &sum_w2 if want_w2 else NULL, &sum_g2 if want_g2 else NULL, &s1[0],
                &s2[0] if s2.shape[0] > 0 else NULL, &s3[0] if s3.shape[0] > 0 else NULL,
                stream, &watch[0] if watch is not None else NULL)
    fm_flush_modes(modes)
    return (sum_w2 if want_w2 and penalize else None), (sum_g2 if want_g2 else None)


def subnormals_slow(verdict=None):
    """Whether this processor takes its time over subnormal numbers (csrc/optimizers.c's
    fm_subnormals_slow: measured once); with `verdict` (True, False, or -1: measure again),
    the verdict the engine takes from now on, for the tests of the careful step."""
    if verdict is not None:
        fm_set_subnormals_slow(-1 if verdict == -1 else int(bool(verdict)))
    return bool(fm_subnormals_slow())


def flush_modes(int modes):
    """Set the calling thread's flush-to-zero (1) and denormals-are-zero (2) modes to `modes`,
    as torch.set_flush_denormal does (x86; elsewhere nothing is set); returns those that were
    set, to put back. For the tests of csrc/fm_openmp.h's fm_fp_take."""
    return fm_flush_modes(modes)


def _flush_modes_set():
    cdef int before = fm_flush_modes(3)
    return fm_flush_modes(before) == 3


FLUSH_MODES = _flush_modes_set()  # flush_modes sets them on this machine


def rows_product_looks(looks=-1):
    """The count of AVX-512 float32 products left that look for subnormal weights as they pack
    W (csrc/rows_product.c's fm_rows_product_looks), set to `looks` where it is not negative;
    the count before is returned."""
    return fm_rows_product_looks(looks)


# From this many bytes on, a block's streamed step (kernel_finish_step's `stream`) writes through
# a block of its own: csrc/optimizers.c's fm_stream_copy.
STREAM_MIN_BYTES = FM_STREAM_MIN_BYTES
WATCH_SIZE = FM_WATCH_SIZE  # (kernel_finish_step's `watch`)


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


def kernel_small_pack(const floating[:, ::1] W):
    """W's packed copy for few-row products (csrc/small_product.c's fm_small_pack), on a cache
    line as the engine places it, followed by its record of W's subnormal values where it has
    one (a float32 copy on AVX-512, where they are slow), or None where this processor's loop
    makes none."""
    cdef Py_ssize_t n_in = W.shape[0], n_out = W.shape[1], size, record
    dtype = np.float32 if floating is float else np.float64
    size = small_pack_size(&W[0, 0], n_in, n_out)
    if size == 0:
        return None
    record = small_pack_record(&W[0, 0], n_in, n_out)
    buffer = np.empty(size + record + 64 // sizeof(floating), dtype)
    start = (-buffer.ctypes.data % 64) // sizeof(floating)
    cdef floating[::1] copy = buffer[start:start + size + record]
    small_pack(&copy[0], &W[0, 0], n_in, n_out, &copy[0] + size, record)
    return np.asarray(copy)


def kernel_small_product_part(floating[:, ::1] out, const floating[:, ::1] a,
                              const floating[:, ::1] W, copy, Py_ssize_t c0, Py_ssize_t c1,
                              int flush=0):
    """out[:, c0:c1] = (a @ W)[:, c0:c1] by the few-rows loop (fm_small_product_part), reading
    kernel_small_pack's copy of W where copy is not None; other columns untouched. `flush`:
    the processor's flush-to-zero (1) and denormals-are-zero (2) modes during the call."""
    cdef const floating[::1] packed
    cdef const floating *copy_ptr = NULL
    cdef int modes
    if copy is not None:
        packed = copy
        copy_ptr = &packed[0]
    modes = fm_flush_modes(flush)
    small_product_part(&out[0, 0], &a[0, 0], a.shape[1], &W[0, 0], copy_ptr, a.shape[0],
                       a.shape[1], W.shape[1], c0, c1)
    fm_flush_modes(modes)


def kernel_small_split(Py_ssize_t n_in, Py_ssize_t n_out, dtype):
    """The column where two threads cut a few rows' product through an n_in x n_out W of
    `dtype`, or 0 (fm_small_split)."""
    if np.dtype(dtype) == np.float32:
        return small_split(<const float *> NULL, n_in, n_out)
    return small_split(<const double *> NULL, n_in, n_out)


def split_gate(events):
    """The calling thread's split rule (csrc/placement.c's fm_split_begin, fm_split_end) over
    `events`, each ("begin", now) or ("end", began, now, wait), in seconds on any one scale
    (the rule compares them, it reads no clock): the list of fm_split_begin's answers. The
    record is the thread's own (and this module's: each compiled module links its own copy of
    csrc/): a test runs it in a thread of its own for a fresh one."""
    answers = []
    for event in events:
        if event[0] == "begin":
            answers.append(bool(fm_split_begin(event[1])))
        else:
            fm_split_end(event[1], event[2], event[3])
    return answers


# (FM_SLICE_GAP, FM_SLICE_END, FM_SLICE_LONG: seconds off the CPU that start a slice, and the
# fractions of a tick that a job must end within and that it may last)
SLICE_RULE = (FM_SLICE_GAP, FM_SLICE_END, FM_SLICE_LONG)


def slice_rule(readings, double tick=4e-3):
    """A pool helper's time-slice rule (csrc/placement.c's fm_slice_look) over `readings`, each
    (wall, cpu, ran) in seconds of its wall clock and of its CPU time, with ran 1 after a job of
    its own, 0 before its first claim of a batch, -1 right after a yield (the rule reads no
    clock): a list of (whether it yields, the slice's start, the job time it expects)."""
    cdef fm_slice s
    s.wall, s.cpu, s.start, s.job, s.tick = -1.0, 0.0, 0.0, 0.0, tick
    out = []
    for wall, cpu, ran in readings:
        out.append((bool(fm_slice_look(&s, wall, cpu, ran)), s.start, s.job))
    return out


cdef extern from "<pthread.h>" nogil:
    ctypedef unsigned long pthread_t
    pthread_t pthread_self()


cdef struct TracePart:
    pthread_t thread  # the thread that ran it (last)
    int runs          # how many times it ran
    double busy       # seconds it keeps its thread busy


cdef void trace_part(void *arg) noexcept nogil:
    cdef TracePart *part = <TracePart *> arg
    cdef double until = seconds_now() + part.busy
    part.thread = pthread_self()
    part.runs += 1
    while seconds_now() < until:
        pass


def split_run_trace(int calls, double mine_busy=0.0, double theirs_busy=0.0, bint stall=False):
    """csrc/placement.c's fm_split_run `calls` times back to back, with parts that note the
    thread that ran them and keep it busy mine_busy and theirs_busy seconds (this module's own
    helper: each compiled module links its own copy of csrc/); `stall`: its helper takes no
    part. For each call: (times the caller's part ran, times the other part ran, whether the
    other ran on another thread than the caller, the seconds fm_split_run returned)."""
    cdef TracePart parts[2]
    cdef double waited
    cdef pthread_t caller = pthread_self()
    trace = []
    fm_split_helper_stall(stall)
    try:
        for _ in range(calls):
            parts[0].runs = parts[1].runs = 0
            parts[0].thread = parts[1].thread = 0
            parts[0].busy, parts[1].busy = mine_busy, theirs_busy
            with nogil:
                waited = fm_split_run(trace_part, &parts[0], &parts[1])
            trace.append((parts[0].runs, parts[1].runs,
                          parts[1].runs == 1 and parts[1].thread != caller, waited))
    finally:
        fm_split_helper_stall(False)
    return trace


ROWS_PRODUCT = bool(fm_rows_product_available())  # csrc/rows_product.c runs on this machine
# Its kernels this machine runs (1: AVX2, 2: AVX-512; the engine uses the last): both on AVX-512.
ROWS_PRODUCT_KERNELS = tuple(range(1, fm_rows_product_kernel() + 1))
# Its kernels for float64: the AVX-512 one alone (2), where it runs.
ROWS_PRODUCT_KERNELS_D = (2,) if fm_rows_product_kernel_d() == 2 else ()


def rows_product_kernels(dtype):
    """The kernels of csrc/rows_product.c that run `dtype`'s products here."""
    return ROWS_PRODUCT_KERNELS if np.dtype(dtype) == np.float32 else ROWS_PRODUCT_KERNELS_D


def kernel_rows_product(floating[:, :] out, const floating[:, :] a, const floating[:, :] W,
                        bint transposed=False, bint a_transposed=False, bint accumulate=False,
                        int kernel=0):
    """out = a @ W by csrc/rows_product.c (only where rows_product_kernels(dtype)); transposed:
    a @ W.T (W given as cols x n_in); a_transposed: a.T @ W (a given as n_in x rows), added to
    out with accumulate. Each argument may be a slice of a larger C-ordered array (its rows
    further apart than its width), as the engine passes X's column slices and the column tiles
    of W and of the product. kernel: one of rows_product_kernels(dtype) (0: the engine's)."""
    cdef Py_ssize_t rows = a.shape[1] if a_transposed else a.shape[0]
    cdef Py_ssize_t n_in = a.shape[0] if a_transposed else a.shape[1]
    cdef Py_ssize_t cols = W.shape[0] if transposed else W.shape[1]
    cdef const floating *a_ptr = &a[0, 0] if a.shape[0] and a.shape[1] else NULL
    cdef const floating *W_ptr = &W[0, 0] if W.shape[0] and W.shape[1] else NULL
    cdef Py_ssize_t item = sizeof(floating)
    cdef int kind = 2 if a_transposed else 1 if transposed else 0
    if not (fm_rows_product_available() if floating is float else fm_rows_product_kernel_d()):
        raise RuntimeError("csrc/rows_product.c does not run this dtype on this processor")
    if ((W.shape[1] if transposed else W.shape[0]) != n_in or out.shape[0] != rows
            or out.shape[1] != cols or (transposed and a_transposed)
            or (accumulate and not a_transposed)):
        raise ValueError("shapes or options differ")
    if a.strides[1] != item or W.strides[1] != item or out.strides[1] != item:
        raise ValueError("rows must be contiguous")
    cdef Py_ssize_t ldo = out.strides[0] // item, lda = a.strides[0] // item
    cdef Py_ssize_t ldw = W.strides[0] // item
    if kernel:
        if floating is float:
            failed = fm_rows_product_by(kernel, kind, &out[0, 0], ldo, a_ptr, lda, W_ptr, ldw,
                                        rows, n_in, cols, accumulate)
        else:
            failed = fm_rows_product_by_d(kernel, kind, &out[0, 0], ldo, a_ptr, lda, W_ptr, ldw,
                                          rows, n_in, cols, accumulate)
        if failed:
            raise RuntimeError(f"kernel {kernel} of csrc/rows_product.c does not run here")
        return
    # the engine's own entry points (this machine's kernel)
    if floating is float:
        if a_transposed:
            fm_rows_product_at_f(&out[0, 0], ldo, a_ptr, lda, W_ptr, ldw, rows, n_in, cols,
                                 accumulate)
        elif transposed:
            fm_rows_product_t_f(&out[0, 0], ldo, a_ptr, lda, W_ptr, ldw, rows, n_in, cols)
        else:
            fm_rows_product_f(&out[0, 0], ldo, a_ptr, lda, W_ptr, ldw, rows, n_in, cols)
    else:
        if a_transposed:
            fm_rows_product_at_d(&out[0, 0], ldo, a_ptr, lda, W_ptr, ldw, rows, n_in, cols,
                                 accumulate)
        elif transposed:
            fm_rows_product_t_d(&out[0, 0], ldo, a_ptr, lda, W_ptr, ldw, rows, n_in, cols)
        else:
            fm_rows_product_d(&out[0, 0], ldo, a_ptr, lda, W_ptr, ldw, rows, n_in, cols)


def kernel_rows_product_packed(floating[:, :] out, const floating[:, :] a,
                               const floating[:, :] W, int kernel=0):
    """out = a @ W from W packed once (fm_rows_pack_f or _d, as a bulk prediction packs each
    layer's W), then multiplied by each of a's halves of rows in turn (the prediction's
    blocks), by `kernel` (one of rows_product_kernels(dtype); 0: the engine's). Returns False,
    having done nothing, where that kernel makes no such copy (an empty W)."""
    cdef Py_ssize_t rows = a.shape[0], n_in = a.shape[1], cols = W.shape[1], half = rows // 2
    cdef Py_ssize_t size, item = sizeof(floating), r0, r1
    if not (fm_rows_product_available() if floating is float else fm_rows_product_kernel_d()):
        raise RuntimeError("csrc/rows_product.c does not run this dtype on this processor")
    if kernel == 0:
        kernel = fm_rows_product_kernel() if floating is float else fm_rows_product_kernel_d()
    if floating is float:
        size = fm_rows_packed_size(kernel, n_in, cols)
    else:
        size = fm_rows_packed_size_d(kernel, n_in, cols)
    if W.shape[0] != n_in or out.shape[0] != rows or out.shape[1] != cols:
        raise ValueError("shapes differ")
    if a.strides[1] != item or W.strides[1] != item or out.strides[1] != item:
        raise ValueError("rows must be contiguous")
    if size == 0:
        return False
    dtype = np.float32 if floating is float else np.float64
    raw = np.empty(size + 64 // item, dtype)  # 64-byte aligned below
    cdef floating[::1] copy = raw[(-raw.ctypes.data % 64) // item:][:size]
    if floating is float:
        fm_rows_pack_f(kernel, &copy[0], &W[0, 0], W.strides[0] // item, n_in, cols)
    else:
        fm_rows_pack_d(kernel, &copy[0], &W[0, 0], W.strides[0] // item, n_in, cols)
    for r0, r1 in ((0, half), (half, rows)):
        if r1 == r0:
            continue
        if floating is float:
            fm_rows_product_packed_f(kernel, &out[r0, 0], out.strides[0] // item, &a[r0, 0],
                                     a.strides[0] // item, &copy[0], r1 - r0, n_in, cols)
        else:
            fm_rows_product_packed_d(kernel, &out[r0, 0], out.strides[0] // item, &a[r0, 0],
                                     a.strides[0] // item, &copy[0], r1 - r0, n_in, cols)
    return True


def kernel_rows_product_picked(floating[:, :] out, const floating[:, :] X,
                               const Py_ssize_t[::1] picked, const floating[:, :] W,
                               bint a_transposed=False, bint accumulate=False):
    """out = X[picked] @ W, or (a_transposed) out (+)= X[picked].T @ W, by csrc/rows_product.c's
    fm_rows_product_picked: a shuffled batch's rows read where they lie in X, as the engine's
    first layer reads them (fastmlp/_engine/_schedule.pxd's picks_rows). X may be a column
    slice of a wider array (a weight job's block of features). RuntimeError where the AVX-512
    kernel does not run."""
    cdef Py_ssize_t n = picked.shape[0], item = sizeof(floating), i
    cdef Py_ssize_t rows = X.shape[1] if a_transposed else n
    cdef Py_ssize_t n_in = n if a_transposed else X.shape[1], cols = W.shape[1]
    cdef int failed
    if W.shape[0] != n_in or out.shape[0] != rows or out.shape[1] != cols:
        raise ValueError("shapes differ")
    if (X.strides[1] != item or W.strides[1] != item or out.strides[1] != item
            or min(X.shape[0], X.shape[1], W.shape[0], W.shape[1], n) == 0):
        raise ValueError("rows must be contiguous and every side non-empty")
    for i in range(n):
        if not 0 <= picked[i] < X.shape[0]:
            raise IndexError("a picked row is outside X")
    if floating is float:
        failed = fm_rows_product_picked_f(2 if a_transposed else 0, &out[0, 0],
                                          out.strides[0] // item, &X[0, 0], X.strides[0] // item,
                                          &picked[0], &W[0, 0], W.strides[0] // item, rows, n_in,
                                          cols, accumulate)
    else:
        failed = fm_rows_product_picked_d(2 if a_transposed else 0, &out[0, 0],
                                          out.strides[0] // item, &X[0, 0], X.strides[0] // item,
                                          &picked[0], &W[0, 0], W.strides[0] // item, rows, n_in,
                                          cols, accumulate)
    if failed:
        raise RuntimeError("csrc/rows_product.c's AVX-512 kernel does not run here")


def fma_chain_product(floating[:, ::1] out, const floating[:, :] a, const floating[:, :] W,
                      bint accumulate=False):
    """out[r, j] = the chain acc = fma(a[r, k], W[k, j], acc) over k in order, from +0 (or,
    accumulate, from out[r, j]): the sums csrc/rows_product.c promises, one scalar at a time
    (C's fmaf and fma round once)."""
    cdef Py_ssize_t r, j, k
    cdef floating acc
    for r in range(a.shape[0]):
        for j in range(W.shape[1]):
            acc = out[r, j] if accumulate else 0.0
            for k in range(a.shape[1]):
                if floating is float:
                    acc = fmaf(a[r, k], W[k, j], acc)
                else:
                    acc = fma(a[r, k], W[k, j], acc)
            out[r, j] = acc


def current_cpu():
    """The CPU the calling thread runs on (-1 where the platform does not say)."""
    return fm_current_cpu()


def leave_cpu(int cpu):
    """What a worker does at a mini-batch's start (csrc/placement.c): if the calling thread runs
    on `cpu`, move it to another CPU it may use and leave its affinity mask as it was."""
    with nogil:
        fm_leave_cpu(cpu)


def wait_count(int[::1] count, int target, int[::1] stop):
    """csrc/fm_openmp.h's fm_wait_count on count[0], without the GIL: whether count[0] reached
    `target` (1) or stop[0] was set first (0)."""
    cdef int reached
    with nogil:
        reached = fm_wait_count(&count[0], target, &stop[0])
    return reached


def count_done(int[::1] count):
    """What a row job does when a layer's deltas are written: count[0] += 1 (release)."""
    fm_count_done(&count[0])


def raise_stop(int[::1] stop):
    """What Ctrl-C does to the threads of a batch: the flag that ends their waits."""
    fm_store_flag(&stop[0], 1)


def publish_jobs(long long[::1] word, unsigned int generation, int jobs):
    """What the pool's caller does at a batch's start (csrc/fm_openmp.h's fm_publish_jobs):
    word[0] holds `jobs` jobs of `generation`, none claimed."""
    fm_publish_jobs(&word[0], generation, jobs)


def claim_all(long long[::1] word, unsigned int generation, int[::1] out):
    """Claim jobs of `generation` from word[0] without the GIL until it has none (fm_claim),
    writing each one taken to out in turn; returns how many were taken."""
    cdef int taken, n = 0
    with nogil:
        taken = fm_claim(&word[0], generation)
        while taken >= 0 and n < out.shape[0]:
            out[n] = taken
            n += 1
            taken = fm_claim(&word[0], generation)
    return n


def pool_claims(int threads, int shared, int weights, claimers, unsigned int generation=1,
                bint homes=True):
    """The jobs of one batch of the pool (_schedule.pxd's pool_deal: `shared` tiles and row
    blocks, `weights` weight jobs, an epoch of `threads` threads, with homes or not), claimed
    one at a time by the threads of `claimers` in turn (pool_next, for `generation`: another
    one claims nothing): the list of the jobs they got, -1 where none was left."""
    cdef Pool pool
    pool_init(&pool, threads)
    pool.generation = 1
    pool_deal(&pool, shared, weights, homes)
    return [pool_next(&pool, generation, me, shared) for me in claimers]


def wait_call(int[::1] value, int seen, int[::1] sleepers):
    """A pool helper's wait to be called to a batch (csrc/placement.c's fm_wait_call), without
    the GIL: value[0] once it differs from `seen`."""
    cdef int now
    with nogil:
        now = fm_wait_call(&value[0], seen, &sleepers[0], NULL, 1)
    return now


def call(int[::1] value, int generation, int[::1] sleepers):
    """The pool's caller calling its helpers to `generation` (fm_call)."""
    fm_call(&value[0], generation, &sleepers[0])


def wait_done(int[::1] done, int target, int[::1] sleepers):
    """The pool's caller at a batch's end (csrc/placement.c's fm_wait_done), without the GIL:
    returns once done[0] reaches `target`."""
    with nogil:
        fm_wait_done(&done[0], target, &sleepers[0])


def job_done(int[::1] done, int[::1] sleepers):
    """A helper's count of a job done (fm_done): done[0] += 1, waking a sleeping caller."""
    fm_done(&done[0], &sleepers[0])


def spare_seconds():
    """csrc/placement.c's fm_spare_seconds: the idle seconds of the CPUs this process may run
    on plus its own CPU seconds (-1 where there is no count)."""
    return fm_spare_seconds()


def thread_choice_trace(most, costs, idle=None, Py_ssize_t rows=32, double unit=1e-5,
                        switch=1.0):
    """The thread counts _threads.pxd's choice gives batch after batch, when a batch costs
    costs[i][0] seconds per row on one thread and costs[i][1] on `most` (batch i). `most` may
    also be a list, one thread limit per batch (choice_for at each, as each epoch does). A batch
    on another thread count than the batch before costs `switch` times its cost; `switch` may
    also be a sequence: the factors of the first batches after a change, one each.

    With `idle` (one value a batch: how many CPUs stood idle during it), the trainer's gate
    runs too, on a clock and a count of spare seconds that this helper keeps (idle CPUs plus
    the batch's own threads): the costs are then in `unit` seconds per row, of `rows`-row
    batches."""
    cdef ThreadChoice c, kept
    cdef int which, threads, before = 0
    cdef Py_ssize_t since  # batches since the thread count changed
    cdef double cost
    cdef double now = 1.0, spare = 0.0, scale = 1.0 if idle is None else unit, seconds
    mosts = most if isinstance(most, list) else [most] * len(costs)
    factors = [float(f) for f in switch] if hasattr(switch, "__len__") else [float(switch)]
    since = len(factors)  # (no change before the first batch)
    choice_init(&c, 0)
    choice_init(&kept, 0)
    trace = []
    for i, (limit, (one, many)) in enumerate(zip(mosts, costs)):
        choice_for(&c, &kept, limit)
        which = choice_next(&c)
        threads = choice_threads(&c, which)
        trace.append(threads)
        cost = (many if which == 1 else one) * scale
        if before and threads != before:
            since = 0
        if since < len(factors):
            cost *= factors[since]
        since += 1
        before = threads
        choice_record(&c, which, cost)
        if idle is not None:
            seconds = cost * rows
            now += seconds
            spare += (idle[i] + threads) * seconds
            if choice_wants_gate(&c, rows):
                choice_gate(&c, rows, spare, now)
    return trace


def scratch_counts():
    """(blocks allocated so far, threads holding blocks now) by csrc/scratch.c in this module
    (the kernel_* functions' products and steps)."""
    return fm_scratch_allocations(), fm_scratch_threads()


def scratch_poison(bint on):
    """Whether csrc/scratch.c fills every block it hands out with NaNs first (tests: a kernel
    must not read a part of its scratch it did not write in the same call)."""
    fm_scratch_set_poison(on)


def kernel_stream_store(unsigned char[::1] dst, const unsigned char[::1] src):
    """dst[:len(src)] = src by csrc/optimizers.c's fm_stream_store (streaming stores), fenced."""
    if src.shape[0] > dst.shape[0]:
        raise ValueError("src is longer than dst")
    if src.shape[0] > 0:
        fm_stream_store(&dst[0], &src[0], <size_t> src.shape[0])
    fm_store_fence()


STORE_PROBE_GAP = _STORE_PROBE_GAP
STORE_PROBE_BATCHES = _STORE_PROBE_BATCHES


def store_choice_trace(costs):
    """The ways _stores.pxd's choice gives batch after batch (1 streamed, 0 cached), when a
    batch's gather costs costs[i][0] seconds per byte cached and costs[i][1] streamed."""
    cdef StoreChoice c
    cdef int way
    store_init(&c, -1)
    trace = []
    for cached, streamed in costs:
        way = store_next(&c)
        trace.append(way)
        store_record(&c, way, streamed if way == 1 else cached)
    return trace


STEP_PROBE_BATCHES = _STEP_PROBE_BATCHES
FETCH_PROBE_BATCHES = _FETCH_PROBE_BATCHES


def step_store_choice_trace(costs, fetch=False):
    """The ways _stores.pxd's step choice gives batch after batch (1 streamed, 0 cached), when
    a batch costs costs[i][0] seconds a row with the step's W cached and costs[i][1] streamed
    (None: the batch was not timed, a short or one-thread batch, which stores through the
    caches). With `fetch`, the products' fetch choice's instead (0 fetching the next rows of W,
    1 not; costs[i] for each)."""
    cdef StoreChoice c
    cdef int way
    if fetch:
        fetch_init(&c, -1)
    else:
        step_store_init(&c, -1)
    trace = []
    for cost in costs:
        way = store_next(&c)
        if cost is None:
            trace.append(None)
            store_ran(&c, 0)
            continue
        trace.append(way)
        store_record(&c, way, cost[1] if way == 1 else cost[0])
    return trace


def shared_clock_trace(costs):
    """The step's and the fetch's choices on one clock, as _trainer.pyx's run_batches runs them
    (_stores.pxd's clock_next and clock_record): batch i costs costs[i][step way][fetch way]
    seconds a row (None: a short batch, not a fair measure), each batch timed by both. Returns
    (step way, fetch way, the step's choice probes, the fetch's probes) batch after batch."""
    cdef StoreChoice step, fetch
    cdef ClockWays w
    step_store_init(&step, -1)
    fetch_init(&fetch, -1)
    trace = []
    for cost in costs:
        w = clock_next(&step, &fetch, True)
        trace.append((w.step, w.fetch, bool(w.step_probe), bool(w.fetch_probe)))
        clock_record(&step, &fetch, &w, w.step, True, True,
                     -1.0 if cost is None else cost[w.step][w.fetch])
    return trace


def hold_all_threads(Network network, int threads):
    """Make every coming batch of `network` (its epochs with `threads` threads) run on all of
    them: no probe of one thread, whatever the batches cost. For tests of the threaded schedule,
    which the run-time choice would otherwise give one thread on a machine with fewer cores."""
    cdef ThreadChoice *c = &network.choice
    choice_init(c, threads)
    c.warm = True
    c.until_probe = 1 << 62


def first_tiles(Network network, Py_ssize_t rows, Py_ssize_t schedule_cpus, bint sparse=False):
    """How many column tiles the first layer's product over a batch of `rows` rows is cut into
    in schedule class `schedule_cpus` (0: none, the row blocks multiply their own rows)."""
    return schedule_first_tiles(&network.g, rows, sparse, schedule_cpus)
