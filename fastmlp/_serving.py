"""The packed copy of a model's weights that one-row predictions read, and when it may be read.

Design
------
A prediction of a few rows (fewer than the engine's SMALL_PREDICT_ROWS) multiplies each row by
every W without BLAS (csrc/small_product.c). On processors that take its AVX2 path, that loop
keeps 64 columns of z in registers over all of k, so it reads 256 bytes of every row of W per
block of columns: a strided read that costs more than the cache W sits in (784 x 256 float32,
`mnist`'s first layer: 9.5-10 us from L2 for half of its rows, 18-21 us from L3 for all). A copy
of W stored block by block (each block's rows one after another) is read as sequential streams
by the same loop, the same terms in the same order: the same bits in 0.72 of the time
(benchmarks/one_row_layout.py; benchmarks/RESULTS.md has the engine's and predict_proba's
figures). On processors that take its AVX-512 path, which reads whole rows of W, the copy is W
with each row on cache lines of its own (numpy places theta 16 or 48 bytes past one): 0.87-0.91 of
the engine's time. The copy costs one more W per model (O(parameters); up to a quarter of W more
where W holds subnormal weights: csrc/small_product.c's "Subnormal weights"), made at the second
few-row prediction of a model so that a single prediction never pays for it.

The copy must never be stale, and `coefs_` are numpy views into the flat weights `_theta` that a
user may edit in place at any time (pruning: `clf.coefs_[0][mask] = 0`) with nothing that tells
the model. So a copy is made and read only under these rules, which every writer of theta keeps:

- Every theta that can have a copy has one `Serving` record, registered by id when the estimator
  allocates or loads it (`register`), dropped when theta dies. A theta without one (made
  elsewhere, e.g. the copy of the weights scikit-learn's callbacks get) never has a copy.
- `coefs_` is served by the `WeightViews` descriptor: handing the views out marks the record of
  the theta behind them `handed_out` for good (its views may be held and edited at any time
  after), and drops any copy. The estimator's own code reads the views under `_coefs`. Two
  estimators that share one theta (copy.copy) share its record.
- Fitting writes theta: while any fit or partial_fit runs in the process (`begin_training`)
  no copy is made or read (a prediction inside a fit, such as early stopping's score, must not
  keep a copy that the next epoch makes stale), and as it ends (`end_training`) its
  estimator's copy is dropped.
- Re-pointing the views (`_set_views`, after a replaced `coefs_` is copied back into theta)
  drops the copy.
"""
import weakref

from fastmlp import _engine

_RECORDS = {}  # id(theta) -> Serving (removed by a finalizer when theta dies)
# One item per training running in the process (begin_training); list.append and list.pop are
# atomic under the GIL, where a counter's += is not.
_TRAINING = []

# A model's copy is made at its second few-row prediction (the first never pays for it).
MAKE_AT_CALL = 2


class Serving:
    """The record of one theta: whether its views were handed out, and its packed copy."""

    __slots__ = ("theta", "handed_out", "copy", "calls", "drops", "__weakref__")

    def __init__(self, theta):
        self.theta = weakref.ref(theta)
        self.handed_out = False
        self.copy = None  # _engine.small_pack_copies of theta, or None
        self.calls = 0  # few-row predictions since the copy was last dropped
        self.drops = 0  # how many times it was dropped (a copy made meanwhile is not kept)


def register(theta):
    """theta's record, made now if it has none: theta was just allocated or loaded by the
    estimator (or is shared with one that did, whose record it then shares)."""
    record = record_of(theta)
    if record is not None:
        return record
    record = Serving(theta)
    _RECORDS[id(theta)] = record
    weakref.finalize(theta, _RECORDS.pop, id(theta), None)
    return record


def record_of(theta):
    """theta's record, or None if it has none."""
    record = _RECORDS.get(id(theta))
    if record is not None and record.theta() is theta:
        return record
    return None


def drop(theta):
    """Forget theta's copy (theta is being, or has been, written)."""
    record = record_of(theta) if theta is not None else None
    if record is not None:
        record.copy = None
        record.calls = 0
        record.drops += 1


def hand_out(theta):
    """theta's views go to code outside the estimator: no copy of it, ever again."""
    record = record_of(theta) if theta is not None else None
    if record is not None:
        record.handed_out = True
        drop(theta)


def copy_for(network, theta):
    """The packed copy a few-row prediction may read for this theta, or None: made here at the
    model's MAKE_AT_CALL-th such prediction while no training runs."""
    record = record_of(theta)
    if record is None or record.handed_out or _TRAINING:
        return None
    if record.copy is None:
        record.calls += 1
        if record.calls < MAKE_AT_CALL:
            return None
        drops = record.drops
        copy = _engine.small_pack_copies(network, theta)  # (without the GIL)
        if copy is None:
            record.handed_out = True  # nothing to pack on this processor: stop counting
        # Kept only if nothing dropped it while it was made (another thread's fit, or an edit
        # through coefs_, which the caller's scikit-learn contract does not allow, but a copy
        # made then must not outlive the call).
        if record.drops != drops or _TRAINING or record.handed_out:
            return None
        record.copy = copy
    return record.copy


# A model's compiled few-row prediction (_engine.SteadyPrediction), by id(estimator): kept here,
# not in the estimator's __dict__, because a prediction must not change the estimator (scikit-
# learn's check_dict_unchanged), and dropped by a finalizer when the estimator dies. It holds
# no reference to the estimator, only to the objects it checks the estimator still holds.
_STEADY = {}
_FINALIZED = set()  # the ids of estimators whose finalizer is registered (one each)


def steady_prediction(estimator):
    """The estimator's compiled few-row prediction, or None."""
    return _STEADY.get(id(estimator))


def keep_steady_prediction(estimator, steady):
    key = id(estimator)
    if key not in _FINALIZED:
        _FINALIZED.add(key)
        weakref.finalize(estimator, _forget_estimator, key)
    _STEADY[key] = steady


def drop_steady_prediction(estimator):
    """Forget the estimator's compiled few-row prediction (a fit is replacing what it holds:
    it would keep the old weights alive until the next few-row prediction made another)."""
    _STEADY.pop(id(estimator), None)


def _forget_estimator(key):
    _STEADY.pop(key, None)
    _FINALIZED.discard(key)


def begin_training(estimator):
    """Before anything that writes the estimator's theta (fit, partial_fit; end_training after
    it, in a `finally`): no copy is made or read anywhere in the process until the matching
    end_training, which drops the estimator's (of the theta it has then: a fit may allocate
    another). A copy that a prediction in another thread was making meanwhile is not kept
    (copy_for). (Functions, not a context manager: a partial_fit of 32 rows takes ~40 us, and
    `with` an object cost 2.2 us of it; these two ~0.8 us.)"""
    _TRAINING.append(None)


def end_training(estimator):
    drop(estimator.__dict__.get("_theta"))  # (before the pop: never a stale copy and no guard)
    _TRAINING.pop()


class WeightViews:
    """The `coefs_` attribute: the list of views of W kept under `_coefs`, handed out through
    here (see the Design above)."""

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        state = instance.__dict__
        try:
            views = state["_coefs"]
        except KeyError:
            raise AttributeError(
                f"'{type(instance).__name__}' object has no attribute '{self.name}'") from None
        hand_out(state.get("_theta"))
        for view in views:
            hand_out(getattr(view, "base", None))
        return views

    def __set__(self, instance, views):
        instance.__dict__["_coefs"] = views
        drop(instance.__dict__.get("_theta"))

    def __delete__(self, instance):
        if instance.__dict__.pop("_coefs", None) is None:
            raise AttributeError(self.name)
