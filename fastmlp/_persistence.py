"""Saving and loading fitted estimators: pickle / joblib as scikit-learn, and skops' secure format.

Design
------
An estimator pickles its flat weight vector `_theta` alone; `__setstate__` rebuilds `coefs_` and
`intercepts_` as views into it, stamps and checks fastmlp's version, and checks here that the
state describes a network its weights fit. That check matters for skops: its promise is that
loading a file runs no code but the trusted types' own, and the engine reads the weights through
raw pointers, so a damaged or crafted state must fail at load with an error, not read out of
bounds at predict.

skops rebuilds objects with `__new__` + `__setstate__`, exactly as pickle does, so the same code
serves both. The types a fitted fastmlp model holds beyond scikit-learn's and numpy's (which skops
trusts by default) are the estimators and the solver state kept for `warm_start` and
`partial_fit` (and fastmlp's TrainingProgress, if set as a callback); `SKOPS_TRUSTED_TYPES` lists
them by full name.
"""

import inspect

import numpy as np


def _solver_state_types():
    from fastmlp import _stochastic_optimizers

    return [cls for _, cls in inspect.getmembers(_stochastic_optimizers, inspect.isclass)
            if cls.__module__ == _stochastic_optimizers.__name__]


def _trusted_type_names():
    from fastmlp._callbacks import TrainingProgress
    from fastmlp._multilayer_perceptron import MLPClassifier, MLPRegressor

    return [f"{cls.__module__}.{cls.__qualname__}"
            for cls in [MLPClassifier, MLPRegressor, *_solver_state_types(), TrainingProgress]]


def check_loaded_state(estimator):
    """Raise ValueError unless a loaded fitted state is one fastmlp could have written."""
    theta = estimator.__dict__.get("_theta")
    problem = None
    if not isinstance(theta, np.ndarray) or theta.ndim != 1 or theta.dtype not in (
            np.float32, np.float64):
        problem = "its weights are not a 1-D float32 or float64 array"
    else:
        units = list(estimator.__dict__.get("_layer_units", []))
        try:
            n_params = estimator._network().n_params
        except Exception as exc:  # unknown activation names, bad sizes
            problem = f"its network cannot be built ({exc})"
        else:
            if (len(units) < 2 or min(units) < 1 or theta.shape[0] != n_params
                    or units[0] != estimator.__dict__.get("n_features_in_")
                    or units[-1] != estimator.__dict__.get("n_outputs_")):
                problem = "its weights do not match its layer sizes"
    if problem is not None:
        raise ValueError(
            f"This {type(estimator).__name__} cannot be loaded: {problem}. The file is damaged "
            "or was not written by fastmlp."
        )


def save_model(model, path):
    """Write `model` to `path`: skops' format if the name ends in .skops, joblib otherwise."""
    path = str(path)
    if path.endswith(".skops"):
        import skops.io

        skops.io.dump(model, path)
    else:
        import joblib

        joblib.dump(model, path)


def load_model(path, trusted=None):
    """Read a model written by `save_model` (or by joblib / pickle / skops directly).

    A .skops file is loaded with `trusted` (default: SKOPS_TRUSTED_TYPES); anything else with
    joblib, which, like pickle, runs code from the file: load only files you trust.
    """
    path = str(path)
    if path.endswith(".skops"):
        import skops.io

        from fastmlp import SKOPS_TRUSTED_TYPES

        return skops.io.load(path, trusted=SKOPS_TRUSTED_TYPES if trusted is None else trusted)
    import joblib

    return joblib.load(path)
