# The first layer on a CSR X: only the first layer ever sees X, so only its product and its
# weight gradient have sparse versions (no input gradient is ever needed); they visit each row's
# non-zeros in order, as scipy does. The bias and activation are the dense layer's.
from cython cimport floating
from libc.string cimport memset

from fastmlp._engine._rows cimport Rows, csr_at, source_row


cdef inline void sparse_product(floating *a_out, const Rows *rows, Py_ssize_t r0, Py_ssize_t r1,
                                const floating *W, Py_ssize_t n_out) noexcept nogil:
    """a_out (rows r0..r1 x n_out) = X[rows] @ W, X in CSR."""
    cdef Py_ssize_t r, k, j, src
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


cdef inline void sparse_backward_weights(floating *dW, const Rows *rows, const floating *delta,
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
