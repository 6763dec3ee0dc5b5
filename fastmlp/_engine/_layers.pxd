# A layer, whatever its kind: the one place that chooses between the kinds, forward and
# backward side by side. The kinds themselves are _layer_dense.pxd (the affine product and the
# element-wise activations), _layer_sparse_input.pxd (the first layer on CSR), _layer_maxout.pxd,
# _layer_dropout.pxd and _layer_batchnorm.pxd.
#
# Design
# ------
# A layer l takes rows r0..r1 of its input (rows x units[l]) to its output (rows x units[l + 1])
# and, in backward, the delta of its output to the delta of its z, in place, for its weight
# jobs and for the product with W^T that reaches the layer below. What forward must keep for
# backward lives in `Kept`, one buffer per need, laid out as the activations (act_at), allocated
# by the Trainer only for the networks that need it.
#
# A new layer kind provides, in a _layer_<kind>.pxd of its own: its forward and backward over a
# block of rows (outputs first, then inputs, then sizes), what it keeps (a field of Kept and its
# allocation in Trainer.__init__), its parameters' place in theta if it has any (Geometry and
# Network), and a row-order-independent formula (a reduction over rows, as batch normalization's
# mean, must be summed in a fixed order of row blocks, as the gradient's norm is in
# _schedule.pxd; batch normalization's feature passes are the example). It is dispatched here, named in vocabulary.pyx, and tested against a numpy
# reference (tests) and central differences.
from cython cimport floating
from libc.math cimport isfinite

from fastmlp._engine._geometry cimport Geometry, act_at, is_maxout
from fastmlp._engine._layer_batchnorm cimport BatchNorm, batchnorm_eval_scale
from fastmlp._engine._layer_dense cimport activation_delta, activation_forward, dense_product
from fastmlp._engine._layer_dropout cimport Dropout, dropout_layer_backward
from fastmlp._engine._layer_maxout cimport maxout_layer_backward, maxout_layer_forward
from fastmlp._engine._layer_sparse_input cimport sparse_product
from fastmlp._engine._rows cimport Rows


cdef struct Kept:
    # What the forward pass keeps for backward (each NULL where the network does not need it).
    void *acts        # every layer's output
    void *pre         # z = a W + b of the hidden layers, for activations whose act' needs z
    int *argmax       # maxout: the winning piece of each unit
    Dropout dropout   # dropout's outputs and this step's masks
    BatchNorm bn      # batch normalization: the normalised z, this batch's statistics


cdef inline const void *kept_input(const Kept *kept) noexcept nogil:
    """The buffer of what hidden layers pass on to the next: their output, or that output after
    dropout (laid out as acts)."""
    return kept.dropout.dropped if kept.dropout.threshold > 0 else kept.acts


cdef inline void layer_product(const Geometry *g, Py_ssize_t l, floating *product,
                               const floating *a_in, Py_ssize_t ld_in, const Rows *rows,
                               Py_ssize_t r0, Py_ssize_t r1, const floating *theta,
                               const Py_ssize_t *picked=NULL) noexcept nogil:
    """product (rows r0..r1 x cols[l]) = layer l's input @ W: the sparse X for the first layer
    of a sparse pass, else a_in (ld_in apart; with `picked`, its rows picked[0..], as
    _schedule.pxd's layer_input gives them)."""
    cdef const floating *W = theta + g.coef_offset[l]
    if l == 0 and rows.sparse:
        sparse_product(product, rows, r0, r1, W, g.cols[l])
    else:
        dense_product(product, a_in, ld_in, W, r1 - r0, g.units[l], g.cols[l], picked)


cdef inline void layer_forward(const Geometry *g, Py_ssize_t l, floating *a_out, floating *z_out,
                               int *argmax, floating *pieces, const floating *a_in,
                               Py_ssize_t ld_in, const Rows *rows, Py_ssize_t r0, Py_ssize_t r1,
                               const floating *theta, const floating *fold,
                               const Py_ssize_t *picked=NULL,
                               unsigned char *seen=NULL) noexcept nogil:
    """Layer l's output for rows r0..r1 (a_out: rows x units[l + 1]): its product, bias and
    activation, keeping z in z_out if not NULL. A maxout layer's k pieces per unit go to
    `pieces` (rows x cols[l]) and the winners to argmax (if not NULL). fold (prediction of a
    batch-normalised network; NULL otherwise): each hidden layer's normalization folded into a
    scale of the product and a shift in the bias's place (Network.batch_norm_fold). `picked`:
    layer_product's. `seen` (the first layer's, or NULL): note_nonfinite's, between the
    product and the activation."""
    cdef floating *product = forward_product(g, l, a_out, pieces)
    layer_product(g, l, product, a_in, ld_in, rows, r0, r1, theta, picked)
    if seen != NULL:
        note_nonfinite(seen, product, r1 - r0, g.cols[l])
    layer_activate(g, l, a_out, z_out, argmax, pieces, r1 - r0, theta, fold)


cdef inline void note_nonfinite(unsigned char *seen, const floating *product, Py_ssize_t rows,
                                Py_ssize_t ld) noexcept nogil:
    """seen[0] = 1 where a row of the first layer's product (`rows` rows, ld apart) is not
    finite in its first column, else seen[0] as it was: one load a row, taken before the bias
    and the activation (relu may turn NaN into 0). A NaN or an infinity anywhere in a row of
    X makes every column of that row of the product non-finite (_trainer.pyx's note on
    prediction says why: no product skips an input that is not 0), so a row the column calls
    finite is; a finite X that overflows, or a non-finite weight, sets it too, which is why a
    caller that reads it (SteadyCall, a partial_fit that left X's check to its epoch) then
    checks X itself."""
    cdef Py_ssize_t r
    for r in range(rows):
        if not isfinite(product[r * ld]):
            seen[0] = 1
            return


cdef inline floating *forward_product(const Geometry *g, Py_ssize_t l, floating *a_out,
                                      floating *pieces) noexcept nogil:
    """Where layer_forward puts layer l's product (cols[l] wide): a maxout layer's pieces, else
    the output itself."""
    return pieces if is_maxout(g, l) else a_out


cdef inline void layer_activate(const Geometry *g, Py_ssize_t l, floating *a_out,
                                floating *z_out, int *argmax, floating *pieces, Py_ssize_t rows,
                                const floating *theta, const floating *fold) noexcept nogil:
    """layer_forward after the product (at forward_product, `rows` rows): the folded
    normalization's scale, then bias and activation, or maxout. (Prediction checks the first
    layer's product between the two: fastmlp/_engine/_trainer.pyx's predict_block.)"""
    cdef Py_ssize_t n_out = g.units[l + 1], n_cols = g.cols[l]
    cdef floating *product = forward_product(g, l, a_out, pieces)
    cdef const floating *b = theta + g.intercept_offset[l]
    if fold != NULL and l < g.n_layers - 1:
        batchnorm_eval_scale(product, fold + 2 * g.col_prefix[l], rows, n_cols)
        b = fold + 2 * g.col_prefix[l] + n_cols
    if is_maxout(g, l):
        maxout_layer_forward(a_out, argmax, pieces, b, rows, n_out, g.maxout_pieces)
    else:
        activation_forward(a_out, z_out, b, rows, n_out,
                           g.output_activation if l == g.n_layers - 1 else g.hidden_activation,
                           &g.act_params)


cdef inline void hidden_backward(const Geometry *g, Py_ssize_t l, floating *delta, Py_ssize_t r0,
                                 Py_ssize_t r1, const Rows *rows, const Kept *kept) noexcept nogil:
    """Rows r0..r1 of hidden layer l: dLoss/d(output after dropout), compact (units[l + 1] wide)
    at delta, becomes the layer's delta dLoss/dz in place: times dropout's mask, then times act'
    or, for maxout, routed to the winning pieces (the rows widen to cols[l])."""
    cdef Py_ssize_t n = g.units[l + 1]
    cdef Py_ssize_t slot = act_at(g, rows.n, l, r0)
    if kept.dropout.threshold > 0:
        dropout_layer_backward(delta, &kept.dropout, g, l, rows, r0, r1)
    if is_maxout(g, l):
        maxout_layer_backward(delta, kept.argmax + slot, r1 - r0, n, g.maxout_pieces)
    else:
        activation_delta(delta, <const floating *> kept.acts + slot,
                         <const floating *> kept.pre + slot if g.keep_z else NULL,
                         (r1 - r0) * n, g.hidden_activation, &g.act_params)
