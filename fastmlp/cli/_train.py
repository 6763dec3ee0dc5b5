"""`fastmlp train`: a perceptron from a data file, saved to a model file.

Design
------
Classification or regression is read from the target's values unless --task says which, and
the choice is printed with the reason. What the command will need at its end (matplotlib for
--plot, skops for a .skops file, a writable folder, a destination that is neither an input nor
someone's file) is checked before training starts, not after; the model is written atomically
(_files), so a Ctrl-C while saving leaves the old file whole.

Defaults for the tables people bring, small and unscaled:
- The features are standardised inside the saved model — a scikit-learn Pipeline of
  StandardScaler and the perceptron — so raw columns of any range train well and `predict`
  scales new rows the same way (`--no-scale` saves the bare estimator). A regressor also
  trains on the standardised target, then its output layer is rescaled (W·sd, b·sd + mean; the
  output is the identity, so this is exact up to rounding) to predict in the target's units:
  the saved model stays a plain Pipeline that predicts and exports like any other, and a target
  in the hundreds no longer needs thousands of steps to reach its scale (diabetes: held-out R²
  -1.4 with scaled features alone). Its reported loss is the standardised target's.
- Early stopping scores a hold-out each epoch; on a hold-out of fewer than MIN_HOLD_OUT rows
  that score moves in steps of several points and plateaus by chance, stopping training long
  before the model fits (iris: 15 rows, stopped at 0.64 training accuracy). Unless the user
  asks for a --validation-fraction, such tables train on all rows until the loss settles.
- A fit that is no better than a guess (negative R², accuracy within POOR_MARGIN of always
  answering the most common class) is said so plainly, with what to try.

Ctrl-C during training keeps the weights so far (the estimator's promise): the model is still
saved, and the command then exits with status 130, as an interrupted command does.
"""

import os
import sys
import time
import warnings

from fastmlp.cli._data import TableOptions, read_training_data
from fastmlp.cli._files import check_model_destination, check_not_an_input, write_atomically
from fastmlp.cli._messages import UsageError, first_line, print_notes

#: Fewest hold-out rows for early stopping by default: with 100 rows, one row is one point of
#: accuracy, about the size of the 1e-4-tolerance improvements early stopping waits for.
MIN_HOLD_OUT = 100
#: A training accuracy at most this far above the majority class's rate is "near chance".
POOR_MARGIN = 0.03
#: Names of model files that say what they hold; any other is still written, with a note.
MODEL_SUFFIXES = (".skops", ".joblib", ".pkl", ".pickle", ".joblib.gz", ".joblib.z",
                  ".joblib.bz2", ".joblib.xz", ".joblib.lzma")


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
                         "the classifier takes one target or several 0/1 targets; if they are "
                         "quantities, add --task regression")
    if kind not in ("binary", "multiclass", "multilabel-indicator"):
        raise UsageError(f"{args.data}: cannot tell classes or quantities from this target "
                         f"({kind}); say which with --task")
    what = f"{n_values} {'labels' if kind == 'multilabel-indicator' else 'classes'}"
    hint = ", --task regression to change" if numeric and args.task is None else ""
    return "classification", f"{what} (classification{hint})"


def _check_outputs(args):
    """Fail before training on what would fail after it: the model and plot files' places, and
    the packages that write them; and never write over an input or over a file that is no model."""
    for path in filter(None, [args.out, args.plot]):
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            raise UsageError(f"{path}: is a directory; give a file name")
        if not os.path.isdir(folder):
            raise UsageError(f"{path}: the folder {folder} does not exist")
        if not os.access(folder, os.W_OK):
            raise UsageError(f"{path}: cannot write into {folder}")
        check_not_an_input(path, [args.data], "model" if path == args.out else "plot")
    if args.plot and os.path.abspath(args.plot) == os.path.abspath(args.out):
        raise UsageError(f"{args.plot}: is also --out; give the plot and the model two names")
    check_model_destination(args.out, args.force)
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


def _early_stopping(args, n_rows, notes):
    """(early_stopping, validation_fraction) for the estimator; see Design for the threshold."""
    import math

    if args.solver == "lbfgs":
        return False, 0.1
    if args.validation_fraction is not None:  # the user's choice, whatever the table's size
        return args.validation_fraction > 0, args.validation_fraction or 0.1
    held_out = math.ceil(0.1 * n_rows)  # as scikit-learn's train_test_split counts it
    if held_out < MIN_HOLD_OUT:
        notes.append(f"{n_rows} rows: a 10% hold-out ({held_out} rows) is too few to tell when to "
                     "stop, so training uses every row until the loss settles "
                     "(--validation-fraction F to hold out anyway)")
        return False, 0.1
    return True, 0.1


def _poor_fit(model, estimator, score, y, args):
    """A plain sentence if the fit is no better than a guess, with what to try; else None."""
    import numpy as np

    if hasattr(estimator, "classes_"):
        if y.ndim != 1:
            return None  # several labels: subset accuracy has no simple chance level
        majority = np.unique(y, return_counts=True)[1].max() / len(y)
        if score > majority + POOR_MARGIN:
            return None
        verdict = (f"accuracy {score:.2f} on the training data is no better than always "
                   f"answering the most common class ({majority:.2f})")
    else:
        if score >= 0:
            return None
        verdict = (f"R² {score:.2f} on the training data: worse than predicting the mean "
                   "every time")
    tries = []
    if args.no_scale:
        tries.append("scaling the features (leave out --no-scale)")
    if estimator.n_iter_ >= estimator.max_iter:
        tries.append("more --epochs")
    if args.solver != "lbfgs" and len(y) < 1000:
        tries.append("--solver lbfgs (suits small tables)")
    tries.append("another --learning-rate")
    return f"poor fit: {verdict}; try {', '.join(tries)}"


def _fit_standardised_target(model, estimator, X, y):
    """Fit the regressor on (y - mean) / sd, then rescale its output layer (see Design)."""
    import numpy as np

    y = np.asarray(y, dtype=np.float64)
    mean, sd = y.mean(axis=0), y.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    model.fit(X, (y - mean) / sd)
    weights, bias = estimator.coefs_[-1], estimator.intercepts_[-1]  # views into the weights
    weights[...] = weights * sd
    bias[...] = bias * sd + mean


def _summary(model, estimator, seconds, X, y):
    from sklearn.pipeline import Pipeline

    steps = "iterations" if estimator.solver == "lbfgs" else "epochs"
    text = f"trained: {estimator.n_iter_} {steps}"
    text += f" in {seconds:.2f} s; final training loss {estimator.loss_:.5g}"
    if isinstance(model, Pipeline) and not hasattr(estimator, "classes_"):
        text += " (of the standardised target)"
    scores = getattr(estimator, "validation_scores_", None)
    name = "accuracy" if hasattr(estimator, "classes_") else "R²"
    if scores:
        best = max(range(len(scores)), key=scores.__getitem__)
        text += (f"; best validation {name} {scores[best]:.4f} (epoch {best + 1}, "
                 "the weights kept)")
    score = model.score(X, y)
    return text + f"\n         {name} on all of the training data {score:.4f}", score


def _saved_as(path, notes):
    """How the model at `path` will be read back; a note where the name does not say so."""
    if path.endswith(".skops"):
        return "skops.io.load(path, trusted=fastmlp.SKOPS_TRUSTED_TYPES)", ""
    if not path.lower().endswith(MODEL_SUFFIXES):
        notes.append(f"{path}: an unusual name for a model; it is written in joblib's format "
                     f"(a pickle) to {os.path.abspath(path)}")
    notes.append(f"{path} is a pickle, which runs code when loaded: `predict` asks for "
                 "--trust-pickle; a name ending in .skops saves a file that loads safely")
    return "joblib.load(path)", " --trust-pickle"


def _estimator(task, args, X, notes):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from fastmlp._multilayer_perceptron import MLPClassifier, MLPRegressor

    Estimator = MLPClassifier if task == "classification" else MLPRegressor
    early_stopping, validation_fraction = _early_stopping(args, X.shape[0], notes)
    estimator = Estimator(
        hidden_layer_sizes=args.hidden, activation=args.activation, solver=args.solver,
        alpha=args.alpha, batch_size="auto" if args.batch_size is None else args.batch_size,
        learning_rate_init=args.learning_rate, max_iter=args.epochs, random_state=args.seed,
        early_stopping=early_stopping, validation_fraction=validation_fraction,
    )
    model = estimator if args.no_scale else make_pipeline(StandardScaler(), estimator)
    return model, estimator


def train(args):
    from fastmlp._callbacks import TrainingProgress
    from fastmlp._persistence import save_model
    from fastmlp._plot import plot_training

    notes = []
    _check_outputs(args)
    X, y, target_names = read_training_data(args.data, args.target, notes,
                                            TableOptions(args.sep, not args.no_header))
    task, described = _task_of(y, args)
    model, estimator = _estimator(task, args, X, notes)
    X = X.astype(args.dtype)
    print(f"data: {args.data}, {X.shape[0]} rows x {X.shape[1]} features; target: {described}")
    # scikit-learn's repr shows the parameters that differ from the defaults; on one line
    scaled = "" if args.no_scale else "standardised features, "
    print(f"model: {scaled}{' '.join(repr(estimator).split())}, {args.dtype}")
    print_notes(notes)
    notes = []
    sys.stdout.flush()
    if not args.quiet and hasattr(estimator, "set_callbacks"):
        estimator.set_callbacks(TrainingProgress(file=sys.stderr))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        try:
            if args.no_scale or task != "regression":
                model.fit(X, y)
            else:
                _fit_standardised_target(model, estimator, X, y)
        except ValueError as exc:
            raise UsageError(f"{args.data}: cannot train on it: {first_line(exc)}") from None
        seconds = time.perf_counter() - start
    interrupted = False
    for message in dict.fromkeys(str(w.message).splitlines()[0].rstrip(":") for w in caught):
        if "Maximum iterations" in message or "failed to converge" in message:
            message += " (more --epochs may help)"
        if message.startswith("Training interrupted by user"):
            interrupted = True
            message += " The model so far is saved."
        notes.append(message)
    print_notes(notes)
    if hasattr(estimator, "set_callbacks"):
        estimator.set_callbacks()  # the saved model carries no progress line (nor stderr)
    if target_names is not None:
        # What `predict` names its columns after (scikit-learn keeps no target names).
        estimator.target_names_ = list(target_names)
    summary, score = _summary(model, estimator, seconds, X, y)
    print(summary)
    poor = _poor_fit(model, estimator, score, y, args)
    if poor:
        sys.stdout.flush()
        print(f"fastmlp: warning: {poor}", file=sys.stderr)
    notes = []
    loader, flag = _saved_as(args.out, notes)
    try:
        write_atomically(args.out, lambda path: save_model(model, path))
    except OSError as exc:
        raise UsageError(f"{args.out}: cannot write it ({exc.strerror or exc})") from None
    print(f"wrote {args.out} (fastmlp predict {args.out} DATA{flag}; in Python: {loader})")
    print_notes(notes)
    if args.plot:
        from matplotlib.figure import Figure

        figure = Figure(figsize=(8, 5), layout="tight")
        plot_training(estimator, ax=figure.subplots())
        write_atomically(args.plot, lambda path: figure.savefig(path, dpi=110,
                                                                format=_suffix(args.plot)))
        print(f"wrote {args.plot}")
    return 130 if interrupted else 0


def _suffix(path):
    return os.path.splitext(path)[1].lstrip(".").lower()
