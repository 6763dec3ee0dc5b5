# Interrupts: letting Ctrl-C through an engine call that runs with the GIL released.
#
# Design
# ------
# Python runs its signal handlers (Ctrl-C's KeyboardInterrupt) only when C code asks, with the
# GIL. The calling thread asks after each mini-batch and, so that one long batch (a full-batch
# step on large data, an L-BFGS gradient) does not hold Ctrl-C back, before each job of every
# pass; at most every INTERRUPT_MILLISECONDS, so the GIL is taken rarely. Once a handler has
# raised, every thread skips its remaining jobs (a weight job waiting for a row block gives up)
# and the exception propagates: a batch stopped before all its row blocks began changes
# nothing; one stopped later leaves each weight block either fully stepped or untouched (a
# block's step is taken only on its complete gradient), so theta stays finite.
from cpython.exc cimport PyErr_CheckSignals
from cpython.ref cimport PyObject, Py_INCREF, Py_XDECREF

from fastmlp._engine._openmp cimport fm_load_flag, fm_store_flag, omp_get_wtime

cdef enum:
    INTERRUPT_MILLISECONDS = 20


cdef struct Interrupt:
    double next_check      # omp_get_wtime() after which the calling thread asks again
    int raised             # a handler raised: every thread skips the rest of the batch
    PyObject *exception    # what it raised (a new reference), re-raised by reraise_interrupt


cdef inline void interrupt_init(Interrupt *it) noexcept nogil:
    it.next_check = 0.0    # ask at the first chance: every engine call checks at least once
    it.raised = 0
    it.exception = NULL


cdef inline bint interrupted(Interrupt *it, bint calling_thread) noexcept nogil:
    """True once a signal handler raised. The calling thread (the only one with a Python thread
    state) runs the pending handlers if INTERRUPT_MILLISECONDS have passed since it last did."""
    cdef double now
    if it == NULL:
        return False
    if fm_load_flag(&it.raised) or not calling_thread:
        return fm_load_flag(&it.raised)
    now = omp_get_wtime()
    if now < it.next_check:
        return False
    it.next_check = now + INTERRUPT_MILLISECONDS / 1000.0
    with gil:
        try:
            PyErr_CheckSignals()
        except BaseException as exc:
            it.exception = <PyObject *> exc
            Py_INCREF(exc)
            fm_store_flag(&it.raised, 1)
    return fm_load_flag(&it.raised)


cdef inline int reraise_interrupt(Interrupt *it) except -1:
    """Raise what a signal handler raised during the engine call, if anything."""
    cdef object exc
    if it.exception == NULL:
        return 0
    exc = <object> it.exception
    Py_XDECREF(it.exception)
    it.exception = NULL
    raise exc
