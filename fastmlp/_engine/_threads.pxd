# How many threads a mini-batch gets: all the caller allows, or one, chosen at run time by what
# each choice has just cost. The only part of the schedule that depends on the machine's state.
#
# Design
# ------
# Every block of every pass is the same whatever the thread count (_schedule.pxd), so the choice
# changes no result bit, only the time. On a quiet machine two threads beat one (1.7-1.9x on
# mnist); beside a process that keeps a core busy, the thread that shares that core gets half of
# it, every pass waits for it at its barrier, and two threads were measured slower than one on
# every workload but `wide` (small 1.41x, tiny-batch 1.58x, mnist 1.34x, mnist-f64 1.19x the
# one-thread epoch; benchmarks/harness_runs.py's busy-core run, 2-core Intel Xeon VM). No
# pinning, no guess from the load average: the trainer times each full batch (seconds per row,
# smoothed), keeps the faster choice, and now and then runs one batch the other way to see
# whether the machine has changed: first at the third batch, FIRST_PROBE batches after a
# switch, then twice as many after every probe that confirms the choice, up to MAX_PROBE_GAP
# (a probe of the slower choice then costs well under 1 % of the batches' time). A probe's
# time replaces that choice's estimate (noise only ever slows a batch, so one fast probe is
# real); the current choice's estimate is smoothed, each sample capped at twice the estimate,
# so one slow batch does not flip it, and when it has grown by a third since the last probe
# settled it (a neighbour started), the other choice is probed at once. One thread in a
# two-thread process beside a busy core was measured within ~7 % of a one-thread process
# (mnist shape: 0.172 against 0.161 s/epoch), the rest being where the OS puts the caller.
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

cdef enum:
    FIRST_PROBE = 8
    MAX_PROBE_GAP = 256


cdef struct ThreadChoice:
    int most                 # the caller's thread count
    double per_row[2]        # smoothed seconds per row: [0] one thread, [1] `most` (0: unknown)
    int current              # 0 or 1: the choice for the coming batches
    long long until_probe    # batches before the other choice is tried once
    long long gap            # batches between probes now
    double settled           # the current choice's estimate when the last probe confirmed it
    bint warm                # a first batch (buffers, threads starting) was left untimed


cdef inline void choice_init(ThreadChoice *c, int most) noexcept nogil:
    c.most = most
    c.per_row[0] = c.per_row[1] = 0.0
    c.current = 1
    c.until_probe = 2  # a first look at one thread soon: a fit may be short
    c.gap = FIRST_PROBE
    c.settled = 0.0
    c.warm = False


cdef inline int choice_next(const ThreadChoice *c) noexcept nogil:
    """Which choice the coming batch takes: 1 (all threads) or 0 (one)."""
    if c.most <= 1:
        return 0
    if c.until_probe <= 0:
        return 1 - c.current
    return c.current


cdef inline int choice_threads(const ThreadChoice *c, int which) noexcept nogil:
    return c.most if which == 1 else 1


cdef inline void choice_record(ThreadChoice *c, int which, double seconds_per_row) noexcept nogil:
    """What a full batch cost with choice `which`; the next choice follows from it."""
    if c.most <= 1:
        return
    if not c.warm:
        c.warm = True
        return
    if which == c.current:
        if c.per_row[which] == 0.0:
            c.per_row[which] = seconds_per_row
        else:
            c.per_row[which] = (0.75 * c.per_row[which]
                                + 0.25 * min(seconds_per_row, 2.0 * c.per_row[which]))
        c.until_probe -= 1
        if c.settled > 0 and c.per_row[which] > 1.33 * c.settled:
            c.until_probe = 0  # the machine changed: look at the other choice now
            c.gap = FIRST_PROBE
        return
    c.per_row[which] = seconds_per_row  # a probe
    if seconds_per_row < c.per_row[c.current]:
        c.current = which
        c.gap = FIRST_PROBE
    elif c.gap < MAX_PROBE_GAP:
        c.gap = 2 * c.gap
    c.settled = c.per_row[c.current]
    c.until_probe = c.gap


cdef inline double seconds_now() noexcept nogil:
    cdef timespec t
    clock_gettime(CLOCK_MONOTONIC, &t)
    return t.tv_sec + 1e-9 * t.tv_nsec
