"""The run-time choice of how a two-thread batch stores its gathered rows (_stores.pxd): through
the caches or past them, by what each way's gather has cost per byte. Traced on made-up costs
(_testing.store_choice_trace); the bits either way are test_determinism.py's."""
from fastmlp._engine import _testing as K

GAP, PROBE = K.STORE_PROBE_GAP, K.STORE_PROBE_BATCHES


def first_probe_end():
    return 2 + PROBE  # two batches of the cached way, then the first probe


def test_the_streamed_way_takes_the_batches_where_the_cached_gather_costs_far_more():
    # the host's costly state: each cached store takes the line from the other core first
    trace = K.store_choice_trace([(3.0, 1.0)] * 400)
    assert trace[:2] == [0, 0] and trace[2:first_probe_end()] == [1] * PROBE
    after = trace[first_probe_end():]
    # the cached way comes back only in its probes, PROBE batches every GAP
    assert after[:GAP] == [1] * GAP and after[GAP:GAP + PROBE] == [0] * PROBE
    assert after.count(0) == PROBE * (len(after) // (GAP + PROBE))


def test_the_cached_way_keeps_the_batches_where_streaming_saves_little():
    # the cheap state: a streamed gather costs about as much, and its block is then read back
    # from memory, which the gather's clock does not see
    for streamed in (1.2, 1.0, 0.9, 0.7):
        trace = K.store_choice_trace([(1.0, streamed)] * 400)
        probes = [i for i, way in enumerate(trace) if way == 1]
        assert len(probes) == PROBE * (1 + (400 - first_probe_end()) // (GAP + PROBE)), streamed
        assert probes[:PROBE] == list(range(2, first_probe_end()))


def held(trace, way):
    """Whether `way` holds the batches of trace, the other way in probes only: runs of at most
    PROBE batches at least GAP apart."""
    runs, i = [], 0
    while i < len(trace):
        j = i
        while j < len(trace) and trace[j] == trace[i]:
            j += 1
        runs.append((trace[i], j - i))
        i = j
    return all(n <= PROBE for w, n in runs if w != way) and all(
        n >= GAP for w, n in runs[1:-1] if w == way)


def test_the_choice_follows_the_host_from_state_to_state():
    cheap, costly = [(1.0, 0.95)] * 300, [(3.0, 1.0)] * 300
    trace = K.store_choice_trace(cheap + costly + cheap)
    settle = GAP + 2 * PROBE  # at most a gap and a probe after a change
    assert held(trace[first_probe_end():300], 0)
    assert held(trace[300 + settle:600], 1)  # streamed after the change
    assert held(trace[600 + settle:], 0)  # and cached again after the next


def test_one_slow_cached_batch_is_capped_and_moves_nothing():
    costs = [(1.0, 0.95)] * 200
    costs[100] = (500.0, 0.95)
    assert K.store_choice_trace(costs) == K.store_choice_trace([(1.0, 0.95)] * 200)


# The optimizer step's choice (_stores.pxd, "The step's W"): the same rule on whole batches'
# seconds a row, with probes of STEP_PROBE of its batches, each after one that is not counted,
# and the cached way held unless streaming is clearly cheaper.
STEP_PROBE = K.STEP_PROBE_BATCHES
STEP_FIRST = 9  # batches of the cached way before the first probe (its first not counted)


def changes(trace):
    return [i for i in range(1, len(trace)) if trace[i] != trace[i - 1]]


def test_the_streamed_step_takes_the_batches_where_the_cached_one_costs_clearly_more():
    trace = K.step_store_choice_trace([(1.3, 1.0)] * 400)
    probe_end = STEP_FIRST + 1 + STEP_PROBE
    assert trace[:STEP_FIRST] == [0] * STEP_FIRST and trace[STEP_FIRST:probe_end] == [1] * (
        STEP_PROBE + 1)
    after = trace[probe_end:]
    # the cached way comes back only in its probes, each a batch longer than it counts
    assert after[:GAP] == [1] * GAP and after[GAP:GAP + STEP_PROBE + 1] == [0] * (STEP_PROBE + 1)
    assert after[GAP + STEP_PROBE + 1] == 1


def test_the_cached_step_keeps_the_batches_where_streaming_wins_by_less_than_its_margin():
    for streamed in (1.2, 1.0, 0.98):
        trace = K.step_store_choice_trace([(1.0, streamed)] * 400)
        assert trace.count(1) == (STEP_PROBE + 1) * len(changes(trace)[::2]), streamed
        assert all(n == STEP_PROBE + 1 for n in map(len, "".join(map(str, trace)).split("0"))
                   if n), streamed


def test_a_batch_after_the_other_way_is_not_counted():
    # its forward pass read W where the other way's step left it: make those batches cost 50x
    # either way, and nothing changes
    costs = [(1.0, 0.9)] * 300
    trace = K.step_store_choice_trace(costs)
    assert len(changes(trace)) >= 4
    for i in changes(trace) + [0]:
        costs[i] = (50.0, 50.0)
    assert K.step_store_choice_trace(costs) == trace
    # counted, the first probe's 50 would have kept the cached way: the test can tell
    assert trace[STEP_FIRST + 1 + STEP_PROBE:][:GAP] == [1] * GAP


def test_an_untimed_batch_stores_through_the_caches_and_the_next_is_not_counted():
    # (a one-thread or short batch): the streamed batch after it read a cached W
    costs = [(1.0, 0.9)] * 200
    trace = K.step_store_choice_trace(costs)
    i = trace.index(1, STEP_FIRST + 1 + STEP_PROBE + 5)
    costs[i] = None
    untimed = K.step_store_choice_trace(costs)
    assert untimed[i] is None and untimed[:i] == trace[:i] and untimed[i + 1] == 1
    costs[i + 1] = (50.0, 50.0)
    assert K.step_store_choice_trace(costs) == untimed


# The products' fetch of the next rows of W (_stores.pxd, "The next group's rows of W"): way 0
# fetches (the default), 1 leaves it to the hardware; whole batches' seconds a row, taken where
# cheaper at all (no margin), in probes of FETCH_PROBE counted batches, the first batch and the
# first after each change of way not counted (as the step's).
FETCH_PROBE = K.FETCH_PROBE_BATCHES


def test_the_batches_go_without_the_fetch_where_that_is_cheaper_at_all():
    trace = K.step_store_choice_trace([(1.0, 0.98)] * 400, fetch=True)
    assert trace[:STEP_FIRST] == [0] * STEP_FIRST
    probe_end = STEP_FIRST + 1 + FETCH_PROBE
    assert trace[STEP_FIRST:probe_end] == [1] * (FETCH_PROBE + 1)
    after = trace[probe_end:]
    # the fetching way comes back only in its probes
    assert after[:GAP] == [1] * GAP and after[GAP:GAP + FETCH_PROBE + 1] == [0] * (FETCH_PROBE + 1)
    assert after.count(0) == (FETCH_PROBE + 1) * (len(after) // (GAP + FETCH_PROBE + 1))


def test_the_fetch_keeps_the_batches_where_it_costs_less_or_the_same():
    for without in (1.02, 1.0):
        trace = K.step_store_choice_trace([(1.0, without)] * 400, fetch=True)
        runs = [n for n in map(len, "".join(map(str, trace)).split("0")) if n]
        assert runs and all(n == FETCH_PROBE + 1 for n in runs), without
        assert trace.count(1) == (FETCH_PROBE + 1) * len(runs), without


def test_the_fetch_counts_neither_the_first_batch_nor_the_first_of_a_probe():
    # the first batch (pages, threads starting) and each probe's first cost 50x: nothing changes
    costs = [(1.0, 0.98)] * 300
    trace = K.step_store_choice_trace(costs, fetch=True)
    for i in changes(trace) + [0]:
        costs[i] = (50.0, 50.0)
    assert K.step_store_choice_trace(costs, fetch=True) == trace


def test_the_step_and_the_fetch_never_probe_in_the_same_batch_and_each_finds_its_way():
    # streaming the step's W clearly cheaper (1.3x cached), the batches without the fetch a
    # little (0.97x); after a first short batch, both want their first probe at the same batch
    table = [[1.3 * f for f in (1.0, 0.97)], [1.0 * f for f in (1.0, 0.97)]]
    trace = K.shared_clock_trace([None] + [table] * 1200)
    assert not any(step_probe and fetch_probe for _, _, step_probe, fetch_probe in trace)
    first = STEP_FIRST
    assert trace[first][2] and not trace[first][3]  # the step's probe first, the fetch held
    assert trace[first][1] == 0
    assert any(fetch_probe for *_, fetch_probe in trace[first:first + 20])
    late = trace[600:]
    # each way taken but for the probes of the other (a probe and its first batch every GAP)
    assert sum(s for s, *_ in late) > 0.9 * len(late)
    assert sum(f for _, f, *_ in late) >= GAP / (GAP + FETCH_PROBE + 1) * len(late)
    # and where neither alternative wins, both keep their first ways but for their probes
    flat = K.shared_clock_trace([[[1.0, 1.0], [1.0, 1.0]]] * 1200)
    assert not any(step_probe and fetch_probe for _, _, step_probe, fetch_probe in flat)
    assert sum(s for s, *_ in flat[600:]) < 0.15 * 600
