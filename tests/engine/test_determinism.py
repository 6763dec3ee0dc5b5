"""Same seed, same data -> bitwise the same weights: across runs and across thread counts."""
import os
import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits

from fastmlp import MLPClassifier

SCRIPT = """
import sys, warnings
import numpy as np
from sklearn.datasets import load_digits
from fastmlp import MLPClassifier
from fastmlp._runtime import effective_n_threads
X, y = load_digits(return_X_y=True)
dtype, solver = sys.argv[1], sys.argv[2]
X = (X / 16.0).astype(dtype)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    clf = MLPClassifier(hidden_layer_sizes=(64, 32), solver=solver, random_state=0,
                        max_iter=3, batch_size=256).fit(X, y)
sys.stdout.write(str(effective_n_threads()) + " " + clf._theta.tobytes().hex())
"""


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
    outputs = {}
    for threads in ("1", "2"):
        env = dict(os.environ, OMP_NUM_THREADS=threads)
        out = subprocess.run([sys.executable, "-c", SCRIPT, dtype, solver], env=env,
                             capture_output=True, text=True, check=True).stdout
        used, weights = out.split()
        assert used == threads
        outputs[threads] = weights
    assert outputs["1"] == outputs["2"]
