# The BLAS shim: row-major, fused float/double wrappers over scipy.linalg.cython_blas.
#
# Design
# ------
# Every array in fastmlp is C-ordered (row-major) while BLAS is column-major. A row-major
# product C = op(A) op(B) is the column-major product C^T = op(B)^T op(A)^T, so each wrapper swaps
# the operands and the sizes instead of transposing anything. The wrappers are inline, fused over
# float/double and `noexcept nogil`, so the engine calls them from OpenMP loops at no cost. Like
# scikit-learn's sklearn/utils/_cython_blas.pyx, but only what the engine uses: GEMM (the
# few-row products that might have been GEMV are csrc/small_product.c, which says why).
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm

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



cdef enum:
    BLAS_INT_MAX = 2147483647  # BLAS (LP64) takes sizes as int: each dimension must fit
