"""gradient_norms_: each epoch's mean per-layer |dLoss/dW| against an independent backpropagation
written in numpy, and how it follows partial_fit, warm_start, clipping and the solvers."""
import warnings

import numpy as np
import pytest

from fastmlp import MLPClassifier, MLPRegressor

from _helpers import digits


def numpy_gradient_norms(coefs, intercepts, X, Y, alpha):
    """|dLoss/dW^l| for a tanh network with a softmax output and log loss, scikit-learn's loss
    (mean over samples, plus alpha/2 |W|^2 / n), by plain backpropagation."""
    acts = [X]
    for i, (W, b) in enumerate(zip(coefs, intercepts)):
        z = acts[-1] @ W + b
        if i < len(coefs) - 1:
            acts.append(np.tanh(z))
        else:
            z = z - z.max(axis=1, keepdims=True)
            p = np.exp(z)
            acts.append(p / p.sum(axis=1, keepdims=True))
    n = X.shape[0]
    delta = acts[-1] - Y
    norms = [0.0] * len(coefs)
    for i in range(len(coefs) - 1, -1, -1):
        grad = (acts[i].T @ delta + alpha * coefs[i]) / n
        norms[i] = np.linalg.norm(grad)
        if i:
            delta = (delta @ coefs[i].T) * (1 - acts[i] ** 2)
    return np.array(norms)


def fit(max_iter, **params):
    X, y = digits(120)
    base = dict(hidden_layer_sizes=(12, 9), activation="tanh", solver="sgd", momentum=0.0,
                batch_size=120, shuffle=False, learning_rate_init=0.3, alpha=0.01, tol=0.0,
                random_state=0)
    base.update(params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MLPClassifier(max_iter=max_iter, **base).fit(X, y), X, y


def test_each_epochs_norms_are_those_of_its_full_batch_gradient():
    # Full-batch SGD: epoch k has one step, taken at the weights a fit of k epochs ends with.
    model, X, y = fit(3)
    Y = np.eye(10)[y]
    assert model.gradient_norms_.shape == (3, 3)
    for k in range(3):
        start = fit(k)[0] if k else fit(1, learning_rate_init=1e-300)[0]  # k = 0: W_0 itself
        expected = numpy_gradient_norms(start.coefs_, start.intercepts_, X, Y, 0.01)
        np.testing.assert_allclose(model.gradient_norms_[k], expected, rtol=1e-10)


def test_an_epoch_of_several_steps_gives_the_mean_of_their_norms():
    X, y = digits(120)
    Y = np.eye(10)[y]
    model, _, _ = fit(1, batch_size=60)  # two steps: rows 0-59, then rows 60-119
    start = fit(1, learning_rate_init=1e-300)[0]  # the initial weights W_0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the weights after the first step: one epoch on rows 0-59 alone (same draws, classes)
        first = MLPClassifier(hidden_layer_sizes=(12, 9), activation="tanh", solver="sgd",
                              momentum=0.0, batch_size=60, shuffle=False, learning_rate_init=0.3,
                              alpha=0.01, tol=0.0, random_state=0, max_iter=1).fit(X[:60], y[:60])
    norms_1 = numpy_gradient_norms(start.coefs_, start.intercepts_, X[:60], Y[:60], 0.01)
    norms_2 = numpy_gradient_norms(first.coefs_, first.intercepts_, X[60:], Y[60:], 0.01)
    np.testing.assert_allclose(model.gradient_norms_[0], (norms_1 + norms_2) / 2, rtol=1e-10)


def test_norms_are_taken_before_clipping():
    clipped, _, _ = fit(1, max_grad_norm=1e-3)
    free, _, _ = fit(1)
    np.testing.assert_array_equal(clipped.gradient_norms_, free.gradient_norms_)
    assert not np.array_equal(clipped.coefs_[0], free.coefs_[0])


def test_rows_follow_n_iter_through_partial_fit_and_warm_start():
    X, y = digits(100)
    clf = MLPClassifier(hidden_layer_sizes=(8,), random_state=0)
    for _ in range(3):
        clf.partial_fit(X, y, classes=np.arange(10))
    assert clf.gradient_norms_.shape == (3, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warm = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, warm_start=True,
                             random_state=0).fit(X, y)
        warm.fit(X, y)
    assert warm.gradient_norms_.shape == (4, 2) and len(warm.loss_curve_) == 4
    assert np.all(np.isfinite(warm.gradient_norms_)) and np.all(warm.gradient_norms_ > 0)


def test_lbfgs_has_none_and_a_refit_with_lbfgs_drops_them():
    X, y = digits(100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPRegressor(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X, X[:, 5])
        assert clf.gradient_norms_.shape == (3, 2)
        clf.set_params(solver="lbfgs").fit(X, X[:, 5])
    assert not hasattr(clf, "gradient_norms_")


@pytest.mark.parametrize("solver", ["adam", "adagrad", "ftrl"])
def test_every_stochastic_solver_reports_them(solver):
    model, _, _ = fit(2, solver=solver, learning_rate_init=0.01)
    assert model.gradient_norms_.shape == (2, 3)
    assert np.all(model.gradient_norms_ > 0)
