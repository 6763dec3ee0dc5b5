"""benchmarks/choice_replay.py: a recording's turns, how replay pairs them and charges the
changes, and what the harness runs it replays say where the answer is known."""
import choice_replay
import numpy as np
import pytest

from fastmlp._runtime import threads_for_batch
from fastmlp.bench.workloads import FIT_WORKLOADS


def quiet(message):
    pass


def test_pairs_put_each_turns_batches_beside_the_next_turns_and_charge_the_first_ones():
    turns = 5  # 2 on all threads, then 1 thread, twice; the first SKIP (3) of each turn left out
    threads = np.array([2] * 5 + [1] * 5 + [2] * 5 + [1] * 5 + [2] * 3)  # (a part turn: dropped)
    seconds = np.array([3.0, 2.0, 1.5, 1.0, 1.0] + [6.0, 4.0, 2.0, 2.0, 2.0]
                       + [3.0, 2.0, 1.5, 1.0, 1.0] + [6.0, 4.0, 2.0, 2.0, 2.0] + [9.0] * 3)
    costs, switch = choice_replay.pairs(threads, seconds, turns)
    assert costs == [(2.0, 1.0)] * 4
    assert switch == pytest.approx([0.5 * (3 + 3), 0.5 * (2 + 2), 0.5 * (1.5 + 1)])
    with pytest.raises(ValueError, match="no turn of each choice"):
        choice_replay.pairs(np.ones(20, dtype=int), np.ones(20), turns)


def test_charged_pays_the_switch_factors_after_each_change_only():
    costs = [(1.0, 0.5)] * 6
    trace = [2, 2, 1, 1, 1, 2]
    assert choice_replay.charged(costs, trace, [3.0, 2.0]) == pytest.approx(
        0.5 + 0.5 + 3.0 * 1.0 + 2.0 * 1.0 + 1.0 + 3.0 * 0.5)


@pytest.mark.parametrize("many, expected", [(0.5, 0.5), (2.0, 1.0)])
def test_harness_runs_of_a_clear_case_give_the_choice_the_cheaper_count(many, expected):
    # threads at half one thread's cost: the choice keeps them (its probes of one thread are
    # few); at twice: it keeps one thread, and all threads would have read 2.0.
    costs = [(1e-5, many * 1e-5)] * (40 * 100)
    runs = choice_replay.harness_runs(costs, [1.0], most=2, epoch_pairs=100)
    assert len(runs["choice"]) == 20 - choice_replay.HARNESS_PAIRS + 1
    assert np.median(runs["choice"]) == pytest.approx(expected, rel=0.08)
    assert runs["all threads"] == pytest.approx(many)
    assert runs["on_threads"] > 0.9 if many < 1 else runs["on_threads"] < 0.1
    with pytest.raises(ValueError, match="record longer"):
        choice_replay.harness_runs(costs[:1000], [1.0], most=2, epoch_pairs=100)


def test_a_recording_runs_its_turns_and_replays(tmp_path):
    workload = FIT_WORKLOADS["mnist"].scaled(0.05)  # 11 full batches of 256 an epoch
    if threads_for_batch(workload.batch_size, 784 * 256 + 256 * 128 + 128 * 10) < 2:
        pytest.skip("these batches get one thread here")
    threads, seconds = choice_replay.record(workload, 0.5, turns=4, busy=False, log=quiet)
    assert len(threads) >= 8 and np.all(seconds > 0)
    n = len(threads) // 4 * 4
    assert threads[:n].tolist() == ([2] * 4 + [1] * 4) * (n // 8) + [2] * 4 * (n % 8 // 4)
    out = tmp_path / "rec.npz"
    out.write_bytes(b"a user's file")
    with pytest.raises(SystemExit):  # never overwritten
        choice_replay.main(["record", "mnist", "--scale", "0.05", "--out", str(out)])
    assert out.read_bytes() == b"a user's file"
