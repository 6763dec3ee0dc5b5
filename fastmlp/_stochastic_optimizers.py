"""The stochastic optimizers' schedules and state; their steps run in the engine.

Design
------
scikit-learn's SGDOptimizer and AdamOptimizer (sklearn/neural_network/_stochastic_optimizers.py)
hold lists of per-layer arrays and step in Python. Here each holds its state as flat vectors with
the parameter vector's layout, and the step itself is one C loop (csrc/optimizers.c) run by the
engine after every mini-batch. What stays in Python is what happens once per epoch: the
learning-rate schedule and the decision to stop, with scikit-learn's messages.
"""

import numpy as np

from fastmlp._engine import SOLVERS


class SGDOptimizer:
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
        return self.velocities, self.velocities[:0]

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


class AdamOptimizer:
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
        return self.ms, self.vs

    @property
    def learning_rate(self):
        """The bias-corrected step size of the last step taken (learning_rate_init before)."""
        if self.t == 0:
            return float(self.learning_rate_init)
        return (self.learning_rate_init * np.sqrt(1 - self.beta_2**self.t)
                / (1 - self.beta_1**self.t))

    def iteration_ends(self, time_step):
        pass

    def trigger_stopping(self, msg, verbose):
        if verbose:
            print(msg + " Stopping.")
        return True
