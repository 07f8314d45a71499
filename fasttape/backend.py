"""Chooses the kernel: the compiled one, or the pure-Python twin.

FASTTAPE_BACKEND=python forces the twin; =cython makes a missing kernel an
ImportError; unset, the kernel is used when it imports, else the twin with a
RuntimeWarning saying why.
"""

import os
import warnings

from . import ops


def _compiled():
    from . import _core

    table = tuple((op.code, op.name, op.kind) for op in ops.OPS)
    if tuple(_core.OP_TABLE) != table:  # built from another op table
        raise ImportError("fasttape._core was built from a different op table; rebuild it")
    return _core


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
