/* fastmlp's element-wise C kernels: activations, output losses, optimizer steps.
 *
 * Design
 * ------
 * Everything here is a single pass over contiguous memory that BLAS does not cover. Each kernel
 * exists for float (`_f`) and double (`_d`); the two are compiled from one body (see the
 * self-including .c files) so that the dtypes can never drift apart.
 *
 * Sizes and offsets are ptrdiff_t (64-bit here) so arrays past 2^31 elements index correctly.
 *
 * The arithmetic follows numpy's promotion rules as scikit-learn's MLP meets them, operation for
 * operation: a Python float hyper-parameter is rounded to the array's dtype before it is used
 * (float32 stays float32 throughout, see optimizers.c for the one place scikit-learn differs). The
 * extension is built with -ffp-contract=off so that the compiler does not fuse a*b+c into
 * an FMA that numpy would not use. With these, a float64 fit can be compared with scikit-learn's to
 * the last few bits.
 *
 * Hot kernels are compiled for several instruction sets at once (FASTMLP_CLONES: GCC's function
 * multi-versioning, picked at load time by the CPU), so the default build stays portable and still
 * runs AVX-512 or AVX2 code where the machine has it.
 */
#ifndef FASTMLP_KERNELS_H
#define FASTMLP_KERNELS_H

#include <stddef.h>

/* Activation codes shared with fastmlp/_kernels.pxd. Hidden layers use the first four; the output
 * layer uses IDENTITY, LOGISTIC, SOFTMAX or EXP (the Poisson log link). */
enum {
    FM_IDENTITY = 0,
    FM_LOGISTIC = 1,
    FM_TANH = 2,
    FM_RELU = 3,
    FM_SOFTMAX = 4,
    FM_EXP = 5
};

/* Loss codes: each is fused with its canonical output activation so that dLoss/dz = p - y. */
enum {
    FM_LOSS_SQUARED = 0,    /* identity output, 0.5 * mean over outputs of (y - p)^2 */
    FM_LOSS_LOG = 1,        /* softmax output, -sum_j y_j log p_j */
    FM_LOSS_BINARY_LOG = 2, /* logistic output, -sum_j [y_j log p_j + (1 - y_j) log(1 - p_j)] */
    FM_LOSS_POISSON = 3     /* exp output, sum_j [y_j log(y_j / p_j) - y_j + p_j] */
};

#define FASTMLP_DECLARE(REAL, SFX)                                                                 \
    /* a[r, :] = act(a[r, :] + b) for every row r of the row-major rows x cols block a. */        \
    void fm_bias_activation_forward##SFX(REAL *a, const REAL *b, ptrdiff_t rows, ptrdiff_t cols,  \
                                         int activation);                                          \
    /* delta *= act'(z), computed from the activation's output a = act(z); n elements. */         \
    void fm_activation_backward##SFX(REAL *delta, const REAL *a, ptrdiff_t n, int activation);    \
    /* Output layer, fused with the loss. Row r reads y row (rows_index ? rows_index[r] : r) and   \
     * weight w of the same row (w may be NULL). Writes delta = (p - y) * w and                    \
     * row_loss[r] = loss of row r (unweighted).                                                 */ \
    void fm_output_delta##SFX(REAL *delta, double *row_loss, const REAL *p, const REAL *y,        \
                              const REAL *w, const ptrdiff_t *rows_index, ptrdiff_t rows,           \
                              ptrdiff_t cols, int loss);                                           \
    /* sum of x_i^2, accumulated in double. */                                                     \
    double fm_sum_squares##SFX(const REAL *x, ptrdiff_t n);                                        \
    /* g = (g + alpha * w) / divisor: scikit-learn's L2-penalised, sample-averaged gradient. */    \
    void fm_finalize_gradient##SFX(REAL *g, const REAL *w, ptrdiff_t n, double alpha,              \
                                   double divisor);                                                \
    /* SGD with momentum (and Nesterov's look-ahead), scikit-learn's SGDOptimizer. */              \
    void fm_sgd_step##SFX(REAL *param, const REAL *grad, REAL *velocity, ptrdiff_t n,             \
                          double learning_rate, double momentum, int nesterov);                    \
    /* Adam with the bias corrections folded into step_size, scikit-learn's AdamOptimizer. */      \
    void fm_adam_step##SFX(REAL *param, const REAL *grad, REAL *m, REAL *v, ptrdiff_t n,          \
                           double step_size, double beta_1, double beta_2, double epsilon);        \
    /* Vectorised exp, exposed for the kernel tests. */                                            \
    void fm_exp_array##SFX(REAL *out, const REAL *x, ptrdiff_t n);

FASTMLP_DECLARE(float, _f)
FASTMLP_DECLARE(double, _d)

#undef FASTMLP_DECLARE

#endif
