"""Same seed, same data -> bitwise the same weights and predictions: across runs, across thread
counts (set by OMP_NUM_THREADS, and by threadpoolctl's limit on OpenMP), and across the memory
layouts of X. Each thread count runs in its own Python: OpenMP fixes it at start."""
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits

from fastmlp import MLPClassifier, MLPRegressor
from fastmlp import _validation
from fastmlp._engine import _testing as K

from _helpers import assert_bitwise_equal_on_one_and_two_threads, digits, run_python


def fit_weights(dtype, solver="adam"):
    X, y = load_digits(return_X_y=True)
    clf = MLPClassifier(hidden_layer_sizes=(64, 32), solver=solver, random_state=0,
                        max_iter=3, batch_size=256)
    with pytest.warns(Warning):
        clf.fit((X / 16.0).astype(dtype), y)
    return clf._theta.copy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_seed_twice_is_bitwise_equal(dtype):
    np.testing.assert_array_equal(fit_weights(dtype), fit_weights(dtype))


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_and_two_threads_give_bitwise_equal_weights(dtype, solver):
    assert_bitwise_equal_on_one_and_two_threads(
        dtype, hidden_layer_sizes=(64, 32), solver=solver, random_state=0, max_iter=3,
        batch_size=256)



# Few rows against a W of <= 256 columns: float32 products by csrc/rows_product.c (AVX2 and FMA,
# or AVX-512), elsewhere in column tiles (_layer_dense.pxd's dense_product). 320 features
# (digits' 64, five times over) and batches of 32 (blocks of 16 rows): 16 x 256 x 320
# multiply-adds, over the tiling threshold, and two blocks of k for the own kernel.
FEW_ROWS_ON_THREADS = """
import sys, warnings
import numpy as np
from sklearn.datasets import load_digits
from fastmlp import MLPClassifier, MLPRegressor
from fastmlp._runtime import effective_n_threads
X, y = load_digits(return_X_y=True)
X = np.hstack([X / 16.0] * 5).astype("float32")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    clf = MLPClassifier((256, 64), batch_size=32, max_iter=2, random_state=0).fit(X, y)
sys.stdout.write(str(effective_n_threads()) + " " + clf._theta.tobytes().hex() + " "
                 + clf.predict_proba(X[:20]).tobytes().hex())
"""


def test_few_row_products_in_column_tiles_are_bitwise_equal_on_one_and_two_threads():
    one, two = (run_python(FEW_ROWS_ON_THREADS, omp_threads=n).split() for n in (1, 2))
    assert one[0] == "1" and two[0] == "2"
    assert one[1:] == two[1:]


def test_few_row_products_in_column_tiles_are_the_product():
    X, y = load_digits(return_X_y=True)
    X = np.hstack([X / 16.0] * 5).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier((256,), activation="identity", batch_size=32, max_iter=1,
                            random_state=0).fit(X, y)
    for rows in (4, 20, 32):  # 20 and 32 rows: rows_product.c or tiles; reference in float64
        z = (X[:rows].astype(np.float64) @ clf.coefs_[0].astype(np.float64) + clf.intercepts_[0])
        logits = z @ clf.coefs_[1].astype(np.float64) + clf.intercepts_[1]
        expected = np.exp(logits - logits.max(1, keepdims=True))
        expected /= expected.sum(1, keepdims=True)
        np.testing.assert_allclose(clf.predict_proba(X[:rows]), expected, rtol=1e-4, atol=1e-6)


# Every option the engine computes in its own code path (an optimizer's update, an activation's
# forward and backward, a loss's delta, the sparse product), fitted once per process: one Python
# on one thread, one on two. A list of (estimator, parameters, sparse X?).
OPTIONS_ON_THREADS = """
import ast, hashlib, sys, warnings
import numpy as np
import scipy.sparse as sp
from sklearn.datasets import load_digits
import fastmlp
from fastmlp._runtime import effective_n_threads
warnings.simplefilter("ignore")
X, y = load_digits(return_X_y=True)
X = X / 16.0
print(effective_n_threads())
for dtype in ("float32", "float64"):
    for name, params, sparse in ast.literal_eval(sys.argv[1]):
        Xd = X.astype(dtype)
        est = getattr(fastmlp, name)(hidden_layer_sizes=(64, 32), random_state=0, max_iter=2,
                                     batch_size=256, **params)
        est.fit(sp.csr_matrix(Xd) if sparse else Xd, y if name == "MLPClassifier" else y / 9.0)
        print(dtype, name, params, sparse, hashlib.sha256(est._theta.tobytes()).hexdigest())
"""

OPTIONS = (
    [("MLPClassifier", dict(solver=solver), False) for solver in ("adagrad", "adadelta", "adamax")]
    + [("MLPClassifier", dict(activation=activation), False)
       for activation in ("gelu", "silu", "mish", "softplus", "elu")]
    + [("MLPRegressor", dict(loss="huber"), False),
       ("MLPRegressor", dict(loss="absolute_error"), False),
       ("MLPClassifier", dict(loss="squared_error"), False)]
    + [("MLPClassifier", dict(solver=solver), True) for solver in ("adam", "lbfgs")]
)


def test_every_solver_activation_loss_and_sparse_x_is_bitwise_equal_on_one_and_two_threads():
    outputs = {}
    for threads in (1, 2):
        out = run_python(OPTIONS_ON_THREADS, repr(OPTIONS), omp_threads=threads).splitlines()
        assert out[0] == str(threads)  # two runs of one thread would prove nothing
        outputs[threads] = out[1:]
    assert len(outputs[1]) == 2 * len(OPTIONS)
    for one, two in zip(outputs[1], outputs[2]):
        assert one == two

DETERMINISM = """
import hashlib, sys, warnings
import numpy as np
from sklearn.datasets import load_digits
from threadpoolctl import threadpool_limits
from fastmlp import MLPClassifier, MLPRegressor
from fastmlp._runtime import effective_n_threads
warnings.simplefilter("ignore")
X, y = load_digits(return_X_y=True)
X = X / 16.0
w = np.random.RandomState(0).rand(len(y))
threads = int(sys.argv[1])
with threadpool_limits(threads, user_api="openmp"):
    print(effective_n_threads())
    for dtype in (np.float32, np.float64):
        for solver in ("adam", "sgd", "lbfgs"):
            for Est, extra in ((MLPClassifier, dict(batch_size=1024)),
                               (MLPRegressor, dict(batch_size=700, early_stopping=True)),
                               (MLPClassifier, dict(batch_size=512, alpha=1e-2))):
                est = Est(hidden_layer_sizes=(96, 48), solver=solver, max_iter=6,
                          random_state=3, **extra)
                if solver == "lbfgs":
                    est.set_params(early_stopping=False)
                est.fit(X.astype(dtype), y, sample_weight=w if "alpha" in extra else None)
                digest = hashlib.sha256(est._theta.tobytes())
                for rows in (slice(None), slice(0, 100), slice(7, 8)):  # OpenMP / caller alone
                    x = X[rows].astype(dtype)
                    digest.update((est.predict_proba(x) if Est is MLPClassifier
                                   else est.predict(x)).tobytes())
                print(dtype.__name__, solver, Est.__name__, digest.hexdigest())
"""


def test_same_seed_gives_bitwise_the_same_weights_with_any_thread_count():
    outputs = {}
    for threads in (1, 2, 3, 4):
        out = run_python(DETERMINISM, threads).splitlines()
        assert out[0] == str(threads)
        outputs[threads] = out[1:]
    assert len(outputs[1]) == 18
    for threads in (2, 3, 4):
        assert outputs[threads] == outputs[1]


# One parallel region per batch (_schedule.pxd's batch_jobs): weight jobs wait for the row
# blocks still running, and before their step for every block to be done reading their W. With
# 16 row blocks and 8 threads on a machine of fewer cores, threads are preempted mid-job and
# the waits are many; each batch held on all 8 threads (the run-time choice would pick one).
HELD_ON_ALL_THREADS = """
import sys, warnings
import numpy as np
from fastmlp import MLPClassifier, MLPRegressor
from fastmlp._engine._testing import hold_all_threads
from fastmlp._runtime import effective_n_threads
warnings.simplefilter("ignore")
rng = np.random.RandomState(0)
X = rng.standard_normal((4096, 24)).astype(sys.argv[1])
y = (X[:, 0] > 0) + 2 * (X[:, 1] + X[:, 2] > 0)
out = [str(effective_n_threads())]
for params in (dict(solver="adam", alpha=1e-3),
               dict(solver="sgd", activation="tanh", dropout=0.2, momentum=0.9),
               dict(solver="adam", max_grad_norm=0.5)):
    clf = MLPClassifier((64, 48, 40, 32), batch_size=4096, random_state=0, **params)
    clf.partial_fit(X, y, classes=[0, 1, 2, 3])
    hold_all_threads(clf._network(), effective_n_threads())
    for _ in range(24):
        clf.partial_fit(X, y)
    out += [str(clf._network().thread_choice[0]), clf._theta.tobytes().hex(),
            clf.predict_proba(X[:50]).tobytes().hex()]
print(" ".join(out))
"""


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_batches_held_on_more_threads_than_cores_give_the_one_thread_bits(dtype):
    one, many = (run_python(HELD_ON_ALL_THREADS, dtype, omp_threads=n).split() for n in (1, 8))
    assert one[0] == "1" and many[0] == "8"
    assert many[1::3] == ["8"] * 3  # every batch on all of them
    assert many[2::3] == one[2::3] and many[3::3] == one[3::3]


# Batches of 256 rows on two threads whose weight jobs are blocks of 150 x 256 weights (154 KB
# in float32, twice that in float64): their steps write the new W past the caches, through a
# block of their own (Step.stream; csrc/optimizers.c's fm_stream_copy), where one thread steps
# W in place; each way held for every batch (Network.force_step_store: the run-time choice of
# _stores.pxd picks one of the two by what the batches cost). Each of the solvers that step in
# the finish's pass (Adam, SGD, AdamW), and one that takes its two passes (NAdam, never
# streamed).
STREAMED_STEPS = """
import sys, warnings
import numpy as np
from fastmlp import MLPClassifier, MLPRegressor
from fastmlp._engine._testing import hold_all_threads
from fastmlp._runtime import effective_n_threads
warnings.simplefilter("ignore")
rng = np.random.RandomState(0)
X = rng.standard_normal((512, 300)).astype(sys.argv[1])
y = (X[:, 0] > 0) + 2 * (X[:, 1] + X[:, 2] > 0)
out = [str(effective_n_threads())]
for way in (1, 0):
    for params in (dict(solver="adam"), dict(solver="sgd", momentum=0.9),
                   dict(solver="adamw", amsgrad=True), dict(solver="nadam")):
        clf = MLPClassifier((256,), batch_size=256, random_state=0, alpha=1e-3, **params)
        clf.partial_fit(X, y, classes=[0, 1, 2, 3])
        hold_all_threads(clf._network(), effective_n_threads())
        clf._network().force_step_store(way)
        for _ in range(3):
            clf.partial_fit(X, y)
        choice = clf._network().step_store_choice
        out += [str(clf._network().thread_choice[0]), f"{choice[0]}:{choice[3]}:{choice[4]}",
                clf._theta.tobytes().hex(), np.asarray(clf.loss_curve_).tobytes().hex()]
print(" ".join(out))
"""


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_steps_streamed_on_two_threads_give_the_one_thread_bits(dtype):
    one, two = (run_python(STREAMED_STEPS, dtype, omp_threads=n).split(" ") for n in (1, 2))
    assert one[0] == "1" and two[0] == "2"
    assert two[1::4] == ["2"] * 8  # every batch on both
    # one thread times no step (none may stream); two time their 2 full batches an epoch,
    # all streamed where held so (NAdam's too: its two passes then write in place)
    assert one[2::4] == ["1:0:0"] * 4 + ["0:0:0"] * 4
    assert two[2::4] == ["1:6:6"] * 4 + ["0:6:0"] * 4
    assert two[3::4] == one[3::4] and two[4::4] == one[4::4]
    assert two[3:19:4] == two[19::4]  # and the same bits either way


# Batches of 256 rows on two threads, whose row blocks of 128 rows and weight jobs multiply by
# groups of W's panels, with the products fetching the next group's rows of W into L2 and
# without (fm_rows_product_set_fetch), each way held for every batch (Network.force_fetch: the
# run-time choice of _stores.pxd picks one of the two by what the batches cost), against one
# thread's bits: a prefetch changes no value.
FETCHED = """
import sys, warnings
import numpy as np
from fastmlp import MLPClassifier
from fastmlp._engine._testing import hold_all_threads
from fastmlp._runtime import effective_n_threads
warnings.simplefilter("ignore")
rng = np.random.RandomState(0)
X = rng.standard_normal((512, 300)).astype(sys.argv[1])
y = (X[:, 0] > 0) + 2 * (X[:, 1] + X[:, 2] > 0)
out = [str(effective_n_threads())]
for way in (0, 1):
    clf = MLPClassifier((256, 128), batch_size=256, random_state=0, alpha=1e-3)
    clf.partial_fit(X, y, classes=[0, 1, 2, 3])
    hold_all_threads(clf._network(), effective_n_threads())
    clf._network().force_fetch(way)
    for _ in range(3):
        clf.partial_fit(X, y)
    choice = clf._network().fetch_choice
    out += [f"{choice[0]}:{choice[3]}:{choice[4]}", clf._theta.tobytes().hex(),
            np.asarray(clf.loss_curve_).tobytes().hex()]
print(" ".join(out))
"""


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_products_with_and_without_the_fetch_give_the_one_thread_bits(dtype):
    one, two = (run_python(FETCHED, dtype, omp_threads=n).split() for n in (1, 2))
    assert one[0] == "1" and two[0] == "2"
    # one thread times no batch for the fetch's choice; two time their 2 full batches an epoch
    # where the AVX-512 kernel runs (elsewhere nothing fetches: nothing is timed)
    assert one[1::3] == ["0:0:0", "1:0:0"]
    timed = 6 if 2 in K.rows_product_kernels(dtype) else 0
    assert two[1::3] == [f"0:{timed}:0", f"1:{timed}:{timed}"]
    assert two[2::3] == one[2::3] and two[3::3] == one[3::3]
    assert two[2] == two[5] and two[3] == two[6]  # and the same bits either way


# The same batches with their rows gathered past the caches (Step.stream_rows: the row blocks'
# streaming stores, csrc/optimizers.c's fm_stream_store) and through them, each way held for
# every batch (Network.force_store), against one thread's: a classifier and a regressor, and a
# last batch too short to be timed. Batches of 520 rows, whose two row blocks of 260 rows go to
# BLAS and gather (blocks of at most 256 rows, on AVX-512, read their rows where they lie:
# fastmlp/_engine/_schedule.pxd's picks_rows).
STREAMED_ROWS = """
import sys, warnings
import numpy as np
from fastmlp import MLPClassifier, MLPRegressor
from fastmlp._engine._testing import hold_all_threads
from fastmlp._runtime import effective_n_threads
warnings.simplefilter("ignore")
rng = np.random.RandomState(1)
X = rng.standard_normal((1100, 300)).astype(sys.argv[1])
y = (X[:, 0] > 0) + 2 * (X[:, 1] + X[:, 2] > 0)
out = [str(effective_n_threads())]
for way in (0, 1):
    for est in (MLPClassifier(hidden_layer_sizes=(200, 64), batch_size=520, random_state=0),
                MLPRegressor(hidden_layer_sizes=(200,), batch_size=520, random_state=0)):
        classifier = isinstance(est, MLPClassifier)
        target = y if classifier else X[:, :3] @ [1.0, -2.0, 0.5]
        kwargs = {"classes": [0, 1, 2, 3]} if classifier else {}
        est.partial_fit(X, target, **kwargs)
        hold_all_threads(est._network(), effective_n_threads())
        est._network().force_store(way)
        for _ in range(3):
            est.partial_fit(X, target)
        choice = est._network().store_choice
        out += [f"{choice[0]}:{choice[3]}:{choice[4]}", est._theta.tobytes().hex(),
                np.asarray(est.loss_curve_).tobytes().hex()]
print(" ".join(out))
"""


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rows_gathered_past_the_caches_give_the_one_thread_bits(dtype):
    one, two = (run_python(STREAMED_ROWS, dtype, omp_threads=n).split(" ") for n in (1, 2))
    assert one[0] == "1" and two[0] == "2"
    # one thread times no gather (none may stream); two time their 2 full batches an epoch,
    # all streamed where held so
    assert one[1::3] == ["0:0:0", "0:0:0", "1:0:0", "1:0:0"]
    assert two[1::3] == ["0:6:0", "0:6:0", "1:6:6", "1:6:6"]
    assert two[2::3] == one[2::3] and two[3::3] == one[3::3]
    assert two[2] == two[8] and two[5] == two[11]  # and the same bits either way


def test_the_layout_of_X_does_not_change_the_fit():
    # C order is read in place, other layouts are gathered batch by batch (large data) or
    # copied once (small data): every route gives bitwise the same weights and predictions.
    pd = pytest.importorskip("pandas")
    Xd, yd = digits(600, scaled=False)
    wide = np.hstack([Xd, np.ones((len(Xd), 3))])
    layouts = {"F order": np.asfortranarray(Xd), "DataFrame": pd.DataFrame(Xd).to_numpy(),
               "column slice": wide[:, :64], "every other column": np.repeat(Xd, 2, axis=1)[:, ::2],
               "reversed rows": np.ascontiguousarray(Xd[::-1])[::-1]}
    for solver, shuffle in (("adam", True), ("sgd", False), ("lbfgs", False)):
        params = dict(hidden_layer_sizes=(16,), solver=solver, shuffle=shuffle, max_iter=3,
                      batch_size=128, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = MLPClassifier(**params).fit(Xd, yd)
            for name, X_layout in layouts.items():
                for copy_below in (0, 2**62):  # in place, and copied
                    with pytest.MonkeyPatch.context() as patch:
                        patch.setattr(_validation, "_COPY_STRIDED_BELOW",
                                      copy_below)
                        est = MLPClassifier(**params).fit(X_layout, yd)
                        proba = est.predict_proba(X_layout)
                    np.testing.assert_array_equal(est._theta, reference._theta, err_msg=name)
                    np.testing.assert_array_equal(proba, reference.predict_proba(Xd))


def test_a_shuffled_batch_read_where_it_lies_is_the_fit_of_its_rows_gathered():
    # Where csrc/rows_product.c's AVX-512 kernel takes a batch's first-layer products, the
    # shuffled rows of a C-ordered X are read where they lie, through the batch's index
    # (fastmlp/_engine/_schedule.pxd's picks_rows); those of an F-ordered X are gathered first:
    # bitwise the same fits, for both dtypes, batches of one row block, of two, and of blocks
    # past 256 rows (BLAS's: gathered either way), first-layer tiles (_schedule.pxd's
    # first_tiles), a short last batch, and the layer kinds and options around the first layer.
    rng = np.random.RandomState(5)
    X64 = rng.standard_normal((700, 300))
    y = (X64[:, 0] > 0).astype(int) + (X64[:, 1] > 0.5)
    cases = ({"hidden_layer_sizes": (30, 20)}, {"hidden_layer_sizes": ()},
             {"hidden_layer_sizes": (400, 20)},  # on 300 features, batches of 37 rows: tiles
             {"hidden_layer_sizes": (24,), "activation": "maxout"},
             {"hidden_layer_sizes": (24, 12), "dropout": 0.2},
             {"hidden_layer_sizes": (24, 12), "batch_norm": True},
             {"hidden_layer_sizes": (24,), "solver": "sgd"})
    for dtype in (np.float32, np.float64):
        for params in cases:
            # (the tiles want a batch of two threads' work: fastmlp/_runtime.py's batch_schedule)
            X = X64.astype(dtype)[:, :300 if params["hidden_layer_sizes"] == (400, 20) else 40]
            for batch_size in (37, 128, 600):
                fits = []
                for data in (X, np.asfortranarray(X)):
                    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
                        patch.setattr(_validation, "_COPY_STRIDED_BELOW", 0)  # gathered
                        warnings.simplefilter("ignore")
                        est = MLPClassifier(max_iter=2, batch_size=batch_size, random_state=0,
                                            **params).fit(data, y)
                    fits.append((est._theta.copy(), est.loss_curve_, est.predict_proba(X)))
                name = f"{dtype.__name__}, {params}, batch {batch_size}"
                np.testing.assert_array_equal(fits[0][0], fits[1][0], err_msg=name)
                assert fits[0][1] == fits[1][1], name
                np.testing.assert_array_equal(fits[0][2], fits[1][2], err_msg=name)
    reg = [MLPRegressor(hidden_layer_sizes=(16,), max_iter=2, batch_size=64,
                        random_state=0).fit(data, X64[:, :2]) for data in (X64,
                                                                            np.asfortranarray(X64))]
    np.testing.assert_array_equal(reg[0]._theta, reg[1]._theta)


def test_a_bulk_prediction_gives_each_block_the_bits_it_gets_alone():
    # Where csrc/rows_product.c multiplies float32 blocks of rows (256 at a time), a prediction
    # of several blocks packs each layer's W once (on AVX-512: fastmlp/_engine/_trainer.pyx's
    # predict_packs) and one block alone packs it inside the product: the same bits, for every
    # block, a last short one, a strided X and a sparse X (whose first layer keeps W).
    from fastmlp._engine import _testing as K
    if not K.ROWS_PRODUCT:
        pytest.skip("csrc/rows_product.c needs AVX2 and FMA")
    rng = np.random.RandomState(3)
    X = rng.standard_normal((3 * 256 + 7, 70)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    sparse = pytest.importorskip("scipy.sparse").csr_matrix(np.where(X > 1, X, 0))
    for params in ({"hidden_layer_sizes": (300, 40)}, {"hidden_layer_sizes": (33,)},
                   {"hidden_layer_sizes": (257, 20), "activation": "tanh"}):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf = MLPClassifier(max_iter=2, random_state=0, **params).fit(X, y)
        for data in (X, np.asfortranarray(X), sparse):
            whole = clf.predict_proba(data)
            for r0 in range(0, len(X), 256):
                np.testing.assert_array_equal(whole[r0:r0 + 256],
                                              clf.predict_proba(data[r0:r0 + 256]),
                                              err_msg=f"{params}, rows {r0}")


# A caller that sets flush-to-zero and denormals-are-zero once OpenMP's workers exist, as
# torch.set_flush_denormal(True) after a first fit does: every job runs under the caller's
# modes, whichever thread takes it (csrc/fm_openmp.h's fm_fp_take). Digits' pixels times 1e-36
# make the first layer's gradients subnormal (flushed under the modes, kept without), and
# epsilon=1e-36 carries Adam's moments of them into W. Batches held on all threads: the pool's
# (Adam) and the clipped gradient's third pass; and a regressor without intercepts, whose
# outputs go subnormal: a bulk prediction, and three rows whose products are split over two
# threads (forced: csrc/placement.c's helper; one thread never splits). On the build before
# fm_fp_take, two threads gave other bits than one under the modes, and other bits from run to
# run. (Batch normalization's passes and L-BFGS's finish take the modes the same way; no fit
# was found whose bits the modes change there.)
FLUSHED = """
import sys, warnings
import numpy as np
from sklearn.datasets import load_digits
from fastmlp import MLPClassifier, MLPRegressor
from fastmlp import _engine as E
from fastmlp._engine._testing import flush_modes, hold_all_threads
from fastmlp._runtime import effective_n_threads
warnings.simplefilter("ignore")
X, y = load_digits(return_X_y=True)
X = np.hstack([X / 16.0] * 4).astype(np.float32)
MLPClassifier((32,), max_iter=1, random_state=0).fit(X, y)  # OpenMP's workers exist now
tiny = X * np.float32(1e-36)
out = [str(effective_n_threads())]
for modes in (0, 3):
    before = flush_modes(modes)
    try:
        for params in (dict(), dict(max_grad_norm=1.0)):
            clf = MLPClassifier((256, 64), batch_size=512, random_state=0, alpha=0.0,
                                epsilon=1e-36, **params)
            clf.partial_fit(tiny, y, classes=np.arange(10))
            hold_all_threads(clf._network(), effective_n_threads())
            for _ in range(4):
                clf.partial_fit(tiny, y)
            out.append(clf._theta.tobytes().hex())
        reg = MLPRegressor(hidden_layer_sizes=(256,), max_iter=1, random_state=0).fit(X, X)
        for b in reg.intercepts_:
            b[...] = 0
        out.append(reg.predict(X * np.float32(1e-37)).tobytes().hex())
        split, few, seen = E.few_row_split(1), np.empty((3, 256), np.float32), set()
        for _ in range(200):  # back to back: the helper takes its part once it is awake
            E.predict(reg._network(), reg._packed_parameters(), X[:3] * np.float32(1e-37), few,
                      effective_n_threads())
            seen.add(few.tobytes().hex())
        E.few_row_split(split)
        out.append("|".join(sorted(seen)))
    finally:
        flush_modes(before)
print(" ".join(out))
"""


def test_jobs_take_the_callers_flush_modes_whichever_thread_runs_them():
    if not K.FLUSH_MODES:
        pytest.skip("no flush modes to set here (not x86)")
    one, two = (run_python(FLUSHED, omp_threads=n).split() for n in (1, 2))
    assert one[0] == "1" and two[0] == "2"
    ieee, flushed = slice(1, 5), slice(5, 9)
    assert two[ieee] == one[ieee]
    assert two[flushed] == one[flushed]
    assert all(a != b for a, b in zip(one[ieee], one[flushed]))  # the modes change every result
