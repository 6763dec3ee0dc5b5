"""benchmarks/tile_peak.py: the C harness builds, its three tiles give the same bits on the
rows and columns they share (it exits 1 otherwise), and it prints a rate for each. Its timings
are not checked."""
import os
import shutil
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "tile_peak.py")


def _has_avx512():
    try:
        with open("/proc/cpuinfo") as f:
            return " avx512f" in f.read()
    except OSError:
        return False


@pytest.mark.skipif(not _has_avx512(), reason="the harness times AVX-512 tiles")
@pytest.mark.skipif(shutil.which(os.environ.get("CC", "gcc")) is None, reason="no C compiler")
def test_the_tiles_give_the_same_bits():
    done = subprocess.run([sys.executable, SCRIPT, "--terms", "64", "--calls", "4"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("kc 64 terms, 4 calls a run")
    assert [line[:26].strip() for line in lines[1:5]] == [
        "peak (12 chains of FMA)", "12 x 32 (the library's)", "8 x 48", "24 x 16"]
    assert all("GFLOP/s" in line for line in lines[1:5])
    assert lines[5] == "bits of the shared rows and columns: equal"
