"""The packed copy of W that few-row predictions read (fastmlp/_serving.py): it gives the bits
of the weights as they are, and it is never read once anything may have written them — fit,
partial_fit (the steady call too), an edit in place through `coefs_`, a replaced `coefs_`, a
shallow copy's views."""
import copy
import pickle
import warnings

import numpy as np
import pytest

from fastmlp import MLPClassifier, MLPRegressor, _engine, _serving


def _fitted(**options):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 80)).astype(np.float32)
    y = np.arange(300) % 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier(hidden_layer_sizes=(128, 64), max_iter=3, random_state=0,
                            **options).fit(X, y)
    return clf, X, y


def _copy_of(model):
    record = _serving.record_of(model.__dict__["_theta"])
    return None if record is None else record.copy


def _without_copy(model):
    """The model's predictions from its weights as they are now, with no copy: a twin whose
    views were handed out."""
    twin = pickle.loads(pickle.dumps(model))
    twin.coefs_
    return twin


@pytest.fixture
def needs_a_copy():
    clf, X, _ = _fitted()
    if _engine.small_pack_copies(clf._network(), clf._packed_parameters()) is None:
        pytest.skip("no packed copy on this processor (csrc/small_product.c)")


@pytest.mark.usefixtures("needs_a_copy")
def test_the_copy_is_made_at_the_second_few_row_prediction_and_keeps_the_bits():
    clf, X, _ = _fitted()
    twin = _without_copy(clf)
    rows = X[:1]
    first = clf.predict_proba(rows)
    assert _copy_of(clf) is None  # one prediction never pays for a copy
    second = clf.predict_proba(rows)
    assert _copy_of(clf) is not None
    assert _copy_of(twin) is None
    for r in range(20):
        assert clf.predict_proba(X[r:r + 3]).tobytes() == twin.predict_proba(X[r:r + 3]).tobytes()
    assert first.tobytes() == second.tobytes()
    before = dict(vars(clf))  # (scikit-learn's check_dict_unchanged)
    clf.predict(X[:2])
    assert vars(clf).keys() == before.keys()
    assert all(vars(clf)[k] is v for k, v in before.items())


@pytest.mark.usefixtures("needs_a_copy")
def test_an_edit_in_place_through_coefs_is_seen():
    clf, X, _ = _fitted()
    clf.predict_proba(X[:1])
    clf.predict_proba(X[:1])
    assert _copy_of(clf) is not None
    W = clf.coefs_[0]  # handed out: the copy goes, and never comes back for these weights
    assert _copy_of(clf) is None
    W[:, :10] = 0.0
    edited = clf.predict_proba(X[:1])
    for _ in range(3):
        assert clf.predict_proba(X[:1]).tobytes() == edited.tobytes()
    W[:, 10:20] = 0.0  # a later edit through the same reference
    assert not np.array_equal(clf.predict_proba(X[:1]), edited)
    assert _copy_of(clf) is None
    assert clf.predict_proba(X[:1]).tobytes() == _without_copy(clf).predict_proba(X[:1]).tobytes()


@pytest.mark.usefixtures("needs_a_copy")
def test_views_handed_out_before_the_first_prediction_keep_it_from_a_copy():
    clf, X, _ = _fitted()
    held = clf.coefs_
    for _ in range(3):
        clf.predict_proba(X[:1])
    assert _copy_of(clf) is None
    held[0][...] = 0.0
    assert np.allclose(clf.predict_proba(X[:1]), clf.predict_proba(X[1:2]))  # W1 = 0


@pytest.mark.usefixtures("needs_a_copy")
@pytest.mark.parametrize("train", ["partial_fit", "steady partial_fit", "warm fit", "fit"])
def test_training_drops_the_copy(train):
    clf, X, y = _fitted(warm_start=train == "warm fit")
    for _ in range(2):
        clf.partial_fit(X[:32], y[:32])  # (the third call on takes the compiled steady call)
    for _ in range(2):
        clf.predict_proba(X[:1])
    assert _copy_of(clf) is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if train.endswith("partial_fit"):
            clf.partial_fit(X[:32], y[:32])
            if train.startswith("steady"):
                assert "_steady_call" in vars(clf)
                clf.partial_fit(X[32:64], y[32:64])
        else:
            clf.fit(X, y)
    assert _copy_of(clf) is None
    expected = _without_copy(clf).predict_proba(X[:2])
    for _ in range(3):
        assert clf.predict_proba(X[:2]).tobytes() == expected.tobytes()


@pytest.mark.usefixtures("needs_a_copy")
def test_no_copy_is_made_or_read_while_a_fit_predicts():
    # early stopping scores its validation rows inside fit; a copy made there would be stale
    # after the next epoch
    seen = []
    real = _serving.copy_for

    def spy(network, theta):
        copy_ = real(network, theta)
        seen.append(copy_)
        return copy_

    clf, X, y = _fitted()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_serving, "copy_for", spy)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # a validation set of 2 rows: its score is a few-row prediction
            clf.set_params(early_stopping=True, validation_fraction=2 / 300, max_iter=4).fit(X, y)
    assert seen and all(c is None for c in seen)
    assert _copy_of(clf) is None


@pytest.mark.usefixtures("needs_a_copy")
def test_a_replaced_coefs_and_a_shallow_copys_views_are_seen():
    clf, X, _ = _fitted()
    for _ in range(2):
        clf.predict_proba(X[:1])
    assert _copy_of(clf) is not None
    twin = copy.copy(clf)  # shares the weights, and so their record
    twin.coefs_[0][...] = 0.0
    assert _copy_of(clf) is None
    assert np.allclose(clf.predict_proba(X[:1]), clf.predict_proba(X[1:2]))

    clf, X, _ = _fitted()
    for _ in range(2):
        clf.predict_proba(X[:1])
    replaced = [np.zeros_like(c) for c in clf.__dict__["_coefs"]]
    clf.coefs_ = replaced
    assert np.allclose(clf.predict_proba(X[:1]), clf.predict_proba(X[1:2]))


def test_coefs_is_an_attribute_as_before():
    assert not hasattr(MLPClassifier(), "coefs_")
    assert not hasattr(MLPRegressor(), "coefs_")
    clf, X, _ = _fitted()
    assert [c.shape for c in clf.coefs_] == [(80, 128), (128, 64), (64, 4)]
    assert all(c.base is clf._theta for c in clf.coefs_)
    assert isinstance(MLPClassifier.coefs_, _serving.WeightViews)
    loaded = pickle.loads(pickle.dumps(clf))
    for a, b in zip(loaded.coefs_, clf.coefs_):
        assert a.tobytes() == b.tobytes()
    del loaded.coefs_
    assert not hasattr(loaded, "coefs_")
