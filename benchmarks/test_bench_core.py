"""Benchmarks W1 (the lecture's function) and W4 (Rosenbrock): the kernel against
the pure twin, hand-written NumPy / Python, and PyTorch, JAX and CasADi where
installed.

Run with ``pytest benchmarks`` (or ``python benchmarks/report.py`` for a table
of ratios). Every benchmark of one workload shares a ``group``, so the ratios
inside a group compare like with like; every result is checked against an
independent reference before it is timed.

Groups:
  W1 lecture replay    L(w, x, y) = (w*x - y)**2 + w**2, value and dL/dw at
                       (1, 2, 3): tape replay on the kernel (value and gradient;
                       value only) and on the twin; plain-Python and NumPy
                       hand-written derivatives; torch.func (and torch.compile
                       of it), JAX jit, CasADi SX; and all three gradients
                       (tape wrt=(0, 1, 2); the transform, argnums=(0, 1, 2)).
  W1 lecture eager     the same, recorded op by op and swept back: ft.Var on the
                       kernel's and on the twin's recorder, PyTorch eager autograd.
  W4 rosenbrock n=N    f(x) = sum 100 (x[i+1] - x[i]^2)^2 + (1 - x[i])^2 with
                       ft.sum over object arrays of Var: tape.value_and_grad on
                       the kernel and the twin (3 rounds at n = 10,000), a
                       hand-written vectorized NumPy value and gradient, PyTorch
                       eager, torch.func (and torch.compile of it), JAX jit,
                       CasADi SX; the same written `(...).sum()` as for NumPy;
                       and the floor, a fused C loop (benchmarks/_peers.py
                       c_floor; skipped without a C compiler).
"""

import numpy as np
import pytest

import fasttape as ft
from fasttape.var import recording
from _peers import (FASTTAPE_ROLE, KERNEL_ROLE, LIMIT_ROLE, PEER_ROLE, TIMING, c_floor, casadi,
                    casadi_vg, check, doubles, jax, on_twin_recorder, run, torch, torch_compile,
                    twin_tape)

pytest.importorskip("pytest_benchmark")
pytestmark = TIMING

# --------------------------------------------------------------- W1: the lecture

W1_REPLAY, W1_EAGER = "W1 lecture replay", "W1 lecture eager"


def lecture(w, x, y):
    return (w * x - y) ** 2 + w ** 2


LECTURE_REF = (2.0, -2.0)  # L and dL/dw at (1, 2, 3), worked by hand


@pytest.fixture(scope="module")
def lecture_tape():
    return ft.trace(lecture, 1.0, 2.0, 3.0)


def test_w1_kernel(benchmark, lecture_tape):
    check(lecture_tape.value_and_grad(1.0, 2.0, 3.0), LECTURE_REF)
    run(benchmark, W1_REPLAY, KERNEL_ROLE, lecture_tape.value_and_grad, 1.0, 2.0, 3.0)


def test_w1_kernel_value_only(benchmark, lecture_tape):
    assert lecture_tape(1.0, 2.0, 3.0) == LECTURE_REF[0]
    run(benchmark, W1_REPLAY, FASTTAPE_ROLE, lecture_tape, 1.0, 2.0, 3.0)


def test_w1_transform(benchmark):
    step = ft.value_and_grad(lecture)
    check(step(1.0, 2.0, 3.0), LECTURE_REF)
    run(benchmark, W1_REPLAY, FASTTAPE_ROLE, step, 1.0, 2.0, 3.0)


LECTURE_ALL_REF = (2.0, (-2.0, -2.0, 2.0))  # and dL/dx = 2(wx - y)w, dL/dy = -2(wx - y)


def test_w1_all_gradients(benchmark, lecture_tape):
    """All three gradients from the tape (wrt=(0, 1, 2))."""
    check(lecture_tape.value_and_grad(1.0, 2.0, 3.0, wrt=(0, 1, 2)), LECTURE_ALL_REF)
    run(benchmark, W1_REPLAY, FASTTAPE_ROLE,
        lambda: lecture_tape.value_and_grad(1.0, 2.0, 3.0, wrt=(0, 1, 2)))


def test_w1_transform_all_gradients(benchmark):
    """All three through ft.value_and_grad(argnums=(0, 1, 2))."""
    step = ft.value_and_grad(lecture, argnums=(0, 1, 2))
    check(step(1.0, 2.0, 3.0), LECTURE_ALL_REF)
    run(benchmark, W1_REPLAY, FASTTAPE_ROLE, step, 1.0, 2.0, 3.0)


# What a transform call does before it replays: is the cached tape still
# fresh (closures and globals unchanged) and is a trace in progress (then
# the call records its derivative there instead). The kernel row is the
# lecture's, which reads nothing but its arguments; the others read a global
# number or a global array of 1,000 floats besides.
W1_CHECK = "W1 transform check"
SCALE, TABLE = 1.0, np.linspace(0.0, 1.0, 1000)


def lecture_scaled(w, x, y):
    return (w * x - y) ** 2 + SCALE * w ** 2


def lecture_tabled(w, x, y):
    return (w * x - y) ** 2 + TABLE[1] * w ** 2


def transform_check(step):
    if step._watched:
        step._check_fresh()
    return recording()


@pytest.mark.parametrize("fn, role", [(lecture, KERNEL_ROLE), (lecture_scaled, FASTTAPE_ROLE),
                                      (lecture_tabled, FASTTAPE_ROLE)],
                         ids=["lecture", "global number", "global array"])
def test_w1_transform_check(benchmark, fn, role):
    step = ft.value_and_grad(fn)
    step(1.0, 2.0, 3.0)
    assert step._watched == (fn is not lecture) and transform_check(step) is False
    run(benchmark, W1_CHECK, role, transform_check, step)


def test_w1_twin(benchmark, lecture_tape):
    tape = twin_tape(lecture_tape)
    check(tape.value_and_grad(1.0, 2.0, 3.0), LECTURE_REF)
    run(benchmark, W1_REPLAY, FASTTAPE_ROLE, tape.value_and_grad, 1.0, 2.0, 3.0)


def lecture_by_hand(w, x, y):
    r = w * x - y
    return r * r + w * w, 2.0 * r * x + 2.0 * w


def test_w1_plain_python(benchmark):
    check(lecture_by_hand(1.0, 2.0, 3.0), LECTURE_REF)
    run(benchmark, W1_REPLAY, PEER_ROLE, lecture_by_hand, 1.0, 2.0, 3.0)


def lecture_numpy(v):
    w, x, y = v
    r = w * x - y
    return r * r + w * w, np.array([2.0 * r * x + 2.0 * w, 2.0 * r * w, -2.0 * r])


def test_w1_numpy(benchmark):
    v = np.array([1.0, 2.0, 3.0])
    value, g = lecture_numpy(v)
    check((value, g[0]), LECTURE_REF)
    np.testing.assert_allclose(g, [-2.0, -2.0, 2.0])
    run(benchmark, W1_REPLAY, PEER_ROLE, lecture_numpy, v)


def _torch_lecture_func(torch):
    f = torch.func.grad_and_value(lecture, argnums=0)
    w, x, y = (torch.tensor(v, dtype=torch.float64) for v in (1.0, 2.0, 3.0))
    return f, (w, x, y)


def test_w1_torch_func(benchmark):
    f, args = _torch_lecture_func(torch())

    def call():
        g, value = f(*args)
        return value.item(), g.item()

    check(call(), LECTURE_REF)
    run(benchmark, W1_REPLAY, PEER_ROLE, call)


def test_w1_torch_compile(benchmark):
    torch_ = torch()
    f, args = _torch_lecture_func(torch_)
    f = torch_compile(f, *args)

    def call():
        g, value = f(*args)
        return value.item(), g.item()

    check(call(), LECTURE_REF)
    run(benchmark, W1_REPLAY, PEER_ROLE, call)


def test_w1_jax_jit(benchmark):
    jax_ = jax()
    f = jax_.jit(jax_.value_and_grad(lecture))
    w, x, y = (jax_.numpy.asarray(v) for v in (1.0, 2.0, 3.0))

    def call():
        value, g = f(w, x, y)
        return float(value), float(g)

    check(call(), LECTURE_REF)
    run(benchmark, W1_REPLAY, PEER_ROLE, call)


def test_w1_casadi(benchmark):
    ca = casadi()
    w, x, y = (ca.SX.sym(name) for name in "wxy")
    L = lecture(w, x, y)
    call = casadi_vg(ca.Function("lecture", [w, x, y], [L, ca.gradient(L, w)]))
    check(call(1.0, 2.0, 3.0), LECTURE_REF)
    run(benchmark, W1_REPLAY, PEER_ROLE, call, 1.0, 2.0, 3.0)


def lecture_eager():
    w, x, y = ft.Var(1.0), ft.Var(2.0), ft.Var(3.0)
    L = (w * x - y) ** 2 + w ** 2
    L.backward()
    return L.value, w.grad


def test_w1_eager_kernel(benchmark):
    check(lecture_eager(), LECTURE_REF)
    run(benchmark, W1_EAGER, KERNEL_ROLE, lecture_eager)


def test_w1_eager_twin(benchmark):
    call = on_twin_recorder(lecture_eager)
    check(call(), LECTURE_REF)
    run(benchmark, W1_EAGER, FASTTAPE_ROLE, call)


def test_w1_eager_torch(benchmark):
    torch_ = torch()

    def call():
        w, x, y = (torch_.tensor(v, dtype=torch_.float64, requires_grad=True)
                   for v in (1.0, 2.0, 3.0))
        L = (w * x - y) ** 2 + w ** 2
        L.backward()
        return L.item(), w.grad.item()

    check(call(), LECTURE_REF)
    run(benchmark, W1_EAGER, PEER_ROLE, call)


# --------------------------------------------------------------- W4: Rosenbrock

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
_tapes, _refs = {}, {}


def w4(n):
    return f"W4 rosenbrock n={n}"


def rosen_point(n):
    return np.random.default_rng(n).uniform(-1.5, 1.5, size=n)


def rosen_tape(n):
    if n not in _tapes:
        _tapes[n] = ft.trace(rosenbrock, rosen_point(n))
    return _tapes[n]


def rosen_ref(n):
    if n not in _refs:
        ref = rosenbrock_reference(rosen_point(n))
        np.testing.assert_allclose(rosenbrock_numpy(rosen_point(n))[1], ref[1], rtol=1e-12)
        _refs[n] = ref
    return _refs[n]


@pytest.mark.parametrize("n", SIZES)
def test_w4_kernel(benchmark, n):
    tape, x = rosen_tape(n), rosen_point(n)
    check(tape.value_and_grad(x), rosen_ref(n), rtol=1e-11)
    run(benchmark, w4(n), KERNEL_ROLE, tape.value_and_grad, x)


@pytest.mark.parametrize("n", SIZES)
def test_w4_twin(benchmark, n):
    tape, x = twin_tape(rosen_tape(n)), rosen_point(n)
    check(tape.value_and_grad(x), rosen_ref(n), rtol=1e-11)
    # node-by-node Python: at n = 10,000 three rounds say enough
    run(benchmark, w4(n), FASTTAPE_ROLE, tape.value_and_grad, x,
        rounds=3 if n > 1000 else None)


@pytest.mark.parametrize("n", SIZES)
def test_w4_numpy(benchmark, n):
    x = rosen_point(n)
    check(rosenbrock_numpy(x), rosen_ref(n), rtol=1e-11)
    run(benchmark, w4(n), PEER_ROLE, rosenbrock_numpy, x)


def rosenbrock_vectorized(x):
    """The same text on a torch or JAX vector."""
    return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


@pytest.mark.parametrize("n", SIZES)
def test_w4_plain_sum(benchmark, n):
    """The same function as written for NumPy: `.sum()` instead of ft.sum."""
    x = rosen_point(n)
    tape = ft.trace(rosenbrock_vectorized, x)
    check(tape.value_and_grad(x), rosen_ref(n), rtol=1e-11)
    run(benchmark, w4(n), FASTTAPE_ROLE, tape.value_and_grad, x)


ROSEN_C = """
double rosen(long n, const double *x, double *g) {
    double f = 0.0;                    /* each g[i] from its two terms: no carried */
    g[0] = 0.0;                        /* dependence, so the loop vectorizes */
    for (long i = 0; i < n - 1; i++) {
        double d = x[i + 1] - x[i] * x[i], e = 1.0 - x[i];
        f += 100.0 * d * d + e * e;
        double before = i ? 200.0 * (x[i] - x[i - 1] * x[i - 1]) : 0.0;
        g[i] = before - 400.0 * d * x[i] - 2.0 * e;
    }
    g[n - 1] = 200.0 * (x[n - 1] - x[n - 2] * x[n - 2]);
    return f;
}
"""


@pytest.mark.parametrize("n", SIZES)
def test_w4_limit(benchmark, n):
    """The floor: value and gradient in one fused C loop."""
    import ctypes
    c = c_floor(ROSEN_C, "rosen", ctypes.c_double,
                [ctypes.c_long, ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_double)])
    x = rosen_point(n)
    g = np.empty(n)
    px, pg = doubles(x), doubles(g)

    def call():
        return c(n, px, pg), g

    check(call(), rosen_ref(n), rtol=1e-11)
    run(benchmark, w4(n), LIMIT_ROLE, call)


@pytest.mark.parametrize("n", SIZES)
def test_w4_torch_eager(benchmark, n):
    torch_ = torch()
    x0 = torch_.tensor(rosen_point(n), dtype=torch_.float64)

    def call():
        x = x0.detach().requires_grad_(True)
        f = rosenbrock_vectorized(x)
        (g,) = torch_.autograd.grad(f, x)
        return f.item(), g.numpy()

    check(call(), rosen_ref(n), rtol=1e-11)
    run(benchmark, w4(n), PEER_ROLE, call)


def _torch_rosen_call(n, compiled):
    torch_ = torch()
    f = torch_.func.grad_and_value(rosenbrock_vectorized)
    x = torch_.tensor(rosen_point(n), dtype=torch_.float64)
    if compiled:
        f = torch_compile(f, x)

    def call():
        g, value = f(x)
        return value.item(), g.numpy()
    return call


@pytest.mark.parametrize("n", SIZES)
def test_w4_torch_func(benchmark, n):
    call = _torch_rosen_call(n, compiled=False)
    check(call(), rosen_ref(n), rtol=1e-11)
    run(benchmark, w4(n), PEER_ROLE, call)


@pytest.mark.parametrize("n", SIZES)
def test_w4_torch_compile(benchmark, n):
    call = _torch_rosen_call(n, compiled=True)
    check(call(), rosen_ref(n), rtol=1e-11)
    run(benchmark, w4(n), PEER_ROLE, call)


@pytest.mark.parametrize("n", SIZES)
def test_w4_jax_jit(benchmark, n):
    jax_ = jax()
    f = jax_.jit(jax_.value_and_grad(rosenbrock_vectorized))
    x = jax_.numpy.asarray(rosen_point(n))

    def call():
        value, g = f(x)
        return float(value), np.asarray(g)

    check(call(), rosen_ref(n), rtol=1e-11)
    run(benchmark, w4(n), PEER_ROLE, call)


@pytest.mark.parametrize("n", SIZES)
def test_w4_casadi(benchmark, n):
    ca = casadi()
    x = ca.SX.sym("x", n)
    f = ca.sum1(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    call = casadi_vg(ca.Function("rosenbrock", [x], [f, ca.gradient(f, x)]))
    x0 = rosen_point(n)
    check(call(x0), rosen_ref(n), rtol=1e-11)
    run(benchmark, w4(n), PEER_ROLE, call, x0)


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
