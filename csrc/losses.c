/* Output layers fused with their losses: delta = dLoss/dz = p - y, and each row's loss.
 *
 * Design
 * ------
 * Every output activation here is paired with its canonical loss (softmax + cross-entropy,
 * logistic + binary cross-entropy, identity + squared error, exp + Poisson deviance), for which the
 * derivative of the loss with respect to the pre-activation z is simply p - y. The output
 * activation's own derivative is therefore never formed. Per-row losses are returned unweighted
 * and in double; the caller weights and sums them in a fixed order, which keeps the reported loss
 * independent of the thread count. Probabilities are clipped to [eps, 1 - eps] of the dtype before
 * the log, and 0 log 0 counts as 0, exactly as scikit-learn's log_loss does.
 *
 * This file includes itself once per dtype (see activations.c).
 */
#ifndef REAL
#include <float.h>
#include <math.h>

#include "fastmlp_kernels.h"
#include "fm_math.h"

#define REAL float
#define SFX(name) name##_f
#define REAL_EPS FLT_EPSILON
#include "losses.c"
#undef REAL
#undef SFX
#undef REAL_EPS

#define REAL double
#define SFX(name) name##_d
#define REAL_EPS DBL_EPSILON
#include "losses.c"

#else

static inline double SFX(clip_probability)(REAL p)
{
    const REAL lo = REAL_EPS, hi = (REAL)1 - REAL_EPS;
    return (double)(p < lo ? lo : (p > hi ? hi : p));
}

/* One row's loss. The switch is outside the loops; the logs are libm's, one per non-zero target
 * (a one-hot row costs one log), which is cheap next to the GEMMs that produced p. */
static double SFX(row_loss)(const REAL *p, const REAL *y, ptrdiff_t cols, int loss)
{
    double total = 0.0;
    ptrdiff_t j;
    switch (loss) {
    case FM_LOSS_SQUARED:
        for (j = 0; j < cols; j++) {
            double d = (double)y[j] - (double)p[j];
            total += d * d;
        }
        return 0.5 * total / (double)cols;
    case FM_LOSS_LOG:
        for (j = 0; j < cols; j++)
            if (y[j] != 0)
                total -= (double)y[j] * log(SFX(clip_probability)(p[j]));
        return total;
    case FM_LOSS_BINARY_LOG:
        for (j = 0; j < cols; j++) {
            double yj = (double)y[j], pj = SFX(clip_probability)(p[j]);
            if (yj != 0.0)
                total -= yj * log(pj);
            if (yj != 1.0)
                total -= (1.0 - yj) * log(1.0 - pj);
        }
        return total;
    case FM_LOSS_POISSON:
        for (j = 0; j < cols; j++) {
            double yj = (double)y[j];
            if (yj != 0.0)
                total += yj * log(yj / (double)p[j]);
            total += (double)p[j] - yj;
        }
        return total;
    }
    return total;
}

FASTMLP_CLONES
void SFX(fm_output_delta)(REAL *delta, double *row_loss, const REAL *p, const REAL *y,
                          const REAL *w, const ptrdiff_t *rows_index, ptrdiff_t rows,
                          ptrdiff_t cols, int loss)
{
    for (ptrdiff_t r = 0; r < rows; r++) {
        ptrdiff_t src = rows_index ? rows_index[r] : r;
        const REAL *p_row = p + r * cols;
        const REAL *y_row = y + src * cols;
        REAL *d_row = delta + r * cols;
        row_loss[r] = SFX(row_loss)(p_row, y_row, cols, loss);
        FM_SIMD
        for (ptrdiff_t j = 0; j < cols; j++)
            d_row[j] = p_row[j] - y_row[j];
        if (w) {
            REAL wr = w[src];
            FM_SIMD
            for (ptrdiff_t j = 0; j < cols; j++)
                d_row[j] *= wr;
        }
    }
}

#endif
