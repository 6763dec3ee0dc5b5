/* The product of a few rows (a row block of a small mini-batch) with a weight matrix: out = a W,
 * float32, with our own packing of W and an AVX2 + FMA register kernel; on AVX-512 a kernel of
 * its own, for float32 and float64 (Float64, below).
 *
 * Design
 * ------
 * GEMM packs W into panels before it multiplies. With few rows the packing is most of the cost,
 * and scipy's OpenBLAS on its Haswell kernels (AMD Zen and Intel alike) packs W, its A operand
 * here, at ~0.8 ns a float (its sgemm_itcopy; 2-core AMD EPYC VM). Packing W into panels of 16
 * columns by rows of 64 bytes takes ~0.22 ns a float here, and a 6 x 16 register kernel over the
 * packed panels runs at up to ~80 GFLOP/s on one core (the one-core sgemm ceiling is ~84).
 * benchmarks/few_rows_product.py times the two call by call, own / OpenBLAS: 0.55-0.70 for the
 * products of 16-32 rows, ~0.84 for 100 rows, 0.81-0.94 for 128 rows (`mnist`'s row blocks),
 * 1.10 for 256 rows against 1024 columns with blocks of 256 terms; with blocks of 1024 (below)
 * 0.85 for 128 rows and 0.89-0.98 for 192-256 rows (`wide`'s row blocks), but 0.94-1.03 for
 * 384-1024 rows: the engine sends blocks of at most OWN_PRODUCT_ROWS = 256 rows here
 * (fastmlp/_engine/_layer_dense.pxd).
 *
 * The bits. Each out[r, j] is one chain of fused multiply-adds over k = 0, 1, ..., n_in - 1 in
 * that order, starting from +0: fma(a[r, k], W[k, j], acc), rounded once per term. The blocking
 * (panels of columns, blocks of k whose partial sums wait in `out` as floats, tiles of rows) and
 * the vector width do not change that chain, so the result depends on the shapes and the values
 * only: the same on every machine that runs this kernel, for any thread count and any cut of the
 * rows. (The build's -ffp-contract=off keeps the compiler from fusing the element-wise kernels'
 * a * b + c; the fused multiply-adds here are explicit.) One exception: the AVX-512 products by
 * W^T and of picked rows of X skip the terms at which all of a tile's rows are zero, the same
 * sums but for the sign of a zero reached through a product's underflow, which then depends on
 * the tile's other rows too (rp_product512_t; "Dead terms of X" below); the engine's tiles are
 * fixed by the shapes, whatever the threads.
 *
 * Where: x86-64 with AVX2 and FMA (fm_rows_product_kernel() 1), and with AVX-512 its own
 * kernel (2: rp_product512, below, tiles of 12 rows by panels of 32 columns): the same chain of
 * fused multiply-adds, so the same bits on both. The AVX2 kernel alone, let run on an AVX-512
 * Xeon, lost to OpenBLAS's SkylakeX kernels, whose width is twice its own (a trial build, 2-core
 * Xeon VM, one process per build in turns, benchmarks/profile_epochs.py: `wide` at half scale
 * 1.06-1.16x the epoch of OpenBLAS's path, `mnist` 0.97-1.29x, `tiny-batch` 0.90-1.12x). The
 * AVX-512 kernel, on that kind of VM (2-core Xeon with AVX-512, L2 2 MB a core, scipy's
 * OpenBLAS 0.3.30 on its SkylakeX kernels; 2026-12-03), own / OpenBLAS call by call (python
 * benchmarks/few_rows_product.py, five runs): 0.58-0.96 on `tiny-batch`'s, partial_fit's and
 * `small`'s products (once 1.08 and 1.13, the noisiest), 0.72-0.81 on `mnist`'s row blocks,
 * 0.68-0.84 on its weight jobs, 0.81-0.94 on `wide`'s row blocks and 0.90-0.95 on its weight
 * jobs; in cache 147-167 GFLOP/s on one core (OpenBLAS 118-139) for blocks of at most 256
 * rows, but 119 for 1020 x 1024 x 1024 (OpenBLAS 125: a's blocks no longer stay in L2), so the
 * blocks stay at most OWN_PRODUCT_ROWS rows here too. Epochs, the builds alternating
 * (benchmarks/ab_builds.py, 5 rounds): `wide` 0.865x, `mnist` 0.806x, bulk prediction 0.893x;
 * before a^T went into strips (rp_strips512) `tiny-batch` 0.865x, `small` 0.901x, `mnist`
 * 0.884x, `wide` 1.023x. There every float32 weight job is this kernel's
 * (fastmlp/_engine/_layer_dense.pxd's dense_backward_weights). Elsewhere the engine
 * multiplies with BLAS.
 *
 * Where `wide`'s products stand (2-core AMD EPYC VM, Zen 4, 2026-12-08). Its epoch is 94 %
 * these products (benchmarks/profile_breakdown.py: 49.2 ms of CPU a batch of 52.2), at 99 GFLOP
 * a CPU-second; 12 chains of 512-bit fused multiply-adds run at 113-117 a core, alone or with
 * the other core busy. The tile's inner loop alone, over a panel in L2, ran at 96-101 % of that
 * in the same runs, and tiles of 8 x 48 at 97-102 % (python benchmarks/tile_peak.py, 1024 and
 * 256 terms): no tile would give `wide` more than a percent or two. A product alone, one
 * thread, W warm (a /tmp script, medians of 31 calls): 256 x 784 x 1024 4,338 us, 256 x 1024 x
 * 1024 5,969, its W^T 5,596; fitted over 12-252 rows, a fixed 146, 338 and 307 us a call (the
 * packing of W, read from L3 or memory: 3-6 %) and 99-106 GFLOP/s in the rows. So what is left
 * is outside the tile: the packing (each thread's row block packs all of W), the reads of a and
 * out past L2, and in the epoch the other core's lines.
 *
 * Float64: the AVX-512 kernel alone (fm_rows_product_kernel_d() 2; elsewhere doubles go to
 * BLAS). It is compiled once per dtype from the body at the end of this file: panels of 16
 * doubles (two registers of 8) where float32's are of 32 floats, the same tiles of 12 rows,
 * blocks of terms, groups and copies in bytes, and the same chains, fused multiply-adds in k's
 * order from +0 (so the same bits for any thread count and cut of the rows). The AVX2 kernel on
 * panels of 8 doubles had lost to OpenBLAS's dgemm (2-core AMD EPYC VM, one thread, medians of
 * 40 calls: own / OpenBLAS 1.03-1.12 on `mnist-f64`'s 128 x 784 x 256 row block, 1.12-1.30 on
 * its 392 x 256 weight job over 256 rows; `mnist-f64`'s epoch 1.10x), and float64 stayed with
 * BLAS. The AVX-512 kernel wins (Zen 4 host, 2026-12-04, python benchmarks/few_rows_product.py
 * --dtype float64, two runs, own / OpenBLAS's dgemm on its SkylakeX kernels): 0.947-0.954 on
 * that row block, 0.925-0.935 on 128 x 256 x 128, 0.891-0.899 on its W2^T, 0.888-0.913 on that
 * weight job, 0.945-0.951 on 128 x 128 over 256 rows, 0.909-0.910 on 256 x 784 x 256; but
 * 1.34-1.41 on the 10-column output layer's products (10 columns take two registers of 8 a
 * row; ~13 us of a batch's ~6,000 of CPU, left so). `mnist-f64`'s epoch 0.904x
 * (benchmarks/ab_builds.py, 6 rounds): OpenBLAS's dgemm packed its operands (15 % of the
 * epoch's CPU on one thread) and zeroed C for beta = 0 (2 %).
 *
 * How: W is taken by panels of 16 columns (two vectors of 8; the last panel's missing columns
 * packed as zeros and never stored) and blocks of FM_RP_KC rows of k, packed into a buffer on the
 * stack (64 KB, read from L2 as a stream) that every tile of 6 rows of `a` runs over: 12
 * accumulators, two loads of W and six broadcasts of a per k. The rows' tail (1 to 5 rows)
 * takes the same kernel with fewer accumulators, and a last panel of at most 8 columns one
 * vector of them a row (100 columns, scikit-learn's default hidden layer, end in 4: 0.93-0.95
 * of the time of 32 x 64 x 100 and 200 x 64 x 100 products with two; 10 columns read
 * 1.04-1.08, 0.1-0.2 us, in the same C harness, though their code is as before).
 *
 * The blocks of k are the outer loop, the panels the inner one, so that the rows' FM_RP_KC
 * terms (128 rows: 128 KB) stay in L2 while every panel runs over them; with the panels
 * outside, each panel read all of `a` (128 x 784: 400 KB, L2's size) again. Each out[r, j]
 * still takes its blocks of k in order, so no bit changes. A C harness linking both orders,
 * interleaved call by call, W in cache (2-core AMD EPYC VM): new / old 0.93-0.98 for mnist's
 * 128 x 784 x 256, 0.94-0.96 for 32 x 64 x 100 (partial_fit's), 0.91-0.97 for 784 and 1024
 * inputs by 1024 outputs, 0.98-1.01 where n_in is one or two blocks; epochs, the builds alternating
 * (benchmarks/ab_builds.py, 8 rounds, with the 8-column panel above): mnist 0.95x, tiny-batch
 * 0.92x, small 1.02x (its noise). The own / OpenBLAS figures above and below are the kernel's
 * before these two changes.
 *
 * Blocks of FM_RP_KC = 1024 terms, not 256 (the 16 KB that fit L1 beside the tile's rows): most
 * layers' whole n_in is then one block, so each tile's sums are written to out once instead of
 * loaded and stored again for every block, and out can be large (a 256 x 1024 row block's is
 * 1 MB, in L3). A C harness linking five block sizes, called in turns, one thread's CPU time
 * with W read from memory (2-core AMD EPYC VM), GFLOP/s at 256 / 384 / 512 / 768 / 1024
 * terms: 256 x 784 x 1024 (`wide`'s first layer) 86.6 / 88.7 / 90.7 / 91.4 / 93.3, 256 x 1024
 * x 1024 82.9 / 84.4 / 86.7 / 87.6 / 89.6, its W^T 84.9 / 87.5 / 90.2 / 91.6 / 94.2, 128 x 784 x
 * 256 (`mnist`'s) 89.5 / 89.9 / 90.3 / 91.3 / 91.7, products of 16-128 rows over at most 256
 * terms within 1 %. Software prefetches of the next tile's rows of out, tried beside it, did
 * nothing. A weight gradient reads a^T in place and keeps blocks of FM_RP_KC_AT = 256 terms
 * (the batch's rows): there the larger blocks were slower (1024 x 128 x 128 over 1024 rows: 88.7
 * GFLOP/s at 256, 63.6 at 1024; 512 x 256 x 256: 88.9 and 73.5). The block changes no bit: a
 * partial sum waits in out as the float it is in the register.
 *
 * Tried for the weight gradient and not built: a^T's block of terms packed first into strips of
 * 6 rows (6 consecutive floats a term, on the heap), which the tile then reads in order, as
 * OpenBLAS packs its A. Same C harness, same bits, GFLOP/s read in place / from strips of 256 /
 * of 512 terms: 392 x 1024 over 512 rows (`wide`'s W1 job) 77.9 / 84.3 / 87.4, 256 x 1024 over
 * 512 (its W2 job) 66.2 / 79.3 / 81.6, 392 x 256 over 256 (`mnist`'s W1 job) 75.3 / 83.6 / 84.2,
 * but 128 x 128 over 256 or 1024 rows and the small jobs 5-15 % slower (the packing and its
 * allocation). OpenBLAS took 4.9 ms for the first (strips of 512: 4.7), 3.3-3.5 for the second
 * (3.3), ~0.62-0.68 for the third (0.61) in benchmarks/few_rows_product.py's runs of that day:
 * a few percent of those jobs, 1-2 % of an epoch, for other bits of `wide`'s and `mnist`'s
 * weight gradients.
 *
 * The backward pass's product with W's transpose (a row block's delta times W^T, the gradient of
 * the layer's input) is the same product with a packing that transposes: a panel's 16 columns of
 * W^T are 16 rows of W, taken 8 x 8 at a time (fm_rows_product_t). OpenBLAS packs that W at
 * ~0.8 ns a float too. A weight job's gradient, a^T delta over the batch's rows
 * (fm_rows_product_at), is the same product again with the tile reading a^T in place (each k
 * a run of 6 consecutive values of a row of a) and delta packed as W is: OpenBLAS packs delta
 * at ~0.8 ns a float and a at ~0.6. Own / OpenBLAS, benchmarks/few_rows_product.py: 0.68-0.81
 * for the workloads' jobs of at most 256 x 256, but 1.01-1.02 for `mnist`'s 392 x 256 over
 * 256 rows and 1.09 for `wide`'s 256 x 1024 over 512, which stay with BLAS
 * (fastmlp/_engine/_layer_dense.pxd's dense_backward_weights). Timed again after the blocks of
 * k moved outside the panels (2026-12-03, same script and VM): 1.006 and 1.068; the products of
 * 128 rows 0.83-0.89.
 *
 * Bulk prediction: with blocks of 256 terms, one thread, 1024 x 784 x 256, this kernel in
 * blocks of 128 rows ran at 84.6 GFLOP/s and over all 1024 at once at 87.7, OpenBLAS at 89.9,
 * so predictions went in blocks of 1024 rows to BLAS. With blocks of 1024 terms, float32
 * predictions go in blocks of OWN_PRODUCT_ROWS rows to this kernel (`predict` in
 * fastmlp/_engine/_trainer.pyx; PREDICT_ROWS has the figures: 0.94-0.96x the time of 20,000
 * and 12,000 rows). Each block packed all of W again; a prediction of several blocks now packs
 * each layer's W once, in each kernel's layout (fm_rows_pack_f, at the end of this file), and
 * every block multiplies from that copy (fm_rows_product_packed_f): the same panels, the same
 * bits (predict_packs in fastmlp/_engine/_trainer.pyx has the figures).
 */
#ifndef REAL
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "fastmlp_kernels.h"
#include "fm_math.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define FM_RP_X86 1
#define FM_RP_TARGET __attribute__((target("avx2,fma")))
#endif

enum {
    FM_RP_MR = 6,   /* rows of a tile */
    FM_RP_NR = 16,  /* columns of a panel */
    FM_RP_KC = 1024,  /* rows of W (terms) packed at a time: 1024 x 16 floats, 64 KB */
    FM_RP_KC_AT = 256  /* the same for a weight gradient's delta (a^T read in place) */
};

/* bytes rounded up to whole 64-byte lines (the parts of a product's scratch) */
#define RP_LINES(bytes) (((bytes) + 63) / 64 * 64)

/* The next part of a product's scratch, `bytes` long, from *at (NULL where there is no scratch
 * or the part is not wanted); *at moves past it. */
static inline void *rp_part(char **at, size_t bytes)
{
    char *part = *at && bytes ? *at : NULL;
    if (*at)
        *at += bytes;
    return part;
}

#if defined(FM_RP_X86)
/* Whether this processor runs the kernel: settled once, when the engine's library is loaded
 * (before any thread of the engine asks). */
static int rp_kernel;  /* 0: none; 1: AVX2 and FMA; 2: AVX-512 */

__attribute__((constructor)) static void rp_settle_available(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        rp_kernel = __builtin_cpu_supports("avx512f") ? 2 : 1;
}
#endif

int fm_rows_product_kernel(void)
{
#if defined(FM_RP_X86)
    return rp_kernel;
#else
    return 0;
#endif
}

/* fm_rows_product_set_fetch's switch (relaxed: a hint that changes no bit, written by the
 * thread that runs the batches before it calls the others to them). */
static int rp_fetch = 1;

void fm_rows_product_set_fetch(int fetch)
{
    __atomic_store_n(&rp_fetch, fetch ? 1 : 0, __ATOMIC_RELAXED);
}

/* The AVX-512 float32 products that are left to look for subnormal weights (rp_watch_begin;
 * every thread's, relaxed: a hint that changes no bit), and the tests' hook on it. */
static int rp_looks;

int fm_rows_product_looks(int looks)
{
    const int was = __atomic_load_n(&rp_looks, __ATOMIC_RELAXED);
    if (looks >= 0)
        __atomic_store_n(&rp_looks, looks, __ATOMIC_RELAXED);
    return was;
}

static inline int rp_fetch_ahead(void)
{
    return __atomic_load_n(&rp_fetch, __ATOMIC_RELAXED);
}

int fm_rows_product_available(void)
{
    return fm_rows_product_kernel() != 0;
}

#if defined(FM_RP_X86)

/* out[0:mr, 0:16] (masked to the panel's columns) (+)= A[0:mr, 0:kc] packed[0:kc, 0:16], where
 * A[r, k] is a[r lda + k], or a[k lda + r] with `a_trans` (the weight gradient's a^T): `first`
 * starts the sums from +0, else from out. mr, masked and a_trans are constants at every call, so
 * that the accumulators stay in registers. */
FM_RP_TARGET FM_INLINE void rp_tile(float *out, ptrdiff_t ldo, const float *a, ptrdiff_t lda,
                                    const float *packed, ptrdiff_t kc, int first, __m256i mask_0,
                                    __m256i mask_1, const int mr, const int masked,
                                    const int a_trans, const int nv)
{
    __m256 acc[FM_RP_MR][2];
    for (int r = 0; r < mr; r++) {
        for (int v = 0; v < nv; v++) {
            if (first)
                acc[r][v] = _mm256_setzero_ps();
            else if (masked)
                acc[r][v] = _mm256_maskload_ps(out + r * ldo + 8 * v, v ? mask_1 : mask_0);
            else
                acc[r][v] = _mm256_loadu_ps(out + r * ldo + 8 * v);
        }
    }
    for (ptrdiff_t k = 0; k < kc; k++) {
        __m256 w[2];
        for (int v = 0; v < nv; v++)
            w[v] = _mm256_load_ps(packed + k * FM_RP_NR + 8 * v);
        for (int r = 0; r < mr; r++) {
            const __m256 a_rk = _mm256_broadcast_ss(a_trans ? a + k * lda + r : a + r * lda + k);
            for (int v = 0; v < nv; v++)
                acc[r][v] = _mm256_fmadd_ps(a_rk, w[v], acc[r][v]);
        }
    }
    for (int r = 0; r < mr; r++) {
        for (int v = 0; v < nv; v++) {
            if (masked)
                _mm256_maskstore_ps(out + r * ldo + 8 * v, v ? mask_1 : mask_0, acc[r][v]);
            else
                _mm256_storeu_ps(out + r * ldo + 8 * v, acc[r][v]);
        }
    }
}

/* Every tile of rows over one packed block (`masked`: the last panel, narrower than 16; `nv`
 * 1: no wider than 8, one vector of accumulators a row). */
FM_RP_TARGET FM_INLINE void rp_rows(float *out, ptrdiff_t ldo, const float *a, ptrdiff_t lda,
                                    const float *packed, ptrdiff_t rows, ptrdiff_t kc, int first,
                                    __m256i mask_0, __m256i mask_1, const int masked,
                                    const int a_trans, const int nv)
{
    ptrdiff_t r0 = 0;
    for (; rows - r0 >= FM_RP_MR; r0 += FM_RP_MR)
        rp_tile(out + r0 * ldo, ldo, a_trans ? a + r0 : a + r0 * lda, lda, packed, kc, first,
                mask_0, mask_1, FM_RP_MR, masked, a_trans, nv);
    switch (rows - r0) {
#define FM_RP_TAIL(n) \
    case n: \
        rp_tile(out + r0 * ldo, ldo, a_trans ? a + r0 : a + r0 * lda, lda, packed, kc, first, \
                mask_0, mask_1, n, masked, a_trans, nv); \
        break;
    FM_RP_TAIL(1) FM_RP_TAIL(2) FM_RP_TAIL(3) FM_RP_TAIL(4) FM_RP_TAIL(5)
#undef FM_RP_TAIL
    default:
        break;
    }
}

/* 8 x 8 floats transposed: rows[i][0..7] (i < 8, each loaded from its own row) become
 * columns. The usual unpack / shuffle / permute network. */
FM_RP_TARGET FM_INLINE void rp_transpose8(__m256 *r)
{
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* 4 x 4 doubles transposed: rows[i][0..3] become columns (unpack, then swap 128-bit halves). */
FM_RP_TARGET FM_INLINE void rp_transpose4_d(__m256d *r)
{
    const __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
    const __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
    r[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
    r[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
    r[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
    r[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}

/* rp_pack once per dtype: the body's first part at the end of this file (below `#else`), with
 * REAL = float (rp_pack_f: 8 x 8 transposes, the AVX2 kernel's panels of 16 and the AVX-512
 * kernel's of 32) and REAL = double (rp_pack_d: 4 x 4, the AVX-512 kernel's panels of 16). */
#define RP_PART 1
#define REAL float
#define SFX(name) name##_f
#define W256(op) _mm256_##op##_ps
#define VEC256 __m256
#define RP_T 8
#define RP_TRANSPOSE rp_transpose8
#include "rows_product.c"
#undef REAL
#undef SFX
#undef W256
#undef VEC256
#undef RP_T
#undef RP_TRANSPOSE

#define REAL double
#define SFX(name) name##_d
#define W256(op) _mm256_##op##_pd
#define VEC256 __m256d
#define RP_T 4
#define RP_TRANSPOSE rp_transpose4_d
#include "rows_product.c"
#undef REAL
#undef SFX
#undef W256
#undef VEC256
#undef RP_T
#undef RP_TRANSPOSE
#undef RP_PART


/* out (rows x cols) (+)= A B: A[r, k] as rp_tile reads it (a_trans: a is n_in x rows), B is W
 * or W^T as rp_pack reads it; `accumulate` adds to out, else out is overwritten. */
FM_RP_TARGET FM_INLINE void rp_product(float *out, ptrdiff_t ldo, const float *a, ptrdiff_t lda,
                                       const float *W, ptrdiff_t ldw, ptrdiff_t rows,
                                       ptrdiff_t n_in, ptrdiff_t cols, int accumulate,
                                       const int transposed, const int a_trans,
                                       const float *prepacked)
{
    float packed[FM_RP_KC * FM_RP_NR] __attribute__((aligned(64)));
    if (n_in == 0) {
        if (!accumulate)  /* out = 0 */
            for (ptrdiff_t r = 0; r < rows; r++)
                memset(out + r * ldo, 0, (size_t) cols * sizeof(float));
        return;
    }
    const ptrdiff_t block = a_trans ? FM_RP_KC_AT : FM_RP_KC;
    const ptrdiff_t cols_whole = (cols + FM_RP_NR - 1) / FM_RP_NR * FM_RP_NR;
    for (ptrdiff_t k0 = 0; k0 < n_in; k0 += block) {
        const ptrdiff_t kc = n_in - k0 < block ? n_in - k0 : block;
        const float *a_k0 = a_trans ? a + k0 * lda : a + k0;
        const int first = k0 == 0 && !accumulate;
        for (ptrdiff_t j0 = 0; j0 < cols; j0 += FM_RP_NR) {
            const ptrdiff_t width = cols - j0 < FM_RP_NR ? cols - j0 : FM_RP_NR;
            const float *p = packed;
            if (prepacked)  /* rp_pack_all's layout */
                p = prepacked + k0 * cols_whole + j0 * kc;
            else
                rp_pack_f(packed, W, ldw, j0, width, k0, kc, transposed, FM_RP_NR);
            if (width < FM_RP_NR) {
                int lanes[FM_RP_NR];
                for (int j = 0; j < FM_RP_NR; j++)
                    lanes[j] = j < width ? -1 : 0;
                const __m256i mask_0 = _mm256_loadu_si256((const __m256i *) lanes);
                const __m256i mask_1 = _mm256_loadu_si256((const __m256i *) (lanes + 8));
                if (width <= 8)  /* half the multiply-adds: 100 columns end in 4 */
                    rp_rows(out + j0, ldo, a_k0, lda, p, rows, kc, first, mask_0, mask_1, 1,
                            a_trans, 1);
                else
                    rp_rows(out + j0, ldo, a_k0, lda, p, rows, kc, first, mask_0, mask_1, 1,
                            a_trans, 2);
            } else {
                rp_rows(out + j0, ldo, a_k0, lda, p, rows, kc, first, _mm256_setzero_si256(),
                        _mm256_setzero_si256(), 0, a_trans, 2);
            }
        }
    }
}

FM_RP_TARGET static void rp_product_n(float *out, ptrdiff_t ldo, const float *a, ptrdiff_t lda,
                                      const float *W, ptrdiff_t ldw, ptrdiff_t rows,
                                      ptrdiff_t n_in, ptrdiff_t cols)
{
    rp_product(out, ldo, a, lda, W, ldw, rows, n_in, cols, 0, 0, 0, NULL);
}

FM_RP_TARGET static void rp_product_t(float *out, ptrdiff_t ldo, const float *a, ptrdiff_t lda,
                                      const float *W, ptrdiff_t ldw, ptrdiff_t rows,
                                      ptrdiff_t n_in, ptrdiff_t cols)
{
    rp_product(out, ldo, a, lda, W, ldw, rows, n_in, cols, 0, 1, 0, NULL);
}

FM_RP_TARGET static void rp_product_at(float *out, ptrdiff_t ldo, const float *a,
                                       ptrdiff_t lda, const float *W, ptrdiff_t ldw,
                                       ptrdiff_t rows, ptrdiff_t n_in, ptrdiff_t cols,
                                       int accumulate)
{
    rp_product(out, ldo, a, lda, W, ldw, rows, n_in, cols, accumulate, 0, 1, NULL);
}

FM_RP_TARGET static void rp_product_packed(float *out, ptrdiff_t ldo, const float *a,
                                           ptrdiff_t lda, const float *packed, ptrdiff_t rows,
                                           ptrdiff_t n_in, ptrdiff_t cols)
{
    rp_product(out, ldo, a, lda, NULL, 0, rows, n_in, cols, 0, 0, 0, packed);
}

/* All of W packed for rp_product_packed: its blocks of FM_RP_KC terms one after another, each
 * its panels of 16 columns one after another (panel j0 of the block at k0 at k0 * cols_whole
 * + j0 * kc), each as rp_pack packs it. */
FM_RP_TARGET static void rp_pack_all(float *packed, const float *W, ptrdiff_t ldw,
                                     ptrdiff_t n_in, ptrdiff_t cols)
{
    const ptrdiff_t cols_whole = (cols + FM_RP_NR - 1) / FM_RP_NR * FM_RP_NR;
    for (ptrdiff_t k0 = 0; k0 < n_in; k0 += FM_RP_KC) {
        const ptrdiff_t kc = n_in - k0 < FM_RP_KC ? n_in - k0 : FM_RP_KC;
        for (ptrdiff_t j0 = 0; j0 < cols; j0 += FM_RP_NR)
            rp_pack_f(packed + k0 * cols_whole + j0 * kc, W, ldw, j0,
                    cols - j0 < FM_RP_NR ? cols - j0 : FM_RP_NR, k0, kc, 0, FM_RP_NR);
    }
}

/* The AVX-512 kernel: the same sums (each out[r, j] the chain of fused multiply-adds over k in
 * order from +0, blocks of k waiting in out as floats) on tiles of FM_RP_MR512 rows by panels
 * of 32 columns (two registers of 16): 24 accumulators, two loads of W and twelve broadcasts
 * of a per k, in 32 registers. Blocks of FM_RP_KC512 terms keep the packed panel (32 x 512
 * floats, 64 KB) as large as the AVX2 kernel's on the stack; the block changes no bit (other
 * sizes tried: below). A weight gradient's a^T goes into strips first where more than one
 * panel reads it (rp_strips512): read in place, the
 * weight jobs' products ran at 0.95-0.98 of OpenBLAS's time and took 27.5 % of `wide`'s epoch
 * against the forward products' 17.7 % for the same arithmetic (perf, one thread); in strips
 * 0.90-0.95, and `mnist`'s 392 x 256 over 256 rows 0.91 -> 0.81. The strips are filled term
 * by term (a's rows in order): tile by tile, each tile's terms a line apart, they were ~4 % of
 * the weight jobs' time in perf; epochs, builds alternating (benchmarks/ab_builds.py, 6
 * rounds): `wide` 0.986x, `mnist` 0.940x. Tried and dropped (same bits): blocks of 256 or 1024
 * terms instead of 512 (`wide` 1.033x and 0.997x, `mnist` 1.064x and 1.010x); prefetching the
 * next panel's rows of W into L2 tile by tile during the current panel (packing a panel of a
 * 1024-column W reads 512 lines 4 KB apart: ~10 % of the forward product's time in perf),
 * `wide` 1.010x: the prefetches stalled as the loads had; tiles of 14 rows (28 accumulators),
 * `wide` 1.012x, `mnist` 1.084x, `tiny-batch` 1.048x (5 rounds).
 *
 * What did help with those strided reads: where a block has many rows, W's block of terms is
 * packed FM_RP_GROUP panels at a time (rp_pack_group, into 256 columns by the block's terms on
 * the heap: up to 512 KB, in L2; since 2026-12-04 a forward product's groups are half that,
 * with the next group fetched meanwhile: rp_product512), each row of W a run of up to 1 KB
 * instead of 128 bytes from every row for each panel, and the panels then run from that copy
 * (since 2026-12-04 tile by tile over the group's panels: rp_product512 says why): the same
 * terms in the same chains, no bit changed (tools/fingerprint.py: 301 of 301 fits equal to
 * b720452). That covers the forward products and the weight jobs (delta is their W); W^T's
 * pack reads runs along rows of W already. 2-core Xeon VM (AVX-512, L2 2 MB a core),
 * 2026-12-04: own / OpenBLAS (python benchmarks/few_rows_product.py, three runs each, in
 * turns) 0.907-0.949 -> 0.910-0.915 for 256 x 784 x 1024, 0.914-0.982 -> 0.926-0.946 for
 * 256 x 1024 x 1024, 128 x 784 x 256 unchanged (0.76-0.80); groups of 4, 16 or 32 panels
 * within that noise of 8. Builds alternating (benchmarks/ab_builds.py, 5 rounds): `wide`
 * 0.977x, bulk prediction 0.988x, `mnist` 0.985x. Blocks of fewer than FM_RP_GROUP_ROWS rows
 * (`tiny-batch`'s 16-32, partial_fit's) pack a panel at a time as before: with groups from one
 * row on, `tiny-batch` read 1.044x (`small`, all of whose blocks have 100 rows, 0.970x: noise;
 * same script, 5 rounds).
 *
 * Picked rows (fm_rows_product_picked; since 2026-12-05). A shuffled batch's first layer took
 * its rows from a gathered copy (fastmlp/_engine/_rows.pxd's gather_rows): each row copied from
 * memory, stored, and read back by the product, and the first layer's weight jobs read the
 * copy again. Now, where this kernel takes all of a batch's first-layer products
 * (fastmlp/_engine/_schedule.pxd's picks_rows), a is X itself and a tile's row r is row
 * picked[r] of it (the tile takes its twelve row addresses before its terms, as it took r lda
 * apart), and a weight job's strips take term k from row picked[k]: the same values in the
 * same chains, no bit changed (tools/fingerprint.py: 301 of 301 fits equal to a54f0de). The
 * first group of each block of terms runs the tiles over rows read from memory; while a tile
 * runs, the next tile's picked rows are fetched into L2 (rp_fetch_rows512). Zen 4 host
 * (2026-12-05), perf on `mnist-f64`'s epochs on two threads: the gather's memcpy had 3.6 % of
 * the CPU, 0.4 % after (what is left: batches that still gather). Epochs, the builds in turns,
 * the host's state read between runs (2 threads, cheap state, medians of 14-21 runs each):
 * `mnist-f64` 0.971x (0.987x without the fetch of the next tile's rows), `mnist` 0.978x,
 * `wide` 1.000x, `small` 0.98x; one thread, `mnist-f64` 0.976x. The fetch of the next tile's
 * rows, in a later run against a build without it: cheap state 0.3443 s against 0.3434 (16 and
 * 19 runs), costly state 0.3594 against 0.3702 (16 and 13); the kernel alone, timed call by call
 * (128 x 784 x 256 picked from 30,000 rows), within its noise either way. Fetching the first
 * tile's rows too, and a weight job's strips fetching picked rows ahead, read 0.988-0.997x and
 * 0.992x: not kept. The rows of an X in order,
 * read in place as before without an index, bound what this could give: 0.957-0.995x the
 * shuffled epoch on two threads, 0.968-0.972x on one.
 *
 * Dead terms of X (since 2026-12-06). Images leave most of X zero: in a shuffled batch of
 * MNIST's digits (scaled to [0, 1]) 80 % of the values, and in a tile of 12 rows half the
 * pixels are zero in all twelve (the border, and strokes those digits miss); 26 % of the pixels
 * are zero in all of a batch of 512. A term at which all of a tile's values of X are zero adds
 * fma(+-0, w, acc) to each of its chains, which leaves acc as it is (a chain from +0 reaches
 * -0 only through a product too small for a subnormal, under 2^-150 in float32: the sign of
 * that zero is all that could differ), unless w is an infinity or a NaN. So the products of
 * picked rows skip those terms tile by tile, as the product by W^T skips a ReLU layer's dead
 * deltas (rp_product512_t): the forward product (X W) finds each tile's live terms in its first
 * group of panels (rp_live_tile512: a mask of the tile's rows, the rows packed to the left by
 * vcompress, the panel rows' offsets) and runs every group over those; a weight job (X^T delta)
 * takes them out of each tile's strip of X^T in place (rp_dead_terms512, rp_live_strip512),
 * where its terms are the batch's rows and a term is dead where the tile's 12 features are all
 * zero in that row. A tile keeps all its terms where fewer than 1/FM_RP_FEW_ZEROS are dead, a
 * panel of W whose values are not all finite runs every tile over all its terms, and a block of
 * deltas that is not all finite leaves every strip whole (checked once, where a strip would
 * skip). Dense rows pay the looks only: once three more tiles of a call have kept all their
 * terms than have skipped some, the call looks no further (RP_LOOK). Only the picked products
 * look (their a is X; a hidden layer's activations are zero in all of a tile's rows at 0.4 %
 * of the terms on `wide`). Bits: 32 fits on MNIST's digits and scikit-learn's (every
 * activation, both solvers, both dtypes, batches of 32-512, a regressor, partial_fit, early
 * stopping; a /tmp script) hash-equal to the build before on 1 and 2 threads. 2-core Xeon VM,
 * one thread's CPU, medians of 200 calls (a /tmp script, builds in turns): X[index] W of 128 x
 * 784 x 256 on MNIST's rows 0.71-0.74 of the time (370 -> 263-276 us), X[index]^T delta of 392
 * x 256 over 256 rows 0.67-0.70; on Gaussian rows 1.00-1.02 and 0.99-1.01.
 *
 * Subnormal weights (since 2026-12-06). A unit that never fires gives its weights no gradient
 * but L2's, and the solvers shrink them until they are subnormal floats (csrc/optimizers.c,
 * "Subnormal numbers"): its column of W (incoming) and its row of the next layer's W. On
 * Intel's cores a multiply-add with a subnormal operand takes a microcode assist (a C loop of
 * AVX-512 FMAs: 10.9 ticks a vector against 0.36), and every vector of a panel that holds one
 * takes it, for every row: rmsprop on `tiny-batch`'s blobs ran 0.18-0.27 s an epoch until
 * three of its 256 first-layer units died, then 1.8-2.9 s. So the float32 products but the
 * weight gradients' look at each panel as they pack it (rp_subnormals512: integer compares)
 * and put zeros of the same sign in its subnormal values' places (rp_zero_lanes512). Where a
 * tile's rows of a are all +-0 at such a term (a dead unit's outgoing weights meet its zero
 * activations so), the zero adds what w added: +-0 times w is a zero of sign(a) sign(w),
 * whatever w's magnitude. A lane where some row meets one with a value that is not zero is
 * computed again after the tile (rp_exact_lanes512): its chain over the terms the tile ran
 * (its live ones where it skipped some), from the tile's sums before it, each fused
 * multiply-add in double and rounded to odd (rp_fma_f8: the same bits, no assist). Every
 * element is the chain it was: tests/engine/test_kernels.py compares each product with the
 * scalar fmaf chain bit for bit on such weights, with chains that pass through -0 and through
 * float32's subnormal range and sums that rounding twice would get wrong (mutations of each
 * part failed it); tools/fingerprint.py 303 of 303 and fits whose weights go subnormal (rmsprop
 * on the blobs, nadam on MNIST's digits: 0.8 and 4 % of the weights) hash-equal to the build
 * before, on 1 and 2 threads. Looking costs a product of few rows ~5 % (perf, `tiny-batch`), so
 * the products look only while some are about (rp_watch_begin: the processor's
 * denormal-operand flag, read around each product that does not look); `tiny-batch`'s forward
 * products, perf's samples after / before: 1104-1182 / 1251-1287. The rmsprop run above
 * (2-core Xeon VM, a /tmp script, the builds in turns, two runs each): its epochs with three
 * dead units 0.40-0.53 s against 1.8-2.9 (rp_exact_lanes512 11 % of the CPU); predict_proba of
 * its 20,000 rows 0.083-0.085 s against 1.008-1.015 (0.03-0.045 with those weights zero).
 * benchmarks/ab_builds.py --solver rmsprop --workloads tiny-batch --epochs 6, 3 rounds: 0.191x
 * the epoch of the build before (2.34 -> 0.446 s). rp_exact_lanes512 stepped one element at a
 * time until 2026-12-06 (a TwoSum and its rounding to odd, ~15 scalar operations); eight rows
 * a vector with AVX-512's embedded rounding (rp_fma_f8), the product over dead units' columns
 * against the same with them zeroed (python benchmarks/dead_unit_products.py, 2-core Xeon VM,
 * the builds in turns, three runs each): 1.5-1.7x the time against 1.6-2.4x with 3 dead columns
 * of 256, 3.5-4.0x against 6.1-6.3x with 20, 3.7-4.0x against 6.6-7.9x with 8 of 128; the
 * rmsprop epochs above 0.777x and 0.867x (ab_builds.py, 6 and 4 rounds). A step costs 3.3-3.8
 * ns a vector of eight there, ~0.45 ns an element: no less than a vector multiply-add's assist
 * (10.9 ticks of 2.3 GHz a vector of 16, ~0.3 ns an element), so computing exactly pays where
 * it replaces a few lanes' assists for a whole panel's, not where the sums themselves go
 * subnormal in every lane (MNIST's pixels 255 times smaller: benchmarks/RESULTS.md).
 * Float64's subnormal range lies ~900 binades below its weights': not looked for. */
enum {
    FM_RP_MR512 = 12,
    FM_RP_NR512 = 32,
    FM_RP_KC512 = 512,
    FM_RP_GROUP = 8,  /* panels packed at once (rp_pack_group; on the Zen 4 host, run tile by
                       * tile, groups of 4 and 16 read 0.97-1.02 of 8's time, 1024-term blocks
                       * 0.96-1.10 of 512's, product by product) ... */
    FM_RP_GROUP_ROWS = 64,  /* ... for products of at least this many rows */
    FM_RP_TILE_TERMS = 128,  /* blocks of at least this many terms go tile by tile over a group */
    FM_RP_FEW_ZEROS = 16,  /* a tile of a product that skips dead terms (by W^T, of picked
                            * rows) keeps all its terms where fewer than 1/16 of them are dead
                            * ... */
    FM_RP_LIVE_TERMS = 256  /* ... and all where W^T or W has fewer terms (rp_product512_t) */
};

#define FM_RP_TARGET512 __attribute__((target("avx512f,avx2,fma")))

/* The AVX-512 kernel once per dtype: the body at the end of this file (below `#else`), with
 * REAL = float (suffix _f: panels of 32, two registers of 16) and REAL = double (suffix _d:
 * panels of 16, two registers of 8). A packed panel, a group of panels and a line take the
 * same bytes in both; a block of terms is FM_RP_KC512 terms in both, so a tile's rows of a
 * take twice the bytes in doubles (12 x 512: 48 KB, past L1). Blocks of 256 terms for doubles
 * (24 KB; weight jobs 128) read no better (few_rows_product.py --dtype float64, two runs each,
 * own / OpenBLAS: 0.951-0.962 against 0.947-0.954 on `mnist-f64`'s 128 x 784 x 256,
 * 0.938-0.962 against 0.888-0.913 on its W1 job, 0.943 against 0.909-0.910 on 256 rows). */
#define RP_ALL ((VMASK) -1)
#define RP_NR (2 * RP_LANES)
/* rows of a product by W^T's live terms (rp_product512_t): a block and a register, an odd
 * number of lines (33 of floats, 65 of doubles), a constant so that a tile reads its twelve
 * rows at fixed distances from one pointer */
#define RP_LIVE_LD (FM_RP_KC512 + RP_LANES)
#define REAL float
#define SFX(name) name##_f
#define V(op) _mm512_##op##_ps
#define VCMP(op) _mm512_##op##_ps_mask
#define VEC __m512
#define VMASK __mmask16
#define RP_LANES 16
#define RP_PART 2
#include "rows_product.c"
#undef REAL
#undef SFX
#undef V
#undef VCMP
#undef VEC
#undef VMASK
#undef RP_LANES
#undef RP_PART

#define REAL double
#define SFX(name) name##_d
#define V(op) _mm512_##op##_pd
#define VCMP(op) _mm512_##op##_pd_mask
#define VEC __m512d
#define VMASK __mmask8
#define RP_LANES 8
#define RP_PART 2
#include "rows_product.c"
#undef REAL
#undef SFX
#undef V
#undef VCMP
#undef VEC
#undef VMASK
#undef RP_LANES
#undef RP_PART
#undef RP_NR
#undef RP_LIVE_LD
#undef RP_ALL
#endif

/* The product `kind` (0: a W, 1: a W^T, 2: a^T W) by `kernel` (1: AVX2, 2: AVX-512): the one
 * place that picks the compiled product, for the engine's entry points (this machine's
 * kernel) and for the tests' (either). */
#if defined(FM_RP_X86)
static void rp_dispatch(int kernel, int kind, float *out, ptrdiff_t ldo, const float *a,
                        ptrdiff_t lda, const float *W, ptrdiff_t ldw, ptrdiff_t rows,
                        ptrdiff_t n_in, ptrdiff_t cols, int accumulate)
{
    if (kernel == 2 && kind == 0)
        rp_product512_n_f(out, ldo, a, lda, W, ldw, rows, n_in, cols);
    else if (kernel == 2 && kind == 1)
        rp_product512_t_f(out, ldo, a, lda, W, ldw, rows, n_in, cols);
    else if (kernel == 2)
        rp_product512_at_f(out, ldo, a, lda, W, ldw, rows, n_in, cols, accumulate);
    else if (kind == 0)
        rp_product_n(out, ldo, a, lda, W, ldw, rows, n_in, cols);
    else if (kind == 1)
        rp_product_t(out, ldo, a, lda, W, ldw, rows, n_in, cols);
    else
        rp_product_at(out, ldo, a, lda, W, ldw, rows, n_in, cols, accumulate);
}
#endif

void fm_rows_product_f(float *out, ptrdiff_t ldo, const float *a, ptrdiff_t lda, const float *W,
                       ptrdiff_t ldw, ptrdiff_t rows, ptrdiff_t n_in, ptrdiff_t cols)
{
    fm_rows_product_by(fm_rows_product_kernel(), 0, out, ldo, a, lda, W, ldw, rows, n_in, cols,
                       0);
}

void fm_rows_product_t_f(float *out, ptrdiff_t ldo, const float *a, ptrdiff_t lda,
                         const float *W, ptrdiff_t ldw, ptrdiff_t rows, ptrdiff_t n_in,
                         ptrdiff_t cols)
{
    fm_rows_product_by(fm_rows_product_kernel(), 1, out, ldo, a, lda, W, ldw, rows, n_in, cols,
                       0);
}

void fm_rows_product_at_f(float *out, ptrdiff_t ldo, const float *a, ptrdiff_t lda,
                          const float *W, ptrdiff_t ldw, ptrdiff_t rows, ptrdiff_t n_in,
                          ptrdiff_t cols, int accumulate)
{
    fm_rows_product_by(fm_rows_product_kernel(), 2, out, ldo, a, lda, W, ldw, rows, n_in, cols,
                       accumulate);
}

int fm_rows_product_by(int kernel, int kind, float *out, ptrdiff_t ldo, const float *a,
                       ptrdiff_t lda, const float *W, ptrdiff_t ldw, ptrdiff_t rows,
                       ptrdiff_t n_in, ptrdiff_t cols, int accumulate)
{
#if defined(FM_RP_X86)
    if (kernel < 1 || kernel > rp_kernel || kind < 0 || kind > 2)
        return -1;
    rp_dispatch(kernel, kind, out, ldo, a, lda, W, ldw, rows, n_in, cols, accumulate);
    return 0;
#else
    (void) kernel, (void) kind, (void) out, (void) ldo, (void) a, (void) lda, (void) W,
        (void) ldw, (void) rows, (void) n_in, (void) cols, (void) accumulate;
    return -1;
#endif
}

/* fm_rows_product_picked_f and _d (fastmlp_kernels.h): one definition for both dtypes. The
 * float64 kernel runs where the float32 AVX-512 one does (fm_rows_product_kernel_d). */
#if defined(FM_RP_X86)
#define FM_RP_PICKED_RUN(SFX_)                                                                  \
    if (rp_kernel != 2 || (kind != 0 && kind != 2))                                             \
        return -1;                                                                              \
    if (kind == 0)                                                                              \
        rp_product512_picked##SFX_(out, ldo, a, lda, picked, W, ldw, rows, n_in, cols);         \
    else                                                                                        \
        rp_product512_at_picked##SFX_(out, ldo, a, lda, picked, W, ldw, rows, n_in, cols,       \
                                      accumulate);                                              \
    return 0;
#else
#define FM_RP_PICKED_RUN(SFX_)                                                                  \
    (void) kind, (void) out, (void) ldo, (void) a, (void) lda, (void) picked, (void) W,         \
        (void) ldw, (void) rows, (void) n_in, (void) cols, (void) accumulate;                   \
    return -1;
#endif
#define FM_RP_PICKED_ENTRY(REAL_, SFX_)                                                         \
    int fm_rows_product_picked##SFX_(int kind, REAL_ *out, ptrdiff_t ldo, const REAL_ *a,       \
                                     ptrdiff_t lda, const ptrdiff_t *picked, const REAL_ *W,    \
                                     ptrdiff_t ldw, ptrdiff_t rows, ptrdiff_t n_in,             \
                                     ptrdiff_t cols, int accumulate)                            \
    {                                                                                           \
        FM_RP_PICKED_RUN(SFX_)                                                                  \
    }
FM_RP_PICKED_ENTRY(float, _f)
FM_RP_PICKED_ENTRY(double, _d)
#undef FM_RP_PICKED_ENTRY
#undef FM_RP_PICKED_RUN

/* W packed once for many products a W (a bulk prediction's blocks of rows): see
 * fastmlp_kernels.h. Each kernel's blocks of terms one after another, each its panels one after
 * another, as its product reads them (rp_pack_all; on AVX-512 rp_pack512, rp_pack_group's
 * layout over all of W's columns). */
ptrdiff_t fm_rows_packed_size(int kernel, ptrdiff_t n_in, ptrdiff_t cols)
{
#if defined(FM_RP_X86)
    if (kernel >= 1 && kernel <= rp_kernel && n_in > 0 && cols > 0) {
        const ptrdiff_t nr = kernel == 2 ? FM_RP_NR512 : FM_RP_NR;
        return n_in * ((cols + nr - 1) / nr * nr);
    }
#endif
    (void) kernel, (void) n_in, (void) cols;
    return 0;
}

void fm_rows_pack_f(int kernel, float *packed, const float *W, ptrdiff_t ldw, ptrdiff_t n_in,
                    ptrdiff_t cols)
{
#if defined(FM_RP_X86)
    if (fm_rows_packed_size(kernel, n_in, cols) > 0 && kernel == 2)
        rp_pack512_f(packed, W, ldw, n_in, cols);
    else if (fm_rows_packed_size(kernel, n_in, cols) > 0)
        rp_pack_all(packed, W, ldw, n_in, cols);
#else
    (void) kernel, (void) packed, (void) W, (void) ldw, (void) n_in, (void) cols;
#endif
}

void fm_rows_product_packed_f(int kernel, float *out, ptrdiff_t ldo, const float *a,
                              ptrdiff_t lda, const float *packed, ptrdiff_t rows,
                              ptrdiff_t n_in, ptrdiff_t cols)
{
#if defined(FM_RP_X86)
    if (fm_rows_packed_size(kernel, n_in, cols) > 0 && kernel == 2)
        rp_product512_packed_f(out, ldo, a, lda, packed, rows, n_in, cols);
    else if (fm_rows_packed_size(kernel, n_in, cols) > 0)
        rp_product_packed(out, ldo, a, lda, packed, rows, n_in, cols);
#else
    (void) kernel, (void) out, (void) ldo, (void) a, (void) lda, (void) packed, (void) rows,
        (void) n_in, (void) cols;
#endif
}

/* Float64: the AVX-512 kernel alone, kernel 2 where it runs (else 0: BLAS); the AVX2 kernel's
 * panels of 8 doubles lost to OpenBLAS's dgemm (Design, "Float64"). The same entry points as
 * float32's, suffix _d, the same bits rule: each out[r, j] the chain of fused multiply-adds over
 * k in order from +0. */
int fm_rows_product_kernel_d(void)
{
    return fm_rows_product_kernel() == 2 ? 2 : 0;
}

int fm_rows_product_by_d(int kernel, int kind, double *out, ptrdiff_t ldo, const double *a,
                         ptrdiff_t lda, const double *W, ptrdiff_t ldw, ptrdiff_t rows,
                         ptrdiff_t n_in, ptrdiff_t cols, int accumulate)
{
#if defined(FM_RP_X86)
    if (kernel != 2 || fm_rows_product_kernel_d() != 2 || kind < 0 || kind > 2)
        return -1;
    if (kind == 0)
        rp_product512_n_d(out, ldo, a, lda, W, ldw, rows, n_in, cols);
    else if (kind == 1)
        rp_product512_t_d(out, ldo, a, lda, W, ldw, rows, n_in, cols);
    else
        rp_product512_at_d(out, ldo, a, lda, W, ldw, rows, n_in, cols, accumulate);
    return 0;
#else
    (void) kernel, (void) kind, (void) out, (void) ldo, (void) a, (void) lda, (void) W,
        (void) ldw, (void) rows, (void) n_in, (void) cols, (void) accumulate;
    return -1;
#endif
}

void fm_rows_product_d(double *out, ptrdiff_t ldo, const double *a, ptrdiff_t lda,
                       const double *W, ptrdiff_t ldw, ptrdiff_t rows, ptrdiff_t n_in,
                       ptrdiff_t cols)
{
    fm_rows_product_by_d(fm_rows_product_kernel_d(), 0, out, ldo, a, lda, W, ldw, rows, n_in,
                         cols, 0);
}

void fm_rows_product_t_d(double *out, ptrdiff_t ldo, const double *a, ptrdiff_t lda,
                         const double *W, ptrdiff_t ldw, ptrdiff_t rows, ptrdiff_t n_in,
                         ptrdiff_t cols)
{
    fm_rows_product_by_d(fm_rows_product_kernel_d(), 1, out, ldo, a, lda, W, ldw, rows, n_in,
                         cols, 0);
}

void fm_rows_product_at_d(double *out, ptrdiff_t ldo, const double *a, ptrdiff_t lda,
                          const double *W, ptrdiff_t ldw, ptrdiff_t rows, ptrdiff_t n_in,
                          ptrdiff_t cols, int accumulate)
{
    fm_rows_product_by_d(fm_rows_product_kernel_d(), 2, out, ldo, a, lda, W, ldw, rows, n_in,
                         cols, accumulate);
}

/* W packed once, float64 (fm_rows_pack_f's counterpart; kernel 2 only): doubles to allocate,
 * the copy, and out = a W from it. */
ptrdiff_t fm_rows_packed_size_d(int kernel, ptrdiff_t n_in, ptrdiff_t cols)
{
#if defined(FM_RP_X86)  /* (FM_RP_NR512 is x86-64's alone: elsewhere this did not compile) */
    const ptrdiff_t nr = FM_RP_NR512 / 2;  /* a panel of doubles: RP_NR of the _d body */
    if (kernel == 2 && fm_rows_product_kernel_d() == 2 && n_in > 0 && cols > 0)
        return n_in * ((cols + nr - 1) / nr * nr);
#endif
    (void) kernel, (void) n_in, (void) cols;
    return 0;
}

void fm_rows_pack_d(int kernel, double *packed, const double *W, ptrdiff_t ldw, ptrdiff_t n_in,
                    ptrdiff_t cols)
{
#if defined(FM_RP_X86)
    if (fm_rows_packed_size_d(kernel, n_in, cols) > 0)
        rp_pack512_d(packed, W, ldw, n_in, cols);
#else
    (void) kernel, (void) packed, (void) W, (void) ldw, (void) n_in, (void) cols;
#endif
}

void fm_rows_product_packed_d(int kernel, double *out, ptrdiff_t ldo, const double *a,
                              ptrdiff_t lda, const double *packed, ptrdiff_t rows,
                              ptrdiff_t n_in, ptrdiff_t cols)
{
#if defined(FM_RP_X86)
    if (fm_rows_packed_size_d(kernel, n_in, cols) > 0)
        rp_product512_packed_d(out, ldo, a, lda, packed, rows, n_in, cols);
#else
    (void) kernel, (void) out, (void) ldo, (void) a, (void) lda, (void) packed, (void) rows,
        (void) n_in, (void) cols;
#endif
}

#elif RP_PART == 1  /* REAL: rp_pack, compiled once per dtype (above) */

/* packed[k][c] = B[k0 + k, j0 + c] for k < kc, c < width (zeros for c >= width), a panel of
 * nr columns (16, or 32 for the AVX-512 kernel), where B is W (n_in x cols, ldw apart:
 * `transposed` 0) or W^T for a W of cols x n_in (`transposed` 1: the panel's columns of B are
 * rows of W, transposed 8 x 8 at a time). */
FM_RP_TARGET FM_INLINE void SFX(rp_pack)(REAL *packed, const REAL *W, ptrdiff_t ldw,
                                         ptrdiff_t j0, ptrdiff_t width, ptrdiff_t k0,
                                         ptrdiff_t kc, const int transposed, const int nr)
{
    if (!transposed && width == nr) {
        const REAL *w = W + k0 * ldw + j0;
        for (ptrdiff_t k = 0; k < kc; k++)
            for (int v = 0; v < nr; v += RP_T)
                W256(store)(packed + k * nr + v, W256(loadu)(w + k * ldw + v));
    } else if (!transposed) {
        const REAL *w = W + k0 * ldw + j0;
        for (ptrdiff_t k = 0; k < kc; k++) {
            REAL *row = packed + k * nr;
            memset(row, 0, (size_t) nr * sizeof(REAL));
            memcpy(row, w + k * ldw, (size_t) width * sizeof(REAL));
        }
    } else {
        const REAL *w = W + j0 * ldw + k0;  /* row c of W: w + c * ldw, from term k0 */
        ptrdiff_t k = 0;
        if (width == nr) {
            /* a register's worth (RP_T) of the panel's rows of W at a time, each over all the
             * block's terms: its rows' lines (ldw apart: 4 KB for a 1024-unit float32 layer,
             * one set of L1) are read again for the next RP_T terms while they are still in
             * L1; all 32 rows at each 8 terms, as before, overflowed the set's 8 ways. Zen 4
             * host, the C harness in turns: the backward product by `wide`'s W2^T 0.943-0.956
             * of the time; the same packed panel. */
            const ptrdiff_t kt = kc / RP_T * RP_T;
            for (int part = 0; part < nr / RP_T; part++) {
                for (ptrdiff_t kk = 0; kk < kt; kk += RP_T) {
                    VEC256 r[RP_T];
                    for (int c = 0; c < RP_T; c++)
                        r[c] = W256(loadu)(w + (part * RP_T + c) * ldw + kk);
                    RP_TRANSPOSE(r);
                    for (int t = 0; t < RP_T; t++)
                        W256(store)(packed + (kk + t) * nr + part * RP_T, r[t]);
                }
            }
            k = kt;
        }
        for (; k < kc; k++)
            for (ptrdiff_t c = 0; c < nr; c++)
                packed[k * nr + c] = c < width ? w[c * ldw + k] : (REAL) 0;
    }
}

#else  /* REAL, RP_PART 2: the AVX-512 kernel, compiled once per dtype (above) */

FM_RP_TARGET512 FM_INLINE void SFX(rp_tile512)(REAL *out, ptrdiff_t ldo, const REAL *a,
                                               ptrdiff_t lda, const REAL *packed, ptrdiff_t kc,
                                               int first, VMASK mask_0, VMASK mask_1,
                                               const int mr, const int masked, const int a_trans,
                                               const int nv, const ptrdiff_t *picked,
                                               const int indexed, const int *w_off)
{
    VEC acc[FM_RP_MR512][2];
    /* row r of a: a + r lda, or a + picked[r] lda (rp_product512's `picked`); a_trans: term
     * k's values at a + k lda, or a + picked[k] lda */
    const REAL *a_row[FM_RP_MR512];
    for (int r = 0; r < mr && !a_trans; r++)
        a_row[r] = a + (picked ? picked[r] : r) * lda;
    for (int r = 0; r < mr; r++) {
        for (int v = 0; v < nv; v++) {
            if (first)
                acc[r][v] = V(setzero)();
            else if (masked)
                acc[r][v] = V(maskz_loadu)(v ? mask_1 : mask_0, out + r * ldo + RP_LANES * v);
            else
                acc[r][v] = V(loadu)(out + r * ldo + RP_LANES * v);
        }
    }
    /* `indexed`: the tile's rows hold its live terms only (rp_live_rows512, rp_live_strip512),
     * term k's row of the panel at packed + w_off[k] (offsets, not pointers: a group's panels
     * share them) */
    for (ptrdiff_t k = 0; k < kc; k++) {
        VEC w[2];
        const REAL *w_k = packed + (indexed ? (ptrdiff_t) w_off[k] : k * RP_NR);
        for (int v = 0; v < nv; v++)
            w[v] = V(load)(w_k + RP_LANES * v);
        for (int r = 0; r < mr; r++) {
            const VEC a_rk = V(set1)(!a_trans ? a_row[r][k]
                                     : picked ? a[picked[k] * lda + r] : a[k * lda + r]);
            for (int v = 0; v < nv; v++)
                acc[r][v] = V(fmadd)(a_rk, w[v], acc[r][v]);
        }
    }
    for (int r = 0; r < mr; r++) {
        for (int v = 0; v < nv; v++) {
            if (masked)
                V(mask_storeu)(out + r * ldo + RP_LANES * v, v ? mask_1 : mask_0, acc[r][v]);
            else
                V(storeu)(out + r * ldo + RP_LANES * v, acc[r][v]);
        }
    }
}

FM_RP_TARGET512 FM_INLINE void SFX(rp_rows512)(REAL *out, ptrdiff_t ldo, const REAL *a,
                                               ptrdiff_t lda, const REAL *packed, ptrdiff_t rows,
                                               ptrdiff_t kc, int first, VMASK mask_0,
                                               VMASK mask_1, const int masked, const int a_trans,
                                               const int nv, const REAL *strips,
                                               ptrdiff_t strip_size, const ptrdiff_t *picked,
                                               const int indexed, const int *w_off)
{
    ptrdiff_t r0 = 0;
    /* a tile's rows of A: with strips (a^T packed, rp_strips512) its own strip, else in place */
#define FM_RP_A(r0) \
    (strips ? strips + (r0) / FM_RP_MR512 * strip_size : a_trans ? a + (r0) \
     : picked ? a : a + (r0) * lda)
#define FM_RP_PICKED(r0) (!picked || strips ? NULL : a_trans ? picked : picked + (r0))
#define FM_RP_LDA (strips ? (ptrdiff_t) FM_RP_MR512 : lda)
    for (; rows - r0 >= FM_RP_MR512; r0 += FM_RP_MR512)
        SFX(rp_tile512)(out + r0 * ldo, ldo, FM_RP_A(r0), FM_RP_LDA, packed, kc, first, mask_0,
                   mask_1, FM_RP_MR512, masked, a_trans, nv, FM_RP_PICKED(r0), indexed, w_off);
    switch (rows - r0) {
#define FM_RP_TAIL(n) \
    case n: \
        SFX(rp_tile512)(out + r0 * ldo, ldo, FM_RP_A(r0), FM_RP_LDA, packed, kc, first, mask_0, \
                   mask_1, n, masked, a_trans, nv, FM_RP_PICKED(r0), indexed, w_off); \
        break;
    FM_RP_TAIL(1) FM_RP_TAIL(2) FM_RP_TAIL(3) FM_RP_TAIL(4) FM_RP_TAIL(5) FM_RP_TAIL(6)
    FM_RP_TAIL(7) FM_RP_TAIL(8) FM_RP_TAIL(9) FM_RP_TAIL(10) FM_RP_TAIL(11)
#undef FM_RP_TAIL
#undef FM_RP_PICKED
#undef FM_RP_LDA
#undef FM_RP_A
    default:
        break;
    }
}

/* One tile of at most FM_RP_MR512 rows over one panel of `width` columns (masked where it is
 * narrower than RP_NR, one register a row where it is at most RP_LANES). */
FM_RP_TARGET512 FM_INLINE void SFX(rp_panel512)(REAL *out, ptrdiff_t ldo, const REAL *a,
                                                ptrdiff_t lda, const REAL *p, ptrdiff_t rows,
                                                ptrdiff_t kc, int first, ptrdiff_t width,
                                                const int a_trans, const REAL *strip,
                                                ptrdiff_t strip_size, const ptrdiff_t *picked,
                                                const int indexed, const int *w_off)
{
    if (width == RP_NR) {
        SFX(rp_rows512)(out, ldo, a, lda, p, rows, kc, first, RP_ALL, RP_ALL, 0, a_trans, 2, strip,
                   strip_size, picked, indexed, w_off);
    } else if (width <= RP_LANES) {
        const VMASK mask = (VMASK) ((1u << width) - 1u);
        SFX(rp_rows512)(out, ldo, a, lda, p, rows, kc, first, mask, 0, 1, a_trans, 1, strip,
                   strip_size, picked, indexed, w_off);
    } else {
        const VMASK mask = (VMASK) ((1u << (width - RP_LANES)) - 1u);
        SFX(rp_rows512)(out, ldo, a, lda, p, rows, kc, first, RP_ALL, mask, 1, a_trans, 2, strip,
                   strip_size, picked, indexed, w_off);
    }
}

/* n (at most FM_RP_MR512) consecutive values copied by masked loads and stores of at most
 * RP_LANES: one of 12 floats, or 8 and 4 doubles (n a constant: the masks are too). */
FM_RP_TARGET512 FM_INLINE void SFX(rp_run512)(REAL *dst, const REAL *src, int n)
{
    for (int c = 0; c < n; c += RP_LANES) {
        const VMASK m = (VMASK) (n - c >= RP_LANES ? RP_ALL : (1u << (n - c)) - 1u);
        V(mask_storeu)(dst + c, m, V(maskz_loadu)(m, src + c));
    }
}

/* A weight gradient's a^T, a block of kc terms (the batch's rows) packed into strips: tile t's
 * strip (strip_size floats apart) holds, term after term, the FM_RP_MR512 values of a^T its
 * rows read (strip[k FM_RP_MR512 + i] = a[k lda + FM_RP_MR512 t + i]). In place, each term
 * of a tile is a line of its own, lda floats apart (4 KB for a 1024-unit layer: every line in
 * one set of L1), read again by each panel. */
FM_RP_TARGET512 FM_INLINE void SFX(rp_strips512)(REAL *strips, ptrdiff_t strip_size, const REAL *a,
                                                 ptrdiff_t lda, ptrdiff_t rows, ptrdiff_t kc,
                                                 const ptrdiff_t *picked)
{
    /* term by term, so that a's rows are read in order (each a run of `rows` values); term k
     * is row picked[k] of a where picked is given */
    for (ptrdiff_t k = 0; k < kc; k++) {
        REAL *strip = strips + k * FM_RP_MR512;
        const REAL *row = a + (picked ? picked[k] : k) * lda;
        ptrdiff_t r0 = 0;
        for (; rows - r0 >= FM_RP_MR512; r0 += FM_RP_MR512, strip += strip_size)
            SFX(rp_run512)(strip, row + r0, FM_RP_MR512);
        if (rows > r0)
            SFX(rp_run512)(strip, row + r0, (int) (rows - r0));
    }
}

/* W's rows k0..k0+kc of columns g0..g0+g_cols packed panel after panel (each kc x 32, the last
 * one's missing columns zeros), read row by row: each row of W a run of g_cols floats, where
 * rp_pack, one panel at a time, reads 128 bytes a row (see rp_product512 for why). */
FM_RP_TARGET512 FM_INLINE void SFX(rp_pack_group)(REAL *panels, const REAL *W, ptrdiff_t ldw,
                                                  ptrdiff_t g0, ptrdiff_t g_cols, ptrdiff_t k0,
                                                  ptrdiff_t kc)
{
    const ptrdiff_t whole = g_cols / RP_NR, rest = g_cols % RP_NR;
    for (ptrdiff_t k = 0; k < kc; k++) {
        const REAL *w = W + (k0 + k) * ldw + g0;
        REAL *p = panels + k * RP_NR;
        for (ptrdiff_t j = 0; j < whole; j++, w += RP_NR, p += kc * RP_NR) {
            V(store)(p, V(loadu)(w));
            V(store)(p + RP_LANES, V(loadu)(w + RP_LANES));
        }
        if (rest) {
            const VMASK m0 = (VMASK) (rest >= RP_LANES ? RP_ALL : (1u << rest) - 1u);
            const VMASK m1 = (VMASK) (rest > RP_LANES ? (1u << (rest - RP_LANES)) - 1u : 0);
            V(store)(p, V(maskz_loadu)(m0, w));
            V(store)(p + RP_LANES, V(maskz_loadu)(m1, w + RP_LANES));
        }
    }
}

/* Rows of W (n of them, ldw floats apart, `cols` floats each) fetched into L2 ahead of their
 * packing (rp_product512 says why). */
FM_RP_TARGET512 FM_INLINE void SFX(rp_fetch_rows512)(const REAL *W, ptrdiff_t ldw, ptrdiff_t n,
                                                     ptrdiff_t cols)
{
    for (ptrdiff_t k = 0; k < n; k++)
        for (ptrdiff_t c = 0; c < cols; c += RP_LANES)
            _mm_prefetch((const char *) (W + k * ldw + c), _MM_HINT_T1);
}

/* Whether a tile's FM_RP_MR512 rows of a, lda floats apart, read in place, crowd into few sets
 * of L1: an x86 L1D has 64 sets of lines (4 KB a way: 32 KB 8-way, 48 KB 12-way), so rows 4 KB
 * apart (a 1024-unit layer's activations or deltas) put all twelve lines of a term in one set,
 * beside the lines of W's panel and of out, and evict one another at every term; 2 KB apart,
 * six to a set. Crowded: more than four of the twelve in one set (mnist's 256-unit rows, 1 KB
 * apart, put three in each of four sets). */
static int SFX(rp_crowded512)(ptrdiff_t lda)
{
    int in_set[64] = {0};
    for (ptrdiff_t r = 0; r < FM_RP_MR512; r++)
        if (++in_set[(r * lda * (ptrdiff_t) sizeof(REAL) / 64) % 64] > 4)
            return 1;
    return 0;
}

/* Floats between the rows of rp_product512's copy of a block of kc terms: the block rounded up
 * to whole lines, an odd number of them, so that the twelve rows' lines of a term fall in
 * twelve different sets. */
static ptrdiff_t SFX(rp_spread512)(ptrdiff_t kc)
{
    return ((kc + RP_LANES - 1) / RP_LANES | 1) * RP_LANES;
}

/* A tile's live terms: of a block of kc terms, those at which any of its mr rows of a is not
 * zero (a NaN is live; -0 is zero); row r at a + r lda, or a + pick[r] lda (rows of X picked
 * where they lie). Their mask, a run of RP_LANES terms at a time, goes to live[]; their number
 * is returned. */
FM_RP_TARGET512 FM_INLINE ptrdiff_t SFX(rp_live_terms512)(VMASK *live, const REAL *a,
                                                          ptrdiff_t lda, const ptrdiff_t *pick,
                                                          ptrdiff_t mr, ptrdiff_t kc)
{
    ptrdiff_t n = 0;
    for (ptrdiff_t c = 0; c < kc; c += RP_LANES) {
        const VMASK in = (VMASK) (kc - c >= RP_LANES ? RP_ALL : (1u << (kc - c)) - 1u);
        VMASK m = 0;
        for (ptrdiff_t r = 0; r < mr; r++)
            m |= VCMP(mask_cmp)(in, V(maskz_loadu)(in, a + (pick ? pick[r] : r) * lda + c),
                                V(setzero)(), _CMP_NEQ_UQ);
        live[c / RP_LANES] = m;
        n += __builtin_popcount((unsigned) m);
    }
    return n;
}

/* The tile's mr rows of a (as rp_live_terms512 reads them) with their live terms only (its
 * masks), each row packed to the left in dst (ld_dst floats apart, at least kc rounded up to
 * RP_LANES: each run's store is a whole register), and w_off[i] the offset in a panel (RP_NR a
 * term) of the i-th live term's row. */
FM_RP_TARGET512 FM_INLINE void SFX(rp_live_rows512)(REAL *dst, ptrdiff_t ld_dst, int *w_off,
                                                    const VMASK *live, const REAL *a,
                                                    ptrdiff_t lda, const ptrdiff_t *pick,
                                                    ptrdiff_t mr, ptrdiff_t kc)
{
    for (ptrdiff_t r = 0; r < mr; r++) {
        REAL *d = dst + r * ld_dst;
        const REAL *row = a + (pick ? pick[r] : r) * lda;
        for (ptrdiff_t c = 0; c < kc; c += RP_LANES) {
            const VMASK m = live[c / RP_LANES];
            V(storeu)(d, V(maskz_compress)(m, V(maskz_loadu)(m, row + c)));
            d += __builtin_popcount((unsigned) m);
        }
    }
    for (ptrdiff_t c = 0; c < kc; c += RP_LANES)
        for (unsigned m = live[c / RP_LANES]; m; m &= m - 1)
            *w_off++ = (int) ((c + __builtin_ctz(m)) * RP_NR);
}

/* A tile's terms to skip, where enough are: the live terms' count, with its rows (live terms
 * only) in dst and their panel offsets in w_off (rp_live_rows512), or -1 where fewer than
 * 1/FM_RP_FEW_ZEROS of its kc terms are zero in all its mr rows (it then takes all of them). */
FM_RP_TARGET512 FM_INLINE ptrdiff_t SFX(rp_live_tile512)(REAL *dst, int *w_off, const REAL *a,
                                                         ptrdiff_t lda, const ptrdiff_t *pick,
                                                         ptrdiff_t mr, ptrdiff_t kc)
{
    VMASK live[FM_RP_KC512 / RP_LANES];
    const ptrdiff_t n = SFX(rp_live_terms512)(live, a, lda, pick, mr, kc);
    if (kc - n < kc / FM_RP_FEW_ZEROS)
        return -1;
    SFX(rp_live_rows512)(dst, RP_LIVE_LD, w_off, live, a, lda, pick, mr, kc);
    return n;
}

/* A weight gradient's tile strip (rp_strips512: kc terms, FM_RP_MR512 values apart, mr of them
 * a term): the terms at which all its mr values are zero, a bit each in dead[]; their number is
 * returned. */
FM_RP_TARGET512 FM_INLINE ptrdiff_t SFX(rp_dead_terms512)(unsigned long long *dead,
                                                          const REAL *strip, int mr,
                                                          ptrdiff_t kc)
{
    const VMASK m0 = (VMASK) (mr >= RP_LANES ? RP_ALL : (1u << mr) - 1u);
    const VMASK m1 = (VMASK) (mr > RP_LANES ? (1u << (mr - RP_LANES)) - 1u : 0);
    ptrdiff_t n_dead = 0;
    for (ptrdiff_t k = 0; k < kc; k += 64)
        dead[k / 64] = 0;
    for (ptrdiff_t k = 0; k < kc; k++) {
        const REAL *v = strip + k * FM_RP_MR512;
        VMASK any = VCMP(mask_cmp)(m0, V(maskz_loadu)(m0, v), V(setzero)(), _CMP_NEQ_UQ);
        if (m1)
            any |= VCMP(mask_cmp)(m1, V(maskz_loadu)(m1, v + RP_LANES), V(setzero)(),
                                  _CMP_NEQ_UQ);
        if (!any) {
            dead[k / 64] |= 1ull << (k % 64);
            n_dead++;
        }
    }
    return n_dead;
}

/* The strip with its dead terms (rp_dead_terms512) taken out, in place: the live terms' count,
 * and w_off[i] the offset in a panel (RP_NR a term) of the i-th live term's row. */
FM_RP_TARGET512 FM_INLINE ptrdiff_t SFX(rp_live_strip512)(REAL *strip, int *w_off,
                                                          const unsigned long long *dead,
                                                          ptrdiff_t kc)
{
    ptrdiff_t n = 0;
    for (ptrdiff_t k = 0; k < kc; k++) {
        if (dead[k / 64] >> (k % 64) & 1)
            continue;
        if (n < k)
            SFX(rp_run512)(strip + n * FM_RP_MR512, strip + k * FM_RP_MR512, FM_RP_MR512);
        w_off[n++] = (int) (k * RP_NR);
    }
    return n;
}

/* Whether rows k of W (n of them, ldw apart, `cols` values each) are all finite. */
FM_RP_TARGET512 FM_INLINE int SFX(rp_rows_finite512)(const REAL *W, ptrdiff_t ldw, ptrdiff_t n,
                                                     ptrdiff_t cols)
{
    VEC sum = V(setzero)();
    for (ptrdiff_t k = 0; k < n; k++)
        for (ptrdiff_t c = 0; c < cols; c += RP_LANES) {
            const VMASK in = (VMASK) (cols - c >= RP_LANES ? RP_ALL : (1u << (cols - c)) - 1u);
            const VEC x = V(maskz_loadu)(in, W + k * ldw + c);
            sum = V(add)(sum, V(sub)(x, x));
        }
    return VCMP(cmp)(sum, sum, _CMP_ORD_Q) == RP_ALL;
}

/* Whether the n values of a packed panel (n a multiple of RP_LANES) are all finite: x - x is
 * +0 for each finite x and NaN for an infinity or a NaN. */
FM_RP_TARGET512 FM_INLINE int SFX(rp_finite512)(const REAL *p, ptrdiff_t n)
{
    VEC sum = V(setzero)();
    for (ptrdiff_t i = 0; i < n; i += RP_LANES) {
        const VEC x = V(load)(p + i);
        sum = V(add)(sum, V(sub)(x, x));
    }
    return VCMP(cmp)(sum, sum, _CMP_ORD_Q) == RP_ALL;
}

/* Subnormal weights (Design, "Subnormal weights"): a panel's subnormal values found as it is
 * packed, replaced by zeros of their sign, and the chains they would have changed computed
 * again exactly. Float32 alone (float64's subnormal range is far below its weights'); the
 * double kernel's versions find none. */
#if RP_LANES == 16
/* Whether products look for them at all: a processor whose multiplies take an assist on a
 * subnormal operand (fm_subnormals_slow), with neither flush-to-zero nor denormals-are-zero
 * set (under either, the multiply-adds round as rp_fma_f8 does not, and take no assist). Then
 * they look only while some are about (the look costs a forward product of few rows ~5 %): a
 * product that does not look runs with the processor's sticky denormal-operand flag cleared
 * and reads it after; where it was raised (an operand of its multiply-adds was subnormal), the
 * next RP_LOOKS products of any thread look, and a look that finds some renews that count.
 * rp_watch_begin returns 1 (look), 0 (watch the flag: rp_watch_end) or -1 (neither). */
enum { RP_LOOKS = 64 };

static int rp_watch_begin(unsigned int *csr)
{
    if (!fm_subnormals_slow())
        return -1;
    *csr = _mm_getcsr();
    if (*csr & (_MM_FLUSH_ZERO_ON | _MM_DENORMALS_ZERO_ON))
        return -1;
    const int left = __atomic_load_n(&rp_looks, __ATOMIC_RELAXED);
    if (left > 0) {
        __atomic_store_n(&rp_looks, left - 1, __ATOMIC_RELAXED);
        return 1;
    }
    _mm_setcsr(*csr & ~_MM_EXCEPT_DENORM);
    return 0;
}

/* The product's end: `found` (a look found some), or the flag raised, renews the looks; the
 * flag is put back as it was before, or raised. */
static void rp_watch_end(int way, unsigned int csr, int found)
{
    if (way == 0) {
        const unsigned int now = _mm_getcsr();
        found = (now & _MM_EXCEPT_DENORM) != 0;
        _mm_setcsr(now | (csr & _MM_EXCEPT_DENORM));
    }
    if (way >= 0 && found)
        __atomic_store_n(&rp_looks, RP_LOOKS, __ATOMIC_RELAXED);
}

/* A packed panel's terms (kc of them, RP_NR floats each) that hold subnormal values: each
 * one's index in sub_k[] and its lanes in sub_m[]; their count is returned. Read as integers
 * (|x| - 1 below 2^23 - 1, unsigned, is 0 < |x| < 2^-126): a float comparison would itself
 * take the assist. */
FM_RP_TARGET512 static ptrdiff_t rp_subnormals512_f(const float *p, ptrdiff_t kc, int *sub_k,
                                                    unsigned *sub_m)
{
    const __m512i magnitude = _mm512_set1_epi32(0x7fffffff), one = _mm512_set1_epi32(1);
    const __m512i below = _mm512_set1_epi32(0x007fffff);
    ptrdiff_t n = 0;
    for (ptrdiff_t k = 0; k < kc; k++) {
        const __m512i x0 = _mm512_load_si512(p + k * RP_NR);
        const __m512i x1 = _mm512_load_si512(p + k * RP_NR + RP_LANES);
        const unsigned m0 = _mm512_cmplt_epu32_mask(
            _mm512_sub_epi32(_mm512_and_si512(x0, magnitude), one), below);
        const unsigned m1 = _mm512_cmplt_epu32_mask(
            _mm512_sub_epi32(_mm512_and_si512(x1, magnitude), one), below);
        if (m0 | m1) {
            sub_k[n] = (int) k;
            sub_m[n++] = m0 | m1 << RP_LANES;
        }
    }
    return n;
}

/* Those values (sub_k, sub_m) of a packed panel replaced by zeros of their sign. */
FM_RP_TARGET512 static void rp_zero_lanes512_f(float *p, const int *sub_k, const unsigned *sub_m,
                                               ptrdiff_t n_sub)
{
    const __m512i sign = _mm512_set1_epi32((int) 0x80000000u);
    for (ptrdiff_t i = 0; i < n_sub; i++) {
        float *row = p + sub_k[i] * RP_NR;
        const __m512i x0 = _mm512_load_si512(row), x1 = _mm512_load_si512(row + RP_LANES);
        _mm512_mask_store_epi32(row, (__mmask16) sub_m[i], _mm512_and_si512(x0, sign));
        _mm512_mask_store_epi32(row + RP_LANES, (__mmask16) (sub_m[i] >> RP_LANES),
                                _mm512_and_si512(x1, sign));
    }
}

/* The lanes of those values that meet a value of a not +-0 in the tile's mr rows (row r at
 * a + r lda, or a + pick[r] lda; a NaN counts): only there does a w differ from the +-0 that
 * the panel's zero of w's sign gives, a +-0 of the same sign. */
static unsigned rp_subnormal_lanes512_f(const float *a, ptrdiff_t lda, const ptrdiff_t *pick,
                                        ptrdiff_t mr, const int *sub_k, const unsigned *sub_m,
                                        ptrdiff_t n_sub)
{
    unsigned lanes = 0;
    for (ptrdiff_t i = 0; i < n_sub; i++) {
        if ((lanes | sub_m[i]) == lanes)
            continue;
        for (ptrdiff_t r = 0; r < mr; r++) {
            unsigned bits;
            memcpy(&bits, a + (pick ? pick[r] : r) * lda + sub_k[i], sizeof bits);
            if (bits & 0x7fffffffu) {
                lanes |= sub_m[i];
                break;
            }
        }
    }
    return lanes;
}

/* One step of the register kernel's chain, acc = fma(a, w, acc) on floats, for eight chains
 * at once in double without an assist (the floats come in as doubles): the product is exact in
 * double (48 bits, above 2^-298), so a*w + acc rounded toward zero, up and down (AVX-512's
 * embedded rounding, no flag raised) rounds the exact sum; where up and down differ (inexact),
 * the one toward zero with its last bit set is the sum rounded to odd (of the two doubles
 * around it, the one whose last bit is 1), and that rounded to float. Rounding to odd at 53
 * bits and then to nearest at p <= 24 rounds the exact sum once, as the fused multiply-add does
 * (53 >= p + 2: Boldo and Melquiond, "Emulation of FMA and correctly rounded sums: proved
 * algorithms using rounding to odd", IEEE Trans. Computers 57(4), 2008), in float's subnormal
 * range too (p < 24 there). Zeros: an exact zero sum rounds toward zero as to nearest (+0 but
 * for -0 + -0), and a tiny sum is never below double's least value (a multiple of 2^-298). An
 * infinity stays one (up and down agree), and a NaN compares unordered, so no bit is set in it
 * (a NaN operand's payload passes as through the fused multiply-add; where two meet, which one
 * is the hardware's). Conversions between float and double take no assist, subnormal floats
 * included (2-core Xeon VM, a C loop: 3.0 ticks a vector of eight either way). */
FM_RP_TARGET512 static inline __m512d rp_fma_f8(__m512d a, __m512d w, __m512d acc)
{
    const __m512d toward_zero = _mm512_fmadd_round_pd(
        a, w, acc, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m512d up = _mm512_fmadd_round_pd(a, w, acc,
                                             _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC);
    const __m512d down = _mm512_fmadd_round_pd(a, w, acc,
                                               _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    const __mmask8 inexact = _mm512_cmp_pd_mask(up, down, _CMP_NEQ_OQ);
    const __m512i bits = _mm512_castpd_si512(toward_zero);
    const __m512d odd = _mm512_castsi512_pd(
        _mm512_mask_or_epi64(bits, inexact, bits, _mm512_set1_epi64(1)));
    return _mm512_cvt_roundps_pd(_mm512_cvtpd_ps(odd), _MM_FROUND_NO_EXC);
}

/* For the tile's mr rows (at most FM_RP_MR512) and the panel's lanes c in `lanes`: out[r, c]
 * the chain over the n terms the tile ran (term i's value of a at a_row[r][i], row r at
 * a + r lda or a + pick[r] lda; its row of the panel w_off[i] / RP_NR, or i where w_off is
 * NULL) from start[r][c] (+0 where start is NULL), each step rp_fma_f8 on the tile's rows in
 * the lanes of one or two vectors (rows past mr repeat row 0, their chains never stored),
 * with the panel's values as they were: term k's lane c at w[k ldk + c ldc]. In scalar code,
 * a TwoSum and its rounding to odd an element, this took 11 % of the CPU of `tiny-batch`'s
 * epochs with rmsprop's dead units and 17 % of those on MNIST's pixels 255 times smaller. */
FM_RP_TARGET512 static void rp_exact_lanes512_f(float *out, ptrdiff_t ldo, const float *a,
                                                ptrdiff_t lda, const ptrdiff_t *pick,
                                                ptrdiff_t mr, ptrdiff_t n, const int *w_off,
                                                const float *w, ptrdiff_t ldk, ptrdiff_t ldc,
                                                unsigned lanes, const float (*start)[RP_NR])
{
    enum { HALF = 8 };  /* rows a vector of doubles */
    __m512d acc[RP_NR][2];
    long long at[2 * HALF];  /* each row's offset from row 0, in floats */
    int lane[RP_NR], n_lanes = 0;
    const int halves = mr > HALF ? 2 : 1;
    for (unsigned m = lanes; m; m &= m - 1)
        lane[n_lanes++] = __builtin_ctz(m);
    for (int r = 0; r < 2 * HALF; r++)
        at[r] = r < mr ? (long long) ((pick ? pick[r] - pick[0] : r) * lda) : 0;
    for (int l = 0; l < n_lanes; l++)
        for (int h = 0; h < halves; h++) {
            double from[HALF];
            for (int r = 0; r < HALF; r++)
                from[r] = start && h * HALF + r < mr ? (double) start[h * HALF + r][lane[l]]
                                                     : 0.0;
            acc[l][h] = _mm512_loadu_pd(from);
        }
    const __m512i at0 = _mm512_loadu_si512(at), at1 = _mm512_loadu_si512(at + HALF);
    const float *row0 = a + (pick ? pick[0] : 0) * lda;
    for (ptrdiff_t i = 0; i < n; i++) {
        const ptrdiff_t k = w_off ? w_off[i] / RP_NR : i;
        const __m512d a0 = _mm512_cvt_roundps_pd(_mm512_i64gather_ps(at0, row0 + i, 4),
                                                 _MM_FROUND_NO_EXC);
        const __m512d a1 = halves > 1
            ? _mm512_cvt_roundps_pd(_mm512_i64gather_ps(at1, row0 + i, 4), _MM_FROUND_NO_EXC)
            : a0;
        for (int l = 0; l < n_lanes; l++) {
            const __m512d w_k = _mm512_set1_pd((double) w[k * ldk + lane[l] * ldc]);
            acc[l][0] = rp_fma_f8(a0, w_k, acc[l][0]);
            if (halves > 1)
                acc[l][1] = rp_fma_f8(a1, w_k, acc[l][1]);
        }
    }
    for (int l = 0; l < n_lanes; l++)
        for (int h = 0; h < halves; h++) {
            double sums[HALF];
            _mm512_storeu_pd(sums, acc[l][h]);
            for (int r = 0; r < HALF && h * HALF + r < mr; r++)
                out[(h * HALF + r) * ldo + lane[l]] = (float) sums[r];
        }
}

/* rp_panel512 of a forward product or one by W^T over a panel whose subnormal values
 * (rp_subnormals512: sub_k, sub_m, n_sub) are zeros of their sign, tile by tile: a tile
 * whose rows meet some (rp_subnormal_lanes512, on its rows of a in place: a_in, lda_in,
 * pick_in) has those lanes computed again (rp_exact_lanes512) from the panel's values as they
 * were (w, ldk, ldc), from its sums before it (where it is not `first`). Either way each
 * out[r, j] is the chain it was. `indexed`: one tile, over its live terms. */
FM_RP_TARGET512 static void rp_panel_careful512_f(float *out, ptrdiff_t ldo, const float *a,
                                                  ptrdiff_t lda, const float *p, ptrdiff_t rows,
                                                  ptrdiff_t kc, int first, ptrdiff_t width,
                                                  const ptrdiff_t *picked, const int indexed,
                                                  const int *w_off, const float *a_in,
                                                  ptrdiff_t lda_in, const ptrdiff_t *pick_in,
                                                  const int *sub_k, const unsigned *sub_m,
                                                  ptrdiff_t n_sub, const float *w, ptrdiff_t ldk,
                                                  ptrdiff_t ldc)
{
    for (ptrdiff_t r0 = 0; r0 < rows; r0 += FM_RP_MR512) {
        const ptrdiff_t mr = rows - r0 < FM_RP_MR512 ? rows - r0 : FM_RP_MR512;
        float *o = out + r0 * ldo;
        const float *a_t = picked ? a : a + r0 * lda;
        const ptrdiff_t *pick_t = picked ? picked + r0 : NULL;
        const unsigned lanes = rp_subnormal_lanes512_f(
            pick_in ? a_in : a_in + r0 * lda_in, lda_in, pick_in ? pick_in + r0 : NULL, mr,
            sub_k, sub_m, n_sub);
        float start[FM_RP_MR512][RP_NR];
        for (unsigned m = first ? 0 : lanes; m; m &= m - 1)
            for (ptrdiff_t r = 0; r < mr; r++)
                start[r][__builtin_ctz(m)] = o[r * ldo + __builtin_ctz(m)];
        rp_panel512_f(o, ldo, a_t, lda, p, mr, kc, first, width, 0, NULL, 0, pick_t, indexed,
                      w_off);
        if (lanes)
            rp_exact_lanes512_f(o, ldo, a_t, lda, pick_t, mr, kc, indexed ? w_off : NULL, w,
                                ldk, ldc, lanes, first ? NULL : (const float (*)[RP_NR]) start);
    }
}
#else

static ptrdiff_t SFX(rp_subnormals512)(const REAL *p, ptrdiff_t kc, int *sub_k, unsigned *sub_m)
{
    (void) p, (void) kc, (void) sub_k, (void) sub_m;
    return 0;
}

static void SFX(rp_zero_lanes512)(REAL *p, const int *sub_k, const unsigned *sub_m,
                                  ptrdiff_t n_sub)
{
    (void) p, (void) sub_k, (void) sub_m, (void) n_sub;
}

static void SFX(rp_panel_careful512)(REAL *out, ptrdiff_t ldo, const REAL *a, ptrdiff_t lda,
                                     const REAL *p, ptrdiff_t rows, ptrdiff_t kc, int first,
                                     ptrdiff_t width, const ptrdiff_t *picked, const int indexed,
                                     const int *w_off, const REAL *a_in, ptrdiff_t lda_in,
                                     const ptrdiff_t *pick_in, const int *sub_k,
                                     const unsigned *sub_m, ptrdiff_t n_sub, const REAL *w,
                                     ptrdiff_t ldk, ptrdiff_t ldc)
{
    (void) out, (void) ldo, (void) a, (void) lda, (void) p, (void) rows, (void) kc, (void) first,
        (void) width, (void) picked, (void) indexed, (void) w_off, (void) a_in, (void) lda_in,
        (void) pick_in, (void) sub_k, (void) sub_m, (void) n_sub, (void) w, (void) ldk,
        (void) ldc;
}
#endif

/* rp_product's loops with the AVX-512 tiles and panels. Where a's rows crowd L1's sets
 * (rp_crowded512) and many panels read them, each block of terms of a is first copied into rows
 * an odd number of lines apart (rp_spread512): the tiles read the same values, no bit changes.
 * 2-core AMD EPYC VM (Zen 4: L1D 32 KB 8-way, L2 1 MB), one thread's CPU time, medians of 31
 * calls in turns with the build before it, W and a read from memory (a C harness linking
 * both): 256 x 1024 x 1024 (`wide`'s second layer) 0.83-0.85 of the time, 71-75 -> 82-85
 * GFLOP/s, its backward product by W2^T 0.80-0.89; products whose rows are not crowded
 * unchanged. The copy is a memcpy of the block (rows x 512 floats); with a read from
 * memory, as in that harness, the copied product still took 1.12-1.15x the time of one whose
 * rows lie 1040 floats apart (no copy needed). A copy of each tile's rows alone, just before
 * the tile runs over a group (the block's copy and the group's panels together fill the 1 MB
 * L2): 0.96-0.98 of the time in the harness, but `wide`'s epoch 1.012x (8 rounds): in an
 * epoch, a is the activations or deltas just written, in cache. A padded row stride in the
 * engine's buffers would need no copy at all; not done. */
FM_RP_TARGET512 FM_INLINE void SFX(rp_product512)(REAL *out, ptrdiff_t ldo, const REAL *a,
                                                  ptrdiff_t lda, const REAL *W, ptrdiff_t ldw,
                                                  ptrdiff_t rows, ptrdiff_t n_in, ptrdiff_t cols,
                                                  int accumulate, const int transposed,
                                                  const int a_trans, const REAL *prepacked,
                                                  const ptrdiff_t *picked)
{
    REAL packed[FM_RP_KC512 * RP_NR] __attribute__((aligned(64)));
    if (n_in == 0) {
        if (!accumulate)  /* out = 0 */
            for (ptrdiff_t r = 0; r < rows; r++)
                memset(out + r * ldo, 0, (size_t) cols * sizeof(REAL));
        return;
    }
    const ptrdiff_t block = a_trans ? FM_RP_KC_AT : FM_RP_KC512;
    const int fetch_ahead = rp_fetch_ahead();  /* the next group's rows (below) */
    /* Working memory, from the thread's scratch (csrc/scratch.c: nothing is allocated inside an
     * epoch), each part on lines of its own; where none can be had, every part is NULL and the
     * product reads a and packs W as it would without them. */
    /* a^T in strips where more than one panel reads it (else in place) */
    const ptrdiff_t strip_size = FM_RP_MR512 * (n_in < block ? n_in : block);
    const size_t strips_bytes = a_trans && (cols > RP_NR || picked)
        ? RP_LINES((size_t) ((rows + FM_RP_MR512 - 1) / FM_RP_MR512 * strip_size) * sizeof(REAL))
        : 0;
    /* a forward product's groups are half as wide: with the next group's rows of W fetched
     * into L2 meanwhile (below), a group of 8 panels (512 KB) and the next one's rows overflow
     * the 1 MB L2 of the Zen 4 host */
    const ptrdiff_t group = (a_trans ? FM_RP_GROUP : FM_RP_GROUP / 2) * RP_NR;
    const size_t panels_bytes = !prepacked && !transposed && cols > RP_NR
        && rows >= FM_RP_GROUP_ROWS ? RP_LINES((size_t) block * group * sizeof(REAL)) : 0;
    const ptrdiff_t cols_whole = (cols + RP_NR - 1) / RP_NR * RP_NR;
    /* a's rows copied a block of terms at a time where they crowd L1's sets (rp_crowded512) */
    const ptrdiff_t ld_copy = SFX(rp_spread512)(n_in < block ? n_in : block);
    const int crowded = !a_trans && cols > RP_NR && rows >= FM_RP_GROUP_ROWS
        && SFX(rp_crowded512)(lda);
    /* Products skip, tile by tile, the terms at which all the tile's rows are zero (Design,
     * "Dead terms"): by W^T (rp_product512_t), forward (a W: a's rows, live terms only, in
     * live_rows, found before the panels where they are packed one at a time, else in each
     * tile's first group), and a weight gradient (a^T W: each tile's strip without them, in
     * place). live_rows also holds the copy of a product by W^T's tiles that keep all their
     * terms, where their rows crowd L1's sets (a forward product whose rows crowd them keeps
     * its copy, below, and skips nothing). Then each tile's count of live terms (-1: all) and
     * its offsets into a panel. */
    const ptrdiff_t n_tiles = (rows + FM_RP_MR512 - 1) / FM_RP_MR512;
    const int live_t = transposed && !picked && cols > RP_NR && rows >= FM_RP_GROUP_ROWS
        && n_in >= FM_RP_LIVE_TERMS;
    const int live_fwd = picked && !a_trans && !crowded && cols > RP_NR
        && n_in >= FM_RP_LIVE_TERMS;
    const int live_at = picked && a_trans && cols > RP_NR && rows >= FM_RP_GROUP_ROWS
        && n_in >= FM_RP_TILE_TERMS;
    const ptrdiff_t ld_off = live_at ? FM_RP_KC_AT : RP_LIVE_LD;
    const size_t live_bytes = live_t || live_fwd
        ? RP_LINES((size_t) (rows * RP_LIVE_LD) * sizeof(REAL)) : 0;
    const size_t count_bytes = live_t || live_fwd || live_at
        ? RP_LINES((size_t) n_tiles * (sizeof(ptrdiff_t) + (size_t) ld_off * sizeof(int))) : 0;
    const size_t copy_bytes = crowded && !live_bytes
        ? RP_LINES((size_t) (rows * ld_copy) * sizeof(REAL)) : 0;
    /* Subnormal weights (rp_watch_begin): each panel's terms that hold some (a group's panels a
     * block's worth apart), and a prepacked W's panels that held some, copied clean */
    unsigned int csr = 0;
    const int watch = !a_trans && RP_LANES == 16 ? rp_watch_begin(&csr) : -1;
    const int careful = watch == 1;
    int found = 0;  /* (a panel with subnormal values) */
    const ptrdiff_t group_panels = group / RP_NR;
    const size_t subs_bytes = careful
        ? RP_LINES((size_t) (group_panels * block) * (sizeof(int) + sizeof(unsigned))) : 0;
    const size_t cleaned_bytes = careful && prepacked
        ? RP_LINES((size_t) block * group * sizeof(REAL)) : 0;
    const size_t scratch_bytes = strips_bytes + panels_bytes + live_bytes + count_bytes
        + copy_bytes + subs_bytes + cleaned_bytes;
    char *at = scratch_bytes ? (char *) fm_scratch(FM_SCRATCH_PRODUCT, scratch_bytes) : NULL;
    REAL *strips = (REAL *) rp_part(&at, strips_bytes);
    REAL *panels = (REAL *) rp_part(&at, panels_bytes);
    REAL *live_rows = (REAL *) rp_part(&at, live_bytes);
    ptrdiff_t *live_count = (ptrdiff_t *) rp_part(&at, count_bytes);
    REAL *copy = (REAL *) rp_part(&at, copy_bytes);
    int *sub_k = (int *) rp_part(&at, subs_bytes);
    unsigned *sub_m = sub_k ? (unsigned *) (sub_k + group_panels * block) : NULL;
    REAL *cleaned = (REAL *) rp_part(&at, cleaned_bytes);
    int *w_off = live_count ? (int *) (live_count + n_tiles) : NULL;
    /* a strip's dead terms are taken out only where a group's tiles run it (and its panels
     * are a group's copy): with strips and panels, tile by tile */
    const int strips_live = live_count && a_trans && strips && panels;
    /* Dense rows of X have no dead terms: once the tiles looked at that kept all their terms
     * are more than two past those that skipped some, a product of X's rows looks no further
     * (each look reads the tile's rows once more: 1-3 % of a dense product's time when every
     * tile looked). A product by W^T looks at every tile, as it did before. */
    ptrdiff_t tiles_kept = 0, tiles_skipped = 0;
#define RP_LOOK (transposed || tiles_kept <= tiles_skipped + 2)
#define RP_LOOKED(n) ((n) >= 0 ? tiles_skipped++ : tiles_kept++)
    for (ptrdiff_t k0 = 0; k0 < n_in; k0 += block) {
        const ptrdiff_t kc = n_in - k0 < block ? n_in - k0 : block;
        /* with `picked`, a's rows are picked[r] (terms picked[k0 + k] where a_trans) */
        const REAL *a_k0 = a_trans ? (picked ? a : a + k0 * lda) : a + k0;
        const ptrdiff_t *pick = picked && a_trans ? picked + k0 : picked;
        ptrdiff_t lda_k0 = lda;
        const int first = k0 == 0 && !accumulate;
        if (live_rows && !panels && !prepacked) {  /* (else in each tile's first group) */
            for (ptrdiff_t t = 0, r0 = 0; r0 < rows; t++, r0 += FM_RP_MR512) {
                const ptrdiff_t mr = rows - r0 < FM_RP_MR512 ? rows - r0 : FM_RP_MR512;
                live_count[t] = -1;
                if (RP_LOOK)
                    RP_LOOKED(live_count[t] = SFX(rp_live_tile512)(
                        live_rows + r0 * RP_LIVE_LD, w_off + t * RP_LIVE_LD,
                        pick ? a_k0 : a_k0 + r0 * lda, lda, pick ? pick + r0 : NULL, mr, kc));
                if (live_count[t] < 0 && crowded)
                    for (ptrdiff_t r = r0; r < r0 + mr; r++)
                        memcpy(live_rows + r * RP_LIVE_LD, a_k0 + r * lda,
                               (size_t) kc * sizeof(REAL));
            }
        } else if (copy) {
            for (ptrdiff_t r = 0; r < rows; r++)
                memcpy(copy + r * ld_copy, a_k0 + (pick ? pick[r] : r) * lda,
                       (size_t) kc * sizeof(REAL));
            a_k0 = copy;
            lda_k0 = ld_copy;
            pick = NULL;
        }
        if (strips)
            SFX(rp_strips512)(strips, strip_size, a_k0, lda, rows, kc, pick);
        if (strips_live) {
            /* A term skipped must be one whose products are all +-0: the block's rows of W
             * (the deltas) finite, checked where a strip would skip (else none does) */
            int finite = -1;
            for (ptrdiff_t t = 0, r0 = 0; r0 < rows; t++, r0 += FM_RP_MR512) {
                const int mr = rows - r0 < FM_RP_MR512 ? (int) (rows - r0) : FM_RP_MR512;
                REAL *strip = strips + t * strip_size;
                unsigned long long dead[FM_RP_KC_AT / 64];
                live_count[t] = -1;
                if (kc < FM_RP_TILE_TERMS || finite == 0 || !RP_LOOK)
                    continue;
                if (SFX(rp_dead_terms512)(dead, strip, mr, kc) < kc / FM_RP_FEW_ZEROS) {
                    tiles_kept++;
                    continue;
                }
                if (finite < 0)
                    finite = SFX(rp_rows_finite512)(W + k0 * ldw, ldw, kc, cols);
                if (finite)
                    RP_LOOKED(live_count[t] = SFX(rp_live_strip512)(
                        strip, w_off + t * FM_RP_KC_AT, dead, kc));
            }
        }
        /* (a short block of terms, as a weight job's over a small batch, runs each panel over
         * all the rows: tiles of 12 rows over 32 terms, one at a time over each panel, read
         * 1.01-1.04 of the time for `tiny-batch`'s 392 x 256 over 32 rows) */
        const ptrdiff_t tile_rows_at = kc >= FM_RP_TILE_TERMS ? FM_RP_MR512 : rows;
        for (ptrdiff_t g0 = 0; g0 < cols; g0 += group) {
            const ptrdiff_t g_cols = cols - g0 < group ? cols - g0 : group;
            if (!panels && !prepacked) {  /* panel by panel, each packed on the stack */
                for (ptrdiff_t j0 = g0; j0 < g0 + g_cols; j0 += RP_NR) {
                    const ptrdiff_t width = cols - j0 < RP_NR ? cols - j0 : RP_NR;
                    SFX(rp_pack)(packed, W, ldw, j0, width, k0, kc, transposed, RP_NR);
                    /* its subnormal values (rp_watch_begin), zeros in the panel; W's values,
                     * term k's lane c at w_k[k ldk + c ldc] */
                    const ptrdiff_t n_sub = sub_k
                        ? SFX(rp_subnormals512)(packed, kc, sub_k, sub_m) : 0;
                    const REAL *w_k = transposed ? W + j0 * ldw + k0 : W + k0 * ldw + j0;
                    const ptrdiff_t ldk = transposed ? 1 : ldw, ldc = transposed ? ldw : 1;
                    if (n_sub)
                        SFX(rp_zero_lanes512)(packed, sub_k, sub_m, n_sub);
                    found |= n_sub > 0;
                    if (!live_rows && n_sub) {
                        SFX(rp_panel_careful512)(out + j0, ldo, a_k0, lda_k0, packed, rows, kc,
                                                 first, width, pick, 0, NULL, a_k0, lda_k0,
                                                 pick, sub_k, sub_m, n_sub, w_k, ldk, ldc);
                        continue;
                    }
                    if (!live_rows) {
                        SFX(rp_panel512)(out + j0, ldo, a_k0, lda_k0, packed, rows, kc, first,
                                         width, a_trans, strips, strip_size, pick, 0, NULL);
                        continue;
                    }
                    /* A term skipped must be one whose products are all +-0: this panel's
                     * values finite (else every tile takes all its terms, from a itself) */
                    int finite = -1;  /* not yet known */
                    for (ptrdiff_t t = 0, r0 = 0; r0 < rows; t++, r0 += FM_RP_MR512) {
                        const ptrdiff_t mr = rows - r0 < FM_RP_MR512 ? rows - r0 : FM_RP_MR512;
                        const int skips = live_count[t] >= 0, copied = !skips && crowded;
                        const REAL *a_in = pick ? a_k0 : a_k0 + r0 * lda;
                        const ptrdiff_t *pick_in = pick ? pick + r0 : NULL;
                        if (skips && finite < 0)
                            finite = SFX(rp_finite512)(packed, kc * RP_NR);
                        if (skips && finite && n_sub)
                            SFX(rp_panel_careful512)(out + r0 * ldo + j0, ldo,
                                                     live_rows + r0 * RP_LIVE_LD, RP_LIVE_LD,
                                                     packed, mr, live_count[t], first, width,
                                                     NULL, 1, w_off + t * RP_LIVE_LD, a_in, lda,
                                                     pick_in, sub_k, sub_m, n_sub, w_k, ldk,
                                                     ldc);
                        else if (skips && finite)
                            SFX(rp_panel512)(out + r0 * ldo + j0, ldo,
                                             live_rows + r0 * RP_LIVE_LD, RP_LIVE_LD, packed, mr,
                                             live_count[t], first, width, 0,
                                             NULL, 0, NULL, 1, w_off + t * RP_LIVE_LD);
                        else if (n_sub)  /* all its terms, from a itself (the same values) */
                            SFX(rp_panel_careful512)(out + r0 * ldo + j0, ldo, a_in, lda, packed,
                                                     mr, kc, first, width, pick_in, 0, NULL,
                                                     a_in, lda, pick_in, sub_k, sub_m, n_sub,
                                                     w_k, ldk, ldc);
                        else  /* all its terms, from its copy or from a itself */
                            SFX(rp_panel512)(out + r0 * ldo + j0, ldo,
                                             copied ? live_rows + r0 * RP_LIVE_LD
                                             : pick ? a_k0 : a_k0 + r0 * lda,
                                             copied ? RP_LIVE_LD : lda, packed, mr, kc, first,
                                             width, 0, NULL, 0,
                                             copied || !pick ? NULL : pick + r0, 0, NULL);
                    }
                }
                continue;
            }
            /* from a copy of the group's panels (or of all of W): tile by tile, each tile's
             * rows of a (12 x 512 floats, 24 KB) read from L1 by all the group's panels, which
             * stay in L2 (up to 8 x 64 KB); panel by panel, as before, every panel read all of a's
             * block again from L2, and the group and the block (up to 512 KB each) overflowed
             * a 1 MB L2. The same chains: each out[r, j] still takes its blocks of terms in
             * order. Zen 4 host, the C harness in turns with the build before it, medians of
             * 31 calls, W and a from memory: `wide`'s forward products 0.97-0.98 of the time,
             * its weight jobs 0.95, bulk prediction's 512 x 784 x 1024 0.975; products of
             * fewer than FM_RP_GROUP_ROWS rows and by W^T (packed panel by panel) keep the
             * order above (by W^T from a group copy, tile by tile, read 1.02-1.04). */
            if (panels)
                SFX(rp_pack_group)(panels, W, ldw, g0, g_cols, k0, kc);
            /* each panel's subnormal values (rp_watch_begin), zeros in the group's copy (a
             * prepacked W's panel that holds some is copied to `cleaned` first) */
            ptrdiff_t n_subs[FM_RP_GROUP];
            for (ptrdiff_t q = 0; q * RP_NR < g_cols; q++) {
                const REAL *src = prepacked ? prepacked + k0 * cols_whole + (g0 + q * RP_NR) * kc
                    : panels + q * RP_NR * kc;
                n_subs[q] = sub_k ? SFX(rp_subnormals512)(src, kc, sub_k + q * block,
                                                          sub_m + q * block) : 0;
                found |= n_subs[q] > 0;
                if (n_subs[q] && prepacked)  /* (cleaned: the same scratch as sub_k) */
                    memcpy(cleaned + q * RP_NR * kc, src, (size_t) (kc * RP_NR) * sizeof(REAL));
                if (n_subs[q])
                    SFX(rp_zero_lanes512)(prepacked ? cleaned + q * RP_NR * kc
                                          : panels + q * RP_NR * kc,
                                          sub_k + q * block, sub_m + q * block, n_subs[q]);
            }
            /* The next group's rows of W (or the next block's first group) are fetched into
             * L2 a slice per tile while the tiles run, so that rp_pack_group reads them from
             * L2 rather than memory: from a copy of W packed once, a forward product took
             * 0.89-0.94 of the time: its packing overlaps no multiply-add. Zen 4 host, the C
             * harness in turns, medians of 31 calls, W and a from memory: `wide`'s
             * 256 x 1024 x 1024 0.957 of the time (twice), 256 x 784 x 1024 0.99-1.01, the
             * weight jobs, `mnist`'s products and bulk prediction's 0.99-1.02; with groups of
             * 8 panels, no change; groups of 4 without the fetch, 0.95-1.00 for the forward
             * products and 1.01-1.02 for the weight jobs (which keep 8). `wide`'s epoch 0.987x
             * (benchmarks/ab_builds.py, 10 rounds). The same panels: no bit changes.
             *
             * On the 2-core Intel Xeon VM (L2 2 MB a core) the fetch costs instead: the same
             * harness, the builds with and without it in turns (2026-12-05, three runs),
             * 0.955-0.997 of `wide`'s forward products' time without it, 0.973-0.984 of its
             * weight jobs' (its products by W^T, which fetch nothing either way, 1.006-1.023:
             * the harness's noise); `mnist`'s 0.98-1.01; the fetch spread over the tile's
             * panels, or inside its loop of terms (a line every 8 terms), or to L3, or every
             * other line: 0.99-1.06, no better. `wide`'s epoch without it 0.977x (builds in
             * turns, 8 runs each). So whether the products fetch is chosen at run time by the
             * batches' clock (`fetch_ahead`, fm_rows_product_set_fetch;
             * fastmlp/_engine/_stores.pxd's fetch choice). */
            const ptrdiff_t next_g0 = g0 + group < cols ? g0 + group : 0;
            const ptrdiff_t next_k0 = g0 + group < cols ? k0 : k0 + kc;
            const ptrdiff_t next_kc = next_k0 >= n_in ? 0
                : n_in - next_k0 < block ? n_in - next_k0 : block;
            const ptrdiff_t next_cols = cols - next_g0 < group ? cols - next_g0 : group;
            const ptrdiff_t tiles = (rows + tile_rows_at - 1) / tile_rows_at;
            int finite[FM_RP_GROUP];  /* each panel's values finite: -1 not yet known */
            for (int j = 0; j < FM_RP_GROUP; j++)
                finite[j] = -1;
            const ptrdiff_t per_tile = panels && next_kc > 0 && fetch_ahead
                ? (next_kc + tiles - 1) / tiles : 0;
            for (ptrdiff_t r0 = 0, fetched = 0; r0 < rows; r0 += tile_rows_at) {
                const ptrdiff_t tile_rows = rows - r0 < tile_rows_at ? rows - r0 : tile_rows_at;
                const ptrdiff_t fetch = next_kc - fetched < per_tile ? next_kc - fetched : per_tile;
                SFX(rp_fetch_rows512)(W + (next_k0 + fetched) * ldw + next_g0, ldw, fetch,
                                      next_cols);
                fetched += fetch;
                /* the next tile's picked rows, from memory, while this tile runs (Design,
                 * "Picked rows") */
                if (pick && !a_trans && g0 == 0)
                    for (ptrdiff_t r = r0 + tile_rows_at; r < r0 + 2 * tile_rows_at && r < rows;
                         r++)
                        SFX(rp_fetch_rows512)(a_k0 + pick[r] * lda_k0, 0, 1, kc);
                const REAL *a_tile = a_trans ? a_k0 + r0 : pick ? a_k0 : a_k0 + r0 * lda_k0;
                const ptrdiff_t *tile_pick = !pick || a_trans ? pick : pick + r0;
                const REAL *strip = strips ? strips + r0 / FM_RP_MR512 * strip_size : NULL;
                /* the tile's live terms: its strip's (above), or found in its first group */
                const ptrdiff_t t = r0 / FM_RP_MR512;
                ptrdiff_t n_live = -1;
                if (live_count && tile_rows_at == FM_RP_MR512) {
                    if (live_rows && g0 == 0) {
                        live_count[t] = -1;
                        if (RP_LOOK)
                            RP_LOOKED(live_count[t] = SFX(rp_live_tile512)(
                                live_rows + r0 * RP_LIVE_LD, w_off + t * RP_LIVE_LD, a_tile,
                                lda_k0, tile_pick, tile_rows, kc));
                    }
                    n_live = live_count[t];
                }
                for (ptrdiff_t j0 = g0; j0 < g0 + g_cols; j0 += RP_NR) {
                    const ptrdiff_t width = cols - j0 < RP_NR ? cols - j0 : RP_NR;
                    const ptrdiff_t q = (j0 - g0) / RP_NR;
                    const REAL *w_k = prepacked  /* fm_rows_pack's layout */
                        ? prepacked + k0 * cols_whole + j0 * kc : W + k0 * ldw + j0;
                    const REAL *p = prepacked && !n_subs[q] ? w_k
                        : prepacked ? cleaned + q * RP_NR * kc : panels + q * RP_NR * kc;
                    const ptrdiff_t ldk = prepacked ? RP_NR : ldw;
                    int *f = &finite[q];  /* (a strip's W was checked above) */
                    if (n_live >= 0 && !a_trans && *f < 0)
                        *f = SFX(rp_finite512)(p, kc * RP_NR);
                    if (n_subs[q] && n_live >= 0 && *f)
                        SFX(rp_panel_careful512)(out + r0 * ldo + j0, ldo,
                                                 live_rows + r0 * RP_LIVE_LD, RP_LIVE_LD, p,
                                                 tile_rows, n_live, first, width, NULL, 1,
                                                 w_off + t * ld_off, a_tile, lda_k0, tile_pick,
                                                 sub_k + q * block, sub_m + q * block,
                                                 n_subs[q], w_k, ldk, 1);
                    else if (n_subs[q])
                        SFX(rp_panel_careful512)(out + r0 * ldo + j0, ldo, a_tile, lda_k0, p,
                                                 tile_rows, kc, first, width, tile_pick, 0, NULL,
                                                 a_tile, lda_k0, tile_pick, sub_k + q * block,
                                                 sub_m + q * block, n_subs[q], w_k, ldk, 1);
                    else if (n_live >= 0 && (a_trans || *f))
                        SFX(rp_panel512)(out + r0 * ldo + j0, ldo,
                                         a_trans ? a_tile : live_rows + r0 * RP_LIVE_LD,
                                         a_trans ? lda_k0 : RP_LIVE_LD, p, tile_rows, n_live,
                                         first, width, a_trans, strip, strip_size,
                                         a_trans ? tile_pick : NULL, 1,
                                         w_off + t * ld_off);
                    else
                        SFX(rp_panel512)(out + r0 * ldo + j0, ldo, a_tile, lda_k0, p, tile_rows,
                                         kc, first, width, a_trans, strip, strip_size, tile_pick,
                                         0, NULL);
                }
            }
        }
    }
    if (watch >= 0)
        rp_watch_end(watch, csr, found);
}

#undef RP_LOOK
#undef RP_LOOKED

FM_RP_TARGET512 static void SFX(rp_product512_n)(REAL *out, ptrdiff_t ldo, const REAL *a,
                                                 ptrdiff_t lda, const REAL *W, ptrdiff_t ldw,
                                                 ptrdiff_t rows, ptrdiff_t n_in, ptrdiff_t cols)
{
    SFX(rp_product512)(out, ldo, a, lda, W, ldw, rows, n_in, cols, 0, 0, 0, NULL, NULL);
}

/* The backward pass's product by W^T, delta W^T, skips the terms at which all of a tile's rows
 * of delta are zero. Behind a ReLU layer delta is zero wherever the unit was off: on `wide`'s
 * second layer after an epoch, 8 % of the units are off for a whole batch of 512 (units that
 * Adam's first steps switched off for good) and 15.6 % of a tile's terms are zero in all its 12
 * rows (a tile of the first layer's: 0.4 %). Per block of terms, each tile's mask of live
 * terms (rp_live_terms512), then its rows with those terms only, packed to the left by
 * vcompress, and the panel rows they meet (rp_live_rows512); the tile runs over those
 * (`indexed`). A tile keeps all its terms where fewer than 1/16 of them are zero in all its
 * rows, and every tile where W^T has fewer than FM_RP_LIVE_TERMS terms (`mnist`'s 128: its
 * product took 1.04x the time with 6.6 % skipped; a tile of few terms pays the masks, copies and
 * indexed loads for little).
 *
 * The bits are the full chain's, but for one zero's sign. A skipped term adds fma(+-0, w, acc)
 * = acc + (+-0): acc itself where acc is not zero, and +0 where acc is +0. A chain from +0
 * reaches -0 only through a negative product too small for a subnormal (under 2^-150 in
 * float32, 2^-1075 in float64: a delta and a weight both near 1e-23) rounded to -0; a skipped
 * +0 after it would have made it +0. Apart from that sign, each out[r, j] is as before, and
 * every result still depends on the shapes and values alone (the tiles are fixed by the rows'
 * places in the block): the same for any thread count. Unless w is an infinity or a NaN (0 *
 * inf is NaN): a panel whose values are not all finite runs every tile over all its terms
 * (rp_finite512). A NaN in delta is a live term. tests/engine/test_kernels.py's test of this
 * product failed, as it should, with a NaN taken for zero and with the panel's check left
 * out.
 *
 * 2-core Intel Xeon VM (2026-12-05), `wide`'s 256 x 1024 by W2^T on deltas of its trained
 * network (ReLU's zeros, 15 % of a tile's terms), one thread's CPU time, in turns in one
 * process with the path before: 0.85-0.86 of the time (0.90 with the rows lda apart, read by
 * twelve pointers, and the panel's rows by offsets: the loop spilled them); 128 rows 0.86-0.89;
 * on Gaussian deltas (no zeros) unchanged. `wide`'s epoch on two threads, the two paths in
 * turns in one process (10 rounds of 3 epochs): 0.983x; its product by W2^T from 20.1 to 19.4 %
 * of the epoch's CPU (perf): in an epoch W2^T's packing (W2 just stepped, 4 MB) is a larger
 * share of the product than in a loop over one product. */
FM_RP_TARGET512 static void SFX(rp_product512_t)(REAL *out, ptrdiff_t ldo, const REAL *a,
                                                 ptrdiff_t lda, const REAL *W, ptrdiff_t ldw,
                                                 ptrdiff_t rows, ptrdiff_t n_in, ptrdiff_t cols)
{
    SFX(rp_product512)(out, ldo, a, lda, W, ldw, rows, n_in, cols, 0, 1, 0, NULL, NULL);
}

FM_RP_TARGET512 static void SFX(rp_product512_at)(REAL *out, ptrdiff_t ldo, const REAL *a,
                                                  ptrdiff_t lda, const REAL *W, ptrdiff_t ldw,
                                                  ptrdiff_t rows, ptrdiff_t n_in, ptrdiff_t cols,
                                                  int accumulate)
{
    SFX(rp_product512)(out, ldo, a, lda, W, ldw, rows, n_in, cols, accumulate, 0, 1, NULL, NULL);
}

/* The same two products with a's rows where they lie, picked by an index (fm_rows_product_picked
 * in fastmlp_kernels.h: a shuffled batch's rows of X, read without a gathered copy). */
FM_RP_TARGET512 static void SFX(rp_product512_picked)(REAL *out, ptrdiff_t ldo, const REAL *a,
                                                      ptrdiff_t lda, const ptrdiff_t *picked,
                                                      const REAL *W, ptrdiff_t ldw,
                                                      ptrdiff_t rows, ptrdiff_t n_in,
                                                      ptrdiff_t cols)
{
    SFX(rp_product512)(out, ldo, a, lda, W, ldw, rows, n_in, cols, 0, 0, 0, NULL, picked);
}

FM_RP_TARGET512 static void SFX(rp_product512_at_picked)(REAL *out, ptrdiff_t ldo, const REAL *a,
                                                         ptrdiff_t lda, const ptrdiff_t *picked,
                                                         const REAL *W, ptrdiff_t ldw,
                                                         ptrdiff_t rows, ptrdiff_t n_in,
                                                         ptrdiff_t cols, int accumulate)
{
    SFX(rp_product512)(out, ldo, a, lda, W, ldw, rows, n_in, cols, accumulate, 0, 1, NULL,
                       picked);
}

FM_RP_TARGET512 static void SFX(rp_product512_packed)(REAL *out, ptrdiff_t ldo, const REAL *a,
                                                      ptrdiff_t lda, const REAL *packed,
                                                      ptrdiff_t rows, ptrdiff_t n_in,
                                                      ptrdiff_t cols)
{
    SFX(rp_product512)(out, ldo, a, lda, NULL, 0, rows, n_in, cols, 0, 0, 0, packed, NULL);
}

FM_RP_TARGET512 static void SFX(rp_pack512)(REAL *packed, const REAL *W, ptrdiff_t ldw,
                                            ptrdiff_t n_in, ptrdiff_t cols)
{
    const ptrdiff_t cols_whole = (cols + RP_NR - 1) / RP_NR * RP_NR;
    for (ptrdiff_t k0 = 0; k0 < n_in; k0 += FM_RP_KC512) {
        const ptrdiff_t kc = n_in - k0 < FM_RP_KC512 ? n_in - k0 : FM_RP_KC512;
        SFX(rp_pack_group)(packed + k0 * cols_whole, W, ldw, 0, cols, k0, kc);
    }
}
#endif
