"""The `fastmlp` command line (also `python -m fastmlp`).

Design
------
One subcommand per job: `demo` (the README's first command), `train`, `predict`, `export`
(ONNX) and `bench` (the side-by-side benchmark, fastmlp/_bench.py, loaded only when asked for).
What a user gets wrong — a missing file, an unknown column, a column of text, a file that is no
model, a missing optional package — is a `UsageError`: one line on stderr,
``fastmlp: error: ...``, and exit status 2, as argparse does for bad options; never a traceback.
Results go to stdout, progress and notes to stderr, so `fastmlp predict m.joblib x.csv > out.csv`
works. Heavy imports (pandas, matplotlib, skl2onnx) happen inside the command that needs them, and
what a command will need at its end (matplotlib for --plot, skops for a .skops file, a writable
directory) is checked before training starts, not after.
"""
import argparse
import csv
import os
import sys
import time
import warnings

from fastmlp._cli_data import UsageError, _first_line, load_model_file, read_prediction_data, \
    read_training_data

DESCRIPTION = ("Multilayer perceptrons on the CPU, fast: scikit-learn's MLPClassifier and "
               "MLPRegressor with a compiled engine.")


def demo(args):
    """Train on scikit-learn's bundled digits; print accuracy and fit time beside scikit-learn's."""
    import numpy as np
    import sklearn
    import sklearn.neural_network as sk
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    import fastmlp

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.dtype(args.dtype))
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0,
                                                        stratify=y)
    params = dict(hidden_layer_sizes=tuple(w for part in args.hidden for w in part),
                  max_iter=args.max_iter, random_state=args.seed)
    print(f"digits: {X_train.shape[0]} training and {X_test.shape[0]} held-out images of "
          f"{X.shape[1]} pixels, {args.dtype}; MLPClassifier({params})")
    results = {}
    for name, module in (("fastmlp", fastmlp), (f"scikit-learn {sklearn.__version__}", sk)):
        clf = module.MLPClassifier(**params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            clf.fit(X_train, y_train)
            seconds = time.perf_counter() - start
        results[name] = seconds
        print(f"  {name:22s} accuracy {clf.score(X_test, y_test):.4f}   fit {seconds:7.3f} s   "
              f"({clf.n_iter_} epochs)")
    ours, theirs = results.values()
    print(f"  fastmlp fits {theirs / ours:.1f}x faster")
    return 0


# -- train -------------------------------------------------------------------------------------------

def _task_of(y, args):
    """'classification' or 'regression' (from --task, or guessed from the target's values), and
    the words that tell the user what was chosen and why."""
    import numpy as np
    from sklearn.utils.multiclass import type_of_target

    numeric = np.issubdtype(y.dtype, np.number)
    try:
        kind = "continuous" if args.task == "regression" else type_of_target(y)
    except ValueError as exc:
        raise UsageError(f"{args.data}: cannot use this target: {_first_line(exc)}") from None
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
    import numpy as np

    from fastmlp import MLPClassifier, MLPRegressor, TrainingProgress, plot_training
    from fastmlp._persistence import save_model

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
            raise UsageError(f"{args.data}: cannot train on it: {_first_line(exc)}") from None
        seconds = time.perf_counter() - start
    for message in dict.fromkeys(str(w.message).splitlines()[0].rstrip(":") for w in caught):
        if "Maximum iterations" in message or "failed to converge" in message:
            message += " (more --epochs may help)"
        notes.append(message)
    _print_notes(notes)
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


def _print_notes(notes):
    sys.stdout.flush()  # notes come after what was printed before them, even through a pipe
    for note in notes:
        print(f"fastmlp: note: {note}", file=sys.stderr)
    sys.stderr.flush()


# -- predict -----------------------------------------------------------------------------------------

def predict(args):
    import numpy as np

    notes = []
    model = load_model_file(args.model, notes)
    if args.proba and not hasattr(model, "predict_proba"):
        raise UsageError(f"--proba needs a classifier; {args.model} holds a "
                         f"{type(model).__name__}")
    out_kind = None if args.out is None else os.path.splitext(args.out)[1].lower()
    if out_kind not in (None, ".csv", ".npy", ".npz"):
        raise UsageError(f"{args.out}: write predictions to a .csv, .npy or .npz file")
    if out_kind == ".npy" and args.proba:
        raise UsageError(f"{args.out}: a .npy file holds one array; with --proba write .csv "
                         "or .npz")
    X = read_prediction_data(args.data, model, notes)
    _print_notes(notes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. feature names for a model fitted on an array
        predictions = model.predict(X)
        probabilities = model.predict_proba(X) if args.proba else None
    if out_kind == ".npy":
        np.save(args.out, predictions)
    elif out_kind == ".npz":
        arrays = dict(prediction=predictions)
        if args.proba:
            arrays.update(probability=probabilities, classes=model.classes_)
        np.savez(args.out, **arrays)
    else:
        header, rows = _prediction_table(predictions, probabilities, model)
        if args.out is None:
            _write_csv(sys.stdout, header, rows)
            return 0
        with open(args.out, "w", newline="") as f:
            _write_csv(f, header, rows)
    print(f"wrote {len(predictions)} predictions to {args.out}")
    return 0


def _prediction_table(predictions, probabilities, model):
    columns = [predictions] if predictions.ndim == 1 else list(predictions.T)
    header = (["prediction"] if predictions.ndim == 1
              else [f"prediction_{i}" for i in range(len(columns))])
    if probabilities is not None:
        classes = (model.classes_ if len(model.classes_) == probabilities.shape[1]
                   else range(probabilities.shape[1]))
        header += [f"probability_{c}" for c in classes]
        columns += list(probabilities.T)
    # numpy scalars print as the shortest text that reads back the same (float32 included)
    rows = zip(*[[str(v) for v in column] for column in columns])
    return header, rows


def _write_csv(f, header, rows):
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)


# -- export ------------------------------------------------------------------------------------------

def export(args):
    notes = []
    model = load_model_file(args.model, notes)
    _print_notes(notes)
    try:
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

        from fastmlp import register_onnx_converters
    except ImportError:
        raise UsageError("exporting to ONNX needs skl2onnx: pip install 'fastmlp[onnx]'") from None
    register_onnx_converters()
    tensor = FloatTensorType if args.dtype == "float32" else DoubleTensorType
    options = {type(model): {"zipmap": False}} if hasattr(model, "predict_proba") else None
    try:
        onx = to_onnx(model, initial_types=[("X", tensor([None, model.n_features_in_]))],
                      options=options)
    except (NotImplementedError, RuntimeError, ValueError) as exc:
        raise UsageError(f"{args.model}: cannot export it to ONNX: {_first_line(exc)}") from None
    try:
        with open(args.onnx, "wb") as f:
            f.write(onx.SerializeToString())
    except OSError as exc:
        raise UsageError(f"{args.onnx}: cannot write it ({exc.strerror or exc})") from None
    outputs = ", ".join(f"'{o.name}'" for o in onx.graph.output)
    print(f"wrote {args.onnx}: input 'X' ({args.dtype}, n x {model.n_features_in_}); "
          f"outputs {outputs}")
    return 0


# -- bench -------------------------------------------------------------------------------------------

def bench(argv):
    import importlib

    try:
        _bench = importlib.import_module("fastmlp._bench")
    except ModuleNotFoundError as exc:
        if exc.name == "fastmlp._bench":
            raise UsageError("the benchmark is not part of this installation "
                             "(fastmlp._bench is missing)") from None
        raise UsageError(f"the benchmark needs {exc.name}: pip install {exc.name}") from None
    return _bench.main(argv) or 0


# -- the parser --------------------------------------------------------------------------------------

def _layer_sizes(text):
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of layer widths like 256,128")
    return sizes


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction in [0, 1)")
    return value


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
        return value
    return parse


def _parser():
    from fastmlp import MLPClassifier

    constraints = MLPClassifier._parameter_constraints
    parser = argparse.ArgumentParser(prog="fastmlp", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("demo", help="train on scikit-learn's digits, beside scikit-learn",
                            description=demo.__doc__)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--hidden", type=_layer_sizes, nargs="+", default=[(100,)],
                   help="hidden layer widths, e.g. 256,128 (default: 100)")
    p.add_argument("--max-iter", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=demo)

    p = commands.add_parser(
        "train", help="train on a CSV, Parquet, NPZ or NPY file and save the model",
        description="Train a perceptron on DATA and save it to MODEL. Classification or "
        "regression is read from the target's values (--task to choose). A progress line per "
        "epoch goes to stderr.")
    p.add_argument("data", metavar="DATA",
                   help="a .csv/.tsv, .parquet, .npz (arrays X and y) or .npy (target last) file")
    p.add_argument("--target", metavar="COLUMN",
                   help="the column to predict (several: a,b); for .npz the target array's name "
                   "(default y), for .npy its column index (default -1)")
    p.add_argument("--out", metavar="MODEL", required=True,
                   help="where to save the model: joblib, or skops' format if it ends in .skops")
    p.add_argument("--task", choices=["classification", "regression"])
    p.add_argument("--hidden", type=_layer_sizes, default=(100,), metavar="WIDTHS",
                   help="hidden layer widths, e.g. 256,128 (default: 100)")
    p.add_argument("--activation", default="relu",
                   choices=sorted(constraints["activation"][0].options))
    p.add_argument("--solver", default="adam", choices=sorted(constraints["solver"][0].options))
    p.add_argument("--epochs", type=_positive(int), default=200, metavar="N",
                   help="most epochs (iterations for lbfgs), default 200")
    p.add_argument("--batch-size", type=_positive(int), metavar="B",
                   help="mini-batch size (default: min(200, rows))")
    p.add_argument("--learning-rate", type=_positive(float), default=0.001, metavar="LR")
    p.add_argument("--alpha", type=float, default=0.0001, help="L2 penalty (default 0.0001)")
    p.add_argument("--validation-fraction", type=_fraction, default=0.1, metavar="F",
                   help="rows held out to score each epoch and stop when the score stops "
                   "improving (default 0.1; 0 trains on all rows until the loss settles)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                   help="float32 (default) trains faster; float64 matches scikit-learn's results")
    p.add_argument("--plot", metavar="PNG", help="draw the loss and validation curves to PNG")
    p.add_argument("--seed", type=int, help="random seed, for the same model every run")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(run=train)

    p = commands.add_parser("predict", help="predict with a saved model",
                            description="Predict with MODEL for the rows of DATA. The model's "
                            "feature columns are picked by name; other columns are ignored.")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("data", metavar="DATA")
    p.add_argument("--out", metavar="FILE",
                   help="a .csv (default: to stdout), .npy or .npz file")
    p.add_argument("--proba", action="store_true", help="add the class probabilities")
    p.set_defaults(run=predict)

    p = commands.add_parser("export", help="export a saved model to ONNX",
                            description="Write MODEL as an ONNX graph: input 'X'; outputs "
                            "'label' and 'probabilities' (classifiers) or 'variable'.")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("onnx", metavar="OUT.onnx")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.set_defaults(run=export)

    commands.add_parser("bench", add_help=False,
                        help="time fastmlp beside scikit-learn (fastmlp bench --help)")
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] == ["bench"]:  # its arguments are the benchmark's own
            return bench(argv[1:])
        args = _parser().parse_args(argv)
        return args.run(args)
    except UsageError as exc:
        print(f"fastmlp: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nfastmlp: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `fastmlp predict ... | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
