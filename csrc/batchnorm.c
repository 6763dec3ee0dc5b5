/* Batch normalization (Ioffe & Szegedy 2015) of a hidden layer's z = a W + b, as torch's
 * BatchNorm1d(affine=True) after a Linear: training forward and backward over the rows of one
 * mini-batch, for a range of features (columns) f0..f1.
 *
 * Design
 * ------
 * A feature's statistics need every row of the batch, so these kernels run feature by feature
 * (a block of columns per job, fastmlp/_engine/_schedule.pxd), each sum taken over the rows in
 * their order in the batch: the same sequence of additions whatever thread runs the block and
 * however the columns are cut into blocks. Sums are in double for both dtypes. Rows are weighted
 * by row_w (the batch's sample weights; NULL: 1 each): with weight sum W, the batch's mean is
 * sum w z / W and its (biased) variance sum w (z - mean)^2 / W, two passes as torch's CPU kernel.
 * The running variance takes the unbiased variance sum w (z - mean)^2 / (W - sum w^2 / W)
 * (reliability weights' correction: with unit weights W - V2 / W = n - 1 exactly, torch's
 * Bessel correction); `unbiased_den` <= 0 (one row, or one row of non-zero weight) leaves the
 * running statistics as they were. The running statistics move once the whole step is taken
 * (fm_batchnorm_running), so that Ctrl-C in the middle of a batch leaves them as they were.
 *
 * This file includes itself once per dtype (see activations.c).
 */
#ifndef REAL
#include <math.h>

#include "fastmlp_kernels.h"
#include "fm_math.h"

#define REAL float
#define SFX(name) name##_f
#include "batchnorm.c"
#undef REAL
#undef SFX

#define REAL double
#define SFX(name) name##_d
#include "batchnorm.c"

#else

FASTMLP_CLONES
void SFX(fm_batchnorm_forward)(REAL *z, REAL *xhat, double *mean, double *inv_std,
                               double *unbiased_var, const REAL *b, const REAL *gamma,
                               const double *row_w, double weight_sum, double unbiased_den,
                               ptrdiff_t rows, ptrdiff_t ld, ptrdiff_t f0, ptrdiff_t f1,
                               double eps)
{
    ptrdiff_t n = f1 - f0;
    double *sum = mean + f0, *var = inv_std + f0;
    for (ptrdiff_t j = 0; j < n; j++)
        sum[j] = var[j] = 0.0;
    /* z += b (the Linear's bias, as torch adds it), and sum w z. */
    for (ptrdiff_t r = 0; r < rows; r++) {
        REAL *zr = z + r * ld + f0;
        const REAL *br = b + f0;
        double w = row_w ? row_w[r] : 1.0;
        FM_SIMD
        for (ptrdiff_t j = 0; j < n; j++) {
            zr[j] = zr[j] + br[j];
            sum[j] += w * (double)zr[j];
        }
    }
    for (ptrdiff_t j = 0; j < n; j++)
        sum[j] = sum[j] / weight_sum;  /* now the mean */
    for (ptrdiff_t r = 0; r < rows; r++) {
        const REAL *zr = z + r * ld + f0;
        double w = row_w ? row_w[r] : 1.0;
        FM_SIMD
        for (ptrdiff_t j = 0; j < n; j++) {
            double d = (double)zr[j] - sum[j];
            var[j] += w * (d * d);
        }
    }
    for (ptrdiff_t j = 0; j < n; j++) {
        double var_sum = var[j];
        if (unbiased_den > 0)
            unbiased_var[f0 + j] = var_sum / unbiased_den;
        var[j] = 1.0 / sqrt(var_sum / weight_sum + eps);  /* now 1 / sigma */
    }
    /* xhat = (z - mean) / sigma, kept for backward; gamma xhat over z. beta is added by the
     * activation that follows, in the bias's place (y = gamma xhat + beta, the same rounding). */
    for (ptrdiff_t r = 0; r < rows; r++) {
        REAL *zr = z + r * ld + f0;
        REAL *xr = xhat + r * ld + f0;
        const REAL *g = gamma + f0;
        FM_SIMD
        for (ptrdiff_t j = 0; j < n; j++) {
            REAL x = (REAL)(((double)zr[j] - sum[j]) * var[j]);
            xr[j] = x;
            zr[j] = g[j] * x;
        }
    }
}

FASTMLP_CLONES
void SFX(fm_batchnorm_backward)(REAL *delta, REAL *grad_gamma, REAL *grad_beta, double *s1,
                                double *s2, const REAL *xhat, const double *inv_std,
                                const REAL *gamma, const double *row_w, double weight_sum,
                                ptrdiff_t rows, ptrdiff_t ld, ptrdiff_t f0, ptrdiff_t f1,
                                int accumulate)
{
    /* delta holds dLoss/dy (rows weighted, as the output delta is); it becomes dLoss/dz:
     *   dz_r = gamma / sigma (dy_r - p_r sum_q dy_q - p_r xhat_r sum_q dy_q xhat_q),
     * p_r = w_r / W; and dLoss/dbeta = sum dy, dLoss/dgamma = sum dy xhat. s1, s2: scratch, one
     * double per feature. */
    ptrdiff_t n = f1 - f0;
    double *sum_dy = s1 + f0, *sum_dyx = s2 + f0;
    for (ptrdiff_t j = 0; j < n; j++)
        sum_dy[j] = sum_dyx[j] = 0.0;
    for (ptrdiff_t r = 0; r < rows; r++) {
        const REAL *dr = delta + r * ld + f0;
        const REAL *xr = xhat + r * ld + f0;
        FM_SIMD
        for (ptrdiff_t j = 0; j < n; j++) {
            sum_dy[j] += (double)dr[j];
            sum_dyx[j] += (double)dr[j] * (double)xr[j];
        }
    }
    for (ptrdiff_t j = 0; j < n; j++) {
        grad_beta[f0 + j] = (REAL)((accumulate ? (double)grad_beta[f0 + j] : 0.0) + sum_dy[j]);
        grad_gamma[f0 + j] = (REAL)((accumulate ? (double)grad_gamma[f0 + j] : 0.0)
                                    + sum_dyx[j]);
    }
    for (ptrdiff_t r = 0; r < rows; r++) {
        REAL *dr = delta + r * ld + f0;
        const REAL *xr = xhat + r * ld + f0;
        const REAL *g = gamma + f0;
        const double *s = inv_std + f0;
        double p = (row_w ? row_w[r] : 1.0) / weight_sum;
        FM_SIMD
        for (ptrdiff_t j = 0; j < n; j++)
            dr[j] = (REAL)((double)g[j] * s[j]
                           * ((double)dr[j] - p * sum_dy[j] - p * (double)xr[j] * sum_dyx[j]));
    }
}

FASTMLP_CLONES
void SFX(fm_batchnorm_running)(REAL *running_mean, REAL *running_var, const double *mean,
                               const double *unbiased_var, ptrdiff_t n, double momentum)
{
    /* torch's update: momentum * batch + (1 - momentum) * running. */
    for (ptrdiff_t j = 0; j < n; j++) {
        running_mean[j] = (REAL)(momentum * mean[j] + (1.0 - momentum) * (double)running_mean[j]);
        running_var[j] = (REAL)(momentum * unbiased_var[j]
                                + (1.0 - momentum) * (double)running_var[j]);
    }
}

#endif
