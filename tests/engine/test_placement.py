"""The engine's worker threads leave the caller's CPU without being pinned (csrc/placement.c)."""
import os
import sys
import threading

import pytest

from fastmlp import _engine as E
from fastmlp._engine import _testing as K

from _helpers import run_python

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
        # Put the thread on `first`, then free it to go to `second` too. The OS may move it
        # between the two calls (a busy `first`: this failed once in CI beside other jobs), so
        # the set-up is tried until the thread is still on `first` when the test begins.
        for _ in range(100):
            os.sched_setaffinity(0, {first})
            os.sched_setaffinity(0, {first, second})
            if K.current_cpu() == first:
                K.leave_cpu(first)
                return K.current_cpu(), os.sched_getaffinity(0)
        return None, None

    cpu, mask = in_fresh_thread(run)
    if cpu is None:
        pytest.skip("the OS moved the thread off its CPU before every attempt")
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


@linux_with_two_cpus
def test_unknown_cpu_is_ignored():
    first, second = sorted(os.sched_getaffinity(0))[:2]

    def run():
        os.sched_setaffinity(0, {first})
        os.sched_setaffinity(0, {first, second})
        K.leave_cpu(-1)  # no CPU to leave: the thread stays where it is
        K.leave_cpu(1 << 20)  # past any CPU set: ignored too
        return K.current_cpu(), os.sched_getaffinity(0)

    assert in_fresh_thread(run) == (first, {first, second})


def test_current_cpu_is_one_the_thread_may_run_on():
    cpu = K.current_cpu()
    if sys.platform.startswith("linux"):
        assert cpu in os.sched_getaffinity(0)
    else:
        assert cpu == -1


# FASTMLP_NO_SPREAD is read once per process, so the switched-off engine runs in its own Python.
# Once the thread may run on both CPUs, the OS may move it by itself between the pinning and the
# look (a fresh-clone CI run read False on a machine busy with another build): so up to 20
# tries, and it "stays" if it is still on `first` after leave_cpu in any of them. leave_cpu
# that moves it takes it off `first` in every try.
STAYS_WHEN_TOLD = """
import os, sys
from fastmlp._engine import _testing as K
first, second = sorted(os.sched_getaffinity(0))[:2]
stayed = False
for _ in range(20):
    os.sched_setaffinity(0, {first})
    os.sched_setaffinity(0, {first, second})
    if K.current_cpu() != first:
        continue  # moved before leave_cpu ran: no look this try
    K.leave_cpu(first)
    if K.current_cpu() == first:
        stayed = True
        break
print(stayed, os.sched_getaffinity(0) == {first, second})
"""


@linux_with_two_cpus
@pytest.mark.parametrize("no_spread, stays", [("1", True), (None, False)])
def test_fastmlp_no_spread_turns_the_move_off(no_spread, stays):
    env = {k: v for k, v in os.environ.items() if k != "FASTMLP_NO_SPREAD"}
    if no_spread is not None:
        env["FASTMLP_NO_SPREAD"] = no_spread
    assert run_python(STAYS_WHEN_TOLD, env=env).split() == [str(stays), "True"]


# -- a pool helper's time slices (csrc/placement.c's fm_slice_look) ------------------------------
# Readings are (wall, cpu, ran) in seconds; a tick of 4 ms: a job must end within 3.6 ms of its
# slice's start, and one of 1 ms or more is never held back.

def _slice(readings, tick=4e-3):
    return K.slice_rule(readings, tick)


def test_the_slice_rule_constants_are_as_documented():
    assert K.SLICE_RULE == (200e-6, 0.9, 0.25)


def test_a_helper_yields_before_a_job_that_its_time_slice_would_end_inside():
    # jobs of 0.5 ms from the slice's start at 0: the eighth would end at 4.0 ms, past 3.6
    readings = [(0.0, 0.0, 0)] + [(k * 5e-4, k * 5e-4, 1) for k in range(1, 8)]
    looks = _slice(readings)
    assert [yields for yields, _, _ in looks] == [False] * 7 + [True]
    assert [start for _, start, _ in looks] == [0.0] * 8
    assert looks[-1][2] == pytest.approx(5e-4)
    # with a longer tick the same jobs fit
    assert not any(yields for yields, _, _ in _slice(readings, tick=10e-3))


def test_a_yield_that_nothing_took_starts_a_slice_of_the_helpers_own():
    readings = [(0.0, 0.0, 0)] + [(k * 5e-4, k * 5e-4, 1) for k in range(1, 8)]
    looks = _slice(readings + [(3.5005e-3, 3.5005e-3, -1), (4.0005e-3, 4.0005e-3, 1)])
    assert looks[-2] == (False, 3.5005e-3, pytest.approx(5e-4))  # (a look after a yield
    assert looks[-1][0] is False                                  #  never yields again)


def test_time_off_the_cpu_starts_a_slice_at_the_earliest_time_the_clocks_allow():
    looks = _slice([(10.0, 2.0, 0),                   # the first reading starts a slice
                    (10.0004, 2.0004, 1),             # a job of 0.4 ms
                    (10.005, 2.0007, 1),              # 4.6 ms of wall, 0.3 of CPU: preempted
                    (10.0055, 2.0011, 1)])            # 0.1 ms off: not a new slice
    assert looks[0][1] == 10.0
    assert looks[1] == (False, 10.0, pytest.approx(4e-4))
    start, job = looks[2][1:]
    assert start == pytest.approx(10.0047)  # back at the latest 0.3 ms of CPU before the look
    assert job == pytest.approx(4e-4)       # the preempted job's time is not a job's
    assert looks[3][1:] == (start, pytest.approx(5e-4))


def test_the_expected_job_is_the_longest_of_the_last_ones_decaying():
    looks = _slice([(0.0, 0.0, 0), (8e-4, 8e-4, 1), (1e-3, 1e-3, 1), (1.2e-3, 1.2e-3, 1)])
    assert [job for _, _, job in looks] == pytest.approx([0.0, 8e-4, 6e-4, 4.5e-4])


def test_jobs_of_a_quarter_tick_or_more_are_never_held_back():
    # a slice holds too few of them: each goes, even past the slice's end
    looks = _slice([(0.0, 0.0, 0)] + [(k * 1e-3, k * 1e-3, 1) for k in range(1, 7)])
    assert not any(yields for yields, _, _ in looks)
