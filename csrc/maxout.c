/* Maxout (Goodfellow et al. 2013): a unit is the max of k linear pieces. Forward and backward.
 *
 * Design
 * ------
 * Maxout is not element-wise, so it is not one of activations.c's kinds: the layer's GEMM produces
 * k pieces per unit, stored unit by unit (column j k + p is piece p of unit j), forward keeps the
 * winning piece's index, and backward routes each unit's delta to that piece. The expansion from
 * rows x cols to rows x (cols k) is done in place, from the last element down, so the engine
 * needs no second delta buffer for it.
 *
 * This file includes itself once per dtype (see activations.c).
 */
#ifndef REAL
#include "fastmlp_kernels.h"
#include "fm_math.h"

#define REAL float
#define SFX(name) name##_f
#include "maxout.c"
#undef REAL
#undef SFX

#define REAL double
#define SFX(name) name##_d
#include "maxout.c"

#else

FASTMLP_CLONES
void SFX(fm_maxout_forward)(REAL *a, int *argmax, const REAL *z, const REAL *b, ptrdiff_t rows,
                            ptrdiff_t cols, ptrdiff_t pieces)
{
    for (ptrdiff_t r = 0; r < rows; r++) {
        const REAL *z_row = z + r * cols * pieces;
        REAL *a_row = a + r * cols;
        int *arg_row = argmax ? argmax + r * cols : NULL;
        for (ptrdiff_t j = 0; j < cols; j++) {
            const REAL *zj = z_row + j * pieces;
            const REAL *bj = b + j * pieces;
            REAL best = zj[0] + bj[0];
            int best_p = 0;
            for (ptrdiff_t p = 1; p < pieces; p++) {
                REAL v = zj[p] + bj[p];
                if (v > best) {
                    best = v;
                    best_p = (int)p;
                }
            }
            a_row[j] = best;
            if (arg_row)
                arg_row[j] = best_p;
        }
    }
}

FASTMLP_CLONES
void SFX(fm_maxout_backward)(REAL *delta, const int *argmax, ptrdiff_t rows, ptrdiff_t cols,
                             ptrdiff_t pieces)
{
    /* Element s = r cols + j moves to s pieces + argmax >= s: going down from the last element,
     * every write lands on an element already read. */
    for (ptrdiff_t s = rows * cols - 1; s >= 0; s--) {
        REAL d = delta[s];
        REAL *out = delta + s * pieces;
        for (ptrdiff_t p = 0; p < pieces; p++)
            out[p] = 0;
        out[argmax[s]] = d;
    }
}

#endif
