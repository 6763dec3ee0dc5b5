/* Element-wise activations, one section per kind: forward (fused with the bias add that follows
 * each GEMM) and, right below it, its derivative.
 *
 * Design
 * ------
 * Forward runs once over the GEMM's output while it is still in cache: add the bias, apply the
 * activation in place. Backward works from the activation's output a where it can: relu' = [a > 0],
 * logistic' = a (1 - a), tanh' = 1 - a^2, leaky_relu' = [a > 0] + slope [a <= 0],
 * elu' = [a > 0] + (a + alpha) [a <= 0] — so no pre-activation buffer is kept for them. gelu,
 * silu, mish and softplus cannot be inverted in closed form: for them the forward pass also
 * stores z (the engine then keeps one z buffer per hidden layer) and backward reads it.
 *
 * Each kind is a pair of FM_INLINE functions, <kind>_forward_row (one row: row = act(row + b))
 * and <kind>_backward (delta *= act' over n elements), side by side so that a derivative is read
 * against the function it differentiates, and a new kind is a new section plus a case in each
 * switch. The two exported kernels at the end only switch between them; the switch sits outside
 * the loops so that each loop is a plain vectorisable pass, and always_inline puts every loop into
 * each FASTMLP_CLONES version of the kernel (an out-of-line helper would run the baseline
 * instruction set only). Forward switches once per row, because softmax and the kinds that store
 * z work a row at a time. softmax and exp are output activations only: their derivative is fused
 * with the loss (losses.c), so they have no _backward here; identity' = 1 has none either.
 *
 * The new activations follow torch.nn.functional's definitions and defaults, and its derivative
 * formulas (gelu' = Phi(z) + z phi(z), silu' = s (1 + z (1 - s)), mish' = t + z s (1 - t^2),
 * softplus' = sigmoid(beta z)), rearranged only where that avoids an overflow or a cancellation:
 * mish's tanh(log(1 + e^z)) is n / (n + 2) with n = e^z (e^z + 2), so it needs one exp and no log;
 * softplus is max(x, 0) + log1p(e^-|x|); elu uses expm1; gelu's Phi(z) is erfc(-z / sqrt 2) / 2,
 * not (1 + erf(z / sqrt 2)) / 2, which cancels to nothing for negative z, and it is fm_math.h's
 * branch-free fm_ndtr rather than libm's erfc, so that the loop vectorises (gelu costs 1.6x relu
 * in a 256-wide fit with libm's scalar erfc; see README.md for the measurement with fm_ndtr).
 *
 * Maxout and dropout are not element-wise activations; they have files of their own (maxout.c,
 * dropout.c).
 *
 * This file includes itself once per dtype: the body below `#else` is compiled with REAL = float
 * (suffix _f) and REAL = double (suffix _d).
 */
#ifndef REAL
#include "fastmlp_kernels.h"
#include "fm_math.h"

/* Must agree with the _backward functions below: 1 exactly where the one used reads z. */
int fm_activation_needs_preactivation(int activation, const fm_activation_params *params)
{
    switch (activation) {
    case FM_GELU:
    case FM_SILU:
    case FM_MISH:
    case FM_SOFTPLUS:
        return 1;
    case FM_LEAKY_RELU:
        return params->negative_slope < 0;
    case FM_ELU:
        return params->elu_alpha < 0;
    default:
        return 0;
    }
}

enum { FM_SOFTMAX_LANES = 16, FM_SOFTMAX_MAX_COLS = 32 };  /* softmax_forward_rows's block */
enum { FM_BIAS_COLUMNS = 64 };  /* fm_bias_gradient's columns summed at a time */

#define REAL float
#define SFX(name) name##_f
#define EXP fm_exp_f
#define EXPM1 fm_expm1_f
#define LOG1P_UNIT fm_log1p_unit_f
#define TANH fm_tanh_f
#define NDTR fm_ndtr_f
#include "activations.c"
#undef REAL
#undef SFX
#undef EXP
#undef EXPM1
#undef LOG1P_UNIT
#undef TANH
#undef NDTR

#define REAL double
#define SFX(name) name##_d
#define EXP fm_exp_d
#define EXPM1 fm_expm1_d
#define LOG1P_UNIT fm_log1p_unit_d
#define TANH fm_tanh_d
#define NDTR fm_ndtr_d
#include "activations.c"

#else

/* ---- identity: the bias add alone (identity' = 1: backward leaves delta as it is) ---------- */

FM_INLINE void SFX(identity_forward_row)(REAL *row, const REAL *b, ptrdiff_t cols)
{
    FM_SIMD
    for (ptrdiff_t j = 0; j < cols; j++)
        row[j] += b[j];
}

/* ---- logistic ------------------------------------------------------------------------------ */

FM_INLINE void SFX(logistic_forward_row)(REAL *row, const REAL *b, ptrdiff_t cols)
{
    FM_SIMD
    for (ptrdiff_t j = 0; j < cols; j++)
        row[j] = (REAL)1 / ((REAL)1 + EXP(-(row[j] + b[j])));
}

FM_INLINE void SFX(logistic_backward)(REAL *delta, const REAL *a, ptrdiff_t n)
{
    /* scikit-learn multiplies by a, then by (1 - a): keep its rounding. */
    FM_SIMD
    for (ptrdiff_t i = 0; i < n; i++)
        delta[i] = (delta[i] * a[i]) * ((REAL)1 - a[i]);
}

/* ---- tanh ---------------------------------------------------------------------------------- */

FM_INLINE void SFX(tanh_forward_row)(REAL *row, const REAL *b, ptrdiff_t cols)
{
    FM_SIMD
    for (ptrdiff_t j = 0; j < cols; j++)
        row[j] = TANH(row[j] + b[j]);
}

FM_INLINE void SFX(tanh_backward)(REAL *delta, const REAL *a, ptrdiff_t n)
{
    FM_SIMD
    for (ptrdiff_t i = 0; i < n; i++)
        delta[i] *= (REAL)1 - a[i] * a[i];
}

/* ---- relu ---------------------------------------------------------------------------------- */

FM_INLINE void SFX(relu_forward_row)(REAL *row, const REAL *b, ptrdiff_t cols)
{
    FM_SIMD
    for (ptrdiff_t j = 0; j < cols; j++) {
        REAL z = row[j] + b[j];
        row[j] = z < 0 ? 0 : z; /* like np.maximum, lets a NaN through */
    }
}

FM_INLINE void SFX(relu_backward)(REAL *delta, const REAL *a, ptrdiff_t n)
{
    FM_SIMD
    for (ptrdiff_t i = 0; i < n; i++)
        delta[i] = a[i] == 0 ? 0 : delta[i];
}

/* ---- softmax (output layer only) ----------------------------------------------------------- */

/* As scikit-learn writes it, exp(z - max) / sum. The exponentials are one vector loop; their sum
 * is taken in index order, a loop of its own: the same sum on every processor. (One loop that
 * summed as it went, with a simd reduction, summed in vector lanes where it vectorised, which
 * until the build's -fno-trapping-math was only AVX-512's clone: softmax's bits differed between
 * AVX-512 and other processors. The sum of 10 classes is a few adds; the exponentials are
 * what cost.) */
FM_INLINE void SFX(softmax_forward_row)(REAL *row, const REAL *b, ptrdiff_t cols)
{
    SFX(identity_forward_row)(row, b, cols);
    REAL row_max = row[0];
    for (ptrdiff_t j = 1; j < cols; j++)
        row_max = row[j] > row_max ? row[j] : row_max;
    FM_SIMD
    for (ptrdiff_t j = 0; j < cols; j++)
        row[j] = EXP(row[j] - row_max);
    REAL total = 0;
    for (ptrdiff_t j = 0; j < cols; j++)
        total += row[j];
    FM_SIMD
    for (ptrdiff_t j = 0; j < cols; j++)
        row[j] /= total;
}

/* softmax_forward_row over FM_SOFTMAX_LANES rows at once, for rows of at most
 * FM_SOFTMAX_MAX_COLS classes (wider rows, and the rows after the last whole block, go one at a
 * time through softmax_forward_row): the block is copied column by column into t, where each of the
 * row's steps (max, exponentials, sum in index order, division) is a vector loop across the
 * rows, then copied back. Each row meets the same operations in the same order as in
 * softmax_forward_row (EXP is a function of its argument alone, lane by lane), so the bits are
 * the same; a row's own max and sum were chains of dependent scalar operations (10 classes:
 * ~20 of them a row), 8 % of `small`'s CPU with the bias and relu of its hidden layer. 2-core
 * Intel Xeon VM, epochs in one process with the block way switched round by round (a debug
 * build, 12 rounds of 15 epochs, twice): `small` 0.956x and 0.963x, `mnist` 0.992x (6 rounds). */
FM_INLINE void SFX(softmax_forward_rows)(REAL *a, const REAL *b, ptrdiff_t rows, ptrdiff_t cols)
{
    REAL t[FM_SOFTMAX_MAX_COLS][FM_SOFTMAX_LANES], m[FM_SOFTMAX_LANES], s[FM_SOFTMAX_LANES];
    ptrdiff_t r0 = 0;
    for (; cols <= FM_SOFTMAX_MAX_COLS && rows - r0 >= FM_SOFTMAX_LANES; r0 += FM_SOFTMAX_LANES) {
        REAL *block = a + r0 * cols;
        for (ptrdiff_t j = 0; j < cols; j++) {
            FM_SIMD
            for (int i = 0; i < FM_SOFTMAX_LANES; i++)
                t[j][i] = block[i * cols + j] + b[j];
        }
        FM_SIMD
        for (int i = 0; i < FM_SOFTMAX_LANES; i++)
            m[i] = t[0][i];
        for (ptrdiff_t j = 1; j < cols; j++) {
            FM_SIMD
            for (int i = 0; i < FM_SOFTMAX_LANES; i++)
                m[i] = t[j][i] > m[i] ? t[j][i] : m[i];
        }
        for (ptrdiff_t j = 0; j < cols; j++) {
            FM_SIMD
            for (int i = 0; i < FM_SOFTMAX_LANES; i++)
                t[j][i] = EXP(t[j][i] - m[i]);
        }
        FM_SIMD
        for (int i = 0; i < FM_SOFTMAX_LANES; i++)
            s[i] = 0;
        for (ptrdiff_t j = 0; j < cols; j++) {
            FM_SIMD
            for (int i = 0; i < FM_SOFTMAX_LANES; i++)
                s[i] += t[j][i];
        }
        for (ptrdiff_t j = 0; j < cols; j++) {
            FM_SIMD
            for (int i = 0; i < FM_SOFTMAX_LANES; i++)
                block[i * cols + j] = t[j][i] / s[i];
        }
    }
    for (; r0 < rows; r0++)
        SFX(softmax_forward_row)(a + r0 * cols, b, cols);
}

/* ---- exp (output layer only: the Poisson log link) ----------------------------------------- */

FM_INLINE void SFX(exp_forward_row)(REAL *row, const REAL *b, ptrdiff_t cols)
{
    FM_SIMD
    for (ptrdiff_t j = 0; j < cols; j++)
        row[j] = EXP(row[j] + b[j]);
}

/* The activations added beside scikit-learn's store z = row + b as well when z_row is not NULL.
 * Their row loop is written twice (with and without the store of z) so that neither has a branch
 * inside. */
#define FM_ROW_LOOP(expression)                                                                   \
    do {                                                                                          \
        if (z_row) {                                                                              \
            FM_SIMD                                                                               \
            for (ptrdiff_t j = 0; j < cols; j++) {                                                \
                REAL z = row[j] + b[j];                                                           \
                z_row[j] = z;                                                                     \
                row[j] = (expression);                                                            \
            }                                                                                     \
        } else {                                                                                  \
            FM_SIMD                                                                               \
            for (ptrdiff_t j = 0; j < cols; j++) {                                                \
                REAL z = row[j] + b[j];                                                           \
                row[j] = (expression);                                                            \
            }                                                                                     \
        }                                                                                         \
    } while (0)

/* ---- leaky_relu ---------------------------------------------------------------------------- */

FM_INLINE void SFX(leaky_relu_forward_row)(REAL *row, REAL *z_row, const REAL *b, ptrdiff_t cols,
                                           const fm_activation_params *params)
{
    const REAL slope = (REAL)params->negative_slope;
    FM_ROW_LOOP(z > 0 ? z : z * slope);
}

FM_INLINE void SFX(leaky_relu_backward)(REAL *delta, const REAL *a, const REAL *z, ptrdiff_t n,
                                        const fm_activation_params *params)
{
    /* torch: z > 0 ? 1 : slope (so slope at 0). With slope >= 0, a > 0 exactly when z > 0. */
    const REAL slope = (REAL)params->negative_slope;
    const REAL *s = z ? z : a;
    FM_SIMD
    for (ptrdiff_t i = 0; i < n; i++)
        delta[i] *= s[i] > 0 ? (REAL)1 : slope;
}

/* ---- elu ----------------------------------------------------------------------------------- */

FM_INLINE void SFX(elu_forward_row)(REAL *row, REAL *z_row, const REAL *b, ptrdiff_t cols,
                                    const fm_activation_params *params)
{
    const REAL alpha = (REAL)params->elu_alpha;
    FM_ROW_LOOP(z > 0 ? z : EXPM1(z) * alpha);
}

FM_INLINE void SFX(elu_backward)(REAL *delta, const REAL *a, const REAL *z, ptrdiff_t n,
                                 const fm_activation_params *params)
{
    /* z <= 0: alpha e^z = a + alpha (torch's backward from the result); from z if alpha < 0. */
    const REAL alpha = (REAL)params->elu_alpha;
    if (z) {
        FM_SIMD
        for (ptrdiff_t i = 0; i < n; i++)
            delta[i] *= z[i] > 0 ? (REAL)1 : alpha * EXP(z[i]);
    } else {
        FM_SIMD
        for (ptrdiff_t i = 0; i < n; i++)
            delta[i] *= a[i] > 0 ? (REAL)1 : a[i] + alpha;
    }
}

/* ---- gelu ---------------------------------------------------------------------------------- */

/* gelu(z) = z Phi(z), Phi(z) = erfc(-z / sqrt 2) / 2: torch's z (1 + erf(z / sqrt 2)) / 2 without
 * its cancellation for negative z. */
FM_INLINE REAL SFX(gelu)(REAL z)
{
    REAL density;
    return z * NDTR(z, &density);
}

FM_INLINE void SFX(gelu_forward_row)(REAL *row, REAL *z_row, const REAL *b, ptrdiff_t cols)
{
    FM_ROW_LOOP(SFX(gelu)(z));
}

FM_INLINE void SFX(gelu_backward)(REAL *delta, const REAL *z, ptrdiff_t n)
{
    /* Phi(z) + z phi(z) */
    FM_SIMD
    for (ptrdiff_t i = 0; i < n; i++) {
        REAL density, cdf = NDTR(z[i], &density);
        delta[i] *= cdf + z[i] * density;
    }
}

/* ---- silu ---------------------------------------------------------------------------------- */

FM_INLINE void SFX(silu_forward_row)(REAL *row, REAL *z_row, const REAL *b, ptrdiff_t cols)
{
    FM_ROW_LOOP(z / ((REAL)1 + EXP(-z)));
}

FM_INLINE void SFX(silu_backward)(REAL *delta, const REAL *z, ptrdiff_t n)
{
    FM_SIMD
    for (ptrdiff_t i = 0; i < n; i++) {
        REAL s = (REAL)1 / ((REAL)1 + EXP(-z[i]));
        delta[i] *= s * ((REAL)1 + z[i] * ((REAL)1 - s));
    }
}

/* ---- mish ---------------------------------------------------------------------------------- */

/* mish's tanh(softplus(z)) = n / (n + 2), n = e^z (e^z + 2); 1 past z = 20, where it rounds to 1
 * in both dtypes and n would overflow. 1 - t^2 = 4 (n + 1) / (n + 2)^2 is formed likewise. */
FM_INLINE REAL SFX(mish_n)(REAL z)
{
    REAL e = EXP(z > (REAL)20 ? (REAL)20 : z);
    return e * (e + (REAL)2);
}

FM_INLINE REAL SFX(mish)(REAL z)
{
    REAL n = SFX(mish_n)(z);
    return z * (z > (REAL)20 ? (REAL)1 : n / (n + (REAL)2));
}

FM_INLINE void SFX(mish_forward_row)(REAL *row, REAL *z_row, const REAL *b, ptrdiff_t cols)
{
    FM_ROW_LOOP(SFX(mish)(z));
}

FM_INLINE void SFX(mish_backward)(REAL *delta, const REAL *z, ptrdiff_t n)
{
    FM_SIMD
    for (ptrdiff_t i = 0; i < n; i++) {
        REAL x = z[i];
        REAL m = SFX(mish_n)(x), d = m + (REAL)2;
        REAL t = x > (REAL)20 ? (REAL)1 : m / d;
        REAL one_minus_t2 = x > (REAL)20 ? (REAL)0 : (REAL)4 * (m + (REAL)1) / (d * d);
        REAL s = (REAL)1 / ((REAL)1 + EXP(-x));
        delta[i] *= t + x * s * one_minus_t2;
    }
}

/* ---- softplus ------------------------------------------------------------------------------ */

/* softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|), no overflow and no cancellation. */
FM_INLINE REAL SFX(softplus_unit)(REAL x)
{
    REAL ax = x < 0 ? -x : x;
    return (x > 0 ? x : (REAL)0) + LOG1P_UNIT(EXP(-ax));
}

FM_INLINE void SFX(softplus_forward_row)(REAL *row, REAL *z_row, const REAL *b, ptrdiff_t cols,
                                         const fm_activation_params *params)
{
    const REAL beta = (REAL)params->softplus_beta;
    const REAL threshold = (REAL)params->softplus_threshold;
    FM_ROW_LOOP(z * beta > threshold ? z : SFX(softplus_unit)(z * beta) / beta);
}

FM_INLINE void SFX(softplus_backward)(REAL *delta, const REAL *z, ptrdiff_t n,
                                      const fm_activation_params *params)
{
    const REAL beta = (REAL)params->softplus_beta;
    const REAL threshold = (REAL)params->softplus_threshold;
    FM_SIMD
    for (ptrdiff_t i = 0; i < n; i++) {
        REAL bz = z[i] * beta;
        delta[i] *= bz > threshold ? (REAL)1 : (REAL)1 / ((REAL)1 + EXP(-bz));
    }
}

/* ---- the exported kernels: a switch between the kinds -------------------------------------- */

FASTMLP_CLONES
void SFX(fm_bias_activation_forward)(REAL *a, REAL *z, const REAL *b, ptrdiff_t rows,
                                     ptrdiff_t cols, int activation,
                                     const fm_activation_params *params)
{
    if (activation == FM_SOFTMAX) {  /* (by blocks of rows, not row by row as the others) */
        SFX(softmax_forward_rows)(a, b, rows, cols);
        return;
    }
    for (ptrdiff_t r = 0; r < rows; r++) {
        REAL *row = a + r * cols;
        /* z is kept only for the kinds that need it (fm_activation_needs_preactivation) */
        REAL *z_row = z ? z + r * cols : NULL;
        switch (activation) {
        case FM_IDENTITY:
            SFX(identity_forward_row)(row, b, cols);
            break;
        case FM_LOGISTIC:
            SFX(logistic_forward_row)(row, b, cols);
            break;
        case FM_TANH:
            SFX(tanh_forward_row)(row, b, cols);
            break;
        case FM_RELU:
            SFX(relu_forward_row)(row, b, cols);
            break;
        case FM_EXP:
            SFX(exp_forward_row)(row, b, cols);
            break;
        case FM_LEAKY_RELU:
            SFX(leaky_relu_forward_row)(row, z_row, b, cols, params);
            break;
        case FM_ELU:
            SFX(elu_forward_row)(row, z_row, b, cols, params);
            break;
        case FM_GELU:
            SFX(gelu_forward_row)(row, z_row, b, cols);
            break;
        case FM_SILU:
            SFX(silu_forward_row)(row, z_row, b, cols);
            break;
        case FM_MISH:
            SFX(mish_forward_row)(row, z_row, b, cols);
            break;
        case FM_SOFTPLUS:
            SFX(softplus_forward_row)(row, z_row, b, cols, params);
            break;
        }
    }
}

FASTMLP_CLONES
void SFX(fm_activation_backward)(REAL *delta, const REAL *a, const REAL *z, ptrdiff_t n,
                                 int activation, const fm_activation_params *params)
{
    switch (activation) {
    case FM_LOGISTIC:
        SFX(logistic_backward)(delta, a, n);
        break;
    case FM_TANH:
        SFX(tanh_backward)(delta, a, n);
        break;
    case FM_RELU:
        SFX(relu_backward)(delta, a, n);
        break;
    case FM_LEAKY_RELU:
        SFX(leaky_relu_backward)(delta, a, z, n, params);
        break;
    case FM_ELU:
        SFX(elu_backward)(delta, a, z, n, params);
        break;
    case FM_GELU:
        SFX(gelu_backward)(delta, z, n);
        break;
    case FM_SILU:
        SFX(silu_backward)(delta, z, n);
        break;
    case FM_MISH:
        SFX(mish_backward)(delta, z, n);
        break;
    case FM_SOFTPLUS:
        SFX(softplus_backward)(delta, z, n, params);
        break;
    }
}

/* ---- the bias's gradient: db (+)= the sum of delta's rows ----------------------------------- */

/* Each db[j] is ((db[j] or 0) + delta[0, j]) + delta[1, j] + ..., the rows in order (numpy's
 * order for sum(axis=0)), for a block of FM_BIAS_COLUMNS columns at a time held in a local
 * array the vector loops keep in registers; the whole block's columns together for constant
 * trip counts. (The engine's loop over rows and columns, in Cython, was compiled for the
 * baseline instruction set and loaded and stored db for every row: 3.6 % of `small`'s CPU, 2.9 %
 * after; `small`'s epoch 0.982x and 0.996x in one process, the two switched round by round.) */
FM_INLINE void SFX(bias_gradient_block)(REAL *db, const REAL *delta, ptrdiff_t rows,
                                        ptrdiff_t ld, ptrdiff_t width, int accumulate)
{
    REAL acc[FM_BIAS_COLUMNS];
    FM_SIMD
    for (ptrdiff_t j = 0; j < width; j++)
        acc[j] = accumulate ? db[j] : (REAL)0;
    for (ptrdiff_t r = 0; r < rows; r++) {
        const REAL *row = delta + r * ld;
        FM_SIMD
        for (ptrdiff_t j = 0; j < width; j++)
            acc[j] += row[j];
    }
    FM_SIMD
    for (ptrdiff_t j = 0; j < width; j++)
        db[j] = acc[j];
}

FASTMLP_CLONES
void SFX(fm_bias_gradient)(REAL *db, const REAL *delta, ptrdiff_t rows, ptrdiff_t n_out,
                           int accumulate)
{
    ptrdiff_t j0 = 0;
    for (; n_out - j0 >= FM_BIAS_COLUMNS; j0 += FM_BIAS_COLUMNS)
        SFX(bias_gradient_block)(db + j0, delta + j0, rows, n_out, FM_BIAS_COLUMNS, accumulate);
    if (j0 < n_out)
        SFX(bias_gradient_block)(db + j0, delta + j0, rows, n_out, n_out - j0, accumulate);
}

/* ---- fm_math.h's vectorised functions as array kernels, for the kernel tests --------------- */

FASTMLP_CLONES
void SFX(fm_exp_array)(REAL *out, const REAL *x, ptrdiff_t n)
{
    FM_SIMD
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = EXP(x[i]);
}

FASTMLP_CLONES
void SFX(fm_expm1_array)(REAL *out, const REAL *x, ptrdiff_t n)
{
    FM_SIMD
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = EXPM1(x[i]);
}

FASTMLP_CLONES
void SFX(fm_log1p_unit_array)(REAL *out, const REAL *x, ptrdiff_t n)
{
    FM_SIMD
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = LOG1P_UNIT(x[i]);
}

#endif
