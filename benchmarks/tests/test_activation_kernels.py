"""benchmarks/activation_kernels.py: every activation of the engine, in both dtypes, gets its
line, and the numpy reference it times beside a kernel computes what the kernel computes (so the
comparison is of like with like). Nothing is timed."""
import numpy as np
import pytest

from fastmlp import _engine as E
from fastmlp._engine import _testing as K

import activation_kernels as ak


def test_every_activation_and_dtype_is_printed(capsys):
    ak.main(["--rows", "2", "--cols", "9", "--classes", "3", "--calls", "2", "--rounds", "1"])
    out = capsys.readouterr().out
    for name in E.ACTIVATION_CODES:
        for dtype in ("float32", "float64"):
            assert any(line.split()[:2] == [name, dtype] for line in out.splitlines()), name


@pytest.mark.parametrize("name", [n for n, f in ak.NUMPY.items() if f is not None])
def test_the_numpy_reference_is_the_kernels_function(name):
    rng = np.random.RandomState(0)
    z = rng.standard_normal((4, 9)) * 3
    got = z.copy()
    K.kernel_bias_activation(got, np.zeros(9), E.ACTIVATION_CODES[name])
    expected = ak.NUMPY[name](z.copy())
    if name == "softmax":  # the reference times the exponentials, the kernel also divides
        expected = expected / expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
