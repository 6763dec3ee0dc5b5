"""`fastmlp predict`: a saved model's predictions (and probabilities) for a data file.

The output file is never one of the inputs and is written atomically (_files); a joblib/pickle
model is loaded only with --trust-pickle (_data.load_model_file). Several targets are named after
the columns the model was trained to predict (`target_names_`, which `train` sets).
"""

import csv
import os
import sys
import warnings

from fastmlp.cli._data import TableOptions, load_model_file, read_prediction_data
from fastmlp.cli._files import check_not_an_input, write_atomically
from fastmlp.cli._messages import UsageError, print_notes


def predict(args):
    import numpy as np

    notes = []
    out_kind = None if args.out is None else os.path.splitext(args.out)[1].lower()
    if out_kind not in (None, ".csv", ".npy", ".npz"):
        raise UsageError(f"{args.out}: write predictions to a .csv, .npy or .npz file")
    check_not_an_input(args.out, [args.model, args.data], "predictions")
    model = load_model_file(args.model, notes, args.trust_pickle)
    if args.proba and not hasattr(model, "predict_proba"):
        raise UsageError(f"--proba needs a classifier; {args.model} holds a "
                         f"{type(_final_step(model)).__name__}")
    if out_kind == ".npy" and args.proba:
        raise UsageError(f"{args.out}: a .npy file holds one array; with --proba write .csv "
                         "or .npz")
    X = read_prediction_data(args.data, model, notes, TableOptions(args.sep, not args.no_header))
    print_notes(notes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. feature names for a model fitted on an array
        predictions = model.predict(X)
        probabilities = model.predict_proba(X) if args.proba else None
    if out_kind == ".npy":
        write_atomically(args.out, lambda path: np.save(path, predictions))
    elif out_kind == ".npz":
        arrays = dict(prediction=predictions)
        if args.proba:
            arrays.update(probability=probabilities, classes=model.classes_)
        write_atomically(args.out, lambda path: np.savez(path, **arrays))
    else:
        header, rows = _prediction_table(predictions, probabilities, model)
        if args.out is None:
            _write_csv(sys.stdout, header, rows)
            return 0

        def write(path):
            with open(path, "w", newline="") as f:
                _write_csv(f, header, rows)
        write_atomically(args.out, write)
    print(f"wrote {len(predictions)} predictions to {args.out}")
    return 0


def _final_step(model):
    return model[-1] if hasattr(model, "steps") else model


def _prediction_table(predictions, probabilities, model):
    columns = [predictions] if predictions.ndim == 1 else list(predictions.T)
    targets = getattr(_final_step(model), "target_names_", None)
    if targets is None or len(targets) != len(columns):
        targets = range(len(columns))
    header = (["prediction"] if predictions.ndim == 1
              else [f"prediction_{name}" for name in targets])
    if probabilities is not None:
        classes = (model.classes_ if len(model.classes_) == probabilities.shape[1]
                   else range(probabilities.shape[1]))
        if predictions.ndim == 2 and len(targets) == probabilities.shape[1]:
            classes = targets  # several 0/1 labels: one probability per label
        header += [f"probability_{c}" for c in classes]
        columns += list(probabilities.T)
    # numpy scalars print as the shortest text that reads back the same (float32 included)
    rows = zip(*[[str(v) for v in column] for column in columns])
    return header, rows


def _write_csv(f, header, rows):
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
