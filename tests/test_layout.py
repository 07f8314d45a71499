"""The batched value_and_grad fast path: a tape keeps the Layout of each
(in_axes, wrt) it has served, and later calls whose arguments are float64
C-contiguous arrays of the traced shapes go straight to the kernel. Its
results must equal the general path's (Program.run), and anything else must
fall through to the general path, which converts and words the errors.
"""

import importlib

import numpy as np
import pytest

import fasttape as ft
from fasttape import twin

rng = np.random.default_rng(5)
try:  # the compiled kernel, even when the twin is in use
    core = importlib.import_module("fasttape.backend")._compiled()
except ImportError as exc:  # these are the kernel's: nothing to test without it
    pytest.skip(f"the compiled kernel is not available: {exc}", allow_module_level=True)


def f(W, b, x, s, t):
    """Arguments of every shape: a matrix, a vector, a batched vector, scalars."""
    h = np.tanh(ft.dot(W, x) + b)
    return ft.sum(h * h) * s + t * ft.dot(b, h)


def arguments(B):
    return (rng.normal(size=(3, 4)), rng.normal(size=3), rng.normal(size=(B, 4)),
            np.array(rng.normal()), rng.normal(size=B))


AXES = (None, None, 0, None, 0)


def general_path(tape, args, wrt):
    """value_and_grad the long way: Program.run on the plan's split."""
    plan, shared, batch, B = tape._split(args, AXES)
    idx = (wrt,) if type(wrt) is int else tuple(wrt)
    out, gs, gb, _ = tape._program.run(shared, plan.shared_nodes, batch, plan.batch_nodes, B,
                                       seed=np.ones((B, 1)))
    return out[:, 0], [plan.part(k, gs, gb, B) for k in idx]


@pytest.mark.parametrize("wrt", [0, 2, 3, (0, 1, 2, 3, 4), (4, 1)])
@pytest.mark.parametrize("B", [1, 9, 700])
def test_fast_path_equals_the_general_path(wrt, B):
    args = arguments(B)
    tape = ft.trace(f, *(a[0] if ax == 0 else a for a, ax in zip(args, AXES)))
    first = tape.value_and_grad(*args, wrt=wrt, in_axes=AXES)  # general path; keeps the layout
    assert (AXES, wrt) in tape._layouts
    args = arguments(B)
    fast = tape.value_and_grad(*args, wrt=wrt, in_axes=AXES)
    value, grads = general_path(tape, args, wrt)
    np.testing.assert_allclose(fast[0], value, rtol=1e-14)
    fast_grads = [fast[1]] if type(wrt) is int else fast[1]
    assert len(fast_grads) == len(grads) and type(first[1]) is type(fast[1])
    for u, v in zip(fast_grads, grads):
        assert np.shape(u) == np.shape(v) and type(u) is type(v)
        np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-15)


def test_other_arguments_fall_through_to_the_checked_path():
    args = arguments(6)
    tape = ft.trace(f, *(a[0] if ax == 0 else a for a, ax in zip(args, AXES)))
    expected = tape.value_and_grad(*args, wrt=(0, 2), in_axes=AXES)
    layout = tape._layouts[(AXES, (0, 2))][0]
    W, b, X, s, T = args
    variants = [(np.asfortranarray(W), b, X, s, T),      # not C-contiguous: converted
                (W.tolist(), b, X, s, T),                # a list: converted
                (W, b.astype(np.float32), X, s, T)]      # float32: converted (rounded)
    direct = layout.value_and_grad((W, b, X, float(s), T))  # a float for a 0-d array: taken
    np.testing.assert_array_equal(direct[0], expected[0])
    np.testing.assert_array_equal(direct[1][0], expected[1][0])
    for v in variants:
        assert layout.value_and_grad(v) is None
        got = tape.value_and_grad(*v, wrt=(0, 2), in_axes=AXES)
        rtol = 1e-6 if v[1].dtype == np.float32 else 1e-14
        np.testing.assert_allclose(got[0], expected[0], rtol=rtol)
        np.testing.assert_allclose(got[1][0], expected[1][0], rtol=rtol * 100)
    with pytest.raises(ft.ArgumentError, match="batch"):  # samples disagree in number
        tape.value_and_grad(W, b, X, s, T[:5], wrt=(0, 2), in_axes=AXES)
    with pytest.raises(ft.ArgumentError):  # a wrong shape
        tape.value_and_grad(W[:2], b, X, s, T, wrt=(0, 2), in_axes=AXES)


def test_a_layout_keeps_its_own_node_lists():
    """Changing the node arrays a layout was made from changes nothing: the
    kernel never reads indices it has not checked."""
    tape = ft.trace(lambda w, x: ft.dot(w, x), np.ones(3), np.ones(3))
    p = tape._program
    shared, batch = np.arange(3, dtype=np.int32), np.arange(3, 6, dtype=np.int32)
    layout = p.layout(shared, batch, None, [((3,), False, True), ((3,), True, True)])
    shared[:] = 10 ** 6
    batch[:] = -(10 ** 6)
    w, X = rng.normal(size=3), rng.normal(size=(20, 3))
    values, (gw, gx) = layout.value_and_grad((w, X))
    np.testing.assert_allclose(values, X @ w, rtol=1e-14)
    np.testing.assert_allclose(gw, X.sum(axis=0), rtol=1e-13)
    np.testing.assert_allclose(gx, np.tile(w, (20, 1)), rtol=1e-14)


@pytest.mark.parametrize("Program", [core.Program, twin.Program], ids=["kernel", "twin"])
def test_layouts_refuse_bad_node_lists(Program):
    p0 = ft.trace(lambda w, x: ft.dot(w, x), np.ones(2), np.ones(2))._program
    p = Program(p0.op, p0.a, p0.b, p0.pool, p0.args, p0.n_inputs, p0.outputs)
    for shared, batch in [([0, 1], [2, 4]), ([0, 1], [2, 2]), ([0, -1], [2, 3]), ([0], [2, 3])]:
        with pytest.raises(ValueError):
            p.layout(np.array(shared, np.int32), np.array(batch, np.int32)) \
                .value_and_grad((np.ones(2), np.ones((3, 2))))
    with pytest.raises(ValueError):
        p.layout(np.array([0, 1], np.int32), np.array([2, 3], np.int32), wanted=[7])


def test_the_kernel_and_twin_layouts_agree():
    args = arguments(50)
    tape = ft.trace(f, *(a[0] if ax == 0 else a for a, ax in zip(args, AXES)))
    p0 = tape._program
    spec = [(np.shape(a[0] if ax == 0 else a), ax == 0, k in (0, 2))
            for k, (a, ax) in enumerate(zip(args, AXES))]
    plan = tape._plan(AXES)
    results = []
    for Program in (core.Program, twin.Program):
        p = Program(p0.op, p0.a, p0.b, p0.pool, p0.args, p0.n_inputs, p0.outputs)
        results.append(p.layout(plan.shared_nodes, plan.batch_nodes,
                                plan.wanted((0, 2)), spec).value_and_grad(args))
    (v1, g1), (v2, g2) = results
    np.testing.assert_allclose(v1, v2, rtol=1e-13)
    for u, v in zip(g1, g2):
        np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-15)


def test_a_guard_missed_on_the_fast_path_is_explained():
    def g(w, x):
        return w * x if x > 0.0 else w - x  # a guard: the branch traced is recorded

    tape = ft.trace(g, 2.0, 1.0)
    X = np.array([1.0, 2.0, 3.0])
    tape.value_and_grad(2.0, X, in_axes=(None, 0))  # general path: keeps the layout
    values, grad = tape.value_and_grad(np.array(2.0), X, in_axes=(None, 0))
    np.testing.assert_allclose(values, 2.0 * X)
    assert grad == pytest.approx(X.sum())
    with pytest.raises(ft.GuardError, match=r"lanes \[1\] of 3") as info:
        tape.value_and_grad(np.array(2.0), np.array([1.0, -2.0, 3.0]), in_axes=(None, 0))
    assert info.value.lanes.tolist() == [1]


def test_transformed_functions_take_the_fast_path_and_still_retrace():
    """ft.value_and_grad tries its last batch's layout first; a batch taking
    another branch everywhere re-traces, and alternating batches stay right."""
    def h(w, x):
        return ft.sum(w * x) if x[0] > 0.0 else ft.sum(w / x)

    step = ft.value_and_grad(h, argnums=0, in_axes=(None, 0))
    grad = ft.grad(h, argnums=0, in_axes=(None, 0))
    w = rng.normal(size=3)
    up, down = rng.uniform(1, 2, size=(8, 3)), -rng.uniform(1, 2, size=(8, 3))
    for X in (up, up, down, up, down, down):
        values, g = step(w, X)
        if X[0, 0] > 0:
            np.testing.assert_allclose(values, X @ w, rtol=1e-14)
            np.testing.assert_allclose(g, X.sum(axis=0), rtol=1e-14)
        else:
            np.testing.assert_allclose(values, (1 / X) @ w, rtol=1e-14)
            np.testing.assert_allclose(g, (1 / X).sum(axis=0), rtol=1e-14)
        np.testing.assert_allclose(grad(w, X), g, rtol=1e-14)
    assert step._layout is not None and len(step.tapes[((3,), (3,))]) == 2


def deep(W, b, x, s, t):
    """f behind 800 layers of 3 units: over 2048 rows, so chunks of 16 lanes."""
    for _ in range(800):
        x = np.tanh(x[:3] * b + s)
    return f(W, b, np.concatenate([x, x[:1]]), s, t)


@pytest.mark.parametrize("fn, B", [(f, 1), (f, 2), (f, 300), (deep, 33)])  # 33: 16 + 16 + 1
def test_node_lists_in_any_order_and_chunks_of_one_lane(fn, B):
    """Shared and batched inputs given in shuffled node order (not one
    consecutive span) give the same numbers as in order, and as the twin."""
    args = arguments(B)
    tape = ft.trace(fn, *(a[0] if ax == 0 else a for a, ax in zip(args, AXES)))
    plan, shared, batch, _ = tape._split(args, AXES)
    p = tape._program
    seed = rng.normal(size=(B, 1))
    in_order = p.run(shared, plan.shared_nodes, batch, plan.batch_nodes, B, seed=seed)
    ps, pb = rng.permutation(len(shared)), rng.permutation(batch.shape[1])
    shuffled = p.run(shared[ps], plan.shared_nodes[ps], np.ascontiguousarray(batch[:, pb]),
                     plan.batch_nodes[pb], B, seed=seed)
    reference = twin.Program(p.op, p.a, p.b, p.pool, p.args, p.n_inputs, p.outputs).run(
        shared, plan.shared_nodes, batch, plan.batch_nodes, B, seed=seed)
    np.testing.assert_allclose(shuffled[0], in_order[0], rtol=1e-15)
    np.testing.assert_allclose(shuffled[1], in_order[1][ps], rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(shuffled[2], in_order[2][:, pb], rtol=1e-15)
    for u, v in zip(in_order[:3], reference[:3]):
        np.testing.assert_allclose(u, v, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("Program", [core.Program, twin.Program], ids=["kernel", "twin"])
def test_run_with_a_kept_layout(Program):
    """run(layout=...) gives what run() works out for itself, and refuses
    another program's layout."""
    args = arguments(30)
    tape = ft.trace(f, *(a[0] if ax == 0 else a for a, ax in zip(args, AXES)))
    p0 = tape._program
    p = Program(p0.op, p0.a, p0.b, p0.pool, p0.args, p0.n_inputs, p0.outputs)
    plan, shared, batch, B = tape._split(args, AXES)
    kw = dict(seed=rng.normal(size=(B, 1)), shared_tangent=rng.normal(size=len(shared)),
              batch_tangent=rng.normal(size=batch.shape), hvp=True)
    layout = p.layout(plan.shared_nodes, plan.batch_nodes)
    kept = p.run(shared, plan.shared_nodes, batch, plan.batch_nodes, B, layout=layout, **kw)
    fresh = p.run(shared, plan.shared_nodes, batch, plan.batch_nodes, B, **kw)
    for u, v in zip(kept, fresh):
        np.testing.assert_array_equal(u, v)
    other = Program(p0.op, p0.a, p0.b, p0.pool, p0.args, p0.n_inputs, p0.outputs)
    with pytest.raises(ValueError, match="another program"):
        p.run(shared, plan.shared_nodes, batch, plan.batch_nodes, B,
              layout=other.layout(plan.shared_nodes, plan.batch_nodes), **kw)


@pytest.mark.parametrize("B", [2, 37, 300])
def test_a_bias_read_as_one_number_gives_the_bits_of_its_row(B):
    """In a batched gradient call, an add or sub of a shared input read
    nowhere else lane by lane (a layer's bias) reads it as one number and
    sums its adjoint over lanes where the sweep meets it. That must give
    the bits of the path that keeps a row for it (check_finite keeps every
    row), and the twin's numbers."""
    def g(p, x):
        h = np.tanh(ft.dot(p[:6].reshape(2, 3), x) + p[6:8])     # bias on the right
        return ft.sum(p[8] - h) + ft.sum(h * h - p[9]) + (p[10] + p[11]) * h[0]

    p, X = rng.normal(size=12), rng.normal(size=(B, 3))
    tape = ft.trace(g, p, X[0])
    q = tape._program
    arrays = (q.op, q.a, q.b, q.pool, q.args, q.n_inputs, q.outputs)
    args = (p, np.arange(12, dtype=np.int32), X, np.arange(12, 15, dtype=np.int32), B)
    kw = dict(seed=rng.normal(size=(B, 1)))
    narrow = core.Program(*arrays).run(*args, **kw)
    core.set_check_finite(True)
    try:
        rows = core.Program(*arrays).run(*args, **kw)
    finally:
        core.set_check_finite(False)
    for u, v in zip(narrow[:3], rows[:3]):
        np.testing.assert_array_equal(u, v)
    reference = twin.Program(*arrays).run(*args, **kw)
    for u, v in zip(narrow[:3], reference[:3]):
        np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-14)


def test_one_sample_calls_keep_a_layout_too():
    """Unbatched value_and_grad calls with float64 arrays (and floats for
    scalars) of the traced shapes also go straight to the kernel after the
    first; they must give the general path's numbers and types."""
    W, b, x, s, t = (a[0] if ax == 0 else a for a, ax in zip(arguments(3), AXES))
    s, t = float(s), float(t)
    tape = ft.trace(f, W, b, x, s, t)
    first = tape.value_and_grad(W, b, x, s, t, wrt=(0, 3))
    assert (None, (0, 3)) in tape._layouts or ft.backend == "python"
    W2, s2 = W + 0.5, s - 0.25
    fast = tape.value_and_grad(W2, b, x, s2, t, wrt=(0, 3))
    flat = np.concatenate([np.ravel(a) for a in (W2, b, x, [s2], [t])])
    values, grads = tape._program.call_flat(flat, True)
    assert type(fast[0]) is float and fast[0] == values[0]
    np.testing.assert_array_equal(fast[1][0], grads[:12].reshape(3, 4))
    assert type(fast[1][1]) is float and fast[1][1] == grads[19]
    assert type(first[0]) is float and type(first[1][1]) is float
