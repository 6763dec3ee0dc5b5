"""Every C kernel writes only the elements it is given: each output is a slice of a buffer whose
margins hold a sentinel, for lengths below, at and past every vector width (a vector tail, a
masked store, an unrolled loop's remainder), in float32 and float64.

Why: csrc/small_product.c's AVX-512 path once stepped its slots by the generic path's vector
length and stored up to 28 bytes past z. Every value it returned was right, so no test of
values saw it; the process died later in free(), on AVX-512 machines only. These tests fail on
such a store wherever the processor runs that path (they run on whatever CI's machine has)."""
import numpy as np
import pytest

from fastmlp import _engine as E
from fastmlp._engine import _testing as K

DTYPES = [np.float32, np.float64]
MARGIN = 32  # elements on each side: past a 64-byte vector of float32, two of float64
SENTINEL = 7.0
LENGTHS = [1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 65, 100, 129]


class Guarded:
    """Arrays that are slices of buffers with sentinel margins; `check` looks at the margins."""

    def __init__(self):
        self.buffers = []

    def __call__(self, values, dtype=None):
        values = np.asarray(values, dtype=dtype)
        buffer = np.full(values.size + 2 * MARGIN, SENTINEL, values.dtype)
        view = buffer[MARGIN:MARGIN + values.size].reshape(values.shape)
        view[...] = values
        self.buffers.append(buffer)
        return view

    def check(self, what):
        for buffer in self.buffers:
            assert (buffer[:MARGIN] == SENTINEL).all(), f"{what}: a store before the output"
            assert (buffer[-MARGIN:] == SENTINEL).all(), f"{what}: a store past the output"


@pytest.mark.parametrize("dtype", DTYPES)
def test_element_wise_kernels_write_only_their_elements(dtype):
    rng = np.random.default_rng(1)
    for n in LENGTHS:
        x = rng.standard_normal(n).astype(dtype)
        unit = rng.random(n).astype(dtype)
        for name, call in [
            ("exp", lambda g: K.kernel_exp(g(np.zeros(n, dtype)), x)),
            ("expm1", lambda g: K.kernel_expm1(g(np.zeros(n, dtype)), x)),
            ("log1p_unit", lambda g: K.kernel_log1p_unit(g(np.zeros(n, dtype)), unit)),
            ("scale", lambda g: K.kernel_scale(g(x), 0.5)),
            ("clamp", lambda g: K.kernel_clamp(g(x), 0.3)),
            ("finalize_gradient", lambda g: K.kernel_finalize_gradient(g(x), x, 1e-3, 3.0)),
            ("finish_gradient", lambda g: K.kernel_finish_gradient(g(x), x, 1e-3, 3.0, True,
                                                                   True)),
            ("finish_gradient of a bias", lambda g: K.kernel_finish_gradient(
                g(x), None, 1e-3, 3.0, True, True)),
            ("sgd_step", lambda g: K.kernel_sgd_step(g(x), x, g(unit), 0.1, 0.9, True)),
            ("adam_step", lambda g: K.kernel_adam_step(g(x), x, g(unit), g(unit), 1e-3, 0.9,
                                                       0.999, 1e-8)),
        ]:
            guard = Guarded()
            call(guard)
            guard.check(f"{name}, n={n}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(E.ACTIVATION_CODES))
def test_activation_kernels_write_only_their_elements(dtype, name):
    rng = np.random.default_rng(2)
    code = E.ACTIVATION_CODES[name]
    for rows, cols in [(1, n) for n in LENGTHS] + [(3, 5), (4, 17), (2, 33)]:
        z = (rng.standard_normal((rows, cols)) * 2).astype(dtype)
        b = rng.standard_normal(cols).astype(dtype)
        guard = Guarded()
        a = guard(z)
        K.kernel_bias_activation(a, b, code, z=guard(np.zeros_like(z)))
        guard.check(f"{name} forward, {rows} x {cols}")
        if name in ("softmax", "exp"):
            continue  # output-only: their delta is the loss's (output_delta, below)
        guard = Guarded()
        K.kernel_activation_backward(guard(rng.standard_normal(rows * cols), dtype),
                                     np.ascontiguousarray(a).ravel(), code,
                                     z=(z + b).ravel())
        guard.check(f"{name} backward, {rows} x {cols}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", list(E.LOSS_CODES))
def test_output_delta_writes_only_its_elements(dtype, loss):
    rng = np.random.default_rng(3)
    for rows, cols in [(1, 1), (1, 9), (3, 17), (2, 33), (5, 3)]:
        p = rng.random((rows, cols)).astype(dtype) * 0.9 + 0.05
        p /= p.sum(1, keepdims=True)
        y = (rng.random((rows, cols)) < 0.5).astype(dtype)
        for w in (np.empty(0, dtype), rng.random(rows).astype(dtype)):
            guard = Guarded()
            K.kernel_output_delta(guard(np.zeros((rows, cols), dtype)),
                                  guard(np.zeros(rows)), p, y, w, E.LOSS_CODES[loss])
            guard.check(f"{loss}, {rows} x {cols}, weighted={w.size > 0}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("solver", list(E.SOLVERS))
def test_every_solvers_step_writes_only_its_elements(dtype, solver):
    from fastmlp._stochastic_optimizers import (
        AdamOptimizer, FtrlOptimizer, SGDOptimizer, TorchOptimizer,
    )
    rng = np.random.default_rng(4)
    for n in LENGTHS:
        if solver == "sgd":
            opt = SGDOptimizer(n, dtype, 0.1, momentum=0.9, nesterov=True)
        elif solver == "adam":
            opt = AdamOptimizer(n, dtype)
        elif solver == "ftrl":
            opt = FtrlOptimizer(n, dtype, 0.1, l1_regularization_strength=0.01)
        else:
            opt = TorchOptimizer(solver, n, dtype, 0.01, weight_decay=0.01)
        guard = Guarded()
        param = guard(rng.standard_normal(n), dtype)
        grad = rng.standard_normal(n).astype(dtype)
        state = [guard(s) if s.size else s for s in opt.state]
        for _ in range(2):
            K.kernel_optim_step(opt.spec(), param, grad, *state)
        guard.check(f"{solver}, n={n}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_kernels_write_only_their_elements(dtype):
    rng = np.random.default_rng(5)
    for rows, cols, pieces in [(1, 1, 2), (1, 17, 3), (3, 9, 2), (2, 33, 4)]:
        z = rng.standard_normal((rows, cols * pieces)).astype(dtype)
        b = rng.standard_normal(cols * pieces).astype(dtype)
        guard = Guarded()
        argmax = guard(np.zeros((rows, cols), np.int32))
        K.kernel_maxout_forward(guard(np.zeros((rows, cols), dtype)), argmax, z, b, pieces)
        guard.check(f"maxout forward, {rows} x {cols} x {pieces}")
        # backward spreads the compact delta over the pieces, in place, in a buffer that long
        delta = np.zeros(rows * cols * pieces, dtype)
        delta[:rows * cols] = rng.standard_normal(rows * cols)
        guard = Guarded()
        K.kernel_maxout_backward(guard(delta), np.ascontiguousarray(argmax), pieces)
        guard.check(f"maxout backward, {rows} x {cols} x {pieces}")
        x = rng.standard_normal((rows, cols)).astype(dtype)
        guard = Guarded()
        K.kernel_dropout(guard(np.zeros((rows, cols), dtype)), x, 7, 3, 0.3)
        K.kernel_dropout(guard(x), x, 7, 3, 0.3, backward=True)
        guard.check(f"dropout, {rows} x {cols}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_small_product_writes_only_its_elements(dtype):
    rng = np.random.default_rng(6)
    for rows in (1, 2, 3):
        for n_in in (1, 7, 40):
            for n_out in LENGTHS + [256, 272]:
                a = rng.standard_normal((rows, n_in)).astype(dtype)
                W = rng.standard_normal((n_in, n_out)).astype(dtype)
                guard = Guarded()
                K.kernel_small_product(guard(np.zeros((rows, n_out), dtype)), a, W)
                guard.check(f"small product, {rows} x {n_in} x {n_out}")


@pytest.mark.skipif(not K.ROWS_PRODUCT, reason="csrc/rows_product.c needs AVX2 and FMA")
@pytest.mark.parametrize("dtype", DTYPES)
def test_rows_product_writes_only_its_elements(dtype):
    kernels = K.rows_product_kernels(dtype)
    if not kernels:
        pytest.skip("no kernel of csrc/rows_product.c runs this dtype here")
    rng = np.random.default_rng(7)
    # tiles of 6 (AVX2) and 12 (AVX-512) rows, panels of 16 and 32 columns (16 for float64);
    # from 64 rows on AVX-512 packs W 4 or 8 panels at a time (the last group partial)
    for rows, n_in, cols_list in ([(rows, n_in, (1, 7, 8, 9, 16, 17, 31, 32, 33, 47, 65))
                                   for rows in (1, 5, 6, 7, 11, 12, 13, 25) for n_in in (1, 9, 70)]
                                  + [(rows, 70, (33, 257, 300)) for rows in (64, 77)]):
        for cols in cols_list:
            a = rng.standard_normal((rows, n_in)).astype(dtype)
            W = rng.standard_normal((n_in, cols)).astype(dtype)
            for kernel in kernels:  # (float32 on AVX-512: both)
                for transposed in (False, True):
                    w = np.ascontiguousarray(W.T) if transposed else W
                    guard = Guarded()
                    K.kernel_rows_product(guard(np.zeros((rows, cols), dtype)), a, w,
                                          transposed=transposed, kernel=kernel)
                    guard.check(f"rows product {kernel}, {rows} x {n_in} x {cols}, "
                                f"T={transposed}")
                guard = Guarded()  # a weight job's a^T delta: a given as n_in x rows
                K.kernel_rows_product(guard(np.zeros((rows, cols), dtype)),
                                      np.ascontiguousarray(a.T), W, a_transposed=True,
                                      kernel=kernel)
                guard.check(f"rows product {kernel} a^T, {rows} x {n_in} x {cols}")
