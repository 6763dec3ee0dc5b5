# Batch normalization of a hidden layer (Ioffe & Szegedy 2015), as torch's
# Linear -> BatchNorm1d(momentum, eps, affine=True) -> activation: in training each mini-batch's
# z = a W + b is normalised by the batch's own mean and biased variance, then scaled by gamma and
# shifted by beta, and the running statistics move by the momentum; in prediction the running
# statistics are used, folded into one scale and shift per feature. A maxout layer is
# normalised over its pieces (Linear(n_in, units k) -> BatchNorm1d(units k) -> max over k), and
# dropout acts after the activation, as in torch's usual Linear -> BN -> act -> Dropout.
#
# Design
# ------
# Unlike every other kind, a feature's statistics need every row of the batch: between a hidden
# layer's product (a row pass) and its activation (the next row pass) comes a feature pass, each
# job a block of the layer's units (all their pieces) over every row, and backward has the
# mirror pass, for the two sums over rows its formula needs (csrc/batchnorm.c, which also says
# how sample weights count). Each sum runs over the rows in batch order within one job, so no
# bit depends on the thread count nor on how the features are cut into blocks; the blocks
# themselves depend on the layer's width only (_schedule.pxd runs the passes). gamma and beta
# are parameters in theta (Geometry.bn_offset): their gradient is written by the backward feature
# pass and finished and stepped by one weight job per layer, unpenalised, like the intercepts.
from cython cimport floating

from fastmlp._engine._geometry cimport Geometry, act_at, delta_at, is_maxout
from fastmlp._engine._kernels cimport batchnorm_backward, batchnorm_forward, batchnorm_running

cdef enum:
    MIN_NORM_UNITS = 16  # units per feature block (at least; blocks are cut as rows are)


cdef struct BatchNorm:
    void *xhat          # every hidden layer's normalised z, laid out as the deltas (delta_at)
    double *mean        # this batch's mean and 1/sigma of each normalised feature (col_prefix)
    double *inv_std
    double *unbiased_var  # this batch's unbiased variance, for the running statistics
    double *s1          # backward's sums over rows, one per feature
    double *s2
    double *row_w       # this batch's sample weights in batch order (NULL: unweighted)
    double *batch       # this batch's weight sum and unbiased-variance denominator
    void *running       # running means, then running variances (NULL: not updated)
    double momentum     # of the running statistics' update in this pass


cdef inline floating *normalized_z(const Geometry *g, Py_ssize_t l, floating *acts,
                                   floating *deltas, Py_ssize_t n, Py_ssize_t r0) noexcept nogil:
    """Where rows r0.. of hidden layer l's z (then y, normalised) are in a training pass over n
    rows: the layer's output slot, or a maxout layer's pieces in its delta slot (as without
    batch normalization). Either way cols[l] wide."""
    if is_maxout(g, l):
        return deltas + delta_at(g, n, l, r0)
    return acts + act_at(g, n, l, r0)


cdef inline void batchnorm_layer_forward(const Geometry *g, Py_ssize_t l, Py_ssize_t u0,
                                         Py_ssize_t u1, floating *z, const BatchNorm *bn,
                                         Py_ssize_t n, const floating *theta) noexcept nogil:
    """Units u0..u1 of hidden layer l over the n rows of the batch (z: all of the layer's z):
    z += b, then z = gamma xhat with xhat kept, and the batch's statistics noted; beta is added
    by the activation, in the bias's place (beta_of)."""
    cdef Py_ssize_t k = g.maxout_pieces if is_maxout(g, l) else 1
    cdef Py_ssize_t c = g.col_prefix[l], cols = g.cols[l]
    batchnorm_forward(z, <floating *> bn.xhat + delta_at(g, n, l, 0), bn.mean + c,
                      bn.inv_std + c, bn.unbiased_var + c, theta + g.intercept_offset[l],
                      theta + g.bn_offset[l], bn.row_w, bn.batch[0], bn.batch[1], n, cols,
                      u0 * k, u1 * k, g.bn_eps)


cdef inline const floating *beta_of(const Geometry *g, Py_ssize_t l,
                                    const floating *theta) noexcept nogil:
    """Hidden layer l's beta: the bias its activation adds to gamma xhat in training."""
    return theta + g.bn_offset[l] + g.cols[l]


cdef inline void batchnorm_update_running(const Geometry *g, const BatchNorm *bn,
                                          const floating *like) noexcept nogil:
    """The running statistics (if this pass keeps them) move by the momentum toward the
    batch's, once its step is taken; a batch of one row (or one of non-zero weight) has no
    variance and leaves them as they were."""
    cdef floating *running = <floating *> bn.running
    if running == NULL or bn.batch[1] <= 0:
        return
    batchnorm_running(running, running + g.n_bn_features, bn.mean, bn.unbiased_var,
                      g.n_bn_features, bn.momentum)


cdef inline void batchnorm_layer_backward(const Geometry *g, Py_ssize_t l, Py_ssize_t u0,
                                          Py_ssize_t u1, floating *delta, floating *grad,
                                          bint accumulate, const BatchNorm *bn, Py_ssize_t n,
                                          const floating *theta) noexcept nogil:
    """Units u0..u1 of hidden layer l: delta (all the layer's rows, cols wide) = dLoss/dy
    becomes dLoss/dz in place; gamma's and beta's gradients are written (accumulate: added)."""
    cdef Py_ssize_t k = g.maxout_pieces if is_maxout(g, l) else 1
    cdef Py_ssize_t c = g.col_prefix[l], cols = g.cols[l]
    batchnorm_backward(delta, grad + g.bn_offset[l], grad + g.bn_offset[l] + cols, bn.s1 + c,
                       bn.s2 + c, <const floating *> bn.xhat + delta_at(g, n, l, 0),
                       bn.inv_std + c, theta + g.bn_offset[l], bn.row_w, bn.batch[0], n, cols,
                       u0 * k, u1 * k, accumulate)


cdef inline void batchnorm_eval_scale(floating *z, const floating *scale, Py_ssize_t rows,
                                      Py_ssize_t cols) noexcept nogil:
    """Prediction: z (rows x cols, before the bias) *= the folded scale gamma / sqrt(var + eps);
    the folded shift then takes the bias's place (Network.batch_norm_fold)."""
    cdef Py_ssize_t r, j
    cdef floating *row
    for r in range(rows):
        row = z + r * cols
        for j in range(cols):
            row[j] = row[j] * scale[j]
