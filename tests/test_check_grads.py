"""The classic derivative checks, over every elementwise row of the op table.

In the spirit of autograd's check_grads: each unary, binary and
Var-with-a-number row is recorded through the public API, spelled as the
row's own `sym` reads (operators, ft.exp & co, ft.maximum ...), and checked
at ordinary points and at the edges of its domain (0, +-1, values near
overflow where the function is finite):

* first order: tape.grad, tape.vjp and tape.jvp against central differences
  of the function;
* second order: tape.hessian and tape.hvp against central differences of the
  exact gradient;
* batched calls and eager backward give the one-sample numbers, and the
  kernel and the twin give the same numbers, edge points included.

Edge points where the power rule's plain product is 0 * inf (x ** c at 0 for
c in 0, 1, 2; 0 ** y) are asserted against their closed-form limits.
"""

import importlib
import math
import re

import numpy as np
import pytest

import fasttape as ft
from fasttape import ops, twin

BIG = 1e300
LINE = (0.0, 1.0, -1.0, 0.3, -2.7)
ROWS = [op for op in ops.OPS if op.kind in (ops.UNARY, ops.CONSTANT, ops.BINARY)]


def spelling(op, c=None):
    """The row as a Python function of its Var operand(s): its sym with the
    operands filled in and its function names taken from ft."""
    text = op.sym.format(x="x", y="y", c=f"({c!r})")
    names = {name: getattr(ft, name) for name in re.findall(r"\b([a-z_]\w*)\(", text)}
    return eval(f"lambda {'x, y' if op.kind == ops.BINARY else 'x'}: {text}", names)


# ------------------------------------------------------------------ domains

class Domain:
    """Where a row is checked. points: the points (tuples), or a function of
    the row's constant c giving them; consts: the constants tried. scaled[k]:
    a step in operand k grows with its size (power laws, where the function
    looks the same at every scale), else it stays at unit size (exp, sin);
    or scaled(point) gives each operand's scale.
    rough(point, c): per operand, the distance to the nearest place where the
    function is not smooth (a pole, kink, jump or end of its domain); steps
    stay well inside it, so no difference straddles one."""

    def __init__(self, points, consts=(None,), scaled=(True, True),
                 rough=lambda p, c: math.inf):
        self.points, self.consts, self.scaled, self.rough = points, consts, scaled, rough

    def at(self, c):
        points = self.points(c) if callable(self.points) else self.points
        return [p if isinstance(p, tuple) else (p,) for p in points]

    def step(self, point, c, k):
        if callable(self.scaled):
            scale = self.scaled(point)[k]
        else:
            scale = max(1.0, abs(point[k])) if self.scaled[k] else 1.0
        rough = np.broadcast_to(self.rough(point, c), (len(point),))[k]
        return 1e-3 * min(scale, rough / 4)


def pairs(xs, ys, keep=lambda x, y: True):
    return [(x, y) for x in xs for y in ys if keep(x, y)]


def apart(p, c):
    """Distance to the tie or threshold of a comparison or an extremum."""
    return abs(p[0] - (p[1] if c is None else c))


def distinct(x, y):  # at a tie, maximum splits its gradient: not differentiable
    return x != y


def off_pole(p, c):
    k = round((p[0] - math.pi / 2) / math.pi)
    return abs(p[0] - math.pi / 2 - k * math.pi)


def power_points(c):
    if c == int(c) and c >= 0:  # a polynomial: the whole line, 0 included
        big = 10.0 ** (300 // max(int(c), 1))
        return LINE + (big, -big)
    if c == int(c):  # a negative integer power: both sides of its pole
        return (1.0, -1.0, 0.3, -2.7, 1e-50, 1e100)
    return (1.0, 0.3, 2.7, 1e-50, 1e100)  # real for x > 0 only


def power_rough(p, c):
    return math.inf if (c == int(c) and c >= 0) else abs(p[0])


def rpow_points(c):
    if c == 0.0:  # 0 ** x jumps at x = 0 (1, then 0): checked for x > 0
        return (0.3, 1.0, 2.5)
    big = 700.0 if c == math.e else 1000.0  # c ** x near overflow
    return LINE + (big, -big)


def pow_scales(p):
    """x ** y changes by a factor e over x / |y| in x and over 1 / |log x| in y."""
    return abs(p[0]) / max(1.0, abs(p[1])), 1.0 / max(1.0, abs(math.log(p[0])))


UNIT = (False, False)
DOMAINS = {
    "add": Domain(pairs(LINE, LINE) + [(BIG, -0.5), (-2.7, BIG)]),
    "sub": Domain(pairs(LINE, LINE) + [(BIG, -0.5), (-2.7, BIG)]),
    "mul": Domain(pairs(LINE, LINE) + [(1e150, -1e150), (BIG, 0.5)]),
    "div": Domain(pairs(LINE, (1.0, -1.0, 0.3, -2.7)) + [(BIG, 2.0), (1.0, 1e-100)],
                  rough=lambda p, c: (math.inf, abs(p[1]))),
    # x = 0 is asserted against the closed forms below: a difference in x
    # would leave the domain (x ** y is real for x >= 0 only).
    "pow": Domain(pairs((0.3, 1.0, 2.7, 1e-5), (0.0, 1.0, 2.0, 0.3, -1.5, 2.5))
                  + [(1e5, 60.0), (2.0, 1000.0)], scaled=pow_scales,
                  rough=lambda p, c: (abs(p[0]), math.inf)),
    "maximum": Domain(pairs(LINE, LINE, distinct) + [(BIG, -BIG)], rough=apart),
    "minimum": Domain(pairs(LINE, LINE, distinct) + [(BIG, -BIG)], rough=apart),
    "lt": Domain(pairs(LINE, LINE, distinct) + [(BIG, -BIG)], rough=apart),
    "le": Domain(pairs(LINE, LINE, distinct) + [(BIG, -BIG)], rough=apart),
    "add_c": Domain(LINE + (BIG, -BIG), consts=(1.5, -0.75)),
    "rsub_c": Domain(LINE + (BIG, -BIG), consts=(1.5, -0.75)),
    "mul_c": Domain(LINE + (BIG, -BIG), consts=(3.0, -0.5)),
    "div_c": Domain(LINE + (BIG, -BIG), consts=(4.0, -0.25)),
    "rdiv_c": Domain((1.0, -1.0, 0.3, -2.7, 1e-100, BIG), consts=(2.0, -1.0),
                     rough=lambda p, c: abs(p[0])),
    "pow_c": Domain(power_points, consts=(0.0, 1.0, 2.0, 3.0, 0.5, 2.5, -1.5, -2.0),
                    rough=power_rough),
    "rpow_c": Domain(rpow_points, consts=(2.0, 0.5, math.e, 0.0), scaled=UNIT,
                     rough=lambda p, c: abs(p[0]) if c == 0.0 else math.inf),
    # (a tie with the constant splits the gradient: not differentiable)
    "maximum_c": Domain((0.0, 1.0, -1.0, -2.7, BIG, -BIG), consts=(0.3,), rough=apart),
    "minimum_c": Domain((0.0, 1.0, -1.0, -2.7, BIG, -BIG), consts=(0.3,), rough=apart),
    "neg": Domain(LINE + (BIG, -BIG)),
    "exp": Domain(LINE + (700.0, -700.0), scaled=UNIT),
    "log": Domain((1.0, 0.3, 2.7, 1e-150, BIG), rough=lambda p, c: abs(p[0])),
    "sqrt": Domain((1.0, 0.3, 2.7, 1e-100, BIG), rough=lambda p, c: abs(p[0])),
    "sin": Domain(LINE + (1e4, -1e4), scaled=UNIT),
    "cos": Domain(LINE + (1e4, -1e4), scaled=UNIT),
    "tan": Domain(LINE + (1.5, -1.5, 1.57), scaled=UNIT, rough=off_pole),
    "tanh": Domain(LINE + (20.0, -20.0, 400.0, -400.0), scaled=UNIT),
    "sigmoid": Domain(LINE + (40.0, -40.0, 700.0, -700.0), scaled=UNIT),
    # relu and abs have a kink at 0 (their documented side is tested in test_ops)
    "relu": Domain((1.0, -1.0, 0.3, -2.7, BIG, -BIG), rough=lambda p, c: abs(p[0])),
    "abs": Domain((1.0, -1.0, 0.3, -2.7, BIG, -BIG), rough=lambda p, c: abs(p[0])),
    "log1p": Domain((0.0, 1.0, -0.5, -1.0 + 1e-10, BIG), rough=lambda p, c: abs(1.0 + p[0])),
    "expm1": Domain(LINE + (700.0, -700.0), scaled=UNIT),
}


def inside_unit(p, c):  # arcsin, arccos, arctanh: real and smooth for |x| < 1
    return 1.0 - abs(p[0])


def off_integer(p, c):  # floor, ceil: jumps at the integers
    return abs(p[0] - round(p[0]))


def off_remainder_jump(p, c):
    """fmod and mod jump where x / y is an integer (and fmod where it is 0)."""
    q = p[0] / p[1]
    gap = abs(q - round(q)) * abs(p[1])
    return gap, gap / max(1.0, abs(q))


def off_cut(p, c):
    """arctan2(x, y) is the angle of (y, x): cut along x = 0, y < 0; not
    differentiable at the origin."""
    return min(math.hypot(p[0], p[1]), abs(p[0]) if p[1] < 0 else math.inf)


DOMAINS.update({
    "arcsin": Domain((0.0, 0.3, -0.7, 0.99, -0.99), rough=inside_unit),
    "arccos": Domain((0.0, 0.3, -0.7, 0.99, -0.99), rough=inside_unit),
    "arctan": Domain(LINE + (1e10, -1e10)),
    "sinh": Domain(LINE + (700.0, -700.0), scaled=UNIT),
    "cosh": Domain(LINE + (700.0, -700.0), scaled=UNIT),
    "arcsinh": Domain(LINE + (1e100, -1e100)),
    "arccosh": Domain((1.5, 2.7, 1.0 + 1e-6, 1e100), rough=lambda p, c: p[0] - 1.0),
    "arctanh": Domain((0.0, 0.3, -0.7, 0.99), rough=inside_unit),
    "log2": Domain((1.0, 0.3, 2.7, 1e-150, BIG), rough=lambda p, c: abs(p[0])),
    "log10": Domain((1.0, 0.3, 2.7, 1e-150, BIG), rough=lambda p, c: abs(p[0])),
    "exp2": Domain(LINE + (1000.0, -1000.0), scaled=UNIT),
    "cbrt": Domain((1.0, -1.0, 0.3, -2.7, 1e-100, BIG, -BIG), rough=lambda p, c: abs(p[0])),
    "square": Domain(LINE + (1e150, -1e150)),
    "reciprocal": Domain((1.0, -1.0, 0.3, -2.7, 1e-100, BIG), rough=lambda p, c: abs(p[0])),
    "floor": Domain((0.3, -2.7, 1.5, -0.5, 1e10 + 0.5), rough=off_integer),
    "ceil": Domain((0.3, -2.7, 1.5, -0.5, 1e10 + 0.5), rough=off_integer),
    "sign": Domain((1.0, -1.0, 0.3, -2.7, BIG, -BIG), rough=lambda p, c: abs(p[0])),
    "arctan2": Domain(pairs(LINE, LINE, lambda x, y: not (x == 0.0 and y <= 0.0))
                      + [(1e100, 1.0), (1.0, 1e100)], rough=off_cut),
    "hypot": Domain(pairs(LINE, LINE, lambda x, y: (x, y) != (0.0, 0.0)) + [(BIG, BIG)],
                    rough=lambda p, c: math.hypot(p[0], p[1])),
    "logaddexp": Domain(pairs(LINE, LINE) + [(700.0, -700.0), (-700.0, -700.0)], scaled=UNIT),
    "logaddexp2": Domain(pairs(LINE, LINE) + [(1000.0, -1000.0)], scaled=UNIT),
    "eq": Domain(pairs(LINE, LINE, distinct), rough=apart),
    "ne": Domain(pairs(LINE, LINE, distinct), rough=apart),
    "copysign": Domain(pairs((1.0, -1.0, 0.3, -2.7), (1.0, -1.0, 0.3, -2.7)),
                       rough=lambda p, c: min(abs(p[0]), abs(p[1]))),
    "fmod": Domain(pairs((2.7, -2.7, 0.3, 5.3), (1.0, -2.0, 0.7)), rough=off_remainder_jump),
    "mod": Domain(pairs((2.7, -2.7, 0.3, 5.3), (1.0, -2.0, 0.7)), rough=off_remainder_jump),
    "fmax": Domain(pairs(LINE, LINE, distinct) + [(BIG, -BIG)], rough=apart),
    "fmin": Domain(pairs(LINE, LINE, distinct) + [(BIG, -BIG)], rough=apart),
})


def domain(op):
    """A row's domain; a row added later without one is checked on the line
    (and, for a comparison, its tie is a jump whose differences are 0)."""
    if op.name in DOMAINS:
        return DOMAINS[op.name]
    if op.kind == ops.BINARY:
        return Domain(pairs(LINE, LINE), rough=apart)
    if op.kind == ops.CONSTANT:
        return Domain(LINE, consts=(1.5,), rough=apart)
    return Domain(LINE)


CASES = [(op, c) for op in ROWS for c in domain(op).consts]
IDS = [op.name if c is None else f"{op.name}-{c:g}" for op, c in CASES]


def test_every_row_is_checked_at_a_point_and_traced_as_itself():
    assert {op.name for op, _ in CASES} == {op.name for op in ROWS}
    for op, c in CASES:
        point = domain(op).at(c)[0]
        assert op.code in ft.trace(spelling(op, c), *point)._program.op, op.name


# ------------------------------------------------------------ differences

def differences(f, point, k, h):
    """d f / d point[k] by central differences at steps h and h / 2, with
    Richardson's extrapolation (error of order h**4), and the rounding noise
    to allow for (the function's size over the step, times a safe margin)."""
    def central(step):
        up, down = list(point), list(point)
        up[k] += step
        down[k] -= step
        fu, fd = np.asarray(f(*up), float), np.asarray(f(*down), float)
        size = max(np.max(np.abs(fu)), np.max(np.abs(fd)))
        return (fu - fd) / (up[k] - down[k]), size
    (wide, s1), (narrow, s2) = central(h), central(h / 2)
    return (4.0 * narrow - wide) / 3.0, 1e-13 * max(s1, s2) / h


def assert_close(exact, estimate, noise, what):
    exact, estimate, noise = np.broadcast_arrays(np.asarray(exact, float),
                                                 np.asarray(estimate, float), noise)
    ok = (exact == estimate) | (np.abs(exact - estimate) <= 1e-6 * np.abs(estimate) + noise)
    assert ok.all(), f"{what}: exact {exact.tolist()}, differences {estimate.tolist()}"


# ------------------------------------------------------------ the checks

def check_point(tape, fn, dom, point, c, label, rng):
    n = len(point)
    wrt = tuple(range(n))
    steps = [dom.step(point, c, k) for k in wrt]
    at = f"{label} at {point}"

    # first order, against differences of the function
    value, grad = tape.value_and_grad(*point, wrt=wrt)
    fd, noise = map(np.array, zip(*(differences(tape, point, k, steps[k]) for k in wrt)))
    assert_close(grad, fd, noise, f"grad of {at}")
    w = rng.normal()
    assert_close(tape.vjp(point, w), w * fd, abs(w) * noise, f"vjp of {at}")
    v = rng.normal(size=n)
    _, tangent = tape.jvp(point, tuple(v))
    assert_close(tangent, fd @ v, noise @ np.abs(v), f"jvp of {at}")

    # second order, against differences of the exact gradient
    def exact_grad(*q):
        return tape.grad(*q, wrt=wrt)
    columns = [differences(exact_grad, point, k, steps[k]) for k in wrt]
    H_fd = np.array([col for col, _ in columns]).T  # H_fd[:, k]: d grad / d point[k]
    H_noise = np.array([nz for _, nz in columns])
    H = np.array(tape.hessian(*point, wrt=wrt), float).reshape(n, n)
    assert_close(H, H_fd, H_noise[None, :], f"hessian of {at}")
    assert_close(tape.hvp(point, tuple(v), wrt=wrt), H_fd @ v, H_noise @ np.abs(v),
                 f"hvp of {at}")

    # eager recording and backward: the tape's numbers
    xs = [ft.Var(q) for q in point]
    out = fn(*xs)
    out.backward()
    assert out.value == value
    np.testing.assert_allclose([x.grad for x in xs], grad, rtol=1e-14, atol=0, err_msg=at)


@pytest.mark.parametrize("op, c", CASES, ids=IDS)
def test_derivatives_match_finite_differences(op, c):
    dom, fn = domain(op), spelling(op, c)
    points = dom.at(c)
    tape = ft.trace(fn, *points[0])
    rng = np.random.default_rng(op.code)
    for point in points:
        check_point(tape, fn, dom, point, c, IDS[CASES.index((op, c))], rng)


# ------------------------------------------------- batches, and the two backends

def sweeps(tape, args, tangents, cotangent, in_axes=None):
    """The numbers of value_and_grad, jvp, vjp, hvp and hessian by every
    argument, in order (per sample when batched)."""
    wrt, kw = tuple(range(len(args))), {"in_axes": in_axes}
    out = [tape.value_and_grad(*args, wrt=wrt, **kw), tape.jvp(args, tangents, **kw),
           tape.vjp(args, cotangent, **kw), tape.hvp(args, tangents, wrt=wrt, **kw),
           tape.hessian(*args, wrt=wrt, **kw)]
    return np.array([np.asarray(u, float) for u in flat(out)])


def flat(tree):
    """The numbers of nested tuples and lists, in order."""
    if isinstance(tree, (tuple, list)):
        return [leaf for item in tree for leaf in flat(item)]
    return [tree]


@pytest.mark.parametrize("op, c", CASES, ids=IDS)
def test_batched_sweeps_give_the_one_sample_numbers(op, c):
    points = domain(op).at(c)
    tape = ft.trace(spelling(op, c), *points[0])
    rng = np.random.default_rng(op.code)
    V, w = rng.normal(size=(len(points), len(points[0]))), rng.normal(size=len(points))
    cols = tuple(np.array(col) for col in zip(*points))
    batched = sweeps(tape, cols, tuple(V.T), w, in_axes=(0,) * len(cols))
    single = [sweeps(tape, p, tuple(V[b]), w[b]) for b, p in enumerate(points)]
    np.testing.assert_allclose(batched.T, single, rtol=1e-14, atol=0)


def other_backend_runs(tape, X, V, w):
    """Program.run of the kernel and of the twin on the same tape: every
    input batched, with a seed and tangents, forward over reverse."""
    try:
        core = importlib.import_module("fasttape.backend")._compiled()
    except ImportError as e:  # (a checkout without a built kernel)
        pytest.skip(f"no compiled kernel: {e}")
    p0 = tape._program
    nodes = np.arange(p0.n_inputs, dtype=np.int32)
    results = []
    for Program in (core.Program, twin.Program):
        p = Program(p0.op, p0.a, p0.b, p0.pool, p0.args, p0.n_inputs, p0.outputs)
        results.append(p.run(np.zeros(0), np.zeros(0, np.int32), X, nodes, len(X),
                             seed=w[:, None], shared_tangent=np.zeros(0), batch_tangent=V,
                             hvp=True))
    return results


# the edge points of the power rows, where the kernel and the twin must agree too
EDGES = {"pow": [(0.0, y) for y in (0.0, 0.3, 1.0, 2.0, 2.5, -1.0)],
         "pow_c": [(0.0,)], "rpow_c": [(0.0,), (0.3,), (-1.0,)]}


@pytest.mark.parametrize("op, c", CASES, ids=IDS)
def test_the_kernel_and_the_twin_agree(op, c):
    points = domain(op).at(c) + EDGES.get(op.name, [])
    tape = ft.trace(spelling(op, c), *points[0])
    rng = np.random.default_rng(op.code)
    X = np.array(points, float)
    V = rng.normal(size=X.shape)
    V[::2, 0] = 0.0  # zero tangents: an operand that does not move
    w = rng.normal(size=len(X))
    kernel, python = other_backend_runs(tape, X, V, w)
    for k, t in zip(kernel, python):
        np.testing.assert_allclose(k, t, rtol=1e-12, atol=0)  # (NaN where both give NaN)


# ------------------------------------------------------------- edge points

def sweeps_at(fn, point, k):
    """d fn / d point[k] and d2 fn / d point[k]2 from every sweep: grad,
    vjp, jvp, hessian and hvp (with the other operands held still), one
    sample and in a batch with an ordinary point, and eager backward."""
    n = len(point)
    e = tuple(1.0 if j == k else 0.0 for j in range(n))
    tape = ft.trace(fn, *point)
    first = {"grad": tape.grad(*point, wrt=k), "vjp": tape.vjp(point, 1.0)[k],
             "jvp": tape.jvp(point, e)[1]}
    second = {"hessian": tape.hessian(*point, wrt=k), "hvp": tape.hvp(point, 1.0, wrt=k),
              "full hessian": np.reshape(tape.hessian(*point, wrt=tuple(range(n))),
                                         (n, n))[k, k]}
    cols = tuple(np.array([q, 0.5]) for q in point)  # lane 0 the edge, lane 1 ordinary
    axes = (0,) * n
    first["batched grad"] = tape.grad(*cols, wrt=k, in_axes=axes)[0]
    first["batched vjp"] = tape.vjp(cols, np.ones(2), in_axes=axes)[k][0]
    first["batched jvp"] = tape.jvp(cols, tuple(np.full(2, t) for t in e), in_axes=axes)[1][0]
    second["batched hessian"] = tape.hessian(*cols, wrt=k, in_axes=axes)[0]
    second["batched hvp"] = tape.hvp(cols, np.ones(2), wrt=k, in_axes=axes)[0]
    xs = [ft.Var(q) for q in point]
    fn(*xs).backward()
    first["eager"] = xs[k].grad
    return first, second


def assert_every_sweep(fn, point, k, d, dd):
    first, second = sweeps_at(fn, point, k)
    assert first == {name: d for name in first}, (point, first)
    assert second == {name: dd for name in second}, (point, second)


POWER_AT_ZERO = {0: (0.0, 0.0), 1: (1.0, 0.0), 2: (0.0, 2.0)}  # c: d/dx, d2/dx2 of x**c at 0


@pytest.mark.parametrize("c", sorted(POWER_AT_ZERO))
def test_power_rule_takes_its_limit_at_zero(c):
    """d/dx x**c at 0 is c * 0**(c - 1) = 0 * inf for c = 0 and the second
    derivative c * (c - 1) * 0**(c - 2) = 0 * inf for c = 0, 1; the limits
    are 0 (x**0 is constant, x**1 linear). With c a number and with c a Var."""
    d, dd = POWER_AT_ZERO[c]
    assert_every_sweep(lambda x: x ** float(c), (0.0,), 0, d, dd)
    assert_every_sweep(lambda x: x ** c, (0.0,), 0, d, dd)
    assert_every_sweep(lambda x, y: x ** y, (0.0, float(c)), 0, d, dd)


@pytest.mark.parametrize("y", [0.3, 1.0, 2.0, 2.5])
def test_zero_to_a_positive_power_is_flat(y):
    """0**y = 0 for every y > 0, so d/dy and d2/dy2 are 0, not
    0 * log(0) = 0 * -inf; with 0 a number and with 0 a Var. For y > 1 the
    whole Hessian of x**y at x = 0 is its limit: d2/dx2 = y (y - 1) 0**(y - 2)
    (2 at y = 2, else 0), and the mixed x**(y - 1) (1 + y log x) -> 0. (For
    0 < y <= 1 the mixed partial has no finite limit: it is not asserted.)"""
    assert_every_sweep(lambda t: 0.0 ** t, (y,), 0, 0.0, 0.0)
    assert_every_sweep(lambda x, t: x ** t, (0.0, y), 1, 0.0, 0.0)
    if y > 1.0:
        tape = ft.trace(lambda x, t: x ** t, 0.0, y)
        H = np.array(tape.hessian(0.0, y, wrt=(0, 1)), float).reshape(2, 2)
        np.testing.assert_array_equal(H, [[2.0 if y == 2.0 else 0.0, 0.0], [0.0, 0.0]])
        v = (0.7, -1.3)
        np.testing.assert_array_equal(tape.hvp((0.0, y), v, wrt=(0, 1)), H @ v)


def test_an_operand_that_does_not_move_adds_nothing():
    """Forward mode along a direction with a zero component: an infinite
    partial by that operand (d/dx sqrt(x) at 0) is not multiplied by the
    zero, as a zero adjoint in reverse mode is not."""
    tape = ft.trace(lambda x, y: x.sqrt() + 3.0 * y, 0.0, 2.0)
    assert tape.jvp((0.0, 2.0), (0.0, 1.0))[1] == 3.0
    _, t = tape.jvp((np.zeros(2), np.full(2, 2.0)), (np.zeros(2), np.ones(2)), in_axes=(0, 0))
    assert t.tolist() == [3.0, 3.0]
    assert tape.jvp((0.0, 2.0), (1.0, 1.0))[1] == np.inf  # where it moves, the partial counts
