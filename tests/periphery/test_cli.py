"""The command line as a user meets it: demo, train from a file (with a plot), predict to a file,
export, bench; and every mistake answered with one line and exit status 2, never a traceback."""
import os
import subprocess
import sys
import types

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits, make_regression
from sklearn.preprocessing import StandardScaler

from fastmlp import MLPClassifier, MLPRegressor
from fastmlp.cli import main

pd = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A small digits table (CSV, NPZ, NPY), a regression table, and a table with text."""
    folder = tmp_path_factory.mktemp("data")
    X, y = load_digits(return_X_y=True)
    X, y = X[:300] / 16.0, y[:300]
    frame = pd.DataFrame(X, columns=[f"p{i}" for i in range(64)]).assign(label=y)
    frame.to_csv(folder / "digits.csv", index=False)
    frame.drop(columns="label").iloc[:40].to_csv(folder / "new.csv", index=False)
    frame.assign(city=np.where(y % 2, "Paris", "Rome")).to_csv(folder / "text.csv", index=False)
    np.savez(folder / "digits.npz", X=X, y=y)
    np.save(folder / "digits.npy", np.column_stack([X, y]))
    Xr, yr = make_regression(n_samples=200, n_features=4, noise=0.5, random_state=0)
    pd.DataFrame(Xr, columns=list("abcd")).assign(price=yr / 100).to_csv(
        folder / "prices.csv", index=False)
    (folder / "notes.txt").write_text("not a table, not a model\n")
    return folder


def run(capsys, *argv):
    """main() in-process: (exit status, stdout, stderr)."""
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(status, err, *words):
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastmlp: error: "), err
    for word in words:
        assert word in lines[0]
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """A classifier trained by the CLI from the CSV file."""
    model = tmp_path_factory.mktemp("model") / "digits.joblib"
    assert main(["train", str(data / "digits.csv"), "--target", "label", "--out", str(model),
                 "--hidden", "32,16", "--epochs", "15", "--seed", "0", "--quiet"]) == 0
    return model


def test_demo_runs_as_the_readme_says():
    result = subprocess.run([sys.executable, "-m", "fastmlp", "demo", "--max-iter", "3"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "fastmlp" in result.stdout and "scikit-learn" in result.stdout
    assert result.stdout.count("accuracy") == 2 and "faster" in result.stdout


def test_train_from_csv_with_a_plot(data, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    model, png = tmp_path / "model.joblib", tmp_path / "curve.png"
    status, out, err = run(capsys, "train", data / "digits.csv", "--target", "label", "--out",
                           model, "--hidden", "32,16", "--epochs", "6", "--seed", "0",
                           "--validation-fraction", "0.1", "--plot", png)
    assert status == 0, err
    assert "300 rows x 64 features; target: 10 classes (classification" in out
    assert f"wrote {model}" in out and f"wrote {png}" in out
    if hasattr(MLPClassifier(), "set_callbacks"):  # scikit-learn >= 1.9; before, no progress line
        assert "epoch 1/6 [" in err and "validation" in err  # the progress line, on stderr
    pipeline = joblib.load(model)  # standardised features, then the perceptron
    assert isinstance(pipeline[0], StandardScaler)
    clf = pipeline[-1]
    assert isinstance(clf, MLPClassifier) and clf.hidden_layer_sizes == (32, 16)
    assert list(pipeline.feature_names_in_) == [f"p{i}" for i in range(64)]
    assert clf.early_stopping and clf.max_iter == 6 and clf.random_state == 0
    assert clf._theta.dtype == np.float32
    assert not hasattr(clf, "_skl_callbacks")  # the progress line is not saved with the model
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_same_seed_trains_the_same_model(data, tmp_path, trained):
    again = tmp_path / "again.joblib"
    assert main(["train", str(data / "digits.csv"), "--target", "label", "--out", str(again),
                 "--hidden", "32,16", "--epochs", "15", "--seed", "0", "--quiet"]) == 0
    np.testing.assert_array_equal(joblib.load(again)[-1]._theta, joblib.load(trained)[-1]._theta)


def test_predict_to_a_csv_file_with_probabilities(data, trained, tmp_path, capsys):
    out_file = tmp_path / "predictions.csv"
    status, out, err = run(capsys, "predict", trained, data / "new.csv", "--out", out_file,
                           "--proba", "--trust-pickle")
    assert status == 0, err
    assert out.strip() == f"wrote 40 predictions to {out_file}"
    table = pd.read_csv(out_file)
    assert list(table.columns) == ["prediction"] + [f"probability_{c}" for c in range(10)]
    clf = joblib.load(trained)
    X = pd.read_csv(data / "new.csv")
    np.testing.assert_array_equal(table["prediction"], clf.predict(X))
    np.testing.assert_allclose(table.iloc[:, 1:], clf.predict_proba(X), rtol=1e-6)


def test_predict_picks_the_models_columns_and_writes_stdout_npy_npz(data, trained, tmp_path,
                                                                    capsys):
    clf = joblib.load(trained)
    expected = clf.predict(pd.read_csv(data / "digits.csv").drop(columns="label"))
    # the training file itself: its target column (and any other extra column) is left out
    status, out, _ = run(capsys, "predict", trained, data / "text.csv", "--trust-pickle")
    assert status == 0
    assert out.splitlines()[0] == "prediction"
    np.testing.assert_array_equal(np.array(out.split()[1:], dtype=int), expected)
    assert run(capsys, "predict", trained, data / "digits.csv", "--out", tmp_path / "p.npy",
               "--trust-pickle")[0] == 0
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), expected)
    assert run(capsys, "predict", trained, data / "digits.csv", "--proba", "--out",
               tmp_path / "p.npz", "--trust-pickle")[0] == 0
    with np.load(tmp_path / "p.npz") as saved:
        np.testing.assert_array_equal(saved["prediction"], expected)
        assert saved["probability"].shape == (300, 10)
        np.testing.assert_array_equal(saved["classes"], np.arange(10))


@pytest.mark.parametrize("name, extra", [("digits.npz", []), ("digits.npy", []),
                                         ("digits.npy", ["--target", "64"])])
def test_train_and_predict_from_numpy_files(data, tmp_path, capsys, name, extra):
    model = tmp_path / "m.joblib"
    status, out, err = run(capsys, "train", data / name, "--out", model, "--epochs", "3",
                           "--quiet", *extra)
    assert status == 0, err
    assert "300 rows x 64 features; target: 10 classes" in out
    status, out, err = run(capsys, "predict", model, data / name, "--trust-pickle")
    assert status == 0, err
    assert len(out.splitlines()) == 301
    if name.endswith(".npy"):  # the target column is left out, and the user is told
        assert "last one (the target" in err


def test_regression_is_read_from_the_target_and_can_be_forced(data, tmp_path, capsys):
    model = tmp_path / "reg.joblib"
    status, out, _ = run(capsys, "train", data / "prices.csv", "--target", "price", "--out",
                         model, "--epochs", "5", "--quiet")
    assert status == 0 and "target: a quantity (regression)" in out and "R²" in out
    assert isinstance(joblib.load(model)[-1], MLPRegressor)
    # whole numbers: classes unless told otherwise
    status, out, _ = run(capsys, "train", data / "digits.csv", "--target", "label", "--out",
                         model, "--epochs", "2", "--quiet", "--task", "regression")
    assert status == 0 and isinstance(joblib.load(model)[-1], MLPRegressor)
    status, _, err = run(capsys, "predict", model, data / "new.csv", "--proba", "--trust-pickle")
    assert_one_line_error(status, err, "--proba needs a classifier")
    status, _, err = run(capsys, "train", data / "prices.csv", "--target", "price", "--out",
                         model, "--task", "classification")
    assert_one_line_error(status, err, "fractional numbers", "--task regression")


def test_skops_model_file(data, tmp_path, capsys):
    pytest.importorskip("skops")
    model = tmp_path / "m.skops"
    status, out, err = run(capsys, "train", data / "digits.csv", "--target", "label", "--out",
                           model, "--epochs", "3", "--quiet")
    assert status == 0, err
    assert "skops.io.load(path, trusted=fastmlp.SKOPS_TRUSTED_TYPES)" in out
    status, out, err = run(capsys, "predict", model, data / "new.csv")
    assert status == 0, err
    assert len(out.splitlines()) == 41


def test_export_to_onnx(trained, data, tmp_path, capsys):
    rt = pytest.importorskip("onnxruntime")
    pytest.importorskip("skl2onnx")
    onnx_file = tmp_path / "m.onnx"
    status, out, err = run(capsys, "export", trained, onnx_file, "--trust-pickle")
    assert status == 0, err
    assert "outputs 'label', 'probabilities'" in out
    session = rt.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    X = pd.read_csv(data / "new.csv")
    labels, probabilities = session.run(None, {"X": X.to_numpy(np.float32)})
    clf = joblib.load(trained)
    np.testing.assert_array_equal(labels, clf.predict(X))
    np.testing.assert_allclose(probabilities, clf.predict_proba(X), rtol=1e-4, atol=1e-6)


def test_bench_hands_its_arguments_to_the_benchmark(monkeypatch, capsys):
    seen = []
    fake = types.SimpleNamespace(main=lambda argv, prog: seen.append((argv, prog)) or 0)
    monkeypatch.setitem(sys.modules, "fastmlp.bench", fake)
    assert run(capsys, "bench", "--quick", "--out", "x.json")[0] == 0
    assert seen == [(["--quick", "--out", "x.json"], "fastmlp bench")]


def test_bench_help_names_the_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: fastmlp bench")


def test_bench_missing_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "fastmlp.bench", None)
    status, _, err = run(capsys, "bench")
    assert_one_line_error(status, err, "benchmark is not part of this installation")


# -- mistakes ----------------------------------------------------------------------------------------

def test_missing_file_in_a_real_terminal_session(tmp_path):
    """As a user runs it: one line on stderr, status 2, nothing on stdout."""
    result = subprocess.run([sys.executable, "-m", "fastmlp", "train", "missing.csv", "--target",
                             "y", "--out", "m.joblib"], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "fastmlp: error: missing.csv: no such file\n"


def test_unknown_column(data, tmp_path, capsys):
    status, _, err = run(capsys, "train", data / "digits.csv", "--target", "digit", "--out",
                         tmp_path / "m.joblib")
    assert_one_line_error(status, err, "no column 'digit'", "'p0', 'p1'", "(65 in all)")


def test_non_numeric_column(data, tmp_path, capsys):
    status, _, err = run(capsys, "train", data / "text.csv", "--target", "label", "--out",
                         tmp_path / "m.joblib")
    assert_one_line_error(status, err, "column 'city' not numeric", "'Rome'")


def test_a_file_that_is_not_a_model(data, capsys):
    for not_a_model in (data / "notes.txt", data / "digits.csv", data / "digits.npz"):
        status, _, err = run(capsys, "predict", not_a_model, data / "new.csv")
        assert_one_line_error(status, err, "not a model file")


def test_a_model_that_lacks_a_column(data, trained, capsys):
    status, _, err = run(capsys, "predict", trained, data / "prices.csv", "--trust-pickle")
    assert_one_line_error(status, err, "no column 'p0', which the model was trained on")


@pytest.mark.parametrize("argv, words", [
    (["train", "{d}/digits.xlsx", "--target", "y", "--out", "{t}/m.joblib"], ["no such file"]),
    (["train", "{d}/notes.txt", "--target", "y", "--out", "{t}/m.joblib"], ["no rows"]),
    (["train", "{d}/digits.csv", "--out", "{t}/m.joblib"], ["--target COLUMN"]),
    (["train", "{d}/digits.npz", "--target", "z", "--out", "{t}/m.joblib"], ["no array 'z'"]),
    (["train", "{d}/digits.npy", "--target", "99", "--out", "{t}/m.joblib"], ["column index"]),
    (["train", "{d}/digits.csv", "--target", "label", "--out", "{t}/nowhere/m.joblib"],
     ["does not exist"]),
    (["train", "{d}/digits.csv", "--target", "label", "--out", "{t}/m.joblib", "--solver",
      "lbfgs", "--plot", "{t}/c.png"], ["--solver lbfgs does not record"]),
    (["predict", "{t}/none.joblib", "{d}/new.csv"], ["no such file"]),
    (["predict", "{d}/../model/digits.joblib", "{d}/new.csv", "--out", "{t}/p.txt",
      "--trust-pickle"],
     [".csv, .npy or .npz"]),
])
def test_other_mistakes_are_one_line(data, tmp_path, capsys, trained, argv, words):
    argv = [a.format(d=data, t=tmp_path).replace(f"{data}/../model", str(trained.parent))
            for a in argv]
    status, _, err = run(capsys, *argv)
    assert_one_line_error(status, err, *words)


def test_plot_without_matplotlib_fails_before_training(data, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    status, out, err = run(capsys, "train", data / "digits.csv", "--target", "label", "--out",
                           tmp_path / "m.joblib", "--plot", tmp_path / "c.png")
    assert_one_line_error(status, err, "pip install 'fastmlp[plot]'")
    assert out == "" and not os.path.exists(tmp_path / "m.joblib")


def test_a_bad_schedule_class_is_a_one_line_error(data, tmp_path, capsys, monkeypatch):
    from fastmlp import _runtime
    monkeypatch.setenv(_runtime.SCHEDULE_CPUS_VARIABLE, "12")
    monkeypatch.setattr(_runtime, "_schedule", None)  # as in a new process
    model = tmp_path / "m.joblib"
    status = main(["train", str(data / "digits.csv"), "--target", "label", "--out", str(model)])
    out, err = capsys.readouterr()
    assert_one_line_error(status, err, "FASTMLP_SCHEDULE_CPUS must be one of 2, 4, 8, 16",
                          "'12'")
    assert out == "" and not os.path.exists(model)


def test_bad_options_are_argparse_errors(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "x.csv", "--out", "m.joblib", "--hidden", "0,3"])
    assert exit_.value.code == 2
    assert "is not a list of layer widths like 256,128" in capsys.readouterr().err


def test_train_and_predict_from_parquet(data, tmp_path, capsys):
    pytest.importorskip("pyarrow")
    table = tmp_path / "digits.parquet"
    pd.read_csv(data / "digits.csv").to_parquet(table)
    model = tmp_path / "m.joblib"
    status, out, err = run(capsys, "train", table, "--target", "label", "--out", model,
                           "--epochs", "3", "--quiet")
    assert status == 0, err
    assert "300 rows x 64 features; target: 10 classes" in out
    assert run(capsys, "predict", model, table, "--trust-pickle")[0] == 0


def test_a_file_that_is_not_parquet(data, tmp_path, capsys):
    pytest.importorskip("pyarrow")
    fake = tmp_path / "fake.parquet"
    fake.write_text("a,b\n1,2\n")
    status, _, err = run(capsys, "train", fake, "--target", "a", "--out", tmp_path / "m.joblib")
    assert_one_line_error(status, err, "not a readable Parquet file")
