"""The command line on the tables people bring: pandas' index column, small and unscaled tables,
';' and header-less files, several targets; and options spelled alike in every command."""
import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris

from fastmlp import MLPClassifier, MLPRegressor
from fastmlp.cli import _parser, main

pd = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def iris(tmp_path_factory):
    """Iris sorted by class (as load_iris is), written by `df.to_csv(path)`: with its index."""
    folder = tmp_path_factory.mktemp("iris")
    frame = load_iris(as_frame=True).frame
    frame.to_csv(folder / "iris.csv")  # the index as a first column with an empty header
    frame.drop(columns="target").to_csv(folder / "new.csv")
    return folder


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_pandas_index_column_is_left_out(iris, tmp_path, capsys):
    path = tmp_path / "m.joblib"
    status, out, err = run(capsys, "train", iris / "iris.csv", "--target", "target", "--out",
                           path, "--epochs", "5", "--quiet")
    assert status == 0, err
    assert "150 rows x 4 features" in out and "counts the rows 0..149" in err
    model = joblib.load(path)
    assert "Unnamed: 0" not in list(model.feature_names_in_)
    status, out, err = run(capsys, "predict", path, iris / "new.csv", "--trust-pickle")
    assert status == 0 and "counts the rows 0..149" in err and len(out.splitlines()) == 151


def test_an_unnamed_column_that_is_no_index_is_kept_with_a_note(tmp_path, capsys):
    table = tmp_path / "t.csv"
    rng = np.random.default_rng(0)
    pd.DataFrame({"": rng.normal(size=40), "a": rng.normal(size=40),
                  "y": rng.integers(0, 2, 40)}).to_csv(table, index=False)
    status, out, err = run(capsys, "train", table, "--target", "y", "--out", tmp_path / "m.joblib",
                           "--epochs", "2", "--quiet")
    assert status == 0 and "40 rows x 2 features" in out and "is used as a feature" in err


def test_features_are_standardised_in_the_saved_model_unless_no_scale(iris, tmp_path, capsys):
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    path = tmp_path / "m.joblib"
    assert run(capsys, "train", iris / "iris.csv", "--target", "target", "--out", path,
               "--epochs", "3", "--quiet")[0] == 0
    model = joblib.load(path)
    assert isinstance(model, Pipeline) and isinstance(model[0], StandardScaler)
    assert run(capsys, "train", iris / "iris.csv", "--target", "target", "--out", path,
               "--epochs", "3", "--quiet", "--no-scale")[0] == 0
    assert isinstance(joblib.load(path), MLPClassifier)


def test_no_early_stopping_on_a_tiny_hold_out_unless_asked(iris, tmp_path, capsys):
    path = tmp_path / "m.joblib"
    status, _, err = run(capsys, "train", iris / "iris.csv", "--target", "target", "--out", path,
                         "--quiet", "--seed", "0")
    assert status == 0 and "too few to tell when to stop" in err
    clf = joblib.load(path)[-1]
    assert not clf.early_stopping
    assert clf.score(joblib.load(path)[0].transform(
        pd.read_csv(iris / "iris.csv", index_col=0).drop(columns="target")),
        load_iris().target) > 0.9
    assert run(capsys, "train", iris / "iris.csv", "--target", "target", "--out", path,
               "--quiet", "--validation-fraction", "0.2", "--epochs", "3")[0] == 0
    assert joblib.load(path)[-1].early_stopping


def test_a_regression_target_far_from_zero_is_fitted_in_its_units(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 10, size=(300, 2))
    table = tmp_path / "t.csv"
    pd.DataFrame(x, columns=["a", "b"]).assign(y=1000 + 50 * x[:, 0] - 20 * x[:, 1]).to_csv(
        table, index=False)
    path = tmp_path / "m.joblib"
    status, out, err = run(capsys, "train", table, "--target", "y", "--out", path, "--quiet",
                           "--seed", "0")
    assert status == 0, err
    model = joblib.load(path)
    assert isinstance(model[-1], MLPRegressor)
    frame = pd.read_csv(table)
    assert model.score(frame[["a", "b"]], frame["y"]) > 0.95
    assert "poor fit" not in err


def test_a_poor_fit_is_said_plainly(iris, tmp_path, capsys):
    rng = np.random.default_rng(0)
    table = tmp_path / "t.csv"
    pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300),
                  "y": 500 + rng.normal(size=300)}).to_csv(table, index=False)
    status, _, err = run(capsys, "train", table, "--target", "y", "--out", tmp_path / "m.joblib",
                         "--quiet", "--epochs", "1", "--no-scale")
    assert status == 0 and "fastmlp: warning: poor fit: R²" in err
    assert "leave out --no-scale" in err and "more --epochs" in err
    status, _, err = run(capsys, "train", iris / "iris.csv", "--target", "target", "--out",
                         tmp_path / "m.joblib", "--quiet", "--epochs", "1", "--no-scale",
                         "--learning-rate", "1e-6", "--seed", "0")
    assert status == 0 and "poor fit: accuracy" in err and "most common class (0.33)" in err


def test_several_integer_targets_suggest_regression(tmp_path, capsys):
    rng = np.random.default_rng(0)
    table = tmp_path / "t.csv"
    pd.DataFrame({"a": rng.normal(size=60), "u": rng.integers(0, 5, 60),
                  "v": rng.integers(0, 5, 60)}).to_csv(table, index=False)
    status, _, err = run(capsys, "train", table, "--target", "u,v", "--out", tmp_path / "m.joblib")
    assert status == 2 and "--task regression" in err and len(err.strip().splitlines()) == 1


def test_several_targets_name_the_prediction_columns(tmp_path, capsys):
    rng = np.random.default_rng(0)
    table = tmp_path / "t.csv"
    x = rng.normal(size=(80, 3))
    pd.DataFrame(x, columns=list("abc")).assign(width=x[:, 0], height=x[:, 1]).to_csv(
        table, index=False)
    path = tmp_path / "m.joblib"
    assert run(capsys, "train", table, "--target", "width,height", "--out", path, "--quiet",
               "--epochs", "3")[0] == 0
    status, out, err = run(capsys, "predict", path, table, "--trust-pickle")
    assert status == 0, err
    assert out.splitlines()[0] == "prediction_width,prediction_height"


def test_semicolon_and_header_less_tables(iris, tmp_path, capsys):
    frame = pd.read_csv(iris / "iris.csv", index_col=0)
    semicolon, bare = tmp_path / "iris_semicolon.csv", tmp_path / "iris_bare.csv"
    frame.to_csv(semicolon, sep=";", index=False)
    frame.to_csv(bare, header=False, index=False)
    path = tmp_path / "m.joblib"
    status, _, err = run(capsys, "train", semicolon, "--target", "target", "--out", path)
    assert status == 2 and "--sep ';'" in err
    status, out, err = run(capsys, "train", semicolon, "--target", "target", "--out", path,
                           "--sep", ";", "--epochs", "3", "--quiet")
    assert status == 0 and "150 rows x 4 features; target: 3 classes" in out, err
    status, out, _ = run(capsys, "predict", path, semicolon, "--sep", ";", "--trust-pickle")
    assert status == 0 and len(out.splitlines()) == 151
    status, out, err = run(capsys, "train", bare, "--no-header", "--out", path, "--epochs", "3",
                           "--quiet")
    assert status == 0 and "150 rows x 4 features; target: 3 classes" in out, err
    status, out, err = run(capsys, "predict", path, bare, "--no-header", "--trust-pickle")
    assert status == 0 and len(out.splitlines()) == 151 and "left out" in err


def test_a_header_only_table_says_no_rows(tmp_path, capsys):
    table = tmp_path / "t.csv"
    table.write_text("a,b,y\n")
    status, _, err = run(capsys, "train", table, "--target", "y", "--out", tmp_path / "m.joblib")
    assert status == 2 and "no rows" in err and "not numeric" not in err


@pytest.mark.parametrize("command", ["demo", "train"])
def test_epochs_and_hidden_are_spelled_alike(command):
    parser = _parser()
    start = [command] if command == "demo" else [command, "x.csv", "--out", "m.skops"]
    for spelling in (["--epochs", "7"], ["--max-iter", "7"]):
        assert parser.parse_args(start + spelling).epochs == 7
    for hidden in (["256,128"], ["256", "128"]):
        assert parser.parse_args(start + ["--hidden", *hidden]).hidden == (256, 128)


def test_an_empty_layer_width_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "x.csv", "--out", "m.skops", "--hidden", "10,,5"])
    assert exit_.value.code == 2
    assert "'10,,5' is not a list of layer widths" in capsys.readouterr().err
