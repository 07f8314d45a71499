"""Dot blocks: a run of dot nodes over one operand list with shared weights
(a layer of units) is swept as a register-tiled matrix product. It must give
the bits of the node-by-node sweep, which set_dot_blocks(False) forces (in
a build with fused multiply-adds, the same numbers to rounding), and agree
with the twin.
"""

import importlib

import numpy as np
import pytest

import fasttape as ft
from fasttape import nn, twin

try:  # the compiled kernel, even when the twin is in use
    core = importlib.import_module("fasttape.backend")._compiled()
except ImportError as exc:  # dot blocks are the kernel's: nothing to test without it
    pytest.skip(f"the compiled kernel is not available: {exc}", allow_module_level=True)
rng = np.random.default_rng(11)


def same(fast, plain):
    """The bits of the plain path; with fused multiply-adds, its numbers to rounding."""
    if core.FUSED_MULTIPLY_ADD:
        scale = np.max(np.abs(plain), initial=0.0)
        np.testing.assert_allclose(fast, plain, rtol=1e-13, atol=1e-15 * scale)
    else:
        np.testing.assert_array_equal(fast, plain)


def program(fn, *args):
    p = ft.trace(fn, *args)._program
    return (p.op, p.a, p.b, p.pool, p.args, p.n_inputs, p.outputs)


def both_paths(arrays, *args, **kw):
    """run() with dot blocks, then node by node."""
    fast = core.Program(*arrays).run(*args, **kw)
    core.set_dot_blocks(False)
    try:
        plain = core.Program(*arrays).run(*args, **kw)
    finally:
        core.set_dot_blocks(True)
    return fast, plain


def mlp_case(sizes, B, seed=0):
    model = nn.MLP(sizes)

    def loss(p, x, y):
        return nn.softmax_cross_entropy(model(p, x), y)

    params = model.init(seed)
    X = rng.normal(size=(B, sizes[0]))
    Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], B)]
    return loss, params, X, Y


def blocks_of(arrays):
    """(first node, nodes) of each dot block the kernel forms."""
    p = core.Program(*arrays)
    starts = np.asarray(p.starts)
    return [(int(i), int(k)) for i, k in zip(starts[:-1], np.diff(starts))
            if k > 1 and p.op[i] == ft.ops.CODE["dot"]]


@pytest.mark.parametrize("sizes, B", [((3, 7, 2), 37), ((9, 13, 5), 8), ((64, 32, 10), 300),
                                      ((5, 4, 4, 3), 13), ((6, 1, 3), 20)])
@pytest.mark.parametrize("wrt_inputs", [False, True])
def test_a_layer_of_dots_gives_the_node_by_node_bits(sizes, B, wrt_inputs):
    loss, params, X, Y = mlp_case(sizes, B)
    arrays = program(loss, params, X[0], Y[0])
    assert len(blocks_of(arrays)) == sum(n > 1 for n in sizes[1:])  # one per layer of >1 unit
    n_par = len(params)
    args = (params, np.arange(n_par, dtype=np.int32), np.hstack([X, Y]),
            np.arange(n_par, arrays[5], dtype=np.int32), B)
    # wanted: the weights only (the data get no adjoints), or every input
    kw = dict(seed=rng.normal(size=(B, 1)),
              wanted=None if wrt_inputs else np.arange(n_par, dtype=np.int32))
    fast, plain = both_paths(arrays, *args, **kw)
    for u, v in zip(fast[:3 if wrt_inputs else 2], plain[:3]):  # (unwanted adjoints: unset)
        same(u, v)
    reference = twin.Program(*arrays).run(*args, **kw)
    np.testing.assert_allclose(fast[0], reference[0], rtol=1e-13)
    np.testing.assert_allclose(fast[1], reference[1], rtol=1e-12, atol=1e-14)
    if wrt_inputs:
        np.testing.assert_allclose(fast[2], reference[2], rtol=1e-12, atol=1e-14)


def test_tied_weights_and_units_that_share_everything():
    """Two units with the same weights (both operand lists shared): their
    weight adjoints add up in node order."""
    def f(w, x):
        return ft.sum(np.tanh(ft.dot(np.stack([w, w * 2.0, w]), x)))

    w, X = rng.normal(size=6), rng.normal(size=(21, 6))
    arrays = program(f, w, X[0])
    args = (w, np.arange(6, dtype=np.int32), X, np.arange(6, 12, dtype=np.int32), 21)
    fast, plain = both_paths(arrays, *args, seed=np.ones((21, 1)))
    for u, v in zip(fast[:3], plain[:3]):
        same(u, v)
    g = twin.Program(*arrays).run(*args, seed=np.ones((21, 1)))[1]
    np.testing.assert_allclose(fast[1], g, rtol=1e-12)


def test_zero_adjoints_keep_infinite_inputs_out_of_weight_gradients():
    """Lanes whose units are not selected (ft.where) pass zero adjoints: an
    infinite input there must not turn the weights' gradients into NaN."""
    def f(W, x, c):
        h = ft.dot(W, x)
        return ft.where(c > 0.0, ft.sum(h), 0.0)

    W = rng.normal(size=(5, 4))
    X = rng.normal(size=(19, 4))
    C = rng.choice([-1.0, 1.0], size=19)
    X[C < 0, 1] = np.inf
    arrays = program(f, W, X[0], C[0])
    args = (W.ravel(), np.arange(20, dtype=np.int32), np.hstack([X, C[:, None]]),
            np.arange(20, 25, dtype=np.int32), 19)
    with np.errstate(invalid="ignore"):
        fast, plain = both_paths(arrays, *args, seed=np.ones((19, 1)),
                                 wanted=np.arange(20, dtype=np.int32))
    same(fast[1], plain[1])
    expected = np.tile(X[C > 0].sum(axis=0), 5)  # d sum(W x) / dW[r, j] = x[j], kept lanes
    np.testing.assert_allclose(fast[1], expected, rtol=1e-13)


def test_blocks_fall_back_where_the_weights_vary_per_lane():
    """Weights given per sample (batched) are rows of lanes: node by node,
    and the same numbers as shared weights, per lane."""
    loss, params, X, Y = mlp_case((4, 6, 3), 16)
    arrays = program(loss, params, X[0], Y[0])
    n_par = len(params)
    shared = core.Program(*arrays).run(params, np.arange(n_par, dtype=np.int32),
                                       np.hstack([X, Y]),
                                       np.arange(n_par, arrays[5], dtype=np.int32), 16,
                                       seed=np.ones((16, 1)))
    batched = core.Program(*arrays).run(np.zeros(0), np.zeros(0, np.int32),
                                        np.hstack([np.tile(params, (16, 1)), X, Y]),
                                        np.arange(arrays[5], dtype=np.int32), 16,
                                        seed=np.ones((16, 1)))
    same(shared[0], batched[0])
    np.testing.assert_allclose(shared[1], batched[2][:, :n_par].sum(axis=0), rtol=1e-12,
                               atol=1e-15)


def test_second_order_sweeps_through_a_block_match_the_twin():
    loss, params, X, Y = mlp_case((5, 6, 3), 24)
    arrays = program(loss, params, X[0], Y[0])
    n_par = len(params)
    args = (params, np.arange(n_par, dtype=np.int32), np.hstack([X, Y]),
            np.arange(n_par, arrays[5], dtype=np.int32), 24)
    kw = dict(seed=np.ones((24, 1)), shared_tangent=rng.normal(size=n_par),
              batch_tangent=np.zeros((24, arrays[5] - n_par)), hvp=True)
    fast = core.Program(*arrays).run(*args, **kw)
    reference = twin.Program(*arrays).run(*args, **kw)
    for u, v in zip(fast, reference):
        np.testing.assert_allclose(u, v, rtol=1e-11, atol=1e-13)
