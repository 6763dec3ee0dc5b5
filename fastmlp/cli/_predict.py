"""`fastmlp predict`: a saved model's predictions (and probabilities) for a data file."""

import csv
import os
import sys
import warnings

from fastmlp.cli._data import load_model_file, read_prediction_data
from fastmlp.cli._messages import UsageError, print_notes


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
    print_notes(notes)
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
