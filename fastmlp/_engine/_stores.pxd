# How a two-thread batch stores its gathered rows, and its optimizer step's new W: through the
# caches, or past them with streaming stores, chosen at run time by what each way has just cost
# (the gather's own clock; the step's whole batch); and whether its products fetch the next
# rows of W ahead (the whole batch too). Like the thread count (_threads.pxd), each reads the
# machine's state and changes no result bit.
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
#
# The next group's rows of W. The AVX-512 kernel's products fetch the next group's rows of W
# into L2 while a group runs (csrc/rows_product.c's rp_product512): on the Zen 4 host that made
# `wide`'s 256 x 1024 x 1024 product 0.957 of its time, on the Intel Xeon VM (L2 2 MB a core)
# its forward products take 0.955-0.997 of the time without it and its weight jobs 0.973-0.984
# (a C harness linking both, call by call in turns: 2026-12-05; csrc/rows_product.c has the
# figures), `wide`'s epoch 0.977x (builds in turns, 8 runs each). So whether
# a batch's products fetch is chosen too (fm_rows_product_set_fetch), by the step's measure (a
# whole batch's seconds a row): way 0 fetches (as before), way 1 leaves it to the hardware and
# takes the batches where it is cheaper at all (fetch_margin: neither way leaves a cost the
# clock does not see), in probes of FETCH_PROBE_BATCHES counted batches, twice the step's: the
# difference is a few percent, within one batch's noise here. As the step's, the first batch
# of a fit (its pages, its threads starting) and the first of each change of way are not
# counted: with the first counted, the fetching way's estimate started 1.5x too high and the
# first probe won by it. The two choices share the batches' clock, so they never probe at once:
# a batch in which one probes is not counted by the other (clock_next, clock_record).

cdef enum:
    STORE_PROBE_GAP = 64      # batches the current way holds between probes of the other
    STORE_PROBE_BATCHES = 2   # batches of a gather's probe
    STEP_PROBE_BATCHES = 4    # counted batches of a step's probe (after one that is not)
    FETCH_PROBE_BATCHES = 8   # the same for the products' fetch (a smaller difference)


cdef inline double stream_margin() noexcept nogil:
    """The streamed gather takes over where it costs under this share of the cached one's time
    a byte (and keeps the batches while it does)."""
    return 0.6


cdef inline double step_stream_margin() noexcept nogil:
    """The streamed step takes over where its batches cost under this share of the cached
    step's a row (and keeps the batches while they do): streaming must win clearly, a tie
    leaves W in the caches."""
    return 0.97


cdef inline double fetch_margin() noexcept nogil:
    """The products' batches go without the fetch where they cost under this share of the
    fetching way's a row (Design, "The next group's rows of W")."""
    return 1.0


cdef struct StoreChoice:
    double per_byte[2]     # smoothed cost a unit: [0] cached, [1] streamed (0: none); a
                           # gather's seconds a byte, a step's batch seconds a row (the
                           # fetch's choice: [0] fetching, [1] not; its batches' too)
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


cdef inline void fetch_init(StoreChoice *c, int forced) noexcept nogil:
    """The products' fetch of the next group's rows (Design, "The next group's rows of W"):
    way 0 fetches, way 1 does not; by whole batches, as the step's."""
    step_store_init(c, forced)  # (its first batch and each probe's first not counted)
    c.margin = fetch_margin()
    c.probe_batches = FETCH_PROBE_BATCHES


cdef inline bint store_probing(const StoreChoice *c) noexcept nogil:
    """Whether the coming batch goes the other way to probe it."""
    return c.forced < 0 and c.until_probe <= 0


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


# The batch's clock, shared by the step's choice and the fetch's (Design, "The next group's
# rows of W"): run_batches asks clock_next for a batch's ways and, after it, clock_record
# gives its seconds a row to the choices that count it.

cdef struct ClockWays:
    int step              # the step's way (1: its W streamed)
    int fetch             # the products' way (1: without the fetch)
    bint step_probe       # the step's choice probes in this batch (the fetch's does not count it)
    bint fetch_probe      # the fetch's choice probes (the step's does not count it)


cdef inline ClockWays clock_next(const StoreChoice *step, const StoreChoice *fetch,
                                 bint step_timed) noexcept nogil:
    """The coming batch's ways: each choice's, but the fetch's held way while the step's
    probes (where the step's batch is timed: step_timed)."""
    cdef ClockWays w
    w.step = store_next(step)
    w.step_probe = step_timed and store_probing(step)
    w.fetch = store_next(fetch)
    w.fetch_probe = store_probing(fetch) and not w.step_probe
    if w.step_probe and fetch.forced < 0:
        w.fetch = fetch.current
    return w


cdef inline void clock_record(StoreChoice *step, StoreChoice *fetch, const ClockWays *w,
                              int step_way, bint step_timed, bint fetch_timed,
                              double per_row) noexcept nogil:
    """A batch ran with w's ways (the step's as it was taken: step_way) and cost per_row
    seconds a row (< 0: not a fair measure, a short batch): each choice counts it where its
    batches are timed and the other did not probe, else only notes its way."""
    if per_row >= 0 and step_timed and not w.fetch_probe:
        store_record(step, step_way, per_row)
    else:
        store_ran(step, step_way)
    if per_row >= 0 and fetch_timed and not w.step_probe:
        store_record(fetch, w.fetch, per_row)
    else:
        store_ran(fetch, w.fetch)
