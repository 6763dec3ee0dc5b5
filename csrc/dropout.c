/* Inverted dropout of hidden units: out = in * keep / (1 - p). Forward and backward.
 *
 * Design
 * ------
 * The mask's bits come from a counter-based generator: the key is the SplitMix64 output of
 * (seed, step), the counter is sample * stride + unit, and a unit is dropped when the top 53 bits
 * of the counter's output fall below p 2^53. No state, no per-thread stream: the mask of a unit is
 * the same whichever thread computes it, and backward recomputes it instead of storing it, so
 * backward is forward applied to delta in place. Dropout is not an activation (it acts after
 * one, on a copy the next layer reads), which is why it is not one of activations.c's kinds.
 *
 * This file includes itself once per dtype (see activations.c).
 */
#ifndef REAL
#include "fastmlp_kernels.h"
#include "fm_math.h"

/* SplitMix64's output function (Steele, Lea & Flood 2014): a bijection of 64-bit integers with
 * full avalanche. Output i of the SplitMix64 stream seeded with s is fm_mix64(s + i * gamma). */
#define FM_GAMMA 0x9E3779B97F4A7C15ULL
static inline unsigned long long fm_mix64(unsigned long long z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* The counter's output: its top 53 bits, compared with p 2^53. */
static inline long long fm_dropout_bits(unsigned long long key, unsigned long long counter)
{
    return (long long)(fm_mix64(key + counter * FM_GAMMA) >> 11);
}

unsigned long long fm_dropout_key(unsigned long long seed, long long step)
{
    return fm_mix64(seed + (unsigned long long)(step + 1) * FM_GAMMA);
}

#define REAL float
#define SFX(name) name##_f
#include "dropout.c"
#undef REAL
#undef SFX

#define REAL double
#define SFX(name) name##_d
#include "dropout.c"

#else

FASTMLP_CLONES
void SFX(fm_dropout_forward)(REAL *out, const REAL *in, ptrdiff_t rows, ptrdiff_t cols,
                             unsigned long long key, const ptrdiff_t *sample_ids,
                             ptrdiff_t first_sample, ptrdiff_t stride, ptrdiff_t offset,
                             long long threshold, double scale)
{
    const REAL keep_scale = (REAL)scale;
    for (ptrdiff_t r = 0; r < rows; r++) {
        ptrdiff_t sample = sample_ids ? sample_ids[r] : first_sample + r;
        unsigned long long base = (unsigned long long)sample * (unsigned long long)stride
                                  + (unsigned long long)offset;
        const REAL *in_row = in + r * cols;
        REAL *out_row = out + r * cols;
        FM_SIMD
        for (ptrdiff_t j = 0; j < cols; j++) {
            int keep = fm_dropout_bits(key, base + (unsigned long long)j) >= threshold;
            out_row[j] = keep ? in_row[j] * keep_scale : (REAL)0;
        }
    }
}

FASTMLP_CLONES
void SFX(fm_dropout_backward)(REAL *delta, ptrdiff_t rows, ptrdiff_t cols,
                              unsigned long long key, const ptrdiff_t *sample_ids,
                              ptrdiff_t first_sample, ptrdiff_t stride, ptrdiff_t offset,
                              long long threshold, double scale)
{
    SFX(fm_dropout_forward)(delta, delta, rows, cols, key, sample_ids, first_sample, stride,
                            offset, threshold, scale);
}

#endif
