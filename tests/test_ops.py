"""One gradient checker for every row of the op table, on the selected backend.

Each op has a case here: how the front end records it, an independent NumPy
reference for its value, and points in its domain. The checker asserts that
the traced tape really uses the op, that its value matches the reference,
that its gradient matches central differences, and that vjp and jvp agree
with the gradient. A row of the table without a case fails the suite.
"""

import importlib

import numpy as np
import pytest

import fasttape as ft
from fasttape import ops

rng = np.random.default_rng(0)


def anywhere(n):
    return rng.uniform(-2.0, 2.0, size=n)


def positive(n):
    return rng.uniform(0.2, 3.0, size=n)


def nonzero(n):
    return rng.choice([-1.0, 1.0], size=n) * rng.uniform(0.2, 2.0, size=n)


def sample(*domains):
    return [np.array([d(1)[0] for d in domains]) for _ in range(4)]


TIES = [np.array([0.5, 0.5]), np.array([0.3, -1.2]), np.array([-1.5, -1.5])]
TIES_C = [np.array([0.5]), np.array([-0.7])]

# name: (front-end function, NumPy reference, points)
CASES = {
    "input": (lambda x: x, lambda x: x, sample(anywhere)),
    "const": (lambda x: 2.5, lambda x: 2.5, sample(anywhere)),
    "add": (lambda x, y: x + y, np.add, sample(anywhere, anywhere)),
    "sub": (lambda x, y: x - y, np.subtract, sample(anywhere, anywhere)),
    "mul": (lambda x, y: x * y, np.multiply, sample(anywhere, anywhere)),
    "div": (lambda x, y: x / y, np.divide, sample(anywhere, nonzero)),
    "pow": (lambda x, y: x ** y, np.power, sample(positive, anywhere)),
    "maximum": (ft.maximum, np.maximum, sample(anywhere, anywhere)),
    "minimum": (ft.minimum, np.minimum, sample(anywhere, anywhere)),
    "add_c": (lambda x: x - 1.5, lambda x: x - 1.5, sample(anywhere)),
    "rsub_c": (lambda x: 2.5 - x, lambda x: 2.5 - x, sample(anywhere)),
    "mul_c": (lambda x: 3 * x, lambda x: 3 * x, sample(anywhere)),
    "div_c": (lambda x: x / 4.0, lambda x: x / 4.0, sample(anywhere)),
    "rdiv_c": (lambda x: 2.0 / x, lambda x: 2.0 / x, sample(nonzero)),
    "pow_c": (lambda x: x ** 3 + x ** 2 + x ** 0.5, lambda x: x ** 3 + x ** 2 + np.sqrt(x),
              sample(positive)),
    "rpow_c": (lambda x: 2.0 ** x, lambda x: np.power(2.0, x), sample(anywhere)),
    "maximum_c": (lambda x: ft.maximum(x, 0.3), lambda x: np.maximum(x, 0.3), sample(anywhere)),
    "minimum_c": (lambda x: ft.minimum(0.3, x), lambda x: np.minimum(x, 0.3), sample(anywhere)),
    "neg": (lambda x: -x, np.negative, sample(anywhere)),
    "exp": (lambda x: x.exp(), np.exp, sample(anywhere)),
    "log": (lambda x: x.log(), np.log, sample(positive)),
    "sqrt": (lambda x: x.sqrt(), np.sqrt, sample(positive)),
    "sin": (lambda x: x.sin(), np.sin, sample(anywhere)),
    "cos": (lambda x: x.cos(), np.cos, sample(anywhere)),
    "tan": (lambda x: x.tan(), np.tan, sample(lambda n: rng.uniform(-1.2, 1.2, n))),
    "tanh": (lambda x: x.tanh(), np.tanh, sample(anywhere)),
    "sigmoid": (lambda x: x.sigmoid(), lambda x: 0.5 * (1 + np.tanh(x / 2)), sample(anywhere)),
    "relu": (lambda x: x.relu(), lambda x: np.where(x > 0, x, 0.0), sample(nonzero)),
    "abs": (lambda x: abs(x), np.abs, sample(nonzero)),
    "log1p": (lambda x: x.log1p(), lambda x: np.log(1 + x), sample(lambda n: rng.uniform(-0.8, 3, n))),
    "expm1": (lambda x: x.expm1(), lambda x: np.exp(x) - 1, sample(anywhere)),
    "sum": (lambda x, y: ft.sum([x, y, x, 1.5]), lambda x, y: 2 * x + y + 1.5,
            sample(anywhere, anywhere)),
    "dot": (lambda x, y: ft.dot([x, y, x], [y, x, x]), lambda x, y: 2 * x * y + x * x,
            sample(anywhere, anywhere)),
    "dotc": (lambda x, y: ft.dot([2.0, -3.0], [x, y]), lambda x, y: 2 * x - 3 * y,
             sample(anywhere, anywhere)),
    "lt": (lambda x, y: (x < y) * x, lambda x, y: (x < y) * x, sample(anywhere, anywhere)),
    "le": (lambda x, y: (x <= y) + (y >= x), lambda x, y: 2.0 * (x <= y), sample(anywhere, anywhere)),
    "lt_c": (lambda x: (x < 0.5) * x, lambda x: (x < 0.5) * x, sample(anywhere)),
    "le_c": (lambda x: (x <= 0.5) * x, lambda x: (x <= 0.5) * x, sample(anywhere)),
    "gt_c": (lambda x: (x > 0.5) * x + (0.5 < x), lambda x: (x > 0.5) * (x + 1), sample(anywhere)),
    "ge_c": (lambda x: (x >= 0.5) * x, lambda x: (x >= 0.5) * x, sample(anywhere)),
    # Equality holds on a set of measure zero, so the branches agree to second
    # order at the tie (the differences stay valid) and differ in value elsewhere.
    "eq": (lambda x, y: ft.where(x == y, x * y, x * y + (x - y) ** 3),
           lambda x, y: np.where(x == y, x * y, x * y + (x - y) ** 3), TIES),
    "ne": (lambda x, y: ft.where(x != y, x * y + (x - y) ** 3, x * y),
           lambda x, y: np.where(x != y, x * y + (x - y) ** 3, x * y), TIES),
    "eq_c": (lambda x: ft.where(x == 0.5, x * x, x * x + (x - 0.5) ** 3),
             lambda x: np.where(x == 0.5, x * x, x * x + (x - 0.5) ** 3), TIES_C),
    "ne_c": (lambda x: ft.where(0.5 != x, x * x + (x - 0.5) ** 3, x * x),
             lambda x: np.where(x != 0.5, x * x + (x - 0.5) ** 3, x * x), TIES_C),
    "arcsin": (ft.arcsin, np.arcsin, sample(lambda n: rng.uniform(-0.9, 0.9, n))),
    "arccos": (ft.arccos, np.arccos, sample(lambda n: rng.uniform(-0.9, 0.9, n))),
    "arctan": (ft.arctan, np.arctan, sample(anywhere)),
    "sinh": (ft.sinh, np.sinh, sample(anywhere)),
    "cosh": (ft.cosh, np.cosh, sample(anywhere)),
    "arcsinh": (ft.arcsinh, np.arcsinh, sample(anywhere)),
    "arccosh": (ft.arccosh, np.arccosh, sample(lambda n: rng.uniform(1.2, 3.0, n))),
    "arctanh": (ft.arctanh, np.arctanh, sample(lambda n: rng.uniform(-0.9, 0.9, n))),
    "log2": (ft.log2, np.log2, sample(positive)),
    "log10": (ft.log10, np.log10, sample(positive)),
    "exp2": (ft.exp2, np.exp2, sample(anywhere)),
    "cbrt": (ft.cbrt, np.cbrt, sample(nonzero)),
    "square": (ft.square, np.square, sample(anywhere)),
    "reciprocal": (ft.reciprocal, lambda x: 1.0 / x, sample(nonzero)),
    # (piecewise constant: a gradient of 0 away from the jumps; x added so the
    # tape has an input to differentiate)
    "floor": (lambda x: ft.floor(x) + x, lambda x: np.floor(x) + x,
              sample(lambda n: rng.uniform(0.1, 0.9, n) + rng.integers(-2, 2, n))),
    "ceil": (lambda x: ft.ceil(x) + x, lambda x: np.ceil(x) + x,
             sample(lambda n: rng.uniform(0.1, 0.9, n) + rng.integers(-2, 2, n))),
    "sign": (lambda x: ft.sign(x) * 3.0 + x, lambda x: np.sign(x) * 3.0 + x, sample(nonzero)),
    "arctan2": (ft.arctan2, np.arctan2, sample(anywhere, nonzero)),
    "hypot": (ft.hypot, np.hypot, sample(nonzero, nonzero)),
    "logaddexp": (ft.logaddexp, np.logaddexp, sample(anywhere, anywhere)),
    "logaddexp2": (ft.logaddexp2, np.logaddexp2, sample(anywhere, anywhere)),
    "copysign": (ft.copysign, np.copysign, sample(nonzero, nonzero)),
    # (away from the jumps of the remainder: x / y not near an integer)
    "fmod": (ft.fmod, np.fmod, [np.array([2.7, 1.0]), np.array([-2.7, 1.0]),
                                np.array([5.3, -2.0])]),
    "mod": (ft.mod, np.mod, [np.array([2.7, 1.0]), np.array([-2.7, 1.0]),
                             np.array([5.3, -2.0])]),
    "fmax": (ft.fmax, np.fmax, sample(anywhere, anywhere)),
    "fmin": (ft.fmin, np.fmin, sample(anywhere, anywhere)),
    "guard": (lambda x: x * 2.0 if x > 0.5 else x * 3.0, lambda x: 2 * x,
              sample(lambda n: rng.uniform(1.0, 2.0, n))),
    "where": (lambda x, y: ft.where(x > y, x * y, x - y), lambda x, y: np.where(x > y, x * y, x - y),
              sample(anywhere, anywhere)),
}


def test_every_row_has_a_case():
    assert set(CASES) == {op.name for op in ops.OPS}


def central_difference(f, point, k, h=1e-6):
    step = h * max(1.0, abs(point[k]))
    up, down = point.copy(), point.copy()
    up[k] += step
    down[k] -= step
    return (f(*up) - f(*down)) / (2 * step)


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradient_check(name):
    build, reference, points = CASES[name]
    arity = len(points[0])
    tape = ft.trace(build, *points[0])
    assert ops.CODE[name] in tape._program.op, f"{name} was not recorded as its own op"
    wrt = tuple(range(arity))
    for point in points:
        value, grad = tape.value_and_grad(*point, wrt=wrt)
        assert value == pytest.approx(float(reference(*point)), rel=1e-13, abs=1e-14)
        numeric = [central_difference(tape, point, k) for k in wrt]
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)
        assert tape.vjp(point, 1.0) == pytest.approx(grad, rel=1e-14, abs=0)
        direction = rng.normal(size=arity)
        _, tangent = tape.jvp(point, direction)
        assert tangent == pytest.approx(float(np.dot(grad, direction)), rel=1e-12, abs=1e-14)
        if name not in ("const",):
            numeric_h = [[central_difference(lambda *p: tape.grad(*p, wrt=j), point, k)
                          for k in wrt] for j in wrt]
            hess = tape.hessian(*point, wrt=wrt)
            np.testing.assert_allclose(np.array(hess, dtype=float), numeric_h, rtol=1e-5, atol=1e-6)
            v = rng.normal(size=arity)
            hv = tape.hvp(point, tuple(v), wrt=wrt)
            assert hv == pytest.approx(list(np.array(hess, dtype=float) @ v), rel=1e-12, abs=1e-12)
        eager = [ft.Var(v) for v in point]
        out = build(*eager)
        if isinstance(out, ft.Var):  # the const case returns a plain number
            out.backward()
            assert out.value == value
            assert [v.grad for v in eager] == pytest.approx(list(grad), rel=1e-14, abs=0)


@pytest.mark.parametrize("name", sorted(CASES))
def test_batched_lanes_match_single_calls(name):
    """Every op over many lanes at once equals the one-sample replay."""
    build, _, points = CASES[name]
    arity = len(points[0])
    tape = ft.trace(build, *points[0])
    X = np.array([points[k % len(points)] + 1e-3 * k for k in range(41)])
    cols = [X[:, j] for j in range(arity)]
    values, grads = tape.value_and_grad(*cols, wrt=tuple(range(arity)),
                                        in_axes=(0,) * arity)
    for b in range(len(X)):
        v, g = tape.value_and_grad(*X[b], wrt=tuple(range(arity)))
        assert values[b] == pytest.approx(v, rel=1e-15, abs=0)
        assert [grads[j][b] for j in range(arity)] == pytest.approx(list(g), rel=1e-15, abs=0)


def test_maximum_tie_splits_the_gradient():
    """Like JAX: at x == y each side gets half."""
    g = ft.grad(lambda x, y: ft.maximum(x, y), argnums=(0, 1))(1.5, 1.5)
    assert g == (0.5, 0.5)
    g = ft.grad(lambda x, y: ft.minimum(x, y), argnums=(0, 1))(-2.0, -2.0)
    assert g == (0.5, 0.5)


def test_kinks_take_the_documented_side():
    assert ft.grad(lambda x: x.relu())(0.0) == 0.0
    assert ft.grad(lambda x: abs(x))(0.0) == 0.0
    assert ft.grad(lambda x, y: x ** y, argnums=1)(0.0, 2.0) == 0.0


def test_square_is_exact():
    x = 1.0 + 2.0 ** -30
    assert ft.trace(lambda v: v ** 2, x)(x) == x * x


def test_nan_propagates_through_maximum_like_numpy():
    f = ft.trace(lambda x, y: ft.maximum(x, y), 0.0, 0.0)
    assert np.isnan(f(np.nan, 1.0)) and np.isnan(f(1.0, np.nan))
    assert np.isnan(ft.trace(lambda x: x.relu(), 1.0)(np.nan))


def test_kernel_is_built_from_this_table(monkeypatch):
    """The kernel's cases are generated from the op and kind tables at build
    time; the build records what it was made from (formulas and templates
    included), and the backend refuses a build made from other tables."""
    core = pytest.importorskip("fasttape._core")
    assert core.OP_TABLE == ops.signature()
    from fasttape._kernel import codegen
    backend = importlib.import_module("fasttape.backend")  # (ft.backend is its name)
    text = codegen.generate()
    for op in ops.OPS:
        if op.fwd and op.kind != ops.INPUT:
            assert f"# {op.name}\n" in text and op.fwd in text
    row = ops.BY_NAME["tanh"]  # a formula changed since the build: refused
    changed = tuple(o._replace(d0="1.0 - f") if o is row else o for o in ops.OPS)
    monkeypatch.setattr(ops, "OPS", changed)
    with pytest.raises(ImportError, match="different op table"):
        backend._compiled()


def test_every_formula_uses_known_names():
    import ast
    known = set(ops.NUMPY_NAMES) | {"x", "y", "c", "f"}
    for op in ops.OPS:
        for expr in (op.fwd, op.d0, op.d1, op.d00, op.d01, op.d11):
            if expr:
                names = {n.id for n in ast.walk(ast.parse(expr)) if isinstance(n, ast.Name)}
                assert names <= known, (op.name, names - known)
