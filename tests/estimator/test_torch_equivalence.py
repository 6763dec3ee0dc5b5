"""Beyond scikit-learn, equal to PyTorch: from the same starting weights, a few full-batch steps of
fastmlp equal the same steps of torch.optim / torch.nn.functional, option by option.

Each case fits a fastmlp estimator once to lay out its weights, overwrites them with chosen
starting weights, and continues with warm_start for STEPS epochs of one full batch each
(batch_size = n_samples, shuffle=False: one optimizer step per epoch). The same network is built
in torch from the same weights (torch's Linear weight is coefs_[i].T) and trained with the same
loss and optimizer for the same steps. Skipped when torch is not installed.

torch keeps an optimizer's scalar state (the step, NAdam's mu_product) in its default dtype;
the comparison sets that to the parameters' dtype, as fastmlp computes these scalars in double.
In float64 the weights then agree to 1e-10 (with torch's float32 default, NAdam's differ in the
7th digit, its mu_product being rounded to float32); in float32 to the 1e-4 asked for.
"""
import warnings

import numpy as np
import pytest

from fastmlp import MLPClassifier, MLPRegressor

torch = pytest.importorskip("torch")
F = torch.nn.functional

STEPS = 5
N_SAMPLES, N_FEATURES, HIDDEN = 40, 6, (7, 5)


def make_data(task, rng):
    X = rng.standard_normal((N_SAMPLES, N_FEATURES))
    if task == "multiclass":
        y = rng.randint(3, size=N_SAMPLES)
    elif task == "binary":
        y = rng.randint(2, size=N_SAMPLES)
    elif task == "regression":
        y = rng.standard_normal(N_SAMPLES)
    else:  # multi-output regression
        y = rng.standard_normal((N_SAMPLES, 3))
    return X, y


def fastmlp_steps(estimator, X, y, dtype):
    """The starting weights, and the weights after STEPS full-batch steps from them."""
    X = X.astype(dtype)
    params = dict(batch_size=N_SAMPLES, shuffle=False, max_iter=1, n_iter_no_change=1000,
                  tol=0.0, random_state=0)
    estimator.set_params(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.fit(X, y)  # lays out the weights
        rng = np.random.RandomState(1)
        for array in estimator.coefs_ + estimator.intercepts_:
            array[...] = rng.uniform(-0.6, 0.6, array.shape)
        start = [a.copy() for a in estimator.coefs_ + estimator.intercepts_]
        estimator.set_params(warm_start=True, max_iter=STEPS)
        estimator.fit(X, y)
    assert estimator.n_iter_ == STEPS
    return start, [a.copy() for a in estimator.coefs_ + estimator.intercepts_]


def torch_hidden(name, z, est):
    if name == "leaky_relu":
        return F.leaky_relu(z, est.negative_slope)
    if name == "elu":
        return F.elu(z, est.elu_alpha)
    if name == "gelu":
        return F.gelu(z)
    if name == "silu":
        return F.silu(z)
    if name == "mish":
        return F.mish(z)
    if name == "softplus":
        return F.softplus(z, est.softplus_beta, est.softplus_threshold)
    if name == "maxout":
        k = est.maxout_pieces
        return z.view(z.shape[0], z.shape[1] // k, k).max(dim=2).values
    return {"relu": torch.relu, "tanh": torch.tanh, "logistic": torch.sigmoid,
            "identity": lambda v: v}[name](z)


def torch_loss(est, out, X, y):
    """The estimator's loss of the network output `out` (pre-activation) on y."""
    if isinstance(est, MLPClassifier):
        classes = np.unique(y)
        if len(classes) > 2:
            Y = torch.as_tensor(np.eye(len(classes))[np.searchsorted(classes, y)], dtype=out.dtype)
            p = torch.softmax(out, dim=1)
            if est.loss == "squared_error":
                return 0.5 * ((p - Y) ** 2).sum(dim=1).mean()
            return -(Y * torch.log(p)).sum(dim=1).mean()
        Y = torch.as_tensor((y == classes[1]).reshape(-1, 1), dtype=out.dtype)
        p = torch.sigmoid(out)
        if est.loss == "squared_error":
            return 0.5 * ((p - Y) ** 2).sum(dim=1).mean()
        return F.binary_cross_entropy(p, Y)
    Y = torch.as_tensor(y.reshape(out.shape[0], -1), dtype=out.dtype)
    if est.loss == "absolute_error":
        return F.l1_loss(out, Y)
    if est.loss == "huber":
        return F.huber_loss(out, Y, delta=est.huber_delta)
    assert Y.shape[1] == 1  # scikit-learn's squared error: its gradient is (p - y) per output
    return 0.5 * F.mse_loss(out, Y)


def torch_optimizer(est, params):
    lr = est.learning_rate_init
    d = {"adagrad": dict(eps=1e-10, weight_decay=0.0), "rmsprop": dict(eps=1e-8, alpha=0.99),
         "adadelta": dict(eps=1e-6, rho=0.9), "adamw": dict(weight_decay=1e-2)}.get(est.solver, {})
    eps = est.eps if est.eps is not None else d.get("eps", 1e-8)
    wd = est.weight_decay if est.weight_decay is not None else d.get("weight_decay", 0.0)
    betas = (est.beta_1, est.beta_2)
    if est.solver == "sgd":
        assert est.momentum == 0
        return torch.optim.SGD(params, lr=lr)
    if est.solver == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, lr_decay=est.lr_decay, weight_decay=wd,
                                   initial_accumulator_value=est.initial_accumulator_value or 0.0,
                                   eps=eps)
    if est.solver == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=est.rho if est.rho is not None else 0.99,
                                   eps=eps, weight_decay=wd, momentum=est.rmsprop_momentum,
                                   centered=est.centered)
    if est.solver == "adadelta":
        return torch.optim.Adadelta(params, lr=lr, rho=est.rho if est.rho is not None else 0.9,
                                    eps=eps, weight_decay=wd)
    if est.solver == "adamax":
        return torch.optim.Adamax(params, lr=lr, betas=betas, eps=eps, weight_decay=wd)
    if est.solver == "nadam":
        return torch.optim.NAdam(params, lr=lr, betas=betas, eps=eps, weight_decay=wd,
                                 momentum_decay=est.momentum_decay,
                                 decoupled_weight_decay=est.decoupled_weight_decay)
    if est.solver == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=wd,
                                 amsgrad=est.amsgrad)
    raise ValueError(est.solver)


def torch_steps(est, start, X, y, dtype):
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    default = torch.get_default_dtype()
    torch.set_default_dtype(tdtype)
    try:
        return _torch_steps(est, start, X, y, tdtype)
    finally:
        torch.set_default_dtype(default)


def _torch_steps(est, start, X, y, tdtype):
    n_layers = len(start) // 2
    weights = [torch.tensor(c.T.copy(), dtype=tdtype, requires_grad=True)
               for c in start[:n_layers]]
    biases = [torch.tensor(b.copy(), dtype=tdtype, requires_grad=True) for b in start[n_layers:]]
    optimizer = torch_optimizer(est, weights + biases)
    Xt = torch.as_tensor(X, dtype=tdtype)
    for _ in range(STEPS):
        optimizer.zero_grad()
        a = Xt
        for i in range(n_layers):
            z = a @ weights[i].T + biases[i]
            a = torch_hidden(est.activation, z, est) if i < n_layers - 1 else z
        loss = torch_loss(est, a, X, y)
        if est.alpha:  # scikit-learn's L2 term: alpha / (2 n) sum of squared coefs
            loss = loss + 0.5 * est.alpha * sum((w**2).sum() for w in weights) / X.shape[0]
        loss.backward()
        if est.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(weights + biases, est.max_grad_norm)
        optimizer.step()
        if est.weight_clip is not None:
            with torch.no_grad():
                for p in weights + biases:
                    p.clamp_(-est.weight_clip, est.weight_clip)
    return ([w.detach().numpy().T for w in weights] + [b.detach().numpy() for b in biases])


def assert_same_steps(estimator, task, dtype=np.float64):
    rtol = 1e-10 if dtype == np.float64 else 1e-4
    rng = np.random.RandomState(0)
    X, y = make_data(task, rng)
    start, ours = fastmlp_steps(estimator, X, y, dtype)
    theirs = torch_steps(estimator, start, X.astype(dtype), y, dtype)
    moved = max(np.abs(o - s).max() for o, s in zip(ours, start))
    assert moved > 1e-3, "the steps must move the weights for the comparison to mean anything"
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o, t, rtol=rtol, atol=rtol * 1e-2)


ACTIVATIONS = ["leaky_relu", "elu", "gelu", "silu", "mish", "softplus", "maxout"]
SOLVERS = ["adagrad", "rmsprop", "adadelta", "adamax", "nadam", "adamw"]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_steps_equal_torch(activation, dtype):
    est = MLPClassifier(HIDDEN, activation=activation, solver="sgd", momentum=0.0,
                        learning_rate_init=0.5, alpha=0.0)
    assert_same_steps(est, "multiclass", dtype)


@pytest.mark.parametrize("params", [
    dict(activation="leaky_relu", negative_slope=0.2),
    dict(activation="leaky_relu", negative_slope=-0.3),
    dict(activation="elu", elu_alpha=0.5),
    dict(activation="elu", elu_alpha=-0.7),
    dict(activation="softplus", softplus_beta=2.0, softplus_threshold=0.5),
    dict(activation="maxout", maxout_pieces=3),
])
def test_activation_parameters_equal_torch(params):
    est = MLPClassifier(HIDDEN, solver="sgd", momentum=0.0, learning_rate_init=0.5, alpha=0.0,
                        **params)
    assert_same_steps(est, "multiclass")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("solver", SOLVERS)
def test_solver_steps_equal_torch(solver, dtype):
    lr = 1.0 if solver == "adadelta" else 0.01
    est = MLPClassifier(HIDDEN, activation="tanh", solver=solver, learning_rate_init=lr,
                        alpha=0.0)
    assert_same_steps(est, "multiclass", dtype)


@pytest.mark.parametrize("solver, params", [
    ("adagrad", dict(lr_decay=0.1, initial_accumulator_value=0.2, weight_decay=0.05, eps=1e-6)),
    ("rmsprop", dict(rho=0.9, rmsprop_momentum=0.8, weight_decay=0.01)),
    ("rmsprop", dict(centered=True, eps=1e-6)),
    ("rmsprop", dict(centered=True, rmsprop_momentum=0.5)),
    ("adadelta", dict(rho=0.5, weight_decay=0.1, eps=1e-4)),
    ("adamax", dict(beta_1=0.8, beta_2=0.99, weight_decay=0.02)),
    ("nadam", dict(momentum_decay=0.01, weight_decay=0.03)),
    ("nadam", dict(decoupled_weight_decay=True, weight_decay=0.1)),
    ("adamw", dict(weight_decay=0.5, amsgrad=True, beta_2=0.9)),
])
def test_solver_hyper_parameters_equal_torch(solver, params):
    lr = 1.0 if solver == "adadelta" else 0.02
    est = MLPClassifier(HIDDEN, activation="tanh", solver=solver, learning_rate_init=lr,
                        alpha=0.0, **params)
    assert_same_steps(est, "multiclass")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("task, loss", [
    ("regression", "absolute_error"), ("multioutput", "absolute_error"),
    ("regression", "huber"), ("multioutput", "huber"),
    ("multiclass", "squared_error"), ("binary", "squared_error"),
])
def test_loss_steps_equal_torch(task, loss, dtype):
    common = dict(hidden_layer_sizes=HIDDEN, activation="tanh", solver="sgd", momentum=0.0,
                  alpha=0.0, loss=loss)
    if task in ("multiclass", "binary"):
        est = MLPClassifier(learning_rate_init=1.0, **common)
    else:
        est = MLPRegressor(learning_rate_init=0.2, **common)
    assert_same_steps(est, task, dtype)


def test_huber_delta_equals_torch():
    est = MLPRegressor(hidden_layer_sizes=HIDDEN, activation="tanh", solver="sgd", momentum=0.0, alpha=0.0,
                       learning_rate_init=0.2, loss="huber", huber_delta=0.3)
    assert_same_steps(est, "multioutput")


@pytest.mark.parametrize("params", [
    dict(max_grad_norm=0.05),
    dict(weight_clip=0.3),
    dict(max_grad_norm=0.1, weight_clip=0.25, alpha=0.1),
])
def test_clipping_equals_torch(params):
    est = MLPClassifier(HIDDEN, activation="relu", solver="adamw", learning_rate_init=0.05,
                        **{"alpha": 0.0, **params})
    assert_same_steps(est, "multiclass")


def test_l2_term_and_a_new_solver_equal_torch():
    est = MLPClassifier(HIDDEN, activation="gelu", solver="nadam", learning_rate_init=0.05,
                        alpha=0.3)
    assert_same_steps(est, "binary")
