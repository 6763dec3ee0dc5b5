"""Saving and loading fitted estimators: pickle / joblib as scikit-learn, and skops' secure format.

Design
------
An estimator pickles its flat weight vector `_theta` alone; its `__setstate__` rebuilds `coefs_`
and `intercepts_` as views into it, stamps and checks fastmlp's version, and checks that the
state describes a network its weights fit (`_check_loaded_state`, with the estimators, since it
reads their private state). That check matters for skops: its promise is that loading a file
runs no code but the trusted types' own, and the engine reads the weights through raw pointers,
so a damaged or crafted state must fail at load with an error, not read out of bounds at predict.

skops rebuilds objects with `__new__` + `__setstate__`, exactly as pickle does, so the same code
serves both. The types a fitted fastmlp model holds beyond scikit-learn's and numpy's (which skops
trusts by default) are the estimators and the solver state kept for `warm_start` and
`partial_fit` (and fastmlp's TrainingProgress, if set as a callback); `SKOPS_TRUSTED_TYPES` lists
them by full name. This module sits above the estimators: it imports them, they never import it.
"""

import inspect

from fastmlp import _stochastic_optimizers
from fastmlp._callbacks import TrainingProgress
from fastmlp._multilayer_perceptron import MLPClassifier, MLPRegressor


def _solver_state_types():
    return [cls for _, cls in inspect.getmembers(_stochastic_optimizers, inspect.isclass)
            if cls.__module__ == _stochastic_optimizers.__name__]


#: The types, by full name, that a fitted fastmlp model holds beyond those skops trusts by
#: default (scikit-learn's, numpy's): pass as ``skops.io.load(path, trusted=SKOPS_TRUSTED_TYPES)``.
SKOPS_TRUSTED_TYPES = [f"{cls.__module__}.{cls.__qualname__}"
                       for cls in [MLPClassifier, MLPRegressor, *_solver_state_types(),
                                   TrainingProgress]]


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

        return skops.io.load(path, trusted=SKOPS_TRUSTED_TYPES if trusted is None else trusted)
    import joblib

    return joblib.load(path)
