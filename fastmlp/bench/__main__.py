"""`python -m fastmlp.bench`: the same as `fastmlp bench`; also the memory benchmark's child."""
import sys

from . import main

sys.exit(main(prog="python -m fastmlp.bench"))
