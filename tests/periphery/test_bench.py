"""`fastmlp bench` (fastmlp/bench) on tiny inputs: that it reads MNIST's IDX format, makes the
data it says, times and reports what it is asked for, and runs end to end. Nothing here is timed
against anything: speed is measured by `fastmlp bench` / benchmarks/, never by tests. The
project's targets are tested with its harness, in benchmarks/tests."""
import gzip
import json
import struct
import sys

import numpy as np
import pytest

from fastmlp import bench
from fastmlp.bench import memory, peers, systems, timing, workloads


def write_idx(path, array, type_code=0x08):
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(
        struct.pack(">I", n) for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(array.dtype.newbyteorder(">")).tobytes())


def test_read_idx_round_trip(tmp_path):
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    write_idx(str(tmp_path / "images.gz"), images)
    np.testing.assert_array_equal(workloads.read_idx(str(tmp_path / "images.gz")), images)
    values = np.array([[1, -2], [300000, 7]], dtype=np.int32)
    write_idx(str(tmp_path / "values.gz"), values, type_code=0x0C)
    np.testing.assert_array_equal(workloads.read_idx(str(tmp_path / "values.gz")), values)


def test_read_idx_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x02ab")
    with pytest.raises(ValueError, match="not an IDX file"):
        workloads.read_idx(str(bad))
    short = tmp_path / "short"
    short.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05ab")
    with pytest.raises(ValueError, match="expected 13"):
        workloads.read_idx(str(short))


def test_load_mnist10k_scales_pixels(tmp_path):
    images = np.array([[[0, 255], [51, 102]]] * 4, dtype=np.uint8)
    write_idx(str(tmp_path / "t10k-images-idx3-ubyte.gz"), images)
    write_idx(str(tmp_path / "t10k-labels-idx1-ubyte.gz"), np.array([3, 1, 4, 1], np.uint8))
    X, y = workloads.load_mnist10k(str(tmp_path))
    assert X.dtype == np.float32 and X.shape == (4, 4)
    np.testing.assert_allclose(X[0], [0.0, 1.0, 0.2, 0.4])
    np.testing.assert_array_equal(y, [3, 1, 4, 1])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_make_blobs(dtype):
    X, y = workloads.make_blobs(5000, 7, dtype, seed=1)
    assert X.shape == (5000, 7) and X.dtype == np.dtype(dtype) and X.flags.c_contiguous
    assert set(np.unique(y)) == set(range(workloads.N_CLASSES))
    # Each class is a blob: points sit closer to their own class mean than to the others'.
    means = np.stack([X[y == k].mean(axis=0) for k in range(workloads.N_CLASSES)])
    nearest = np.argmin(((X[:, None, :] - means[None]) ** 2).sum(axis=2), axis=1)
    assert np.mean(nearest == y) > 0.5
    X2, y2 = workloads.make_blobs(5000, 7, dtype, seed=1)
    np.testing.assert_array_equal(X, X2)


def test_workload_weights_and_scaling():
    mnist = workloads.FIT_WORKLOADS["mnist"]
    assert mnist.n_weights == 784 * 256 + 256 * 128 + 128 * 10
    small = mnist.scaled(0.01)
    assert small.n_samples == 4 * mnist.batch_size  # never fewer than four batches
    assert mnist.scaled(5).n_samples == mnist.n_samples


def test_predict_and_fit_timings_on_a_tiny_workload():
    workload = workloads.Workload("tiny", 400, 6, (5,), 50, "float32")
    fit, runners, X = timing.bench_fit(workload, ["fastmlp", "sklearn"], 1, repeats=2,
                                       budget=10.0, log=lambda message: None)
    assert set(fit) == {"fastmlp", "sklearn"}
    for record in fit.values():
        assert record["n"] == 2 and record["median_s"] > 0 and record["gflops"] > 0
    predict = timing.bench_predict(workload, runners, X, {"predict-bulk", "predict-one"},
                                   repeats=2, budget=10.0, log=lambda message: None)
    assert predict["predict-one"]["fastmlp"]["n"] == workloads.PREDICT_ONE_CALLS
    assert predict["predict-bulk"]["sklearn"]["n"] == 5


def test_time_interleaved_respects_the_budget():
    calls = []
    times, cpu = timing.time_interleaved({"a": lambda: calls.append("a"),
                                          "b": lambda: calls.append("b")}, repeats=4, budget=0)
    assert calls[:6] == ["a", "b"] * 3  # interleaved; then the budget stops both at 3 samples
    assert len(times["a"]) == len(cpu["b"]) == 3


def test_time_interleaved_pauses_before_each_call_where_told(monkeypatch):
    # Bulk predictions pause before every call however many systems run in the process, as
    # ONNX Runtime's in its child: the same idle start for every system's call.
    pauses = []
    monkeypatch.setattr(timing.time, "sleep", pauses.append)
    timing.time_interleaved({"a": lambda: None}, repeats=3, budget=60.0)
    assert pauses == []
    timing.time_interleaved({"a": lambda: None}, repeats=3, budget=60.0, settle=True)
    assert pauses == [timing.SETTLE_SECONDS] * 3
    timing.time_interleaved({"a": lambda: None, "b": lambda: None}, repeats=2, budget=60.0,
                            settle=False)
    assert len(pauses) == 3


def test_main_end_to_end(tmp_path, capsys):
    out = tmp_path / "results.json"
    assert bench.main(["--quick", "--workloads", "small", "--systems", "fastmlp,sklearn",
                       "--repeats", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "small" in text and "sklearn" in text
    assert "Targets:" not in text  # the project's targets are its harness's (benchmarks/)
    report = json.loads(out.read_text())
    assert set(report["results"]["fit"]["small"]) == {"fastmlp", "sklearn"}
    assert report["machine"]["blas"] and report["text"] == text.rstrip("\n")
    assert "targets" not in report and "fastmlp_commit" not in report["machine"]["versions"]


def test_accuracy_without_mnist_is_skipped_and_says_why(capsys):
    assert bench.main(["--workloads", "accuracy", "--systems", "fastmlp"]) == 0
    assert "skipped: accuracy (needs --mnist-dir" in capsys.readouterr().out


def test_memory_child_runs_as_a_module():
    # bench_memory starts `python -m fastmlp.bench --memory-child`: one tiny epoch, one JSON line
    workload = workloads.Workload("tiny", 512, 8, (4,), 64, "float32")
    result = memory.bench_memory(workload, ["fastmlp"], 1, log=lambda message: None)
    record = result["fastmlp"]
    assert "error" not in record, record
    assert record["data_bytes"] == 512 * 8 * 4 and record["fit_added"] >= 0


def test_gemm_ceiling_is_never_below_what_one_core_shows():
    result = timing.bench_gemm((128, 256), threads=2, log=lambda message: None, repeats=2)
    for routine in ("sgemm", "dgemm"):
        r = result[routine]
        assert set(r["by_size"]) == {"128", "256"} and r["one_thread_gflops"] > 0
        assert r["best_gflops"] == max(r["all_threads_gflops"], 2 * r["one_thread_gflops"])


def test_main_rejects_unknown_names():
    with pytest.raises(SystemExit, match="unknown workload"):
        bench.main(["--workloads", "small,huge"])


def test_shifted_copies_move_each_image_one_pixel_with_zeros_coming_in():
    X = np.zeros((2, 16), dtype=np.float32)
    X[0, 1 * 4 + 2] = 1.0  # image 0: a pixel at row 1, column 2
    X[1, 0 * 4 + 3] = 2.0  # image 1: a pixel in the top right corner
    X_all, y_all = workloads.shifted_copies(X, np.array([7, 8]), side=4)
    assert X_all.shape == (10, 16) and X_all.dtype == X.dtype
    np.testing.assert_array_equal(y_all, [7, 8] * 5)
    where = [tuple(map(tuple, np.argwhere(image.reshape(4, 4)))) for image in X_all]
    # original, down, up, right, left; image 1 falls off the top and the right edge
    assert where == [((1, 2),), ((0, 3),), ((2, 2),), ((1, 3),), ((0, 2),), (), ((1, 3),), (),
                     ((1, 1),), ((0, 2),)]
    assert X_all.sum() == 5 * 1.0 + 3 * 2.0


def test_time_to_accuracy_on_separable_images(tmp_path):
    # 10,000 28x28 images whose class is a bright band of rows: learnable in one epoch.
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 10000).astype(np.uint8)
    images = rng.integers(0, 30, (10000, 28, 28)).astype(np.uint8)
    for k in range(10):
        images[labels == k, 2 * k:2 * k + 3, :] = 255
    write_idx(str(tmp_path / "t10k-images-idx3-ubyte.gz"), images)
    write_idx(str(tmp_path / "t10k-labels-idx1-ubyte.gz"), labels)
    result = timing.bench_accuracy(str(tmp_path), ["fastmlp", "sklearn"], 1, max_epochs=3,
                                   log=lambda message: None)
    for record in result["systems"].values():
        assert record["best_accuracy"] >= 0.97
        reached = record["reached"]["0.97"]
        assert reached["epoch"] == record["epochs_run"]  # stops once every threshold is met
        assert reached["seconds"] == pytest.approx(sum(record["epoch_seconds"]))
        assert reached["epochs_x_median_s"] == pytest.approx(
            reached["epoch"] * record["median_epoch_s"])


def _pretend_installed(monkeypatch, absent=()):
    real = peers.importlib.util.find_spec
    monkeypatch.setattr(peers.importlib.util, "find_spec",
                        lambda name: None if name in absent else real(name) or object())


def test_a_peer_not_installed_is_skipped_in_one_line(monkeypatch, capsys, tmp_path):
    _pretend_installed(monkeypatch, absent=("jax",))
    assert bench.main(["--quick", "--workloads", "small", "--systems", "fastmlp,jax,keras",
                       "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "skipped: jax (jax not installed: pip install 'fastmlp[bench]'); keras (jax not " \
           "installed" in out
    assert bench.main(["--quick", "--workloads", "small", "--systems", "fastmlp,jax",
                       "--repeats", "1", "--json", str(tmp_path / "r.json")]) == 0
    assert set(json.loads((tmp_path / "r.json").read_text())["results"]["fit"]["small"]) == {
        "fastmlp"}


def test_torch_compile_needs_a_cpp_compiler(monkeypatch):
    _pretend_installed(monkeypatch)
    monkeypatch.setattr(peers.shutil, "which", lambda name: None)
    assert "needs a C++ compiler" in peers.unavailable("torch-compile")


# A stand-in for a peer's child (PeerEpochs._command), speaking its protocol: a line of its
# framework's own on stdout, the warm-up's reply, then replies to `epochs` requests, then an
# error on stderr and exit status 1 at the next request.
FAKE_CHILD = """
import sys, time
print("a framework's own line", flush=True)
print('fastmlp-peer: {"warmup_s": 0.5}', flush=True)
for n, line in enumerate(sys.stdin):
    if n == EPOCHS:
        sys.exit("RuntimeError: lost its device")
    time.sleep(0.01)
    print('fastmlp-peer: {"wall": %d.25, "cpu": 0.5, "loss": 0.125}' % (n + 1), flush=True)
"""


def _fake_child(monkeypatch, epochs):
    monkeypatch.setattr(peers.PeerEpochs, "_command", staticmethod(
        lambda *args: [sys.executable, "-c", FAKE_CHILD.replace("EPOCHS", str(epochs))]))


def test_a_peer_that_fails_leaves_the_table_and_says_why(monkeypatch, capsys):
    _pretend_installed(monkeypatch)
    _fake_child(monkeypatch, epochs=0)
    assert bench.main(["--quick", "--workloads", "small", "--systems", "fastmlp,jax",
                       "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "skipped: jax on small (failed: RuntimeError: lost its device)" in out
    assert "small               fastmlp     2" in out  # the others' rounds went on


def test_a_peer_that_cannot_start_leaves_the_table_and_says_why(monkeypatch, capsys):
    _pretend_installed(monkeypatch)
    monkeypatch.setattr(peers.PeerEpochs, "_command", staticmethod(
        lambda *args: [sys.executable, "-c", "import sys; sys.exit('no compiler')"]))
    assert bench.main(["--quick", "--workloads", "small", "--systems", "fastmlp,jax",
                       "--repeats", "1"]) == 0
    assert "skipped: jax on small (failed: no compiler)" in capsys.readouterr().out


def test_peer_epochs_go_in_turn_with_the_others_timed_by_the_child(monkeypatch):
    """A peer's epochs are interleaved round by round with the in-process systems' (each
    request answered before the next system is timed), with the seconds its child measured,
    not the round trip; its loss and warm-up come along."""
    _fake_child(monkeypatch, epochs=3)
    workload = workloads.Workload("tiny", 400, 6, (5,), 50, "float32")
    calls = []
    peer = peers.start_fit_peers(workload, ["jax"], 1, log=lambda message: None)[0]["jax"]
    epoch = peer.epoch
    monkeypatch.setattr(peer, "epoch", lambda: calls.append("jax") or epoch())
    fastmlp_epoch = systems.EstimatorSystem.fit_epoch
    monkeypatch.setattr(systems.EstimatorSystem, "fit_epoch",
                        lambda self, X, y: calls.append(self.name) or fastmlp_epoch(self, X, y))
    try:
        fit, _, _ = timing.bench_fit(workload, ["fastmlp"], 1, repeats=3, budget=60.0,
                                     log=lambda message: None, peers={"jax": peer})
    finally:
        peer.close()
    assert calls == ["fastmlp"] + ["fastmlp", "jax"] * 3  # (the first: fastmlp's warm-up)
    assert fit["jax"]["n"] == 3 and fit["jax"]["median_s"] == 2.25  # 1.25, 2.25, 3.25
    assert fit["jax"]["cpu_per_wall"] == pytest.approx(0.5 / 2.25)
    assert fit["jax"]["final_loss"] == 0.125 and fit["jax"]["warmup_s"] == 0.5


def test_time_interleaved_takes_a_tasks_own_timing_and_drops_a_failed_task():
    def failing():
        raise timing.TaskFailed("gone")

    failed = {}
    tasks = {"own": lambda: timing.OwnTiming(2.0, 1.0), "gone": failing,
             "here": lambda: (5.0, 5.0)}
    times, cpu = timing.time_interleaved(tasks, repeats=3, budget=60.0, failed=failed)
    assert times["own"] == [2.0] * 3 and cpu["own"] == [1.0] * 3
    assert failed == {"gone": "gone"} and times["gone"] == []
    assert len(times["here"]) == 3 and max(times["here"]) < 5.0  # a tuple is no timing
    with pytest.raises(timing.TaskFailed):
        timing.time_interleaved({"gone": failing}, repeats=1, budget=1.0)


TINY = workloads.Workload("tiny", 512, 8, (6,), 64, "float32")


def test_onnxruntime_child_times_fastmlps_exported_network():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("skl2onnx")
    result = peers.bench_peer_predict(TINY, "onnxruntime", 1, 2, {"predict-bulk", "predict-one"},
                                      log=lambda message: None)
    assert "error" not in result, result
    assert result["predict-one"]["n"] == workloads.PREDICT_ONE_CALLS
    assert result["predict-bulk"]["n"] == 5 and result["predict-bulk"]["samples_per_s"] > 0


@pytest.mark.parametrize("system", ["jax", "keras"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_jit_peers_train_the_same_problem_in_a_child(system, dtype):
    if peers.unavailable(system):
        pytest.skip(peers.unavailable(system))
    workload = workloads.Workload("tiny", 2048, 8, (16,), 32, dtype)
    result = peers.bench_peer_fit(workload, system, 1, repeats=2, budget=60.0,
                                  log=lambda message: None)
    assert "error" not in result, result  # a float64 workload computed in float32 is an error
    assert result["n"] == 2 and result["warmup_s"] > 0
    # Three epochs of the same problem: the loss lands where fastmlp's does (not digit for
    # digit: each framework initialises its own way).
    X, y = workloads.make_blobs(workload.n_samples, workload.n_features, dtype)
    fastmlp = systems.EstimatorSystem("fastmlp", workload)
    for _ in range(3):
        fastmlp.fit_epoch(X, y)
    assert 0.5 * fastmlp.final_loss < result["final_loss"] < 2 * fastmlp.final_loss
