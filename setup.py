"""Builds fasttape's kernel, fasttape._core, from fasttape/_core.pyx.

The kernel's per-op cases are generated from the op table first
(fasttape/_codegen.py), so the two cannot drift apart.
"""

import os
import runpy

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def extensions():
    import numpy
    from Cython.Build import cythonize

    codegen = runpy.run_path(os.path.join(HERE, "fasttape", "_codegen.py"))
    codegen["write"](os.path.join(HERE, "fasttape", "_ops.pxi"))
    # Portable by default; FASTTAPE_NATIVE=1 opts in to this CPU's instructions.
    flags = ["-O3", "-fno-trapping-math"] + (["-march=native"] if os.environ.get("FASTTAPE_NATIVE") == "1" else [])
    ext = Extension("fasttape._core", ["fasttape/_core.pyx"], extra_compile_args=flags,
                    include_dirs=[numpy.get_include()],
                    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")])
    return cythonize([ext], compiler_directives={"language_level": 3})


setup(ext_modules=extensions())
