# The maxout layer (Goodfellow et al. 2013): each unit is the max of k linear pieces. Its W has k
# columns per unit (cols[l] = k units[l + 1]; column j k + p is piece p of unit j).
#
#   forward   pieces = a W (rows x cols), a'[r, j] = max_p pieces[r, j k + p] + b[j k + p],
#             argmax[r, j] = the winning p (kept for backward)
#   backward  the compact rows x units delta widens in place to rows x cols: each unit's delta
#             goes to its winning piece, 0 to the others; the dense layer's weight and input
#             gradients then treat the pieces as ordinary columns.
# The product goes to the layer's delta rows (free until backward reaches them), so a maxout
# layer needs no buffer beyond its winners (int, laid out as the activations).
from cython cimport floating

from fastmlp._engine._kernels cimport maxout_backward, maxout_forward


cdef inline void maxout_layer_forward(floating *a_out, int *argmax, const floating *pieces,
                                      const floating *b, Py_ssize_t rows, Py_ssize_t units,
                                      Py_ssize_t k) noexcept nogil:
    """a_out (rows x units) = the max over each unit's k pieces (+ bias); argmax (if not NULL:
    prediction keeps none) = the winners."""
    maxout_forward(a_out, argmax, pieces, b, rows, units, k)


cdef inline void maxout_layer_backward(floating *delta, const int *argmax, Py_ssize_t rows,
                                       Py_ssize_t units, Py_ssize_t k) noexcept nogil:
    """delta (rows x units, compact) -> the pieces' delta (rows x units k), in place."""
    maxout_backward(delta, argmax, rows, units, k)
