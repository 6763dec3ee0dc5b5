"""benchmarks/one_row_dead_units.py: a quick run prints the count of subnormal weights, both
models' figures and their ratio. Nothing is timed."""
import re

import one_row_dead_units


def test_a_quick_run_times_both_models(capsys):
    one_row_dead_units.main(["--epochs", "0", "--rounds", "1", "--samples", "300"])
    out = capsys.readouterr().out
    assert re.search(r"^subnormal weights: [\d,]+ of [\d,]+ parameters after 1 epochs$", out,
                     re.M), out
    for name in ("as trained", "zeroed"):
        assert re.search(rf"^{name}: [\d.]+ us a call \(rounds [\d.]+\)$", out, re.M), out
    assert re.search(r"^as trained / zeroed: [\d.]+$", out, re.M), out
