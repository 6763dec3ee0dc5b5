/* Optimizer steps and gradient finishing, each one loop over the flat parameter vector.
 *
 * Design
 * ------
 * Parameters, gradients and optimizer state share one layout (every W^l, then every b^l, as
 * scikit-learn packs them), so an optimizer is a single element-wise pass: nothing is per layer,
 * nothing is allocated (but the block a streamed step writes through: fm_stream_copy, below).
 * Scalars that are per step (Adam's bias-corrected step size) are computed once per step, by
 * fm_optim_begin_step. The formulas and their order of rounding are scikit-learn's
 * (sklearn/neural_network/_stochastic_optimizers.py) under numpy's promotion rules: a Python float
 * hyper-parameter is first rounded to REAL. One deliberate difference: scikit-learn's float32 Adam
 * forms its update in float64 (numpy promotes it through the float64 learning rate); here float32
 * stays float32 end to end, which halves the pass's cost (16-lane float division instead of 8-lane
 * double) — it was 40% of an epoch at batch 32. The float64 path is scikit-learn's to the bit.
 *
 * The torch.optim solvers (adagrad, rmsprop, adadelta, adamax, nadam, adamw) follow
 * torch/optim/<solver>.py single-tensor code operation by operation: the same lerp for first moments
 * (m + (1 - beta_1) (g - m), torch's lerp for weights below 1/2), the same addcmul/addcdiv
 * groupings, eps where torch adds it, weight decay added to the gradient (coupled) or multiplied
 * into the parameters (adamw, nadam's decoupled option) before the moments. Hyper-parameters are
 * rounded to REAL as torch rounds a Python scalar for a tensor of that dtype; the scalars that
 * change every step (bias corrections, NAdam's mu products) are computed once per step in double,
 * as torch computes them in Python floats (fm_optim_begin_step).
 *
 * State vectors, per solver (s1, s2, s3; unused ones may be NULL):
 *   sgd       velocity
 *   adam      m, v
 *   adagrad   sum of squares
 *   rmsprop   square_avg, momentum_buffer (momentum > 0), grad_avg (centered)
 *   adadelta  square_avg, acc_delta
 *   adamax    exp_avg, exp_inf
 *   nadam     exp_avg, exp_avg_sq
 *   adamw     exp_avg, exp_avg_sq, max_exp_avg_sq (amsgrad)
 *   ftrl      accumulator, linear
 *
 * FTRL (McMahan et al. 2013, "Ad Click Prediction: a View from the Trenches") follows Keras 3's
 * keras.optimizers.Ftrl (keras/src/optimizers/ftrl.py) operation by operation, with its names and
 * defaults; Keras rounds its Python-float hyper-parameters to the variable's dtype as torch does.
 *
 * This file includes itself once per dtype (see activations.c).
 */
#ifndef REAL
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "fastmlp_kernels.h"
#include "fm_math.h"

/* The solvers whose step fm_finish_step takes in the finish's pass (finish_step_loop). */
enum {
    FM_RULE_ADAM, FM_RULE_SGD, FM_RULE_SGD_NESTEROV,
    FM_RULE_ADAMW  /* + 1 with amsgrad, + 2 with weight decay: four rules */
};

/* -0.0, in a variable the compiler cannot take for a constant (it has external linkage and is
 * not const, so another file might change it): the exact route's op_mul and its siblings. */
double fm_minus_zero = -0.0;

/* The careful step's chunks, and the groups (one AVX-512 vector of floats) of a chunk that
 * holds a tiny value; a block's watch (fm_finish_step's `watch`, FM_WATCH_SIZE doubles): its
 * steps so far, and the time-stamp counter's ticks an element its one pass and its careful
 * step took (0: not known); and how often it takes the way it does not prefer, to measure that
 * again ("Subnormal numbers", above careful_step). */
enum { FM_CAREFUL_CHUNK = 256, FM_CAREFUL_GROUP = 16, FM_WATCH_PROBE = 16 };

/* The careful step's walk over a block of n (careful_step, careful_two_pass): a chunk without a
 * tiny value (any_tiny over the enclosing function's g, param, s1, s2, s3 and kinds) in one
 * STEP(at, length, 0), the others by runs of groups alike: STEP(at, length, 1) for groups
 * that each hold one, STEP(at, length, 0) for groups that hold none. (Loops of a constant
 * length for a whole chunk or group ran no faster: a C harness of Adam's step over 51,200
 * floats, 2-core Xeon VM, 0.75-0.96 ns an element on normal numbers, 4.0-5.5 on subnormal
 * ones, either way.) A dead unit leaves a tiny value in every row of W its column crosses,
 * so most chunks of such a block hold one, and group by group took 16 calls a chunk; by runs,
 * three. rmsprop's careful step on a block of 392 x 256 with 1, 3 and 8 dead columns (a /tmp
 * script, the watch's ticks an element, 2-core Xeon VM, 2026-12-06): 4.34 -> 3.84, 4.53 ->
 * 3.81 and 6.73 -> 6.49 (the one pass 1.9-5.6: the watch keeps it there); `tiny-batch` on
 * MNIST's images, the builds in turns (benchmarks/ab_builds.py --mnist-dir, 5 and 8 rounds):
 * nadam 0.841x and 0.951x the epoch, adam 1.038x, 0.999x and 0.925x (its noise). Each
 * element's step depends on that element alone, so the cut changes no bit. */
#define FM_TINY_AT(at, length) \
    SFX(any_tiny)(g + (at), param + (at), s1 ? s1 + (at) : NULL, s2 ? s2 + (at) : NULL, \
                  s3 ? s3 + (at) : NULL, length, kinds)
#define FM_GROUP_AT(at, end) ((end) - (at) < FM_CAREFUL_GROUP ? (end) - (at) : FM_CAREFUL_GROUP)
#define FM_CAREFUL_WALK(n, STEP) \
    for (ptrdiff_t lo = 0; lo < (n); lo += FM_CAREFUL_CHUNK) { \
        const ptrdiff_t m = (n) - lo < FM_CAREFUL_CHUNK ? (n) - lo : FM_CAREFUL_CHUNK; \
        if (!FM_TINY_AT(lo, m)) { \
            STEP(lo, m, 0); \
            continue; \
        } \
        int tiny = FM_TINY_AT(lo, FM_GROUP_AT(lo, lo + m)); \
        for (ptrdiff_t at = lo; at < lo + m;) { \
            ptrdiff_t end = at + FM_CAREFUL_GROUP; \
            int next = tiny; \
            while (end < lo + m && (next = FM_TINY_AT(end, FM_GROUP_AT(end, lo + m))) == tiny) \
                end += FM_CAREFUL_GROUP; \
            end = end < lo + m ? end : lo + m; \
            if (tiny) \
                STEP(at, end - at, 1); \
            else \
                STEP(at, end - at, 0); \
            at = end; \
            tiny = next; \
        } \
    }
enum { FM_WATCH_STEP, FM_WATCH_ONE_PASS, FM_WATCH_CAREFUL };

/* Which of a solver's state vectors s1, s2, s3 its step reads, and what each holds: the careful
 * step's scan (any_tiny) looks for values near the subnormal range in those it reads, and a sum
 * of squares reaches that range later than a first moment does. Two bits a vector (FM_KINDS). */
enum { FM_KIND_NONE, FM_KIND_LINEAR, FM_KIND_SQUARES };
#define FM_KINDS(s1, s2, s3) ((s1) | (s2) << 2 | (s3) << 4)

static int fm_state_kinds(const fm_optim *o)
{
    const int L = FM_KIND_LINEAR, S = FM_KIND_SQUARES;
    switch (o->solver) {
    case FM_SOLVER_SGD:
        return FM_KINDS(L, 0, 0);                                           /* velocity */
    case FM_SOLVER_ADAM:
        return FM_KINDS(L, S, 0);
    case FM_SOLVER_ADAGRAD:
        return FM_KINDS(S, 0, 0);
    case FM_SOLVER_RMSPROP:
        return FM_KINDS(S, o->momentum > 0 ? L : 0, o->centered ? L : 0);
    case FM_SOLVER_ADADELTA:
        return FM_KINDS(S, S, 0);
    case FM_SOLVER_ADAMAX:
        return FM_KINDS(L, L, 0);                                           /* exp_inf: |g| */
    case FM_SOLVER_NADAM:
        return FM_KINDS(L, S, 0);
    case FM_SOLVER_ADAMW:
        return FM_KINDS(L, S, o->amsgrad ? S : 0);
    case FM_SOLVER_FTRL:
        return FM_KINDS(S, L, 0);
    }
    return 0;
}
#if defined(__SSE2__)
#define FM_SUBNORMAL_FLAGS (_MM_EXCEPT_DENORM | _MM_EXCEPT_UNDERFLOW)

/* Whether a multiply with a subnormal operand and result takes this processor several times as
 * long as one with normal numbers (a microcode assist, as on Intel's cores), measured once: a
 * chain of 2,000 dependent multiplies by 1 of each, the fastest of three runs, against 4x. A
 * processor that takes them in stride has no use for the careful step, which costs it time.
 * The chains run with flush-to-zero and denormals-are-zero off, whatever the calling thread's
 * modes: under them the subnormal chain takes no assist, and a first fit under a caller's
 * flush modes would have judged the processor for the rest of the process. */
static unsigned long long fm_chain_ticks(float start)
{
    volatile float one = 1.0f, sink;
    float x = start, factor = one;
    unsigned long long best = ~0ULL;
    for (int run = 0; run < 3; run++) {
        const unsigned long long t0 = __rdtsc();
        for (int i = 0; i < 2000; i++)
            x = x * factor;
        const unsigned long long ticks = __rdtsc() - t0;
        best = ticks < best ? ticks : best;
    }
    sink = x;  /* (the chain's result is used) */
    (void)sink;
    return best;
}

static int fm_subnormal_verdict = -1;  /* -1: not measured yet */

int fm_subnormals_slow(void)
{
    int slow = __atomic_load_n(&fm_subnormal_verdict, __ATOMIC_RELAXED);
    if (slow < 0) {  /* (two threads may both measure: either's verdict) */
        const unsigned int csr = _mm_getcsr();
        _mm_setcsr(csr & ~(_MM_FLUSH_ZERO_ON | _MM_DENORMALS_ZERO_ON));
        const unsigned long long normal = fm_chain_ticks(1.5f);
        const unsigned long long subnormal = fm_chain_ticks(1e-40f);
        _mm_setcsr(csr);  /* (the modes, and the flags the subnormal chain raised) */
        slow = subnormal > 4 * normal;
        __atomic_store_n(&fm_subnormal_verdict, slow, __ATOMIC_RELAXED);
    }
    return slow;
}

void fm_set_subnormals_slow(int verdict)
{
    __atomic_store_n(&fm_subnormal_verdict, verdict < 0 ? -1 : verdict != 0, __ATOMIC_RELAXED);
}

int fm_flush_modes(int modes)
{
    const unsigned int csr = _mm_getcsr();
    const unsigned int ftz = _MM_FLUSH_ZERO_ON, daz = _MM_DENORMALS_ZERO_ON;
    _mm_setcsr((csr & ~(ftz | daz)) | (modes & 1 ? ftz : 0) | (modes & 2 ? daz : 0));
    return (csr & ftz ? 1 : 0) | (csr & daz ? 2 : 0);
}

/* A block's watch over one step ("Subnormal numbers", above careful_step): fm_watch_begin
 * chooses the way (1: the careful step, 0: the one pass, whose sticky flags it clears) and
 * starts the clock; fm_watch_end notes the ticks an element the way cost, and for a one pass
 * whether it met a subnormal number at all, and puts back the flags with what it raised. */
typedef struct {
    int careful;
    unsigned int csr;
    unsigned long long start;
} fm_watching;

static inline int fm_watch_begin(double *watch, fm_watching *w)
{
    const double step = watch[FM_WATCH_STEP]++;
    const double one_pass = watch[FM_WATCH_ONE_PASS], careful = watch[FM_WATCH_CAREFUL];
    const int prefer = careful > 0 && careful < one_pass;  /* (either unknown: 0) */
    w->careful = one_pass <= 0 ? 0 : careful <= 0 ? 1
                 : (long long)step % FM_WATCH_PROBE == 0 ? !prefer : prefer;
    w->start = __rdtsc();  /* (the time-stamp counter's ticks) */
    if (!w->careful) {
        w->csr = _mm_getcsr();
        _mm_setcsr(w->csr & ~FM_SUBNORMAL_FLAGS);
    }
    return w->careful;
}

static inline void fm_watch_end(double *watch, ptrdiff_t n, const fm_watching *w)
{
    const unsigned int raised = w->careful ? 0 : _mm_getcsr() & FM_SUBNORMAL_FLAGS;
    const double ticks = (double)(__rdtsc() - w->start) / (double)n;
    const int way = w->careful ? FM_WATCH_CAREFUL : FM_WATCH_ONE_PASS;
    if (!w->careful)
        _mm_setcsr(w->csr | raised);
    if (w->careful || raised) {
        watch[way] = watch[way] > 0 ? 0.5 * (watch[way] + ticks) : ticks;
    } else {  /* no subnormal met: nothing to weigh */
        watch[FM_WATCH_ONE_PASS] = 0.0;
        watch[FM_WATCH_CAREFUL] = 0.0;
    }
}
#else
int fm_subnormals_slow(void)
{
    return 0;
}

void fm_set_subnormals_slow(int verdict)
{
    (void)verdict;
}

int fm_flush_modes(int modes)
{
    (void)modes;
    return 0;
}
#endif

/* A weight job's new parameters, past the caches (fm_finish_step's `stream`).
 *
 * On two threads every row block reads all of W, so when a weight job's step stores its block
 * of W, each line it writes is also in the other core's caches: each store first takes the
 * line from there (a read for ownership). Measured with a C harness linking fm_finish_step_d
 * (2-core AMD EPYC VM, Zen 4; 234,752 doubles, mnist-f64's parameters, split in halves over
 * two threads after both read all of W, as the forward pass does): 508-555 us of CPU a step
 * where one thread alone took 247-255, and 2,300-2,500 us in the host's other state (it
 * comes and goes, often within a minute, for every process alike: benchmarks/
 * profile_breakdown.py showed mnist-f64's step at 674-3,371 us a batch and wide's at 1.9-6.6
 * ms from run to run). A loop
 * that only scales W took 760 us with plain stores and 81 with streaming (non-temporal)
 * stores, which invalidate the other core's copy without reading it first. So the step writes
 * the job's new W into a block of its own (private lines, in this core's cache) and then
 * streams it over W: 366-420 us in both states (930,000 doubles: 1.6-2.0 ms against
 * 2.1-9.0), counting the next pass's reads of W from memory. The loop is the same loop over
 * the same values (its sums the same bits; the block has param's alignment modulo 64 bytes,
 * so that the vectorised loop lines up as it does in place). Small blocks stay in place: the
 * next forward pass reads a streamed W from memory, not from the cache, and below
 * FM_STREAM_MIN_BYTES that costs more than the stores save (8,192 doubles: 54.7 us against
 * 32.7 a step and the reads; 32,768: 82 against 116). The engine asks for it only on
 * batches of two threads or more (one thread's W stays in its own cache), and only while
 * streaming is measured to cost less there (fastmlp/_engine/_stores.pxd: on a 2-core Intel
 * Xeon VM it cost 3-6 % of the epoch, W then read from memory by the next pass). */

/* dst = src, n bytes, with streaming stores where the processor has them (x86-64 always has
 * SSE2's; elsewhere memcpy), and no fence: a caller that hands dst to another thread fences
 * first (fm_store_fence), since streaming stores are not ordered by the release store that
 * tells another thread the job is done. The thread that stored reads its own stores back in
 * order without one. */
#if defined(__GNUC__) && defined(__x86_64__)
/* With AVX-512, a whole line a store (64 bytes), as the processors' manuals advise for
 * streaming stores (SSE2's 16 bytes fill a quarter of a write-combining buffer each). The
 * streamed gather's own clock (fastmlp/_engine/_stores.pxd; `mnist`, 2-core AMD EPYC VM, Zen 4,
 * builds in turns, 31 processes each): 0.144-0.160 ns a byte with these stores against
 * 0.164-0.209 with SSE2's alone, in both of the host's states; the epochs with the gather forced
 * streamed 0.416-0.428 s against 0.418-0.431 in the costly state (within their noise). The same
 * head / stores / tail as the SSE2 loop below, at another width and instruction set. */
__attribute__((target("avx512f"))) static void fm_stream_store512(char *d, const char *s,
                                                                 size_t n)
{
    size_t head = (64 - ((uintptr_t)d & 63)) & 63;
    if (head > n)
        head = n;
    memcpy(d, s, head);
    for (d += head, s += head, n -= head; n >= 64; d += 64, s += 64, n -= 64)
        _mm512_stream_si512((__m512i *)d, _mm512_loadu_si512((const void *)s));
    memcpy(d, s, n);
}
#endif

void fm_stream_store(void *dst, const void *src, size_t n)
{
#if defined(__GNUC__) && defined(__x86_64__)
    if (__builtin_cpu_supports("avx512f")) {
        fm_stream_store512((char *)dst, (const char *)src, n);
        return;
    }
#endif
#if defined(__SSE2__)
    char *d = (char *)dst;
    const char *s = (const char *)src;
    size_t head = (16 - ((uintptr_t)d & 15)) & 15;
    if (head > n)
        head = n;
    memcpy(d, s, head);
    for (d += head, s += head, n -= head; n >= 16; d += 16, s += 16, n -= 16)
        _mm_stream_si128((__m128i *)d, _mm_loadu_si128((const __m128i *)s));
    memcpy(d, s, n);
#else
    memcpy(dst, src, n);
#endif
}

void fm_store_fence(void)
{
#if defined(__SSE2__)
    _mm_sfence();
#endif
}

/* fm_stream_store, then the fence. */
static void fm_stream_copy(void *dst, const void *src, size_t n)
{
    fm_stream_store(dst, src, n);
    fm_store_fence();
}

void fm_optim_begin_step(fm_optim *o)
{
    double t = (double)++o->t;
    switch (o->solver) {
    case FM_SOLVER_SGD: /* the rate of the epoch (its schedule is per epoch, in Python) */
        break;
    case FM_SOLVER_ADAM:
        o->c0 = o->lr * sqrt(1.0 - pow(o->beta_2, t)) / (1.0 - pow(o->beta_1, t)); /* step_size */
        break;
    case FM_SOLVER_ADAGRAD:
        o->c0 = o->lr / (1.0 + (t - 1.0) * o->lr_decay); /* clr */
        break;
    case FM_SOLVER_ADAMAX:
        o->c0 = o->lr / (1.0 - pow(o->beta_1, t));       /* clr */
        break;
    case FM_SOLVER_NADAM: {
        double mu = o->beta_1 * (1.0 - 0.5 * pow(0.96, t * o->momentum_decay));
        double mu_next = o->beta_1 * (1.0 - 0.5 * pow(0.96, (t + 1.0) * o->momentum_decay));
        o->mu_product *= mu;
        o->c0 = -o->lr * (1.0 - mu) / (1.0 - o->mu_product);                /* on grad */
        o->c1 = (-o->lr * mu_next) / (1.0 - o->mu_product * mu_next);        /* on exp_avg */
        o->c2 = 1.0 - pow(o->beta_2, t);                                     /* bias_correction2 */
        o->c3 = 1.0 - o->lr * o->weight_decay;                               /* decoupled decay */
        break;
    }
    case FM_SOLVER_ADAMW:
        o->c0 = o->lr / (1.0 - pow(o->beta_1, t));                           /* step_size */
        o->c1 = pow(1.0 - pow(o->beta_2, t), 0.5);                           /* sqrt(bc2) */
        o->c2 = 1.0 - o->lr * o->weight_decay;                               /* decay */
        break;
    default: /* rmsprop, adadelta: the learning rate alone */
        o->c0 = o->lr;
        break;
    }
}

#define REAL float
#define SFX(name) name##_f
#define SQRT sqrtf
#define POW powf
#define FREXP frexpf
#define LANE_INT int32_t  /* an integer as wide as REAL (fm_all_finite) */
#define LANE_UINT uint32_t
#define EXACT_ROUTE 1     /* float32 has the careful step's exact route (see "Subnormal") */
#include "optimizers.c"
#undef REAL
#undef SFX
#undef SQRT
#undef POW
#undef FREXP
#undef LANE_INT
#undef LANE_UINT
#undef EXACT_ROUTE

#define REAL double
#define SFX(name) name##_d
#define SQRT sqrt
#define POW pow
#define FREXP frexp
#define LANE_INT int64_t
#define LANE_UINT uint64_t
#define EXACT_ROUTE 0
#include "optimizers.c"

#else

/* sum(x^2) in double, summed as finish_loop sums sum(W^2) and sum(g^2): the reference its sums
 * are held to, term for term (tests/engine/test_kernels.py). The engine no longer calls it:
 * finiteness is fm_all_finite's (exact, where this sum overflowed past ~1e154). */
FM_INLINE double SFX(sum_squares)(const REAL *x, ptrdiff_t n)
{
    double total = 0.0;
    FM_SIMD_SUM(total)
    for (ptrdiff_t i = 0; i < n; i++)
        total += (double)x[i] * (double)x[i];
    return total;
}

FASTMLP_CLONES
double SFX(fm_sum_squares)(const REAL *x, ptrdiff_t n)
{
    return SFX(sum_squares)(x, n);
}

/* Whether every value is finite: x - x is +0 for a finite x and NaN for an infinity or a NaN,
 * and the comparisons are or-ed, a one-cycle chain, where a sum of squares (what checked this
 * before) waits on each add's latency and, in float64, overflows for values past ~1e154. The
 * check of a (64, 100, 10) network's 7,510 float32 parameters after a steady partial_fit
 * (SteadyCall.weights_finite, from Python) took 0.55 us against 1.0-1.4 by the sum (2-core AMD
 * EPYC VM, 10th percentiles). The or-ed integer is as wide as REAL: with an int, float64's
 * lanes of compare results were packed to 32 bits (a permute) at every step, and 188 MB of
 * float64 took 8.7 ms on two threads where as many bytes of float32 took 5.2 (2-core Intel
 * Xeon VM; one thread, a C loop of each: 19.4-20.3 ms against 16.7-17.4 with int64). */
FASTMLP_CLONES
int SFX(fm_all_finite)(const REAL *x, ptrdiff_t n)
{
    LANE_INT bad = 0;
    FM_SIMD_OR(bad)
    for (ptrdiff_t i = 0; i < n; i++)
        bad |= !(x[i] - x[i] == (REAL)0);
    return !bad;
}

/* The arithmetic of the gradient's finish and of the steps (every solver's; FTRL's pow stays
 * powf either way), the careful step's exact route ("Subnormal numbers", above careful_step):
 * each operation as written, or with `exact` (a constant at each call; float32 alone) in double
 * and rounded back to float. The two give the same bits: a product of two floats is exact in
 * double, so rounding it to float rounds once; a sum, a quotient and a square root are rounded
 * twice, to double's 53 bits and then to float's 24, which gives the correctly rounded float
 * whenever 53 >= 2 x 24 + 2 (Figueroa, "When is double rounding innocuous?", 1995). Below float's
 * normal range, on its grid of 2^-149 (where a square root never lands: its least is 2^-74.5): a
 * sum that lands there is exact, and a quotient a / b of floats is a midpoint m of the grid or more
 * than 2^-174 from every one (a - m b is a nonzero multiple of 2^-173 times b's exponent's power of
 * two), farther than double's rounding error there (under 2^-179). Overflow rounds alike (float's
 * largest plus half an ulp is a midpoint as well). Double meets no subnormal on the way: floats'
 * products are above 2^-298, their quotients above 2^-277, and each result is a float again.
 *
 * GCC knows that theorem too: it folds (float)((double)a * (double)b) back into a float
 * multiply (convert.c's and match.pd's narrowing: real_can_shorten_arithmetic), and
 * (float)sqrt((double)a) into sqrtf, which would bring the assists back. Adding -0.0, which
 * leaves every double as it is (-0.0 included, NaNs as they were), from a variable it cannot
 * see through (fm_minus_zero) keeps the double operation in double: one more add a vector. */
FM_INLINE REAL SFX(op_mul)(REAL a, REAL b, const int exact)
{
    return exact ? (REAL)((double)a * (double)b + fm_minus_zero) : a * b;
}

FM_INLINE REAL SFX(op_div)(REAL a, REAL b, const int exact)
{
    return exact ? (REAL)((double)a / (double)b + fm_minus_zero) : a / b;
}

FM_INLINE REAL SFX(op_add)(REAL a, REAL b, const int exact)
{
    return exact ? (REAL)((double)a + (double)b + fm_minus_zero) : a + b;
}

FM_INLINE REAL SFX(op_sub)(REAL a, REAL b, const int exact)
{
    return exact ? (REAL)((double)a - (double)b + fm_minus_zero) : a - b;
}

FM_INLINE REAL SFX(op_sqrt)(REAL a, const int exact)
{
    return exact ? (REAL)(sqrt((double)a) + fm_minus_zero) : SQRT(a);
}

FM_INLINE REAL SFX(op_max)(REAL a, REAL b, const int exact)  /* (a > b ? a : b), exact as well */
{
    return exact ? (REAL)((double)a > (double)b ? (double)a : (double)b) : (a > b ? a : b);
}

#define MUL(a, b) SFX(op_mul)(a, b, exact)
#define DIV(a, b) SFX(op_div)(a, b, exact)
#define ADD(a, b) SFX(op_add)(a, b, exact)
#define SUB(a, b) SFX(op_sub)(a, b, exact)

/* The gradient's finish, one pass: g = (g + alpha w) / divisor (g / divisor without w or with
 * alpha 0), and, read as they go by, sum(w^2) (the loss's L2 term) and sum(g^2) of the finished
 * g (its norm). Each sum is the one fm_sum_squares gives, term for term in the same order (the
 * same simd reduction over the same values), so fusing them changes no bit. The three passes
 * they were cost 2 x 0.19 + 0.12 ns a float32 parameter in L1 (2-core AMD EPYC VM, AVX2): each
 * sum is bound by its adds' latency, one vector of lanes waiting on the last, and the two
 * chains run side by side in one loop, beside the division.
 *
 * A divisor that is a power of two (a batch of 32, 64, 256 rows) has an exact reciprocal, and
 * then x / divisor and x * (1 / divisor) are the same number, bit for bit: both are the exact
 * quotient rounded once (zeros, infinities and NaNs alike). The product is several times cheaper
 * than the division, so such divisors multiply (`by_reciprocal`).
 *
 * `penalty`, `by_reciprocal`, `want_w2` and `want_g2` are constants at every call, so that each
 * combination compiles to its own loop.
 *
 * Adam's, SGD's and AdamW's steps take it in the same pass where nothing waits between them
 * (fm_finish_step, below). */
FM_INLINE void SFX(finish_loop)(REAL *g, const REAL *w, ptrdiff_t n, REAL alpha, REAL divisor,
                                double *sum_w2, double *sum_g2, const int penalty,
                                const int by_reciprocal, const int want_w2, const int want_g2,
                                const int exact)
{
    const REAL reciprocal = (REAL)1 / divisor;
    double w2 = 0.0, g2 = 0.0;
    FM_SIMD_SUM2(w2, g2)
    for (ptrdiff_t i = 0; i < n; i++) {
        const REAL sum = penalty ? ADD(g[i], MUL(alpha, w[i])) : g[i];
        const REAL gi = by_reciprocal ? MUL(sum, reciprocal) : DIV(sum, divisor);
        g[i] = gi;
        if (want_w2)
            w2 += (double)w[i] * (double)w[i];
        if (want_g2)
            g2 += (double)gi * (double)gi;
    }
    if (want_w2)
        *sum_w2 = w2;
    if (want_g2)
        *sum_g2 = g2;
}

/* Whether 1 / d is exact: d a power of two whose reciprocal is a normal number. */
static inline int SFX(exact_reciprocal)(REAL d)
{
    int exponent;
    if (!(d > 0) || !isfinite(d))
        return 0;
    const REAL mantissa = FREXP(d, &exponent);  /* d = mantissa 2^exponent, 0.5 <= mantissa < 1 */
    const REAL reciprocal = (REAL)1 / d;
    return mantissa == (REAL)0.5 && isnormal(reciprocal);
}

FASTMLP_CLONES
void SFX(fm_finish_gradient)(REAL *g, const REAL *w, ptrdiff_t n, double alpha, double divisor,
                             double *sum_w2, double *sum_g2)
{
    const REAL alpha_r = (REAL)alpha, divisor_r = (REAL)divisor;
    const int penalty = alpha_r != 0 && w, want_w2 = sum_w2 != NULL && w, want_g2 = sum_g2 != NULL;
    const int by_reciprocal = SFX(exact_reciprocal)(divisor_r);
    switch (penalty * 8 + by_reciprocal * 4 + want_w2 * 2 + want_g2) {
#define FM_FINISH(p, r, w2, g2) \
    case p * 8 + r * 4 + w2 * 2 + g2: \
        SFX(finish_loop)(g, w, n, alpha_r, divisor_r, sum_w2, sum_g2, p, r, w2, g2, 0); \
        break;
    FM_FINISH(0, 0, 0, 0) FM_FINISH(0, 0, 0, 1) FM_FINISH(0, 0, 1, 0) FM_FINISH(0, 0, 1, 1)
    FM_FINISH(0, 1, 0, 0) FM_FINISH(0, 1, 0, 1) FM_FINISH(0, 1, 1, 0) FM_FINISH(0, 1, 1, 1)
    FM_FINISH(1, 0, 0, 0) FM_FINISH(1, 0, 0, 1) FM_FINISH(1, 0, 1, 0) FM_FINISH(1, 0, 1, 1)
    FM_FINISH(1, 1, 0, 0) FM_FINISH(1, 1, 0, 1) FM_FINISH(1, 1, 1, 0) FM_FINISH(1, 1, 1, 1)
#undef FM_FINISH
    }
}

FASTMLP_CLONES
void SFX(fm_scale)(REAL *g, ptrdiff_t n, double scale)
{
    const REAL s = (REAL)scale;
    FM_SIMD
    for (ptrdiff_t i = 0; i < n; i++)
        g[i] *= s;
}

FASTMLP_CLONES
void SFX(fm_clamp)(REAL *w, ptrdiff_t n, double c)
{
    const REAL hi = (REAL)c, lo = -(REAL)c;
    FM_SIMD
    for (ptrdiff_t i = 0; i < n; i++)
        w[i] = w[i] < lo ? lo : (w[i] > hi ? hi : w[i]);
}

/* SGD's step on one element (scikit-learn's SGDOptimizer; `nesterov` a constant at each call),
 * written once for fm_sgd_step and finish_step_loop. */
FM_INLINE void SFX(sgd_element)(REAL lr, REAL mu, REAL *param, REAL g, REAL *velocity,
                                const int nesterov, const int exact)
{
    const REAL v = SUB(MUL(mu, *velocity), MUL(lr, g));
    *velocity = v;
    *param = ADD(*param, nesterov ? SUB(MUL(mu, v), MUL(lr, g)) : v);
}

FASTMLP_CLONES
void SFX(fm_sgd_step)(REAL *param, const REAL *grad, REAL *velocity, ptrdiff_t n,
                      double learning_rate, double momentum, int nesterov)
{
    const REAL lr = (REAL)learning_rate, mu = (REAL)momentum;
    if (nesterov) {
        FM_SIMD
        for (ptrdiff_t i = 0; i < n; i++)
            SFX(sgd_element)(lr, mu, param + i, grad[i], velocity + i, 1, 0);
    } else {
        FM_SIMD
        for (ptrdiff_t i = 0; i < n; i++)
            SFX(sgd_element)(lr, mu, param + i, grad[i], velocity + i, 0, 0);
    }
}

/* Adam's scalars as REAL (a Python float hyper-parameter rounded to the dtype), and its step on
 * one element: Adam's formula, written once for fm_adam_step and finish_step_loop. */
typedef struct {
    REAL b1, b2, one_minus_b1, one_minus_b2, eps, minus_step;
} SFX(adam_scalars);

static inline SFX(adam_scalars) SFX(adam_scalars_of)(double step_size, double beta_1,
                                                     double beta_2, double epsilon)
{
    SFX(adam_scalars) c = {(REAL)beta_1, (REAL)beta_2, (REAL)(1.0 - beta_1),
                           (REAL)(1.0 - beta_2), (REAL)epsilon, (REAL)(-step_size)};
    return c;
}

FM_INLINE void SFX(adam_element)(const SFX(adam_scalars) *c, REAL *param, REAL g, REAL *m,
                                 REAL *v, const int exact)
{
    const REAL mi = ADD(MUL(c->b1, *m), MUL(c->one_minus_b1, g));
    const REAL vi = ADD(MUL(c->b2, *v), MUL(c->one_minus_b2, MUL(g, g)));
    *m = mi;
    *v = vi;
    *param = ADD(*param, DIV(MUL(c->minus_step, mi), ADD(SFX(op_sqrt)(vi, exact), c->eps)));
}

FASTMLP_CLONES
void SFX(fm_adam_step)(REAL *param, const REAL *grad, REAL *m, REAL *v, ptrdiff_t n,
                       double step_size, double beta_1, double beta_2, double epsilon)
{
    const SFX(adam_scalars) c = SFX(adam_scalars_of)(step_size, beta_1, beta_2, epsilon);
    FM_SIMD
    for (ptrdiff_t i = 0; i < n; i++)
        SFX(adam_element)(&c, param + i, grad[i], m + i, v + i, 0);
}

/* grad + weight_decay * param, torch's coupled weight decay (grad.add(param, alpha=wd)). */
#define COUPLED_DECAY(g, i) (wd != 0 ? ADD(g, MUL(wd, param[i])) : (g))

/* The torch solvers below and FTRL take `exact` (a constant at each call) as Adam's element
 * does: fm_optim_step's loops with 0, the careful step's groups near the subnormal range with 1
 * (careful_two_pass). */
FM_INLINE void SFX(adagrad)(const fm_optim *o, REAL *param, const REAL *grad, REAL *sum,
                            ptrdiff_t n, const int exact)
{
    const REAL wd = (REAL)o->weight_decay, eps = (REAL)o->eps, neg_clr = (REAL)-o->c0;
    FM_SIMD
    for (ptrdiff_t i = 0; i < n; i++) {
        REAL g = COUPLED_DECAY(grad[i], i);
        REAL s = ADD(sum[i], MUL(g, g));
        sum[i] = s;
        param[i] = ADD(param[i], MUL(neg_clr, DIV(g, ADD(SFX(op_sqrt)(s, exact), eps))));
    }
}

/* centered and use_momentum are constants at each call (see SFX(rmsprop)), so that every
 * variant is a loop without branches: with them inside, GCC masked the stores and the pass ran
 * 50x slower. */
FM_INLINE void SFX(rmsprop_variant)(const fm_optim *o, REAL *param, const REAL *grad,
                                    REAL *square_avg, REAL *momentum_buffer, REAL *grad_avg,
                                    ptrdiff_t n, const int centered, const int use_momentum,
                                    const int exact)
{
    const REAL wd = (REAL)o->weight_decay, eps = (REAL)o->eps, neg_lr = (REAL)-o->c0;
    const REAL rho = (REAL)o->rho, one_minus_rho = (REAL)(1.0 - o->rho);
    const REAL momentum = (REAL)o->momentum;
    FM_SIMD
    for (ptrdiff_t i = 0; i < n; i++) {
        REAL g = COUPLED_DECAY(grad[i], i);
        REAL sq = ADD(MUL(square_avg[i], rho), MUL(one_minus_rho, MUL(g, g)));
        REAL avg;
        square_avg[i] = sq;
        if (centered) {
            REAL ga = ADD(grad_avg[i], MUL(one_minus_rho, SUB(g, grad_avg[i])));
            grad_avg[i] = ga;
            avg = ADD(SFX(op_sqrt)(SUB(sq, MUL(ga, ga)), exact), eps);
        } else {
            avg = ADD(SFX(op_sqrt)(sq, exact), eps);
        }
        if (use_momentum) {
            REAL buf = ADD(MUL(momentum_buffer[i], momentum), DIV(g, avg));
            momentum_buffer[i] = buf;
            param[i] = ADD(param[i], MUL(neg_lr, buf));
        } else {
            param[i] = ADD(param[i], MUL(neg_lr, DIV(g, avg)));
        }
    }
}

FM_INLINE void SFX(rmsprop)(const fm_optim *o, REAL *param, const REAL *grad, REAL *square_avg,
                            REAL *momentum_buffer, REAL *grad_avg, ptrdiff_t n, const int exact)
{
#define FM_RMSPROP(centered, use_momentum) \
    SFX(rmsprop_variant)(o, param, grad, square_avg, momentum_buffer, grad_avg, n, centered, \
                         use_momentum, exact)
    if (o->centered && o->momentum > 0)
        FM_RMSPROP(1, 1);
    else if (o->centered)
        FM_RMSPROP(1, 0);
    else if (o->momentum > 0)
        FM_RMSPROP(0, 1);
    else
        FM_RMSPROP(0, 0);
#undef FM_RMSPROP
}

FM_INLINE void SFX(adadelta)(const fm_optim *o, REAL *param, const REAL *grad, REAL *square_avg,
                             REAL *acc_delta, ptrdiff_t n, const int exact)
{
    const REAL wd = (REAL)o->weight_decay, eps = (REAL)o->eps, neg_lr = (REAL)-o->c0;
    const REAL rho = (REAL)o->rho, one_minus_rho = (REAL)(1.0 - o->rho);
    FM_SIMD
    for (ptrdiff_t i = 0; i < n; i++) {
        REAL g = COUPLED_DECAY(grad[i], i);
        REAL sq = ADD(MUL(square_avg[i], rho), MUL(one_minus_rho, MUL(g, g)));
        square_avg[i] = sq;
        REAL delta = MUL(DIV(SFX(op_sqrt)(ADD(acc_delta[i], eps), exact),
                             SFX(op_sqrt)(ADD(sq, eps), exact)), g);
        acc_delta[i] = ADD(MUL(acc_delta[i], rho), MUL(one_minus_rho, MUL(delta, delta)));
        param[i] = ADD(param[i], MUL(neg_lr, delta));
    }
}

FM_INLINE void SFX(adamax)(const fm_optim *o, REAL *param, const REAL *grad, REAL *exp_avg,
                           REAL *exp_inf, ptrdiff_t n, const int exact)
{
    const REAL wd = (REAL)o->weight_decay, eps = (REAL)o->eps, neg_clr = (REAL)-o->c0;
    const REAL beta_2 = (REAL)o->beta_2, one_minus_beta_1 = (REAL)(1.0 - o->beta_1);
    FM_SIMD
    for (ptrdiff_t i = 0; i < n; i++) {
        REAL g = COUPLED_DECAY(grad[i], i);
        REAL m = ADD(exp_avg[i], MUL(one_minus_beta_1, SUB(g, exp_avg[i])));
        REAL u = MUL(exp_inf[i], beta_2), ag = ADD(g < 0 ? -g : g, eps);
        u = SFX(op_max)(u, ag, exact);
        exp_avg[i] = m;
        exp_inf[i] = u;
        param[i] = ADD(param[i], MUL(neg_clr, DIV(m, u)));
    }
}

FM_INLINE void SFX(nadam)(const fm_optim *o, REAL *param, const REAL *grad, REAL *exp_avg,
                          REAL *exp_avg_sq, ptrdiff_t n, const int exact)
{
    const int decoupled = o->decoupled_weight_decay;
    const REAL wd = decoupled ? (REAL)0 : (REAL)o->weight_decay;
    const REAL decay = (REAL)o->c3, eps = (REAL)o->eps;
    const REAL on_grad = (REAL)o->c0, on_avg = (REAL)o->c1, bias_correction2 = (REAL)o->c2;
    const REAL beta_2 = (REAL)o->beta_2, one_minus_beta_2 = (REAL)(1.0 - o->beta_2);
    const REAL one_minus_beta_1 = (REAL)(1.0 - o->beta_1);
    const int decay_params = decoupled && o->weight_decay != 0;
    FM_SIMD
    for (ptrdiff_t i = 0; i < n; i++) {
        REAL p = decay_params ? MUL(param[i], decay) : param[i];
        REAL g = wd != 0 ? ADD(grad[i], MUL(wd, p)) : grad[i];
        REAL m = ADD(exp_avg[i], MUL(one_minus_beta_1, SUB(g, exp_avg[i])));
        REAL v = ADD(MUL(exp_avg_sq[i], beta_2), MUL(one_minus_beta_2, MUL(g, g)));
        exp_avg[i] = m;
        exp_avg_sq[i] = v;
        REAL denom = ADD(SFX(op_sqrt)(DIV(v, bias_correction2), exact), eps);
        p = ADD(p, MUL(on_grad, DIV(g, denom)));
        param[i] = ADD(p, MUL(on_avg, DIV(m, denom)));
    }
}

/* AdamW's scalars as adamw_variant rounds them (torch.optim.AdamW's single-tensor code), and its
 * step on one element (`decay` and `amsgrad` constants at each call): written once for
 * adamw_variant and finish_step_loop. */
typedef struct {
    REAL decay, eps, neg_step_size, bias_correction2_sqrt, beta_2, one_minus_beta_2,
        one_minus_beta_1;
} SFX(adamw_scalars);

static inline SFX(adamw_scalars) SFX(adamw_scalars_of)(const fm_optim *o)
{
    SFX(adamw_scalars) c = {(REAL)o->c2, (REAL)o->eps, (REAL)-o->c0, (REAL)o->c1,
                            (REAL)o->beta_2, (REAL)(1.0 - o->beta_2), (REAL)(1.0 - o->beta_1)};
    return c;
}

FM_INLINE void SFX(adamw_element)(const SFX(adamw_scalars) *c, REAL *param, REAL g,
                                  REAL *exp_avg, REAL *exp_avg_sq, REAL *max_exp_avg_sq,
                                  const int decay, const int amsgrad, const int exact)
{
    const REAL p = decay ? MUL(*param, c->decay) : *param;
    const REAL m = ADD(*exp_avg, MUL(c->one_minus_beta_1, SUB(g, *exp_avg)));
    REAL v = ADD(MUL(*exp_avg_sq, c->beta_2), MUL(c->one_minus_beta_2, MUL(g, g)));
    *exp_avg = m;
    *exp_avg_sq = v;
    if (amsgrad) {
        v = SFX(op_max)(*max_exp_avg_sq, v, exact);
        *max_exp_avg_sq = v;
    }
    *param = ADD(p, MUL(c->neg_step_size,
                        DIV(m, ADD(DIV(SFX(op_sqrt)(v, exact), c->bias_correction2_sqrt),
                                   c->eps))));
}

/* `decay` (weight decay multiplies the parameters) and amsgrad are constants at each call. */
FM_INLINE void SFX(adamw_variant)(const fm_optim *o, REAL *param, const REAL *grad,
                                  REAL *exp_avg, REAL *exp_avg_sq, REAL *max_exp_avg_sq,
                                  ptrdiff_t n, const int decay, const int amsgrad)
{
    const SFX(adamw_scalars) c = SFX(adamw_scalars_of)(o);
    FM_SIMD
    for (ptrdiff_t i = 0; i < n; i++)
        SFX(adamw_element)(&c, param + i, grad[i], exp_avg + i, exp_avg_sq + i,
                           amsgrad ? max_exp_avg_sq + i : NULL, decay, amsgrad, 0);
}

FM_INLINE void SFX(adamw)(const fm_optim *o, REAL *param, const REAL *grad, REAL *exp_avg,
                          REAL *exp_avg_sq, REAL *max_exp_avg_sq, ptrdiff_t n)
{
    const int decay = o->weight_decay != 0;
    if (decay && o->amsgrad)
        SFX(adamw_variant)(o, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, 1, 1);
    else if (decay)
        SFX(adamw_variant)(o, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, 1, 0);
    else if (o->amsgrad)
        SFX(adamw_variant)(o, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, 0, 1);
    else
        SFX(adamw_variant)(o, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, 0, 0);
}

#undef COUPLED_DECAY

/* Keras's FTRL, per element: the accumulator n of squared gradients and the linear term z,
 *   n' = n + g^2,  z += (g + 2 l2_shrinkage w) - (n'^-p - n^-p) / lr * w,
 *   w = (clip(z, -l1, l1) - z) / (n'^-p / lr + 2 (l2 + beta / (2 lr))),   p = learning_rate_power.
 * power is -p; the common p = -0.5 takes SQRT, which vectorises where POW does not (both are
 * correctly rounded here for the square root, glibc's pow to within its documented ulp). */
FM_INLINE void SFX(ftrl_variant)(const fm_optim *o, REAL *param, const REAL *grad, REAL *accum,
                                 REAL *linear, ptrdiff_t n, const int square_root,
                                 const int exact)
{
    const REAL lr = (REAL)o->lr, power = (REAL)(-o->lr_power);
    const REAL l1 = (REAL)o->l1, minus_l1 = -(REAL)o->l1;
    const REAL two_l2_reg = (REAL)2 * ((REAL)o->l2 + (REAL)o->ftrl_beta / ((REAL)2 * lr));
    const REAL two_shrinkage = (REAL)(2 * o->l2_shrinkage);
    FM_SIMD
    for (ptrdiff_t i = 0; i < n; i++) {
        REAL g = grad[i], w = param[i], a = accum[i];
        REAL g_shrunk = ADD(g, MUL(two_shrinkage, w));
        REAL a_new = ADD(a, MUL(g, g));
        REAL root_new = square_root ? SFX(op_sqrt)(a_new, exact) : POW(a_new, power);
        REAL root_old = square_root ? SFX(op_sqrt)(a, exact) : POW(a, power);
        REAL z = ADD(linear[i], SUB(g_shrunk, MUL(DIV(SUB(root_new, root_old), lr), w)));
        REAL clipped = z < minus_l1 ? minus_l1 : (z > l1 ? l1 : z);
        linear[i] = z;
        accum[i] = a_new;
        param[i] = DIV(SUB(clipped, z), ADD(DIV(root_new, lr), two_l2_reg));
    }
}

FM_INLINE void SFX(ftrl)(const fm_optim *o, REAL *param, const REAL *grad, REAL *accum,
                         REAL *linear, ptrdiff_t n, const int exact)
{
    if (o->lr_power == -0.5)
        SFX(ftrl_variant)(o, param, grad, accum, linear, n, 1, exact);
    else
        SFX(ftrl_variant)(o, param, grad, accum, linear, n, 0, exact);
}

/* The step of a solver that keeps two passes (fm_finish_step takes Adam's, SGD's and AdamW's in
 * the finish's pass): fm_optim_step's, and the careful step's group by group. */
FM_INLINE void SFX(two_pass_step)(const fm_optim *o, REAL *param, const REAL *grad, REAL *s1,
                                  REAL *s2, REAL *s3, ptrdiff_t n, const int exact)
{
    switch (o->solver) {
    case FM_SOLVER_ADAGRAD:
        SFX(adagrad)(o, param, grad, s1, n, exact);
        break;
    case FM_SOLVER_RMSPROP:
        SFX(rmsprop)(o, param, grad, s1, s2, s3, n, exact);
        break;
    case FM_SOLVER_ADADELTA:
        SFX(adadelta)(o, param, grad, s1, s2, n, exact);
        break;
    case FM_SOLVER_ADAMAX:
        SFX(adamax)(o, param, grad, s1, s2, n, exact);
        break;
    case FM_SOLVER_NADAM:
        SFX(nadam)(o, param, grad, s1, s2, n, exact);
        break;
    case FM_SOLVER_FTRL:
        SFX(ftrl)(o, param, grad, s1, s2, n, exact);
        break;
    }
}

/* The gradient's finish and the step, one pass over a weight job's block, for Adam and SGD
 * (scikit-learn's solvers) and AdamW (`rule`: FM_RULE_*): fm_finish_gradient and then
 * fm_optim_step, each element's operations those loops do, in their order, and the two sums
 * those of finish_loop
 * (the same simd reduction over the same values), so the same bits (tests/engine/test_kernels.py
 * holds the pass to the two; tools/fingerprint.py: 301 of 301 fits equal). Both sums are always
 * taken, so that only `penalty`, `by_reciprocal` and `rule` make loops of their own (a weight
 * job wants both; a bias's sum(w^2) is not stored).
 *
 * In cache the two passes cost what one does: a C harness of a 256 x 256 block (AVX2, 2-core
 * AMD EPYC VM) took 0.99 of their time in float32, 0.85 in float64, where Adam is bound by
 * its division and square root. But in an epoch a job's W and the solver's state come from
 * memory (the forward pass read W long before), and the finish read W once more ahead of the
 * step. On the 2-core AVX-512 Xeon VM (benchmarks/profile_breakdown.py --workloads mnist,wide
 * --threads 2, the builds in turns, three runs each), Adam's finish and step took 320-359 us
 * of CPU a batch of `mnist` as two passes and 198-242 as one; `wide` 4.0-4.8 ms and 3.1-3.3
 * (of ~55 ms a batch). The other torch solvers keep the two passes (fm_finish_step takes them
 * for those): each would be rules of its own.
 *
 * Every option of a solver that changes its loop is a rule of its own (a constant in the loop),
 * not a flag read in it: with AdamW's weight decay a flag, GCC unswitched the loop on it and
 * vectorised the copy without decay otherwise, and its sums lost the bits of finish_loop's
 * (by ~1e-13 relative; the test above caught it). */
FM_INLINE void SFX(finish_step_loop)(const fm_optim *o, REAL *g, const REAL *param, REAL *out,
                                     REAL *s1, REAL *s2, REAL *s3, ptrdiff_t n, REAL alpha,
                                     REAL divisor, double *w2_out, double *g2_out,
                                     const int penalty, const int by_reciprocal, const int rule,
                                     const int sums, const int exact)
{
    const REAL reciprocal = (REAL)1 / divisor;
    const SFX(adam_scalars) c = SFX(adam_scalars_of)(o->c0, o->beta_1, o->beta_2, o->eps);
    const SFX(adamw_scalars) cw = SFX(adamw_scalars_of)(o);
    const REAL lr = (REAL)o->lr, mu = (REAL)o->momentum;
    const int amsgrad = rule >= FM_RULE_ADAMW && ((rule - FM_RULE_ADAMW) & 1);
    const int decay = rule >= FM_RULE_ADAMW && ((rule - FM_RULE_ADAMW) & 2);
    double w2 = 0.0, g2 = 0.0;
    FM_SIMD_SUM2(w2, g2)
    for (ptrdiff_t i = 0; i < n; i++) {
        const REAL wi = param[i];
        const REAL sum = penalty ? ADD(g[i], MUL(alpha, wi)) : g[i];
        const REAL gi = by_reciprocal ? MUL(sum, reciprocal) : DIV(sum, divisor);
        REAL p = wi;
        g[i] = gi;
        if (sums) {
            w2 += (double)wi * (double)wi;
            g2 += (double)gi * (double)gi;
        }
        if (rule == FM_RULE_ADAM)
            SFX(adam_element)(&c, &p, gi, s1 + i, s2 + i, exact);
        else if (rule >= FM_RULE_ADAMW)
            SFX(adamw_element)(&cw, &p, gi, s1 + i, s2 + i, amsgrad ? s3 + i : NULL, decay,
                               amsgrad, exact);
        else
            SFX(sgd_element)(lr, mu, &p, gi, s1 + i, rule == FM_RULE_SGD_NESTEROV, exact);
        out[i] = p;
    }
    if (sums) {
        *w2_out = w2;
        *g2_out = g2;
    }
}

/* Subnormal numbers
 * -----------------
 * Pixels that are zero in (nearly) every image (MNIST's borders), and units that never fire,
 * give their weights no gradient but L2's alpha W / n, and Adam then shrinks each such weight
 * ~0.7x a step (its update ~ lr m / eps while |g| << eps) until g * g, the moments and W are
 * subnormal floats. On the 2-core Intel Xeon VMs an AVX-512 multiply, division or square root
 * with a subnormal operand or result, or an add with a subnormal result, took 37-54 ns a
 * vector against 0.5-4 (a microcode assist; C loops), while conversions between float and
 * double ran at full speed either way. `tiny-batch` on MNIST's images took 0.7-0.93 s an epoch
 * against 0.31-0.34 on the blobs, fm_finish_step_f 42-45 % of the CPU, with 18 % of W1 below
 * 2^-32 after two epochs (whole rows for dead pixels, a few weights of most other rows).
 * Flushing subnormals to zero (as XLA does) would change results; scikit-learn's numpy steps
 * keep them, and so do we.
 *
 * The careful step (careful_step) takes the sums in passes of their own (sum_squares, the
 * order the one pass keeps) and the step chunk by chunk: a chunk without a value near the
 * subnormal range (any_tiny: a nonzero W below 2^-40, g or a state vector of first moments
 * below 2^-56, one of squares below 2^-112, read as integers; fm_state_kinds says which the
 * solver reads) as written, and in the others each group of 16 that has one through the exact
 * route (op_mul and its siblings in double: the same bits, and no assist). Every way gives
 * the same bits (tests/engine/test_kernels.py); the watch only decides the speed. The exact
 * route costs ~4 ns an element (a C harness: every operation is converted up, computed, and
 * rounded down again), the one pass ~0.6 without assists and ~18 with them, and a careful
 * step on a block without tiny values ~1.5x the one pass (its scans and the sums' passes), so
 * which is cheaper depends on how many elements assist.
 *
 * So each weight job keeps a watch (fm_finish_step's `watch`), and times its steps: a one
 * pass runs with the processor's sticky denormal-operand and underflow flags cleared and
 * read after; one that raised them notes its ticks an element (the time-stamp counter's: two
 * reads a step), and the next step tries the careful step and notes its own. From then on the
 * block takes the cheaper of the two, and
 * the other every FM_WATCH_PROBE-th step to measure it again (each cost a running mean of two
 * measurements); a one pass that raised no flag forgets both. A processor whose multiplies
 * take subnormal numbers in stride (fm_subnormals_slow, measured once) never watches, and
 * float64, with no wider type to round through, keeps the one pass. A process whose
 * flush-to-zero or denormals-are-zero mode another library has set (-ffast-math's start-up
 * code does) still raises the underflow flag, and the careful step then runs under those
 * modes: its conversions flush as the float operations do, and both ways keep giving the same
 * bits (tests/engine/test_kernels.py runs every solver under each mode: fm_flush_modes).
 *
 * The solvers that keep two passes (the torch solvers but AdamW, and FTRL) meet the same numbers
 * wherever they divide by a root of their squares plus eps (nadam, rmsprop, adagrad, adamax's
 * |g| + eps), and their blocks are watched the same way (two_pass_block): the careful step
 * there (careful_two_pass) takes sum(w^2) first and then, chunk by chunk, the finish and the
 * step. `tiny-batch` on MNIST's images, the builds in turns (benchmarks/ab_builds.py
 * --mnist-dir ... --solver S, 4 rounds, 2-core Xeon VM): nadam 0.723x the epoch before,
 * adamax 0.833x; adagrad 1.024x and rmsprop 1.004x (adagrad's weights meet fewer subnormal
 * numbers; rmsprop's epochs go to its products: below).
 *
 * The products meet the same weights: a multiply-add with a subnormal operand takes the same
 * assist, and once whole columns of W (units that never fire) are subnormal, every product
 * over their panel takes it. The AVX-512 float32 products put zeros in their places and
 * compute the lanes they change again through double (csrc/rows_product.c, "Subnormal
 * weights"): the same bits. */
/* Whether any of x[0..n) is nonzero and below `below` in magnitude, read as integers: a float
 * comparison would itself take an assist on a subnormal. */
FM_INLINE int SFX(any_below)(const REAL *x, ptrdiff_t n, REAL below)
{
    LANE_UINT limit, bad = 0;
    memcpy(&limit, &below, sizeof limit);
    FM_SIMD_OR(bad)
    for (ptrdiff_t i = 0; i < n; i++) {
        LANE_UINT bits;
        memcpy(&bits, x + i, sizeof bits);
        bits &= ~((LANE_UINT)1 << (8 * sizeof bits - 1));  /* |x| */
        bad |= bits - 1 < limit - 1;                     /* (0 wraps around to the largest) */
    }
    return bad != 0;
}

FM_INLINE int SFX(any_tiny)(const REAL *g, const REAL *param, const REAL *s1, const REAL *s2,
                            const REAL *s3, ptrdiff_t n, const int kinds)
{
    const REAL weight = (REAL)0x1p-40, small = (REAL)0x1p-56, square = (REAL)0x1p-112;
    const REAL *state[3] = {s1, s2, s3};
    if (SFX(any_below)(param, n, weight) || SFX(any_below)(g, n, small))
        return 1;
    for (int i = 0; i < 3; i++) {
        const int kind = kinds >> 2 * i & 3;  /* (fm_state_kinds: the vectors the step reads) */
        if (kind != FM_KIND_NONE
            && SFX(any_below)(state[i], n, kind == FM_KIND_SQUARES ? square : small))
            return 1;
    }
    return 0;
}

/* The careful step: the sums in passes of their own, and chunk by chunk the step, through the
 * exact route in the groups that hold a tiny value. */
FM_INLINE void SFX(careful_step)(const fm_optim *o, REAL *g, const REAL *param, REAL *out,
                                 REAL *s1, REAL *s2, REAL *s3, ptrdiff_t n, REAL alpha,
                                 REAL divisor, double *w2, double *g2, const int penalty,
                                 const int by_reciprocal, const int rule)
{
    const int kinds = fm_state_kinds(o);
    *w2 = SFX(sum_squares)(param, n);  /* (before `out` may overwrite param) */
#define FM_CAREFUL_LOOP(at, length, exact) \
    SFX(finish_step_loop)(o, g + (at), param + (at), out + (at), s1 + (at), \
                          s2 ? s2 + (at) : NULL, s3 ? s3 + (at) : NULL, length, alpha, divisor, \
                          NULL, NULL, penalty, by_reciprocal, rule, 0, exact)
    FM_CAREFUL_WALK(n, FM_CAREFUL_LOOP)
#undef FM_CAREFUL_LOOP
    *g2 = SFX(sum_squares)(g, n);
}

/* One block's finish and step: the one pass, or (`watch`, float32, a processor that takes
 * assists) the careful step where it has been measured to cost this block less. */
FM_INLINE void SFX(finish_step_block)(const fm_optim *o, REAL *g, const REAL *param, REAL *out,
                                      REAL *s1, REAL *s2, REAL *s3, ptrdiff_t n, REAL alpha,
                                      REAL divisor, double *w2, double *g2, double *watch,
                                      const int penalty, const int by_reciprocal,
                                      const int rule)
{
#if EXACT_ROUTE && defined(FM_SUBNORMAL_FLAGS)
    fm_watching watching;
    if (watch != NULL && n > 0 && fm_subnormals_slow()) {
        if (fm_watch_begin(watch, &watching))
            SFX(careful_step)(o, g, param, out, s1, s2, s3, n, alpha, divisor, w2, g2,
                              penalty, by_reciprocal, rule);
        else
            SFX(finish_step_loop)(o, g, param, out, s1, s2, s3, n, alpha, divisor, w2, g2,
                                  penalty, by_reciprocal, rule, 1, 0);
        fm_watch_end(watch, n, &watching);
        return;
    }
#else
    (void)watch;
#endif
    SFX(finish_step_loop)(o, g, param, out, s1, s2, s3, n, alpha, divisor, w2, g2, penalty,
                          by_reciprocal, rule, 1, 0);
}

/* The careful step of a solver that keeps two passes (the torch solvers but AdamW, and FTRL):
 * sum(w^2) first, as fm_finish_gradient reads it, then chunk by chunk the finish and the step
 * (each element's depend on that element alone, so the order of the chunks changes no bit),
 * through the exact route in the groups that hold a tiny value, and sum(g^2) of the finished
 * gradient last. `penalty` and `by_reciprocal` are constants at each call. */
FM_INLINE void SFX(careful_two_pass)(const fm_optim *o, REAL *g, REAL *param, const REAL *w,
                                     REAL *s1, REAL *s2, REAL *s3, ptrdiff_t n, REAL alpha,
                                     REAL divisor, double *sum_w2, double *sum_g2,
                                     const int penalty, const int by_reciprocal)
{
    const int kinds = fm_state_kinds(o);
    if (sum_w2 != NULL && w != NULL)
        *sum_w2 = SFX(sum_squares)(w, n);
#define FM_TWO_PASSES(at, length, exact) \
    do { \
        SFX(finish_loop)(g + (at), w ? w + (at) : NULL, length, alpha, divisor, NULL, NULL, \
                         penalty, by_reciprocal, 0, 0, exact); \
        SFX(two_pass_step)(o, param + (at), g + (at), s1 ? s1 + (at) : NULL, \
                           s2 ? s2 + (at) : NULL, s3 ? s3 + (at) : NULL, length, exact); \
    } while (0)
    FM_CAREFUL_WALK(n, FM_TWO_PASSES)
#undef FM_TWO_PASSES
    if (sum_g2 != NULL)
        *sum_g2 = SFX(sum_squares)(g, n);
}

/* One block's finish and step for a solver that keeps two passes: fm_finish_gradient and then
 * fm_optim_step, or (`watch`, as finish_step_block) the careful step. */
FM_INLINE void SFX(two_pass_block)(const fm_optim *o, REAL *g, REAL *param, int penalize,
                                   ptrdiff_t n, double alpha, double divisor, double *sum_w2,
                                   double *sum_g2, REAL *s1, REAL *s2, REAL *s3, double *watch)
{
    const REAL *w = penalize ? param : NULL;
#if EXACT_ROUTE && defined(FM_SUBNORMAL_FLAGS)
    fm_watching watching;
    if (watch != NULL && n > 0 && fm_subnormals_slow()) {
        if (fm_watch_begin(watch, &watching)) {
            const REAL alpha_r = (REAL)alpha, divisor_r = (REAL)divisor;
            const int penalty = alpha_r != 0 && w;  /* (as fm_finish_gradient's) */
            const int by_reciprocal = SFX(exact_reciprocal)(divisor_r);
#define FM_CAREFUL_TWO(p, r) \
            SFX(careful_two_pass)(o, g, param, w, s1, s2, s3, n, alpha_r, divisor_r, sum_w2, \
                                  sum_g2, p, r)
            if (penalty && by_reciprocal)
                FM_CAREFUL_TWO(1, 1);
            else if (penalty)
                FM_CAREFUL_TWO(1, 0);
            else if (by_reciprocal)
                FM_CAREFUL_TWO(0, 1);
            else
                FM_CAREFUL_TWO(0, 0);
#undef FM_CAREFUL_TWO
        } else {
            SFX(fm_finish_gradient)(g, w, n, alpha, divisor, sum_w2, sum_g2);
            SFX(fm_optim_step)(o, param, g, s1, s2, s3, n);
        }
        fm_watch_end(watch, n, &watching);
        return;
    }
#else
    (void)watch;
#endif
    SFX(fm_finish_gradient)(g, w, n, alpha, divisor, sum_w2, sum_g2);
    SFX(fm_optim_step)(o, param, g, s1, s2, s3, n);
}

FASTMLP_CLONES
void SFX(fm_finish_step)(const fm_optim *o, REAL *g, REAL *param, int penalize, ptrdiff_t n,
                         double alpha, double divisor, double *sum_w2, double *sum_g2, REAL *s1,
                         REAL *s2, REAL *s3, int stream, double *watch)
{
    const size_t bytes = (size_t)n * sizeof(REAL);
    void *block = NULL;
    REAL *out = param;
    int rule;
    if (o->solver == FM_SOLVER_ADAM)
        rule = FM_RULE_ADAM;
    else if (o->solver == FM_SOLVER_SGD)
        rule = o->nesterov ? FM_RULE_SGD_NESTEROV : FM_RULE_SGD;
    else if (o->solver == FM_SOLVER_ADAMW)
        rule = FM_RULE_ADAMW + (o->amsgrad ? 1 : 0) + (o->weight_decay != 0 ? 2 : 0);
    else {  /* the two passes */
        SFX(two_pass_block)(o, g, param, penalize, n, alpha, divisor, sum_w2, sum_g2, s1, s2, s3,
                            watch);
        return;
    }
    const REAL alpha_r = (REAL)alpha, divisor_r = (REAL)divisor;
    const int penalty = penalize && alpha_r != 0;
    const int by_reciprocal = SFX(exact_reciprocal)(divisor_r);
    double w2, g2;
    /* (from the thread's scratch, csrc/scratch.c: nothing is allocated inside an epoch) */
    if (stream && bytes >= FM_STREAM_MIN_BYTES
        && (block = fm_scratch(FM_SCRATCH_STEP, bytes + 64)) != NULL)
        out = (REAL *)((char *)block + (((uintptr_t)param - (uintptr_t)block) & 63));
    switch (rule * 4 + penalty * 2 + by_reciprocal) {
#define FM_FINISH_STEP(rule, p, r) \
    case (rule) * 4 + p * 2 + r: \
        SFX(finish_step_block)(o, g, param, out, s1, s2, s3, n, alpha_r, divisor_r, &w2, &g2, \
                               watch, p, r, rule); \
        break;
#define FM_FINISH_RULE(rule) FM_FINISH_STEP(rule, 0, 0) FM_FINISH_STEP(rule, 0, 1) \
    FM_FINISH_STEP(rule, 1, 0) FM_FINISH_STEP(rule, 1, 1)
    FM_FINISH_RULE(FM_RULE_ADAM) FM_FINISH_RULE(FM_RULE_SGD) FM_FINISH_RULE(FM_RULE_SGD_NESTEROV)
    FM_FINISH_RULE(FM_RULE_ADAMW) FM_FINISH_RULE(FM_RULE_ADAMW + 1)
    FM_FINISH_RULE(FM_RULE_ADAMW + 2) FM_FINISH_RULE(FM_RULE_ADAMW + 3)
#undef FM_FINISH_RULE
#undef FM_FINISH_STEP
    }
    if (block != NULL)
        fm_stream_copy(param, out, bytes);
    if (sum_w2 != NULL && penalize)
        *sum_w2 = w2;
    if (sum_g2 != NULL)
        *sum_g2 = g2;
}

#undef MUL
#undef DIV
#undef ADD
#undef SUB

FASTMLP_CLONES
void SFX(fm_optim_step)(const fm_optim *o, REAL *param, const REAL *grad, REAL *s1, REAL *s2,
                        REAL *s3, ptrdiff_t n)
{
    switch (o->solver) {
    case FM_SOLVER_SGD:
        SFX(fm_sgd_step)(param, grad, s1, n, o->lr, o->momentum, o->nesterov);
        break;
    case FM_SOLVER_ADAM:
        SFX(fm_adam_step)(param, grad, s1, s2, n, o->c0, o->beta_1, o->beta_2, o->eps);
        break;
    case FM_SOLVER_ADAMW:
        SFX(adamw)(o, param, grad, s1, s2, s3, n);
        break;
    default:
        SFX(two_pass_step)(o, param, grad, s1, s2, s3, n, 0);
        break;
    }
}

#endif
