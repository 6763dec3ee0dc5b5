# The schedule of a mini-batch: which thread computes what, in which order. The determinism of
# fastmlp lives here.
#
# Design
# ------
# A mini-batch is two parallel passes, each over its own outputs, cut into blocks whose
# boundaries depend only on the shapes and the schedule class (below), never on the thread
# count:
#   1. row blocks (rows_job): everything that is row by row — the forward pass through every
#      layer, the output delta, every hidden delta (delta_prev for a row needs only that row's
#      delta);
#   2. weight blocks (weights_job): each layer's W cut into blocks of rows, and each bias; a job
#      computes its block's gradient over the whole batch (one GEMM), then finishes it and takes
#      the optimizer's step on it while it is in cache.
# So every output element is computed by the same sequence of BLAS calls whatever the number of
# threads (bitwise-identical fits with 1 thread or 16), no per-thread gradient copies or
# reductions are needed, and a mini-batch needs no barrier between layers whatever the depth
# (batch normalization excepted: its statistics need every row mid-pass, see below). (DESIGN.md
# sketches per-shard gradients summed in a fixed order; blocking the outputs gives the same
# determinism with O(params) instead of O(shards x params) memory and no summation pass.)
# Measured on this 2-core machine under load: one barrier per layer and pass made two threads
# 75x slower than one on `small`; two barriers per batch brought that to 2x, and on a quiet
# machine the barriers cost a few microseconds. BLAS runs single-threaded inside these loops; the
# caller holds it to one thread (threadpoolctl). How many threads a batch gets is chosen per
# batch at run time (_threads.pxd); no block depends on it.
#
# Both passes run in one parallel region (batch_jobs): the row blocks, then the weight jobs, are
# handed out as threads come free (in an epoch's pool, each weight job first to a thread of its
# own, its home: pool_next). No job is bound to a thread, so a worker that the OS wakes late,
# or runs on a core it shares with another process, holds back only a job it has started; the
# caller takes the rest, and a batch is never slower than the caller alone.
# (With the row pass 'static', the caller waited for its worker's block however late the worker
# started: beside a busy process, up to a time slice of the OS, milliseconds, against ~0.1 ms
# for a `tiny-batch` block.) Instead of a barrier between the passes, each row block counts each
# layer's delta done for its rows, and a weight job waits for its layer's count (and, before its
# step, for every block to be past reading its W): the weight jobs go out from the top layer
# down, so a thread done with its rows computes the top layers' gradients while another is still
# on the lower layers' deltas. Measured against the two passes (2-core Xeon VM, shared): mnist
# 0.96x the epoch (alternating processes of the two builds, medians of 24 epochs each; single
# benchmarks/ab_builds.py runs of 5-9 rounds said 0.91-1.03 at that load), wide 0.99-1.01x (its
# row blocks end together), tiny-batch 0.99x, small 0.99x; the bits are the same.
#
# Few rows against a wide first layer (`tiny-batch`), the row blocks would each pack the whole
# first W for a few rows' product: there the first layer's product over the whole batch goes
# out first, cut into two tiles of W's columns, and the row blocks wait for both and take the
# first layer from its activation on (first_tiles, first_product_job).
#
# A sum over jobs (the L2 term's sum(W^2), the gradient's norm for max_grad_norm) is taken from
# per-job partial sums in job order, the same whatever thread computed which job. Clipping the
# gradient's norm needs every block's gradient first, so then the step moves to a third pass.
#
# Block sizes. n rows are cut into an even number (for two cores) of blocks of MIN_ROWS rows or
# more (a W's rows: MIN_WEIGHT_ROWS), at most MAX_BLOCKS of them, and into two as soon as there
# are MIN_SPLIT rows. Each block's GEMM packs its whole other operand again (W in the forward
# pass, the deltas in the weight pass), so few large blocks are best: on the 2-core machine, row
# blocks of >= 64 rows against >= 256 took mnist from 0.27 to 0.22-0.25 s per epoch and wide
# from 1.07 to 0.94 s (scipy's OpenBLAS, SkylakeX kernel). The weight pass keeps smaller blocks
# (>= 256 of W's rows): with only two per layer and two barriers a batch, mnist ran 1.45x faster
# on 2 threads than on 1, with >= 128 1.73-1.88x; in one region (batch_jobs), where a thread
# that finishes early takes other work, >= 256 rows pack the deltas half as often and ran
# mnist in 0.94-0.95x the time of >= 128, wide 0.90x, tiny-batch 0.90x, mnist-f64 1.00x
# (alternating runs, medians of 8-18 epochs each). Below 16 rows a split costs more than it
# saves. Two blocks of >= 512 rows for `wide`'s 1024-row W1 and W2 (half as many packings of
# their inputs) ran 1.06x the epoch of four of 256 (benchmarks/ab_builds.py, 8 rounds, 2-core
# AMD EPYC VM): not taken.
#
# Schedule classes (issue 12: users run on 16-64 cores). Those rules give a 256-row batch two
# row blocks, so 16 cores would be ~15-20 % busy: the row pass is the critical path. Blocks that
# keep 16 cores busy (16 row blocks of 16 rows for mnist) cost a thread alone 1.5-1.8x the time
# (each GEMM packs its W again), which a 2-core machine must not pay. The blocks fix the bits,
# so they cannot follow the thread count; they follow the machine instead: the Trainer's
# schedule_cpus (work.cpus), the CPUs the process may run on rounded down to 2, 4, 8 or 16
# (fastmlp/_runtime.py's schedule_cpus, which says how a user sets it). A class of C wants C
# row blocks of >= MIN_SPLIT rows and C blocks of each W's rows of >= WEIGHT_SPLIT, where the
# rules above give fewer; class 2 is exactly those rules (n_blocks). Modelled on 16 cores
# (benchmarks/schedule_model.py, timed GEMMs and kernels, AMD EPYC VM): mnist 94 % busy, 3.8x
# the batch rate of class 2's blocks on the same cores; wide 96 %, 3.8x; each thread count of a
# class gives its bits (tests/engine/test_schedule_classes.py runs class 16 on 1, 2 and 16
# threads). Class 1 (want = 1) is one block per pass: batches that threads_for_batch never
# gives two threads, on any machine (fastmlp/_runtime.py's batch_schedule).
#
# Tried and not built: each layer's delta packed once for all its weight jobs. A weight job's
# product (a^T delta, csrc/rows_product.c) packs all of the layer's delta into panels, whatever
# its block of W's rows, so a layer of J jobs packs it J times (`wide`'s W2: 4 times 512 x 1024
# floats a batch in class 2, 16 times in class 16; ~0.1 ms each on one core, against ~1.4 ms
# of a class-2 job's multiply-adds). A trial build had each row block pack its rows of the
# delta into one shared copy right after computing them, before counting the delta done, and
# the jobs read that copy: the same panels, the same bits (tools/fingerprint.py 303 of 303 on 1
# and 2 threads; a kernel test and an engine test of it passed, and failed with the pack moved
# before the delta was complete). Epochs with the copy switched on and off in turns in one
# process (2-core Intel Xeon VM, 2026-12-07, medians of 12-20 epochs each way, `wide` at a
# fifth to a third of its rows), copy / each job packing: class 2 1.007 and 1.012 on one
# thread, 0.996-1.017 on two; class 4 1.035-1.041 and 0.980-1.009; class 16 0.906-1.014 and
# 0.920-0.983; `mnist` 0.91-0.99 (its jobs' deltas are 256 x 256). Every job still streams the
# whole delta from the caches, the copy adds a write and a read of it per batch, and the
# packing saved is ~0.2 ns a float: nothing the noise let one see on 2 cores, a few percent at
# most in class 16, for a second delta-sized buffer and a path of its own in the kernel.
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.math cimport sqrt

from fastmlp._engine._geometry cimport Geometry, act_at, delta_at, is_maxout
from fastmlp._engine._interrupt cimport Interrupt, interrupted
from fastmlp._engine._kernels cimport (
    FM_WATCH_SIZE, clamp, finish_gradient, finish_step, fm_optim, fm_rows_product_kernel,
    optim_step, output_delta, scale,
)
from fastmlp._engine._layer_batchnorm cimport (
    MIN_NORM_UNITS, BatchNorm, batchnorm_layer_backward, batchnorm_layer_forward,
    batchnorm_update_running, beta_of, normalized_z,
)
from fastmlp._engine._layer_dense cimport (
    OWN_PRODUCT_ROWS, SMALL_ROWS, activation_forward, dense_backward_bias, dense_backward_input,
    dense_backward_weights, dense_product_columns,
)
from fastmlp._engine._layer_dropout cimport dropout_layer_forward
from fastmlp._engine._layer_maxout cimport maxout_layer_forward
from fastmlp._engine._layer_sparse_input cimport sparse_backward_weights
from fastmlp._engine._layers cimport (
    Kept, hidden_backward, kept_input, layer_activate, layer_forward, layer_product,
    note_nonfinite,
)
from fastmlp._engine._openmp cimport (
    FM_POOL_MAX_JOBS, fm_call, fm_claim, fm_claim_last, fm_count_done, fm_current_cpu, fm_done,
    fm_fp_give_back, fm_fp_modes, fm_fp_take, fm_leave_cpu, fm_load_flag, fm_publish_jobs,
    fm_helper_slice, fm_store_flag, fm_take_next, fm_wait_call, fm_wait_count, fm_wait_done,
)
from fastmlp._engine._rows cimport Rows, dense_input, gather_rows, gathers, source_row
from fastmlp._engine._threads cimport seconds_now

cdef enum:
    NORM_JOB = -2  # job_hi of a layer's gamma and beta (of its bias: -1)
    MIN_ROWS = 256
    MIN_WEIGHT_ROWS = 256
    MIN_SPLIT = 16
    WEIGHT_SPLIT = 64
    MAX_BLOCKS = 16
    POOL_HOMES = 16   # the most homes of weight jobs (pool_next); thread t's is t % homes
    HOME_ROWS = 64    # batches of fewer rows give their weight jobs homes (pool_deal)
    POOL_STRIDE = 8   # 64 bytes between two homes' words: no line shared by two claimers
    # A two-thread batch streams its steps' W past the caches (Step.stream, csrc/optimizers.c's
    # fm_stream_copy) from this many rows on. The next batch then reads W from memory: a cost
    # per batch that W's size sets, against arithmetic that the rows multiply. On the 2-core
    # AMD EPYC VM (Zen 4), whose host comes and goes between two states a few times a minute
    # (in one, each store to a W that the other core has read costs ~5x: 2,300-2,600 us for
    # mnist-f64's Adam step in a C harness, 510-560 in the other), builds in turns
    # (benchmarks/ab_builds.py, 2-6 rounds, the state read between runs), in the costly state:
    # mnist 0.62-0.90x the epoch, mnist-f64 0.67-0.72x, wide 0.84-0.95x; in the other 0.98-1.01x,
    # 1.00-1.01x, 1.00-1.01x. `tiny-batch` (32 rows) streamed read 1.16-1.21x in the other state,
    # where its batches take two threads (in the costly one they take one: nothing streams).
    # Nor would streaming win them back there: each way held for whole epochs in turns, in one
    # process (2-core AMD EPYC VM, 2026-12-07, a /tmp script; the state read by a two-thread
    # ping-pong before and after each three), in the costly state two threads cached took
    # 0.41-0.60 s (median 0.53), streamed 0.30-0.38 (0.34), one thread 0.29-0.41 (0.33); in the
    # cheap one 0.20, 0.23 and 0.33. A trial build that let every two-thread batch stream where
    # the step's choice said so (probes of it falling due while one thread held the batches)
    # ran its epochs 0.986x the committed build's in the cheap state and 1.01x in the costly
    # one (two long-lived processes, epochs in turns, 200 pairs): the bound stays. (Why the
    # costly state costs so: the homes' note, below.) `small`'s W is under FM_STREAM_MIN_BYTES.
    # Where batches may stream, whether they do is chosen at run time (_stores.pxd's step
    # choice: on a 2-core Intel Xeon VM, streaming cost).
    STREAM_MIN_ROWS = 128


cdef inline bint may_stream(int n_threads, Py_ssize_t rows) noexcept nogil:
    """Whether a batch of `rows` rows on `n_threads` threads may write past the caches: its
    steps (Step.stream, unless weight_clip) and its gathered rows (Step.stream_rows, where the
    run-time choice says so: _stores.pxd)."""
    return n_threads > 1 and rows >= STREAM_MIN_ROWS


cdef inline Py_ssize_t n_blocks(Py_ssize_t n, Py_ssize_t min_rows, Py_ssize_t want,
                                Py_ssize_t split) noexcept nogil:
    """How many blocks n rows are cut into: n // min_rows, or `want` (the schedule class) of at
    least `split` rows where that is more; one with want = 1. Depends on n and the class only,
    never on the thread count. With want = 2 it is the rule before classes, for any split of 16
    or more."""
    if want == 1:  # batches that never get two threads (fastmlp/_runtime.py's batch_schedule)
        return 1
    cdef Py_ssize_t k = n // min_rows
    if k < want:
        k = want if n // split > want else n // split
    if k > MAX_BLOCKS:
        k = MAX_BLOCKS
    if k < 2:
        return 2 if n >= MIN_SPLIT else 1
    return k - (k % 2)


cdef inline Py_ssize_t block_start(Py_ssize_t n, Py_ssize_t blocks, Py_ssize_t b) noexcept nogil:
    return (n * b) // blocks


cdef struct Work:
    # Every buffer of a pass, allocated once per fit by the Trainer.
    Kept kept         # each layer's output and what its kind keeps for backward
    void *deltas      # each layer's delta, layer l at delta_at(l) (as acts unless maxout)
    void *gathered    # capacity x n_features: the shuffled batch's input rows
    double *gather_seconds        # MAX_BLOCKS: each row block's time gathering its rows (0: none)
    unsigned char *input_seen     # MAX_BLOCKS: 1 where a row block found its first layer's
                                  # product not finite (_layers.pxd's note_nonfinite), in any
                                  # batch since the Trainer's epoch began
    double *row_loss  # capacity
    double *partial   # one sum(W^2) per weight job
    double *grad_partial          # one sum(g^2) per weight job (max_grad_norm)
    double *watch                 # per weight job, FM_WATCH_SIZE doubles: its step's way
                                  # around subnormal numbers (csrc/optimizers.c); NULL: none
    const Py_ssize_t *job_layer   # weight job j: layer, and W's rows lo..hi (hi -1: the bias,
                                  # NORM_JOB: gamma and beta)
    const Py_ssize_t *job_lo
    const Py_ssize_t *job_hi
    Py_ssize_t n_jobs
    Py_ssize_t cpus               # the schedule class: how many row blocks a batch wants
    const Py_ssize_t *dispatch    # the weight jobs in the order batch_jobs hands them out
    int *counters                 # batch_jobs's: [0] the next job to hand out, [1 + l] the row
                                  # blocks whose layer-l delta is complete, [1 + n_layers] the
                                  # first layer's column tiles done (first_tiles)
    Interrupt *interrupt          # NULL: not stoppable
    Pool *pool                    # the epoch's helpers (batch_jobs); NULL: a region per batch


cdef struct Pool:
    # An epoch's threads, kept in one parallel region (Trainer._epoch): the caller runs the
    # batches, the helpers (pool_help) take jobs of those it calls them to (batch_jobs).
    long long word          # the batch's tiles and row blocks: fm_claim's (generation, jobs,
                            # next)
    long long queues[POOL_HOMES * POOL_STRIDE]  # each home's weight jobs, as `word` (pool_next)
    int threads             # the epoch's threads
    int homes               # the batch's homes of weight jobs (pool_deal): 1, or the threads
    unsigned int generation # the caller's batch count (the word's generation)
    int called              # the generation the helpers were last called to (a futex word)
    int sleepers            # helpers that may sleep on `called`
    int done                # jobs of the batch finished
    int waiting             # the caller may sleep on `done` (fm_wait_done)
    int closed              # the epoch is over: helpers leave
    int caller_cpu          # where the caller runs (a helper moves off it: fm_leave_cpu)
    unsigned int fp_modes   # the caller's floating-point modes (a helper takes them: fm_fp_take)
    Py_ssize_t tiles        # the batch's first-layer tiles and row blocks (batch_jobs)
    Py_ssize_t row_blocks


cdef struct Step:
    # What the weight jobs do once a block's gradient is complete.
    bint finish           # add the L2 term and divide by the batch's weight (else leave it raw)
    bint take_step        # then update the parameters
    double divisor        # sum of the batch's sample weights (its size when unweighted)
    fm_optim *optim       # the solver: hyper-parameters and this step's scalars
    double max_grad_norm  # 0: the gradient's norm is not clipped
    double grad_scale     # this step's clip factor, min(1, max_grad_norm / (|g| + 1e-6))
    double weight_clip    # 0: the parameters are not clamped
    bint stream           # the step writes large blocks of W past the caches: the caller's way
                          # (_stores.pxd), kept by batch_step
                          # on batches of two threads or more and STREAM_MIN_ROWS rows or more,
                          # without weight_clip (csrc/optimizers.c's fm_stream_copy says why)
    bint stream_rows      # the row blocks gather their rows past the caches: the caller's way
                          # (_stores.pxd), kept by batch_step where may_stream allows it


cdef inline bint picks_rows(const Geometry *g, const Rows *rows, const Work *work) noexcept nogil:
    """Whether a shuffled batch's first layer reads its rows where they lie in X, picked by the
    batch's index (its row blocks' products and its weight jobs: csrc/rows_product.c's
    fm_rows_product_picked), instead of from rows gathered first (gather_rows). Where the
    AVX-512 kernel takes every first-layer product of the batch: a dense X of contiguous rows,
    and every row block between SMALL_ROWS and OWN_PRODUCT_ROWS rows (dense_product's own
    kernel), or with first-layer tiles (first_tiles: each over all the batch's rows) at most
    OWN_PRODUCT_ROWS rows in all (dense_product_columns's). The same values in the
    same chains of multiply-adds: no bit changes. The gather was a copy of each row from memory
    and a store of it, and the first product then read the copy (on the 2-core AMD EPYC VM,
    Zen 4, perf: 3.6 % of `mnist-f64`'s CPU in its memcpy, more in its streamed stores); the
    kernel now reads each row once, from memory, in its first panel. A function of the batch's
    shapes and the machine only, asked by every reader of the first layer's input (layer_input,
    weights_job), so that all of them read the rows the same way."""
    cdef Py_ssize_t blocks
    if (rows.index == NULL or rows.strided or rows.sparse or rows.col_stride != 1
            or fm_rows_product_kernel() != 2):
        return False
    if first_tiles(g, rows.n, rows.sparse, work.cpus) > 0:
        return rows.n <= OWN_PRODUCT_ROWS
    blocks = n_blocks(rows.n, MIN_ROWS, work.cpus, MIN_SPLIT)
    return (rows.n // blocks >= SMALL_ROWS
            and (rows.n + blocks - 1) // blocks <= OWN_PRODUCT_ROWS)


cdef inline Py_ssize_t layer_input(const floating **a_in, const Py_ssize_t **picked,
                                   const Geometry *g, Py_ssize_t l, Py_ssize_t r0, Py_ssize_t r1,
                                   const Rows *rows, const Work *work,
                                   bint stream=False) noexcept nogil:
    """a_in = rows r0..r1 of layer l's input in a training pass; returns their distance: X's
    rows in place or gathered (gathering them here), or the layer below's output after dropout;
    NULL for the first layer of a sparse pass (the product reads the CSR X itself). Where the
    rows are picked from X (picks_rows), a_in is X itself, picked[0] their rows' index (row
    r0's first; else NULL), and the distance X's."""
    cdef Py_ssize_t n_in = g.units[l]
    a_in[0] = NULL
    picked[0] = NULL
    if l > 0:
        a_in[0] = <const floating *> kept_input(&work.kept) + act_at(g, rows.n, l - 1, r0)
    elif rows.sparse:
        pass
    elif picks_rows(g, rows, work):
        a_in[0] = <const floating *> rows.X
        picked[0] = rows.index + r0
        return rows.ldx
    elif gathers(rows):
        gather_rows(<floating *> work.gathered, 0, rows, r0, r1, n_in, stream)
        a_in[0] = <const floating *> work.gathered + r0 * n_in
    else:
        a_in[0] = <const floating *> rows.X + (rows.first + r0) * rows.ldx
        return rows.ldx
    return n_in


cdef inline Py_ssize_t batch_input(const floating **a_in, const Py_ssize_t **picked,
                                   const Geometry *g, const Rows *rows,
                                   const Work *work) noexcept nogil:
    """a_in = the first layer's input over every row of a dense pass's batch, for the jobs that
    read all its rows at once (the first-layer tiles, the first layer's weight jobs); returns
    its distance. Where the rows are read where they lie (picks_rows, as layer_input reads
    them), X itself with picked[0] the batch's index; else (picked[0] NULL) the rows gathered
    before (batch_jobs, rows_job) or X's rows in place."""
    if picks_rows(g, rows, work):
        a_in[0] = <const floating *> rows.X
        picked[0] = rows.index
        return rows.ldx
    a_in[0] = dense_input(rows, <const floating *> work.gathered)
    picked[0] = NULL
    return g.units[0] if gathers(rows) else rows.ldx


cdef inline void output_rows(const Geometry *g, Py_ssize_t r0, Py_ssize_t r1,
                             const floating *theta, const Rows *rows,
                             const Work *work, unsigned char *seen) noexcept nogil:
    """Rows r0..r1 of the output layer, its input ready: forward, then the output delta and each
    row's loss. `seen`: the row block's work.input_seen, noted where the output layer is the
    first (a network without hidden layers)."""
    cdef Py_ssize_t L = g.n_layers, ld_in, slot = act_at(g, rows.n, L - 1, r0)
    cdef Py_ssize_t n_out = g.units[L]
    cdef floating *a_out = <floating *> work.kept.acts + slot
    cdef floating *delta_out = <floating *> work.deltas + delta_at(g, rows.n, L - 1, r0)
    cdef const floating *a_in
    cdef const Py_ssize_t *picked
    cdef const floating *Y = <const floating *> rows.Y
    cdef const floating *w = <const floating *> rows.w
    ld_in = layer_input(&a_in, &picked, g, L - 1, r0, r1, rows, work)
    layer_forward(g, L - 1, a_out, <floating *> NULL, NULL, delta_out, a_in, ld_in, rows, r0, r1,
                  theta, <const floating *> NULL, picked, seen if L == 1 else NULL)
    if rows.index != NULL:
        output_delta(delta_out, work.row_loss + r0, a_out, Y, w, rows.index + r0, r1 - r0,
                     n_out, g.loss, g.loss_param)
    else:
        output_delta(delta_out, work.row_loss + r0, a_out, Y + (rows.first + r0) * n_out,
                     w + rows.first + r0 if w != NULL else NULL, NULL, r1 - r0, n_out, g.loss,
                     g.loss_param)


cdef inline void backward_rows(const Geometry *g, Py_ssize_t l, Py_ssize_t r0, Py_ssize_t r1,
                               const floating *theta, const Rows *rows,
                               const Work *work) noexcept nogil:
    """Rows r0..r1: layer l's delta (dLoss/dz) -> hidden layer l - 1's, through W^l^T, dropout's
    mask and act' (or maxout's routing); with batch normalization, what comes out is dLoss/dy of
    layer l - 1, which its backward feature pass then turns into dLoss/dz."""
    cdef floating *deltas = <floating *> work.deltas
    # Rows r0..r1 of layer l - 1's delta start at r0 * cols[l - 1], the layout its weight jobs
    # read; the product is compact (units[l] wide) until hidden_backward.
    cdef floating *delta_out = deltas + delta_at(g, rows.n, l - 1, r0)
    dense_backward_input(delta_out, deltas + delta_at(g, rows.n, l, r0),
                         theta + g.coef_offset[l], r1 - r0, g.units[l], g.cols[l])
    hidden_backward(g, l - 1, delta_out, r0, r1, rows, &work.kept)


cdef inline Py_ssize_t first_tiles(const Geometry *g, Py_ssize_t n, bint sparse,
                                   Py_ssize_t cpus) noexcept nogil:
    """How many column tiles the first layer's product over a batch of n rows is cut into, in
    schedule class `cpus`, before the row blocks run: 2 or 0 (none: each row block multiplies
    its own rows).

    Each row block's GEMM packs the whole first W again; few rows against a wide first layer
    (`tiny-batch`: 2 blocks of 16 rows against 784 x 256) spend more time packing W than
    multiplying. Cut by W's columns instead, over all the batch's rows, W is packed once and
    the input once per tile, which is less where rows are few: on scipy's OpenBLAS (Haswell
    kernels, 2-core AMD EPYC VM) the product of 32 x 784 by 784 x 256 took 500 us of CPU as the
    two row blocks' (each in 64-column tiles, dense_product), 340 us as two tiles of 128
    columns, and `tiny-batch`'s batch on one thread 0.99 ms instead of 1.21. The row blocks
    then wait for the tiles and take the first layer from its bias and activation on.

    Two tiles where the row blocks are two (the 2-core class's cut of few rows) and the rows
    at most a quarter of W's columns: the packing of W they save is then at least twice what
    they add (the input's packing is the cheaper per float; and the row blocks wait). `mnist`
    (256 rows, 256 columns; in 2 tiles it ran 1.12x the epoch, its 256 rows gathered by one
    thread) and `wide` (512, 1024; in 4 tiles 1.0-1.2x) keep their row blocks. Where the row
    blocks are more (the classes of many cores), tiles would add a phase before them that
    benchmarks/schedule_model.py does not model: none there. Like the blocks, the tiles follow
    the shapes and the class only, never the thread count; a dense first layer (not maxout,
    not a sparse X) of a network with hidden layers."""
    if (n_blocks(n, MIN_ROWS, cpus, MIN_SPLIT) != 2 or 4 * n > g.cols[0] or g.n_layers < 2
            or sparse or is_maxout(g, 0)):
        return 0
    return 2


cdef inline void first_product_job(const Geometry *g, Py_ssize_t job, Py_ssize_t tiles,
                                   const floating *theta, const Rows *rows,
                                   const Work *work) noexcept nogil:
    """Column tile `job` of the first layer's product over every row of the batch (first_tiles;
    its input gathered before the tiles start, batch_jobs, or read where it lies: picks_rows),
    where rows_job would have put it."""
    cdef Py_ssize_t n_cols = g.cols[0], ld_in
    cdef const floating *a_in
    cdef const Py_ssize_t *picked
    ld_in = batch_input(&a_in, &picked, g, rows, work)
    dense_product_columns(<floating *> work.kept.acts + act_at(g, rows.n, 0, 0), a_in, ld_in,
                          theta + g.coef_offset[0], rows.n, g.units[0], n_cols,
                          block_start(n_cols, tiles, job), block_start(n_cols, tiles, job + 1),
                          picked)
    fm_count_done(&work.counters[1 + g.n_layers])


cdef inline void rows_job(const Geometry *g, Py_ssize_t job, Py_ssize_t blocks,
                          Py_ssize_t tiles, const floating *theta, const Rows *rows,
                          const Work *work, bint stream) noexcept nogil:
    """Everything that is row by row, for one block of rows: the forward pass through every
    layer, the output delta, and every hidden layer's delta. No other block is waited for; with
    `tiles` (first_tiles), the first layer's product is the tiles', waited for."""
    cdef Py_ssize_t r0 = block_start(rows.n, blocks, job)
    cdef Py_ssize_t r1 = block_start(rows.n, blocks, job + 1), l, slot, ld_in, L = g.n_layers
    cdef const Kept *kept = &work.kept
    cdef floating *acts = <floating *> kept.acts
    cdef floating *deltas = <floating *> work.deltas
    cdef const floating *a_in
    cdef const Py_ssize_t *picked
    cdef int *done = work.counters + 1
    cdef const int *stop = &work.interrupt.raised if work.interrupt != NULL else NULL
    cdef double started = 0.0
    cdef bint timing
    if r1 == r0:
        for l in range(L):
            fm_count_done(&done[l])
        return
    for l in range(L - 1):
        slot = act_at(g, rows.n, l, r0)
        if l == 0 and tiles > 0:
            if not fm_wait_count(&done[L], <int> tiles, stop):
                return  # the batch is abandoned (Ctrl-C): nothing waits for this block then
            note_nonfinite(work.input_seen + job, acts + slot, r1 - r0, g.cols[0])
            layer_activate(g, 0, acts + slot,
                           <floating *> kept.pre + slot if g.keep_z else <floating *> NULL,
                           <int *> NULL, <floating *> NULL, r1 - r0, theta,
                           <const floating *> NULL)
        else:
            # (the gather's clock: _stores.pxd; rows picked where they lie gathered nothing)
            timing = l == 0 and gathers(rows)
            if timing:
                started = seconds_now()
            ld_in = layer_input(&a_in, &picked, g, l, r0, r1, rows, work, stream)
            if timing and picked == NULL:
                work.gather_seconds[job] = seconds_now() - started
            # A maxout layer's pieces go to its delta rows, not needed before backward reaches
            # them.
            layer_forward(g, l, acts + slot,
                          <floating *> kept.pre + slot if g.keep_z else <floating *> NULL,
                          kept.argmax + slot if kept.argmax != NULL else NULL,
                          deltas + delta_at(g, rows.n, l, r0), a_in, ld_in, rows, r0, r1, theta,
                          <const floating *> NULL, picked,
                          work.input_seen + job if l == 0 else NULL)
        if kept.dropout.threshold > 0:
            dropout_layer_forward(<floating *> kept.dropout.dropped + slot, acts + slot,
                                  &kept.dropout, g, l, rows, r0, r1)
    output_rows(g, r0, r1, theta, rows, work, work.input_seen + job)
    fm_count_done(&done[L - 1])
    for l in range(L - 1, 0, -1):
        backward_rows(g, l, r0, r1, theta, rows, work)
        fm_count_done(&done[l - 1])


# ---------------------------------------------------------------------------------------------
# Batch normalization (fastmlp/_engine/_layer_batchnorm.pxd) needs every row of a hidden layer's
# z before any row can go on: between a hidden layer's product and its activation comes a pass
# over blocks of its features, and in backward one between its dLoss/dy and its dLoss/dz. The
# row blocks are those of rows_job; the feature blocks are cut from the layer's units as rows
# are (n_blocks), so both depend on the shapes only. 2 (L - 1) more barriers per batch in each
# direction: the price of statistics over the batch.
# ---------------------------------------------------------------------------------------------

cdef inline void normalized_forward_rows(const Geometry *g, Py_ssize_t l, Py_ssize_t job,
                                         Py_ssize_t blocks, const floating *theta,
                                         const Rows *rows, const Work *work) noexcept nogil:
    """A block of rows of forward pass l: hidden layer l - 1's activation (its z normalised by
    now) and dropout; then layer l's product, or the whole output layer and, backward, its
    delta down to hidden layer l - 1's dLoss/dy."""
    cdef Py_ssize_t r0 = block_start(rows.n, blocks, job)
    cdef Py_ssize_t r1 = block_start(rows.n, blocks, job + 1), ld_in, slot, L = g.n_layers
    cdef const Kept *kept = &work.kept
    cdef floating *acts = <floating *> kept.acts
    cdef floating *deltas = <floating *> work.deltas
    cdef const floating *beta
    cdef const floating *a_in
    cdef const Py_ssize_t *picked
    if r1 == r0:
        return
    if l > 0:
        slot = act_at(g, rows.n, l - 1, r0)
        beta = beta_of(g, l - 1, theta)
        if is_maxout(g, l - 1):
            maxout_layer_forward(acts + slot, kept.argmax + slot,
                                 normalized_z(g, l - 1, acts, deltas, rows.n, r0), beta,
                                 r1 - r0, g.units[l], g.maxout_pieces)
        else:  # gamma xhat is in place: act(gamma xhat + beta), keeping y where act' needs it
            activation_forward(acts + slot,
                               <floating *> kept.pre + slot if g.keep_z else <floating *> NULL,
                               beta, r1 - r0, g.units[l], g.hidden_activation, &g.act_params)
        if kept.dropout.threshold > 0:
            dropout_layer_forward(<floating *> kept.dropout.dropped + slot, acts + slot,
                                  &kept.dropout, g, l - 1, rows, r0, r1)
    if l < L - 1:
        ld_in = layer_input(&a_in, &picked, g, l, r0, r1, rows, work)
        layer_product(g, l, normalized_z(g, l, acts, deltas, rows.n, r0), a_in, ld_in, rows, r0,
                      r1, theta, picked)
        if l == 0:
            note_nonfinite(work.input_seen + job, normalized_z(g, 0, acts, deltas, rows.n, r0),
                           r1 - r0, g.cols[0])
        return
    output_rows(g, r0, r1, theta, rows, work, work.input_seen + job)
    backward_rows(g, L - 1, r0, r1, theta, rows, work)


cdef inline bint normalized_row_passes(const Geometry *g, const floating *theta, floating *grad,
                                       bint accumulate, const Rows *rows, const Work *work,
                                       int n_threads, int caller_cpu,
                                       unsigned int modes) noexcept nogil:
    """What rows_job does, for a batch-normalised network: forward and backward in passes over
    row blocks and over feature blocks in turn, each job under the caller's floating-point
    `modes` (csrc/fm_openmp.h's fm_fp_take). False if Ctrl-C stopped it."""
    cdef Py_ssize_t job, l, blocks, r_blocks = n_blocks(rows.n, MIN_ROWS, work.cpus, MIN_SPLIT)
    cdef unsigned int own
    cdef Py_ssize_t L = g.n_layers
    cdef Interrupt *it = work.interrupt
    cdef const BatchNorm *bn = &work.kept.bn
    cdef floating *acts = <floating *> work.kept.acts
    cdef floating *deltas = <floating *> work.deltas
    for l in range(L):
        for job in prange(r_blocks, schedule='dynamic', num_threads=n_threads):
            if l == 0 and threadid() != 0:
                fm_leave_cpu(caller_cpu)  # csrc/placement.c: why
            own = fm_fp_take(modes)
            if not interrupted(it, threadid() == 0):
                normalized_forward_rows(g, l, job, r_blocks, theta, rows, work)
            fm_fp_give_back(own, modes)
        if it != NULL and it.raised:
            return False
        if l == L - 1:
            break
        # Feature blocks: with min_rows == split (16) every class cuts units // 16 of them (at
        # most MAX_BLOCKS), so the class passed changes nothing; 2 is the rule before classes.
        blocks = n_blocks(g.units[l + 1], MIN_NORM_UNITS, 2, MIN_SPLIT)
        for job in prange(blocks, schedule='dynamic', num_threads=n_threads):
            own = fm_fp_take(modes)
            if not interrupted(it, threadid() == 0):
                batchnorm_layer_forward(g, l, block_start(g.units[l + 1], blocks, job),
                                        block_start(g.units[l + 1], blocks, job + 1),
                                        normalized_z(g, l, acts, deltas, rows.n, 0), bn,
                                        rows.n, theta)
            fm_fp_give_back(own, modes)
        if it != NULL and it.raised:
            return False
    for l in range(L - 2, -1, -1):
        blocks = n_blocks(g.units[l + 1], MIN_NORM_UNITS, 2, MIN_SPLIT)  # (as above)
        for job in prange(blocks, schedule='dynamic', num_threads=n_threads):
            own = fm_fp_take(modes)
            if not interrupted(it, threadid() == 0):
                batchnorm_layer_backward(g, l, block_start(g.units[l + 1], blocks, job),
                                         block_start(g.units[l + 1], blocks, job + 1),
                                         deltas + delta_at(g, rows.n, l, 0), grad, accumulate,
                                         bn, rows.n, theta)
            fm_fp_give_back(own, modes)
        if it != NULL and it.raised:
            return False
        if l == 0:
            break
        for job in prange(r_blocks, schedule='dynamic', num_threads=n_threads):
            own = fm_fp_take(modes)
            if not interrupted(it, threadid() == 0):
                backward_rows(g, l, block_start(rows.n, r_blocks, job),
                              block_start(rows.n, r_blocks, job + 1), theta, rows, work)
            fm_fp_give_back(own, modes)
        if it != NULL and it.raised:
            return False
    return True


cdef inline void batch_weights(const floating *w, const Rows *rows,
                               const Work *work) noexcept nogil:
    """Batch normalization's per-batch scalars: the batch's sample weights in batch order, their
    sum (added as batch_step adds the divisor) and the running variance's denominator
    (csrc/batchnorm.c)."""
    cdef BatchNorm *bn = <BatchNorm *> &work.kept.bn
    cdef double total = 0.0, squares = 0.0, v
    cdef Py_ssize_t r
    if w == NULL:
        bn.row_w = NULL
        bn.batch[0] = <double> rows.n
        bn.batch[1] = <double> rows.n - 1.0
        return
    for r in range(rows.n):
        v = w[source_row(rows, r)]
        bn.row_w[r] = v
        total += v
        squares += v * v
    bn.batch[0] = total
    bn.batch[1] = total - squares / total if total > 0 else 0.0


cdef inline void job_span(const Geometry *g, const Work *work, Py_ssize_t job,
                          Py_ssize_t *offset, Py_ssize_t *count) noexcept nogil:
    """Where weight job j's parameters are in theta (and its gradient in grad)."""
    cdef Py_ssize_t l = work.job_layer[job], lo = work.job_lo[job], hi = work.job_hi[job]
    if hi == NORM_JOB:
        offset[0], count[0] = g.bn_offset[l], 2 * g.cols[l]
    elif hi < 0:
        offset[0], count[0] = g.intercept_offset[l], g.cols[l]
    else:
        offset[0], count[0] = g.coef_offset[l] + lo * g.cols[l], (hi - lo) * g.cols[l]


cdef inline void step_job(const Geometry *g, Py_ssize_t job, floating *theta, floating *grad,
                          floating *state_1, floating *state_2, floating *state_3,
                          const Step *step, const Work *work) noexcept nogil:
    """Weight job j's step, its gradient finished: scale it (max_grad_norm), update the
    parameters, clamp them (weight_clip)."""
    cdef Py_ssize_t offset, count
    job_span(g, work, job, &offset, &count)
    if step.grad_scale != 1.0:
        scale(grad + offset, count, step.grad_scale)
    optim_step(step.optim, theta + offset, grad + offset, state_1 + offset,
               state_2 + offset if state_2 != NULL else NULL,
               state_3 + offset if state_3 != NULL else NULL, count)
    if step.weight_clip > 0:
        clamp(theta + offset, count, step.weight_clip)


cdef inline void finish_job(const Geometry *g, Py_ssize_t job, floating *theta, floating *grad,
                            floating *state_1, floating *state_2, floating *state_3,
                            const Step *step, const Work *work) noexcept nogil:
    """Weight job j once its gradient is complete: note sum(W^2) for the loss, finish the
    gradient ((g + alpha W) / sum(w); intercepts unpenalised), take the optimizer's step (or,
    with max_grad_norm, note sum(g^2): the step waits for the whole gradient's norm)."""
    cdef Py_ssize_t offset, count
    cdef double sum_w2 = 0.0, sum_g2 = 0.0
    cdef bint weights = work.job_hi[job] >= 0
    job_span(g, work, job, &offset, &count)
    # With a step that needs no other job's gradient (no max_grad_norm, so no clip factor),
    # the finish and the step (csrc/optimizers.c's fm_finish_step: in one pass for Adam, SGD
    # and AdamW, the same bits as finish_gradient and then step_job).
    if step.take_step and step.max_grad_norm <= 0:
        finish_step(step.optim, grad + offset, theta + offset, weights, count, g.alpha,
                    step.divisor, &sum_w2, &sum_g2, state_1 + offset,
                    state_2 + offset if state_2 != NULL else NULL,
                    state_3 + offset if state_3 != NULL else NULL, step.stream,
                    work.watch + job * FM_WATCH_SIZE if work.watch != NULL else NULL)
        work.partial[job] = sum_w2
        work.grad_partial[job] = sum_g2
        if step.weight_clip > 0:
            clamp(theta + offset, count, step.weight_clip)
        return
    # One pass (csrc/optimizers.c's fm_finish_gradient): the gradient finished, sum(W^2) for
    # the loss (a bias: none), and with a step sum(g^2) of the finished gradient: the global
    # norm for max_grad_norm, and each layer's norm for the estimators' gradient_norms_
    # (layer_norms).
    finish_gradient(grad + offset, theta + offset if weights else <floating *> NULL, count,
                    g.alpha if weights else 0.0, step.divisor, &sum_w2,
                    &sum_g2 if step.take_step else NULL)
    work.partial[job] = sum_w2
    if step.take_step:
        work.grad_partial[job] = sum_g2  # (max_grad_norm: the step waits for the whole norm)


cdef inline void weights_job(const Geometry *g, Py_ssize_t job, floating *theta, floating *grad,
                             floating *state_1, floating *state_2, floating *state_3,
                             const Step *step, bint accumulate, const Rows *rows,
                             const Work *work, Py_ssize_t row_blocks) noexcept nogil:
    """Weight job j: a block of rows of one layer's W (or its bias) — its gradient over the
    whole batch, then (step.finish) finished and applied while it is still in cache. With
    row_blocks (batch_jobs: the row blocks may still be running), it first waits for every
    block's delta of its layer, and before its step for every block to be done reading its W;
    it gives up (leaving the parameters untouched) if the batch is abandoned meanwhile."""
    cdef Py_ssize_t l = work.job_layer[job], lo = work.job_lo[job], hi = work.job_hi[job]
    cdef Py_ssize_t n_in = g.units[l], n_out = g.cols[l], ld_in = n_in
    cdef const floating *delta = <const floating *> work.deltas + delta_at(g, rows.n, l, 0)
    cdef const floating *a_in
    cdef const Py_ssize_t *picked = NULL
    cdef const int *done = work.counters + 1
    cdef const int *stop = &work.interrupt.raised if work.interrupt != NULL else NULL
    if row_blocks > 0 and not fm_wait_count(&done[l], <int> row_blocks, stop):
        return
    if hi == NORM_JOB:
        pass  # gamma's and beta's gradient: written by the backward feature pass
    elif hi < 0:
        dense_backward_bias(grad + g.intercept_offset[l], delta, rows.n, n_out, accumulate)
    elif l == 0 and rows.sparse:
        sparse_backward_weights(grad + g.coef_offset[0], rows, delta, n_out, lo, hi, accumulate)
    else:
        if l == 0:  # (as the row blocks read them)
            ld_in = batch_input(&a_in, &picked, g, rows, work)
        else:
            a_in = <const floating *> kept_input(&work.kept) + act_at(g, rows.n, l - 1, 0)
        dense_backward_weights(grad + g.coef_offset[l] + lo * n_out, a_in + lo, ld_in, delta,
                               rows.n, hi - lo, n_out, accumulate, picked)
    if not step.finish:
        return
    # W^l is read by every row block's backward through layer l (its delta of layer l - 1),
    # which may be running still; a bias only in forward, done before any delta of its layer.
    if (row_blocks > 0 and step.take_step and step.max_grad_norm == 0 and hi >= 0 and l > 0
            and not fm_wait_count(&done[l - 1], <int> row_blocks, stop)):
        return
    finish_job(g, job, theta, grad, state_1, state_2, state_3, step, work)


cdef inline void batch_job(const Geometry *g, Py_ssize_t taken, Py_ssize_t tiles,
                           Py_ssize_t r_blocks, floating *theta, floating *grad,
                           floating *state_1, floating *state_2, floating *state_3,
                           const Step *step, bint accumulate, const Rows *rows,
                           const Work *work, bint calling) noexcept nogil:
    """Job `taken` of batch_jobs's order: a first-layer tile, a row block, or a weight job
    (skipped once the batch is abandoned; `calling`: the thread that runs Python's handlers)."""
    if interrupted(work.interrupt, calling):
        return
    if taken < tiles:
        first_product_job(g, taken, tiles, theta, rows, work)
    elif taken < tiles + r_blocks:
        rows_job(g, taken - tiles, r_blocks, tiles, theta, rows, work, step.stream_rows)
    else:
        weights_job(g, work.dispatch[taken - tiles - r_blocks], theta, grad, state_1, state_2,
                    state_3, step, accumulate, rows, work, r_blocks)


cdef inline void batch_jobs(const Geometry *g, floating *theta, floating *grad,
                            floating *state_1, floating *state_2, floating *state_3,
                            const Step *step, bint accumulate, const Rows *rows,
                            const Work *work, int n_threads, int caller_cpu,
                            unsigned int modes) noexcept nogil:
    """Both passes of a batch (no batch normalization) in one parallel region: the row blocks,
    then the weight jobs, handed out in that order from one counter as threads come free. A
    weight job waits for the row blocks it needs (weights_job), so a thread that is done with
    its rows takes the top layers' gradients while another thread is still running the lower
    layers' deltas, where it waited at a barrier before; and the batch forks its threads once,
    not twice. Every job computes what it computed in two passes, from the same inputs: the
    bits are those of the two passes. With first_tiles, the first layer's column tiles go out
    before the row blocks, which wait for them. Jobs are taken in order, so a job waits only for
    jobs that other threads have begun and that wait for nothing it waits for: no deadlock.
    With work.pool (an epoch's region: Trainer._epoch), the caller claims the jobs from the
    pool's words instead (in a short batch, the weight jobs from their homes first: pool_next),
    after calling the helpers to them when n_threads > 1, and waits only for the jobs they
    claimed (pool_batch). Every thread runs its jobs under the caller's floating-point `modes`
    (csrc/fm_openmp.h's fm_fp_take)."""
    cdef unsigned int own
    cdef Py_ssize_t l, taken, r_blocks = n_blocks(rows.n, MIN_ROWS, work.cpus, MIN_SPLIT)
    cdef Py_ssize_t tiles = first_tiles(g, rows.n, rows.sparse, work.cpus)
    cdef Py_ssize_t n_total = tiles + r_blocks + work.n_jobs
    cdef int *counters = work.counters
    for l in range(g.n_layers + 2):
        counters[l] = 0
    if tiles > 0 and gathers(rows) and not picks_rows(g, rows, work):
        # Every tile reads every row: gathered once, here, rather than by each row block.
        gather_rows(<floating *> work.gathered, 0, rows, 0, rows.n, g.units[0])
    if work.pool != NULL and n_total <= FM_POOL_MAX_JOBS:
        pool_batch(g, theta, grad, state_1, state_2, state_3, step, accumulate, rows, work,
                   tiles, r_blocks, n_total, n_threads > 1, caller_cpu, modes)
        return
    taken = own = 0  # (each thread's own in the region: Cython copies them in)
    with parallel(num_threads=n_threads):
        if threadid() != 0:
            fm_leave_cpu(caller_cpu)  # csrc/placement.c: why
        own = fm_fp_take(modes)
        taken = fm_take_next(counters)
        while taken < n_total:
            batch_job(g, taken, tiles, r_blocks, theta, grad, state_1, state_2, state_3, step,
                      accumulate, rows, work, threadid() == 0)
            taken = fm_take_next(counters)
        fm_fp_give_back(own, modes)


# The pool. A region per batch (batch_jobs without a pool) ends in OpenMP's barrier, which waits
# for every thread of the team to arrive, also one that took no job: beside a process that keeps
# a core busy, a helper queued behind it for a time slice of the OS (milliseconds) held each
# batch that long, and two threads forced on every `tiny-batch` batch (0.4-0.8 ms) took
# 1.35-1.45x the one-thread epoch. So an epoch of threaded batches runs in one region
# (Trainer._epoch): the caller runs the batch loop, the helpers wait to be called (pool_help),
# and a batch's jobs are claimed from the pool's word, whose generation ends a helper's claims
# once the caller has moved on (csrc/fm_openmp.h's fm_claim). The caller takes every job no
# helper has taken and then waits for the claimed ones only. Which thread runs which job still
# changes no bit (the jobs are batch_jobs's; tools/fingerprint.py: 301 of 301 fits equal to
# the region per batch). Batch normalization and the gradient's clipping keep a region per pass
# (Trainer._epoch uses no pool there). Measured on the 2-core AMD EPYC VM (Zen 4) beside a
# spinning process (`python benchmarks/harness_runs.py --runs busy-core --scale 0.5 --repeats
# 3`, /tmp builds with the run-time choice forced to all threads, two runs each): 2 threads
# over 1 on `tiny-batch` 0.90 and 0.93 against 0.99 and 0.97 with a region per batch, `mnist`
# 0.91 and 0.89 against 1.03 and 0.96, `mnist-f64` 0.99 and 0.90 against 0.91 and 0.94. On the
# quiet machine (benchmarks/ab_builds.py, 7 rounds) the epoch took 0.95x on `tiny-batch`,
# 0.98-1.02x on `small`, `mnist`, `mnist-f64` and `wide`. The caller's wait at a batch's end
# sleeps on a futex that the last job's count wakes (csrc/placement.c's fm_wait_done), not in
# naps: the pool with naps there took 1.008-1.057x the epoch of `wide`
# (three ab_builds.py runs of 5-7 rounds), with the futex 0.973x (10 rounds; `mnist` 1.005x).

cdef inline void pool_init(Pool *pool, int n_threads) noexcept nogil:
    cdef int q
    pool.word = 0
    for q in range(POOL_HOMES * POOL_STRIDE):
        pool.queues[q] = 0
    pool.threads = n_threads
    pool.homes = 1
    pool.generation = 0
    pool.called = 0
    pool.sleepers = 0
    pool.done = 0
    pool.waiting = 0
    pool.closed = 0
    pool.caller_cpu = -1
    pool.fp_modes = 0
    pool.tiles = 0
    pool.row_blocks = 0


cdef inline void pool_close(Pool *pool) noexcept nogil:
    """The epoch's end: the helpers leave pool_help (the region's end waits for them)."""
    fm_store_flag(&pool.closed, 1)
    fm_call(&pool.called, <int> (pool.generation + 1), &pool.sleepers)


# Homes. The pool hands every job out from one counter, so which thread runs a weight job
# follows the threads' timing, and a job's rows of W, its gradient and its optimizer's state
# (Adam: three more arrays of W's size) move between the cores' caches as often. In a batch
# of fewer than HOME_ROWS rows each weight job has a home instead, the thread of its place in
# the dispatch order modulo the threads (pool_deal: the layers' blocks alternate, so each
# thread gets about half of each layer), and a thread takes its own home's jobs first, in
# order, then the others', each home's from its end (stealing, from the next home on): a late
# or busy thread still holds back only a job it has begun, and the caller alone takes every
# job. (From the end, because the dispatch order puts the lowest layers' jobs, the largest,
# last: a late owner is left the small ones.) The tiles and row blocks go out from the one
# counter either way, and a weight job waits only for row blocks (which wait only for tiles),
# all of them claimed before any weight job is (pool_next): no deadlock. Which thread runs a
# job changes no bit (tools/fingerprint.py: 303 of 303 equal to the single counter, on 1 and
# 2 threads).
#
# Measured on the 2-core AMD EPYC VM (Zen 4, 2026-12-07), homes in every batch against the one
# counter, builds side by side: `tiny-batch` (32 rows, ~0.3 ms a batch on two threads, against
# its layers' 3.2 MB of W1, gradient and moments) 0.915x and 0.980x the epoch (epochs of two
# long-lived processes in turns, 80 pairs each, a /tmp script; quartiles 0.88-0.98 and
# 0.82-1.01), 0.970x by `python benchmarks/ab_builds.py BEFORE AFTER --rounds 6`; `mnist`,
# `mnist-f64` and `wide` (256-512 rows, whose arithmetic hides what crosses) 0.98-1.01x. But
# beside a spinning process, `mnist`'s 2 threads over 1 (`python benchmarks/harness_runs.py
# --runs busy-core --workloads mnist --scale 0.5 --repeats 5`, builds in turns, 8 runs each)
# read 0.95-1.01, median 0.995, with homes against 0.88-1.07, median 0.935, with the one
# counter, fewer of its batches on two threads, and the process's CPU a wall second 1.00-1.14
# against 1.01-1.23 (6 runs with the thief taking in order: median 0.96 against 0.915). With
# the counter the caller, on a CPU of its own, takes most weight jobs there, the same ones
# each batch; homes hand half of them to a thread present half the time. So homes are for
# the short batches only (below HOME_ROWS), which beside a busy core the thread choice's gate
# keeps on one thread anyway (_threads.pxd). This host also comes and goes, for seconds at a
# time, into a state where a cache line takes ~6x as long to cross (a two-thread ping-pong
# 150-420 ns a round trip against 50-70): there two threads lose on `tiny-batch` with or
# without homes, and the run-time choice moves its batches to one thread. Timed job by job
# there (a trial build that summed each claimed job's time, two threads forced on every
# batch; 2026-12-07), the first layer's tiles took ~1.2x their time in the cheap state, the
# row blocks ~1.5x, and the weight jobs of the first two layers 3-4x (the first layer's:
# 104-143 us a job cheap, 312-516 costly), the batch ~2.8x: each tile reads W1's columns in
# every row, and each weight job steps W1's rows in every column, so half the lines a job
# steps were just read by the other core's tile, whatever the homes. Homes of a column cut
# would keep W1 on one core, but a column cut of the first layer's step adds its sum(W^2)
# (the loss's penalty) in another order: other bits. Nor is it faster: a trial build
# (2026-12-07) cut W1's weight jobs by the tiles' columns (its gradient over all of W's rows
# into a strided block, its step row by row in one call), gave the tiles homes matching
# theirs, and put theta, the gradient and Adam's moments on 64-byte boundaries (so that no
# line holds both halves); two threads held on every batch in three long-lived processes in
# turns, 40 rounds (the host in its cheap state in 39: ping-pong 50-100 ns), the committed
# schedule 0.171 s an epoch, the tile homes and alignment alone 0.173, the column cut 0.228
# (1.33x; on one thread 1.05x: the strided step). A likely reason, not measured apart: each core
# then owns W1, its gradient and its moments in 512-byte halves of every 1 KB row, where a row
# cut owns one run of 400 KB, and what a core's prefetchers fetch past its half is the
# other core's.
cdef inline void pool_deal(Pool *pool, int shared, int weights, bint homes) noexcept nogil:
    """Publish a batch's jobs for pool.generation: `shared` tiles and row blocks on the word,
    and weight job p (0 to weights - 1, in dispatch order) on home p % pool.homes's queue, with
    `homes` one home a thread (at most POOL_HOMES), else one for all (the one counter); the
    word last, with release, so that a thread that sees its generation sees the queues'."""
    cdef int q
    pool.homes = 1 if not homes else pool.threads if pool.threads < POOL_HOMES else POOL_HOMES
    for q in range(pool.homes):
        fm_publish_jobs(&pool.queues[q * POOL_STRIDE], pool.generation,
                        (weights - q + pool.homes - 1) // pool.homes if q < weights else 0)
    fm_publish_jobs(&pool.word, pool.generation, shared)


cdef inline int pool_next(Pool *pool, unsigned int generation, int me,
                          Py_ssize_t shared) noexcept nogil:
    """The next job of `generation` for thread `me` in batch_jobs's numbering (`shared` tiles
    and row blocks first), or -1: a tile or row block while any is left, then a weight job of
    its home's (me % pool.homes) in order, then the last one left of another home's, from the
    next home on."""
    cdef int taken = fm_claim(&pool.word, generation), k, q, i
    if taken >= 0:
        return taken
    for k in range(pool.homes):
        q = (me + k) % pool.homes
        i = (fm_claim if k == 0 else fm_claim_last)(&pool.queues[q * POOL_STRIDE], generation)
        if i >= 0:
            return <int> shared + q + i * pool.homes
    return -1


cdef inline void pool_claim_jobs(const Geometry *g, floating *theta, floating *grad,
                                 floating *state_1, floating *state_2, floating *state_3,
                                 const Step *step, bint accumulate, const Rows *rows,
                                 const Work *work, unsigned int generation,
                                 int me) noexcept nogil:
    """Run and count the jobs of `generation` thread `me` can claim (the caller's, 0, or a
    helper's, which first moves off the caller's CPU if it shares it, and keeps each job
    within its time slice: csrc/placement.c's fm_helper_slice), under the caller's
    floating-point modes (csrc/fm_openmp.h's fm_fp_take)."""
    cdef Pool *pool = work.pool
    cdef Py_ssize_t shared = pool.tiles + pool.row_blocks
    cdef int taken
    cdef unsigned int own
    if me != 0:
        fm_helper_slice(0)
    taken = pool_next(pool, generation, me, shared)
    if taken < 0:
        return
    if me != 0:
        fm_leave_cpu(pool.caller_cpu)  # csrc/placement.c: why
    own = fm_fp_take(pool.fp_modes)
    while taken >= 0:
        batch_job(g, taken, pool.tiles, pool.row_blocks, theta, grad, state_1, state_2,
                  state_3, step, accumulate, rows, work, me == 0)
        fm_done(&pool.done, &pool.waiting)
        if me != 0:
            fm_helper_slice(1)
        taken = pool_next(pool, generation, me, shared)
    fm_fp_give_back(own, pool.fp_modes)


cdef inline void pool_batch(const Geometry *g, floating *theta, floating *grad,
                            floating *state_1, floating *state_2, floating *state_3,
                            const Step *step, bint accumulate, const Rows *rows,
                            const Work *work, Py_ssize_t tiles, Py_ssize_t r_blocks,
                            Py_ssize_t n_total, bint call, int caller_cpu,
                            unsigned int modes) noexcept nogil:
    """batch_jobs's jobs in the pool: a new generation of the word (with `call`, the helpers
    are called to it; else it is the caller's alone), every job the caller can claim, then a
    wait for those the helpers claimed."""
    cdef Pool *pool = work.pool
    cdef int shared = <int> (tiles + r_blocks), weights = <int> (n_total - tiles - r_blocks)
    pool.generation += 1
    pool.done = 0
    pool.tiles = tiles
    pool.row_blocks = r_blocks
    pool.caller_cpu = caller_cpu
    pool.fp_modes = modes
    pool_deal(pool, shared, weights, rows.n < HOME_ROWS)  # (release: all of the above)
    if call:
        fm_call(&pool.called, <int> pool.generation, &pool.sleepers)
    pool_claim_jobs(g, theta, grad, state_1, state_2, state_3, step, accumulate, rows, work,
                    pool.generation, 0)
    fm_wait_done(&pool.done, <int> n_total, &pool.waiting)  # claimed jobs end, abandoned or not


cdef inline void pool_help(const Geometry *g, floating *theta, floating *grad,
                           floating *state_1, floating *state_2, floating *state_3,
                           const Step *step, const Rows *rows, const Work *work) noexcept nogil:
    """A helper's part of an epoch: wait to be called to a batch, claim its jobs while there are
    any, and wait again, until the caller closes the pool. What a claimed job reads (the rows,
    the step, the pool's tiles) was written before the word's generation (fm_claim acquires)."""
    cdef Pool *pool = work.pool
    cdef int seen = 0
    while True:
        # (asleep, the split's helper leaves the caller's CPU out of its mask: csrc/placement.c.
        # Tried here with pool.caller_cpu, 2-core AMD EPYC VM, 2026-12-07: `tiny-batch` 0.967x
        # and 1/1.053 the epoch by benchmarks/ab_builds.py in both orders, within what A/A
        # moves; beside a busy core `mnist` 2/1 0.96, 0.97, 1.02 against 0.91, 0.87, 0.98, three
        # pairs, in the regimes that move it by more: not shown to help, so not taken.)
        seen = fm_wait_call(&pool.called, seen, &pool.sleepers, NULL, 1)
        if fm_load_flag(&pool.closed):
            return
        pool_claim_jobs(g, theta, grad, state_1, state_2, state_3, step, False, rows, work,
                        <unsigned int> seen, threadid())


cdef inline double sum_partials(const double *partial, Py_ssize_t n_jobs) noexcept nogil:
    """The jobs' partial sums, added in job order (the same whatever the thread count)."""
    cdef Py_ssize_t job
    cdef double total = 0.0
    for job in range(n_jobs):
        total = total + partial[job]
    return total


cdef inline void add_layer_norms(const Geometry *g, const Work *work,
                                 double *sums) noexcept nogil:
    """sums[l] += |dLoss/dW^l| of the step just taken (before clipping): each layer's coefficient
    jobs' sum(g^2), added in job order."""
    cdef Py_ssize_t l, job
    cdef double squares
    for l in range(g.n_layers):
        squares = 0.0
        for job in range(work.n_jobs):
            if work.job_layer[job] == l and work.job_hi[job] >= 0:
                squares = squares + work.grad_partial[job]
        sums[l] += sqrt(squares)


cdef inline double batch_step(const Geometry *g, floating *theta, floating *grad,
                              floating *state_1, floating *state_2, floating *state_3,
                              Step *step, bint accumulate, const Rows *rows, const Work *work,
                              int n_threads) noexcept nogil:
    """Backpropagation over rows in two passes, then (step.finish) the update. Pass 1 is row by
    row (forward, deltas), pass 2 is weight block by weight block (gradient, finish, step), in
    one parallel region (batch_jobs; with batch normalization, passes with barriers between);
    with max_grad_norm a third pass steps, once the gradient's norm is known. Returns
    sum_rows w_r loss_r; step.divisor is set to sum_rows w_r when step.finish, else left as
    given. Once work.interrupt is raised, the remaining jobs are skipped, and a job waiting for
    others gives up (the caller must check it). Every job runs under the caller's
    floating-point modes, whichever thread takes it (csrc/fm_openmp.h's fm_fp_take)."""
    cdef Py_ssize_t job, r
    cdef double total = 0.0, divisor = 0.0, norm
    cdef const floating *w = <const floating *> rows.w
    cdef Interrupt *it = work.interrupt
    cdef int caller_cpu = fm_current_cpu() if n_threads > 1 else -1
    cdef unsigned int modes = fm_fp_modes(), own
    # The batch's weight (what the weight jobs divide by) is known before any job runs.
    if w != NULL:
        for r in range(rows.n):
            divisor += w[source_row(rows, r)]
    if step.finish:
        step.divisor = divisor if w != NULL else <double> rows.n
    step.grad_scale = 1.0
    # With two threads, both have read all of W when a job steps its block (finish_job), and
    # storing it may cost more than streaming it past the caches: the caller's way
    # (_stores.pxd's step choice), kept where the batch may stream; where its rows are few,
    # not so (STREAM_MIN_ROWS says why). The clamp of weight_clip would read the streamed
    # block back at once.
    step.stream = step.stream and may_stream(n_threads, rows.n) and step.weight_clip == 0
    step.stream_rows = step.stream_rows and may_stream(n_threads, rows.n)
    if g.batch_norm:
        batch_weights(w, rows, work)
        if not normalized_row_passes(g, theta, grad, accumulate, rows, work, n_threads,
                                     caller_cpu, modes):
            return 0.0
        for job in prange(work.n_jobs, schedule='dynamic', num_threads=n_threads):
            own = fm_fp_take(modes)
            if not interrupted(it, threadid() == 0):
                weights_job(g, job, theta, grad, state_1, state_2, state_3, step, accumulate,
                            rows, work, 0)
            fm_fp_give_back(own, modes)
    else:
        batch_jobs(g, theta, grad, state_1, state_2, state_3, step, accumulate, rows, work,
                   n_threads, caller_cpu, modes)
    if it != NULL and it.raised:
        return 0.0
    for r in range(rows.n):
        if w == NULL:
            total += work.row_loss[r]
        else:
            total += w[source_row(rows, r)] * work.row_loss[r]
    if step.finish and step.take_step and step.max_grad_norm > 0:
        # torch.nn.utils.clip_grad_norm_: g *= min(1, max_norm / (|g| + 1e-6)).
        norm = sqrt(sum_partials(work.grad_partial, work.n_jobs))
        if step.max_grad_norm / (norm + 1e-6) < 1.0:
            step.grad_scale = step.max_grad_norm / (norm + 1e-6)
        for job in prange(work.n_jobs, schedule='dynamic', num_threads=n_threads):
            own = fm_fp_take(modes)
            if not interrupted(it, threadid() == 0):
                step_job(g, job, theta, grad, state_1, state_2, state_3, step, work)
            fm_fp_give_back(own, modes)
        if it != NULL and it.raised:
            return total
    if g.batch_norm:  # the step is taken: the running statistics may move
        batchnorm_update_running(g, &work.kept.bn, theta)
    return total


cdef inline double finish_all(const Geometry *g, floating *theta, floating *grad,
                              const Step *step, const Work *work, int n_threads) noexcept nogil:
    """Finish an accumulated gradient without stepping (L-BFGS), each job under the caller's
    floating-point modes (fm_fp_take); returns sum(W^2)."""
    cdef Py_ssize_t job
    cdef unsigned int modes = fm_fp_modes(), own
    for job in prange(work.n_jobs, schedule='dynamic', num_threads=n_threads):
        own = fm_fp_take(modes)
        finish_job(g, job, theta, grad, <floating *> NULL, <floating *> NULL, <floating *> NULL,
                   step, work)
        fm_fp_give_back(own, modes)
    return sum_partials(work.partial, work.n_jobs)
