"""benchmarks/per_call_parts.py: its parts are what they say (the compiled call takes the
benchmark's calls, the Python path's copy never has one), on a quick run. Nothing is timed."""
import per_call_parts


def test_a_quick_run_times_every_part(capsys):
    per_call_parts.main(["--rounds", "1", "--calls", "3", "--hidden", "8"])
    out = capsys.readouterr().out
    assert out.count("round 1:") == 1
    for part in ("partial_fit", "accepts + epoch", "python path"):
        assert out.splitlines()[-1].count(part) == 1
