"""benchmarks/few_rows_product.py: both systems compute the same product on every shape it
times (so the comparison is of like with like), and its shapes are the ones the engine sends to
csrc/rows_product.c. Nothing is timed."""
import os
import re

import numpy as np
import pytest

from fastmlp import _engine
from fastmlp._engine import _testing as K

import few_rows_product as frp

LAYER_DENSE_PXD = os.path.join(os.path.dirname(_engine.__file__), "_layer_dense.pxd")


def test_the_shapes_kept_from_blas_are_the_engines():
    if not os.path.exists(LAYER_DENSE_PXD):
        pytest.skip(f"{LAYER_DENSE_PXD} is not beside the compiled engine")
    with open(LAYER_DENSE_PXD) as f:
        text = f.read()
    own_rows, side, gradient_rows = (
        int(re.search(rf"^\s+{name} = (\d+)", text, re.MULTILINE)[1])
        for name in ("OWN_PRODUCT_ROWS", "OWN_GRADIENT_SIDE", "OWN_GRADIENT_ROWS"))
    for rows, n_in, n_out, kind, what in frp.SHAPES:
        if kind == "a^T":  # dense_backward_weights' rule for the AVX2 kernel (AVX-512: all)
            own = n_out <= side and (n_in <= side or rows <= gradient_rows)
        else:
            own = rows <= own_rows
        assert own == ("stays with BLAS" not in what), what


def test_the_float64_shapes_are_all_the_kernels():
    """Float64's products are the AVX-512 kernel's at every size the engine sends it: a block of
    at most OWN_PRODUCT_ROWS rows, every weight job."""
    for rows, n_in, n_out, kind, what in frp.SHAPES_F64:
        assert kind == "a^T" or rows <= 256, what
        assert "stays with BLAS" not in what


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["W", "W^T", "a^T"])
def test_both_systems_compute_the_product(kind, dtype, monkeypatch):
    """time_shape's two calls, on one small shape, each against numpy's product."""
    if not K.rows_product_kernels(dtype):
        pytest.skip("csrc/rows_product.c does not run this dtype here")
    outputs = []
    real_gemm = frp.sgemm if dtype == np.float32 else frp.dgemm
    real_own = K.kernel_rows_product

    def gemm(*args, **kwargs):
        result = real_gemm(*args, **kwargs)
        outputs.append(kwargs["c"].T.copy())
        return result

    def own(out, *args, **kwargs):
        real_own(out, *args, **kwargs)
        outputs.append(out.copy())

    monkeypatch.setattr(frp, "sgemm" if dtype == np.float32 else "dgemm", gemm)
    monkeypatch.setattr(frp.K, "kernel_rows_product", own)
    frp.time_shape(7, 19, 23, kind, 1, np.random.RandomState(0), dtype)
    rng = np.random.RandomState(0)  # the same draws as time_shape's
    W = rng.standard_normal((19, 23)).astype(dtype)
    if kind == "a^T":
        delta, a = (rng.standard_normal((7, 23)).astype(dtype),
                    rng.standard_normal((7, 19)).astype(dtype))
        expected = a.T @ delta
    else:
        a = rng.standard_normal((7, 23 if kind == "W^T" else 19)).astype(dtype)
        expected = a @ (W.T if kind == "W^T" else W)
    assert len(outputs) == 2
    for out in outputs:
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
