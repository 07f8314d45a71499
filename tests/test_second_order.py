"""Exact second derivatives: Hessians and Hessian-vector products."""

import numpy as np
import pytest

import fasttape as ft

rng = np.random.default_rng(5)


def rosenbrock(x):
    return ft.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def rosenbrock_hessian(x):
    n = len(x)
    H = np.zeros((n, n))
    i = np.arange(n - 1)
    H[i, i] += 1200 * x[:-1] ** 2 - 400 * x[1:] + 2
    H[i + 1, i + 1] += 200
    H[i, i + 1] = H[i + 1, i] = -400 * x[:-1]
    return H


def test_rosenbrock_hessian_and_hvp_closed_form():
    x = rng.normal(size=12)
    H = ft.hessian(rosenbrock)(x)
    np.testing.assert_allclose(H, rosenbrock_hessian(x), rtol=1e-13, atol=1e-12)
    tape = ft.trace(rosenbrock, x)
    v = rng.normal(size=12)
    np.testing.assert_allclose(tape.hvp((x,), v), rosenbrock_hessian(x) @ v, rtol=1e-12)


def loss(w, x, y):
    return (w * x - y) ** 2 + w ** 2


def test_lecture_hessian_closed_form():
    w, x, y = 1.0, 2.0, 3.0
    H = ft.trace(loss, w, x, y).hessian(w, x, y, wrt=(0, 1, 2))
    want = [[2 * x * x + 2, 4 * w * x - 2 * y, -2 * x],
            [4 * w * x - 2 * y, 2 * w * w, -2 * w],
            [-2 * x, -2 * w, 2.0]]
    assert np.array(H) == pytest.approx(np.array(want), rel=1e-15)
    assert ft.hessian(loss)(w, x, y) == 10.0


def test_batched_hessians_and_hvps():
    tape = ft.trace(loss, 1.0, 2.0, 3.0)
    W, X, Y = rng.normal(size=5), rng.normal(size=5), rng.normal(size=5)
    H = tape.hessian(W, X, Y, wrt=(0, 1), in_axes=0)
    for b in range(5):
        single = tape.hessian(W[b], X[b], Y[b], wrt=(0, 1))
        assert np.array(H, dtype=object)[:, :, b].astype(float) == pytest.approx(
            np.array(single), rel=1e-14)
    V = rng.normal(size=5)
    hv = tape.hvp((1.5, X, Y), 2.0, wrt=0, in_axes=(None, 0, 0))
    assert hv == pytest.approx(sum(2 * (2 * x * x + 2) for x in X), rel=1e-13)
    hv = tape.hvp((W, X, Y), V, wrt=1, in_axes=0)
    np.testing.assert_allclose(hv, 2 * W * W * V, rtol=1e-13)


def test_hessian_of_random_functions_against_differences_of_the_gradient():
    def f(x):
        h = np.tanh(ft.dot(np.array([[0.3, -0.2, 0.5], [0.1, 0.4, -0.6]]), x))
        return ft.sum(h * h) + x[0].exp() * x[1].sin() + (x[2] ** 2 + 1.0).log() \
            + x[0] / (x[1] ** 2 + 2.0) + ft.maximum(x[2], 0.1) ** 3
    g = ft.grad(f)
    for _ in range(5):
        x = rng.normal(size=3)
        H = ft.hessian(f)(x)
        step = 1e-6
        fd = np.array([(g(x + step * e) - g(x - step * e)) / (2 * step) for e in np.eye(3)])
        np.testing.assert_allclose(H, fd, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(H, H.T, rtol=1e-13, atol=1e-14)


def test_hvp_needs_a_scalar_output():
    tape = ft.trace(lambda x: x * 2.0, np.ones(2))
    with pytest.raises(TypeError, match="scalar output"):
        tape.hvp((np.ones(2),), np.ones(2))
    with pytest.raises(ValueError, match=r"expected shape \(2,\)"):
        ft.trace(rosenbrock, np.ones(2)).hvp((np.ones(2),), np.ones(3))


def test_hessians_from_coloured_columns_match_column_by_column_hvps():
    """Columns sharing no non-zero row are found with one HVP (sparsity.py);
    every entry must equal the plain HVP of its unit vector."""
    from fasttape import sparsity

    x = rng.normal(size=40)
    tape = ft.trace(rosenbrock, x)
    colour, k, _ = sparsity.colour_columns(sparsity.hessian_pattern(tape._program), np.arange(40))
    assert k == 3  # tridiagonal, whatever the size
    H = tape.hessian(x)
    columns = np.array([tape.hvp((x,), e) for e in np.eye(40)]).T
    np.testing.assert_allclose(H, columns, rtol=1e-14, atol=1e-12)

    def mixed(a, b, c):
        return ft.sum(a * a * b[0]) + ft.dot(b, c[:2]) * a[1] + (c[2] * a[0]).sin() + b[1] ** 3

    A, Bv, C = rng.normal(size=3), rng.normal(size=2), rng.normal(size=3)
    t2 = ft.trace(mixed, A, Bv, C)
    blocks = t2.hessian(A, Bv, C, wrt=(0, 1, 2))
    dense = np.block([[np.atleast_2d(blk) for blk in row] for row in blocks])
    flat = [(A, Bv, C)]
    cols = []
    for k, size in enumerate((3, 2, 3)):
        for e in np.eye(size):
            vs = [np.zeros(3), np.zeros(2), np.zeros(3)]
            vs[k] = e
            cols.append(np.concatenate(t2.hvp(flat[0], tuple(vs), wrt=(0, 1, 2))))
    np.testing.assert_allclose(dense, np.array(cols).T, rtol=1e-14, atol=1e-14)
    batched = t2.hessian(np.stack([A, 2 * A]), Bv, C, wrt=0, in_axes=(0, None, None))
    np.testing.assert_allclose(batched[0], blocks[0][0], rtol=1e-14, atol=1e-15)
