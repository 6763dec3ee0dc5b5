/* Vectorisable exp and tanh for float and double, and the multi-versioning attribute.
 *
 * Design
 * ------
 * libm's exp() is a function call the compiler cannot vectorise without -ffast-math, which we do
 * not use (it would break the bit-for-bit agreement with numpy elsewhere). These are Cephes' exp,
 * expf and tanh/tanhf approximations (accurate to about one ulp) written branch-free, so that a
 * `#pragma omp simd` loop around them becomes vector code:
 *   exp(x) = 2^n * exp(r), n = round(x / ln 2), r = x - n ln 2 (ln 2 split in two for accuracy),
 *   n is rounded with the 1.5 * 2^52 (2^23) trick and 2^n is built from its exponent bits.
 * Results below about exp(-707) (expf: exp(-86.6)) flush to zero instead of going subnormal; that
 * loses nothing a network can use and keeps the scale factor a normal number.
 *
 * expm1 (ELU) and log1p on [0, 1] (softplus) are built from exact Taylor coefficients (1/n! and
 * the atanh series 2 (s + s^3/3 + s^5/5 + ...)), cut where the next term is below half an ulp,
 * so no fitted constants are needed; both are within about two ulps of libm. The normal CDF (gelu)
 * is a Chebyshev series computed for this file (see fm_ndtr_d).
 */
#ifndef FASTMLP_MATH_H
#define FASTMLP_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && \
    !defined(FASTMLP_NO_CLONES) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define FASTMLP_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#define FASTMLP_HAVE_CLONES 1  /* (a kernel may size its register blocks by the clone it runs) */
#endif
#endif
#ifndef FASTMLP_CLONES
#define FASTMLP_CLONES
#endif

/* Helpers of a multi-versioned kernel must be inlined into each of its versions, or they would run
 * the baseline instruction set only. */
#if defined(__GNUC__)
#define FM_INLINE static inline __attribute__((always_inline))
#else
#define FM_INLINE static inline
#endif

#if defined(_OPENMP) || defined(FASTMLP_OPENMP_SIMD)
#define FM_PRAGMA(text) _Pragma(#text)
#define FM_SIMD FM_PRAGMA(omp simd)
#define FM_SIMD_SUM(var) FM_PRAGMA(omp simd reduction(+:var))
#define FM_SIMD_SUM2(a, b) FM_PRAGMA(omp simd reduction(+:a, b))
#define FM_SIMD_OR(var) FM_PRAGMA(omp simd reduction(|:var))
#else
#define FM_SIMD_OR(var)
#define FM_SIMD_SUM(var)
#define FM_SIMD_SUM2(a, b)
#define FM_SIMD
#endif

static inline double fm_exp_d(double x)
{
    const double hi = 709.78, lo = -707.0;
    const double log2e = 1.4426950408889634073599;
    const double c1 = 6.93145751953125e-1, c2 = 1.42860682030941723212e-6;
    const double magic = 6755399441055744.0; /* 1.5 * 2^52: adding it rounds to an integer */
    double xc = x > hi ? hi : x;
    xc = xc < lo ? lo : xc;
    double t = xc * log2e + magic;
    double n = t - magic;
    int64_t t_bits, magic_bits;
    memcpy(&t_bits, &t, sizeof t_bits);
    memcpy(&magic_bits, &magic, sizeof magic_bits);
    int64_t scale_bits = (t_bits - magic_bits - 1 + 1023) << 52; /* 2^(n-1): stays normal */
    double scale;
    memcpy(&scale, &scale_bits, sizeof scale);
    double r = xc - n * c1;
    r = r - n * c2;
    double rr = r * r;
    double px = r * ((1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2) * rr +
                     9.99999999999999999910e-1);
    double qx = ((3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3) * rr +
                 2.27265548208155028766e-1) * rr + 2.00000000000000000009e0;
    double e = 1.0 + 2.0 * (px / (qx - px));
    double result = e * scale * 2.0;
    result = x > hi ? INFINITY : result;
    result = x < lo ? 0.0 : result;
    return x != x ? x : result;
}

static inline float fm_exp_f(float x)
{
    const float hi = 88.72f, lo = -86.6f;
    const float log2e = 1.44269504088896341f;
    const float c1 = 0.693359375f, c2 = -2.12194440e-4f;
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    float xc = x > hi ? hi : x;
    xc = xc < lo ? lo : xc;
    float t = xc * log2e + magic;
    float n = t - magic;
    int32_t t_bits, magic_bits;
    memcpy(&t_bits, &t, sizeof t_bits);
    memcpy(&magic_bits, &magic, sizeof magic_bits);
    int32_t scale_bits = (t_bits - magic_bits - 1 + 127) << 23;
    float scale;
    memcpy(&scale, &scale_bits, sizeof scale);
    float r = xc - n * c1;
    r = r - n * c2;
    float z = r * r;
    float p = (((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r +
                 4.1665795894e-2f) * r + 1.6666665459e-1f) * r + 5.0000001201e-1f) * z + r + 1.0f;
    float result = p * scale * 2.0f;
    result = x > hi ? INFINITY : result;
    result = x < lo ? 0.0f : result;
    return x != x ? x : result;
}

/* tanh: a rational (double) or polynomial (float) approximation near zero, where the exp form
 * would cancel, and sign(x) (1 - e^-2|x|) / (1 + e^-2|x|) elsewhere; both are computed and one is
 * selected, so the loop has no branch. */
static inline double fm_tanh_d(double x)
{
    double ax = fabs(x);
    double z = x * x;
    double p = (-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z -
               1.61468768441708447952e3;
    double q = ((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z +
               4.84406305325125486048e3;
    double small = x + x * z * (p / q);
    double t = fm_exp_d(-2.0 * ax);
    double large = copysign((1.0 - t) / (1.0 + t), x);
    return ax < 0.625 ? small : large;
}

static inline float fm_tanh_f(float x)
{
    float ax = fabsf(x);
    float z = x * x;
    float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z +
                    1.33314422036e-1f) * z - 3.33332819422e-1f) * z * x + x;
    float t = fm_exp_f(-2.0f * ax);
    float large = copysignf((1.0f - t) / (1.0f + t), x);
    return ax < 0.625f ? small : large;
}

/* expm1(x) = exp(x) - 1 without the cancellation near 0: the Taylor series x + x^2/2! + ... for
 * |x| <= 1/2 (15 terms in double, 9 in float: the next one is below 2^-53 (2^-24) of x), and
 * exp(x) - 1 beyond, where the result is at least 0.39 in magnitude and loses at most a bit.
 * Polynomials here are summed by Estrin's scheme (pairs, then pairs of pairs, ...): its short
 * dependency chain matters more than Horner's fewer operations once the loop is vectorised. */
static inline double fm_expm1_d(double x)
{
    const double c0 = 1.0 / 2, c1 = 1.0 / 6, c2 = 1.0 / 24, c3 = 1.0 / 120, c4 = 1.0 / 720;
    const double c5 = 1.0 / 5040, c6 = 1.0 / 40320, c7 = 1.0 / 362880, c8 = 1.0 / 3628800;
    const double c9 = 1.0 / 39916800, c10 = 1.0 / 479001600, c11 = 1.0 / 6227020800.0;
    const double c12 = 1.0 / 87178291200.0, c13 = 1.0 / 1307674368000.0;
    double x2 = x * x, x4 = x2 * x2, x8 = x4 * x4;
    double q0 = (c0 + c1 * x) + (c2 + c3 * x) * x2, q1 = (c4 + c5 * x) + (c6 + c7 * x) * x2;
    double q2 = (c8 + c9 * x) + (c10 + c11 * x) * x2, q3 = c12 + c13 * x;
    double p = (q0 + q1 * x4) + (q2 + q3 * x4) * x8; /* sum_k x^k / (k + 2)! */
    double small = x + x * (x * p);
    double large = fm_exp_d(x) - 1.0;
    return fabs(x) <= 0.5 ? small : large;
}

static inline float fm_expm1_f(float x)
{
    const float c0 = 1.0f / 2, c1 = 1.0f / 6, c2 = 1.0f / 24, c3 = 1.0f / 120, c4 = 1.0f / 720;
    const float c5 = 1.0f / 5040, c6 = 1.0f / 40320, c7 = 1.0f / 362880;
    float x2 = x * x, x4 = x2 * x2;
    float p = ((c0 + c1 * x) + (c2 + c3 * x) * x2) + ((c4 + c5 * x) + (c6 + c7 * x) * x2) * x4;
    float small = x + x * (x * p);
    float large = fm_exp_f(x) - 1.0f;
    return fabsf(x) <= 0.5f ? small : large;
}

/* log1p(t) for t in [0, 1] (what softplus needs: log1p(exp(-|x|))):
 * log1p(t) = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...), s = t / (2 + t) <= 1/3, so w = s^2 <= 1/9
 * and 17 terms of sum_k w^k / (2k + 3) reach 2^-53 (8 reach 2^-24 in float). t itself is never
 * rounded into 1 + t. One formula over the whole interval: with a select between two reductions
 * GCC evaluated the series twice, masked, and a loop fusing it with an exp ran 3x slower. */
static inline double fm_log1p_unit_d(double t)
{
    const double c0 = 1.0 / 3, c1 = 1.0 / 5, c2 = 1.0 / 7, c3 = 1.0 / 9, c4 = 1.0 / 11;
    const double c5 = 1.0 / 13, c6 = 1.0 / 15, c7 = 1.0 / 17, c8 = 1.0 / 19, c9 = 1.0 / 21;
    const double c10 = 1.0 / 23, c11 = 1.0 / 25, c12 = 1.0 / 27, c13 = 1.0 / 29, c14 = 1.0 / 31;
    const double c15 = 1.0 / 33, c16 = 1.0 / 35;
    double s = t / (2.0 + t), w = s * s, w2 = w * w, w4 = w2 * w2, w8 = w4 * w4, w16 = w8 * w8;
    double q0 = (c0 + c1 * w) + (c2 + c3 * w) * w2, q1 = (c4 + c5 * w) + (c6 + c7 * w) * w2;
    double q2 = (c8 + c9 * w) + (c10 + c11 * w) * w2;
    double q3 = (c12 + c13 * w) + (c14 + c15 * w) * w2;
    double p = ((q0 + q1 * w4) + (q2 + q3 * w4) * w8) + c16 * w16; /* sum_k w^k / (2k + 3) */
    return 2.0 * s + 2.0 * s * (w * p);
}

static inline float fm_log1p_unit_f(float t)
{
    const float c0 = 1.0f / 3, c1 = 1.0f / 5, c2 = 1.0f / 7, c3 = 1.0f / 9, c4 = 1.0f / 11;
    const float c5 = 1.0f / 13, c6 = 1.0f / 15, c7 = 1.0f / 17;
    float s = t / (2.0f + t), w = s * s, w2 = w * w, w4 = w2 * w2;
    float p = ((c0 + c1 * w) + (c2 + c3 * w) * w2) + ((c4 + c5 * w) + (c6 + c7 * w) * w2) * w4;
    return 2.0f * s + 2.0f * s * (w * p);
}

/* The standard normal CDF Phi(z) = erfc(-z / sqrt 2) / 2 (gelu), and *density = its derivative
 * e^(-z^2 / 2) / sqrt(2 pi), which comes for free.
 *
 * With u = |z| / sqrt 2, erfc(u) = e^(-u^2) f(u) / (1 + 2u), where f(u) = (1 + 2u) e^(u^2) erfc(u)
 * is smooth and bounded on [0, inf) (from 1 to 2 / sqrt(pi)) and has a fast-converging Chebyshev
 * series in y = (u - 3) / (u + 3), which maps [0, inf) onto [-1, 1) (the transformation of
 * Shepherd & Laframboise, Math. Comp. 36 (1981), with their K = 3.75 replaced by 3, which needs the
 * fewest terms). The series was computed for this file with mpmath at 40 digits (Chebyshev
 * interpolation at 64 nodes), cut where its terms fall below 2^-53 (25 terms; 14 for float) and
 * turned into monomials in y, whose coefficients stay below 1.26, so nothing cancels. They are
 * summed by Estrin's scheme: five dependent levels instead of Clenshaw's 24 steps, which left the
 * vectorised loop waiting on latency (gelu forward on 200 x 256 doubles: 440 us with Clenshaw,
 * 780 us with libm's scalar erf).
 *
 * Phi(z) = erfc(u) / 2 for z < 0 and 1 - erfc(u) / 2 above, so there is no cancellation on either
 * side: within about 6 ulps of scipy.special.ndtr over the whole range (float: 13 ulps for
 * |z| < 5). Branch-free, so a loop of it vectorises, unlike libm's erf/erfc. */
static const double fm_ndtr_poly_d[25] = {
    1.2530080582697296, -0.13562110612458117, -0.0475622943534492, 0.1296451587027594,
    -0.11927366341538638, 0.0683080273440099, -0.02377051491717134, 0.0025293918156939696,
    0.0018886903449991718, -0.0007798322696543306, -0.00010515971958448065, 0.0001250993424583729,
    4.949196649968345e-06, -2.0100542268525612e-05, -7.308281468783614e-07, 3.472370944977168e-06,
    3.5576086684080595e-07, -6.166011460398726e-07, -1.4047654315428462e-07,
    1.0183620603842736e-07, 4.1064013667940355e-08, -1.3312919661038687e-08,
    -8.217595058711455e-09, 9.862533510345587e-10, 8.393734858690877e-10
};
static const float fm_ndtr_poly_f[14] = {
    1.2530080080032349f, -0.1356211006641388f, -0.04756229370832443f, 0.12964509427547455f,
    -0.11927369236946106f, 0.06830870360136032f, -0.02377033419907093f, 0.002526068827137351f,
    0.0018881128635257483f, -0.0007713736849837005f, -0.00010413071140646935f,
    0.00011324624210828915f, 3.861849108943716e-06f, -1.1057230040023569e-05f
};

static inline double fm_ndtr_d(double z, double *density)
{
    const double *a = fm_ndtr_poly_d;
    double u = fabs(z) * 0.70710678118654752440;
    double uc = u < 40.0 ? u : 40.0; /* keep y finite at u = inf; erfc(40) is 0 anyway */
    double y = (uc - 3.0) / (uc + 3.0);
    double y2 = y * y, y4 = y2 * y2, y8 = y4 * y4, y16 = y8 * y8;
    double p0 = a[0] + a[1] * y, p1 = a[2] + a[3] * y, p2 = a[4] + a[5] * y;
    double p3 = a[6] + a[7] * y, p4 = a[8] + a[9] * y, p5 = a[10] + a[11] * y;
    double p6 = a[12] + a[13] * y, p7 = a[14] + a[15] * y, p8 = a[16] + a[17] * y;
    double p9 = a[18] + a[19] * y, p10 = a[20] + a[21] * y, p11 = a[22] + a[23] * y;
    double q0 = p0 + p1 * y2, q1 = p2 + p3 * y2, q2 = p4 + p5 * y2, q3 = p6 + p7 * y2;
    double q4 = p8 + p9 * y2, q5 = p10 + p11 * y2;
    double r0 = q0 + q1 * y4, r1 = q2 + q3 * y4, r2 = q4 + q5 * y4;
    double s0 = r0 + r1 * y8, s1 = r2 + a[24] * y8;
    double f = s0 + s1 * y16;
    double e = fm_exp_d(-u * u);
    double half_erfc = 0.5 * (e * f / (1.0 + 2.0 * uc));
    *density = e * 0.39894228040143267794;
    return z < 0 ? half_erfc : 1.0 - half_erfc;
}

static inline float fm_ndtr_f(float z, float *density)
{
    const float *a = fm_ndtr_poly_f;
    float u = fabsf(z) * 0.707106781f;
    float uc = u < 40.0f ? u : 40.0f;
    float y = (uc - 3.0f) / (uc + 3.0f);
    float y2 = y * y, y4 = y2 * y2, y8 = y4 * y4;
    float p0 = a[0] + a[1] * y, p1 = a[2] + a[3] * y, p2 = a[4] + a[5] * y;
    float p3 = a[6] + a[7] * y, p4 = a[8] + a[9] * y, p5 = a[10] + a[11] * y;
    float p6 = a[12] + a[13] * y;
    float q0 = p0 + p1 * y2, q1 = p2 + p3 * y2, q2 = p4 + p5 * y2;
    float r0 = q0 + q1 * y4, r1 = q2 + p6 * y4;
    float f = r0 + r1 * y8;
    float e = fm_exp_f(-u * u);
    float half_erfc = 0.5f * (e * f / (1.0f + 2.0f * uc));
    *density = e * 0.398942280f;
    return z < 0 ? half_erfc : 1.0f - half_erfc;
}

#endif
