# The C kernels of csrc/ (element-wise activations, maxout, dropout, output losses, optimizer
# steps, clipping, the few-row product), reached with `cdef extern` and given fused float/double
# names so Cython code calls one name for both dtypes. The enums are the engine's codes; Python
# reads them by name through fastmlp/_engine/vocabulary.pyx, never as numbers.
from cython cimport floating

cdef extern from "fastmlp_kernels.h" nogil:
    void fm_small_product_f(float *out, const float *a, Py_ssize_t lda, const float *W, Py_ssize_t rows, Py_ssize_t n_in, Py_ssize_t n_out)
    void fm_small_product_d(double *out, const double *a, Py_ssize_t lda, const double *W, Py_ssize_t rows, Py_ssize_t n_in, Py_ssize_t n_out)
    void fm_small_product_packed_f(float *out, const float *a, Py_ssize_t lda, const float *W, const float *copy, Py_ssize_t rows, Py_ssize_t n_in, Py_ssize_t n_out)
    void fm_small_product_packed_d(double *out, const double *a, Py_ssize_t lda, const double *W, const double *copy, Py_ssize_t rows, Py_ssize_t n_in, Py_ssize_t n_out)
    void fm_small_product_part_f(float *out, const float *a, Py_ssize_t lda, const float *W, const float *copy, Py_ssize_t rows, Py_ssize_t n_in, Py_ssize_t n_out, Py_ssize_t c0, Py_ssize_t c1)
    void fm_small_product_part_d(double *out, const double *a, Py_ssize_t lda, const double *W, const double *copy, Py_ssize_t rows, Py_ssize_t n_in, Py_ssize_t n_out, Py_ssize_t c0, Py_ssize_t c1)
    Py_ssize_t fm_small_split_f(Py_ssize_t n_in, Py_ssize_t n_out)
    Py_ssize_t fm_small_split_d(Py_ssize_t n_in, Py_ssize_t n_out)
    Py_ssize_t fm_small_pack_columns_f(Py_ssize_t n_out)
    Py_ssize_t fm_small_pack_columns_d(Py_ssize_t n_out)
    Py_ssize_t fm_small_pack_size_f(Py_ssize_t n_in, Py_ssize_t n_out)
    Py_ssize_t fm_small_pack_size_d(Py_ssize_t n_in, Py_ssize_t n_out)
    Py_ssize_t fm_small_pack_record_f(const float *W, Py_ssize_t n_in, Py_ssize_t n_out)
    Py_ssize_t fm_small_pack_record_d(const double *W, Py_ssize_t n_in, Py_ssize_t n_out)
    void fm_small_pack_f(float *copy, const float *W, Py_ssize_t n_in, Py_ssize_t n_out, float *record, Py_ssize_t record_size)
    void fm_small_pack_d(double *copy, const double *W, Py_ssize_t n_in, Py_ssize_t n_out, double *record, Py_ssize_t record_size)
    int fm_rows_product_available()
    int fm_rows_product_kernel()
    void fm_rows_product_set_fetch(int fetch)
    int fm_rows_product_looks(int looks)
    void fm_rows_product_f(float *out, Py_ssize_t ldo, const float *a, Py_ssize_t lda, const float *W, Py_ssize_t ldw, Py_ssize_t rows, Py_ssize_t n_in, Py_ssize_t cols)
    void fm_rows_product_t_f(float *out, Py_ssize_t ldo, const float *a, Py_ssize_t lda, const float *W, Py_ssize_t ldw, Py_ssize_t rows, Py_ssize_t n_in, Py_ssize_t cols)
    void fm_rows_product_at_f(float *out, Py_ssize_t ldo, const float *a, Py_ssize_t lda, const float *W, Py_ssize_t ldw, Py_ssize_t rows, Py_ssize_t n_in, Py_ssize_t cols, int accumulate)
    int fm_rows_product_by(int kernel, int kind, float *out, Py_ssize_t ldo, const float *a, Py_ssize_t lda, const float *W, Py_ssize_t ldw, Py_ssize_t rows, Py_ssize_t n_in, Py_ssize_t cols, int accumulate)
    Py_ssize_t fm_rows_packed_size(int kernel, Py_ssize_t n_in, Py_ssize_t cols)
    void fm_rows_pack_f(int kernel, float *packed, const float *W, Py_ssize_t ldw, Py_ssize_t n_in, Py_ssize_t cols)
    void fm_rows_product_packed_f(int kernel, float *out, Py_ssize_t ldo, const float *a, Py_ssize_t lda, const float *packed, Py_ssize_t rows, Py_ssize_t n_in, Py_ssize_t cols)
    int fm_rows_product_kernel_d()
    void fm_rows_product_d(double *out, Py_ssize_t ldo, const double *a, Py_ssize_t lda, const double *W, Py_ssize_t ldw, Py_ssize_t rows, Py_ssize_t n_in, Py_ssize_t cols)
    void fm_rows_product_t_d(double *out, Py_ssize_t ldo, const double *a, Py_ssize_t lda, const double *W, Py_ssize_t ldw, Py_ssize_t rows, Py_ssize_t n_in, Py_ssize_t cols)
    void fm_rows_product_at_d(double *out, Py_ssize_t ldo, const double *a, Py_ssize_t lda, const double *W, Py_ssize_t ldw, Py_ssize_t rows, Py_ssize_t n_in, Py_ssize_t cols, int accumulate)
    int fm_rows_product_by_d(int kernel, int kind, double *out, Py_ssize_t ldo, const double *a, Py_ssize_t lda, const double *W, Py_ssize_t ldw, Py_ssize_t rows, Py_ssize_t n_in, Py_ssize_t cols, int accumulate)
    Py_ssize_t fm_rows_packed_size_d(int kernel, Py_ssize_t n_in, Py_ssize_t cols)
    void fm_rows_pack_d(int kernel, double *packed, const double *W, Py_ssize_t ldw, Py_ssize_t n_in, Py_ssize_t cols)
    void fm_rows_product_packed_d(int kernel, double *out, Py_ssize_t ldo, const double *a, Py_ssize_t lda, const double *packed, Py_ssize_t rows, Py_ssize_t n_in, Py_ssize_t cols)
    int fm_rows_product_picked_f(int kind, float *out, Py_ssize_t ldo, const float *a, Py_ssize_t lda, const Py_ssize_t *picked, const float *W, Py_ssize_t ldw, Py_ssize_t rows, Py_ssize_t n_in, Py_ssize_t cols, int accumulate)
    int fm_rows_product_picked_d(int kind, double *out, Py_ssize_t ldo, const double *a, Py_ssize_t lda, const Py_ssize_t *picked, const double *W, Py_ssize_t ldw, Py_ssize_t rows, Py_ssize_t n_in, Py_ssize_t cols, int accumulate)
    enum:
        FM_IDENTITY
        FM_LOGISTIC
        FM_TANH
        FM_RELU
        FM_SOFTMAX
        FM_EXP
        FM_LEAKY_RELU
        FM_ELU
        FM_GELU
        FM_SILU
        FM_MISH
        FM_SOFTPLUS
        FM_MAXOUT
    enum:
        FM_LOSS_SQUARED
        FM_LOSS_LOG
        FM_LOSS_BINARY_LOG
        FM_LOSS_POISSON
        FM_LOSS_ABSOLUTE
        FM_LOSS_HUBER
        FM_LOSS_SQUARED_SOFTMAX
        FM_LOSS_SQUARED_LOGISTIC
    enum:
        FM_SOLVER_SGD
        FM_SOLVER_ADAM
        FM_SOLVER_ADAGRAD
        FM_SOLVER_RMSPROP
        FM_SOLVER_ADADELTA
        FM_SOLVER_ADAMAX
        FM_SOLVER_NADAM
        FM_SOLVER_ADAMW
        FM_SOLVER_FTRL
    enum:
        FM_STREAM_MIN_BYTES
        FM_WATCH_SIZE
    void fm_stream_store(void *dst, const void *src, size_t n)
    void fm_store_fence()
    int fm_subnormals_slow()
    void fm_set_subnormals_slow(int verdict)
    int fm_flush_modes(int modes)
    long long fm_scratch_allocations()
    long long fm_scratch_threads()
    int fm_scratch_kept()
    void fm_scratch_set_poison(int on)

    ctypedef struct fm_activation_params:
        double negative_slope
        double elu_alpha
        double softplus_beta
        double softplus_threshold

    ctypedef struct fm_optim:
        int solver
        double lr, eps, weight_decay
        double beta_1, beta_2
        double rho
        double momentum
        int nesterov
        double lr_decay
        double momentum_decay
        int centered
        int amsgrad
        int decoupled_weight_decay
        double lr_power
        double l1, l2, l2_shrinkage
        double ftrl_beta
        long long t
        double mu_product
        double c0, c1, c2, c3

    int fm_activation_needs_preactivation(int activation, const fm_activation_params *params)
    void fm_optim_begin_step(fm_optim *o)
    unsigned long long fm_dropout_key(unsigned long long seed, long long step)

    void fm_bias_activation_forward_f(float *a, float *z, const float *b, Py_ssize_t rows, Py_ssize_t cols, int activation, const fm_activation_params *params)
    void fm_bias_activation_forward_d(double *a, double *z, const double *b, Py_ssize_t rows, Py_ssize_t cols, int activation, const fm_activation_params *params)
    void fm_activation_backward_f(float *delta, const float *a, const float *z, Py_ssize_t n, int activation, const fm_activation_params *params)
    void fm_activation_backward_d(double *delta, const double *a, const double *z, Py_ssize_t n, int activation, const fm_activation_params *params)
    void fm_bias_gradient_f(float *db, const float *delta, Py_ssize_t rows, Py_ssize_t n_out, int accumulate)
    void fm_bias_gradient_d(double *db, const double *delta, Py_ssize_t rows, Py_ssize_t n_out, int accumulate)
    void fm_maxout_forward_f(float *a, int *argmax, const float *z, const float *b, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t pieces)
    void fm_maxout_forward_d(double *a, int *argmax, const double *z, const double *b, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t pieces)
    void fm_maxout_backward_f(float *delta, const int *argmax, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t pieces)
    void fm_maxout_backward_d(double *delta, const int *argmax, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t pieces)
    void fm_dropout_forward_f(float *out, const float *inp, Py_ssize_t rows, Py_ssize_t cols, unsigned long long key, const Py_ssize_t *sample_ids, Py_ssize_t first_sample, Py_ssize_t stride, Py_ssize_t offset, long long threshold, double scale)
    void fm_dropout_forward_d(double *out, const double *inp, Py_ssize_t rows, Py_ssize_t cols, unsigned long long key, const Py_ssize_t *sample_ids, Py_ssize_t first_sample, Py_ssize_t stride, Py_ssize_t offset, long long threshold, double scale)
    void fm_dropout_backward_f(float *delta, Py_ssize_t rows, Py_ssize_t cols, unsigned long long key, const Py_ssize_t *sample_ids, Py_ssize_t first_sample, Py_ssize_t stride, Py_ssize_t offset, long long threshold, double scale)
    void fm_dropout_backward_d(double *delta, Py_ssize_t rows, Py_ssize_t cols, unsigned long long key, const Py_ssize_t *sample_ids, Py_ssize_t first_sample, Py_ssize_t stride, Py_ssize_t offset, long long threshold, double scale)
    void fm_batchnorm_forward_f(float *z, float *xhat, double *mean, double *inv_std, double *unbiased_var, const float *b, const float *gamma, const double *row_w, double weight_sum, double unbiased_den, Py_ssize_t rows, Py_ssize_t ld, Py_ssize_t f0, Py_ssize_t f1, double eps)
    void fm_batchnorm_forward_d(double *z, double *xhat, double *mean, double *inv_std, double *unbiased_var, const double *b, const double *gamma, const double *row_w, double weight_sum, double unbiased_den, Py_ssize_t rows, Py_ssize_t ld, Py_ssize_t f0, Py_ssize_t f1, double eps)
    void fm_batchnorm_running_f(float *running_mean, float *running_var, const double *mean, const double *unbiased_var, Py_ssize_t n, double momentum)
    void fm_batchnorm_running_d(double *running_mean, double *running_var, const double *mean, const double *unbiased_var, Py_ssize_t n, double momentum)
    void fm_batchnorm_backward_f(float *delta, float *grad_gamma, float *grad_beta, double *s1, double *s2, const float *xhat, const double *inv_std, const float *gamma, const double *row_w, double weight_sum, Py_ssize_t rows, Py_ssize_t ld, Py_ssize_t f0, Py_ssize_t f1, int accumulate)
    void fm_batchnorm_backward_d(double *delta, double *grad_gamma, double *grad_beta, double *s1, double *s2, const double *xhat, const double *inv_std, const double *gamma, const double *row_w, double weight_sum, Py_ssize_t rows, Py_ssize_t ld, Py_ssize_t f0, Py_ssize_t f1, int accumulate)
    void fm_output_delta_f(float *delta, double *row_loss, const float *p, const float *y, const float *w, const Py_ssize_t *rows_index, Py_ssize_t rows, Py_ssize_t cols, int loss, double loss_param)
    void fm_output_delta_d(double *delta, double *row_loss, const double *p, const double *y, const double *w, const Py_ssize_t *rows_index, Py_ssize_t rows, Py_ssize_t cols, int loss, double loss_param)
    double fm_sum_squares_f(const float *x, Py_ssize_t n)
    double fm_sum_squares_d(const double *x, Py_ssize_t n)
    int fm_all_finite_f(const float *x, Py_ssize_t n)
    int fm_all_finite_d(const double *x, Py_ssize_t n)
    void fm_finish_gradient_f(float *g, const float *w, Py_ssize_t n, double alpha, double divisor, double *sum_w2, double *sum_g2)
    void fm_finish_gradient_d(double *g, const double *w, Py_ssize_t n, double alpha, double divisor, double *sum_w2, double *sum_g2)
    void fm_sgd_step_f(float *param, const float *grad, float *velocity, Py_ssize_t n, double learning_rate, double momentum, int nesterov)
    void fm_sgd_step_d(double *param, const double *grad, double *velocity, Py_ssize_t n, double learning_rate, double momentum, int nesterov)
    void fm_adam_step_f(float *param, const float *grad, float *m, float *v, Py_ssize_t n, double step_size, double beta_1, double beta_2, double epsilon)
    void fm_adam_step_d(double *param, const double *grad, double *m, double *v, Py_ssize_t n, double step_size, double beta_1, double beta_2, double epsilon)
    void fm_scale_f(float *g, Py_ssize_t n, double scale)
    void fm_scale_d(double *g, Py_ssize_t n, double scale)
    void fm_clamp_f(float *w, Py_ssize_t n, double c)
    void fm_clamp_d(double *w, Py_ssize_t n, double c)
    void fm_finish_step_f(const fm_optim *o, float *g, float *param, int penalize, Py_ssize_t n, double alpha, double divisor, double *sum_w2, double *sum_g2, float *s1, float *s2, float *s3, int stream, double *watch)
    void fm_finish_step_d(const fm_optim *o, double *g, double *param, int penalize, Py_ssize_t n, double alpha, double divisor, double *sum_w2, double *sum_g2, double *s1, double *s2, double *s3, int stream, double *watch)
    void fm_optim_step_f(const fm_optim *o, float *param, const float *grad, float *s1, float *s2, float *s3, Py_ssize_t n)
    void fm_optim_step_d(const fm_optim *o, double *param, const double *grad, double *s1, double *s2, double *s3, Py_ssize_t n)
    void fm_exp_array_f(float *out, const float *x, Py_ssize_t n)
    void fm_exp_array_d(double *out, const double *x, Py_ssize_t n)
    void fm_expm1_array_f(float *out, const float *x, Py_ssize_t n)
    void fm_expm1_array_d(double *out, const double *x, Py_ssize_t n)
    void fm_log1p_unit_array_f(float *out, const float *x, Py_ssize_t n)
    void fm_log1p_unit_array_d(double *out, const double *x, Py_ssize_t n)


cdef inline void bias_activation_forward(floating *a, floating *z, const floating *b,
                                         Py_ssize_t rows, Py_ssize_t cols, int activation,
                                         const fm_activation_params *params) noexcept nogil:
    if floating is float:
        fm_bias_activation_forward_f(a, z, b, rows, cols, activation, params)
    else:
        fm_bias_activation_forward_d(a, z, b, rows, cols, activation, params)


cdef inline void bias_gradient(floating *db, const floating *delta, Py_ssize_t rows,
                               Py_ssize_t n_out, bint accumulate) noexcept nogil:
    if floating is float:
        fm_bias_gradient_f(db, delta, rows, n_out, accumulate)
    else:
        fm_bias_gradient_d(db, delta, rows, n_out, accumulate)


cdef inline void activation_backward(floating *delta, const floating *a, const floating *z,
                                     Py_ssize_t n, int activation,
                                     const fm_activation_params *params) noexcept nogil:
    if floating is float:
        fm_activation_backward_f(delta, a, z, n, activation, params)
    else:
        fm_activation_backward_d(delta, a, z, n, activation, params)


cdef inline void maxout_forward(floating *a, int *argmax, const floating *z, const floating *b,
                                Py_ssize_t rows, Py_ssize_t cols,
                                Py_ssize_t pieces) noexcept nogil:
    if floating is float:
        fm_maxout_forward_f(a, argmax, z, b, rows, cols, pieces)
    else:
        fm_maxout_forward_d(a, argmax, z, b, rows, cols, pieces)


cdef inline void maxout_backward(floating *delta, const int *argmax, Py_ssize_t rows,
                                 Py_ssize_t cols, Py_ssize_t pieces) noexcept nogil:
    if floating is float:
        fm_maxout_backward_f(delta, argmax, rows, cols, pieces)
    else:
        fm_maxout_backward_d(delta, argmax, rows, cols, pieces)


cdef inline void batchnorm_forward(floating *z, floating *xhat, double *mean, double *inv_std,
                                   double *unbiased_var, const floating *b,
                                   const floating *gamma, const double *row_w, double weight_sum,
                                   double unbiased_den, Py_ssize_t rows, Py_ssize_t ld,
                                   Py_ssize_t f0, Py_ssize_t f1, double eps) noexcept nogil:
    if floating is float:
        fm_batchnorm_forward_f(z, xhat, mean, inv_std, unbiased_var, b, gamma, row_w,
                               weight_sum, unbiased_den, rows, ld, f0, f1, eps)
    else:
        fm_batchnorm_forward_d(z, xhat, mean, inv_std, unbiased_var, b, gamma, row_w,
                               weight_sum, unbiased_den, rows, ld, f0, f1, eps)


cdef inline void batchnorm_running(floating *running_mean, floating *running_var,
                                   const double *mean, const double *unbiased_var, Py_ssize_t n,
                                   double momentum) noexcept nogil:
    if floating is float:
        fm_batchnorm_running_f(running_mean, running_var, mean, unbiased_var, n, momentum)
    else:
        fm_batchnorm_running_d(running_mean, running_var, mean, unbiased_var, n, momentum)


cdef inline void batchnorm_backward(floating *delta, floating *grad_gamma, floating *grad_beta,
                                    double *s1, double *s2, const floating *xhat,
                                    const double *inv_std, const floating *gamma,
                                    const double *row_w, double weight_sum, Py_ssize_t rows,
                                    Py_ssize_t ld, Py_ssize_t f0, Py_ssize_t f1,
                                    bint accumulate) noexcept nogil:
    if floating is float:
        fm_batchnorm_backward_f(delta, grad_gamma, grad_beta, s1, s2, xhat, inv_std, gamma, row_w,
                                weight_sum, rows, ld, f0, f1, accumulate)
    else:
        fm_batchnorm_backward_d(delta, grad_gamma, grad_beta, s1, s2, xhat, inv_std, gamma, row_w,
                                weight_sum, rows, ld, f0, f1, accumulate)


cdef inline void dropout_forward(floating *out, const floating *inp, Py_ssize_t rows,
                                 Py_ssize_t cols, unsigned long long key,
                                 const Py_ssize_t *sample_ids, Py_ssize_t first_sample,
                                 Py_ssize_t stride, Py_ssize_t offset, long long threshold,
                                 double scale) noexcept nogil:
    if floating is float:
        fm_dropout_forward_f(out, inp, rows, cols, key, sample_ids, first_sample, stride, offset,
                             threshold, scale)
    else:
        fm_dropout_forward_d(out, inp, rows, cols, key, sample_ids, first_sample, stride, offset,
                             threshold, scale)


cdef inline void dropout_backward(floating *delta, Py_ssize_t rows, Py_ssize_t cols,
                                  unsigned long long key, const Py_ssize_t *sample_ids,
                                  Py_ssize_t first_sample, Py_ssize_t stride, Py_ssize_t offset,
                                  long long threshold, double scale) noexcept nogil:
    if floating is float:
        fm_dropout_backward_f(delta, rows, cols, key, sample_ids, first_sample, stride, offset,
                              threshold, scale)
    else:
        fm_dropout_backward_d(delta, rows, cols, key, sample_ids, first_sample, stride, offset,
                              threshold, scale)


cdef inline void output_delta(floating *delta, double *row_loss, const floating *p,
                              const floating *y, const floating *w,
                              const Py_ssize_t *rows_index, Py_ssize_t rows, Py_ssize_t cols,
                              int loss, double loss_param) noexcept nogil:
    if floating is float:
        fm_output_delta_f(delta, row_loss, p, y, w, rows_index, rows, cols, loss, loss_param)
    else:
        fm_output_delta_d(delta, row_loss, p, y, w, rows_index, rows, cols, loss, loss_param)


cdef inline double sum_squares(const floating *x, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return fm_sum_squares_f(x, n)
    else:
        return fm_sum_squares_d(x, n)


cdef inline bint all_finite(const floating *x, Py_ssize_t n) noexcept nogil:
    """Whether every one of x[0..n) is finite."""
    if floating is float:
        return fm_all_finite_f(x, n) != 0
    else:
        return fm_all_finite_d(x, n) != 0


cdef inline void finish_gradient(floating *g, const floating *w, Py_ssize_t n, double alpha,
                                 double divisor, double *sum_w2, double *sum_g2) noexcept nogil:
    if floating is float:
        fm_finish_gradient_f(g, w, n, alpha, divisor, sum_w2, sum_g2)
    else:
        fm_finish_gradient_d(g, w, n, alpha, divisor, sum_w2, sum_g2)


cdef inline void sgd_step(floating *param, const floating *grad, floating *velocity,
                          Py_ssize_t n, double learning_rate, double momentum,
                          int nesterov) noexcept nogil:
    if floating is float:
        fm_sgd_step_f(param, grad, velocity, n, learning_rate, momentum, nesterov)
    else:
        fm_sgd_step_d(param, grad, velocity, n, learning_rate, momentum, nesterov)


cdef inline void adam_step(floating *param, const floating *grad, floating *m, floating *v,
                           Py_ssize_t n, double step_size, double beta_1, double beta_2,
                           double epsilon) noexcept nogil:
    if floating is float:
        fm_adam_step_f(param, grad, m, v, n, step_size, beta_1, beta_2, epsilon)
    else:
        fm_adam_step_d(param, grad, m, v, n, step_size, beta_1, beta_2, epsilon)


cdef inline void scale(floating *g, Py_ssize_t n, double factor) noexcept nogil:
    if floating is float:
        fm_scale_f(g, n, factor)
    else:
        fm_scale_d(g, n, factor)


cdef inline void clamp(floating *w, Py_ssize_t n, double c) noexcept nogil:
    if floating is float:
        fm_clamp_f(w, n, c)
    else:
        fm_clamp_d(w, n, c)


cdef inline void optim_step(const fm_optim *o, floating *param, const floating *grad,
                            floating *s1, floating *s2, floating *s3,
                            Py_ssize_t n) noexcept nogil:
    if floating is float:
        fm_optim_step_f(o, param, grad, s1, s2, s3, n)
    else:
        fm_optim_step_d(o, param, grad, s1, s2, s3, n)


cdef inline void finish_step(const fm_optim *o, floating *g, floating *param, bint penalize,
                             Py_ssize_t n, double alpha, double divisor, double *sum_w2,
                             double *sum_g2, floating *s1, floating *s2, floating *s3,
                             bint stream, double *watch) noexcept nogil:
    """finish_gradient (param's penalty where `penalize`) and then optim_step: in one pass
    where the solver has one, the same bits; `stream`: a large block's new parameters written
    past the caches (csrc/optimizers.c's fm_stream_copy says when it pays), the same bits;
    `watch` (NULL: none): the block's FM_WATCH_SIZE doubles that choose its way around
    subnormal numbers (csrc/optimizers.c's "Subnormal numbers"), the same bits."""
    if floating is float:
        fm_finish_step_f(o, g, param, penalize, n, alpha, divisor, sum_w2, sum_g2, s1, s2, s3,
                         stream, watch)
    else:
        fm_finish_step_d(o, g, param, penalize, n, alpha, divisor, sum_w2, sum_g2, s1, s2, s3,
                         stream, watch)


cdef inline void small_product(floating *out, const floating *a, Py_ssize_t lda,
                               const floating *W, Py_ssize_t rows, Py_ssize_t n_in,
                               Py_ssize_t n_out) noexcept nogil:
    if floating is float:
        fm_small_product_f(out, a, lda, W, rows, n_in, n_out)
    else:
        fm_small_product_d(out, a, lda, W, rows, n_in, n_out)


cdef inline void small_product_packed(floating *out, const floating *a, Py_ssize_t lda,
                                      const floating *W, const floating *copy, Py_ssize_t rows,
                                      Py_ssize_t n_in, Py_ssize_t n_out) noexcept nogil:
    if floating is float:
        fm_small_product_packed_f(out, a, lda, W, copy, rows, n_in, n_out)
    else:
        fm_small_product_packed_d(out, a, lda, W, copy, rows, n_in, n_out)


cdef inline void small_product_part(floating *out, const floating *a, Py_ssize_t lda,
                                    const floating *W, const floating *copy, Py_ssize_t rows,
                                    Py_ssize_t n_in, Py_ssize_t n_out, Py_ssize_t c0,
                                    Py_ssize_t c1) noexcept nogil:
    if floating is float:
        fm_small_product_part_f(out, a, lda, W, copy, rows, n_in, n_out, c0, c1)
    else:
        fm_small_product_part_d(out, a, lda, W, copy, rows, n_in, n_out, c0, c1)


cdef inline Py_ssize_t small_split(const floating *W, Py_ssize_t n_in,
                                   Py_ssize_t n_out) noexcept nogil:
    """fm_small_split for W's dtype (W only picks it)."""
    if floating is float:
        return fm_small_split_f(n_in, n_out)
    else:
        return fm_small_split_d(n_in, n_out)


cdef inline Py_ssize_t small_pack_size(const floating *W, Py_ssize_t n_in,
                                       Py_ssize_t n_out) noexcept nogil:
    # (W only picks the dtype)
    if floating is float:
        return fm_small_pack_size_f(n_in, n_out)
    else:
        return fm_small_pack_size_d(n_in, n_out)


cdef inline Py_ssize_t small_pack_record(const floating *W, Py_ssize_t n_in,
                                         Py_ssize_t n_out) noexcept nogil:
    if floating is float:
        return fm_small_pack_record_f(W, n_in, n_out)
    else:
        return fm_small_pack_record_d(W, n_in, n_out)


cdef inline void small_pack(floating *copy, const floating *W, Py_ssize_t n_in,
                            Py_ssize_t n_out, floating *record,
                            Py_ssize_t record_size) noexcept nogil:
    if floating is float:
        fm_small_pack_f(copy, W, n_in, n_out, record, record_size)
    else:
        fm_small_pack_d(copy, W, n_in, n_out, record, record_size)
