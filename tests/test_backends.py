"""Choosing the backend: the kernel when it imports, else the twin with a
RuntimeWarning that says why; FASTTAPE_BACKEND forces either.

Each case runs in a fresh interpreter; "no kernel" is a kernel whose import
fails (its entries in sys.modules set to None), whatever the install."""

import os
import subprocess
import sys

PROBE = "import fasttape as ft; print(ft.backend, ft.grad(lambda x: x * x)(3.0))"
NO_KERNEL = ("import sys; sys.modules['fasttape._core'] = None; "
             "sys.modules['fasttape._core_avx2'] = None; "
             "sys.modules['fasttape._core_avx512'] = None; ")


def run(code, backend=None):
    env = {k: v for k, v in os.environ.items() if k != "FASTTAPE_BACKEND"}
    if backend is not None:
        env["FASTTAPE_BACKEND"] = backend
    return subprocess.run([sys.executable, "-W", "always", "-c", code], env=env,
                          capture_output=True, text=True, timeout=120)


def test_without_a_kernel_the_twin_runs_and_says_why():
    out = run(NO_KERNEL + PROBE)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["python", "6.0"]
    assert "RuntimeWarning" in out.stderr and "fasttape._core" in out.stderr


def test_asking_for_the_kernel_without_one_is_an_import_error():
    out = run(NO_KERNEL + PROBE, backend="cython")
    assert out.returncode != 0
    assert "ImportError: FASTTAPE_BACKEND=cython" in out.stderr


def test_the_twin_can_be_forced():
    out = run(PROBE, backend="python")
    assert out.returncode == 0 and out.stdout.split() == ["python", "6.0"]
    assert "RuntimeWarning" not in out.stderr


def test_the_kernel_is_used_when_it_imports():
    out = run(PROBE, backend="cython")
    assert out.returncode == 0 and out.stdout.split() == ["cython", "6.0"], out.stderr


def test_an_unknown_backend_is_an_import_error():
    out = run(PROBE, backend="fortran")
    assert out.returncode != 0 and "FASTTAPE_BACKEND must be" in out.stderr


def test_a_kernel_build_can_be_picked_and_a_wrong_name_is_an_import_error():
    pick = "import importlib, fasttape; print(importlib.import_module('fasttape.backend').kernel.__name__)"
    env = dict(os.environ, FASTTAPE_BACKEND="cython", FASTTAPE_KERNEL="baseline")
    out = subprocess.run([sys.executable, "-c", pick], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.split() == ["fasttape._core"], out.stderr
    env["FASTTAPE_KERNEL"] = "sse9"
    out = subprocess.run([sys.executable, "-c", pick], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode != 0 and "FASTTAPE_KERNEL must be one of" in out.stderr
