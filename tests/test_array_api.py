"""Array-API code on traced arrays: SciPy's logsumexp, softmax and log_softmax,
and code that asks a traced array for its namespace. Values are checked
against closed forms on floats, gradients against the closed form (softmax)
and central differences of the same function run on floats."""

import os
import subprocess
import sys

import numpy as np
import pytest

import fasttape as ft
from fasttape import ops

try:
    import scipy.special as special
except ImportError:  # (an optional extra: the tests of SciPy's functions skip)
    special = None
needs_scipy = pytest.mark.skipif(special is None, reason="SciPy is not installed")

rng = np.random.default_rng(13)


def central(f, x, h=1e-6):
    g = np.zeros_like(x)
    for k in range(x.size):
        e = np.zeros_like(x)
        e.flat[k] = h
        g.flat[k] = (f(x + e) - f(x - e)) / (2 * h)
    return g


def lse(x, axis=None, keepdims=False):
    """log-sum-exp on floats, written out."""
    m = np.max(x, axis=axis, keepdims=True)
    out = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


def softmax(x, axis=None):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def no_guards(fn, *args):
    tape = ft.trace(fn, *args)
    assert ops.CODE["guard"] not in tape._program.op, "recorded a branch"
    return tape


VECTORS = {
    "random": rng.normal(size=6),
    "tied maxima": np.array([2.0, 2.0, 2.0, -1.0]),   # (zero-initialized logits)
    "all equal": np.zeros(5),
    "large": np.array([1000.0, 1001.0, 0.0]),
}


@needs_scipy
@pytest.mark.parametrize("name", VECTORS)
def test_logsumexp_value_and_gradient_are_softmax(name):
    x = VECTORS[name]
    value, grad = ft.value_and_grad(special.logsumexp)(x)
    assert value == pytest.approx(lse(x), rel=1e-14)
    np.testing.assert_allclose(grad, softmax(x), rtol=1e-12, atol=1e-15)
    if name != "large":
        np.testing.assert_allclose(grad, central(special.logsumexp, x), atol=1e-8)
    no_guards(special.logsumexp, x)


@needs_scipy
@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 1)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_axis_and_keepdims(axis, keepdims):
    X = rng.normal(size=(3, 4))
    X[1, :2] = X[1].max() + 0.5  # a tie in one row and one column
    w_shape = np.shape(lse(X, axis=axis, keepdims=keepdims))
    w = rng.normal(size=w_shape)

    def f(X):
        return np.sum(w * special.logsumexp(X, axis=axis, keepdims=keepdims))
    value, grad = ft.value_and_grad(f)(X)
    assert value == pytest.approx(np.sum(w * lse(X, axis, keepdims)), rel=1e-13)
    # d/dX sum(w * lse(X)) = w (broadcast back over axis) * softmax(X) along axis
    w_back = np.reshape(w, np.shape(lse(X, axis=axis, keepdims=True)))
    np.testing.assert_allclose(grad, w_back * softmax(X, axis=axis), rtol=1e-12,
                               atol=1e-14)


@needs_scipy
def test_logsumexp_weights_b_in_both_arguments():
    a, b = rng.normal(size=5), rng.uniform(0.2, 2.0, size=5)
    (value, (ga, gb)) = ft.value_and_grad(
        lambda a, b: special.logsumexp(a, b=b), argnums=(0, 1))(a, b)
    total = np.sum(b * np.exp(a))
    assert value == pytest.approx(np.log(total), rel=1e-14)
    np.testing.assert_allclose(ga, b * np.exp(a) / total, rtol=1e-12)
    np.testing.assert_allclose(gb, np.exp(a) / total, rtol=1e-12)
    # constant weights, one of them zero (its term is dropped, as SciPy drops
    # it), rows of a 2-D array along axis=1
    b[2] = 0.0
    A = rng.normal(size=(3, 5))
    g = ft.grad(lambda A: np.sum(special.logsumexp(A, axis=1, b=b)))(A)
    np.testing.assert_allclose(g, central(lambda A: np.sum(special.logsumexp(A, axis=1, b=b)),
                                          A), atol=1e-8)


@needs_scipy
@pytest.mark.parametrize("b", [[1.0, -0.5, 2.0, -3.0], [1.0, -5.0, 0.5, 0.25]])
def test_logsumexp_return_sign(b):
    a, b = np.array([0.3, 1.2, -0.4, 0.1]), np.array(b)
    total = np.sum(b * np.exp(a))
    (value, sign), grad = ft.value_and_grad(
        lambda a: special.logsumexp(a, b=b, return_sign=True), has_aux=True)(a)
    assert value == pytest.approx(np.log(abs(total)), rel=1e-14)
    assert sign == np.sign(total)
    np.testing.assert_allclose(grad, b * np.exp(a) / total, rtol=1e-12)  # d log|S| / da


@needs_scipy
def test_logsumexp_batched_samples_with_different_maxima():
    X = np.array([[3.0, 1.0, 2.0], [1.0, 3.0, 2.0], [1.0, 2.0, 3.0], [2.0, 2.0, 2.0],
                  [-1.0, 5.0, 5.0]])
    values, grads = ft.value_and_grad(special.logsumexp, in_axes=0)(X)
    np.testing.assert_allclose(values, lse(X, axis=1), rtol=1e-14)
    np.testing.assert_allclose(grads, softmax(X, axis=1), rtol=1e-12, atol=1e-15)
    # shared parameters: d/dw sum_i lse(w * x_i), one tape for every sample
    w = np.array([0.5, -1.0, 2.0])
    value, gw = ft.value_and_grad(lambda w, x: special.logsumexp(w * x),
                                  in_axes=(None, 0))(w, X)
    np.testing.assert_allclose(value, lse(w * X, axis=1), rtol=1e-14)
    np.testing.assert_allclose(gw, np.sum(X * softmax(w * X, axis=1), axis=0), rtol=1e-12)


@needs_scipy
def test_a_traced_tape_replays_logsumexp_at_new_inputs():
    w = np.array([1.0, -2.0, 0.5])
    tape = no_guards(lambda x: np.sum(w * special.logsumexp(x, axis=0)), np.zeros((2, 3)))
    for _ in range(3):
        X = rng.normal(size=(2, 3))
        value, grad = tape.value_and_grad(X)
        assert value == pytest.approx(np.sum(w * lse(X, axis=0)), rel=1e-14)
        np.testing.assert_allclose(grad, w * softmax(X, axis=0), rtol=1e-12)


@needs_scipy
def test_softmax_and_log_softmax_trace_branch_free():
    X = np.array([[3.0, 1.0, 2.0], [1.0, 3.0, 2.0], [0.5, 0.5, -2.0]])
    w = np.array([0.7, -1.3, 0.4])

    def f(x):
        return np.sum(w * special.softmax(x))

    def g(x):
        return np.sum(w * special.log_softmax(x))
    values, grads = ft.value_and_grad(f, in_axes=0)(X)
    s = softmax(X, axis=1)
    np.testing.assert_allclose(values, s @ w, rtol=1e-13)
    np.testing.assert_allclose(grads, s * (w - (s @ w)[:, None]), rtol=1e-12, atol=1e-15)
    values, grads = ft.value_and_grad(g, in_axes=0)(X)
    np.testing.assert_allclose(values, np.log(s) @ w, rtol=1e-13)
    np.testing.assert_allclose(grads, w - s * np.sum(w), rtol=1e-12, atol=1e-15)
    no_guards(f, X[0])
    no_guards(g, X[0])
    G = ft.grad(lambda X: np.sum(special.log_softmax(X, axis=0)[1]))(X)
    np.testing.assert_allclose(G, central(lambda X: np.sum(special.log_softmax(X, axis=0)[1]),
                                          X), atol=1e-8)


def test_masked_assignment_with_traced_conditions_is_a_select():
    def f(x):
        y = x * x
        y[x < 0] = 0.0                      # per sample: no branch baked in
        y[~(x < 2.0)] = 4.0
        return np.sum(y)
    X = np.array([[-1.0, 0.5, 3.0], [1.0, -0.5, -3.0]])
    values, grads = ft.value_and_grad(f, in_axes=0)(X)
    np.testing.assert_allclose(values, [0.25 + 4.0, 1.0])
    np.testing.assert_allclose(grads, [[0.0, 1.0, 0.0], [2.0, 0.0, 0.0]])
    with pytest.raises(ft.UnsupportedError, match="np.where"):
        ft.grad(lambda x: x.__setitem__(x > 0, np.ones(3)) or np.sum(x))(X[0])
    with pytest.raises(ft.UnsupportedError, match="float64"):
        ft.grad(lambda x: np.sum(x.__array_namespace__().asarray(x, dtype=bool)))(X[0])


def test_generic_array_api_code_runs_on_a_traced_arrays_namespace():
    def f(x):
        xp = x.__array_namespace__()
        x = xp.asarray(x)
        r = 1.0 / x
        return xp.sum(xp.where(xp.isfinite(r), r, 0.0)) + xp.sum(xp.where(xp.isnan(x), 0.0, x))
    X = np.array([[1.0, 2.0], [0.0, 4.0]])
    values, grads = ft.value_and_grad(f, in_axes=0)(X)
    np.testing.assert_allclose(values, [1.5 + 3.0, 0.25 + 4.0])
    np.testing.assert_allclose(grads, [[0.0, 0.75], [1.0, 1 - 1 / 16]])


def test_fasttape_without_scipy_imports_and_gives_its_namespace():
    code = ("import sys; sys.modules['scipy'] = None\n"
            "import numpy as np, fasttape as ft\n"
            "def f(x):\n"
            "    assert x.__array_namespace__().__name__ == 'fasttape.array_api'\n"
            "    return np.sum(x * x)\n"
            "print(ft.grad(f)(np.array([1.0, 2.0])))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[2.", "4.]"]


@needs_scipy
@pytest.mark.parametrize("first", ["fasttape", "scipy", "scipy inside the function",
                                   "scipy, in its array-API mode"])
def test_scipy_is_routed_whichever_is_imported_first(first):
    body = ("import numpy as np, fasttape as ft\n"
            "def f(a, b):\n"
            "    from scipy.special import logsumexp\n"
            "    return logsumexp([a, b])\n"
            "value, (ga, gb) = ft.value_and_grad(f, argnums=(0, 1))(1.0, 2.0)\n"
            "print(value - np.log(np.e + np.e ** 2), ga - 1 / (1 + np.e), gb - 1 / (1 + 1 / np.e))\n")
    head = {"fasttape": "import fasttape\nimport scipy.special\n",
            "scipy": "import scipy.special\nimport fasttape\n",
            "scipy inside the function": "",
            "scipy, in its array-API mode": "import scipy.special\nimport fasttape\n"}[first]
    env = dict(os.environ, SCIPY_ARRAY_API="1" if "array-API" in first else "")
    out = subprocess.run([sys.executable, "-c", head + body], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert all(abs(float(v)) < 1e-15 for v in out.stdout.split()), out.stdout


@needs_scipy
def test_scipy_elementwise_functions_name_themselves_and_a_numpy_form():
    x = np.array([-800.0, -1.0, 0.5, 3.0])
    for fn, formula in [(special.expit, lambda x: 0.5 * (1 + np.tanh(0.5 * x))),
                        (special.log_expit, lambda x: -np.logaddexp(0, -x))]:
        with pytest.raises(ft.UnsupportedError, match=f"scipy.special.{fn.__name__} is not"):
            ft.grad(lambda x: np.sum(fn(x)))(x)
        # the form the message suggests traces, with the right gradient
        s = fn(x) if fn is special.expit else np.exp(fn(x))    # sigmoid(x)
        want = s * (1 - s) if fn is special.expit else 1 - s
        np.testing.assert_allclose(ft.grad(lambda x: np.sum(formula(x)))(x), want,
                                   rtol=1e-12, atol=1e-300)
