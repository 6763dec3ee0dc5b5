# The C kernels of csrc/ (element-wise activations, output losses, optimizer steps), reached with
# `cdef extern` and given fused float/double names so Cython code calls one name for both dtypes.
from cython cimport floating

cdef extern from "fastmlp_kernels.h" nogil:
    enum:
        FM_IDENTITY
        FM_LOGISTIC
        FM_TANH
        FM_RELU
        FM_SOFTMAX
        FM_EXP
    enum:
        FM_LOSS_SQUARED
        FM_LOSS_LOG
        FM_LOSS_BINARY_LOG
        FM_LOSS_POISSON

    void fm_bias_activation_forward_f(float *a, const float *b, Py_ssize_t rows, Py_ssize_t cols, int activation)
    void fm_bias_activation_forward_d(double *a, const double *b, Py_ssize_t rows, Py_ssize_t cols, int activation)
    void fm_activation_backward_f(float *delta, const float *a, Py_ssize_t n, int activation)
    void fm_activation_backward_d(double *delta, const double *a, Py_ssize_t n, int activation)
    void fm_output_delta_f(float *delta, double *row_loss, const float *p, const float *y, const float *w, const Py_ssize_t *rows_index, Py_ssize_t rows, Py_ssize_t cols, int loss)
    void fm_output_delta_d(double *delta, double *row_loss, const double *p, const double *y, const double *w, const Py_ssize_t *rows_index, Py_ssize_t rows, Py_ssize_t cols, int loss)
    double fm_sum_squares_f(const float *x, Py_ssize_t n)
    double fm_sum_squares_d(const double *x, Py_ssize_t n)
    void fm_finalize_gradient_f(float *g, const float *w, Py_ssize_t n, double alpha, double divisor)
    void fm_finalize_gradient_d(double *g, const double *w, Py_ssize_t n, double alpha, double divisor)
    void fm_sgd_step_f(float *param, const float *grad, float *velocity, Py_ssize_t n, double learning_rate, double momentum, int nesterov)
    void fm_sgd_step_d(double *param, const double *grad, double *velocity, Py_ssize_t n, double learning_rate, double momentum, int nesterov)
    void fm_adam_step_f(float *param, const float *grad, float *m, float *v, Py_ssize_t n, double step_size, double beta_1, double beta_2, double epsilon)
    void fm_adam_step_d(double *param, const double *grad, double *m, double *v, Py_ssize_t n, double step_size, double beta_1, double beta_2, double epsilon)
    void fm_exp_array_f(float *out, const float *x, Py_ssize_t n)
    void fm_exp_array_d(double *out, const double *x, Py_ssize_t n)


cdef inline void bias_activation_forward(floating *a, const floating *b, Py_ssize_t rows,
                                         Py_ssize_t cols, int activation) noexcept nogil:
    if floating is float:
        fm_bias_activation_forward_f(a, b, rows, cols, activation)
    else:
        fm_bias_activation_forward_d(a, b, rows, cols, activation)


cdef inline void activation_backward(floating *delta, const floating *a, Py_ssize_t n,
                                     int activation) noexcept nogil:
    if floating is float:
        fm_activation_backward_f(delta, a, n, activation)
    else:
        fm_activation_backward_d(delta, a, n, activation)


cdef inline void output_delta(floating *delta, double *row_loss, const floating *p,
                              const floating *y, const floating *w,
                              const Py_ssize_t *rows_index, Py_ssize_t rows, Py_ssize_t cols,
                              int loss) noexcept nogil:
    if floating is float:
        fm_output_delta_f(delta, row_loss, p, y, w, rows_index, rows, cols, loss)
    else:
        fm_output_delta_d(delta, row_loss, p, y, w, rows_index, rows, cols, loss)


cdef inline double sum_squares(const floating *x, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return fm_sum_squares_f(x, n)
    else:
        return fm_sum_squares_d(x, n)


cdef inline void finalize_gradient(floating *g, const floating *w, Py_ssize_t n, double alpha,
                                   double divisor) noexcept nogil:
    if floating is float:
        fm_finalize_gradient_f(g, w, n, alpha, divisor)
    else:
        fm_finalize_gradient_d(g, w, n, alpha, divisor)


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
