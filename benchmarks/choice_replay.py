"""Record both thread choices' costs side by side, batch by batch, and replay them through
_threads.pxd's run-time choice: how a rule of the choice would have done on the machine as it
was, weighed offline instead of by run-to-run medians.

    python benchmarks/choice_replay.py record mnist --seconds 300 --busy --out mnist.npz
    python benchmarks/choice_replay.py replay mnist.npz [more.npz ...]

Design
------
Beside a busy core the host's state turns every few seconds (_threads.pxd's notes): two
builds' 2-thread-over-1 ratios, timed run by run, moved more with the state a run fell in than
with either rule (stop 71: the same build read 0.938 and 0.981 in two A/Bs). A recording
avoids that: `record` trains one model (fastmlp's benchmark system, the workload's data) for
`--seconds` with Network.record_thread_turns, `--turns` full batches on all threads, then as
many on one, and so on (the bits are the same either way), and keeps each batch's thread
count and seconds per row; `--busy` starts a `while True` process beside it, as
harness_runs.py's busy-core run does.

`replay` pairs the two choices' batches turn by turn (the k-th batch of a turn on the threads
with the k-th of the next turn on one thread), leaving out the first SKIP of each turn, which
pay for the change of thread count: their cost over the turn's rest, averaged over the two
choices, becomes the simulator's `switch` factors, which it charges a batch after each change
(_testing.thread_choice_trace, the choice's own code). Then, as harness_runs.py's busy-core run
measures, epochs in turns: an epoch's worth of pairs (EPOCH_PAIRS: an epoch of `mnist`'s 235
batches holds ~96 pairs at --turns 16) run by the choice, the next epoch's on one thread, and
so on; the choice keeps what it learned across the one-thread epochs, as choice_for does. A
harness run is 7 such pairs of epochs, its figure the median 2-thread epoch over the median
1-thread one; `replay` gives the median, the 90th percentile and the share over 1.00 of every
run of 7 consecutive pairs, for the choice and for all threads (no probes), and the share of
the batches the choice gave the threads.

Its figures are only as good as the recording: a turn of 16 batches does not show what runs of
hundreds on one choice would (a helper asleep for long), and the pairs put side by side costs
measured ~16 batches apart.
"""
import argparse
import os
import time

import numpy as np
from threadpoolctl import threadpool_limits

from fastmlp._engine import _testing
from fastmlp.bench.timing import make_system
from fastmlp.bench.workloads import FIT_WORKLOADS, make_blobs
from harness_runs import spinning_core

SKIP = 3  # the first batches of a turn, which pay for the change of thread count
HARNESS_PAIRS = 7  # harness_runs.py's busy-core run: 7 epochs a thread count (mnist, 3 s)


def record(workload, seconds, turns=16, threads=2, busy=True, log=print):
    """(thread counts, seconds per row) of every full batch of `workload`'s epochs trained for
    `seconds` in turns of `turns` batches, all `threads` and one by turns; beside a spinning
    process with `busy`."""
    X, y = make_blobs(workload.n_samples, workload.n_features, workload.dtype)
    with spinning_core(busy, settle=0.5), threadpool_limits(threads):
        system = make_system("fastmlp", workload, threads)
        system.fit_epoch(X, y)  # (classes, buffers, threads started)
        network = system.model._network()
        batches = max(1, int(seconds * 4000))  # (room for 250 us batches)
        network.record_thread_turns(turns, batches)
        end, epochs = time.perf_counter() + seconds, 0
        while time.perf_counter() < end:
            system.fit_epoch(X, y)
            epochs += 1
        recorded = network.thread_turn_costs
        network.record_thread_turns(0)
    log(f"{workload.name}: {epochs} epochs, {len(recorded[0])} batches recorded")
    return recorded


def pairs(threads, seconds, turns):
    """(costs, switch): costs[i] = (one thread's, all threads') seconds per row of the i-th
    pair, the turns' first SKIP batches left out; switch: those SKIP batches' cost over their
    turn's rest, averaged over the two choices."""
    n = len(threads) // (2 * turns) * 2 * turns
    threads, seconds = np.asarray(threads[:n]), np.asarray(seconds[:n], dtype=np.float64)
    if n == 0 or threads.max() == 1:
        raise ValueError("the recording holds no turn of each choice (fewer than "
                         f"{2 * turns} batches, or batches too small to share: one thread "
                         "in every turn)")
    by_turn = seconds.reshape(-1, turns)
    many, one = by_turn[0::2], by_turn[1::2]
    switch = [0.5 * (many[:, k].mean() / many[:, SKIP:].mean()
                     + one[:, k].mean() / one[:, SKIP:].mean()) for k in range(SKIP)]
    costs = list(zip(one[:, SKIP:].ravel().tolist(), many[:, SKIP:].ravel().tolist()))
    return costs, switch


def charged(costs, trace, switch, one_thread=1):
    """What the batches cost on the thread counts `trace` gives, the first after each change
    times the `switch` factors."""
    total, before, since = 0.0, 0, len(switch)
    for (one, many), threads in zip(costs, trace):
        if before and threads != before:
            since = 0
        cost = one if threads == one_thread else many
        total += cost * (switch[since] if since < len(switch) else 1.0)
        since += 1
        before = threads
    return total


def harness_runs(costs, switch, most, epoch_pairs):
    """{"choice": ratios, "all threads": ratios, "on_threads": share}: every run of
    HARNESS_PAIRS consecutive pairs of epochs (one epoch by the choice, the next on one
    thread), each run's median 2-thread epoch over its median 1-thread epoch."""
    windows = [costs[i:i + epoch_pairs] for i in range(0, len(costs) - epoch_pairs + 1,
                                                        epoch_pairs)]
    threaded, alone = windows[0::2], windows[1::2]
    k = min(len(threaded), len(alone))
    if k < HARNESS_PAIRS:
        raise ValueError(f"the recording holds {k} pairs of epochs of {epoch_pairs} pairs "
                         f"of batches; a harness run needs {HARNESS_PAIRS}: record longer")
    ones = np.array([sum(one for one, _ in w) for w in alone[:k]])
    sequence = [c for w in threaded[:k] for c in w]
    trace = _testing.thread_choice_trace(most, sequence, switch=switch)
    by = {"choice": [charged(sequence[i * epoch_pairs:(i + 1) * epoch_pairs],
                             trace[i * epoch_pairs:(i + 1) * epoch_pairs], switch)
                     for i in range(k)],
          "all threads": [sum(many for _, many in w) for w in threaded[:k]]}
    result = {name: np.array([np.median(e[i:i + HARNESS_PAIRS])
                              / np.median(ones[i:i + HARNESS_PAIRS])
                              for i in range(k - HARNESS_PAIRS + 1)])
              for name, e in by.items()}
    result["on_threads"] = sum(t == most for t in trace) / len(trace)
    return result


def replay(path, log=print):
    data = np.load(path)
    threads, seconds, turns = data["threads"], data["seconds"], int(data["turns"])
    most, epoch_batches = int(threads.max()), int(data["epoch_batches"])
    costs, switch = pairs(threads, seconds, turns)
    epoch_pairs = max(1, round(epoch_batches * (turns - SKIP) / (2 * turns)))
    runs = harness_runs(costs, switch, most, epoch_pairs)
    one = sum(c for c, _ in costs)
    log(f"{path}: {data['workload']}, {len(seconds)} batches in turns of {turns}, "
        f"{len(costs)} pairs; all threads cost {sum(m for _, m in costs) / one:.3f}x one "
        f"thread; switch factors {' '.join(f'{f:.3f}' for f in switch)}")
    log(f"  {len(runs['choice'])} harness runs of {HARNESS_PAIRS} pairs of epochs "
        f"({epoch_pairs} pairs of batches an epoch), 2 threads over 1:")
    for name in ("choice", "all threads"):
        r = runs[name]
        log(f"    {name:12s} median {np.median(r):.3f}  90th pct {np.quantile(r, 0.9):.3f}  "
            f"over 1.00 in {np.mean(r > 1.0):.0%}")
    log(f"  the choice gave {runs['on_threads']:.0%} of its batches the threads")
    return runs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("record", help="train in turns and save each batch's cost")
    r.add_argument("workload", choices=sorted(FIT_WORKLOADS))
    r.add_argument("--seconds", type=float, default=300.0)
    r.add_argument("--turns", type=int, default=16, help="batches a turn (each choice)")
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--busy", action="store_true", help="beside a process spinning on a core")
    r.add_argument("--scale", type=float, default=1.0, help="the workload's rows, scaled")
    r.add_argument("--out", required=True, help="a new .npz file (never overwritten)")
    p = sub.add_parser("replay", help="replay recordings through the run-time choice")
    p.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    if args.command == "replay":
        for path in args.files:
            replay(path)
        return
    if not args.out.endswith(".npz"):
        parser.error("--out must name a .npz file")
    if os.path.exists(args.out):
        parser.error(f"{args.out} exists: a recording never overwrites a file")
    if args.turns <= SKIP:
        parser.error(f"--turns must be more than {SKIP}")
    workload = FIT_WORKLOADS[args.workload].scaled(args.scale)
    threads, seconds = record(workload, args.seconds, args.turns, args.threads, args.busy)
    np.savez(args.out, threads=threads, seconds=seconds, turns=args.turns,
             workload=workload.name, busy=args.busy,
             epoch_batches=workload.n_samples // workload.batch_size)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
