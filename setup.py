"""Builds fasttape's kernel, fasttape._core, from fasttape/_core.pyx.

The kernel's per-op cases are generated from the op table first
(fasttape/_kernel/codegen.py), so the two cannot drift apart.
"""

import os
import platform
import runpy

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))


# x86-64-v4, spelled out for compilers that predate the name; vectorized
# loops run eight doubles wide.
AVX512 = ["-mavx2", "-mfma", "-mavx512f", "-mavx512cd", "-mavx512bw", "-mavx512dq",
          "-mavx512vl", "-mprefer-vector-width=512"]


def openmp():
    """The flag that builds the kernel's threaded sweeps (batched calls split
    their chunks of lanes across threads); without it they run on one.
    FASTTAPE_OPENMP=0 turns it off."""
    if os.environ.get("FASTTAPE_OPENMP") == "0" or os.name == "nt" or platform.system() == "Darwin":
        return []  # (MSVC and Apple's clang need other flags, or a separate runtime)
    return ["-fopenmp"]


def extensions():
    import numpy
    from Cython.Build import cythonize

    codegen = runpy.run_path(os.path.join(HERE, "fasttape", "_kernel", "codegen.py"))
    codegen["write"](os.path.join(HERE, "fasttape", "_kernel", "ops.pxi"))
    # -fno-trapping-math lets the zero-adjoint selects vectorize; contraction
    # into FMAs is off, so every build gives the same bits.
    base = ["-O3", "-fno-trapping-math", "-ffp-contract=off", "-Wno-psabi"]
    if os.environ.get("FASTTAPE_NATIVE") == "1":  # opt in: this CPU only
        base.append("-march=native")
    common = dict(include_dirs=[numpy.get_include()],
                  define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
                  extra_link_args=openmp())
    base += openmp()
    exts = [Extension("fasttape._core", ["fasttape/_core.pyx"], extra_compile_args=base, **common)]
    if platform.machine().lower() in ("x86_64", "amd64") and os.name != "nt":
        # More builds of the same kernel, for AVX2 and for AVX-512 CPUs; the
        # widest the CPU runs is chosen at import (fasttape/backend.py).
        exts.append(Extension("fasttape._core_avx2", ["fasttape/_core_avx2.pyx"],
                              extra_compile_args=base + ["-mavx2", "-mfma"], **common))
        exts.append(Extension("fasttape._core_avx512", ["fasttape/_core_avx512.pyx"],
                              extra_compile_args=base + AVX512, **common))
    return cythonize(exts, compiler_directives={"language_level": 3})


setup(ext_modules=extensions())
