# Dropout on the hidden layers' outputs (inverted: kept units are scaled by 1 / (1 - p)), as
# torch's `Linear -> act -> Dropout`.
#
# Design
# ------
# The kept, rescaled outputs go to a buffer of their own (`dropped`, laid out as the
# activations) that the next layer reads, so the activations stay intact for act'. The mask is a
# hash of (seed, step, sample, unit) (csrc/dropout.c), recomputed in backward rather than
# stored, and the same whichever thread computes it, so a fit does not depend on the thread
# count. Unit j of hidden layer l of sample s is counter s n_hidden + act_prefix[l] + j: every
# hidden unit of every sample has its own.
from cython cimport floating

from fastmlp._engine._geometry cimport Geometry
from fastmlp._engine._kernels cimport dropout_backward, dropout_forward, fm_dropout_key
from fastmlp._engine._rows cimport Rows, sample_ids


cdef struct Dropout:
    void *dropped                # the hidden outputs after dropout: the next layer's input
    unsigned long long key       # this step's key (fm_dropout_key)
    long long threshold          # p 2^53; 0: no dropout in this pass
    double scale                 # 1 / (1 - p)


cdef inline void dropout_at_step(Dropout *d, double p, unsigned long long seed,
                                 long long step) noexcept nogil:
    """The masks of optimizer step `step` (1, 2, ...; < 0: no dropout in this pass)."""
    d.threshold = 0
    if p > 0 and step >= 0:
        d.key = fm_dropout_key(seed, step)
        d.threshold = <long long> (p * 9007199254740992.0)  # p 2^53


cdef inline void dropout_layer_forward(floating *out, const floating *a, const Dropout *d,
                                       const Geometry *g, Py_ssize_t l, const Rows *rows,
                                       Py_ssize_t r0, Py_ssize_t r1) noexcept nogil:
    """out = hidden layer l's output a for rows r0..r1 of the pass, after dropout."""
    dropout_forward(out, a, r1 - r0, g.units[l + 1], d.key, sample_ids(rows, r0),
                    rows.first + r0, g.n_hidden, g.act_prefix[l], d.threshold, d.scale)


cdef inline void dropout_layer_backward(floating *delta, const Dropout *d, const Geometry *g,
                                        Py_ssize_t l, const Rows *rows, Py_ssize_t r0,
                                        Py_ssize_t r1) noexcept nogil:
    """delta (rows r0..r1 of hidden layer l, units wide) *= the same mask and scale."""
    dropout_backward(delta, r1 - r0, g.units[l + 1], d.key, sample_ids(rows, r0),
                     rows.first + r0, g.n_hidden, g.act_prefix[l], d.threshold, d.scale)
