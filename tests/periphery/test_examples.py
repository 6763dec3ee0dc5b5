"""The examples run as a user runs them, on small settings, and say what they promise."""
import pathlib
import subprocess
import sys

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def test_vanishing_gradients_shows_the_logistic_networks_first_layer_starved(tmp_path):
    plot = tmp_path / "norms.png"
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "vanishing_gradients.py"), "--layers", "6",
         "--epochs", "5", "--plot", str(plot)],
        capture_output=True, text=True, check=True, cwd=tmp_path)
    rows = {line[:28].strip(): line[28:].split() for line in result.stdout.splitlines()
            if line[:28].strip() in ("logistic", "relu", "logistic + batch_norm")}
    logistic_ratio, relu_ratio = float(rows["logistic"][1]), float(rows["relu"][1])
    assert logistic_ratio < 1e-2 < relu_ratio
    # batch normalization puts the logistic network's first-layer gradient back
    assert float(rows["logistic + batch_norm"][1]) > 1e-1
    assert plot.stat().st_size > 10_000


def test_vanishing_gradients_never_overwrites_a_file(tmp_path):
    existing = tmp_path / "mine.png"
    existing.write_bytes(b"not ours")
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "vanishing_gradients.py"), "--epochs", "1",
         "--plot", str(existing)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode != 0 and "exists" in result.stderr
    assert existing.read_bytes() == b"not ours"


def test_fastmlp_demo_vanishing_runs_the_same_experiment(tmp_path, capsys):
    from fastmlp.cli import main
    assert main(["demo", "--vanishing", "--hidden", "16,16,16,16,16,16", "--epochs", "5",
                 "--plot", str(tmp_path / "norms.png")]) == 0
    rows = {line[:28].strip(): line[28:].split() for line in capsys.readouterr().out.splitlines()}
    assert float(rows["logistic"][1]) < 1e-2 < float(rows["relu"][1])
    assert float(rows["logistic + batch_norm"][1]) > 1e-1
    assert (tmp_path / "norms.png").stat().st_size > 10_000
    existing = tmp_path / "norms.png"
    assert main(["demo", "--vanishing", "--epochs", "1", "--plot", str(existing)]) == 2
