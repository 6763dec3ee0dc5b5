"""Same seed, same data -> bitwise the same weights and predictions: across runs, across thread
counts (set by OMP_NUM_THREADS, and by threadpoolctl's limit on OpenMP), and across the memory
layouts of X. Each thread count runs in its own Python: OpenMP fixes it at start."""
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits

from fastmlp import MLPClassifier
from fastmlp import _validation

from _helpers import assert_bitwise_equal_on_one_and_two_threads, digits, run_python


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



# Few rows against a W of <= 256 columns: float32 products in column tiles (_layer_dense.pxd's
# dense_product). 320 features (digits' 64, five times over) and batches of 32 (blocks of 16
# rows): 16 x 256 x 320 multiply-adds, over the tiling threshold.
FEW_ROWS_ON_THREADS = """
import sys, warnings
import numpy as np
from sklearn.datasets import load_digits
from fastmlp import MLPClassifier
from fastmlp._runtime import effective_n_threads
X, y = load_digits(return_X_y=True)
X = np.hstack([X / 16.0] * 5).astype("float32")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    clf = MLPClassifier((256, 64), batch_size=32, max_iter=2, random_state=0).fit(X, y)
sys.stdout.write(str(effective_n_threads()) + " " + clf._theta.tobytes().hex() + " "
                 + clf.predict_proba(X[:20]).tobytes().hex())
"""


def test_few_row_products_in_column_tiles_are_bitwise_equal_on_one_and_two_threads():
    one, two = (run_python(FEW_ROWS_ON_THREADS, omp_threads=n).split() for n in (1, 2))
    assert one[0] == "1" and two[0] == "2"
    assert one[1:] == two[1:]


def test_few_row_products_in_column_tiles_are_the_product():
    X, y = load_digits(return_X_y=True)
    X = np.hstack([X / 16.0] * 5).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier((256,), activation="identity", batch_size=32, max_iter=1,
                            random_state=0).fit(X, y)
    for rows in (4, 20, 32):  # 20 and 32 rows: tiles; reference in float64
        z = (X[:rows].astype(np.float64) @ clf.coefs_[0].astype(np.float64) + clf.intercepts_[0])
        logits = z @ clf.coefs_[1].astype(np.float64) + clf.intercepts_[1]
        expected = np.exp(logits - logits.max(1, keepdims=True))
        expected /= expected.sum(1, keepdims=True)
        np.testing.assert_allclose(clf.predict_proba(X[:rows]), expected, rtol=1e-4, atol=1e-6)


# Every option the engine computes in its own code path (an optimizer's update, an activation's
# forward and backward, a loss's delta, the sparse product), fitted once per process: one Python
# on one thread, one on two. A list of (estimator, parameters, sparse X?).
OPTIONS_ON_THREADS = """
import ast, hashlib, sys, warnings
import numpy as np
import scipy.sparse as sp
from sklearn.datasets import load_digits
import fastmlp
from fastmlp._runtime import effective_n_threads
warnings.simplefilter("ignore")
X, y = load_digits(return_X_y=True)
X = X / 16.0
print(effective_n_threads())
for dtype in ("float32", "float64"):
    for name, params, sparse in ast.literal_eval(sys.argv[1]):
        Xd = X.astype(dtype)
        est = getattr(fastmlp, name)(hidden_layer_sizes=(64, 32), random_state=0, max_iter=2,
                                     batch_size=256, **params)
        est.fit(sp.csr_matrix(Xd) if sparse else Xd, y if name == "MLPClassifier" else y / 9.0)
        print(dtype, name, params, sparse, hashlib.sha256(est._theta.tobytes()).hexdigest())
"""

OPTIONS = (
    [("MLPClassifier", dict(solver=solver), False) for solver in ("adagrad", "adadelta", "adamax")]
    + [("MLPClassifier", dict(activation=activation), False)
       for activation in ("gelu", "silu", "mish", "softplus", "elu")]
    + [("MLPRegressor", dict(loss="huber"), False),
       ("MLPRegressor", dict(loss="absolute_error"), False),
       ("MLPClassifier", dict(loss="squared_error"), False)]
    + [("MLPClassifier", dict(solver=solver), True) for solver in ("adam", "lbfgs")]
)


def test_every_solver_activation_loss_and_sparse_x_is_bitwise_equal_on_one_and_two_threads():
    outputs = {}
    for threads in (1, 2):
        out = run_python(OPTIONS_ON_THREADS, repr(OPTIONS), omp_threads=threads).splitlines()
        assert out[0] == str(threads)  # two runs of one thread would prove nothing
        outputs[threads] = out[1:]
    assert len(outputs[1]) == 2 * len(OPTIONS)
    for one, two in zip(outputs[1], outputs[2]):
        assert one == two

DETERMINISM = """
import hashlib, sys, warnings
import numpy as np
from sklearn.datasets import load_digits
from threadpoolctl import threadpool_limits
from fastmlp import MLPClassifier, MLPRegressor
from fastmlp._runtime import effective_n_threads
warnings.simplefilter("ignore")
X, y = load_digits(return_X_y=True)
X = X / 16.0
w = np.random.RandomState(0).rand(len(y))
threads = int(sys.argv[1])
with threadpool_limits(threads, user_api="openmp"):
    print(effective_n_threads())
    for dtype in (np.float32, np.float64):
        for solver in ("adam", "sgd", "lbfgs"):
            for Est, extra in ((MLPClassifier, dict(batch_size=1024)),
                               (MLPRegressor, dict(batch_size=700, early_stopping=True)),
                               (MLPClassifier, dict(batch_size=512, alpha=1e-2))):
                est = Est(hidden_layer_sizes=(96, 48), solver=solver, max_iter=6,
                          random_state=3, **extra)
                if solver == "lbfgs":
                    est.set_params(early_stopping=False)
                est.fit(X.astype(dtype), y, sample_weight=w if "alpha" in extra else None)
                digest = hashlib.sha256(est._theta.tobytes())
                for rows in (slice(None), slice(0, 100), slice(7, 8)):  # OpenMP / caller alone
                    x = X[rows].astype(dtype)
                    digest.update((est.predict_proba(x) if Est is MLPClassifier
                                   else est.predict(x)).tobytes())
                print(dtype.__name__, solver, Est.__name__, digest.hexdigest())
"""


def test_same_seed_gives_bitwise_the_same_weights_with_any_thread_count():
    outputs = {}
    for threads in (1, 2, 3, 4):
        out = run_python(DETERMINISM, threads).splitlines()
        assert out[0] == str(threads)
        outputs[threads] = out[1:]
    assert len(outputs[1]) == 18
    for threads in (2, 3, 4):
        assert outputs[threads] == outputs[1]


def test_the_layout_of_X_does_not_change_the_fit():
    # C order is read in place, other layouts are gathered batch by batch (large data) or
    # copied once (small data): every route gives bitwise the same weights and predictions.
    pd = pytest.importorskip("pandas")
    Xd, yd = digits(600, scaled=False)
    wide = np.hstack([Xd, np.ones((len(Xd), 3))])
    layouts = {"F order": np.asfortranarray(Xd), "DataFrame": pd.DataFrame(Xd).to_numpy(),
               "column slice": wide[:, :64], "every other column": np.repeat(Xd, 2, axis=1)[:, ::2],
               "reversed rows": np.ascontiguousarray(Xd[::-1])[::-1]}
    for solver, shuffle in (("adam", True), ("sgd", False), ("lbfgs", False)):
        params = dict(hidden_layer_sizes=(16,), solver=solver, shuffle=shuffle, max_iter=3,
                      batch_size=128, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = MLPClassifier(**params).fit(Xd, yd)
            for name, X_layout in layouts.items():
                for copy_below in (0, 2**62):  # in place, and copied
                    with pytest.MonkeyPatch.context() as patch:
                        patch.setattr(_validation, "_COPY_STRIDED_BELOW",
                                      copy_below)
                        est = MLPClassifier(**params).fit(X_layout, yd)
                        proba = est.predict_proba(X_layout)
                    np.testing.assert_array_equal(est._theta, reference._theta, err_msg=name)
                    np.testing.assert_array_equal(proba, reference.predict_proba(Xd))
