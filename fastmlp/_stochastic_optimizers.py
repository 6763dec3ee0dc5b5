"""The stochastic optimizers' schedules and state; their steps run in the engine.

Design
------
scikit-learn's SGDOptimizer and AdamOptimizer (sklearn/neural_network/_stochastic_optimizers.py)
hold lists of per-layer arrays and step in Python. Here each holds its state as flat vectors with
the parameter vector's layout, and the step itself is one C loop (csrc/optimizers.c) run by the
engine after every mini-batch. What stays in Python is what happens once per epoch: the
learning-rate schedule and the decision to stop, with scikit-learn's messages.

Beyond scikit-learn, TorchOptimizer holds the torch.optim solvers (adagrad, rmsprop, adadelta,
adamax, nadam, adamw) the same way: hyper-parameters under torch's names and defaults, state
vectors in theta's layout (initialised as torch initialises them), and the two scalars of state
(the step count t, NAdam's product of momentum coefficients) that the engine advances.

FtrlOptimizer is Keras 3's keras.optimizers.Ftrl (McMahan et al. 2013), the same way: Keras's
hyper-parameter names and defaults (its `beta` as `ftrl_beta`), its two state vectors.

The engine reads nothing of these objects by name: each epoch, `spec()` hands it one plain
record (the engine's OPTIM_SPEC, csrc/fastmlp_kernels.h's fm_optim) with the solver's code, its
hyper-parameters, the learning rate of the epoch and the scalar state; the engine advances the
record's step count (and NAdam's mu_product) as it steps, and `took_steps` reads them back.
"""

import numpy as np

from fastmlp._engine import OPTIM_SPEC, SOLVERS


class _EngineSolver:
    """The part every solver shares: the record the engine steps with."""

    def _spec_fields(self):
        """The solver's fields of OPTIM_SPEC (those it leaves out are 0)."""
        raise NotImplementedError

    def spec(self):
        """This epoch's record for the engine: the solver, its hyper-parameters, its state.

        The record is kept from one epoch to the next and rewritten only when a field changed
        (a learning-rate schedule, state set from outside): filling a fresh one field by field
        cost ~2.3 us of a small partial_fit call. (The engine takes its bytes, not its buffer's
        format: see Trainer.epoch.) Nothing of it is pickled (__getstate__)."""
        fields = self._spec_fields()
        fields["solver"] = self.solver
        fields["t"] = self.t
        record = self.__dict__.get("_record")
        if record is None or fields != self._record_fields:
            record = np.zeros(1, dtype=OPTIM_SPEC)
            for name, value in fields.items():
                record[name] = value
            self._record, self._record_fields = record, fields
        return record

    def took_steps(self, spec):
        """Keep the scalar state the engine advanced in `spec`."""
        self.t = int(spec["t"][0])
        self._note_taken(spec)

    def _note_taken(self, spec):
        """What the kept record now holds (the engine advanced it): the next epoch's fields."""
        if spec is self.__dict__.get("_record"):
            self._record_fields["t"] = self.t

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_record", None)
        state.pop("_record_fields", None)
        return state


class SGDOptimizer(_EngineSolver):
    """SGD with momentum: v = momentum v - lr g; theta += v (or momentum v - lr g, Nesterov)."""

    solver = SOLVERS["sgd"]

    def __init__(self, n_params, dtype, learning_rate_init=0.1, lr_schedule="constant",
                 momentum=0.9, nesterov=True, power_t=0.5):
        self.learning_rate_init = learning_rate_init
        self.learning_rate = float(learning_rate_init)
        self.lr_schedule = lr_schedule
        self.momentum = momentum
        self.nesterov = nesterov
        self.power_t = power_t
        self.t = 0
        self.velocities = np.zeros(n_params, dtype=dtype)

    @property
    def state(self):
        return self.velocities, self.velocities[:0], self.velocities[:0]

    def _spec_fields(self):
        return {"lr": self.learning_rate, "momentum": self.momentum, "nesterov": self.nesterov}

    def iteration_ends(self, time_step):
        """Per-epoch schedule; time_step is the number of samples seen so far."""
        if self.lr_schedule == "invscaling":
            self.learning_rate = float(self.learning_rate_init) / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        if self.lr_schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(msg + " Setting learning rate to %f" % self.learning_rate)
        return False


class _ConstantSchedule(_EngineSolver):
    """The per-epoch part of a solver whose learning rate has no schedule: nothing to do at an
    epoch's end, and stop when the loss stops improving (scikit-learn's AdamOptimizer)."""

    def iteration_ends(self, time_step):
        pass

    def trigger_stopping(self, msg, verbose):
        if verbose:
            print(msg + " Stopping.")
        return True


class AdamOptimizer(_ConstantSchedule):
    """Adam; the engine folds the bias corrections into the step size of step t:
    lr_t = lr_init sqrt(1 - beta_2^t) / (1 - beta_1^t)."""

    solver = SOLVERS["adam"]

    def __init__(self, n_params, dtype, learning_rate_init=0.001, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8):
        self.learning_rate_init = learning_rate_init
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.t = 0
        self.ms = np.zeros(n_params, dtype=dtype)
        self.vs = np.zeros(n_params, dtype=dtype)

    @property
    def state(self):
        return self.ms, self.vs, self.vs[:0]

    def _spec_fields(self):
        return {"lr": self.learning_rate_init, "beta_1": self.beta_1, "beta_2": self.beta_2,
                "eps": self.epsilon}

    @property
    def learning_rate(self):
        """The bias-corrected step size of the last step taken (learning_rate_init before)."""
        if self.t == 0:
            return float(self.learning_rate_init)
        return (self.learning_rate_init * np.sqrt(1 - self.beta_2**self.t)
                / (1 - self.beta_1**self.t))



# torch.optim's defaults for the hyper-parameters whose default depends on the solver (an
# estimator parameter left at None takes these). The learning rate is always learning_rate_init.
TORCH_DEFAULTS = {
    "adagrad": {"eps": 1e-10, "weight_decay": 0.0},
    "rmsprop": {"eps": 1e-8, "weight_decay": 0.0, "rho": 0.99},
    "adadelta": {"eps": 1e-6, "weight_decay": 0.0, "rho": 0.9},
    "adamax": {"eps": 1e-8, "weight_decay": 0.0},
    "nadam": {"eps": 1e-8, "weight_decay": 0.0},
    "adamw": {"eps": 1e-8, "weight_decay": 1e-2},
}


class TorchOptimizer(_ConstantSchedule):
    """adagrad, rmsprop, adadelta, adamax, nadam or adamw, as torch.optim defines them.

    Hyper-parameters keep torch's names, except rmsprop's `alpha` (here `rho`, as adadelta's,
    because `alpha` is scikit-learn's L2 penalty) and its `momentum` (here `rmsprop_momentum` in
    the estimators, because `momentum` is scikit-learn's SGD momentum). State vectors (see
    csrc/optimizers.c for each solver's) start as torch starts them: zeros, and adagrad's sum at
    initial_accumulator_value.
    """

    def __init__(self, solver, n_params, dtype, learning_rate_init, *, eps=None,
                 weight_decay=None, beta_1=0.9, beta_2=0.999, rho=None, momentum=0.0,
                 centered=False, lr_decay=0.0, initial_accumulator_value=None,
                 momentum_decay=4e-3, decoupled_weight_decay=False, amsgrad=False):
        defaults = TORCH_DEFAULTS[solver]
        if initial_accumulator_value is None:  # the estimators' default: torch's 0 for adagrad
            initial_accumulator_value = 0.0
        self.name = solver
        self.solver = SOLVERS[solver]
        self.learning_rate_init = learning_rate_init
        self.eps = defaults["eps"] if eps is None else eps
        self.weight_decay = defaults["weight_decay"] if weight_decay is None else weight_decay
        self.rho = defaults.get("rho", 0.0) if rho is None else rho
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.momentum = momentum
        self.centered = centered
        self.lr_decay = lr_decay
        self.momentum_decay = momentum_decay
        self.decoupled_weight_decay = decoupled_weight_decay
        self.amsgrad = amsgrad
        self.t = 0
        self.mu_product = 1.0
        empty = np.zeros(0, dtype=dtype)
        first = np.zeros(n_params, dtype=dtype)
        if solver == "adagrad":
            first[...] = initial_accumulator_value
        uses = {
            "adagrad": (True, False, False),
            "rmsprop": (True, momentum > 0, centered),
            "adadelta": (True, True, False),
            "adamax": (True, True, False),
            "nadam": (True, True, False),
            "adamw": (True, True, amsgrad),
        }[solver]
        self._state = tuple(
            (first if i == 0 else np.zeros(n_params, dtype=dtype)) if used else empty
            for i, used in enumerate(uses)
        )

    @property
    def state(self):
        return self._state

    @property
    def learning_rate(self):
        return float(self.learning_rate_init)

    def _spec_fields(self):
        return {"lr": self.learning_rate_init, "eps": self.eps,
                "weight_decay": self.weight_decay, "beta_1": self.beta_1, "beta_2": self.beta_2,
                "rho": self.rho, "momentum": self.momentum, "lr_decay": self.lr_decay,
                "momentum_decay": self.momentum_decay, "centered": self.centered,
                "amsgrad": self.amsgrad, "decoupled_weight_decay": self.decoupled_weight_decay,
                "mu_product": self.mu_product}

    def took_steps(self, spec):
        self.mu_product = float(spec["mu_product"][0])
        super().took_steps(spec)

    def _note_taken(self, spec):
        super()._note_taken(spec)
        if spec is self.__dict__.get("_record"):
            self._record_fields["mu_product"] = self.mu_product


class FtrlOptimizer(_ConstantSchedule):
    """FTRL-Proximal as Keras 3's keras.optimizers.Ftrl: per parameter an accumulator n of
    squared gradients (starting at initial_accumulator_value) and a linear term z (zeros); see
    csrc/optimizers.c for the update. `learning_rate_init` is Keras's learning_rate."""

    solver = SOLVERS["ftrl"]

    def __init__(self, n_params, dtype, learning_rate_init, *, learning_rate_power=-0.5,
                 initial_accumulator_value=None, l1_regularization_strength=0.0,
                 l2_regularization_strength=0.0, l2_shrinkage_regularization_strength=0.0,
                 beta=0.0):
        self.learning_rate_init = learning_rate_init
        self.learning_rate_power = learning_rate_power
        self.l1_regularization_strength = l1_regularization_strength
        self.l2_regularization_strength = l2_regularization_strength
        self.l2_shrinkage_regularization_strength = l2_shrinkage_regularization_strength
        self.beta = beta
        if initial_accumulator_value is None:  # the estimators' default: Keras's 0.1
            initial_accumulator_value = 0.1
        self.t = 0
        self.accumulators = np.full(n_params, initial_accumulator_value, dtype=dtype)
        self.linears = np.zeros(n_params, dtype=dtype)

    @property
    def state(self):
        return self.accumulators, self.linears, self.linears[:0]

    @property
    def learning_rate(self):
        return float(self.learning_rate_init)

    def _spec_fields(self):
        return {"lr": self.learning_rate_init, "lr_power": self.learning_rate_power,
                "l1": self.l1_regularization_strength, "l2": self.l2_regularization_strength,
                "l2_shrinkage": self.l2_shrinkage_regularization_strength,
                "ftrl_beta": self.beta}
