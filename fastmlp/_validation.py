"""Input checks for the estimators: scikit-learn's, plus the shortcuts past them, and weights.

Design
------
The estimators validate with scikit-learn's public utilities (`validate_data`, `check_array`,
`compute_class_weight`, LabelBinarizer), so that every error and warning is scikit-learn's, word
for word. Where those checks cost more than the training they guard, this module skips them, and
only for inputs they would pass unchanged; anything else takes scikit-learn's path, its checks in
its order and its messages. Each shortcut is here, with the reason it is safe:

- `_validate_training_data`: a plain float X's finiteness is proven by the engine on every
  thread (`_engine.surely_finite`; from _engine.PARALLEL_CHECK_VALUES values on) instead of
  scikit-learn's one serial pass (~11 ms of a 60,000 x 784 float32 epoch, a twentieth of it on
  two threads). Only a check that passed is skipped: anything not finite takes scikit-learn's
  path, for its error. A later partial_fit (or warm fit) on arrays every check would pass as
  they are skips validate_data altogether, which would return them unchanged without a warning
  after ~0.5 ms of dataframe and feature-name probing per call (6 % of a `small` epoch);
  `_plain_target` says which targets those are.
- `_binarize`: LabelBinarizer's transform as a searchsorted for multiclass and binary targets
  whose labels are all known: LabelBinarizer spends ~1 ms per 1,000 labels checking its input
  again, more than a small epoch's training. The labels it cannot place exactly (unknown ones,
  and their errors) and multilabel targets go to LabelBinarizer.
- `_binarize_known_integers`: a partial_fit's 1-D integer labels, all among integer classes,
  skip `unique_labels` (~300 us a call), which can raise nothing for them and would find no
  unknown class; any other target takes it, and its errors.
- `_is_plain_input` / `_prediction_input`: a C-ordered array of the model's dtype and width, on
  a model fitted without feature names, goes to the engine as it is, and the engine's pass
  proves it finite (the first layer's product is finite only where X is); only where it cannot
  does `_check_unproven_input` run validate_data, for its error on NaN or infinity. With a few
  rows a whole prediction then spends ~2 us outside the engine. Anything else goes through
  validate_data.
- `_engine_input`: no check, a layout. A dense X whose rows lie contiguously (C order, or a
  column slice of it) is read in place, as scikit-learn makes no copy either; see
  `_COPY_STRIDED_BELOW` for the others. CSC becomes CSR once; sparse input is never densified.
- `_check_sample_weight`: scikit-learn's checks and messages for sample_weight, returning the
  C-contiguous vector of the compute dtype that the engine reads.
- `_class_weighted_sample_weight`: class_weight folded into sample_weight, so that a fit with it
  equals, bit for bit, a fit with the sample_weight scikit-learn's `compute_sample_weight` gives.
"""

import functools
from numbers import Real

import numpy as np
import scipy.sparse as sp
from sklearn.utils import check_array
from sklearn.utils.class_weight import compute_sample_weight

from fastmlp import _engine
from fastmlp._compat import compute_class_weight, validate_data
from fastmlp._runtime import effective_n_threads

# A dense X whose rows are not contiguous (a DataFrame's values are column-major) is read where it
# lies, each batch gathered by the engine, once it is this large: scikit-learn makes no copy of
# it either, and a copy would double the memory a large fit needs. Below, one C-ordered copy
# costs little and makes shuffled batches ~1.8x faster to gather (measured: 60000 x 784 float32,
# 128 hidden units, 2 epochs, 0.68 s in place vs 0.37 s copied), since a row of a column-major
# X is scattered across memory.
_COPY_STRIDED_BELOW = 64 * 2**20


# -- training data -------------------------------------------------------------------------------

def _validate_training_data(estimator, X, y, **kwargs):
    """validate_data for a fit, with the finiteness of a plain float X proven first by the
    engine on every thread (scikit-learn's check is one serial pass: ~11 ms of a 60,000 x 784
    float32 epoch, a twentieth of it on two threads). Only checks that passed are skipped:
    any other X or y, or one that may hold NaN or infinity, takes scikit-learn's path, its
    checks in its order and its messages."""
    finite = _finite_float_matrix(X)
    if finite and not kwargs["reset"] and _pass_as_they_are(estimator, X, y):
        return X, y
    if finite:
        kwargs["ensure_all_finite"] = False
    return validate_data(estimator, X, y, **kwargs)


def _finite_float_matrix(X):
    """Whether X is a C-ordered 2-D float32 or float64 array that the engine proved finite."""
    # (The thread count is asked for only where it is used: from
    # _engine.PARALLEL_CHECK_VALUES values on, which says why.)
    return (type(X) is np.ndarray and X.dtype in (np.float32, np.float64) and X.ndim == 2
            and X.flags.c_contiguous
            and _engine.surely_finite(
                X, effective_n_threads() if X.size >= _engine.PARALLEL_CHECK_VALUES else 1))


def _pass_as_they_are(estimator, X, y):
    """Whether a later partial_fit's (or warm fit's) X, a finite float matrix, and y pass every
    check as they are: validate_data would return them unchanged, without a warning, after
    ~0.5 ms of dataframe and feature-name probing per call (6 % of a `small` epoch)."""
    return (X.shape[0] > 0 and X.shape[1] == getattr(estimator, "n_features_in_", None)
            and "feature_names_in_" not in estimator.__dict__ and _plain_target(y, X.shape[0]))


def _plain_target(y, n_samples):
    """Whether y is a 1-D array of n_samples numbers that scikit-learn's checks of a target
    pass as it is (integers or booleans, or finite floats)."""
    if type(y) is not np.ndarray or y.ndim != 1 or y.shape[0] != n_samples:
        return False
    if y.dtype.kind in "iub":
        return True
    return (y.dtype in (np.float32, np.float64) and y.flags.c_contiguous
            and _engine.surely_finite(y.reshape(1, -1)))


def _binarize(binarizer, y):
    """`binarizer.transform(y)` (a fitted LabelBinarizer) as a bool indicator matrix. For
    multiclass and binary targets whose labels are all known this is a searchsorted:
    LabelBinarizer spends ~1 ms per 1,000 labels checking its input again, which is more than a
    small epoch's training. Anything else (multilabel, unknown labels and their errors) goes to
    LabelBinarizer."""
    indicator = _binarize_known(binarizer, y)
    return binarizer.transform(y).astype(bool) if indicator is None else indicator


def _binarize_known_integers(binarizer, y, dtype=bool):
    """The indicator matrix of y (as `_binarize` gives it, of `dtype`: a partial_fit's steady
    call asks for the compute dtype, skipping a conversion) when y is a 1-D array of integers
    that are all among the integer classes of a multiclass or binary binarizer; else None.

    For such a y, scikit-learn's `unique_labels(y)` (~300 us: type_of_target's checks and
    probes, on every partial_fit) can raise nothing (a 1-D integer array is a binary or
    multiclass target) and finds no class outside `classes_`, so the check that a partial_fit's
    labels are known may skip it. Anything else (floats, strings, objects, unknown labels) gets
    None and takes scikit-learn's path and its errors."""
    if (type(y) is np.ndarray and y.ndim == 1 and y.dtype.kind in "iu"
            and (y.dtype == binarizer.classes_.dtype  # (the common case: ~0.4 us less)
                 or np.result_type(y.dtype, binarizer.classes_.dtype).kind in "iu")):
        return _binarize_known(binarizer, y, dtype)
    return None


# From this many labels, labels of classes 0..k-1 are taken as their own indices (_binarize_known).
_OWN_INDEX_FROM = 1024


def _binarize_known(binarizer, y, dtype=bool):
    """_binarize's searchsorted: the indicator (of `dtype`: 0 and 1, or False and True), or
    None when a label is unknown or the target is of another kind."""
    if binarizer.y_type_ in ("multiclass", "binary") and y.ndim == 1 and y.size:
        classes = binarizer.classes_
        if (y.size >= _OWN_INDEX_FROM and classes.dtype.kind in "iu" and y.dtype.kind in "iu"
                and classes[0] == 0 and classes[-1] == len(classes) - 1):
            # Sorted unique integer classes from 0 to k - 1 are 0, 1, ..., k - 1: a label is
            # its own index, and known exactly when it lies in that range (~25 us for the
            # 20,000 labels of a `small` epoch, where searchsorted cost ~300, 3 % of it; for a
            # few labels the two reductions cost more than the search: ~2.5 against ~1 us).
            if y.min() < 0 or y.max() >= len(classes):
                return None
            index = y.astype(np.intp, copy=False)
            known = True
        else:
            index = classes.searchsorted(y)
            # A label past the last class gets index len(classes): clipped, it meets a class
            # it differs from, so every index is in range once all labels are found.
            # (np.array_equal, a clip and the indicator set element by element cost ~3 us of
            # a 32-row partial_fit, these ~1 us.)
            known = _equal_labels(classes.take(index, mode="clip"), y)
        if known:
            if len(classes) == 2:
                return (index == 1).reshape(-1, 1).astype(dtype, copy=False)
            if 2 < len(classes) <= _IDENTITY_UP_TO:
                return _identity(len(classes), dtype).take(index, axis=0)
            if len(classes) > 2:
                indicator = np.zeros((y.shape[0], len(classes)), dtype=dtype)
                indicator[np.arange(y.shape[0]), index] = 1
                return indicator
    return None


def _equal_labels(found, y):
    """Whether two 1-D label arrays of one shape are equal, element for element. Integers of
    one dtype are equal exactly when their bytes are: a comparison of bytes costs ~0.5 us
    where `(found == y).all()` costs ~1.6 (a reduction's set-up)."""
    if found.dtype == y.dtype and y.dtype.kind in "iu":
        return found.tobytes() == y.tobytes()
    return bool((found == y).all())


# The indicator's rows are taken from a kept identity matrix up to this many classes (64 KiB of
# bool, 512 KiB of float64).
_IDENTITY_UP_TO = 256


@functools.lru_cache(maxsize=16)
def _identity(n_classes, dtype):
    """The n_classes x n_classes identity of `dtype`, read-only: row k is class k's indicator."""
    identity = np.eye(n_classes, dtype=dtype)
    identity.flags.writeable = False
    return identity


def _engine_input(X, dtype):
    """X as the engine reads it, in the compute dtype: a dense array, in place when its rows
    are (C order, or a column slice of it), or when it is large (see _COPY_STRIDED_BELOW);
    or CSR (a CSC matrix is converted once; sparse input is never densified)."""
    if (type(X) is np.ndarray and X.ndim == 2 and X.dtype == dtype and X.flags.c_contiguous
            and X.strides[0] % X.itemsize == 0 and X.strides[1] % X.itemsize == 0):
        return X  # the common case, first (it runs twice in every partial_fit)
    if sp.issparse(X):
        X = X.tocsr()
        X = X.astype(dtype, copy=False) if X.dtype != dtype else X
        if X.indices.dtype != X.indptr.dtype:  # the engine reads both as int32 or both int64
            X = sp.csr_matrix((X.data, X.indices.astype(np.int64), X.indptr.astype(np.int64)),
                              shape=X.shape, copy=False)
        return X
    if (isinstance(X, np.ndarray) and X.dtype == dtype and X.ndim == 2
            and all(stride % X.itemsize == 0 for stride in X.strides)):
        rows_in_place = (X.strides[1] == X.itemsize
                         and X.strides[0] >= X.shape[1] * X.itemsize)
        if X.flags.c_contiguous or rows_in_place or X.nbytes >= _COPY_STRIDED_BELOW:
            return X
    return np.ascontiguousarray(X, dtype=dtype)


# -- weights -------------------------------------------------------------------------------------

def _check_sample_weight(sample_weight, X, dtype):
    """scikit-learn's sample_weight checks and messages, returning a C-contiguous `dtype` vector."""
    n_samples = X.shape[0]
    if isinstance(sample_weight, Real):
        return np.full(n_samples, sample_weight, dtype=dtype)
    sample_weight = check_array(
        sample_weight, accept_sparse=False, ensure_2d=False, dtype=dtype, order="C",
        input_name="sample_weight",
    )
    if sample_weight.ndim != 1:
        raise ValueError(
            f"Sample weights must be 1D array or scalar, got {sample_weight.ndim}D array. "
            f"Expected either a scalar value or a 1D array of length {n_samples}."
        )
    if sample_weight.shape != (n_samples,):
        raise ValueError(
            "sample_weight.shape == {}, expected {}!".format(sample_weight.shape, (n_samples,))
        )
    if np.all(sample_weight == 0):
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return sample_weight


def _class_weighted_sample_weight(class_weight, classes, labels, sample_weight, dtype):
    """sample_weight (checked, or None) times the weights `class_weight` gives each sample of
    `labels` (1-D labels, or the multilabel indicator matrix), as a C-contiguous `dtype` vector.

    'balanced' counts the classes with sample_weight, as LogisticRegression does, so that a
    weight k stays the same as k repeated rows; without sample_weight the result is exactly
    `compute_sample_weight(class_weight, labels)`."""
    if sample_weight is None:
        weights = compute_sample_weight(class_weight, labels)
    elif labels.ndim == 1:
        with np.errstate(divide="ignore"):
            weights = compute_class_weight(class_weight, classes=classes,
                                           y=labels, sample_weight=sample_weight)
        weights = weights[np.searchsorted(classes, labels)]
    else:
        # multilabel: one class weight per output, multiplied (compute_sample_weight's rule)
        compute_sample_weight(class_weight, labels)  # scikit-learn's checks and errors
        per_output = (class_weight if isinstance(class_weight, list)
                      else [class_weight] * labels.shape[1])
        weights = np.ones(labels.shape[0])
        for k, output_class_weight in enumerate(per_output):
            output_classes, column = np.unique(labels[:, k], return_inverse=True)
            with np.errstate(divide="ignore"):
                weights = weights * compute_class_weight(
                    output_class_weight, classes=output_classes, y=labels[:, k],
                    sample_weight=sample_weight,
                )[column]
    if sample_weight is None:
        return np.ascontiguousarray(weights, dtype=dtype)
    # A class whose samples all weigh 0 gets an infinite 'balanced' weight: its samples
    # still weigh 0 (not 0 * inf).
    with np.errstate(invalid="ignore"):
        weighted = np.where(sample_weight == 0, 0.0, sample_weight * weights)
    return np.ascontiguousarray(weighted, dtype=dtype)


# -- prediction ----------------------------------------------------------------------------------

def _is_plain_input(estimator, X, dtype):
    """Whether X needs none of validate_data's work but its finiteness check: a C-ordered array
    of the model's dtype and width, on a model fitted without feature names. The engine proves
    such an X finite while it predicts (see _prediction_input). This is what keeps one-row
    prediction in microseconds; anything else takes scikit-learn's path and its errors."""
    return (
        type(X) is np.ndarray
        and X.dtype == dtype
        and X.ndim == 2
        and X.shape[0] > 0
        and X.shape[1] == estimator.n_features_in_
        and X.flags.c_contiguous
        and "feature_names_in_" not in estimator.__dict__
    )


def _prediction_input(estimator, X, dtype, check_input=True):
    """X for a prediction by a model whose weights are of `dtype`, the dtype to compute in, and
    whether X is still to be proven finite.

    A plain array (see _is_plain_input) is returned as it is, unchecked: the engine's pass
    proves it finite (`_engine.predict(..., check_finite=True)`), which spares a pass of its own
    over X (1.2 ms of a 30 ms prediction of 20,000 x 784 float32 rows, 0.4 us of a one-row
    one), and where the pass cannot, `_check_unproven_input` runs scikit-learn's check.
    Anything else is validated (when `check_input`) and laid out for the engine, in the model's
    dtype, or in the wider one that numpy's promotion gives (float64 X on a float32 model is
    predicted in float64)."""
    if check_input and _is_plain_input(estimator, X, dtype):
        return X, dtype, True
    if check_input:
        X = validate_data(estimator, X, accept_sparse=["csr", "csc"], reset=False)
    if X.dtype != dtype:
        promoted = np.result_type(X.dtype, dtype)
        if not np.issubdtype(promoted, np.floating):
            promoted = np.float64
        dtype = promoted
    return _engine_input(X, dtype), dtype, False


def _check_unproven_input(estimator, X):
    """scikit-learn's checks of a plain X that the engine's pass could not prove finite: its
    error, word for word, for a NaN or an infinity; nothing when X is finite after all (finite
    values whose products overflow, or a model with a non-finite weight), and the prediction
    made stands, as it would have been made from the same X."""
    validate_data(estimator, X, accept_sparse=["csr", "csc"], reset=False)
