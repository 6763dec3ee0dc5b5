"""pytest-benchmark suite: one training epoch, bulk and one-row predict_proba, per workload and
system, on the workloads of fastmlp/bench/workloads.py.

Not part of the test suite (pyproject's testpaths are tests/ and benchmarks/tests/, which hold no
timings); run it on purpose:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m pytest benchmarks/ --benchmark-only

FASTMLP_BENCH_SCALE (default 1) scales every workload's sample count, e.g. 0.1 for a quick run;
FASTMLP_BENCH_ROUNDS (default 3) sets the timed rounds. Each system gets one untimed warm-up
epoch (the first partial_fit, with classes=) before its rounds. pytest-benchmark times systems one
after the other, not interleaved: for ratios measured side by side use benchmarks/compare.py.
"""
import os

import numpy as np
import pytest

from fastmlp.bench.systems import IN_PROCESS, make_system, torch_available
from fastmlp.bench.workloads import FIT_WORKLOADS, PREDICT_BULK_ROWS, make_blobs

SCALE = float(os.environ.get("FASTMLP_BENCH_SCALE", "1"))
ROUNDS = int(os.environ.get("FASTMLP_BENCH_ROUNDS", "3"))
THREADS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _systems():
    for name in IN_PROCESS:
        marks = ()
        if name == "torch" and not torch_available():
            marks = pytest.mark.skip(reason="torch is not installed (pip install 'fastmlp[bench]')")
        yield pytest.param(name, marks=marks, id=name)


_data_cache = {}


def _data(workload):
    """One dataset at a time (the largest is 180 MiB), shared by the systems of a workload."""
    key = (workload.n_samples, workload.n_features, workload.dtype)
    if key not in _data_cache:
        _data_cache.clear()
        _data_cache[key] = make_blobs(*key)
    return _data_cache[key]


@pytest.fixture(scope="module")
def mnist_models():
    """The `mnist` network of every available system, trained one epoch."""
    workload = FIT_WORKLOADS["mnist"].scaled(SCALE)
    X, y = _data(workload)
    models = {}
    for name in IN_PROCESS:
        if name == "torch" and not torch_available():
            continue
        models[name] = make_system(name, workload, THREADS)
        models[name].fit_epoch(X, y)
    return models, X


@pytest.mark.parametrize("system", _systems())
@pytest.mark.parametrize("workload_name", list(FIT_WORKLOADS))
def test_fit_epoch(benchmark, workload_name, system):
    workload = FIT_WORKLOADS[workload_name].scaled(SCALE)
    X, y = _data(workload)
    runner = make_system(system, workload, THREADS)
    runner.fit_epoch(X, y)  # warm-up: the first partial_fit, with classes=
    benchmark.group = f"fit-epoch {workload_name}"
    benchmark.extra_info.update(n_samples=workload.n_samples, n_weights=workload.n_weights,
                                gflop_per_epoch=6 * workload.n_weights * workload.n_samples / 1e9)
    benchmark.pedantic(runner.fit_epoch, args=(X, y), rounds=ROUNDS, iterations=1)


@pytest.mark.parametrize("system", _systems())
def test_predict_bulk(benchmark, mnist_models, system):
    models, X = mnist_models
    rows = np.ascontiguousarray(X[:PREDICT_BULK_ROWS])
    benchmark.group = f"predict_proba {rows.shape[0]} rows (mnist network)"
    benchmark.pedantic(models[system].predict_proba, args=(rows,), rounds=max(ROUNDS, 5),
                       iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("system", _systems())
def test_predict_one_row(benchmark, mnist_models, system):
    models, X = mnist_models
    row = np.ascontiguousarray(X[:1])
    benchmark.group = "predict_proba one row (mnist network)"
    benchmark.pedantic(models[system].predict_proba, args=(row,), rounds=200, iterations=1,
                       warmup_rounds=20)
