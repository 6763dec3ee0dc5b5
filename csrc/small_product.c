/* The product of a few rows with a weight matrix, without BLAS.
 *
 * Design
 * ------
 * GEMM packs all of W before it computes, which for one row costs several times the product
 * (33 us against 8 for one 784 x 256 row, measured with scipy's OpenBLAS); GEMV avoids the packing
 * but goes multi-threaded on large W, and OpenBLAS's threaded GEMV rounds differently from its
 * serial one, so a caller would have to hold BLAS to one thread around every call (~4 us, half
 * of a one-row prediction). This loop needs neither: z = a W row by row in axpy form,
 * z += a_k W[k, :], reading W once in memory order, vectorised over the outputs.
 *
 * This file includes itself once per dtype (see activations.c).
 */
#ifndef REAL
#include "fastmlp_kernels.h"
#include "fm_math.h"

#define REAL float
#define SFX(name) name##_f
#include "small_product.c"
#undef REAL
#undef SFX

#define REAL double
#define SFX(name) name##_d
#include "small_product.c"

#else

FASTMLP_CLONES
void SFX(fm_small_product)(REAL *out, const REAL *a, ptrdiff_t lda, const REAL *W, ptrdiff_t rows,
                           ptrdiff_t n_in, ptrdiff_t n_out)
{
    /* (Keeping column chunks' sums in registers over the whole k loop measured no faster: one
     * row is bound by reading W, ~1 MB for the mnist network, not by these loads and stores.) */
    for (ptrdiff_t r = 0; r < rows; r++) {
        REAL *z = out + r * n_out;
        const REAL *a_row = a + r * lda;
        for (ptrdiff_t j = 0; j < n_out; j++)
            z[j] = 0;
        for (ptrdiff_t k = 0; k < n_in; k++) {
            const REAL ak = a_row[k];
            const REAL *w_row = W + k * n_out;
            FM_SIMD
            for (ptrdiff_t j = 0; j < n_out; j++)
                z[j] += ak * w_row[j];
        }
    }
}

#endif
