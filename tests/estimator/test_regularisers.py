"""Regularisers beyond scikit-learn's alpha: dropout (statistics, wiring, determinism, learning),
max_grad_norm and weight_clip (exactly what is documented), class_weight (bitwise the
equivalent sample_weight)."""
import pickle
import re
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils._param_validation import InvalidParameterError

from fastmlp import MLPClassifier, MLPRegressor
from fastmlp import _engine as E
from fastmlp._engine import _testing as K

from _helpers import assert_bitwise_equal_on_one_and_two_threads, central_differences

DTYPES = [np.float32, np.float64]


def quiet_fit(estimator, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return estimator.fit(*args, **kwargs)


# --------------------------------------------------------------------------------------------
# dropout
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_mask_statistics(p, dtype):
    rows, cols = 400, 250
    x = np.random.RandomState(0).uniform(1, 2, (rows, cols)).astype(dtype)
    out = np.empty_like(x)
    K.kernel_dropout(out, x, 12345, 7, p)
    dropped = out == 0
    n = dropped.size
    # the dropped fraction is Binomial(n, p)/n: within 5 standard deviations
    assert abs(dropped.mean() - p) < 5 * np.sqrt(p * (1 - p) / n)
    # inverted dropout: kept units are scaled by 1 / (1 - p), so the mean is kept
    np.testing.assert_allclose(out[~dropped], x[~dropped] * dtype(1 / (1 - p)), rtol=1e-6)
    assert abs(out.mean() / x.mean() - 1) < 5 * np.sqrt(p / (1 - p) / n) * 1.5
    # no visible correlation between neighbouring units, samples, or steps
    d = dropped.astype(float) - p
    assert abs((d[:, 1:] * d[:, :-1]).mean()) < 5 * p * (1 - p) / np.sqrt(n)
    assert abs((d[1:] * d[:-1]).mean()) < 5 * p * (1 - p) / np.sqrt(n)
    other = np.empty_like(x)
    K.kernel_dropout(other, x, 12345, 8, p)
    assert abs((((other == 0) - p) * d).mean()) < 5 * p * (1 - p) / np.sqrt(n)


def test_dropout_mask_is_a_function_of_seed_step_sample_and_unit():
    x = np.ones((6, 50))
    a, b = np.empty_like(x), np.empty_like(x)
    K.kernel_dropout(a, x, 99, 3, 0.5)
    K.kernel_dropout(b, x, 99, 3, 0.5)
    np.testing.assert_array_equal(a, b)
    K.kernel_dropout(b, x, 100, 3, 0.5)  # another seed
    assert (a != b).any()
    # rows 2..5 of the block are samples 2..5: a block starting at sample 2 sees the same bits
    part = np.empty((4, 50))
    K.kernel_dropout(part, x[2:], 99, 3, 0.5, first_sample=2)
    np.testing.assert_array_equal(part, a[2:])
    # backward multiplies by the same mask (and scale)
    delta = np.full_like(x, 3.0)
    K.kernel_dropout(delta, x, 99, 3, 0.5, backward=True)
    np.testing.assert_array_equal(delta, 3.0 * a)
    # p = 0 keeps everything unchanged
    K.kernel_dropout(b, x, 99, 3, 0.0)
    np.testing.assert_array_equal(b, x)


def numpy_loss_with_dropout(network_units, theta, X, Y, seed, step, p, activation="tanh"):
    """The engine's training loss, recomputed in numpy with masks from the dropout kernel:
    hidden layer l's unit j of sample i has counter i * n_hidden + offset_l + j."""
    network = E.Network(network_units, activation, "softmax")
    coefs, intercepts = network.views(theta)
    n_hidden, offset = sum(network_units[1:-1]), 0
    a = X
    for W, b in zip(coefs[:-1], intercepts[:-1]):
        a = np.tanh(a @ W + b)
        dropped = np.empty_like(a)
        K.kernel_dropout(dropped, np.ascontiguousarray(a), seed, step, p, stride=n_hidden,
                         offset=offset)
        offset += a.shape[1]
        a = dropped
    z = a @ coefs[-1] + intercepts[-1]
    proba = np.exp(z - z.max(1, keepdims=True))
    proba /= proba.sum(1, keepdims=True)
    return -(Y * np.log(proba)).sum(1).mean()


def test_engine_applies_the_documented_mask():
    rng = np.random.RandomState(0)
    units = [6, 9, 7, 3]
    X = rng.standard_normal((37, 6))
    Y = np.eye(3)[rng.randint(3, size=37)]
    network = E.Network(units, "tanh", "softmax", dropout=0.4)
    theta = rng.uniform(-1, 1, network.n_params)
    trainer = E.Trainer(network, 16, 6, np.float64, dropout_seed=2024)  # 3 chunks
    grad = np.empty_like(theta)
    loss = trainer.loss_gradient(theta, grad, X, Y, np.empty(0), 2, 11)
    assert loss == pytest.approx(numpy_loss_with_dropout(units, theta, X, Y, 2024, 11, 0.4),
                                 rel=1e-12)
    # without a step (prediction, L-BFGS): no dropout at all
    plain = E.Trainer(E.Network(units, "tanh", "softmax"), 16, 6, np.float64)
    assert trainer.loss_gradient(theta, grad, X, Y, np.empty(0), 2) == \
        plain.loss_gradient(theta, grad, X, Y, np.empty(0), 2)


@pytest.mark.parametrize("hidden", ["tanh", "relu", "gelu", "maxout"])
def test_gradient_with_dropout_matches_central_differences(hidden):
    rng = np.random.RandomState(1)
    units = [5, 8, 6, 3]
    X, Y = rng.standard_normal((23, 5)), np.eye(3)[rng.randint(3, size=23)]
    w = rng.rand(23) + 0.5
    network = E.Network(units, hidden, "softmax", 0.01, dropout=0.3)
    trainer = E.Trainer(network, 10, 5, np.float64, dropout_seed=5)
    theta = rng.uniform(-0.8, 0.8, network.n_params)
    grad, scratch = np.empty_like(theta), np.empty_like(theta)
    trainer.loss_gradient(theta, grad, X, Y, w, 2, 4)
    numeric = central_differences(
        lambda t: trainer.loss_gradient(t, scratch, X, Y, w, 1, 4), theta)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_dropout_is_off_in_prediction_and_seeded_by_random_state(digits_split):
    X_train, X_test, y_train, _ = digits_split
    fit = lambda seed, **kw: quiet_fit(MLPClassifier(  # noqa: E731
        (32,), dropout=0.3, max_iter=3, random_state=seed, **kw), X_train, y_train)
    a, b, c = fit(0), fit(0), fit(1)
    np.testing.assert_array_equal(a._theta, b._theta)
    assert (a._theta != c._theta).any()
    # the same weights under dropout=0 predict the same: prediction draws no mask
    without = pickle.loads(pickle.dumps(a)).set_params(dropout=0.0)
    np.testing.assert_array_equal(a.predict_proba(X_test), without.predict_proba(X_test))
    # prediction is the plain network on the learnt weights
    z = np.maximum(X_test @ a.coefs_[0] + a.intercepts_[0], 0) @ a.coefs_[1] + a.intercepts_[1]
    e = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(a.predict_proba(X_test), e / e.sum(1, keepdims=True),
                               rtol=1e-12)
    # dropout changes training: the same seed without it ends elsewhere
    no_dropout = quiet_fit(MLPClassifier((32,), max_iter=3, random_state=0), X_train, y_train)
    assert (no_dropout._theta != a._theta).any()


def test_dropout_models_learn_digits(digits_split):
    X_train, X_test, y_train, y_test = digits_split
    for params in [dict(activation="relu"), dict(activation="maxout")]:
        clf = quiet_fit(MLPClassifier((128,), dropout=0.2, max_iter=150, random_state=0,
                                      **params), X_train, y_train)
        assert clf.score(X_test, y_test) >= 0.96, params


@pytest.mark.parametrize("activation", ["relu", "maxout"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dropout_is_bitwise_equal_with_one_and_two_threads(dtype, activation):
    assert_bitwise_equal_on_one_and_two_threads(
        dtype, hidden_layer_sizes=(64, 32), activation=activation, dropout=0.25, solver="adamw",
        random_state=0, max_iter=2, batch_size=256, weight_clip=0.3)


# --------------------------------------------------------------------------------------------
# max_grad_norm and weight_clip
# --------------------------------------------------------------------------------------------

def one_sgd_step(X, y, **params):
    """Weights before and after one full-batch SGD step with lr 1 and no momentum: the step
    is exactly minus the (clipped) gradient."""
    est = MLPRegressor(hidden_layer_sizes=(5,), activation="tanh", solver="sgd", momentum=0.0,
                       learning_rate_init=1.0, batch_size=X.shape[0], shuffle=False,
                       alpha=0.01, max_iter=1, random_state=0, **params)
    quiet_fit(est, X, y)
    start = [c.copy() for c in est.coefs_ + est.intercepts_]
    theta0 = est._theta.copy()
    est.set_params(warm_start=True)
    quiet_fit(est, X, y)
    grad = np.empty_like(theta0)
    trainer = E.Trainer(est._network(), X.shape[0], X.shape[1], np.float64)
    trainer.loss_gradient(theta0, grad, X, y.reshape(-1, 1), np.empty(0), 1)
    return theta0, est._theta.copy(), grad, start


def test_max_grad_norm_clips_the_global_norm():
    rng = np.random.RandomState(0)
    X, y = rng.standard_normal((50, 4)), rng.standard_normal(50) * 10
    theta0, theta1, grad, _ = one_sgd_step(X, y, max_grad_norm=0.5)
    norm = np.linalg.norm(grad)
    assert norm > 0.5  # the gradient (L2 term and intercepts included) was clipped ...
    step = theta0 - theta1
    np.testing.assert_allclose(step, grad * (0.5 / (norm + 1e-6)), rtol=1e-10, atol=1e-14)
    assert np.linalg.norm(step) == pytest.approx(0.5, rel=1e-5)  # ... to norm 0.5
    # a bound above the norm leaves the gradient as it is
    theta0, theta1, grad, _ = one_sgd_step(X, y, max_grad_norm=10 * norm)
    np.testing.assert_allclose(theta0 - theta1, grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("solver", ["sgd", "adam", "rmsprop", "adamw"])
def test_weight_clip_bounds_every_parameter(solver, dtype, digits_split):
    X_train, _, y_train, _ = digits_split
    clf = quiet_fit(MLPClassifier((32,), solver=solver, learning_rate_init=0.05, max_iter=5,
                                  weight_clip=0.1, random_state=0), X_train.astype(dtype),
                    y_train)
    theta = clf._theta
    assert theta.dtype == dtype
    assert np.abs(theta).max() <= dtype(0.1)
    assert (np.abs(theta) == dtype(0.1)).sum() > 10  # the clamp was active ...
    assert all(np.abs(b).max() <= dtype(0.1) for b in clf.intercepts_)  # ... intercepts too


def test_weight_clip_is_lbfgs_bounds(digits_split):
    X_train, X_test, y_train, y_test = digits_split
    clf = quiet_fit(MLPClassifier((32,), solver="lbfgs", max_iter=100, weight_clip=0.2,
                                  random_state=0), X_train, y_train)
    assert np.abs(clf._theta).max() <= 0.2
    assert (np.abs(clf._theta) == 0.2).sum() > 10
    assert clf.score(X_test, y_test) > 0.9


def test_clipping_at_its_default_changes_nothing(digits_split):
    X_train, _, y_train, _ = digits_split
    base = quiet_fit(MLPClassifier((16,), max_iter=3, random_state=0), X_train, y_train)
    loose = quiet_fit(MLPClassifier((16,), max_iter=3, random_state=0, max_grad_norm=1e300,
                                    weight_clip=1e300), X_train, y_train)
    np.testing.assert_array_equal(base._theta, loose._theta)


@pytest.mark.parametrize("params", [dict(dropout=0.2), dict(max_grad_norm=1.0)])
def test_lbfgs_refuses_stochastic_regularisers(params):
    X, y = np.random.RandomState(0).rand(20, 3), np.arange(20) % 2
    with pytest.raises(ValueError, match="need a stochastic solver"):
        MLPClassifier(solver="lbfgs", **params).fit(X, y)


# --------------------------------------------------------------------------------------------
# class_weight
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("params", [
    dict(), dict(solver="lbfgs", max_iter=20), dict(solver="sgd"), dict(solver="nadam"),
    dict(early_stopping=True, validation_fraction=0.2), dict(dropout=0.2),
])
@pytest.mark.parametrize("class_weight", ["balanced", {0: 3.0, 1: 0.5, 7: 2.0}])
def test_class_weight_is_the_equivalent_sample_weight(class_weight, params):
    X, y = load_digits(return_X_y=True)
    X, y = X[:600] / 16.0, y[:600]
    keep = (y != 3) | (np.arange(600) % 3 == 0)  # unbalanced classes
    X, y = X[keep], y[keep]
    common = {"hidden_layer_sizes": (16,), "max_iter": 5, "random_state": 0, **params}
    weighted = quiet_fit(MLPClassifier(class_weight=class_weight, **common), X, y)
    equivalent = quiet_fit(MLPClassifier(**common), X, y,
                           sample_weight=compute_sample_weight(class_weight, y))
    np.testing.assert_array_equal(weighted._theta, equivalent._theta)
    assert weighted.loss_ == equivalent.loss_


def test_class_weight_multiplies_sample_weight():
    X, y = load_digits(n_class=3, return_X_y=True)
    X = X / 16.0
    sw = np.random.RandomState(0).rand(len(y)) + 0.5
    cw = {0: 2.0, 1: 1.0, 2: 0.25}
    a = quiet_fit(MLPClassifier((8,), max_iter=3, random_state=0, class_weight=cw), X, y,
                  sample_weight=sw)
    b = quiet_fit(MLPClassifier((8,), max_iter=3, random_state=0), X, y,
                  sample_weight=sw * compute_sample_weight(cw, y))
    np.testing.assert_array_equal(a._theta, b._theta)


@pytest.mark.parametrize("multilabel", [False, True])
def test_balanced_counts_classes_with_sample_weight(multilabel):
    # as LogisticRegression: weight k is then the same as k repeated rows
    rng = np.random.RandomState(0)
    X = rng.standard_normal((40, 4))
    y = (rng.rand(40, 2) < [0.3, 0.6]).astype(int) if multilabel else rng.randint(3, size=40)
    sw = rng.randint(0, 4, size=40)
    common = dict(hidden_layer_sizes=(5,), solver="lbfgs", max_iter=30, random_state=0,
                  class_weight="balanced", tol=0.0)
    weighted = quiet_fit(MLPClassifier(**common), X, y, sample_weight=sw)
    repeated = quiet_fit(MLPClassifier(**common), X.repeat(sw, axis=0), y.repeat(sw, axis=0))
    np.testing.assert_allclose(weighted.predict_proba(X), repeated.predict_proba(X),
                               rtol=1e-6, atol=1e-9)


def test_class_weight_for_binary_strings_and_multilabel():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((120, 5))
    labels = np.where(rng.rand(120) < 0.2, "rare", "common")
    a = quiet_fit(MLPClassifier((6,), max_iter=3, random_state=0, class_weight="balanced"),
                  X, labels)
    b = quiet_fit(MLPClassifier((6,), max_iter=3, random_state=0), X, labels,
                  sample_weight=compute_sample_weight("balanced", labels))
    np.testing.assert_array_equal(a._theta, b._theta)
    Y = (rng.rand(120, 3) < [0.1, 0.5, 0.3]).astype(int)
    cw = [{0: 1.0, 1: 5.0}, {0: 1.0, 1: 1.0}, {0: 0.5, 1: 2.0}]
    a = quiet_fit(MLPClassifier((6,), max_iter=3, random_state=0, class_weight=cw), X, Y)
    b = quiet_fit(MLPClassifier((6,), max_iter=3, random_state=0), X, Y,
                  sample_weight=compute_sample_weight(cw, Y))
    np.testing.assert_array_equal(a._theta, b._theta)


def test_class_weight_in_partial_fit():
    X, y = load_digits(n_class=3, return_X_y=True)
    X = X / 16.0
    cw = {0: 2.0, 1: 1.0, 2: 0.5}
    a = MLPClassifier((8,), random_state=0, class_weight=cw)
    b = MLPClassifier((8,), random_state=0)
    for _ in range(2):
        a.partial_fit(X, y, classes=[0, 1, 2])
        b.partial_fit(X, y, classes=[0, 1, 2], sample_weight=compute_sample_weight(cw, y))
    np.testing.assert_array_equal(a._theta, b._theta)
    with pytest.raises(ValueError, match="class_weight 'balanced' is not supported for "
                                         "partial_fit"):
        MLPClassifier(class_weight="balanced").partial_fit(X, y, classes=[0, 1, 2])


def test_class_weight_errors():
    X, y = np.random.RandomState(0).rand(20, 3), np.arange(20) % 2
    with pytest.raises(InvalidParameterError, match="class_weight"):
        MLPClassifier(class_weight="auto").fit(X, y)
    # scikit-learn's compute_class_weight's words (LogisticRegression says the same)
    with pytest.raises(ValueError, match=re.escape("The classes, [1], are not in class_weight")):
        MLPClassifier(class_weight={0: 1.0, 5: 2.0}, max_iter=2).fit(X, y)
    assert "class_weight" not in MLPRegressor().get_params()


@pytest.mark.parametrize("params", [
    dict(dropout=1.0), dict(dropout=-0.1), dict(max_grad_norm=0.0), dict(max_grad_norm=-1.0),
    dict(weight_clip=0.0), dict(weight_clip="1"),
])
def test_invalid_regulariser_values(params):
    X, y = np.random.RandomState(0).rand(20, 3), np.arange(20) % 2
    for Estimator in (MLPClassifier, MLPRegressor):
        with pytest.raises(InvalidParameterError):
            Estimator(**params).fit(X, y)
