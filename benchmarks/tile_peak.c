/* How close csrc/rows_product.c's AVX-512 register tile can come to the core's peak: the
 * headroom question of `wide`, whose epoch is ~95 % products (benchmarks/tile_peak.py builds
 * and runs this; see its docstring).
 *
 * "peak": 12 independent chains of 512-bit fused multiply-adds, nothing else: the core's float32
 * rate. Then three register tiles over the same packed panel (kc terms of 48 columns, 48 floats
 * a term, in L2) and the same rows of `a` (row after row, lda floats apart), each out[r, j] one
 * chain of fused multiply-adds over k from +0, as the library's: 12 rows x 32 columns (the
 * library's tile: two loads of W and 12 broadcasts a term, 24 accumulators), 8 x 48 (three
 * loads, 8 broadcasts, 24 accumulators) and 24 x 16 (one load, 24 broadcasts). The inner loops
 * alone: no packing, no edges, nothing read from memory. Each variant's best of ROUNDS runs of
 * `calls` calls, in turns; the bits of the rows and columns the three share are checked equal.
 */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { NR = 48, ROWS = 24, ROUNDS = 5 };

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

__attribute__((noinline)) static void peak(float *out, long n)
{
    __m512 c[12];
    const __m512 b = _mm512_set1_ps(1.0000001f), d = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++)
        c[i] = _mm512_set1_ps((float)i);
    for (long k = 0; k < n; k += 4) {  /* (48 a loop: the counter's cost is lost in them) */
#pragma GCC unroll 48
        for (int i = 0; i < 48; i++)
            c[i % 12] = _mm512_fmadd_ps(c[i % 12], b, d);
    }
    for (int i = 0; i < 12; i++)
        out[i] = _mm512_reduce_add_ps(c[i]);
}

__attribute__((noinline)) static void tile_12x32(float *out, const float *a, long lda,
                                                 const float *p, long kc)
{
    __m512 c[12][2];
    for (int r = 0; r < 12; r++)
        c[r][0] = c[r][1] = _mm512_setzero_ps();
    for (long k = 0; k < kc; k++) {
        const __m512 w0 = _mm512_load_ps(p + NR * k), w1 = _mm512_load_ps(p + NR * k + 16);
#pragma GCC unroll 12
        for (int r = 0; r < 12; r++) {
            const __m512 x = _mm512_set1_ps(a[r * lda + k]);
            c[r][0] = _mm512_fmadd_ps(x, w0, c[r][0]);
            c[r][1] = _mm512_fmadd_ps(x, w1, c[r][1]);
        }
    }
    for (int r = 0; r < 12; r++) {
        _mm512_storeu_ps(out + r * NR, c[r][0]);
        _mm512_storeu_ps(out + r * NR + 16, c[r][1]);
    }
}

__attribute__((noinline)) static void tile_8x48(float *out, const float *a, long lda,
                                                const float *p, long kc)
{
    __m512 c[8][3];
    for (int r = 0; r < 8; r++)
        c[r][0] = c[r][1] = c[r][2] = _mm512_setzero_ps();
    for (long k = 0; k < kc; k++) {
        const __m512 w0 = _mm512_load_ps(p + NR * k), w1 = _mm512_load_ps(p + NR * k + 16),
                     w2 = _mm512_load_ps(p + NR * k + 32);
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++) {
            const __m512 x = _mm512_set1_ps(a[r * lda + k]);
            c[r][0] = _mm512_fmadd_ps(x, w0, c[r][0]);
            c[r][1] = _mm512_fmadd_ps(x, w1, c[r][1]);
            c[r][2] = _mm512_fmadd_ps(x, w2, c[r][2]);
        }
    }
    for (int r = 0; r < 8; r++)
        for (int j = 0; j < 3; j++)
            _mm512_storeu_ps(out + r * NR + 16 * j, c[r][j]);
}

__attribute__((noinline)) static void tile_24x16(float *out, const float *a, long lda,
                                                 const float *p, long kc)
{
    __m512 c[24];
    for (int r = 0; r < 24; r++)
        c[r] = _mm512_setzero_ps();
    for (long k = 0; k < kc; k++) {
        const __m512 w0 = _mm512_load_ps(p + NR * k);
#pragma GCC unroll 24
        for (int r = 0; r < 24; r++)
            c[r] = _mm512_fmadd_ps(_mm512_set1_ps(a[r * lda + k]), w0, c[r]);
    }
    for (int r = 0; r < 24; r++)
        _mm512_storeu_ps(out + r * NR, c[r]);
}

typedef void (*tile_fn)(float *, const float *, long, const float *, long);

int main(int argc, char **argv)
{
    const long kc = argc > 1 ? atol(argv[1]) : 1024, calls = argc > 2 ? atol(argv[2]) : 2000;
    const long lda = kc + 16;  /* (rows not a multiple of 4 KB apart: no crowded sets) */
    static const struct { const char *name; tile_fn fn; int rows, cols; } tiles[] = {
        {"12 x 32 (the library's)", tile_12x32, 12, 32},
        {"8 x 48", tile_8x48, 8, 48},
        {"24 x 16", tile_24x16, 24, 16},
    };
    float *a = aligned_alloc(64, sizeof(float) * (size_t)(lda * ROWS));
    float *p = aligned_alloc(64, sizeof(float) * (size_t)(kc * NR));
    float outs[3][ROWS * NR], sink[12];
    double best[4] = {1e30, 1e30, 1e30, 1e30};
    if (kc < 1 || calls < 1 || a == NULL || p == NULL)
        return 2;
    for (long i = 0; i < lda * ROWS; i++)
        a[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
    for (long i = 0; i < kc * NR; i++)
        p[i] = (float)((i * 104729) % 1000) * 1e-3f - 0.5f;
    for (int round = 0; round < ROUNDS; round++) {
        double t = now();
        peak(sink, 2 * calls * kc);  /* (as many FMAs as the tiles' runs) */
        t = now() - t;
        if (t < best[0])
            best[0] = t;
        for (int v = 0; v < 3; v++) {
            t = now();
            for (long c = 0; c < calls; c++)
                tiles[v].fn(outs[v], a, lda, p, kc);
            t = now() - t;
            if (t < best[v + 1])
                best[v + 1] = t;
        }
    }
    /* the bits: rows 0-7, columns 0-15 are in all three; each is the same chain */
    int same = 1;
    for (int r = 0; r < 8; r++)
        same &= memcmp(outs[0] + r * NR, outs[1] + r * NR, 16 * sizeof(float)) == 0
                && memcmp(outs[0] + r * NR, outs[2] + r * NR, 16 * sizeof(float)) == 0;
    const double peak_rate = 2.0 * (double)calls * (double)kc * 12 * 32 / best[0] / 1e9;
    printf("kc %ld terms, %ld calls a run, best of %d runs (%g)\n", kc, calls, ROUNDS,
           (double)sink[0]);
    printf("%-26s %7.1f GFLOP/s\n", "peak (12 chains of FMA)", peak_rate);
    for (int v = 0; v < 3; v++) {
        const double rate = (double)calls * (double)kc * tiles[v].rows * tiles[v].cols * 2
                            / best[v + 1] / 1e9;
        printf("%-26s %7.1f GFLOP/s  %5.1f %% of the peak\n", tiles[v].name, rate,
               100.0 * rate / peak_rate);
    }
    printf("bits of the shared rows and columns: %s\n", same ? "equal" : "DIFFERENT");
    free(a);
    free(p);
    return same ? 0 : 1;
}
