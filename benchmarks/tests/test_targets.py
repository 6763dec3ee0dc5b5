"""The project's targets (benchmarks/targets.py) judged on made-up results: the faster peer is
the one to beat, a target not measured is n/a, and each threshold sits where it says."""
from fastmlp.bench.workloads import FIT_WORKLOADS

from targets import check_targets, fastmlp_fit_estimate, format_targets

MNIST = FIT_WORKLOADS["mnist"]


def _fit_rows(fastmlp_s, sklearn_s, torch_s=None):
    rows = {"fastmlp": {"median_s": fastmlp_s, "gflops": 1.0},
            "sklearn": {"median_s": sklearn_s, "gflops": 1.0}}
    if torch_s is not None:
        rows["torch"] = {"median_s": torch_s, "gflops": 1.0}
    return rows


def test_check_targets_uses_the_faster_peer():
    results = {"fit": {"small": _fit_rows(1.0, 10.0, 3.9), "mnist": _fit_rows(1.0, 1.5)}}
    checks = [(measured, verdict) for _, measured, verdict in check_targets(results, MNIST)]
    assert checks[0] == ("3.90x vs torch", "FAIL")  # small: 4x needed; torch is the faster peer
    assert checks[1] == ("not measured", "n/a")  # tiny-batch
    assert checks[2] == ("1.50x vs sklearn", "PASS")  # mnist: 1.5x needed
    assert checks[4][1] == "n/a"  # wide


def test_check_targets_ceiling_latency_threads_memory():
    estimate = fastmlp_fit_estimate(MNIST)["total"]
    results = {
        "fit": {"wide": {"fastmlp": {"median_s": 1.0, "gflops": 150.0}}},
        "gemm": {"sgemm": {"best_gflops": 180.0}},
        "predict": {"predict-one": {"fastmlp": {"median_s": 30e-6},
                                    "torch": {"median_s": 100e-6}},
                    "predict-bulk": {"fastmlp": {"median_s": 1.1},
                                     "sklearn": {"median_s": 1.0}}},
        "threads": {"fastmlp": {"by_threads": {"1": {}, "2": {}}, "speedup": 1.69}},
        "memory": {"fastmlp": {"fit_added": estimate + 17 * 2 ** 20, "data_bytes": 2 ** 30}},
    }
    verdicts = [verdict for _, _, verdict in check_targets(results, MNIST)]
    # small, tiny-batch, mnist, mnist-f64, wide speed-ups; ceiling; one row; bulk; threads; memory
    assert verdicts[4:10] == ["n/a", "PASS", "PASS", "FAIL", "FAIL", "FAIL"]
    results["memory"]["fastmlp"]["fit_added"] = estimate + 15 * 2 ** 20  # within the slack
    assert check_targets(results, MNIST)[9][2] == "PASS"


def test_fit_estimate_counts_parameters_labels_and_batch_buffers():
    e = fastmlp_fit_estimate(MNIST)
    n_params = MNIST.n_weights + 256 + 128 + 10
    assert e["params"] == 4 * n_params * 4  # theta, gradient, Adam's two moments; float32
    assert e["labels"] == 60_000 * 10 * (8 + 4) + 2 * 60_000 * 8
    assert e["total"] == e["params"] + e["labels"] + e["batch"]


def test_format_targets_is_the_reports_last_section():
    text = format_targets([("wide: >= 80% of the sgemm ceiling", "87%", "PASS")])
    assert text == "\nTargets:\n  [PASS] wide: >= 80% of the sgemm ceiling: 87%"
