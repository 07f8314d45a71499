"""The front end: Var arithmetic, functions on numbers and arrays, NumPy
object arrays of Var, and the structures a traced function may take and return."""

import math

import numpy as np
import pytest

import fasttape as ft
from fasttape import ops

rng = np.random.default_rng(3)


def test_numbers_on_either_side():
    x = ft.Var(2.0)
    cases = [(x + 3, 5.0), (3 + x, 5.0), (x - 3, -1.0), (3 - x, 1.0), (x * 3, 6.0),
             (3 * x, 6.0), (x / 4, 0.5), (4 / x, 2.0), (x ** 3, 8.0), (3 ** x, 9.0),
             (-x, -2.0), (+x, 2.0), (abs(-x), 2.0), (x + np.float64(1.5), 3.5),
             (np.float64(1.5) * x, 3.0), (x ** x, 4.0)]
    for var, value in cases:
        assert isinstance(var, ft.Var) and var.value == value


def test_functions_on_numbers_and_float_arrays():
    assert ft.exp(1.0) == math.exp(1.0) and isinstance(ft.exp(1.0), float)
    assert ft.sigmoid(0.0) == 0.5 and ft.relu(-3.0) == 0.0
    a = np.array([-1.0, 0.5, 2.0])
    np.testing.assert_allclose(ft.tanh(a), np.tanh(a), rtol=1e-15)
    np.testing.assert_allclose(ft.log1p(a + 1.5), np.log1p(a + 1.5), rtol=1e-15)
    assert ft.maximum(1.0, 2.0) == 2.0 and ft.minimum(1.0, 2.0) == 1.0
    np.testing.assert_array_equal(ft.maximum(a, 0.0), np.maximum(a, 0.0))
    assert ft.sum([1.0, 2.0]) == 3.0 and ft.dot([1.0, 2.0], [3.0, 4.0]) == 11.0


def test_functions_on_vars_and_object_arrays():
    x = ft.Var(0.3)
    assert ft.exp(x).value == math.exp(0.3) and ft.sin(x).value == math.sin(0.3)
    arr = np.array([ft.Var(v) for v in (0.1, 0.2)], dtype=object)
    out = ft.tanh(arr)
    assert out.dtype == object and [v.value for v in out] == [math.tanh(0.1), math.tanh(0.2)]
    m = ft.maximum(arr, 0.15)
    assert [v.value for v in m] == [0.15, 0.2]


def test_numpy_ufuncs_and_matmul_on_object_arrays():
    def f(W, x):
        return np.exp(W @ x).sum() + np.tanh(x).sum() + np.sqrt(x * x + 1.0).sum()

    W, x = rng.normal(size=(2, 3)), rng.normal(size=3)
    tape = ft.trace(f, W, x)
    expected = np.exp(W @ x).sum() + np.tanh(x).sum() + np.sqrt(x * x + 1).sum()
    assert tape(W, x) == pytest.approx(expected, rel=1e-14)
    gW, gx = tape.grad(W, x, wrt=(0, 1))
    e = np.exp(W @ x)
    np.testing.assert_allclose(gW, np.outer(e, x), rtol=1e-13)
    np.testing.assert_allclose(gx, W.T @ e + 1 - np.tanh(x) ** 2 + x / np.sqrt(x * x + 1),
                               rtol=1e-13)


def test_sum_and_dot_are_one_node():
    def f(w, x):
        return ft.dot(w, x) + ft.sum(x) + ft.dot([1.0, 2.0, 3.0], x)

    w, x = rng.normal(size=3), rng.normal(size=3)
    with ft.set_passes("none"):  # as recorded (the sums pass would make the adds a sum)
        tape = ft.trace(f, w, x)
    names = [ops.OPS[o].name for o in tape._program.op[tape.n_inputs:]]
    assert names.count("dot") == 1 and names.count("sum") == 1 and names.count("dotc") == 1
    assert len(names) == 5  # three n-ary nodes and two adds
    gw, gx = tape.grad(w, x, wrt=(0, 1))
    np.testing.assert_allclose(gw, x, rtol=1e-15)
    np.testing.assert_allclose(gx, w + 1 + np.array([1.0, 2.0, 3.0]), rtol=1e-15)


def test_dot_shapes_follow_numpy():
    A, v = rng.normal(size=(2, 3)), rng.normal(size=3)
    f = ft.trace(lambda A, v: ft.dot(A, v), A, v)
    np.testing.assert_allclose(f(A, v), A @ v, rtol=1e-15)
    g = ft.trace(lambda A, B: ft.dot(A, B), A, A.T)
    np.testing.assert_allclose(g(A, A.T), A @ A.T, rtol=1e-15)
    with pytest.raises(ValueError, match="not aligned"):
        ft.dot(np.array([ft.Var(1.0)]), [1.0, 2.0])


def test_output_structures():
    def f(x, s):
        return (x * s, [s * 2.0, ft.sum(x)], 7.0)

    x = np.arange(3.0)
    tape = ft.trace(f, x, 2.0)
    vec, (a, b), c = tape(x, 3.0)
    np.testing.assert_array_equal(vec, x * 3.0)
    assert (a, b, c) == (6.0, 3.0, 7.0)
    batched = tape(np.ones((4, 3)), np.arange(4.0), in_axes=0)
    assert batched[0].shape == (4, 3) and batched[1][0].shape == (4,)
    np.testing.assert_array_equal(batched[1][0], 2 * np.arange(4.0))
    jac = tape.jacobian(x, 3.0, wrt=1)
    np.testing.assert_array_equal(jac[0], x)
    assert jac[1] == [2.0, 0.0] and jac[2] == 0.0


def test_jacobian_shapes():
    f = lambda x: np.outer(x, x)
    x = rng.normal(size=3)
    J = ft.jacobian(f)(x)
    assert J.shape == (3, 3, 3)
    want = np.einsum("ik,j->ijk", np.eye(3), x) + np.einsum("i,jk->ijk", x, np.eye(3))
    np.testing.assert_allclose(J, want, rtol=1e-15)
    Jb = ft.jacobian(f, in_axes=0)(np.stack([x, 2 * x]))
    assert Jb.shape == (2, 3, 3, 3)
    np.testing.assert_allclose(Jb[1], 2 * want, rtol=1e-15)


def test_transform_caches_per_shape():
    calls = []

    def f(x):
        calls.append(1)
        return ft.sum(x * x)

    g = ft.grad(f)
    np.testing.assert_array_equal(g(np.ones(3)), 2 * np.ones(3))
    np.testing.assert_array_equal(g(np.arange(3.0)), 2 * np.arange(3.0))
    np.testing.assert_array_equal(g(np.ones(4)), 2 * np.ones(4))
    assert len(calls) == 2 and len(g.tapes) == 2
    assert g.__name__ == "f"


def test_a_var_made_inside_a_trace_is_a_constant():
    def f(x):
        return x * ft.Var(3.0)

    tape = ft.trace(f, 1.0)
    assert tape(2.0) == 6.0 and tape.grad(5.0) == 3.0 and tape.n_inputs == 1


def test_tape_as_data():
    tape = ft.trace(lambda w, x: ft.dot(w, x).tanh(), np.ones(2), np.ones(2))
    assert (len(tape), tape.n_inputs, tape.n_outputs) == (6, 4, 1)
    assert str(tape).splitlines() == ["l0 = dot([w[0], w[1]], [x[0], x[1]])",
                                      "l1 = tanh(l0)", "return l1"]
    assert tape.nbytes <= 32 * len(tape) + 64


def test_bytes_per_node_at_batch_one():
    x = rng.normal(size=1000)
    tape = ft.trace(lambda x: ft.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2), x)
    assert tape.nbytes / len(tape) <= 32


def test_a_tuple_wrt_takes_the_fast_path_with_the_checked_answers():
    """Scalars in, a scalar out, wrt a tuple: after its first (checked) call
    the kernel's one-sample call answers, with the same numbers; forms that
    only equal a checked tuple ((True, 1), NumPy ints) still take the checked
    path, so an answer never depends on what was called before."""
    L = ft.trace(lambda w, x, y: (w * x - y) ** 2 + w ** 2, 1.0, 2.0, 3.0)
    want = (-2.0, -2.0, 2.0)  # (closed form at (1, 2, 3))
    for _ in range(3):
        assert L.value_and_grad(1.0, 2.0, 3.0, wrt=(0, 1, 2)) == (2.0, want)
        assert L.grad(1.0, 2.0, 3.0, wrt=(0, 1, 2)) == want
        assert L.grad(1.0, 2.0, 3.0, wrt=(2,)) == (2.0,)
        assert L.grad(1.0, 2.0, 3.0, wrt=(-1, 0)) == (2.0, -2.0)
    assert L.grad(1.0, 2.0, 3.0, wrt=(np.int64(0), 1)) == want[:2]
    with pytest.raises(ft.FasttapeError, match="tuple of ints"):
        L.grad(1.0, 2.0, 3.0, wrt=(True, 1))
    with pytest.raises(ft.FasttapeError, match="tuple of ints"):
        L.value_and_grad(1.0, 2.0, 3.0, wrt=(True, 1))
    w, x, y = 0.3, -1.2, 0.7  # other points, on the fast path
    g = L.grad(w, x, y, wrt=(0, 1, 2))
    assert g == pytest.approx((2 * (w * x - y) * x + 2 * w, 2 * (w * x - y) * w, -2 * (w * x - y)),
                              rel=1e-15)
