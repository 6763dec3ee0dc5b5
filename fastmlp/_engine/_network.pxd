from fastmlp._engine._geometry cimport Geometry
from fastmlp._engine._stores cimport StoreChoice
from fastmlp._engine._threads cimport ThreadChoice


cdef class Network:
    cdef Geometry g
    cdef Py_ssize_t[::1] _sizes  # owns the memory the Geometry's pointers point into
    # One thread or all, per batch (_threads.pxd): what this network's batches cost on this
    # machine lately, kept across the trainers of a model (partial_fit makes one per call).
    cdef ThreadChoice choice
    cdef ThreadChoice kept_choice  # the choice for the thread count before (_threads.choice_for)
    cdef object turn_threads, turn_seconds  # the buffers of record_thread_turns (numpy arrays)
    # How a two-thread batch stores its gathered rows, and its optimizer step's W, and whether
    # its products fetch the next rows of W (_stores.pxd), kept the same way.
    cdef StoreChoice store
    cdef StoreChoice step_store
    cdef StoreChoice fetch
    cdef readonly Py_ssize_t n_coefs, n_params, n_running
