"""The engine's runtime: loading it (libgomp's spin count), thread counts, and BLAS threading
around its OpenMP regions.

Loading. libgomp reads GOMP_SPINCOUNT once, when it is loaded with the engine. Its default spins
about 300,000 times at every barrier before sleeping; a mini-batch had two barriers when this
was measured (one region's end now, and the engine's own waits spin as long:
csrc/fm_openmp.h), and when the machine is busy the spinning thread steals the core its
partner needs. Measured on the 2-core machine (`small` workload, 2 threads, ms per epoch):
default 11.5 quiet / 388 loaded; 1000-3000 spins 7.4-8.2 quiet / 51 loaded (1000); 0 (sleep at
once) 20.5 quiet / 18.5 loaded. The variable is set only for the load and removed again, so child processes see the
user's environment; a user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT is left to rule.

Threads.
scikit-learn's convention for OpenMP estimators: use every core OpenMP is allowed (so
OMP_NUM_THREADS and threadpoolctl's limits on OpenMP are honoured), resolved once in Python and
passed down as an integer; fewer for mini-batches too small to pay for them
(`threads_for_batch`). While the engine runs, BLAS is held to one thread: inside OpenMP
regions so that the two never oversubscribe the cores, and everywhere because OpenBLAS's
threaded GEMM and GEMV round differently from its serial ones (they cut the product into other
tiles) — a prediction must not depend on how many threads BLAS happened to have.

BLAS thread counts are process-wide, but fits and predictions may run in several Python threads
at once. A limit per call would break when calls overlap: the first to finish would restore
threaded BLAS under the feet of the others, and the last would leave BLAS single-threaded for
good (it "restores" the 1 it found). So the limit is shared and reference-counted: the first
call to enter sets it, the last to leave restores what the first found.

threadpoolctl finds the BLAS libraries once; their counts are then read and set through the
functions its per-library controllers call (`_thread_count_calls`), where a fresh
`threadpool_limits` costs ~15 us (this runs around every prediction and partial_fit). When every
library is an OpenBLAS whose own functions were found, the limit itself is the engine's
(fastmlp/_engine/_trainer.pyx, `hold_blas`): it calls them by address, with no ctypes call around
each (~0.4 us to take and release, where ctypes' four calls cost ~4 us), and the engine's own
callers (a partial_fit's steady call) take it without Python. Otherwise it is the Python limit
below, through the controllers.
threadpoolctl (3.6 and later) lets only one "controlling" Python thread change OpenBLAS's
process-wide pool through its public `set_num_threads` and silently ignores the others, so a
limit set from a worker thread would do nothing. Our changes are serialised by our own lock, so
they go straight to the library (its own functions, or the controller's `_real_set_num_threads`);
where a threadpoolctl has neither, the calling thread takes control for each change and hands it
back at once.
"""
import ctypes
import importlib
import os
import threading

import threadpoolctl
from threadpoolctl import ThreadpoolController


def _load_engine():
    """Import the compiled engine with libgomp's spin-wait shortened, unless the user chose one."""
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return importlib.import_module("fastmlp._engine")
    os.environ["GOMP_SPINCOUNT"] = "2000"
    try:
        return importlib.import_module("fastmlp._engine")
    finally:
        del os.environ["GOMP_SPINCOUNT"]


_engine = _load_engine()

#: Whether the engine was built with OpenMP (a compiler without it builds a serial engine).
OPENMP_ENABLED = bool(_engine.OPENMP_ENABLED)

_lock = threading.Lock()
_blas = None  # (get, set) of each loaded BLAS library's thread count, found on first use
_restore = []  # (set, thread count it had) of each library while the limit is held
_users = 0


def effective_n_threads():
    """The number of threads the engine uses: OpenMP's maximum (1 in a serial build)."""
    return max(1, _engine.max_threads())


#: The environment variable that sets the schedule class (`schedule_cpus`) for this process.
SCHEDULE_CPUS_VARIABLE = "FASTMLP_SCHEDULE_CPUS"
#: The schedule classes: powers of two from 2 (the rules measured on the 2-core machine) to 16
#: (the engine cuts no pass into more than 16 blocks: _schedule.pxd's MAX_BLOCKS).
SCHEDULE_CLASSES = (2, 4, 8, 16)


def _process_cpus():
    # The CPUs this process may run on (a cgroup's cpuset or taskset narrows them), as
    # os.process_cpu_count() of Python 3.13 counts them; the machine's count where the OS has
    # no affinity mask.
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


_PROCESS_CPUS = _process_cpus()
_schedule = None  # the class, once resolved (schedule_cpus)


def schedule_cpus():
    """The schedule class: how many CPUs the engine cuts a mini-batch's work for.

    The blocks of a mini-batch (its row blocks and each W's blocks of rows) are what fixes a
    fit's bits; threads only take them in turn, so a fit is bitwise the same on any number of
    threads. Two row blocks (the rules measured on the 2-core machine) leave 14 of 16 cores
    idle in the row pass, and smaller blocks cost arithmetic on few cores (each block's GEMM
    packs its whole W again): so the blocks are cut for the machine, not for the threads. The
    class is the CPUs this process may run on (its affinity mask, set by taskset, a cgroup's
    cpuset, a batch scheduler), rounded down to a power of two from 2 to 16 -- never the
    thread count, which OMP_NUM_THREADS, threadpoolctl and `threads_for_batch` change, nor a
    measurement. FASTMLP_SCHEDULE_CPUS sets it instead (2, 4, 8 or 16): to train a 16-core
    server's bits on a laptop, or to keep 2's blocks where many one-thread fits share a big
    machine (a grid search with n_jobs=-1: class 16 costs up to ~1.8x the arithmetic of a
    thread alone; benchmarks/RESULTS.md, "Many cores"). Machines of one class and BLAS kernel
    give the same bits.

    Resolved once, at the first fit (as OpenMP reads OMP_NUM_THREADS once), and kept: every fit
    and partial_fit asks (reading the environment cost 1.3 us a call, of a 54-117 us
    partial_fit), and a process keeps one class. A bad value raises here, at each fit, until
    it is mended."""
    global _schedule
    if _schedule is not None:
        return _schedule
    value = os.environ.get(SCHEDULE_CPUS_VARIABLE)
    if value is None:
        cpus = max([c for c in SCHEDULE_CLASSES if c <= _PROCESS_CPUS] or SCHEDULE_CLASSES[:1])
    else:
        try:
            cpus = int(value)
        except ValueError:
            cpus = 0
        if cpus not in SCHEDULE_CLASSES:
            raise ValueError(f"{SCHEDULE_CPUS_VARIABLE} must be one of "
                             f"{', '.join(map(str, SCHEDULE_CLASSES))}, got {value!r}.")
    _schedule = cpus
    return cpus


# A thread joins a mini-batch only if it gets at least this many multiply-adds of the forward
# pass (batch rows x the network's parameters, a weight's multiply-add or a bias's add for each
# row; the backward pass is twice that, in proportion). Below, its fixed cost per batch (the
# fork and join, waking a partner that slept in between; two barriers when measured) and above
# all the risk of waiting for a thread the OS gave to another process outweigh its half of the
# arithmetic. Measured on the 2-core machine, shared with other sessions, by
# `python benchmarks/batch_threads.py --reps 21 [--busy]` (2 threads' time per batch over 1
# thread's: the best and the median of 21 epochs, a neighbour busy on part of the machine; the
# median beside a process spinning on one core):
#   shape x batch rows          M multiply-adds  best   median  busy core
#   (64, 100, 10) x 32                 0.24      1.82    1.87    3.82   (the per-call partial_fit)
#   (64, 100, 10) x 200                1.48      0.93    0.93    1.64   (`small`)
#   (256, 256, 10) x 64                4.36      0.98    1.01    2.16
#   (784, 256, 128, 10) x 32           7.51      1.23    1.89    1.60   (`tiny-batch`)
#   (64, 100, 10) x 1024               7.58      0.74    0.73    1.29
#   (256, 256, 10) x 128               8.72      0.84    0.87    1.96
#   (784, 256, 128, 10) x 48          11.3       1.35    1.67    1.18
#   (256, 256, 10) x 256              17.4       0.74    0.74    1.19
#   (784, 256, 128, 10) x 256         60.1       0.59    0.95    1.08   (`mnist`: 1.72-1.86x
#                                                                        faster on a quiet one)
# At its quietest a second thread pays from ~1.5-4 M on (up to 1.35x faster by 8 M); with a
# process spinning beside it loses 1.3-3.8x below ~10 M and 1.1-1.2x above. 2**22 per thread
# keeps mnist-sized batches on both cores and gives up at most that quiet 1.35x below 8 M, for
# not losing the 1.3-3.8x. Only the shapes decide (never a timing), and the engine's
# results are bitwise the same on any number of threads, so the choice changes no result.
# Above the threshold the engine itself then picks one thread or all per batch, by what each
# has just cost (fastmlp/_engine/_threads.pxd): that is what adapts to a busy core, so the
# threshold is 2**21 rather than 2**22, which keeps `tiny-batch` (7.5 M) on two threads where
# they pay (0.34 s/epoch against 0.41-0.45 on one, quiet) and leaves the busy case to the engine.
MIN_MULTIPLY_ADDS_PER_THREAD = 2**21


def batch_thread_cap(batch_rows, n_params):
    """How many threads get MIN_MULTIPLY_ADDS_PER_THREAD each of a mini-batch of `batch_rows`
    rows through a network of `n_params` parameters (weights and biases)."""
    return batch_rows * n_params // MIN_MULTIPLY_ADDS_PER_THREAD


def threads_for_batch(batch_rows, n_params):
    """The engine's threads for such mini-batches: their `batch_thread_cap`, at least 1 and at
    most effective_n_threads(). (A partial_fit's compiled steady call applies the same rule
    to the cap at each call: fastmlp/_engine/_trainer.pyx, SteadyCall.epoch.)"""
    return max(1, min(effective_n_threads(), batch_thread_cap(batch_rows, n_params)))


def batch_schedule(batch_rows, n_params, cpus=None):
    """The schedule class for a Trainer of mini-batches of `batch_rows` rows through a network of
    `n_params` parameters: 1 (every pass one block) when no machine gives such a batch two
    threads (`threads_for_batch`, a rule of the shapes only), else `cpus` (by default
    `schedule_cpus()`; the Dask estimators pass the client's). Blocks cut for threads that
    never come only cost: each is another GEMM call, and its packing of W or of the deltas.
    Measured on the 2-core AMD EPYC VM, the engine's epoch of one batch on one thread: 32 rows
    of (64, 100, 10), partial_fit's, 44.8-45.0 us in class 2's 2 row blocks and 4 weight jobs,
    37.6-37.8 us whole; 200 rows (`small`) 163 against 145 us."""
    if batch_rows * n_params // MIN_MULTIPLY_ADDS_PER_THREAD < 2:
        return 1
    return schedule_cpus() if cpus is None else cpus


def _release_blas_control():
    """Forget threadpoolctl's controlling thread: the next thread to set a limit takes it."""
    clear = getattr(getattr(threadpoolctl, "OpenBLASController", None),
                    "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)


def _set_blas_threads(library, n_threads):
    direct = getattr(library, "_real_set_num_threads", None)
    if direct is not None:
        direct(n_threads)
    else:
        _release_blas_control()
        library.set_num_threads(n_threads)
        _release_blas_control()


def _thread_count_calls(library):
    """(get, set) of a BLAS library's thread count. For OpenBLAS they are the library's own
    functions (ctypes functions, whose addresses the engine's limit calls): the ones
    threadpoolctl's controller calls (omp_get_max_threads and omp_set_num_threads under its
    OpenMP threading layer, openblas_get_num_threads and openblas_set_num_threads otherwise,
    with the library's symbol affixes). Any other library, or a threadpoolctl without those
    methods, goes through the controller (Python functions)."""
    get_symbol = getattr(library, "_get_symbol", None)
    if (getattr(library, "internal_api", None) == "openblas" and get_symbol is not None
            and hasattr(library, "_real_set_num_threads")):
        if getattr(library, "threading_layer", None) == "openmp":
            get, set_ = get_symbol("omp_get_max_threads"), get_symbol("omp_set_num_threads")
        else:
            get, set_ = (get_symbol("openblas_get_num_threads"),
                         get_symbol("openblas_set_num_threads"))
        if get is not None and set_ is not None:
            return get, set_
    return library.get_num_threads, lambda n_threads: _set_blas_threads(library, n_threads)


def _function_address(function):
    """The address of a ctypes function, or None for any other callable."""
    if isinstance(function, ctypes._CFuncPtr):
        return ctypes.cast(function, ctypes.c_void_p).value
    return None


def _find_blas():
    """Find the BLAS libraries' thread-count calls, once (the first limit, under _lock). When
    every pair is a ctypes function, the engine takes their addresses and holds the limit
    itself; returns whether it does."""
    global _blas
    _blas = [_thread_count_calls(library) for library in
             ThreadpoolController().select(user_api="blas").lib_controllers]
    addresses = [(_function_address(get), _function_address(set_)) for get, set_ in _blas]
    if all(get and set_ for get, set_ in addresses):
        _engine.blas_thread_calls(addresses)
        return True
    return False


_engine_holds_blas = None  # whether the engine's limit serves (found with _blas)


class _SingleThreadedBlas:
    """The shared, reference-counted limit (one stateless instance serves every caller)."""

    def __enter__(self):
        global _users
        if engine_holds_blas():
            _engine.blas_limit_enter()
            return self
        with _lock:
            if _users == 0:
                for get_threads, set_threads in _blas:
                    n_threads = get_threads()
                    if n_threads is not None and n_threads != 1:
                        set_threads(1)
                        _restore.append((set_threads, n_threads))
            _users += 1
        return self

    def __exit__(self, *exc_info):
        global _users
        if _engine_holds_blas:
            _engine.blas_limit_exit()
            return
        with _lock:
            _users -= 1
            if _users == 0:
                for set_threads, n_threads in _restore:
                    set_threads(n_threads)
                _restore.clear()


_SINGLE_THREADED_BLAS = _SingleThreadedBlas()


def engine_holds_blas():
    """Whether the BLAS limit is the engine's own (`hold_blas`, called without Python)."""
    global _engine_holds_blas
    if _engine_holds_blas is None:
        with _lock:
            if _engine_holds_blas is None:
                _engine_holds_blas = _find_blas()
    return _engine_holds_blas


def single_threaded_blas():
    """Hold BLAS to one thread inside the `with` block, for as long as any thread is inside
    one."""
    return _SINGLE_THREADED_BLAS
