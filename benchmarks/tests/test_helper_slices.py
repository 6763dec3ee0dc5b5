"""benchmarks/helper_slices.py: which batches count, an epoch's figure, and a short recording
whose epochs alternate the setting and leave it as it was."""
import helper_slices
import numpy as np
import pytest

from fastmlp import _engine
from fastmlp._runtime import threads_for_batch
from fastmlp.bench.workloads import FIT_WORKLOADS


def quiet(message):
    pass


def test_the_first_batches_of_each_turn_are_left_out():
    counts = np.array([2] * 4 + [1] * 4 + [2] * 3)
    assert helper_slices.kept(counts).tolist() == [False, False, True, True] * 2 + [False,
                                                                                  False, True]


def test_an_epochs_figure_is_its_mean_two_thread_cost_over_its_mean_one_thread_cost():
    counts = np.array([2] * 4 + [1] * 4)
    costs = np.array([9.0, 9.0, 1.0, 3.0, 9.0, 9.0, 4.0, 4.0])  # (the first two of each: out)
    assert helper_slices.epoch_ratio(counts, costs) == pytest.approx(0.5)
    assert helper_slices.epoch_ratio(np.array([2] * 4), np.ones(4)) is None  # no one-thread


def test_a_short_recording_alternates_the_setting_and_restores_it():
    workload = FIT_WORKLOADS["mnist"].scaled(0.05)  # 11 full batches of 256 an epoch
    if threads_for_batch(workload.batch_size, 784 * 256 + 256 * 128 + 128 * 10) < 2:
        pytest.skip("these batches get one thread here")
    before = _engine.helper_slices(False)
    try:
        epochs = helper_slices.record(workload, 0.5, busy=False, log=quiet)
        assert _engine.helper_slices(False) is False  # as it was
    finally:
        _engine.helper_slices(before)
    assert len(epochs[0]) >= 1 and len(epochs[0]) - len(epochs[1]) in (0, 1)
    counts, costs = epochs[0][0]
    assert len(counts) == 11 and np.all(costs > 0) and set(counts.tolist()) <= {1, 2}
    lines = helper_slices.summarize(epochs)
    assert lines[0].startswith("  slices off")
