"""The project's benchmark run: `fastmlp bench` with the project's speed targets and host.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/compare.py --help
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/compare.py \
        --json benchmarks/RESULTS.json

See benchmarks/README.md for how to run it on the project's machines (OpenBLAS's kernel, threads,
noise) and benchmarks/RESULTS.md for the last results.

Design
------
The installed package measures (fastmlp/bench: workloads, systems, timing, the table and the
JSON); this harness adds what only the project needs, and no measurement of its own, so
`fastmlp bench` and this command always time the same code with the same options:

- the harness's own runs (harness_runs.py: steadiness, two threads beside a busy core, the
  cost of one small partial_fit call; `--harness-runs`), after the table;
- the targets' verdicts (targets.py), appended to the table and saved in the JSON;
- the commit of the fastmlp being measured, beside the versions;
- the project's MNIST folder as --mnist-dir's default (`../shared/data/mnist10k`, relative to
  the current directory, as the command is run from the checkout's root).
"""
import os
import subprocess
import sys

from fastmlp.bench import build_parser, run
from fastmlp.bench.report import format_report, log, publish
from fastmlp.bench.workloads import FIT_WORKLOADS

from harness_runs import HARNESS_RUNS, format_harness, run_harness
from targets import check_targets, format_targets

MNIST_DIR = os.path.join("..", "shared", "data", "mnist10k")


def fastmlp_commit():
    """The short commit of the checkout the measured fastmlp was imported from, or None."""
    import fastmlp
    here = os.path.dirname(os.path.abspath(fastmlp.__file__))
    try:
        return subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def harness_parser():
    """`fastmlp bench`'s options, with the project's MNIST folder as --mnist-dir's default."""
    parser = build_parser("compare.py", description="Time fastmlp beside scikit-learn's MLP, "
                          "PyTorch (eager and torch.compile), JAX, Keras and ONNX Runtime "
                          "(same data; the compiled peers each in a process of their own) and "
                          "check the project's speed targets. --mnist-dir "
                          f"defaults to {MNIST_DIR}.")
    parser.set_defaults(mnist_dir=MNIST_DIR)
    parser.add_argument("--harness-runs", default=",".join(HARNESS_RUNS),
                        help="comma-separated, from: " + ", ".join(HARNESS_RUNS)
                        + " (default: all; '' for none)")
    return parser


def main(argv=None):
    args = harness_parser().parse_args(argv)
    runs = [r.strip() for r in args.harness_runs.split(",") if r.strip()]
    unknown = [r for r in runs if r not in HARNESS_RUNS]
    if unknown:
        raise SystemExit(f"unknown harness run: {', '.join(unknown)} (choose from "
                         f"{', '.join(HARNESS_RUNS)})")
    report = run(args)
    config = report["config"]
    if runs:
        report["results"].setdefault("load_average", {})["harness runs"] = round(
            os.getloadavg()[0], 2)
    report["results"].update(run_harness(runs, report["machine"]["threads"], config["repeats"],
                                         config["budget_s"], config["scale"], log))
    commit = fastmlp_commit()
    if commit:
        report["machine"]["versions"]["fastmlp_commit"] = commit
    mnist = FIT_WORKLOADS["mnist"].scaled(report["config"]["scale"])
    report["targets"] = check_targets(report["results"], memory_workload=mnist)
    publish(report, format_report(report) + format_harness(report["results"]) + "\n"
            + format_targets(report["targets"]), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
