"""Transforms compose, never answer from stale values, and give the same
result type for the same call (API.md, "Transforms compose, and never go
stale"). Every expected value is a closed form or a central difference."""

import math
import warnings

import numpy as np
import pytest

import fasttape as ft


def central(f, x, h=1e-5):
    return (f(x + h) - f(x - h)) / (2 * h)


# ------------------------------------------------------------ nesting

def test_grad_of_grad_is_the_second_derivative():
    assert ft.grad(ft.grad(lambda x: x ** 3))(3.0) == pytest.approx(18.0, rel=1e-14)
    assert ft.grad(ft.grad(lambda x: x.sin()))(0.7) == pytest.approx(-math.sin(0.7), rel=1e-14)


def test_third_and_fourth_derivatives():
    f = lambda x: (2.0 * x).exp() * x.sin()  # noqa: E731
    d3 = ft.grad(ft.grad(ft.grad(f)))
    # d^3/dx^3 e^{2x} sin x = e^{2x} (2 sin x + 11 cos x)
    x = 0.4
    assert d3(x) == pytest.approx(math.exp(2 * x) * (2 * math.sin(x) + 11 * math.cos(x)),
                                  rel=1e-12)
    assert ft.grad(ft.grad(ft.grad(ft.grad(lambda x: x ** 5))))(1.5) == pytest.approx(
        120 * 1.5, rel=1e-14)
    assert ft.hessian(ft.grad(lambda x: x ** 4))(2.0) == pytest.approx(48.0, rel=1e-14)
    assert ft.jacobian(ft.grad(lambda x: x ** 4))(2.0) == pytest.approx(48.0, rel=1e-14)


def test_jacobian_and_hessian_of_a_gradient():
    def f(x):
        return ft.sum([x[0].sin() * x[1] ** 2, (x[0] * x[1]).exp()])
    x = np.array([0.3, 0.7])
    u, v = x
    e = math.exp(u * v)
    H = np.array([[-math.sin(u) * v * v + v * v * e, 2 * v * math.cos(u) + e + u * v * e],
                  [2 * v * math.cos(u) + e + u * v * e, 2 * math.sin(u) + u * u * e]])
    np.testing.assert_allclose(ft.jacobian(ft.grad(f))(x), H, rtol=1e-13)
    np.testing.assert_allclose(ft.hessian(f)(x), H, rtol=1e-13)
    # third derivatives: the Jacobian of the Hessian, against differences of it
    T = ft.jacobian(ft.hessian(f))(x)
    assert T.shape == (2, 2, 2)
    for k in range(2):
        e_k = np.eye(2)[k]
        fd = (ft.hessian(f)(x + 1e-5 * e_k) - ft.hessian(f)(x - 1e-5 * e_k)) / 2e-5
        np.testing.assert_allclose(T[:, :, k], fd, rtol=1e-7, atol=1e-8)


def test_value_and_grad_of_grad():
    value, g = ft.value_and_grad(ft.grad(lambda x: x ** 4))(2.0)
    assert (value, g) == (pytest.approx(32.0), pytest.approx(48.0))


def test_grad_inside_a_trace_on_a_closure_over_an_outer_var():
    assert ft.grad(lambda y: ft.grad(lambda x: x * y)(2.0))(3.0) == 1.0
    # no confusion between the levels: d/dy [d/dx (x y)] at x = y is 1, not 2
    assert ft.grad(lambda y: ft.grad(lambda x: x * y)(y))(3.0) == 1.0
    # d/dy of y * d/dx (x^2 y) at x = y: d/dy 2 y^3 = 6 y^2
    assert ft.grad(lambda y: y * ft.grad(lambda x: x * x * y)(y))(1.5) == pytest.approx(13.5)


def test_nested_in_a_traced_tape_replays_at_new_points():
    tape = ft.trace(lambda y: ft.grad(lambda x: (x * y).sin())(0.5), 1.0)
    for y in (0.3, 2.0):
        assert tape(y) == pytest.approx(y * math.cos(0.5 * y), rel=1e-14)
        assert tape.grad(y) == pytest.approx(math.cos(0.5 * y) - 0.5 * y * math.sin(0.5 * y),
                                             rel=1e-13)


def test_transforms_on_eager_vars_record_on_their_tape():
    y = ft.Var(3.0)
    g = ft.grad(lambda x: x * y * y)(2.0)   # d/dx = y^2, as a Var
    assert isinstance(g, ft.Var) and g.value == 9.0
    g.backward()
    assert y.grad == 6.0
    x = ft.Var(0.5)
    d = ft.grad(lambda t: t.exp() * t)(x)   # (1 + x) e^x, differentiable again
    d.backward()
    assert x.grad == pytest.approx((2 + 0.5) * math.exp(0.5), rel=1e-14)


def test_nested_transforms_in_batches():
    # per-sample second derivatives of a shared-parameter function
    f = lambda w, x: (w * x).sin()  # noqa: E731
    X = np.array([0.1, 0.5, 1.0])
    d2 = ft.grad(ft.grad(f, argnums=0), argnums=0)
    got = [d2(0.7, x) for x in X]
    np.testing.assert_allclose(got, -X ** 2 * np.sin(0.7 * X), rtol=1e-13)
    # a batched transform inside a trace: the shared gradient sums the samples
    outer = ft.grad(lambda w: ft.grad(f, in_axes=(None, 0))(w, X))
    assert outer(0.7) == pytest.approx(np.sum(-X ** 2 * np.sin(0.7 * X)), rel=1e-13)


def test_a_branch_where_did_not_take_contributes_nothing_when_nested():
    """As in the sweeps, a zero adjoint times an infinite partial (1 / w of
    log at 0, in the branch not taken) is 0, not NaN; derivatives of finite
    products are unchanged, zero residuals included."""
    g = lambda w: ft.where(w > 0, w.log(), 0.0) + w * w  # noqa: E731
    first = ft.trace(lambda w: ft.grad(g)(w), 0.0)
    assert first(0.0) == ft.grad(g)(0.0) == 0.0 and first.grad(0.0) == 2.0
    assert first(2.0) == 4.5 and first.grad(2.0) == pytest.approx(1.75, rel=1e-15)
    f = lambda w: (w * 2.0 - 2.0) ** 2 / 3.0  # noqa: E731  (a zero adjoint at w = 1)
    assert ft.grad(ft.grad(f))(1.0) == pytest.approx(8.0 / 3.0, rel=1e-15)


def test_nesting_what_cannot_be_done_is_a_named_error():
    y = ft.Var(2.0)
    with ft.Tape():
        z = ft.Var(1.0)
    with pytest.raises(ft.FasttapeError):
        ft.grad(lambda x: x * y)(z)  # an argument on another tape than the one in use


def test_a_transform_keeps_its_own_method():
    inner = ft.grad(lambda x: x ** 3)
    outer = ft.jacobian(inner)
    assert outer.method == "jacobian" and inner.method == "grad"
    assert outer.__wrapped__ is inner and outer.__name__ == "<lambda>"


# ------------------------------------------------------------ never stale

def test_a_closed_over_number_is_read_afresh():
    c = 2.0
    g = ft.grad(lambda x: c * x)
    assert g(1.0) == 2.0
    c = 5.0
    assert g(1.0) == 5.0


GLOBAL_BATCH = np.array([1.0, 2.0, 3.0])


def _global_loss(w):
    return ft.sum((w * GLOBAL_BATCH - 1.0) ** 2)


def test_a_global_array_rebound_or_mutated_in_place_is_read_afresh():
    global GLOBAL_BATCH
    g = ft.grad(_global_loss)
    expect = lambda w: float(np.sum(2 * (w * GLOBAL_BATCH - 1.0) * GLOBAL_BATCH))  # noqa: E731
    assert g(0.5) == pytest.approx(expect(0.5))
    GLOBAL_BATCH[1] = -4.0  # in place
    assert g(0.5) == pytest.approx(expect(0.5))
    saved = GLOBAL_BATCH
    GLOBAL_BATCH = np.array([0.5, 0.25])  # rebound, another shape
    try:
        assert g(0.5) == pytest.approx(expect(0.5))
    finally:
        GLOBAL_BATCH = saved


def test_closures_of_helpers_and_batched_transforms_are_watched():
    scale = np.array([1.0, 2.0])

    def helper(x):
        return ft.dot(scale, x)

    step = ft.value_and_grad(lambda w, x: helper(w * x), in_axes=(None, 0))
    X = np.array([[1.0, 1.0], [2.0, 0.5]])
    w = np.array([0.3, 0.4])
    values, g = step(w, X)
    np.testing.assert_allclose(g, (X * scale).sum(axis=0))
    scale[:] = [3.0, -1.0]
    values, g = step(w, X)
    np.testing.assert_allclose(values, (w * X) @ scale)
    np.testing.assert_allclose(g, (X * scale).sum(axis=0))


def test_a_value_changing_on_every_call_warns_once_naming_it():
    k = 1.0
    g = ft.grad(lambda x: k * x)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(6):
            k = float(step)
            assert g(2.0) == float(step)
    retraces = [w for w in caught if issubclass(w.category, ft.RetraceWarning)]
    assert len(retraces) == 1 and "'k'" in str(retraces[0].message)


def test_an_unchanged_closure_does_not_retrace():
    c = 3.0
    g = ft.grad(lambda x: c * x * x)
    g(1.0)
    tapes = dict(g.tapes)
    for x in (2.0, 3.0):
        assert g(x) == 6.0 * x
    assert g.tapes == tapes


# ------------------------------------------------------------ shapes

def test_a_0d_array_output_is_a_scalar():
    a = np.array([1.0, 2.0, 3.0])
    f = lambda x: np.tensordot(x, a, 1)  # noqa: E731  (a 0-d object array)
    x = np.array([0.5, -1.0, 2.0])
    tape = ft.trace(f, x)
    assert tape(x) == pytest.approx(4.5) and isinstance(tape(x), float)
    np.testing.assert_array_equal(tape.grad(x), a)
    np.testing.assert_array_equal(ft.grad(f)(x), a)


def test_a_zero_size_output_has_a_zero_size_jacobian():
    f = lambda x: x[:0] * 2  # noqa: E731
    x = np.ones(3)
    assert ft.trace(f, x).jacobian(x).shape == (0, 3)
    assert ft.jacobian(f)(x).shape == (0, 3)
    assert ft.trace(f, x).jacobian(np.ones((4, 3)), in_axes=0).shape == (4, 0, 3)


# ------------------------------------------------------------ same call, same answer

def _tape():
    return ft.trace(lambda a, b: a * a * b, 1.0, 2.0)


@pytest.mark.parametrize("batched", [False, True])
def test_wrt_as_a_numpy_int_gives_the_same_type_every_call(batched):
    tape = _tape()
    args = (np.array([1.0, 2.0]), np.array([3.0, 4.0])) if batched else (1.0, 2.0)
    in_axes = 0 if batched else None
    first = tape.grad(*args, wrt=np.int64(1), in_axes=in_axes)
    for _ in range(3):
        later = tape.grad(*args, wrt=np.int64(1), in_axes=in_axes)
        assert type(later) is type(first) and not isinstance(later, tuple)
        np.testing.assert_array_equal(later, first)
    tape.grad(*args, wrt=1, in_axes=in_axes)  # the canonical form, now cached
    assert not isinstance(tape.grad(*args, wrt=np.int64(1), in_axes=in_axes), tuple)


def test_bools_are_rejected_whatever_is_cached():
    tape = _tape()
    X, Y = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    for _ in range(2):  # the second time, similar calls are cached
        tape.grad(1.0, 2.0, wrt=1)
        tape.grad(1.0, Y, wrt=0, in_axes=(None, 0))
        with pytest.raises(ft.ArgumentError):
            tape.grad(1.0, 2.0, wrt=True)
        with pytest.raises(ft.ArgumentError):
            tape.grad(X, Y, wrt=(True,), in_axes=0)
        with pytest.raises(ft.ArgumentError):
            tape.grad(1.0, Y, in_axes=(None, False))


def test_lists_behave_as_tuples():
    f = lambda a, b: a * a * b  # noqa: E731
    X, Y = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    expect = (2 * X * Y, X * X)
    for g in (ft.grad(f, argnums=[0, 1], in_axes=[0, 0]), ft.grad(f, argnums=(0, 1), in_axes=0)):
        for _ in range(2):
            got = g(X, Y)
            assert isinstance(got, tuple)
            np.testing.assert_array_equal(got[0], expect[0])
            np.testing.assert_array_equal(got[1], expect[1])
    value, grads = ft.value_and_grad(f, argnums=[0, 1])(1.5, 2.0)
    assert grads == (6.0, 2.25)
    tape = _tape()
    for _ in range(2):
        assert tape.grad(1.5, 2.0, wrt=[0, 1]) == (6.0, 2.25)
        np.testing.assert_array_equal(tape.grad(X, Y, wrt=[1], in_axes=[0, 0])[0], X * X)


def test_an_empty_wrt_names_the_problem():
    with pytest.raises(ft.FasttapeError, match=r"argnums=\(\) names no argument"):
        ft.grad(lambda x: x, argnums=())
    with pytest.raises(ft.FasttapeError, match=r"wrt=\(\) names no argument"):
        _tape().grad(1.0, 2.0, wrt=())


def test_every_partial_of_the_op_table_has_a_meaning_on_vars():
    """The nested path evaluates the table's partials on Vars: each must give
    the number the NumPy twin's evaluation of the same formula gives."""
    from fasttape import nested, ops
    points = [(0.7, -1.3, 2.5), (0.0, 0.3, 0.0), (1.0, 1.0, 1.0), (-0.4, 2.0, -2.0),
              (0.0, 0.0, 2.0), (2.0, 0.5, 0.5)]
    for op in ops.OPS:
        if op.kind not in ops.ELEMENTWISE or not ops.KIND_OF[op.code].rev:  # (const, guard)
            continue
        fwd = ops.compile_numpy(op.fwd, "x, y, c")
        for k, which in enumerate(("d0", "d1")):
            expr = getattr(op, which)
            if not expr:
                continue
            numpy_d = ops.compile_numpy(expr, "x, y, c, f")
            # (the reverse template's term for this operand, with an adjoint of 1)
            on_vars = dict(nested.REVERSE[op.code])["xy"[k]]
            for x, y, c in points:
                with np.errstate(all="ignore"):
                    f = float(fwd(np.float64(x), np.float64(y), np.float64(c)))
                    want = float(numpy_d(np.float64(x), np.float64(y), np.float64(c), np.float64(f)))
                    got = on_vars(ft.Var(x), ft.Var(y), 0.0, 0.0, 0.0, np.float64(c), 0.0,
                                  ft.Var(f), 1.0)
                got = got.value if isinstance(got, ft.Var) else float(got)
                # (the kernel's libm and NumPy may differ in the last bit)
                assert got == pytest.approx(want, rel=1e-14, abs=0) or (
                    math.isnan(got) and math.isnan(want)), (op.name, which, (x, y, c), got, want)


def test_a_recording_tape_and_a_wrong_argnums_are_named_errors():
    with ft.Tape() as t:
        ft.Var(1.0)
    for call in (lambda: t.grad(1.0), lambda: t.value_and_grad(1.0), lambda: t.jacobian(1.0)):
        with pytest.raises(ft.TapeError, match="ft.trace"):
            call()
    with pytest.raises(ft.ArgumentError, match="argnums=3"):
        ft.grad(lambda x: x, argnums=3)(1.0)
