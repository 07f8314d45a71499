"""The program classes of the tape-compiler targets, each written the way a user
writes it beside fasttape's idiomatic form, against their peers.

Groups:
  X1 logistic d=100 B=1024   mean logistic loss of a linear model: idiomatic
                             (per-sample ft.dot, in_axes) and plain (`X @ w`
                             on the whole batch); NumPy by hand; the floor,
                             a fused C loop.
  X2 relu 784-128-10 B=128   a ReLU network, mean softmax cross-entropy on
                             random data: ft.nn.MLP(activation="relu") with
                             in_axes, and the same written in plain NumPy
                             per sample; NumPy by hand (BLAS, one thread).
  X3 rk4 B=1, B=512          an explicit RK4 integrator (Lotka-Volterra, 100
                             steps), the gradient of x(T) + y(T) with respect
                             to its 4 parameters: per sample with in_axes
                             (idiomatic), and at B = 512 the whole batch as
                             arrays (plain); CasADi at B = 1 and JAX with
                             lax.scan at B = 512 where installed.

References: NumPy by hand for X1 and X2 (checked against central
differences), the complex step for X3 (exact to rounding).
"""

import numpy as np
import pytest

import fasttape as ft
from _peers import (FASTTAPE_ROLE, KERNEL_ROLE, LIMIT_ROLE, PEER_ROLE, TIMING, c_floor, casadi,
                    check, doubles, jax, run)

pytest.importorskip("pytest_benchmark")
pytestmark = TIMING


def central(f, p, h=1e-6, k=8):
    """Central differences of f at p on k random coordinates."""
    rng = np.random.default_rng(3)
    out = {}
    for i in rng.choice(p.size, min(k, p.size), replace=False):
        e = np.zeros_like(p)
        e[i] = h
        out[i] = (f(p + e) - f(p - e)) / (2 * h)
    return out


# --------------------------------------------------------------- X1 logistic

X1 = "X1 logistic d=100 B=1024"
_x1 = {}


def x1_data():
    if not _x1:
        rng = np.random.default_rng(1)
        X = rng.normal(size=(1024, 100)) / 10.0
        w = rng.normal(size=100)
        T = (rng.uniform(size=1024) < 0.5).astype(float)
        _x1.update(X=X, w=w, T=T, ref=logistic_numpy(w, X, T))
        fd = central(lambda w: logistic_numpy(w, X, T)[0], w)
        for i, v in fd.items():
            assert _x1["ref"][1][i] == pytest.approx(v, rel=1e-6, abs=1e-10)
    return _x1


def logistic_numpy(w, X, T):
    z = X @ w
    value = np.mean(np.logaddexp(0.0, z) - T * z)
    return float(value), X.T @ (0.5 * (1.0 + np.tanh(0.5 * z)) - T) / len(T)


def logistic_sample(w, x, t):
    z = ft.dot(w, x)
    return ft.logaddexp(0.0, z) - t * z


def logistic_plain(w, X, T):
    z = X @ w
    return np.mean(np.logaddexp(0.0, z) - T * z)


def test_x1_kernel(benchmark):
    d = x1_data()
    step = ft.value_and_grad(logistic_sample, in_axes=(None, 0, 0))
    B = len(d["T"])

    def call(w, X, T):
        values, g = step(w, X, T)
        return float(np.mean(values)), g / B

    check(call(d["w"], d["X"], d["T"]), d["ref"])
    run(benchmark, X1, KERNEL_ROLE, call, d["w"], d["X"], d["T"])


def test_x1_plain_numpy(benchmark):
    d = x1_data()
    step = ft.value_and_grad(logistic_plain)
    check(step(d["w"], d["X"], d["T"]), d["ref"])
    run(benchmark, X1, FASTTAPE_ROLE, step, d["w"], d["X"], d["T"])


LOGISTIC_C = """
#define BS 256                         /* samples a block: the exp/log1p loop vectorizes */
double logistic(long B, long d, const double *w, const double *X, const double *T,
                double *g) {
    double f = 0.0, z[BS];
    for (long j = 0; j < d; j++) g[j] = 0.0;
    for (long s0 = 0; s0 < B; s0 += BS) {
        long nb = B - s0 < BS ? B - s0 : BS;
        const double *Xb = X + s0 * d, *t = T + s0;
        for (long s = 0; s < nb; s++) {
            double acc = 0.0;
            for (long j = 0; j < d; j++) acc += Xb[s * d + j] * w[j];
            z[s] = acc;
        }
        for (long s = 0; s < nb; s++) {   /* loss, then z becomes d loss / dz */
            double v = z[s];
            f += fmax(v, 0.0) + log1p(exp(-fabs(v))) - t[s] * v;
            z[s] = (1.0 / (1.0 + exp(-v)) - t[s]) / B;
        }
        for (long s = 0; s < nb; s++)
            for (long j = 0; j < d; j++) g[j] += z[s] * Xb[s * d + j];
    }
    return f / B;
}
"""


def test_x1_limit(benchmark):
    """The floor: one fused C loop over the samples."""
    import ctypes
    ptr = ctypes.POINTER(ctypes.c_double)
    c = c_floor(LOGISTIC_C, "logistic", ctypes.c_double,
                [ctypes.c_long, ctypes.c_long, ptr, ptr, ptr, ptr])
    d = x1_data()
    w, X, T = (np.ascontiguousarray(d[k]) for k in ("w", "X", "T"))
    g = np.empty_like(w)
    args = (X.shape[0], X.shape[1], doubles(w), doubles(X), doubles(T), doubles(g))

    def call():
        return c(*args), g

    check(call(), d["ref"])
    run(benchmark, X1, LIMIT_ROLE, call)


def test_x1_numpy(benchmark):
    d = x1_data()
    check(logistic_numpy(d["w"], d["X"], d["T"]), d["ref"])
    run(benchmark, X1, PEER_ROLE, logistic_numpy, d["w"], d["X"], d["T"])


# --------------------------------------------------------------- X2 ReLU network

X2_SIZES, X2_BATCH = (784, 128, 10), 128
X2 = "X2 relu 784-128-10 B=128"
_x2 = {}


def layers(sizes, params):
    """(W, b) per layer in ft.nn.MLP's flat layout (row-major (n_out, n_in), then b)."""
    out, s = [], 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        out.append((params[s:s + n_in * n_out].reshape(n_out, n_in),
                    params[s + n_in * n_out:s + n_in * n_out + n_out]))
        s += n_in * n_out + n_out
    return out


def relu_numpy(params, X, T, sizes=X2_SIZES):
    """Mean softmax cross-entropy of the ReLU network and its gradient, by hand."""
    Ls = layers(sizes, params)
    hs, h = [X], X
    for k, (W, b) in enumerate(Ls):
        h = h @ W.T + b
        if k < len(Ls) - 1:
            h = np.maximum(h, 0.0)
            hs.append(h)
    m = h.max(axis=1, keepdims=True)
    e = np.exp(h - m)
    s_ = e.sum(axis=1, keepdims=True)
    B = len(X)
    value = np.mean(m[:, 0] + np.log(s_[:, 0]) - np.sum(T * h, axis=1))
    dz = (e / s_ - T) / B
    grads = []
    for k in range(len(Ls) - 1, -1, -1):
        grads.append(((dz.T @ hs[k]).ravel(), dz.sum(axis=0)))
        if k:
            dz = (dz @ Ls[k][0]) * (hs[k] > 0)
    return float(value), np.concatenate([a for pair in reversed(grads) for a in pair])


def x2_data():
    if not _x2:
        rng = np.random.default_rng(2)
        model = ft.nn.MLP(X2_SIZES, activation="relu")
        params = model.init(0)
        X = rng.uniform(0.0, 1.0, size=(X2_BATCH, X2_SIZES[0]))
        labels = rng.integers(0, X2_SIZES[-1], size=X2_BATCH)
        T = np.eye(X2_SIZES[-1])[labels]
        _x2.update(model=model, params=params, X=X, T=T, ref=relu_numpy(params, X, T))
        fd = central(lambda p: relu_numpy(p, X, T)[0], params)
        for i, v in fd.items():
            assert _x2["ref"][1][i] == pytest.approx(v, rel=1e-5, abs=1e-9)
    return _x2


def relu_plain(params, x, t):
    """One sample, as plain NumPy: np.maximum(W @ h + b, 0), a softmax with np.max."""
    h = x
    Ls = layers(X2_SIZES, params)
    for k, (W, b) in enumerate(Ls):
        h = W @ h + b
        if k < len(Ls) - 1:
            h = np.maximum(h, 0.0)
    z = h - np.max(h)
    return np.log(np.sum(np.exp(z))) - z @ t


def _x2_row(benchmark, role, loss):
    d = x2_data()
    step = ft.value_and_grad(loss, in_axes=(None, 0, 0))

    def call(params, X, T):
        values, g = step(params, X, T)
        return float(np.mean(values)), g / X2_BATCH

    check(call(d["params"], d["X"], d["T"]), d["ref"])
    run(benchmark, X2, role, call, d["params"], d["X"], d["T"])


def test_x2_kernel(benchmark):
    model = x2_data()["model"]
    _x2_row(benchmark, KERNEL_ROLE,
            lambda p, x, t: ft.nn.softmax_cross_entropy(model(p, x), t))


def test_x2_plain_numpy(benchmark):
    _x2_row(benchmark, FASTTAPE_ROLE, relu_plain)


def test_x2_numpy(benchmark):
    d = x2_data()
    check(relu_numpy(d["params"], d["X"], d["T"]), d["ref"])
    run(benchmark, X2, PEER_ROLE, relu_numpy, d["params"], d["X"], d["T"])


# --------------------------------------------------------------- X3 RK4

RK4_STEPS, RK4_DT = 100, 0.01
RK4_PARAMS = np.array([1.5, 1.0, 3.0, 1.0])   # Lotka-Volterra a, b, c, d


def x3(batch):
    return f"X3 rk4 B={batch}"


def rk4(p, x, y, np_=np):
    """x(T) + y(T) of dx = a x - b x y, dy = d x y - c y by RK4: the same text
    runs on floats, complex numbers, Vars and arrays of them."""
    a, b, c, d = p[0], p[1], p[2], p[3]
    h = RK4_DT

    def f(x, y):
        return a * x - b * x * y, d * x * y - c * y
    for _ in range(RK4_STEPS):
        k1x, k1y = f(x, y)
        k2x, k2y = f(x + 0.5 * h * k1x, y + 0.5 * h * k1y)
        k3x, k3y = f(x + 0.5 * h * k2x, y + 0.5 * h * k2y)
        k4x, k4y = f(x + h * k3x, y + h * k3y)
        x = x + h / 6.0 * (k1x + 2.0 * k2x + 2.0 * k3x + k4x)
        y = y + h / 6.0 * (k1y + 2.0 * k2y + 2.0 * k3y + k4y)
    return x + y


def rk4_sample(p, z0):
    return rk4(p, z0[0], z0[1])


def rk4_plain(p, Z0):
    """The whole batch as arrays (Z0 of shape (B, 2)), summed."""
    return np.sum(rk4(p, Z0[:, 0], Z0[:, 1]))


_x3 = {}


def x3_data(batch):
    """Initial states and the reference: values, and the gradient summed over
    the batch by the complex step (exact to rounding)."""
    if batch not in _x3:
        Z0 = np.random.default_rng(batch).uniform(0.5, 1.5, size=(batch, 2))
        values = rk4(RK4_PARAMS, Z0[:, 0], Z0[:, 1])
        grad = np.empty(4)
        for i in range(4):
            p = RK4_PARAMS.astype(complex)
            p[i] += 1e-30j
            grad[i] = np.sum(rk4(p, Z0[:, 0].astype(complex), Z0[:, 1]).imag) / 1e-30
        _x3[batch] = Z0, values, grad
    return _x3[batch]


def _x3_ref(batch):
    Z0, values, grad = x3_data(batch)
    return (values[0] if batch == 1 else values), grad


@pytest.mark.parametrize("batch", [1, 512])
def test_x3_kernel(benchmark, batch):
    Z0, _, _ = x3_data(batch)
    if batch == 1:
        step, z = ft.value_and_grad(rk4_sample), Z0[0]
    else:
        step, z = ft.value_and_grad(rk4_sample, in_axes=(None, 0)), Z0
    check(step(RK4_PARAMS, z), _x3_ref(batch))
    run(benchmark, x3(batch), KERNEL_ROLE, step, RK4_PARAMS, z)


def test_x3_casadi(benchmark):
    """B = 1: one SX function of the parameters (value, gradient)."""
    ca = casadi()
    Z0, _, _ = x3_data(1)
    p = ca.SX.sym("p", 4)
    out = rk4([p[0], p[1], p[2], p[3]], Z0[0, 0], Z0[0, 1])
    fn = ca.Function("rk4", [p], [out, ca.gradient(out, p)])

    def call(params):
        value, g = fn(params)
        return float(value), g.full().ravel()

    check(call(RK4_PARAMS), _x3_ref(1))
    run(benchmark, x3(1), PEER_ROLE, call, RK4_PARAMS)


def test_x3_plain_numpy(benchmark):
    """B = 512: the batch as arrays in the traced function, no in_axes."""
    Z0, values, grad = x3_data(512)
    tape = ft.trace(rk4_plain, RK4_PARAMS, Z0)

    def call(p, Z0):
        return tape.value_and_grad(p, Z0)

    check(call(RK4_PARAMS, Z0), (np.sum(values), grad))
    run(benchmark, x3(512), FASTTAPE_ROLE, call, RK4_PARAMS, Z0)


def test_x3_jax_scan(benchmark):
    """B = 512: jit(value_and_grad) of a lax.scan over the steps, batched arrays."""
    jax_ = jax()
    jnp = jax_.numpy
    Z0, values, grad = x3_data(512)

    def total(p, Z0):
        a, b, c, d = p[0], p[1], p[2], p[3]
        h = RK4_DT

        def f(z):
            x, y = z[:, 0], z[:, 1]
            return jnp.stack([a * x - b * x * y, d * x * y - c * y], axis=1)

        def step(z, _):
            k1 = f(z)
            k2 = f(z + 0.5 * h * k1)
            k3 = f(z + 0.5 * h * k2)
            k4 = f(z + h * k3)
            return z + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4), None
        z, _ = jax_.lax.scan(step, Z0, None, length=RK4_STEPS)
        return jnp.sum(z)

    fn = jax_.jit(jax_.value_and_grad(total))
    p, Z = jnp.asarray(RK4_PARAMS), jnp.asarray(Z0)

    def call():
        value, g = fn(p, Z)
        return float(value), np.asarray(g)

    check(call(), (np.sum(values), grad))
    run(benchmark, x3(512), PEER_ROLE, call)
