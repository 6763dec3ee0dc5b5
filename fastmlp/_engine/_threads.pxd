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
# smoothed), keeps the faster choice, and now and then runs PROBE_BATCHES batches the other way
# to see whether the machine has changed: first at the third batch, FIRST_PROBE batches after
# a switch, then twice as many after every probe that confirms the choice, up to MAX_PROBE_GAP
# (probes of the slower choice then cost under 1 % of the batches' time). A probe's mean
# replaces that choice's estimate; the current choice's estimate is smoothed (weight 1/8 to
# each batch), each sample capped at twice the estimate, so that one slow batch neither flips
# it nor starts a probe; when it has grown by a third since the last probe settled it (a
# neighbour started), the other choice is probed at once. Both estimates are means: beside a busy core the threads' batches are fast when the
# OS happens to run both threads and slow when it time-slices one of them away, and a probe of
# one batch, judged against the current choice's mean, caught a fast one half of the time,
# switched, and paid the slow ones until the next probe switched back. One thread in a
# two-thread process beside a busy core was measured within ~7 % of a one-thread process
# (mnist shape: 0.172 against 0.161 s/epoch), the rest being where the OS puts the caller.
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

cdef enum:
    FIRST_PROBE = 8
    MAX_PROBE_GAP = 512
    PROBE_BATCHES = 3


cdef struct ThreadChoice:
    int most                 # the caller's thread count
    double per_row[2]        # smoothed seconds per row: [0] one thread, [1] `most` (0: unknown)
    int current              # 0 or 1: the choice for the coming batches
    long long until_probe    # batches before the other choice is probed (PROBE_BATCHES)
    long long gap            # batches between probes now
    double settled           # the current choice's estimate when the last probe confirmed it
    bint warm                # a first batch (buffers, threads starting) was left untimed
    int probed               # batches of the probe under way so far
    double probe_sum         # and the sum of their seconds per row


cdef inline void choice_init(ThreadChoice *c, int most) noexcept nogil:
    c.most = most
    c.per_row[0] = c.per_row[1] = 0.0
    c.current = 1
    c.until_probe = 2  # a first look at one thread soon: a fit may be short
    c.gap = FIRST_PROBE
    c.settled = 0.0
    c.warm = False
    c.probed = 0
    c.probe_sum = 0.0


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
            c.per_row[which] = (0.875 * c.per_row[which]
                                + 0.125 * min(seconds_per_row, 2.0 * c.per_row[which]))
        c.until_probe -= 1
        if c.settled > 0 and c.per_row[which] > 1.33 * c.settled:
            c.until_probe = 0  # the machine changed: look at the other choice now
            c.gap = FIRST_PROBE
        return
    c.probe_sum += seconds_per_row  # a probe's batch: until_probe stays 0 until it has them all
    c.probed += 1
    if c.probed < PROBE_BATCHES:
        return
    c.per_row[which] = c.probe_sum / c.probed
    c.probed = 0
    c.probe_sum = 0.0
    if c.per_row[which] < c.per_row[c.current]:
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
