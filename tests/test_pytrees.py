"""Transforms take pytrees (tuples, lists, dicts of numbers and arrays), keyword
arguments and an auxiliary output, as JAX's do; every expected value is a
closed form."""

import math

import numpy as np
import pytest

import fasttape as ft


def loss(params, x, scale=1.0):
    return scale * ft.sum((params["w"] * x + params["b"]) ** 2)


P = {"w": np.array([1.0, 2.0]), "b": 0.5}
X = np.array([0.3, -0.7])


def loss_grad(params, x, scale=1.0):
    r = params["w"] * x + params["b"]
    return {"w": scale * 2 * r * x, "b": scale * float(np.sum(2 * r))}


def assert_tree_close(got, want, rtol=1e-14):
    assert type(got) is type(want)
    if isinstance(want, dict):
        assert sorted(got) == sorted(want)
        for k in want:
            assert_tree_close(got[k], want[k], rtol)
    elif isinstance(want, (tuple, list)):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_tree_close(g, w, rtol)
    else:
        np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-15)
        assert np.shape(got) == np.shape(want)


def test_a_dict_of_parameters_gets_a_dict_of_gradients():
    assert_tree_close(ft.grad(loss)(P, X), loss_grad(P, X))
    value, (gp, gx) = ft.value_and_grad(loss, argnums=(0, 1))(P, X)
    r = P["w"] * X + P["b"]
    assert value == pytest.approx(float(np.sum(r ** 2)), rel=1e-14)
    assert_tree_close(gp, loss_grad(P, X))
    np.testing.assert_allclose(gx, 2 * r * P["w"], rtol=1e-14)


def test_keyword_arguments_pass_through_and_key_the_cache():
    g = ft.grad(loss)
    for scale in (2.0, 3.0, 2.0):
        assert_tree_close(g(P, X, scale=scale), loss_grad(P, X, scale))
    assert len(g._flat) == 2  # one leaf transform per (structure, keywords)
    assert_tree_close(g(P, X, scale=np.float64(0.5)), loss_grad(P, X, 0.5))


def test_has_aux_returns_the_auxiliary_data_as_jax_does():
    def f(a, b):
        out = a[0] * b + a[1].sin()
        return out, {"half": out / 2, "b": b}

    a, b = (1.0, 2.0), 3.0
    value = a[0] * b + math.sin(a[1])
    grads, aux = ft.grad(f, has_aux=True)(a, b)
    assert_tree_close(grads, (b, math.cos(a[1])))
    assert_tree_close(aux, {"half": value / 2, "b": b})
    (v, aux2), gb = ft.value_and_grad(f, argnums=1, has_aux=True)(a, b)
    assert v == pytest.approx(value, rel=1e-15) and gb == a[0]
    assert_tree_close(aux2, aux)
    with pytest.raises(ft.FasttapeError, match="pair"):
        ft.grad(lambda x: x * 2.0, has_aux=True)(1.0)


def test_batched_pytrees_with_an_in_axes_prefix():
    Xb = np.array([[0.3, -0.7], [1.0, 2.0], [0.0, 1.0]])
    values, g = ft.value_and_grad(loss, in_axes=(None, 0))(P, Xb)
    rows = [loss_grad(P, x) for x in Xb]
    np.testing.assert_allclose(values, [np.sum((P["w"] * x + P["b"]) ** 2) for x in Xb],
                               rtol=1e-14)
    assert_tree_close(g, {"w": sum(r["w"] for r in rows), "b": sum(r["b"] for r in rows)},
                      rtol=1e-13)
    # a prefix inside a dict: "b" batched, "w" shared
    f = lambda p: ft.sum(p["w"] * p["b"])  # noqa: E731
    B = np.array([[1.0, 2.0], [3.0, 4.0]])
    gw = ft.grad(f, in_axes=({"w": None, "b": 0},))({"w": np.array([0.5, -1.0]), "b": B})
    np.testing.assert_allclose(gw["w"], B.sum(axis=0))
    np.testing.assert_allclose(gw["b"], np.tile([0.5, -1.0], (2, 1)))
    with pytest.raises(ValueError, match="in_axes"):
        ft.grad(f, in_axes=({"w": None},))({"w": np.ones(2), "b": B})


def test_pytree_hessians_and_jacobians():
    h = ft.hessian(lambda d: d["a"] * d["b"] ** 2)({"a": 1.0, "b": 3.0})
    assert h == {"a": {"a": 0.0, "b": 6.0}, "b": {"a": 6.0, "b": 2.0}}
    jg = ft.jacobian(ft.grad(lambda t: t[0] * t[1] ** 2))((1.0, 3.0))
    assert jg == ((0.0, 6.0), (6.0, 2.0))
    lists = ft.grad(lambda xs: xs[0] * xs[1] + xs[2])([2.0, 3.0, 4.0])
    assert lists == [3.0, 2.0, 1.0]


def test_pytrees_inside_a_trace_nest():
    f = lambda p: p["a"] ** 3 * p["b"]  # noqa: E731
    d2 = ft.grad(lambda a: ft.grad(f)({"a": a, "b": 2.0})["a"])(1.5)
    assert d2 == pytest.approx(6 * 1.5 * 2.0, rel=1e-14)


def test_the_readme_dict_classifier_trains():
    """The README's example: a dict of parameters, plain NumPy, batched."""
    X, y = ft.datasets.make_moons(200, noise=0.1, seed=0)
    rng = np.random.default_rng(0)
    params = {"W1": rng.normal(size=(10, 2)), "b1": np.zeros(10),
              "w2": rng.normal(size=10) / 3, "b2": 0.0}

    def loss(p, x, t):
        h = np.tanh(p["W1"] @ x + p["b1"])
        z = p["w2"] @ h + p["b2"]
        return np.logaddexp(0.0, z) - z * t

    step = ft.value_and_grad(loss, in_axes=(None, 0, 0))
    values, g = step(params, X, y)
    total = lambda p: float(sum(loss(p, x, t) for x, t in zip(X, y)))  # noqa: E731  (floats)
    for key, index in (("W1", (3, 1)), ("b1", (4,)), ("w2", (7,))):
        up = {k: np.array(v, dtype=float) for k, v in params.items()}
        down = {k: np.array(v, dtype=float) for k, v in params.items()}
        up[key][index] += 1e-6
        down[key][index] -= 1e-6
        assert g[key][index] == pytest.approx((total(up) - total(down)) / 2e-6, rel=1e-5)
    first = values.mean()
    for _ in range(200):
        values, g = step(params, X, y)
        params = {k: params[k] - 0.5 * g[k] / len(X) for k in params}
    assert values.mean() < 0.5 * first
