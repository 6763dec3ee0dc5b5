/* One row through `mnist`'s first two layers (784 x 256 and 256 x 128 float32) by
 * csrc/small_product.c's loop, against the same loop reading W1 from a copy laid out by column
 * blocks: the question of issue 12's one-row target (benchmarks/one_row_layout.py builds and
 * runs this; see its docstring).
 *
 * The library's generic (AVX2) path keeps 64 columns of z in eight vector registers over all of
 * k, so W1 is read as 256 bytes of every 1 KB row, block after block. The copy stores each block's
 * rows one after another (block b: W1[k, 64 b .. 64 b + 63] for k = 0, 1, ...), so every block
 * is one sequential 200 KB stream. Same loop, same order of terms: the bits must be equal, and
 * this checks them call by call. "packed, blocks alternating" also takes the blocks in reverse
 * order every other call, so that the blocks the call before ended with (still in L2) come first.
 *
 * Each call is timed alone (CLOCK_MONOTONIC), median of CALLS calls; ROUNDS rounds of every
 * variant in turn, median and range of the rounds' medians. Between calls it writes to `other`
 * KB of another buffer (argv[1]), a stand-in for the interpreter's work between two predictions.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void fm_small_product_f(float *out, const float *a, ptrdiff_t lda, const float *W, ptrdiff_t rows,
                        ptrdiff_t n_in, ptrdiff_t n_out);

/* The library's answer (csrc/optimizers.c) to whether subnormal operands are slow here, which
 * small_product.c asks where it makes a packed copy: this harness makes none of its own. */
int fm_subnormals_slow(void)
{
    return 0;
}

typedef float vec8 __attribute__((vector_size(32)));
enum { BLOCK = 64, CALLS = 300, ROUNDS = 15 };

/* z[0, 64) = sum over k of a[k] W[k, 0..63], W's rows `step` floats apart; as the library's
 * product_block with eight vectors. */
static void block_product(float *z, const float *a, const float *W, ptrdiff_t step, ptrdiff_t n_in)
{
    vec8 acc[8];
    for (int v = 0; v < 8; v++)
        acc[v] = (vec8){0};
    for (ptrdiff_t k = 0; k < n_in; k++) {
        const float ak = a[k];
        const float *w = W + k * step;
        for (int v = 0; v < 8; v++) {
            vec8 w_v;
            memcpy(&w_v, w + v * 8, sizeof w_v);
            acc[v] += ak * w_v;
        }
    }
    for (int v = 0; v < 8; v++)
        memcpy(z + v * 8, &acc[v], sizeof acc[v]);
}

static void packed_product(float *z, const float *a, const float *packed, ptrdiff_t n_in,
                           ptrdiff_t n_out, int reverse)
{
    const ptrdiff_t blocks = n_out / BLOCK;
    for (ptrdiff_t i = 0; i < blocks; i++) {
        const ptrdiff_t b = reverse ? blocks - 1 - i : i;
        block_product(z + b * BLOCK, a, packed + b * BLOCK * n_in, BLOCK, n_in);
    }
}

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static int by_value(const void *x, const void *y)
{
    const double a = *(const double *) x, b = *(const double *) y;
    return a < b ? -1 : a > b;
}

int main(int argc, char **argv)
{
    const ptrdiff_t n_in = 784, n_out = 256, n_hidden = 128;
    const int other_kb = argc > 1 ? atoi(argv[1]) : 64;
    /* W1 16 bytes off a cache line, as numpy places an array's data */
    char *raw = aligned_alloc(64, n_in * n_out * sizeof(float) + 64);
    float *W1 = (float *) (raw + 16);
    float *packed = aligned_alloc(64, n_in * n_out * sizeof(float));
    float *W2 = aligned_alloc(64, n_out * n_hidden * sizeof(float));
    float *a = malloc(n_in * sizeof(float)), *z = malloc(n_out * sizeof(float));
    float *expected = malloc(n_out * sizeof(float)), *z2 = malloc(n_hidden * sizeof(float));
    char *other = malloc((size_t) other_kb * 1024 + 64);
    if (!raw || !packed || !W2 || !a || !z || !expected || !z2 || !other)
        return 2;
    srand(1);
    for (ptrdiff_t i = 0; i < n_in * n_out; i++)
        W1[i] = rand() / (float) RAND_MAX - 0.5f;
    for (ptrdiff_t i = 0; i < n_out * n_hidden; i++)
        W2[i] = rand() / (float) RAND_MAX - 0.5f;
    for (ptrdiff_t k = 0; k < n_in; k++)
        a[k] = rand() / (float) RAND_MAX;  /* dense, as the harness's Gaussian rows */
    for (ptrdiff_t b = 0; b < n_out / BLOCK; b++)
        for (ptrdiff_t k = 0; k < n_in; k++)
            memcpy(packed + b * BLOCK * n_in + k * BLOCK, W1 + k * n_out + b * BLOCK,
                   BLOCK * sizeof(float));
    fm_small_product_f(expected, a, n_in, W1, 1, n_in, n_out);

    const char *names[] = {"library (row-major W1)", "packed W1", "packed, blocks alternating"};
    double medians[3][ROUNDS];
    long calls = 0;
    for (int r = 0; r < ROUNDS; r++)
        for (int v = 0; v < 3; v++) {
            double t[CALLS];
            for (int c = 0; c < CALLS; c++, calls++) {
                const double start = now_ns();
                if (v == 0)
                    fm_small_product_f(z, a, n_in, W1, 1, n_in, n_out);
                else
                    packed_product(z, a, packed, n_in, n_out, v == 2 && (calls & 1));
                fm_small_product_f(z2, z, n_out, W2, 1, n_out, n_hidden);
                t[c] = now_ns() - start;
                if (memcmp(z, expected, n_out * sizeof(float)) != 0) {
                    printf("%s: the bits differ from the library's\n", names[v]);
                    return 1;
                }
                for (int i = 0; i < other_kb * 1024; i += 64)
                    other[i]++;
            }
            qsort(t, CALLS, sizeof t[0], by_value);
            medians[v][r] = t[CALLS / 2];
        }
    printf("one row, 784 x 256 then 256 x 128 float32, %d KB written between calls: us a call, "
           "median of %d rounds' medians (range)\n", other_kb, ROUNDS);
    for (int v = 0; v < 3; v++)
        qsort(medians[v], ROUNDS, sizeof(double), by_value);
    for (int v = 0; v < 3; v++)
        printf("  %-28s %6.2f (%.2f-%.2f)  %.3f of the library's\n", names[v],
               medians[v][ROUNDS / 2] / 1e3, medians[v][0] / 1e3, medians[v][ROUNDS - 1] / 1e3,
               medians[v][ROUNDS / 2] / medians[0][ROUNDS / 2]);
    return 0;
}
