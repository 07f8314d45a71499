"""Benchmark setup: single-threaded, so that ratios measure the code, not the cores.

The thread counts must be set before NumPy (and its BLAS) is first imported.
This file does it when pytest loads it, which is early enough when pytest is
started on this directory (``pytest benchmarks``) and no plugin has imported
NumPy yet; ``benchmarks/report.py`` also sets them in the environment of the
pytest it starts, which always works. OPENBLAS_CORETYPE, if set, is left alone.
"""

import os
import sys

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

_LATE = "numpy" in sys.modules  # imported before us: the BLAS may be multi-threaded


def pytest_report_header(config):
    import numpy as np

    import fasttape as ft

    threads = os.environ.get("OPENBLAS_NUM_THREADS")
    note = " (numpy was imported before benchmarks/conftest.py: thread limits may not apply)" \
        if _LATE else ""
    return [f"fasttape backend: {ft.backend}; numpy {np.__version__}; "
            f"OPENBLAS_NUM_THREADS={threads}{note}"]
