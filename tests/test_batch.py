"""Batched replay: one tape, many samples, in one call.

Results must equal the per-sample loop; a shared argument's gradient must
equal the sum of the per-sample gradients. Batches larger than one chunk of
lanes, and tapes whose nodes fuse into runs, are checked against the plain
path (the twin sweeps node by node, one whole batch at a time).
"""

import numpy as np
import pytest

import fasttape as ft
from fasttape import twin

rng = np.random.default_rng(2)


def model(params, x, y):
    """A small per-sample loss with array arguments: linear + tanh + square."""
    h = np.tanh(ft.dot(params[:6].reshape(2, 3), x) + params[6:8])
    return (ft.dot(params[8:10], h) - y) ** 2


def per_sample_loop(tape, params, X, Y):
    values, gp, gx = [], np.zeros_like(params), []
    for x, y in zip(X, Y):
        v, (g_p, g_x) = tape.value_and_grad(params, x, y, wrt=(0, 1))
        values.append(v)
        gp += g_p
        gx.append(g_x)
    return np.array(values), gp, np.array(gx)


@pytest.mark.parametrize("B", [1, 7, 300, 5000])
def test_batch_equals_loop_and_shared_grad_is_the_sum(B):
    params = rng.normal(size=10)
    X, Y = rng.normal(size=(B, 3)), rng.normal(size=B)
    tape = ft.trace(model, params, X[0], Y[0])
    values, (gp, gx) = tape.value_and_grad(params, X, Y, wrt=(0, 1), in_axes=(None, 0, 0))
    n = min(B, 400)  # the loop is slow on the twin; its first rows suffice
    lv, lgp, lgx = per_sample_loop(tape, params, X[:n], Y[:n])
    np.testing.assert_allclose(values[:n], lv, rtol=1e-13)  # (blocks may fuse multiply-adds)
    np.testing.assert_allclose(gx[:n], lgx, rtol=1e-13, atol=1e-15)
    if n == B:
        np.testing.assert_allclose(gp, lgp, rtol=1e-12)
    else:  # the sum over lanes, computed from the batched per-sample rows
        full = ft.jacobian(model, argnums=0, in_axes=(None, 0, 0))(params, X, Y)
        np.testing.assert_allclose(gp, full.sum(axis=0), rtol=1e-12)
    assert values.shape == (B,) and gp.shape == (10,) and gx.shape == (B, 3)


def test_forward_vjp_jvp_batched():
    params, X, Y = rng.normal(size=10), rng.normal(size=(9, 3)), rng.normal(size=9)
    tape = ft.trace(model, params, X[0], Y[0])
    axes = (None, 0, 0)
    out = tape(params, X, Y, in_axes=axes)
    np.testing.assert_allclose(out, [tape(params, x, y) for x, y in zip(X, Y)], rtol=1e-15)
    ct = rng.normal(size=9)
    cp, cx, cy = tape.vjp((params, X, Y), ct, in_axes=axes)
    rows = [tape.vjp((params, x, y), c) for x, y, c in zip(X, Y, ct)]
    np.testing.assert_allclose(cp, sum(r[0] for r in rows), rtol=1e-12)
    np.testing.assert_allclose(cx, [r[1] for r in rows], rtol=1e-13)
    np.testing.assert_allclose(cy, [r[2] for r in rows], rtol=1e-13)
    tp, tx, ty = rng.normal(size=10), rng.normal(size=(9, 3)), rng.normal(size=9)
    o, t = tape.jvp((params, X, Y), (tp, tx, ty), in_axes=axes)
    singles = [tape.jvp((params, x, y), (tp, a, b)) for x, y, a, b in zip(X, Y, tx, ty)]
    np.testing.assert_allclose(t, [s[1] for s in singles], rtol=1e-13)


def test_in_axes_zero_batches_everything():
    tape = ft.trace(lambda a, b: a * b.exp(), 1.0, 1.0)
    A, B = rng.normal(size=5), rng.normal(size=5)
    v, g = tape.value_and_grad(A, B, wrt=(0, 1), in_axes=0)
    np.testing.assert_allclose(v, A * np.exp(B), rtol=1e-15)
    np.testing.assert_allclose(g[0], np.exp(B), rtol=1e-15)
    np.testing.assert_allclose(g[1], A * np.exp(B), rtol=1e-15)


def test_empty_batch():
    tape = ft.trace(lambda a, b: a * b, 1.0, 1.0)
    v, g = tape.value_and_grad(2.0, np.zeros(0), in_axes=(None, 0))
    assert v.shape == (0,) and g == 0.0


def rosenbrock(x):
    return ft.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def test_runs_fuse_and_match_the_node_by_node_twin():
    """Array code records runs of like nodes; the kernel sweeps each run as
    one loop. Same numbers as the twin, which never fuses."""
    core = pytest.importorskip("fasttape._core")
    x = rng.normal(size=50)
    p = ft.trace(rosenbrock, x)._program
    arrays = (p.op, p.a, p.b, p.pool, p.args, p.n_inputs, p.outputs)
    fused, plain = core.Program(*arrays), twin.Program(*arrays)
    assert fused.n_runs < 10 < fused.n - fused.n_inputs  # 7 runs of 49 nodes, and the sum
    X = rng.normal(size=(13, 50))
    nodes = np.arange(50, dtype=np.int32)
    kw = dict(seed=np.ones((13, 1)), shared_tangent=np.zeros(0), batch_tangent=X[::-1].copy())
    a = fused.run(np.zeros(0), np.zeros(0, np.int32), X, nodes, 13, **kw)
    b = plain.run(np.zeros(0), np.zeros(0, np.int32), X, nodes, 13, **kw)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-14, atol=1e-300)


def test_rosenbrock_gradient_closed_form():
    x = rng.normal(size=30)
    g = ft.grad(rosenbrock)(x)
    want = np.zeros_like(x)
    want[:-1] = -400 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2 * (1 - x[:-1])
    want[1:] += 200 * (x[1:] - x[:-1] ** 2)
    np.testing.assert_allclose(g, want, rtol=1e-13)


def test_replays_from_many_threads_at_once():
    """A frozen tape has no mutable state: threads replaying it concurrently
    (the kernel releases the GIL on large sweeps) get the single-thread results."""
    import threading

    x0 = rng.normal(size=2000)
    tape = ft.trace(rosenbrock, x0)
    points = [rng.normal(size=2000) for _ in range(8)]
    expected = [tape.value_and_grad(p) for p in points]
    results = [None] * len(points)

    def work(k):
        for _ in range(5):
            results[k] = tape.value_and_grad(points[k])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(points))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (v, g), (ev, eg) in zip(results, expected):
        assert v == ev
        np.testing.assert_array_equal(g, eg)


def test_dot_with_shared_weights_matches_the_plain_path():
    """A dot whose operands on one side are shared inputs reads them as single
    numbers; the twin (and a batch of all-batched arguments) does not."""
    core = pytest.importorskip("fasttape._core")

    def f(w, x):
        return ft.dot(w, x) * ft.dot(x[::-1], w) + ft.dot(w[:2], w[1:])

    w, X = rng.normal(size=3), rng.normal(size=(50, 3))
    p = ft.trace(f, w, X[0])._program
    arrays = (p.op, p.a, p.b, p.pool, p.args, p.n_inputs, p.outputs)
    shared_nodes, batch_nodes = np.arange(3, dtype=np.int32), np.arange(3, 6, dtype=np.int32)
    kw = dict(seed=np.ones((50, 1)))
    fast = core.Program(*arrays).run(w, shared_nodes, X, batch_nodes, 50, **kw)
    plain = twin.Program(*arrays).run(w, shared_nodes, X, batch_nodes, 50, **kw)
    every = core.Program(*arrays).run(np.zeros(0), np.zeros(0, np.int32),
                                      np.hstack([np.tile(w, (50, 1)), X]),
                                      np.arange(6, dtype=np.int32), 50, **kw)
    for u, v in zip(fast[:3], plain[:3]):
        np.testing.assert_allclose(u, v, rtol=1e-13)
    np.testing.assert_allclose(fast[1], every[2][:, :3].sum(axis=0), rtol=1e-13)
    np.testing.assert_allclose(fast[2], every[2][:, 3:], rtol=1e-14)


@pytest.mark.parametrize("build", ["avx2", "avx512"])
@pytest.mark.parametrize("blocks", [False, True])
def test_the_wider_builds_give_the_baseline_bits(blocks, build):
    """The kernel is built three times on x86-64 (portable, AVX2 and
    AVX-512, the widest the CPU runs picked at import), with FMA contraction
    off: same numbers. Only dot blocks fuse multiply-adds in the wider
    builds: the same numbers to rounding there."""
    import importlib

    core = pytest.importorskip("fasttape._core")
    backend = importlib.import_module("fasttape.backend")
    if not backend._cpu_runs(build):
        pytest.skip(f"this CPU cannot run the {build} build")
    wide = pytest.importorskip(backend._module(build))
    from fasttape import nn
    model = nn.MLP((3, 7, 2))

    def f(p, x, y):
        return nn.softmax_cross_entropy(model(p, x), y) + rosenbrock(x) * 1e-3

    params, X = model.init(0), rng.normal(size=(37, 3))
    Y = np.eye(2)[rng.integers(0, 2, 37)]
    p = ft.trace(f, params, X[0], Y[0])._program
    arrays = (p.op, p.a, p.b, p.pool, p.args, p.n_inputs, p.outputs)
    n_par = len(params)
    args = (params, np.arange(n_par, dtype=np.int32), np.hstack([X, Y]),
            np.arange(n_par, p.n_inputs, dtype=np.int32), 37)
    kw = dict(seed=np.ones((37, 1)), shared_tangent=rng.normal(size=n_par),
              batch_tangent=rng.normal(size=(37, 5)), hvp=True)
    results = []
    for module in (core, wide):
        module.set_dot_blocks(blocks)
        try:
            results.append(module.Program(*arrays).run(*args, **kw)
                           + module.Program(*arrays).run(*args, seed=kw["seed"]))
        finally:
            module.set_dot_blocks(True)
    for u, v in zip(*results):
        if u is None:  # (the plain gradient call's tangents)
            assert v is None
        elif blocks and wide.FUSED_MULTIPLY_ADD:
            np.testing.assert_allclose(u, v, rtol=1e-13, atol=1e-15 * np.abs(v).max())
        else:
            np.testing.assert_array_equal(u, v)


def test_a_sum_over_an_array_at_one_lane_adds_as_a_block():
    """One lane of ft.sum over consecutive nodes passes its adjoint on as a
    vector add: the same numbers as the lane-by-lane path of a batch and as
    the twin."""
    def f(x):
        return ft.sum(np.sin(x) * x) + ft.sum(x[::-1] * 2.0)  # the second: not consecutive

    x = rng.normal(size=1001)
    tape = ft.trace(f, x)
    p = tape._program
    value, grad = tape.value_and_grad(x)
    arrays = (p.op, p.a, p.b, p.pool, p.args, p.n_inputs, p.outputs)
    nodes = np.arange(p.n_inputs, dtype=np.int32)
    twin_out, _, twin_grad, _ = twin.Program(*arrays).run(
        np.zeros(0), np.zeros(0, np.int32), x[None, :], nodes, 1, seed=np.ones((1, 1)))
    lanes_out, _, lanes_grad, _ = type(p)(*arrays).run(
        np.zeros(0), np.zeros(0, np.int32), np.vstack([x, x]), nodes, 2, seed=np.ones((2, 1)))
    expected = np.sum(np.sin(x) * x) + 2.0 * np.sum(x)
    assert value == pytest.approx(expected, rel=1e-13)
    np.testing.assert_allclose(grad, np.cos(x) * x + np.sin(x) + 2.0, rtol=1e-13)
    for out, g in ((twin_out[0, 0], twin_grad[0]), (lanes_out[1, 0], lanes_grad[1])):
        assert value == pytest.approx(out, rel=1e-13)
        np.testing.assert_allclose(grad, g, rtol=1e-13)


def test_a_run_whose_operand_blocks_overlap_adds_to_both():
    """A run of two adds reading (a, b) and (b, a + 0): its first operands
    [a, b] and second ones [b, c] overlap at b, so it may not set b's
    adjoint from one side (first writes) and drop what the other side
    added. Closed form: L = (a + b) + (b + a) = 2a + 2b."""
    def f(a, b):
        c = ft.sum([a])  # a node holding a, right after the inputs
        return ft.sum([a + b, b + c])

    tape = ft.trace(f, 1.5, -0.5)
    if ft.backend == "cython":  # (the twin sweeps node by node)
        q = tape._program
        assert len(q.starts) < q.n - q.n_inputs + 1  # the two adds are one run
    value, grads = tape.value_and_grad(1.5, -0.5, wrt=(0, 1))
    assert value == 2.0 and grads == (2.0, 2.0)
    B = 40
    a, b = rng.normal(size=B), rng.normal(size=B)
    values, (ga, gb) = tape.value_and_grad(a, b, wrt=(0, 1), in_axes=(0, 0))
    np.testing.assert_allclose(values, 2 * a + 2 * b, rtol=1e-15)
    np.testing.assert_array_equal(ga, np.full(B, 2.0))
    np.testing.assert_array_equal(gb, np.full(B, 2.0))
