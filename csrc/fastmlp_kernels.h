/* fastmlp's element-wise C kernels: activations, output losses, optimizer steps, regularisers.
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
 * What scikit-learn does not have (csrc/activations.c's new activations, csrc/maxout.c,
 * csrc/dropout.c, csrc/batchnorm.c; the torch.optim solvers of csrc/optimizers.c; the losses added to csrc/losses.c)
 * follows PyTorch's definitions, defaults and order of operations instead, so that a fit can be
 * compared with the same steps in torch.
 *
 * Hot kernels are compiled for several instruction sets at once (FASTMLP_CLONES: GCC's function
 * multi-versioning, picked at load time by the CPU), so the default build stays portable and still
 * runs AVX-512 or AVX2 code where the machine has it.
 */
#ifndef FASTMLP_KERNELS_H
#define FASTMLP_KERNELS_H

#include <stddef.h>

/* Activation codes shared with fastmlp/_engine/_kernels.pxd and named in
 * fastmlp/_engine/vocabulary.pyx. Hidden layers use IDENTITY..RELU and LEAKY_RELU..MAXOUT; the
 * output layer uses IDENTITY, LOGISTIC, SOFTMAX or EXP (the Poisson log link). MAXOUT is not
 * element-wise: it has its own kernels (fm_maxout_forward / _backward). */
enum {
    FM_IDENTITY = 0,
    FM_LOGISTIC = 1,
    FM_TANH = 2,
    FM_RELU = 3,
    FM_SOFTMAX = 4,
    FM_EXP = 5,
    FM_LEAKY_RELU = 6, /* z > 0 ? z : negative_slope z */
    FM_ELU = 7,        /* z > 0 ? z : elu_alpha (e^z - 1) */
    FM_GELU = 8,       /* z Phi(z) = z/2 (1 + erf(z / sqrt 2)): exact, not the tanh form */
    FM_SILU = 9,       /* z / (1 + e^-z) */
    FM_MISH = 10,      /* z tanh(softplus(z)) */
    FM_SOFTPLUS = 11,  /* beta z > threshold ? z : log(1 + e^(beta z)) / beta */
    FM_MAXOUT = 12     /* max over k linear pieces */
};

/* The parameters of the parametrised activations, as torch.nn.functional names them. */
typedef struct {
    double negative_slope;     /* leaky_relu (torch: 0.01) */
    double elu_alpha;          /* elu (torch: 1.0) */
    double softplus_beta;      /* softplus (torch: 1.0) */
    double softplus_threshold; /* softplus (torch: 20.0) */
} fm_activation_params;

/* Whether backward needs the pre-activation z (1) or can work from the output a alone (0):
 * gelu, silu, mish and softplus are not invertible in closed form; leaky_relu with a negative
 * slope and elu with a negative alpha do not tell z's sign from a's. */
int fm_activation_needs_preactivation(int activation, const fm_activation_params *params);

/* Loss codes. The first four are fused with their canonical output activation so that
 * dLoss/dz = p - y; the others form dLoss/dp and multiply it by the output activation's
 * Jacobian. "Mean over outputs" is the per-row loss; rows are then averaged with their weights. */
enum {
    FM_LOSS_SQUARED = 0,    /* identity output, 0.5 * mean over outputs of (y - p)^2 */
    FM_LOSS_LOG = 1,        /* softmax output, -sum_j y_j log p_j */
    FM_LOSS_BINARY_LOG = 2, /* logistic output, -sum_j [y_j log p_j + (1 - y_j) log(1 - p_j)] */
    FM_LOSS_POISSON = 3,    /* exp output, sum_j [y_j log(y_j / p_j) - y_j + p_j] */
    FM_LOSS_ABSOLUTE = 4,   /* identity output, mean over outputs of |y - p| (torch L1Loss) */
    FM_LOSS_HUBER = 5,      /* identity output, mean over outputs of huber_delta(y - p) (HuberLoss) */
    FM_LOSS_SQUARED_SOFTMAX = 6,  /* softmax output, 0.5 * sum_j (p_j - y_j)^2 */
    FM_LOSS_SQUARED_LOGISTIC = 7  /* logistic output, 0.5 * sum_j (p_j - y_j)^2 */
};

/* Solver codes: scikit-learn's two stochastic solvers, then torch.optim's, then Keras's FTRL. */
enum {
    FM_SOLVER_SGD = 0,
    FM_SOLVER_ADAM = 1,
    FM_SOLVER_ADAGRAD = 2,
    FM_SOLVER_RMSPROP = 3,
    FM_SOLVER_ADADELTA = 4,
    FM_SOLVER_ADAMAX = 5,
    FM_SOLVER_NADAM = 6,
    FM_SOLVER_ADAMW = 7,
    FM_SOLVER_FTRL = 8
};

/* fm_finish_step's `stream` writes a block of new parameters past the caches from this many
 * bytes on (csrc/optimizers.c's fm_stream_copy says why and measures it). */
enum { FM_STREAM_MIN_BYTES = 1 << 17 };

/* The doubles of a block's watch over its steps' subnormal numbers (fm_finish_step's `watch`);
 * whether this processor takes its time over them (measured once; 0 where the watch is not
 * built: no SSE2's flags), and the verdict set (-1: measure again; for the tests). */
enum { FM_WATCH_SIZE = 3 };
int fm_subnormals_slow(void);
void fm_set_subnormals_slow(int verdict);
/* The processor's flush-to-zero (1) and denormals-are-zero (2) modes, as a library built with
 * -ffast-math may leave them: set to `modes`, returning those that were set (x86; elsewhere
 * none, and nothing is set). For the tests of the careful step. */
int fm_flush_modes(int modes);

/* n bytes copied with streaming (non-temporal) stores, unfenced, and the store fence that orders
 * them before a later release store (csrc/optimizers.c). */
void fm_stream_store(void *dst, const void *src, size_t n);
void fm_store_fence(void);

/* csrc/scratch.c: a block of at least `bytes` bytes, aligned to 64, that the calling thread keeps
 * for `slot` until its next call for the same slot (it grows; it is freed when the thread
 * exits), or NULL where none can be had; so that no kernel allocates inside an epoch. And, for
 * tests, the blocks allocated so far by every thread, the threads that hold blocks now, whether
 * a block is kept from call to call (not in a build with AddressSanitizer), and whether each
 * block handed out is first filled with NaNs. */
enum { FM_SCRATCH_PRODUCT = 0, FM_SCRATCH_STEP = 1, FM_SCRATCH_SLOTS = 2 };
void *fm_scratch(int slot, size_t bytes);
long long fm_scratch_allocations(void);
long long fm_scratch_threads(void);
int fm_scratch_kept(void);
void fm_scratch_set_poison(int on);

/* A solver, as the engine steps it: its hyper-parameters (scikit-learn's names for sgd and adam,
 * torch's for the others), the state that is a scalar (the step count, NAdam's product of
 * momentum coefficients) and the scalars of the current step, which fm_optim_begin_step computes
 * once per step so that the element loop has none of them. Python fills one of these per epoch
 * (fastmlp/_stochastic_optimizers.py, `spec`; fastmlp/_engine/_trainer.pyx checks that its numpy
 * record has this layout) and reads t and mu_product back. */
typedef struct {
    int solver;                  /* FM_SOLVER_SGD .. FM_SOLVER_ADAMW */
    double lr, eps, weight_decay; /* lr: sgd's rate for this epoch, every other's initial rate */
    double beta_1, beta_2;       /* adam, adamax, nadam, adamw */
    double rho;                  /* rmsprop's alpha, adadelta's rho */
    double momentum;             /* sgd, rmsprop */
    int nesterov;                /* sgd */
    double lr_decay;             /* adagrad */
    double momentum_decay;       /* nadam */
    int centered;                /* rmsprop */
    int amsgrad;                 /* adamw */
    int decoupled_weight_decay;  /* nadam (adamw always decouples) */
    double lr_power;             /* ftrl: learning_rate_power (<= 0) */
    double l1, l2, l2_shrinkage; /* ftrl: l1_, l2_, l2_shrinkage_regularization_strength */
    double ftrl_beta;            /* ftrl: Keras's beta */
    long long t;                 /* steps taken */
    double mu_product;           /* nadam: mu_1 mu_2 ... mu_t */
    double c0, c1, c2, c3;       /* this step's scalars (see fm_optim_begin_step) */
} fm_optim;

/* t += 1 and this step's scalars (learning rate after decay / bias correction, ...). */
void fm_optim_begin_step(fm_optim *o);

/* One step of SplitMix64 (Steele, Lea & Flood 2014) from `seed`: dropout's per-step key. */
unsigned long long fm_dropout_key(unsigned long long seed, long long step);

#define FASTMLP_DECLARE(REAL, SFX)                                                                 \
    /* out (rows x n_out) = a (rows x n_in, rows lda apart) @ W, for a few rows, without BLAS.  */ \
    void fm_small_product##SFX(REAL *out, const REAL *a, ptrdiff_t lda, const REAL *W,             \
                               ptrdiff_t rows, ptrdiff_t n_in, ptrdiff_t n_out);                   \
    /* The same product and bits, reading W's first columns (AVX-512: all of W) from `copy`,    \
     * made by fm_small_pack (csrc/small_product.c says when that is faster).                    */ \
    void fm_small_product_packed##SFX(REAL *out, const REAL *a, ptrdiff_t lda, const REAL *W,      \
                                      const REAL *copy, ptrdiff_t rows, ptrdiff_t n_in,            \
                                      ptrdiff_t n_out);                                            \
    /* How many of n_out columns a packed copy holds on this processor (0: none would help;     \
     * AVX-512: a row's length in the copy, n_out rounded up to whole cache lines).              */ \
    ptrdiff_t fm_small_pack_columns##SFX(ptrdiff_t n_out);                                         \
    /* The elements of fm_small_pack's copy of an n_in x n_out W, and of the record of W's    \
     * subnormal values that a float copy points to on the AVX-512 path (0: none), which the   \
     * caller places after all its copies (csrc/small_product.c, "Subnormal weights").        */ \
    ptrdiff_t fm_small_pack_size##SFX(ptrdiff_t n_in, ptrdiff_t n_out);                            \
    ptrdiff_t fm_small_pack_record##SFX(const REAL *W, ptrdiff_t n_in, ptrdiff_t n_out);           \
    /* Columns c0..c1 of fm_small_product_packed's product (of fm_small_product's where copy is  \
     * NULL), the same bits; c0 and c1 from fm_small_split (0, the split, n_out).               */ \
    void fm_small_product_part##SFX(REAL *out, const REAL *a, ptrdiff_t lda, const REAL *W,        \
                                    const REAL *copy, ptrdiff_t rows, ptrdiff_t n_in,              \
                                    ptrdiff_t n_out, ptrdiff_t c0, ptrdiff_t c1);                  \
    /* The column where two threads split a few rows' product with an n_in x n_out W, or 0.     */ \
    ptrdiff_t fm_small_split##SFX(ptrdiff_t n_in, ptrdiff_t n_out);                                \
    /* copy (fm_small_pack_size elements) = W's first columns, block by block (AVX-512: W's    \
     * rows, each padded to whole lines; a float copy's subnormal values zeroed and recorded at \
     * `record`, fm_small_pack_record's record_size elements, where that is not 0).            */ \
    void fm_small_pack##SFX(REAL *copy, const REAL *W, ptrdiff_t n_in, ptrdiff_t n_out,          \
                            REAL *record, ptrdiff_t record_size);                                  \
    /* a[r, :] = act(a[r, :] + b) for every row r of the row-major rows x cols block a; z (when    \
     * not NULL, same shape) receives the pre-activation a + b. params may be NULL for the         \
     * activations without parameters.                                                           */ \
    void fm_bias_activation_forward##SFX(REAL *a, REAL *z, const REAL *b, ptrdiff_t rows,         \
                                         ptrdiff_t cols, int activation,                          \
                                         const fm_activation_params *params);                     \
    /* delta *= act'(z), computed from the activation's output a = act(z), or from z where       \
     * fm_activation_needs_preactivation says so; n elements.                                    */ \
    void fm_activation_backward##SFX(REAL *delta, const REAL *a, const REAL *z, ptrdiff_t n,      \
                                     int activation, const fm_activation_params *params);         \
    /* db (n_out values) = the sum of delta's rows (rows x n_out), or db += it (accumulate):  \
     * each db[j] summed over the rows in order, numpy's order for sum(axis=0).               */ \
    void fm_bias_gradient##SFX(REAL *db, const REAL *delta, ptrdiff_t rows, ptrdiff_t n_out,      \
                               int accumulate);                                                   \
    /* Maxout: a[r, j] = max_p (z[r, j k + p] + b[j k + p]) for the rows x (cols k) GEMM output z; \
     * argmax[r, j] = the winning p (the first on ties; argmax may be NULL in prediction).       */ \
    void fm_maxout_forward##SFX(REAL *a, int *argmax, const REAL *z, const REAL *b,               \
                                ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t pieces);                \
    /* Maxout backward, in place: the rows x cols delta at the start of delta becomes the         \
     * rows x (cols k) delta of the pieces, delta[r, j] at the winning piece and 0 elsewhere.    */ \
    void fm_maxout_backward##SFX(REAL *delta, const int *argmax, ptrdiff_t rows, ptrdiff_t cols,  \
                                 ptrdiff_t pieces);                                               \
    /* Inverted dropout of a rows x cols block of hidden units: out = in * keep / (1 - p). Unit j  \
     * of row r is dropped when the hash of (key, sample r * stride + offset + j) falls below       \
     * threshold (p 2^53); sample r is sample_ids[r], or first_sample + r if sample_ids is NULL.   \
     * backward multiplies delta (in place) by the same mask.                                    */ \
    void fm_dropout_forward##SFX(REAL *out, const REAL *in, ptrdiff_t rows, ptrdiff_t cols,       \
                                 unsigned long long key, const ptrdiff_t *sample_ids,             \
                                 ptrdiff_t first_sample, ptrdiff_t stride, ptrdiff_t offset,      \
                                 long long threshold, double scale);                              \
    void fm_dropout_backward##SFX(REAL *delta, ptrdiff_t rows, ptrdiff_t cols,                    \
                                  unsigned long long key, const ptrdiff_t *sample_ids,            \
                                  ptrdiff_t first_sample, ptrdiff_t stride, ptrdiff_t offset,     \
                                  long long threshold, double scale);                             \
    /* Batch normalization's training forward over features f0..f1 of the rows x ld block z     \
     * (z += b, normalised by the batch's weighted mean and biased variance into xhat, then      \
     * z = gamma xhat, beta being the next activation's bias; mean, inv_std and unbiased_var     \
     * (unless unbiased_den <= 0) receive                                                       \
     * the batch's mean, 1/sigma and unbiased variance), its backward (delta: dLoss/dy in,       \
     * dLoss/dz out; the gradients of gamma and beta (+)=), and the running statistics' update   \
     * by momentum. See csrc/batchnorm.c.                                                       */ \
    void fm_batchnorm_forward##SFX(REAL *z, REAL *xhat, double *mean, double *inv_std,            \
                                   double *unbiased_var, const REAL *b, const REAL *gamma,        \
                                   const double *row_w, double weight_sum, double unbiased_den,  \
                                   ptrdiff_t rows, ptrdiff_t ld, ptrdiff_t f0, ptrdiff_t f1,     \
                                   double eps);                                                   \
    void fm_batchnorm_running##SFX(REAL *running_mean, REAL *running_var, const double *mean,     \
                                   const double *unbiased_var, ptrdiff_t n, double momentum);    \
    void fm_batchnorm_backward##SFX(REAL *delta, REAL *grad_gamma, REAL *grad_beta, double *s1,   \
                                    double *s2, const REAL *xhat, const double *inv_std,          \
                                    const REAL *gamma, const double *row_w, double weight_sum,   \
                                    ptrdiff_t rows, ptrdiff_t ld, ptrdiff_t f0, ptrdiff_t f1,    \
                                    int accumulate);                                              \
    /* Output layer, fused with the loss. Row r reads y row (rows_index ? rows_index[r] : r) and   \
     * weight w of the same row (w may be NULL). Writes delta = dLoss/dz * w and                   \
     * row_loss[r] = loss of row r (unweighted). loss_param: huber's delta (else unused).        */ \
    void fm_output_delta##SFX(REAL *delta, double *row_loss, const REAL *p, const REAL *y,        \
                              const REAL *w, const ptrdiff_t *rows_index, ptrdiff_t rows,           \
                              ptrdiff_t cols, int loss, double loss_param);                        \
    /* sum of x_i^2, accumulated in double. */                                                     \
    double fm_sum_squares##SFX(const REAL *x, ptrdiff_t n);                                        \
    /* 1 when every one of x[0..n) is finite (no infinity, no NaN), else 0. */                    \
    int fm_all_finite##SFX(const REAL *x, ptrdiff_t n);                                             \
    /* g = (g + alpha * w) / divisor: scikit-learn's L2-penalised, sample-averaged gradient;       \
     * and in the same pass *sum_w2 = sum(w^2) (w given) and *sum_g2 = sum of the finished g^2,    \
     * each as fm_sum_squares sums it (either pointer may be NULL: not wanted).               */   \
    void fm_finish_gradient##SFX(REAL *g, const REAL *w, ptrdiff_t n, double alpha,                \
                                 double divisor, double *sum_w2, double *sum_g2);                  \
    /* g *= scale (the global gradient-norm clip). */                                              \
    void fm_scale##SFX(REAL *g, ptrdiff_t n, double scale);                                        \
    /* w = min(max(w, -c), c) (weight clipping). */                                                \
    void fm_clamp##SFX(REAL *w, ptrdiff_t n, double c);                                            \
    /* SGD with momentum (and Nesterov's look-ahead), scikit-learn's SGDOptimizer. */              \
    void fm_sgd_step##SFX(REAL *param, const REAL *grad, REAL *velocity, ptrdiff_t n,             \
                          double learning_rate, double momentum, int nesterov);                    \
    /* Adam with the bias corrections folded into step_size, scikit-learn's AdamOptimizer. */      \
    void fm_adam_step##SFX(REAL *param, const REAL *grad, REAL *m, REAL *v, ptrdiff_t n,          \
                           double step_size, double beta_1, double beta_2, double epsilon);        \
    /* fm_finish_gradient (w = param where `penalize`, else none) and then fm_optim_step, in one \
     * pass where the solver has it (Adam, SGD, AdamW), else in the two passes. `stream`: write  \
     * a large block's new parameters past the caches (csrc/optimizers.c says when it pays).     \
     * `watch`: NULL, or the block's FM_WATCH_SIZE doubles, zeros at first and kept between its \
     * steps (csrc/optimizers.c's "Subnormal numbers"): the same bits either way.             */ \
    void fm_finish_step##SFX(const fm_optim *o, REAL *g, REAL *param, int penalize, ptrdiff_t n,   \
                             double alpha, double divisor, double *sum_w2, double *sum_g2,         \
                             REAL *s1, REAL *s2, REAL *s3, int stream, double *watch);             \
    /* One step of any solver (o after fm_optim_begin_step) over n parameters; s1..s3 are its    \
     * state vectors (see csrc/optimizers.c for which solver uses which).                       */ \
    void fm_optim_step##SFX(const fm_optim *o, REAL *param, const REAL *grad, REAL *s1, REAL *s2, \
                            REAL *s3, ptrdiff_t n);                                               \
    /* Vectorised exp, expm1 and log1p (on [0, 1]), exposed for the kernel tests. */               \
    void fm_exp_array##SFX(REAL *out, const REAL *x, ptrdiff_t n);                                 \
    void fm_expm1_array##SFX(REAL *out, const REAL *x, ptrdiff_t n);                               \
    void fm_log1p_unit_array##SFX(REAL *out, const REAL *x, ptrdiff_t n);

FASTMLP_DECLARE(float, _f)
FASTMLP_DECLARE(double, _d)

/* out (rows x cols, ldo apart) = a (rows x n_in, lda apart) W (n_in x cols, ldw apart), float32,
 * for few rows: csrc/rows_product.c. Call it only where fm_rows_product_available() is 1. */
int fm_rows_product_available(void);
/* Which of its kernels runs here: 0 none, 1 AVX2 and FMA, 2 AVX-512 (the same bits). */
int fm_rows_product_kernel(void);
/* Whether the AVX-512 kernel's products fetch the next group's rows of W into L2 while a group
 * runs (1, the default) or leave them to the hardware (0): csrc/rows_product.c's Design says
 * when each is faster; no bit depends on it. Set by a training pass's run-time choice
 * (fastmlp/_engine/_stores.pxd's fetch choice) before each batch, read by every product of the
 * process (two fits running at once share it: only their speed can differ). */
void fm_rows_product_set_fetch(int fetch);
/* The count of AVX-512 float32 products left that look for subnormal weights as they pack W
 * (csrc/rows_product.c, "Subnormal weights"): set to `looks` where it is not negative; the
 * count before is returned. A hint that changes no bit (the tests' hook). */
int fm_rows_product_looks(int looks);
void fm_rows_product_f(float *out, ptrdiff_t ldo, const float *a, ptrdiff_t lda, const float *W,
                       ptrdiff_t ldw, ptrdiff_t rows, ptrdiff_t n_in, ptrdiff_t cols);
/* The same with W^T for W: out = a W^T, W (cols x n_in, ldw apart): a layer's delta times its
 * weights' transpose, the gradient of its input. */
void fm_rows_product_t_f(float *out, ptrdiff_t ldo, const float *a, ptrdiff_t lda,
                         const float *W, ptrdiff_t ldw, ptrdiff_t rows, ptrdiff_t n_in,
                         ptrdiff_t cols);
/* out (rows x cols) (+)= a^T W, a (n_in x rows, lda apart): a layer's weight gradient, its
 * input's transpose times its delta (accumulate: added to out). */
void fm_rows_product_at_f(float *out, ptrdiff_t ldo, const float *a, ptrdiff_t lda,
                          const float *W, ptrdiff_t ldw, ptrdiff_t rows, ptrdiff_t n_in,
                          ptrdiff_t cols, int accumulate);
/* One of the three products (kind 0: a W, 1: a W^T, 2: a^T W) by a given kernel (1: AVX2,
 * 2: AVX-512): the three above with this machine's kernel, and the tests with either, so that
 * an AVX-512 machine checks both kernels' bits; -1 (nothing done) where that kernel does not
 * run. */
int fm_rows_product_by(int kernel, int kind, float *out, ptrdiff_t ldo, const float *a,
                       ptrdiff_t lda, const float *W, ptrdiff_t ldw, ptrdiff_t rows,
                       ptrdiff_t n_in, ptrdiff_t cols, int accumulate);
/* W packed once for many products out = a W of its rows (a bulk prediction's blocks), by
 * `kernel` (fm_rows_product_kernel()'s, or for the tests any that runs here): the floats
 * fm_rows_pack_f writes (0 where that kernel does not run here or W is empty: then use
 * fm_rows_product_f); the copy, into `packed` (64-byte aligned); and out = a W from it, the same
 * bits as fm_rows_product_f's. */
ptrdiff_t fm_rows_packed_size(int kernel, ptrdiff_t n_in, ptrdiff_t cols);
void fm_rows_pack_f(int kernel, float *packed, const float *W, ptrdiff_t ldw, ptrdiff_t n_in,
                    ptrdiff_t cols);
void fm_rows_product_packed_f(int kernel, float *out, ptrdiff_t ldo, const float *a,
                              ptrdiff_t lda, const float *packed, ptrdiff_t rows,
                              ptrdiff_t n_in, ptrdiff_t cols);

/* Float64, the same products with doubles by the AVX-512 kernel alone: the kernel that runs
 * them here (2, or 0: use BLAS), the three products (call them only where it is 2), the one
 * the tests call by kernel, and W packed once (doubles to allocate, 0 where it does not run). */
int fm_rows_product_kernel_d(void);
void fm_rows_product_d(double *out, ptrdiff_t ldo, const double *a, ptrdiff_t lda,
                       const double *W, ptrdiff_t ldw, ptrdiff_t rows, ptrdiff_t n_in,
                       ptrdiff_t cols);
void fm_rows_product_t_d(double *out, ptrdiff_t ldo, const double *a, ptrdiff_t lda,
                         const double *W, ptrdiff_t ldw, ptrdiff_t rows, ptrdiff_t n_in,
                         ptrdiff_t cols);
void fm_rows_product_at_d(double *out, ptrdiff_t ldo, const double *a, ptrdiff_t lda,
                          const double *W, ptrdiff_t ldw, ptrdiff_t rows, ptrdiff_t n_in,
                          ptrdiff_t cols, int accumulate);
int fm_rows_product_by_d(int kernel, int kind, double *out, ptrdiff_t ldo, const double *a,
                         ptrdiff_t lda, const double *W, ptrdiff_t ldw, ptrdiff_t rows,
                         ptrdiff_t n_in, ptrdiff_t cols, int accumulate);
ptrdiff_t fm_rows_packed_size_d(int kernel, ptrdiff_t n_in, ptrdiff_t cols);
void fm_rows_pack_d(int kernel, double *packed, const double *W, ptrdiff_t ldw, ptrdiff_t n_in,
                    ptrdiff_t cols);
void fm_rows_product_packed_d(int kernel, double *out, ptrdiff_t ldo, const double *a,
                              ptrdiff_t lda, const double *packed, ptrdiff_t rows,
                              ptrdiff_t n_in, ptrdiff_t cols);

/* Products whose a is picked rows (a shuffled batch's rows of X where they lie, read without a
 * gathered copy): kind 0, out = a W with row r of a at a + picked[r] lda; kind 2, out (+)= a^T W
 * with term k of a^T (row k of a) at a + picked[k] lda. The same bits as the product of those
 * rows gathered (fm_rows_product_f and _at_f, _d). The AVX-512 kernel alone: -1 (nothing done)
 * where fm_rows_product_kernel() (float32) or fm_rows_product_kernel_d() (float64) is not 2. */
int fm_rows_product_picked_f(int kind, float *out, ptrdiff_t ldo, const float *a, ptrdiff_t lda,
                             const ptrdiff_t *picked, const float *W, ptrdiff_t ldw,
                             ptrdiff_t rows, ptrdiff_t n_in, ptrdiff_t cols, int accumulate);
int fm_rows_product_picked_d(int kind, double *out, ptrdiff_t ldo, const double *a,
                             ptrdiff_t lda, const ptrdiff_t *picked, const double *W,
                             ptrdiff_t ldw, ptrdiff_t rows, ptrdiff_t n_in, ptrdiff_t cols,
                             int accumulate);

#undef FASTMLP_DECLARE

#endif
