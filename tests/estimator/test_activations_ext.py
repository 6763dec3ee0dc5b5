"""The activations beyond scikit-learn's: kernels against numpy references (both dtypes),
central-difference gradient checks through the engine (float64), maxout's layout and kernels,
and the estimators' use of them."""
import pickle
import warnings

import numpy as np
import pytest
from scipy.special import expit, ndtr
from sklearn.utils._param_validation import InvalidParameterError

from fastmlp import MLPClassifier, MLPRegressor
from fastmlp import _engine as E
from fastmlp._engine import _testing as K

from _helpers import central_differences

DTYPES = [np.float32, np.float64]
PARAMS = dict(negative_slope=0.01, elu_alpha=1.0, softplus_beta=1.0, softplus_threshold=20.0)
ELEMENTWISE = ["leaky_relu", "elu", "gelu", "silu", "mish", "softplus"]


def reference(name, z, negative_slope=0.01, elu_alpha=1.0, softplus_beta=1.0,
              softplus_threshold=20.0):
    """torch.nn.functional's definitions, in float64."""
    if name == "leaky_relu":
        return np.where(z > 0, z, negative_slope * z)
    if name == "elu":
        return np.where(z > 0, z, elu_alpha * np.expm1(np.minimum(z, 0)))
    if name == "gelu":
        return z * ndtr(z)
    if name == "silu":
        return z * expit(z)
    if name == "mish":
        return z * np.tanh(np.logaddexp(0, z))
    if name == "softplus":
        bz = softplus_beta * z
        return np.where(bz > softplus_threshold, z, np.logaddexp(0, bz) / softplus_beta)
    raise ValueError(name)


def reference_derivative(name, z, negative_slope=0.01, elu_alpha=1.0, softplus_beta=1.0,
                         softplus_threshold=20.0):
    if name == "leaky_relu":
        return np.where(z > 0, 1.0, negative_slope)
    if name == "elu":
        return np.where(z > 0, 1.0, elu_alpha * np.exp(np.minimum(z, 0)))
    if name == "gelu":
        return ndtr(z) + z * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)
    if name == "silu":
        s = expit(z)
        return s * (1 + z * (1 - s))
    if name == "mish":
        t = np.tanh(np.logaddexp(0, z))
        return t + z * expit(z) * (1 - t * t)
    if name == "softplus":
        bz = softplus_beta * z
        return np.where(bz > softplus_threshold, 1.0, expit(bz))
    raise ValueError(name)


def grid(dtype):
    z = np.concatenate([np.linspace(-30, 30, 6001), np.linspace(-1, 1, 2001),
                        [0.0, 20.0, -20.0, 1e-7, -1e-7]])
    return z.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("params", [{}, dict(negative_slope=0.2, elu_alpha=0.5,
                                             softplus_beta=2.0, softplus_threshold=3.0)])
def test_forward_matches_torch_definitions(name, params, dtype):
    rng = np.random.RandomState(0)
    z = grid(dtype).reshape(3, -1)
    b = (rng.standard_normal(z.shape[1]) * 0.1).astype(dtype)
    a = z.copy()
    K.kernel_bias_activation(a, b, E.ACTIVATION_CODES[name], **params)
    expected = reference(name, (z + b).astype(np.float64), **params)
    eps = np.finfo(dtype).eps
    # within a few ulps of the value, or of 1 where the value is tiny
    np.testing.assert_allclose(a, expected, rtol=16 * eps, atol=16 * eps)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_forward_keeps_z_when_asked(name, dtype):
    rng = np.random.RandomState(1)
    z = (rng.standard_normal((9, 13)) * 3).astype(dtype)
    b = rng.standard_normal(13).astype(dtype)
    a, kept = z.copy(), np.full_like(z, np.nan)
    K.kernel_bias_activation(a, b, E.ACTIVATION_CODES[name], z=kept)
    np.testing.assert_array_equal(kept, z + b)
    a_plain = z.copy()
    K.kernel_bias_activation(a_plain, b, E.ACTIVATION_CODES[name])
    np.testing.assert_array_equal(a, a_plain)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, params", [(n, {}) for n in ELEMENTWISE] + [
    ("leaky_relu", dict(negative_slope=-0.3)), ("elu", dict(elu_alpha=-0.5)),
    ("leaky_relu", dict(negative_slope=0.0)), ("elu", dict(elu_alpha=0.0)),
    ("softplus", dict(softplus_beta=0.5, softplus_threshold=2.0)),
])
def test_backward_matches_derivative(name, params, dtype):
    rng = np.random.RandomState(2)
    z = np.concatenate([(rng.standard_normal(997) * 4), [0.0, 25.0, -25.0]]).astype(dtype)
    a = z.reshape(1, -1).copy()
    K.kernel_bias_activation(a, np.zeros(z.size, dtype), E.ACTIVATION_CODES[name], **params)
    delta = rng.standard_normal(z.size).astype(dtype)
    out = delta.copy()
    code = E.ACTIVATION_CODES[name]
    needs_z = K.activation_needs_preactivation(code, params.get("negative_slope", 0.01),
                                               params.get("elu_alpha", 1.0))
    K.kernel_activation_backward(out, a.ravel(), code, z=z if needs_z else None, **params)
    expected = delta * reference_derivative(name, z.astype(np.float64), **params)
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(out, expected, rtol=32 * eps, atol=32 * eps)


def test_which_activations_keep_z():
    needs = {name: K.activation_needs_preactivation(E.ACTIVATION_CODES[name])
             for name in ["identity", "logistic", "tanh", "relu"] + ELEMENTWISE}
    assert needs == {"identity": False, "logistic": False, "tanh": False, "relu": False,
                     "leaky_relu": False, "elu": False, "gelu": True, "silu": True,
                     "mish": True, "softplus": True}
    # a negative slope / alpha makes a's sign ambiguous: z is needed
    assert K.activation_needs_preactivation(E.ACTIVATION_CODES["leaky_relu"], -0.1)
    assert K.activation_needs_preactivation(E.ACTIVATION_CODES["elu"], 0.01, -1.0)
    assert E.Network([3, 4, 2], "gelu", "softmax").keeps_preactivation
    assert not E.Network([3, 4, 2], "elu", "softmax").keeps_preactivation


@pytest.mark.parametrize("dtype", DTYPES)
def test_expm1_and_log1p_are_accurate(dtype):
    eps = np.finfo(dtype).eps
    x = np.concatenate([np.linspace(-0.5, 0.5, 20001), np.linspace(-40, 5, 4001),
                        [1e-30, -1e-30, 0.0]]).astype(dtype)
    out = np.empty_like(x)
    K.kernel_expm1(out, x)
    np.testing.assert_allclose(out, np.expm1(x.astype(np.float64)), rtol=3 * eps)
    t = np.concatenate([np.linspace(0, 1, 20001), np.geomspace(1e-30, 1, 301)]).astype(dtype)
    out = np.empty_like(t)
    K.kernel_log1p_unit(out, t)
    np.testing.assert_allclose(out, np.log1p(t.astype(np.float64)), rtol=3 * eps)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gelu_has_no_cancellation_in_the_left_tail(dtype):
    # torch's z (1 + erf(z / sqrt 2)) / 2 loses every digit here; Phi via erfc keeps them
    z = -np.linspace(4, 9 if dtype == np.float32 else 30, 200).astype(dtype).reshape(1, -1)
    a = z.copy()
    K.kernel_bias_activation(a, np.zeros(z.shape[1], dtype), E.ACTIVATION_CODES["gelu"])
    expected = z * ndtr(z.astype(np.float64))
    ok = np.abs(expected) > np.finfo(dtype).tiny * 1e3
    rtol = 2e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(a[ok], expected[ok], rtol=rtol)


# --------------------------------------------------------------------------------------------
# maxout
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pieces", [1, 2, 3, 5])
def test_maxout_kernels(pieces, dtype):
    rng = np.random.RandomState(3)
    rows, cols = 11, 6
    z = rng.standard_normal((rows, cols * pieces)).astype(dtype)
    z[0, :pieces] = 1.5  # a tie: the first piece wins
    b = rng.standard_normal(cols * pieces).astype(dtype)
    b[:pieces] = 0
    a = np.empty((rows, cols), dtype)
    argmax = np.empty((rows, cols), np.intc)
    K.kernel_maxout_forward(a, argmax, z, b, pieces)
    zb = (z + b).reshape(rows, cols, pieces)
    np.testing.assert_array_equal(a, zb.max(axis=2))
    np.testing.assert_array_equal(argmax, zb.argmax(axis=2))
    assert argmax[0, 0] == 0

    delta = rng.standard_normal((rows, cols)).astype(dtype)
    buffer = np.full(rows * cols * pieces, np.nan, dtype)
    buffer[:rows * cols] = delta.ravel()
    K.kernel_maxout_backward(buffer, argmax, pieces)
    expected = np.zeros((rows, cols, pieces), dtype)
    np.put_along_axis(expected, argmax[..., None].astype(np.intp), delta[..., None], axis=2)
    np.testing.assert_array_equal(buffer.reshape(rows, cols, pieces), expected)


def test_maxout_geometry_and_views():
    network = E.Network([5, 4, 3, 2], "maxout", "softmax", maxout_pieces=3)
    assert network.n_params == 5 * 12 + 4 * 9 + 3 * 2 + 12 + 9 + 2
    theta = np.arange(network.n_params, dtype=float)
    coefs, intercepts = network.views(theta)
    assert [c.shape for c in coefs] == [(5, 12), (4, 9), (3, 2)]
    assert [i.shape for i in intercepts] == [(12,), (9,), (2,)]
    assert all(c.base is theta for c in coefs + intercepts)


# --------------------------------------------------------------------------------------------
# gradient checks through the engine
# --------------------------------------------------------------------------------------------

def check_gradient(hidden, output="softmax", weighted=False, dropout_step=-1, seed=0,
                   **network_options):
    rng = np.random.RandomState(seed)
    n_outputs = 1 if output == "identity" else 3
    units = [5, 7, 4, n_outputs]
    X = rng.standard_normal((23, units[0]))
    if output == "softmax":
        Y = np.eye(n_outputs)[rng.randint(n_outputs, size=23)]
    elif output == "logistic":
        Y = (rng.rand(23, n_outputs) > 0.5).astype(float)
    else:
        Y = rng.standard_normal((23, n_outputs))
    w = rng.rand(23) + 0.5 if weighted else np.empty(0)
    network = E.Network(units, hidden, output, 0.01, **network_options)
    trainer = E.Trainer(network, 10, units[0], np.float64, dropout_seed=12345)
    theta = rng.uniform(-0.8, 0.8, network.n_params)
    grad = np.empty_like(theta)
    trainer.loss_gradient(theta, grad, X, Y, w, 2, dropout_step)
    scratch = np.empty_like(theta)
    numeric = central_differences(
        lambda t: trainer.loss_gradient(t, scratch, X, Y, w, 1, dropout_step), theta)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("output", ["softmax", "logistic", "identity"])
@pytest.mark.parametrize("hidden", ELEMENTWISE + ["maxout"])
def test_gradient_matches_central_differences(hidden, output, weighted):
    check_gradient(hidden, output, weighted)


@pytest.mark.parametrize("hidden, options", [
    ("leaky_relu", dict(negative_slope=0.3)),
    ("leaky_relu", dict(negative_slope=-0.3)),
    ("elu", dict(elu_alpha=2.0)),
    ("elu", dict(elu_alpha=-0.5)),
    ("softplus", dict(softplus_beta=3.0, softplus_threshold=1.0)),
    ("maxout", dict(maxout_pieces=1)),
    ("maxout", dict(maxout_pieces=4)),
])
def test_gradient_with_activation_parameters(hidden, options):
    check_gradient(hidden, **options)


# --------------------------------------------------------------------------------------------
# the estimators
# --------------------------------------------------------------------------------------------

def numpy_predict_proba(clf, X):
    a = X
    for i, (W, b) in enumerate(zip(clf.coefs_, clf.intercepts_)):
        z = a @ W + b
        if i == len(clf.coefs_) - 1:
            e = np.exp(z - z.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        if clf.activation == "maxout":
            a = z.reshape(z.shape[0], -1, clf.maxout_pieces).max(axis=2)
        else:
            a = reference(clf.activation, z, clf.negative_slope, clf.elu_alpha,
                          clf.softplus_beta, clf.softplus_threshold)


@pytest.mark.parametrize("activation", ELEMENTWISE + ["maxout"])
def test_predictions_use_the_activation(activation, digits_split):
    X_train, X_test, y_train, _ = digits_split
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier((16, 8), activation=activation, max_iter=5, random_state=0,
                            maxout_pieces=3, negative_slope=0.1, elu_alpha=0.7,
                            softplus_beta=1.5).fit(X_train, y_train)
    np.testing.assert_allclose(clf.predict_proba(X_test), numpy_predict_proba(clf, X_test),
                               rtol=1e-10, atol=1e-13)


def test_maxout_coefs_shapes_and_glorot_bound(digits_split):
    X_train, _, y_train, _ = digits_split
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier((20, 10), activation="maxout", maxout_pieces=3, max_iter=1,
                            random_state=0).fit(X_train, y_train)
    assert [c.shape for c in clf.coefs_] == [(64, 60), (20, 30), (10, 10)]
    assert [b.shape for b in clf.intercepts_] == [(60,), (30,), (10,)]
    # Glorot's bound uses the units (20, 10), not the pieces: check on the initial draw
    init = MLPClassifier((20, 10), activation="maxout", maxout_pieces=3, random_state=0)
    init._random_state = np.random.RandomState(0)
    init._label_binarizer = clf._label_binarizer
    init._initialize(np.zeros((5, 10)), [64, 20, 10, 10], np.float64)
    for coef, bound in zip(init.coefs_, [np.sqrt(6 / 84), np.sqrt(6 / 30), np.sqrt(6 / 20)]):
        assert np.abs(coef).max() <= bound
        assert np.abs(coef).max() > 0.95 * bound


def test_maxout_and_new_activations_learn_digits(digits_split):
    X_train, X_test, y_train, y_test = digits_split
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        maxout = MLPClassifier((64,), activation="maxout", random_state=0,
                               max_iter=100).fit(X_train, y_train)
        gelu32 = MLPClassifier((64,), activation="gelu", random_state=0, max_iter=100).fit(
            X_train.astype(np.float32), y_train)
    assert maxout.score(X_test, y_test) >= 0.96
    assert gelu32.score(X_test.astype(np.float32), y_test) >= 0.96
    assert gelu32.coefs_[0].dtype == np.float32


def test_maxout_round_trips_through_pickle(digits_split):
    X_train, X_test, y_train, _ = digits_split
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier((8,), activation="maxout", maxout_pieces=3, max_iter=3,
                            random_state=0).fit(X_train, y_train)
    clone = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(clone.predict_proba(X_test), clf.predict_proba(X_test))


def test_maxout_cannot_be_switched_after_fit(digits_split):
    X_train, X_test, y_train, _ = digits_split
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier((8,), activation="maxout", max_iter=2, random_state=0).fit(
            X_train, y_train)
        relu = MLPClassifier((8,), max_iter=2, random_state=0).fit(X_train, y_train)
    with pytest.raises(ValueError, match="maxout"):
        clf.set_params(activation="relu").predict(X_test)
    with pytest.raises(ValueError, match="maxout"):
        relu.set_params(activation="maxout").predict(X_test)
    clf.set_params(activation="maxout", maxout_pieces=3, warm_start=True)
    with pytest.raises(ValueError, match="maxout_pieces=3 differs from the fitted 2"):
        clf.fit(X_train, y_train)
    # other activations can change after fit, as in scikit-learn
    relu.set_params(activation="gelu").predict(X_test)


@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
@pytest.mark.parametrize("params", [
    dict(activation="swish"), dict(maxout_pieces=0), dict(softplus_beta=0.0),
    dict(softplus_beta=-1.0), dict(negative_slope="a"), dict(elu_alpha=np.nan),
    dict(maxout_pieces=2.5),
])
def test_invalid_activation_parameters(Estimator, params):
    X, y = np.random.RandomState(0).rand(20, 3), np.arange(20) % 2
    with pytest.raises(InvalidParameterError):
        Estimator(**params).fit(X, y)


@pytest.mark.parametrize("hidden, options", [
    ("maxout", dict(maxout_pieces=3)), ("gelu", {}), ("leaky_relu", dict(dropout=0.3)),
    ("maxout", dict(dropout=0.3)),
])
def test_sparse_input_gradient(hidden, options):
    # A CSR X goes through the sparse first layer: with maxout its k pieces, with dropout the
    # masks of the same rows as a dense X would get.
    import scipy.sparse as sp

    rng = np.random.RandomState(4)
    X = rng.standard_normal((23, 6)) * (rng.rand(23, 6) < 0.4)
    Y = np.eye(3)[rng.randint(3, size=23)]
    network = E.Network([6, 5, 4, 3], hidden, "softmax", 0.01, **options)
    sparse = E.Trainer(network, 10, 6, np.float64, True, dropout_seed=9)
    dense = E.Trainer(network, 10, 6, np.float64, dropout_seed=9)
    theta = rng.uniform(-0.8, 0.8, network.n_params)
    step = 3 if "dropout" in options else -1
    grad, dense_grad = np.empty_like(theta), np.empty_like(theta)
    Xs = sp.csr_matrix(X)
    loss = sparse.loss_gradient(theta, grad, Xs, Y, np.empty(0), 2, step)
    dense_loss = dense.loss_gradient(theta, dense_grad, X, Y, np.empty(0), 2, step)
    assert loss == pytest.approx(dense_loss, rel=1e-12)
    np.testing.assert_allclose(grad, dense_grad, rtol=1e-10, atol=1e-14)
    scratch = np.empty_like(theta)
    numeric = central_differences(
        lambda t: sparse.loss_gradient(t, scratch, Xs, Y, np.empty(0), 1, step), theta)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("activation", ["maxout", "gelu"])
def test_sparse_and_dense_fits_agree(activation, digits_split):
    import scipy.sparse as sp

    X_train, X_test, y_train, _ = digits_split
    fit = lambda X: quiet_fit(MLPClassifier(  # noqa: E731
        (16,), activation=activation, dropout=0.2, max_iter=3, random_state=0), X, y_train)
    dense, sparse = fit(X_train), fit(sp.csr_matrix(X_train))
    np.testing.assert_allclose(sparse._theta, dense._theta, rtol=1e-8, atol=1e-11)
    np.testing.assert_allclose(sparse.predict_proba(sp.csr_matrix(X_test)),
                               dense.predict_proba(X_test), rtol=1e-8, atol=1e-11)


def quiet_fit(estimator, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return estimator.fit(*args, **kwargs)
