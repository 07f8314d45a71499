"""Property tests on random expression programs (hypothesis).

A strategy draws a small program -- a few scalar and array inputs, then 3-25
steps, each applying an operation of the public front end to earlier values
-- as plain data. One small interpreter runs that data three ways:

* on Vars, through the public front end (operators, methods, ft.exp & co,
  ft.maximum / ft.minimum, ft.sum, ft.dot, object-array ufuncs, Vars made
  inside the function as constants): traced with ft.trace, and eagerly
  with ft.Var + backward;
* on NumPy float arrays, one lane per evaluation point: an implementation
  that shares nothing with fasttape, used for reference values and central
  finite differences.

Properties checked on every drawn program:
  (a) the compiled kernel and the pure twin agree (<= 1e-12 relative) on
      values of every node, vjp, jvp, batched values and batched gradients;
  (b) the reverse gradient matches finite differences and the jvp along
      random directions;
  (c) batched replay equals the per-sample loop, and a shared argument's
      gradient equals the sum of the per-sample gradients;
  (d) eager recording + backward equals the traced tape.

Domains are guarded by construction (log(|x| + 0.5), sqrt(x*x + 0.1), exp of
tanh, ...), and the strategy tracks a static bound on every value, squashing
a value whose bound grows too large, so nothing overflows.
"""

import importlib
import math
import os

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import fasttape as ft  # noqa: E402
from fasttape import twin  # noqa: E402

# derandomize: the same random programs every run, so CI is reproducible
SETTINGS = settings(max_examples=int(os.environ.get("FASTTAPE_PROPERTY_EXAMPLES", 100)), deadline=None, database=None,
                    derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

IN_BOUND = 2.0       # inputs are drawn from [-IN_BOUND, IN_BOUND]
B_SLACK = 2.5        # static bounds allow for finite-difference steps beyond it
MAX_BOUND = 20.0     # a value whose bound exceeds this is squashed

# --------------------------------------------------------------- the programs
# A program is a dict: n_scalar, sizes (of array inputs), steps, out.
# Values are numbered: inputs first (scalars, then arrays), then one per step.
# Each step is a tuple whose first item names its kind (see _apply).

UNARY = ("exp", "log", "sqrt", "sin", "cos", "tan", "tanh", "sigmoid", "relu",
         "abs", "log1p", "expm1", "neg")


def _unary_bound(name, b):
    return {"exp": math.e, "log": max(math.log(2.0), math.log(b + 0.5)),
            "sqrt": math.sqrt(b * b + 0.1), "sin": 1.0, "cos": 1.0, "tan": math.tan(1.0),
            "tanh": 1.0, "sigmoid": 1.0, "relu": b, "abs": b, "log1p": math.log1p(b),
            "expm1": math.e - 1.0, "neg": b}[name]


numbers = st.one_of(st.integers(-3, 3),
                    st.floats(-3.0, 3.0, allow_nan=False, allow_infinity=False))
nonzero = st.one_of(st.sampled_from([-2, -1, 1, 2, 3]),
                    st.floats(0.5, 3.0).flatmap(lambda x: st.sampled_from([x, -x])))


@st.composite
def programs(draw):
    n_scalar = draw(st.integers(1, 3))
    sizes = draw(st.lists(st.integers(1, 4), max_size=2))
    # (size, bound) per value; size 0 is a scalar.
    vals = [(0, B_SLACK)] * n_scalar + [(n, B_SLACK) for n in sizes]
    steps = []

    def pick(pred=lambda v: True):
        idx = [k for k, v in enumerate(vals) if pred(v)]
        return draw(st.sampled_from(idx)) if idx else None

    for _ in range(draw(st.integers(3, 25))):
        kind = draw(st.sampled_from(["un", "un", "binv", "binv", "binc", "binc", "ext",
                                     "sum", "dot", "pack", "const"]))
        i = pick()
        si, bi = vals[i]
        if kind == "const":  # a Var made inside the function: a constant of the tape
            c = float(draw(numbers))
            step, size, bound = ("const", c), 0, abs(c)
        elif kind == "un":
            name = draw(st.sampled_from(UNARY))
            step, size, bound = ("un", name, i, draw(st.booleans())), si, _unary_bound(name, bi)
        elif kind == "binv":
            sym = draw(st.sampled_from("+-*/^"))
            j = pick(lambda v: v[0] == 0 or si == 0 or v[0] == si)
            sj, bj = vals[j]
            bound = {"+": bi + bj, "-": bi + bj, "*": bi * bj, "/": 2 * bi,
                     "^": max(bi * bi + 0.5, 2.0)}[sym]
            step, size = ("binv", sym, i, j), max(si, sj)
        elif kind == "binc":
            sym = draw(st.sampled_from("+-*/^"))
            left = draw(st.booleans())
            if sym == "/":
                c = draw(nonzero)
                bound = 2 * abs(c) if left else bi / abs(c)
            elif sym == "^" and left:       # c ** x, c > 0
                c = draw(st.floats(0.5, 3.0))
                bound = max(c ** bi, c ** -bi)
            elif sym == "^":                # x ** 2, x ** 3, (x*x + 0.5) ** c
                c = draw(st.one_of(st.sampled_from([2, 3, 2.0]), st.floats(-2.0, 3.0)))
                bound = (bi ** c if c in (2, 3) else
                         max((bi * bi + 0.5) ** c, 0.5 ** c))
            else:
                c = draw(numbers)
                bound = bi * abs(c) if sym == "*" else bi + abs(c)
            step, size = ("binc", sym, i, c, left), si
        elif kind == "ext":
            name = draw(st.sampled_from(["maximum", "minimum"]))
            others = [k for k, v in enumerate(vals) if k != i and (v[0] == 0 or si == 0 or v[0] == si)]
            if others and draw(st.booleans()):
                j = draw(st.sampled_from(others))
                step, size, bound = ("extv", name, i, j), max(si, vals[j][0]), max(bi, vals[j][1])
            else:
                c = draw(numbers)
                step, size, bound = ("extc", name, i, c, draw(st.booleans())), si, max(bi, abs(c))
        elif kind == "sum":  # of scalars and arrays' elements, maybe a number
            idx = draw(st.lists(st.integers(0, len(vals) - 1), min_size=1, max_size=5))
            c = draw(st.one_of(st.none(), numbers))
            bound = sum(vals[k][1] * max(vals[k][0], 1) for k in idx) + abs(c or 0)
            step, size = ("sum", idx, c), 0
        elif kind == "dot" and si == 0:  # no array at hand: a sum instead
            step, size, bound = ("sum", [i], None), 0, bi
        elif kind == "dot":
            style = draw(st.sampled_from(["dot", "dotc", "matmul", "dotc_left"]))
            if style in ("dotc", "dotc_left"):
                cs = draw(st.lists(numbers, min_size=si, max_size=si))
                bound = bi * sum(abs(c) for c in cs)
                step = (style, i, cs)
            else:
                j = pick(lambda v: v[0] == si)
                bound = si * bi * vals[j][1]
                step = (style, i, j)
            size = 0
        else:  # pack scalars into an array (records nothing)
            idx = draw(st.lists(st.sampled_from([k for k, v in enumerate(vals) if v[0] == 0]),
                                min_size=1, max_size=4))
            step, size, bound = ("pack", idx), len(idx), max(vals[k][1] for k in idx)
        if bound > MAX_BOUND or not math.isfinite(bound):
            squash = draw(st.sampled_from(["tanh", "scale"]))
            step = ("squash", squash, step, bound)
            bound = 1.0
        steps.append(step)
        vals.append((size, bound))
    # The output: mostly the sum of every step's value that no later step
    # uses, so that no step is dead code; else the last value, or a few.
    used = {k for step in steps for k in _refs(step)}
    leaves = [k for k in range(len(vals) - len(steps), len(vals)) if k not in used]
    assert steps and leaves
    out = draw(st.one_of(st.just(leaves), st.just(leaves), st.just(None),
                         st.lists(st.integers(0, len(vals) - 1), min_size=1, max_size=4)))
    return {"n_scalar": n_scalar, "sizes": sizes, "steps": steps, "out": out}


def _refs(step):
    """The values a step reads."""
    kind = step[0]
    if kind == "squash":
        return _refs(step[2])
    if kind in ("binv", "extv"):
        return [step[2], step[3]]
    if kind in ("dot", "matmul"):
        return [step[1], step[2]]
    if kind in ("sum", "pack"):
        return list(step[1])
    if kind in ("dotc", "dotc_left"):
        return [step[1]]
    if kind == "const":
        return []
    return [step[2]]  # un, binc, extc


# --------------------------------------------------------------- two libraries

class FT:
    """The public front end. Arrays are Python lists of Vars."""

    @staticmethod
    def unary(name, x, method):
        if name == "neg":
            return -x
        if method:
            return abs(x) if name == "abs" else getattr(x, name)()
        return getattr(ft, name)(x)

    @staticmethod
    def unary_array(name, xs, method):
        if name == "neg" or method:
            return [FT.unary(name, x, method) for x in xs]
        return list(getattr(ft, name)(np.array(xs + [None], dtype=object)[:-1]))

    maximum, minimum = staticmethod(ft.maximum), staticmethod(ft.minimum)
    const = staticmethod(ft.Var)

    @staticmethod
    def sum(items, c):
        return ft.sum(items + ([c] if c is not None else []))

    @staticmethod
    def dot(style, xs, ys):
        X = np.array(xs + [None], dtype=object)[:-1]
        if style == "dot":
            return ft.dot(X, np.array(ys + [None], dtype=object)[:-1])
        if style == "matmul":
            return X @ np.array(ys + [None], dtype=object)[:-1]
        if style == "dotc":
            return ft.dot(X, np.array(ys, dtype=float))
        return ft.dot(list(map(float, ys)), X)  # a list of floats on the left


class NP:
    """NumPy over lanes. Records the arguments of every kink (abs, relu,
    maximum, minimum) so finite differences can avoid crossing one."""

    def __init__(self):
        self.kinks = []

    _fn = dict(exp=np.exp, log=np.log, sqrt=np.sqrt, sin=np.sin, cos=np.cos, tan=np.tan,
               tanh=np.tanh, log1p=np.log1p, expm1=np.expm1,
               sigmoid=lambda x: 1.0 / (1.0 + np.exp(-x)))

    def unary(self, name, x, method):
        if name == "neg":
            return -x
        if name in ("abs", "relu"):
            self.kinks.append(x)
            return np.abs(x) if name == "abs" else np.where(x > 0, x, 0.0)
        return self._fn[name](x)

    def unary_array(self, name, xs, method):
        return [self.unary(name, x, method) for x in xs]

    @staticmethod
    def const(c):
        return c

    def maximum(self, a, b):
        self.kinks.append(a - b)
        return np.maximum(a, b)

    def minimum(self, a, b):
        self.kinks.append(a - b)
        return np.minimum(a, b)

    @staticmethod
    def sum(items, c):
        total = items[0]
        for x in items[1:]:
            total = total + x
        return total + c if c else total

    @staticmethod
    def dot(style, xs, ys):
        total = 0.0
        for x, y in zip(xs, ys):
            total = total + x * y
        return total


def _elementwise(f, *vals):
    """Apply f to scalars, or elementwise over lists (broadcasting scalars)."""
    n = max((len(v) for v in vals if isinstance(v, list)), default=None)
    if n is None:
        return f(*vals)
    return [f(*(v[k] if isinstance(v, list) else v for v in vals)) for k in range(n)]


def _apply(lib, step, vals):
    kind = step[0]
    if kind == "squash":
        _, how, inner, bound = step
        v = _apply(lib, inner, vals)
        if how == "tanh":
            return _elementwise(lambda x: lib.unary("tanh", x, True), v)
        return _elementwise(lambda x: x * (1.0 / bound), v)
    if kind == "un":
        _, name, i, method = step
        x = vals[i]
        guarded = {"exp": lambda u: lib.unary("exp", lib.unary("tanh", u, True), method),
                   "log": lambda u: lib.unary("log", lib.unary("abs", u, True) + 0.5, method),
                   "sqrt": lambda u: lib.unary("sqrt", u * u + 0.1, method),
                   "tan": lambda u: lib.unary("tan", lib.unary("tanh", u, True), method),
                   "log1p": lambda u: lib.unary("log1p", lib.unary("abs", u, True), method),
                   "expm1": lambda u: lib.unary("expm1", lib.unary("tanh", u, True), method)}
        if name in guarded:
            return _elementwise(guarded[name], x)
        if isinstance(x, list):
            return lib.unary_array(name, x, method)
        return lib.unary(name, x, method)
    if kind == "binv":
        _, sym, i, j = step

        def f(x, y):
            if sym == "+":
                return x + y
            if sym == "-":
                return x - y
            if sym == "*":
                return x * y
            if sym == "/":
                return x / (y * y + 0.5)
            return (x * x + 0.5) ** lib.unary("tanh", y, True)
        return _elementwise(f, vals[i], vals[j])
    if kind == "binc":
        _, sym, i, c, left = step

        def f(x):
            if sym == "+":
                return c + x if left else x + c
            if sym == "-":
                return c - x if left else x - c
            if sym == "*":
                return c * x if left else x * c
            if sym == "/":
                return c / (x * x + 0.5) if left else x / c
            if left:
                return c ** x
            return x ** c if c in (2, 3) else (x * x + 0.5) ** c
        return _elementwise(f, vals[i])
    if kind == "extv":
        _, name, i, j = step
        return _elementwise(getattr(lib, name), vals[i], vals[j])
    if kind == "extc":
        _, name, i, c, left = step
        fn = getattr(lib, name)
        return _elementwise(lambda x: fn(c, x) if left else fn(x, c), vals[i])
    if kind == "sum":
        _, idx, c = step
        items = []
        for k in idx:
            items += vals[k] if isinstance(vals[k], list) else [vals[k]]
        return lib.sum(items, c)
    if kind in ("dot", "matmul", "dotc", "dotc_left"):
        _, i, j = step
        return lib.dot(kind, vals[i], vals[j] if kind in ("dot", "matmul") else list(j))
    if kind == "pack":
        return [vals[k] for k in step[1]]
    if kind == "const":
        return lib.const(step[1])
    raise AssertionError(kind)


def run_program(lib, prog, args):
    """args: one per input (scalars, then arrays as lists); returns the scalar output."""
    vals = list(args)
    for step in prog["steps"]:
        vals.append(_apply(lib, step, vals))
    chosen = [vals[-1]] if prog["out"] is None else [vals[k] for k in prog["out"]]
    items = []
    for v in chosen:
        items += v if isinstance(v, list) else [v]
    return items[0] if len(items) == 1 else lib.sum(items, None)


def traced_fn(prog):
    def fn(*args):
        return run_program(FT, prog, [list(a) if isinstance(a, np.ndarray) else a
                                      for a in args])
    return fn


def split_flat(prog, flat):
    """Flat input coordinates (..., n_in) -> per-argument pieces."""
    out, pos = [], 0
    for _ in range(prog["n_scalar"]):
        out.append(flat[..., pos])
        pos += 1
    for n in prog["sizes"]:
        out.append(flat[..., pos:pos + n])
        pos += n
    return out


def n_coords(prog):
    return prog["n_scalar"] + sum(prog["sizes"])


def numpy_eval(prog, points):
    """Reference values at points (L, n_in), and the kink arguments (K, L)."""
    lib = NP()
    with np.errstate(all="ignore"):
        args = [p if p.ndim == 1 else [p[:, k] for k in range(p.shape[1])]
                for p in split_flat(prog, points)]
        out = run_program(lib, prog, args)
    kinks = np.array([np.broadcast_to(k, (len(points),)) for k in lib.kinks]).reshape(-1, len(points))
    return np.broadcast_to(out, (len(points),)).astype(float), kinks


def tape_args(prog, flat):
    return [float(p) if p.ndim == 0 else p for p in split_flat(prog, np.asarray(flat, float))]


# away from 0, where abs / relu guards put kinks that finite differences must avoid
inputs = st.lists(st.floats(0.05, IN_BOUND).flatmap(lambda v: st.sampled_from([v, -v])),
                  min_size=11, max_size=11)
seeds = st.integers(0, 2**32 - 1)


def close(got, want, rtol, scale=0.0):
    """|got - want| <= rtol * max(|want|, scale), elementwise."""
    got, want = np.asarray(got, float), np.asarray(want, float)
    assert got.shape == want.shape, (got.shape, want.shape)
    err = np.abs(got - want)
    tol = rtol * np.maximum(np.abs(want), scale)
    assert np.all((err <= tol) | (got == want)), \
        f"max error {np.max(err)}, tolerance {np.min(tol)}\n got {got}\nwant {want}"


def flat_grad(grads):
    return np.concatenate([np.ravel(g) for g in grads])


# --------------------------------------------------------------- (a) kernel == twin

def _programs_of(tape, outputs=None):
    core = pytest.importorskip("fasttape._core")
    p = tape._program
    arrays = (p.op, p.a, p.b, p.pool, p.args, p.n_inputs,
              p.outputs if outputs is None else outputs)
    return core.Program(*arrays), twin.Program(*arrays)


def _node_scales(tw, shared, sn, batch, bn, B, seed, st_, bt_):
    """Per lane, the largest |value|, |adjoint| and |tangent| over all nodes.

    The two backends evaluate exp, tanh ... with different libraries (libm in
    the kernel, NumPy's SIMD loops in the twin) that differ by an ulp or two;
    formulas such as tanh' = 1 - f*f near saturation turn that into a large
    relative but tiny absolute difference. So a result is compared relative to
    the largest magnitude among the nodes of its lane: a normwise bound.
    Computed with the twin's own per-node sweeps, over all nodes at once."""
    n = tw.n
    V = np.zeros((n, B))
    V[sn], V[bn] = np.asarray(shared)[:, None], np.asarray(batch).T
    G, T = np.zeros((n, B)), np.zeros((n, B))
    T[sn], T[bn] = np.asarray(st_)[:, None], np.asarray(bt_).T
    with np.errstate(all="ignore"):
        for i in range(tw.n_inputs, n):
            twin.forward_node(tw, i, V)
            twin.tangent_node(tw, i, V, T)
        np.add.at(G, tw.outputs, np.asarray(seed).T)
        for i in range(n - 1, tw.n_inputs - 1, -1):
            twin.reverse_node(tw, i, V, G)
    return (np.abs(V).max(axis=0), np.abs(G).max(axis=0), np.abs(T).max(axis=0))


def _sample_scales(tape, sample, cot=1.0, tangents=None):
    """_node_scales for one sample given per argument, at batch 1."""
    p = tape._program
    tw = twin.Program(p.op, p.a, p.b, p.pool, p.args, p.n_inputs, p.outputs)
    flat = np.concatenate([np.ravel(a) for a in sample])
    tan = (np.concatenate([np.ravel(t) for t in tangents]) if tangents is not None
           else np.zeros(len(flat)))
    nodes = np.arange(p.n_inputs, dtype=np.int32)
    scales = _node_scales(tw, flat, nodes, np.zeros((1, 0)), nodes[:0], 1, [[cot]], tan,
                          np.zeros((1, 0)))
    return tuple(float(m[0]) for m in scales)


@SETTINGS
@given(prog=programs(), x=inputs, seed=seeds)
def test_kernel_and_twin_agree(prog, x, seed):
    n = n_coords(prog)
    x0 = np.array(x[:n])
    tape = ft.trace(traced_fn(prog), *tape_args(prog, x0))
    rng = np.random.default_rng(seed)
    p = tape._program
    nodes = np.arange(p.n_inputs, dtype=np.int32)
    none = np.zeros(0, np.int32)
    cy, tw = _programs_of(tape)

    # every node's value, at batch 1
    cy_all, tw_all = _programs_of(tape, outputs=np.arange(p.n, dtype=np.int32))
    v_cy = cy_all.run(x0, nodes, np.zeros((1, 0)), none, 1)[0]
    v_tw = tw_all.run(x0, nodes, np.zeros((1, 0)), none, 1)[0]
    close(v_cy, v_tw, 1e-12, np.max(np.abs(v_tw)))

    # value, vjp and jvp of the output, at batch 1
    ct, dirs = rng.normal(size=(1, 1)), rng.normal(size=n)
    vmax, gmax, tmax = _node_scales(tw, x0, nodes, np.zeros((1, 0)), none, 1, ct, dirs,
                                    np.zeros((1, 0)))
    r_cy = cy.run(x0, nodes, np.zeros((1, 0)), none, 1, seed=ct,
                  shared_tangent=dirs, batch_tangent=np.zeros((1, 0)))
    r_tw = tw.run(x0, nodes, np.zeros((1, 0)), none, 1, seed=ct,
                  shared_tangent=dirs, batch_tangent=np.zeros((1, 0)))
    close(r_cy[0], r_tw[0], 1e-12, vmax[0])
    close(r_cy[1], r_tw[1], 1e-12, gmax[0])
    close(r_cy[3], r_tw[3], 1e-12, tmax[0])
    assert r_cy[2].shape == r_tw[2].shape == (1, 0)

    # batched: a random subset of the inputs batched, the rest shared
    B = int(rng.integers(1, 6))
    batched = rng.random(n) < 0.5
    sn, bn = np.flatnonzero(~batched).astype(np.int32), np.flatnonzero(batched).astype(np.int32)
    shared, batch = x0[sn], rng.uniform(-IN_BOUND, IN_BOUND, size=(B, len(bn)))
    seed_b = rng.normal(size=(B, 1))
    st_, bt_ = rng.normal(size=len(sn)), rng.normal(size=(B, len(bn)))
    vmax, gmax, tmax = _node_scales(tw, shared, sn, batch, bn, B, seed_b, st_, bt_)
    b_cy = cy.run(shared, sn, batch, bn, B, seed=seed_b, shared_tangent=st_, batch_tangent=bt_)
    b_tw = tw.run(shared, sn, batch, bn, B, seed=seed_b, shared_tangent=st_, batch_tangent=bt_)
    close(b_cy[0], b_tw[0], 1e-12, vmax[:, None])
    close(b_cy[2], b_tw[2], 1e-12, gmax[:, None])
    close(b_cy[1], b_tw[1], 1e-12, gmax.sum())  # shared: summed over the lanes
    close(b_cy[3], b_tw[3], 1e-12, tmax[:, None])


# --------------------------------------------------------------- (b) gradients

def _fd_gradient(prog, x0, value):
    """Central differences (5-point stencil) at three step sizes, per coordinate;
    NaN where a stencil would cross a kink. Returns (n, 3)."""
    n = len(x0)
    hs = np.array([1e-3, 1e-4, 1e-5])
    offsets = np.array([-2, -1, 1, 2])
    pts = np.repeat(x0[None, :], 1 + n * len(hs) * 4, axis=0)
    k = 1
    for i in range(n):
        for h in hs:
            for o in offsets:
                pts[k, i] += o * h * max(1.0, abs(x0[i]))
                k += 1
    f, kinks = numpy_eval(prog, pts)
    np.testing.assert_allclose(f[0], value, rtol=1e-9, atol=1e-12)
    fd = np.full((n, len(hs)), np.nan)
    k = 1
    for i in range(n):
        for hi, h in enumerate(hs):
            sl = slice(k, k + 4)
            k += 4
            signs = np.sign(kinks[:, [0]]), np.sign(kinks[:, sl])
            if kinks.size and np.any(signs[1] != signs[0]):
                continue  # (a kink argument that stays exactly 0 is a tie throughout: smooth)
            fm2, fm1, fp1, fp2 = f[sl]
            step = h * max(1.0, abs(x0[i]))
            fd[i, hi] = (fm2 - 8 * fm1 + 8 * fp1 - fp2) / (12 * step)
    return fd


@SETTINGS
@given(prog=programs(), x=inputs, seed=seeds)
def test_gradient_matches_finite_differences_and_jvp(prog, x, seed):
    n = n_coords(prog)
    x0 = np.array(x[:n])
    args = tape_args(prog, x0)
    tape = ft.trace(traced_fn(prog), *args)
    wrt = tuple(range(len(args)))
    value, grads = tape.value_and_grad(*args, wrt=wrt)
    g = flat_grad(grads)
    assert isinstance(value, float)
    for arg, gr in zip(args, grads):
        assert np.shape(gr) == np.shape(arg)

    # the value against an independent NumPy evaluation; the gradient against
    # finite differences (the best of three step sizes: a wrong derivative
    # matches at none of them)
    fd = _fd_gradient(prog, x0, value)
    scale = max(1.0, abs(value), np.max(np.abs(g)))
    for i in range(n):
        if np.all(np.isnan(fd[i])):
            continue  # every stencil crosses a kink
        err = np.nanmin(np.abs(fd[i] - g[i]))
        assert err <= 1e-5 * abs(g[i]) + 1e-7 * scale, \
            f"coordinate {i}: reverse {g[i]!r}, finite differences {fd[i]}"

    # jvp along random directions equals <grad, direction> (both exact)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        d = rng.normal(size=n)
        out, tan = tape.jvp(args, tape_args(prog, d))
        assert out == value
        want = float(g @ d)
        # relative to the terms summed, with a floor at the problem's scale:
        # forward and reverse round differently through large intermediates
        floor = 1e-12 * scale * np.max(np.abs(d))
        assert abs(tan - want) <= 1e-10 * np.sum(np.abs(g * d)) + floor, (tan, want)

    # vjp with a cotangent scales the gradient
    # (rounding differs from c * g; compare normwise over the tape's adjoints)
    c = float(rng.normal())
    cot = flat_grad(tape.vjp(args, c))
    close(cot, c * g, 1e-12, _sample_scales(tape, args, cot=c)[1])


@SETTINGS
@given(prog=programs(), x=inputs, seed=seeds)
def test_passes_change_no_value_or_derivative(prog, x, seed):
    """The tape compiler's passes (fasttape/compiler.py, on in every other
    test here, so (b) checks their gradients against finite differences)
    against the same program traced with them off: the same values (the
    sums' order is kept) and derivatives to rounding (CSE sums adjoints in
    another order), one sample and batched."""
    args = tape_args(prog, np.array(x[:n_coords(prog)]))
    on = ft.trace(traced_fn(prog), *args)
    with ft.set_passes("none"):
        off = ft.trace(traced_fn(prog), *args)
    wrt = tuple(range(len(args)))
    rng = np.random.default_rng(seed)
    d = [rng.normal(size=np.shape(a)) if np.ndim(a) else float(rng.normal()) for a in args]
    _, gmax, tmax = _sample_scales(off, args, tangents=d)
    (v_on, g_on), (v_off, g_off) = (t.value_and_grad(*args, wrt=wrt) for t in (on, off))
    close(v_on, v_off, 0.0)
    close(flat_grad(g_on), flat_grad(g_off), 1e-12, gmax)
    (_, t_on), (_, t_off) = (t.jvp(args, d) for t in (on, off))
    close(t_on, t_off, 1e-12, tmax)
    h_on, h_off = (flat_grad(t.hvp(args, d, wrt=wrt)) for t in (on, off))
    close(h_on, h_off, 1e-11, max(1.0, gmax, tmax, np.max(np.abs(h_off), initial=0.0)))
    # batched, some arguments shared (dot layers may sweep as blocks)
    B = 5
    in_axes = tuple(0 if rng.integers(2) else None for _ in args)
    bargs = [a if ax is None else rng.uniform(-IN_BOUND, IN_BOUND, size=(B,) + np.shape(a))
             for a, ax in zip(args, in_axes)]
    samples = [[a if ax is None else a[s] for a, ax in zip(bargs, in_axes)] for s in range(B)]
    (bv_on, bg_on), (bv_off, bg_off) = (t.value_and_grad(*bargs, wrt=wrt, in_axes=in_axes)
                                        for t in (on, off))
    scales = [_sample_scales(off, sample) for sample in samples]
    close(bv_on, bv_off, 1e-12, max(sc[0] for sc in scales))
    for a, b_ in zip(bg_on, bg_off):
        close(a, b_, 1e-12, sum(sc[1] for sc in scales))


# --------------------------------------------------------------- (c) batches

@SETTINGS
@given(prog=programs(), x=inputs, seed=seeds, data=st.data())
def test_batched_replay_equals_per_sample_loop(prog, x, seed, data):
    n = n_coords(prog)
    x0 = np.array(x[:n])
    args = tape_args(prog, x0)
    tape = ft.trace(traced_fn(prog), *args)
    rng = np.random.default_rng(seed)
    B = data.draw(st.integers(1, 6), label="B")
    in_axes = tuple(data.draw(st.sampled_from([None, 0]), label=f"axis{k}")
                    for k in range(len(args)))
    bargs = [a if ax is None else rng.uniform(-IN_BOUND, IN_BOUND, size=(B,) + np.shape(a))
             for a, ax in zip(args, in_axes)]
    wrt = tuple(range(len(args)))

    values = tape(*bargs, in_axes=in_axes)
    bv, bg = tape.value_and_grad(*bargs, wrt=wrt, in_axes=in_axes)
    batched = any(ax == 0 for ax in in_axes)
    if not batched:
        assert isinstance(values, float)
        values, bv = np.array([values]), np.array([bv])
    assert np.shape(values) == (B if batched else 1,)
    close(bv, values, 0.0)  # the same forward sweep, exactly

    loop_v, loop_g, gmax = [], [], []
    for s in range(len(values)):
        sample = [a if ax is None else a[s] for a, ax in zip(bargs, in_axes)]
        v, gs = tape.value_and_grad(*sample, wrt=wrt)
        loop_v.append(v)
        loop_g.append([np.asarray(g_) for g_ in gs])
        gmax.append(_sample_scales(tape, sample)[1])
        # independent reference for the batched values, too
        ref, _ = numpy_eval(prog, np.concatenate([np.ravel(a) for a in sample])[None, :])
        close(values[s], ref[0], 1e-9, 1e-9)
    close(values, loop_v, 1e-12)
    for k, ax in enumerate(in_axes):
        per = np.array([lg[k] for lg in loop_g])
        if ax == 0:
            assert np.shape(bg[k]) == (B,) + np.shape(args[k])
            close(bg[k], per, 1e-12, np.reshape(gmax, (-1,) + (1,) * np.ndim(args[k])))
        else:
            assert np.shape(bg[k]) == np.shape(args[k])
            # the shared gradient is the sum of the per-sample gradients
            close(bg[k], per.sum(axis=0), 1e-12, sum(gmax))

    # batched vjp / jvp follow in_axes as well
    if batched:
        cot = rng.normal(size=B)
        vj = tape.vjp(bargs, cot, in_axes=in_axes)
        tang = [rng.normal(size=np.shape(a)) for a in bargs]
        _, jv = tape.jvp(bargs, tang, in_axes=in_axes)
        for s in range(B):
            sample = [a if ax is None else a[s] for a, ax in zip(bargs, in_axes)]
            ts = [t if ax is None else t[s] for t, ax in zip(tang, in_axes)]
            _, jv_s = tape.jvp(sample, ts)
            close(jv[s], jv_s, 1e-12, _sample_scales(tape, sample, tangents=ts)[2])
        for k, ax in enumerate(in_axes):
            per = np.array([cot[s] * loop_g[s][k] for s in range(B)])
            want = per if ax == 0 else per.sum(axis=0)
            floor = np.abs(cot) * gmax
            close(vj[k], want, 1e-12, (np.reshape(floor, (-1,) + (1,) * np.ndim(args[k]))
                                       if ax == 0 else floor.sum()))


# --------------------------------------------------------------- (d) eager == traced

@SETTINGS
@given(prog=programs(), x=inputs)
def test_eager_equals_traced(prog, x):
    n = n_coords(prog)
    x0 = np.array(x[:n])
    args = tape_args(prog, x0)
    tape = ft.trace(traced_fn(prog), *args)
    value, grads = tape.value_and_grad(*args, wrt=tuple(range(len(args))))
    with ft.Tape():
        leaves = [ft.Var(a) if isinstance(a, float) else [ft.Var(float(v)) for v in a]
                  for a in args]
        L = run_program(FT, prog, leaves)
        L.backward()
        assert isinstance(L.value, float)
        close(L.value, value, 1e-12)
        for leaf, g in zip(leaves, grads):
            got = leaf.grad if isinstance(leaf, ft.Var) else [v.grad for v in leaf]
            assert all(isinstance(v, float) for v in np.ravel(got))
            close(got, g, 1e-12, np.max(np.abs(flat_grad(grads))) * 1e-3)
        # a second backward gives a fresh result, not an accumulated one
        L.backward()
        for leaf, g in zip(leaves, grads):
            got = leaf.grad if isinstance(leaf, ft.Var) else [v.grad for v in leaf]
            close(got, g, 1e-12, np.max(np.abs(flat_grad(grads))) * 1e-3)


# --------------------------------------------------------------- (e) fast paths == plain

@SETTINGS
@given(prog=programs(), x=inputs, seed=seeds, data=st.data())
def test_fast_paths_give_the_plain_paths_numbers(prog, x, seed, data):
    """The kernel's dot blocks and first writes (adjoint rows, and in HVPs
    their tangents, set by their first contribution, not zeroed and added
    to) against its plain sweeps,
    which set_dot_blocks(False) and set_first_writes(False) force: the same
    bits (with fused multiply-adds in dot blocks, the same to rounding)."""
    core = importlib.import_module("fasttape.backend")._compiled()
    args = tape_args(prog, np.array(x[:n_coords(prog)]))
    p = ft.trace(traced_fn(prog), *args)._program
    prog_k = core.Program(p.op, p.a, p.b, p.pool, p.args, p.n_inputs, p.outputs)
    rng = np.random.default_rng(seed)
    B = data.draw(st.sampled_from([1, 3, 40]), label="B")
    shared = np.array(data.draw(st.lists(st.booleans(), min_size=p.n_inputs,
                                         max_size=p.n_inputs), label="shared"), bool)
    sn, bn = np.flatnonzero(shared).astype(np.int32), np.flatnonzero(~shared).astype(np.int32)
    sv = rng.uniform(-IN_BOUND, IN_BOUND, len(sn))
    bv = rng.uniform(-IN_BOUND, IN_BOUND, (B, len(bn)))
    seed_ = rng.normal(size=(B, p.n_outputs))
    second = dict(seed=seed_, shared_tangent=rng.normal(size=len(sn)),
                  batch_tangent=rng.normal(size=(B, len(bn))), hvp=True)

    def both():
        return prog_k.run(sv, sn, bv, bn, B, seed=seed_)[:3] + prog_k.run(sv, sn, bv, bn, B,
                                                                          **second)
    fast = both()
    core.set_dot_blocks(False)
    core.set_first_writes(False)
    try:
        plain = both()
    finally:
        core.set_dot_blocks(True)
        core.set_first_writes(True)
    for u, v in zip(fast, plain):
        if core.FUSED_MULTIPLY_ADD:
            close(u, v, 1e-12, np.max(np.abs(v), initial=0.0))
        else:
            np.testing.assert_array_equal(u, v)


# --------------------------------------------------------------- (f) nested transforms

def flat_fn(prog):
    """The program as a function of one vector of all its input coordinates."""
    def fn(v):
        pieces, pos = [], 0
        for _ in range(prog["n_scalar"]):
            pieces.append(v[pos])
            pos += 1
        for n in prog["sizes"]:
            pieces.append(list(v[pos:pos + n]))
            pos += n
        return run_program(FT, prog, pieces)
    return fn


NESTED = settings(SETTINGS, max_examples=max(10, SETTINGS.max_examples // 4))


@NESTED
@given(prog=programs(), x=inputs)
def test_nested_transforms_equal_the_hessian_path(prog, x):
    """jacobian(grad(f)), recorded as Vars on the outer trace, equals the
    tape's forward-over-reverse Hessian; the third derivatives, three levels
    deep, equal central differences of that Hessian where no kink is near."""
    n = n_coords(prog)
    x0 = np.array(x[:n])
    f = flat_fn(prog)
    H = ft.hessian(f)(x0)
    scale = max(1.0, np.max(np.abs(H)))
    close(ft.jacobian(ft.grad(f))(x0), H, 1e-10, scale)
    nested_h = ft.trace(lambda v: ft.hessian(f)(v), x0)  # recorded as Vars, replayed
    close(nested_h(x0), H, 1e-10, scale)
    T = ft.jacobian(ft.jacobian(ft.grad(f)))(x0)
    assert T.shape == (n, n, n)
    h = 1e-5
    for k in range(n):
        step = np.eye(n)[k] * h * max(1.0, abs(x0[k]))
        pts = np.array([x0 - 2 * step, x0 - step, x0, x0 + step, x0 + 2 * step])
        _, kinks = numpy_eval(prog, pts)
        if kinks.size and np.any(np.sign(kinks) != np.sign(kinks[:, [2]])):
            continue  # the stencil crosses a kink
        Hs = [ft.hessian(f)(p) for p in pts[[0, 1, 3, 4]]]
        fd = (Hs[0] - 8 * Hs[1] + 8 * Hs[2] - Hs[3]) / (12 * step[k])
        t_scale = max(1.0, np.max(np.abs(T[:, :, k])))
        assert np.all(np.abs(T[:, :, k] - fd) <= 1e-5 * t_scale), (k, T[:, :, k], fd)
