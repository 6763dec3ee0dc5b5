"""Same seed, same data -> bitwise the same weights: across runs and across thread counts."""
import numpy as np
import pytest
from sklearn.datasets import load_digits

from fastmlp import MLPClassifier

from _helpers import assert_bitwise_equal_on_one_and_two_threads


def fit_weights(dtype, solver="adam"):
    X, y = load_digits(return_X_y=True)
    clf = MLPClassifier(hidden_layer_sizes=(64, 32), solver=solver, random_state=0,
                        max_iter=3, batch_size=256)
    with pytest.warns(Warning):
        clf.fit((X / 16.0).astype(dtype), y)
    return clf._theta.copy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_seed_twice_is_bitwise_equal(dtype):
    np.testing.assert_array_equal(fit_weights(dtype), fit_weights(dtype))


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_and_two_threads_give_bitwise_equal_weights(dtype, solver):
    assert_bitwise_equal_on_one_and_two_threads(
        dtype, hidden_layer_sizes=(64, 32), solver=solver, random_state=0, max_iter=3,
        batch_size=256)
