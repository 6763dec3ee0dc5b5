# The dense layer: z = a W + b, then an element-wise activation; forward and backward side by
# side. Arguments: outputs first, then inputs, then sizes.
#
#   forward   z = a W + b, a' = act(z)              one GEMM, then bias + activation in one pass
#   backward  dW = a^T delta, db = sum_rows delta    (the weight gradient, by weight blocks)
#             delta_in = delta W^T                   (skipped for the first layer: no input grad)
#             delta *= act'(a or z)                  (for the layer below, from what forward kept)
from cython cimport floating
from libc.string cimport memset

from fastmlp._engine._blas cimport NoTrans, Trans, gemm
from fastmlp._engine._kernels cimport (
    activation_backward, bias_activation_forward, fm_activation_params, small_product,
)

cdef enum:
    SMALL_ROWS = 4  # below this many rows a product is done row by row without BLAS


cdef inline void dense_product(floating *out, const floating *a_in, Py_ssize_t ld_in,
                               const floating *W, Py_ssize_t rows, Py_ssize_t n_in,
                               Py_ssize_t n_out) noexcept nogil:
    """out (rows x n_out) = a_in (rows x n_in, leading dim ld_in) @ W: a layer's z before the
    bias."""
    if rows < SMALL_ROWS:
        # A few rows (one-row prediction): no BLAS at all (csrc/small_product.c says why).
        small_product(out, a_in, ld_in, W, rows, n_in, n_out)
    else:
        gemm(NoTrans, NoTrans, <int> rows, <int> n_out, <int> n_in, <floating> 1.0,
             a_in, <int> ld_in, W, <int> n_out, <floating> 0.0, out, <int> n_out)


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
                                        bint accumulate) noexcept nogil:
    """dW (n_in_block x n_out) (+)= a_in[:, block]^T @ delta: rows of W's gradient."""
    gemm(Trans, NoTrans, <int> n_in_block, <int> n_out, <int> rows, <floating> 1.0,
         a_in, <int> ld_in, delta, <int> n_out, <floating> (1.0 if accumulate else 0.0),
         dW, <int> n_out)


cdef inline void dense_backward_bias(floating *db, const floating *delta, Py_ssize_t rows,
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


cdef inline void dense_backward_input(floating *delta_in, const floating *delta,
                                      const floating *W, Py_ssize_t rows, Py_ssize_t n_in,
                                      Py_ssize_t n_out) noexcept nogil:
    """delta_in (rows x n_in) = delta @ W^T, for every layer but the first: dLoss/d(its input),
    which the layer below then turns into its own delta (fastmlp/_engine/_layers.pxd)."""
    gemm(NoTrans, Trans, <int> rows, <int> n_in, <int> n_out, <floating> 1.0,
         delta, <int> n_out, W, <int> n_out, <floating> 0.0, delta_in, <int> n_in)
