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

- the targets' verdicts (targets.py), appended to the table and saved in the JSON;
- the commit of the fastmlp being measured, beside the versions;
- the project's MNIST folder as --mnist-dir's default (`../shared/data/mnist10k`, relative to
  the current directory, as the command is run from the checkout's root).
"""
import os
import subprocess
import sys

from fastmlp.bench import build_parser, run
from fastmlp.bench.report import format_report, publish
from fastmlp.bench.workloads import FIT_WORKLOADS

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
    parser = build_parser("compare.py", description="Time fastmlp, scikit-learn's MLP and a "
                          "PyTorch loop side by side (one process, same data, interleaved "
                          "repeats) and check the project's speed targets. --mnist-dir "
                          f"defaults to {MNIST_DIR}.")
    parser.set_defaults(mnist_dir=MNIST_DIR)
    return parser


def main(argv=None):
    args = harness_parser().parse_args(argv)
    report = run(args)
    commit = fastmlp_commit()
    if commit:
        report["machine"]["versions"]["fastmlp_commit"] = commit
    mnist = FIT_WORKLOADS["mnist"].scaled(report["config"]["scale"])
    report["targets"] = check_targets(report["results"], memory_workload=mnist)
    publish(report, format_report(report) + "\n" + format_targets(report["targets"]), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
