"""benchmarks/one_row_layout.py: the C harness builds against the library's csrc/small_product.c
and finds the block-by-block copy of W1 giving the library's bits in every variant (it exits 1
on the first call whose bits differ). Its timings are not checked."""
import os
import shutil
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "one_row_layout.py")


def _has_avx2():
    try:
        with open("/proc/cpuinfo") as f:
            return " avx2" in f.read()
    except OSError:
        return False


@pytest.mark.skipif(not _has_avx2(), reason="the harness times the AVX2 path")
@pytest.mark.skipif(shutil.which(os.environ.get("CC", "gcc")) is None, reason="no C compiler")
def test_the_copy_gives_the_librarys_bits():
    done = subprocess.run([sys.executable, SCRIPT, "--other-kb", "0"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("one row, 784 x 256 then 256 x 128 float32")
    assert [line.split("  ")[1].strip() for line in lines[1:]] == [
        "library (row-major W1)", "packed W1", "packed, blocks alternating"]
