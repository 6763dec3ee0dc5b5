"""benchmarks/compare.py end to end on a quick run: `fastmlp bench`'s report plus the project's
targets and the measured checkout's commit, in the text and in the JSON."""
import json

import pytest

from fastmlp.bench import build_parser

import compare


def test_compare_adds_targets_and_commit(tmp_path, capsys):
    out = tmp_path / "results.json"
    assert compare.main(["--quick", "--workloads", "small", "--systems", "fastmlp,sklearn",
                         "--repeats", "1", "--harness-runs", "per-call", "--json",
                         str(out)]) == 0
    text = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert "small" in text and "\nTargets:\n" in text
    assert report["targets"][0][0].startswith("small: epoch >=")
    assert report["targets"][0][2] in ("PASS", "FAIL")
    assert report["targets"][1][2] == "n/a"  # tiny-batch was not run
    assert report["machine"]["versions"]["fastmlp_commit"]  # the tests run from a checkout
    assert "partial_fit of 32 rows" in text  # the harness's own run, after the table
    verdicts = {label: verdict for label, _, verdict in report["targets"]}
    assert verdicts["partial_fit of 32 rows (64 -> 100 -> 10) within 60 us per call"] in (
        "PASS", "FAIL")


def test_compare_rejects_unknown_harness_runs():
    with pytest.raises(SystemExit, match="unknown harness run"):
        compare.main(["--harness-runs", "steadiness,nap"])


def test_only_the_harness_defaults_to_the_projects_mnist_folder():
    assert compare.harness_parser().parse_args([]).mnist_dir == compare.MNIST_DIR
    assert build_parser().parse_args([]).mnist_dir is None  # the package ships no data path
