"""fastmlp: scikit-learn's multilayer perceptrons, trained by a Cython/OpenMP engine over BLAS."""
from fastmlp import _persistence
from fastmlp._callbacks import TrainingProgress
from fastmlp._multilayer_perceptron import MLPClassifier, MLPRegressor
from fastmlp._onnx import register_onnx_converters
from fastmlp._plot import plot_training
from fastmlp._version import __version__

#: The types, by full name, that a fitted fastmlp model holds beyond those skops trusts by
#: default (scikit-learn's, numpy's): pass as ``skops.io.load(path, trusted=SKOPS_TRUSTED_TYPES)``.
SKOPS_TRUSTED_TYPES = _persistence._trusted_type_names()

__all__ = ["MLPClassifier", "MLPRegressor", "SKOPS_TRUSTED_TYPES", "TrainingProgress",
           "__version__", "plot_training", "register_onnx_converters"]
