"""fastmlp: scikit-learn's multilayer perceptrons, trained by a Cython/OpenMP engine over BLAS."""
from fastmlp._callbacks import TrainingProgress
from fastmlp._multilayer_perceptron import MLPClassifier, MLPRegressor
from fastmlp._version import __version__

__all__ = ["MLPClassifier", "MLPRegressor", "TrainingProgress", "__version__"]
