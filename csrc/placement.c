/* Keeping the engine's OpenMP threads on different CPUs without pinning them.
 *
 * Measured on the project's 2-core KVM (Firecracker) machine: the kernel often wakes the
 * OpenMP worker on the CPU of the thread that woke it, the caller's, although the other CPU is
 * idle (a halted virtual CPU does not look idle to the guest's scheduler), or is shared with
 * another process. The two threads then take turns on one CPU; the worker sleeps at the end of
 * a parallel region and is woken onto the same CPU again, batch after batch. `small` epochs
 * (partial_fit, 0.3 s pauses between epochs) took 48 ms instead of 10; with a busy process on
 * the other core, 52 ms back to back. OMP_PROC_BIND=true avoids it by pinning every thread, the
 * caller's own too, for the life of the process, which a library must not do to its caller
 * (two processes pinned alike share one CPU).
 *
 * Instead, a worker that finds itself on the caller's CPU at the start of a mini-batch (or of a
 * block of rows to predict) moves off it: it narrows its own affinity to the CPUs it may use
 * minus that one (the kernel migrates it at once) and puts the mask back as it was. Nothing stays
 * pinned; the scheduler may move the thread again later. Measured: 10-14 ms with the pauses, 16-17
 * ms beside the busy process; unchanged back to back on a quiet machine. FASTMLP_NO_SPREAD=1 turns
 * it off. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdlib.h>
#include <time.h>
#include "fm_openmp.h"
#if defined(__linux__)
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#if defined(__linux__) || defined(__APPLE__)
/* A clock's reading in seconds: the monotonic wall clock's (the split's timing, a helper's
 * slice) or the thread's CPU time (a helper's slice). */
static double fm_clock(clockid_t clock)
{
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
#endif

int fm_current_cpu(void)
{
#if defined(__linux__)
    return sched_getcpu();
#else
    return -1;
#endif
}

#if defined(__linux__)
/* The calling thread's CPUs (*allowed) and the same but `cpu` (*others): whether a thread may
 * move off `cpu` (it is one of at least two, and FASTMLP_NO_SPREAD is not set). For
 * fm_leave_cpu, and for the split's helper at its creation (split_helper_narrow). */
static int fm_cpus_but(int cpu, cpu_set_t *allowed, cpu_set_t *others)
{
    static int disabled = -1;  /* FASTMLP_NO_SPREAD, read once (threads may race to read it:
                                * they all store the same value, atomically) */
    int off = fm_load_flag(&disabled);
    if (off < 0) {
        off = getenv("FASTMLP_NO_SPREAD") != NULL;
        fm_store_flag(&disabled, off);
    }
    if (off || cpu < 0 || cpu >= CPU_SETSIZE || sched_getaffinity(0, sizeof *allowed, allowed) != 0
        || !CPU_ISSET(cpu, allowed) || CPU_COUNT(allowed) < 2)
        return 0;
    *others = *allowed;
    CPU_CLR(cpu, others);
    return 1;
}
#endif

void fm_leave_cpu(int cpu)
{
#if defined(__linux__)
    cpu_set_t allowed, others;
    if (cpu < 0 || sched_getcpu() != cpu || !fm_cpus_but(cpu, &allowed, &others))
        return;
    if (sched_setaffinity(0, sizeof others, &others) == 0)
        sched_setaffinity(0, sizeof allowed, &allowed);
#else
    (void)cpu;
#endif
}

/* A short sleep between looks at a count (fm_wait_count says why): 20 us asked, 30-100 us
 * taken with the timer's slack. */
void fm_nap(void)
{
#if defined(__linux__) || defined(__APPLE__) || defined(__unix__)
    struct timespec pause = {0, 20000};
    nanosleep(&pause, NULL);
#endif
}

void fm_yield_cpu(void)
{
#if defined(__linux__) || defined(__APPLE__) || defined(__unix__)
    sched_yield();
#endif
}

/* The pool's call to a batch (fastmlp/_engine/_schedule.pxd's Pool): a helper waits for *value
 * to change from `seen` as fm_wait_count waits for a count (spins ~20 us, yields ~50 us), then
 * sleeps until the caller's fm_call wakes it: on a futex where Linux has one, so that a helper
 * that the caller leaves out (one-thread batches, the run-time choice's) costs no CPU, else in
 * naps. `sleepers` counts the helpers that may be asleep: fm_call makes its system call only
 * then. Both sides store, then load the other's word, sequentially consistent, so that either
 * the caller sees a sleeper or the sleeper sees the new value before it sleeps (and the futex
 * call returns at once if the value changed in between). */
#if defined(__GNUC__) || defined(__clang__)
#define FM_LOAD_SC(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define FM_STORE_SC(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define FM_ADD_SC(p, v) __atomic_add_fetch((p), (v), __ATOMIC_SEQ_CST)
#else
#define FM_LOAD_SC(p) (*(volatile int *)(p))
#define FM_STORE_SC(p, v) (*(volatile int *)(p) = (v))
#define FM_ADD_SC(p, v) (*(volatile int *)(p) += (v))
#endif

/* Whether a wait on a word is over: `reach` waits for it to reach `ref`, else to leave it. */
static int fm_arrived(int now, int ref, int reach) { return reach ? now >= ref : now != ref; }

/* `count` pauses (FM_PAUSE) */
static void fm_pauses(int count)
{
    int k;
    for (k = 0; k < count; k++)
        FM_PAUSE();
}

/* Both waits: spins, yields (with `keep`, a pool helper's wait for a call, it spins on instead:
 * fm_helper_slice's note), then sleeps on the word (the futex call returns at once if the word
 * changed after the look); returns the word's value that ended it. With `away`, where the waker
 * runs (a CPU, read as the sleep begins): the sleeper leaves that CPU out of its mask while it
 * sleeps and puts the mask back as it wakes (the split's helper: its note). */
static int fm_wait_word(int *word, int ref, int reach, int *sleepers, const int *away,
                        int keep)
{
    int looks, now;
#if defined(__linux__)
    cpu_set_t allowed, others;
    int narrowed = 0;
#else
    (void)away;
#endif
    for (looks = 0; looks < FM_WAIT_SPINS + FM_WAIT_YIELDS; looks++) {
        now = FM_LOAD_SC(word);
        if (fm_arrived(now, ref, reach))
            return now;
        if (looks < FM_WAIT_SPINS)
            FM_PAUSE();
        else if (keep && fm_helper_slices)
            fm_pauses(FM_YIELD_PAUSES);  /* a helper keeps its CPU: fm_helper_slice's note */
        else
            fm_yield_cpu();
    }
    for (;;) {
        FM_ADD_SC(sleepers, 1);
        now = FM_LOAD_SC(word);
        if (!fm_arrived(now, ref, reach)) {
#if defined(__linux__)
            if (away != NULL && !narrowed)
                narrowed = fm_cpus_but(fm_load_flag(away), &allowed, &others)
                           && sched_setaffinity(0, sizeof others, &others) == 0;
#endif
#if defined(__linux__) && defined(SYS_futex)
            syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, now, NULL, NULL, 0);
#else
            fm_nap();
#endif
            now = FM_LOAD_SC(word);
        }
        FM_ADD_SC(sleepers, -1);
        if (fm_arrived(now, ref, reach)) {
#if defined(__linux__)
            if (narrowed)
                sched_setaffinity(0, sizeof allowed, &allowed);
#endif
            return now;
        }
    }
}

/* Both wakes, after the word's store: a system call only where a waiter may sleep. */
static void fm_wake_sleepers(int *word, int *sleepers)
{
#if defined(__linux__) && defined(SYS_futex)
    if (FM_LOAD_SC(sleepers) > 0)
        syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
    (void)word;
    (void)sleepers;
#endif
}

int fm_wait_call(int *value, int seen, int *sleepers, const int *away, int keep)
{
    return fm_wait_word(value, seen, 0, sleepers, away, keep);
}

void fm_call(int *value, int set, int *sleepers)
{
    FM_STORE_SC(value, set);
    fm_wake_sleepers(value, sleepers);
}

/* The caller's wait, at a batch's end, for the jobs its helpers claimed (*done to reach
 * `target`), and a helper's count of a job done: as fm_wait_call and fm_call, on the count. A
 * nap (fm_wait_count's) would oversleep the helper's last job by up to ~100 us a batch; the
 * futex wakes the caller as the count arrives. */
void fm_wait_done(int *done, int target, int *sleepers)
{
    fm_wait_word(done, target, 1, sleepers, NULL, 0);
}

void fm_done(int *done, int *sleepers)
{
    FM_ADD_SC(done, 1);
    fm_wake_sleepers(done, sleepers);
}

/* A helper's time slices (the epoch's pool: _schedule.pxd's pool_claim_jobs). Beside a process
 * that keeps a CPU busy, the helper that shares that CPU runs in the OS's time slices: three
 * spinning threads on the 2-core AMD EPYC VM (HZ 250; a /tmp C program, 2026-12-07) each ran
 * ~4 ms, one tick, then waited ~4 ms. A helper preempted inside a job holds its batch: the
 * caller, done with every other job, waits for that one (and its own next jobs may need it)
 * until the helper's next slice, milliseconds, where `mnist`'s batch takes ~2.7 ms on one
 * thread. So before each job it claims, a helper looks at how long it has run since it last
 * came back to its CPU, and if the job it expects would end past FM_SLICE_END of a tick, it
 * yields first (fm_slice_look): the slice then ends between two jobs, while the caller takes
 * the rest of the batch. Where nothing else wants the CPU the yield returns at once (~0.5 us,
 * one every few ms of jobs) and a slice begins. And a helper waiting for its next call does
 * not yield (fm_wait_word): each yield there handed the busy process the CPU for the rest of
 * its slice, and the batches called meanwhile went without the helper.
 *
 * A slice is taken as one tick (the coarse clock's resolution), as traced here; where the OS
 * gives longer ones a helper yields earlier than it needs to (not measured). Jobs of
 * FM_SLICE_LONG of a tick or more are never held back (`wide`'s: a slice holds too few).
 * Measured there beside a spinning process, one model's epochs in turns with both off and on,
 * each epoch's batches in turns of 16 on two threads and on one (`python
 * benchmarks/helper_slices.py W --seconds 180 --busy`, 120 s for the last two): two threads'
 * batches over one thread's, the median epoch, `mnist` 0.860 against 0.903 off (batches over
 * twice the one-thread median 2.1 % against 3.9 %), `mnist-f64` 0.838 against 0.912, `wide`
 * 0.819 against 0.835; in a trial build `mnist` 0.898 with the yields before jobs alone, 0.887
 * with the spinning wait alone, 0.857 with both, against 0.915. Without the busy process
 * `wide` 0.515 against 0.510 (not one yield), and in the trial `mnist` 0.557 against 0.559,
 * `tiny-batch` 0.596 against 0.592. fm_helper_slices 0 turns both off (tests and benchmarks:
 * the engine's helper_slices).
 *
 * Tried and not built (2-core AMD EPYC VM, Zen 4, 2026-12-08): the caller in its helper's
 * place. Where the caller is the thread that shares the busy CPU, off it no batch starts and
 * the helper has nothing to do; a trial build had the caller of a two-thread batch move off
 * its CPU (fm_leave_cpu) at the batch's start where getrusage's count of involuntary context
 * switches had grown since the batch before, so that the helper, which moves off the caller's
 * CPU as it claims a job, would share the busy one instead. Two threads forced on every
 * `mnist` batch beside a spinning process, epochs in turns with the move on, off and on one
 * thread (a /tmp script, 60 s, half scale): 1.35x the one-thread epoch on against 1.09 off
 * (57 moves an epoch of 117 batches: the caller and the helper, both on the CPU it moved to,
 * preempted each other until the helper moved, and the caller moved back); with the batch
 * after a move left out, 1.08 against 0.89 (35 moves an epoch). The count cannot tell the
 * busy process from the helper: not built. */
int fm_helper_slices = 1;
int fm_helper_yields;  /* how many times a helper yielded before a job (tests, benchmarks) */

int fm_slice_look(fm_slice *s, double wall, double cpu, int ran)
{
    const int gap = s->wall < 0.0 || (wall - s->wall) - (cpu - s->cpu) > FM_SLICE_GAP;
    if (gap)  /* back on the CPU: since the earliest time the two clocks allow */
        s->start = wall - (s->wall < 0.0 ? 0.0 : cpu - s->cpu);
    else if (ran < 0)  /* it yielded and nothing else wanted the CPU: a slice of its own */
        s->start = wall;
    else if (ran > 0)  /* a job's time, remembered as a decaying maximum */
        s->job = wall - s->wall > 0.75 * s->job ? wall - s->wall : 0.75 * s->job;
    s->wall = wall;
    s->cpu = cpu;
    return ran >= 0 && s->job < FM_SLICE_LONG * s->tick
           && wall - s->start + s->job > FM_SLICE_END * s->tick;
}

#if defined(__linux__)
/* The OS's tick (the coarse clock's resolution), 4 ms where it cannot say or says nonsense */
static double fm_tick(void)
{
    struct timespec res;
    double tick = clock_getres(CLOCK_MONOTONIC_COARSE, &res) == 0
                  ? (double)res.tv_sec + 1e-9 * (double)res.tv_nsec : 0.0;
    return tick >= 1e-3 && tick <= 20e-3 ? tick : 4e-3;
}

static __thread fm_slice helper_slice = {-1.0, 0.0, 0.0, 0.0, 0.0};
#endif

void fm_helper_slice(int ran)
{
#if defined(__linux__)
    fm_slice *s = &helper_slice;
    if (!fm_helper_slices)
        return;
    if (s->tick <= 0.0)
        s->tick = fm_tick();
    if (fm_slice_look(s, fm_clock(CLOCK_MONOTONIC), fm_clock(CLOCK_THREAD_CPUTIME_ID), ran)) {
        FM_ADD_SC(&fm_helper_yields, 1);
        sched_yield();
        fm_slice_look(s, fm_clock(CLOCK_MONOTONIC), fm_clock(CLOCK_THREAD_CPUTIME_ID), -1);
    }
#else
    (void)ran;
#endif
}

/* Whether a few-row prediction splits its products over two threads (csrc/small_product.c's
 * Design says why): the calling thread's own record, so that two Python threads predicting at
 * once (each with its own OpenMP team) judge their own helpers.
 *
 * Two threads pay only while the helper is still spinning from the split before: asleep, it
 * takes ~30-60 us to wake (a halted virtual CPU), against ~4 us saved. The split's helper
 * (fm_split_run, below) spins FM_WAIT_SPINS (2,000) pauses after a part, 40-80 us here, as
 * libgomp's workers did after a region with GOMP_SPINCOUNT 2,000 (fastmlp/_runtime.py); so a
 * prediction splits only when this thread's previous few-row prediction ended under
 * FM_SPLIT_GAP ago (calls back to back, as a serving loop makes them; the first of a run pays
 * the wake once). A helper that the OS starts late (beside a busy process it may wait a time
 * slice, milliseconds) shows as the caller's wait after its own part: a wait over
 * FM_SPLIT_LATE where the helper should have been spinning, or over FM_SPLIT_WAKE where it
 * had to wake, puts the next FM_SPLIT_BACKOFF_MIN calls on one thread, doubled at each late
 * split up to FM_SPLIT_BACKOFF_MAX and halved at each timely one with a spinning helper, so
 * that a busy machine costs at most one late call every few thousand. It had to wake where no
 * split region ended under FM_SPLIT_GAP before, and it should be spinning only FM_SPLIT_WAKE
 * after that wake: the calls right after the wake's, back to back, find it still on its way
 * and take its part back (FM_SPLIT_TAKEN) as the wake's did. Judged as a spinning helper's,
 * the second split after every wake was late, its back-off put the next calls on one thread
 * while the helper fell asleep again, and back-to-back calls split once in hundreds: traced
 * call by call on the 2-core Xeon VM (2026-12-07), `mnist`'s one-row predict_proba split ~1
 * call in 250 and took 1.08-1.22x the time of a forced split (_engine.few_row_split(1), in
 * the same process, in turns); with the window, most calls split and the rule took 1.00-1.11x
 * (benchmarks/ab_builds.py --workloads predict-one, 8 rounds: 0.880x the time). The
 * harness's predict-one (its `mnist` model after one partial_fit epoch, 200 different rows),
 * rounds of the two builds paired in two long-lived processes (a /tmp script): 0.978x and
 * 1.000x, where the split itself paid less (forced, 1.0-1.1x one thread's time in that
 * hour); beside a spinning process 0.969x and 0.972x. A model's compiled call (the
 * engine's SteadyPrediction) asks this rule only where its own choice between one thread and
 * two, by what each has cost its calls, says two. fm_split_mode: 0 this rule, 1 always split,
 * -1 never (tests and benchmarks: the engine's few_row_split). */
#if defined(__GNUC__) || defined(__clang__)
#define FM_SPLIT_GATE 1  /* (elsewhere a few-row prediction stays on one thread) */
static __thread double split_call_end = -1e30;    /* this thread's last few-row prediction's end */
static __thread double split_region_end = -1e30;  /* its last split region's end */
static __thread double split_woken = -1e30;       /* the start of its last split that woke */
static __thread int split_skip, split_backoff;
#endif
int fm_split_mode;

int fm_split_begin(double now)
{
    if (fm_split_mode != 0)
        return fm_split_mode > 0;
#if defined(FM_SPLIT_GATE)
    if (split_skip > 0) {
        split_skip--;
        return 0;
    }
    return now - split_call_end < FM_SPLIT_GAP;
#else
    (void)now;
    return 0;
#endif
}

void fm_split_end(double began, double now, double wait)
{
#if defined(FM_SPLIT_GATE)
    if (wait >= 0.0) {  /* it split */
        int spinning;
        if (began - split_region_end >= FM_SPLIT_GAP)
            split_woken = began;  /* the helper had to wake */
        /* whether the helper should have been spinning: since its wake it had FM_SPLIT_WAKE */
        spinning = began - split_woken >= FM_SPLIT_WAKE;
        if (wait > (spinning ? FM_SPLIT_LATE : FM_SPLIT_WAKE)) {
            split_backoff = split_backoff == 0 ? FM_SPLIT_BACKOFF_MIN
                            : split_backoff < FM_SPLIT_BACKOFF_MAX ? 2 * split_backoff
                            : FM_SPLIT_BACKOFF_MAX;
            split_skip = split_backoff;
        } else if (spinning) {
            split_backoff /= 2;
        }
        split_region_end = now;
    }
    split_call_end = now;
#else
    (void)began;
    (void)now;
    (void)wait;
#endif
}

/* The split's second thread (the engine's split_product): a helper of our own, not an OpenMP
 * team. A few-row prediction returns to Python between calls, so each split was a parallel region
 * of its own, and libgomp's start and end of a region cost more than the half of the product
 * they saved. A C harness of `mnist`'s one-row W1 (784 x 256 float32, halves of 128 columns, W
 * in L2, 1.5 us of the caller's own work between calls; 2-core Xeon VM, AVX-512): one thread
 * 4.7 us; two in a region 4.3-4.7 us (the region's start 0.3-0.7 us, its end 0.4-1.0, and each
 * half 3.3-4.2 us in the region against 2.8-2.9 out of it); the same halves handed to a
 * spinning thread of our own by a word, 2.9-3.4 us.
 *
 * The helper is one thread for the process, started by the first split that wants it (detached,
 * every signal blocked, so that Python's handlers stay on its own threads), and forgotten in a
 * forked child (pthread_atfork: the child has no such thread; its first split starts one). It
 * waits for a call as the epoch's pool helpers do (fm_wait_call: spins FM_WAIT_SPINS pauses,
 * ~40-80 us, as libgomp's workers after a region with GOMP_SPINCOUNT 2,000, yields, then sleeps
 * on a futex), so that fm_split_begin's rule (split only within FM_SPLIT_GAP of the call before)
 * still finds it spinning; it yields where a pool helper spins on (fm_helper_slice's note:
 * measured for the pool only). The part is claimed from a word (fm_claim), so a caller done with
 * its own part before the helper took the other takes it back and runs it itself: it never
 * waits for a helper that the OS has queued behind another process, only for one that is
 * running the part. One caller at a time holds it; another thread's split meanwhile runs both
 * parts itself. Either way each part is the same function of the same columns: the same bits. */
#if defined(FM_SPLIT_GATE) && (defined(__linux__) || defined(__APPLE__))
#define FM_SPLIT_HELPER 1
#include <pthread.h>
#include <signal.h>
#include <string.h>
static struct {
    long long word;           /* the part's claim: fm_claim's (generation, 1 job, next) */
    unsigned int generation;  /* the caller's split count (the word's generation) */
    int called, sleepers;     /* the generation the helper was called to (a futex word) */
    int done, waiting;        /* the part done (the caller may sleep on it) */
    int caller_cpu;           /* (the helper moves off it: fm_leave_cpu) */
    unsigned int fp_modes;    /* the caller's floating-point modes (the helper takes them) */
    fm_split_part_fn fn;
    void *part;
} split_helper;
static int split_helper_state;  /* 0 none, 1 starting, 2 running, -1 could not start */
static int split_helper_held;   /* a caller's split holds it */
static int split_helper_forks;  /* pthread_atfork's handler is registered */
static int split_helper_stalls; /* tests: the helper takes no part (one the OS has queued) */

static void split_helper_forget(void)
{
    memset(&split_helper, 0, sizeof split_helper);
    split_helper_state = 0;
    split_helper_held = 0;
}

/* The helper's life: it starts off its creator's CPU, then waits for calls; woken from its
 * sleep onto the caller's CPU, it moves off that before it looks for the part. A new thread
 * is put on its creator's CPU (as a woken one often is: see the top of this file) and runs
 * only when the OS next preempts the creator, ~1 ms later in a loop of 50 us splits (the
 * creator's spinning parts; tests/engine/test_few_row_split.py): so it is created with the
 * creator's CPU taken out of its mask (split_helper_narrow), and puts its mask back first.
 * So is a sleeping helper woken: onto the caller's CPU it runs only when the OS next preempts
 * the caller or balances the idle CPU, 1-4 ms later (HZ 250), every part taken back meanwhile
 * and judged late after FM_SPLIT_WAKE, and the back-off's calls on one thread let it fall
 * asleep again, to be woken onto the caller's CPU again. Traced on the 2-core AMD EPYC VM
 * (2026-12-07, a /tmp build without the back-off; `mnist`'s one-row predict_proba in bursts
 * of 200 calls 0.2 s apart): 16 of 23 wakes took 1-4 ms, 989 of 2,527 splits were taken back;
 * with the back-off, whole bursts went to one thread. So a sleeping helper leaves the caller's last
 * CPU out of its mask while it sleeps, and puts the mask back as it wakes (fm_wait_word's `away`):
 * nothing stays pinned while it runs, and a caller that moved meanwhile finds it as before. The
 * same bursts, builds in turns (a /tmp script, six pairs): the median call 8.2-11.6 us against
 * 12.8-14.9 before, nearly every call split; tools/fingerprint.py 303 of 303 equal. (The epoch's
 * pool helpers keep their wait: _schedule.pxd's pool_help says why.) */
#if defined(__linux__)
static cpu_set_t split_helper_mask;  /* the CPUs it may run on (its creator's) */
static int split_helper_narrowed;    /* it was created with its creator's CPU taken out */
#endif

static void *split_helper_main(void *unused)
{
    int seen = 0;
    (void)unused;
#if defined(__linux__)
    if (split_helper_narrowed)
        sched_setaffinity(0, sizeof split_helper_mask, &split_helper_mask);
#endif
    for (;;) {
        seen = fm_wait_call(&split_helper.called, seen, &split_helper.sleepers,
                            &split_helper.caller_cpu, 0);
        fm_leave_cpu(split_helper.caller_cpu);
        /* (fm_claim acquires what the caller wrote before publishing the word) */
        if (!fm_load_flag(&split_helper_stalls)
            && fm_claim(&split_helper.word, (unsigned int)seen) >= 0) {
            const unsigned int modes = split_helper.fp_modes, own = fm_fp_take(modes);
            split_helper.fn(split_helper.part);  /* under the caller's modes: fm_openmp.h */
            fm_fp_give_back(own, modes);
            fm_done(&split_helper.done, &split_helper.waiting);
        }
    }
    return NULL;
}

/* The new thread's mask: the creator's CPUs but the one it runs on (split_helper_main puts
 * the creator's back), unless FASTMLP_NO_SPREAD (as fm_leave_cpu) or one CPU. */
static void split_helper_narrow(pthread_attr_t *attr)
{
#if defined(__linux__)
    cpu_set_t others;
    split_helper_narrowed = fm_cpus_but(sched_getcpu(), &split_helper_mask, &others)
                            && pthread_attr_setaffinity_np(attr, sizeof others, &others) == 0;
#else
    (void)attr;
#endif
}

/* Whether the helper runs (started here by the first caller that asks). */
static int split_helper_up(void)
{
    int state = __atomic_load_n(&split_helper_state, __ATOMIC_ACQUIRE), started;
    pthread_attr_t attr;
    pthread_t thread;
    sigset_t all, before;
    if (state != 0)
        return state == 2;
    if (!__atomic_compare_exchange_n(&split_helper_state, &state, 1, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
        return state == 2;
    if (!split_helper_forks)
        split_helper_forks = pthread_atfork(NULL, NULL, split_helper_forget) == 0;
    started = split_helper_forks && pthread_attr_init(&attr) == 0;
    if (started) {
        started = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0;
        sigfillset(&all);
        if (started && pthread_sigmask(SIG_SETMASK, &all, &before) == 0) {
            split_helper_narrow(&attr);
            started = pthread_create(&thread, &attr, split_helper_main, NULL) == 0;
            pthread_sigmask(SIG_SETMASK, &before, NULL);
        } else {
            started = 0;
        }
        pthread_attr_destroy(&attr);
    }
    __atomic_store_n(&split_helper_state, started ? 2 : -1, __ATOMIC_RELEASE);
    return started;
}
#endif

void fm_split_helper_stall(int stall)
{
#if defined(FM_SPLIT_HELPER)
    fm_store_flag(&split_helper_stalls, stall != 0);
#else
    (void)stall;
#endif
}

double fm_split_run(fm_split_part_fn fn, void *mine, void *theirs)
{
#if defined(FM_SPLIT_HELPER)
    double own_end, after;
    int free_ = 0, taken_back;
    if (split_helper_up()
        && __atomic_compare_exchange_n(&split_helper_held, &free_, 1, 0, __ATOMIC_ACQUIRE,
                                       __ATOMIC_RELAXED)) {
        const unsigned int generation = ++split_helper.generation;
        split_helper.fn = fn;
        split_helper.part = theirs;
        fm_store_flag(&split_helper.caller_cpu, fm_current_cpu());  /* (a sleeping helper reads) */
        split_helper.fp_modes = fm_fp_modes();
        split_helper.done = 0;
        fm_publish_jobs(&split_helper.word, generation, 1);  /* (release: all of the above) */
        fm_call(&split_helper.called, (int)generation, &split_helper.sleepers);
        fn(mine);
        own_end = fm_clock(CLOCK_MONOTONIC);
        taken_back = fm_claim(&split_helper.word, generation) >= 0;
        if (taken_back)
            fn(theirs);  /* the helper had not started it */
        else
            fm_wait_done(&split_helper.done, 1, &split_helper.waiting);
        __atomic_store_n(&split_helper_held, 0, __ATOMIC_RELEASE);
        after = fm_clock(CLOCK_MONOTONIC) - own_end;
        return taken_back && after < FM_SPLIT_TAKEN ? FM_SPLIT_TAKEN : after;
    }
#endif
    fn(mine);
    fn(theirs);
    return -1.0;
}

/* Seconds for which the CPUs this process may run on have been idle since boot (the idle and
 * iowait columns of /proc/stat's per-CPU lines, summed over the affinity mask), plus the CPU
 * seconds this process has run, or -1 where there is no such count (not Linux, /proc not
 * mounted). Over a wall-clock window, the difference of two readings minus the window is how
 * many CPUs stood free beside one running thread of ours, whether or not that thread paused
 * meanwhile (a pause idles its CPU and stops its clock alike): the run-time thread choice
 * reads it before it probes all threads while one thread has the batches (_threads.pxd's
 * gate). The idle counts tick in clock ticks (10 ms at USER_HZ 100), so only a window of ~0.1 s
 * or more says anything. No allocation: the file is read in blocks and parsed line by line, up
 * to the first line that is not a CPU's (they come first). */
double fm_spare_seconds(void)
{
#if defined(__linux__)
    cpu_set_t allowed;
    char block[4096], line[512];
    unsigned long long idle = 0, field[5];
    long tick = sysconf(_SC_CLK_TCK);
    struct timespec own;
    ssize_t got, i;
    size_t len = 0;
    int fd, k, cpu, seen = 0, done = 0;
    char *p, *end;
    if (tick <= 0 || sched_getaffinity(0, sizeof allowed, &allowed) != 0
        || clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &own) != 0)
        return -1.0;
    fd = open("/proc/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1.0;
    while (!done && (got = read(fd, block, sizeof block)) > 0) {
        for (i = 0; i < got; i++) {
            if (block[i] != '\n') {
                if (len < sizeof line - 1)
                    line[len++] = block[i];
                continue;
            }
            line[len] = '\0';
            len = 0;
            if (strncmp(line, "cpu", 3) != 0) {  /* past the CPU lines */
                done = 1;
                break;
            }
            if (line[3] < '0' || line[3] > '9')  /* "cpu " is the machine's total */
                continue;
            cpu = (int)strtol(line + 3, &p, 10);
            for (k = 0; k < 5; k++) {  /* user nice system idle iowait */
                field[k] = strtoull(p, &end, 10);
                if (end == p)
                    break;
                p = end;
            }
            if (k == 5 && cpu >= 0 && cpu < CPU_SETSIZE && CPU_ISSET(cpu, &allowed)) {
                idle += field[3] + field[4];
                seen++;
            }
        }
    }
    close(fd);
    if (!seen)
        return -1.0;
    return (double)idle / (double)tick + (double)own.tv_sec + 1e-9 * (double)own.tv_nsec;
#else
    return -1.0;
#endif
}
