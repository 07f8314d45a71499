"""Benchmark W5: recording speed, in nodes recorded per second.

The function is Rosenbrock written with NumPy object arrays
(``ft.sum(100*(x[1:]-x[:-1]**2)**2+(1-x[:-1])**2)``) at n = 12,500, about
1e5 fasttape nodes; ``nodes`` (in each row's extra_info) is fasttape's node count
for the same expression and size, and benchmarks/report.py divides by it.

Groups:
  W5 recording traced   ft.trace on the kernel's recorder and on the twin's; JAX
                        make_jaxpr over the same object arrays of scalar tracers
                        (checked at n = 50: evaluating 1e5 scalar jaxpr ops
                        takes minutes); CasADi building the SX graph
                        of the same text on an SX vector (its nodes are made in
                        C++, one per element and op, as fasttape's are per Var op).
  W5 recording eager    ft.Var on the kernel's and on the twin's recorder, the
                        same object-array expression (record only, no backward);
                        PyTorch eager on 0-d tensors with requires_grad.

Python's cyclic garbage collector is off while a round runs (and a collection
runs before it): what a collection costs depends on all the objects the process
holds (PyTorch's and JAX's modules among them), not on the recorder timed.

Every recorded graph is checked by evaluating it (value and gradient) against
the hand-written reference before it is timed.
"""

import numpy as np
import pytest

import fasttape as ft
from _peers import (FASTTAPE_ROLE, KERNEL_ROLE, PEER_ROLE, TIMING, casadi, check, jax,
                    on_twin_recorder, run, torch, twin_trace)
from test_bench_core import rosen_point, rosenbrock, rosenbrock_reference

pytest.importorskip("pytest_benchmark")
pytestmark = TIMING

N = 12_500
TRACED, EAGER = "W5 recording traced", "W5 recording eager"
_nodes = {}


def nodes(n):
    """fasttape's node count for Rosenbrock at size n (inputs included)."""
    if n not in _nodes:
        _nodes[n] = len(ft.trace(rosenbrock, rosen_point(n)))
    return _nodes[n]


def reference(n):
    return rosenbrock_reference(rosen_point(n))


def test_w5_traced_kernel(benchmark):
    x = rosen_point(N)
    tape = ft.trace(rosenbrock, x)
    check(tape.value_and_grad(x), reference(N), rtol=1e-11)
    run(benchmark, TRACED, KERNEL_ROLE, ft.trace, rosenbrock, x, rounds=10,
        nodes=nodes(N), gc_off=True)


def test_w5_traced_twin(benchmark):
    x = rosen_point(N)
    tape = twin_trace(rosenbrock, x)
    check(tape.value_and_grad(x), reference(N), rtol=1e-11)
    run(benchmark, TRACED, FASTTAPE_ROLE, twin_trace, rosenbrock, x, rounds=3,
        nodes=nodes(N), gc_off=True)


def test_w5_traced_jax_make_jaxpr(benchmark):
    jax_ = jax()

    def scalar_fn(*xs):
        arr = np.empty(len(xs), dtype=object)
        for i, a in enumerate(xs):  # (arr[:] = xs would call the tracers' __array__)
            arr[i] = a
        return np.sum(100 * (arr[1:] - arr[:-1] ** 2) ** 2 + (1 - arr[:-1]) ** 2)

    def record(x):
        return jax_.make_jaxpr(scalar_fn)(*x)

    # The check at n = 50: evaluating a jaxpr of 1e5 scalar ops takes minutes.
    n = 50
    jaxpr = record(rosen_point(n))
    f = jax_.jit(jax_.value_and_grad(lambda v: jax_.core.eval_jaxpr(
        jaxpr.jaxpr, jaxpr.consts, *[v[i] for i in range(n)])[0]))
    value, g = f(jax_.numpy.asarray(rosen_point(n)))
    check((float(value), np.asarray(g)), reference(n), rtol=1e-11)
    # warmup: JAX's first trace with 12,500 arguments takes seconds more
    run(benchmark, TRACED, PEER_ROLE, record, rosen_point(N), rounds=3, warmup=1,
        nodes=nodes(N), gc_off=True)


def test_w5_traced_casadi(benchmark):
    ca = casadi()

    def record():
        x = ca.SX.sym("x", N)
        return x, ca.sum1(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)

    x, f = record()
    fn = ca.Function("rosenbrock", [x], [f, ca.gradient(f, x)])
    value, g = fn(rosen_point(N))
    check((float(value), g.full().ravel()), reference(N), rtol=1e-11)
    run(benchmark, TRACED, PEER_ROLE, record, rounds=10,
        nodes=nodes(N), gc_off=True)


def record_eager(x):
    v = np.empty(len(x), dtype=object)
    v[:] = [ft.Var(a) for a in x.tolist()]
    return v, rosenbrock(v)


def eager_check(record, n):
    v, f = record(rosen_point(n))
    f.backward()
    check((f.value, [a.grad for a in v]), reference(n), rtol=1e-11)


def test_w5_eager_kernel(benchmark):
    eager_check(record_eager, N)
    run(benchmark, EAGER, KERNEL_ROLE, record_eager, rosen_point(N), rounds=10,
        nodes=nodes(N), gc_off=True)


def test_w5_eager_twin(benchmark):
    record = on_twin_recorder(record_eager)
    eager_check(record, N)
    run(benchmark, EAGER, FASTTAPE_ROLE, record, rosen_point(N), rounds=3,
        nodes=nodes(N), gc_off=True)


def test_w5_eager_torch(benchmark):
    torch_ = torch()
    n = N

    def record(x):
        v = np.empty(n, dtype=object)
        for i, a in enumerate(x.tolist()):  # (v[:] = list would call Tensor.__array__)
            v[i] = torch_.tensor(a, dtype=torch_.float64, requires_grad=True)
        return v, np.sum(100 * (v[1:] - v[:-1] ** 2) ** 2 + (1 - v[:-1]) ** 2)

    v, f = record(rosen_point(n))
    f.backward()
    check((f.item(), [a.grad.item() for a in v]), reference(n), rtol=1e-11)
    run(benchmark, EAGER, PEER_ROLE, record, rosen_point(n), rounds=3, nodes=nodes(n))
