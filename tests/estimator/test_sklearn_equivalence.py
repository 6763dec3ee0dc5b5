"""In float64, with the same seed, data and hyper-parameters, fastmlp ends where scikit-learn's
MLP ends: same weights (to a relative 1e-6), n_iter_, loss_curve_ and predictions."""
import sys
import warnings

import numpy as np
import scipy.sparse as sp
import pytest
import sklearn.neural_network as sk
from sklearn.datasets import make_multilabel_classification, make_regression

import fastmlp

from _helpers import digits, needs_sklearn_loss, needs_sklearn_sample_weight, run_python

SOLVERS = {
    "adam": dict(solver="adam"),
    "sgd-nesterov": dict(solver="sgd", momentum=0.9, nesterovs_momentum=True),
    "sgd-momentum-invscaling": dict(solver="sgd", momentum=0.5, nesterovs_momentum=False,
                                    learning_rate="invscaling", learning_rate_init=0.1),
    "sgd-plain-adaptive": dict(solver="sgd", momentum=0.0, learning_rate="adaptive",
                               n_iter_no_change=2, tol=1e-2),
    "lbfgs": dict(solver="lbfgs"),
}


def fit_both(name, X, y, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = getattr(fastmlp, name)(**params).fit(X, y)
        theirs = getattr(sk, name)(**params).fit(X, y)
    return ours, theirs


def assert_same_model(ours, theirs, X):
    assert ours.n_iter_ == theirs.n_iter_
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-12)
    if hasattr(theirs, "loss_curve_"):
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-9)
    predicted, expected = ours.predict(X), theirs.predict(X)
    if np.issubdtype(expected.dtype, np.floating):
        np.testing.assert_allclose(predicted, expected, rtol=1e-9, atol=1e-12)
    else:
        np.testing.assert_array_equal(predicted, expected)


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("solver", list(SOLVERS))
def test_multiclass_every_solver_and_activation(solver, activation):
    X, y = digits(400)
    ours, theirs = fit_both("MLPClassifier", X, y, hidden_layer_sizes=(20, 10),
                            activation=activation, random_state=1, max_iter=6, batch_size=64,
                            **SOLVERS[solver])
    assert_same_model(ours, theirs, X)


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("batch_size", [1, 37, "auto", 1000])
def test_binary_batch_sizes_and_shuffle(batch_size, shuffle):
    X, y = digits(300)
    ours, theirs = fit_both("MLPClassifier", X, y > 4, hidden_layer_sizes=(15,),
                            batch_size=batch_size, shuffle=shuffle, random_state=3,
                            max_iter=4)
    assert_same_model(ours, theirs, X)


@pytest.mark.parametrize("solver", ["adam", "sgd-nesterov", "lbfgs"])
def test_multilabel(solver):
    X, Y = make_multilabel_classification(200, 12, n_classes=4, random_state=0)
    ours, theirs = fit_both("MLPClassifier", X, Y, hidden_layer_sizes=(16, 8), random_state=0,
                            max_iter=5, **SOLVERS[solver])
    assert_same_model(ours, theirs, X)


@pytest.mark.parametrize("depth", [1, 3])
@pytest.mark.parametrize("n_targets", [1, 3])
@pytest.mark.parametrize("solver", ["adam", "sgd-nesterov", "lbfgs"])
def test_regression(solver, n_targets, depth):
    X, y = make_regression(150, 8, n_targets=n_targets, random_state=0)
    ours, theirs = fit_both("MLPRegressor", X, y / 100, hidden_layer_sizes=(12,) * depth,
                            random_state=0, max_iter=5, **SOLVERS[solver])
    assert_same_model(ours, theirs, X)


@needs_sklearn_loss
def test_poisson_regression():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((150, 5))
    y = rng.poisson(np.exp(X[:, 0] * 0.5))
    ours, theirs = fit_both("MLPRegressor", X, y, loss="poisson", random_state=0, max_iter=5)
    assert_same_model(ours, theirs, X)


@needs_sklearn_sample_weight
def test_early_stopping_and_sample_weight():
    X, y = digits(600)
    sw = np.random.RandomState(0).rand(len(y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = fastmlp.MLPClassifier(random_state=0, max_iter=30, early_stopping=True,
                                     n_iter_no_change=3).fit(X, y, sample_weight=sw)
        theirs = sk.MLPClassifier(random_state=0, max_iter=30, early_stopping=True,
                                  n_iter_no_change=3).fit(X, y, sample_weight=sw)
    assert_same_model(ours, theirs, X)
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_)
    assert ours.best_validation_score_ == theirs.best_validation_score_


def test_partial_fit_and_warm_start():
    X, y = digits(300)
    models = []
    for module in (fastmlp, sk):
        clf = module.MLPClassifier(random_state=0, hidden_layer_sizes=(10,))
        for _ in range(3):
            clf.partial_fit(X, y, classes=np.unique(y))
        clf.set_params(warm_start=True, max_iter=3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X, y)
        models.append(clf)
    assert_same_model(*models, X)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("solver", ["adam", "sgd-nesterov", "lbfgs"])
def test_sparse_input(solver, fmt):
    X, y = digits(400)
    X_sparse = sp.random(400, 300, density=0.05, random_state=0, format=fmt)
    X_sparse = sp.hstack([X_sparse, sp.csr_matrix(X)], format=fmt)
    ours, theirs = fit_both("MLPClassifier", X_sparse, y, hidden_layer_sizes=(20,),
                            random_state=0, max_iter=5, **SOLVERS[solver])
    assert_same_model(ours, theirs, X_sparse)
    np.testing.assert_allclose(ours.predict_proba(X_sparse), theirs.predict_proba(X_sparse),
                               rtol=1e-9, atol=1e-15)
    # dense and sparse input of the same data train the same model
    dense = fastmlp.MLPClassifier(hidden_layer_sizes=(20,), random_state=0, max_iter=5,
                                  **SOLVERS[solver])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dense.fit(X_sparse.toarray(), y)
    np.testing.assert_allclose(dense._theta, ours._theta, rtol=1e-9, atol=1e-12)


# The resident memory a sparse fit and prediction add, in a fresh Python: the peak (VmHWM) is
# reset just before (writing 5 to /proc/self/clear_refs), so that it measures what the engine's C
# code allocates too, which tracemalloc cannot see. A first tiny fit has loaded BLAS and OpenMP.
SPARSE_FIT_PEAK = """
import sys, warnings
import numpy as np, scipy.sparse as sp
import fastmlp

def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))

rng = np.random.RandomState(0)
n_samples, n_features, nnz_per_row = 1200, 500_000, 40
X = sp.csr_matrix(
    (rng.rand(n_samples * nnz_per_row).astype(np.float32),
     np.sort(rng.randint(n_features, size=(n_samples, nnz_per_row)), axis=1).ravel(),
     np.arange(0, n_samples * nnz_per_row + 1, nnz_per_row)),
    shape=(n_samples, n_features))
y = rng.randint(3, size=n_samples)
warnings.simplefilter("ignore")
small = fastmlp.MLPClassifier(hidden_layer_sizes=(4,), max_iter=1, random_state=0)
small.fit(X[:50, :1000], y[:50]).predict_proba(X[:50, :1000])
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status("VmRSS")
clf = fastmlp.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y)
clf.predict_proba(X)
print(status("VmHWM") - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
def test_sparse_input_is_never_densified():
    # 1200 x 500,000 float32: 2.4 GB dense, and 400 MB for one dense batch of 200 rows. The fit
    # needs 2M parameters, their gradient and Adam's two moments (4 x 8 MB) and O(batch x 4)
    # beside X (measured: ~40 MB in all). 200 MB is 5 times that, and half of one dense batch.
    added = int(run_python(SPARSE_FIT_PEAK))
    assert added < 200e6, f"a sparse fit and prediction added {added / 1e6:.0f} MB"
