/* Output layers fused with their losses: delta = dLoss/dz (p - y for the canonical pairs), and
 * each row's loss.
 *
 * Design
 * ------
 * scikit-learn's output activations come paired with their canonical loss (softmax + cross-entropy,
 * logistic + binary cross-entropy, identity + squared error, exp + Poisson deviance), for which the
 * derivative of the loss with respect to the pre-activation z is simply p - y. The output
 * activation's own derivative is then never formed. The losses added beside them (K outputs):
 *   absolute error, identity output: row loss mean_j |e_j|, e = p - y; delta_j = sign(e_j) / K
 *   huber, identity output: row loss mean_j H(e_j); delta_j = clip(e_j, -d, d) / K, with
 *     H(e) = e^2 / 2 if |e| < d else d (|e| - d / 2). Averaged over rows these are torch's
 *     L1Loss / HuberLoss(delta=d) with reduction 'mean' (and |e|' = 0 at 0, as torch's sign);
 *   squared error on probabilities (the classifier's, the lectures' quadratic cost): row loss
 *     0.5 sum_j (p_j - y_j)^2; g = p - y goes through the output activation's Jacobian:
 *     logistic delta_j = g_j p_j (1 - p_j); softmax (not diagonal)
 *     delta_j = p_j (g_j - sum_i g_i p_i).
 * The reported loss and delta are each other's exact derivative (tests/estimator/test_losses_ext.py).
 *
 * Per-row losses are returned unweighted and in double; the caller weights and sums them in a fixed order, which keeps the reported loss
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

enum { FM_Y_AHEAD = 8 };  /* fm_output_delta's targets fetched ahead, in rows */

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
static double SFX(row_loss)(const REAL *p, const REAL *y, ptrdiff_t cols, int loss,
                            double huber_delta)
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
    case FM_LOSS_ABSOLUTE:
        for (j = 0; j < cols; j++)
            total += fabs((double)p[j] - (double)y[j]);
        return total / (double)cols;
    case FM_LOSS_HUBER:
        for (j = 0; j < cols; j++) {
            double e = fabs((double)p[j] - (double)y[j]);
            total += e < huber_delta ? 0.5 * e * e : huber_delta * (e - 0.5 * huber_delta);
        }
        return total / (double)cols;
    case FM_LOSS_SQUARED_SOFTMAX:
    case FM_LOSS_SQUARED_LOGISTIC:
        for (j = 0; j < cols; j++) {
            double d = (double)p[j] - (double)y[j];
            total += 0.5 * d * d;
        }
        return total;
    }
    return total;
}

/* dLoss/dz of one row for the losses that are not p - y (before the row's weight). */
FM_INLINE void SFX(row_delta)(REAL *d, const REAL *p, const REAL *y, ptrdiff_t cols, int loss,
                              double huber_delta)
{
    const REAL inv_cols = (REAL)1 / (REAL)cols;
    switch (loss) {
    case FM_LOSS_ABSOLUTE:
        FM_SIMD
        for (ptrdiff_t j = 0; j < cols; j++) {
            REAL e = p[j] - y[j];
            d[j] = (e > 0 ? inv_cols : (e < 0 ? -inv_cols : (REAL)0));
        }
        break;
    case FM_LOSS_HUBER: {
        const REAL hd = (REAL)huber_delta;
        FM_SIMD
        for (ptrdiff_t j = 0; j < cols; j++) {
            REAL e = p[j] - y[j];
            d[j] = (e > hd ? hd : (e < -hd ? -hd : e)) * inv_cols;
        }
        break;
    }
    case FM_LOSS_SQUARED_LOGISTIC:
        FM_SIMD
        for (ptrdiff_t j = 0; j < cols; j++)
            d[j] = (p[j] - y[j]) * (p[j] * ((REAL)1 - p[j]));
        break;
    case FM_LOSS_SQUARED_SOFTMAX: {
        REAL gp = 0;
        FM_SIMD_SUM(gp)
        for (ptrdiff_t j = 0; j < cols; j++)
            gp += (p[j] - y[j]) * p[j];
        FM_SIMD
        for (ptrdiff_t j = 0; j < cols; j++)
            d[j] = p[j] * ((p[j] - y[j]) - gp);
        break;
    }
    }
}

/* A shuffled batch's targets are rows of y picked by rows_index, each a few floats somewhere in
 * y (`small`'s 20,000 x 10: 800 KB, which the batch's reads of X push out of L2): each row's
 * first read of its target (row_loss's) waited for it. So the targets FM_Y_AHEAD rows ahead
 * (and their weights) are fetched while this row's loss and delta are computed; a fetch changes
 * no value. */
FM_INLINE void SFX(fetch_target)(const REAL *y, const REAL *w, ptrdiff_t src, ptrdiff_t cols)
{
    __builtin_prefetch(y + src * cols);
    if (w)
        __builtin_prefetch(w + src);
}

FASTMLP_CLONES
void SFX(fm_output_delta)(REAL *delta, double *row_loss, const REAL *p, const REAL *y,
                          const REAL *w, const ptrdiff_t *rows_index, ptrdiff_t rows,
                          ptrdiff_t cols, int loss, double loss_param)
{
    for (ptrdiff_t r = 0; rows_index && r < rows && r < FM_Y_AHEAD; r++)
        SFX(fetch_target)(y, w, rows_index[r], cols);  /* (the first rows' misses at once) */
    for (ptrdiff_t r = 0; r < rows; r++) {
        ptrdiff_t src = rows_index ? rows_index[r] : r;
        if (rows_index && r + FM_Y_AHEAD < rows)
            SFX(fetch_target)(y, w, rows_index[r + FM_Y_AHEAD], cols);
        const REAL *p_row = p + r * cols;
        const REAL *y_row = y + src * cols;
        REAL *d_row = delta + r * cols;
        row_loss[r] = SFX(row_loss)(p_row, y_row, cols, loss, loss_param);
        if (loss <= FM_LOSS_POISSON) {
            FM_SIMD
            for (ptrdiff_t j = 0; j < cols; j++)
                d_row[j] = p_row[j] - y_row[j];
        } else {
            SFX(row_delta)(d_row, p_row, y_row, cols, loss, loss_param);
        }
        if (w) {
            REAL wr = w[src];
            FM_SIMD
            for (ptrdiff_t j = 0; j < cols; j++)
                d_row[j] *= wr;
        }
    }
}

#endif
