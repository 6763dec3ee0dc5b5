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
 * so no fitted constants are needed; both are within about two ulps of libm.
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
#else
#define FM_SIMD_SUM(var)
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
 * exp(x) - 1 beyond, where the result is at least 0.39 in magnitude and loses at most a bit. */
static inline double fm_expm1_d(double x)
{
    double p = 1.0 / 1307674368000.0;                 /* 1/15! */
    p = p * x + 1.0 / 87178291200.0;
    p = p * x + 1.0 / 6227020800.0;
    p = p * x + 1.0 / 479001600.0;
    p = p * x + 1.0 / 39916800.0;
    p = p * x + 1.0 / 3628800.0;
    p = p * x + 1.0 / 362880.0;
    p = p * x + 1.0 / 40320.0;
    p = p * x + 1.0 / 5040.0;
    p = p * x + 1.0 / 720.0;
    p = p * x + 1.0 / 120.0;
    p = p * x + 1.0 / 24.0;
    p = p * x + 1.0 / 6.0;
    p = p * x + 0.5;
    double small = x + x * (x * p);
    double large = fm_exp_d(x) - 1.0;
    return fabs(x) <= 0.5 ? small : large;
}

static inline float fm_expm1_f(float x)
{
    float p = 1.0f / 362880.0f;                       /* 1/9! */
    p = p * x + 1.0f / 40320.0f;
    p = p * x + 1.0f / 5040.0f;
    p = p * x + 1.0f / 720.0f;
    p = p * x + 1.0f / 120.0f;
    p = p * x + 1.0f / 24.0f;
    p = p * x + 1.0f / 6.0f;
    p = p * x + 0.5f;
    float small = x + x * (x * p);
    float large = fm_exp_f(x) - 1.0f;
    return fabsf(x) <= 0.5f ? small : large;
}

/* log1p(t) for t in [0, 1] (what softplus needs: log1p(exp(-|x|))). With f = t (t < 1/2) or
 * f = (t - 1) / 2 and one ln 2 added (t >= 1/2), f lies in [-1/4, 1/2) and
 * log1p(f) = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...), s = f / (2 + f), |s| <= 1/5: 11 odd terms
 * after s reach 2^-53 in double, 5 in float. t itself is never rounded into 1 + t. */
static inline double fm_log1p_unit_d(double t)
{
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    int upper = t >= 0.5;
    double f = upper ? (t - 1.0) * 0.5 : t;
    double s = f / (2.0 + f), s2 = s * s;
    double p = 1.0 / 25.0;
    p = p * s2 + 1.0 / 23.0;
    p = p * s2 + 1.0 / 21.0;
    p = p * s2 + 1.0 / 19.0;
    p = p * s2 + 1.0 / 17.0;
    p = p * s2 + 1.0 / 15.0;
    p = p * s2 + 1.0 / 13.0;
    p = p * s2 + 1.0 / 11.0;
    p = p * s2 + 1.0 / 9.0;
    p = p * s2 + 1.0 / 7.0;
    p = p * s2 + 1.0 / 5.0;
    p = p * s2 + 1.0 / 3.0;
    double r = 2.0 * s + 2.0 * s * (s2 * p);
    return upper ? ln2_hi + (r + ln2_lo) : r;
}

static inline float fm_log1p_unit_f(float t)
{
    int upper = t >= 0.5f;
    float f = upper ? (t - 1.0f) * 0.5f : t;
    float s = f / (2.0f + f), s2 = s * s;
    float p = 1.0f / 13.0f;
    p = p * s2 + 1.0f / 11.0f;
    p = p * s2 + 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    float r = 2.0f * s + 2.0f * s * (s2 * p);
    return upper ? 0.693147180559945309f + r : r;
}

#endif
