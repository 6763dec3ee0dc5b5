"""Trainer.epoch takes the solver's record (OPTIM_SPEC, C's fm_optim) by its bytes, its layout
checked once at import: what it accepts, and that anything else is refused before a step."""
import pickle

import numpy as np
import pytest

from fastmlp import _engine as E
from fastmlp._stochastic_optimizers import AdamOptimizer


def _epoch(spec, theta=None):
    """Two steps of Adam (20 rows, batches of 10) from fixed weights with `spec`; the weights
    after them."""
    rng = np.random.RandomState(0)
    network = E.Network([6, 5, 3], "relu", "softmax", alpha=1e-4)
    X, Y = rng.standard_normal((20, 6)), np.eye(3)[rng.randint(3, size=20)]
    theta = rng.uniform(-0.5, 0.5, network.n_params) if theta is None else theta
    optimizer = AdamOptimizer(network.n_params, np.float64)
    state_1, state_2, state_3 = optimizer.state
    E.Trainer(network, 10, 6, np.float64).epoch(
        theta, np.empty_like(theta), state_1, state_2, X, Y, np.empty(0), np.empty(0, np.intp),
        10, spec, 1, state_3=state_3)
    return theta


def test_a_record_of_an_equal_dtype_steps_as_the_solvers_own():
    own = AdamOptimizer(1, np.float64).spec()
    copied = pickle.loads(pickle.dumps(own))  # OPTIM_SPEC's equal, not itself
    assert copied.dtype is not E.OPTIM_SPEC and copied.dtype == E.OPTIM_SPEC
    assert _epoch(own).tobytes() == _epoch(copied).tobytes()
    assert own["t"][0] == copied["t"][0] == 2  # the engine advanced each record's step count


@pytest.mark.parametrize("spec", [
    np.zeros(2, E.OPTIM_SPEC),                        # two records
    np.zeros(1, E.OPTIM_SPEC)[:0],                    # none
    np.zeros((1, 1), E.OPTIM_SPEC),                   # not one-dimensional
    np.zeros(E.OPTIM_SPEC.itemsize // 8, np.float64),  # the right bytes, another dtype
    bytearray(E.OPTIM_SPEC.itemsize),                 # not an array
])
def test_anything_but_one_record_is_refused_before_a_step(spec):
    theta = np.random.RandomState(1).uniform(-0.5, 0.5, 6 * 5 + 5 * 3 + 5 + 3)
    before = theta.copy()
    with pytest.raises(ValueError, match="one OPTIM_SPEC record"):
        _epoch(spec, theta)
    assert theta.tobytes() == before.tobytes()


def test_a_read_only_record_is_refused_before_a_step():
    spec = AdamOptimizer(1, np.float64).spec().copy()
    spec.flags.writeable = False  # the engine advances its step count in place
    theta = np.random.RandomState(1).uniform(-0.5, 0.5, 6 * 5 + 5 * 3 + 5 + 3)
    before = theta.copy()
    with pytest.raises((ValueError, BufferError)):
        _epoch(spec, theta)
    assert theta.tobytes() == before.tobytes()
