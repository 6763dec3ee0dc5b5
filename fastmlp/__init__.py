"""fastmlp: scikit-learn's multilayer perceptrons, trained by a Cython/OpenMP engine over BLAS."""
# The runtime first: it loads the compiled engine with libgomp's spin count (see _runtime).
from fastmlp import _runtime  # noqa: F401
from fastmlp import _persistence  # noqa: E402
from fastmlp._callbacks import TrainingProgress  # noqa: E402
from fastmlp._multilayer_perceptron import MLPClassifier, MLPRegressor  # noqa: E402
from fastmlp._onnx import register_onnx_converters  # noqa: E402
from fastmlp._plot import plot_training  # noqa: E402
from fastmlp._version import __version__  # noqa: E402

#: The types, by full name, that a fitted fastmlp model holds beyond those skops trusts by
#: default (scikit-learn's, numpy's): pass as ``skops.io.load(path, trusted=SKOPS_TRUSTED_TYPES)``.
SKOPS_TRUSTED_TYPES = _persistence._trusted_type_names()

__all__ = ["MLPClassifier", "MLPRegressor", "SKOPS_TRUSTED_TYPES", "TrainingProgress",
           "__version__", "plot_training", "register_onnx_converters"]
