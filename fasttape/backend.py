"""Chooses the kernel: the compiled one, or the pure-Python twin.

FASTTAPE_BACKEND=python forces the twin; =cython makes a missing kernel an
ImportError; unset, the kernel is used when it imports, else the twin with a
RuntimeWarning saying why. On x86-64 the kernel is built three times: for
CPUs with AVX-512 (x86-64-v4), with AVX2 and FMA, and portable; the widest
build this CPU runs is used. FASTTAPE_KERNEL=avx512, avx2 or baseline picks
one (an ImportError where the CPU cannot run it).
"""

import importlib
import os
import warnings

from . import ops

# build suffix -> the CPU features it needs (NumPy's names)
BUILDS = {"avx512": ("AVX512_SKX", "FMA3"), "avx2": ("AVX2", "FMA3"), "baseline": ()}


def _cpu_features():
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # NumPy 1.x
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as features
        except ImportError:
            return {}
    return features


def _cpu_runs(build):
    """Has this CPU what the build needs?"""
    features = _cpu_features()
    return all(features.get(name) for name in BUILDS[build])


def _module(build):
    return f"{__package__}._core" + ("" if build == "baseline" else f"_{build}")


def _compiled():
    """The kernel: the widest build this CPU runs (or FASTTAPE_KERNEL's)."""
    choice = os.environ.get("FASTTAPE_KERNEL", "").strip().lower()
    if choice and choice not in BUILDS:
        raise ImportError(f"FASTTAPE_KERNEL must be one of {', '.join(BUILDS)}, got {choice!r}")
    if choice and not _cpu_runs(choice):
        raise ImportError(f"FASTTAPE_KERNEL={choice}: this CPU lacks {', '.join(BUILDS[choice])}")
    core = None
    for build in [choice] if choice else [b for b in BUILDS if _cpu_runs(b)]:
        try:
            core = importlib.import_module(_module(build))
            break
        except ImportError:
            if build == "baseline" or choice:
                raise
    if core.OP_TABLE != ops.signature():  # built from another op or kind table
        raise ImportError(f"{core.__name__} was built from a different op table; rebuild it")
    return core


def _choose():
    choice = os.environ.get("FASTTAPE_BACKEND", "").strip().lower()
    if choice not in ("", "python", "cython"):
        raise ImportError(f"FASTTAPE_BACKEND must be 'python' or 'cython', got {choice!r}")
    if choice == "python":
        from . import twin
        return twin, "python"
    try:
        return _compiled(), "cython"
    except ImportError as exc:
        if choice == "cython":
            raise ImportError(f"FASTTAPE_BACKEND=cython, but the compiled kernel "
                              f"is not usable: {exc}") from exc
        warnings.warn(f"fasttape: using the pure-Python twin, the compiled kernel "
                      f"is not usable ({exc})", RuntimeWarning, stacklevel=3)
        from . import twin
        return twin, "python"


kernel, name = _choose()
