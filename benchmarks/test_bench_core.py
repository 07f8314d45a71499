"""Benchmarks: the kernel against the pure twin and hand-written NumPy / Python.

Run with ``pytest benchmarks`` (or ``python benchmarks/report.py`` for a table
of ratios). Every benchmark of one workload shares a ``group``, so the ratios
inside a group compare like with like; every peer's result is checked against
an independent reference before it is timed.

Groups:
  lecture          L(w, x, y) = (w*x - y)**2 + w**2, value and gradient at
                   (1, 2, 3): tape replay on the kernel and on the twin,
                   plain-Python and NumPy hand-written derivatives, eager
                   ft.Var recording + backward.
  rosenbrock-100   f(x) = sum 100 (x[i+1] - x[i]^2)^2 + (1 - x[i])^2 with
  rosenbrock-10000 ft.sum over object arrays of Var: tape.value_and_grad on
                   the kernel and the twin, a hand-written vectorized NumPy
                   value and gradient; PyTorch / JAX where installed.
"""

import copy

import numpy as np
import pytest

import fasttape as ft
from fasttape import twin
from fasttape.tape import Tape

pytest.importorskip("pytest_benchmark")

KERNEL = ft.backend == "cython"  # FASTTAPE_BACKEND=python: "kernel" rows are the twin too


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


def check(got, want, rtol=1e-12):
    value, grad = got
    np.testing.assert_allclose(value, want[0], rtol=rtol)
    np.testing.assert_allclose(grad, want[1], rtol=rtol, atol=1e-300)


# --------------------------------------------------------------- the lecture

def lecture(w, x, y):
    return (w * x - y) ** 2 + w ** 2


LECTURE_REF = (2.0, -2.0)  # L and dL/dw at (1, 2, 3), worked by hand


@pytest.fixture(scope="module")
def lecture_tape():
    return ft.trace(lecture, 1.0, 2.0, 3.0)


@pytest.mark.benchmark(group="lecture")
def test_lecture_kernel(benchmark, lecture_tape):
    check(lecture_tape.value_and_grad(1.0, 2.0, 3.0), LECTURE_REF)
    benchmark(lecture_tape.value_and_grad, 1.0, 2.0, 3.0)


@pytest.mark.benchmark(group="lecture")
def test_lecture_twin(benchmark, lecture_tape):
    tape = twin_tape(lecture_tape)
    check(tape.value_and_grad(1.0, 2.0, 3.0), LECTURE_REF)
    benchmark(tape.value_and_grad, 1.0, 2.0, 3.0)


def lecture_by_hand(w, x, y):
    r = w * x - y
    return r * r + w * w, 2.0 * r * x + 2.0 * w


@pytest.mark.benchmark(group="lecture")
def test_lecture_plain_python(benchmark):
    check(lecture_by_hand(1.0, 2.0, 3.0), LECTURE_REF)
    benchmark(lecture_by_hand, 1.0, 2.0, 3.0)


def lecture_numpy(v):
    w, x, y = v
    r = w * x - y
    return r * r + w * w, np.array([2.0 * r * x + 2.0 * w, 2.0 * r * w, -2.0 * r])


@pytest.mark.benchmark(group="lecture")
def test_lecture_numpy(benchmark):
    v = np.array([1.0, 2.0, 3.0])
    value, g = lecture_numpy(v)
    check((value, g[0]), LECTURE_REF)
    np.testing.assert_allclose(g, [-2.0, -2.0, 2.0])
    benchmark(lecture_numpy, v)


def lecture_eager():
    w, x, y = ft.Var(1.0), ft.Var(2.0), ft.Var(3.0)
    L = (w * x - y) ** 2 + w ** 2
    L.backward()
    return L.value, w.grad


@pytest.mark.benchmark(group="lecture")
def test_lecture_eager_record_and_backward(benchmark):
    check(lecture_eager(), LECTURE_REF)
    benchmark(lecture_eager)


def lecture_torch():
    torch = pytest.importorskip("torch")
    w, x, y = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (1.0, 2.0, 3.0))
    L = (w * x - y) ** 2 + w ** 2
    L.backward()
    return L.item(), w.grad.item()


@pytest.mark.benchmark(group="lecture")
def test_lecture_torch_eager(benchmark):
    pytest.importorskip("torch")
    check(lecture_torch(), LECTURE_REF)
    benchmark(lecture_torch)


@pytest.mark.benchmark(group="lecture")
def test_lecture_jax_jit(benchmark):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    f = jax.jit(jax.value_and_grad(lecture))

    def call():
        value, g = f(1.0, 2.0, 3.0)
        return float(value), float(g)

    check(call(), LECTURE_REF)
    benchmark(call)


# --------------------------------------------------------------- Rosenbrock

def rosenbrock(x):
    return ft.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def rosenbrock_numpy(x):
    """Value and gradient, vectorized by hand."""
    d = x[1:] - x[:-1] ** 2
    e = 1.0 - x[:-1]
    g = np.zeros_like(x)
    g[:-1] = -400.0 * d * x[:-1] - 2.0 * e
    g[1:] += 200.0 * d
    return float(np.sum(100.0 * d * d + e * e)), g


def rosenbrock_reference(x):
    """The same, plainly in Python floats: an independent check of the NumPy code."""
    x = [float(v) for v in x]
    n = len(x)
    value, g = 0.0, [0.0] * n
    for i in range(n - 1):
        d, e = x[i + 1] - x[i] ** 2, 1.0 - x[i]
        value += 100.0 * d * d + e * e
        g[i] += -400.0 * d * x[i] - 2.0 * e
        g[i + 1] += 200.0 * d
    return value, np.array(g)


SIZES = (100, 10_000)
_tapes = {}


def rosen_point(n):
    return np.random.default_rng(n).uniform(-1.5, 1.5, size=n)


def rosen_tape(n):
    if n not in _tapes:
        _tapes[n] = ft.trace(rosenbrock, rosen_point(n))
    return _tapes[n]


def rosen_ref(n):
    ref = rosenbrock_reference(rosen_point(n))
    np.testing.assert_allclose(rosenbrock_numpy(rosen_point(n))[1], ref[1], rtol=1e-12)
    return ref


@pytest.mark.parametrize("n", SIZES)
def test_rosenbrock_kernel(benchmark, n):
    benchmark.group = f"rosenbrock-{n}"
    tape, x = rosen_tape(n), rosen_point(n)
    check(tape.value_and_grad(x), rosen_ref(n), rtol=1e-11)
    benchmark(tape.value_and_grad, x)


@pytest.mark.parametrize("n", SIZES)
def test_rosenbrock_twin(benchmark, n):
    benchmark.group = f"rosenbrock-{n}"
    tape, x = twin_tape(rosen_tape(n)), rosen_point(n)
    check(tape.value_and_grad(x), rosen_ref(n), rtol=1e-11)
    if n > 1000:  # node-by-node Python: a couple of rounds say enough
        benchmark.pedantic(tape.value_and_grad, args=(x,), rounds=3, iterations=1)
    else:
        benchmark(tape.value_and_grad, x)


@pytest.mark.parametrize("n", SIZES)
def test_rosenbrock_numpy(benchmark, n):
    benchmark.group = f"rosenbrock-{n}"
    x = rosen_point(n)
    check(rosenbrock_numpy(x), rosen_ref(n), rtol=1e-11)
    benchmark(rosenbrock_numpy, x)


@pytest.mark.parametrize("n", SIZES)
def test_rosenbrock_torch(benchmark, n):
    torch = pytest.importorskip("torch")
    benchmark.group = f"rosenbrock-{n}"
    x0 = torch.tensor(rosen_point(n), dtype=torch.float64)

    def call():
        x = x0.clone().requires_grad_(True)
        f = torch.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
        f.backward()
        return f.item(), x.grad.numpy()

    check(call(), rosen_ref(n), rtol=1e-11)
    benchmark(call)


@pytest.mark.parametrize("n", SIZES)
def test_rosenbrock_jax_jit(benchmark, n):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    f = jax.jit(jax.value_and_grad(
        lambda x: jnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)))
    x = jnp.asarray(rosen_point(n))

    def call():
        value, g = f(x)
        return float(value), np.asarray(g)

    check(call(), rosen_ref(n), rtol=1e-11)
    benchmark(call)


# --------------------------------------------------------------- memory

def test_memory_bytes_per_node(capsys):
    """A frozen tape costs a few dozen bytes a node at batch 1 (DESIGN.md:
    'a node costs a few dozen bytes, not a Python object')."""
    rows = []
    for name, tape in (("lecture", ft.trace(lecture, 1.0, 2.0, 3.0)),
                       ("rosenbrock-100", rosen_tape(100)),
                       ("rosenbrock-10000", rosen_tape(10_000))):
        p = tape._program
        arrays = sum(np.asarray(x).nbytes for x in (p.op, p.a, p.b, p.pool, p.args, p.outputs))
        assert tape.nbytes >= arrays  # the arrays at least, plus the workspace
        per_node = tape.nbytes / len(tape)
        rows.append((name, len(tape), tape.nbytes, per_node))
        assert per_node < 64, f"{name}: {per_node:.1f} bytes per node"
    with capsys.disabled():
        print()
        for name, n, nbytes, per in rows:
            print(f"memory {name}: {n} nodes, {nbytes} bytes, {per:.1f} bytes/node")
