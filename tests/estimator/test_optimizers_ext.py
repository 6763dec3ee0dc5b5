"""The torch.optim solvers (adagrad, rmsprop, adadelta, adamax, nadam, adamw): their C steps
against the formulas written out in numpy (both dtypes, several steps, state carried), against
torch.optim itself when torch is installed, and their estimator parameters."""
import warnings

import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

from fastmlp import MLPClassifier, MLPRegressor
from fastmlp import _engine as E
from fastmlp._engine import _testing as K
from fastmlp._stochastic_optimizers import TORCH_DEFAULTS, TorchOptimizer

from _helpers import assert_bitwise_equal_on_one_and_two_threads

DTYPES = [np.float32, np.float64]
SOLVERS = ["adagrad", "rmsprop", "adadelta", "adamax", "nadam", "adamw"]
N = 1001  # not a multiple of any vector width
STEPS = 6


class Reference:
    """torch/optim/<solver>.py's single-tensor step, written out in numpy. Hyper-parameters are
    Python floats, so numpy rounds them to the arrays' dtype as torch does; the per-step scalars
    (bias corrections, NAdam's mu) are Python floats, computed as torch computes them."""

    def __init__(self, opt, param):
        self.o, self.t, self.mu_product = opt, 0, 1.0
        z = np.zeros_like(param)
        self.s = [z.copy(), z.copy(), z.copy()]
        if opt.name == "adagrad":
            self.s[0][...] = opt._state[0][0] if opt._state[0].size else 0.0

    def step(self, p, g):
        o, s = self.o, self.s
        self.t += 1
        t, lr, eps, wd = self.t, o.learning_rate_init, o.eps, o.weight_decay
        b1, b2 = o.beta_1, o.beta_2
        if o.name == "adagrad":
            if wd:
                g = g + wd * p
            clr = lr / (1 + (t - 1) * o.lr_decay)
            s[0] += g * g
            return p + -clr * (g / (np.sqrt(s[0]) + eps))
        if o.name == "rmsprop":
            if wd:
                g = g + wd * p
            s[0][...] = s[0] * o.rho + (1 - o.rho) * (g * g)
            if o.centered:
                s[2][...] = s[2] + (1 - o.rho) * (g - s[2])
                avg = np.sqrt(s[0] - s[2] * s[2]) + eps
            else:
                avg = np.sqrt(s[0]) + eps
            if o.momentum > 0:
                s[1][...] = s[1] * o.momentum + g / avg
                return p + -lr * s[1]
            return p + -lr * (g / avg)
        if o.name == "adadelta":
            if wd:
                g = g + wd * p
            s[0][...] = s[0] * o.rho + (1 - o.rho) * (g * g)
            delta = np.sqrt(s[1] + eps) / np.sqrt(s[0] + eps) * g
            s[1][...] = s[1] * o.rho + (1 - o.rho) * (delta * delta)
            return p + -lr * delta
        if o.name == "adamax":
            if wd:
                g = g + wd * p
            s[0][...] = s[0] + (1 - b1) * (g - s[0])
            s[1][...] = np.maximum(s[1] * b2, np.abs(g) + eps)
            clr = lr / (1 - b1**t)
            return p + -clr * (s[0] / s[1])
        if o.name == "nadam":
            if wd and o.decoupled_weight_decay:
                p = p * (1 - lr * wd)
            elif wd:
                g = g + wd * p
            mu = b1 * (1.0 - 0.5 * (0.96 ** (t * o.momentum_decay)))
            mu_next = b1 * (1.0 - 0.5 * (0.96 ** ((t + 1) * o.momentum_decay)))
            self.mu_product *= mu
            s[0][...] = s[0] + (1 - b1) * (g - s[0])
            s[1][...] = s[1] * b2 + (1 - b2) * (g * g)
            denom = np.sqrt(s[1] / (1 - b2**t)) + eps
            p = p + (-lr * (1.0 - mu) / (1.0 - self.mu_product)) * (g / denom)
            return p + ((-lr * mu_next) / (1.0 - self.mu_product * mu_next)) * (s[0] / denom)
        if o.name == "adamw":
            if wd:
                p = p * (1 - lr * wd)
            s[0][...] = s[0] + (1 - b1) * (g - s[0])
            s[1][...] = s[1] * b2 + (1 - b2) * (g * g)
            v = s[1]
            if o.amsgrad:
                s[2][...] = np.maximum(s[2], s[1])
                v = s[2]
            step_size = lr / (1 - b1**t)
            return p + -step_size * (s[0] / (np.sqrt(v) / (1 - b2**t) ** 0.5 + eps))
        raise ValueError(o.name)


CASES = [(solver, {}) for solver in SOLVERS] + [
    ("adagrad", dict(lr_decay=0.1, initial_accumulator_value=0.3, weight_decay=0.05)),
    ("rmsprop", dict(momentum=0.9, weight_decay=0.01, rho=0.9)),
    ("rmsprop", dict(centered=True)),
    ("rmsprop", dict(centered=True, momentum=0.5)),
    ("adadelta", dict(rho=0.5, weight_decay=0.1, eps=1e-3)),
    ("adamax", dict(beta_1=0.8, beta_2=0.99, weight_decay=0.02)),
    ("nadam", dict(momentum_decay=0.01, weight_decay=0.03)),
    ("nadam", dict(decoupled_weight_decay=True, weight_decay=0.1)),
    ("adamw", dict(amsgrad=True, weight_decay=0.5, beta_2=0.9)),
    ("adamw", dict(weight_decay=0.0)),
]


def optim_step(opt, param, grad):
    """One step of the engine's loop for opt's solver, through the record the engine takes."""
    spec = opt.spec()
    K.kernel_optim_step(spec, param, grad, *opt.state)
    opt.took_steps(spec)


def run_steps(solver, params, dtype, lr=0.05):
    rng = np.random.RandomState(0)
    param = rng.standard_normal(N).astype(dtype)
    grads = [rng.standard_normal(N).astype(dtype) for _ in range(STEPS)]
    opt = TorchOptimizer(solver, N, dtype, lr, **params)
    ref = Reference(opt, param)
    ours, theirs = param.copy(), param.copy()
    for g in grads:
        optim_step(opt, ours, g)
        theirs = ref.step(theirs, g).astype(dtype)
    return opt, ref, ours, theirs


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("solver, params", CASES)
def test_steps_equal_the_written_out_formula(solver, params, dtype):
    opt, ref, ours, theirs = run_steps(solver, params, dtype)
    assert opt.t == STEPS
    rtol = 2e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol)
    for state, expected in zip(opt.state, ref.s):
        if state.size:
            np.testing.assert_allclose(state, expected, rtol=rtol * 10, atol=rtol)
    if solver == "nadam":
        assert opt.mu_product == pytest.approx(ref.mu_product, rel=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("solver, params", CASES)
def test_steps_equal_torch_optim(solver, params, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.RandomState(0)
    param = rng.standard_normal(N).astype(dtype)
    grads = [rng.standard_normal(N).astype(dtype) for _ in range(STEPS)]
    opt = TorchOptimizer(solver, N, dtype, 0.05, **params)
    ours = param.copy()
    for g in grads:
        optim_step(opt, ours, g)

    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    default = torch.get_default_dtype()
    torch.set_default_dtype(tdtype)  # torch keeps its scalar state (mu_product) in this dtype
    try:
        p = torch.tensor(param, requires_grad=True)
        names = {"adagrad": ("Adagrad", dict(lr_decay=opt.lr_decay,
                                             initial_accumulator_value=params.get(
                                                 "initial_accumulator_value", 0.0))),
                 "rmsprop": ("RMSprop", dict(alpha=opt.rho, momentum=opt.momentum,
                                             centered=opt.centered)),
                 "adadelta": ("Adadelta", dict(rho=opt.rho)),
                 "adamax": ("Adamax", dict(betas=(opt.beta_1, opt.beta_2))),
                 "nadam": ("NAdam", dict(betas=(opt.beta_1, opt.beta_2),
                                         momentum_decay=opt.momentum_decay,
                                         decoupled_weight_decay=opt.decoupled_weight_decay)),
                 "adamw": ("AdamW", dict(betas=(opt.beta_1, opt.beta_2), amsgrad=opt.amsgrad))}
        cls, extra = names[solver]
        topt = getattr(torch.optim, cls)([p], lr=0.05, eps=opt.eps,
                                          weight_decay=opt.weight_decay, **extra)
        for g in grads:
            p.grad = torch.tensor(g)
            topt.step()
    finally:
        torch.set_default_dtype(default)
    rtol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(ours, p.detach().numpy(), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("solver", SOLVERS)
def test_none_takes_torchs_default(solver):
    opt = TorchOptimizer(solver, 3, np.float64, 1e-3)
    assert opt.eps == TORCH_DEFAULTS[solver]["eps"]
    assert opt.weight_decay == TORCH_DEFAULTS[solver]["weight_decay"]
    expected = {"adagrad": (1e-10, 0.0), "rmsprop": (1e-8, 0.0), "adadelta": (1e-6, 0.0),
                "adamax": (1e-8, 0.0), "nadam": (1e-8, 0.0), "adamw": (1e-8, 1e-2)}[solver]
    assert (opt.eps, opt.weight_decay) == expected
    if solver in ("rmsprop", "adadelta"):
        assert opt.rho == {"rmsprop": 0.99, "adadelta": 0.9}[solver]
    explicit = TorchOptimizer(solver, 3, np.float64, 1e-3, eps=0.5, weight_decay=0.25, rho=0.7)
    assert (explicit.eps, explicit.weight_decay) == (0.5, 0.25)


def test_state_vectors_are_allocated_only_when_used():
    sizes = {s: [v.size for v in TorchOptimizer(s, 7, np.float32, 1e-3).state]
             for s in SOLVERS}
    assert sizes == {"adagrad": [7, 0, 0], "rmsprop": [7, 0, 0], "adadelta": [7, 7, 0],
                     "adamax": [7, 7, 0], "nadam": [7, 7, 0], "adamw": [7, 7, 0]}
    assert [v.size for v in TorchOptimizer("rmsprop", 7, np.float32, 1e-3, momentum=0.5,
                                           centered=True).state] == [7, 7, 7]
    assert [v.size for v in TorchOptimizer("adamw", 7, np.float32, 1e-3,
                                           amsgrad=True).state] == [7, 7, 7]
    opt = TorchOptimizer("adagrad", 7, np.float32, 1e-3, initial_accumulator_value=0.5)
    np.testing.assert_array_equal(opt.state[0], np.full(7, 0.5, np.float32))
    assert all(v.dtype == np.float32 for v in opt.state)


@pytest.mark.parametrize("solver", SOLVERS)
def test_solvers_learn_digits(solver, all_digits):
    X, y = all_digits
    lr = {"adagrad": 0.05, "adadelta": 1.0, "rmsprop": 0.001, "adamax": 0.01}.get(solver, 0.002)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier((32,), solver=solver, learning_rate_init=lr, max_iter=40,
                            random_state=0).fit(X[:1300], y[:1300])
    assert clf.score(X[1300:], y[1300:]) > 0.9
    assert clf.t_ == clf.n_iter_ * 1300
    assert clf._optimizer.t == clf.n_iter_ * 7  # 7 mini-batches of 200 per epoch


def test_partial_fit_carries_the_optimizer_state(all_digits):
    X, y = all_digits
    X, y = X[:400], y[:400]
    full = MLPClassifier((16,), solver="nadam", batch_size=400, shuffle=False, max_iter=3,
                         n_iter_no_change=100, tol=0.0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full.fit(X, y)
    parts = MLPClassifier((16,), solver="nadam", batch_size=400, shuffle=False,
                          random_state=0)
    for _ in range(3):
        parts.partial_fit(X, y, classes=np.arange(10))
    assert parts._optimizer.t == 3
    assert parts._optimizer.mu_product == full._optimizer.mu_product
    np.testing.assert_array_equal(parts._theta, full._theta)


@pytest.mark.parametrize("solver", ["nadam", "rmsprop"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_and_two_threads_give_bitwise_equal_weights(dtype, solver):
    assert_bitwise_equal_on_one_and_two_threads(
        dtype, hidden_layer_sizes=(64, 32), solver=solver, random_state=0, max_iter=2,
        batch_size=256, max_grad_norm=0.5)


@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
@pytest.mark.parametrize("params", [
    dict(solver="adam_w"), dict(eps=-1.0), dict(rho=1.5), dict(rho=-0.1),
    dict(weight_decay=-0.01), dict(lr_decay=-1.0), dict(initial_accumulator_value=-1.0),
    dict(rmsprop_momentum=-0.5), dict(centered="yes"), dict(momentum_decay=-1.0),
    dict(decoupled_weight_decay=1), dict(amsgrad=None), dict(beta_1=1.0),
])
def test_invalid_solver_parameters(Estimator, params):
    X, y = np.random.RandomState(0).rand(20, 3), np.arange(20) % 2
    with pytest.raises(InvalidParameterError):
        Estimator(**params).fit(X, y)
