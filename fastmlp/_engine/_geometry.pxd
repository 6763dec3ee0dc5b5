# The geometry of a network: widths, kinds and where everything lives, in theta and in the
# per-row buffers. Offsets into those buffers are computed here and nowhere else.
#
# Design
# ------
# theta holds every W^l (row-major, fan_in x cols[l]), then every b^l (cols[l]), then, with batch
# normalization, each hidden layer's gamma^l and beta^l (cols[l] each, at bn_offset[l]). The per-row
# buffers of a pass over n rows (activations, deltas, and what a layer kind keeps: z, dropout's
# outputs, maxout's winners) hold layer after layer, each layer's block n rows x its width, so
# that a block of rows r0.. of layer l starts at n * prefix[l] + r0 * width[l]: act_at for the
# layers' outputs (units wide), delta_at for their deltas (cols wide: a maxout layer's delta
# holds its k pieces per unit). Every buffer laid out as the activations uses act_at.
from fastmlp._engine._kernels cimport FM_MAXOUT, fm_activation_params


cdef struct Geometry:
    # Shapes.
    Py_ssize_t n_layers            # weight layers (scikit-learn's n_layers_ - 1)
    Py_ssize_t *units              # n_layers + 1 widths, the input first
    Py_ssize_t *cols               # columns of W^l: units[l + 1], times k for a maxout layer
    Py_ssize_t *coef_offset        # where W^l starts in theta
    Py_ssize_t *intercept_offset   # where b^l starts in theta
    Py_ssize_t *act_prefix         # sum of units[1..l]: where layer l's output starts, per row
    Py_ssize_t *col_prefix         # sum of cols[0..l-1]: where layer l's delta starts, per row
    Py_ssize_t n_coefs             # every W; the intercepts follow
    Py_ssize_t n_params
    Py_ssize_t max_width           # widest layer after the input (in cols)
    Py_ssize_t n_hidden            # hidden units per row (act_prefix[n_layers - 1])
    # The hidden layers' kind (fastmlp/_engine/_layers.pxd) and its parameters.
    int hidden_activation          # an activation code, or FM_MAXOUT
    fm_activation_params act_params
    bint keep_z                    # hidden layers keep z = a W + b: their act' needs it
    Py_ssize_t maxout_pieces       # k, the linear pieces of a maxout unit (1 if not maxout)
    double dropout                 # rate on hidden units; 0: none
    # Batch normalization of every hidden layer's z (fastmlp/_engine/_layer_batchnorm.pxd).
    bint batch_norm
    double bn_momentum             # the running statistics' update, torch's momentum
    double bn_eps
    Py_ssize_t *bn_offset          # where gamma^l starts in theta; beta^l follows it
    Py_ssize_t n_bn_features       # normalised features per row (col_prefix[n_layers - 1])
    # The output layer, fused with its loss, and the penalty.
    int output_activation
    int loss
    double loss_param              # huber's delta
    double alpha                   # L2 penalty, as scikit-learn's alpha


cdef inline Py_ssize_t act_at(const Geometry *g, Py_ssize_t n, Py_ssize_t l,
                              Py_ssize_t r0) noexcept nogil:
    """Where row r0 of layer l's output starts in a buffer laid out as the activations of a
    pass over n rows."""
    return n * g.act_prefix[l] + r0 * g.units[l + 1]


cdef inline Py_ssize_t delta_at(const Geometry *g, Py_ssize_t n, Py_ssize_t l,
                                Py_ssize_t r0) noexcept nogil:
    """Where row r0 of layer l's delta starts in the deltas of a pass over n rows."""
    return n * g.col_prefix[l] + r0 * g.cols[l]


cdef inline bint is_maxout(const Geometry *g, Py_ssize_t l) noexcept nogil:
    """Whether layer l is a maxout layer (the output layer never is)."""
    return l < g.n_layers - 1 and g.hidden_activation == FM_MAXOUT
