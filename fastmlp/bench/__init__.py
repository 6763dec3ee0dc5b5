"""`fastmlp bench`: fastmlp beside scikit-learn's MLP, PyTorch (eager and torch.compile), JAX +
optax, Keras 3 and ONNX Runtime, side by side.

    fastmlp bench --workloads small,mnist --json results.json
    python -m fastmlp.bench --help

Runs the workloads chosen with each system installed (a peer not installed is skipped, and said
so in one line) and prints a table; `--json` saves every number. `main(argv)` is the command.

Design
------
What a user runs to time multithreaded CPU training on their own machine, and nothing else: the
package ships no speed targets, no notes about the project's hosts and no default data paths.
The project's own harness (benchmarks/ in the source tree: the ratios it promises, RESULTS.md,
profiling) builds on this package through `build_parser`, `run` and `report.publish`, so the
two always time the same code. The concerns, one module each:

- workloads: the training problems and their data (blobs; MNIST from `--mnist-dir`);
- systems: one runner per in-process system with the same interface (`fit_epoch`,
  `predict_proba`): fastmlp, scikit-learn, PyTorch eager, interleaved in this process;
- peers: torch.compile, JAX + optax, Keras 3 (training) and ONNX Runtime (prediction), each in
  a child process of its own (`--peer-child`, hidden from --help): the training peers' epochs
  in turn with the in-process systems', ONNX Runtime after them;
- timing: interleaved repeats and the measurements built on them (why interleaved: there);
- memory: peak RSS of one epoch in a child process per system (`python -m fastmlp.bench
  --memory-child`, hidden from --help);
- report: the machine, the table and the JSON.
"""
import argparse
import gc
import os
import sys

from threadpoolctl import threadpool_limits

from .memory import bench_memory, memory_child
from .report import format_report, log, machine_info, publish
from .peers import FIT_PEERS, PEERS, PREDICT_PEERS, bench_peer_predict, peer_child
from .peers import start_fit_peers, unavailable
from .systems import IN_PROCESS, make_system, torch_available
from .timing import bench_accuracy, bench_fit, bench_gemm, bench_predict, bench_threads
from .workloads import ALL_WORKLOADS, FIT_WORKLOADS, make_blobs

__all__ = ["build_parser", "main", "run"]

SYSTEMS = IN_PROCESS + PEERS


def build_parser(prog=None, description=None):
    """The benchmark's options; the project's harness adds its own to the same parser."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description or "Time fastmlp, scikit-learn's MLP and a PyTorch "
        "loop side by side (one process, same data, interleaved repeats), and the compiled "
        "peers that are installed (torch.compile, JAX, Keras, ONNX Runtime), each in its own "
        "process on the same data.")
    parser.add_argument("--workloads", default=",".join(ALL_WORKLOADS),
                        help="comma-separated, from: " + ", ".join(ALL_WORKLOADS)
                        + " (default: all)")
    parser.add_argument("--systems", default=",".join(SYSTEMS),
                        help="comma-separated, from: " + ", ".join(SYSTEMS) + " (default: "
                        "all; a system not installed is skipped and said so)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed epochs per system and workload, after one warm-up epoch")
    parser.add_argument("--budget", type=float, default=30.0,
                        help="seconds per system and workload after which a system stops "
                        "repeating (it still gets 3 epochs)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for every system (default: all usable CPUs)")
    parser.add_argument("--mnist-dir",
                        help="folder with MNIST's t10k-images-idx3-ubyte.gz and "
                        "t10k-labels-idx1-ubyte.gz, for the accuracy workload (skipped without)")
    parser.add_argument("--accuracy-epochs", type=int, default=30,
                        help="epochs at most for the time-to-accuracy run")
    parser.add_argument("--json", metavar="FILE", help="also save every number as JSON")
    parser.add_argument("--quick", action="store_true",
                        help="a short run: a tenth of the samples, 3 repeats, small GEMMs")
    return parser


def _split(text, allowed, what):
    items = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in items if s not in allowed]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (choose from "
                         f"{', '.join(allowed)})")
    return items


def run(args, log=log):
    """Run what `args` (from build_parser) asks for; return the report (a plain dict)."""
    threads = args.threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                               else os.cpu_count())
    workloads = _split(args.workloads, ALL_WORKLOADS, "workload")
    systems = _split(args.systems, SYSTEMS, "system")
    skipped = []
    if "torch" in systems and not torch_available():
        systems.remove("torch")
        skipped.append("torch (not installed: pip install 'fastmlp[bench]')")
    for peer in [s for s in systems if s in PEERS]:
        why_not = unavailable(peer)
        if why_not:
            systems.remove(peer)
            skipped.append(why_not)
    in_process = [s for s in systems if s in IN_PROCESS]
    fit_peers = [s for s in systems if s in FIT_PEERS]
    predict_peers = [s for s in systems if s in PREDICT_PEERS]
    scale = 0.1 if args.quick else 1.0
    repeats = min(args.repeats, 3) if args.quick else args.repeats
    budget = args.budget
    report = {"command": " ".join([os.path.basename(sys.argv[0]) or "python"] + sys.argv[1:]),
              "argv": sys.argv, "machine": machine_info(threads), "skipped": skipped,
              "config": {"workloads": workloads, "systems": systems, "repeats": repeats,
                         "budget_s": budget, "scale": scale}, "results": {}}
    results = report["results"]
    for line in skipped:
        log(f"skipped: {line}")
    mnist = FIT_WORKLOADS["mnist"].scaled(scale)
    with threadpool_limits(threads):
        for name, workload in FIT_WORKLOADS.items():
            wants_predict = name == "mnist" and {"predict-bulk", "predict-one"} & set(workloads)
            if name not in workloads and not wants_predict:
                continue
            workload = workload.scaled(scale)
            results.setdefault("load_average", {})[name] = round(os.getloadavg()[0], 2)
            log(f"{name}: {workload.n_samples} x {workload.n_features}, hidden "
                f"{workload.hidden}, batch {workload.batch_size}, {workload.dtype}")
            if name in workloads:
                serving, failed = start_fit_peers(workload, fit_peers, threads, log)
                try:
                    fit, runners, X = bench_fit(workload, in_process, threads, repeats, budget,
                                                log, peers=serving)
                finally:
                    for p in serving.values():
                        p.close()
                for peer in fit_peers:  # the table's order, whatever failed where
                    fit[peer] = fit.pop(peer, None) or failed[peer]
                    _peer_failed(fit, peer, name, skipped, log)
                results.setdefault("fit", {})[name] = fit
            else:  # inference alone: train each network one epoch first
                X, y = make_blobs(workload.n_samples, workload.n_features, workload.dtype)
                runners = {s: make_system(s, workload, threads) for s in in_process}
                for runner in runners.values():
                    runner.fit_epoch(X, y)
            if wants_predict:
                results["predict"] = bench_predict(workload, runners, X, workloads, repeats,
                                                   budget, log)
                for peer in predict_peers:
                    record = bench_peer_predict(workload, peer, threads, repeats,
                                                {"predict-bulk", "predict-one"} & set(workloads),
                                                log)
                    if "error" in record:
                        skipped.append(f"{peer} on predict (failed: {record['error']})")
                        log(f"skipped: {skipped[-1]}")
                        continue
                    for kind, summary in record.items():
                        results["predict"][kind][peer] = summary
            del runners, X
            gc.collect()
            if name == "mnist" and "threads" in workloads:
                results["threads"] = bench_threads(mnist, in_process, threads, repeats, budget,
                                                   log)
                gc.collect()
        if "threads" in workloads and "threads" not in results:
            results["threads"] = bench_threads(mnist, in_process, threads, repeats, budget,
                                               log)
        if "gemm" in workloads:
            results["gemm"] = bench_gemm((1024, 2048) if args.quick else (2048, 4096), threads,
                                         log)
        if "memory" in workloads:
            results["memory"] = bench_memory(mnist, in_process, threads, log)
        if "accuracy" in workloads:
            why_not = _accuracy_unavailable(args.mnist_dir)
            if why_not:
                skipped.append(f"accuracy ({why_not})")
                log(f"skipped: {skipped[-1]}")
            else:
                results["accuracy"] = bench_accuracy(
                    args.mnist_dir, in_process, threads,
                    min(args.accuracy_epochs, 3) if args.quick else args.accuracy_epochs, log)
    report["machine"]["load_average_end"] = list(os.getloadavg())
    return report


def _peer_failed(fit, peer, workload, skipped, log):
    """A peer whose child failed (cannot compile here, crashed) leaves the table, with why."""
    if "error" in fit[peer]:
        skipped.append(f"{peer} on {workload} (failed: {fit.pop(peer)['error']})")
        log(f"skipped: {skipped[-1]}")


def _accuracy_unavailable(mnist_dir):
    """Why the accuracy workload cannot run, or None: it needs MNIST, which is not bundled."""
    if mnist_dir is None:
        return ("needs --mnist-dir, a folder with MNIST's t10k-images-idx3-ubyte.gz and "
                "t10k-labels-idx1-ubyte.gz")
    if not os.path.isdir(mnist_dir):
        return f"no MNIST folder at {os.path.abspath(mnist_dir)}"
    return None


def main(argv=None, prog=None):
    """Run the benchmarks named on the command line; print the table; return 0."""
    parser = build_parser(prog)
    parser.add_argument("--memory-child", nargs=2, metavar=("SYSTEM", "WORKLOAD"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--peer-child", nargs=2, metavar=("SYSTEM", "SPEC"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peer_child:
        peer_child(args.peer_child[0], args.peer_child[1], args.threads or 1)
        return 0
    if args.memory_child:
        memory_child(args.memory_child[0], args.memory_child[1], args.threads or 1)
        return 0
    report = run(args)
    publish(report, format_report(report), args.json)
    return 0
