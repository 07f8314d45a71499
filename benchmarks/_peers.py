"""Shared pieces of the benchmark suite: the optional peers, set up single-threaded,
the reference check, and the one way every benchmark is run and labelled.

Every peer is optional: ``torch()``, ``jax()`` and ``casadi()`` skip the calling
benchmark (with the reason) when the library is not installed. torch.compile
rows compile on their first call (inductor, offline, ~4 s each on a small CPU,
~15 s more for the first); ``FASTTAPE_BENCH_TORCH_COMPILE=0`` leaves them out,
and they skip with the reason where compiling fails.
"""

import copy
import ctypes
import gc
import hashlib
import os
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

import fasttape as ft
from fasttape import twin
from fasttape.tape import Tape

KERNEL = ft.backend == "cython"  # FASTTAPE_BACKEND=python: "kernel" rows are the twin too

# Roles, kept in each benchmark's extra_info for benchmarks/report.py:
#   kernel    fasttape on its compiled kernel: the baseline of its group
#   fasttape  fasttape otherwise (the pure twin, a forward-only replay, ...)
#   peer      anything else: hand-written NumPy / Python, PyTorch, JAX, CasADi
KERNEL_ROLE, FASTTAPE_ROLE, PEER_ROLE = "kernel", "fasttape", "peer"

# Calibrated rows: each round lasts at least 2 ms (a 1 µs call is timed 2,000
# times a round, so the timer's own ~50 ns do not count), each row at most ~0.5 s.
# Every test module applies it as its pytestmark.
TIMING = pytest.mark.benchmark(min_time=0.002, max_time=0.5)


def run(benchmark, group, role, fn, *args, rounds=None, warmup=0, gc_off=False, **info):
    """Time fn(*args) in `group`. rounds=None lets pytest-benchmark calibrate;
    an int runs that many single calls (for the slow rows: the twin, ...),
    after `warmup` untimed ones. gc_off: collect before each round and keep
    Python's cyclic GC off while it runs (recording rows: a collection's cost
    depends on everything else the process holds, PyTorch's and JAX's modules
    included, not on the row).
    Extra keywords land in the JSON's extra_info (nodes=... for recording)."""
    benchmark.group = group
    benchmark.extra_info["role"] = role
    benchmark.extra_info.update(info)
    if gc_off:
        benchmark.extra_info["gc"] = "off"
        inner = fn

        def fn(*a):
            gc.disable()
            try:
                return inner(*a)
            finally:
                gc.enable()
    if rounds is None:
        return benchmark(fn, *args)
    setup = _collect if gc_off else None
    return benchmark.pedantic(fn, args=args, setup=setup, rounds=rounds, iterations=1,
                              warmup_rounds=warmup)


def _collect():
    gc.collect()  # (returns None: pedantic's setup may not return a count)


def check(got, want, rtol=1e-10):
    """(value, gradient) against the reference: the value to rtol, the gradient
    to rtol of its own largest entry (entries near zero have no relative accuracy)."""
    value, grad = got
    want_value, want_grad = want
    np.testing.assert_allclose(np.asarray(value, dtype=float), want_value, rtol=rtol)
    want_grad = np.asarray(want_grad, dtype=float)
    scale = float(np.max(np.abs(want_grad))) if want_grad.size else 0.0
    np.testing.assert_allclose(np.asarray(grad, dtype=float).reshape(want_grad.shape),
                               want_grad, rtol=rtol, atol=rtol * scale + 1e-300)


# --------------------------------------------------------------- fasttape's twin

def twin_tape(tape):
    """The same traced tape, replayed by the pure twin."""
    p = tape._program
    program = twin.Program(p.op, p.a, p.b, p.pool, p.args, p.n_inputs, p.outputs)
    try:
        return Tape._traced(program, tape._names, tape._shapes, tape._out_spec, tape._fn_name)
    except (AttributeError, TypeError):  # Tape's internals changed: swap the program
        other = copy.copy(tape)
        other._program = program
        if hasattr(other, "_call1"):
            other._call1 = program.call1
        if hasattr(other, "_plans"):
            other._plans = {}
        return other


def on_twin_recorder(fn):
    """fn run with the pure twin's Recorder as the current tape (eager ft.Var)."""
    from fasttape import var

    def call(*args):
        rec = twin.Recorder()
        var.push_recorder(rec)
        try:
            return fn(*args)
        finally:
            var.pop_recorder(rec)
    return call


def twin_trace(fn, *args):
    """ft.trace recorded by the pure twin's Recorder (a twin tape)."""
    import fasttape.tape as tape_module
    if not hasattr(tape_module, "kernel"):
        pytest.skip("fasttape.tape no longer records through `kernel`: twin tracing unavailable")
    saved = tape_module.kernel
    tape_module.kernel = twin
    try:
        return ft.trace(fn, *args)
    finally:
        tape_module.kernel = saved


# --------------------------------------------------------------- the peers

def torch():
    """PyTorch, on one thread, or skip."""
    torch = pytest.importorskip("torch")
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only allowed before the first parallel work; already done
        pass
    return torch


def torch_compile(fn, *example):
    """torch.compile(fn), compiled by a first call on `example`; skips when
    FASTTAPE_BENCH_TORCH_COMPILE=0 or when compiling fails (no C compiler, ...)."""
    torch_ = torch()
    if os.environ.get("FASTTAPE_BENCH_TORCH_COMPILE", "1") == "0":
        pytest.skip("torch.compile rows are off (FASTTAPE_BENCH_TORCH_COMPILE=0)")
    compiled = torch_.compile(fn)
    try:
        compiled(*example)
    except Exception as exc:  # inductor needs a working C++ toolchain
        pytest.skip(f"torch.compile does not work here: {type(exc).__name__}: {exc}")
    return compiled


def jax():
    """JAX on the CPU in float64, or skip. Its thread flags (XLA_FLAGS) are set
    by conftest.py before JAX is first imported."""
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    return jax


def casadi():
    """CasADi, or skip. Its SX virtual machine runs on the calling thread."""
    return pytest.importorskip("casadi")


def casadi_vg(fn):
    """A CasADi Function call made to return (float value, ndarray gradient)."""
    def call(*args):
        value, grad = fn(*args)
        return float(value), grad.full().ravel()
    return call


# --------------------------------------------------------------- the C floor

# A hand-fused C function (one loop, no tape, no temporaries) for a program:
# the limit a tape compiler can approach. Its rows are neither fasttape nor a
# peer: benchmarks/report.py shows the kernel's time over it as "limit".
LIMIT_ROLE = "limit"
_compiled = {}


def c_floor(source, name, restype, argtypes):
    """C `source` compiled now and loaded by ctypes; the function `name`.
    Skips without a compiler. -O3 -march=native -ffast-math: the compiler may
    vectorize reductions and call glibc's vector tanh/exp (the limit of the
    hardware, not of IEEE-exact code); rows check results to 1e-10."""
    key = hashlib.sha1(source.encode()).hexdigest()[:16]
    if key not in _compiled:
        # one library per source, kept between runs (compiled under a temporary
        # name, then moved in place: two runs at once both get a whole file)
        lib = os.path.join(tempfile.gettempdir(), f"fasttape-floor-{key}.so")
        if not os.path.exists(lib):
            _compile(source, lib)
        _compiled[key] = ctypes.CDLL(lib)
    fn = getattr(_compiled[key], name)
    fn.restype, fn.argtypes = restype, argtypes
    return fn


def _compile(source, lib):
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc): the C floor rows need one")
    with tempfile.TemporaryDirectory(prefix="fasttape-floor-") as folder:
        src, out = os.path.join(folder, "floor.c"), os.path.join(folder, "floor.so")
        with open(src, "w") as f:
            f.write("#include <math.h>\n" + source)
        flags = ["-O3", "-march=native", "-ffast-math", "-fPIC", "-shared"]
        proc = subprocess.run([cc, *flags, src, "-o", out, "-lm"], capture_output=True,
                              text=True)
        if proc.returncode != 0:  # (-march=native is not known to every cc)
            proc = subprocess.run([cc, "-O3", "-ffast-math", "-fPIC", "-shared", src, "-o",
                                   out, "-lm"], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"the C floor does not compile here: {proc.stderr.strip()[:200]}")
        os.replace(out, lib)


def doubles(a):
    """A float64 C-contiguous array's data as a double* for ctypes."""
    return a.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
