/* Activations: forward (fused with the bias add that follows each GEMM) and backward.
 *
 * Design
 * ------
 * Forward runs once over the GEMM's output while it is still in cache: add the bias, apply the
 * activation in place. Backward needs only the activation's output a (never z): relu' = [a > 0],
 * logistic' = a (1 - a), tanh' = 1 - a^2 — so no pre-activation buffer is kept. The switch on the
 * activation sits outside the loops so that each loop is a plain vectorisable pass.
 *
 * This file includes itself once per dtype: the body below `#else` is compiled with REAL = float
 * (suffix _f) and REAL = double (suffix _d).
 */
#ifndef REAL
#include "fastmlp_kernels.h"
#include "fm_math.h"

#define REAL float
#define SFX(name) name##_f
#define EXP fm_exp_f
#define TANH fm_tanh_f
#include "activations.c"
#undef REAL
#undef SFX
#undef EXP
#undef TANH

#define REAL double
#define SFX(name) name##_d
#define EXP fm_exp_d
#define TANH fm_tanh_d
#include "activations.c"

#else

/* Softmax of one row in place, as scikit-learn writes it: exp(z - max) / sum. */
static inline void SFX(softmax_row)(REAL *a, ptrdiff_t cols)
{
    REAL row_max = a[0];
    for (ptrdiff_t j = 1; j < cols; j++)
        row_max = a[j] > row_max ? a[j] : row_max;
    REAL total = 0;
    FM_SIMD_SUM(total)
    for (ptrdiff_t j = 0; j < cols; j++) {
        a[j] = EXP(a[j] - row_max);
        total += a[j];
    }
    FM_SIMD
    for (ptrdiff_t j = 0; j < cols; j++)
        a[j] /= total;
}

FASTMLP_CLONES
void SFX(fm_bias_activation_forward)(REAL *a, const REAL *b, ptrdiff_t rows, ptrdiff_t cols,
                                     int activation)
{
    for (ptrdiff_t r = 0; r < rows; r++) {
        REAL *row = a + r * cols;
        switch (activation) {
        case FM_IDENTITY:
            FM_SIMD
            for (ptrdiff_t j = 0; j < cols; j++)
                row[j] += b[j];
            break;
        case FM_LOGISTIC:
            FM_SIMD
            for (ptrdiff_t j = 0; j < cols; j++)
                row[j] = (REAL)1 / ((REAL)1 + EXP(-(row[j] + b[j])));
            break;
        case FM_TANH:
            FM_SIMD
            for (ptrdiff_t j = 0; j < cols; j++)
                row[j] = TANH(row[j] + b[j]);
            break;
        case FM_RELU:
            FM_SIMD
            for (ptrdiff_t j = 0; j < cols; j++) {
                REAL z = row[j] + b[j];
                row[j] = z < 0 ? 0 : z; /* like np.maximum, lets a NaN through */
            }
            break;
        case FM_SOFTMAX:
            FM_SIMD
            for (ptrdiff_t j = 0; j < cols; j++)
                row[j] += b[j];
            SFX(softmax_row)(row, cols);
            break;
        case FM_EXP:
            FM_SIMD
            for (ptrdiff_t j = 0; j < cols; j++)
                row[j] = EXP(row[j] + b[j]);
            break;
        }
    }
}

FASTMLP_CLONES
void SFX(fm_activation_backward)(REAL *delta, const REAL *a, ptrdiff_t n, int activation)
{
    switch (activation) {
    case FM_IDENTITY:
        break;
    case FM_LOGISTIC:
        /* scikit-learn multiplies by a, then by (1 - a): keep its rounding. */
        FM_SIMD
        for (ptrdiff_t i = 0; i < n; i++)
            delta[i] = (delta[i] * a[i]) * ((REAL)1 - a[i]);
        break;
    case FM_TANH:
        FM_SIMD
        for (ptrdiff_t i = 0; i < n; i++)
            delta[i] *= (REAL)1 - a[i] * a[i];
        break;
    case FM_RELU:
        FM_SIMD
        for (ptrdiff_t i = 0; i < n; i++)
            delta[i] = a[i] == 0 ? 0 : delta[i];
        break;
    }
}

FASTMLP_CLONES
void SFX(fm_exp_array)(REAL *out, const REAL *x, ptrdiff_t n)
{
    FM_SIMD
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = EXP(x[i]);
}

#endif
