# How a two-thread batch stores its gathered rows, and its optimizer step's new W: through the
# caches, or past them with streaming stores, chosen at run time by what each way has just cost
# (the gather's own clock; the step's whole batch). Like the thread count (_threads.pxd), it
# reads the machine's state and changes no result bit.
#
# Design
# ------
# A shuffled batch's rows are gathered into one block (_rows.pxd's gather_rows), each row block
# its own rows, and on two threads the weight jobs of the first layer then read every row of it,
# so each line a gather stores is in the other core's caches from the batch before: the store
# first takes it from there. On the 2-core AMD EPYC VM (Zen 4) that costs little in one of the
# host's two states and ~5x in the other (it comes and goes, often within a minute, for every
# process alike: csrc/optimizers.c's fm_stream_copy, where the optimizer's step met it first).
# Streaming stores (fm_stream_store) invalidate the other core's copy without reading it, but
# send the block to memory, from which the row block's first product then reads it back.
# Epochs with the gather one way or the other in every batch that may stream, builds run in
# turns (the kernels' library linked into a /tmp harness that times two threads stepping halves
# of a block both have read tells the host's states apart between runs: ~0.5 ms a step in the
# cheap one, 1.2-2.6 in the costly one), medians of 12-21 runs of each build in each state:
#   mnist      cheap 0.3485 s cached, 0.3533 streamed;  costly 0.4365 cached, 0.4017 streamed
#   mnist-f64  cheap 0.3456-0.3488 / 0.3460-0.3518;      costly 0.4015-0.4143 / 0.3841-0.3906
#   wide       the same either way (its gather is ~1 % of an epoch's CPU)
# Neither way wins in both states, and the state changes within a fit, so every full batch
# that may stream (_schedule.pxd's may_stream: two threads or more, STREAM_MIN_ROWS rows)
# times its row blocks' gathers, and the way that costs less a byte holds the batches; every
# STORE_PROBE_GAP batches, STORE_PROBE_BATCHES go the other way to see whether the host has
# changed. The gather's own clock tells the states apart where an epoch's noise would hide them (one
# process, each way forced for two epochs and then the choice's, 2-core AMD EPYC VM, Zen 4):
# cached 0.119-0.148 ns a byte in the cheap state against 0.117-0.139 streamed, and
# 0.362-0.398 against 0.119-0.157 in the costly one. Streaming leaves a cost its clock does
# not see (the block read back from memory), so the streamed way must cost under
# stream_margin() of the cached one to take the batches: 0.93-1.0 and 0.31-0.40 above, on
# either side of 0.6 (those runs had it at 0.8: the same ways). In them the choice's epochs
# were 0.3461-0.3492 s (mnist, cheap state; cached forced 0.3525-0.3535, streamed
# 0.3547-0.3562) and 0.4179-0.4188 (costly; 0.4370-0.4388 and 0.4170-0.4186), its batches
# streamed 16 of 468 and 452 of 468; the probes cost a batch of the other way's time in 33.
# The gather times itself in each row block (two clock reads, ~50 ns a block), read and summed
# by the caller after the batch (_trainer.pyx's run_batches). Batches whose rows are read where
# they lie (_schedule.pxd's picks_rows: on AVX-512, the figures above are from before it) gather
# nothing and time nothing: the choice then only waits.
#
# The step's W. A two-thread batch's weight jobs wrote their new W past the caches on every
# batch of STREAM_MIN_ROWS rows (csrc/optimizers.c's fm_stream_copy says why: on the Zen 4
# host's costly state each cached store first takes the line from the other core, and
# streaming made `mnist` 0.62-0.90x, `mnist-f64` 0.67-0.72x, `wide` 0.84-0.95x the epoch;
# 0.98-1.01x in its cheap state). On the 2-core Intel Xeon VM of 2026-12-05 (AVX-512, L2 2 MB
# a core) streaming costs instead: the next forward pass reads W from memory. A build that
# never streams against the one that always did (benchmarks/ab_builds.py, 4 rounds): `wide`
# 0.950x, `mnist` 0.982x, `mnist-f64` 0.937x; each way held for whole epochs in one process,
# in turns (5-6 each), streamed over cached 1.036 on `wide` and 1.033 on `mnist-f64`. So the
# step's way is chosen too, by the same rule on another measure: the whole batch's seconds a
# row (the step's stores and the next pass's reads of W both fall in batches), with probes
# of STEP_PROBE_BATCHES counted batches each STORE_PROBE_GAP, streaming taking over only where
# it costs under step_stream_margin() of the cached way (a tie keeps W in the caches, which
# is what a machine without that costly state should do). A batch right after one of the other
# way (the first of a probe, the first after it, the first after a one-thread or short batch,
# whose step stored through the caches) is not counted: its forward pass read W where the
# other way had left it. In those same runs the choice's epochs took 0.996x (`wide`) and
# 0.995x (`mnist-f64`) the cached way's.

cdef enum:
    STORE_PROBE_GAP = 64      # batches the current way holds between probes of the other
    STORE_PROBE_BATCHES = 2   # batches of a gather's probe
    STEP_PROBE_BATCHES = 4    # counted batches of a step's probe (after one that is not)


cdef inline double stream_margin() noexcept nogil:
    """The streamed gather takes over where it costs under this share of the cached one's time
    a byte (and keeps the batches while it does)."""
    return 0.6


cdef inline double step_stream_margin() noexcept nogil:
    """The streamed step takes over where its batches cost under this share of the cached
    step's a row (and keeps the batches while they do): streaming must win clearly, a tie
    leaves W in the caches."""
    return 0.97


cdef struct StoreChoice:
    double per_byte[2]     # smoothed cost a unit: [0] cached, [1] streamed (0: none); a
                           # gather's seconds a byte, a step's batch seconds a row
    double margin          # the streamed way takes over under margin x the cached way's cost
    int probe_batches      # counted batches of a probe
    bint settle            # a batch after one of the other way is not counted (a step's: its
                           # forward pass reads W where the other way left it)
    int last               # the way of the batch before (for settle)
    int current            # the way of the coming batches
    int forced             # -1: chosen at run time; 0 or 1: always that way (tests, benchmarks)
    long long until_probe  # batches before the other way is probed
    int probed             # batches of the probe under way so far
    double probe_sum       # and the sum of their costs
    long long timed        # batches timed, and of those, streamed
    long long streamed


cdef inline void store_init(StoreChoice *c, int forced) noexcept nogil:
    """A gather's choice (Design, first part)."""
    c.per_byte[0] = c.per_byte[1] = 0.0
    c.margin = stream_margin()
    c.probe_batches = STORE_PROBE_BATCHES
    c.settle = False
    c.last = 0
    c.current = 0
    c.forced = forced
    c.until_probe = 2  # a first look at the streamed way soon: a fit may be short
    c.probed = 0
    c.probe_sum = 0.0
    c.timed = c.streamed = 0


cdef inline void step_store_init(StoreChoice *c, int forced) noexcept nogil:
    """An optimizer step's choice (Design, "The step's W"): by whole batches, whose time holds
    both what the step's stores cost and what the next pass's reads of W then cost."""
    store_init(c, forced)
    c.margin = step_stream_margin()
    c.probe_batches = STEP_PROBE_BATCHES
    c.settle = True
    c.last = -1  # the first batch (buffers, threads starting) is not counted
    c.until_probe = 8  # the cached way's estimate from a few batches before the first probe


cdef inline void store_ran(StoreChoice *c, int which) noexcept nogil:
    """A batch that was not timed went way `which` (for settle)."""
    c.last = which


cdef inline int store_next(const StoreChoice *c) noexcept nogil:
    """The way of the coming batch's gather: 1 streamed, 0 cached."""
    if c.forced >= 0:
        return c.forced
    if c.until_probe <= 0:
        return 1 - c.current
    return c.current


cdef inline bint store_cheaper(const StoreChoice *c, int which) noexcept nogil:
    """Whether way `which` costs less than the other, the streamed way by its margin."""
    if which == 1:
        return c.per_byte[1] < c.margin * c.per_byte[0]
    return not (c.per_byte[1] < c.margin * c.per_byte[0])


cdef inline void store_record(StoreChoice *c, int which, double seconds_per_byte) noexcept nogil:
    """What a batch cost (its gather a byte, or the whole batch a row), way `which`; the next
    way follows from it."""
    cdef double estimate = c.per_byte[which]
    cdef bint settling = c.settle and which != c.last
    c.last = which
    c.timed += 1
    c.streamed += which
    if c.forced >= 0 or settling:  # (a probe then lasts a batch longer)
        return
    if which == c.current:
        if estimate == 0.0:
            c.per_byte[which] = seconds_per_byte
        else:  # smoothed, one hiccup capped (as _threads.pxd's choice_record)
            if seconds_per_byte > 8 * estimate:
                seconds_per_byte = 8 * estimate
            c.per_byte[which] = estimate + (seconds_per_byte - estimate) / 8
        c.until_probe -= 1
        return
    c.probed += 1
    c.probe_sum += seconds_per_byte
    if c.probed < c.probe_batches:
        return
    c.per_byte[which] = c.probe_sum / c.probed
    c.probed = 0
    c.probe_sum = 0.0
    c.until_probe = STORE_PROBE_GAP
    if store_cheaper(c, which):
        c.current = which
