"""fastmlp.dask on distributed.LocalCluster: the same model whatever the number of workers,
the single-machine model from one partition, and the same bits through a killed worker."""

import os
import signal

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import fastmlp  # noqa: E402
from fastmlp.dask import MLPClassifier, MLPRegressor  # noqa: E402
from fastmlp.dask import _estimators  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:600] / 16.0, y[:600]


def _cluster(n_workers, processes=False):
    cluster = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1,
                                       processes=processes, dashboard_address=":0")
    return cluster, distributed.Client(cluster)


@pytest.fixture(scope="module")
def client():
    cluster, client = _cluster(2)
    yield client
    client.close()
    cluster.close()


def _dask(X, y, rows):
    return da.from_array(X, chunks=(rows, X.shape[1])), da.from_array(y, chunks=rows)


LBFGS = dict(hidden_layer_sizes=(12,), solver="lbfgs", max_iter=25, alpha=1e-3, random_state=0)
ADAM = dict(hidden_layer_sizes=(12,), solver="adam", max_iter=4, random_state=0,
            batch_size=32, sync_every=3)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_lbfgs_one_partition_is_the_single_machine_fit(client, digits):
    X, y = digits
    weight = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    single = fastmlp.MLPClassifier(**LBFGS).fit(X, y, sample_weight=weight)
    Xd, yd = _dask(X, y, len(y))
    model = MLPClassifier(**LBFGS).fit(Xd, yd, sample_weight=da.from_array(weight))
    assert model.n_iter_ == single.n_iter_
    np.testing.assert_allclose(model._theta, single._theta, rtol=0, atol=1e-8)
    np.testing.assert_allclose(model.loss_, single.loss_, rtol=1e-10)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("params", [LBFGS, ADAM], ids=["lbfgs", "adam"])
def test_same_bits_on_one_two_and_four_workers(client, digits, params):
    X, y = digits
    Xd, yd = _dask(X, y, 130)  # 5 partitions, the last one shorter
    reference = MLPClassifier(**params).fit(Xd, yd)
    for n_workers in (1, 4):
        cluster, other = _cluster(n_workers)
        try:
            model = MLPClassifier(client=other, **params).fit(Xd, yd)
        finally:
            other.close()
            cluster.close()
        assert model.n_iter_ == reference.n_iter_
        np.testing.assert_array_equal(model._theta, reference._theta)
        assert model.loss_curve_ == reference.loss_curve_ if params is ADAM else True


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_local_sgd_learns_and_depends_on_partitioning(client, digits):
    X, y = digits
    two = MLPClassifier(**dict(ADAM, max_iter=30, learning_rate_init=0.01)).fit(*_dask(X, y, 300))
    three = MLPClassifier(**dict(ADAM, max_iter=30, learning_rate_init=0.01)).fit(*_dask(X, y, 200))
    assert two.score(X, y) > 0.9
    assert not np.array_equal(two._theta, three._theta)  # the partitioning is part of the fit


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_regressor_and_lazy_prediction(client, digits):
    X, y = digits
    Xd, yd = _dask(X, y.astype(float), 200)
    model = MLPRegressor(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=10,
                         random_state=0).fit(Xd, yd)
    lazy = model.predict(Xd)
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), model.predict(X))
    classifier = MLPClassifier(**dict(LBFGS, max_iter=5)).fit(*_dask(X, y, 200))
    np.testing.assert_array_equal(classifier.predict(Xd).compute(), classifier.predict(X))
    np.testing.assert_array_equal(classifier.predict_proba(Xd).compute(),
                                  classifier.predict_proba(X))


def test_parameters_are_fastmlps_plus_the_clusters():
    model = MLPClassifier(hidden_layer_sizes=(7,), sync_every=4, alpha=0.5)
    params = model.get_params()
    assert set(params) == set(fastmlp.MLPClassifier().get_params()) | {"client", "sync_every"}
    assert clone(model).get_params() == params
    assert params["sync_every"] == 4 and params["hidden_layer_sizes"] == (7,)
    with pytest.raises(ValueError, match="sync_every"):
        MLPClassifier(sync_every=0).fit(*_dask(np.zeros((4, 2)), np.arange(4) % 2, 2))


def test_batch_norm_is_refused_clearly():
    with pytest.raises(ValueError, match="batch_norm=True is not supported by fastmlp.dask"):
        MLPClassifier(batch_norm=True).fit(*_dask(np.zeros((4, 2)), np.arange(4) % 2, 2))


def test_numpy_input_has_a_clear_error(client):
    with pytest.raises(TypeError, match="dask array"):
        MLPClassifier().fit(np.zeros((4, 2)), np.arange(4) % 2)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_killed_worker_changes_no_bit(digits, monkeypatch):
    X, y = digits
    Xd, yd = _dask(X, y, 150)
    params = dict(ADAM, max_iter=3)
    cluster, client = _cluster(2, processes=True)
    try:
        undisturbed = MLPClassifier(client=client, **params).fit(Xd, yd)
        tree, rounds = _estimators._DaskFit._tree, []

        def tree_then_kill(client, results):
            total = tree(client, results)
            rounds.append(1)
            if len(rounds) == 3:  # after round 3, a worker dies with its partitions
                victim = sorted(client.scheduler_info()["workers"])[0]
                os.kill(client.run(os.getpid, workers=[victim])[victim], signal.SIGKILL)
            return total

        monkeypatch.setattr(_estimators._DaskFit, "_tree", staticmethod(tree_then_kill))
        before = set(client.scheduler_info()["workers"])
        disturbed = MLPClassifier(client=client, **params).fit(Xd, yd)
        assert set(client.scheduler_info()["workers"]) != before  # one died (and came back)
    finally:
        client.close()
        cluster.close()
    np.testing.assert_array_equal(disturbed._theta, undisturbed._theta)
    assert disturbed.loss_curve_ == undisturbed.loss_curve_
