"""MLPClassifier and MLPRegressor: scikit-learn's estimators over fastmlp's compiled engine.

Design
------
The estimators follow scikit-learn's own (sklearn/neural_network/_multilayer_perceptron.py,
BSD-3-Clause) line for line wherever behaviour is visible: the constructor signatures, parameter
validation, input validation, the order in which `random_state` is drawn from (Glorot-uniform
weights layer by layer, the early-stopping split, one shuffle per epoch), the schedule and
stopping rules, attributes, warnings and error messages. A base class does the work; the two
estimators override input validation, prediction, scoring and tags.

What differs is where the numbers are computed. All weights live in one flat vector
(`_theta`: every W, then every b); `coefs_` and `intercepts_` are numpy views into it. Each epoch
is one call into the engine (fastmlp/_engine/) that runs every mini-batch with the GIL
released; Python only does what is per epoch. L-BFGS runs scipy's optimizer directly on the flat
vector, with the engine computing the full-batch loss and gradient.

Parameter validation uses scikit-learn's constraint objects and `_fit_context` (from modules
scikit-learn marks private): that is the only way to raise exactly the InvalidParameterError
scikit-learn raises, which is a promise of this package. (A fitted model's partial_fit, where
`_fit_context` validates nothing, skips its costly configuration context: see
_partial_fit_context.) Everything else uses public utilities; the few places that skip them
where they cost more than training, and the sample and class weights, are in
fastmlp/_validation.py, each with the reason it is safe.

Beyond scikit-learn (README.md, "Beyond scikit-learn"): more activations (torch.nn.functional's
leaky_relu, elu, gelu, silu, mish, softplus, and maxout), the torch.optim solvers (adagrad,
rmsprop, adadelta, adamax, nadam, adamw), more losses, dropout, gradient-norm and weight
clipping, class_weight. Their parameters come after scikit-learn's, keyword-only; at their
defaults nothing of scikit-learn's behaviour changes, bit for bit.
"""

import functools
import warnings
import weakref
from abc import ABC, abstractmethod
from numbers import Integral, Real

import numpy as np
import scipy.optimize
import scipy.sparse as sp
from sklearn import get_config, set_config
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    RegressorMixin,
    _fit_context,
    is_classifier,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted

from fastmlp import _engine, _serving
from fastmlp._callbacks import NO_CALLBACKS, CallbackSupportMixin, FitTask
from fastmlp._compat import MultilabelTagsMixin
from fastmlp._stochastic_optimizers import (
    AdamOptimizer,
    FtrlOptimizer,
    SGDOptimizer,
    TorchOptimizer,
)
from fastmlp._runtime import (
    batch_schedule, batch_thread_cap, effective_n_threads, engine_holds_blas, schedule_cpus,
    single_threaded_blas, threads_for_batch,
)
from fastmlp._validation import (
    _binarize,
    _binarize_known_integers,
    _check_sample_weight,
    _check_unproven_input,
    _class_weighted_sample_weight,
    _engine_input,
    _finite_float_matrix,
    _pass_as_they_are,
    _prediction_input,
    _validate_training_data,
)
from fastmlp._version import __version__
from fastmlp.exceptions import InconsistentVersionWarning

# The names come from the engine's vocabulary (fastmlp/_engine/vocabulary.pyx), the one place
# where a name meets the engine's code for it.
_STOCHASTIC_SOLVERS = list(_engine.SOLVERS)  # sgd, adam and the torch.optim ones
_ACTIVATIONS = set(_engine.HIDDEN_ACTIVATIONS)

# scikit-learn's callback bookkeeping: set up by fit, torn down by _fit_context however fit ends.
_CALLBACK_STATE = ("_callback_fit_ctx", "_skl_callbacks_to_teardown")

# The RandomStates each estimator made for an integer seed, to be seeded again by its later
# calls (see _seeded_random_state); outside the estimator, so that nothing of them is pickled,
# copied or compared.
_SEEDED_RANDOM_STATES = weakref.WeakKeyDictionary()


def _read_only_empty(dtype):
    empty = np.empty(0, dtype=dtype)
    empty.flags.writeable = False
    return empty


# The engine's "no order given" and "no sample weights", shared by every fit.
_NO_ROWS = _read_only_empty(np.intp)
_NO_WEIGHTS = {dtype: _read_only_empty(dtype) for dtype in (np.float32, np.float64)}

# What a partial_fit's compiled SteadyCall checks are the very objects it was made from, beside
# every parameter: the fitted attributes its call reads (those absent then must stay absent),
# and the lists whose elements are theta's views.
_STEADY_CALL_ATTRIBUTES = (
    "_theta", "_coefs", "intercepts_", "_optimizer", "_trainer_cache", "_network_cache",
    "_random_state", "_layer_units", "out_activation_", "n_outputs_", "n_features_in_",
    "feature_names_in_", "_batch_norm", "_maxout_pieces", "_batch_norm_running",
    "batch_norm_weights_", "batch_norm_biases_", "_label_binarizer", "classes_",
    "_skl_callbacks", "_parent_callback_ctx",
)
_STEADY_CALL_VIEWS = ("_coefs", "intercepts_", "batch_norm_weights_", "batch_norm_biases_")

# What a few-row prediction reads of the estimator (_forward_pass_fast and what it calls:
# _packed_parameters, _network, _prediction_input), which its compiled SteadyPrediction checks
# are the very objects it was made from; and the lists whose elements are theta's views.
# tests/estimator/test_steady_prediction.py holds these to what those functions read.
_PREDICTION_ATTRIBUTES = (
    "_theta", "_coefs", "intercepts_", "_network_cache", "_layer_units", "_maxout_pieces",
    "_batch_norm", "_batch_norm_running", "batch_norm_weights_", "batch_norm_biases_",
    "n_features_in_", "feature_names_in_", "n_outputs_", "out_activation_", "activation",
    "alpha", "loss", "negative_slope", "elu_alpha", "softplus_beta", "softplus_threshold",
    "dropout", "huber_delta", "batch_norm", "batch_norm_momentum", "batch_norm_eps",
)
_PREDICTION_VIEWS = ("_coefs", "intercepts_")


@functools.lru_cache(maxsize=None)
def _steady_call_names(estimator_type):
    """Every parameter's name and _STEADY_CALL_ATTRIBUTES, once per class: scikit-learn's
    _get_param_names reads the signature of __init__ at each call (~225 us)."""
    return (*estimator_type._get_param_names(), *_STEADY_CALL_ATTRIBUTES)

# L-BFGS evaluates the full-batch gradient in chunks of this many rows (accumulated in order), so
# that its scratch memory stays O(chunk x width) however large the data.
_LBFGS_CHUNK_ROWS = 1024


def _check_optimize_result(result, max_iter):
    """L-BFGS's iteration count, and scikit-learn's ConvergenceWarning when it did not converge."""
    n_iter = min(result.nit, max_iter)
    if result.status != 0:
        msg = (
            f"lbfgs failed to converge after {n_iter} iteration(s) "
            f"(status={result.status}):\n{result.message}\n"
        )
        if n_iter == max_iter:
            msg += (
                "\nIncrease the number of iterations to improve the convergence "
                f"(max_iter={max_iter})."
            )
        msg += (
            "\nYou might also want to scale the data as shown in:\n"
            "    https://scikit-learn.org/stable/modules/preprocessing.html"
        )
        warnings.warn(msg, ConvergenceWarning, stacklevel=3)
    return n_iter


def _partial_fit_context(partial_fit):
    """scikit-learn's `_fit_context(prefer_skip_nested_validation=True)` around a partial_fit,
    with the call on a fitted model that has no callbacks made cheap.

    Around a fitted model's partial_fit, `_fit_context` validates no parameter (scikit-learn
    validates them at the first call only); what it does is skip the parameter validation of
    the scikit-learn functions called inside, with `config_context`, and tear down the
    callbacks that the call set up. `config_context` copies the whole configuration and sets
    every key of it back (one of them, array_api_dispatch, with an import and a check), and
    the wrapper costs ~10 us of a ~70 us call of 32 rows. A model without callbacks (none of
    its own, none from a meta-estimator: see FitTask) sets none up, so that call skips nested
    validation by setting that one key of scikit-learn's configuration (thread-local, as
    config_context's) and setting it back: ~1 us. Every other call (the first, a model with
    callbacks) goes through `_fit_context` itself."""
    in_context = _fit_context(prefer_skip_nested_validation=True)(partial_fit)

    @functools.wraps(partial_fit)
    def wrapper(estimator, *args, **kwargs):
        _serving.begin_training(estimator)  # (it writes the weights: see _serving)
        try:
            if ("_theta" not in estimator.__dict__ or hasattr(estimator, "_skl_callbacks")
                    or hasattr(estimator, "_parent_callback_ctx")):
                return in_context(estimator, *args, **kwargs)
            if len(args) == 2 and not kwargs and estimator._steady_partial_fit(*args):
                return estimator  # (it calls no scikit-learn function: no configuration to set)
            if get_config()["skip_parameter_validation"]:
                return partial_fit(estimator, *args, **kwargs)
            set_config(skip_parameter_validation=True)
            try:
                return partial_fit(estimator, *args, **kwargs)
            finally:
                set_config(skip_parameter_validation=False)
        finally:
            _serving.end_training(estimator)

    return wrapper


def _check_layer_sizes(sizes):
    """Refuse a size that is no integer as scikit-learn's MLP does: it fails where numpy draws
    the initial weights (RandomState's size argument) or, under warm_start and partial_fit,
    allocates the gradients, with numpy's TypeError."""
    from operator import index  # (local: the module's import block is version-specific)

    for size in sizes:
        if isinstance(size, (bool, np.bool_)):
            raise TypeError("an integer is required")
        index(size)  # "'float' object cannot be interpreted as an integer", as numpy says


class _UnchangedOnError:
    """BaseMultilayerPerceptron._unchanged_on_error's context (a class: contextlib's generator
    context cost ~1 us of a small partial_fit, this ~0.3)."""

    __slots__ = ("estimator", "saved")

    def __init__(self, estimator):
        self.estimator = estimator
        self.saved = estimator.__dict__.copy()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is not None:
            attributes = self.estimator.__dict__
            callbacks = {k: v for k, v in attributes.items() if k in _CALLBACK_STATE}
            attributes.clear()
            attributes.update(self.saved)
            attributes.update(callbacks)
        return False


class _StochasticRun:
    """What every epoch of a stochastic fit reads, and its engine call."""

    __slots__ = ("trainer", "theta", "grad", "X", "Y", "weights", "sample_idx", "batch_size",
                 "n_threads", "n_samples", "n_steps")

    def __init__(self, trainer, theta, grad, X, Y, weights, sample_idx, batch_size, n_threads):
        self.trainer, self.theta, self.grad = trainer, theta, grad
        self.X, self.Y, self.weights, self.sample_idx = X, Y, weights, sample_idx
        self.batch_size, self.n_threads = batch_size, n_threads
        self.n_samples = X.shape[0]
        self.n_steps = -(-self.n_samples // batch_size)  # mini-batches per epoch

    def epoch(self, estimator, norm_sums):
        """One epoch of `estimator` (its optimizer, its shuffle): the sum over batches of batch
        loss x batch length; norm_sums receives the mean over the steps of each layer's
        gradient norm."""
        optimizer = estimator._optimizer
        if estimator.shuffle:
            # Only the indices are shuffled; the engine gathers each batch's rows.
            # scikit-learn's shuffle(sample_idx, random_state=...) is
            # sample_idx[p] for p = arange(n) shuffled in place by the same generator,
            # which is sample_idx shuffled in place: the same draws, without its
            # checks and copies (~0.2 ms of a 20,000-row epoch of ~8).
            estimator._random_state.shuffle(self.sample_idx)
        state_1, state_2, state_3 = optimizer.state
        spec = optimizer.spec()
        try:
            with single_threaded_blas():
                accumulated_loss = self.trainer.epoch(
                    self.theta, self.grad, state_1, state_2, self.X, self.Y, self.weights,
                    self.sample_idx, self.batch_size, spec, self.n_threads, state_3=state_3,
                    grad_norms=norm_sums,
                    running=getattr(estimator, "_batch_norm_running", None),
                )
        finally:  # the steps taken count, also when Ctrl-C stopped the epoch
            optimizer.took_steps(spec)
        if self.n_steps > 1:  # (x / 1 is x, bit for bit)
            norm_sums /= self.n_steps
        return accumulated_loss


class BaseMultilayerPerceptron(CallbackSupportMixin, BaseEstimator, ABC):
    """Base class for MLP classification and regression (not for direct use)."""

    # The views of W, kept under `_coefs`: handing them out tells one-row predictions that
    # they may be edited in place from then on (fastmlp/_serving.py). This class's own code
    # reads `_coefs`.
    coefs_ = _serving.WeightViews()

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(_ACTIVATIONS)],
        "solver": [StrOptions({"lbfgs", *_STOCHASTIC_SOLVERS})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        # Beyond scikit-learn (torch's bounds where torch checks them):
        "negative_slope": [Interval(Real, None, None, closed="neither")],
        "elu_alpha": [Interval(Real, None, None, closed="neither")],
        "softplus_beta": [Interval(Real, 0, None, closed="neither")],
        "softplus_threshold": [Interval(Real, None, None, closed="neither")],
        "maxout_pieces": [Interval(Integral, 1, None, closed="left")],
        "eps": [Interval(Real, 0, None, closed="left"), None],
        "rho": [Interval(Real, 0, 1, closed="both"), None],
        "weight_decay": [Interval(Real, 0, None, closed="left"), None],
        "lr_decay": [Interval(Real, 0, None, closed="left")],
        "initial_accumulator_value": [Interval(Real, 0, None, closed="left"), None],
        "rmsprop_momentum": [Interval(Real, 0, None, closed="left")],
        "centered": ["boolean"],
        "momentum_decay": [Interval(Real, 0, None, closed="left")],
        "decoupled_weight_decay": ["boolean"],
        "amsgrad": ["boolean"],
        "learning_rate_power": [Interval(Real, None, 0, closed="right")],
        "l1_regularization_strength": [Interval(Real, 0, None, closed="left")],
        "l2_regularization_strength": [Interval(Real, 0, None, closed="left")],
        "l2_shrinkage_regularization_strength": [Interval(Real, 0, None, closed="left")],
        "ftrl_beta": [Interval(Real, 0, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "max_grad_norm": [Interval(Real, 0, None, closed="neither"), None],
        "weight_clip": [Interval(Real, 0, None, closed="neither"), None],
        "batch_norm": ["boolean"],
        "batch_norm_momentum": [Interval(Real, 0, 1, closed="both")],
        "batch_norm_eps": [Interval(Real, 0, None, closed="neither")],
    }

    @abstractmethod
    def __init__(self, hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate,
                 learning_rate_init, power_t, max_iter, loss, shuffle, random_state, tol,
                 verbose, warm_start, momentum, nesterovs_momentum, early_stopping,
                 validation_fraction, beta_1, beta_2, epsilon, n_iter_no_change, max_fun, *,
                 negative_slope, elu_alpha, softplus_beta, softplus_threshold, maxout_pieces,
                 eps, rho, weight_decay, lr_decay, initial_accumulator_value, rmsprop_momentum,
                 centered, momentum_decay, decoupled_weight_decay, amsgrad,
                 learning_rate_power, l1_regularization_strength, l2_regularization_strength,
                 l2_shrinkage_regularization_strength, ftrl_beta, dropout, max_grad_norm,
                 weight_clip, batch_norm, batch_norm_momentum, batch_norm_eps):
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.negative_slope = negative_slope
        self.elu_alpha = elu_alpha
        self.softplus_beta = softplus_beta
        self.softplus_threshold = softplus_threshold
        self.maxout_pieces = maxout_pieces
        self.eps = eps
        self.rho = rho
        self.weight_decay = weight_decay
        self.lr_decay = lr_decay
        self.initial_accumulator_value = initial_accumulator_value
        self.rmsprop_momentum = rmsprop_momentum
        self.centered = centered
        self.momentum_decay = momentum_decay
        self.decoupled_weight_decay = decoupled_weight_decay
        self.amsgrad = amsgrad
        self.learning_rate_power = learning_rate_power
        self.l1_regularization_strength = l1_regularization_strength
        self.l2_regularization_strength = l2_regularization_strength
        self.l2_shrinkage_regularization_strength = l2_shrinkage_regularization_strength
        self.ftrl_beta = ftrl_beta
        self.dropout = dropout
        self.max_grad_norm = max_grad_norm
        self.weight_clip = weight_clip
        self.batch_norm = batch_norm
        self.batch_norm_momentum = batch_norm_momentum
        self.batch_norm_eps = batch_norm_eps

    # -- the flat parameter vector ---------------------------------------------------------------

    def _network(self):
        """The engine's description of the fitted network (cached; cheap to rebuild)."""
        pieces = getattr(self, "_maxout_pieces", 0)
        # Everything the network depends on, as a plain tuple: this runs on every predict.
        # (batch_norm is the parameter: a cached network passed the checks below with it.)
        key = (self._layer_units, self.activation, self.out_activation_, self.alpha, self.loss,
               self.negative_slope, self.elu_alpha, self.softplus_beta, self.softplus_threshold,
               pieces, self.dropout, getattr(self, "huber_delta", 1.0), self.batch_norm)
        if self.batch_norm:
            key += (self.batch_norm_momentum, self.batch_norm_eps)
        cached = getattr(self, "_network_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        # maxout's k shapes the weights: the fitted one counts, and the activation cannot
        # switch to or from maxout without a new fit (other activations can, as in scikit-learn).
        if (self.activation == "maxout") != (pieces > 0):
            raise ValueError(
                f"activation={self.activation!r} does not fit the weights, which were fitted "
                f"{'with' if pieces else 'without'} maxout; fit again after changing to or "
                "from 'maxout'."
            )
        # So does batch normalization (gamma and beta are weights); its eps and momentum may
        # change, as torch's may.
        normalised = self.__dict__.get("_batch_norm", False)
        if bool(self.batch_norm) != normalised:
            raise ValueError(
                f"batch_norm={self.batch_norm} does not fit the weights, which were fitted "
                f"{'with' if normalised else 'without'} batch normalization; fit again after "
                "changing it."
            )
        options = {
            "negative_slope": float(self.negative_slope), "elu_alpha": float(self.elu_alpha),
            "softplus_beta": float(self.softplus_beta),
            "softplus_threshold": float(self.softplus_threshold),
            "maxout_pieces": max(pieces, 1), "dropout": float(self.dropout),
            "huber_delta": float(getattr(self, "huber_delta", 1.0)),
            "batch_norm": normalised, "batch_norm_momentum": float(self.batch_norm_momentum),
            "batch_norm_eps": float(self.batch_norm_eps),
        }
        network = _engine.Network(self._layer_units, self.activation, self.out_activation_,
                                  float(self.alpha), self.loss, **options)
        self._network_cache = ((list(self._layer_units),) + key[1:], network)
        return network

    def _packed_parameters(self):
        """theta, after folding back any coefs_/intercepts_ that were replaced (not edited in
        place) since the views were made, so that theta always holds the model's weights."""
        theta = self._theta
        coefs, intercepts = self._coefs, self.intercepts_
        normalised = self.__dict__.get("_batch_norm", False)
        intact = len(coefs) == len(self._layer_units) - 1 == len(intercepts)
        for a in (*coefs, *intercepts):  # (a plain loop: this runs on every prediction)
            if a.base is not theta:
                intact = False
                break
        if normalised:
            for a in (*self.batch_norm_weights_, *self.batch_norm_biases_):
                if a.base is not theta:
                    intact = False
                    break
        if intact:
            return theta
        arrays = list(coefs) + list(intercepts)
        if normalised:
            arrays += list(self.batch_norm_weights_) + list(self.batch_norm_biases_)
        views = self._set_views(self._network(), theta)
        for view, value in zip(views, arrays):
            view[...] = value
        return theta

    def _set_views(self, network, theta):
        """Point coefs_, intercepts_ (and batch normalization's gamma and beta) at theta, and
        the running statistics' lists at _batch_norm_running; returns the parameters' views in
        theta's order of attributes (coefs, intercepts, gammas, betas)."""
        _serving.register(theta)
        self.coefs_, self.intercepts_ = network.views(theta)  # (coefs_: _serving.WeightViews)
        views = self._coefs + self.intercepts_
        if network.batch_norm:
            self.batch_norm_weights_, self.batch_norm_biases_ = network.batch_norm_views(theta)
            (self.batch_norm_running_means_,
             self.batch_norm_running_vars_) = network.running_views(self._batch_norm_running)
            views += self.batch_norm_weights_ + self.batch_norm_biases_
        return views

    def _reconstruction_attributes(self, theta):
        """The attributes that make a copy of this estimator predict with the flat weights
        `theta` (a copy of them: fit goes on), as scikit-learn's callbacks ask for at each
        iteration (FitTask). The layout of the flat vector is the estimator's and its engine's,
        with no public way to it, so the callbacks get it from here."""
        theta = np.array(theta, dtype=self._theta.dtype)
        network = self._network()
        coefs, intercepts = network.views(theta)
        attributes = {"_theta": theta, "coefs_": coefs, "intercepts_": intercepts}
        if network.batch_norm:
            running = self._batch_norm_running.copy()
            gammas, betas = network.batch_norm_views(theta)
            means, variances = network.running_views(running)
            attributes.update(_batch_norm_running=running, batch_norm_weights_=gammas,
                              batch_norm_biases_=betas, batch_norm_running_means_=means,
                              batch_norm_running_vars_=variances)
        return attributes

    def __getstate__(self):
        # Views do not survive pickling as views: store theta alone, rebuild them on load.
        state = super().__getstate__()
        if "_theta" in state:
            self._packed_parameters()
            state = dict(state)
            for name in ("_coefs", "intercepts_", "_network_cache", "_trainer_cache",
                         "_steady_call", "_steady_rows",
                         "batch_norm_weights_", "batch_norm_biases_",
                         "batch_norm_running_means_", "batch_norm_running_vars_"):
                state.pop(name, None)
        # scikit-learn stamps only its own estimators with its version; stamp ours with fastmlp's.
        return dict(state, _fastmlp_version=__version__)

    def __setstate__(self, state):
        state = dict(state)
        pickled_version = state.pop("_fastmlp_version", "unknown")
        if pickled_version != __version__:
            warnings.warn(InconsistentVersionWarning(
                estimator_name=type(self).__name__, current_fastmlp_version=__version__,
                original_fastmlp_version=pickled_version,
            ))
        # A model saved before batch normalization existed has none of its parameters: it
        # was fitted without it.
        for name, default in (("batch_norm", False), ("batch_norm_momentum", 0.1),
                              ("batch_norm_eps", 1e-5)):
            state.setdefault(name, default)
        super().__setstate__(state)
        if "_theta" in state:
            if self._theta.base is not None or type(self._theta) is not np.ndarray:
                # skops loads arrays as views into its buffers, joblib's mmap_mode as memmaps:
                # the weights' views must have theta itself as base (see _packed_parameters),
                # so theta must be a plain array that owns its memory.
                self._theta = np.array(self._theta)
            if isinstance(self.__dict__.get("_batch_norm_running"), np.ndarray):
                self._batch_norm_running = np.array(self._batch_norm_running)
            self._check_loaded_state()  # a damaged or crafted file fails here, not in the engine
            self._set_views(self._network(), self._theta)

    def _check_loaded_state(self):
        """Raise ValueError unless a loaded fitted state is one fastmlp could have written.

        skops promises that loading a file runs no code but the trusted types' own, and the
        engine reads the weights through raw pointers: a damaged or crafted state must fail
        here, at load, with an error, not read out of bounds at predict. (It lives with the
        estimators, not in _persistence, because it reads their private state and network.)"""
        theta = self.__dict__.get("_theta")
        problem = None
        if not isinstance(theta, np.ndarray) or theta.ndim != 1 or theta.dtype not in (
                np.float32, np.float64):
            problem = "its weights are not a 1-D float32 or float64 array"
        else:
            units = list(self.__dict__.get("_layer_units", []))
            try:
                network = self._network()
                n_params = network.n_params
            except Exception as exc:  # unknown activation names, bad sizes
                problem = f"its network cannot be built ({exc})"
            else:
                running = self.__dict__.get("_batch_norm_running")
                if network.batch_norm and not (
                        isinstance(running, np.ndarray) and running.dtype == theta.dtype
                        and running.shape == (network.n_running,)):
                    problem = "its batch normalization statistics do not match its layers"
                elif (len(units) < 2 or min(units) < 1 or theta.shape[0] != n_params
                        or units[0] != self.__dict__.get("n_features_in_")
                        or units[-1] != self.__dict__.get("n_outputs_")):
                    problem = "its weights do not match its layer sizes"
        if problem is not None:
            raise ValueError(
                f"This {type(self).__name__} cannot be loaded: {problem}. The file is damaged "
                "or was not written by fastmlp."
            )

    # -- fitting -------------------------------------------------------------------------------------

    def _initialize(self, y, layer_units, dtype):
        """Set every attribute a first fit sets and draw the initial weights (Glorot uniform,
        in scikit-learn's order: W then b, layer by layer)."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        self._layer_units = list(layer_units)

        if not is_classifier(self):
            self.out_activation_ = "exp" if self.loss == "poisson" else "identity"
        elif self._label_binarizer.y_type_ == "multiclass":
            self.out_activation_ = "softmax"
        else:
            self.out_activation_ = "logistic"

        self._maxout_pieces = self.maxout_pieces if self.activation == "maxout" else 0
        self._batch_norm = bool(self.batch_norm)
        for name in ("batch_norm_weights_", "batch_norm_biases_", "batch_norm_running_means_",
                     "batch_norm_running_vars_", "_batch_norm_running"):
            self.__dict__.pop(name, None)
        network = self._network()
        self._theta = np.empty(network.n_params, dtype=dtype)
        if network.batch_norm:  # torch's start: gamma 1, beta 0, running mean 0 and variance 1
            self._batch_norm_running = np.zeros(network.n_running, dtype=dtype)
            self._batch_norm_running[network.n_running // 2:] = 1.0
        self._set_views(network, self._theta)
        if network.batch_norm:
            for gamma, beta in zip(self.batch_norm_weights_, self.batch_norm_biases_):
                gamma[...] = 1.0
                beta[...] = 0.0
        factor = 2.0 if self.activation == "logistic" else 6.0
        for i, (coef, intercept) in enumerate(zip(self._coefs, self.intercepts_)):
            fan_in, fan_out = coef.shape
            if self._maxout_pieces and i < len(self._coefs) - 1:
                # A maxout layer: fan_out / k units of k pieces each. Glorot's bound uses the
                # units: what the next layer sees, and how many deltas reach each input (one
                # per unit, through its winning piece).
                fan_out //= self._maxout_pieces
            init_bound = np.sqrt(factor / (fan_in + fan_out))
            coef[...] = self._random_state.uniform(-init_bound, init_bound, coef.shape)
            intercept[...] = self._random_state.uniform(-init_bound, init_bound, intercept.shape)

        self._best_coefs = [c.copy() for c in self._coefs]
        self._best_intercepts = [i.copy() for i in self.intercepts_]
        self._best_batch_norm = self._batch_norm_state()

        # gradient_norms_ is a stochastic solver's (L-BFGS has no steps of its own to show).
        self.__dict__.pop("gradient_norms_", None)
        self._gradient_norm_rows = None
        if self.solver in _STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self._gradient_norm_rows = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _unchanged_on_error(self):
        """A context that puts every attribute back if its block raises. Validation and
        initialisation only (re)bind attributes, so a shallow copy of them restores the model
        exactly: a fit or partial_fit that fails validation leaves a fitted model as it was
        (scikit-learn's may leave new classes_, feature names or n_outputs_ beside the old
        weights). Training itself reports only through the solvers' interrupt warning and the
        finite-weights check, which run outside this block."""
        return _UnchangedOnError(self)

    def _fit(self, X, y, sample_weight=None, incremental=False):
        with self._unchanged_on_error():
            theta, fit_task = self._validate_and_train(X, y, sample_weight, incremental)
        return self._check_finite_weights(theta, fit_task)

    def _check_finite_weights(self, theta, fit_task):
        """scikit-learn's report of a diverged fit (the weights are kept, as it keeps them)."""
        # (The engine's vectorised pass: np.isfinite(theta).all() makes a temporary.)
        if not _engine.surely_finite(theta.reshape(1, -1)):
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may"
                " contain large values and need to be preprocessed."
            )
        fit_task.end()
        return self

    def _check_solver_options(self):
        """The options that need a stochastic solver are refused with L-BFGS."""
        if self.solver == "lbfgs" and (self.dropout > 0 or self.max_grad_norm is not None):
            raise ValueError(
                f"dropout={self.dropout} and max_grad_norm={self.max_grad_norm} need a "
                "stochastic solver: solver='lbfgs' minimises one deterministic full-batch loss "
                "(weight_clip works with it, as bounds). Use dropout=0.0 and "
                "max_grad_norm=None, or another solver."
            )

    def _hidden_sizes(self):
        """hidden_layer_sizes as a list, and whether they are the fitted ones, as plain ints:
        those passed both checks of sizes before (~4 us of a partial_fit); others are checked."""
        hidden_layer_sizes = self.hidden_layer_sizes
        if not hasattr(hidden_layer_sizes, "__iter__"):
            hidden_layer_sizes = [hidden_layer_sizes]
        hidden_layer_sizes = list(hidden_layer_sizes)
        checked = (hidden_layer_sizes == self.__dict__.get("_layer_units", [])[1:-1]
                   and all(type(size) is int for size in hidden_layer_sizes))
        return hidden_layer_sizes, checked

    def _steady_partial_fit(self, X, y):
        """partial_fit(X, y) on a model whose last call was a partial_fit, when every check of
        the whole path would pass: True when it trained, False, having changed nothing, when the
        call must take the whole path (which raises or warns as scikit-learn's does).

        What it skips: scikit-learn's configuration context, the copy of every attribute that
        restores them on an error, validation, the callbacks' task, and the checks of sizes and
        options against the fitted model. Here the arrays are taken as `_validate_training_data`
        takes them when every check would pass them as they are; the options the fitted model
        fixes (sizes, batch normalization, maxout) must be the fitted ones; the target must be
        one `_steady_target` knows. What trains is the whole path's own code (_fit_stochastic,
        _check_finite_weights), which reads every other parameter anew, so that the two paths
        train to the same bits: tests/estimator/test_partial_fit_steady.py compares them,
        option by option. Before training only the seeding can raise (a bad random_state,
        with scikit-learn's error, before anything changed), and training raises only what the
        whole path raises after its restoring block.

        That Python path still cost ~60 us of a ~90 us call of 32 rows of (64, 100, 10): dozens
        of calls of ~1 us each. So once it has run, it makes a compiled SteadyCall
        (`_make_steady_call`) that takes the calls after it that differ in the data alone,
        checking them in C, and runs only the bookkeeping between epochs in Python (the same
        _stochastic_epochs). Measured on the 2-core AMD EPYC VM, benchmarks/harness_runs.py
        --runs per-call, the builds before and after it alternating: medians 135-164 -> 53-68
        us a call, minimums 90 -> 40 (of which the engine ~28)."""
        d = self.__dict__
        call = d.get("_steady_call")
        if call is not None and call.accepts(self, X, y):
            n_iter = self.n_iter_
            try:
                self._stochastic_epochs(call, True, NO_CALLBACKS, False, None, None, None)
            except _engine.InputNotFinite:
                # X was not finite: the call put back what its epoch changed, and the whole
                # path raises scikit-learn's error (the epoch loop had only reset n_iter_).
                self.n_iter_ = n_iter
                d.pop("_steady_call", None)
                return False
            if not call.weights_finite():  # (~0.4 us where the full check costs ~3)
                self._check_finite_weights(call.theta, NO_CALLBACKS)
            return True
        d.pop("_steady_call", None)  # (made again below, from what this call reads)
        if ("_trainer_cache" not in d or self.solver not in _STOCHASTIC_SOLVERS
                or self.early_stopping
                or not (_finite_float_matrix(X) and _pass_as_they_are(self, X, y))):
            return False
        pieces = d.get("_maxout_pieces", 0)
        if (not self._hidden_sizes()[1] or bool(self.batch_norm) != d.get("_batch_norm", False)
                or (self.activation == "maxout") != (pieces > 0)
                or (pieces and self.maxout_pieces != pieces)):
            return False
        Y = self._steady_target(y, d["_theta"].dtype)
        if Y is None or Y.shape[1] != self._layer_units[-1]:
            return False
        theta = self._packed_parameters()
        X = _engine_input(X, theta.dtype)
        self._random_state = self._seeded_random_state()
        run = self._fit_stochastic(X, Y, None, theta, True, NO_CALLBACKS)
        self._check_finite_weights(theta, NO_CALLBACKS)
        # The compiled call is made (~14 us) when this call has the rows of the last one that
        # ran here: calls that alternate between sizes, which it would refuse in turn, never
        # pay for one. (Not after Ctrl-C, nor with max_iter 0: no epoch ran.)
        if self.n_iter_ == 1 and d.get("_steady_rows") == X.shape[0]:
            self._steady_call = self._make_steady_call(run, X, y)
        self._steady_rows = X.shape[0]
        return True

    def _make_steady_call(self, run, X, y):
        """The compiled SteadyCall (fastmlp/_engine/_trainer.pyx) for this model's next
        partial_fits, made from the steady call that just ran (`run`, on X and y as the
        caller passed them), or None for calls it does not take: a target other than integer
        labels of integer classes (or a regressor's floats), a float64 X on a float32 model,
        X or y in another layout, a call that warns."""
        d = self.__dict__
        theta = run.theta
        target = self._steady_call_target(y)
        if (target is None or X is not run.X  # (else converted: another dtype or layout)
                or not (type(X) is np.ndarray and X.flags.c_contiguous)
                or self.batch_size != "auto" and self.batch_size != run.batch_size):
            return None  # (the last: a batch_size that _stochastic_run clips, with a warning)
        random_state = self._random_state
        fixed_order = any(random_state is made
                          for made in _SEEDED_RANDOM_STATES.get(self, ()))
        names = _steady_call_names(type(self))
        views = [name for name in _STEADY_CALL_VIEWS if name in d]
        return _engine.SteadyCall(
            self, names, views, run.trainer, theta, run.grad, self._optimizer,
            run.n_samples, X.shape[1], run.batch_size,
            batch_thread_cap(run.batch_size, theta.shape[0]),
            run.sample_idx if self.shuffle else _NO_ROWS, fixed_order, random_state,
            self.dropout > 0, *target, d.get("_batch_norm_running"),
            None if engine_holds_blas() else single_threaded_blas(),
        )

    def _steady_call_target(self, y):
        """(target, classes, n_outputs) of SteadyCall for y, or None."""
        raise NotImplementedError

    def _steady_target(self, y, dtype):
        """y as training reads it (n_samples x n_outputs; its values, in `dtype` or another),
        for a target that `_pass_as_they_are` passed and that the whole path would take without
        a check, a warning or a change of classes; else None."""
        raise NotImplementedError

    def _validate_and_train(self, X, y, sample_weight, incremental):
        hidden_layer_sizes, sizes_checked = self._hidden_sizes()
        if not sizes_checked and np.any(np.array(hidden_layer_sizes) <= 0):
            raise ValueError("hidden_layer_sizes must be > 0, got %s." % hidden_layer_sizes)
        first_pass = "_coefs" not in self.__dict__ or (not self.warm_start and not incremental)
        self._check_solver_options()
        schedule_cpus()  # a bad FASTMLP_SCHEDULE_CPUS fails here, before the model changes
        # A partial_fit's compiled call is the steady path's alone: whatever ran since it
        # was made, it was that path (which drops and makes it again), so the RandomState it
        # holds on to was moved by nothing else.
        self.__dict__.pop("_steady_call", None)
        _serving.drop_steady_prediction(self)
        if not incremental:
            self.__dict__.pop("_trainer_cache", None)  # partial_fit's (_stochastic_trainer)

        fit_task = FitTask(  # scikit-learn's callbacks: each epoch (lbfgs: iteration) a sub-task
            self, X, y, sample_weight, task_name="partial_fit" if incremental else "fit",
            max_subtasks=(self.max_iter + 1 if self.solver == "lbfgs"  # + scipy's closing one
                          else 1 if incremental else self.max_iter),
        )
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        dtype = X.dtype if first_pass else self._theta.dtype
        X = _engine_input(X, dtype)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype)
        sample_weight = self._weight_classes(y, sample_weight, dtype)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        self.n_outputs_ = y.shape[1]
        layer_units = [X.shape[1]] + hidden_layer_sizes + [self.n_outputs_]

        self._random_state = self._seeded_random_state()
        if not sizes_checked:
            _check_layer_sizes(hidden_layer_sizes)
        if first_pass:
            self._initialize(y, layer_units, dtype)
        elif layer_units[-1] != self._layer_units[-1]:
            raise ValueError(
                f"y has {layer_units[-1]} outputs where the model was fitted with "
                f"{self._layer_units[-1]}; the number of outputs cannot change with warm_start "
                "or partial_fit."
            )
        elif layer_units[1:-1] != self._layer_units[1:-1]:
            # scikit-learn goes on training the fitted layers, silently (or, given another
            # number of layers, fails with an AttributeError); fastmlp goes on training them
            # and says so: the continued fit is the one the fitted sizes give.
            warnings.warn(
                f"hidden_layer_sizes={self.hidden_layer_sizes!r} is ignored: warm_start and "
                f"partial_fit continue the fitted network, of hidden layer sizes "
                f"{tuple(self._layer_units[1:-1])}. Fit with warm_start=False for a new one.",
                UserWarning,
            )
        elif bool(self.batch_norm) != getattr(self, "_batch_norm", False):
            raise ValueError(
                f"batch_norm={self.batch_norm} differs from the fitted model's; it cannot "
                "change with warm_start or partial_fit."
            )
        elif self.activation == "maxout" and self.maxout_pieces != self._maxout_pieces:
            raise ValueError(
                f"maxout_pieces={self.maxout_pieces} differs from the fitted "
                f"{self._maxout_pieces}; it cannot change with warm_start or partial_fit."
            )
        theta = self._packed_parameters()

        if self.solver in _STOCHASTIC_SOLVERS:
            self._fit_stochastic(X, y, sample_weight, theta, incremental, fit_task)
        else:
            self._fit_lbfgs(X, y, sample_weight, theta, fit_task)
        return theta, fit_task

    def _seeded_random_state(self):
        """check_random_state(self.random_state), without a new RandomState per call for an
        integer seed: one this estimator made before and no longer holds is seeded again
        (RandomState.seed: the same seeding, the same errors for a bad seed; ~1 us where a new
        RandomState costs ~80 us of a partial_fit). The one it holds is never touched, so that a
        call that fails leaves `_random_state` as it was; a RandomState the user passed is used
        as it is, and advances, as in scikit-learn."""
        seed = self.random_state
        if type(seed) is not int and not isinstance(seed, Integral):  # (an ABC's check: ~0.3 us)
            return check_random_state(seed)
        try:
            made = _SEEDED_RANDOM_STATES.get(self)
            if made is None:
                made = _SEEDED_RANDOM_STATES[self] = []  # at most two: held and spare
        except TypeError:  # a subclass that is not hashable
            return check_random_state(seed)
        held = self.__dict__.get("_random_state")
        for random_state in made:
            if random_state is not held:
                random_state.seed(seed)
                return random_state
        random_state = check_random_state(seed)
        made.append(random_state)
        return random_state

    def _weight_classes(self, y, sample_weight, dtype):
        """sample_weight times the weights of class_weight (classifiers only)."""
        return sample_weight

    def _fit_lbfgs(self, X, y, sample_weight, theta, fit_task):
        network = self._network()
        # Batch normalization's statistics are the whole batch's: one chunk of every row.
        chunk = X.shape[0] if network.batch_norm else min(X.shape[0], _LBFGS_CHUNK_ROWS)
        trainer = _engine.Trainer(network, chunk, X.shape[1], theta.dtype, sp.issparse(X),
                                  schedule_cpus=batch_schedule(chunk, theta.shape[0]))
        Y = np.ascontiguousarray(y, dtype=theta.dtype)
        weights = sample_weight if sample_weight is not None else np.empty(0, theta.dtype)
        grad = np.empty_like(theta)
        n_threads = threads_for_batch(min(X.shape[0], _LBFGS_CHUNK_ROWS), theta.shape[0])

        # The last iterate L-BFGS accepted, kept on Ctrl-C (scikit-learn lets the interrupt
        # escape, leaving the weights of whichever point was evaluated last): O(params) a step.
        accepted = {"x": theta.astype(np.float64), "fun": None, "nit": 0}
        task_callback = fit_task.lbfgs_callback(theta)

        def loss_and_gradient(packed):
            theta[...] = packed
            loss = trainer.loss_gradient(theta, grad, X, Y, weights, n_threads)
            if accepted["fun"] is None:
                accepted["fun"] = loss  # L-BFGS-B evaluates the starting point first
            return loss, grad.astype(np.float64)

        # weight_clip under L-BFGS: the box [-c, c] as L-BFGS-B's bounds, the projected form of
        # clamping after every step.
        bounds = (None if self.weight_clip is None
                  else scipy.optimize.Bounds(-self.weight_clip, self.weight_clip))

        def callback(intermediate_result):
            accepted.update(x=intermediate_result.x.copy(), fun=intermediate_result.fun,
                            nit=accepted["nit"] + 1)
            if task_callback is not None:
                task_callback(intermediate_result)

        try:
            with single_threaded_blas():
                result = scipy.optimize.minimize(
                    loss_and_gradient,
                    accepted["x"],
                    method="L-BFGS-B",
                    jac=True,
                    bounds=bounds,
                    options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol},
                    callback=callback,
                )
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
            fit_task.close_lbfgs()
            self.n_iter_ = accepted["nit"]
            self.loss_ = accepted["fun"] if accepted["fun"] is not None else np.nan
            theta[...] = accepted["x"]
            self._running_statistics_of(trainer, theta, X, Y, weights, n_threads)
            return
        fit_task.close_lbfgs()
        # A stop asked by a callback is no failure to converge: no ConvergenceWarning then.
        self.n_iter_ = (min(result.nit, self.max_iter) if fit_task.stopped
                        else _check_optimize_result(result, self.max_iter))
        self.loss_ = result.fun
        theta[...] = result.x
        self._running_statistics_of(trainer, theta, X, Y, weights, n_threads)

    def _running_statistics_of(self, trainer, theta, X, Y, weights, n_threads):
        """L-BFGS's running statistics: the whole training set's, at the final weights (its
        one batch; momentum plays no part), so that prediction normalises as training did."""
        if getattr(self, "_batch_norm", False):
            grad = np.empty_like(theta)
            with single_threaded_blas():
                trainer.loss_gradient(theta, grad, X, Y, weights, n_threads,
                                      running=self._batch_norm_running)

    def _make_optimizer(self, n_params, dtype):
        if self.solver == "sgd":
            return SGDOptimizer(n_params, dtype, self.learning_rate_init, self.learning_rate,
                                self.momentum, self.nesterovs_momentum, self.power_t)
        if self.solver == "adam":
            return AdamOptimizer(n_params, dtype, self.learning_rate_init, self.beta_1,
                                 self.beta_2, self.epsilon)
        if self.solver == "ftrl":
            return FtrlOptimizer(
                n_params, dtype, self.learning_rate_init,
                learning_rate_power=self.learning_rate_power,
                initial_accumulator_value=self.initial_accumulator_value,
                l1_regularization_strength=self.l1_regularization_strength,
                l2_regularization_strength=self.l2_regularization_strength,
                l2_shrinkage_regularization_strength=self.l2_shrinkage_regularization_strength,
                beta=self.ftrl_beta,
            )
        return TorchOptimizer(
            self.solver, n_params, dtype, self.learning_rate_init, eps=self.eps,
            weight_decay=self.weight_decay, beta_1=self.beta_1, beta_2=self.beta_2,
            rho=self.rho, momentum=self.rmsprop_momentum, centered=self.centered,
            lr_decay=self.lr_decay, initial_accumulator_value=self.initial_accumulator_value,
            momentum_decay=self.momentum_decay,
            decoupled_weight_decay=self.decoupled_weight_decay, amsgrad=self.amsgrad,
        )

    def _fit_stochastic(self, X, y, sample_weight, theta, incremental, fit_task):
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = self._make_optimizer(theta.shape[0], theta.dtype)

        # early_stopping in partial_fit doesn't make sense
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        if early_stopping:
            # don't stratify in multilabel classification
            should_stratify = is_classifier(self) and self.n_outputs_ == 1
            stratify = y if should_stratify else None
            if sample_weight is None:
                X_train, X_val, y_train, y_val = train_test_split(
                    X, y, random_state=self._random_state, test_size=self.validation_fraction,
                    stratify=stratify,
                )
                sample_weight_train = sample_weight_val = None
            else:
                (X_train, X_val, y_train, y_val, sample_weight_train,
                 sample_weight_val) = train_test_split(
                    X, y, sample_weight, random_state=self._random_state,
                    test_size=self.validation_fraction, stratify=stratify,
                )
            if X_val.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small. Increase 'validation_fraction' "
                    "or the size of your dataset."
                )
            if is_classifier(self):
                y_val = self._label_binarizer.inverse_transform(y_val)
            X_train = _engine_input(X_train, theta.dtype)
        else:
            X_train, y_train, sample_weight_train = X, y, sample_weight
            X_val = y_val = sample_weight_val = None

        run = self._stochastic_run(X_train, y_train, sample_weight_train, theta, incremental)
        self._stochastic_epochs(run, incremental, fit_task, early_stopping, X_val, y_val,
                                sample_weight_val)

        if early_stopping:
            # restore best weights
            for view, best in zip(self._coefs + self.intercepts_,
                                  self._best_coefs + self._best_intercepts):
                view[...] = best
            if getattr(self, "_best_batch_norm", None) is not None:
                best_norm, best_running = self._best_batch_norm
                theta[theta.shape[0] - best_norm.shape[0]:] = best_norm
                self._batch_norm_running[...] = best_running
        return run

    def _stochastic_run(self, X_train, y_train, sample_weight_train, theta, incremental):
        """What every epoch of a stochastic fit reads (a _StochasticRun): the engine's Trainer
        and gradient buffer, the training arrays as the engine takes them, the rows' order, the
        batch size and the threads."""
        n_samples = X_train.shape[0]
        sample_idx = np.arange(n_samples, dtype=np.intp) if self.shuffle else _NO_ROWS
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn(
                    "Got `batch_size` less than 1 or larger than "
                    "sample size. It is going to be clipped"
                )
            batch_size = int(np.clip(self.batch_size, 1, n_samples))

        # Dropout's seed is drawn only when there is dropout, after the split, so that every
        # other option leaves scikit-learn's use of random_state untouched.
        dropout_seed = (int(self._random_state.randint(0, 2**62, dtype=np.int64))
                        if self.dropout > 0 else 0)
        trainer, grad = self._stochastic_trainer(batch_size, X_train, theta, incremental)
        trainer.dropout_seed = dropout_seed
        trainer.max_grad_norm = self.max_grad_norm or 0.0
        trainer.weight_clip = self.weight_clip or 0.0
        Y_train = np.ascontiguousarray(y_train, dtype=theta.dtype)
        weights = (np.ascontiguousarray(sample_weight_train) if sample_weight_train is not None
                   else _NO_WEIGHTS[theta.dtype.type])
        n_threads = threads_for_batch(batch_size, theta.shape[0])
        return _StochasticRun(trainer, theta, grad, X_train, Y_train, weights, sample_idx,
                              batch_size, n_threads)

    def _stochastic_epochs(self, run, incremental, fit_task, early_stopping, X_val, y_val,
                           sample_weight_val):
        """The epochs of a stochastic fit (partial_fit's one), with scikit-learn's bookkeeping,
        schedule and stopping rules between them."""
        n_norm_rows = self._gradient_norms_so_far()
        try:
            self.n_iter_ = 0
            for it in range(self.max_iter):
                fit_task.begin_iteration(run.theta)
                n_norm_rows = self._stochastic_epoch(run, n_norm_rows)
                self._epoch_ends(early_stopping, X_val, y_val, sample_weight_val)
                if fit_task.end_iteration(run.theta):
                    break  # a callback asked to stop
                if self._stops_without_improvement(early_stopping):
                    break
                if incremental:
                    break

                if self.n_iter_ == self.max_iter:
                    warnings.warn(
                        "Stochastic Optimizer: Maximum iterations (%d) "
                        "reached and the optimization hasn't converged yet." % self.max_iter,
                        ConvergenceWarning,
                    )
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        self.gradient_norms_ = self._gradient_norm_rows[:n_norm_rows]

    def _stochastic_epoch(self, run, n_norm_rows):
        """One epoch: one call into the engine, which runs every mini-batch (`run.epoch`: a
        _StochasticRun, or a partial_fit's compiled SteadyCall); the loss curve and the
        counters after it. Returns the number of rows of gradient norms now kept."""
        accumulated_loss = run.epoch(self, self._gradient_norm_row(n_norm_rows))
        n_samples = run.n_samples
        self.n_iter_ += 1
        self.loss_ = accumulated_loss / n_samples
        self.t_ += n_samples
        self.loss_curve_.append(self.loss_)
        return n_norm_rows + 1

    def _epoch_ends(self, early_stopping, X_val, y_val, sample_weight_val):
        """What scikit-learn does after each epoch: report, count the epochs without
        improvement (of the training loss, or of the validation score), and step the
        learning-rate schedule."""
        if self.verbose:
            print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))

        # update no_improvement_count based on training loss or
        # validation score according to early_stopping
        self._update_no_improvement_count(early_stopping, X_val, y_val, sample_weight_val)
        # for learning rate that needs to be updated at iteration end
        self._optimizer.iteration_ends(self.t_)

    def _stops_without_improvement(self, early_stopping):
        """After `n_iter_no_change` epochs without improvement by tol: True to stop, or, where
        the solver lowers its learning rate instead (sgd, adaptive), the count starts again."""
        if self._no_improvement_count <= self.n_iter_no_change:
            return False
        # not better than last `n_iter_no_change` iterations by tol
        # stop or decrease learning rate (the message is printed only when
        # verbose: a steady partial_fit meets this at every call)
        if not self.verbose:
            msg = ""
        elif early_stopping:
            msg = (
                "Validation score did not improve more than "
                "tol=%f for %d consecutive epochs."
                % (self.tol, self.n_iter_no_change)
            )
        else:
            msg = (
                "Training loss did not improve more than tol=%f"
                " for %d consecutive epochs." % (self.tol, self.n_iter_no_change)
            )
        if self._optimizer.trigger_stopping(msg, self.verbose):
            return True
        self._no_improvement_count = 0
        return False

    def _stochastic_trainer(self, batch_size, X, theta, incremental):
        """The engine's Trainer for mini-batches of `batch_size` rows of X, and a gradient
        buffer for theta. partial_fit keeps both for its next call (`_trainer_cache`): making
        them cost ~5 us of a ~90 us call of 32 rows. They hold no state of the fit, only
        scratch that every step writes before it reads, so a kept one trains to the same bits
        as a new one; they are kept for as long as what they are made from is the same (the
        network, which is made again when a parameter it depends on changes; the batch size;
        the width, dtype and sparsity of X). fit keeps none (its buffers would outlive it), and
        nothing of it is pickled (__getstate__)."""
        network = self._network()
        shape = (batch_size, X.shape[1], theta.dtype, sp.issparse(X), theta.shape[0],
                 batch_schedule(batch_size, theta.shape[0]))
        cached = self.__dict__.pop("_trainer_cache", None)
        if cached is not None and cached[0] is network and cached[1] == shape:
            trainer, grad = cached[2], cached[3]
        else:
            trainer = _engine.Trainer(network, batch_size, X.shape[1], theta.dtype,
                                      sp.issparse(X), schedule_cpus=shape[-1])
            grad = np.empty_like(theta)
        if incremental:
            self._trainer_cache = (network, shape, trainer, grad)
        return trainer, grad

    def _gradient_norms_so_far(self):
        """How many rows gradient_norms_ has, with `_gradient_norm_rows` made the buffer that
        holds them (a model fitted by L-BFGS or loaded from an older fastmlp has none)."""
        rows = getattr(self, "_gradient_norm_rows", None)
        if isinstance(rows, np.ndarray):
            return len(self.__dict__.get("gradient_norms_", ()))
        rows = np.array(rows or [], dtype=np.float64).reshape(-1, len(self._coefs))
        self._gradient_norm_rows = rows
        return len(rows)

    def _gradient_norm_row(self, n_rows):
        """Row `n_rows` of the buffer, for the engine to set to the sum of an epoch's gradient
        norms (the epoch then divides it by its number of steps). The buffer doubles when full,
        so a call of partial_fit costs the same after a million calls as after one
        (gradient_norms_ rebuilt from a list of rows cost ~100 us per call after 2,000 calls,
        and grew with every call)."""
        rows = self._gradient_norm_rows
        if n_rows == len(rows):
            grown = np.zeros((max(2 * n_rows, 16), rows.shape[1]))  # (zeros: pickles repeat)
            grown[:n_rows] = rows
            self._gradient_norm_rows = rows = grown
        return rows[n_rows]

    def _update_no_improvement_count(self, early_stopping, X, y, sample_weight):
        if early_stopping:
            # compute validation score (can be NaN), use that for stopping
            val_score = self._score(X, y, sample_weight=sample_weight)
            self.validation_scores_.append(val_score)
            if self.verbose:
                print("Validation score: %f" % self.validation_scores_[-1])
            # update best parameters
            # use validation_scores_, not loss_curve_
            last_valid_score = self.validation_scores_[-1]
            if last_valid_score < (self.best_validation_score_ + self.tol):
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if last_valid_score > self.best_validation_score_:
                self.best_validation_score_ = last_valid_score
                self._best_coefs = [c.copy() for c in self._coefs]
                self._best_intercepts = [i.copy() for i in self.intercepts_]
                self._best_batch_norm = self._batch_norm_state()
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    def _batch_norm_state(self):
        """Copies of gamma and beta (theta's tail) and of the running statistics, or None."""
        if not getattr(self, "_batch_norm", False):
            return None
        n = self._batch_norm_running.shape[0]
        return (self._theta[self._theta.shape[0] - n:].copy(), self._batch_norm_running.copy())

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : ndarray or sparse matrix of shape (n_samples, n_features)
            The input data. float32 input trains in float32, anything else in float64.
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The target values (class labels in classification, real numbers in regression).
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        self : object
            Returns a trained MLP model.
        """
        _serving.begin_training(self)  # (it writes the weights: see fastmlp/_serving.py)
        try:
            return self._fit(X, y, sample_weight=sample_weight, incremental=False)
        finally:
            _serving.end_training(self)

    def _check_solver(self):
        if self.solver not in _STOCHASTIC_SOLVERS:
            raise AttributeError(
                "partial_fit is only available for stochastic"
                " optimizers. %s is not stochastic." % self.solver
            )
        return True

    # -- prediction ----------------------------------------------------------------------------------

    def _forward_pass_fast(self, X, check_input=True):
        """The output layer's activations for X (the engine's forward pass, no bookkeeping).

        A few rows of a plain X (see _prediction_input) take the compiled SteadyPrediction
        (fastmlp/_engine/_trainer.pyx) once such a prediction has taken the path below: it
        checks in C that the estimator holds the very objects that path read
        (_PREDICTION_ATTRIBUTES) and computes as it does, where the path's Python and the
        engine's argument handling cost ~1.8 us of a ~11 us one-row prediction of `mnist`'s
        network. It refuses anything else, and the path below runs (and makes another for the
        next call)."""
        steady = _serving.steady_prediction(self)
        if steady is not None:
            out = steady.predict(self, X)
            if out is not None:
                return out
        theta = self._packed_parameters()
        X, dtype, unproven = _prediction_input(self, X, theta.dtype, check_input)
        if dtype != theta.dtype:
            theta = theta.astype(dtype)  # float64 X on a float32 model, as numpy promotes
        out = np.empty((X.shape[0], self.n_outputs_), dtype=theta.dtype)
        network = self._network()
        fold = (network.batch_norm_fold(theta, self._batch_norm_running)
                if self.__dict__.get("_batch_norm") else None)
        if X.shape[0] < _engine.SMALL_PREDICT_ROWS:
            # A few rows never reach BLAS (csrc/small_product.c): no limit to set. They read
            # the packed copy of W where there may be one (fastmlp/_serving.py says when), and
            # share a large W's product with a second thread where that pays (the engine's
            # split_product).
            finite = _engine.predict(network, theta, X, out, effective_n_threads(), fold,
                                     unproven, _serving.copy_for(network, theta))
            if unproven and finite and fold is None:
                d = self.__dict__
                _serving.keep_steady_prediction(self, _engine.SteadyPrediction(
                    self, _PREDICTION_ATTRIBUTES, [n for n in _PREDICTION_VIEWS if n in d],
                    network, theta, functools.partial(_serving.copy_for, network, theta)))
        else:
            n_threads = effective_n_threads() if X.shape[0] > 128 else 1
            # BLAS on one thread even when the engine uses one: OpenBLAS's threaded GEMM and
            # GEMV round differently from its serial ones, and predictions must not depend on
            # thread counts (nor on whether another thread happens to hold BLAS to one thread
            # just then).
            with single_threaded_blas():
                finite = _engine.predict(network, theta, X, out, n_threads, fold, unproven)
        if unproven and not finite:
            _check_unproven_input(self, X)  # scikit-learn's error for NaN or infinity
        return out

    def _check_is_fitted(self):
        if "_theta" not in self.__dict__:
            check_is_fitted(self)

    def __sklearn_is_fitted__(self):
        """scikit-learn's own test (an attribute ending in "_"), answered at once for a fitted
        model: `_fit_context` asks it on every partial_fit, and scanning the ~75 attributes
        costs ~5 us of a small one."""
        return "_theta" in self.__dict__ or any(
            name.endswith("_") and not name.startswith("__") for name in vars(self))

    def _score_with_function(self, X, y, sample_weight, score_function):
        """Private score method without input validation."""
        # Input validation would remove feature names, so we disable it
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return score_function(y, y_pred, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class MLPClassifier(MultilabelTagsMixin, ClassifierMixin, BaseMultilayerPerceptron):
    """Multi-layer Perceptron classifier: scikit-learn's MLPClassifier, trained by fastmlp's engine.

    It optimizes the log-loss function using LBFGS or stochastic gradient descent. Parameters,
    attributes and behaviour are those of :class:`sklearn.neural_network.MLPClassifier`; see its
    documentation for each one.

    Parameters
    ----------
    hidden_layer_sizes : array-like of shape(n_layers - 2,), default=(100,)
    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
    alpha : float, default=0.0001
    batch_size : int, default='auto'
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
    learning_rate_init : float, default=0.001
    power_t : float, default=0.5
    max_iter : int, default=200
    shuffle : bool, default=True
    random_state : int, RandomState instance, default=None
    tol : float, default=1e-4
    verbose : bool, default=False
    warm_start : bool, default=False
    momentum : float, default=0.9
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
    validation_fraction : float, default=0.1
    beta_1 : float, default=0.9
    beta_2 : float, default=0.999
    epsilon : float, default=1e-8
    n_iter_no_change : int, default=10
    max_fun : int, default=15000

    Beyond scikit-learn (keyword-only; README.md's table gives every option; at their defaults
    nothing changes from scikit-learn's behaviour):

    activation : also 'leaky_relu', 'elu', 'gelu', 'silu', 'mish', 'softplus' (as
        torch.nn.functional defines them; gelu is the exact erf form) and 'maxout'.
    negative_slope : float, default=0.01 (leaky_relu)
    elu_alpha : float, default=1.0 (elu)
    softplus_beta : float, default=1.0; softplus_threshold : float, default=20.0 (softplus:
        beta z > threshold gives z)
    maxout_pieces : int, default=2 (maxout: k linear pieces per unit; a hidden layer's
        `coefs_[i]` then has shape (fan_in, fan_out * k) and `intercepts_[i]` (fan_out * k,),
        column j * k + p being piece p of unit j)
    solver : also 'adagrad', 'rmsprop', 'adadelta', 'adamax', 'nadam', 'adamw' (torch.optim's
        formulas, learning rate `learning_rate_init`; `alpha` stays the L2 term of the loss).
    eps : float, default=None (those solvers' eps; None: torch's default for the solver,
        1e-10 adagrad, 1e-6 adadelta, 1e-8 the others. `epsilon` stays adam's)
    rho : float, default=None (rmsprop's `alpha` (0.99) or adadelta's `rho` (0.9))
    weight_decay : float, default=None (torch's weight_decay: coupled, added to the gradient,
        for adagrad/rmsprop/adadelta/adamax/nadam (default 0); decoupled for adamw (default
        0.01) and for nadam with decoupled_weight_decay=True)
    beta_1, beta_2 : also adamax's, nadam's and adamw's betas (torch's defaults are the same)
    lr_decay : float, default=0.0 (adagrad)
    initial_accumulator_value : float, default=None (adagrad's, torch's default 0.0; ftrl's,
        Keras's default 0.1)
    rmsprop_momentum : float, default=0.0; centered : bool, default=False (rmsprop)
    momentum_decay : float, default=0.004; decoupled_weight_decay : bool, default=False (nadam)
    amsgrad : bool, default=False (adamw)
    solver='ftrl' : Keras 3's keras.optimizers.Ftrl (FTRL-Proximal, McMahan et al. 2013), for
        wide sparse inputs; its learning rate is `learning_rate_init`, with Keras's
        learning_rate_power : float, default=-0.5; l1_regularization_strength,
        l2_regularization_strength, l2_shrinkage_regularization_strength : float, default=0.0;
        ftrl_beta : float, default=0.0 (Keras's `beta`)
    dropout : float, default=0.0 (inverted dropout on every hidden unit while training with a
        stochastic solver; masks drawn from a seed taken from random_state; none in prediction)
    max_grad_norm : float, default=None (clip the L2 norm of the whole gradient, L2 term
        included, to this before each step, as torch.nn.utils.clip_grad_norm_)
    weight_clip : float, default=None (clamp every parameter, intercepts included, to
        [-c, c] after each step; with lbfgs, bounds [-c, c])
    batch_norm : bool, default=False (every hidden layer computes act(BN(a W + b)), torch's
        Linear -> BatchNorm1d(affine=True) -> act (-> Dropout); training normalises by each
        mini-batch's (sample-weighted) mean and biased variance, prediction by the running
        statistics. maxout is normalised over its pieces. With lbfgs, the whole training set
        is the batch, and the running statistics end as its statistics at the final weights.)
    batch_norm_momentum : float, default=0.1; batch_norm_eps : float, default=1e-5 (torch's
        momentum of the running statistics and eps)
    loss : {'log_loss', 'squared_error'}, default='log_loss' ('squared_error': the lectures'
        cost 0.5 * sum_j (p_j - y_j)^2 per sample on the output probabilities, averaged over
        samples)
    class_weight : dict, list of dicts (multilabel), 'balanced' or None, default=None
        (multiplied into sample_weight: a fit with it equals, bit for bit, a fit with
        sample_weight=sklearn.utils.class_weight.compute_sample_weight(class_weight, y);
        'balanced' counts the classes with sample_weight when both are given, as
        LogisticRegression does; not with partial_fit, as SGDClassifier)

    Attributes
    ----------
    classes_, loss_, best_loss_, loss_curve_, validation_scores_, best_validation_score_, t_,
    coefs_, intercepts_, n_features_in_, feature_names_in_, n_iter_, n_layers_, n_outputs_,
    out_activation_ : as scikit-learn's. `coefs_[i]` has shape (fan_in, fan_out); `coefs_` and
    `intercepts_` are views into one flat parameter vector.
    gradient_norms_ : ndarray of shape (n_iter_, n_layers_ - 1), stochastic solvers only: for
        each epoch and layer, the mean over the epoch's steps of |dLoss/dcoefs_[i]| (L2 norm,
        the L2 penalty included, before max_grad_norm clipping). Vanishing gradients show as
        the first layers' norms falling orders of magnitude below the last's
        (`fastmlp.plot_gradient_norms`).
    batch_norm_weights_, batch_norm_biases_ : lists of ndarray of shape (fan_out,) (fan_out k
        for maxout), batch_norm=True only: each hidden layer's gamma and beta, views into the
        flat parameter vector like `coefs_` (trained by every solver, unpenalised by `alpha`).
    batch_norm_running_means_, batch_norm_running_vars_ : lists of ndarray, batch_norm=True
        only: each hidden layer's running mean and (unbiased) running variance.
    """

    _parameter_constraints: dict = {
        **BaseMultilayerPerceptron._parameter_constraints,
        "loss": [StrOptions({"log_loss", "squared_error"})],
        "class_weight": [dict, list, StrOptions({"balanced"}), None],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 negative_slope=0.01, elu_alpha=1.0, softplus_beta=1.0,
                 softplus_threshold=20.0, maxout_pieces=2, eps=None, rho=None,
                 weight_decay=None, lr_decay=0.0, initial_accumulator_value=None,
                 rmsprop_momentum=0.0, centered=False, momentum_decay=4e-3,
                 decoupled_weight_decay=False, amsgrad=False, learning_rate_power=-0.5,
                 l1_regularization_strength=0.0, l2_regularization_strength=0.0,
                 l2_shrinkage_regularization_strength=0.0, ftrl_beta=0.0, dropout=0.0,
                 max_grad_norm=None, weight_clip=None, batch_norm=False, batch_norm_momentum=0.1,
                 batch_norm_eps=1e-5, loss="log_loss", class_weight=None):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
            alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            loss=loss, shuffle=shuffle, random_state=random_state, tol=tol,
            verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
            negative_slope=negative_slope, elu_alpha=elu_alpha, softplus_beta=softplus_beta,
            softplus_threshold=softplus_threshold, maxout_pieces=maxout_pieces, eps=eps, rho=rho,
            weight_decay=weight_decay, lr_decay=lr_decay,
            initial_accumulator_value=initial_accumulator_value,
            rmsprop_momentum=rmsprop_momentum, centered=centered, momentum_decay=momentum_decay,
            decoupled_weight_decay=decoupled_weight_decay, amsgrad=amsgrad,
            learning_rate_power=learning_rate_power,
            l1_regularization_strength=l1_regularization_strength,
            l2_regularization_strength=l2_regularization_strength,
            l2_shrinkage_regularization_strength=l2_shrinkage_regularization_strength,
            ftrl_beta=ftrl_beta, dropout=dropout,
            max_grad_norm=max_grad_norm, weight_clip=weight_clip, batch_norm=batch_norm,
            batch_norm_momentum=batch_norm_momentum, batch_norm_eps=batch_norm_eps,
        )
        self.class_weight = class_weight

    def _weight_classes(self, y, sample_weight, dtype):
        if self.class_weight is None:
            return sample_weight
        # y is binarized here; the binarizer gives the labels (or, multilabel, the indicator
        # matrix) back exactly.
        labels = self._label_binarizer.inverse_transform(y)
        return _class_weighted_sample_weight(self.class_weight, self.classes_, labels,
                                             sample_weight, dtype)

    def _steady_target(self, y, dtype):
        # Known integer labels, with no class weights and no warm_start (which checks that y
        # has every class): the whole path's indicator (_validate_input), in the compute dtype.
        if (self.warm_start or self.class_weight is not None
                or self.__dict__.get("classes_") is None):
            return None
        return _binarize_known_integers(self._label_binarizer, y, dtype)

    def _steady_call_target(self, y):
        # Labels of the classes' own integer dtype (the Python path's other integer labels
        # keep that path); SteadyCall makes the indicator as _binarize_known does.
        binarizer = self._label_binarizer
        classes = binarizer.classes_
        if (binarizer.y_type_ not in ("multiclass", "binary") or binarizer.sparse_input_
                or classes.dtype not in (np.int64, np.int32) or len(classes) < 2
                or type(y) is not np.ndarray or y.dtype != classes.dtype):
            return None
        return "labels", classes, self.n_outputs_

    def _validate_input(self, X, y, incremental, reset):
        X, y = _validate_training_data(
            self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
            dtype=(np.float64, np.float32), reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)

        # incremental warm_start classes_ def  action
        #    0            0         0        define classes_
        #    0            1         0        define classes_
        #    0            0         1        redefine classes_
        #    0            1         1        check compat warm_start
        #    1            1         1        check compat warm_start
        #    1            0         1        check compat last fit
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            # partial_fit's labels, all known integers, skip unique_labels (see _validation)
            indicator = (None if self.warm_start
                         else _binarize_known_integers(self._label_binarizer, y))
            if indicator is not None:
                return X, indicator
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same "
                        "classes as in the previous call to fit. Previously "
                        f"got {self.classes_}, `y` has {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    "`y` has classes not in `self.classes_`. "
                    f"`self.classes_` has {self.classes_}. 'y' has {classes}."
                )
        return X, _binarize(self._label_binarizer, y)

    def predict(self, X):
        """Predict using the multi-layer perceptron classifier.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray, shape (n_samples,) or (n_samples, n_classes)
            The predicted classes.
        """
        self._check_is_fitted()
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        binarizer = self._label_binarizer
        if binarizer.y_type_ == "multiclass" and not binarizer.sparse_input_:
            # LabelBinarizer.inverse_transform's own formula for a dense multiclass indicator
            # (classes at argmax, clipped), without its fitted and array-API checks: ~30 us,
            # three one-row predictions' worth.
            return binarizer.classes_.take(y_pred.argmax(axis=1), mode="clip")
        return binarizer.inverse_transform(y_pred)

    def _score(self, X, y, sample_weight=None):
        return super()._score_with_function(
            X, y, sample_weight=sample_weight, score_function=accuracy_score
        )

    @available_if(lambda est: est._check_solver())
    @_partial_fit_context
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Update the model with a single iteration over the given data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None
        classes : array of shape (n_classes,), default=None
            Classes across all calls to partial_fit; required on the first call.

        Returns
        -------
        self : object
        """
        if isinstance(self.class_weight, str) and self.class_weight == "balanced":
            # as SGDClassifier.partial_fit: one batch cannot tell the classes' frequencies
            raise ValueError(
                "class_weight 'balanced' is not supported for partial_fit. In order to use "
                "'balanced' weights, use compute_class_weight('balanced', classes=classes, "
                "y=y). In place of y you can use a large enough sample of the full training "
                "set target to properly estimate the class frequency distributions. Pass the "
                "resulting weights as the class_weight parameter."
            )
        with self._unchanged_on_error():  # the first call's classes_ too
            if self._partial_fit_first_call(classes):
                self._label_binarizer = LabelBinarizer()
                if type_of_target(y).startswith("multilabel"):
                    self._label_binarizer.fit(y)
                else:
                    self._label_binarizer.fit(classes)
            theta, fit_task = self._validate_and_train(X, y, sample_weight, incremental=True)
        return self._check_finite_weights(theta, fit_task)

    def _partial_fit_first_call(self, classes):
        """scikit-learn's `classes` rules for partial_fit; True on the first call."""
        if getattr(self, "classes_", None) is None and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if classes is not None:
            if getattr(self, "classes_", None) is not None:
                if not np.array_equal(self.classes_, unique_labels(classes)):
                    raise ValueError(
                        "`classes=%r` is not the same as on last call "
                        "to partial_fit, was: %r" % (classes, self.classes_)
                    )
            else:
                self.classes_ = unique_labels(classes)
                return True
        return False

    def predict_log_proba(self, X):
        """Return the log of probability estimates, `log(predict_proba(X))`."""
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    def predict_proba(self, X):
        """Probability estimates, shape (n_samples, n_classes), classes as in `classes_`."""
        self._check_is_fitted()
        y_pred = self._forward_pass_fast(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, BaseMultilayerPerceptron):
    """Multi-layer Perceptron regressor: scikit-learn's MLPRegressor, trained by fastmlp's engine.

    It optimizes the (half) squared error, or the half Poisson deviance with a log link, using
    LBFGS or stochastic gradient descent. Parameters and attributes are those of
    :class:`sklearn.neural_network.MLPRegressor`, and beyond them those of
    :class:`MLPClassifier` (activations, solvers, regularisers; no class_weight), and:

    loss : also 'absolute_error' (mean |y - p| over samples and outputs, torch's L1Loss) and
        'huber' (torch's HuberLoss, mean over samples and outputs)
    huber_delta : float, default=1.0 (huber's delta)
    """

    _parameter_constraints: dict = {
        **BaseMultilayerPerceptron._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson", "absolute_error", "huber"})],
        "huber_delta": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 negative_slope=0.01, elu_alpha=1.0, softplus_beta=1.0,
                 softplus_threshold=20.0, maxout_pieces=2, eps=None, rho=None,
                 weight_decay=None, lr_decay=0.0, initial_accumulator_value=None,
                 rmsprop_momentum=0.0, centered=False, momentum_decay=4e-3,
                 decoupled_weight_decay=False, amsgrad=False, learning_rate_power=-0.5,
                 l1_regularization_strength=0.0, l2_regularization_strength=0.0,
                 l2_shrinkage_regularization_strength=0.0, ftrl_beta=0.0, dropout=0.0,
                 max_grad_norm=None, weight_clip=None, batch_norm=False, batch_norm_momentum=0.1,
                 batch_norm_eps=1e-5, huber_delta=1.0):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
            alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            loss=loss, shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
            negative_slope=negative_slope, elu_alpha=elu_alpha, softplus_beta=softplus_beta,
            softplus_threshold=softplus_threshold, maxout_pieces=maxout_pieces, eps=eps, rho=rho,
            weight_decay=weight_decay, lr_decay=lr_decay,
            initial_accumulator_value=initial_accumulator_value,
            rmsprop_momentum=rmsprop_momentum, centered=centered, momentum_decay=momentum_decay,
            decoupled_weight_decay=decoupled_weight_decay, amsgrad=amsgrad,
            learning_rate_power=learning_rate_power,
            l1_regularization_strength=l1_regularization_strength,
            l2_regularization_strength=l2_regularization_strength,
            l2_shrinkage_regularization_strength=l2_shrinkage_regularization_strength,
            ftrl_beta=ftrl_beta, dropout=dropout,
            max_grad_norm=max_grad_norm, weight_clip=weight_clip, batch_norm=batch_norm,
            batch_norm_momentum=batch_norm_momentum, batch_norm_eps=batch_norm_eps,
        )
        self.huber_delta = huber_delta

    def predict(self, X):
        """Predict using the multi-layer perceptron model: shape (n_samples,) or
        (n_samples, n_outputs)."""
        self._check_is_fitted()
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if y_pred.shape[1] == 1:
            return y_pred.ravel()
        return y_pred

    def _score(self, X, y, sample_weight=None):
        return super()._score_with_function(
            X, y, sample_weight=sample_weight, score_function=r2_score
        )

    def _validate_input(self, X, y, incremental, reset):
        X, y = _validate_training_data(
            self, X, y, accept_sparse=["csr", "csc"], multi_output=True, y_numeric=True,
            dtype=(np.float64, np.float32), reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    def _steady_target(self, y, dtype):
        # A 1-D target (_plain_target's) is one output's column, as _validate_and_train
        # reshapes it.
        return y.reshape((-1, 1))

    def _steady_call_target(self, y):
        # Floats (SteadyCall casts them to the compute dtype as _stochastic_run's copy does).
        if type(y) is not np.ndarray or y.dtype not in (np.float64, np.float32):
            return None
        return "values", None, 1

    # scikit-learn's MLPRegressor passes `est._check_solver` uncalled here, so its partial_fit
    # exists for every solver (and runs L-BFGS to convergence for solver='lbfgs'); kept as is.
    @available_if(lambda est: est._check_solver)
    @_partial_fit_context
    def partial_fit(self, X, y, sample_weight=None):
        """Update the model with a single iteration over the given data."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)
