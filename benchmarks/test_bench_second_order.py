"""Second derivatives (issue 3's marks), Rosenbrock f(x) = sum 100 (x[i+1] -
x[i]^2)^2 + (1 - x[i])^2:

  S1 hvp n=10000      a Hessian-vector product on the kernel, against one
                      value-and-gradient on the same tape (mark: within 4x).
  S2 hessian n=100    the exact Hessian (three coloured HVPs, the pattern being
                      tridiagonal), against NumPy building the dense closed form
                      (mark: within 2x).

Every result is checked against the closed form before it is timed.
"""

import numpy as np
import pytest

import fasttape as ft
from _peers import KERNEL_ROLE, PEER_ROLE, TIMING, run

pytest.importorskip("pytest_benchmark")
pytestmark = TIMING

S1, S2 = "S1 hvp n=10000", "S2 hessian n=100"


def rosenbrock(x):
    return ft.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def dense_hessian(x):
    """Rosenbrock's Hessian by hand, as a dense NumPy matrix."""
    n = len(x)
    H = np.zeros((n, n))
    i = np.arange(n - 1)
    H[i, i] += 1200 * x[:-1] ** 2 - 400 * x[1:] + 2
    H[i + 1, i + 1] += 200
    H[i, i + 1] = H[i + 1, i] = -400 * x[:-1]
    return H


def gradient(x):
    g = np.zeros_like(x)
    d = x[1:] - x[:-1] ** 2
    g[:-1] = -400 * x[:-1] * d - 2 * (1 - x[:-1])
    g[1:] += 200 * d
    return g


@pytest.fixture(scope="module")
def big():
    rng = np.random.default_rng(7)
    x, v = rng.normal(size=10_000), rng.normal(size=10_000)
    return ft.trace(rosenbrock, x), x, v


def test_s1_hvp_kernel(benchmark, big):
    tape, x, v = big
    want = dense_hessian(x[:200]) @ v[:200]  # the banded product, checked on a head
    np.testing.assert_allclose(tape.hvp((x,), v)[:199], want[:199], rtol=1e-10)
    run(benchmark, S1, KERNEL_ROLE, tape.hvp, (x,), v)


def test_s1_gradient(benchmark, big):
    tape, x, _ = big
    np.testing.assert_allclose(tape.grad(x), gradient(x), rtol=1e-10)
    run(benchmark, S1, PEER_ROLE, tape.value_and_grad, x)


@pytest.fixture(scope="module")
def small():
    x = np.random.default_rng(8).normal(size=100)
    return ft.trace(rosenbrock, x), x


def test_s2_hessian_kernel(benchmark, small):
    tape, x = small
    np.testing.assert_allclose(tape.hessian(x), dense_hessian(x), rtol=1e-12, atol=1e-9)
    run(benchmark, S2, KERNEL_ROLE, tape.hessian, x)


def test_s2_hessian_numpy(benchmark, small):
    _, x = small
    run(benchmark, S2, PEER_ROLE, dense_hessian, x)
