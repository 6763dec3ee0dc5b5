from fastmlp._engine._geometry cimport Geometry


cdef class Network:
    cdef Geometry g
    cdef Py_ssize_t[::1] _sizes  # owns the memory the Geometry's pointers point into
    cdef readonly Py_ssize_t n_coefs, n_params, n_running
