"""How close csrc/rows_product.c's AVX-512 register tile (12 rows x 32 columns) can come to the
core's float32 peak, against two other tiles of 24 accumulators, in C (benchmarks/tile_peak.c,
which says what it times and checks that the three give the same bits). Issue 12's `wide`: its
epoch is ~95 % products, so what is left to gain is in them; this times the inner loops alone,
and so bounds what a change of tile could give.

    python benchmarks/tile_peak.py [--terms 1024] [--calls 2000]

Builds the C file into a temporary directory with -O3 -mavx512f -mfma -std=gnu11. Needs gcc (or $CC) and
a processor with AVX-512. One thread; run it on a quiet machine.
"""
import argparse
import os
import subprocess
import sys
import tempfile

from one_row_layout import c_compiler

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--terms", type=int, default=1024,
                        help="terms (k) a call: the library's blocks are of up to 1024")
    parser.add_argument("--calls", type=int, default=2000, help="calls a timed run")
    args = parser.parse_args()
    if args.terms < 4 or args.terms % 4:
        raise SystemExit("--terms: a multiple of 4")
    cc = c_compiler("avx512f", "the tiles it times")
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "tile_peak")
        subprocess.run([cc, "-O3", "-mavx512f", "-mfma", "-std=gnu11",
                        os.path.join(HERE, "tile_peak.c"), "-o", exe], check=True)
        sys.exit(subprocess.run([exe, str(args.terms), str(args.calls)]).returncode)


if __name__ == "__main__":
    main()
