# cython: language_level=3
"""The engine's vocabulary: every name a user or a module may say, and the engine's code for it.

Design
------
The codes are the C enums of csrc/fastmlp_kernels.h, read here through fastmlp/_engine/_kernels.pxd:
this module is the one place where a name meets its number, so the estimators' parameter
checks, the engine, the ONNX export and the tests all read the same tables, and a new
activation, loss or solver is added to the C enum and here, nowhere else.
"""
from fastmlp._engine._kernels cimport (
    FM_ELU, FM_EXP, FM_GELU, FM_IDENTITY, FM_LEAKY_RELU, FM_LOGISTIC, FM_LOSS_ABSOLUTE,
    FM_LOSS_BINARY_LOG, FM_LOSS_HUBER, FM_LOSS_LOG, FM_LOSS_POISSON, FM_LOSS_SQUARED,
    FM_LOSS_SQUARED_LOGISTIC, FM_LOSS_SQUARED_SOFTMAX, FM_MAXOUT, FM_MISH, FM_RELU, FM_SILU,
    FM_SOFTMAX, FM_SOFTPLUS, FM_SOLVER_ADADELTA, FM_SOLVER_ADAGRAD, FM_SOLVER_ADAM,
    FM_SOLVER_ADAMAX, FM_SOLVER_ADAMW, FM_SOLVER_FTRL, FM_SOLVER_NADAM, FM_SOLVER_RMSPROP,
    FM_SOLVER_SGD,
    FM_TANH,
)

#: Every element-wise activation (bias_activation_forward's codes), hidden or output.
ACTIVATION_CODES = {
    "identity": FM_IDENTITY, "logistic": FM_LOGISTIC, "tanh": FM_TANH, "relu": FM_RELU,
    "softmax": FM_SOFTMAX, "exp": FM_EXP, "leaky_relu": FM_LEAKY_RELU, "elu": FM_ELU,
    "gelu": FM_GELU, "silu": FM_SILU, "mish": FM_MISH, "softplus": FM_SOFTPLUS,
}
#: The estimators' `activation`: every activation but the output-only ones, plus maxout (a layer
#: kind of its own, fastmlp/_engine/_layer_maxout.pxd, never a code of bias_activation_forward).
HIDDEN_ACTIVATIONS = {name: code for name, code in ACTIVATION_CODES.items()
                      if name not in ("softmax", "exp")}
HIDDEN_ACTIVATIONS["maxout"] = FM_MAXOUT

#: Every loss the output layer fuses with its activation.
LOSS_CODES = {
    "squared_error": FM_LOSS_SQUARED, "log_loss": FM_LOSS_LOG,
    "binary_log_loss": FM_LOSS_BINARY_LOG, "poisson": FM_LOSS_POISSON,
    "absolute_error": FM_LOSS_ABSOLUTE, "huber": FM_LOSS_HUBER,
    "softmax_squared_error": FM_LOSS_SQUARED_SOFTMAX,
    "logistic_squared_error": FM_LOSS_SQUARED_LOGISTIC,
}
#: out_activation_ -> (activation code, the canonical loss's code).
OUTPUT_LOSSES = {
    "softmax": (FM_SOFTMAX, FM_LOSS_LOG),
    "logistic": (FM_LOGISTIC, FM_LOSS_BINARY_LOG),
    "identity": (FM_IDENTITY, FM_LOSS_SQUARED),
    "exp": (FM_EXP, FM_LOSS_POISSON),
}
#: (out_activation_, the estimator's loss) -> loss code, where the loss is not the output's
#: canonical one (every other pair takes OUTPUT_LOSSES's).
OTHER_LOSSES = {
    ("identity", "absolute_error"): FM_LOSS_ABSOLUTE,
    ("identity", "huber"): FM_LOSS_HUBER,
    ("softmax", "squared_error"): FM_LOSS_SQUARED_SOFTMAX,
    ("logistic", "squared_error"): FM_LOSS_SQUARED_LOGISTIC,
}

#: The stochastic solvers (the estimators' `solver` but lbfgs, which scipy runs).
SOLVERS = {
    "sgd": FM_SOLVER_SGD, "adam": FM_SOLVER_ADAM, "adagrad": FM_SOLVER_ADAGRAD,
    "rmsprop": FM_SOLVER_RMSPROP, "adadelta": FM_SOLVER_ADADELTA, "adamax": FM_SOLVER_ADAMAX,
    "nadam": FM_SOLVER_NADAM, "adamw": FM_SOLVER_ADAMW, "ftrl": FM_SOLVER_FTRL,
}
