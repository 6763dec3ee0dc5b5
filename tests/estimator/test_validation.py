"""Bad input: every mistake scikit-learn's MLP refuses, fastmlp refuses with the same exception
and message (and what scikit-learn accepts, fastmlp accepts the same way), checked side by side;
a few mistakes that scikit-learn reports poorly, named; and the shortcuts past scikit-learn's
validation, which must end exactly where its checks would."""
import re
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn.neural_network as sk

import fastmlp
from fastmlp import MLPClassifier, MLPRegressor
from fastmlp._validation import _validate_training_data

from _helpers import (
    SKLEARN_MLP_HAS_LOSS,
    SKLEARN_MLP_HAS_SAMPLE_WEIGHT,
    SKLEARN_VERSION,
    tiny_problem,
    with_value,
)

X, Y_CLASS, Y_REG = tiny_problem()


def fitted(module, name, **params):
    """A small model of `module` (fastmlp or scikit-learn), fitted quietly."""
    params = {"hidden_layer_sizes": (5,), "max_iter": 3, "random_state": 0, **params}
    y = Y_CLASS if name == "MLPClassifier" else Y_REG
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(module, name)(**params).fit(X, y)


# -- bad input: scikit-learn's exception and message ------------------------------------------------
# Each case is a call on a module (fastmlp, or scikit-learn's sklearn.neural_network).

BAD_INPUT = {
    "nan in X": lambda m: m.MLPClassifier(max_iter=2).fit(with_value(X, (0, 0), np.nan), Y_CLASS),
    "inf in X": lambda m: m.MLPRegressor(max_iter=2).fit(with_value(X, (3, 1), np.inf), Y_REG),
    "-inf in X, float32": lambda m: m.MLPRegressor(max_iter=2).fit(
        with_value(X, (3, 1), -np.inf).astype(np.float32), Y_REG),
    "nan in y (regression)": lambda m: m.MLPRegressor(max_iter=2).fit(
        X, with_value(Y_REG, 0, np.nan)),
    "inf in y (regression)": lambda m: m.MLPRegressor(max_iter=2).fit(
        X, with_value(Y_REG, 0, np.inf)),
    "nan in y (classification)": lambda m: m.MLPClassifier(max_iter=2).fit(
        X, with_value(Y_CLASS.astype(float), 0, np.nan)),
    "nan in sparse X": lambda m: m.MLPClassifier(max_iter=2).fit(
        sp.csr_matrix(with_value(X, (0, 0), np.nan)), Y_CLASS),
    "empty X": lambda m: m.MLPClassifier(max_iter=2).fit(np.empty((0, 3)), np.empty(0)),
    "no features": lambda m: m.MLPRegressor(max_iter=2).fit(np.empty((5, 0)), np.ones(5)),
    "1-D X": lambda m: m.MLPClassifier(max_iter=2).fit(X[:, 0], Y_CLASS),
    "3-D X": lambda m: m.MLPRegressor(max_iter=2).fit(X[:, :, None], Y_REG),
    "1-D X at predict": lambda m: fitted(m, "MLPRegressor").predict(X[0]),
    "mismatched lengths": lambda m: m.MLPClassifier(max_iter=2).fit(X, Y_CLASS[:-1]),
    "strings in X": lambda m: m.MLPClassifier(max_iter=2).fit(np.array([["a", "b"], ["c", "d"]]),
                                                              [0, 1]),
    "objects in X": lambda m: m.MLPRegressor(max_iter=2).fit(
        np.array([[1, "b"], [2, "d"]], dtype=object), [0.0, 1.0]),
    "complex X": lambda m: m.MLPClassifier(max_iter=2).fit(X.astype(complex), Y_CLASS),
    "ragged X": lambda m: m.MLPClassifier(max_iter=2).fit([[1, 2], [3]], [0, 1]),
    "continuous y for a classifier": lambda m: m.MLPClassifier(max_iter=2).fit(X, Y_REG),
    "fewer features at predict": lambda m: fitted(m, "MLPClassifier").predict(X[:, :2]),
    "more features at predict_proba": lambda m: fitted(m, "MLPClassifier").predict_proba(
        np.ones((2, 5))),
    "wrong features at predict (regressor)": lambda m: fitted(m, "MLPRegressor").predict(
        np.ones((2, 5))),
    "wrong features at score": lambda m: fitted(m, "MLPClassifier").score(X[:, :2], Y_CLASS),
    "nan at predict": lambda m: fitted(m, "MLPClassifier").predict(with_value(X, (0, 0), np.nan)),
    "empty X at predict": lambda m: fitted(m, "MLPRegressor").predict(np.empty((0, 3))),
    "predict before fit": lambda m: m.MLPClassifier().predict(X),
    "predict_proba before fit": lambda m: m.MLPClassifier().predict_proba(X),
    "labels unseen by partial_fit": lambda m: m.MLPClassifier().partial_fit(
        X, Y_CLASS, classes=[0, 1, 2]).partial_fit(X, Y_CLASS + 1),
    "partial_fit without classes": lambda m: m.MLPClassifier().partial_fit(X, Y_CLASS),
    "partial_fit with other classes": lambda m: m.MLPClassifier().partial_fit(
        X, Y_CLASS, classes=[0, 1, 2]).partial_fit(X, Y_CLASS, classes=[0, 1, 2, 3]),
    "partial_fit with fewer features": lambda m: m.MLPClassifier().partial_fit(
        X, Y_CLASS, classes=[0, 1, 2]).partial_fit(X[:, :2], Y_CLASS),
    "partial_fit with lbfgs": lambda m: m.MLPClassifier(solver="lbfgs").partial_fit(
        X, Y_CLASS, classes=[0, 1, 2]),
    "partial_fit with early_stopping": lambda m: m.MLPClassifier(early_stopping=True).partial_fit(
        X, Y_CLASS, classes=[0, 1, 2]),
    "warm_start with other classes": lambda m: fitted(m, "MLPClassifier", warm_start=True).fit(
        X, Y_CLASS % 2),
    "warm_start with other features": lambda m: fitted(m, "MLPRegressor", warm_start=True).fit(
        X[:, :2], Y_REG),
    "validation set too small": lambda m: m.MLPClassifier(
        early_stopping=True, validation_fraction=0.01).fit(X, Y_CLASS),
    "early stopping on one sample": lambda m: m.MLPRegressor(early_stopping=True).fit(
        X[:1], Y_REG[:1]),
    "sample_weight of the wrong length": lambda m: m.MLPClassifier(max_iter=2).fit(
        X, Y_CLASS, sample_weight=np.ones(5)),
    "sample_weight with nan": lambda m: m.MLPRegressor(max_iter=2).fit(
        X, Y_REG, sample_weight=with_value(np.ones(40), 0, np.nan)),
    "sample_weight all zero": lambda m: m.MLPClassifier(max_iter=2).fit(
        X, Y_CLASS, sample_weight=np.zeros(40)),
    "sample_weight 2-D": lambda m: m.MLPClassifier(max_iter=2).fit(
        X, Y_CLASS, sample_weight=np.ones((40, 1))),
    "sample_weight of strings": lambda m: m.MLPClassifier(max_iter=2).fit(
        X, Y_CLASS, sample_weight=["a"] * 40),
    "hidden_layer_sizes 0": lambda m: m.MLPClassifier(hidden_layer_sizes=(0,)).fit(X, Y_CLASS),
    "hidden_layer_sizes negative": lambda m: m.MLPRegressor(hidden_layer_sizes=(3, -1)).fit(
        X, Y_REG),
    "hidden_layer_sizes a string": lambda m: m.MLPClassifier(hidden_layer_sizes="abc").fit(
        X, Y_CLASS),
    "hidden_layer_sizes floats": lambda m: m.MLPClassifier(hidden_layer_sizes=(5.9, 2.2)).fit(
        X, Y_CLASS),
    "hidden_layer_sizes a float after an int": lambda m: m.MLPRegressor(
        hidden_layer_sizes=(5, 2.5)).fit(X, Y_REG),
    "hidden_layer_sizes a whole float": lambda m: m.MLPClassifier(hidden_layer_sizes=[5.0]).fit(
        X, Y_CLASS),
    "hidden_layer_sizes a numpy float array": lambda m: m.MLPRegressor(
        hidden_layer_sizes=np.array([4.0, 2.0])).fit(X, Y_REG),
    "hidden_layer_sizes a bool": lambda m: m.MLPClassifier(hidden_layer_sizes=(3, True)).fit(
        X, Y_CLASS),
    "learning_rate_init negative": lambda m: m.MLPClassifier(learning_rate_init=-1).fit(
        X, Y_CLASS),
    "unknown solver": lambda m: m.MLPClassifier(solver="newton").fit(X, Y_CLASS),
    "unknown activation": lambda m: m.MLPRegressor(activation="no-such").fit(X, Y_REG),
    "unknown loss": lambda m: m.MLPRegressor(loss="hinge").fit(X, Y_REG),
    "batch_size 0": lambda m: m.MLPClassifier(batch_size=0).fit(X, Y_CLASS),
    "max_iter 0": lambda m: m.MLPClassifier(max_iter=0).fit(X, Y_CLASS),
    "alpha negative": lambda m: m.MLPClassifier(alpha=-1.0).fit(X, Y_CLASS),
    "momentum above 1": lambda m: m.MLPClassifier(solver="sgd", momentum=1.5).fit(X, Y_CLASS),
    "beta_2 of 1": lambda m: m.MLPClassifier(beta_2=1.0).fit(X, Y_CLASS),
    "validation_fraction 1": lambda m: m.MLPClassifier(
        early_stopping=True, validation_fraction=1.0).fit(X, Y_CLASS),
    "n_iter_no_change 0": lambda m: m.MLPClassifier(n_iter_no_change=0).fit(X, Y_CLASS),
    "max_fun 0": lambda m: m.MLPClassifier(solver="lbfgs", max_fun=0).fit(X, Y_CLASS),
    "shuffle not a bool": lambda m: m.MLPClassifier(shuffle="yes").fit(X, Y_CLASS),
    # What scikit-learn accepts, fastmlp accepts the same way.
    "a single class": lambda m: fitted(m, "MLPClassifier").fit(X, np.zeros(40)).predict(X[:3]),
    "a single class, lbfgs": lambda m: m.MLPClassifier(solver="lbfgs", max_iter=5).fit(
        X, ["a"] * 40).predict_proba(X[:3]).shape,
    "one sample": lambda m: m.MLPRegressor(max_iter=2).fit(X[:1], Y_REG[:1]).predict(X).shape,
    "integer X": lambda m: m.MLPRegressor(max_iter=2).fit((X * 10).astype(int), Y_REG).n_iter_,
    "boolean y, regression": lambda m: m.MLPRegressor(max_iter=2).fit(X, Y_CLASS == 0).n_iter_,
    "negative sample_weight": lambda m: m.MLPRegressor(max_iter=2).fit(
        X, Y_REG, sample_weight=-np.ones(40)).n_iter_,
    "hidden_layer_sizes of numpy integers": lambda m: [c.shape for c in m.MLPRegressor(
        hidden_layer_sizes=np.array([4, 2]), max_iter=2).fit(X, Y_REG).coefs_],
    # warm_start and partial_fit go on with the fitted layers (fastmlp also warns).
    "hidden_layer_sizes changed under warm_start": lambda m: [c.shape for c in fitted(
        m, "MLPClassifier", warm_start=True).set_params(hidden_layer_sizes=(7,)).fit(
        X, Y_CLASS).coefs_],
    "hidden_layer_sizes changed before partial_fit": lambda m: [c.shape for c in fitted(
        m, "MLPRegressor").set_params(hidden_layer_sizes=(2,)).partial_fit(X, Y_REG).coefs_],
    "hidden_layer_sizes a float before partial_fit": lambda m: fitted(m, "MLPRegressor").set_params(
        hidden_layer_sizes=(2.5,)).partial_fit(X, Y_REG),
}


def outcome(call, module):
    """('raised', type, message) or ('returned', repr of the result)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = call(module)
        except Exception as exc:  # noqa: BLE001 - the exception is what is compared
            return ("raised", type(exc).__name__, str(exc))
    if hasattr(result, "get_params"):
        result = type(result).__name__
    return ("returned", repr(result))


def options_apart(message):
    """The message with each {option, ...} set taken out, and those sets (whose order of
    printing is a set's, not a promise)."""
    sets = [frozenset(re.findall(r"'([^']*)'", found)) for found in re.findall(r"{[^}]*}", message)]
    return re.sub(r"{[^}]*}", "{...}", message), sets


def older_sklearn_lacks(case):
    """Why the installed scikit-learn has nothing to compare `case` with, or None."""
    if "sample_weight" in case and not SKLEARN_MLP_HAS_SAMPLE_WEIGHT:
        return "scikit-learn < 1.7: its MLP takes no sample_weight"
    if case == "unknown loss" and not SKLEARN_MLP_HAS_LOSS:
        return "scikit-learn < 1.7: its MLPRegressor has no `loss`"
    if case == "validation set too small" and SKLEARN_VERSION < (1, 7):
        return "scikit-learn < 1.7 validates on a single sample; 1.7 refuses, as fastmlp does"
    return None


@pytest.mark.parametrize("case", [
    pytest.param(case, marks=pytest.mark.skipif(bool(older_sklearn_lacks(case)),
                                                 reason=str(older_sklearn_lacks(case))))
    for case in BAD_INPUT])
def test_bad_input_gets_sklearns_exception_and_message(case):
    ours, theirs = outcome(BAD_INPUT[case], fastmlp), outcome(BAD_INPUT[case], sk)
    if case in ("a single class", "a single class, lbfgs", "one sample", "integer X",
                "boolean y, regression", "negative sample_weight",
                "hidden_layer_sizes of numpy integers",
                "hidden_layer_sizes changed under warm_start",
                "hidden_layer_sizes changed before partial_fit"):
        assert theirs[0] == "returned"
    else:
        assert theirs[0] == "raised"
    if ours[0] == "raised" and "{" in theirs[2]:
        (our_text, our_sets), (their_text, their_sets) = options_apart(ours[2]), options_apart(
            theirs[2])
        assert ours[:2] == theirs[:2] and our_text == their_text
        # fastmlp may offer more (activations, solvers) than scikit-learn, never fewer.
        assert all(mine >= its for mine, its in zip(our_sets, their_sets))
    else:
        assert ours == theirs


def test_string_targets_for_a_regressor_raise_a_clear_error():
    # scikit-learn fails deep in numpy (UFuncTypeError from its loss); fastmlp says what is wrong.
    with pytest.raises(ValueError, match="could not convert string to float"):
        MLPRegressor(max_iter=2).fit(X[:2], ["a", "b"])


def test_another_number_of_outputs_in_partial_fit_is_refused():
    # scikit-learn fails in a matmul; fastmlp names the cause.
    reg = MLPRegressor(random_state=0).partial_fit(X, Y_REG)
    with pytest.raises(ValueError, match="number of outputs cannot change"):
        reg.partial_fit(X, np.c_[Y_REG, Y_REG])


def test_fit_validation_skips_only_a_finiteness_check_that_passed():
    y = np.arange(6) % 2
    clf = MLPClassifier()
    huge = np.full((6, 3), 1e200)  # finite, though its squares overflow
    X, _ = _validate_training_data(clf, huge, y, reset=True)
    np.testing.assert_array_equal(X, huge)
    for bad, message in [(np.nan, "Input X contains NaN"), (np.inf, "Input X contains infinity")]:
        for dtype in (np.float32, np.float64):
            X_bad = np.ones((6, 3), dtype=dtype)
            X_bad[4, 1] = bad
            with pytest.raises(ValueError, match=message):
                _validate_training_data(clf, X_bad, y, reset=True)
            with pytest.raises(ValueError, match=message):
                MLPClassifier().fit(X_bad, y)


@pytest.mark.parametrize("y_kind", ["int", "float", "bool"])
def test_plain_arrays_skip_validation_with_the_same_result(y_kind):
    # A later partial_fit on plain arrays skips validate_data (_validate_training_data): the
    # model must end exactly as with inputs that take scikit-learn's path.
    rng = np.random.RandomState(0)
    X = rng.standard_normal((120, 5))
    y = {"int": rng.randint(0, 2, 120), "float": rng.randint(0, 2, 120).astype(float),
         "bool": rng.randint(0, 2, 120).astype(bool)}[y_kind]
    plain = MLPClassifier((7,), random_state=0)
    checked = MLPClassifier((7,), random_state=0)
    classes = np.unique(y)
    plain.partial_fit(X, y, classes=classes)
    checked.partial_fit(X.tolist(), y.tolist(), classes=classes)
    for _ in range(3):
        plain.partial_fit(X, y)
        checked.partial_fit(X.tolist(), y.tolist())
    for a, b in zip(plain.coefs_ + plain.intercepts_, checked.coefs_ + checked.intercepts_):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="X has 4 features"):
        plain.partial_fit(X[:, :4].copy(), y)
    y_bad = y.astype(float)
    y_bad[3] = np.nan
    with pytest.raises(ValueError, match="Input y contains NaN"):
        plain.partial_fit(X, y_bad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("params", [{}, {"activation": "maxout"}, {"batch_norm": True}],
                         ids=["relu", "maxout", "batch_norm"])
def test_prediction_proves_a_plain_x_finite_or_raises_sklearns_error(dtype, params):
    # A plain X skips the finiteness pass: the engine's own pass proves it (the first layer's
    # product, before relu can turn a NaN into 0), on one row, a few, and blocks on threads;
    # where it cannot, scikit-learn's check runs and raises its error, word for word.
    rng = np.random.RandomState(0)
    X_fit = rng.standard_normal((300, 6)).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier((8,), max_iter=2, random_state=0, **params).fit(
            X_fit, np.arange(300) % 3)
        theirs = sk.MLPClassifier((8,), max_iter=2, random_state=0).fit(
            X_fit, np.arange(300) % 3)
    for rows in (1, 3, 4, 2500):  # the few-row loop; one block; several blocks on threads
        X = rng.standard_normal((rows, 6)).astype(dtype)
        expected = clf._forward_pass_fast(X, check_input=False)
        np.testing.assert_array_equal(clf.predict_proba(X), expected)
        for where in {(0, 0), (rows // 2, 3), (rows - 1, 5)}:
            for bad in (np.nan, np.inf, -np.inf):
                X_bad = with_value(X, where, bad)
                ours = outcome(lambda m: clf.predict_proba(X_bad), fastmlp)
                assert ours[:2] == ("raised", "ValueError")
                assert ours == outcome(lambda m: theirs.predict_proba(X_bad), sk)
    # Finite values whose products overflow are not refused: the prediction stands, the one
    # the unchecked path makes from the same X.
    X = rng.standard_normal((2500, 6)).astype(dtype)
    X[7] = np.finfo(dtype).max
    X[9, 2] = np.finfo(dtype).max / 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no overflow warning reaches the user
        proba = clf.predict_proba(X)
        np.testing.assert_array_equal(proba, clf._forward_pass_fast(X, check_input=False))
        np.testing.assert_array_equal(clf.predict_proba(X[7:8]),
                                      clf._forward_pass_fast(X[7:8], check_input=False))


@pytest.mark.parametrize("labels", ["ints", "strings", "binary", "multilabel"])
def test_predict_takes_the_classes_as_the_label_binarizer_would(labels):
    # A multiclass predict takes classes_ at the argmax itself (LabelBinarizer's formula
    # without its checks); the other targets go to LabelBinarizer: the same labels, dtype and
    # type either way, also with tied outputs.
    rng = np.random.RandomState(0)
    X = rng.standard_normal((90, 4))
    y = {"ints": np.arange(90) % 3 * 7, "strings": np.array(["b", "a", "c"])[np.arange(90) % 3],
         "binary": np.arange(90) % 2, "multilabel": rng.randint(0, 2, (90, 3))}[labels]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier((5,), max_iter=3, random_state=0).fit(X, y)
    for rows in (X, X[:1]):
        expected = clf._label_binarizer.inverse_transform(
            clf._forward_pass_fast(rows).ravel() if clf.n_outputs_ == 1
            else clf._forward_pass_fast(rows))
        predicted = clf.predict(rows)
        assert type(predicted) is type(expected) and predicted.dtype == expected.dtype
        np.testing.assert_array_equal(predicted, expected)
    ties = np.array([[0.25, 0.25, 0.5], [0.4, 0.4, 0.2], [1 / 3] * 3])
    if labels in ("ints", "strings"):
        np.testing.assert_array_equal(
            clf._label_binarizer.classes_.take(ties.argmax(axis=1), mode="clip"),
            clf._label_binarizer.inverse_transform(ties))


@pytest.mark.parametrize("classes", [np.arange(3), np.arange(10), np.array([0, 1]),
                                     np.array([0, 2, 5]), np.array([1, 2, 3])])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8])
@pytest.mark.parametrize("n_labels", [200, 3000])  # a search; from 1024, their own indices
def test_binarize_known_is_label_binarizers_transform(classes, dtype, n_labels):
    # classes 0..k-1 take the labels as their own indices, others a searchsorted: the same
    # indicator as LabelBinarizer's, and None (LabelBinarizer's path) for an unknown label
    from sklearn.preprocessing import LabelBinarizer

    from fastmlp._validation import _binarize_known

    binarizer = LabelBinarizer().fit(classes)
    y = np.random.RandomState(0).choice(classes, n_labels).astype(dtype)
    np.testing.assert_array_equal(_binarize_known(binarizer, y),
                                  binarizer.transform(y).astype(bool))
    for unknown in (classes.max() + 1, classes.min() - 1 if dtype != np.uint8 else 255):
        y_unknown = y.copy()
        y_unknown[7] = unknown
        assert _binarize_known(binarizer, y_unknown) is None


@pytest.mark.parametrize("rows, threads", [(20_000, 1), (2**24 // 64, 2)])  # small; 16 M values
def test_x_is_proven_finite_on_every_thread_only_where_that_pays(monkeypatch, rows, threads):
    # Below PARALLEL_CHECK_VALUES one thread: a second one saves little and, beside a busy
    # core, may start late (fastmlp/_engine/_trainer.pyx says what was measured).
    from fastmlp import _validation
    asked = []
    monkeypatch.setattr(_validation, "effective_n_threads", lambda: 2)
    monkeypatch.setattr(_validation._engine, "surely_finite",
                        lambda X, n_threads=1: asked.append(n_threads) or True)
    # (np.zeros: pages only promised, never touched; the check itself is replaced)
    assert _validation._finite_float_matrix(np.zeros((rows, 64), np.float32)) is True
    assert asked == [threads]
