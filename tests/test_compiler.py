"""The passes between recording and sweeping (fasttape/compiler.py): each
rewrites the tape it should, and changes no value or derivative: against
the same function traced with the passes off, and against central finite
differences. Runs on whichever backend FASTTAPE_BACKEND selects."""

import numpy as np
import pytest

import fasttape as ft
from fasttape import compiler, kinds, ops

rng = np.random.default_rng(14)


def names(tape):
    """The op names of a traced tape's nodes past its inputs."""
    p = tape._program
    return [ops.OPS[o].name for o in p.op[p.n_inputs:]]


def traced(fn, *args, passes="all"):
    with ft.set_passes(passes):
        return ft.trace(fn, *args)


def central(fn, args, k, h=1e-6):
    """Central differences of a scalar fn by argument k (a float or an array)."""
    x = np.array(args[k], dtype=float)
    g = np.zeros(x.shape)
    for i in np.ndindex(x.shape):
        up, down = [list(args), list(args)]
        for arr, s in ((up, h), (down, -h)):
            y = x.copy()
            y[i] += s
            arr[k] = float(y) if y.ndim == 0 else y
        g[i] = (fn(*up) - fn(*down)) / (2 * h)
    return float(g) if g.ndim == 0 else g


def check_unchanged(fn, *args, passes="all", plain=None):
    """fn traced with `passes` against fn traced with none: the same values
    (to the bit), gradients, Hessian-vector products, batched gradients, and
    the gradient against finite differences (plain: fn on floats)."""
    on, off = traced(fn, *args, passes=passes), traced(fn, *args, passes="none")
    wrt = tuple(range(len(args)))
    value, grads = on.value_and_grad(*args, wrt=wrt)
    value_off, grads_off = off.value_and_grad(*args, wrt=wrt)
    assert value == value_off
    for g, g_off, k in zip(grads, grads_off, wrt):
        np.testing.assert_allclose(g, g_off, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(g, central(plain or on, args, k), rtol=1e-6, atol=1e-8)
    v = tuple(np.ones(np.shape(a)) if np.ndim(a) else 1.0 for a in args)
    np.testing.assert_allclose(np.hstack([np.ravel(h) for h in on.hvp(args, v, wrt=wrt)]),
                               np.hstack([np.ravel(h) for h in off.hvp(args, v, wrt=wrt)]),
                               rtol=1e-12, atol=1e-14)
    batch = tuple(np.stack([np.asarray(a) * s for s in (1.0, 0.5, -1.5)]) for a in args)
    got = on.value_and_grad(*batch, wrt=wrt, in_axes=0)
    want = off.value_and_grad(*batch, wrt=wrt, in_axes=0)
    np.testing.assert_array_equal(got[0], want[0])
    for g, g_off in zip(got[1], want[1]):
        np.testing.assert_allclose(g, g_off, rtol=1e-13, atol=1e-15)
    return on, off


def test_constant_folding_makes_constant_expressions_one_constant():
    def f(x):
        c = ft.Var(3.0)  # made inside the traced function: a constant
        d = c * c + ft.Var(0.5) / c - ft.sqrt(c)  # exact ops of constants: folded
        return x * d + ft.exp(c) * x  # exp: not IEEE-exact, kept

    on, off = check_unchanged(f, 1.25, passes=("fold",))
    assert "mul" in names(off) and names(on).count("const") == 2
    assert "exp" in names(on) and "sqrt" not in names(on) and len(on) < len(off)


def test_folding_keeps_a_non_finite_result_where_it_happens():
    def f(x):
        return x + ft.Var(1.0) / ft.Var(0.0)  # inf: check_finite names the division

    tape = traced(f, 1.0, passes=("fold",))
    assert "div" in names(tape) and tape(1.0) == np.inf


def test_common_subexpressions_become_one_node():
    def f(x, y):
        return ft.sin(x * y) * ft.sin(y * x) + ft.exp(x + 1.0) + ft.exp(x + 1.0)

    on, off = check_unchanged(f, 0.7, -1.3, passes=("cse",))
    assert names(off).count("sin") == 2 and names(on).count("sin") == 1
    assert names(on).count("mul") == 2 and names(on).count("exp") == 1  # x * y, sin * sin


def test_cse_keeps_outputs_and_guards():
    def f(x, y):
        a, b = x * y, y * x
        if x * y > 0.0:  # a guard on a third copy
            return (a, b, a + b)
        return (a, b, a - b)

    on = traced(f, 2.0, 3.0, passes=("cse",))
    assert on(2.0, 3.0) == (6.0, 6.0, 12.0) and names(on).count("mul") == 1
    assert on.jacobian(2.0, 3.0) == (3.0, 3.0, 6.0)
    with pytest.raises(ft.GuardError):
        on(-2.0, 3.0)


def test_add_chains_become_one_sum():
    def f(x):
        s = x[0]
        for k in range(1, len(x)):
            s = s + ft.sin(x[k])
        return s * s

    x = rng.normal(size=7)
    on, off = check_unchanged(f, x, passes=("sums",))
    assert names(off).count("add") == 6 and names(on).count("add") == 0
    assert names(on).count("sum") == 1


def test_adds_of_arrays_stay_runs():
    def f(x, y, z):
        return np.sum(np.sin(x + y + z))

    x, y, z = rng.normal(size=(3, 6))
    on, off = check_unchanged(f, x, y, z)
    assert names(on) == names(off) and names(on).count("add") == 12


def test_a_sum_from_zero_keeps_its_order():
    def f(x):
        s = 0.0
        for v in x:
            s = s + ft.exp(v)
        return s

    on, off = check_unchanged(f, rng.normal(size=5), passes=("sums",))
    assert names(on).count("sum") == 1 and "add_c" not in names(on)


def test_sums_of_products_become_dots():
    def f(x, w):
        s = 0.0
        for k in range(len(x)):
            s = s + x[k] * w[k]
        return ft.tanh(s)

    x, w = rng.normal(size=6), rng.normal(size=6)
    on, off = check_unchanged(f, x, w, passes=("sums", "dots"))
    assert names(off).count("mul") == 6 and names(on) == ["dot", "tanh"]


def test_sums_of_products_by_numbers_become_dotc():
    cs = rng.normal(size=5)

    def f(x):
        s = 2.0 * x[0]
        for k in range(1, len(x)):
            s = s + cs[k] * x[k]
        return s * s

    on, off = check_unchanged(f, rng.normal(size=5), passes=("sums", "dots"))
    assert names(on) == ["dotc", "mul"]


def test_a_product_read_elsewhere_stays():
    def f(x, w):
        p = x[0] * w[0]
        return (p + x[1] * w[1] + x[2] * w[2]) * p

    on, _ = check_unchanged(f, rng.normal(size=3), rng.normal(size=3))
    assert "dot" not in names(on) and names(on).count("sum") == 1


def test_every_pass_together_on_a_layer_written_by_hand():
    W, b = rng.normal(size=(4, 3)), rng.normal(size=4)

    def f(x):
        out = 0.0
        for r in range(4):
            z = b[r] + 0.0
            for j in range(3):
                z = z + W[r, j] * x[j]
            out = out + ft.tanh(z) * ft.tanh(z)
        return out

    on, off = check_unchanged(f, rng.normal(size=3))
    assert len(on) < len(off) and names(on).count("tanh") == 4


def test_schedule_groups_like_nodes_into_runs():
    def f(x):  # a Python loop over elements: exp, mul, add for each in turn
        return ft.sum([ft.exp(v) * 2.0 + 1.0 for v in x])

    on, off = check_unchanged(f, np.linspace(-1.0, 1.0, 40), passes=("schedule",))
    assert sorted(names(on)) == sorted(names(off))
    assert runs(off) > 100 and runs(on) <= 5


def runs(tape):
    """Runs of like nodes: the same op (and constant), operands one further."""
    p = tape._program
    op, a, b = p.op[p.n_inputs:], p.a[p.n_inputs:], p.b[p.n_inputs:]
    kind = ops.KIND_CODE[op[1:]]
    joins = (op[1:] == op[:-1]) & (a[1:] == a[:-1] + 1)
    joins &= ~kinds.B_NODE[kind] | (b[1:] == b[:-1] + 1)
    joins &= ~kinds.B_POOL[kind] | (b[1:] == b[:-1])
    return len(op) - int(joins.sum())


def test_schedule_keeps_guards_in_their_order():
    def f(x, y):
        s = ft.exp(x) * y
        if y > 0.0:
            s = s + 1.0
        if x > 0.0:
            s = s * 2.0
        return s + ft.exp(y) * x

    for passes in ("all", "none"):
        tape = traced(f, 1.0, 1.0, passes=passes)
        with pytest.raises(ft.GuardError, match=r"y > 0"):
            tape(-1.0, -1.0)  # both miss: the first, as traced, is reported
        np.testing.assert_allclose(tape.grad(0.5, 2.0, wrt=(0, 1)),
                                   (2 * np.exp(0.5) * 2.0 + np.exp(2.0),
                                    2 * np.exp(0.5) + 0.5 * np.exp(2.0)), rtol=1e-14)


def test_set_passes_restores_and_checks_names():
    before = compiler.enabled()
    with ft.set_passes(("dots", "cse")) as s:
        assert s.previous == before and compiler.enabled() == ("cse", "dots")
    assert compiler.enabled() == before
    with pytest.raises(ValueError, match="unknown pass 'loop'"):
        ft.set_passes(("loop",))


VALUES = (0.0, -0.0, 1.0 / 3.0, -2.5, 5e-324, 1e300, 7.0)


@pytest.mark.parametrize("name", compiler._EXACT)
def test_a_folded_constant_has_the_bits_the_sweep_computes(name):
    """Each foldable op on tricky constants (signed zeros, a subnormal, a huge
    number): the folded program's output against the same node swept."""
    from fasttape.backend import kernel
    code, kind = ops.CODE[name], ops.KIND_OF[ops.CODE[name]]
    pairs = [(x, y) for x in VALUES for y in VALUES]
    # nodes: the input, constants x and y, then op(x, y) or op(x, c=y)
    op = [ops.CODE["input"], ops.CODE["const"], ops.CODE["const"], code]
    for x, y in pairs:
        b3 = 1 if kind.b == "pool" else (2 if kind.b == "node" else 0)
        arrays = (np.array(op, np.uint8), np.array([0, 0, 0, 1], np.int32),
                  np.array([0, 0, 1, b3], np.int32), np.array([x, y]), np.zeros(0, np.int32),
                  1, np.array([3], np.int32))
        folded = compiler.optimize(*arrays, passes=("fold",))
        want = kernel.Program(*arrays).run(np.zeros(0), np.zeros(0, np.int32), np.zeros((1, 1)),
                                           np.zeros(1, np.int32), 1)[0][0, 0]
        got = kernel.Program(*folded).run(np.zeros(0), np.zeros(0, np.int32), np.zeros((1, 1)),
                                          np.zeros(1, np.int32), 1)[0][0, 0]
        if np.isfinite(want):
            assert ops.OPS[folded[0][folded[6][0]]].name == "const", (x, y)
        assert np.float64(got).view(np.int64) == np.float64(want).view(np.int64), (x, y, got, want)


def test_auto_runs_the_passes_on_scalar_code_and_leaves_array_code_as_recorded():
    """The default: a Python loop over elements is rewritten (one dot node);
    array code, already in runs, is frozen as recorded, as with the passes
    off; "all" rewrites it too."""
    def loop(x, w):
        s = 0.0
        for k in range(len(x)):
            s = s + x[k] * w[k]
        return s

    def arrays(x):
        return ft.sum((x[1:] - x[:-1] ** 2) ** 2 + (x[1:] - x[:-1] ** 2) ** 2)

    x, w = np.linspace(-1.0, 1.0, 40), np.arange(40.0)
    with ft.set_passes("auto"):
        scalar, array = ft.trace(loop, x, w), ft.trace(arrays, x)
    with ft.set_passes("none"):
        scalar_plain, array_plain = ft.trace(loop, x, w), ft.trace(arrays, x)
    with ft.set_passes("all"):
        array_all = ft.trace(arrays, x)
    assert len(scalar) == 81 and len(scalar_plain) == 160  # (80 inputs and one dot)
    assert str(array) == str(array_plain)
    assert len(array_all) < len(array_plain)  # (cse merges the repeated subexpression)
    assert scalar(x, w) == scalar_plain(x, w) == pytest.approx(float(x @ w), rel=1e-15)
    np.testing.assert_allclose(array_all.grad(x), array_plain.grad(x), rtol=1e-13)
