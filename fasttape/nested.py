"""Transforms called on Vars: derivatives recorded on the tape in use.

Inside a trace, or given Vars, ft.grad(f) and its siblings cannot replay a
tape of their own: f may read Vars of the enclosing trace. Instead f is
recorded on the tape in use, at fresh copies of its arguments, and so is its
reverse sweep, node by node, with each node's partials taken from the op
table's formulas evaluated on Vars. The results are Vars, which an enclosing
transform differentiates in turn: grad(grad(f)), jacobian(grad(f)) ... to any
order, with no confusion between the levels (each level has fresh inputs).
"""

import re

import numpy as np

from . import functions as F
from . import kinds, ops
from .errors import ArgumentError, FasttapeError
from .graphviz import operands
from .numpy_api import traced
from .var import Var, current_recorder, pop_recorder, push_recorder


class NestingError(FasttapeError, TypeError):
    """A transform called on Vars met something it cannot differentiate."""


# ------------------------------------------------------------ partials on Vars

def _lifted(numpy_fn, var_fn):
    """numpy_fn on numbers (a float), var_fn once any operand is a Var."""
    def fn(*xs):
        if any(isinstance(x, Var) for x in xs):
            return var_fn(*xs)
        with np.errstate(all="ignore"):
            return float(numpy_fn(*xs))
    return fn


def _safe_log(x):
    """log x where x != 0, else 0: for the branch where() does not take."""
    return F.log(F.where(x == 0.0, 1.0, x))


# What each name a formula uses means on Vars. The helpers that are piecewise
# constant become conditions and selects: their derivative is zero, as in the
# table. test_nested checks each against its NumPy meaning.
_ON_VARS = {
    "pow": lambda x, y: x ** y,
    "fabs": abs,
    "step": lambda x: F.where(x > 0.0, 1.0, 0.0),
    "sign": lambda x: F.where(x > 0.0, 1.0, F.where(x < 0.0, -1.0, 0.0)),
    "maxd": lambda x, y: F.where(x > y, 1.0, F.where(x == y, 0.5, 0.0)),
    "powd1": lambda x, y: F.where(x == 0.0, 0.0, y * _safe_log(x)),
    "maxv": F.maximum,
    "minv": F.minimum,
    "lt": lambda x, y: F.where(x < y, 1.0, 0.0),
    "le": lambda x, y: F.where(x <= y, 1.0, 0.0),
    "eq": lambda x, y: F.where(x == y, 1.0, 0.0),
}
for _name in ("exp", "log", "sqrt", "sin", "cos", "tan", "tanh", "log1p", "expm1", "sigmoid"):
    _ON_VARS.setdefault(_name, getattr(F, _name))
for _name in ("vexp", "vlog", "vlog1p", "vtanh"):
    _ON_VARS[_name] = getattr(F, _name[1:])
for _name, _row in (("asin", "arcsin"), ("acos", "arccos"), ("atan", "arctan"),
                    ("asinh", "arcsinh"), ("acosh", "arccosh"), ("atanh", "arctanh"),
                    ("sinh", "sinh"), ("cosh", "cosh"), ("log2", "log2"), ("log10", "log10"),
                    ("exp2", "exp2"), ("cbrt", "cbrt"), ("floor", "floor"), ("ceil", "ceil"),
                    ("atan2", "arctan2"), ("hypot", "hypot"), ("copysign", "copysign"),
                    ("fmod", "fmod"), ("fmax", "fmax"), ("fmin", "fmin"), ("pymod", "mod")):
    _ON_VARS[_name] = getattr(F, _row)
_ON_VARS["powd0"] = lambda x, y: F.where(y == 0.0, 0.0, y * x ** (y - 1.0))
_ON_VARS["powd00"] = lambda x, y: F.where((y == 0.0) + (y == 1.0), 0.0,
                                          y * (y - 1.0) * x ** (y - 2.0))
_ON_VARS["fmaxd"] = lambda x, y: F.where(x > y, 1.0, F.where(y != y, 1.0,
                                                              F.where(x == y, 0.5, 0.0)))
NAMESPACE = {name: _lifted(ops.NUMPY_NAMES[name], fn) for name, fn in _ON_VARS.items()
             if name in ops.NUMPY_NAMES}


def _may_be_infinite(expr):
    """A partial that can be infinite somewhere (1 / x, log x ...)."""
    return any(s in (expr or "") for s in ("/", "log", "pow"))


def _select(x, p, q):
    return F.where(x, p, q) if isinstance(x, Var) else (p if x != 0.0 else q)


def _reverse(op, kind):
    """kind's reverse template (kinds.py) with op's partials, as functions on
    Vars: [(operand name, fn(x, y, z, u, v, c, k, f, g))]. A partial that can
    be infinite (1 / x, log x) keeps the sweeps' rule that a zero adjoint
    contributes nothing; a finite one simply multiplies."""
    fields = op._asdict()
    out = []
    for target, expr in kind.rev:
        partials = re.findall(r"\{(d\d+)\}", expr)
        zmul = _times_zero_wins if any(_may_be_infinite(fields[d]) for d in partials) else _times
        fn = eval(f"lambda x, y, z, u, v, c, k, f, g: {expr.format(**fields)}",
                  dict(NAMESPACE, zmul=zmul, sel=_select))
        out.append((target[1:], fn))
    return out


# ------------------------------------------------------------ the reverse sweep

def _times(d, g):
    if not isinstance(d, Var):
        d = float(d)
        if d == 0.0:
            return 0.0  # (contributes nothing, as in the sweeps)
    if type(g) is float and g == 1.0:
        return d
    if type(d) is float and d in (1.0, -1.0):
        return g if d == 1.0 else -g
    return d * g


def _times_zero_wins(d, g):
    """d * g, but 0 where g is 0 and d is infinite or NaN: the sweeps' rule
    that a zero adjoint contributes nothing (a branch where() did not take,
    say). Where d is finite the product and its derivatives are d * g's."""
    if not isinstance(g, Var) or not isinstance(d, Var):
        return _times(d, g)
    finite_or_read = ((d - d) == 0.0) + (g != 0.0)
    return F.where(finite_or_read, d * g, 0.0)


REVERSE = [_reverse(op, ops.KIND_OF[op.code]) for op in ops.OPS]  # per opcode


def _total(terms):
    return terms[0] if len(terms) == 1 else F.sum(terms)


class Sweep:
    """Reverse sweeps from outputs (Vars or numbers) to fresh input Vars,
    read once from the tape in use; each call records one more on it."""

    def __init__(self, rec, inputs, outputs):
        self.in_nodes = [rec.node(v._h) for v in inputs]
        self.out_nodes = [rec.node(o._h) if isinstance(o, Var) else None for o in outputs]
        reached = [n for n in self.out_nodes if n is not None]
        self.needed = set()
        if not inputs or not reached:
            return
        self.lo = min(self.in_nodes)
        self.tape = tape = _Nodes(*rec.arrays()[:5])
        self.needed = _needed(tape, self.lo, max(reached), self.in_nodes, reached)
        # Vars of every node the sweeps read, held before anything is recorded:
        # recording may renumber the nodes (handles follow; self.tape's
        # numbering is the one of this moment, and only it is used below).
        self.held = {}
        for i in self.needed:
            for j in [i] + operands(tape, i):
                if j not in self.held:
                    self.held[j] = _hold(rec, j)

    def __call__(self, seeds):
        """The cotangents of the inputs for seeds (Vars or numbers) on the
        outputs: one per input, a Var or 0.0."""
        adj = {}
        for n, s in zip(self.out_nodes, seeds):
            if n in self.needed and not (type(s) is float and s == 0.0):
                adj.setdefault(n, []).append(s)
        firsts, found = set(self.in_nodes), {}
        for i in sorted(self.needed, reverse=True):
            terms = adj.pop(i, None)
            if terms is None:
                continue
            g = _total(terms)
            if i in firsts:
                found[i] = g
                continue
            for j, term in _contributions(self.tape, i, g, self.held):
                if j >= self.lo and j in self.needed:
                    adj.setdefault(j, []).append(term)
        return [found.get(n, 0.0) for n in self.in_nodes]


class _Nodes:
    """The arrays of a recording tape, read as a program is."""

    def __init__(self, op, a, b, pool, args):
        self.op, self.a, self.b, self.pool, self.args = op, a, b, pool, args


def _hold(rec, i):
    from .var import _new
    return _new(rec, rec.hold(i))


def _needed(tape, lo, hi, in_nodes, out_nodes):
    """Nodes lo..hi that depend on an input and lead to an output."""
    depends = set(in_nodes)
    for i in range(lo, hi + 1):
        if i not in depends and any(j in depends for j in operands(tape, i) if j >= lo):
            depends.add(i)
    needed = {n for n in out_nodes if n in depends}
    for i in range(hi, lo - 1, -1):
        if i in needed and i not in in_nodes:
            needed.update(j for j in operands(tape, i) if j in depends)
    return needed


def _contributions(tape, i, g, held):
    """(operand node, adjoint term) pairs of node i with adjoint g, from its
    kind's reverse template."""
    op = int(tape.op[i])
    for nodes, consts in kinds.terms(ops.KIND_OF[op], int(tape.a[i]), int(tape.b[i]),
                                     tape.args, tape.pool):
        env = dict.fromkeys("xyzuvck", 0.0)
        env.update((name, held[j]) for name, j in nodes.items())
        env.update((name, np.float64(c)) for name, c in consts.items())
        for name, fn in REVERSE[op]:
            with np.errstate(all="ignore"):  # (1 / c at c = 0 is inf, as in the sweeps)
                term = fn(f=held[i], g=g, **env)
            if isinstance(term, Var) or term != 0.0:
                yield nodes[name], term


# ------------------------------------------------------------ arguments

def recorder_of(args):
    """The tape of the Vars among args (nested arrays included), or None."""
    for arg in args:
        if isinstance(arg, Var):
            return arg._rec
        if isinstance(arg, np.ndarray) and arg.dtype == object:
            rec = recorder_of(arg.ravel().tolist())
            if rec is not None:
                return rec
    return None


def _fresh(rec, arg, what):
    """A copy of arg made of new nodes on rec: the variables of this level."""
    if isinstance(arg, Var):
        if arg._rec is not rec:
            raise NestingError(f"{what} is a Var of another tape than the one in use")
        return arg * 1.0  # a node of its own, with x's value and derivative 1
    if isinstance(arg, np.ndarray) or isinstance(arg, (list, tuple)):
        arr = np.asarray(arg, dtype=object)
        out = np.empty(arr.shape, dtype=object)
        for idx in np.ndindex(*arr.shape):
            out[idx] = _fresh(rec, arr[idx], what)
        return traced(out)
    try:
        value = float(arg)
    except (TypeError, ValueError):
        raise ArgumentError(f"{what} must be a number, an array or a Var, "
                            f"got {type(arg).__name__}") from None
    from .var import _new
    return _new(rec, rec.const(value))


def _leaves(x):
    """The scalars of x (a Var, number or array) in order, and x's shape."""
    if isinstance(x, np.ndarray):
        return x.ravel().tolist(), x.shape
    return [x], ()


def _shaped(items, shape):
    """items (Vars and numbers) as a scalar, or an object array of shape."""
    if shape == ():
        return items[0]
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out.reshape(shape)


def _flat_output(out, what):
    """(leaves, leaf shapes, rebuild) of a traced output structure."""
    if isinstance(out, (tuple, list)):
        parts = [_flat_output(o, what) for o in out]
        leaves = [x for p in parts for x in p[0]]
        shapes = [s for p in parts for s in p[1]]

        def rebuild(items, parts=parts, kind=type(out)):
            built, pos = [], 0
            for p in parts:
                n = len(p[1])
                built.append(p[2](items[pos:pos + n]))
                pos += n
            return tuple(built) if kind is tuple else built
        return leaves, shapes, rebuild
    if isinstance(out, np.ndarray) and out.dtype != object:
        out = out.astype(object)
    if not (isinstance(out, (Var, np.ndarray)) or np.isscalar(out)):
        raise ArgumentError(f"{what} must return Vars, numbers, or arrays, tuples or lists "
                            f"of them; got {type(out).__name__}")
    return [out], [np.shape(out)], lambda items: items[0]


# ------------------------------------------------------------ the transforms

def _call(fn, rec, args, idx, what, kwargs):
    """fn at fresh copies of args idx (the others as given): (output, the
    fresh Vars of each argument in idx, as flat lists)."""
    fresh = list(args)
    flat = []
    for k in idx:
        fresh[k] = _fresh(rec, args[k], f"{what}: argument {k}")
        flat.append(_leaves(fresh[k])[0])
    own = current_recorder() is not rec
    if own:
        push_recorder(rec)
    try:
        out = fn(*fresh, **kwargs)
    finally:
        if own:
            pop_recorder(rec)
    return out, flat


def _scalar(out, what):
    leaves, shapes, _ = _flat_output(out, what)
    if len(leaves) != 1 or shapes[0] != ():
        got = f"shape {shapes[0]}" if len(leaves) == 1 else f"{len(leaves)} outputs"
        raise ArgumentError(f"{what} needs a scalar output, got {got}")
    leaf = leaves[0]
    return leaf.item() if isinstance(leaf, np.ndarray) else leaf


def value_and_grad(fn, rec, args, idx, single, kwargs, what="grad"):
    out, flat = _call(fn, rec, args, idx, what, kwargs)
    out = _scalar(out, what)
    inputs = [v for vs in flat for v in vs]
    cots = iter(Sweep(rec, inputs, [out])([1.0]))
    grads = tuple(_shaped([next(cots) for _ in vs], np.shape(args[k]))
                  for k, vs in zip(idx, flat))
    return out, (grads[0] if single else grads)


def value_and_grad_aux(fn, rec, args, idx, single, kwargs):
    """(outputs, gradient of the first): fn returns (value, auxiliary ...)."""
    out, flat = _call(fn, rec, args, idx, "grad", kwargs)
    if not isinstance(out, tuple) or not out:
        raise ArgumentError("with has_aux, the function must return (a scalar, auxiliary data)")
    value = _scalar(out[0], "grad")
    inputs = [v for vs in flat for v in vs]
    cots = iter(Sweep(rec, inputs, [value])([1.0]))
    grads = tuple(_shaped([next(cots) for _ in vs], np.shape(args[k]))
                  for k, vs in zip(idx, flat))
    return (value,) + tuple(out[1:]), (grads[0] if single else grads)


def grad(fn, rec, args, idx, single, kwargs):
    return value_and_grad(fn, rec, args, idx, single, kwargs)[1]


def jacobian(fn, rec, args, idx, single, kwargs, what="jacobian"):
    out, flat = _call(fn, rec, args, idx, what, kwargs)
    leaves, shapes, rebuild = _flat_output(out, what)
    scalars = [x for leaf in leaves for x in _leaves(leaf)[0]]
    inputs = [v for vs in flat for v in vs]
    sweep = Sweep(rec, inputs, scalars)
    rows = [sweep([1.0 if r == q else 0.0 for q in range(len(scalars))])
            for r in range(len(scalars))]
    jacs, col = [], 0
    for k, vs in zip(idx, flat):
        arg_shape = np.shape(args[k])
        blocks, row = [], 0
        for shape in shapes:
            n = int(np.prod(shape))
            items = [rows[row + r][col + q] for r in range(n) for q in range(len(vs))]
            blocks.append(_shaped(items, tuple(shape) + arg_shape))
            row += n
        jacs.append(rebuild(blocks))
        col += len(vs)
    return jacs[0] if single else tuple(jacs)


def hessian(fn, rec, args, idx, single, kwargs):
    _scalar_check = lambda *a, **kw: _scalar(fn(*a, **kw), "hessian")  # noqa: E731

    def gradient(*a, **kw):
        return value_and_grad(_scalar_check, rec, a, idx, False, kw, "hessian")[1]
    jac = jacobian(gradient, rec, args, idx, False, kwargs, "hessian")
    blocks = tuple(tuple(jac[j][i] for j in range(len(idx))) for i in range(len(idx)))
    return blocks[0][0] if single else blocks


def vjp(fn, args, idx, single):
    """(fn's output, vjp_fn) recorded on the tape in use."""
    rec = recorder_of(args) or current_recorder()
    out, flat = _call(fn, rec, args, idx, "vjp", {})
    leaves, shapes, _ = _flat_output(out, "vjp")
    scalars = [x for leaf in leaves for x in _leaves(leaf)[0]]
    sweep = Sweep(rec, [v for vs in flat for v in vs], scalars)

    def vjp_fn(cotangent):
        seeds = []
        parts = cotangent if len(leaves) > 1 else [cotangent]
        for part, shape in zip(_flat_output(parts, "cotangent")[0] if len(leaves) > 1
                               else parts, shapes):
            if np.shape(part) != tuple(shape):
                raise ArgumentError(f"cotangent: expected shape {tuple(shape)}, "
                                    f"got {np.shape(part)}")
            seeds += _leaves(np.asarray(part, dtype=object) if np.ndim(part) else part)[0]
        seeds = [s if isinstance(s, Var) else float(s) for s in seeds]
        cots = iter(sweep(seeds))
        grads = tuple(_shaped([next(cots) for _ in vs], np.shape(args[k]))
                      for k, vs in zip(idx, flat))
        return grads[0] if single else grads
    return out, vjp_fn


def jvp(fn, args, idx, tangents):
    """(fn's output, its tangent along tangents of args idx), recorded on the
    tape in use: the derivative of s -> fn(args + s tangents) at s = 0."""
    def along(s):
        moved = list(args)
        for k, t in zip(idx, tangents):
            moved[k] = args[k] + s * np.asarray(t, dtype=object) if np.ndim(t) else args[k] + s * t
        return fn(*moved)
    rec = recorder_of(args) or current_recorder()
    out = fn(*args)
    return out, jacobian(along, rec, [0.0], (0,), True, {}, "jvp")


METHODS = {"grad": grad, "value_and_grad": value_and_grad, "jacobian": jacobian,
           "hessian": hessian, "value_and_grad_aux": value_and_grad_aux}


def call(method, fn, args, idx, single, axes, kwargs=None):
    """Transform `method` of fn at args, recorded on the tape in use (or the
    Vars' own); per sample where axes say 0."""
    rec = recorder_of(args) or current_recorder()
    run = METHODS[method]
    kwargs = kwargs or {}
    if not any(ax == 0 for ax in axes):
        return run(fn, rec, args, idx, single, kwargs)
    sizes = {len(arg) for arg, ax in zip(args, axes) if ax == 0 and np.ndim(arg)}
    if len(sizes) != 1 or any(ax == 0 and not np.ndim(arg) for arg, ax in zip(args, axes)):
        raise ArgumentError(f"{method}: batched arguments (in_axes 0) must be arrays with "
                            f"one batch size, got sizes {sorted(sizes)}")
    B = sizes.pop()
    results = [run(fn, rec, [arg[b] if ax == 0 else arg for arg, ax in zip(args, axes)],
                   idx, single, kwargs) for b in range(B)]
    if method not in ("grad", "value_and_grad", "value_and_grad_aux"):
        return _stack(results)
    # a shared argument's gradient is the sum over the batch; the rest per sample
    values = [r[0] for r in results] if method != "grad" else None
    grads = [r[1] if method != "grad" else r for r in results]
    grads = [g if not single else (g,) for g in grads]
    out = []
    for pos, k in enumerate(idx):
        per = [g[pos] for g in grads]
        out.append(_summed(per) if axes[k] is None else _stack(per))
    out = out[0] if single else tuple(out)
    return (_stack(values), out) if method != "grad" else out


def _summed(items):
    first = items[0]
    if isinstance(first, np.ndarray):
        out = np.empty(first.shape, dtype=object)
        for pos in np.ndindex(*first.shape):
            out[pos] = F.sum([x[pos] for x in items])
        return out
    return F.sum(items)


def _stack(items):
    """Per-sample results stacked on a leading axis (structures leaf by leaf)."""
    first = items[0]
    if isinstance(first, tuple):
        return tuple(_stack([x[k] for x in items]) for k in range(len(first)))
    if isinstance(first, list):
        return [_stack([x[k] for x in items]) for k in range(len(first))]
    out = np.empty((len(items),) + np.shape(first), dtype=object)
    for b, x in enumerate(items):
        out[b] = x
    return out
