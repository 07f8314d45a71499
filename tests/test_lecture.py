"""The lecture's example, L(w, x, y) = (w x - y)^2 + w^2, in every API form.

Closed forms: dL/dw = 2 (w x - y) x + 2 w, dL/dx = 2 (w x - y) w,
dL/dy = -2 (w x - y); at (1, 2, 3): L = 2, gradients -2, -2, 2.
"""

import numpy as np
import pytest

import fasttape as ft


def loss(w, x, y):
    return (w * x - y) ** 2 + w ** 2


def closed_form(w, x, y):
    r = w * x - y
    return r * r + w * w, (2 * r * x + 2 * w, 2 * r * w, -2 * r)


POINT = (1.0, 2.0, 3.0)


def test_closed_form_is_the_lecture_s():
    assert closed_form(*POINT) == (2.0, (-2.0, -2.0, 2.0))


def test_eager():
    w, x, y = ft.Var(1.0), ft.Var(2.0), ft.Var(3.0)
    L = (w * x - y) ** 2 + w ** 2
    assert (w.grad, x.grad, y.grad) == (0.0, 0.0, 0.0)  # before any backward
    L.backward()
    assert (L.value, w.grad, x.grad, y.grad) == (2.0, -2.0, -2.0, 2.0)
    assert isinstance(L.value, float) and isinstance(w.grad, float)


def test_eager_backward_is_fresh_not_accumulated():
    w, x, y = ft.Var(1.0), ft.Var(2.0), ft.Var(3.0)
    L = loss(w, x, y)
    L.backward()
    L.backward()
    assert w.grad == -2.0
    M = w * 5.0
    M.backward()
    assert w.grad == 5.0 and x.grad == 0.0


def test_eager_in_a_tape_block():
    with ft.Tape() as t:
        w, x, y = ft.Var(1.0), ft.Var(2.0), ft.Var(3.0)
        L = loss(w, x, y)
    L.backward()
    assert (L.value, w.grad, x.grad, y.grad) == (2.0, -2.0, -2.0, 2.0)
    assert len(t) == 8  # three inputs and five operations


def test_replay():
    tape = ft.trace(loss, *POINT)
    assert tape(*POINT) == 2.0
    assert tape.grad(*POINT, wrt=(0, 1, 2)) == (-2.0, -2.0, 2.0)
    assert tape.value_and_grad(*POINT) == (2.0, -2.0)
    assert tape.vjp(POINT, 1.0) == (-2.0, -2.0, 2.0)
    assert tape.jvp(POINT, (1.0, 0.0, 0.0)) == (2.0, -2.0)
    assert tape.jacobian(*POINT, wrt=(0, 1, 2)) == (-2.0, -2.0, 2.0)


def test_replay_at_other_points():
    tape = ft.trace(loss, *POINT)
    rng = np.random.default_rng(1)
    for point in rng.normal(size=(10, 3)):
        value, grads = closed_form(*point)
        assert tape(*point) == pytest.approx(value, rel=1e-14)
        assert tape.grad(*point, wrt=(0, 1, 2)) == pytest.approx(grads, rel=1e-14)


def test_listing_reads_like_the_lecture():
    lines = str(ft.trace(loss, *POINT)).splitlines()
    assert lines == ["l0 = w * x", "l1 = l0 - y", "l2 = l1 ** 2", "l3 = w ** 2",
                     "l4 = l2 + l3", "return l4"]


def test_function_transforms():
    assert ft.grad(loss)(*POINT) == -2.0
    assert ft.grad(loss, argnums=(0, 1, 2))(*POINT) == (-2.0, -2.0, 2.0)
    assert ft.value_and_grad(loss, argnums=2)(*POINT) == (2.0, 2.0)
    assert ft.jacobian(loss, argnums=1)(*POINT) == -2.0


def test_batched():
    X = np.array([2.0, 1.0, -0.5])
    Y = np.array([3.0, 0.0, 2.0])
    step = ft.value_and_grad(loss, argnums=(0, 1), in_axes=(None, 0, 0))
    values, (gw, gx) = step(1.0, X, Y)
    expected = [closed_form(1.0, x, y) for x, y in zip(X, Y)]
    np.testing.assert_allclose(values, [v for v, _ in expected], rtol=1e-15)
    assert gw == pytest.approx(sum(g[0] for _, g in expected), rel=1e-15)
    np.testing.assert_allclose(gx, [g[1] for _, g in expected], rtol=1e-15)
