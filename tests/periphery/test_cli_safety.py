"""The command line never harms data: it does not write over its inputs or over files that are
not models, writes atomically (an interrupted save leaves the old file), loads pickles only when
trusted, and exits 130 after Ctrl-C with the model so far saved."""
import os

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits

from fastmlp import MLPClassifier
from fastmlp.cli import main

pd = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    X, y = load_digits(return_X_y=True)
    frame = pd.DataFrame(X[:200], columns=[f"p{i}" for i in range(64)]).assign(label=y[:200])
    frame.to_csv(folder / "digits.csv", index=False)
    (folder / "notes.txt").write_text("my notes\n")
    return folder


@pytest.fixture(scope="module")
def model(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "digits.joblib"
    assert main(["train", str(data / "digits.csv"), "--target", "label", "--out", str(path),
                 "--epochs", "3", "--quiet"]) == 0
    return path


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def one_line_error(status, err, *words):
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("fastmlp: error: "), err
    for word in words:
        assert word in lines[0], lines[0]


def train_to(data, out, *extra):
    return ["train", data / "digits.csv", "--target", "label", "--out", out, "--epochs", "2",
            "--quiet", *extra]


@pytest.mark.parametrize("alias", ["same", "dot", "symlink", "hardlink"])
def test_out_is_never_the_training_table(data, tmp_path, capsys, alias):
    table = tmp_path / "digits.csv"
    table.write_bytes((data / "digits.csv").read_bytes())
    before = table.read_bytes()
    out = {"same": table, "dot": f"{tmp_path}/./digits.csv", "symlink": tmp_path / "link.csv",
           "hardlink": tmp_path / "hard.csv"}[alias]
    if alias == "symlink":
        os.symlink(table, out)
    elif alias == "hardlink":
        os.link(table, out)
    status, _, err = run(capsys, "train", table, "--target", "label", "--out", out, "--force")
    one_line_error(status, err, "is this command's input")
    assert table.read_bytes() == before


def test_predictions_and_onnx_are_never_an_input(data, model, capsys):
    status, _, err = run(capsys, "predict", model, data / "digits.csv", "--trust-pickle",
                         "--out", data / "digits.csv")
    one_line_error(status, err, "is this command's input")
    status, _, err = run(capsys, "export", model, model, "--trust-pickle")
    one_line_error(status, err, "is this command's input")
    assert joblib.load(model)  # still a model


def test_a_file_that_is_no_model_is_replaced_only_with_force(data, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    status, _, err = run(capsys, *train_to(data, notes))
    one_line_error(status, err, "exists and is not a fastmlp model", "--force")
    assert notes.read_text() == "my notes\n"
    status, _, err = run(capsys, *train_to(data, notes, "--force"))
    assert status == 0, err
    # a model fastmlp wrote is replaced without asking, in either format
    for name in ("m.joblib", "m.skops"):
        if name.endswith(".skops"):
            pytest.importorskip("skops")
        assert run(capsys, *train_to(data, tmp_path / name))[0] == 0
        assert run(capsys, *train_to(data, tmp_path / name))[0] == 0


def test_an_unusual_model_name_says_where_and_how_it_is_written(data, tmp_path, capsys):
    status, out, err = run(capsys, *train_to(data, tmp_path / "model.dat"))
    assert status == 0
    assert f"written in joblib's format (a pickle) to {tmp_path / 'model.dat'}" in err


def test_an_interrupted_save_leaves_the_old_model(data, tmp_path, capsys, monkeypatch):
    path = tmp_path / "m.joblib"
    assert run(capsys, *train_to(data, path))[0] == 0
    good = path.read_bytes()

    def half_then_ctrl_c(model, target):
        with open(target, "wb") as f:
            f.write(b"\x80\x05half a model")
        raise KeyboardInterrupt

    monkeypatch.setattr("fastmlp._persistence.save_model", half_then_ctrl_c)
    status, _, err = run(capsys, *train_to(data, path))
    assert status == 130 and "interrupted" in err
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ["m.joblib"]  # no temporary file left behind


def test_an_interrupted_prediction_file_leaves_the_old_one(data, model, tmp_path, capsys,
                                                           monkeypatch):
    out = tmp_path / "p.csv"
    out.write_text("prediction\n1\n")

    def half_then_ctrl_c(f, header, rows):
        f.write("predic")
        raise KeyboardInterrupt

    monkeypatch.setattr("fastmlp.cli._predict._write_csv", half_then_ctrl_c)
    status, _, _ = run(capsys, "predict", model, data / "digits.csv", "--trust-pickle",
                       "--out", out)
    assert status == 130 and out.read_text() == "prediction\n1\n"
    assert os.listdir(tmp_path) == ["p.csv"]


def test_a_pickle_is_loaded_only_when_trusted(data, model, tmp_path, capsys):
    for command in (["predict", model, data / "digits.csv"],
                    ["export", model, tmp_path / "m.onnx"]):
        status, _, err = run(capsys, *command)
        one_line_error(status, err, "runs any code it holds", "--trust-pickle", ".skops")
    assert not (tmp_path / "m.onnx").exists()


def test_a_skops_model_loads_without_trust(data, tmp_path, capsys):
    pytest.importorskip("skops")
    path = tmp_path / "m.skops"
    assert run(capsys, *train_to(data, path))[0] == 0
    status, out, err = run(capsys, "predict", path, data / "digits.csv")
    assert status == 0, err
    assert len(out.splitlines()) == 201


def test_train_recommends_skops(data, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "NAME.skops" in capsys.readouterr().out
    status, out, err = run(capsys, *train_to(data, tmp_path / "m.joblib"))
    assert status == 0 and "--trust-pickle" in out and ".skops" in err


def test_ctrl_c_during_training_saves_the_model_and_exits_130(data, tmp_path, capsys,
                                                              monkeypatch):
    from fastmlp._callbacks import FitTask

    # Ctrl-C arrives as KeyboardInterrupt in the epoch loop; here at the end of the 3rd epoch.
    ended = []
    original = FitTask.end_iteration

    def ctrl_c_at_epoch_3(self, theta):
        ended.append(1)
        if len(ended) == 3:
            raise KeyboardInterrupt
        return original(self, theta)

    monkeypatch.setattr(FitTask, "end_iteration", ctrl_c_at_epoch_3)
    path = tmp_path / "m.joblib"
    status, out, err = run(capsys, "train", data / "digits.csv", "--target", "label", "--out",
                           path, "--epochs", "50")
    assert status == 130, err
    assert "Training interrupted by user" in err and f"wrote {path}" in out
    clf = joblib.load(path)[-1]
    assert isinstance(clf, MLPClassifier) and clf.n_iter_ == 3
