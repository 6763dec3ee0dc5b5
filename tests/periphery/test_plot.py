"""plot_training: the loss curve and the validation scores, drawn with matplotlib."""
import sys
import warnings

import numpy as np
import pytest
import sklearn.neural_network as sk
from sklearn.datasets import make_regression

from fastmlp import MLPClassifier, MLPRegressor, plot_training

from _helpers import digits

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
plt = pytest.importorskip("matplotlib.pyplot")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def fit(estimator, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return estimator.fit(X, y)


def test_loss_curve_on_a_new_figure():
    clf = fit(MLPClassifier(hidden_layer_sizes=(8,), max_iter=7, random_state=0), *digits(400))
    ax = plot_training(clf)
    (line,) = ax.get_lines()
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, 8))
    np.testing.assert_array_equal(line.get_ydata(), clf.loss_curve_)
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "training loss"
    assert "7 epochs" in ax.get_title()
    assert not hasattr(ax, "right_ax")


def test_validation_scores_on_a_second_axis_of_the_given_axes():
    _, given = plt.subplots()
    clf = fit(MLPClassifier(hidden_layer_sizes=(8,), max_iter=9, early_stopping=True,
                            random_state=0), *digits(400))
    ax = plot_training(clf, ax=given)
    assert ax is given
    scores, best = ax.right_ax.get_lines()
    np.testing.assert_array_equal(scores.get_ydata(), clf.validation_scores_)
    assert best.get_ydata()[0] == clf.best_validation_score_
    assert ax.right_ax.get_ylabel() == "validation accuracy"
    legend = [t.get_text() for t in ax.right_ax.get_legend().get_texts()]
    assert legend[:2] == ["training loss", "validation accuracy"]


def test_regressor_scores_are_r2_and_scikit_learns_mlp_plots_too():
    X, y = make_regression(n_samples=200, n_features=5, random_state=0)
    for module in (sys.modules["fastmlp"], sk):
        reg = fit(module.MLPRegressor(max_iter=5, early_stopping=True, random_state=0), X, y)
        ax = plot_training(reg)
        assert ax.right_ax.get_ylabel() == "validation R²"


def test_lbfgs_has_no_curve_to_plot():
    clf = fit(MLPClassifier(solver="lbfgs", max_iter=5), *digits(400))
    with pytest.raises(ValueError, match="solver='lbfgs' does not record one per epoch"):
        plot_training(clf)


def test_a_pipeline_is_drawn_by_its_last_step():
    """What `fastmlp train` saves: a scaler, then the perceptron."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = fit(make_pipeline(StandardScaler(), MLPClassifier(
        hidden_layer_sizes=(8,), max_iter=5, early_stopping=True, random_state=0)), *digits(400))
    ax = plot_training(pipe)
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), pipe[-1].loss_curve_)
    np.testing.assert_array_equal(ax.right_ax.lines[0].get_ydata(), pipe[-1].validation_scores_)


def test_what_is_no_perceptron_is_refused_with_a_type_error():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = digits(400)
    pipe = fit(make_pipeline(StandardScaler(), LogisticRegression(max_iter=5)), X, y)
    with pytest.raises(TypeError, match="this pipeline's last step is LogisticRegression"):
        plot_training(pipe)
    with pytest.raises(TypeError, match="MLPClassifier or MLPRegressor.*not LogisticRegression"):
        plot_training(pipe[-1])


def test_unfitted_estimator_is_refused():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        plot_training(MLPRegressor())


def test_without_matplotlib_the_error_says_how_to_get_it(monkeypatch):
    clf = fit(MLPClassifier(hidden_layer_sizes=(4,), max_iter=2), *digits(400))
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install 'fastmlp\[plot\]'"):
        plot_training(clf)
