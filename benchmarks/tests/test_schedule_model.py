"""benchmarks/schedule_model.py: its copy of the engine's block rules is the engine's (so the
model cannot drift from the schedule it models), and its simulation keeps the bounds any
schedule has. Costs here are flops at a fixed rate: nothing is timed."""
import os
import re

import numpy as np
import pytest

from fastmlp import _engine
from fastmlp.bench.workloads import FIT_WORKLOADS

import schedule_model as sm

SCHEDULE_PXD = os.path.join(os.path.dirname(_engine.__file__), "_schedule.pxd")

# Widths that take every branch of n_blocks for W's rows: fewer than MIN_SPLIT (one block), fewer
# than two MIN_WEIGHT_ROWS (two), an odd quotient (rounded down to even), more than MAX_BLOCKS.
UNITS = [(784, 256, 128, 10), (64, 100, 10), (8, 5, 3), (3000, 17, 300, 10), (640, 384, 15, 1)]


def _engine_constants():
    if not os.path.exists(SCHEDULE_PXD):
        pytest.skip(f"{SCHEDULE_PXD} is not beside the compiled engine")
    with open(SCHEDULE_PXD) as f:
        text = f.read()
    return text, {name: int(value) for name, value in
                  re.findall(r"^\s+(MIN_ROWS|MIN_WEIGHT_ROWS|MIN_SPLIT|WEIGHT_SPLIT|MAX_BLOCKS) = "
                             r"(\d+)\s*$", text, re.MULTILINE)}


def test_mirrored_constants_are_the_engines():
    text, constants = _engine_constants()
    assert constants == {"MIN_ROWS": sm.TODAY.min_rows,
                         "MIN_WEIGHT_ROWS": sm.TODAY.min_weight_rows,
                         "MIN_SPLIT": sm.TODAY.min_split, "WEIGHT_SPLIT": sm.WEIGHT_SPLIT,
                         "MAX_BLOCKS": sm.TODAY.max_blocks}
    # ... and the row pass is cut by n_blocks over the batch's rows with MIN_ROWS and the
    # class's want, as modelled.
    assert "r_blocks = n_blocks(rows.n, MIN_ROWS, work.cpus, MIN_SPLIT)" in text
    assert sm.TODAY.row_cols == 0 and sm.TODAY.weight_cols == 0


@pytest.mark.parametrize("cpus", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("units", UNITS)
def test_mirrored_weight_jobs_are_the_trainers(units, cpus):
    network = _engine.Network(list(units), "relu", "softmax")
    trainer = _engine.Trainer(network, 32, units[0], np.float64, schedule_cpus=cpus)
    mirrored = [(l, lo, hi) for l, lo, hi, _, _ in sm.weight_jobs(units, sm.class_rules(cpus))]
    assert mirrored == [tuple(int(v) for v in job) for job in trainer.jobs.T]


def test_class_2_is_the_rules_before_classes():
    # n_blocks with want = 2 is the rule before classes (k < 2: two blocks from MIN_SPLIT rows).
    assert sm.class_rules(2) == sm.TODAY
    for n in range(0, 5000, 7):
        for min_rows in (16, 64, 256):
            k = min(n // min_rows, sm.TODAY.max_blocks)
            before = (2 if n >= 16 else 1) if k < 2 else k - k % 2
            assert sm.n_blocks(n, min_rows) == before
            assert sm.n_blocks(n, min_rows, split=sm.WEIGHT_SPLIT) == before


def test_a_class_wants_its_row_blocks_where_the_batch_allows():
    assert [len(sm.row_blocks(256, sm.class_rules(c))) for c in (2, 4, 8, 16)] == [2, 4, 8, 16]
    assert [len(sm.row_blocks(512, sm.class_rules(c))) for c in (2, 4, 8, 16)] == [2, 4, 8, 16]
    assert len(sm.row_blocks(32, sm.class_rules(16))) == 2  # blocks keep >= MIN_SPLIT rows
    assert len(sm.row_blocks(8192, sm.class_rules(4))) == 16  # never fewer than before


def test_row_blocks_follow_n_blocks_and_cover_the_batch():
    for batch in (1, 15, 16, 200, 256, 512, 4096, 10_000):
        blocks = sm.row_blocks(batch)
        assert len(blocks) == sm.n_blocks(batch, sm.TODAY.min_rows)
        assert blocks[0][0] == 0 and blocks[-1][1] == batch
        assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
    assert len(sm.row_blocks(256)) == 2  # the example: a 256-row batch, two blocks


def test_passes_schedule_like_openmp():
    # static: contiguous chunks, the first n % P threads one job more
    assert sm.static_pass([1.0, 1.0, 1.0], 2) == 2.0
    assert sm.static_pass([5.0, 1.0, 1.0, 1.0], 2) == 6.0
    # dynamic: in order, each job to the thread that frees up first
    assert sm.dynamic_pass([5.0, 1.0, 1.0, 1.0], 2) == 5.0
    assert sm.dynamic_pass([1.0, 1.0, 1.0, 5.0], 2) == 6.0  # the 5 starts at 1
    assert sm.dynamic_pass([2.0], 8) == 2.0


@pytest.mark.parametrize("name", list(FIT_WORKLOADS))
def test_speedup_is_one_on_one_core_and_never_above_p(name):
    calibration = sm.FlopCalibration()
    for rules in sm.CANDIDATES:
        runs = sm.simulate(FIT_WORKLOADS[name], rules, calibration)
        assert runs[0]["P"] == 1 and runs[0]["speedup"] == pytest.approx(1.0, rel=1e-12)
        for run in runs:
            assert 0 < run["speedup"] <= run["P"] * (1 + 1e-12)
            assert run["busy"] == pytest.approx(run["speedup"] / run["P"])
            # no schedule beats its longest chain of jobs
            assert run["batch_us"] >= run["critical_us"] * (1 - 1e-12)


def test_finer_blocks_offer_more_jobs_and_keep_every_row_and_weight():
    units = (784, 256, 128, 10)
    for rules in sm.CANDIDATES:
        jobs = sm.weight_jobs(units, rules, batch=256)
        for l in range(3):  # every element of every W in exactly one job, and the bias once
            covered = np.zeros((units[l], units[l + 1]), dtype=int)
            for job_l, lo, hi, c0, c1 in jobs:
                if job_l == l and hi >= 0:
                    covered[lo:hi, c0:c1] += 1
            assert (covered == 1).all()
            assert sum(1 for j in jobs if j[0] == l and j[2] < 0) == 1
    fine = sm.Rules("fine", min_rows=16, min_weight_rows=32)
    assert len(sm.row_blocks(256, fine)) == 16 > len(sm.row_blocks(256))
    assert len(sm.weight_jobs(units, fine)) > len(sm.weight_jobs(units))


@pytest.mark.parametrize("shape", [(128, 256, 784), (256, 1024, 1024), (16, 256, 784),
                                   (784, 256, 256), (100, 100, 64), (16, 10, 128),
                                   (1024, 1024, 512), (33, 17, 5000)])
def test_tile_pieces_cut_under_the_threshold_when_the_minimums_allow(shape):
    m, n, k = shape
    r, c = sm.tile_pieces(m, n, k, sm.SMALL_MNK, 32, 16)
    assert r & (r - 1) == 0 and c & (c - 1) == 0  # powers of two
    assert r == 1 or m // r >= 16
    assert c == 1 or n // c >= 32
    if m * n * k <= sm.SMALL_MNK:
        assert (r, c) == (1, 1)  # a small product stays whole
    elif -(-m // max(sm._pow2_pieces(m, 16))) * -(-n // max(sm._pow2_pieces(n, 32))) * k \
            <= sm.SMALL_MNK:
        assert -(-m // r) * -(-n // c) * k <= sm.SMALL_MNK
    assert r <= sm.MAX_PIECES and c <= sm.MAX_PIECES
    assert sm.tile_pieces(m, n, k, 0, 32, 16) == (1, 1)  # no rule: whole


def test_per_layer_rule_row_phases_cover_every_output_once():
    rules = next(r for r in sm.CANDIDATES if r.tile_mnk)
    for units, m in (((784, 256, 128, 10), 128), ((784, 1024, 1024, 10), 256),
                     ((784, 256, 128, 10), 16), ((64, 100, 10), 100)):
        stages = sm.layer_stages(units, m, rules)
        L = len(units) - 1
        assert [s[3] for s in stages if s[2] == "forward"] == list(range(L))
        assert [s[3] for s in stages if s[2] == "backward"] == list(range(L - 1, 0, -1))
        assert all(s[1] == 1 for s in stages if s[2] == "forward" and s[3] == L - 1)
        phases = sm.row_phases(units, m, rules)
        gemms = [p for phase in phases for tile in phase for p in tile if p[0] == "gemm"]
        # every layer's m x units[l + 1] outputs once, every hidden delta's m x units[l] once
        assert sum(p[2] * p[3] for p in gemms if p[1] == "forward") == m * sum(units[1:])
        assert (sum(p[2] * p[3] for p in gemms if p[1] == "backward_input")
                == m * sum(units[1:-1]))


@pytest.mark.parametrize("shape", [(128, 256, 784), (256, 1024, 1024), (16, 256, 784),
                                   (128, 128, 256), (100, 100, 64)])
@pytest.mark.parametrize("want", [1, 4, 16, 64])
def test_packed_pieces_stay_on_the_packed_path(shape, want):
    m, n, k = shape
    r, c = sm.packed_pieces(m, n, k, sm.SMALL_MNK, 32, 16, want)
    assert r * c <= max(want, 1) and r & (r - 1) == 0 and c & (c - 1) == 0
    if (r, c) != (1, 1):  # every tile keeps M N K over the small-matrix threshold
        assert (m // r) * (n // c) * k > sm.SMALL_MNK
        assert m // r >= 16 and n // c >= 32


def test_packed_tiles_run_whole_blocks_on_few_threads():
    rules = next(r for r in sm.CANDIDATES if r.packed_tiles)
    calibration = sm.FlopCalibration()
    for name in ("mnist", "wide"):
        today = sm.simulate(FIT_WORKLOADS[name], sm.TODAY, calibration, (1, 2))
        packed = sm.simulate(FIT_WORKLOADS[name], rules, calibration, (1, 2, 16))
        assert not packed[1]["staged"] and packed[2]["staged"]
        # on two threads only the weight jobs differ from today's: flops alike, time alike
        assert packed[1]["batch_us"] == pytest.approx(today[1]["batch_us"], rel=0.05)
