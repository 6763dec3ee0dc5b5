"""Central-difference gradient checks of the engine's backpropagation, float64, for every hidden
activation with every output layer (and its fused loss), with L2 penalty and sample weights."""
import numpy as np
import pytest

from fastmlp import _engine as E

from _helpers import central_differences

HIDDEN = ["identity", "logistic", "tanh", "relu"]
OUTPUTS = ["softmax", "logistic", "identity", "exp"]


def make_problem(output, n_outputs, rng, n=23):
    if output == "softmax":
        return np.eye(n_outputs)[rng.randint(n_outputs, size=n)]
    if output == "logistic":
        return (rng.rand(n, n_outputs) > 0.5).astype(float)
    if output == "exp":
        return rng.poisson(1.5, size=(n, n_outputs)).astype(float)
    return rng.standard_normal((n, n_outputs))


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_gradient_matches_central_differences(hidden, output, weighted):
    rng = np.random.RandomState(0)
    # One output for squared error: scikit-learn's reported loss averages over outputs while
    # its gradient (delta = p - y) sums over them; the gradient is what training follows.
    n_outputs = 1 if output == "identity" else 3
    units = [5, 7, 4, n_outputs]
    X = rng.standard_normal((23, units[0]))
    Y = make_problem(output, n_outputs, rng)
    w = rng.rand(23) + 0.5 if weighted else np.empty(0)
    network = E.Network(units, hidden, output, alpha=0.01)
    # chunks of 10 rows: the full-batch gradient accumulates across chunks
    trainer = E.Trainer(network, 10, units[0], np.float64)
    theta = rng.uniform(-0.8, 0.8, network.n_params)
    if hidden == "relu":  # keep pre-activations away from the kink at 0
        theta[network.n_coefs:] += 0.3
    grad = np.empty_like(theta)
    trainer.loss_gradient(theta, grad, X, Y, w, 2)

    numeric = central_differences(
        lambda t: trainer.loss_gradient(t, np.empty_like(t), X, Y, w, 1), theta)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_loss_gradient_is_independent_of_chunking():
    rng = np.random.RandomState(1)
    units = [6, 9, 3]
    X, Y = rng.standard_normal((50, 6)), np.eye(3)[rng.randint(3, size=50)]
    network = E.Network(units, "tanh", "softmax", alpha=1e-3)
    theta = rng.standard_normal(network.n_params)
    results = []
    for chunk in (50, 7):
        grad = np.empty_like(theta)
        loss = E.Trainer(network, chunk, 6, np.float64).loss_gradient(
            theta, grad, X, Y, np.empty(0), 2)
        results.append((loss, grad))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-13)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12, atol=1e-15)
