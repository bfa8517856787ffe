"""Build the Cython kernels.

The cell kernels are compiled once per instruction-set level from the same
sources (``_common.pxi``, ``_lstm.pxi``, ``_rnn.pxi``, included by one thin
``_cells_<level>.pyx`` per level).  The portable baseline needs nothing beyond
the platform ABI; the AVX2/AVX-512 variants are only built on x86-64 and only
imported when the running CPU reports the features (see
``fastlstm/_kernels/__init__.py``).  No ``-march=native``: set
``FASTLSTM_NATIVE=1`` for a local build tuned to this machine.
"""

import os
import platform
import sys

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# The cell loops read and write up to ten streams; GCC's default of 10 runtime
# alias checks is too few to vectorize them.  Other compilers skip the flag.
OPTIONAL_FLAGS = ["--param=vect-max-version-for-alias-checks=64"]


class BuildExt(build_ext):
    """Add each optional flag only if the compiler accepts it."""

    def build_extensions(self):
        import tempfile

        accepted = []
        for flag in OPTIONAL_FLAGS:
            with tempfile.TemporaryDirectory() as tmp:
                with open(os.path.join(tmp, "probe.c"), "w") as f:
                    f.write("int main(void) { return 0; }\n")
                cwd = os.getcwd()
                os.chdir(tmp)
                try:
                    self.compiler.compile(["probe.c"], extra_postargs=[flag])
                    accepted.append(flag)
                except Exception:  # noqa: BLE001 - any failure means "not supported"
                    pass
                finally:
                    os.chdir(cwd)
        for ext in self.extensions:
            ext.extra_compile_args = ext.extra_compile_args + accepted
        super().build_extensions()

IS_MSVC = sys.platform == "win32"
IS_X86_64 = platform.machine().lower() in ("x86_64", "amd64")

# -fno-trapping-math lets GCC if-convert the clamps in the gate math (we never
# rely on floating-point exceptions); -fno-math-errno likewise for libm calls.
BASE_FLAGS = [] if IS_MSVC else [
    "-O3", "-g0", "-fno-math-errno", "-fno-trapping-math", "-Wno-unused-function",
]
if os.environ.get("FASTLSTM_NATIVE") == "1" and not IS_MSVC:
    BASE_FLAGS.append("-march=native")

VARIANTS = {"base": []}
if IS_X86_64 and not IS_MSVC:
    VARIANTS["avx2"] = ["-mavx2", "-mfma"]
    VARIANTS["avx512"] = [
        "-mavx2", "-mfma", "-mavx512f", "-mavx512vl", "-mavx512bw", "-mavx512dq",
        "-mprefer-vector-width=512",
    ]

KDIR = os.path.join("src", "fastlstm", "_kernels")
CSRC = os.path.join(KDIR, "csrc")
COMMON = dict(
    include_dirs=[np.get_include(), KDIR, CSRC],
    # headers the C kernels include: a change rebuilds every variant
    depends=sorted(os.path.join(CSRC, f) for f in os.listdir(CSRC) if f.endswith(".h"))
    + [os.path.join(KDIR, "_platform.h")],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
)

# The packed SIMD kernels: one C file per instruction set, compiled with that
# set's flags into its own module; the portable module links stubs.
PACKED_C = {"base": "fl_packed_none.c", "avx2": "fl_packed_avx2.c",
            "avx512": "fl_packed_avx512.c"}

extensions = [
    Extension(
        f"fastlstm._kernels._cells_{name}",
        [os.path.join(KDIR, f"_cells_{name}.pyx"), os.path.join(KDIR, "csrc", PACKED_C[name])],
        extra_compile_args=BASE_FLAGS + flags,
        **COMMON,
    )
    for name, flags in VARIANTS.items()
]
extensions.append(
    Extension(
        "fastlstm._kernels._cpu",
        [os.path.join(KDIR, "_cpu.pyx")],
        extra_compile_args=BASE_FLAGS,
        **COMMON,
    )
)

setup(
    cmdclass={"build_ext": BuildExt},
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "nonecheck": False,
            "embedsignature": True,
        },
    ),
)
