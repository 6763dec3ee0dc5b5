"""The compiled few-row prediction (fastmlp/_engine/_trainer.pyx's SteadyPrediction, made by
_forward_pass_fast): it gives the Python path's bits, it is taken once a few-row prediction of a
plain X has run, and it refuses, so that the Python path answers, whatever that path would read
differently: a parameter set, a replaced attribute or view, another X."""
import copy
import gc
import inspect
import pickle
import re
import threading
import warnings
import weakref

import numpy as np
import pytest

from fastmlp import MLPClassifier, MLPRegressor, _engine, _serving
from fastmlp import _multilayer_perceptron as mlp
from fastmlp import _validation


def _data(n_features=12, n=120, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n_features)).astype(dtype)


def _classifier(*hidden, max_iter=3, **options):
    return MLPClassifier(hidden_layer_sizes=hidden, max_iter=max_iter, random_state=0, **options)


def _regressor(*hidden, **options):
    return MLPRegressor(hidden_layer_sizes=hidden, max_iter=3, random_state=0, **options)


def _fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, y)


def _python_path(model, X):
    """model's _forward_pass_fast(X) by the Python path (the compiled one dropped first), and
    the compiled prediction that path made (or None)."""
    _serving.drop_steady_prediction(model)
    out = model._forward_pass_fast(X)
    return out, _serving.steady_prediction(model)


def _models():
    X = _data()
    labels = np.arange(len(X)) % 3
    for dtype in (np.float32, np.float64):
        Xd, kind = X.astype(dtype), np.dtype(dtype).name
        for activation in _engine.HIDDEN_ACTIVATIONS:
            yield f"{activation}-{kind}", _fit(_classifier(16, 8, activation=activation), Xd,
                                                labels), Xd
        yield f"binary-{kind}", _fit(_classifier(16), Xd, labels % 2), Xd
        yield f"multilabel-{kind}", _fit(_classifier(16), Xd, np.eye(3)[labels].astype(int)), Xd
        yield f"regressor-{kind}", _fit(_regressor(16, 8), Xd, Xd[:, 0] + Xd[:, 1]), Xd
        yield f"two-outputs-{kind}", _fit(_regressor(16), Xd, Xd[:, :2]), Xd
        yield f"poisson-{kind}", _fit(_regressor(16, loss="poisson"), Xd, np.abs(Xd[:, 0])), Xd
        yield f"dropout-{kind}", _fit(_classifier(16, dropout=0.3, solver="adam"), Xd, labels), Xd
    # Wide enough for the packed copy where the processor makes one (csrc/small_product.c),
    # and the same model with its views handed out (no copy, ever).
    wide = _data(n_features=40, n=200)
    for handed_out in (False, True):
        model = _fit(_classifier(96, 64, max_iter=2), wide, np.arange(200) % 4)
        if handed_out:
            model.coefs_
        yield f"packed-copy-handed-out-{handed_out}", model, wide


MODELS = list(_models())


@pytest.mark.parametrize("name, model, X", MODELS, ids=[m[0] for m in MODELS])
def test_the_compiled_prediction_gives_the_python_paths_bits(name, model, X):
    for rows in (X[:1], X[5:7], X[10:13], X[-1:]):
        expected, steady = _python_path(model, rows)
        assert steady is not None
        for _ in range(3):  # (the packed copy, where there is one, is made at the second)
            got = steady.predict(model, rows)
            assert got is not None
            assert got.dtype == expected.dtype and got.shape == expected.shape
            assert got.flags.c_contiguous and got.flags.owndata
            assert got.tobytes() == expected.tobytes()
        # and through the public methods, which now take it
        public = model.predict_proba if hasattr(model, "predict_proba") else model.predict
        assert _serving.steady_prediction(model) is steady
        assert public(rows).tobytes() == public(rows).tobytes()
        _serving.drop_steady_prediction(model)
        assert public(rows).tobytes() == public(rows).tobytes()


def test_a_prediction_of_a_plain_row_makes_it_and_the_next_takes_it(monkeypatch):
    X = _data()
    clf = _fit(_classifier(16), X, np.arange(120) % 3)
    assert _serving.steady_prediction(clf) is None  # (a fit makes none)
    first = clf.predict_proba(X[:1])
    steady = _serving.steady_prediction(clf)
    assert steady is not None
    # The next call takes the compiled path: the Python path's first step is never reached.
    monkeypatch.setattr(type(clf), "_packed_parameters",
                        lambda self: pytest.fail("the Python path ran"))
    assert clf.predict_proba(X[:1]).tobytes() == first.tobytes()
    assert clf.predict(X[1:3]).shape == (2,)
    assert _serving.steady_prediction(clf) is steady


def test_it_makes_no_change_to_the_estimator():
    X = _data()
    clf = _fit(_classifier(16), X, np.arange(120) % 3)
    before = dict(vars(clf))  # (scikit-learn's check_dict_unchanged)
    for _ in range(3):
        clf.predict(X[:1])
        clf.predict_proba(X[2:4])
    assert vars(clf).keys() == before.keys()
    assert all(vars(clf)[k] is v for k, v in before.items())
    assert _serving.steady_prediction(clf) is not None
    # and it travels nowhere: pickles and copies have none, and predict the same
    rows = X[:1]
    expected = clf.predict_proba(rows)
    for twin in (pickle.loads(pickle.dumps(clf)), copy.deepcopy(clf), copy.copy(clf)):
        assert _serving.steady_prediction(twin) is None
        assert twin.predict_proba(rows).tobytes() == expected.tobytes()


def _refused(model, X):
    steady = _serving.steady_prediction(model)
    assert steady is not None
    return steady.predict(model, X) is None


def test_it_refuses_any_x_the_python_path_would_treat_otherwise():
    X = _data()
    clf = _fit(_classifier(16), X, np.arange(120) % 3)
    clf.predict(X[:1])
    for other in (X[:4], X[:0], X[:1].astype(np.float64), np.asfortranarray(X[:3]),
                  X[:3, ::2], X[:2, :-1], X[0], X[:1].tolist(), X[:1].astype(">f4"),
                  np.broadcast_to(X[:1], (2, X.shape[1]))[:, ::-1]):
        assert _refused(clf, other)
    # Not finite: the Python path's scikit-learn error, and nothing kept of the call
    bad = X[:2].copy()
    bad[1, 3] = np.nan
    assert _refused(clf, bad)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        clf.predict(bad)
    bad[1, 3] = np.inf
    with pytest.raises(ValueError, match="Input X contains infinity"):
        clf.predict_proba(bad)
    # and the plain row that follows is predicted as before
    assert clf.predict_proba(X[:1]).tobytes() == _python_path(clf, X[:1])[0].tobytes()


def test_a_model_fitted_with_feature_names_warns_at_every_row():
    pd = pytest.importorskip("pandas")
    X = _data()
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    clf = _fit(_classifier(16), frame, np.arange(120) % 3)
    for _ in range(3):
        with pytest.warns(UserWarning, match="X does not have valid feature names"):
            clf.predict(X[:1])
    assert _serving.steady_prediction(clf) is None


@pytest.mark.parametrize("change", [
    "activation", "set_params_equal", "coefs_replaced", "intercept_replaced",
    "coefs_element_replaced", "coefs_edited", "out_activation_", "theta_replaced",
])
def test_what_the_python_path_would_read_otherwise_is_read_anew(change):
    X = _data()
    clf = _fit(_classifier(16, 8), X, np.arange(120) % 3)
    rows = X[3:5]
    before = clf.predict_proba(rows)
    assert _serving.steady_prediction(clf) is not None
    if change == "activation":
        clf.set_params(activation="tanh")
    elif change == "set_params_equal":  # an equal value, another object: refused, same bits
        clf.set_params(alpha=float(str(clf.alpha)))
    elif change == "coefs_replaced":
        clf.coefs_ = [c * 0.5 for c in clf.coefs_]
    elif change == "intercept_replaced":
        clf.intercepts_[1] = clf.intercepts_[1] + 1.0
    elif change == "coefs_element_replaced":
        clf.coefs_[0] = clf.coefs_[0][::-1].copy()
    elif change == "coefs_edited":  # in place: the weights it reads are the model's own
        clf.coefs_[0][:4] = 0.0
    elif change == "out_activation_":
        clf.out_activation_ = "logistic"
    elif change == "theta_replaced":  # the same weights in another array: the same bits
        clf._theta = clf._theta.copy()
        clf._set_views(clf._network(), clf._theta)
    if change not in ("coefs_edited",):
        assert _refused(clf, rows)
    after = clf.predict_proba(rows)
    expected = _python_path(clf, rows)[0]
    assert after.tobytes() == expected.tobytes()
    if change in ("set_params_equal", "theta_replaced"):
        assert after.tobytes() == before.tobytes()
    else:
        assert after.tobytes() != before.tobytes()
    # the compiled prediction made anew takes the next call
    assert not _refused(clf, rows)


def test_a_fit_drops_it_and_the_weights_it_held():
    X = _data()
    clf = _fit(_classifier(16), X, np.arange(120) % 3)
    clf.predict(X[:1])
    old_theta = weakref.ref(clf._theta)
    _fit(clf, X[::-1].copy(), np.arange(120) % 3)
    assert _serving.steady_prediction(clf) is None
    gc.collect()
    assert old_theta() is None
    clf.predict(X[:1])
    assert _serving.steady_prediction(clf) is not None
    theta = weakref.ref(clf._theta)
    del clf
    gc.collect()
    assert theta() is None  # (the compiled prediction, which held it, went with its estimator)


def test_a_batch_normalised_network_takes_the_python_path():
    X = _data()
    clf = _fit(_classifier(16, batch_norm=True), X, np.arange(120) % 3)
    clf.predict(X[:1])
    assert _serving.steady_prediction(clf) is None


def test_threads_predicting_at_once_get_the_same_bits():
    X = _data(n_features=40, n=200)
    clf = _fit(_classifier(96, 64, max_iter=2), X, np.arange(200) % 4)
    expected = [_python_path(clf, X[i:i + 1])[0].tobytes() for i in range(50)]
    failures = []

    def work():
        for _ in range(20):
            for i in range(50):
                if clf.predict_proba(X[i:i + 1]).tobytes() != expected[i]:
                    failures.append(i)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


class _Recorder(dict):
    """An instance __dict__ that records the names read through it (get, [], in)."""

    def __init__(self, *args, seen):
        super().__init__(*args)
        self.seen = seen

    def get(self, key, *default):
        self.seen.add(key)
        return super().get(key, *default)

    def __getitem__(self, key):
        self.seen.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.seen.add(key)
        return super().__contains__(key)


@pytest.mark.parametrize("estimator", [MLPClassifier, MLPRegressor])
def test_it_watches_everything_the_python_path_reads(estimator):
    """_PREDICTION_ATTRIBUTES must hold every attribute of the estimator that a few-row
    prediction's Python path reads, or the compiled one would not see it change: recorded here
    by attribute (a subclass's __getattribute__) and through __dict__ (a recording dict), on the
    path as it runs, and by name in those functions' source (a branch not taken here)."""
    seen = set()

    class Recording(estimator):
        def __getattribute__(self, name):
            seen.add(name)
            return super().__getattribute__(name)

    X = _data()
    y = np.arange(120) % 3 if estimator is MLPClassifier else X[:, 0]
    model = _fit(Recording(hidden_layer_sizes=(16,), max_iter=3, random_state=0), X, y)
    model.__dict__ = _Recorder(model.__dict__, seen=seen)
    seen.clear()
    _python_path(model, X[:1])
    functions = (mlp.BaseMultilayerPerceptron._forward_pass_fast,
                 mlp.BaseMultilayerPerceptron._packed_parameters,
                 mlp.BaseMultilayerPerceptron._network, _validation._prediction_input,
                 _validation._is_plain_input)
    for function in functions:
        source = inspect.getsource(function)
        seen.update(re.findall(r"__dict__(?:\.get\(|\[)\"(\w+)\"", source))
        seen.update(re.findall(r"getattr\(\w+, \"(\w+)\"", source))
        seen.update(re.findall(r"(?:self|estimator)\.(\w+)", source))
    read = {name for name in seen if not callable(getattr(type(model), name, None))
            and not isinstance(getattr(type(model), name, None), (property, _serving.WeightViews))
            and name not in ("__dict__", "__class__")}
    assert read - set(mlp._PREDICTION_ATTRIBUTES) == set()
    assert "activation" in read and "_theta" in read  # (the recording works)
