"""Chooses the kernel: the compiled one, or the pure-Python twin.

FASTTAPE_BACKEND=python forces the twin; =cython makes a missing kernel an
ImportError; unset, the kernel is used when it imports, else the twin with a
RuntimeWarning saying why. On x86-64 CPUs with AVX2 the kernel's AVX2 build
is used (FASTTAPE_KERNEL=baseline picks the portable one).
"""

import importlib
import os
import warnings

from . import ops


def _cpu_has_avx2():
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # NumPy 1.x
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as features
        except ImportError:
            return False
    return bool(features.get("AVX2") and features.get("FMA3"))


def _compiled():
    """The kernel: its AVX2 build where the CPU has AVX2 and it was built."""
    core = None
    if _cpu_has_avx2() and os.environ.get("FASTTAPE_KERNEL", "") != "baseline":
        try:
            core = importlib.import_module(f"{__package__}._core_avx2")
        except ImportError:
            core = None
    if core is None:
        core = importlib.import_module(f"{__package__}._core")
    table = tuple((op.code, op.name, op.kind) for op in ops.OPS)
    if tuple(core.OP_TABLE) != table:  # built from another op table
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
