"""Build fastmlp's compiled engine: Cython over scipy's BLAS, C kernels from csrc/, OpenMP.

Flags: -O3; -ffp-contract=off (no FMA contraction, so element-wise arithmetic rounds as
numpy's does); -fno-math-errno (nothing reads errno, and without it GCC will not vectorise
sqrt: the Adam pass was scalar); -fno-trapping-math (nothing reads the floating-point exception
flags or traps on them, and without it GCC will not if-convert the selects of csrc/fm_math.h's
exp, so every exp-based activation loop (logistic, tanh, softmax, exp, elu, gelu, silu, mish,
softplus) and dropout's ran scalar in every clone but AVX-512's: a 32 x 256 float32 tanh forward
took 89-120 us, 13-15 us vectorised, gelu 133 -> 19-22 us, on the 2-core AMD EPYC VM (AVX2).
It changes no value: each element rounds as the scalar code does, which
tests/engine/test_kernels.py checks bit for bit, and tools/fingerprint.py's 301 fits were equal
before and after). The default build is portable: the hot C kernels carry several
instruction-set versions (csrc/fm_math.h: FASTMLP_CLONES) chosen at load time.
FASTMLP_NATIVE=1 adds -march=native for a build that only has to run on this machine. Without
OpenMP the build warns and produces a serial engine.
"""
import glob
import os
import subprocess
import sys
import sysconfig
import tempfile
import warnings

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

CSRC = ["csrc/activations.c", "csrc/maxout.c", "csrc/dropout.c", "csrc/batchnorm.c",
        "csrc/losses.c", "csrc/optimizers.c", "csrc/small_product.c", "csrc/rows_product.c",
        "csrc/placement.c", "csrc/scratch.c"]


def compiler_supports(flags):
    """Whether the C compiler that builds Python extensions accepts `flags` and links them."""
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write("#include <omp.h>\nint main(void) { return omp_get_max_threads() < 1; }\n")
        result = subprocess.run(
            cc + flags + [src, "-o", os.path.join(tmp, "probe")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    return result.returncode == 0


compile_args = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-std=c99"]
link_args = []
if os.environ.get("FASTMLP_NATIVE") == "1":
    compile_args.append("-march=native")
if sys.platform != "win32" and compiler_supports(["-fopenmp"]):
    compile_args.append("-fopenmp")
    link_args.append("-fopenmp")
else:
    warnings.warn(
        "fastmlp: the C compiler does not support OpenMP; building a SERIAL engine that uses "
        "one core. Install a compiler with OpenMP (gcc, or clang with libomp) for threads."
    )
    compile_args.append("-DFASTMLP_OPENMP_SIMD")

# What every compiled object depends on beyond its own source: the kernels' headers, and this
# file, whose flags it is compiled with. (Without them an in-place build after a header's or a
# flag's change kept the kernels' objects compiled before it: the library is rebuilt only from
# objects out of date, and it is built with what build_clib finds in `obj_deps`.)
BUILD_DEPENDS = ["setup.py", "csrc/fastmlp_kernels.h", "csrc/fm_math.h", "csrc/fm_openmp.h"]
# The C kernels, compiled once into a static library that every engine module links (each
# takes only the objects it calls).
kernels = ("fastmlp_kernels", {"sources": CSRC, "include_dirs": ["csrc"], "cflags": compile_args,
                               "obj_deps": {"": BUILD_DEPENDS}})
ENGINE_MODULES = ["vocabulary", "_network", "_trainer", "_testing"]
# The kernels' sources too: the library is rebuilt when one changes, and each module must then be
# linked again, or an in-place build keeps the old kernel in it.
ENGINE_DEPENDS = [*BUILD_DEPENDS, *CSRC, *sorted(glob.glob("fastmlp/_engine/*.pxd"))]

extensions = [
    Extension(
        f"fastmlp._engine.{name}",
        sources=[f"fastmlp/_engine/{name}.pyx"],
        include_dirs=["csrc"],
        depends=ENGINE_DEPENDS,
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )
    for name in ENGINE_MODULES
]



class BuildExtWithKernels(build_ext):
    """build_ext that builds the kernels' library first: `pip install` runs build_clib before
    build_ext, but `build_ext --inplace` alone does not."""

    def run(self):
        self.run_command("build_clib")
        super().run()


setup(
    cmdclass={"build_ext": BuildExtWithKernels},
    libraries=[kernels],
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": 3},
    ),
)
