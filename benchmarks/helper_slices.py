"""The pool helpers' time slices (csrc/placement.c's fm_helper_slice) on and off, side by side in
one process: what two threads' batches cost against one thread's, beside a busy core or not.

    python benchmarks/helper_slices.py mnist --seconds 180 --busy
    python benchmarks/helper_slices.py tiny-batch --seconds 90

Design
------
Beside a busy core the host's state turns every few seconds (benchmarks/choice_replay.py says
so), and two builds timed run by run move with it more than with a change of the schedule. So
one model trains for `--seconds`, the epochs in turns with the helpers' time slices off and on
(_engine.helper_slices; neither changes a bit), and within every epoch its batches in turns of
TURNS on two threads and TURNS on one (Network.record_thread_turns, as choice_replay.py
records), so that each epoch holds its own one-thread yardstick. The figure of an epoch is the
mean cost a row of its two-thread batches over the mean of its one-thread batches, the first
SKIP batches of each turn left out (they pay for the change of thread count); each setting's
epochs are summarized by their median, quartiles and mean, and its two-thread batches one by
one over the one-thread median (the tail is what a helper preempted inside a job costs).
"""
import argparse
import statistics
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from fastmlp import _engine
from fastmlp.bench.timing import make_system
from fastmlp.bench.workloads import FIT_WORKLOADS, make_blobs
from harness_runs import spinning_core

TURNS, SKIP = 16, 2


def record(workload, seconds, busy, threads=2, log=print):
    """{setting: [(thread counts, seconds a row) of each of its epochs' full batches]}: one
    model trained for `seconds`, epochs in turns with the helpers' slices off (0) and on (1)."""
    X, y = make_blobs(workload.n_samples, workload.n_features, workload.dtype)
    epochs = {0: [], 1: []}
    before = _engine.helper_slices(True)
    try:
        with spinning_core(busy, settle=0.5), threadpool_limits(threads):
            system = make_system("fastmlp", workload, threads)
            system.fit_epoch(X, y)  # (classes, buffers, threads started)
            network = system.model._network()
            network.record_thread_turns(TURNS, max(1, int(seconds * 4000)))
            end, setting, yields = time.perf_counter() + seconds, 0, _engine.helper_yields()
            while time.perf_counter() < end:
                _engine.helper_slices(bool(setting))
                first = len(network.thread_turn_costs[0])
                system.fit_epoch(X, y)
                counts, costs = network.thread_turn_costs
                epochs[setting].append((counts[first:], costs[first:]))
                setting = 1 - setting
            network.record_thread_turns(0)
            yields = _engine.helper_yields() - yields
    finally:
        _engine.helper_slices(before)
    log(f"{workload.name}: {len(epochs[0]) + len(epochs[1])} epochs; the helpers yielded "
        f"before a job {yields:,} times")
    return epochs


def kept(counts):
    """Which batches count: all but the first SKIP of each turn (of a thread count)."""
    keep = np.ones(len(counts), dtype=bool)
    run = 0
    for i in range(len(counts)):
        run = run + 1 if i > 0 and counts[i] == counts[i - 1] else 0
        keep[i] = run >= SKIP
    return keep


def epoch_ratio(counts, costs):
    """An epoch's mean two-thread batch cost over its mean one-thread one, or None."""
    keep = kept(counts)
    two, one = costs[keep & (counts > 1)], costs[keep & (counts == 1)]
    return float(two.mean() / one.mean()) if len(two) and len(one) else None


def summarize(epochs):
    """Lines of the report for each setting's epochs."""
    lines = []
    for setting, name in ((0, "off"), (1, "on")):
        ratios = [r for r in (epoch_ratio(c, s) for c, s in epochs[setting]) if r is not None]
        if not ratios:
            lines.append(f"  slices {name}: no epoch with both thread counts")
            continue
        q1, q3 = np.percentile(ratios, [25, 75])
        lines.append(f"  slices {name:3}: {len(ratios)} epochs; two threads over one, per epoch: "
                     f"median {statistics.median(ratios):.3f} (quartiles {q1:.3f}-{q3:.3f}), "
                     f"mean {np.mean(ratios):.3f}")
        counts = np.concatenate([c for c, _ in epochs[setting]])
        costs = np.concatenate([s for _, s in epochs[setting]])
        keep = kept(counts)
        two = costs[keep & (counts > 1)] / np.median(costs[keep & (counts == 1)])
        pct = np.percentile(two, [10, 50, 90, 99])
        lines.append(f"      each two-thread batch over the one-thread median: 10/50/90/99th "
                     f"percentiles {' '.join(f'{p:.2f}' for p in pct)}; over 1.3 "
                     f"{np.mean(two > 1.3):.1%}, over 2 {np.mean(two > 2):.1%}")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workload", choices=sorted(FIT_WORKLOADS))
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--busy", action="store_true",
                        help="beside a process spinning on one core (harness_runs.py's)")
    parser.add_argument("--scale", type=float, default=1.0, help="of the workload's samples")
    args = parser.parse_args(argv)
    workload = FIT_WORKLOADS[args.workload].scaled(args.scale)
    epochs = record(workload, args.seconds, args.busy)
    print("\n".join(summarize(epochs)))


if __name__ == "__main__":
    sys.exit(main())
