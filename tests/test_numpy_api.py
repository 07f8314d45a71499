"""Plain NumPy inside traced functions: each idiom records its fast,
branch-free form, and its gradient matches central differences of the same
NumPy code run on floats (an evaluation that shares nothing with fasttape)."""

import numpy as np
import pytest

import fasttape as ft
from fasttape import ops

rng = np.random.default_rng(7)
W = rng.normal(size=(5, 3))
b = rng.normal(size=3)
x0 = rng.uniform(-0.9, 0.9, size=5)


def central(f, x, h=1e-6):
    g = np.zeros_like(x)
    for k in range(x.size):
        e = np.zeros_like(x)
        e.flat[k] = h
        g.flat[k] = (f(x + e) - f(x - e)) / (2 * h)
    return g


IDIOMS = {
    "layer": lambda x: np.sum(np.tanh(x @ W + b)),
    "dot": lambda x: np.dot(x, x) + x.sum() + np.sum(x),
    "matmul_left": lambda x: np.sum(W.T @ x),
    "softmax": lambda x: np.log(np.sum(np.exp(x - np.max(x)))) - (x - np.max(x))[0],
    "relu_hinge": lambda x: np.maximum(x, 0.0).sum() + np.mean(np.maximum(0.0, 1 - x)),
    "clip_where": lambda x: np.clip(x, -0.5, 0.5).sum() + np.where(x > 0, x, 2 * x).sum(),
    "minimum_abs": lambda x: np.minimum(x, 0.2).sum() + np.abs(x).sum(),
    "stats": lambda x: np.var(x) + np.std(x) + x.mean() + x.var() + np.linalg.norm(x),
    "reductions": lambda x: np.prod(x + 2.0) + np.cumsum(x)[-2] + x.max() + np.min(x),
    "products": lambda x: (np.inner(x, x) + np.outer(x, x).sum() + np.tensordot(x, x, 1)
                           + np.einsum("i,i->", x, x) + np.einsum("i,ij->j", x, W).sum()),
    "trig": lambda x: np.sum(np.arctan(x) + np.sinh(x) + np.cosh(x) + np.arcsin(x / 2)
                             + np.arccos(x / 2) + np.arcsinh(x) + np.arctanh(x / 2)),
    "logs": lambda x: np.sum(np.log2(x + 2) + np.log10(x + 2) + np.exp2(x) + np.cbrt(x + 2)
                             + np.square(x) + np.reciprocal(x + 2) + np.deg2rad(x)
                             + np.rad2deg(x) + np.arccosh(x + 2)),
    "binary": lambda x: np.sum(np.arctan2(x, 1.5) + np.hypot(x, 0.5) + np.logaddexp(x, 0.3)
                               + np.logaddexp2(x, -0.2) + np.fmax(x, 0.1) + np.fmin(x, 0.1)
                               + np.power(x + 2, 1.5) + np.copysign(x, -1.0)),
    "basics": lambda x: np.sum(np.sin(x) + np.cos(x) + np.tan(x / 2) + np.tanh(x) + np.exp(x)
                               + np.log(x + 2) + np.sqrt(x + 2) + np.log1p(x + 1)
                               + np.expm1(x) + np.negative(x) + np.positive(x)),
    "piecewise": lambda x: np.sum(np.fabs(x) + np.sign(x) + np.floor(x) + np.ceil(x)
                                  + np.fmod(x, 0.7) + np.mod(x, 0.7) + x % 0.4)
                           + np.argmax(x) + np.argmin(x),
    "comparisons": lambda x: np.sum(np.where(np.greater_equal(x, 0.1), x, 0.0)
                                    + np.where(x <= -0.2, x * x, 0.0)
                                    + np.where(np.not_equal(x, 0.3), 2 * x, 0.0)
                                    + (x < 0.4) * x + np.equal(x, 0.5) * x),
    "matmul": lambda x: np.matmul(x, x) + np.vdot(x, x) + np.matmul(W.T, x).sum(),
    "shapes": lambda x: np.sum(np.concatenate([x, x[::-1]]).reshape(2, 5).T
                               @ np.array([1.0, -2.0])) + np.stack([x, x]).sum(axis=0)[1],
    "axis": lambda x: np.sum(np.max(np.reshape(x[:4], (2, 2)), axis=1)
                             * np.mean(np.reshape(x[:4], (2, 2)), axis=0, keepdims=True)),
}


@pytest.mark.parametrize("name", sorted(IDIOMS))
def test_numpy_idioms_trace_without_guards_and_match_differences(name):
    fn = IDIOMS[name]
    tape = ft.trace(fn, x0)
    assert ops.CODE["guard"] not in tape._program.op, "a NumPy idiom recorded a branch"
    assert tape(x0) == pytest.approx(float(fn(x0)), rel=1e-13)
    np.testing.assert_allclose(tape.grad(x0), central(fn, x0), rtol=1e-6, atol=1e-8)


def test_a_layer_written_in_numpy_records_what_ft_nn_records():
    layer = ft.trace(lambda x: np.tanh(x @ W + b), x0)
    by_hand = ft.trace(lambda x: ft.tanh(ft.dot(x, W) + b), x0)
    assert len(layer) == len(by_hand) <= x0.size + 3 * W.shape[1]
    dots = np.isin(layer._program.op, [ops.CODE["dot"], ops.CODE["dotc"]])
    assert dots.sum() == W.shape[1]  # one n-ary node per unit, not a mul and add per term


def test_branch_free_ops_hold_in_a_batch_whose_samples_differ():
    hinge = ft.value_and_grad(lambda w, x: np.maximum(0.0, 1.0 - x @ w), in_axes=(None, 0))
    X = np.array([[1.0, 0.0], [0.0, -5.0], [3.0, 1.0]])
    w = np.array([0.5, 0.25])
    values, g = hinge(w, X)
    margins = 1.0 - X @ w
    np.testing.assert_allclose(values, np.maximum(0.0, margins))
    np.testing.assert_allclose(g, -(X * (margins > 0)[:, None]).sum(axis=0))
    assert len(hinge.tapes) == 1  # one tape: no re-trace per sign pattern


def test_where_and_clip_hold_per_sample_in_a_batch():
    f = lambda w, x: np.sum(np.where(x * w > 0.5, x * w, -x * w) + np.clip(x * w, -1.0, 1.0))  # noqa
    X = np.array([[2.0, -1.0], [0.1, 3.0], [-4.0, 0.2]])
    w = np.array([0.7, -0.3])
    values, g = ft.value_and_grad(f, argnums=(0, 1), in_axes=(None, 0))(w, X)
    for k, x in enumerate(X):
        assert values[k] == pytest.approx(f(w, x), rel=1e-14)
        np.testing.assert_allclose(g[1][k], central(lambda v: f(w, v), x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(g[0], sum(central(lambda v: f(v, x), w) for x in X),
                               rtol=1e-6, atol=1e-8)


def plain_mlp_loss(sizes):
    """A softmax classifier written as plain NumPy on ft.nn.MLP's flat layout."""
    def loss(params, x, t):
        h, start = x, 0
        for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            W = params[start:start + n_in * n_out].reshape(n_out, n_in)
            b = params[start + n_in * n_out:start + n_in * n_out + n_out]
            start += n_in * n_out + n_out
            h = W @ h + b
            if k < len(sizes) - 2:
                h = np.tanh(h)
        z = h - np.max(h)
        return np.log(np.sum(np.exp(z))) - z @ t
    return loss


@pytest.mark.parametrize("sizes", [(2, 10, 3), (64, 32, 10)])
def test_a_plain_numpy_classifier_records_what_ft_nn_records(sizes):
    model = ft.nn.MLP(sizes)
    params, x, t = model.init(0), rng.normal(size=sizes[0]), np.eye(sizes[-1])[1]
    nn_tape = ft.trace(lambda p, x, t: ft.nn.softmax_cross_entropy(model(p, x), t), params, x, t)
    plain_tape = ft.trace(plain_mlp_loss(sizes), params, x, t)
    assert abs(len(plain_tape) - len(nn_tape)) <= 0.1 * len(nn_tape)
    X, T = rng.normal(size=(5, sizes[0])), np.eye(sizes[-1])[[0, 1, 2, 1, 0]]
    for tape in (plain_tape, nn_tape):  # the same numbers, batched
        values, g = tape.value_and_grad(params, X, T, in_axes=(None, 0, 0))
        if tape is nn_tape:
            np.testing.assert_allclose(values, want_values, rtol=1e-12)
            np.testing.assert_allclose(g, want_g, rtol=1e-10, atol=1e-12)
        want_values, want_g = values, g


def test_unsupported_numpy_names_the_problem():
    with pytest.raises(ft.FasttapeError, match="np.sort is not supported"):
        ft.grad(lambda x: np.sort(x)[0])(x0)
    with pytest.raises(ft.FasttapeError, match="isnan"):
        ft.grad(lambda x: np.sum(np.isnan(x)))(x0)
    with pytest.raises(ft.UnsupportedError, match="np.where"):  # a mask of conditions
        ft.grad(lambda x: np.sum(x[x > 0]))(x0)
    with pytest.raises(ft.UnsupportedError, match="np.max"):  # an index that is a Var
        ft.grad(lambda x: x[np.argmax(x)])(x0)


def test_numpy_on_a_single_var_records_too():
    v = ft.Var(0.5)
    y = np.maximum(v, 0.0) + np.float64(2.0) * v + np.arctan(v)
    y.backward()
    assert y.value == pytest.approx(0.5 + 1.0 + np.arctan(0.5))
    assert v.grad == pytest.approx(1.0 + 2.0 + 1 / 1.25)
