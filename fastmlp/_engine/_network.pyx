# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Network: a perceptron's geometry (fastmlp/_engine/_geometry.pxd), built from names.

The estimator builds one per fitted model (cached) and hands it to the trainer and to predict;
`views` makes coefs_ and intercepts_ as numpy views into the flat parameter vector theta.
"""
import numpy as np

from fastmlp._engine._blas cimport BLAS_INT_MAX
from fastmlp._engine._kernels cimport FM_MAXOUT, fm_activation_needs_preactivation

from fastmlp._engine.vocabulary import HIDDEN_ACTIVATIONS, OTHER_LOSSES, OUTPUT_LOSSES


cdef class Network:
    """The geometry of a perceptron: widths, activations, loss and where each W and b live.

    Beyond scikit-learn's options: `loss` (the estimator's loss name; None or the output's
    canonical loss keep OUTPUT_LOSSES's pairing), the activations' parameters, `maxout_pieces`
    (k: a maxout hidden layer's W^l is fan_in x (fan_out k), column j k + p being piece p of unit
    j), huber's delta and the dropout rate on hidden units."""

    def __init__(self, layer_units, hidden_activation, out_activation, double alpha=0.0,
                 loss=None, *, double negative_slope=0.01, double elu_alpha=1.0,
                 double softplus_beta=1.0, double softplus_threshold=20.0,
                 Py_ssize_t maxout_pieces=2, double huber_delta=1.0, double dropout=0.0):
        units = [int(u) for u in layer_units]
        if max(units) * max(1, maxout_pieces) > BLAS_INT_MAX:
            raise ValueError(f"Layer widths and the number of features must be at most "
                             f"{BLAS_INT_MAX} (BLAS takes each dimension as a 32-bit int).")
        cdef Py_ssize_t L = len(units) - 1, l
        self._sizes = np.zeros(6 * (L + 1), dtype=np.intp)
        self.g.n_layers = L
        self.g.units = &self._sizes[0]
        self.g.coef_offset = &self._sizes[L + 1]
        self.g.intercept_offset = &self._sizes[2 * (L + 1)]
        self.g.act_prefix = &self._sizes[3 * (L + 1)]
        self.g.cols = &self._sizes[4 * (L + 1)]
        self.g.col_prefix = &self._sizes[5 * (L + 1)]
        self.g.hidden_activation = HIDDEN_ACTIVATIONS[hidden_activation]
        self.g.maxout_pieces = maxout_pieces if self.g.hidden_activation == FM_MAXOUT else 1
        if self.g.maxout_pieces < 1:
            raise ValueError(f"maxout_pieces must be >= 1, got {maxout_pieces}")
        offset = 0
        for l in range(L + 1):
            self.g.units[l] = units[l]
        for l in range(L):
            self.g.cols[l] = units[l + 1] * (self.g.maxout_pieces if l < L - 1 else 1)
            self.g.coef_offset[l] = offset
            offset += units[l] * self.g.cols[l]
        self.g.n_coefs = offset
        for l in range(L):
            self.g.intercept_offset[l] = offset
            offset += self.g.cols[l]
            self.g.act_prefix[l + 1] = self.g.act_prefix[l] + units[l + 1]
            self.g.col_prefix[l + 1] = self.g.col_prefix[l] + self.g.cols[l]
        self.g.n_params = offset
        self.g.max_width = 0
        for l in range(L):
            self.g.max_width = max(self.g.max_width, self.g.cols[l])
        self.g.n_hidden = self.g.act_prefix[L - 1]
        self.g.output_activation, self.g.loss = OUTPUT_LOSSES[out_activation]
        self.g.loss = OTHER_LOSSES.get((out_activation, loss), self.g.loss)
        self.g.loss_param = huber_delta
        self.g.alpha = alpha
        self.g.act_params.negative_slope = negative_slope
        self.g.act_params.elu_alpha = elu_alpha
        self.g.act_params.softplus_beta = softplus_beta
        self.g.act_params.softplus_threshold = softplus_threshold
        self.g.keep_z = (L > 1 and self.g.hidden_activation != FM_MAXOUT
                         and fm_activation_needs_preactivation(self.g.hidden_activation,
                                                               &self.g.act_params))
        self.g.dropout = dropout if L > 1 else 0.0
        self.n_coefs = self.g.n_coefs
        self.n_params = self.g.n_params

    @property
    def keeps_preactivation(self):
        """Whether training keeps z for the hidden layers (their act' cannot be formed from a)."""
        return bool(self.g.keep_z)

    def views(self, theta):
        """coefs_ and intercepts_ as numpy views into the flat vector theta."""
        cdef Py_ssize_t l
        coefs, intercepts = [], []
        for l in range(self.g.n_layers):
            start = self.g.coef_offset[l]
            n_in, n_out = self.g.units[l], self.g.cols[l]
            coefs.append(theta[start:start + n_in * n_out].reshape(n_in, n_out))
            start = self.g.intercept_offset[l]
            intercepts.append(theta[start:start + n_out])
        return coefs, intercepts
