"""Benchmark setup: single-threaded, so that ratios measure the code, not the cores.

The thread counts must be set before NumPy (and its BLAS), PyTorch and JAX are
first imported. This file does it when pytest loads it, which is early enough
when pytest is started on this directory (``pytest benchmarks``) and no plugin
has imported them yet; ``benchmarks/report.py`` also sets them in the
environment of the pytest it starts, which always works. PyTorch is set to one
thread again where it is used (benchmarks/_peers.py).

OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, if set, are left alone here (they slow
NumPy on some machines; ``report.py`` unsets both for its own run only); the
header says when they are set.
"""

import os
import sys

SINGLE_THREAD = {
    "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1", "NUMEXPR_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "JAX_PLATFORMS": "cpu",
    "FASTTAPE_NUM_THREADS": "1",  # (benchmarks/test_bench_threads.py sets its own)
}
for _var, _value in SINGLE_THREAD.items():
    os.environ.setdefault(_var, _value)

_LATE = [m for m in ("numpy", "torch", "jax") if m in sys.modules]  # imported before us


def pytest_report_header(config):
    import numpy as np

    import fasttape as ft

    threads = os.environ.get("OPENBLAS_NUM_THREADS")
    lines = [f"fasttape backend: {ft.backend}; numpy {np.__version__}; "
             f"OPENBLAS_NUM_THREADS={threads}; XLA_FLAGS={os.environ.get('XLA_FLAGS')}"]
    if _LATE:
        lines.append(f"note: {', '.join(_LATE)} imported before benchmarks/conftest.py: "
                     "thread limits may not apply")
    slow = [v for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if v in os.environ]
    if slow:
        lines.append(f"note: {', '.join(slow)} set: NumPy's BLAS may run a slower kernel "
                     "(benchmarks/report.py unsets them for its run)")
    return lines


PEERS = ("numpy", "torch", "jax", "jaxlib", "casadi", "scikit-learn", "pytest-benchmark")


def pytest_benchmark_update_machine_info(config, machine_info):
    """Versions, thread settings and NumPy's BLAS kernel, kept in the JSON for
    benchmarks/report.py (a table read later must say what it was run with)."""
    from importlib import metadata

    import fasttape as ft

    versions = {"fasttape": f"{getattr(ft, '__version__', '?')} ({ft.backend})"}
    for name in PEERS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    machine_info["fasttape_versions"] = versions
    machine_info["fasttape_env"] = {
        var: os.environ.get(var) for var in (*SINGLE_THREAD, "OPENBLAS_CORETYPE",
                                             "OPENBLAS_L2_SIZE",
                                             "FASTTAPE_BENCH_TORCH_COMPILE")}
    try:
        from threadpoolctl import threadpool_info
        machine_info["fasttape_blas"] = [
            {k: pool.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
            for pool in threadpool_info() if pool.get("user_api") == "blas"]
    except Exception:  # threadpoolctl is optional
        machine_info["fasttape_blas"] = None
