"""benchmarks/dead_unit_products.py: the weights it builds, and a quick run's table (where the
AVX-512 kernel runs) or its note. Nothing is timed."""
import re

import numpy as np

import dead_unit_products


def test_the_dead_columns_are_subnormal_in_one_copy_and_zero_in_the_other():
    W, zeroed = dead_unit_products.dead_unit_weights(np.random.RandomState(3), 50, 40, 5)
    dead = (W != zeroed).any(axis=0)
    assert dead.sum() == 5
    assert (zeroed[:, dead] == 0).all() and (W[:, dead] != 0).all()
    assert (np.abs(W[:, dead]) < np.finfo(np.float32).tiny).all()
    assert (W[:, ~dead] == zeroed[:, ~dead]).all()
    assert (np.abs(W[:, ~dead]) > 0).all() and np.signbit(W[:, dead]).any()


def test_a_quick_run_prints_each_shape_or_says_why_not(capsys):
    dead_unit_products.main(["--calls", "1", "--rounds", "1"])
    out = capsys.readouterr().out
    if out.startswith("the AVX-512 kernel"):
        return
    rows = re.findall(r"^ +(\d+) x (\d+) x (\d+), (\d+) +[\d.]+ +[\d.]+ +[\d.]+$", out, re.M)
    assert [tuple(map(int, r)) for r in rows] == dead_unit_products.SHAPES, out
