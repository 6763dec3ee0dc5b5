"""The losses beyond scikit-learn's: MLPRegressor(loss='absolute_error' | 'huber') and
MLPClassifier(loss='squared_error'). Kernels against numpy (both dtypes), central-difference
gradient checks (float64), and the reported loss_ against the written-out formula."""
import warnings

import numpy as np
import pytest
from scipy.special import expit, softmax
from sklearn.datasets import load_digits, make_regression
from sklearn.utils._param_validation import InvalidParameterError

from fastmlp import MLPClassifier, MLPRegressor
from fastmlp import _engine as E
from fastmlp._engine import _testing as K

from _helpers import central_differences

DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 1e-5, np.float64: 1e-13}


def reference(name, p, y, huber_delta=1.0):
    """(row losses, dLoss_row/dz) in float64, straight from the definitions."""
    p, y = p.astype(np.float64), y.astype(np.float64)
    e = p - y
    k = p.shape[1]
    if name == "absolute_error":
        return np.abs(e).mean(axis=1), np.sign(e) / k
    if name == "huber":
        a = np.abs(e)
        rows = np.where(a < huber_delta, 0.5 * e**2, huber_delta * (a - 0.5 * huber_delta))
        return rows.mean(axis=1), np.clip(e, -huber_delta, huber_delta) / k
    if name == "logistic_squared_error":
        return 0.5 * (e**2).sum(axis=1), e * p * (1 - p)
    if name == "softmax_squared_error":
        # the full softmax Jacobian: dp_i/dz_j = p_i (delta_ij - p_j)
        jacobian = p[:, :, None] * (np.eye(k)[None] - p[:, None, :])
        return 0.5 * (e**2).sum(axis=1), np.einsum("ri,rij->rj", e, jacobian)
    raise ValueError(name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("name, huber_delta", [
    ("absolute_error", 1.0), ("huber", 1.0), ("huber", 0.3),
    ("logistic_squared_error", 1.0), ("softmax_squared_error", 1.0),
])
def test_output_delta_and_loss(name, huber_delta, weighted, dtype):
    rng = np.random.RandomState(0)
    n, k = 31, 4
    z = rng.standard_normal((n, k)) * 2
    if name == "softmax_squared_error":
        p, y = softmax(z, axis=1), np.eye(k)[rng.randint(k, size=n)]
    elif name == "logistic_squared_error":
        p, y = expit(z), (rng.rand(n, k) > 0.5).astype(float)
    else:
        p, y = z, rng.standard_normal((n, k))
        y[0, 0] = p[0, 0]  # |e| = 0: the derivative is 0, as torch's sign
    p, y = p.astype(dtype), y.astype(dtype)
    w = (rng.rand(n) + 0.5).astype(dtype) if weighted else np.empty(0, dtype)
    delta, row_loss = np.empty_like(p), np.empty(n)
    K.kernel_output_delta(delta, row_loss, p, y, w, E.LOSS_CODES[name], huber_delta)
    expected_loss, expected_delta = reference(name, p, y, huber_delta)
    if weighted:
        expected_delta = expected_delta * w[:, None]
    np.testing.assert_allclose(row_loss, expected_loss, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(delta, expected_delta, rtol=RTOL[dtype] * 10,
                               atol=RTOL[dtype])


def check_gradient(loss, output, n_outputs, hidden="tanh", weighted=False, huber_delta=1.0):
    rng = np.random.RandomState(1)
    units = [5, 6, n_outputs]
    X = rng.standard_normal((21, 5))
    if output == "softmax":
        Y = np.eye(n_outputs)[rng.randint(n_outputs, size=21)]
    elif output == "logistic":
        Y = (rng.rand(21, n_outputs) > 0.5).astype(float)
    else:
        Y = rng.standard_normal((21, n_outputs)) * 2
    w = rng.rand(21) + 0.5 if weighted else np.empty(0)
    network = E.Network(units, hidden, output, 0.02, loss, huber_delta=huber_delta)
    trainer = E.Trainer(network, 8, 5, np.float64)
    theta = rng.uniform(-0.8, 0.8, network.n_params)
    grad = np.empty_like(theta)
    trainer.loss_gradient(theta, grad, X, Y, w, 2)
    scratch = np.empty_like(theta)
    numeric = central_differences(
        lambda t: trainer.loss_gradient(t, scratch, X, Y, w, 1), theta)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_outputs", [1, 3])
@pytest.mark.parametrize("loss, huber_delta", [
    ("absolute_error", 1.0), ("huber", 1.0), ("huber", 0.25)])
def test_regression_loss_gradient(loss, huber_delta, n_outputs, weighted):
    # Unlike scikit-learn's squared error (loss averaged over outputs, gradient summed), these
    # report exactly the loss whose gradient they follow, with several outputs too.
    check_gradient(loss, "identity", n_outputs, weighted=weighted, huber_delta=huber_delta)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("hidden", ["relu", "gelu"])
@pytest.mark.parametrize("output, n_outputs", [("softmax", 4), ("logistic", 1),
                                               ("logistic", 3)])
def test_classifier_squared_error_gradient(output, n_outputs, hidden, weighted):
    check_gradient("squared_error", output, n_outputs, hidden=hidden, weighted=weighted)


def test_network_picks_the_loss():
    pairs = {("identity", "absolute_error"): "absolute_error", ("identity", "huber"): "huber",
             ("softmax", "squared_error"): "softmax_squared_error",
             ("logistic", "squared_error"): "logistic_squared_error",
             ("softmax", "log_loss"): "log_loss", ("logistic", "log_loss"): "binary_log_loss",
             ("identity", "squared_error"): "squared_error", ("exp", "poisson"): "poisson"}
    for (out, loss), name in pairs.items():
        assert E.OTHER_LOSSES.get((out, loss), E.OUTPUT_LOSSES[out][1]) == E.LOSS_CODES[name]


def l2_term(est, n):
    return 0.5 * est.alpha * sum((c**2).sum() for c in est.coefs_) / n


@pytest.mark.parametrize("loss", ["absolute_error", "huber"])
def test_regressor_reports_its_loss(loss):
    X, y = make_regression(n_samples=120, n_features=5, n_targets=2, noise=5.0, random_state=0)
    y = y / y.std()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = MLPRegressor(loss=loss, hidden_layer_sizes=(10,), solver="lbfgs", max_iter=50,
                           alpha=1e-2, huber_delta=0.5, random_state=0).fit(X, y)
    rows, _ = reference(loss, reg.predict(X), y, huber_delta=0.5)
    assert reg.loss_ == pytest.approx(rows.mean() + l2_term(reg, 120), rel=1e-10)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_classifier_squared_error_reports_its_loss(n_classes):
    X, y = load_digits(n_class=n_classes, return_X_y=True)
    X = X / 16.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier((10,), loss="squared_error", solver="lbfgs", max_iter=30,
                            random_state=0).fit(X, y)
    proba = clf.predict_proba(X)
    Y = np.eye(n_classes)[y]
    if n_classes == 2:  # one logistic output: the cost is on p(class 1) alone
        proba, Y = proba[:, 1:], Y[:, 1:]
    rows = 0.5 * ((proba - Y) ** 2).sum(axis=1)
    assert clf.loss_ == pytest.approx(rows.mean() + l2_term(clf, len(y)), rel=1e-10)


def test_new_losses_learn():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier((32,), loss="squared_error", max_iter=60, random_state=0,
                            learning_rate_init=0.01).fit(X[:1200], y[:1200])
        assert clf.score(X[1200:], y[1200:]) > 0.9
        Xr, yr = make_regression(n_samples=400, n_features=8, noise=1.0, random_state=0)
        for loss in ["absolute_error", "huber"]:
            reg = MLPRegressor(loss=loss, hidden_layer_sizes=(32,), learning_rate_init=0.01,
                               max_iter=300, random_state=0).fit(Xr[:300], yr[:300] / 100)
            assert reg.score(Xr[300:], yr[300:] / 100) > 0.9


def test_absolute_error_is_robust_to_outliers():
    # The absolute error's minimiser is the median: a few huge targets barely move it.
    rng = np.random.RandomState(0)
    X = rng.rand(200, 1)
    y = np.full(200, 1.0)
    y[:10] = 1000.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = MLPRegressor(loss="absolute_error", hidden_layer_sizes=(4,), solver="lbfgs",
                           max_iter=500, alpha=0.0, random_state=0).fit(X, y)
    assert np.median(np.abs(reg.predict(X) - 1.0)) < 0.05


@pytest.mark.parametrize("Estimator, loss", [
    (MLPClassifier, "hinge"), (MLPClassifier, "absolute_error"), (MLPRegressor, "log_loss"),
    (MLPRegressor, "l1"),
])
def test_invalid_loss(Estimator, loss):
    X, y = np.random.RandomState(0).rand(20, 3), np.arange(20) % 2
    with pytest.raises(InvalidParameterError, match="'loss' parameter"):
        Estimator(loss=loss).fit(X, y)


@pytest.mark.parametrize("huber_delta", [0.0, -1.0, "1"])
def test_invalid_huber_delta(huber_delta):
    X, y = np.random.RandomState(0).rand(20, 3), np.arange(20.0)
    with pytest.raises(InvalidParameterError, match="huber_delta"):
        MLPRegressor(loss="huber", huber_delta=huber_delta).fit(X, y)
