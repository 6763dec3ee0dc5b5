"""How good `fastmlp train`'s defaults are on small tables: held-out scores through the CLI.

Each table is written as a user would have it (raw values, a header, no index), split 75/25
(stratified for classes, scikit-learn's train_test_split, random_state=0) into train.csv and
test.csv; `fastmlp train train.csv --target T --out m.skops --seed S` with no other option, then
`fastmlp predict m.skops test.csv`, and the predictions are scored against test.csv's target:
accuracy for iris and the digits, R² for diabetes (its raw table, load_diabetes(scaled=False)).
Prints the mean and range over seeds 0-4.

    python benchmarks/cli_defaults.py            # this checkout's CLI
    python benchmarks/cli_defaults.py --old-cli  # the CLI before issue 15 (joblib files)
"""

import contextlib
import io
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_diabetes, load_digits, load_iris
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split

from fastmlp.cli import main

SEEDS = range(5)


def tables():
    iris = load_iris(as_frame=True).frame
    yield "iris", iris, "target", accuracy_score, True
    diabetes = load_diabetes(as_frame=True, scaled=False).frame
    yield "diabetes", diabetes, "target", r2_score, False
    digits = load_digits(as_frame=True).frame
    yield "digits", digits, "target", accuracy_score, True


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    if status != 0:
        raise SystemExit(f"fastmlp {' '.join(argv)}: status {status}\n{err.getvalue()}")
    return out.getvalue()


def main_(old_cli):
    model_name = "m.joblib" if old_cli else "m.skops"  # .skops: no --trust-pickle needed
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for name, frame, target, metric, stratify in tables():
            train, test = train_test_split(frame, test_size=0.25, random_state=0,
                                           stratify=frame[target] if stratify else None)
            train.to_csv(folder / "train.csv", index=False)
            test.to_csv(folder / "test.csv", index=False)
            scores = []
            for seed in SEEDS:
                model = str(folder / model_name)
                run(["train", str(folder / "train.csv"), "--target", target, "--out", model,
                     "--seed", str(seed), "--quiet"])
                out = run(["predict", model, str(folder / "test.csv")])
                predicted = np.array(out.split()[1:], dtype=float)
                scores.append(metric(test[target].to_numpy(), predicted))
            print(f"{name:9s} {len(train)}/{len(test)} rows  {metric.__name__:15s} "
                  f"mean {np.mean(scores):.3f}  (min {min(scores):.3f}, max {max(scores):.3f})")


if __name__ == "__main__":
    main_("--old-cli" in sys.argv[1:])
