"""fastmlp: scikit-learn's multilayer perceptrons, trained by a Cython/OpenMP engine over BLAS."""
from fastmlp._multilayer_perceptron import MLPClassifier, MLPRegressor

__version__ = "0.1.0"
__all__ = ["MLPClassifier", "MLPRegressor", "__version__"]
