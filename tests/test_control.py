"""Control flow: conditions, ft.where, guards, and check_finite."""

import math

import numpy as np
import pytest

import fasttape as ft


def branchy(x):
    if x > 0:
        return x * x
    return -3.0 * x


def test_comparisons_are_conditions():
    x, y = ft.Var(2.0), ft.Var(3.0)
    values = [(x < y), (x <= y), (x > y), (x >= y), (x < 1), (1 < x), (x >= 2.0), (2.0 >= x)]
    assert [c.value for c in values] == [1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0]


def test_a_var_is_not_a_bool():
    with pytest.raises(TypeError, match="ambiguous"):
        bool(ft.Var(1.0))


def test_guard_miss_raises_naming_the_guard():
    tape = ft.trace(branchy, 1.0)
    lines = str(tape).splitlines()
    assert lines[0] == "l0 = x > 0" and lines[1] == "l1 = guard(l0 == 1)"
    assert tape(2.0) == 4.0 and tape.grad(2.0) == 4.0
    with pytest.raises(ft.GuardError, match=r"guard l1 = guard\(l0 == 1\).*l0 = x > 0") as err:
        tape(-1.0)
    assert isinstance(err.value, RuntimeError) and err.value.node == 2  # x is node 0, l0 node 1
    with pytest.raises(ft.GuardError):
        tape.value_and_grad(-1.0)


def test_transforms_retrace_on_a_guard_miss():
    g = ft.grad(branchy)
    assert g(1.0) == 2.0          # 2x
    assert g(-1.0) == -3.0        # the other branch, traced now
    assert g(2.5) == 5.0 and g(-7.0) == -3.0
    assert len(g.tapes[((),)]) == 2  # both tapes kept
    vg = ft.value_and_grad(branchy)
    assert vg(-2.0) == (6.0, -3.0) and vg(3.0) == (9.0, 6.0)


def test_batch_with_mixed_outcomes_names_lanes_and_suggests_where():
    X = np.array([1.0, -1.0, 2.0, -0.5])
    with pytest.raises(ft.GuardError, match=r"lanes \[1, 3\] of 4.*ft\.where") as err:
        ft.grad(branchy, in_axes=0)(X)
    assert list(err.value.lanes) == [1, 3]
    # all lanes on one side: re-traced as needed, and right
    g = ft.grad(branchy, in_axes=0)
    np.testing.assert_array_equal(g(np.array([1.0, 2.0])), [2.0, 4.0])
    np.testing.assert_array_equal(g(np.array([-1.0, -2.0])), [-3.0, -3.0])


def test_where_takes_both_sides_in_one_tape():
    f = lambda x: ft.where(x > 0, x * x, -3.0 * x)
    tape = ft.trace(f, 1.0)
    X = np.array([1.0, -1.0, 2.0, -0.5])
    values, grads = tape.value_and_grad(X, in_axes=0)
    np.testing.assert_array_equal(values, np.where(X > 0, X * X, -3 * X))
    np.testing.assert_array_equal(grads, np.where(X > 0, 2 * X, -3.0))


@pytest.mark.parametrize("x", [-1.0, -1e-300, 0.0])
def test_nan_in_the_branch_not_taken_does_not_poison_the_gradient(x):
    f = lambda x: ft.where(x > 0, x.log(), 0.0)
    assert ft.grad(f)(x) == 0.0
    assert ft.trace(f, 1.0).value_and_grad(x) == (0.0, 0.0)
    v = ft.Var(x)
    out = f(v)
    out.backward()
    assert out.value == 0.0 and v.grad == 0.0
    assert ft.grad(f)(2.0) == 0.5


def test_where_with_numbers_and_arrays():
    assert ft.where(True, 1.0, 2.0) == 1.0
    np.testing.assert_array_equal(ft.where(np.array([1, 0]), 1.0, 2.0), [1.0, 2.0])
    xs = np.array([ft.Var(-1.0), ft.Var(2.0)], dtype=object)
    out = ft.where(ft.greater(xs, 0), xs, 0.0)
    assert [v.value for v in out] == [0.0, 2.0]


def test_elementwise_comparisons_of_arrays_record_conditions():
    """NumPy's own `a > 0` on an object array asks each element for a bool
    (a guard); ft.greater and friends keep the conditions."""
    tape = ft.trace(lambda x: ft.sum(ft.where(ft.less(x, 0.5), x * x, x)), np.zeros(3))
    assert "guard" not in str(tape)
    X = np.array([0.0, 1.0, -2.0])
    value, g = tape.value_and_grad(X)
    assert value == 0.0 + 1.0 + 4.0
    np.testing.assert_array_equal(g, [0.0, 1.0, -4.0])
    np.testing.assert_array_equal(ft.greater_equal(np.array([1.0, 2.0]), 2.0), [False, True])


def test_eager_guards_leave_no_nodes():
    x = ft.Var(1.0)
    from fasttape import var
    before = len(var.current_recorder())
    for _ in range(100):
        if x > 0:
            pass
    assert len(var.current_recorder()) == before


def test_check_finite_names_the_node():
    tape = ft.trace(lambda x, y: (x - y).sqrt() * 2.0 + x, 2.0, 1.0)
    assert math.isnan(tape(1.0, 2.0))  # IEEE, as NumPy, when off
    with ft.check_finite():
        with pytest.raises(FloatingPointError, match=r"sqrt .* l1 = sqrt\(l0\)") as err:
            tape(1.0, 2.0)
        assert isinstance(err.value, ft.FasttapeError)
        with pytest.raises(FloatingPointError, match="sqrt"):
            tape.grad(np.array([4.0, 1.0]), np.array([1.0, 2.0]), in_axes=0)
        with pytest.raises(FloatingPointError, match="log"):
            ft.Var(-1.0).log()
        assert tape(3.0, 2.0) == 5.0
    assert math.isnan(tape(1.0, 2.0))
    ft.check_finite(True)
    try:
        with pytest.raises(FloatingPointError):
            tape(1.0, 2.0)
    finally:
        ft.check_finite(False)
    assert math.isnan(tape(1.0, 2.0))


def test_check_finite_reports_a_non_finite_input_first():
    tape = ft.trace(lambda x: x * 2.0, 1.0)
    with ft.check_finite():
        with pytest.raises(FloatingPointError, match="x"):
            tape(float("inf"))


def test_check_finite_with_shared_weights_in_a_batch():
    """Lanes of shared inputs that a sweep never reads are not reported."""
    tape = ft.trace(lambda w, x: ft.dot(w, x).tanh(), np.ones(3), np.ones(3))
    W, X = np.array([0.1, 0.2, 0.3]), np.arange(15.0).reshape(5, 3)
    expected = tape.value_and_grad(W, X, in_axes=(None, 0))
    with ft.check_finite():
        value, grad = tape.value_and_grad(W, X, in_axes=(None, 0))
    np.testing.assert_array_equal(value, expected[0])
    np.testing.assert_array_equal(grad, expected[1])


def test_check_finite_on_eager_inputs():
    with ft.check_finite():
        for _ in range(50):  # an input's check reads its own value, never stale memory
            x = ft.Var(1.5)
            assert (x * 2.0).value == 3.0
        with pytest.raises(FloatingPointError, match="input"):
            ft.Var(float("nan"))
