"""fastmlp: scikit-learn's multilayer perceptrons, trained by a Cython/OpenMP engine over BLAS."""
# The runtime first: it loads the compiled engine with libgomp's spin count (see _runtime).
from fastmlp import _runtime  # noqa: F401
from fastmlp._callbacks import TrainingProgress  # noqa: E402
from fastmlp._multilayer_perceptron import MLPClassifier, MLPRegressor  # noqa: E402
from fastmlp._onnx import register_onnx_converters  # noqa: E402
from fastmlp._persistence import SKOPS_TRUSTED_TYPES  # noqa: E402
from fastmlp._plot import plot_gradient_norms, plot_training  # noqa: E402
from fastmlp._version import __version__  # noqa: E402

__all__ = ["MLPClassifier", "MLPRegressor", "SKOPS_TRUSTED_TYPES", "TrainingProgress",
           "__version__", "plot_gradient_norms", "plot_training", "register_onnx_converters"]
