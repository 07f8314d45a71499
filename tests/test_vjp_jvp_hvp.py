"""ft.vjp, ft.jvp and ft.hvp as transforms: against closed forms and the
tape's own Jacobian and Hessian, on numbers, in batches and nested."""

import math

import numpy as np
import pytest

import fasttape as ft


def f(x, y):
    return ft.sum([x[0] * y, x[1].sin() * y * y])


X, Y = np.array([0.5, 1.0]), 2.0


def grads(x, y):  # closed form: (df/dx, df/dy)
    return np.array([y, math.cos(x[1]) * y * y]), x[0] + 2 * math.sin(x[1]) * y


def test_vjp_scales_the_gradient_and_picks_argnums():
    out, vjp_fn = ft.vjp(f, X, Y)
    assert out == pytest.approx(X[0] * Y + math.sin(X[1]) * Y * Y, rel=1e-15)
    gx, gy = grads(X, Y)
    cx, cy = vjp_fn(3.0)
    np.testing.assert_allclose(cx, 3 * gx, rtol=1e-15)
    assert cy == pytest.approx(3 * gy, rel=1e-15)
    _, only_y = ft.vjp(f, X, Y, argnums=1)
    assert only_y(1.0) == pytest.approx(gy, rel=1e-15)


def test_jvp_is_the_directional_derivative():
    gx, gy = grads(X, Y)
    tx, ty = np.array([0.3, -1.2]), 0.7
    out, tangent = ft.jvp(f, (X, Y), (tx, ty))
    assert tangent == pytest.approx(gx @ tx + gy * ty, rel=1e-14)
    _, tangent_x = ft.jvp(f, (X, Y), (tx,), argnums=0)
    assert tangent_x == pytest.approx(gx @ tx, rel=1e-14)


def test_hvp_equals_the_hessian_times_v():
    v = np.array([0.4, -2.0])
    H = ft.hessian(f)(X, Y)
    np.testing.assert_allclose(ft.hvp(f, (X, Y), v), H @ v, rtol=1e-14)
    assert ft.hvp(lambda s: s ** 4, (2.0,), 1.0) == 48.0


def test_batched_vjp_sums_a_shared_cotangent():
    g = lambda w, x: (w * x).sin()  # noqa: E731
    xs = np.array([0.1, 0.2, -0.5])
    out, vjp_fn = ft.vjp(g, 0.7, xs, in_axes=(None, 0))
    np.testing.assert_allclose(out, np.sin(0.7 * xs), rtol=1e-15)
    cw, cx = vjp_fn(np.ones(3))
    assert cw == pytest.approx(float(np.sum(xs * np.cos(0.7 * xs))), rel=1e-14)
    np.testing.assert_allclose(cx, 0.7 * np.cos(0.7 * xs), rtol=1e-14)


def test_nested_vjp_jvp_hvp():
    # d/dy of the vjp's y-part: d/dy (x0 + 2 sin(x1) y) = 2 sin(x1)
    assert ft.grad(lambda t: ft.vjp(f, X, t)[1](1.0)[1])(Y) == pytest.approx(
        2 * math.sin(X[1]), rel=1e-15)
    assert ft.grad(lambda t: ft.jvp(lambda s: s ** 3, (t,), (1.0,))[1])(2.0) == 12.0
    assert ft.grad(lambda t: ft.hvp(lambda s: s ** 4, (t,), 1.0))(2.0) == 48.0


def test_wrong_tangent_counts_are_named():
    with pytest.raises(ft.ArgumentError, match="tangents"):
        ft.jvp(f, (X, Y), (np.ones(2),))
