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
 * minus that one (the kernel migrates it at once) and puts the mask back as it was. Nothing stays pinned; the scheduler
 * may move the thread again later. Measured: 10-14 ms with the pauses, 16-17 ms beside the
 * busy process; unchanged back to back on a quiet machine. FASTMLP_NO_SPREAD=1 turns it off. */
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

int fm_current_cpu(void)
{
#if defined(__linux__)
    return sched_getcpu();
#else
    return -1;
#endif
}

void fm_leave_cpu(int cpu)
{
#if defined(__linux__)
    static int disabled = -1;  /* FASTMLP_NO_SPREAD, read once (threads may race to read it:
                                * they all store the same value, atomically) */
    cpu_set_t allowed, others;
    int off;
    if (cpu < 0 || cpu >= CPU_SETSIZE || sched_getcpu() != cpu)
        return;
    off = fm_load_flag(&disabled);
    if (off < 0) {
        off = getenv("FASTMLP_NO_SPREAD") != NULL;
        fm_store_flag(&disabled, off);
    }
    if (off || sched_getaffinity(0, sizeof allowed, &allowed) != 0
        || !CPU_ISSET(cpu, &allowed) || CPU_COUNT(&allowed) < 2)
        return;
    others = allowed;
    CPU_CLR(cpu, &others);
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

/* Both waits: spins, yields, then sleeps on the word (the futex call returns at once if the
 * word changed after the look); returns the word's value that ended it. */
static int fm_wait_word(int *word, int ref, int reach, int *sleepers)
{
    int looks, now;
    for (looks = 0; looks < FM_WAIT_SPINS + FM_WAIT_YIELDS; looks++) {
        now = FM_LOAD_SC(word);
        if (fm_arrived(now, ref, reach))
            return now;
        if (looks < FM_WAIT_SPINS)
            FM_PAUSE();
        else
            fm_yield_cpu();
    }
    for (;;) {
        FM_ADD_SC(sleepers, 1);
        now = FM_LOAD_SC(word);
        if (!fm_arrived(now, ref, reach)) {
#if defined(__linux__) && defined(SYS_futex)
            syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, now, NULL, NULL, 0);
#else
            fm_nap();
#endif
            now = FM_LOAD_SC(word);
        }
        FM_ADD_SC(sleepers, -1);
        if (fm_arrived(now, ref, reach))
            return now;
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

int fm_wait_call(int *value, int seen, int *sleepers)
{
    return fm_wait_word(value, seen, 0, sleepers);
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
    fm_wait_word(done, target, 1, sleepers);
}

void fm_done(int *done, int *sleepers)
{
    FM_ADD_SC(done, 1);
    fm_wake_sleepers(done, sleepers);
}

/* Whether a few-row prediction splits its products over two threads (csrc/small_product.c's
 * Design says why): the calling thread's own record, so that two Python threads predicting at
 * once (each with its own OpenMP team) judge their own helpers.
 *
 * Two threads pay only while the helper is still spinning from the region before: asleep, it
 * takes ~30-60 us to wake (a halted virtual CPU), against ~4 us saved. libgomp's helper spins
 * GOMP_SPINCOUNT (2,000, fastmlp/_runtime.py) pauses after a region, 40-80 us here; so a
 * prediction splits only when this thread's previous few-row prediction ended under
 * FM_SPLIT_GAP ago (calls back to back, as a serving loop makes them; the first of a run pays
 * the wake once). A helper that the OS starts late (beside a busy process it may wait a time
 * slice, milliseconds) shows as the caller's wait after its own part: a wait over
 * FM_SPLIT_LATE where the helper should have been spinning (a split region ended under
 * FM_SPLIT_GAP before), or over FM_SPLIT_WAKE where it had to wake, puts the next
 * FM_SPLIT_BACKOFF_MIN calls on one thread, doubled at each late split up to
 * FM_SPLIT_BACKOFF_MAX and halved at each timely one with a spinning helper, so that a busy
 * machine costs at most one late call every few thousand. A model's compiled call (the
 * engine's SteadyPrediction) asks this rule only where its own choice between one thread and
 * two, by what each has cost its calls, says two. fm_split_mode: 0 this rule, 1 always split,
 * -1 never (tests and benchmarks: the engine's few_row_split). */
#if defined(__GNUC__) || defined(__clang__)
#define FM_SPLIT_GATE 1  /* (elsewhere a few-row prediction stays on one thread) */
static __thread double split_call_end = -1e30;    /* this thread's last few-row prediction's end */
static __thread double split_region_end = -1e30;  /* its last split region's end */
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
        /* whether the helper should have been spinning (else it had to wake) */
        const int spinning = began - split_region_end < FM_SPLIT_GAP;
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
