"""Thread counts and BLAS threading around the engine's OpenMP regions.

scikit-learn's convention for OpenMP estimators: use every core OpenMP is allowed (so
OMP_NUM_THREADS and threadpoolctl's limits on OpenMP are honoured), resolved once in Python and
passed down as an integer. While the engine runs its own threads, BLAS is held to one thread so
that the two never oversubscribe the cores.

BLAS thread limits are process-wide, but fits and predictions may run in several Python threads
at once. One limit per call would break when calls overlap: the first to finish would restore
threaded BLAS under the feet of the others, and the last would leave BLAS single-threaded for
good (it "restores" the limit it found, 1). So the limit is shared and reference-counted: the
first call to enter sets it, the last to leave restores what the first found.

threadpoolctl (3.6 and later) lets only one "controlling" Python thread change OpenBLAS's
process-wide pool and silently ignores the others, so a fit or predict in a worker thread would
run with threaded BLAS: oversubscribed, and rounded differently from the same call in the main
thread (OpenBLAS's threaded GEMM splits the work into other tiles). Our changes are serialised by
our own lock, so the calling thread takes control for each change and hands it back at once.
"""
import threading
from contextlib import contextmanager

import threadpoolctl
from threadpoolctl import ThreadpoolController

from fastmlp import _engine

_lock = threading.Lock()
_controller = None  # made on first use (~ms); later limits then cost ~20 us
_limiter = None  # the shared limit while _users > 0
_users = 0


def _release_blas_control():
    """Forget threadpoolctl's controlling thread: the next thread to set a limit takes control."""
    clear = getattr(getattr(threadpoolctl, "OpenBLASController", None),
                    "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)


def effective_n_threads():
    """The number of threads the engine uses: OpenMP's maximum (1 in a serial build)."""
    return max(1, _engine.max_threads())


@contextmanager
def single_threaded_blas():
    """Hold BLAS to one thread inside the block, for as long as any thread is inside one."""
    global _controller, _limiter, _users
    with _lock:
        if _users == 0:
            if _controller is None:
                _controller = ThreadpoolController()
            _release_blas_control()
            _limiter = _controller.limit(limits=1, user_api="blas")
            _release_blas_control()
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                _release_blas_control()
                _limiter.restore_original_limits()
                _release_blas_control()
                _limiter = None
