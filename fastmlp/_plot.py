"""plot_training: a fitted perceptron's loss curve and validation scores, drawn with matplotlib.

Design
------
matplotlib is optional (`pip install "fastmlp[plot]"`) and imported only when a plot is drawn, so
`import fastmlp` stays light. Like scikit-learn's plotting helpers, the function draws on the
Axes it is given (or a new figure's) and returns them; it reads only the public fitted attributes
scikit-learn's MLPs have too (`loss_curve_`, `validation_scores_`, `best_validation_score_`), so
it also draws scikit-learn's MLPClassifier / MLPRegressor. A pipeline is drawn by its last step,
the perceptron (the form `fastmlp train` saves, and the usual one behind a scaler).
"""

from sklearn.base import is_classifier
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

# Two colours of matplotlib's default cycle, named so that loss and score keep theirs.
_LOSS_COLOR, _SCORE_COLOR = "tab:blue", "tab:orange"


def plot_training(estimator, ax=None):
    """Plot the training loss per epoch and, with ``early_stopping=True``, the validation score.

    Parameters
    ----------
    estimator : fitted MLPClassifier or MLPRegressor, or a Pipeline ending in one
        Fitted with a stochastic solver (L-BFGS records no loss curve). scikit-learn's own
        MLPs work too.
    ax : matplotlib Axes, default=None
        Where to draw; None draws on a new figure. The validation score, when there is one,
        goes on a second y-axis that shares this Axes' x-axis (``ax.right_ax``).

    Returns
    -------
    ax : matplotlib Axes
        The Axes holding the loss curve.

    Examples
    --------
    >>> import matplotlib.pyplot as plt                                   # doctest: +SKIP
    >>> from fastmlp import MLPClassifier, plot_training                  # doctest: +SKIP
    >>> clf = MLPClassifier(early_stopping=True).fit(X, y)                # doctest: +SKIP
    >>> plot_training(clf)                                                # doctest: +SKIP
    >>> plt.show()                                                        # doctest: +SKIP
    """
    estimator = _perceptron(estimator)
    check_is_fitted(estimator)
    loss_curve = getattr(estimator, "loss_curve_", None)
    if not loss_curve:
        raise ValueError(
            f"{type(estimator).__name__} has no loss curve to plot: solver="
            f"{estimator.solver!r} does not record one per epoch (use a stochastic solver, "
            "such as 'adam' or 'sgd')."
        )
    plt = _pyplot("plot_training")
    if ax is None:
        _, ax = plt.subplots()
    epochs = range(1, len(loss_curve) + 1)
    ax.plot(epochs, loss_curve, color=_LOSS_COLOR, label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss", color=_LOSS_COLOR)
    ax.tick_params(axis="y", labelcolor=_LOSS_COLOR)
    ax.set_title(f"{type(estimator).__name__} ({estimator.solver}): "
                 f"{len(loss_curve)} epochs, final loss {loss_curve[-1]:.4g}")

    scores = getattr(estimator, "validation_scores_", None)
    if scores:
        name = "accuracy" if is_classifier(estimator) else "R²"
        right = ax.twinx()
        ax.right_ax = right
        right.plot(epochs, scores, color=_SCORE_COLOR, label=f"validation {name}")
        best = max(range(len(scores)), key=lambda i: scores[i])
        right.plot([best + 1], [scores[best]], "o", color=_SCORE_COLOR,
                   label=f"best {scores[best]:.4f} (epoch {best + 1}, weights kept)")
        right.set_ylabel(f"validation {name}", color=_SCORE_COLOR)
        right.tick_params(axis="y", labelcolor=_SCORE_COLOR)
        handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
        right.legend(handles=handles, loc="center right")
    else:
        ax.legend(loc="upper right")
    ax.grid(True, alpha=0.3)
    return ax


def _pyplot(function):
    """matplotlib.pyplot, imported only when a plot is drawn; ImportError naming the extra."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(f"{function} needs matplotlib: pip install 'fastmlp[plot]'") from exc
    return plt


def _perceptron(estimator, function="plot_training"):
    """The MLP to draw: the estimator itself, or a pipeline's last step; TypeError otherwise."""
    from sklearn.neural_network import MLPClassifier as SkMLPClassifier
    from sklearn.neural_network import MLPRegressor as SkMLPRegressor

    from fastmlp._multilayer_perceptron import BaseMultilayerPerceptron

    kinds = (BaseMultilayerPerceptron, SkMLPClassifier, SkMLPRegressor)
    what = f"{function} draws an MLPClassifier or MLPRegressor"
    if isinstance(estimator, Pipeline):
        last = estimator.steps[-1][1]
        if not isinstance(last, kinds):
            raise TypeError(f"{what} (or a pipeline ending in one); this pipeline's last step is "
                            f"{type(last).__name__}")
        return last
    if not isinstance(estimator, kinds):
        raise TypeError(f"{what} (or a pipeline ending in one), not {type(estimator).__name__}")
    return estimator


def plot_gradient_norms(estimator, ax=None):
    """Plot each layer's gradient norm per epoch (``gradient_norms_``), on a log scale.

    A deep network of saturating units (logistic, tanh) shows the vanishing gradient of the
    lectures: every layer multiplies the delta by σ' (≤ 1/4 for the logistic), so the first
    layers' lines sit orders of magnitude below the last's and their weights barely move.

    Parameters
    ----------
    estimator : fitted fastmlp MLPClassifier or MLPRegressor, or a Pipeline ending in one
        Fitted with a stochastic solver (L-BFGS records no per-step gradients).
    ax : matplotlib Axes, default=None
        Where to draw; None draws on a new figure.

    Returns
    -------
    ax : matplotlib Axes
    """
    estimator = _perceptron(estimator, "plot_gradient_norms")
    check_is_fitted(estimator)
    norms = getattr(estimator, "gradient_norms_", None)
    if norms is None:
        raise ValueError(
            f"{type(estimator).__name__} has no gradient_norms_ to plot: they are recorded by "
            f"the stochastic solvers, not by solver={getattr(estimator, 'solver', None)!r}."
        )
    plt = _pyplot("plot_gradient_norms")
    if ax is None:
        _, ax = plt.subplots()
    epochs = range(1, norms.shape[0] + 1)
    colors = plt.get_cmap("viridis")
    for layer in range(norms.shape[1]):
        ax.plot(epochs, norms[:, layer], label=f"layer {layer + 1}",
                color=colors(layer / max(1, norms.shape[1] - 1)))
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean |dLoss/dW| per step")
    ax.set_title(f"{type(estimator).__name__} ({estimator.activation}, {estimator.solver}): "
                 f"gradient norm per layer")
    ax.legend(loc="best", fontsize="small", ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    return ax
