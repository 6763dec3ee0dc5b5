"""plot_gradient_norms: one line per layer on a log scale, from gradient_norms_."""
import warnings

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fastmlp import MLPClassifier, plot_gradient_norms

from _helpers import digits

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")


def test_one_line_per_layer_with_the_recorded_values():
    X, y = digits(100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier(hidden_layer_sizes=(8, 8), max_iter=4, random_state=0).fit(X, y)
    ax = plot_gradient_norms(clf)
    assert ax.get_yscale() == "log"
    lines = ax.get_lines()
    assert len(lines) == 3
    for layer, line in enumerate(lines):
        np.testing.assert_array_equal(line.get_ydata(), clf.gradient_norms_[:, layer])


def test_a_pipeline_draws_its_last_step():
    X, y = digits(100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = make_pipeline(StandardScaler(), MLPClassifier((8,), max_iter=3,
                                                             random_state=0)).fit(X, y)
    assert len(plot_gradient_norms(pipe).get_lines()) == 2


def test_lbfgs_has_nothing_to_draw():
    X, y = digits(100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier((8,), solver="lbfgs", max_iter=3).fit(X, y)
    with pytest.raises(ValueError, match="stochastic solvers"):
        plot_gradient_norms(clf)
