/* OpenMP queries that also compile without OpenMP (the serial build), and the flag the engine's
 * threads share to abandon a mini-batch on Ctrl-C (written by one thread, read by all). */
#ifndef FASTMLP_OPENMP_H
#define FASTMLP_OPENMP_H
#ifdef _OPENMP
#include <omp.h>
#define FASTMLP_HAVE_OPENMP 1
#else
#include <time.h>
#define FASTMLP_HAVE_OPENMP 0
static inline int omp_get_max_threads(void) { return 1; }
/* Serial build: processor time, which runs as wall time does while the one thread computes. */
static inline double omp_get_wtime(void) { return (double)clock() / CLOCKS_PER_SEC; }
#endif

/* csrc/placement.c: the CPU the calling thread runs on (-1 where unknown), and a worker's move
 * off the caller's CPU when the kernel put both on one. */
int fm_current_cpu(void);
void fm_leave_cpu(int cpu);
/* and the seconds the CPUs it may run on have stood idle, plus the process's CPU seconds (-1
 * where unknown) */
double fm_spare_seconds(void);

#if defined(__GNUC__) || defined(__clang__)
static inline int fm_load_flag(const int *flag) { return __atomic_load_n(flag, __ATOMIC_RELAXED); }
static inline void fm_store_flag(int *flag, int value)
{
    __atomic_store_n(flag, value, __ATOMIC_RELAXED);
}
#else
static inline int fm_load_flag(const int *flag) { return *(const volatile int *)flag; }
static inline void fm_store_flag(int *flag, int value) { *(volatile int *)flag = value; }
#endif

/* A mini-batch's jobs in one parallel region (fastmlp/_engine/_schedule.pxd, batch_jobs; in an
 * epoch's pool they are claimed with fm_claim, below, instead of fm_take_next): each
 * thread takes the next job from a shared counter; a row job counts each layer's delta done for
 * its rows (release: the delta is written before the count says so), and a weight job waits until
 * every row block's count is in (acquire), or until the batch is abandoned. */
#if defined(__GNUC__) || defined(__clang__)
static inline int fm_take_next(int *counter)
{
    return __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}
static inline void fm_count_done(int *count) { __atomic_add_fetch(count, 1, __ATOMIC_RELEASE); }
static inline int fm_count(const int *count) { return __atomic_load_n(count, __ATOMIC_ACQUIRE); }
#if defined(__x86_64__) || defined(__i386__)
#define FM_PAUSE() __builtin_ia32_pause()
#else
#define FM_PAUSE() ((void)0)
#endif
#else  /* a compiler without the GNU builtins: OpenMP's atomics and flushes */
static inline int fm_take_next(int *counter)
{
    int taken;
#ifdef _OPENMP
#pragma omp atomic capture
#endif
    taken = (*counter)++;
    return taken;
}
static inline void fm_count_done(int *count)
{
#ifdef _OPENMP
#pragma omp flush
#pragma omp atomic
#endif
    (*count)++;
}
static inline int fm_count(const int *count)
{
    int value;
#ifdef _OPENMP
#pragma omp atomic read
#endif
    value = *count;
#ifdef _OPENMP
#pragma omp flush
#endif
    return value;
}
#define FM_PAUSE() ((void)0)
#endif

/* The caller's floating-point modes, taken by every thread that runs a job of its call. A
 * thread keeps the modes it had when it was created, and OpenMP's workers (and the split's
 * helper, csrc/placement.c) are created once, at the first parallel region: a caller that sets
 * flush-to-zero or denormals-are-zero later (torch.set_flush_denormal(True), a library built
 * with -ffast-math loaded after the first fit) ran its own jobs under those modes and left the
 * workers' under IEEE's, so a result's bits hung on which thread took which job (a fit of
 * inputs near the subnormal range on two threads differed from one thread's, and from run to
 * run: tests/engine/test_determinism.py). So the caller reads its modes (fm_fp_modes) where it
 * reads its CPU for fm_leave_cpu, and a worker takes them for the jobs it runs (fm_fp_take)
 * and puts its own back after (fm_fp_give_back); where they are the same already, which is
 * always but under such a caller, that is one read of a register (stmxcsr). The modes are
 * MXCSR's controls: flush-to-zero, denormals-are-zero, the rounding and the exception masks,
 * not its sticky flags (each thread's own, as the subnormal watches of csrc/optimizers.c and
 * csrc/rows_product.c read them). Elsewhere than x86 (no MXCSR) the workers keep their own. */
#if defined(__SSE2__) || defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#define FM_FP_CONTROLS 0xffc0u
static inline unsigned int fm_fp_modes(void) { return _mm_getcsr() & FM_FP_CONTROLS; }
static inline unsigned int fm_fp_take(unsigned int modes)
{
    const unsigned int csr = _mm_getcsr();
    if ((csr & FM_FP_CONTROLS) != modes)
        _mm_setcsr((csr & ~FM_FP_CONTROLS) | modes);
    return csr & FM_FP_CONTROLS;
}
static inline void fm_fp_give_back(unsigned int own, unsigned int modes)
{
    if (own != modes)
        _mm_setcsr((_mm_getcsr() & ~FM_FP_CONTROLS) | own);
}
#else
static inline unsigned int fm_fp_modes(void) { return 0; }
static inline unsigned int fm_fp_take(unsigned int modes) { return modes; }
static inline void fm_fp_give_back(unsigned int own, unsigned int modes)
{
    (void)own;
    (void)modes;
}
#endif

/* Spin until *count reaches target, or *stop (if given) is set; returns whether it was reached.
 * It spins ~20 us, then yields the CPU between looks for a while (~50 us where no other thread
 * wants this CPU), then sleeps between looks (fm_nap). The sleep is what matters beside a busy
 * process: the thread it waits for may be queued behind that process on the other CPU for a
 * time slice of the OS (milliseconds), and a thread that yields keeps its own CPU busy, so the
 * kernel never moves the queued thread onto it; a sleeping one idles it, and the kernel's
 * balancing pulls the queued thread over at once. Measured beside a spinning process (2-core
 * Intel Xeon VM, `python benchmarks/harness_runs.py --runs busy-core --scale 0.5 --repeats 3`,
 * two threads forced on every batch, a /tmp build): 2 threads over 1 on `mnist` 1.07-1.10 with
 * yields only, 0.88-0.95 with the sleep after 0, 100, 300 or 1,000 yields; `wide` 0.80-0.81
 * against 0.87-0.90. The yields first keep short waits on a quiet machine from sleeping (a sleep
 * there lasts 30-100 us, the timer's slack): builds in turns on `tiny-batch`
 * (benchmarks/ab_builds.py, 5-7 rounds) 1.048x the epoch with no yields, 0.978-0.988x with 100
 * or 300; `mnist`, `wide` 1.000x. (A futex that the count's writer wakes would end the sleep
 * sooner; not needed here.) */
void fm_yield_cpu(void);
void fm_nap(void);
enum {
    FM_WAIT_SPINS = 2000,  /* as GOMP_SPINCOUNT, set at load (fastmlp/_runtime.py) */
    FM_WAIT_YIELDS = 300   /* then this many yields before the naps */
};
static inline int fm_wait_count(const int *count, int target, const int *stop)
{
    int looks = 0;
    while (fm_count(count) < target) {
        if (stop != NULL && fm_load_flag(stop))
            return 0;
        if (looks < FM_WAIT_SPINS) {
            looks++;
            FM_PAUSE();
        } else if (looks < FM_WAIT_SPINS + FM_WAIT_YIELDS) {
            looks++;
            fm_yield_cpu();
        } else {
            fm_nap();
        }
    }
    return 1;
}

/* The epoch's pool (fastmlp/_engine/_schedule.pxd's Pool): a batch's jobs are claimed from one
 * 64-bit word, (generation << 32) | (jobs << 16) | next, by a compare-and-swap that fails once
 * the caller has moved to another batch. A helper that wakes late for a batch therefore cannot
 * take a job of the next one, and the caller, which waits only for jobs that were claimed,
 * never waits for a helper to arrive. (OpenMP's parallel region ends in a barrier that waits
 * for every thread of the team, including one that the OS has queued behind another process
 * and that would find no job left.) */
enum { FM_POOL_MAX_JOBS = 0xffff };
#if defined(__GNUC__) || defined(__clang__)
static inline void fm_publish_jobs(long long *word, unsigned int generation, int jobs)
{
    __atomic_store_n(word, (long long)(((unsigned long long)generation << 32)
                                       | ((unsigned long long)jobs << 16)), __ATOMIC_RELEASE);
}
/* A job of `generation` from one end of the word's jobs not yet claimed (`last`: the last one,
 * as a thief takes it, the word's jobs counting down; else the next, its next counting up), or
 * -1 when it has none left or the word is another's: fm_claim and fm_claim_last, below. */
static inline int fm_claim_end(long long *word, unsigned int generation, int last)
{
    long long w = __atomic_load_n(word, __ATOMIC_ACQUIRE);
    for (;;) {
        int next = (int)(w & 0xffff), jobs = (int)((w >> 16) & 0xffff);
        if ((unsigned int)((unsigned long long)w >> 32) != generation || next >= jobs)
            return -1;
        if (__atomic_compare_exchange_n(word, &w, last ? w - (1LL << 16) : w + 1, 0,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            return last ? jobs - 1 : next;
    }
}
#else
static inline void fm_publish_jobs(long long *word, unsigned int generation, int jobs)
{
#ifdef _OPENMP
#pragma omp critical(fm_pool_word)
#endif
    *word = (long long)(((unsigned long long)generation << 32) | ((unsigned long long)jobs << 16));
}
static inline int fm_claim_end(long long *word, unsigned int generation, int last)
{
    int taken = -1;
#ifdef _OPENMP
#pragma omp critical(fm_pool_word)
#endif
    {
        long long w = *word;
        const int next = (int)(w & 0xffff), jobs = (int)((w >> 16) & 0xffff);
        if ((unsigned int)((unsigned long long)w >> 32) == generation && next < jobs) {
            taken = last ? jobs - 1 : next;
            *word = last ? w - (1LL << 16) : w + 1;
        }
    }
    return taken;
}
#endif
/* The next job of `generation`, or -1 when it has none left or the word is another's. */
static inline int fm_claim(long long *word, unsigned int generation)
{
    return fm_claim_end(word, generation, 0);
}
/* The last job of `generation` not yet claimed (a thief's), or -1 as fm_claim. */
static inline int fm_claim_last(long long *word, unsigned int generation)
{
    return fm_claim_end(word, generation, 1);
}

/* csrc/placement.c: whether this thread's few-row prediction splits its products over two
 * threads (fm_split_begin; `now` CLOCK_MONOTONIC's seconds at its start, the engine's
 * seconds_now), and its end (fm_split_end; `began` that reading, `now` the one at its end,
 * `wait` the caller's longest wait for its helper after its own part, in seconds, or -1 where
 * it did not split). fm_split_mode: 0 the rule, 1 always split, -1 never (tests and
 * benchmarks: the engine's few_row_split). */
enum { FM_SPLIT_BACKOFF_MIN = 16, FM_SPLIT_BACKOFF_MAX = 4096 };
#define FM_SPLIT_GAP 30e-6
#define FM_SPLIT_LATE 10e-6
#define FM_SPLIT_WAKE 200e-6
/* A part the caller took back from a helper that had not started it counts as a wait of at
 * least this (fm_split_run): late where the helper should have been spinning, not where it
 * had to wake. (Taken back, the caller reads the other half of W from the other core's L2:
 * beside a spinning process, splits that kept trying took 1.02-1.08x the time of those that
 * backed off as a late helper makes them.) */
#define FM_SPLIT_TAKEN 20e-6
extern int fm_split_mode;
int fm_split_begin(double now);
void fm_split_end(double began, double now, double wait);

/* csrc/placement.c: fn(mine) on the calling thread and fn(theirs) on the split's helper thread
 * where it is free and takes it in time, else on the caller too (placement.c says how).
 * Returns the seconds the caller spent after its own part (waiting for the helper, or running
 * `theirs` itself), or -1 where no helper could be had (both parts ran here, one after the
 * other). */
typedef void (*fm_split_part_fn)(void *part);
double fm_split_run(fm_split_part_fn fn, void *mine, void *theirs);
/* (tests: with `stall`, the helper takes no part, as one that the OS has queued would not) */
void fm_split_helper_stall(int stall);

/* csrc/placement.c: a helper's wait for the caller to call it to another batch (*value to
 * change from `seen`; spins, yields (with `keep`, a pool helper's wait, spins on instead:
 * below), then sleeps on a futex where Linux has one, else naps; asleep, it leaves the CPU
 * *away out of its mask, where `away` is given: the caller's, onto which a wake would put it),
 * and the caller's call (stores `value`, wakes the sleepers). */
int fm_wait_call(int *value, int seen, int *sleepers, const int *away, int keep);
void fm_call(int *value, int set, int *sleepers);
/* and the caller's wait for the jobs claimed (*done to reach target), and a job's count */
void fm_wait_done(int *done, int target, int *sleepers);
void fm_done(int *done, int *sleepers);
/* A pool helper, before each job it claims (`ran`: after a job of its own), yields first where its
 * time slice would end inside the job (csrc/placement.c says why); fm_helper_slices 0 turns that
 * off, and its spin in place of yields while it waits for a call (fm_wait_call's `keep`; tests and
 * benchmarks). Its rule, on a helper's readings of its two clocks (seconds: the wall's, CPU
 * time's): returns whether to yield; `ran` -1 after a yield. */
typedef struct {
    double wall, cpu;  /* the last readings (wall < 0: none yet) */
    double start;      /* where the current slice began (wall clock) */
    double job;        /* a job's time: the decaying maximum of the last ones */
    double tick;       /* the OS's tick */
} fm_slice;
enum { FM_YIELD_PAUSES = 20 };  /* a pool helper's look in place of a yield (~0.5 us) */
#define FM_SLICE_GAP 200e-6  /* off the CPU this long between two readings: a new slice */
#define FM_SLICE_END 0.9     /* a job must end within this much of a tick from its slice's start */
#define FM_SLICE_LONG 0.25   /* a job this much of a tick or longer is never held back */
extern int fm_helper_slices, fm_helper_yields;
int fm_slice_look(fm_slice *s, double wall, double cpu, int ran);
void fm_helper_slice(int ran);
#endif
