"""`fastmlp train`: a perceptron from a data file, saved to a model file.

Design
------
Classification or regression is read from the target's values unless --task says which, and
the choice is printed with the reason. What the command will need at its end (matplotlib for
--plot, skops for a .skops file, a writable folder) is checked before training starts, not after.
"""

import os
import sys
import time
import warnings

from fastmlp.cli._data import read_training_data
from fastmlp.cli._messages import UsageError, first_line, print_notes


def _task_of(y, args):
    """'classification' or 'regression' (from --task, or guessed from the target's values), and
    the words that tell the user what was chosen and why."""
    import numpy as np
    from sklearn.utils.multiclass import type_of_target

    numeric = np.issubdtype(y.dtype, np.number)
    try:
        kind = "continuous" if args.task == "regression" else type_of_target(y)
    except ValueError as exc:
        raise UsageError(f"{args.data}: cannot use this target: {first_line(exc)}") from None
    n_values = len(np.unique(y)) if y.ndim == 1 else y.shape[1]
    # scikit-learn's type_of_target calls any whole numbers classes; hundreds of distinct values
    # (prices, counts, a CSV's 151.0) are far likelier a quantity.
    many = (args.task is None and kind == "multiclass" and numeric
            and n_values > max(50, y.shape[0] / 20))
    if kind in ("continuous", "continuous-multioutput") or many:
        if args.task == "classification":
            raise UsageError(f"{args.data}: the target holds fractional numbers (e.g. "
                             f"{y.ravel()[0]!r}), not classes; use --task regression")
        if not numeric:
            raise UsageError(f"{args.data}: the target is not numeric (e.g. {y.ravel()[0]!r}); "
                             "regression needs numbers")
        what = "a quantity" if y.ndim == 1 else f"{y.shape[1]} quantities"
        hint = (f", from its {n_values} distinct values; --task classification to change"
                if many else "")
        return "regression", f"{what} (regression{hint})"
    if kind == "multiclass-multioutput":
        raise UsageError(f"{args.data}: several target columns with more than two classes each; "
                         "the classifier takes one target or several 0/1 targets")
    if kind not in ("binary", "multiclass", "multilabel-indicator"):
        raise UsageError(f"{args.data}: cannot tell classes or quantities from this target "
                         f"({kind}); say which with --task")
    what = f"{n_values} {'labels' if kind == 'multilabel-indicator' else 'classes'}"
    hint = ", --task regression to change" if numeric and args.task is None else ""
    return "classification", f"{what} (classification{hint})"


def _check_outputs(args):
    """Fail before training on what would fail after it: the model and plot files' places, and
    the packages that write them."""
    for path in filter(None, [args.out, args.plot]):
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            raise UsageError(f"{path}: is a directory; give a file name")
        if not os.path.isdir(folder):
            raise UsageError(f"{path}: the folder {folder} does not exist")
        if not os.access(folder, os.W_OK):
            raise UsageError(f"{path}: cannot write into {folder}")
    if args.out.endswith(".skops"):
        try:
            import skops.io  # noqa: F401
        except ImportError:
            raise UsageError(f"{args.out}: writing .skops files needs skops: "
                             "pip install 'fastmlp[skops]'") from None
    if args.plot:
        if args.solver == "lbfgs":
            raise UsageError("--plot draws the loss per epoch, which --solver lbfgs does not "
                             "record; use --solver adam or sgd")
        try:
            from matplotlib.figure import Figure
        except ImportError:
            raise UsageError("--plot needs matplotlib: pip install 'fastmlp[plot]'") from None
        suffix = os.path.splitext(args.plot)[1].lstrip(".").lower()
        if suffix not in Figure().canvas.get_supported_filetypes():
            raise UsageError(f"{args.plot}: cannot draw a .{suffix} file; use .png, .svg or .pdf")


def _summary(estimator, seconds, X, y):
    steps = "iterations" if estimator.solver == "lbfgs" else "epochs"
    text = f"trained: {estimator.n_iter_} {steps}"
    text += f" in {seconds:.2f} s; final training loss {estimator.loss_:.5g}"
    scores = getattr(estimator, "validation_scores_", None)
    name = "accuracy" if hasattr(estimator, "classes_") else "R²"
    if scores:
        best = max(range(len(scores)), key=scores.__getitem__)
        text += (f"; best validation {name} {scores[best]:.4f} (epoch {best + 1}, "
                 "the weights kept)")
    return text + f"\n         {name} on all of the training data {estimator.score(X, y):.4f}"


def train(args):
    from fastmlp._callbacks import TrainingProgress
    from fastmlp._multilayer_perceptron import MLPClassifier, MLPRegressor
    from fastmlp._persistence import save_model
    from fastmlp._plot import plot_training

    notes = []
    _check_outputs(args)
    X, y = read_training_data(args.data, args.target)
    task, described = _task_of(y, args)
    Estimator = MLPClassifier if task == "classification" else MLPRegressor
    stochastic = args.solver != "lbfgs"
    estimator = Estimator(
        hidden_layer_sizes=args.hidden, activation=args.activation, solver=args.solver,
        alpha=args.alpha, batch_size="auto" if args.batch_size is None else args.batch_size,
        learning_rate_init=args.learning_rate, max_iter=args.epochs, random_state=args.seed,
        early_stopping=stochastic and args.validation_fraction > 0,
        validation_fraction=args.validation_fraction if args.validation_fraction > 0 else 0.1,
    )
    X = X.astype(args.dtype)
    print(f"data: {args.data}, {X.shape[0]} rows x {X.shape[1]} features; target: {described}")
    # scikit-learn's repr shows the parameters that differ from the defaults; on one line
    print(f"model: {' '.join(repr(estimator).split())}, {args.dtype}")
    sys.stdout.flush()
    if not args.quiet and hasattr(estimator, "set_callbacks"):
        estimator.set_callbacks(TrainingProgress(file=sys.stderr))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        try:
            estimator.fit(X, y)
        except ValueError as exc:
            raise UsageError(f"{args.data}: cannot train on it: {first_line(exc)}") from None
        seconds = time.perf_counter() - start
    for message in dict.fromkeys(str(w.message).splitlines()[0].rstrip(":") for w in caught):
        if "Maximum iterations" in message or "failed to converge" in message:
            message += " (more --epochs may help)"
        notes.append(message)
    print_notes(notes)
    if hasattr(estimator, "set_callbacks"):
        estimator.set_callbacks()  # the saved model carries no progress line (nor stderr)
    print(_summary(estimator, seconds, X, y))
    try:
        save_model(estimator, args.out)
    except OSError as exc:
        raise UsageError(f"{args.out}: cannot write it ({exc.strerror or exc})") from None
    loader = ("skops.io.load(path, trusted=fastmlp.SKOPS_TRUSTED_TYPES)"
              if args.out.endswith(".skops") else "joblib.load(path)")
    print(f"wrote {args.out} (fastmlp predict {args.out} DATA; in Python: {loader})")
    if args.plot:
        from matplotlib.figure import Figure

        figure = Figure(figsize=(8, 5), layout="tight")
        plot_training(estimator, ax=figure.subplots())
        figure.savefig(args.plot, dpi=110)
        print(f"wrote {args.plot}")
    return 0
