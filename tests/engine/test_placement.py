"""The engine's worker threads leave the caller's CPU without being pinned (csrc/placement.c)."""
import os
import sys
import threading

import pytest

from fastmlp import _engine as E
from fastmlp._engine import _testing as K

linux_with_two_cpus = pytest.mark.skipif(
    not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux and at least two usable CPUs")


def in_fresh_thread(function):
    """Run function in a new thread (affinity changes stay with that thread); return its value."""
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("value", function()))
    thread.start()
    thread.join()
    return result["value"]


@linux_with_two_cpus
def test_a_thread_on_the_given_cpu_moves_off_it_and_keeps_its_mask():
    first, second = sorted(os.sched_getaffinity(0))[:2]

    def run():
        os.sched_setaffinity(0, {first})        # put the thread on `first`...
        os.sched_setaffinity(0, {first, second})  # ...free to go to `second` too
        assert K.current_cpu() == first
        K.leave_cpu(first)
        return K.current_cpu(), os.sched_getaffinity(0)

    cpu, mask = in_fresh_thread(run)
    assert cpu == second
    assert mask == {first, second}  # not pinned: the mask is as it was


@linux_with_two_cpus
def test_a_thread_elsewhere_stays_and_a_single_cpu_mask_is_respected():
    first, second = sorted(os.sched_getaffinity(0))[:2]

    def elsewhere():
        os.sched_setaffinity(0, {second})
        os.sched_setaffinity(0, {first, second})
        K.leave_cpu(first)  # not on `first`: nothing to do
        return K.current_cpu()

    def pinned():
        os.sched_setaffinity(0, {first})
        K.leave_cpu(first)  # nowhere else to go: stays
        return K.current_cpu(), os.sched_getaffinity(0)

    assert in_fresh_thread(elsewhere) == second
    assert in_fresh_thread(pinned) == (first, {first})


def test_unknown_cpu_is_ignored():
    K.leave_cpu(-1)
    assert K.current_cpu() >= -1
