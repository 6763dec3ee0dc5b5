"""Trainer.seen_nonfinite: whether an epoch found a row of the first layer's product not finite
(fastmlp/_engine/_layers.pxd's note_nonfinite), which a steady partial_fit reads instead of
checking X before its epoch. It must say so for a NaN or an infinity in any row of X, on every
path the first layer's product takes, and not for a finite X that does not overflow."""
import numpy as np
import pytest

from fastmlp import _engine as E
from fastmlp._engine._testing import first_tiles
from fastmlp._stochastic_optimizers import AdamOptimizer

# (units, options, rows, batch, schedule class, shuffled)
CASES = {
    "one row block": ([6, 5, 3], {}, 40, 10, 1, True),
    "row blocks, in order": ([6, 5, 3], {}, 600, 300, 2, False),
    # between SMALL_ROWS and OWN_PRODUCT_ROWS: the AVX-512 kernel's rows picked where they lie
    "row blocks, picked rows": ([6, 5, 3], {}, 600, 256, 2, True),
    "column tiles": ([6, 128, 5, 3], {}, 96, 32, 2, True),
    "maxout": ([6, 5, 3], {"maxout_pieces": 3}, 600, 300, 2, True),
    "batch normalization": ([6, 5, 4, 3], {"batch_norm": True}, 600, 300, 2, True),
    "no hidden layer": ([6, 3], {}, 600, 300, 2, True),
}


def run_epoch(case, X, dtype, n_threads):
    units, options, rows, batch, cpus, shuffled = CASES[case]
    hidden = "maxout" if "maxout_pieces" in options else "relu"
    network = E.Network(units, hidden, "softmax", alpha=1e-4, **options)
    rng = np.random.RandomState(0)
    theta = rng.uniform(-0.5, 0.5, network.n_params).astype(dtype)
    Y = np.eye(units[-1], dtype=dtype)[rng.randint(units[-1], size=rows)]
    optimizer = AdamOptimizer(network.n_params, dtype)
    state_1, state_2, state_3 = optimizer.state
    order = rng.permutation(rows).astype(np.intp) if shuffled else np.empty(0, np.intp)
    running = (np.zeros(network.n_running, dtype=dtype) if options.get("batch_norm")
               else None)
    trainer = E.Trainer(network, batch, units[0], dtype, schedule_cpus=cpus)
    trainer.epoch(theta, np.empty_like(theta), state_1, state_2, X.astype(dtype), Y,
                  np.empty(0, dtype), order, batch, optimizer.spec(), n_threads,
                  state_3=state_3, running=running)
    return trainer.seen_nonfinite()


def test_the_tiles_case_takes_the_tiles():
    units, _, _, batch, cpus, _ = CASES["column tiles"]
    assert first_tiles(E.Network(units, "relu", "softmax"), batch, cpus) == 2


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(CASES))
def test_every_row_of_x_that_is_not_finite_is_seen(case, dtype, n_threads):
    units, _, rows, _, _, _ = CASES[case]
    rng = np.random.RandomState(1)
    X = rng.standard_normal((rows, units[0]))
    assert not run_epoch(case, X, dtype, n_threads)
    # a value in rows at the start, the end and inside of batches, in every column
    for r, value in zip((0, rows - 1, rows // 3, 17, rows // 2 + 1),
                        (np.nan, np.inf, -np.inf, np.nan, np.inf)):
        bad = X.copy()
        bad[r, r % units[0]] = value
        assert run_epoch(case, bad, dtype, n_threads), (r, value)
    # the state after the epoch says nothing of the next: a finite epoch after one that saw
    assert not run_epoch(case, X, dtype, n_threads)


def test_a_finite_x_that_overflows_is_seen_too():
    # (the caller then checks X itself, and goes on: SteadyCall.epoch)
    X = np.full((600, 6), np.finfo(np.float32).max)
    assert run_epoch("row blocks, in order", X, np.float32, 1)
