"""The first layer's product in column tiles (fastmlp/_engine/_schedule.pxd's first_tiles): for
few rows against a wide first layer, the batch's product is cut by W's columns before the row
blocks run. Which batches take it, that it computes the gradient, and that its bits are the
same on one thread and two."""
import numpy as np
import pytest

from fastmlp import _engine as E
from fastmlp._engine._testing import first_tiles

from _helpers import central_differences, run_python


@pytest.mark.parametrize("units, rows, cls, tiles", [
    ([784, 256, 128, 10], 32, 2, 2),     # tiny-batch: 2 row blocks of 16 rows
    ([784, 256, 128, 10], 32, 16, 2),    # (a 16-core class cuts 32 rows in two as well)
    ([784, 256, 128, 10], 64, 2, 2),
    ([784, 256, 128, 10], 65, 2, 0),     # more rows than a quarter of W's 256 columns
    ([784, 256, 128, 10], 256, 2, 0),    # mnist
    ([784, 1024, 1024, 10], 512, 2, 0),  # wide
    ([784, 1024, 1024, 10], 256, 16, 0),  # 16 row blocks: none in a class of many cores
    ([784, 256, 128, 10], 32, 1, 0),     # class 1: one row block
    ([784, 256, 128, 10], 15, 2, 0),     # one row block (fewer rows than a split)
    ([784, 10], 32, 2, 0),               # no hidden layer
])
def test_which_batches_cut_the_first_layer_into_tiles(units, rows, cls, tiles):
    network = E.Network(units, "relu", "softmax")
    assert first_tiles(network, rows, cls) == tiles


def test_neither_a_sparse_x_nor_a_maxout_layer_is_cut():
    assert first_tiles(E.Network([784, 256, 10], "relu", "softmax"), 32, 2, sparse=True) == 0
    maxout = E.Network([784, 256, 10], "maxout", "softmax", maxout_pieces=2)
    assert first_tiles(maxout, 32, 2) == 0


@pytest.mark.parametrize("layout", ["C", "F"])  # X read in place, or gathered (strided)
@pytest.mark.parametrize("hidden", ["relu", "tanh", "gelu"])  # gelu's act' reads the kept z
def test_the_gradient_through_tiles_matches_central_differences(hidden, layout):
    rng = np.random.RandomState(0)
    units = [6, 128, 5, 3]
    n = 70  # chunks of 32, 32 (tiles) and 6 rows (none)
    network = E.Network(units, hidden, "softmax", alpha=0.01)
    assert first_tiles(network, 32, 2) == 2 and first_tiles(network, 6, 2) == 0
    X = np.asarray(rng.standard_normal((n, units[0])), order=layout)
    Y = np.eye(3)[rng.randint(3, size=n)]
    w = rng.rand(n) + 0.5
    theta = rng.uniform(-0.5, 0.5, network.n_params)
    tiled = E.Trainer(network, 32, units[0], np.float64, schedule_cpus=2)
    grad = np.empty_like(theta)
    loss = tiled.loss_gradient(theta, grad, X, Y, w, 2)
    numeric = central_differences(
        lambda t: tiled.loss_gradient(t, np.empty_like(t), X, Y, w, 1), theta)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)
    # The same gradient as one row block's product (class 1), to rounding.
    whole = np.empty_like(theta)
    assert E.Trainer(network, 32, units[0], np.float64, schedule_cpus=1).loss_gradient(
        theta, whole, X, Y, w, 1) == pytest.approx(loss, rel=1e-13)
    np.testing.assert_allclose(grad, whole, rtol=1e-12, atol=1e-15)


# Batches of 32 rows through (320 -> 512 -> 64 -> 10) are cut into tiles (and big enough for
# two threads: 6.3 M multiply-adds), every batch held on all the threads OpenMP has: shuffled
# (the rows gathered), in order (read in place) and from a column-major X (gathered).
TILED_ON_THREADS = """
import warnings
import numpy as np
from sklearn.datasets import load_digits
from fastmlp import MLPClassifier
from fastmlp._engine._testing import first_tiles, hold_all_threads
from fastmlp._runtime import effective_n_threads
warnings.simplefilter("ignore")
X, y = load_digits(return_X_y=True)
out = [str(effective_n_threads())]
for dtype in ("float32", "float64"):
    Xd = np.hstack([X / 16.0] * 5).astype(dtype)
    for shuffle, order in ((True, "C"), (False, "C"), (True, "F")):
        Xo = np.asarray(Xd, order=order)
        clf = MLPClassifier((512, 64), batch_size=32, shuffle=shuffle, random_state=0)
        clf.partial_fit(Xo[:32], y[:32], classes=list(range(10)))
        network = clf._network()
        out.append(str(first_tiles(network, 32, clf._trainer_cache[2].schedule_cpus)))
        hold_all_threads(network, effective_n_threads())
        clf.partial_fit(Xo, y)
        out += [str(network.thread_choice[0]), clf._theta.tobytes().hex(),
                clf.predict_proba(Xo[:40]).tobytes().hex()]
print(" ".join(out))
"""


def test_fits_through_tiles_are_bitwise_equal_on_one_and_two_threads():
    one, two = (run_python(TILED_ON_THREADS, omp_threads=n).split() for n in (1, 2))
    assert one[0] == "1" and two[0] == "2"
    assert one[1::4] == two[1::4] == ["2"] * 6  # every fit's batches were cut into tiles
    assert one[2::4] == ["1"] * 6 and two[2::4] == ["2"] * 6  # on all the threads there were
    assert one[3::4] == two[3::4]  # the weights
    assert one[4::4] == two[4::4]  # the predictions
