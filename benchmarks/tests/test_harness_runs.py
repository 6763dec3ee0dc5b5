"""The harness's own runs (benchmarks/harness_runs.py) on tiny inputs: what each returns and
prints. Nothing is judged on speed here; the verdicts are targets.py's, tested on made-up
results in test_targets.py."""
import harness_runs
import pytest

from fastmlp.bench.workloads import Workload


def quiet(message):
    pass


def test_steadiness_reports_each_runs_median_and_their_spread():
    result = harness_runs.steadiness(1, repeats=1, budget=1.0, scale=0.01, log=quiet, runs=2)
    assert set(result) == {"tiny-batch", "small"}
    for r in result.values():
        assert len(r["medians"]) == 2 and min(r["medians"]) > 0
        assert r["max_over_min"] == max(r["medians"]) / min(r["medians"])
        host = r["host"]  # the same runs of a fixed sgemm loop, as long as the epochs
        assert len(host["medians"]) == 2 and min(host["medians"]) > 0
        assert host["max_over_min"] == max(host["medians"]) / min(host["medians"])
    text = harness_runs.format_harness({"steadiness": result})
    assert text.count("(the host's control right after: max/min ") == 2


def test_steadiness_with_two_threads_counts_each_runs_threaded_batches():
    result = harness_runs.steadiness(2, repeats=1, budget=1.0, scale=0.01, log=quiet, runs=2,
                                     names=("tiny-batch",))["tiny-batch"]
    # 200 rows (20,000 x 0.01) in batches of 32: 6 full batches an epoch; a run is a warm-up
    # epoch and one timed epoch
    assert result["batches"] == [12, 12]
    assert all(0 <= more <= 12 for more in result["batches_on_2"])
    text = harness_runs.format_harness({"steadiness": {"tiny-batch": result}})
    assert "batches on 2 threads, each run's warm-up epoch included: " in text
    assert f"{result['batches_on_2'][1]} of 12" in text


def test_the_host_control_times_units_about_as_long_as_asked():
    result = harness_runs.host_control(0.02, runs=3, repeats=3)
    assert len(result["medians"]) == 3
    # a host that moves a loop's speed by a third within minutes: only the order of magnitude
    assert all(0.004 < m < 0.1 for m in result["medians"]), result


def test_busy_core_times_one_and_two_threads_per_workload(monkeypatch):
    tiny = Workload("tiny", 256, 8, (4,), 32, "float32")
    monkeypatch.setattr(harness_runs, "FIT_WORKLOADS", {"tiny": tiny})
    result = harness_runs.busy_core(repeats=1, budget=1.0, scale=1.0, log=quiet)
    r = result["tiny"]
    assert r["two_over_one"] == r["2"] / r["1"] and r["1"] > 0
    # its 2-thread epochs' full batches (8 an epoch), by the threads they took: a batch this
    # small never takes two (fastmlp/_runtime.py's threads_for_batch)
    assert r["batches"] >= 8 and r["batches"] % 8 == 0 and r["batches_on_2"] == 0
    assert "(2-thread epochs: 0 of " in harness_runs.format_harness({"busy-core": result})
    assert set(r["cpu_per_wall"]) == {"1", "2"} and min(r["cpu_per_wall"].values()) > 0
    assert "; CPU a wall second " in harness_runs.format_harness({"busy-core": result})


def test_workloads_narrow_steadiness_and_busy_core(monkeypatch, capsys):
    tiny = Workload("tiny", 256, 8, (4,), 32, "float32")
    other = Workload("other", 256, 8, (4,), 32, "float32")
    monkeypatch.setattr(harness_runs, "FIT_WORKLOADS", {"tiny": tiny, "other": other})
    result = harness_runs.run_harness(["busy-core"], 2, 2, 1.0, 1.0, quiet, workloads=["other"])
    assert list(result["busy-core"]) == ["other"]
    assert harness_runs.main(["--runs", "busy-core", "--workloads", "tiny", "--threads", "2",
                              "--repeats", "1", "--budget", "1"]) == 0
    assert "tiny " in capsys.readouterr().out


def test_a_full_run_gives_short_epochs_more_samples_beside_the_busy_core(monkeypatch):
    # The median of 3 epochs of ~12 ms said nothing (the same code read 0.93-1.08 both ways):
    # a full run times each thread count for BUSY_SECONDS, at least 3 epochs and at most
    # BUSY_EPOCHS, whatever repeats and budget the table used.
    seen = []

    def fake_bench_threads(workload, systems, threads, repeats, budget, log):
        seen.append((workload.name, repeats, budget))
        one = {"median_s": 1.0}
        return {"fastmlp": {"by_threads": {"1": one, "2": one}}}
    tiny = Workload("tiny", 256, 8, (4,), 32, "float32")
    monkeypatch.setattr(harness_runs, "FIT_WORKLOADS", {"tiny": tiny})
    monkeypatch.setattr(harness_runs, "bench_threads", fake_bench_threads)
    harness_runs.run_harness(["busy-core"], 2, 3, 10.0, 1.0, quiet)
    assert seen == [("tiny", harness_runs.BUSY_EPOCHS, harness_runs.BUSY_SECONDS)]
    assert harness_runs.BUSY_EPOCHS >= 15
    harness_runs.run_harness(["busy-core"], 2, 3, 10.0, 1.0, quiet, workloads=["tiny"])
    assert seen[1] == ("tiny", 3, 10.0)  # a run of named workloads keeps what it was given


def test_an_unknown_workload_is_refused(capsys):
    with pytest.raises(SystemExit):
        harness_runs.main(["--runs", "busy-core", "--workloads", "tiny-batch,nope"])
    assert "unknown workload: nope" in capsys.readouterr().err


def test_per_call_times_each_system():
    result = harness_runs.per_call(1, quiet, calls=(("fastmlp", 5), ("sklearn", 3)))
    assert result["fastmlp"]["calls"] == 5 and result["sklearn"]["calls"] == 3
    assert 0 < result["fastmlp"]["min_us"] <= result["fastmlp"]["median_us"]


def test_format_harness_prints_every_run():
    text = harness_runs.format_harness({
        "steadiness": {"small": {"medians": [0.01, 0.012], "max_over_min": 1.2}},
        "busy-core": {"mnist": {"1": 0.4, "2": 0.5, "two_over_one": 1.25}},
        "per-call": {"fastmlp": {"median_us": 700.0, "min_us": 650.0, "calls": 2000}}})
    assert "max/min 1.20" in text and "2/1 = 1.25" in text and "median 700 us" in text
    assert "batches on 2 threads" not in text  # (a result without the counts)
    text = harness_runs.format_harness({"busy-core": {"mnist": {
        "1": 0.4, "2": 0.38, "two_over_one": 0.95, "batches_on_2": 1100, "batches": 1170}}})
    assert "2/1 = 0.95 (2-thread epochs: 1,100 of 1,170 batches on 2 threads)" in text
    assert "CPU a wall second" not in text  # (a result without the CPU times)
    text = harness_runs.format_harness({"busy-core": {"mnist": {
        "1": 0.4, "2": 0.38, "two_over_one": 0.95, "cpu_per_wall": {"1": 0.995, "2": 1.126}}}})
    assert "2/1 = 0.95; CPU a wall second 0.99 and 1.13" in text
