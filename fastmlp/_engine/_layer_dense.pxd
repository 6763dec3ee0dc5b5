# The dense layer: z = a W + b, then an element-wise activation; forward and backward side by
# side. Arguments: outputs first, then inputs, then sizes.
#
#   forward   z = a W + b, a' = act(z)              one GEMM, then bias + activation in one pass
#   backward  dW = a^T delta, db = sum_rows delta    (the weight gradient, by weight blocks)
#             delta_in = delta W^T                   (skipped for the first layer: no input grad)
#             delta *= act'(a or z)                  (for the layer below, from what forward kept)
from cython cimport floating

from fastmlp._engine._blas cimport NoTrans, Trans, gemm
from fastmlp._engine._kernels cimport (
    activation_backward, bias_activation_forward, bias_gradient, fm_activation_params,
    fm_rows_product_at_d, fm_rows_product_at_f, fm_rows_product_available, fm_rows_product_d,
    fm_rows_product_f, fm_rows_product_kernel, fm_rows_product_kernel_d, fm_rows_product_picked_d,
    fm_rows_product_picked_f, fm_rows_product_t_d, fm_rows_product_t_f, small_product,
)

cdef enum:
    SMALL_ROWS = 4  # below this many rows a product is done row by row without BLAS
    # Up to this many float32 rows, products by W and by W^T are csrc/rows_product.c's where the
    # processor runs it (dense_product_columns says why this many).
    OWN_PRODUCT_ROWS = 256
    # A weight gradient's block is csrc/rows_product.c's up to this many of W's rows and
    # columns, or over at most OWN_GRADIENT_ROWS rows of the batch (dense_backward_weights).
    OWN_GRADIENT_SIDE = 256
    OWN_GRADIENT_ROWS = 128
    # Elsewhere, up to this many float32 rows: W cut into column tiles that OpenBLAS multiplies
    # unpacked (dense_product).
    FEW_ROWS = 32
    UNPACKED_GEMM = 1000000  # OpenBLAS's small-matrix path: M N K at most this
    TILED_MAX_COLS = 256
    TILE_MIN_COLS = 32


cdef inline bint own_rows_product(Py_ssize_t rows) noexcept nogil:
    """Whether a float32 block of `rows` rows is multiplied (by W or W^T) by
    csrc/rows_product.c: dense_product_columns says why this many."""
    return rows <= OWN_PRODUCT_ROWS and fm_rows_product_available()


cdef inline bint own_rows_product_d(Py_ssize_t rows) noexcept nogil:
    """The same for float64 blocks: csrc/rows_product.c's AVX-512 kernel, where it runs (its
    Design, "Float64", says why only that one), takes them and every float64 weight job."""
    return rows <= OWN_PRODUCT_ROWS and fm_rows_product_kernel_d() == 2


cdef inline bint own_weight_gradient(Py_ssize_t rows, Py_ssize_t n_in_block,
                                     Py_ssize_t n_out) noexcept nogil:
    """Whether a float32 weight job's gradient (n_in_block x n_out over `rows` rows) is
    csrc/rows_product.c's: on AVX-512 always, with the AVX2 kernel only small blocks
    (dense_backward_weights says why)."""
    if fm_rows_product_kernel() == 2:
        return True
    return (n_out <= OWN_GRADIENT_SIDE and (n_in_block <= OWN_GRADIENT_SIDE
                                            or rows <= OWN_GRADIENT_ROWS)
            and fm_rows_product_available())


cdef inline void dense_product_columns(floating *out, const floating *a_in, Py_ssize_t ld_in,
                                       const floating *W, Py_ssize_t rows, Py_ssize_t n_in,
                                       Py_ssize_t n_out, Py_ssize_t c0, Py_ssize_t c1,
                                       const Py_ssize_t *picked=NULL) noexcept nogil:
    """Columns c0..c1 of out (rows x n_out) = a_in (rows x n_in, ld_in apart) @ W: one GEMM (or
    one call of csrc/rows_product.c, below), which packs only those columns of W.
    dense_product's tiles are such products; so is the first layer's product over a whole batch
    of few rows, cut by columns (fastmlp/_engine/_schedule.pxd's first_product_job says why),
    which is one GEMM whatever its size: its W is packed once however it is cut, so
    dense_product's tiles for OpenBLAS's small-matrix path would only pack a_in again (on
    scipy's OpenBLAS, Haswell kernels, 32 x 784 x 256 in two tiles of 128 columns took 293 us,
    in eight of 32 327 us).

    Blocks of up to OWN_PRODUCT_ROWS float32 rows go to csrc/rows_product.c where the processor
    runs it (AVX2 and FMA; AVX-512 has a kernel of its own, csrc/rows_product.c has its figures
    against OpenBLAS's SkylakeX kernels): it packs W at ~0.22 ns a float where OpenBLAS's Haswell
    kernels take ~0.8, and its kernel keeps up with OpenBLAS's on such blocks. Thread CPU time
    per call, the two alternating with W read from memory (python
    benchmarks/few_rows_product.py, 2-core AMD EPYC VM), own / OpenBLAS: 32 x 784 x 128 (a
    `tiny-batch` first-layer tile) 0.67; 16 x 256 x 128 0.55; 32 x 64 x 100 (a small
    partial_fit) 0.70; 100 x 64 x 100 (`small`) 0.84; 128 x 784 x 256 (`mnist`) 0.91-0.94;
    128 x 256 x 128 0.81. Since its blocks of terms grew from 256 to 1024 (csrc/rows_product.c),
    also up to 256 rows: 128 x 784 x 256 0.85, 192 x 784 x 256 0.88, 256 x 784 x 1024 (`wide`'s
    row block) 0.93-0.98, 256 x 1024 x 1024 0.96, its W^T 0.89-0.90, 256 x 256 x 128 0.88-0.90
    (it was 1.10-1.13 on `wide`'s block before); past that it is no clear gain (384 x 784 x
    1024 0.96-0.98, 512 x 784 x 1024 0.98-1.03, 1024 x 784 x 256 0.95-0.99), so larger blocks
    stay with BLAS. `wide` (`python benchmarks/profile_breakdown.py --workloads wide`, perf):
    63.3 -> 61.1 ms of CPU a batch, its products 58.8 -> 57.1 and OpenBLAS's zeroing of C 1.2 ->
    0.6; epochs, the builds alternating (benchmarks/ab_builds.py, 6 and 8 rounds) 0.961x and
    0.987x, `small` (one block of 200 rows: its batches take one thread) 0.965x. Its sums are
    fused multiply-adds in k's order, so a product's bits depend on the rows' count (the path)
    and not on the thread count. Float64 blocks as many rows go to its AVX-512 kernel where it
    runs (own_rows_product_d; csrc/rows_product.c's Design, "Float64": 0.91-0.95 of dgemm's
    time on `mnist-f64`'s row blocks).

    `picked` (not NULL): row r of a_in is a_in + picked[r] ld_in, a shuffled batch's rows of X
    where they lie; only where that kernel takes the product (fastmlp/_engine/_schedule.pxd's
    picks_rows decides)."""
    if picked != NULL:
        if floating is float:
            fm_rows_product_picked_f(0, out + c0, n_out, a_in, ld_in, picked, W + c0, n_out, rows,
                                     n_in, c1 - c0, 0)
        else:
            fm_rows_product_picked_d(0, out + c0, n_out, a_in, ld_in, picked, W + c0, n_out, rows,
                                     n_in, c1 - c0, 0)
        return
    if floating is float:
        if own_rows_product(rows):
            fm_rows_product_f(out + c0, n_out, a_in, ld_in, W + c0, n_out, rows, n_in, c1 - c0)
            return
    elif own_rows_product_d(rows):
        fm_rows_product_d(out + c0, n_out, a_in, ld_in, W + c0, n_out, rows, n_in, c1 - c0)
        return
    gemm(NoTrans, NoTrans, <int> rows, <int> (c1 - c0), <int> n_in, <floating> 1.0, a_in,
         <int> ld_in, W + c0, <int> n_out, <floating> 0.0, out + c0, <int> n_out)


cdef inline void dense_product(floating *out, const floating *a_in, Py_ssize_t ld_in,
                               const floating *W, Py_ssize_t rows, Py_ssize_t n_in,
                               Py_ssize_t n_out, const Py_ssize_t *picked=NULL) noexcept nogil:
    """out (rows x n_out) = a_in (rows x n_in, leading dim ld_in) @ W: a layer's z before the
    bias.

    A GEMM packs all of W before it multiplies; with few rows, packing costs more than the
    product (16 x 256 x 784 float32: 91-100 us as one sgemm, ~70 GFLOP/s). Cut into column
    tiles of W small enough for OpenBLAS's small-matrix path (M N K <= 1e6 on its SkylakeX
    kernels, which multiply without packing), the same product took 50 us; 12-32 rows against
    W of 64-256 columns, 0.56-0.91 of the whole product's time (thread CPU time, 2-core Xeon
    VM, OpenBLAS 0.3.30). W of 512 columns or more (its rows further apart) and tiles under 32
    columns ran slower than whole, and float64's small path gained nothing steady (0.6-1.4x):
    those stay whole. The tiles are a function of the shapes alone, so the bits stay the same
    on any number of threads (they differ from the whole product's: the small path sums k in
    another order). Elsewhere (another BLAS, or kernels without that path) each tile is an
    ordinary GEMM packing its part of W: about as costly as the whole. Since AVX-512 has a
    kernel of csrc/rows_product.c's (2026-12-03), x86-64 with AVX2 multiplies such float32
    blocks with it (own_rows_product), and the tiles serve only processors without AVX2, where
    they were never timed. The kernel against these tiles, product by product, was not timed
    apart; the epochs with it were (csrc/rows_product.c). `picked`: dense_product_columns's,
    the whole product in one call."""
    cdef Py_ssize_t width = 0, c0
    if picked != NULL:
        dense_product_columns(out, a_in, ld_in, W, rows, n_in, n_out, 0, n_out, picked)
        return
    if rows < SMALL_ROWS:
        # A few rows (one-row prediction): no BLAS at all (csrc/small_product.c says why).
        small_product(out, a_in, ld_in, W, rows, n_in, n_out)
        return
    if (floating is float and rows <= FEW_ROWS and n_out <= TILED_MAX_COLS
            and rows * n_out * n_in > UNPACKED_GEMM and not own_rows_product(rows)):
        width = UNPACKED_GEMM // (rows * n_in) // 16 * 16
    if width < TILE_MIN_COLS:
        dense_product_columns(out, a_in, ld_in, W, rows, n_in, n_out, 0, n_out)
        return
    c0 = 0
    while c0 < n_out:
        dense_product_columns(out, a_in, ld_in, W, rows, n_in, n_out, c0, min(c0 + width, n_out))
        c0 += width


cdef inline void activation_forward(floating *a_out, floating *z_out, const floating *b,
                                    Py_ssize_t rows, Py_ssize_t n_out, int activation,
                                    const fm_activation_params *params) noexcept nogil:
    """a_out = act(a_out + b) in place, row by row; z_out (if not NULL) keeps a_out + b for an
    act' that needs z."""
    bias_activation_forward(a_out, z_out, b, rows, n_out, activation, params)


cdef inline void activation_delta(floating *delta, const floating *a, const floating *z,
                                  Py_ssize_t n, int activation,
                                  const fm_activation_params *params) noexcept nogil:
    """delta *= act'(z), n elements, from the kept output a (or z where given)."""
    activation_backward(delta, a, z, n, activation, params)


cdef inline void dense_backward_weights(floating *dW, const floating *a_in, Py_ssize_t ld_in,
                                        const floating *delta, Py_ssize_t rows,
                                        Py_ssize_t n_in_block, Py_ssize_t n_out,
                                        bint accumulate,
                                        const Py_ssize_t *picked=NULL) noexcept nogil:
    """dW (n_in_block x n_out) (+)= a_in[:, block]^T @ delta: rows of W's gradient.

    float32 blocks of at most OWN_GRADIENT_SIDE columns go to csrc/rows_product.c where it runs
    (as dense_product_columns), when their rows are that few too or the batch has at most
    OWN_GRADIENT_ROWS rows: it packs delta at ~0.22 ns a float and reads a_in as it is, where
    OpenBLAS packs both (delta at ~0.8 ns a float, a_in at ~0.6). Thread CPU time per call,
    own / OpenBLAS, one thread, 2-core AMD EPYC VM (python benchmarks/few_rows_product.py): a
    `tiny-batch` job's 392 x 256 over 32 rows 0.78; a small partial_fit's 64 x 100 over 32
    0.68; `small`'s 32 x 100 over 200 rows 0.70; `mnist`'s 128 x 128 over 256 rows 0.81; but
    its 392 x 256 over 256 rows 1.01-1.02 and `wide`'s 256 x 1024 over 512 rows 1.09, which stay
    with BLAS. The AVX-512 kernel (fm_rows_product_kernel() 2) takes every float32 block: it
    reads a_in from strips where it is read more than once, and ran `mnist`'s 392 x 256 over
    256 rows in 0.81-0.84 of OpenBLAS's time and `wide`'s jobs in 0.90-0.95 (2-core Xeon VM
    with AVX-512, same script; csrc/rows_product.c has the epochs). It takes every float64 block
    too where it runs (`mnist-f64`'s 392 x 256 over 256 rows: 0.89-0.91 of dgemm's time, Zen 4
    host, same script with --dtype float64). `picked` (not NULL): row r of a_in is a_in +
    picked[r] ld_in, as in dense_product_columns."""
    if picked != NULL:
        if floating is float:
            fm_rows_product_picked_f(2, dW, n_out, a_in, ld_in, picked, delta, n_out, n_in_block,
                                     rows, n_out, accumulate)
        else:
            fm_rows_product_picked_d(2, dW, n_out, a_in, ld_in, picked, delta, n_out, n_in_block,
                                     rows, n_out, accumulate)
        return
    if floating is float:
        if own_weight_gradient(rows, n_in_block, n_out):
            fm_rows_product_at_f(dW, n_out, a_in, ld_in, delta, n_out, n_in_block, rows, n_out,
                                 accumulate)
            return
    elif fm_rows_product_kernel_d() == 2:
        fm_rows_product_at_d(dW, n_out, a_in, ld_in, delta, n_out, n_in_block, rows, n_out,
                             accumulate)
        return
    gemm(Trans, NoTrans, <int> n_in_block, <int> n_out, <int> rows, <floating> 1.0,
         a_in, <int> ld_in, delta, <int> n_out, <floating> (1.0 if accumulate else 0.0),
         dW, <int> n_out)


cdef inline void dense_backward_bias(floating *db, const floating *delta, Py_ssize_t rows,
                                     Py_ssize_t n_out, bint accumulate) noexcept nogil:
    """db (+)= sum over rows of delta, row after row (numpy's order for sum(axis=0)):
    csrc/activations.c's fm_bias_gradient, beside the bias's add in forward."""
    bias_gradient(db, delta, rows, n_out, accumulate)


cdef inline void dense_backward_input(floating *delta_in, const floating *delta,
                                      const floating *W, Py_ssize_t rows, Py_ssize_t n_in,
                                      Py_ssize_t n_out) noexcept nogil:
    """delta_in (rows x n_in) = delta @ W^T, for every layer but the first: dLoss/d(its input),
    which the layer below then turns into its own delta (fastmlp/_engine/_layers.pxd). Blocks
    of float32 rows as in dense_product_columns: csrc/rows_product.c, which packs W^T (own /
    OpenBLAS, benchmarks/few_rows_product.py: `tiny-batch`'s 16 x 128 delta times its 128 x 256
    W2^T 0.51, `mnist`'s 128 rows 0.84); float64 blocks as in dense_product_columns (`mnist-f64`'s
    128 rows by W2^T: 0.89-0.90 of dgemm's time)."""
    if floating is float:
        if own_rows_product(rows):
            fm_rows_product_t_f(delta_in, n_in, delta, n_out, W, n_out, rows, n_out, n_in)
            return
    elif own_rows_product_d(rows):
        fm_rows_product_t_d(delta_in, n_in, delta, n_out, W, n_out, rows, n_out, n_in)
        return
    gemm(NoTrans, Trans, <int> rows, <int> n_in, <int> n_out, <floating> 1.0,
         delta, <int> n_out, W, <int> n_out, <floating> 0.0, delta_in, <int> n_in)
