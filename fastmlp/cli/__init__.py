"""The `fastmlp` command line (also `python -m fastmlp`): `main` and its parser.

Design
------
One subcommand per job, one module per subcommand: `demo` (the README's first command, _demo),
`train` (_train), `predict` (_predict), `export` (ONNX, _export) and `bench` (the side-by-side
benchmark, fastmlp/bench/, loaded only when asked for). Reading data and model files is
_data's; speaking to the user is _messages'. What a user gets wrong — a missing file, an unknown
column, a column of text, a file that is no model, a missing optional package — is a
`UsageError`: one line on stderr, ``fastmlp: error: ...``, and exit status 2, as argparse does
for bad options; never a traceback. Results go to stdout, progress and notes to stderr, so
`fastmlp predict m.joblib x.csv > out.csv` works. Heavy imports (pandas, matplotlib, skl2onnx)
happen inside the command that needs them, and what a command will need at its end (matplotlib
for --plot, skops for a .skops file, a writable directory) is checked before training starts,
not after. No command writes over its inputs, and every file is written atomically (_files).

The same option has the same spelling in every command: `--epochs` (with scikit-learn's
`--max-iter` as an alias), `--hidden` as comma-separated widths or several words
(`--hidden 256,128` or `--hidden 256 128`), `--sep` and `--no-header` for tables.
"""

import argparse
import os
import sys

from fastmlp.cli._demo import demo
from fastmlp.cli._export import export
from fastmlp.cli._messages import UsageError
from fastmlp.cli._predict import predict
from fastmlp.cli._train import train

DESCRIPTION = ("Multilayer perceptrons on the CPU, fast: scikit-learn's MLPClassifier and "
               "MLPRegressor with a compiled engine.")


def bench(argv):
    import importlib

    try:
        _bench = importlib.import_module("fastmlp.bench")
    except ModuleNotFoundError as exc:
        if exc.name == "fastmlp.bench":
            raise UsageError("the benchmark is not part of this installation "
                             "(fastmlp.bench is missing)") from None
        raise UsageError(f"the benchmark needs {exc.name}: pip install {exc.name}") from None
    return _bench.main(argv, prog="fastmlp bench") or 0


# -- the parser --------------------------------------------------------------------------------------

def _layer_sizes(text):
    try:  # every part a width: "10,,5" is a typo, not two layers
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of layer widths like 256,128")
    return sizes


class _Widths(argparse.Action):
    """--hidden 256,128 or --hidden 256 128 (or both forms mixed): one tuple of widths."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, tuple(w for part in values for w in part))


def _add_network_options(p):
    p.add_argument("--hidden", type=_layer_sizes, nargs="+", action=_Widths, default=(100,),
                   metavar="WIDTHS", help="hidden layer widths, e.g. 256,128 (default: 100)")
    p.add_argument("--epochs", "--max-iter", dest="epochs", type=_positive(int), default=200,
                   metavar="N", help="most epochs (iterations for lbfgs), default 200; "
                   "--max-iter is the same option")


def _add_table_options(p):
    p.add_argument("--sep", metavar="CHAR",
                   help="the CSV file's separator (default ',', a tab for .tsv), e.g. ';'")
    p.add_argument("--no-header", action="store_true",
                   help="the CSV file's first line is data: columns are numbered, and the "
                   "target is a column index (default: the last column)")


TRUST_PICKLE_HELP = ("load a joblib/pickle model: loading one runs any code it holds, so only "
                     "for files you trust (.skops models need no such trust)")


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
    from fastmlp._multilayer_perceptron import MLPClassifier

    constraints = MLPClassifier._parameter_constraints
    parser = argparse.ArgumentParser(prog="fastmlp", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("demo", help="train on scikit-learn's digits, beside scikit-learn",
                            description=demo.__doc__)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    _add_network_options(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vanishing", action="store_true",
                   help="the lectures' vanishing gradient instead: deep networks (default 8 "
                   "layers of 32 units, 30 epochs) per activation, accuracy and first/last "
                   "layer gradient norm")
    p.add_argument("--plot", metavar="FILE",
                   help="with --vanishing: draw each run's gradient norms to a new FILE")
    # (None: each demo's own default, 100 units and 200 epochs, or the deep network's)
    p.set_defaults(run=demo, hidden=None, epochs=None)

    p = commands.add_parser(
        "train", help="train on a CSV, Parquet, NPZ or NPY file and save the model",
        description="Train a perceptron on DATA and save it to MODEL. Classification or "
        "regression is read from the target's values (--task to choose). A progress line per "
        "epoch goes to stderr. The features are standardised inside the saved model.",
        epilog="Save models as NAME.skops (pip install 'fastmlp[skops]'): such a file loads "
        "without running code. Any other name is a joblib file, a pickle, which `predict` loads "
        "only with --trust-pickle.")
    p.add_argument("data", metavar="DATA",
                   help="a .csv/.tsv, .parquet, .npz (arrays X and y) or .npy (target last) file")
    p.add_argument("--target", metavar="COLUMN",
                   help="the column to predict (several: a,b); for .npz the target array's name "
                   "(default y), for .npy its column index (default -1)")
    p.add_argument("--out", metavar="MODEL", required=True,
                   help="where to save the model: NAME.skops (recommended: skops' format, loads "
                   "without running code), or joblib's format (a pickle) for any other name")
    p.add_argument("--force", action="store_true",
                   help="replace MODEL even if it exists and is not a fastmlp model")
    _add_table_options(p)
    p.add_argument("--task", choices=["classification", "regression"])
    _add_network_options(p)
    p.add_argument("--activation", default="relu",
                   choices=sorted(constraints["activation"][0].options))
    p.add_argument("--solver", default="adam", choices=sorted(constraints["solver"][0].options))
    p.add_argument("--no-scale", action="store_true",
                   help="use the features as they are (default: standardise them inside the "
                   "saved model, which predict then applies to new rows)")
    p.add_argument("--batch-size", type=_positive(int), metavar="B",
                   help="mini-batch size (default: min(200, rows))")
    p.add_argument("--learning-rate", type=_positive(float), default=0.001, metavar="LR")
    p.add_argument("--alpha", type=float, default=0.0001, help="L2 penalty (default 0.0001)")
    p.add_argument("--validation-fraction", type=_fraction, metavar="F",
                   help="rows held out to score each epoch and stop when the score stops "
                   "improving (default 0.1, or none when that is under 100 rows; 0 trains on "
                   "all rows until the loss settles)")
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
    p.add_argument("--trust-pickle", action="store_true", help=TRUST_PICKLE_HELP)
    _add_table_options(p)
    p.set_defaults(run=predict)

    p = commands.add_parser("export", help="export a saved model to ONNX",
                            description="Write MODEL as an ONNX graph: input 'X'; outputs "
                            "'label' and 'probabilities' (classifiers) or 'variable'.")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("onnx", metavar="OUT.onnx")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--trust-pickle", action="store_true", help=TRUST_PICKLE_HELP)
    p.set_defaults(run=export)

    commands.add_parser("bench", add_help=False,
                        help="time fastmlp beside scikit-learn (fastmlp bench --help)")
    return parser


def _check_environment():
    """A bad FASTMLP_SCHEDULE_CPUS is the user's to mend: one line, as for bad arguments, not a
    traceback from the first fit."""
    from fastmlp._runtime import schedule_cpus
    try:
        schedule_cpus()
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        _check_environment()
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
