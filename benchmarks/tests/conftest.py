"""The harness's modules are scripts beside each other (`python benchmarks/compare.py` puts
benchmarks/ first on sys.path, so compare.py imports targets.py as `targets`); its tests import
them the same way."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
