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
    /* The sums live in a 64-byte aligned buffer on the stack, FM_SMALL_COLS columns at a time,
     * and are copied to z at the end: numpy's arrays (the scratch, the caller's out, theta)
     * start at any multiple of 16 bytes, and a z that straddles cache lines splits the loop's
     * vector loads and stores in two. Measured on one 784 x 256 row, W and z both 16 bytes off
     * a cache line (as numpy puts them here): 8.2 us with the sums in z, 7.7 with the aligned
     * buffer (6.2 with W aligned too). Each z[j] still sums a_k W[k, j] over k = 0, 1, ... in
     * order: the chunking changes no bit.
     * (Keeping column chunks' sums in registers over the whole k loop measured no faster: one
     * row is bound by reading W, ~1 MB for the mnist network, not by these loads and stores.)
     * So a zero input (most of an image's pixels, about half of a relu layer's outputs) skips
     * its row of W. That changes no bit: with W finite (a fit ends with an error otherwise),
     * the skipped term is a signed zero, and a sum that starts at +0 is never -0 in
     * round-to-nearest (+0 + -0 = +0, x + -x = +0), so adding a zero leaves it as it was. */
    enum { FM_SMALL_COLS = 1024 };
    REAL acc[FM_SMALL_COLS] __attribute__((aligned(64)));
    for (ptrdiff_t r = 0; r < rows; r++) {
        REAL *z = out + r * n_out;
        const REAL *a_row = a + r * lda;
        ptrdiff_t zeros = 0;
        FM_SIMD_SUM(zeros)
        for (ptrdiff_t k = 0; k < n_in; k++)
            zeros += a_row[k] == 0;
        /* the test costs a dense row ~10 %: only where an eighth or more of the row is zero */
        const int skip = zeros * 8 >= n_in;
        for (ptrdiff_t j0 = 0; j0 < n_out; j0 += FM_SMALL_COLS) {
            const ptrdiff_t width = n_out - j0 < FM_SMALL_COLS ? n_out - j0 : FM_SMALL_COLS;
            for (ptrdiff_t j = 0; j < width; j++)
                acc[j] = 0;
            for (ptrdiff_t k = 0; k < n_in; k++) {
                const REAL ak = a_row[k];
                if (skip && ak == 0)
                    continue;  /* see above */
                const REAL *w_row = W + k * n_out + j0;
                FM_SIMD
                for (ptrdiff_t j = 0; j < width; j++)
                    acc[j] += ak * w_row[j];
            }
            for (ptrdiff_t j = 0; j < width; j++)
                z[j0 + j] = acc[j];
        }
    }
}

#endif
