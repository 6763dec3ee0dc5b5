/* Optimizer steps and gradient finishing, each one loop over the flat parameter vector.
 *
 * Design
 * ------
 * Parameters, gradients and optimizer state share one layout (every W^l, then every b^l, as
 * scikit-learn packs them), so an optimizer is a single element-wise pass: nothing is per layer,
 * nothing is allocated. Scalars that are per step (Adam's bias-corrected step size) are computed
 * once by the caller. The formulas and their order of rounding are scikit-learn's
 * (sklearn/neural_network/_stochastic_optimizers.py) under numpy's promotion rules: a Python float
 * hyper-parameter is first rounded to REAL. One deliberate difference: scikit-learn's float32 Adam
 * forms its update in float64 (numpy promotes it through the float64 learning rate); here float32
 * stays float32 end to end, which halves the pass's cost (16-lane float division instead of 8-lane
 * double) — it was 40% of an epoch at batch 32. The float64 path is scikit-learn's to the bit.
 *
 * This file includes itself once per dtype (see activations.c).
 */
#ifndef REAL
#include <math.h>

#include "fastmlp_kernels.h"
#include "fm_math.h"

#define REAL float
#define SFX(name) name##_f
#define SQRT sqrtf
#include "optimizers.c"
#undef REAL
#undef SFX
#undef SQRT

#define REAL double
#define SFX(name) name##_d
#define SQRT sqrt
#include "optimizers.c"

#else

FASTMLP_CLONES
double SFX(fm_sum_squares)(const REAL *x, ptrdiff_t n)
{
    double total = 0.0;
    FM_SIMD_SUM(total)
    for (ptrdiff_t i = 0; i < n; i++)
        total += (double)x[i] * (double)x[i];
    return total;
}

FASTMLP_CLONES
void SFX(fm_finalize_gradient)(REAL *g, const REAL *w, ptrdiff_t n, double alpha, double divisor)
{
    const REAL alpha_r = (REAL)alpha, divisor_r = (REAL)divisor;
    if (alpha_r != 0 && w) {
        FM_SIMD
        for (ptrdiff_t i = 0; i < n; i++)
            g[i] = (g[i] + alpha_r * w[i]) / divisor_r;
    } else {
        FM_SIMD
        for (ptrdiff_t i = 0; i < n; i++)
            g[i] = g[i] / divisor_r;
    }
}

FASTMLP_CLONES
void SFX(fm_sgd_step)(REAL *param, const REAL *grad, REAL *velocity, ptrdiff_t n,
                      double learning_rate, double momentum, int nesterov)
{
    const REAL lr = (REAL)learning_rate, mu = (REAL)momentum;
    if (nesterov) {
        FM_SIMD
        for (ptrdiff_t i = 0; i < n; i++) {
            REAL v = mu * velocity[i] - lr * grad[i];
            velocity[i] = v;
            param[i] += mu * v - lr * grad[i];
        }
    } else {
        FM_SIMD
        for (ptrdiff_t i = 0; i < n; i++) {
            REAL v = mu * velocity[i] - lr * grad[i];
            velocity[i] = v;
            param[i] += v;
        }
    }
}

FASTMLP_CLONES
void SFX(fm_adam_step)(REAL *param, const REAL *grad, REAL *m, REAL *v, ptrdiff_t n,
                       double step_size, double beta_1, double beta_2, double epsilon)
{
    const REAL b1 = (REAL)beta_1, b2 = (REAL)beta_2;
    const REAL one_minus_b1 = (REAL)(1.0 - beta_1), one_minus_b2 = (REAL)(1.0 - beta_2);
    const REAL eps = (REAL)epsilon, minus_step = (REAL)(-step_size);
    FM_SIMD
    for (ptrdiff_t i = 0; i < n; i++) {
        REAL g = grad[i];
        REAL mi = b1 * m[i] + one_minus_b1 * g;
        REAL vi = b2 * v[i] + one_minus_b2 * (g * g);
        m[i] = mi;
        v[i] = vi;
        param[i] += (minus_step * mi) / (SQRT(vi) + eps);
    }
}

#endif
