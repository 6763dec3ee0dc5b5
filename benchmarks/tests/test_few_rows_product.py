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
        own_rows = int(re.search(r"^\s+OWN_PRODUCT_ROWS = (\d+)", f.read(), re.MULTILINE)[1])
    for rows, _, _, _, what in frp.SHAPES:
        assert (rows <= own_rows) == ("stays with BLAS" not in what), what


@pytest.mark.skipif(not K.ROWS_PRODUCT, reason="csrc/rows_product.c does not run here")
@pytest.mark.parametrize("transposed", [False, True])
def test_both_systems_compute_the_product(transposed, monkeypatch):
    """time_shape's two calls, on one small shape, each against numpy's product."""
    outputs = []

    def keep(out):
        outputs.append(out.copy())

    real_sgemm, real_own = frp.sgemm, K.kernel_rows_product

    def sgemm(*args, **kwargs):
        result = real_sgemm(*args, **kwargs)
        keep(kwargs["c"].T)
        return result

    def own(out, a, W, transposed=False):
        real_own(out, a, W, transposed)
        keep(out)

    monkeypatch.setattr(frp, "sgemm", sgemm)
    monkeypatch.setattr(frp.K, "kernel_rows_product", own)
    frp.time_shape(7, 19, 23, transposed, 1, np.random.RandomState(0))
    rng = np.random.RandomState(0)  # the same draws as time_shape's
    W = rng.standard_normal((19, 23)).astype(np.float32)
    a = rng.standard_normal((7, 23 if transposed else 19)).astype(np.float32)
    expected = a @ (W.T if transposed else W)
    assert len(outputs) == 2
    for out in outputs:
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
