"""Batch normalization (batch_norm=True): torch's Linear -> BatchNorm1d -> act, step for step.

From the same starting weights (gamma, beta and the running statistics included), a few
full-batch steps of fastmlp equal torch's, and after a mini-batch fit fastmlp's predictions equal
torch's eval-mode forward built from the fitted parameters. Sample weights are checked against
repeated rows (torch has none), the full-batch gradient against central differences, and
L-BFGS's running statistics against the statistics of the whole training set.
"""
import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from fastmlp import MLPClassifier, MLPRegressor
from fastmlp import _engine as E

from _helpers import assert_bitwise_equal_on_one_and_two_threads, central_differences

STEPS = 5
N_SAMPLES, N_FEATURES, HIDDEN = 40, 6, (7, 5)


def make_data(task, rng, n=N_SAMPLES):
    X = rng.standard_normal((n, N_FEATURES)) * 2.0 + 0.5
    if task == "multiclass":
        return X, rng.randint(3, size=n)
    if task == "binary":
        return X, rng.randint(2, size=n)
    return X, rng.standard_normal(n)


def quiet_fit(estimator, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return estimator.fit(*args, **kwargs)


def parameters(est):
    """Every trained array, with the running statistics: the state the steps move."""
    return [a.copy() for a in est.coefs_ + est.intercepts_ + est.batch_norm_weights_
            + est.batch_norm_biases_ + est.batch_norm_running_means_
            + est.batch_norm_running_vars_]


def fastmlp_steps(est, X, y, sample_weight=None):
    """The starting state (random weights, gamma and beta; running statistics as torch's
    start) and the state after STEPS full-batch steps."""
    est.set_params(batch_size=X.shape[0], shuffle=False, max_iter=1, n_iter_no_change=1000,
                   tol=0.0, random_state=0, batch_norm=True)
    quiet_fit(est, X, y, sample_weight=sample_weight)  # lays out the weights
    rng = np.random.RandomState(1)
    for array in est.coefs_ + est.intercepts_ + est.batch_norm_biases_:
        array[...] = rng.uniform(-0.6, 0.6, array.shape)
    for gamma in est.batch_norm_weights_:
        gamma[...] = rng.uniform(0.5, 1.5, gamma.shape)
    for mean, var in zip(est.batch_norm_running_means_, est.batch_norm_running_vars_):
        mean[...], var[...] = 0.0, 1.0
    start = parameters(est)
    est.set_params(warm_start=True, max_iter=STEPS)
    quiet_fit(est, X, y, sample_weight=sample_weight)
    assert est.n_iter_ == STEPS
    return start, parameters(est)


# -- torch -----------------------------------------------------------------------------------


def torch_network(est, state, tdtype):
    """torch's Linear -> BatchNorm1d -> act stack with fastmlp's `state` (see parameters)."""
    torch = pytest.importorskip("torch")
    n = len(est.coefs_)
    coefs, intercepts = state[:n], state[n:2 * n]
    gammas, betas, means, variances = (state[2 * n + i * (n - 1):2 * n + (i + 1) * (n - 1)]
                                       for i in range(4))
    linears, norms = [], []
    for i, (W, b) in enumerate(zip(coefs, intercepts)):
        linear = torch.nn.Linear(*W.shape, dtype=tdtype)
        with torch.no_grad():
            linear.weight.copy_(torch.as_tensor(W.T.copy()))
            linear.bias.copy_(torch.as_tensor(b))
        linears.append(linear)
        if i < n - 1:
            norm = torch.nn.BatchNorm1d(W.shape[1], momentum=est.batch_norm_momentum,
                                        eps=est.batch_norm_eps, dtype=tdtype)
            with torch.no_grad():
                norm.weight.copy_(torch.as_tensor(gammas[i]))
                norm.bias.copy_(torch.as_tensor(betas[i]))
                norm.running_mean.copy_(torch.as_tensor(means[i]))
                norm.running_var.copy_(torch.as_tensor(variances[i]))
            norms.append(norm)
    return linears, norms


def torch_forward(est, linears, norms, X):
    torch = pytest.importorskip("torch")
    a = X
    for i, linear in enumerate(linears):
        z = linear(a)
        if i == len(linears) - 1:
            return z
        z = norms[i](z)
        if est.activation == "maxout":
            k = est.maxout_pieces
            a = z.view(z.shape[0], z.shape[1] // k, k).max(dim=2).values
        else:
            a = {"relu": torch.relu, "tanh": torch.tanh, "logistic": torch.sigmoid,
                 "gelu": torch.nn.functional.gelu, "identity": lambda v: v}[est.activation](z)
    return a


def torch_loss(est, out, y):
    torch = pytest.importorskip("torch")
    if isinstance(est, MLPClassifier):
        classes = np.unique(y)
        if len(classes) > 2:
            Y = torch.as_tensor(np.eye(len(classes))[np.searchsorted(classes, y)],
                                dtype=out.dtype)
            return -(Y * torch.log_softmax(out, dim=1)).sum(dim=1).mean()
        Y = torch.as_tensor((y == classes[1]).reshape(-1, 1), dtype=out.dtype)
        return torch.nn.functional.binary_cross_entropy(torch.sigmoid(out), Y)
    return 0.5 * torch.nn.functional.mse_loss(out, torch.as_tensor(y.reshape(-1, 1),
                                                                     dtype=out.dtype))


def torch_steps(est, start, X, y, dtype):
    """STEPS full-batch steps in torch, in training mode, from `start`."""
    torch = pytest.importorskip("torch")
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    linears, norms = torch_network(est, start, tdtype)
    params = [p for m in linears + norms for p in m.parameters()]
    if est.solver == "sgd":
        optimizer = torch.optim.SGD(params, lr=est.learning_rate_init)
    elif est.solver == "adamw":  # with weight_decay=0: torch's Adam
        optimizer = torch.optim.Adam(params, lr=est.learning_rate_init,
                                     betas=(est.beta_1, est.beta_2), eps=1e-8)
    else:  # scikit-learn's Adam (fastmlp's 'adam'), written out: bias corrections in the step
        state = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    Xt = torch.as_tensor(X, dtype=tdtype)
    for t in range(1, STEPS + 1):
        for p in params:
            p.grad = None
        loss = torch_loss(est, torch_forward(est, linears, norms, Xt), y)
        if est.alpha:  # scikit-learn's L2 term on the coefs only: alpha / (2 n) sum W^2
            loss = loss + 0.5 * est.alpha * sum((m.weight ** 2).sum() for m in linears) / len(X)
        loss.backward()
        if est.solver in ("sgd", "adamw"):
            optimizer.step()
            continue
        lr = (est.learning_rate_init * np.sqrt(1 - est.beta_2 ** t) / (1 - est.beta_1 ** t))
        with torch.no_grad():
            for p, (m, v) in zip(params, state):
                m.mul_(est.beta_1).add_((1 - est.beta_1) * p.grad)
                v.mul_(est.beta_2).add_((1 - est.beta_2) * p.grad ** 2)
                p.sub_(lr * m / (v.sqrt() + est.epsilon))
    n = len(linears)
    out = ([m.weight.detach().numpy().T for m in linears]
           + [m.bias.detach().numpy() for m in linears]
           + [m.weight.detach().numpy() for m in norms] + [m.bias.detach().numpy() for m in norms]
           + [m.running_mean.numpy() for m in norms] + [m.running_var.numpy() for m in norms])
    assert len(out) == 2 * n + 4 * (n - 1)
    return out


def assert_same_steps(est, task, dtype=np.float64):
    rtol = 1e-10 if dtype == np.float64 else 2e-4
    X, y = make_data(task, np.random.RandomState(0))
    X = X.astype(dtype)
    start, ours = fastmlp_steps(est, X, y)
    theirs = torch_steps(est, start, X, y, dtype)
    moved = max(np.abs(o - s).max() for o, s in zip(ours, start))
    assert moved > 1e-3, "the steps must move the weights for the comparison to mean anything"
    n = len(est.coefs_)
    for i, (o, t) in enumerate(zip(ours, theirs)):
        if est.solver != "sgd" and (n <= i < 2 * n - 1 or 2 * n + 2 * (n - 1) <= i < 2 * n
                                                                + 3 * (n - 1)):
            # A hidden layer's b, just before its normalization, has no effect on the loss: its
            # gradient is rounding noise (1e-17), which Adam scales up to full-size steps, in
            # torch as here, and their noise differs; so do the running means, which include b.
            # Everything b does not move is compared (with SGD, b too).
            continue
        np.testing.assert_allclose(o, t, rtol=rtol, atol=rtol * 1e-2)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "gelu", "maxout"])
def test_sgd_steps_equal_torch(activation, dtype):
    est = MLPClassifier(HIDDEN, activation=activation, solver="sgd", momentum=0.0,
                        learning_rate_init=0.3, alpha=0.0)
    assert_same_steps(est, "multiclass", dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("solver", ["adam", "adamw"])
def test_adam_steps_equal_torch(solver, dtype):
    est = MLPClassifier(HIDDEN, activation="relu", solver=solver, learning_rate_init=0.05,
                        weight_decay=0.0, alpha=1e-3, batch_norm_momentum=0.3)
    assert_same_steps(est, "multiclass", dtype)


@pytest.mark.parametrize("params", [
    dict(activation="maxout", maxout_pieces=3), dict(activation="tanh", batch_norm_eps=0.1),
    dict(activation="relu", batch_norm_momentum=1.0), dict(activation="relu",
                                                           batch_norm_momentum=0.0),
])
def test_options_equal_torch(params):
    est = MLPClassifier(HIDDEN, solver="sgd", momentum=0.0, learning_rate_init=0.3, alpha=0.0,
                        **params)
    assert_same_steps(est, "multiclass")


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_other_outputs_equal_torch(task):
    cls = MLPClassifier if task == "binary" else MLPRegressor
    est = cls(hidden_layer_sizes=HIDDEN, activation="tanh", solver="sgd", momentum=0.0, learning_rate_init=0.1,
              alpha=1e-2)
    assert_same_steps(est, task)


@pytest.mark.parametrize("activation", ["relu", "maxout"])
def test_fitted_predictions_equal_torch_eval_mode(activation):
    torch = pytest.importorskip("torch")
    X, y = make_data("multiclass", np.random.RandomState(3), n=300)
    est = quiet_fit(MLPClassifier((16, 8), activation=activation, batch_norm=True,
                                  batch_size=32, max_iter=20, random_state=0), X, y)
    linears, norms = torch_network(est, parameters(est), torch.float64)
    for module in linears + norms:
        module.eval()
    with torch.no_grad():
        logits = torch_forward(est, linears, norms, torch.as_tensor(X)).numpy()
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(est.predict_proba(X), expected, rtol=1e-10, atol=1e-13)
    # the running statistics were used: the batch's own would give other outputs
    assert not np.allclose(est.batch_norm_running_vars_[0], 1.0)


# -- the engine ------------------------------------------------------------------------------


@pytest.mark.parametrize("hidden", ["tanh", "relu", "maxout"])
@pytest.mark.parametrize("weighted", [False, True])
def test_gradient_matches_central_differences(hidden, weighted):
    rng = np.random.RandomState(0)
    units = [5, 7, 4, 3]
    X = rng.standard_normal((23, 5))
    Y = np.eye(3)[rng.randint(3, size=23)]
    w = rng.rand(23) + 0.5 if weighted else np.empty(0)
    network = E.Network(units, hidden, "softmax", alpha=0.01, batch_norm=True,
                        batch_norm_eps=1e-3)
    trainer = E.Trainer(network, 23, 5, np.float64)
    theta = rng.uniform(-0.8, 0.8, network.n_params)
    grad = np.empty_like(theta)
    trainer.loss_gradient(theta, grad, X, Y, w, 2)
    numeric = central_differences(
        lambda t: trainer.loss_gradient(t, np.empty_like(t), X, Y, w, 1), theta)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)
    gammas, betas = network.batch_norm_views(grad)
    assert all(np.abs(g).max() > 1e-4 for g in gammas + betas)  # they are trained


def test_full_batch_needs_every_row():
    network = E.Network([3, 4, 2], "relu", "softmax", batch_norm=True)
    X, Y = np.ones((10, 3)), np.eye(2)[np.arange(10) % 2]
    theta = np.zeros(network.n_params)
    with pytest.raises(ValueError, match="every row"):
        E.Trainer(network, 5, 3, np.float64).loss_gradient(theta, theta.copy(), X, Y,
                                                            np.empty(0), 1)


def test_network_layout():
    network = E.Network([3, 4, 5, 2], "maxout", "softmax", maxout_pieces=3, batch_norm=True)
    plain = E.Network([3, 4, 5, 2], "maxout", "softmax", maxout_pieces=3)
    assert network.n_params == plain.n_params + 2 * (12 + 15)
    assert network.n_running == 2 * (12 + 15)
    theta = np.arange(network.n_params, dtype=float)
    gammas, betas = network.batch_norm_views(theta)
    assert [g.shape for g in gammas] == [(12,), (15,)]
    assert gammas[0][0] == plain.n_params and betas[1][-1] == network.n_params - 1
    # no hidden layer, nothing to normalise
    assert not E.Network([3, 2], "relu", "softmax", batch_norm=True).batch_norm


# -- the estimators --------------------------------------------------------------------------


def test_sample_weight_is_repeated_rows():
    """Weighted statistics and gradients: a row of weight 2 is that row twice in the batch
    (the running mean too; the running variance's correction counts reliability weights,
    csrc/batchnorm.c, so there a weight is not a repetition)."""
    X, y = make_data("multiclass", np.random.RandomState(4))
    weights = np.random.RandomState(5).randint(1, 4, size=len(X))
    params = dict(hidden_layer_sizes=HIDDEN, solver="sgd", momentum=0.0,
                  learning_rate_init=0.2, batch_norm=True, shuffle=False, max_iter=5,
                  random_state=0, n_iter_no_change=100)
    weighted = quiet_fit(MLPClassifier(batch_size=len(X), **params), X, y,
                         sample_weight=weights)
    repeated = quiet_fit(MLPClassifier(batch_size=int(weights.sum()), **params),
                         np.repeat(X, weights, axis=0), np.repeat(y, weights))
    for a, b in zip(weighted.coefs_ + weighted.intercepts_ + weighted.batch_norm_weights_
                    + weighted.batch_norm_biases_ + weighted.batch_norm_running_means_,
                    repeated.coefs_ + repeated.intercepts_ + repeated.batch_norm_weights_
                    + repeated.batch_norm_biases_ + repeated.batch_norm_running_means_):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_lbfgs_running_statistics_are_the_training_sets():
    X, y = make_data("multiclass", np.random.RandomState(6), n=120)
    est = quiet_fit(MLPClassifier((9,), activation="tanh", solver="lbfgs", batch_norm=True,
                                  max_iter=30, random_state=0), X, y)
    z = X @ est.coefs_[0] + est.intercepts_[0]
    np.testing.assert_allclose(est.batch_norm_running_means_[0], z.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(est.batch_norm_running_vars_[0], z.var(axis=0, ddof=1),
                               rtol=1e-10)
    # so prediction normalises as the fit's last evaluation did: training accuracy is kept
    assert est.score(X, y) > 0.6


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("params", [
    dict(activation="relu", batch_size=64),
    dict(activation="maxout", maxout_pieces=3, dropout=0.2, batch_size=300),
    dict(activation="gelu", solver="sgd", max_grad_norm=1.0, batch_size=100),
])
def test_bitwise_equal_on_one_and_two_threads(dtype, params):
    assert_bitwise_equal_on_one_and_two_threads(
        dtype, hidden_layer_sizes=(40, 20), batch_norm=True, max_iter=3, random_state=0,
        **params)


def test_sparse_input_equals_dense():
    X, y = make_data("multiclass", np.random.RandomState(7), n=90)
    X[np.abs(X) < 1.0] = 0.0
    params = dict(hidden_layer_sizes=(10,), batch_norm=True, batch_size=30, max_iter=4,
                  random_state=0)
    dense = quiet_fit(MLPClassifier(**params), X, y)
    sparse = quiet_fit(MLPClassifier(**params), sp.csr_matrix(X), y)
    # (the sparse product adds in another order than BLAS: equal to rounding)
    np.testing.assert_allclose(dense._theta, sparse._theta, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dense._batch_norm_running, sparse._batch_norm_running,
                               rtol=1e-9, atol=1e-12)


def test_partial_fit_and_warm_start_continue_the_statistics():
    X, y = make_data("multiclass", np.random.RandomState(8), n=100)
    params = dict(hidden_layer_sizes=(8,), batch_norm=True, batch_size=25, shuffle=False,
                  random_state=0)
    once = quiet_fit(MLPClassifier(max_iter=2, **params), X, y)
    parts = MLPClassifier(**params)
    parts.partial_fit(X, y, classes=[0, 1, 2])
    parts.partial_fit(X, y)
    np.testing.assert_array_equal(once._theta, parts._theta)
    np.testing.assert_array_equal(once._batch_norm_running, parts._batch_norm_running)
    # warm_start keeps them too: with momentum 0 a second fit leaves them as the first left them
    warm = quiet_fit(MLPClassifier(max_iter=1, warm_start=True, **params), X, y)
    first = warm._batch_norm_running.copy()
    assert not np.allclose(first[:first.size // 2], 0.0)
    quiet_fit(warm.set_params(batch_norm_momentum=0.0), X, y)
    np.testing.assert_array_equal(first, warm._batch_norm_running)


def test_gamma_and_beta_are_views_and_start_as_torch():
    X, y = make_data("regression", np.random.RandomState(9))
    est = quiet_fit(MLPRegressor(hidden_layer_sizes=(6, 4), batch_norm=True, max_iter=1, random_state=0), X, y)
    for array in est.batch_norm_weights_ + est.batch_norm_biases_:
        assert array.base is est._theta
    # the first fit's draws are the same as without batch normalization (a step of 1e-300
    # changes no weight)
    plain = quiet_fit(MLPRegressor(hidden_layer_sizes=(6, 4), max_iter=1, random_state=0,
                                   learning_rate_init=1e-300), X, y)
    first = quiet_fit(MLPRegressor(hidden_layer_sizes=(6, 4), batch_norm=True, max_iter=1, random_state=0,
                                   learning_rate_init=1e-300), X, y)
    for a, b in zip(plain.coefs_ + plain.intercepts_, first.coefs_ + first.intercepts_):
        np.testing.assert_array_equal(a, b)
    assert all((g == 1).all() for g in first.batch_norm_weights_)
    assert all(np.abs(b).max() < 1e-290 for b in first.batch_norm_biases_)  # (one 1e-300 step)
    # replaced (not edited) arrays are folded back into theta, as coefs_ are
    before = est.predict(X)
    est.batch_norm_weights_[0] = np.full(6, 2.0)
    after = est.predict(X)
    assert est.batch_norm_weights_[0].base is est._theta
    assert (est.batch_norm_weights_[0] == 2).all()
    assert not np.allclose(before, after)


def test_pickle_round_trip_keeps_statistics():
    X, y = make_data("multiclass", np.random.RandomState(10), n=80)
    est = quiet_fit(MLPClassifier((8,), batch_norm=True, max_iter=5, random_state=0), X, y)
    loaded = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
    assert loaded.batch_norm_running_means_[0].base is loaded._batch_norm_running


def test_batch_norm_cannot_change_on_a_fitted_model():
    X, y = make_data("multiclass", np.random.RandomState(11), n=60)
    est = quiet_fit(MLPClassifier((8,), batch_norm=True, max_iter=2, random_state=0), X, y)
    est.set_params(batch_norm=False)
    with pytest.raises(ValueError, match="fitted with batch normalization"):
        est.predict(X)
    est.set_params(warm_start=True)
    with pytest.raises(ValueError, match="batch_norm=False differs"):
        est.fit(X, y)
    est.set_params(batch_norm=True, warm_start=False)
    quiet_fit(est.set_params(batch_norm=False), X, y)  # a new fit may change it
    assert not hasattr(est, "batch_norm_weights_")


@pytest.mark.parametrize("name, value, message", [
    ("batch_norm", "yes", "batch_norm"),
    ("batch_norm_momentum", 1.5, "batch_norm_momentum"),
    ("batch_norm_eps", 0.0, "batch_norm_eps"),
])
def test_bad_parameters_are_refused(name, value, message):
    from sklearn.utils._param_validation import InvalidParameterError

    X, y = make_data("multiclass", np.random.RandomState(12), n=30)
    with pytest.raises(InvalidParameterError, match=message):
        MLPClassifier(**{name: value}).fit(X, y)


def test_early_stopping_restores_the_best_statistics():
    X, y = make_data("multiclass", np.random.RandomState(13), n=400)
    est = quiet_fit(MLPClassifier((16,), batch_norm=True, early_stopping=True,
                                  n_iter_no_change=2, max_iter=60, learning_rate_init=0.05,
                                  random_state=0), X, y)
    best_norm, best_running = est._best_batch_norm
    np.testing.assert_array_equal(est._batch_norm_running, best_running)
    np.testing.assert_array_equal(est._theta[-best_norm.shape[0]:], best_norm)
