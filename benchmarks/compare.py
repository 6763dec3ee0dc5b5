"""Side-by-side comparison of fastmlp, scikit-learn's MLP and a plain PyTorch loop.

A thin wrapper: the benchmark lives in the package (fastmlp/_bench.py) so that the installed
`fastmlp bench` command runs the same code. See benchmarks/README.md for how to run it on this
machine (OpenBLAS's kernel, threads, noise) and benchmarks/RESULTS.md for the last results.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/compare.py --help
"""
import sys

from fastmlp._bench import main

if __name__ == "__main__":
    sys.exit(main(prog="compare.py"))
