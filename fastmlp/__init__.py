"""fastmlp: scikit-learn's multilayer perceptrons, trained by a Cython/OpenMP engine over BLAS."""
import os as _os


def _load_engine():
    """Import the compiled engine with libgomp's spin-wait shortened, unless the user chose one.

    libgomp reads GOMP_SPINCOUNT once, when it is loaded with the engine. Its default spins about
    300,000 times at every barrier before sleeping; a mini-batch has two barriers, and when the
    machine is busy the spinning thread steals the core its partner needs. Measured on the 2-core
    machine (`small` workload, 2 threads, ms per epoch): default 11.5 quiet / 388 loaded;
    1000-3000 spins 7.4-8.2 quiet / 51 loaded (1000); 0 (sleep at once) 20.5 quiet / 18.5
    loaded. The variable is set only for the load and removed again, so child processes see the
    user's environment.
    """
    if "OMP_WAIT_POLICY" in _os.environ or "GOMP_SPINCOUNT" in _os.environ:
        from fastmlp import _engine  # noqa: F401
        return
    _os.environ["GOMP_SPINCOUNT"] = "2000"
    try:
        from fastmlp import _engine  # noqa: F401
    finally:
        del _os.environ["GOMP_SPINCOUNT"]


_load_engine()

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
