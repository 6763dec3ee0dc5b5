"""solver='ftrl': Keras 3's keras.optimizers.Ftrl. The C step against Keras's update_step written
out in numpy (both dtypes, several steps, every hyper-parameter), against Keras itself where it
is installed, and the estimator's parameters, defaults and sparse input."""
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.utils._param_validation import InvalidParameterError

from fastmlp import MLPClassifier, MLPRegressor
from fastmlp._engine import _testing as K
from fastmlp._stochastic_optimizers import FtrlOptimizer

from _helpers import assert_bitwise_equal_on_one_and_two_threads, digits

N = 1001  # not a multiple of any vector width
STEPS = 6
CASES = [
    {},
    {"l1_regularization_strength": 0.01},
    {"l2_regularization_strength": 0.3},
    {"l2_shrinkage_regularization_strength": 0.2},
    {"beta": 0.5},
    {"learning_rate_power": -0.3, "initial_accumulator_value": 0.5},
    {"learning_rate_power": 0.0},
    {"l1_regularization_strength": 0.05, "l2_regularization_strength": 0.1,
     "l2_shrinkage_regularization_strength": 0.05, "beta": 0.1, "initial_accumulator_value": 0.0},
]


def keras_step(w, g, accum, linear, lr, lr_power=-0.5, l1=0.0, l2=0.0, shrinkage=0.0,
               beta=0.0):
    """keras/src/optimizers/ftrl.py's update_step in numpy: Python-float hyper-parameters meet
    the arrays' dtype as Keras's ops meet them."""
    dtype = w.dtype.type
    lr = dtype(lr)
    l2_reg = dtype(l2) + dtype(beta) / (dtype(2.0) * lr)
    grad_to_use = g + dtype(2 * shrinkage) * w
    new_accum = accum + g * g
    power = dtype(-lr_power)
    linear = linear + (grad_to_use - ((new_accum ** power - accum ** power) / lr) * w)
    quadratic = new_accum ** power / lr + dtype(2) * l2_reg
    w = (np.clip(linear, -dtype(l1), dtype(l1)) - linear) / quadratic
    return w, new_accum, linear


def run_steps(params, dtype, lr=0.1):
    rng = np.random.RandomState(0)
    param = rng.standard_normal(N).astype(dtype)
    grads = [rng.standard_normal(N).astype(dtype) for _ in range(STEPS)]
    opt = FtrlOptimizer(N, dtype, lr, **params)
    ours = param.copy()
    theirs = param.copy()
    accum = opt.accumulators.copy()
    linear = opt.linears.copy()
    keyword = {"lr_power": "learning_rate_power", "l1": "l1_regularization_strength",
               "l2": "l2_regularization_strength",
               "shrinkage": "l2_shrinkage_regularization_strength", "beta": "beta"}
    reference = {short: params[long] for short, long in keyword.items() if long in params}
    for g in grads:
        spec = opt.spec()
        K.kernel_optim_step(spec, ours, g, *opt.state)
        opt.took_steps(spec)
        theirs, accum, linear = keras_step(theirs, g, accum, linear, lr, **reference)
    return opt, ours, theirs, accum, linear


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("params", CASES)
def test_steps_equal_kerass_update_written_out(params, dtype):
    opt, ours, theirs, accum, linear = run_steps(params, dtype)
    assert opt.t == STEPS
    rtol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(opt.accumulators, accum, rtol=rtol)
    np.testing.assert_allclose(opt.linears, linear, rtol=rtol, atol=rtol)


def test_l1_makes_weights_exactly_zero():
    # FTRL-Proximal's point: |z| <= l1 gives w = 0 exactly, which plain SGD never does.
    _, sparse, _, _, _ = run_steps({"l1_regularization_strength": 0.5}, np.float64)
    _, plain, _, _, _ = run_steps({}, np.float64)
    assert np.count_nonzero(sparse == 0.0) > N // 20
    assert np.count_nonzero(plain == 0.0) == 0


@pytest.mark.parametrize("params", CASES[:5])
def test_steps_equal_keras(params):
    keras = pytest.importorskip("keras")
    rng = np.random.RandomState(0)
    param = rng.standard_normal(N)
    grads = [rng.standard_normal(N) for _ in range(STEPS)]
    opt = FtrlOptimizer(N, np.float64, 0.1, **params)
    ours = param.copy()
    for g in grads:
        spec = opt.spec()
        K.kernel_optim_step(spec, ours, g, *opt.state)
        opt.took_steps(spec)
    variable = keras.Variable(param, dtype="float64")
    theirs = keras.optimizers.Ftrl(learning_rate=0.1, **params)
    for g in grads:
        theirs.apply_gradients([(keras.ops.convert_to_tensor(g, dtype="float64"), variable)])
    np.testing.assert_allclose(ours, keras.ops.convert_to_numpy(variable), rtol=1e-10,
                               atol=1e-12)


def full_batch_steps(steps, **params):
    """`steps` full-batch FTRL steps on 60 digits (no shuffling, no L2 term, no early stop)."""
    X, y = digits(60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MLPClassifier(hidden_layer_sizes=(8,), solver="ftrl", batch_size=60,
                             shuffle=False, alpha=0.0, max_iter=steps, tol=0.0,
                             learning_rate_init=0.5, random_state=0, **params).fit(X, y)


def test_full_batch_steps_take_the_gradient_the_engine_computes():
    # Step k + 1 from the weights of step k, with the gradient the L-BFGS path computes there,
    # is the written-out Keras update: the estimator wires the solver exactly as the kernel.
    from fastmlp import _engine as E
    X, y = digits(60)
    first = full_batch_steps(1, l1_regularization_strength=0.001)
    second = full_batch_steps(2, l1_regularization_strength=0.001)
    network = first._network()
    trainer = E.Trainer(network, 60, X.shape[1], np.float64)
    Y = first._label_binarizer.transform(y).astype(np.float64)
    grad = np.empty_like(first._theta)
    trainer.loss_gradient(first._theta.copy(), grad, X, Y, np.empty(0), 1)
    opt = first._optimizer
    w, _, _ = keras_step(first._theta.copy(), grad, opt.accumulators.copy(), opt.linears.copy(),
                         0.5, l1=0.001)
    np.testing.assert_allclose(second._theta, w, rtol=1e-12, atol=1e-14)


def test_defaults_are_kerass():
    clf = MLPClassifier()
    assert (clf.learning_rate_power, clf.l1_regularization_strength,
            clf.l2_regularization_strength, clf.l2_shrinkage_regularization_strength,
            clf.ftrl_beta) == (-0.5, 0.0, 0.0, 0.0, 0.0)
    accumulators = full_batch_steps(1)._optimizer.accumulators
    assert accumulators.min() == 0.1 < accumulators.max()  # started at Keras's 0.1
    adagrad = MLPClassifier(solver="adagrad", max_iter=1).fit(*digits(60))
    assert adagrad._optimizer.state[0].min() >= 0.0  # adagrad keeps torch's 0.0


@pytest.mark.parametrize("name, value", [
    ("learning_rate_power", 0.5), ("l1_regularization_strength", -1.0),
    ("l2_regularization_strength", -1.0), ("l2_shrinkage_regularization_strength", -0.1),
    ("ftrl_beta", -1.0), ("initial_accumulator_value", -0.1),
])
def test_bad_hyper_parameters_are_rejected(name, value):
    with pytest.raises(InvalidParameterError, match=name):
        MLPClassifier(solver="ftrl", **{name: value}).fit(*digits(30))


def test_wide_sparse_input_trains_and_equals_dense():
    # The lectures' solver for wide sparse inputs: CSR X is read in place, and the fit equals
    # the dense one.
    rng = np.random.RandomState(0)
    X = sp.random(300, 2000, density=0.01, format="csr", random_state=rng)
    y = (X[:, :1000].sum(axis=1).A.ravel() > X[:, 1000:].sum(axis=1).A.ravel()).astype(int)
    params = dict(solver="ftrl", hidden_layer_sizes=(16,), learning_rate_init=0.5, max_iter=20,
                  random_state=0, l1_regularization_strength=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sparse = MLPClassifier(**params).fit(X, y)
        dense = MLPClassifier(**params).fit(X.toarray(), y)
    np.testing.assert_allclose(sparse._theta, dense._theta, rtol=1e-10, atol=1e-12)
    assert sparse.score(X, y) > 0.75  # classes are balanced: chance is 0.5


def test_regressor_takes_ftrl():
    X, _ = digits(80)
    y = X[:, :3].sum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = MLPRegressor(solver="ftrl", learning_rate_init=0.1, max_iter=200,
                           random_state=0).fit(X, y)
    assert reg.score(X, y) > 0.9


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bitwise_equal_on_one_and_two_threads(dtype):
    assert_bitwise_equal_on_one_and_two_threads(dtype, solver="ftrl", learning_rate_init=0.5,
                                                l1_regularization_strength=1e-4, max_iter=3,
                                                random_state=0)
