"""csrc/scratch.c: the working memory a thread's kernels keep from call to call, so that nothing
is allocated inside an epoch; read by no call before it writes it, freed when its thread exits."""
import threading
import time

import numpy as np
import pytest

from fastmlp import MLPClassifier, MLPRegressor
from fastmlp._engine import _testing as K
from fastmlp._engine import _trainer as T

DTYPES = [np.float32, np.float64]


def _scratch_products(dtype, rng):
    """(name, call) for each path of csrc/rows_product.c's AVX-512 product that takes working
    memory: a group of packed panels (a W over >= FM_RP_GROUP_ROWS rows), the copy of rows that
    crowd L1 (rows 4 KB apart), the W^T product's live rows (ReLU-like deltas, >= 256 terms; rows
    4 KB apart too, so that the tiles that keep all their terms are copied there), and strips of
    a^T (a weight gradient over several panels, and of picked rows); each call returns its out."""
    def relu_like(rows, n_in, ld):
        a = rng.standard_normal((rows, ld)).astype(dtype)[:, :n_in]
        a *= rng.random_sample(n_in) < 0.8
        a[a < -1] = 0.0
        return a
    a_group, W_group = rng.standard_normal((77, 300)).astype(dtype), \
        rng.standard_normal((300, 300)).astype(dtype)
    a_crowded = rng.standard_normal((256, 1024)).astype(dtype)
    W_crowded = rng.standard_normal((1024, 100)).astype(dtype)
    delta = relu_like(256, 512, 1024)
    W_t = rng.standard_normal((300, 512)).astype(dtype)
    a_at, W_at = rng.standard_normal((256, 300)).astype(dtype), \
        rng.standard_normal((256, 100)).astype(dtype)
    X = rng.standard_normal((1000, 300)).astype(dtype)
    picked = rng.permutation(1000)[:128].astype(np.intp)
    W_picked = rng.standard_normal((128, 64)).astype(dtype)

    def product(out_shape, *args, **kw):
        out = np.full(out_shape, 7.0, dtype)
        K.kernel_rows_product(out, *args, **kw)
        return out

    def picked_product():
        out = np.full((300, 64), 7.0, dtype)
        K.kernel_rows_product_picked(out, X, picked, W_picked, a_transposed=True)
        return out
    return [("a W, a group of panels", lambda: product((77, 300), a_group, W_group)),
            ("a W, crowded rows", lambda: product((256, 100), a_crowded, W_crowded)),
            ("a W^T, live rows", lambda: product((256, 300), delta, W_t, transposed=True)),
            ("a^T W, strips", lambda: product((300, 100), a_at, W_at, a_transposed=True)),
            ("X[picked]^T W, strips", picked_product)]


@pytest.mark.skipif(not K.ROWS_PRODUCT, reason="csrc/rows_product.c needs AVX2 and FMA")
@pytest.mark.parametrize("dtype", DTYPES)
def test_kernels_read_none_of_their_kept_scratch_they_did_not_write(dtype):
    """A thread keeps its kernels' working memory from call to call (csrc/scratch.c), so a call
    finds there what the last one left, not a fresh malloc's zeroed pages: with every block
    filled with NaNs before it is handed out, each product's path that takes scratch, and the
    streamed step, give the bits they give without. (That those are the fma chain's, the product
    tests of test_kernels.py hold.)"""
    if 2 not in K.rows_product_kernels(dtype):
        pytest.skip("only the AVX-512 kernel takes scratch")
    rng = np.random.RandomState(31)
    products = _scratch_products(dtype, rng)
    clean = [call() for _, call in products]
    K.scratch_poison(True)
    try:
        poisoned = [call() for _, call in products]
    finally:
        K.scratch_poison(False)
    for (name, _), ours, theirs in zip(products, poisoned, clean):
        assert not np.isnan(theirs).any(), name
        assert ours.tobytes() == theirs.tobytes(), name
    # the streamed step: its new parameters are written into the step's block, then streamed
    from fastmlp._stochastic_optimizers import AdamOptimizer
    n = K.STREAM_MIN_BYTES // np.dtype(dtype).itemsize + 5
    g, w = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    results = []
    for poison in (False, True):
        opt = AdamOptimizer(n, dtype, 0.01, 0.9, 0.999, 1e-8)
        got = [g.copy(), w.copy(), np.zeros(n, dtype), np.zeros(n, dtype), np.zeros(0, dtype)]
        K.scratch_poison(poison)
        try:
            sums = K.kernel_finish_step(opt.spec(), got[0], got[1], True, 1e-3, 3.0, *got[2:],
                                        True, True, stream=True)
        finally:
            K.scratch_poison(False)
        results.append((sums, b"".join(x.tobytes() for x in got)))
    assert results[0] == results[1]
    assert not np.isnan(np.frombuffer(results[0][1], dtype)).any()


@pytest.mark.skipif(not K.ROWS_PRODUCT, reason="csrc/rows_product.c needs AVX2 and FMA")
def test_a_thread_keeps_its_scratch_and_frees_it_when_it_exits():
    """The same product again takes no new block; a thread that ran one holds a block until it
    exits (a pthread key's destructor frees it), so a user's threads leave nothing behind."""
    if 2 not in K.rows_product_kernels(np.float32):
        pytest.skip("only the AVX-512 kernel takes scratch")
    rng = np.random.RandomState(32)
    a, W = rng.standard_normal((128, 300)).astype(np.float32), \
        rng.standard_normal((300, 300)).astype(np.float32)
    out = np.empty((128, 300), np.float32)
    K.kernel_rows_product(out, a, W)
    allocated, _ = K.scratch_counts()
    for _ in range(5):
        K.kernel_rows_product(out, a, W)
    assert K.scratch_counts()[0] == allocated
    ran, leave = threading.Event(), threading.Event()

    def work():
        K.kernel_rows_product(np.empty_like(out), a, W)
        ran.set()
        leave.wait(60)
    _, holding = K.scratch_counts()
    thread = threading.Thread(target=work)
    thread.start()
    try:
        assert ran.wait(60)
        assert K.scratch_counts() == (allocated + 1, holding + 1)
    finally:
        leave.set()
        thread.join()
    # Python's join returns once the thread's Python state is released, which is before its OS
    # thread runs the key's destructor: it failed now and then, on a quiet machine too (the
    # count one block high). So the destructor gets a few seconds to run.
    deadline = time.monotonic() + 10
    while K.scratch_counts() != (allocated + 1, holding) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert K.scratch_counts() == (allocated + 1, holding)


def _fits(dtype):
    """Fits whose epochs take every kind of scratch: a 1024-unit layer (its rows crowd L1: the
    next layer's product copies them), products by W^T of >= 256 terms behind ReLU (live rows),
    weight gradients over several panels (strips), groups of packed panels, and steps of
    blocks >= 128 KB (streamed where a batch runs on two threads)."""
    rng = np.random.RandomState(33)
    X = rng.standard_normal((1200, 200)).astype(dtype)
    y = (X[:, :4].sum(1) > 0).astype(int) + (X[:, 4] > 1)
    fits = []
    for params in (dict(hidden_layer_sizes=(1024, 300), batch_size=256, max_iter=2),
                   dict(hidden_layer_sizes=(300, 300), solver="sgd", batch_size=512,
                        max_iter=2, early_stopping=True)):
        fits.append(lambda p=params: MLPClassifier(random_state=0, **p).fit(X, y))
    fits.append(lambda: MLPRegressor(hidden_layer_sizes=(400, 280), batch_size=200, max_iter=2,
                                     random_state=1).fit(X, X[:, :2] @ [1.0, -2.0]))
    return fits


def _bits(model):
    return b"".join(np.ascontiguousarray(a).tobytes() for a in model.coefs_ + model.intercepts_) \
        + np.asarray(model.loss_curve_).tobytes()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_fit_reads_none_of_its_kept_scratch_it_did_not_write(dtype):
    """Every block the epochs' kernels take filled with NaNs first: the same weights and loss
    curve, bit for bit (the engine's module links its own csrc/: _trainer's switch)."""
    for fit in _fits(dtype):
        clean = _bits(fit())
        T.scratch_poison(True)
        try:
            poisoned = _bits(fit())
        finally:
            T.scratch_poison(False)
        assert poisoned == clean


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_epochs_after_the_first_allocate_nothing():
    """On one thread every product and step of an epoch runs on the caller's thread, whose blocks
    have grown to what the epoch needs by its end: the next epochs allocate none."""
    from threadpoolctl import threadpool_limits
    if not T.scratch_kept():
        pytest.skip("built with AddressSanitizer: every call gets a block of its own size")
    rng = np.random.RandomState(34)
    X = rng.standard_normal((1200, 200)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    model = MLPClassifier(hidden_layer_sizes=(1024, 300), batch_size=256, random_state=0)
    with threadpool_limits(1, "openmp"):
        model.partial_fit(X, y, classes=[0, 1])
        allocated = T.scratch_counts()[0]
        for _ in range(3):
            model.partial_fit(X, y)
        assert T.scratch_counts()[0] == allocated
    assert allocated > 0 or 2 not in K.rows_product_kernels(np.float32)
