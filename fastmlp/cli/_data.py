"""Reading tables and models for the command line, with errors a user can act on.

Design
------
Every mistake a user can make with a file (it is missing, its format is unknown, a column does
not exist or holds text, values are missing, it is no model) raises `UsageError` with one line
that names the file and says what to do; the command line prints it and exits with status 2.
Tables keep their column names (pandas DataFrames), so a model trained from a CSV file knows its
features by name (`feature_names_in_`) and `predict` picks them from any file that has them.

`TableOptions` carries how to read a CSV file (`--sep`, `--no-header`). A header-less table is
read as a matrix, like a .npy file: its target is a column index, its last column by default.
What `df.to_csv(path)` writes first — the row index, under an empty header that pandas reads as
'Unnamed: 0' — is no feature (with rows sorted by class it would even leak the label): a
leading unnamed column that counts 0..n-1 is dropped, with a note, on reading any table.
"""

import os
from dataclasses import dataclass

import numpy as np

from fastmlp.cli._files import looks_like_pickle
from fastmlp.cli._messages import UsageError, first_line

TABLE_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet",
                  ".pq": "parquet", ".npz": "npz", ".npy": "npy"}


def _pandas(what):
    try:
        import pandas
    except ImportError:
        raise UsageError(f"reading {what} needs pandas: pip install 'fastmlp[cli]'") from None
    return pandas


def _format_of(path):
    if not os.path.exists(path):
        raise UsageError(f"{path}: no such file")
    if os.path.isdir(path):
        raise UsageError(f"{path}: is a directory, not a data file")
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in TABLE_SUFFIXES:
        raise UsageError(
            f"{path}: cannot tell the format from the name; use .csv, .parquet, .npz or .npy"
        )
    return TABLE_SUFFIXES[suffix]


def _names(columns, limit=12):
    shown = ", ".join(repr(str(c)) for c in columns[:limit])
    return shown + (f", ... ({len(columns)} in all)" if len(columns) > limit else "")


@dataclass(frozen=True)
class TableOptions:
    """How to read a CSV file: `sep` None means ',' (a tab for .tsv); `header` False means the
    first line is data."""
    sep: str = None
    header: bool = True


def read_frame(path, notes, options=TableOptions()):
    """A CSV or Parquet file as a DataFrame; None for NPZ / NPY files."""
    kind = _format_of(path)
    if kind == "csv":
        pd = _pandas("CSV")
        sep = options.sep or ("\t" if path.lower().endswith(".tsv") else ",")
        try:
            frame = pd.read_csv(path, sep=sep, header=0 if options.header else None)
        except pd.errors.EmptyDataError:
            raise UsageError(f"{path}: the file is empty") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: not a readable CSV file ({first_line(exc)})") from None
        if options.sep is None and frame.shape[1] == 1 and ";" in str(frame.columns[0]):
            raise UsageError(f"{path}: one column named {str(frame.columns[0])[:40]!r}; if its "
                             "values are separated by ';', add --sep ';'")
    elif kind == "parquet":
        pd = _pandas("Parquet")
        try:
            frame = pd.read_parquet(path)
        except ImportError:
            raise UsageError(
                f"{path}: reading Parquet needs pyarrow: pip install 'fastmlp[cli]'"
            ) from None
        except Exception as exc:  # pyarrow's errors for files that are not Parquet
            raise UsageError(f"{path}: not a readable Parquet file ({first_line(exc)})") from None
    else:
        return None
    if len(frame) == 0:
        raise UsageError(f"{path}: no rows (only a header line: "
                         f"{_names([str(c) for c in frame.columns], limit=4)})")
    return _without_index_column(frame, path, notes)


def _without_index_column(frame, path, notes):
    """`frame` less a leading unnamed column that counts its rows 0..n-1 (see Design)."""
    first = frame.columns[0]
    if not (isinstance(first, str) and (first == "" or first.startswith("Unnamed: 0"))):
        return frame
    values = frame[first]
    if (np.issubdtype(values.dtype, np.integer)
            and np.array_equal(values.to_numpy(), np.arange(len(frame)))):
        notes.append(f"{path}: its first column has no name and counts the rows 0..{len(frame) - 1}"
                     " (a row index, as pandas' to_csv writes it): left out")
        return frame.drop(columns=first)
    notes.append(f"{path}: its first column has no name ({first!r}); if it is a row index, "
                 "drop it from the file: it is used as a feature")
    return frame


def _load_numpy(path, kind):
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:
        raise UsageError(f"{path}: not a readable .{kind} file ({first_line(exc)})") from None


def _check_numeric_features(frame, path):
    pd = _pandas("tables")
    text = [c for c in frame.columns if not (pd.api.types.is_numeric_dtype(frame[c])
                                             or pd.api.types.is_bool_dtype(frame[c]))]
    if text:
        example = frame[text[0]].dropna()
        example = f" (e.g. {str(example.iloc[0])!r})" if len(example) else ""
        which = "column" if len(text) == 1 else "columns"
        raise UsageError(
            f"{path}: {which} {_names(text)} not numeric{example}; fastmlp trains on numbers: "
            "encode it (e.g. one-hot) or drop it"
        )
    missing = frame.isna().sum()
    missing = missing[missing > 0]
    if len(missing):
        raise UsageError(
            f"{path}: column {str(missing.index[0])!r} has {missing.iloc[0]} missing value(s)"
            + (f" ({len(missing)} columns have some)" if len(missing) > 1 else "")
            + "; fill or drop them first"
        )


def read_training_data(path, target, notes, options=TableOptions()):
    """X (DataFrame or array), y and the target columns' names (None for one target or none
    known) from DATA; `target` as given with --target (or None)."""
    frame = read_frame(path, notes, options)
    kind = _format_of(path)
    names = None
    if frame is not None and kind == "csv" and not options.header:
        _check_numeric_features(frame, path)
        kind, data = "headerless", frame.to_numpy()
    elif frame is not None:
        if target is None:
            raise UsageError(
                f"{path}: say which column to predict with --target COLUMN (columns: "
                f"{_names(list(frame.columns))})"
            )
        targets = [t.strip() for t in target.split(",")]
        unknown = [t for t in targets if t not in frame.columns]
        if unknown:
            raise UsageError(
                f"{path}: no column {unknown[0]!r}; the columns are {_names(list(frame.columns))}"
            )
        X = frame.drop(columns=targets)
        if X.shape[1] == 0:
            raise UsageError(f"{path}: no feature columns left besides the target")
        _check_numeric_features(X, path)
        y = frame[targets[0]] if len(targets) == 1 else frame[targets]
        if y.isna().any(axis=None):
            raise UsageError(f"{path}: the target {target!r} has missing values; drop those rows")
        return X, y.to_numpy(), (targets if len(targets) > 1 else None)
    if kind == "npz":
        with _load_numpy(path, kind) as arrays:
            keys = list(arrays.keys())
            y_key = target if target is not None else "y"
            if y_key not in keys:
                raise UsageError(
                    f"{path}: no array {y_key!r}; the arrays are {_names(keys)} (name the target "
                    "with --target KEY)"
                )
            others = [k for k in keys if k != y_key]
            X_key = "X" if "X" in others else (others[0] if len(others) == 1 else None)
            if X_key is None:
                raise UsageError(f"{path}: which array holds the features? Name it 'X' "
                                 f"(arrays: {_names(keys)})")
            X, y = arrays[X_key], arrays[y_key]
    else:  # npy or a header-less table: one matrix, the target a column of it
        if kind == "npy":
            data = _load_numpy(path, kind)
        what = "a .npy file" if kind == "npy" else "a table without a header"
        if data.ndim != 2 or data.shape[1] < 2:
            raise UsageError(f"{path}: {what} must hold a 2-D array of features and target "
                             f"(this one has shape {data.shape})")
        try:
            column = -1 if target is None else int(target)
            column = range(data.shape[1])[column]
        except (ValueError, IndexError):
            raise UsageError(f"{path}: --target must be a column index between "
                             f"{-data.shape[1]} and {data.shape[1] - 1} for {what}") from None
        X, y = np.delete(data, column, axis=1), data[:, column]
    _check_array(X, path, "features")
    if y.shape[0] != X.shape[0]:
        raise UsageError(f"{path}: {X.shape[0]} rows of features but {y.shape[0]} targets")
    return X, y, names


def _check_array(X, path, what):
    if X.ndim != 2:
        raise UsageError(f"{path}: the {what} must be a 2-D array (shape {X.shape})")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise UsageError(f"{path}: the {what} are not numbers (dtype {X.dtype})")
    if np.issubdtype(X.dtype, np.floating) and np.isnan(X).any():
        raise UsageError(f"{path}: the {what} have missing values (NaN); fill or drop them first")


def read_prediction_data(path, model, notes, options=TableOptions()):
    """The features `model` takes, from DATA (extra columns, e.g. the target, are left out)."""
    frame = read_frame(path, notes, options)
    n_features = getattr(model, "n_features_in_", None)
    names = getattr(model, "feature_names_in_", None)
    kind = _format_of(path)
    if frame is not None and kind == "csv" and not options.header:
        _check_numeric_features(frame, path)
        kind = "headerless"
    elif frame is not None:
        if names is not None:
            missing = [n for n in names if n not in frame.columns]
            if missing:
                raise UsageError(
                    f"{path}: no column {missing[0]!r}, which the model was trained on"
                    + (f" ({len(missing)} missing)" if len(missing) > 1 else "")
                )
            X = frame[list(names)]
        else:
            X = frame
            if n_features is not None and X.shape[1] != n_features:
                raise UsageError(f"{path}: {X.shape[1]} columns, the model takes {n_features}")
        _check_numeric_features(X, path)
        return X
    if kind == "npz":
        with _load_numpy(path, kind) as arrays:
            keys = list(arrays.keys())
            if "X" not in keys and len(keys) != 1:
                raise UsageError(f"{path}: which array holds the features? Name it 'X' "
                                 f"(arrays: {_names(keys)})")
            X = arrays["X" if "X" in keys else keys[0]]
    else:
        X = _load_numpy(path, kind) if kind == "npy" else frame.to_numpy()
        if X.ndim == 2 and n_features is not None and X.shape[1] == n_features + 1:
            notes.append(f"{path} has one column more than the model's {n_features} features: "
                         "its last one (the target, as 'train' reads it) is left out")
            X = X[:, :-1]
    _check_array(X, path, "features")
    if n_features is not None and X.shape[1] != n_features:
        raise UsageError(f"{path}: {X.shape[1]} columns, the model takes {n_features}")
    return X


NOT_A_MODEL = "not a model file (fastmlp saves models with joblib, or in skops' format as .skops)"


def load_model_file(path, notes, trust_pickle=False):
    """A fitted model from a .skops file, with fastmlp's types trusted, or from a joblib / pickle
    file if `trust_pickle` (--trust-pickle): loading a pickle runs whatever code it holds."""
    import warnings

    from fastmlp._persistence import load_model

    if not os.path.exists(path):
        raise UsageError(f"{path}: no such file")
    if os.path.isdir(path):
        raise UsageError(f"{path}: is a directory, not a model file")
    if not path.endswith(".skops"):
        if not looks_like_pickle(path):
            raise UsageError(f"{path}: {NOT_A_MODEL}")
        if not trust_pickle:
            raise UsageError(f"{path}: a joblib/pickle file runs any code it holds when loaded; "
                             "if you trust where it came from, add --trust-pickle (models saved "
                             "as .skops load without this risk)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = load_model(path)
        except ImportError as exc:
            raise UsageError(f"{path}: loading it needs {exc.name}: pip install "
                             "'fastmlp[skops]'") from None
        except Exception as exc:
            if type(exc).__name__ == "UntrustedTypesFoundException":  # skops
                raise UsageError(f"{path}: holds types fastmlp does not trust ({first_line(exc)}"
                                 "); check them, then load it in Python with skops.io.load(path, "
                                 "trusted=[...])") from None
            # What joblib says of a file that is no pickle ("invalid load key", a stray
            # int() of its bytes...) would only confuse: say what the file should be.
            raise UsageError(f"{path}: {NOT_A_MODEL}") from None
    notes.extend(str(w.message).splitlines()[0] for w in caught)
    if not hasattr(model, "predict"):
        raise UsageError(f"{path}: holds a {type(model).__name__}, not a model")
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(model)
    except Exception:
        raise UsageError(f"{path}: holds an unfitted {type(model).__name__}") from None
    return model
