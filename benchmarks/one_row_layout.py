"""One row through `mnist`'s first layer: csrc/small_product.c's loop on W1 as the model holds it
(row-major, scikit-learn's `coefs_[0]`) against the same loop on a copy of W1 laid out by
column blocks, in C (benchmarks/one_row_layout.c, which says what it times and checks the
bits). Issue 12's one-row target: the loop reads 256 bytes of every 1 KB row of W1 per block of
64 columns, and that strided read, not the cache W1 sits in, is what a one-row prediction waits
for; the copy is read as four sequential streams.

    python benchmarks/one_row_layout.py [--other-kb 64]

Builds the C file with the library's kernel (csrc/small_product.c) and the build's flags into a
temporary directory. Needs gcc (or $CC) and a processor with AVX2, whose generic path it times.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(os.path.dirname(HERE), "csrc")
FLAGS = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-std=gnu99"]


def c_compiler(cpu_flag, why):
    """The C compiler ($CC, else gcc) for a harness built on the spot, which needs the processor
    flag `cpu_flag` (as /proc/cpuinfo names it; `why`: what for); exits saying which is
    missing (also benchmarks/tile_peak.py's)."""
    with open("/proc/cpuinfo") as f:
        if f" {cpu_flag}" not in f.read():
            raise SystemExit(f"needs a processor with {cpu_flag.upper()} ({why})")
    cc = os.environ.get("CC", "gcc")
    if shutil.which(cc) is None:
        raise SystemExit(f"no C compiler ({cc})")
    return cc


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--other-kb", type=int, default=64,
                        help="KB written between calls (the interpreter's work between them)")
    args = parser.parse_args()
    cc = c_compiler("avx2", "the path it times")
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "one_row_layout")
        # The harness's own loop for AVX2 (as the library's clone for it); the library's file
        # with the build's flags, its clones chosen at run time as in the engine.
        subprocess.run([cc, *FLAGS, "-mavx2", "-c", os.path.join(HERE, "one_row_layout.c"),
                        "-o", exe + ".o"], check=True)
        subprocess.run([cc, *FLAGS, "-fopenmp", "-I", CSRC, exe + ".o",
                        os.path.join(CSRC, "small_product.c"), "-o", exe], check=True)
        sys.exit(subprocess.run([exe, str(args.other_kb)]).returncode)


if __name__ == "__main__":
    main()
