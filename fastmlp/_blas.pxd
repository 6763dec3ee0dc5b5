# The BLAS shim: row-major, fused float/double wrappers over scipy.linalg.cython_blas.
#
# Design
# ------
# Every array in fastmlp is C-ordered (row-major) while BLAS is column-major. A row-major
# product C = op(A) op(B) is the column-major product C^T = op(B)^T op(A)^T, so each wrapper swaps
# the operands and the sizes instead of transposing anything. The wrappers are inline, fused over
# float/double and `noexcept nogil`, so the engine calls them from OpenMP loops at no cost. Like
# scikit-learn's sklearn/utils/_cython_blas.pyx, but only what the engine uses.
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv, saxpy, daxpy

cdef enum BLAS_Trans:
    NoTrans = 110  # 'n'
    Trans = 116    # 't'


cdef inline void gemm(BLAS_Trans ta, BLAS_Trans tb, int m, int n, int k, floating alpha,
                      const floating *A, int lda, const floating *B, int ldb,
                      floating beta, floating *C, int ldc) noexcept nogil:
    """C := alpha * op(A).op(B) + beta * C, row-major; C is m x n, the inner size is k."""
    cdef char ta_ = ta, tb_ = tb
    if floating is float:
        sgemm(&tb_, &ta_, &n, &m, &k, &alpha, <float *> B, &ldb, <float *> A, &lda,
              &beta, C, &ldc)
    else:
        dgemm(&tb_, &ta_, &n, &m, &k, &alpha, <double *> B, &ldb, <double *> A, &lda,
              &beta, C, &ldc)


cdef inline void gemv(BLAS_Trans ta, int m, int n, floating alpha, const floating *A, int lda,
                      const floating *x, floating beta, floating *y) noexcept nogil:
    """y := alpha * op(A).x + beta * y, row-major A (m x n), contiguous x and y."""
    # Row-major A is column-major A^T: flip the transposition, swap m and n.
    cdef char ta_ = Trans if ta == NoTrans else NoTrans
    cdef int one = 1
    if floating is float:
        sgemv(&ta_, &n, &m, &alpha, <float *> A, &lda, <float *> x, &one, &beta, y, &one)
    else:
        dgemv(&ta_, &n, &m, &alpha, <double *> A, &lda, <double *> x, &one, &beta, y, &one)


cdef inline void axpy(int n, floating alpha, const floating *x, floating *y) noexcept nogil:
    """y := alpha * x + y, contiguous vectors."""
    cdef int one = 1
    if floating is float:
        saxpy(&n, &alpha, <float *> x, &one, y, &one)
    else:
        daxpy(&n, &alpha, <double *> x, &one, y, &one)
