"""Thread counts and BLAS threading around the engine's OpenMP regions.

scikit-learn's convention for OpenMP estimators: use every core OpenMP is allowed (so
OMP_NUM_THREADS and threadpoolctl's limits on OpenMP are honoured), resolved once in Python and
passed down as an integer. While the engine runs its own threads, BLAS is held to one thread so
that the two never oversubscribe the cores.
"""
from contextlib import contextmanager

from threadpoolctl import ThreadpoolController

from fastmlp import _engine

_controller = None


def effective_n_threads():
    """The number of threads the engine uses: OpenMP's maximum (1 in a serial build)."""
    return max(1, _engine.max_threads())


@contextmanager
def single_threaded_blas():
    """Hold BLAS to one thread inside the block (a ThreadpoolController made once: ~20 us)."""
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    with _controller.limit(limits=1, user_api="blas"):
        yield
