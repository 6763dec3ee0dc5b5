# The rows a pass works on: where its input X (dense with any strides, or CSR), its targets Y and
# its sample weights w are, and which of their rows the pass takes, in which order.
#
# Design
# ------
# With shuffling, a batch's rows are gathered into a scratch block inside the first layer's
# forward job, while they are being read anyway; without it the engine works on the slice of X in
# place. Where csrc/rows_product.c's AVX-512 kernel takes every first-layer product of a batch,
# a shuffled batch of a C-ordered X is not gathered either: its products read each row where it
# lies, through the batch's index (_schedule.pxd's picks_rows has when, csrc/rows_product.c's
# Design, "Picked rows", the figures). An X whose rows are not contiguous (a DataFrame's values
# are column-major) is gathered the same way, batch by batch, never copied whole. A CSR X is read
# in place by the sparse-input layer (fastmlp/_engine/_layer_sparse_input.pxd).
from cython cimport floating
from libc.string cimport memcpy

from fastmlp._engine._kernels cimport fm_store_fence, fm_stream_store


cdef struct Rows:
    # Row r of the pass is source row index[r] when index is not NULL, else first + r. X (dense:
    # element (i, j) at i * ldx + j * col_stride) or the CSR triplet, Y and w point at row 0.
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


cdef inline const Py_ssize_t *sample_ids(const Rows *rows, Py_ssize_t r0) noexcept nogil:
    """The source rows of the pass's rows r0.. when they are listed (NULL: consecutive from
    rows.first + r0)."""
    return rows.index + r0 if rows.index != NULL else NULL


cdef inline Py_ssize_t csr_at(const Rows *rows, const void *array, Py_ssize_t k) noexcept nogil:
    if rows.wide_index:
        return <Py_ssize_t> (<const long long *> array)[k]
    return <Py_ssize_t> (<const int *> array)[k]


cdef inline bint gathers(const Rows *rows) noexcept nogil:
    """Whether the first layer reads its rows from the gather block: for a shuffled batch, and
    for an X whose columns are not contiguous (a DataFrame's column-major values, a strided
    view), which is read where it lies rather than copied whole into C order."""
    return rows.index != NULL or rows.strided


cdef inline void gather_rows(floating *dst, Py_ssize_t dst_first, const Rows *rows, Py_ssize_t r0,
                             Py_ssize_t r1, Py_ssize_t n_in, bint stream=False) noexcept nogil:
    """dst[r - dst_first] = row r of the pass, for r in r0..r1 (dst row-major, n_in columns).
    A shuffled epoch's rows come from memory: a C harness gathering 60,000 random rows of 784
    float32 (an epoch of `mnist`) read ~10 GB/s on one thread, 17.4-19.3 ms an epoch, and
    17.7-18.3 ms with a software prefetch of the next row's lines (2-core AMD EPYC VM): memory's
    rate either way, so the loop stays a memcpy per row. `stream`: the rows go past the caches
    (streaming stores, fenced once at the end; _stores.pxd says when), the same values."""
    cdef const floating *X = <const floating *> rows.X
    cdef const floating *column
    cdef Py_ssize_t r, j
    if rows.col_stride == 1:
        for r in range(r0, r1):
            if stream:
                fm_stream_store(dst + (r - dst_first) * n_in,
                                X + source_row(rows, r) * rows.ldx, n_in * sizeof(floating))
            else:
                memcpy(dst + (r - dst_first) * n_in, X + source_row(rows, r) * rows.ldx,
                       n_in * sizeof(floating))
        if stream:
            fm_store_fence()
        return
    for j in range(n_in):  # column by column: a column-major X is read along its columns
        column = X + j * rows.col_stride
        for r in range(r0, r1):
            dst[(r - dst_first) * n_in + j] = column[source_row(rows, r) * rows.ldx]


cdef inline const floating *dense_input(const Rows *rows, const floating *gathered) noexcept nogil:
    """The first layer's dense input for this pass: the gather block (n_features columns; see
    gathers), or X's consecutive rows in place (rows.ldx apart)."""
    if gathers(rows):
        return gathered
    return <const floating *> rows.X + rows.first * rows.ldx
