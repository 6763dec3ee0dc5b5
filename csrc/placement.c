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
#include "fm_openmp.h"

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

void fm_yield_cpu(void)
{
#if defined(__linux__) || defined(__APPLE__) || defined(__unix__)
    sched_yield();
#endif
}
