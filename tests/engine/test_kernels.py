"""Each C kernel against a plain numpy reference, in float32 and float64."""
import itertools

import numpy as np
import pytest
from scipy.special import expit, xlogy

from fastmlp import _engine as E
from fastmlp._engine import _testing as K

DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 2e-6, np.float64: 1e-14}

ACTIVATIONS = {
    "identity": lambda z: z,
    "logistic": expit,
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0),
    "exp": np.exp,
    "softmax": lambda z: np.exp(z - z.max(1, keepdims=True))
    / np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True),
}
DERIVATIVES = {  # as functions of the activation's output a
    "identity": lambda a: np.ones_like(a),
    "logistic": lambda a: a * (1 - a),
    "tanh": lambda a: 1 - a**2,
    "relu": lambda a: (a != 0).astype(a.dtype),
}


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_matches_numpy_over_its_range(dtype):
    lo, hi = (-86, 88) if dtype == np.float32 else (-707, 709)
    x = np.concatenate([np.linspace(lo, hi, 100001), np.linspace(-1, 1, 1001),
                        [0.0, -0.0, 1e-30, -1e-30]]).astype(dtype)
    out = np.empty_like(x)
    K.kernel_exp(out, x)
    np.testing.assert_allclose(out, np.exp(x), rtol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_edges(dtype):
    x = np.array([np.inf, -np.inf, np.nan, 1e4, -1e4], dtype=dtype)
    out = np.empty_like(x)
    K.kernel_exp(out, x)
    assert out[0] == np.inf and out[1] == 0 and np.isnan(out[2])
    assert out[3] == np.inf and out[4] == 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_bias_activation_forward(name, dtype):
    rng = np.random.RandomState(0)
    z = (rng.standard_normal((37, 13)) * 4).astype(dtype)
    z[0, :3] = [0, 30, -30]
    b = rng.standard_normal(13).astype(dtype)
    a = z.copy()
    K.kernel_bias_activation(a, b, E.ACTIVATION_CODES[name])
    expected = ACTIVATIONS[name]((z + b).astype(np.float64))
    np.testing.assert_allclose(a, expected, rtol=RTOL[dtype] * 4, atol=np.finfo(dtype).eps)


ELEMENTWISE = [name for name in E.ACTIVATION_CODES if name not in ("softmax", "maxout")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_activation_bits_are_the_same_in_vectors_and_alone(name, dtype):
    """Each element-wise activation, forward and backward, gives every element the bits it gets
    when computed alone: the vector loops (with -fno-trapping-math, setup.py, every processor's
    clone vectorises the exp-based kinds) round as the scalar code does. A row of 67 runs the
    vector body and a scalar tail; one column per row runs the scalar code alone."""
    rng = np.random.RandomState(3)
    code = E.ACTIVATION_CODES[name]
    z = np.concatenate([rng.standard_normal(61) * 6, [0.0, -0.0, 40.0, -40.0, 100.0, -100.0]])
    z = z.astype(dtype).reshape(1, -1)
    bias = np.zeros(z.shape[1], dtype)
    keeps_z = K.activation_needs_preactivation(code)
    row, row_z = z.copy(), (np.empty_like(z) if keeps_z else None)
    K.kernel_bias_activation(row, bias, code, row_z)
    alone, alone_z = z.T.copy(), (np.empty_like(z.T) if keeps_z else None)
    K.kernel_bias_activation(alone, np.zeros(1, dtype), code, alone_z)
    np.testing.assert_array_equal(row, alone.T)
    if name in ("exp",):  # an output activation: its derivative is the loss's
        return
    delta = rng.standard_normal(z.shape[1]).astype(dtype)
    whole = delta.copy()
    K.kernel_activation_backward(whole, row[0], code, row_z[0] if keeps_z else None)
    for j in range(z.shape[1]):
        one = delta[j:j + 1].copy()
        K.kernel_activation_backward(one, row[0, j:j + 1], code,
                                     row_z[0, j:j + 1] if keeps_z else None)
        assert one[0] == whole[j] or (np.isnan(one[0]) and np.isnan(whole[j])), (name, j)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [5, 37])  # (37: blocks of 16 rows at once, then 5 alone)
@pytest.mark.parametrize("cols", [1, 3, 10, 32, 37])
def test_softmax_sums_its_row_in_index_order(dtype, cols, rows):
    """softmax: the exponentials as exp gives them, divided by their sum taken in index order
    (the same on every processor, whatever its vector width)."""
    rng = np.random.RandomState(4)
    z = (rng.standard_normal((rows, cols)) * 5).astype(dtype)
    bias = rng.standard_normal(cols).astype(dtype)
    got = z.copy()
    K.kernel_bias_activation(got, bias, E.ACTIVATION_CODES["softmax"])
    shifted = z + bias
    shifted -= shifted.max(axis=1, keepdims=True)
    e = np.empty_like(shifted)
    K.kernel_exp(e.ravel(), shifted.ravel())
    for r in range(rows):
        total = dtype(0)
        for value in e[r]:
            total = dtype(total + value)
        np.testing.assert_array_equal(got[r], e[r] / total)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cols", [1, 2, 10, 32])
def test_softmax_of_a_block_of_rows_is_each_row_alone(dtype, cols):
    """Rows of softmax taken 16 at a time (activations.c's softmax_forward_rows) have the bits
    of each row taken alone, also with infinities, NaNs, huge and subnormal values."""
    rng = np.random.RandomState(6)
    z = (rng.standard_normal((50, cols)) * 30).astype(dtype)
    specials = [np.inf, -np.inf, np.nan, 0.0, -0.0, np.finfo(dtype).max, np.finfo(dtype).tiny,
                -np.finfo(dtype).max, 1e3, -1e3]
    for r, value in enumerate(specials):
        z[3 * r % 50, (5 * r) % cols] = value
    z[40] = -np.inf  # a row of which every class is -inf (0 / 0)
    bias = rng.standard_normal(cols).astype(dtype)
    block = z.copy()
    with np.errstate(all="ignore"):
        K.kernel_bias_activation(block, bias, E.ACTIVATION_CODES["softmax"])
        for r in range(50):
            alone = z[r:r + 1].copy()
            K.kernel_bias_activation(alone, bias, E.ACTIVATION_CODES["softmax"])
            assert alone.tobytes() == block[r:r + 1].tobytes(), r


@pytest.mark.parametrize("dtype", DTYPES)
def test_tanh_is_accurate_near_zero(dtype):
    z = np.geomspace(1e-12, 0.7, 2000).astype(dtype)
    z = np.concatenate([z, -z]).reshape(1, -1).copy()
    a = z.copy()
    K.kernel_bias_activation(a, np.zeros(z.shape[1], dtype), E.ACTIVATION_CODES["tanh"])
    np.testing.assert_allclose(a, np.tanh(z.astype(np.float64)), rtol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(DERIVATIVES))
def test_activation_backward(name, dtype):
    rng = np.random.RandomState(1)
    a = ACTIVATIONS[name](rng.standard_normal(501)).astype(dtype)
    delta = rng.standard_normal(501).astype(dtype)
    out = delta.copy()
    K.kernel_activation_backward(out, a, E.ACTIVATION_CODES[name])
    np.testing.assert_allclose(out, delta * DERIVATIVES[name](a), rtol=RTOL[dtype])


def reference_loss(name, y, p):
    eps = np.finfo(p.dtype).eps
    p = p.astype(np.float64)
    if name == "squared_error":
        return 0.5 * ((y - p) ** 2).mean(axis=1)
    if name == "poisson":
        return (xlogy(y, y / p) - y + p).sum(axis=1)
    pc = np.clip(p, eps, 1 - eps)
    if name == "log_loss":
        return -xlogy(y, pc).sum(axis=1)
    return -(xlogy(y, pc) + xlogy(1 - y, 1 - pc)).sum(axis=1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("name", ["squared_error", "log_loss", "binary_log_loss", "poisson"])
def test_output_delta_and_loss(name, weighted, dtype):
    rng = np.random.RandomState(2)
    n, k = 29, 4
    if name == "log_loss":
        p = ACTIVATIONS["softmax"](rng.standard_normal((n, k)))
        y = np.eye(k)[rng.randint(k, size=n)]
        p[0] = [1, 0, 0, 0]  # a probability clipped at eps
    elif name == "binary_log_loss":
        p = expit(rng.standard_normal((n, k)) * 3)
        y = (rng.rand(n, k) > 0.5).astype(float)
    else:
        p = np.exp(rng.standard_normal((n, k)))
        y = rng.poisson(2.0, size=(n, k)).astype(float) if name == "poisson" else rng.rand(n, k)
    p, y = p.astype(dtype), y.astype(dtype)
    w = rng.rand(n).astype(dtype) if weighted else np.empty(0, dtype)
    delta = np.empty_like(p)
    row_loss = np.empty(n)
    K.kernel_output_delta(delta, row_loss, p, y, w, E.LOSS_CODES[name])
    expected = (p - y) * (w[:, None] if weighted else 1)
    np.testing.assert_allclose(delta, expected, rtol=RTOL[dtype])
    np.testing.assert_allclose(row_loss, reference_loss(name, y, p), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n", [1, 5, 29])  # (fewer rows than the targets fetched ahead, and more)
def test_output_delta_of_picked_targets_is_that_of_the_gathered_rows(n, weighted, dtype):
    """A shuffled batch's targets and weights, read by its index where they lie, give the bits
    of the same rows gathered first."""
    rng = np.random.RandomState(5)
    k, pool = 10, 300
    p = ACTIVATIONS["softmax"](rng.standard_normal((n, k))).astype(dtype)
    y = np.eye(k, dtype=dtype)[rng.randint(k, size=pool)]
    w = rng.rand(pool).astype(dtype) if weighted else np.empty(0, dtype)
    index = rng.permutation(pool)[:n].astype(np.intp)
    delta, row_loss = np.empty_like(p), np.empty(n)
    K.kernel_output_delta(delta, row_loss, p, y, w, E.LOSS_CODES["log_loss"], index=index)
    gathered, gathered_loss = np.empty_like(p), np.empty(n)
    K.kernel_output_delta(gathered, gathered_loss, p, np.ascontiguousarray(y[index]),
                          w[index] if weighted else w, E.LOSS_CODES["log_loss"])
    assert delta.tobytes() == gathered.tobytes()
    assert row_loss.tobytes() == gathered_loss.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize("cols", [1, 10, 63, 64, 100, 129])  # (blocks of 64 columns, and tails)
def test_bias_gradient_sums_the_rows_in_order(cols, accumulate, dtype):
    """db (+)= the sum of delta's rows, each column summed row after row (numpy's order for
    sum(axis=0)), bit for bit; a column of -0.0 sums to +0.0 from zero, as numpy's does."""
    rng = np.random.RandomState(7)
    delta = (rng.standard_normal((37, cols)) * 10.0 ** rng.randint(-6, 6, (37, cols)))
    delta = delta.astype(dtype)
    delta[:, 0] = -0.0
    db = rng.standard_normal(cols).astype(dtype)
    start = db.copy()
    K.kernel_bias_gradient(db, delta, accumulate)
    expected = start if accumulate else np.zeros(cols, dtype)
    for row in delta:  # ((db or 0) + delta[0]) + delta[1] + ...
        expected = expected + row
    assert db.tobytes() == expected.tobytes()
    if not accumulate:  # (numpy's own order for a sum over rows)
        assert db.tobytes() == delta.sum(axis=0).tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("divisor", [37.0, 32.0, 1.0, 0.25, 3.0 * 2.0**-60, 2.0**-100])
def test_finalize_gradient(dtype, divisor):
    """numpy's (g + alpha w) / divisor, bit for bit: also where the kernel multiplies by an
    exact reciprocal (a power of two), with results that are subnormal, zeros of either sign,
    infinities and NaNs."""
    rng = np.random.RandomState(3)
    g, w = rng.standard_normal(1000).astype(dtype), rng.standard_normal(1000).astype(dtype)
    tiny = np.finfo(dtype).tiny
    g[:8] = [0.0, -0.0, np.inf, -np.inf, np.nan, tiny, -3 * tiny, np.finfo(dtype).max]
    w[:8] = 0.0
    for alpha in (1e-3, 0.0):
        out = g.copy()
        with np.errstate(all="ignore"):
            K.kernel_finalize_gradient(out, w, alpha, divisor)
            # (alpha 0 adds nothing: g / divisor, keeping a zero's sign)
            expected = (g + dtype(alpha) * w if alpha else g) / dtype(divisor)
        np.testing.assert_array_equal(out, expected)
        assert (np.signbit(out) == np.signbit(expected))[~np.isnan(expected)].all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_step_is_scikit_learns_formula(nesterov, dtype):
    rng = np.random.RandomState(4)
    param, grad = rng.standard_normal(777).astype(dtype), rng.standard_normal(777).astype(dtype)
    velocity = rng.standard_normal(777).astype(dtype)
    p, v = param.copy(), velocity.copy()
    K.kernel_sgd_step(p, grad, v, 0.05, 0.9, nesterov)
    # scikit-learn's SGDOptimizer._get_updates, with Python-float hyper-parameters.
    expected_v = 0.9 * velocity - 0.05 * grad
    update = 0.9 * expected_v - 0.05 * grad if nesterov else expected_v
    np.testing.assert_array_equal(v, expected_v)
    np.testing.assert_array_equal(p, param + update)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_step_is_scikit_learns_formula(dtype):
    rng = np.random.RandomState(5)
    param, grad = rng.standard_normal(777).astype(dtype), rng.standard_normal(777).astype(dtype)
    m, v = rng.standard_normal(777).astype(dtype), rng.rand(777).astype(dtype)
    p, m2, v2 = param.copy(), m.copy(), v.copy()
    t, lr, b1, b2, eps = 7, 1e-3, 0.9, 0.999, 1e-8
    step = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
    K.kernel_adam_step(p, grad, m2, v2, step, b1, b2, eps)
    # scikit-learn's AdamOptimizer._get_updates, with the step in the arrays' dtype (in float64
    # exactly scikit-learn's; in float32 fastmlp stays in float32 where numpy would promote).
    m_ref = b1 * m + (1 - b1) * grad
    v_ref = b2 * v + (1 - b2) * grad**2
    update = -dtype(step) * m_ref / (np.sqrt(v_ref) + eps)
    assert update.dtype == dtype
    p_ref = param.copy()
    p_ref += update
    np.testing.assert_array_equal(m2, m_ref)
    np.testing.assert_array_equal(v2, v_ref)
    np.testing.assert_array_equal(p, p_ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [1, 3])
def test_small_product_matches_numpy(rows, dtype):
    rng = np.random.RandomState(6)
    a, W = rng.standard_normal((rows, 77)).astype(dtype), rng.standard_normal((77, 45)).astype(dtype)
    out = np.empty((rows, 45), dtype)
    K.kernel_small_product(out, a, W)
    np.testing.assert_allclose(out, a.astype(np.float64) @ W, rtol=RTOL[dtype] * 100,
                               atol=np.finfo(dtype).eps * 40)


def _ordered_product(a, W):
    """z[r, j] = sum over k = 0, 1, ... of a[r, k] W[k, j], each product rounded and added in
    that order from +0: the small product's contract, whatever vector code runs it."""
    out = np.zeros((a.shape[0], W.shape[1]), a.dtype)
    for k in range(a.shape[1]):
        out = out + a[:, k:k + 1] * W[k]
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_in", [0, 1, 37, 1100])  # 1100: two pieces of terms
@pytest.mark.parametrize("zeros", [False, True])  # with half the inputs 0 (and -0), listed
def test_small_product_sums_in_order_bit_for_bit(dtype, n_in, zeros):
    """Every column width (blocks of whole vectors, ragged last vectors, fewer columns than a
    vector) and every place of W in a cache line (the AVX-512 path follows the lines when rows
    are whole lines, masking the first and last lanes): the bits of the ordered sum."""
    rng = np.random.default_rng(n_in)
    lanes = 64 // np.dtype(dtype).itemsize
    for n_out in [1, 10, lanes, lanes + 1, 100, 128, 256, 272, 300]:
        for offset in range(0, lanes, 3):
            buffer = np.empty(n_in * n_out + 2 * lanes, dtype)
            start = (-(buffer.ctypes.data % 64) // buffer.itemsize) % lanes + offset
            W = buffer[start:start + n_in * n_out].reshape(n_in, n_out)
            W[...] = rng.standard_normal(W.shape)
            a = rng.standard_normal((3, n_in)).astype(dtype)
            if zeros:
                a[a < 0] = -0.0
                a[:, ::7] = 0.0
            # out inside a guarded buffer: a store past z's last lane is caught (the AVX-512
            # path once stepped its slots by half a register and stored up to 28 bytes past z)
            guarded = np.full(3 * n_out + 2 * lanes, 7.0, dtype)
            out = guarded[lanes:lanes + 3 * n_out].reshape(3, n_out)
            out[...] = np.nan
            K.kernel_small_product(out, a, W)
            expected = _ordered_product(a, W)
            assert out.tobytes() == expected.tobytes(), (n_out, offset)
            assert (guarded[:lanes] == 7.0).all() and (guarded[-lanes:] == 7.0).all(), (
                n_out, offset)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", [
    dict(hidden_layer_sizes=(256, 100)),  # whole blocks, a ragged W2 (100 columns), W3 none
    dict(hidden_layer_sizes=(64, 130), activation="tanh"),  # dense inputs in every layer
    dict(hidden_layer_sizes=(72,), activation="maxout", maxout_pieces=3),  # W1 216 wide
    dict(hidden_layer_sizes=(128, 64), batch_norm=True),  # the fold scales the product
    dict(hidden_layer_sizes=(17, 16)),  # AVX-512's rows padded to lines: just past one, one
])
@pytest.mark.parametrize("n_features", [40, 1100])  # 1100: two pieces of terms
def test_predict_with_the_packed_copy_gives_the_same_bits(dtype, options, n_features):
    """small_pack_copies' copy read by few-row predictions (fastmlp/_serving.py): the same bits
    as W itself, for one and three rows, inputs with zeros (the listed terms) and without, a
    strided X, and a CSR X (whose first layer keeps W)."""
    import warnings

    import scipy.sparse as sp

    from fastmlp import MLPClassifier

    rng = np.random.default_rng(n_features)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier(max_iter=2, random_state=0, **options).fit(
            rng.standard_normal((120, n_features)).astype(dtype), np.arange(120) % 5)
    theta, network = clf._packed_parameters(), clf._network()
    fold = (network.batch_norm_fold(theta, clf._batch_norm_running) if network.batch_norm
            else None)
    copies = E.small_pack_copies(network, theta)
    if copies is None:
        pytest.skip("no layer has a packed copy on this processor (csrc/small_product.c)")
    assert copies.ctypes.data % 64 == 0
    for rows in (1, 3):
        X = rng.standard_normal((rows, 2 * n_features)).astype(dtype)[:, ::2]  # strided
        X[:, ::3] = 0.0
        for x in (X, np.ascontiguousarray(X), np.abs(X) + 1, sp.csr_matrix(X)):
            out, packed = (np.full((rows, 5), np.nan, dtype) for _ in range(2))
            E.predict(network, theta, x, out, 1, fold)
            E.predict(network, theta, x, packed, 1, fold, False, copies)
            assert packed.tobytes() == out.tobytes()
    copies[:] = 0  # (the copy is what those predictions read)
    E.predict(network, theta, X, packed, 1, fold, False, copies)
    assert not np.array_equal(packed, out)
    with pytest.raises(ValueError, match="small_pack_copies"):
        E.predict(network, theta, X, out, 1, fold, False, copies[:-1])


def _small_copy_avx512():
    """Whether the few-row product takes its AVX-512 path here: only that path copies a W one
    line wide (the generic path copies blocks of 64 columns)."""
    return K.kernel_small_pack(np.zeros((1, 16), np.float32)) is not None


def _small_subnormal_weights(rng, n_in, n_out):
    """A float32 W for the few-row product with subnormal values where a unit's death leaves
    them (two columns all subnormal, of both signs; two dead rows, a dead unit's outgoing
    weights) and a few scattered in column 7, with chains that only rounding each product and
    each sum to float gets right (columns 0 and 1, with inputs 1, 0.5, 1 first); and the dead
    rows' indices."""
    W = rng.standard_normal((n_in, n_out)).astype(np.float32)
    sub = lambda shape: (rng.uniform(1, 2 ** 23, shape) * 2.0 ** -149
                         * rng.choice([-1, 1], shape)).astype(np.float32)
    W[:, [5, n_out - 3]] = sub((n_in, 2))
    dead = [n_in // 3, n_in - 2]
    W[dead] = sub((2, n_out))
    W[dead[1], ::3] = 0.0  # (a dead row may hold zeros too)
    W[rng.choice(np.setdiff1d(np.arange(n_in), dead), 3, replace=False), 7] = 2.0 ** -140
    # Column 0: 2^-149 then 2^-150 (0.5 x 2^-149): the product rounds to 0 (ties to even)
    # before the sum, which is then 2^-149; a sum of the exact product would round to 2^-148.
    W[:, 0] = 0.0
    W[:2, 0] = 2.0 ** -149
    # Column 1: 1 + 2^-140 - 1 is 0 in float's sums, 2^-140 in double's.
    W[:, 1] = 0.0
    W[:3, 1] = 1.0, 2.0 ** -140, -1.0
    return W, dead


def _careful_columns(W):
    """How many columns of W hold a subnormal value outside its dead rows (rows of subnormal
    values and zeros alone): csrc/small_product.c's careful columns."""
    sub = (W != 0) & (np.abs(W) < np.finfo(np.float32).tiny)
    dead = sub.any(1) & (sub | (W == 0)).all(1)
    return sub[~dead].any(0).sum()


def test_the_subnormal_verdict_judges_the_processor_under_any_flush_modes():
    """csrc/optimizers.c's fm_subnormals_slow measures with flush-to-zero and
    denormals-are-zero off: under a caller's flush modes its subnormal chain took no assist,
    and a first fit there judged the processor fast for the rest of the process."""
    if not K.FLUSH_MODES:
        pytest.skip("no flush modes to set here (not x86)")
    was = K.subnormals_slow()
    try:
        ieee = K.subnormals_slow(-1)
        modes = K.flush_modes(3)
        try:
            flushed = K.subnormals_slow(-1)
        finally:
            K.flush_modes(modes)
        assert flushed == ieee
    finally:
        K.subnormals_slow(was)


@pytest.mark.parametrize("slow", [True, False])
@pytest.mark.parametrize("n_in", [40, 1100])  # 1100: two pieces of terms
@pytest.mark.parametrize("zeros", [False, True])
def test_small_product_with_subnormal_weights_gives_the_ordered_sums(slow, n_in, zeros):
    """Where multiplies take an assist on a subnormal operand (the verdict forced True), the
    AVX-512 path's float32 copy holds zeros of their sign in place of W's subnormal values and
    a record of them, and the few-row product computes again, in double, the columns that hold
    some outside W's dead rows, from the record's values, and multiplies a row that meets a
    dead row with a value not +-0 by W itself (csrc/small_product.c's "Subnormal weights"):
    every bit of the ordered sums, whole and in two threads' column parts (each writing its
    own columns alone), one row and three, dense inputs and inputs with zeros (listed terms).
    With the verdict False, or more than a quarter of W's columns to compute again (16
    columns), the copy is W itself: the same bits."""
    rng = np.random.default_rng(n_in)
    was = K.subnormals_slow()
    K.subnormals_slow(slow)
    try:
        for n_out in (16, 100, 256):
            W, dead = _small_subnormal_weights(rng, n_in, n_out)
            copy = K.kernel_small_pack(W)
            if copy is None:
                pytest.skip("no packed copy on this processor (csrc/small_product.c)")
            a = rng.standard_normal((3, n_in)).astype(np.float32)
            if zeros:
                a[a < 0] = -0.0
            a[:, :3] = 1.0, 0.5, 1.0
            a[:, dead] = 0.0, -0.0  # (dead units' outputs)
            a[1, dead[0]] = 1.5  # row 1 meets a dead row with a value not 0
            expected = _ordered_product(a, W)
            assert expected[0, 0] == np.float32(2.0 ** -149) and expected[0, 1] == 0
            packed_length = W.shape[0] * -(-n_out // 16) * 16 + 1  # (AVX-512: rows, a slot)
            cleaned = len(copy) > packed_length
            assert cleaned == (slow and _small_copy_avx512()
                               and _careful_columns(W) * 4 <= n_out), (len(copy), n_out)
            if cleaned:  # the copy's rows hold no subnormal value
                rows = copy[:packed_length - 1].reshape(n_in, -1)[:, :n_out]
                assert not ((rows != 0) & (np.abs(rows) < np.finfo(np.float32).tiny)).any()
            for rows in (1, 3):
                out = np.full((rows, n_out), np.nan, np.float32)
                K.kernel_small_product_part(out, a[:rows], W, copy, 0, n_out)
                assert out.tobytes() == expected[:rows].tobytes(), (n_out, rows)
                cut = n_out // 2 // 16 * 16
                if cut:
                    out[...] = np.nan
                    K.kernel_small_product_part(out, a[:rows], W, copy, 0, cut)
                    assert np.isnan(out[:, cut:]).all(), (n_out, rows, cut)
                    K.kernel_small_product_part(out, a[:rows], W, copy, cut, n_out)
                    assert out.tobytes() == expected[:rows].tobytes(), (n_out, rows, cut)
    finally:
        K.subnormals_slow(was)


@pytest.mark.parametrize("flush", [1, 2, 3])  # flush-to-zero, denormals-are-zero, both
def test_small_product_from_the_cleaned_copy_under_flush_modes_gives_the_bits_of_W(flush):
    """Under a caller's flush-to-zero or denormals-are-zero modes (a library built with
    -ffast-math sets them for the whole process), the few-row product of a copy that holds
    zeros in place of W's subnormal values (csrc/small_product.c's "Subnormal weights") gives
    the bits of the same product read from W under the same modes, which differ from the
    ordered sums without them: rows that fit the copy (their inputs at the dead rows +-0)
    and one that meets a dead row, with inputs that bring the careful columns' products
    above and below float's least normal value, and subnormal inputs."""
    rng = np.random.default_rng(flush)
    was = K.subnormals_slow()
    K.subnormals_slow(True)
    try:
        n_in, n_out = 100, 64
        W, dead = _small_subnormal_weights(rng, n_in, n_out)
        copy = K.kernel_small_pack(W)
        if copy is None or not _small_copy_avx512():
            pytest.skip("no copy with a record of subnormal weights on this processor")
        assert len(copy) > n_in * n_out + 1  # (the record is there)
        a = rng.standard_normal((3, n_in)).astype(np.float32)
        a[:, :3] = 1.0, 0.5, 1.0
        a[:, 3:12] *= 2.0 ** 30  # (subnormal weights times these: normal products)
        a[:, 12:15] = 2.0 ** -140  # (subnormal inputs: zeros under denormals-are-zero)
        a[:, dead] = 0.0, -0.0
        a[2, dead[0]] = 1.5  # (this row is multiplied by W itself)
        plain = _ordered_product(a, W)
        for rows in (1, 3):
            from_W, from_copy = (np.full((rows, n_out), np.nan, np.float32) for _ in range(2))
            K.kernel_small_product_part(from_W, a[:rows], W, None, 0, n_out, flush=flush)
            K.kernel_small_product_part(from_copy, a[:rows], W, copy, 0, n_out, flush=flush)
            assert from_copy.tobytes() == from_W.tobytes(), rows
            assert from_W.tobytes() != plain[:rows].tobytes()  # (the modes were on)
        out = np.full((3, n_out), np.nan, np.float32)  # (and off again after the call)
        K.kernel_small_product_part(out, a, W, copy, 0, n_out)
        assert out.tobytes() == plain.tobytes()
    finally:
        K.subnormals_slow(was)


def test_predict_with_subnormal_weights_in_the_packed_copy_gives_the_same_bits():
    """A model whose units died (subnormal weights in, and out of, some units) predicts a few
    rows from its packed copies, each layer's record of them after all the copies, with the
    bits of W itself, where multiplies take an assist on them (the verdict forced True)."""
    import warnings

    from fastmlp import MLPClassifier

    rng = np.random.default_rng(3)
    was = K.subnormals_slow(), E.subnormals_slow()
    K.subnormals_slow(True)
    E.subnormals_slow(True)  # (the estimator's module: its own copy of the verdict)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf = MLPClassifier((64, 48), max_iter=2, random_state=0).fit(
                rng.standard_normal((120, 300)).astype(np.float32), np.arange(120) % 5)
        W1, W2, W3 = clf.coefs_
        for W in (W1, W2):
            W[:, 7] = 2.0 ** -140 * rng.choice([-1, 1], W.shape[0])  # a unit that died
        clf.intercepts_[0][7] = -1.0
        W2[7] = -(2.0 ** -141)  # its outgoing weights (meeting its zeros)
        W3[3, :] = 2.0 ** -145  # (a W narrower than a line: no copy)
        W1[rng.choice(300, 5, replace=False), 11] = 2.0 ** -135  # (scattered)
        theta, network = clf._packed_parameters(), clf._network()
        copies = E.small_pack_copies(network, theta)
        if copies is None:
            pytest.skip("no layer has a packed copy on this processor (csrc/small_product.c)")
        plain = E.small_pack_copies(network, np.where(
            np.abs(theta) < np.finfo(np.float32).tiny, 0, theta).astype(np.float32))
        for rows in (1, 3):
            X = rng.standard_normal((rows, 300)).astype(np.float32)
            X[:, ::3] = 0.0
            out, packed = (np.full((rows, 5), np.nan, np.float32) for _ in range(2))
            E.predict(network, theta, X, out, 1)
            E.predict(network, theta, X, packed, 1, None, False, copies)
            assert packed.tobytes() == out.tobytes()
        if _small_copy_avx512():  # (the records are there: W1's and W2's groups of values)
            assert len(copies) - len(plain) >= 8 * (300 + 64)
    finally:
        K.subnormals_slow(was[0])
        E.subnormals_slow(was[1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_predict_writes_nothing_past_its_output(dtype, n_threads):
    """Every path of predict (the few-row loop with and without the packed copy, the row
    kernel's blocks, BLAS's) writes exactly out's rows: out is a slice of a guarded buffer, for
    output widths below, at and past a vector and row counts on each side of the paths' bounds."""
    import warnings

    import scipy.sparse as sp

    from fastmlp import MLPRegressor

    rng = np.random.default_rng(5)
    lanes = 64 // np.dtype(dtype).itemsize
    X = rng.standard_normal((300, 30)).astype(dtype)
    X[:, ::3] = 0.0
    for n_out in (1, 3, 10, lanes + 1, 40):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reg = MLPRegressor(hidden_layer_sizes=(70, 19), max_iter=2, random_state=0).fit(
                X, rng.standard_normal((300, n_out)).astype(dtype))
        theta, network = reg._packed_parameters(), reg._network()
        copies = E.small_pack_copies(network, theta)
        for rows in (1, 2, 3, 4, 5, 17, 300):
            for x in (X[:rows], sp.csr_matrix(X[:rows])):
                for copy in (None,) if copies is None else (None, copies):
                    guarded = np.full(rows * n_out + 2 * lanes, 7.0, dtype)
                    out = guarded[lanes:lanes + rows * n_out].reshape(rows, n_out)
                    E.predict(network, theta, x, out, n_threads, None, False, copy)
                    assert (guarded[:lanes] == 7.0).all(), (n_out, rows)
                    assert (guarded[-lanes:] == 7.0).all(), (n_out, rows)
                    np.testing.assert_allclose(out, reg.predict(x).reshape(rows, n_out),
                                               rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [1, 3, 300])  # 300 x 784: GIL-free, in blocks on 2 threads
@pytest.mark.parametrize("cols", [784, 13])  # (13: the vector loop's tail holds the last value)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_surely_finite_is_true_exactly_for_finite_values(dtype, rows, cols, n_threads):
    X = np.random.default_rng(0).standard_normal((rows, cols)).astype(dtype)
    X[0, 0] = np.finfo(dtype).max  # finite extremes are finite (no sum that could overflow)
    X[-1, -1] = -np.finfo(dtype).max
    X[0, 1] = np.finfo(dtype).tiny / 4  # and so are subnormals
    assert E.surely_finite(X, n_threads) is True
    X[0, 0] = 0.0
    assert E.surely_finite(X, n_threads) is True
    for where in [(0, 0), (rows // 2, 5), (-1, -1)]:  # first, middle and last block
        for bad in (np.nan, np.inf, -np.inf):
            Y = X.copy()
            Y[where] = bad
            assert E.surely_finite(Y, n_threads) is False
    assert E.surely_finite(np.empty((0, 5), dtype=dtype), n_threads) is True


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("rows", [1, 2100])  # the few-row loop; three blocks of rows
def test_predict_proves_a_finite_x_in_every_block(n_threads, rows):
    # check_finite: True only when the first layer's product shows every row of X finite;
    # False ("not known") for a NaN or an infinity anywhere (and for finite values whose
    # products overflow: tests/estimator/test_validation.py), and the caller then checks X.
    import warnings

    from fastmlp import MLPClassifier
    from fastmlp._runtime import single_threaded_blas

    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, 5)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier((6,), max_iter=1, random_state=0).fit(
            rng.standard_normal((60, 5)), np.arange(60) % 3)
    theta = clf._packed_parameters().astype(np.float32)
    network = clf._network()
    out = np.empty((rows, 3), np.float32)

    def verdict(X):
        with single_threaded_blas():
            return E.predict(network, theta, X, out, n_threads, None, True)

    assert verdict(X) is True
    expected = out.copy()
    with single_threaded_blas():
        assert E.predict(network, theta, X, out, n_threads) is None
    np.testing.assert_array_equal(out, expected)
    for row in {0, rows // 2, rows - 1}:
        for bad in (np.nan, np.inf, -np.inf):
            Y = X.copy()
            Y[row, 4] = bad
            assert verdict(Y) is False


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha", [0.0, 1e-3])
@pytest.mark.parametrize("bias", [False, True])
def test_finish_gradient_is_finalize_and_sum_squares_in_one_pass(dtype, alpha, bias):
    """The fused pass of a weight job's finish: the gradient of finalize_gradient, sum(w^2)
    and sum(g^2) of the finished g each bit for bit what sum_squares gives (the loss's L2
    term and the gradient norms keep their bits), for every length around the vector widths
    and for blocks that start off a vector's alignment."""
    rng = np.random.RandomState(5)
    for n in (1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 1000, 1023, 4099):
        for offset in (0, 1, 3):
            g = rng.standard_normal(n + offset).astype(dtype)[offset:]
            w = rng.standard_normal(n + offset).astype(dtype)[offset:]
            for want_w2, want_g2 in [(True, True), (True, False), (False, True),
                                     (False, False)]:
                for divisor in (37.0, 32.0):  # (32: by its exact reciprocal)
                    out = g.copy()
                    sum_w2, sum_g2 = K.kernel_finish_gradient(
                        out, None if bias else w, alpha, divisor, want_w2, want_g2)
                    expected = g + (0 if bias else dtype(alpha) * w)
                    expected /= dtype(divisor)
                    np.testing.assert_array_equal(out, expected)
                    assert sum_w2 == (K.kernel_sum_squares(w) if want_w2 and not bias
                                      else None)
                    assert sum_g2 == (K.kernel_sum_squares(expected) if want_g2 else None)


def solver_at_step_3(make, n, s1, s2, s3):
    """The spec of solver make(n) at its 4th step, and its state vectors among s1..s3 (an
    empty one where it has none)."""
    opt = make(n)
    opt.t = 3
    return opt.spec(), [s if used.size else s[:0] for s, used in zip((s1, s2, s3), opt.state)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha", [0.0, 1e-3])
@pytest.mark.parametrize("bias", [False, True])
def test_finish_step_is_the_finish_then_the_step_bit_for_bit(dtype, alpha, bias):
    """A weight job's finish and its solver's step in one pass (fm_finish_step: Adam, SGD with
    and without Nesterov, AdamW with and without amsgrad and weight decay): g, the parameters,
    the state and both sums bit for bit those of fm_finish_gradient and then fm_optim_step, for
    lengths around the vector widths and blocks off a vector's alignment; another solver gets
    its two passes, through the same call."""
    from fastmlp._stochastic_optimizers import AdamOptimizer, SGDOptimizer, TorchOptimizer
    solvers = [lambda n: AdamOptimizer(n, dtype, 0.01, 0.8, 0.95, 1e-7),
               lambda n: SGDOptimizer(n, dtype, 0.05, momentum=0.8, nesterov=True),
               lambda n: SGDOptimizer(n, dtype, 0.05, momentum=0.7, nesterov=False),
               lambda n: TorchOptimizer("adamw", n, dtype, 0.01, beta_2=0.9),
               lambda n: TorchOptimizer("adamw", n, dtype, 0.01, weight_decay=0.0),
               lambda n: TorchOptimizer("adamw", n, dtype, 0.01, amsgrad=True),
               lambda n: TorchOptimizer("adamw", n, dtype, 0.01, amsgrad=True,
                                        weight_decay=0.0),
               lambda n: TorchOptimizer("nadam", n, dtype, 0.01),  # (two passes)
               lambda n: TorchOptimizer("adagrad", n, dtype, 0.01)]  # (one state vector)
    rng = np.random.RandomState(6)
    for n in (1, 7, 8, 9, 16, 17, 33, 100, 1023, 4099):
        for offset in (0, 3):
            def vector(scale=1.0):
                return (scale * rng.standard_normal(n + offset)).astype(dtype)[offset:]
            g, w, s1 = vector(), vector(), vector(0.1)
            s2, s3 = np.abs(vector(0.01)), np.abs(vector(0.01))
            for make, (want_w2, want_g2) in itertools.product(
                    solvers, [(True, True), (False, True), (True, False)]):
                for divisor in (37.0, 32.0):
                    spec, state = solver_at_step_3(make, n, s1, s2, s3)
                    expected = [g.copy(), w.copy()] + [x.copy() for x in state]
                    sums = K.kernel_finish_gradient(expected[0], None if bias else expected[1],
                                                    alpha, divisor, want_w2, want_g2)
                    K.kernel_optim_step(spec.copy(), expected[1], expected[0], *expected[2:])
                    got = [g.copy(), w.copy()] + [x.copy() for x in state]
                    assert K.kernel_finish_step(spec, got[0], got[1], not bias, alpha, divisor,
                                                *got[2:], want_w2, want_g2) == sums
                    assert spec["t"][0] == 4
                    for ours, theirs in zip(got, expected):
                        np.testing.assert_array_equal(ours, theirs)


def test_stream_store_copies_every_byte_and_no_other():
    # fm_stream_store (the gathered rows' and the streamed steps' copy): a head up to the
    # stores' alignment, whole stores, a tail; shorter than one store, and empty
    rng = np.random.RandomState(0)
    for n in (0, 1, 15, 16, 17, 48, 63, 64, 65, 100, 1200, 4099):
        for offset in (0, 1, 7, 16, 33, 63):
            src = rng.randint(0, 256, n).astype(np.uint8)
            dst = np.full(n + 128, 0xAB, dtype=np.uint8)
            K.kernel_stream_store(dst[offset:], src)
            np.testing.assert_array_equal(dst[offset:offset + n], src, err_msg=f"{n} {offset}")
            assert (dst[:offset] == 0xAB).all() and (dst[offset + n:] == 0xAB).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_streamed_step_is_the_step_in_place_bit_for_bit(dtype):
    """A two-thread batch's step (fm_finish_step's `stream`: a large block's new parameters
    written into a block of their own and then streamed over them) leaves g, the parameters,
    the state and both sums bit for bit as the step in place does, on both sides of
    FM_STREAM_MIN_BYTES, for blocks off a vector's and a line's alignment and ends that are not
    a whole vector."""
    from fastmlp._stochastic_optimizers import AdamOptimizer, SGDOptimizer, TorchOptimizer
    solvers = [lambda n: AdamOptimizer(n, dtype, 0.01, 0.8, 0.95, 1e-7),
               lambda n: SGDOptimizer(n, dtype, 0.05, momentum=0.8, nesterov=True),
               lambda n: TorchOptimizer("adamw", n, dtype, 0.01, amsgrad=True)]
    least = K.STREAM_MIN_BYTES // np.dtype(dtype).itemsize
    rng = np.random.RandomState(8)
    for n in (least - 1, least, least + 1, least + 31):
        for offset in (0, 1, 3, 12):
            def vector(scale=1.0):
                return (scale * rng.standard_normal(n + offset)).astype(dtype)[offset:]
            g, w, s1 = vector(), vector(), vector(0.1)
            s2, s3 = np.abs(vector(0.01)), np.abs(vector(0.01))
            for make in solvers:
                spec, state = solver_at_step_3(make, n, s1, s2, s3)
                results = []
                for stream in (False, True):
                    got = [g.copy(), w.copy()] + [x.copy() for x in state]
                    sums = K.kernel_finish_step(spec.copy(), got[0], got[1], True, 1e-3, 37.0,
                                                *got[2:], True, True, stream=stream)
                    results.append((sums, got))
                (sums, in_place), (streamed_sums, streamed) = results
                assert streamed_sums == sums
                assert not np.array_equal(in_place[1], w)  # the step moved the parameters
                for ours, theirs in zip(streamed, in_place):
                    np.testing.assert_array_equal(ours, theirs)


@pytest.fixture
def assists_assumed():
    """The engine told that this processor takes its time over subnormal numbers, so that the
    careful step runs on any machine (csrc/optimizers.c's "Subnormal numbers"), and told to
    measure again afterwards. Skips where the watch is not built (no SSE2 flags)."""
    if not K.subnormals_slow(True):
        pytest.skip("the watch over subnormal numbers needs SSE2's flags")
    yield
    K.subnormals_slow(-1)


def near_subnormal(rng, n, dtype, scale=1.0):
    """Vectors as a block's step meets them on real images: runs of normal numbers, runs of
    values from just under 2^-40 down through float32's subnormals to its smallest, zeros of
    both signs, and runs that mix them one element in three (the careful step's chunks of 256
    and groups of 16 all kinds)."""
    tiny = np.exp2(rng.uniform(-149, -40, n)) * rng.choice([-1, 1], n)
    normal = scale * rng.standard_normal(n)
    zero = rng.choice([0.0, -0.0], n)
    kind = np.repeat(rng.randint(0, 4, n // 40 + 1), 40)[:n]
    mixed = rng.randint(0, 3, n)
    kind = np.where(kind == 3, mixed, kind)
    return np.choose(kind, [normal, tiny, zero]).astype(dtype)


def bits(x):
    return x.view(np.uint32 if x.dtype == np.float32 else np.uint64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("flush", [0, 1, 2, 3])
def test_careful_step_is_the_one_pass_bit_for_bit(dtype, bias, flush, assists_assumed):
    """The careful step (float32: the groups near the subnormal range through double, rounded
    back to float at each operation; the sums in passes of their own) leaves g, the
    parameters, the state and both sums bit for bit as the one pass (or the two passes) does,
    zeros' signs included, for every solver and its options that change its loop, divisors
    with and without an exact reciprocal, lengths around its chunks and groups; and so under
    the processor's flush-to-zero and denormals-are-zero modes (`flush`: 1, 2, both), which a
    library may leave set, and in which the conversions flush as the float operations do.
    float64 keeps the one pass and leaves the watch as it was."""
    from fastmlp._stochastic_optimizers import (
        AdamOptimizer, FtrlOptimizer, SGDOptimizer, TorchOptimizer,
    )

    def torch(name, **options):
        return lambda n: TorchOptimizer(name, n, dtype, 0.01, **options)

    # (each with the state vectors that hold squares, or magnitudes, non-negative)
    solvers = [(lambda n: AdamOptimizer(n, dtype, 0.01, 0.9, 0.999, 1e-8), (1,)),
               (lambda n: SGDOptimizer(n, dtype, 0.05, momentum=0.8, nesterov=True), ()),
               (lambda n: SGDOptimizer(n, dtype, 0.05, momentum=0.7, nesterov=False), ()),
               (torch("adamw", beta_2=0.9), (1,)), (torch("adamw", amsgrad=True), (1, 2)),
               (torch("adamw", amsgrad=True, weight_decay=0.0), (1, 2)),
               (torch("adagrad", weight_decay=0.01), (0,)), (torch("adagrad"), (0,)),
               (torch("rmsprop"), (0,)), (torch("rmsprop", momentum=0.9), (0,)),
               (torch("rmsprop", centered=True, weight_decay=0.01), (0,)),
               (torch("rmsprop", centered=True, momentum=0.9), (0,)),
               (torch("adadelta"), (0, 1)), (torch("adadelta", weight_decay=0.01), (0, 1)),
               (torch("adamax"), (1,)), (torch("adamax", weight_decay=0.01), (1,)),
               (torch("nadam"), (1,)), (torch("nadam", weight_decay=0.01), (1,)),
               (torch("nadam", weight_decay=0.01, decoupled_weight_decay=True), (1,)),
               (lambda n: FtrlOptimizer(n, dtype, 0.01), (0,)),
               (lambda n: FtrlOptimizer(n, dtype, 0.01, learning_rate_power=-0.7,
                                        l1_regularization_strength=1e-3,
                                        l2_shrinkage_regularization_strength=1e-2), (0,))]
    rng = np.random.RandomState(12)
    modes_mattered = False
    for n in (1, 15, 16, 17, 255, 256, 257, 700, 4099):
        for offset in (0, 3):
            g, w = near_subnormal(rng, n + offset, dtype), near_subnormal(rng, n + offset, dtype)
            signed = [near_subnormal(rng, n + offset, dtype, scale)[offset:]
                      for scale in (0.1, 0.01, 0.01)]
            g, w = g[offset:], w[offset:]
            for (make, positive), divisor in itertools.product(solvers, (37.0, 32.0)):
                s1, s2, s3 = (np.abs(x) if i in positive else x for i, x in enumerate(signed))
                spec, state = solver_at_step_3(make, n, s1, s2, s3)
                results = []
                for watch, modes in ((None, flush), (np.array([1.0, 1.0, 1e-30]), flush),
                                     (None, 0)):  # (careful: the cheaper; and no modes)
                    got = [g.copy(), w.copy()] + [x.copy() for x in state]
                    sums = K.kernel_finish_step(spec.copy(), got[0], got[1], not bias, 1e-3,
                                                divisor, *got[2:], True, True, watch=watch,
                                                flush=modes)
                    results.append((sums, got, watch))
                (sums, one_pass, _), (careful_sums, careful, watch), (_, plain, _) = results
                if not np.array_equal(bits(plain[1]), bits(one_pass[1])):
                    modes_mattered = True
                if dtype == np.float32:
                    assert watch[0] == 2 and 0 < watch[2] != 1e-30  # (it took the careful step)
                else:
                    assert watch.tolist() == [1.0, 1.0, 1e-30]
                assert careful_sums == sums
                for ours, theirs in zip(careful, one_pass):
                    np.testing.assert_array_equal(bits(ours), bits(theirs),
                                                  err_msg=f"{n} {offset} {spec['solver']}")
    # (the modes were in force: some float32 step flushed what the plain one kept)
    assert modes_mattered == (flush != 0 and dtype == np.float32)


def test_watch_weighs_the_one_pass_against_the_careful_step(assists_assumed):
    """A block's watch: a one pass that met a subnormal number notes its cost and the next
    step tries the careful step; from then on the cheaper of the two, the other again every
    16th step; a one pass that met none forgets both. Forty steps with the watch give the bits
    of forty without it."""
    from fastmlp._stochastic_optimizers import AdamOptimizer
    rng = np.random.RandomState(13)
    n = 4096
    g = near_subnormal(rng, n, np.float32)
    w, m = near_subnormal(rng, n, np.float32), near_subnormal(rng, n, np.float32, 0.1)
    v = np.abs(near_subnormal(rng, n, np.float32, 0.01))
    runs = []
    for watch in (None, np.zeros(K.WATCH_SIZE)):
        opt = AdamOptimizer(n, np.float32, 1e-3, 0.9, 0.999, 1e-8)
        spec = opt.spec()
        state = [w.copy(), m.copy(), v.copy()]
        for step in range(40):
            grad = g.copy()
            K.kernel_finish_step(spec, grad, state[0], True, 1e-4, 32.0, state[1], state[2],
                                 v[:0], True, True, watch=watch)
            if watch is not None and step == 0:
                assert watch[0] == 1 and watch[1] > 0 and watch[2] == 0  # (flags: its cost)
            if watch is not None and step == 1:
                assert watch[0] == 2 and watch[2] > 0  # (the careful step tried)
        runs.append(state + [grad])
    for ours, theirs in zip(*runs):
        np.testing.assert_array_equal(bits(ours), bits(theirs))
    # normal numbers only: the one pass, watched, meets no subnormal and forgets the costs
    opt = AdamOptimizer(n, np.float32, 1e-3, 0.9, 0.999, 1e-8)
    spec = opt.spec()
    watch = np.array([5.0, 1e-9, 2e-9])  # (the one pass preferred)
    K.kernel_finish_step(spec, rng.standard_normal(n).astype(np.float32),
                         rng.standard_normal(n).astype(np.float32), True, 1e-4, 32.0,
                         np.zeros(n, np.float32), np.zeros(n, np.float32), v[:0], True, True,
                         watch=watch)
    assert watch.tolist() == [6.0, 0.0, 0.0]


def test_a_processor_without_assists_takes_the_one_pass():
    """With subnormal numbers as cheap as others (the verdict False), a watched block takes the
    one pass and leaves its watch untouched."""
    from fastmlp._stochastic_optimizers import AdamOptimizer
    was = K.subnormals_slow()
    K.subnormals_slow(False)
    try:
        rng = np.random.RandomState(14)
        n = 512
        watch = np.array([1.0, 1.0, 1e-30])
        opt = AdamOptimizer(n, np.float32, 1e-3, 0.9, 0.999, 1e-8)
        K.kernel_finish_step(opt.spec(), near_subnormal(rng, n, np.float32),
                             near_subnormal(rng, n, np.float32), True, 1e-4, 32.0,
                             np.zeros(n, np.float32), np.zeros(n, np.float32),
                             np.zeros(0, np.float32), True, True, watch=watch)
        assert watch.tolist() == [1.0, 1.0, 1e-30]
    finally:
        K.subnormals_slow(was)


@pytest.mark.skipif(not K.ROWS_PRODUCT, reason="csrc/rows_product.c needs AVX2 and FMA")
@pytest.mark.parametrize("dtype", DTYPES)
def test_rows_product_refuses_a_kernel_this_machine_does_not_run(dtype):
    """By number, a kernel that does not run here (or not this dtype: float64 has the AVX-512
    kernel alone) is refused and out left as it was."""
    kernels = K.rows_product_kernels(dtype)
    if not kernels:
        pytest.skip("no kernel of csrc/rows_product.c runs this dtype here")
    out = np.full((2, 3), 7.0, dtype=dtype)
    a, W = np.ones((2, 4), dtype), np.ones((4, 3), dtype)
    refused = [-1, max(kernels) + 1] + ([1] if dtype == np.float64 else [])
    for kernel in refused:
        with pytest.raises(RuntimeError, match="does not run here"):
            K.kernel_rows_product(out, a, W, kernel=kernel)
    assert (out == 7.0).all()


# The shapes: around the tiles, panels and blocks; and from 64 rows on (csrc/rows_product.c's
# FM_RP_GROUP_ROWS), where the AVX-512 kernel packs 8 panels (256 columns) of W at a time, around
# that group, with a last group and a last panel that are partial.
FEW_ROWS = ((1, 2, 5, 6, 7, 11, 12, 13, 16, 24, 25, 32),
            (0, 1, 5, 8, 9, 255, 256, 257, 511, 512, 513, 600, 1023, 1024, 1025, 2100),
            (1, 7, 8, 15, 16, 17, 31, 32, 33, 48, 65, 100))
MANY_ROWS = ((63, 64, 77), (1, 257, 513, 1025), (31, 33, 100, 256, 257, 300, 520))


@pytest.mark.skipif(not K.ROWS_PRODUCT, reason="csrc/rows_product.c needs AVX2 and FMA")
@pytest.mark.parametrize("shapes", [FEW_ROWS, MANY_ROWS], ids=["few rows", "many rows"])
@pytest.mark.parametrize("kind", ["a W", "a W^T", "a^T W", "out + a^T W"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_rows_product_is_the_fma_chain_over_k_for_every_shape_and_stride(kind, shapes, dtype):
    """csrc/rows_product.c: every element one chain of fused multiply-adds in k's order (its
    bits, whatever the tiles of rows, the panels of 16 columns and the blocks of 1024 terms,
    256 for a^T; on AVX-512 tiles of 12 rows, panels of 32 and blocks of 512, a^T in strips),
    for the forward product (a W), the backward pass's (delta W^T) and the weight gradient's
    (a^T delta, also added to what out holds), for shapes around each of those sizes
    and for arguments that are slices of wider arrays (X's column slices, W's and the product's
    column tiles, a weight job's rows of W); columns outside the product's are left as they
    were. Each kernel this machine runs (on AVX-512 both: the same bits)."""
    kernels = K.rows_product_kernels(dtype)
    if not kernels:
        pytest.skip("no kernel of csrc/rows_product.c runs this dtype here")
    rng = np.random.RandomState(6)
    transposed, a_transposed, accumulate = kind == "a W^T", "a^T" in kind, "out +" in kind
    for rows in shapes[0]:
        for n_in in shapes[1]:
            for cols in shapes[2]:
                if a_transposed:  # a is n_in x rows: a block of a_in's columns
                    a = rng.standard_normal((n_in, rows + 3)).astype(dtype)[:, 1:rows + 1]
                else:
                    a = rng.standard_normal((rows, n_in + 3)).astype(dtype)[:, 1:n_in + 1]
                shape = (cols, n_in + 5) if transposed else (n_in, cols + 5)
                W_wide = rng.standard_normal(shape).astype(dtype)
                W = W_wide[:, 2:n_in + 2] if transposed else W_wide[:, 2:cols + 2]
                out_wide = np.full((rows, cols + 4), 7.0, dtype=dtype)
                out_wide[:, 3:cols + 3] = rng.standard_normal((rows, cols))
                expected = out_wide[:, 3:cols + 3].copy()
                K.fma_chain_product(expected, a.T if a_transposed else a,
                                    W.T if transposed else W, accumulate)
                for kernel in kernels:
                    out_k = out_wide.copy()
                    out = out_k[:, 3:cols + 3]
                    K.kernel_rows_product(out, a, W, transposed, a_transposed, accumulate,
                                          kernel)
                    np.testing.assert_array_equal(out, expected,
                                                  err_msg=f"{kernel, rows, n_in, cols}")
                    assert (out_k[:, :3] == 7.0).all()
                    assert (out_k[:, cols + 3:] == 7.0).all()


@pytest.mark.skipif(not K.ROWS_PRODUCT, reason="csrc/rows_product.c needs AVX2 and FMA")
@pytest.mark.parametrize("ld", [512, 1024, 2048])
@pytest.mark.parametrize("kind", ["a W", "a W^T", "a W packed once"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_rows_product_of_rows_that_crowd_l1_sets_is_the_same_chain(kind, ld, dtype):
    """Rows of a 2, 4 or 8 KB apart (a 1024-unit layer's activations or deltas) put a tile's
    rows in few sets of L1, so the AVX-512 product copies each block of terms of a into rows
    an odd number of lines apart first (csrc/rows_product.c's rp_crowded512): the same chain
    over k, for blocks of rows at and past FM_RP_GROUP_ROWS with a partial last tile, one or
    several blocks of terms (the last partial), a that uses all of each row or part of it, one
    or several panels; columns outside the product's are left as they were."""
    kernels = K.rows_product_kernels(dtype)
    if not kernels:
        pytest.skip("no kernel of csrc/rows_product.c runs this dtype here")
    rng = np.random.RandomState(9)
    transposed, packed = kind == "a W^T", "packed" in kind
    for rows in (63, 64, 77, 256):
        for n_in in sorted(n for n in {1, 300, 511, 513, ld - 5, ld} if n <= ld):
            for cols in (33, 100, 300):
                a = rng.standard_normal((rows, ld)).astype(dtype)[:, ld - n_in:]
                shape = (cols, n_in + 5) if transposed else (n_in, cols + 5)
                W_wide = rng.standard_normal(shape).astype(dtype)
                W = W_wide[:, 2:n_in + 2] if transposed else W_wide[:, 2:cols + 2]
                expected = np.zeros((rows, cols), dtype)
                K.fma_chain_product(expected, a, W.T if transposed else W)
                for kernel in kernels:
                    out_wide = np.full((rows, cols + 4), 7.0, dtype=dtype)
                    out = out_wide[:, 3:cols + 3]
                    if packed:
                        K.kernel_rows_product_packed(out, a, W, kernel)
                    else:
                        K.kernel_rows_product(out, a, W, transposed, False, False, kernel)
                    np.testing.assert_array_equal(out, expected,
                                                  err_msg=f"{kernel, rows, n_in, cols}")
                    assert (out_wide[:, :3] == 7.0).all()
                    assert (out_wide[:, cols + 3:] == 7.0).all()


@pytest.mark.skipif(not K.ROWS_PRODUCT, reason="csrc/rows_product.c needs AVX2 and FMA")
@pytest.mark.parametrize("ld", [None, 1024])
@pytest.mark.parametrize("dtype", DTYPES)
def test_rows_product_by_w_transposed_skips_only_terms_whose_products_are_zero(ld, dtype):
    """A product by W^T (delta W^T) skips, tile by tile, the terms at which all of a tile's rows
    are zero (csrc/rows_product.c's rp_live_terms512): those add +-0 to a chain that starts from
    +0 and is never -0, so the bits are the full chain's. Rows as a ReLU layer's deltas leave
    them (zero where the unit was off; units off for the whole batch; -0; rows all zero), with a
    NaN among them (a live term), tiles around the share of zeros below which a tile keeps all its
    terms, and W with an infinity or a NaN at a term a tile would skip (0 * inf is NaN: the
    panel's tiles then take all their terms); rows in place or 4 KB apart (copied), one or
    several blocks of terms, one or several panels."""
    kernels = K.rows_product_kernels(dtype)
    if not kernels:
        pytest.skip("no kernel of csrc/rows_product.c runs this dtype here")
    rng = np.random.RandomState(12)
    for rows in (64, 77, 256):
        for n_in in (16, 100, 511, 512, 513, 1024):
            for cols in (33, 100, 300):
                width = ld or n_in
                if width < n_in:
                    continue
                a_wide = rng.standard_normal((rows, width)).astype(dtype)
                a = a_wide[:, width - n_in:]
                on = rng.random_sample(n_in) < rng.uniform(0.02, 0.9, size=n_in)
                a *= (rng.random_sample((rows, n_in)) < on * 0.9) | (rng.random_sample(n_in)
                                                                   < 0.05)
                a[rng.random_sample((rows, n_in)) < 0.05] = -0.0
                a[5 % rows] = 0.0                           # a row all zero
                a[12:24, : n_in // 20] = 0.0                 # a tile with few zero terms
                a[24:36] *= rng.random_sample(n_in) > 0.07   # one around the threshold
                a[36:48] = 0.0                              # a tile with none live
                if n_in > 20:
                    a[rows - 1, 17] = np.nan
                W_wide = rng.standard_normal((cols, n_in + 5)).astype(dtype)
                W = W_wide[:, 2:n_in + 2]
                for bad in (None, np.inf, -np.inf, np.nan):
                    if bad is not None:
                        W = W.copy()
                        W[cols // 2, int(np.argmin(np.abs(a).sum(0)))] = bad
                    expected = np.zeros((rows, cols), dtype)
                    K.fma_chain_product(expected, a, W.T)
                    for kernel in kernels:
                        out_wide = np.full((rows, cols + 4), 7.0, dtype=dtype)
                        out = out_wide[:, 3:cols + 3]
                        K.kernel_rows_product(out, a, W, True, False, False, kernel)
                        np.testing.assert_array_equal(
                            out, expected, err_msg=f"{kernel, rows, n_in, cols, bad}")
                        zeros = expected == 0
                        assert (np.signbit(out[zeros]) == np.signbit(expected[zeros])).all()
                        assert (out_wide[:, :3] == 7.0).all()
                        assert (out_wide[:, cols + 3:] == 7.0).all()


@pytest.mark.parametrize("shapes", [FEW_ROWS, MANY_ROWS], ids=["few rows", "many rows"])
@pytest.mark.parametrize("kind", ["a W", "a^T W", "out + a^T W"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_rows_product_of_picked_rows_is_the_chain_of_the_gathered_rows(kind, shapes, dtype):
    """A shuffled batch's first layer reads its rows where they lie in X, picked by the batch's
    index (fm_rows_product_picked; fastmlp/_engine/_schedule.pxd's picks_rows): its forward
    product (X[index] W) and its weight gradient (X[index]^T delta, also added to what out
    holds) are the chains of the rows gathered, for shapes around the tiles, panels, blocks
    and groups, an X that is a column slice of a wider array (a weight job's features), rows
    picked in any order and more than once, and rows 4 KB apart (float32 rows of 1024, which
    crowd L1's sets: the product copies them first)."""
    if 2 not in K.rows_product_kernels(dtype):
        with pytest.raises(RuntimeError):
            K.kernel_rows_product_picked(np.zeros((2, 2), dtype), np.ones((3, 2), dtype),
                                         np.array([0, 2], np.intp), np.ones((2, 2), dtype))
        return
    rng = np.random.RandomState(10)
    a_transposed, accumulate = "a^T" in kind, "out +" in kind
    # (every other n_in of the other tests' shapes: a picked row changes where a's rows are
    # read, not how the blocks of terms are cut)
    cases = [(rows, n_in, cols) for rows in shapes[0]
             for n_in in sorted(set(shapes[1][1::2]) | {1024}) for cols in shapes[2]]
    if a_transposed and shapes is MANY_ROWS:  # the batch's rows past a block of 256 terms
        cases += [(rows, n_in, cols) for rows in (300, 513) for n_in in (1, 392)
                  for cols in (31, 100)]
    for rows, n_in, cols in cases:
        X_wide = rng.standard_normal((2 * rows + 5, n_in + 3)).astype(dtype)
        X = X_wide[:, 1:n_in + 1]
        picked = rng.randint(0, X.shape[0], size=rows).astype(np.intp)
        gathered = np.ascontiguousarray(X[picked])
        W = rng.standard_normal((rows if a_transposed else n_in, cols + 5)).astype(
            dtype)[:, 2:cols + 2]
        out_rows = n_in if a_transposed else rows
        out_wide = np.full((out_rows, cols + 4), 7.0, dtype=dtype)
        out_wide[:, 3:cols + 3] = rng.standard_normal((out_rows, cols))
        expected = out_wide[:, 3:cols + 3].copy()
        K.fma_chain_product(expected, gathered.T if a_transposed else gathered, W,
                            accumulate)
        out = out_wide[:, 3:cols + 3]
        K.kernel_rows_product_picked(out, X, picked, W, a_transposed, accumulate)
        np.testing.assert_array_equal(out, expected, err_msg=f"{rows, n_in, cols}")
        assert (out_wide[:, :3] == 7.0).all()
        assert (out_wide[:, cols + 3:] == 7.0).all()


def image_like_rows(rng, n, n_in, dtype):
    """Rows of X as images leave them: a border of features zero in every row, strokes that
    are zero in most rows, some -0, a row all zero."""
    X = rng.random_sample((n, n_in)).astype(dtype)
    X *= rng.random_sample((n, n_in)) < rng.uniform(0.0, 0.7, size=n_in)
    X[:, : n_in // 8] = 0.0
    X[:, rng.random_sample(n_in) < 0.2] = -0.0
    X[n // 2] = 0.0
    return X


@pytest.mark.parametrize("kind", ["a W", "a^T W", "out + a^T W"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_rows_product_of_picked_rows_skips_only_terms_whose_products_are_zero(kind, dtype):
    """The first layer's products of a shuffled batch (X[index] W, X[index]^T delta) skip, tile
    by tile, the terms at which all of a tile's rows of X are zero (csrc/rows_product.c's Design,
    "Dead terms"): those add +-0 to chains from +0 that are never -0, so the bits are the full
    chains' and every zero keeps its sign. X as images leave it (zero borders, sparse strokes,
    -0, a row all zero), with a NaN among the zeros (a live term), dense rows first and
    image-like ones after (a product stops looking at tiles once dense ones are three more than
    those that skipped: the later tiles then take all their terms), and W or the deltas with an
    infinity or a NaN at a term a tile would skip (0 * inf is NaN: that panel's tiles, or that
    block's strips, take all their terms)."""
    if 2 not in K.rows_product_kernels(dtype):
        pytest.skip("the AVX-512 kernel of csrc/rows_product.c does not run here")
    rng = np.random.RandomState(14)
    a_transposed, accumulate = "a^T" in kind, "out +" in kind
    cases = ([(rows, n_in, cols) for rows in (256, 300, 513) for n_in in (64, 392, 784)
              for cols in (33, 256)] if a_transposed else
             [(rows, n_in, cols) for rows in (12, 32, 77, 128, 256) for n_in in (256, 784, 1030)
              for cols in (33, 128, 300)])
    for (rows, n_in, cols), layout in itertools.product(cases, ("images", "dense first", "nan")):
        X = image_like_rows(rng, 2 * rows + 5, n_in, dtype)
        picked = rng.permutation(X.shape[0])[:rows].astype(np.intp)
        if layout == "dense first":  # (the first tiles of either product: rows or features)
            if a_transposed:
                X[:, : min(n_in, 40)] = rng.standard_normal((X.shape[0], min(n_in, 40)))
            else:
                X[picked[:40]] = rng.standard_normal((min(rows, 40), n_in))
        elif layout == "nan":
            X[picked[rows - 1], n_in // 16] = np.nan
        gathered = np.ascontiguousarray(X[picked])
        for bad in (None, np.inf, np.nan):
            W = rng.standard_normal((rows if a_transposed else n_in, cols)).astype(dtype)
            if bad is not None:  # at a term some tile skips: a feature, or a row all zero
                W[rows // 2 if a_transposed else 0, cols // 3] = bad
            out_rows = n_in if a_transposed else rows
            out = rng.standard_normal((out_rows, cols)).astype(dtype)
            expected = out.copy()
            K.fma_chain_product(expected, gathered.T if a_transposed else gathered, W,
                                accumulate)
            K.kernel_rows_product_picked(out, X, picked, W, a_transposed, accumulate)
            np.testing.assert_array_equal(out, expected,
                                          err_msg=f"{rows, n_in, cols, layout, bad}")
            zeros = expected == 0
            assert (np.signbit(out[zeros]) == np.signbit(expected[zeros])).all()


@pytest.mark.skipif(not K.ROWS_PRODUCT, reason="csrc/rows_product.c needs AVX2 and FMA")
@pytest.mark.parametrize("shapes", [FEW_ROWS, MANY_ROWS], ids=["few rows", "many rows"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_rows_product_from_w_packed_once_is_the_same_chain(shapes, dtype):
    """A bulk prediction packs each layer's W once (fm_rows_pack_f) and multiplies every block
    of rows from that copy: the same fused chain over k as fm_rows_product_f, for W and a that
    are slices of wider arrays, each half of the rows from the one copy, by each kernel this
    machine runs."""
    kernels = K.rows_product_kernels(dtype)
    if not kernels:
        pytest.skip("no kernel of csrc/rows_product.c runs this dtype here")
    rng = np.random.RandomState(8)
    for rows in shapes[0]:
        for n_in in shapes[1]:
            for cols in shapes[2]:
                a = rng.standard_normal((rows, n_in + 3)).astype(dtype)[:, 1:n_in + 1]
                W = rng.standard_normal((n_in, cols + 5)).astype(dtype)[:, 2:cols + 2]
                expected = np.zeros((rows, cols), dtype)
                K.fma_chain_product(expected, a, W)
                for kernel in kernels:
                    out_wide = np.full((rows, cols + 4), 7.0, dtype=dtype)
                    done = K.kernel_rows_product_packed(out_wide[:, 3:cols + 3], a, W, kernel)
                    assert done == (n_in > 0)
                    if done:
                        np.testing.assert_array_equal(out_wide[:, 3:cols + 3], expected,
                                                      err_msg=f"{kernel, rows, n_in, cols}")
                    assert (out_wide[:, :3] == 7.0).all()
                    assert (out_wide[:, cols + 3:] == 7.0).all()


def with_subnormal_weights(rng, B, a):
    """B (terms x columns, as the product reads it) with weights as units that never fire
    leave them, subnormal floats of either sign: columns all subnormal (a dead unit's
    incoming weights), terms all subnormal (its outgoing ones) whose values of a are zero in
    every row (the unit off) or in some, a subnormal here and there; and a whose rows hold
    values small enough that a product with a subnormal weight rounds to +-0 or to a subnormal
    (the chains then pass through -0 and through float32's subnormal range)."""
    n_in, cols = B.shape
    tiny = lambda *shape: (np.exp2(rng.uniform(-149, -126, shape))
                           * rng.choice([-1, 1], shape)).astype(np.float32)
    dead_columns = rng.choice(cols, size=min(cols, 3), replace=False)
    for j in dead_columns:
        B[:, j] = tiny(n_in)
    # (the least subnormal, which times a's first row rounds to +-0 at every term: the chain
    # goes from zero to zero, its sign the last product's)
    B[:, dead_columns[0]] = np.float32(2.0 ** -149) * rng.choice([-1, 1], n_in)
    a[0] = 1e-3 * rng.choice([-1, 1], a.shape[1])
    dead = rng.choice(n_in, size=min(n_in, 4), replace=False)
    B[dead] = tiny(len(dead), cols)
    B[rng.random_sample(B.shape) < 0.01] = tiny(1)[0]
    a *= np.where(rng.random_sample(a.shape) < 0.2, 1e-3, 1.0).astype(np.float32)
    a[:, dead[: len(dead) // 2]] = 0.0         # units off in every row
    a[::3, dead[len(dead) // 2:]] = -0.0        # and in some
    # A sum that rounding twice gets wrong: row 1 times column 1 is the chain over 2^-116 and
    # 6700417 2^-23 x 641 2^-149 = 2^-117 + 2^-149 (6700417 x 641 = 2^32 + 1): 2^-116 + 2^-139
    # rounded once, but 2^-116 rounded to double (an even float's midpoint) and then to float.
    a[1] = 0.0
    a[1, :2] = 1.0, 6700417 * 2.0 ** -23
    B[:2, 1] = 2.0 ** -116, 641 * 2.0 ** -149
    # A chain that is -0 when it meets a subnormal weight at a term where a is zero in every
    # row (no lane recomputed): row 2 times column 2 goes to -0 at its first term (1e-30 x
    # -1e-20 rounds to -0) and stays there (+0 times a negative weight is -0) only if the
    # panel's zero in place of -2^-140 is -0.
    B[:, 2] = -np.abs(rng.standard_normal(n_in)) - 1.0
    B[0, 2], B[dead[:2], 2] = -1e-20, -2.0 ** -140
    a[2] = 0.0
    a[2, 0] = 1e-30
    # Rounding the other way: row 3 times column 3 is 2^-109 (1 + 2^-23), an odd float, and
    # 65537 2^-16 x 65535 2^-149 = 2^-133 - 2^-165 (just under half its ulp): the float itself
    # rounded once, but the float after it rounded twice (ties to even from the midpoint).
    a[3] = 0.0
    a[3, :2] = 1.0, 65537 * 2.0 ** -16
    B[:2, 3] = 2.0 ** -109 * (1 + 2.0 ** -23), 65535 * 2.0 ** -149
    # A lane that only a tile's first row makes the product compute again: column 4's one
    # weight, subnormal, at a term where row 0 alone is not zero.
    term = next(k for k in range(4, n_in) if k not in dead)
    B[:, 4] = 0.0
    B[term, 4] = 2.0 ** -130
    a[:, term] = 0.0
    a[0, term] = 1.0
    # An infinity where row 4 meets the dead columns (lanes computed again) at the last term:
    # their chains end +-inf, and NaN where a weight is zero (column 4), as fmaf's do.
    a[4, n_in - 1] = np.inf
    return B, a


@pytest.mark.skipif(2 not in K.rows_product_kernels(np.float32),
                    reason="the AVX-512 kernel of csrc/rows_product.c does not run here")
@pytest.mark.parametrize("kind", ["a W", "a W^T", "X[index] W", "a W packed once"])
@pytest.mark.parametrize("slow", [True, False])
def test_rows_product_with_subnormal_weights_is_the_fma_chain(kind, slow):
    """Where multiplies take an assist on a subnormal operand (the verdict forced True), the
    AVX-512 float32 products find W's subnormal values as they pack its panels, multiply with
    zeros of their sign in their place, and compute again, exactly in double, the chains of
    the lanes whose rows meet one with a value of a not zero (csrc/rows_product.c's Design,
    "Subnormal weights"): every element's bits, zeros' signs included, are the fused chain's,
    for the forward product, the one by W^T, the picked rows' (images' zeros: tiles that skip
    terms) and from W packed once, over one block of terms and several (the chain carried
    from block to block), tiles and groups, a first layer's row block and a few rows. With the
    verdict False the products multiply the subnormal values themselves: the same bits."""
    rng = np.random.RandomState(15)
    was = K.subnormals_slow()
    K.subnormals_slow(slow)
    met = {"subnormal": 0, "-0": 0, "inf": 0}  # (results the test must meet: not vacuous)
    try:
        for rows, n_in, cols in [(5, 100, 33), (12, 513, 100), (32, 784, 256), (77, 300, 100),
                                 (128, 1030, 65), (256, 784, 300)]:
            a = rng.standard_normal((rows, n_in)).astype(np.float32)
            if kind == "X[index] W":
                a = image_like_rows(rng, rows, n_in, np.float32)
            B, a = with_subnormal_weights(
                rng, rng.standard_normal((n_in, cols)).astype(np.float32), a)
            expected = np.zeros((rows, cols), np.float32)
            K.fma_chain_product(expected, a, B)
            out = np.full((rows, cols), 7.0, np.float32)
            K.rows_product_looks(1000)  # (this product looks, as one after a flag raised)
            if kind == "a W^T":
                K.kernel_rows_product(out, a, np.ascontiguousarray(B.T), True, False, False, 2)
            elif kind == "X[index] W":
                X = np.zeros((2 * rows + 3, n_in), np.float32)
                picked = rng.permutation(X.shape[0])[:rows].astype(np.intp)
                X[picked] = a
                K.kernel_rows_product_picked(out, X, picked, B)
            elif kind == "a W packed once":
                K.kernel_rows_product_packed(out, a, B, 2)
            else:
                K.kernel_rows_product(out, a, B, False, False, False, 2)
            np.testing.assert_array_equal(out.view(np.uint32), expected.view(np.uint32),
                                          err_msg=f"{rows, n_in, cols}")
            assert expected[1, 1] == np.float32(2.0 ** -116 + 2.0 ** -139)
            assert expected[2, 2] == 0 and np.signbit(expected[2, 2])
            assert expected[3, 3] == np.float32(2.0 ** -109 * (1 + 2.0 ** -23))
            met["subnormal"] += ((expected != 0)
                                 & (np.abs(expected) < np.finfo(np.float32).tiny)).sum()
            met["-0"] += (np.signbit(expected) & (expected == 0)).sum()
            met["inf"] += np.isinf(expected[4]).sum()
        assert met["subnormal"] > 0 and met["-0"] > 0 and met["inf"] > 0, met
    finally:
        K.subnormals_slow(was)
        K.rows_product_looks(0)


@pytest.mark.skipif(2 not in K.rows_product_kernels(np.float32),
                    reason="the AVX-512 kernel of csrc/rows_product.c does not run here")
def test_products_look_for_subnormal_weights_only_while_some_are_about():
    """Where multiplies take an assist on a subnormal operand, a product that does not look
    for subnormal weights watches the processor's denormal-operand flag: one over W with a
    subnormal value sets the products that look next, one over normal numbers none; each
    product that looks and finds none counts one down, one that finds some sets the count
    again. Either way the bits are the chain's."""
    rng = np.random.RandomState(16)
    was = K.subnormals_slow()
    K.subnormals_slow(True)
    K.rows_product_looks(0)
    try:
        a = rng.standard_normal((32, 300)).astype(np.float32)
        normal = rng.standard_normal((300, 100)).astype(np.float32)
        tiny, _ = with_subnormal_weights(rng, normal.copy(), a.copy())
        for B, looks_after in [(normal, 0), (tiny, "set"), (normal, "one less"), (tiny, "set")]:
            before = K.rows_product_looks()
            out, expected = np.zeros((32, 100), np.float32), np.zeros((32, 100), np.float32)
            K.fma_chain_product(expected, a, B)
            K.kernel_rows_product(out, a, B, False, False, False, 2)
            np.testing.assert_array_equal(out.view(np.uint32), expected.view(np.uint32))
            after = K.rows_product_looks()
            if looks_after == "set":
                assert after > 1 and after >= before
            elif looks_after == "one less":
                assert after == before - 1
            else:
                assert after == looks_after
        K.subnormals_slow(False)  # (a processor without assists never looks)
        K.rows_product_looks(0)
        K.kernel_rows_product(out, a, tiny, False, False, False, 2)
        assert K.rows_product_looks() == 0
    finally:
        K.subnormals_slow(was)
        K.rows_product_looks(0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_in", [37, 1100])  # 1100: two pieces of terms
@pytest.mark.parametrize("zeros", [False, True])
def test_small_product_in_column_parts_gives_the_whole_products_bits(dtype, n_in, zeros):
    """A few-row prediction on two threads (the engine's split_product) computes columns
    0..cut and cut..n_out apart: each part holds the whole product's bits, from W and from its
    packed copy, at every cut on a 256-byte boundary (the generic path's copy is cut at its
    blocks' edges, the AVX-512 path's at a line), and writes no column outside its own."""
    rng = np.random.default_rng(n_in)
    step = 256 // np.dtype(dtype).itemsize
    for n_out in [2 * step, 2 * step + 5, 4 * step + 16, 300]:
        W = rng.standard_normal((n_in, n_out)).astype(dtype)
        copy = K.kernel_small_pack(W)
        a = rng.standard_normal((3, n_in)).astype(dtype)
        if zeros:
            a[a < 0] = -0.0
            a[:, ::7] = 0.0
        for rows in (1, 3):
            whole = np.full((rows, n_out), np.nan, dtype)
            K.kernel_small_product(whole, a[:rows], W)
            for cut in range(step, n_out, step):
                for packed in (None,) if copy is None else (None, copy):
                    out = np.full((rows, n_out), 7.0, dtype)
                    K.kernel_small_product_part(out, a[:rows], W, packed, 0, cut)
                    assert (out[:, cut:] == 7.0).all(), (n_out, cut)
                    K.kernel_small_product_part(out, a[:rows], W, packed, cut, n_out)
                    assert out.tobytes() == whole.tobytes(), (n_out, cut, packed is None)


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_split_cuts_large_products_on_a_boundary_near_the_middle(dtype):
    itemsize = np.dtype(dtype).itemsize
    step = 256 // itemsize
    for n_in, n_out in [(784, 256), (784, 300), (1024, 1024), (64, 4096), (2048, 100)]:
        cut = K.kernel_small_split(n_in, n_out, dtype)
        if n_in * n_out * itemsize < 256 * 1024:
            assert cut == 0
            continue
        if n_out < 2 * (64 // itemsize):
            assert cut == 0
            continue
        assert 0 < cut < n_out and cut % (64 // itemsize) == 0, (n_in, n_out, cut)
        assert abs(cut - n_out / 2) <= step / 2, (n_in, n_out, cut)
    assert K.kernel_small_split(256 * 1024 // (64 * itemsize) - 1, 64, dtype) == 0  # one thread
