/* The product of a few rows with a weight matrix, without BLAS.
 *
 * Design
 * ------
 * GEMM packs all of W before it computes, which for one row costs several times the product
 * (33 us against 8 for one 784 x 256 row, measured with scipy's OpenBLAS); GEMV avoids the packing
 * but goes multi-threaded on large W, and OpenBLAS's threaded GEMV rounds differently from its
 * serial one, so a caller would have to hold BLAS to one thread around every call (~4 us, half
 * of a one-row prediction). This loop needs neither.
 *
 * Each z[j] is the sum of a_k W[k, j] over k = 0, 1, ... in that order, starting from +0, each
 * product rounded before it is added (the build contracts no FMA): that order is the function's
 * contract, whatever the instruction set, so its bits do not depend on the machine's vectors.
 *
 * How: the sums of a block of columns of z stay in vector registers over the whole of k, each
 * a_k broadcast and multiplied by W[k, block]; z is written once per block. (The loop before
 * this one kept them in an aligned buffer that every k loaded and stored.) Measured on the
 * 2-core AVX-512 machine, thread CPU time of one 784 x 256 float row with W 16 bytes off a cache
 * line, as numpy places it: 12.7 us in the buffer; 7.4 us in 16 registers of unaligned loads
 * (8.5 in 8, 9.8 in 4); 5.4 us in blocks that follow W's cache lines (4.6-5.1 with W on a
 * line). The bound is then near reading W's 800 KB from L2 (4.1 us alone) and the 16
 * multiplies-and-adds per cycle that two vector units give without FMA.
 *
 * - AVX-512 (product_columns_avx512): masked loads and stores let a block start on a line of W
 *   and cover a ragged first and last vector, so that no load straddles two lines; blocks of at
 *   most 16 vectors of 32 registers.
 * - Elsewhere (the generic vector code, GCC/clang vector extensions): blocks of 8 vectors of
 *   32 bytes (8 of AVX2's 16 ymm; 4 below AVX2), then 4, 2 and 1, unaligned; the last columns,
 *   fewer than a vector, in an aligned buffer.
 *
 * Zero inputs (most of an image's pixels, about half of a relu layer's outputs) are skipped:
 * the rows of W to read are listed first, so that the loop over them has no branch (a branch per
 * k mispredicts on relu's scattered zeros). 256 x 128 with half the inputs 0: 1.43 us with a
 * branch per k in the loop before, 0.83 us from the list. That changes no bit: with W finite (a
 * fit ends with an error otherwise), the skipped term is a signed zero, and a sum that starts at
 * +0 is never -0 in round-to-nearest (+0 + -0 = +0, x + -x = +0), so adding a zero leaves it as
 * it was. A dense row reads W directly: making its list cost ~7 % (7.97 against 7.48 us), so
 * the list is made only where an eighth or more of the row is zero.
 *
 * Where the time goes, and what did not help (2-core AMD EPYC VM, AVX2, L2 512 KB a core, L3
 * 32 MB): one row through `mnist`'s 784 x 256 float32 W (800 KB) reads W from L3, 16-20 us,
 * ~45 GB/s; 784 x 128 (400 KB, in L2) takes 6-7 us. Tried, each changing no bit, and dropped:
 * - Two threads on one row, each taking half of W's columns in every layer (z[j] depends on
 *   column j alone), a layer's halves waited for before the next: 17-23 us against 23-28 for
 *   engine calls back to back, but in a predict_proba loop (a few microseconds of Python
 *   between calls, the OpenMP worker gone to sleep) 28.6 us a call against 19.9 on one thread.
 *   Nor does a half stay in its core's L2: W's rows are 1 KB apart, so one half's columns fall
 *   in half of L2's sets, as many lines to a set as all of W.
 * - A dense row taken 16 terms at a time (W read nearly in its order of memory, the sums kept
 *   in z between pieces): 0.63-0.84 of the time where W's rows are 2 KB or more apart and W
 *   comes from memory (several models' W in turn, 13-17 MB), but 0.91-1.03 with W in L3 (one
 *   model's, as a serving loop has it), and no gain in predict_proba. Software prefetches of W
 *   4-16 rows ahead: 20.2-20.5 us against 20.4. (Each the median of 300-400 x 10-20 calls, the
 *   variants interleaved in one process.) Non-temporal ones 8 rows ahead (prefetchnta, so that
 *   W1's 800 KB would not evict W2 and the interpreter's lines from L2; a later session): the
 *   predict_proba call 1.02x, 0.85-1.21 in 8 rounds of 10 x 200 calls, builds alternating.
 * - Two threads on one row, each taking half of W's rows (k), summed as (first half) + (second
 *   half) on one thread or two, so that each core keeps its contiguous 400 KB in its L2 (a later
 *   session; the halves claimed caller-first and worker-first so that each half stays on one
 *   core, two threads only when the call before ended under 20 us earlier, with libgomp's worker
 *   still spinning, and a back-off when they cost more than one). A C harness of the halves
 *   alone: 8-10 us against 15-16. The engine called back to back from Python: 13-16 us against
 *   22-23 (W of 64 KB or more in halves; 15-21 with only W1). But in a predict_proba loop, 200
 *   calls a round, rounds of one thread and of two in turns: two over one 0.64-0.83 in some
 *   rounds and 1.19-1.51 in others of the same run (the caller's half shares its L2 with the
 *   interpreter's work between calls), medians 0.95 and 1.26 over 16 rounds. Dropped.
 * - What the time is (a later session, benchmarks/one_row_layout.py): not the cache W1 sits in
 *   but the strided read. W1 of 392 rows (400 KB, in L2) took 9.5-10 us, of 784 rows (from L3)
 *   18-21, at the same ~25 ns a row; blocks of 10, 12 or 14 vectors (7 of a row's 16 lines at a
 *   time) instead of 8, pieces of 8-128 rows, prefetchnta of the rows past 256-448 (to keep the
 *   first ones in L2), or k taken backwards every other call: none below 0.95 of the time. So:
 *
 * The packed copy (fm_small_pack, fm_small_product_packed). The generic path's blocks of 8
 * vectors read a copy of W's first columns stored block by block (block b: its rows of 8
 * vectors one after another, one sequential stream a block), the rest of W's columns from W:
 * the same terms in the same order, the same bits (tests/engine/test_kernels.py). One row
 * through 784 x 256 and 256 x 128 float32 in the C harness: 0.72 of the time (13.4-13.8 us
 * against 19.3), 0.69 with the blocks in reverse order every other call (not taken: the
 * copy's gain is the most of it). The AVX-512 path reads whole rows already, but from W where
 * it lies: numpy places theta off a cache line (16 or 48 bytes past one), so a 1 KB row of
 * `mnist`'s W1 spans 17 lines, taken in two blocks of 8 and 9 slots, each a pass over every k,
 * and W2's 512-byte rows 9. Its copy (a later session) is W itself with each row on lines of
 * its own, n_out rounded up to whole lines (fm_small_pack_columns; none for a W narrower than a
 * line): 16 slots, one block, one pass. The engine's one-row prediction through (784, 256, 128,
 * 10) float32, 200 rows in turn: 0.87-0.91 of the time with it (7.9-8.2 us against 8.9-9.2,
 * 2-core Xeon VM, AVX-512; a /tmp script of _engine.predict with and without the copy, 8
 * rounds in turns).
 * Blocks of 4 vectors (below AVX2) make no copy (fm_small_pack_columns gives 0). Which copy
 * exists, and when a prediction may read it (the weights may be edited in place through
 * `coefs_`), is fastmlp/_serving.py's.
 *
 * Two threads on one row, built (a later session; 2-core AMD EPYC VM, Zen 4, L2 1 MB a core,
 * 8-way). One row through `mnist`'s network reads W1's copy (800 KB), W2's (128 KB), the row
 * and the interpreter's lines: about as much as one core's L2 holds. A one-thread
 * predict_proba took 12.4-12.8 us in some processes and rounds and 15.5-18 in others (a C loop
 * streaming 936 KB alone: 9.3-10.5 us), and W1 on a copy in one 2 MB huge page changed
 * nothing. Cut by columns (fm_small_product_part: z[j] depends on column j alone, the same
 * bits) at a line near the middle (fm_small_split, only for a W of FM_SPLIT_BYTES or more),
 * each core streams half of W1 from its own L2 (the engine's split_product: a parallel region
 * of two threads per such layer, the caller taking the first half; since 2026-12-05 a helper
 * thread of the engine's own, csrc/placement.c's fm_split_run, below). The tries above lost
 * because the worker slept between calls: libgomp's helper spins GOMP_SPINCOUNT (2,000,
 * fastmlp/_runtime.py) pauses after a region, 40-80 us here, and waking it costs 30-60 us.
 * Split on every call, a call that followed the one before after a pause of 0 / 10 / 20 / 40
 * / 80 / 160 / 1000 us took 8.5 / 8.4 / 8.8 / 9.0 / 35 / 33 / 57 us, one thread 15-21; so a
 * call splits only where the thread's call before ended under FM_SPLIT_GAP = 30 us earlier,
 * and a helper that the OS starts late (beside a busy process) backs the calls off to one
 * thread (csrc/placement.c's fm_split_begin and fm_split_end). A first build that split
 * every call, six processes of it and of the one-thread build in turns, eight rounds of 200
 * calls each (one row of 784 float32, the harness's network trained by partial_fit): medians
 * of the rounds 11.1 us (quartiles 9.2-12.4) against 15.5 (12.9-17.3). But in some processes
 * (2 of 7 in one trial, lasting the process's life) every split call took 1.25-1.3x one
 * thread's time: so a model's compiled call (the engine's SteadyPrediction) splits only while
 * its own calls say it pays, by the trainer's choice between one thread and all
 * (_threads.pxd: probes of the other way, each way's smoothed cost). The result,
 * `python benchmarks/one_row_threads.py` (the split by its rule against one thread, in turns
 * in one process): 8.20 us against 12.22; beside a spinning process (--busy) 8.29 against
 * 12.06, one round's mean 31 us (late helpers, before the back-off); with 40 us of the
 * caller's own work between calls (--pause-us 40) 13.27 against 13.22 (no split). Once a
 * forced mode's calls no longer fed the choice (the benchmark's one-thread rounds had read as
 * its probes; one run 1.09x), six runs of 6-8 rounds: 0.71-0.87x, --busy 0.74x.
 *
 * The second thread is the engine's own (2026-12-05; csrc/placement.c's fm_split_run): each
 * split was a parallel region, whose start and end cost about what the half of W1 saved, and
 * whose helper the caller waited for at the region's end even when the OS had not yet run it.
 * Now the caller hands the second part to a thread that spins between calls and takes the
 * part back if that thread has not started it by the time its own is done. 2-core Xeon VM
 * (AVX-512, L2 2 MB a core): the two ways switched round by round in one process (a debug
 * build's switch, 12 rounds of 200 calls of predict_proba, the harness's `mnist` network),
 * the helper's calls took 0.905, 0.933 and 0.934 of the region's (6.9-7.9 us against
 * 7.7-8.6); beside a spinning process 0.998-1.013, where before the take-back the helper's
 * read 1.02-1.08 (the caller ran the taken part from the other core's L2, so a taken part now
 * counts as a late helper: FM_SPLIT_TAKEN). benchmarks/one_row_threads.py, builds in turns,
 * three runs each: split 7.38-7.75 us against 7.75-8.35. But the parts taken back from a
 * helper still waking, right after a wake, then read as late, and back-to-back calls split
 * about once in 250 until 2026-12-07 (csrc/placement.c's rule, which now waits FM_SPLIT_WAKE
 * after a wake before it judges a helper as spinning: benchmarks/ab_builds.py --workloads
 * predict-one 0.880x the time). benchmarks/RESULTS.md has the harness's runs.
 *
 * Subnormal weights (2026-12-06). A unit that never fires leaves its incoming weights (a column
 * of W) and its outgoing ones (a row of the next W) to L2 until they are subnormal floats
 * (csrc/rows_product.c's "Subnormal weights"), and on Intel's cores every vector multiply with
 * one takes a microcode assist: one row through rmsprop's `tiny-batch` model with three of 256
 * first-layer units dead took 94 us against 8 with those weights zeroed (a /tmp script, 2-core
 * Xeon VM). So where multiplies are slow on them (fm_subnormals_slow), the AVX-512 path's
 * float32 copy holds zeros of their sign in their places, and a record of them at the end of
 * the engine's array of copies, which a slot after the copy's rows points to (fm_careful_pack):
 * W's dead rows (subnormal values and zeros alone: a dead unit's outgoing weights) and the
 * careful columns (a subnormal value outside the dead rows: a dead unit's incoming weights, or
 * a few scattered), with those columns' values of W, 8 columns side by side a term. A row
 * whose values at the dead rows are all +-0 (a dead unit's outputs are) is multiplied by the
 * copy, where each of those terms is the +-0 that W gave, which changes no sum; then its
 * careful columns are computed again from the record (fm_careful_columns: the same chain in
 * double lanes, each product and each sum rounded to float as the loop rounds them). Any other
 * row is multiplied by W itself. Under a caller's flush-to-zero or denormals-are-zero modes (a
 * library built with -ffast-math sets them for the process) the copy gives W's bits as well:
 * denormals-are-zero reads W's subnormal values as the zeros of their sign that the copy holds, and
 * flush-to-zero flushes the careful columns' roundings to float (conversions from double) as it
 * flushes the loop's products and sums (tests/engine/test_kernels.py, each mode; until 2026-12-06
 * such rows read W itself). A W with more than a quarter of its columns careful gets no record (its
 * values would cost more than a quarter of W again). The bits are the loop's:
 * tests/engine/test_kernels.py compares the ordered sums, with chains that only rounding each
 * product and each sum to float gets right; in a C harness of this file over 252 such products, a
 * product or a sum kept in double, no column computed again, every row taken as fitting the copy,
 * or a part writing outside its columns, each failed. One row through 784 x 256 with three such
 * columns, W in L2 (that harness): 8.9 us against 90 from W, 4.9 with those weights zeroed: the
 * chain of 784 dependent steps (an add and two conversions, ~5.5 ns) is what is left. Gathering the
 * columns' values from W each time took 9-10 us more (W is cold where the copy serves). The first
 * few-row prediction (no copy yet), the generic path, float64 and subnormal inputs are left as they
 * were.
 *
 * This file includes itself once per dtype (see activations.c).
 */
#ifndef REAL
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fastmlp_kernels.h"
#include "fm_math.h"

/* The terms of one z[j] listed at a time (a longer row is taken in pieces of this many k, the
 * sums kept in z between pieces): 1024 x 8 bytes of indices on the stack. */
enum { FM_PRODUCT_TERMS = 1024 };

/* The smallest W whose few-row product two threads share (fm_small_split): a quarter of the
 * Zen 4 host's L2, a guess, not timed apart (what was timed is `mnist`'s 800 KB W1, and a
 * model's compiled call keeps one thread where its calls say the split does not pay). */
enum { FM_SPLIT_BYTES = 256 * 1024 };

/* AVX-512 has masked loads and stores, with which the column blocks follow W's cache lines
 * (see SFX(product_columns_avx512)); the generic vector code below serves other processors. */
#if defined(__GNUC__) && defined(__x86_64__) && \
    (defined(FASTMLP_HAVE_CLONES) || defined(__AVX512F__))
#include <immintrin.h>
#define FM_PRODUCT_AVX512 1
#define FM_AVX512 __attribute__((target("avx512f")))
enum { FM_AVX512_SLOTS = 16 };  /* the most vectors of z a block keeps in registers */
#endif

/* Whether this processor runs the AVX-512 path. */
static int fm_product_avx512(void)
{
#if defined(FM_PRODUCT_AVX512)
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

/* -- subnormal weights in the AVX-512 path's float copy (Design, "Subnormal weights") ---------- */

/* A float copy's rows are followed by one int32 slot: 0, or how many floats after it its
 * record of W's subnormal values starts (at the end of the engine's array of copies). The
 * record, in 4-byte words: [0] n_d, the dead rows (rows whose values are all subnormal or
 * +-0, some subnormal: a dead unit's outgoing weights); [1, 1 + n_d) those rows; [1 + n_d] n_c,
 * the careful columns (those with a subnormal value outside the dead rows); [2 + n_d, 2 + n_d
 * + n_c) those columns in order; then, for each group of 8 of them, n_in x 8 floats: term k's
 * 8 values of W in the group's columns (0 in the dead rows and in lanes past n_c). The copy
 * holds zeros of their sign in place of all of W's subnormal values. No record where W holds
 * none, or where more than a quarter of its columns are careful (the values would cost more
 * than a quarter of W again). */
enum { FM_CAREFUL_GROUP = 8, FM_CAREFUL_MOST = 4 };  /* at most n_out / FM_CAREFUL_MOST columns */

/* 0 < |x| < 2^-126, read as an integer (a float comparison would itself take the assist). */
static inline int fm_subnormal_bits(uint32_t bits)
{
    return (bits & 0x7fffffffu) - 1u < 0x007fffffu;
}

/* W's dead rows (dead[k] = 1) and careful columns (careful[j] = 1), both zero before; returns
 * the record's length in words, or 0 where W gets none. */
static ptrdiff_t fm_careful_scan(const float *W, ptrdiff_t n_in, ptrdiff_t n_out, int *dead,
                                 int *careful)
{
    ptrdiff_t n_d = 0, n_c = 0;
    for (ptrdiff_t k = 0; k < n_in; k++) {
        const uint32_t *row = (const uint32_t *) (const void *) (W + k * n_out);
        ptrdiff_t sub = 0, other = 0;
        for (ptrdiff_t j = 0; j < n_out; j++) {
            sub += fm_subnormal_bits(row[j]);
            other += (row[j] & 0x7fffffffu) > 0x007fffffu;
        }
        dead[k] = sub > 0 && other == 0;
        n_d += dead[k];
        if (sub > 0 && other > 0)
            for (ptrdiff_t j = 0; j < n_out; j++)
                careful[j] |= fm_subnormal_bits(row[j]);
    }
    for (ptrdiff_t j = 0; j < n_out; j++)
        n_c += careful[j];
    if ((n_d == 0 && n_c == 0) || n_c * FM_CAREFUL_MOST > n_out)
        return 0;
    const ptrdiff_t groups = (n_c + FM_CAREFUL_GROUP - 1) / FM_CAREFUL_GROUP;
    return 2 + n_d + n_c + groups * FM_CAREFUL_GROUP * n_in;
}

/* The record's length for an n_in x n_out float W: 0 where processors take subnormal numbers
 * in stride (fm_subnormals_slow), where W gets none, or where memory is short. */
static ptrdiff_t fm_careful_size(const float *W, ptrdiff_t n_in, ptrdiff_t n_out)
{
    if (!fm_subnormals_slow() || n_in <= 0 || n_out <= 0)
        return 0;
    int *flags = calloc((size_t) (n_in + n_out), sizeof(int));
    const ptrdiff_t size = flags != NULL ? fm_careful_scan(W, n_in, n_out, flags, flags + n_in)
                                         : 0;
    free(flags);
    return size;
}

/* The copy's slot (after its n_in rows of ld floats, W's values) and its record at `record`
 * (fm_careful_size's `size` words: none where 0), the copy's subnormal values replaced by
 * zeros of their sign. The slot stays 0 where the scan does not find what fm_careful_size did
 * (the verdict changed in between: only the tests change it). */
static void fm_careful_pack(float *copy, ptrdiff_t ld, const float *W, ptrdiff_t n_in,
                            ptrdiff_t n_out, float *record, ptrdiff_t size)
{
    int32_t *slot = (int32_t *) (void *) (copy + n_in * ld);
    *slot = 0;
    if (record == NULL || size == 0 || n_in <= 0 || n_out <= 0
        || record - (float *) (void *) slot > INT32_MAX)  /* (copies of more than 8 GB) */
        return;
    int *flags = calloc((size_t) (n_in + n_out), sizeof(int));
    int *dead = flags, *careful = flags + n_in;
    if (flags == NULL || fm_careful_scan(W, n_in, n_out, dead, careful) != size) {
        free(flags);
        return;
    }
    int32_t *words = (int32_t *) (void *) record, n_d = 0, n_c = 0;
    for (ptrdiff_t k = 0; k < n_in; k++)
        if (dead[k])
            words[1 + n_d++] = (int32_t) k;
    words[0] = n_d;
    int32_t *cols = words + 2 + n_d;
    for (ptrdiff_t j = 0; j < n_out; j++)
        if (careful[j])
            cols[n_c++] = (int32_t) j;
    words[1 + n_d] = n_c;
    float *values = record + 2 + n_d + n_c;
    memset(values, 0, (size_t) (size - (2 + n_d + n_c)) * sizeof(float));
    for (int32_t i = 0; i < n_c; i++) {
        float *group = values + i / FM_CAREFUL_GROUP * FM_CAREFUL_GROUP * n_in;
        for (ptrdiff_t k = 0; k < n_in; k++)
            if (!dead[k])
                memcpy(group + k * FM_CAREFUL_GROUP + i % FM_CAREFUL_GROUP,
                       W + k * n_out + cols[i], sizeof(float));
    }
    for (ptrdiff_t k = 0; k < n_in; k++)
        for (ptrdiff_t j = 0; j < n_out; j++) {
            uint32_t bits;
            memcpy(&bits, copy + k * ld + j, sizeof bits);
            if (fm_subnormal_bits(bits)) {
                bits &= 0x80000000u;
                memcpy(copy + k * ld + j, &bits, sizeof bits);
            }
        }
    *slot = (int32_t) (record - (float *) (void *) slot);
    free(flags);
}

/* Whether one row a (n_in values) may be multiplied by the copy of a W with this record: its
 * values in W's dead rows are all +-0 (a NaN is not), so that the copy's zeros there give the
 * +-0 terms that W's values gave. */
static int fm_careful_row_fits(const float *a, const int32_t *record)
{
    for (int32_t i = 0; i < record[0]; i++) {
        uint32_t bits;
        memcpy(&bits, a + record[1 + i], sizeof bits);
        if (bits & 0x7fffffffu)
            return 0;
    }
    return 1;
}

#if defined(FM_PRODUCT_AVX512)
/* After one row's product from the copy (fm_careful_row_fits): its careful columns in [c0, c1)
 * computed again from the record's values of W, 8 columns at a time, each the chain over k =
 * 0, 1, ... (only the k whose a_k is not +-0 where `skip`), each step z + a_k W[k, c] with the
 * product rounded to float and then the sum, as the vector loop rounds them: here in double
 * lanes (a float and a subnormal float are normal doubles: no assist), the product exact in
 * double and rounded once to float, the sum of two floats rounded to double and then to
 * float, which is the float sum's rounding (53 >= 2 x 24 + 2: S. A. Figueroa, "When is double
 * rounding innocuous?", SIGNUM Newsletter 30(3), 1995), in float's subnormal range too. The
 * vector conversions take no assist (a C loop of them: the same time on float-subnormal values
 * as on others; a scalar one does). Zeros: the sum starts at +0 as the loop's, and a dead row's
 * 0 meets an a_k of +-0; NaNs and infinities pass as the loop passes them (the same operations
 * in the same order, a NaN's payload kept through the conversions). */
FM_AVX512 static void fm_careful_columns(float *z, const float *a, ptrdiff_t n_in,
                                         const int32_t *record, ptrdiff_t c0, ptrdiff_t c1,
                                         int skip)
{
    const int32_t n_d = record[0], n_c = record[1 + n_d], *cols = record + 2 + n_d;
    const float *values = (const float *) (const void *) (cols + n_c);
    for (int32_t g = 0; g < n_c; g += FM_CAREFUL_GROUP) {
        const int32_t n = n_c - g < FM_CAREFUL_GROUP ? n_c - g : FM_CAREFUL_GROUP;
        if (cols[g] >= c1 || cols[g + n - 1] < c0)
            continue;
        const float *w_k = values + g * n_in;
        __m512d acc = _mm512_setzero_pd();
        for (ptrdiff_t k = 0; k < n_in; k++, w_k += FM_CAREFUL_GROUP) {
            uint32_t bits;
            memcpy(&bits, a + k, sizeof bits);
            if (skip && (bits & 0x7fffffffu) == 0)
                continue;
            const __m512d w = _mm512_cvtps_pd(_mm256_loadu_ps(w_k));
            const __m512d ak = _mm512_cvtps_pd(_mm256_set1_ps(a[k]));
            const __m512d p = _mm512_cvtps_pd(_mm512_cvtpd_ps(_mm512_mul_pd(ak, w)));
            acc = _mm512_cvtps_pd(_mm512_cvtpd_ps(_mm512_add_pd(acc, p)));
        }
        float sums[FM_CAREFUL_GROUP];
        _mm256_storeu_ps(sums, _mm512_cvtpd_ps(acc));
        for (int32_t i = 0; i < n; i++)
            if (cols[g + i] >= c0 && cols[g + i] < c1)
                z[cols[g + i]] = sums[i];
    }
}
#endif

/* How many 32-byte vectors a block of the generic code keeps in registers: 8 (half of AVX2's 16
 * ymm), or 4 (8 of 16 xmm). */
static int fm_product_vectors(void)
{
#if defined(__GNUC__) && defined(__x86_64__) && \
    (defined(FASTMLP_HAVE_CLONES) || defined(__AVX2__))
    if (__builtin_cpu_supports("avx2"))
        return 8;
#endif
    return 4;
}

#define REAL float
#define SFX(name) name##_f
#if defined(FM_PRODUCT_AVX512)
#define FM_V __m512
#define FM_MASK __mmask16
#define FM_V_(name) _mm512_##name##_ps
#endif
#include "small_product.c"
#undef REAL
#undef SFX
#undef FM_V
#undef FM_MASK
#undef FM_V_

#define REAL double
#define SFX(name) name##_d
#if defined(FM_PRODUCT_AVX512)
#define FM_V __m512d
#define FM_MASK __mmask8
#define FM_V_(name) _mm512_##name##_pd
#endif
#include "small_product.c"

#else

/* 32 bytes of REAL as one value: one ymm register (two xmm without AVX). Loaded and stored with
 * memcpy, which compiles to unaligned vector moves. Not 64 bytes: GCC keeps a vector wider than
 * the target's registers in memory (every k stored and reloaded each sum through the stack):
 * on an AVX2 machine (2-core AMD EPYC VM) predict_proba of one row through (784, 256, 128, 10)
 * took 167 us, 87 % of it here; with these vectors 22 us (the AVX-512 path: ~11 us on the Xeon
 * VM). */
typedef REAL SFX(fm_vec) __attribute__((vector_size(32)));
#define FM_VEC_LEN ((ptrdiff_t) (32 / sizeof(REAL)))
/* The columns of one block of a packed copy: the generic path's widest block, 8 vectors. */
#define FM_PACK_BLOCK (8 * FM_VEC_LEN)

/* The terms of one piece: z[j] (+)= a_k W[k, j] for k = index[t], t < terms, or k = k0 + t
 * without an index; `first`: z starts from 0, else from the sums of the pieces before. W's rows
 * are ldw apart (n_out, or a block's width in a packed copy). */
typedef struct {
    const REAL *a, *W;
    ptrdiff_t n_out, ldw;
    const ptrdiff_t *index;
    ptrdiff_t k0, terms;
    int first;
} SFX(fm_terms);

/* -- the generic path: blocks of 32-byte vectors, unaligned ----------------------------------- */

/* z[j0, j0 + n_vec * FM_VEC_LEN) over the terms, in their order. n_vec and whether there is an
 * index are constants at every call, so that the compiler keeps acc in registers. */
FM_INLINE void SFX(product_block)(REAL *z, SFX(fm_terms) p, ptrdiff_t j0, const int n_vec)
{
    SFX(fm_vec) acc[8];
    for (int v = 0; v < n_vec; v++) {
        if (p.first)
            acc[v] = (SFX(fm_vec)){0};
        else
            memcpy(&acc[v], z + j0 + v * FM_VEC_LEN, sizeof acc[v]);
    }
    for (ptrdiff_t t = 0; t < p.terms; t++) {
        const ptrdiff_t k = p.index != NULL ? p.index[t] : p.k0 + t;
        const REAL ak = p.a[k];
        const REAL *w = p.W + k * p.ldw + j0;
        for (int v = 0; v < n_vec; v++) {
            SFX(fm_vec) w_v;
            memcpy(&w_v, w + v * FM_VEC_LEN, sizeof w_v);
            acc[v] += ak * w_v;
        }
    }
    for (int v = 0; v < n_vec; v++)
        memcpy(z + j0 + v * FM_VEC_LEN, &acc[v], sizeof acc[v]);
}

/* The last columns j0..n_out, fewer than a vector, in an aligned buffer. */
FM_INLINE void SFX(product_tail)(REAL *z, SFX(fm_terms) p, ptrdiff_t j0)
{
    REAL acc[64 / sizeof(REAL)] __attribute__((aligned(64)));
    const ptrdiff_t width = p.n_out - j0;
    for (ptrdiff_t j = 0; j < width; j++)
        acc[j] = p.first ? 0 : z[j0 + j];
    for (ptrdiff_t t = 0; t < p.terms; t++) {
        const ptrdiff_t k = p.index != NULL ? p.index[t] : p.k0 + t;
        const REAL ak = p.a[k];
        const REAL *w = p.W + k * p.ldw + j0;
        FM_SIMD
        for (ptrdiff_t j = 0; j < width; j++)
            acc[j] += ak * w[j];
    }
    for (ptrdiff_t j = 0; j < width; j++)
        z[j0 + j] = acc[j];
}

/* Every column of z from j0 on: blocks of `most` vectors, then of 2 and 1, then the tail.
 * (Spelt out so that each block has its constant width.) */
FM_INLINE void SFX(product_columns)(REAL *z, SFX(fm_terms) p, int most, ptrdiff_t j0)
{
    if (most >= 8)
        for (; p.n_out - j0 >= 8 * FM_VEC_LEN; j0 += 8 * FM_VEC_LEN)
            SFX(product_block)(z, p, j0, 8);
    for (; p.n_out - j0 >= 4 * FM_VEC_LEN; j0 += 4 * FM_VEC_LEN)
        SFX(product_block)(z, p, j0, 4);
    for (; p.n_out - j0 >= 2 * FM_VEC_LEN; j0 += 2 * FM_VEC_LEN)
        SFX(product_block)(z, p, j0, 2);
    for (; p.n_out - j0 >= FM_VEC_LEN; j0 += FM_VEC_LEN)
        SFX(product_block)(z, p, j0, 1);
    if (j0 < p.n_out)
        SFX(product_tail)(z, p, j0);
}

/* -- the AVX-512 path: blocks of whole cache lines of W --------------------------------------- */
#if defined(FM_PRODUCT_AVX512)

/* The lanes of one FM_V: 64 bytes of REAL. Not FM_VEC_LEN, the generic path's 32-byte vector:
 * when that one was halved from 64 bytes (b929858), this path kept reading it, so that each slot
 * stepped half a register while its loads and stores stayed whole: twice the loads and adds,
 * and a whole slot before the last one stored up to 7 floats (3 doubles) past the end of z
 * (heap corruption after few-row predictions on AVX-512 machines: `free(): invalid next
 * size`). tests/engine/test_kernel_bounds.py and test_kernels.py's guarded outputs check the
 * bytes on both sides of z. */
#define FM_LANES ((ptrdiff_t) (64 / sizeof(REAL)))

/* `slots` vectors of z in registers: slot v holds columns c0 + v * FM_LANES onwards; the lanes
 * of the first and last slots outside z are masked off (never read nor written). */
FM_AVX512 FM_INLINE void SFX(line_block)(REAL *z, SFX(fm_terms) p, ptrdiff_t c0,
                                         FM_MASK first_mask, FM_MASK last_mask, const int slots)
{
    FM_V acc[FM_AVX512_SLOTS];
#pragma GCC unroll 16
    for (int v = 0; v < slots; v++) {
        const FM_MASK mask = v == 0 ? first_mask : v == slots - 1 ? last_mask : (FM_MASK) -1;
        acc[v] = p.first ? FM_V_(setzero)() : FM_V_(maskz_loadu)(mask, z + c0 + v * FM_LANES);
    }
    for (ptrdiff_t t = 0; t < p.terms; t++) {
        const ptrdiff_t k = p.index != NULL ? p.index[t] : p.k0 + t;
        const FM_V ak = FM_V_(set1)(p.a[k]);
        const REAL *w = p.W + k * p.ldw + c0;
#pragma GCC unroll 16
        for (int v = 0; v < slots; v++) {
            const FM_V w_v = v == 0 ? FM_V_(maskz_loadu)(first_mask, w)
                             : v == slots - 1 ? FM_V_(maskz_loadu)(last_mask, w + v * FM_LANES)
                             : FM_V_(loadu)(w + v * FM_LANES);
            acc[v] = FM_V_(add)(acc[v], FM_V_(mul)(ak, w_v));
        }
    }
#pragma GCC unroll 16
    for (int v = 0; v < slots; v++) {
        const FM_MASK mask = v == 0 ? first_mask : v == slots - 1 ? last_mask : (FM_MASK) -1;
        FM_V_(mask_storeu)(z + c0 + v * FM_LANES, mask, acc[v]);
    }
}

/* Every column of z, in blocks that start on a cache line of W's rows where all rows start at
 * the same place in a line (rows of a multiple of 64 bytes), so that no load of W straddles two
 * lines: a row 16 bytes off a line (numpy's usual place) then takes 17 slots, the first and
 * last masked. Blocks of at most FM_AVX512_SLOTS slots, of nearly equal size (a short block is
 * bound by the add's latency, not by its throughput). Measured, one 784 x 256 float row 16
 * bytes off a line: 7.4 us with unaligned 16-vector blocks, 5.4 us so (4.6-5.1 with W on a
 * line); one block of 17 slots measured 6.9 us. */
FM_AVX512 static void SFX(product_columns_avx512)(REAL *z, SFX(fm_terms) p)
{
    const ptrdiff_t lanes = FM_LANES;
    ptrdiff_t shift = 0;
    if ((p.ldw * (ptrdiff_t) sizeof(REAL)) % 64 == 0)
        shift = (ptrdiff_t) (((uintptr_t) p.W % 64) / sizeof(REAL));
    const ptrdiff_t slots = (p.n_out + shift + lanes - 1) / lanes;
    const ptrdiff_t blocks = (slots + FM_AVX512_SLOTS - 1) / FM_AVX512_SLOTS;
    for (ptrdiff_t b = 0, s0 = 0; b < blocks; b++) {
        const ptrdiff_t s1 = slots * (b + 1) / blocks;
        const ptrdiff_t c0 = s0 * lanes - shift;  /* the column of the block's first lane */
        const ptrdiff_t last_lanes = p.n_out - (c0 + (s1 - s0 - 1) * lanes);
        FM_MASK first_mask = (FM_MASK) -1, last_mask = (FM_MASK) -1;
        if (s0 == 0)
            first_mask = (FM_MASK) ((FM_MASK) -1 << shift);
        if (last_lanes < lanes)
            last_mask = (FM_MASK) (((FM_MASK) 1 << last_lanes) - 1);
        if (s1 - s0 == 1)
            first_mask = last_mask = first_mask & last_mask;
        switch (s1 - s0) {
#define FM_SLOTS(n) case n: SFX(line_block)(z, p, c0, first_mask, last_mask, n); break;
        FM_SLOTS(1) FM_SLOTS(2) FM_SLOTS(3) FM_SLOTS(4) FM_SLOTS(5) FM_SLOTS(6) FM_SLOTS(7)
        FM_SLOTS(8) FM_SLOTS(9) FM_SLOTS(10) FM_SLOTS(11) FM_SLOTS(12) FM_SLOTS(13)
        FM_SLOTS(14) FM_SLOTS(15) FM_SLOTS(16)
#undef FM_SLOTS
        }
        s0 = s1;
    }
}

/* One piece of terms, with and without an index (the compiler specialises each). */
FM_AVX512 static void SFX(product_piece_avx512)(REAL *z, SFX(fm_terms) p)
{
    if (p.index != NULL)
        SFX(product_columns_avx512)(z, p);
    else
        SFX(product_columns_avx512)(z, (SFX(fm_terms)){p.a, p.W, p.n_out, p.ldw, NULL, p.k0,
                                                       p.terms, p.first});
}
#endif

/* The packed copy's first `packed` columns, block by block (block b: rows of FM_PACK_BLOCK
 * columns, ldw = FM_PACK_BLOCK), then the rest from W as product_columns takes them. */
FM_INLINE void SFX(product_packed)(REAL *z, SFX(fm_terms) p, const REAL *copy, ptrdiff_t packed,
                                   ptrdiff_t n_in, int most)
{
    for (ptrdiff_t c0 = 0; c0 < packed; c0 += FM_PACK_BLOCK) {
        SFX(fm_terms) q = p;
        q.W = copy + c0 * n_in;
        q.ldw = FM_PACK_BLOCK;
        SFX(product_block)(z + c0, q, 0, 8);
    }
    SFX(product_columns)(z, p, most, packed);
}

/* One piece of terms by the path this processor takes; `copy` (the generic path's 8-vector
 * blocks only) a packed copy of W's first `packed` columns. AVX-512: `copy` holds W's rows on
 * lines of their own (fm_small_pack), copy_ld apart, where packed > 0. */
FM_INLINE void SFX(product_piece)(REAL *z, SFX(fm_terms) p, int avx512, int most,
                                  const REAL *copy, ptrdiff_t packed, ptrdiff_t copy_ld,
                                  ptrdiff_t n_in)
{
#if defined(FM_PRODUCT_AVX512)
    if (avx512) {
        if (packed > 0) {
            p.W = copy;
            p.ldw = copy_ld;
        }
        SFX(product_piece_avx512)(z, p);
        return;
    }
#endif
    (void) avx512;
    (void) copy_ld;
    if (packed > 0 && p.index != NULL)
        SFX(product_packed)(z, p, copy, packed, n_in, most);
    else if (packed > 0)
        SFX(product_packed)(z, (SFX(fm_terms)){p.a, p.W, p.n_out, p.ldw, NULL, p.k0, p.terms,
                                               p.first}, copy, packed, n_in, most);
    else if (p.index != NULL)
        SFX(product_columns)(z, p, most, 0);
    else
        SFX(product_columns)(z, (SFX(fm_terms)){p.a, p.W, p.n_out, p.ldw, NULL, p.k0, p.terms,
                                                p.first}, most, 0);
}

/* Columns c0..c1 of the product of fm_small_product and fm_small_product_packed (out, W and
 * the copy as the whole product has them: out rows n_out apart): `copy` holds W's first
 * `packed` columns packed (fm_small_pack), or packed is 0. The generic path's copy is cut only
 * at a block's edge, c0 a multiple of FM_PACK_BLOCK (fm_small_split's columns are). Each z[j]
 * is computed as in the whole product, whatever the columns around it: the same bits. */
FM_INLINE void SFX(small_product)(REAL *out, const REAL *a, ptrdiff_t lda, const REAL *W,
                                  const REAL *copy, ptrdiff_t packed, ptrdiff_t rows,
                                  ptrdiff_t n_in, ptrdiff_t n_out, ptrdiff_t c0, ptrdiff_t c1)
{
    const int avx512 = fm_product_avx512(), most = fm_product_vectors();
    const ptrdiff_t copy_ld = packed;  /* AVX-512: a row of the copy */
    ptrdiff_t index[FM_PRODUCT_TERMS];
    const int32_t *record = NULL;  /* a float copy's subnormal weights (fm_careful_pack) */
    if (!avx512 && most < 8)
        packed = 0;  /* (fm_small_pack_columns gave 0: no copy is made for this path) */
#if defined(FM_PRODUCT_AVX512)
    if (sizeof(REAL) == 4 && avx512 && packed > 0) {
        const int32_t *slot = (const int32_t *) (const void *) (copy + n_in * copy_ld);
        if (*slot != 0)
            record = slot + *slot;
    }
#endif
    if (avx512 && packed > 0) {
        copy += c0;
    } else if (packed > 0) {  /* the generic path's blocks of the part's columns */
        copy += c0 * n_in;
        packed = (packed < c1 ? packed : c1) - c0;
        if (packed < 0)
            packed = 0;
    }
    for (ptrdiff_t r = 0; r < rows; r++) {
        REAL *z = out + r * n_out + c0;
        SFX(fm_terms) p = {a + r * lda, W + c0, c1 - c0, n_out, NULL, 0, 0, 1};
        /* (a row that meets a dead row of W with a value not +-0 reads W itself) */
        const int careful = record != NULL
                            && fm_careful_row_fits((const float *) (const void *) p.a, record);
        const ptrdiff_t row_packed = record != NULL && !careful ? 0 : packed;
        ptrdiff_t zeros = 0;
        FM_SIMD_SUM(zeros)
        for (ptrdiff_t k = 0; k < n_in; k++)
            zeros += p.a[k] == 0;
        const int skip = zeros * 8 >= n_in;  /* see the Design block */
        if (n_in == 0)
            SFX(product_piece)(z, p, avx512, most, NULL, 0, 0, 0);  /* z = 0 */
        for (ptrdiff_t k0 = 0; k0 < n_in; k0 += FM_PRODUCT_TERMS) {
            const ptrdiff_t piece = n_in - k0 < FM_PRODUCT_TERMS ? n_in - k0 : FM_PRODUCT_TERMS;
            p.k0 = k0;
            p.first = k0 == 0;
            p.index = NULL;
            p.terms = piece;
            if (skip) {
                p.index = index;
                p.terms = 0;
                for (ptrdiff_t k = k0; k < k0 + piece; k++) {
                    index[p.terms] = k;
                    p.terms += p.a[k] != 0;
                }
            }
            SFX(product_piece)(z, p, avx512, most, copy, row_packed, copy_ld, n_in);
        }
#if defined(FM_PRODUCT_AVX512)
        if (careful)
            fm_careful_columns((float *) (void *) (out + r * n_out),
                               (const float *) (const void *) p.a, n_in, record, c0, c1, skip);
#endif
    }
}

FASTMLP_CLONES
void SFX(fm_small_product)(REAL *out, const REAL *a, ptrdiff_t lda, const REAL *W, ptrdiff_t rows,
                           ptrdiff_t n_in, ptrdiff_t n_out)
{
    SFX(small_product)(out, a, lda, W, NULL, 0, rows, n_in, n_out, 0, n_out);
}

FASTMLP_CLONES
void SFX(fm_small_product_packed)(REAL *out, const REAL *a, ptrdiff_t lda, const REAL *W,
                                  const REAL *copy, ptrdiff_t rows, ptrdiff_t n_in,
                                  ptrdiff_t n_out)
{
    SFX(small_product)(out, a, lda, W, copy, SFX(fm_small_pack_columns)(n_out), rows, n_in,
                       n_out, 0, n_out);
}

FASTMLP_CLONES
void SFX(fm_small_product_part)(REAL *out, const REAL *a, ptrdiff_t lda, const REAL *W,
                                const REAL *copy, ptrdiff_t rows, ptrdiff_t n_in,
                                ptrdiff_t n_out, ptrdiff_t c0, ptrdiff_t c1)
{
    SFX(small_product)(out, a, lda, W, copy, copy != NULL ? SFX(fm_small_pack_columns)(n_out) : 0,
                       rows, n_in, n_out, c0, c1);
}

/* Where a few rows' product through an n_in x n_out W is cut in two for two threads: a column
 * on a cache line of W's rows (AVX-512) or at a block of the generic path's copy, near the
 * middle; 0 where W is under FM_SPLIT_BYTES (two threads would not gain: see the Design
 * block) or too narrow to cut there. */
ptrdiff_t SFX(fm_small_split)(ptrdiff_t n_in, ptrdiff_t n_out)
{
    const ptrdiff_t step = fm_product_avx512() ? 64 / (ptrdiff_t) sizeof(REAL) : FM_PACK_BLOCK;
    if (n_in * n_out * (ptrdiff_t) sizeof(REAL) < FM_SPLIT_BYTES)
        return 0;
    return (n_out / 2 + step / 2) / step * step < n_out ? (n_out / 2 + step / 2) / step * step
                                                       : 0;
}

/* The generic path: its blocks' columns (a multiple of FM_PACK_BLOCK, at most n_out), or 0
 * below AVX2. AVX-512: the copy's row length, n_out rounded up to whole lines (W's rows each on
 * lines of their own), for a W at least a line wide (a narrower one would gain little and its
 * copy could be up to 16 times its size). */
ptrdiff_t SFX(fm_small_pack_columns)(ptrdiff_t n_out)
{
    const ptrdiff_t line = 64 / (ptrdiff_t) sizeof(REAL);
    if (fm_product_avx512())
        return n_out >= line ? (n_out + line - 1) / line * line : 0;
    if (fm_product_vectors() < 8)
        return 0;
    return n_out / FM_PACK_BLOCK * FM_PACK_BLOCK;
}

/* The copy's length: n_in x fm_small_pack_columns(n_out), and on the AVX-512 path a float
 * copy's slot (fm_careful_pack). */
ptrdiff_t SFX(fm_small_pack_size)(ptrdiff_t n_in, ptrdiff_t n_out)
{
    const ptrdiff_t packed = SFX(fm_small_pack_columns)(n_out);
    return n_in * packed + (sizeof(REAL) == 4 && fm_product_avx512() && packed > 0);
}

/* The length of the record of W's subnormal values that its copy's slot points to (0: none;
 * fm_careful_size), in REALs. */
ptrdiff_t SFX(fm_small_pack_record)(const REAL *W, ptrdiff_t n_in, ptrdiff_t n_out)
{
    if (sizeof(REAL) == 4 && fm_product_avx512() && SFX(fm_small_pack_columns)(n_out) > 0)
        return fm_careful_size((const float *) (const void *) W, n_in, n_out);
    return 0;
}

void SFX(fm_small_pack)(REAL *copy, const REAL *W, ptrdiff_t n_in, ptrdiff_t n_out, REAL *record,
                        ptrdiff_t record_size)
{
    const ptrdiff_t packed = SFX(fm_small_pack_columns)(n_out);
    if (fm_product_avx512()) {  /* row by row, the padding zeroed (never read: masked) */
        for (ptrdiff_t k = 0; k < n_in && packed > 0; k++) {
            memcpy(copy + k * packed, W + k * n_out, n_out * sizeof(REAL));
            memset(copy + k * packed + n_out, 0, (packed - n_out) * sizeof(REAL));
        }
        if (sizeof(REAL) == 4 && packed > 0)
            fm_careful_pack((float *) (void *) copy, packed, (const float *) (const void *) W,
                            n_in, n_out, (float *) (void *) record, record_size);
        return;
    }
    for (ptrdiff_t c0 = 0; c0 < packed; c0 += FM_PACK_BLOCK)
        for (ptrdiff_t k = 0; k < n_in; k++)
            memcpy(copy + c0 * n_in + k * FM_PACK_BLOCK, W + k * n_out + c0,
                   FM_PACK_BLOCK * sizeof(REAL));
}

#undef FM_VEC_LEN
#undef FM_LANES
#undef FM_PACK_BLOCK

#endif
