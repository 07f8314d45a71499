"""The twin's sweeps over a tape, node by node (the kernel's sweeps.pxi).

Every case is the kind table's template (kinds.py) with the op table's
formulas, evaluated by NumPy over the lanes: the text the kernel's generated
loops compile. The kernel's fast paths over them (dot blocks, runs, shared
weights read as one number) have no counterpart here: this is the reference.
"""

import re

import numpy as np

from .. import kinds, ops

_KIND = ops.KIND_OF  # each opcode's row of the kind table
_CHECK_FINITE = [False]
# The names a template may read (kinds.py), in the order compiled lambdas take them.
_NAMES = ("x", "y", "z", "u", "v", "c", "k", "f", "g", "h", "tx", "ty", "tz", "tu", "tv")


def _compile(target, expr):
    """(target, the names expr reads, a NumPy function of them)."""
    used = tuple(n for n in _NAMES if re.search(rf"\b{n}\b", expr))
    return target, used, ops.compile_numpy(expr, ", ".join(used))


def compile_sweeps(op, kind):
    """{sweep: [(target, names read, NumPy function)]}: kind's templates
    (kinds.py) with op's formulas, for the four sweeps."""
    return {sweep: [_compile(t, e) for t, e in kinds.expand(kind, op, sweep)]
            for sweep in ("fwd", "rev", "tan", "hvp")}


_SWEEPS = [compile_sweeps(op, _KIND[op.code]) for op in ops.OPS]  # per opcode


def set_check_finite(on):
    """Make every sweep and record stop at the first non-finite value."""
    _CHECK_FINITE[0] = bool(on)


zmul = kinds.HELPERS["zmul"][1]


def _terms(t, i):
    """Node i's terms (kinds.terms), its constants as NumPy floats (1 / 0 is
    inf, as in the kernel, not an exception)."""
    return [(nodes, {name: np.float64(c) for name, c in consts.items()})
            for nodes, consts in kinds.terms(_KIND[t.op[i]], t.a[i], t.b[i], t.args, t.pool)]


def _env(i, nodes, consts, V, G=None, T=None, H=None):
    """The values a template reads for one term of node i."""
    env = dict(consts, f=V[i])
    for name, j in nodes.items():
        env[name] = V[j]
        if T is not None:
            env["t" + name] = T[j]
    if G is not None:
        env["g"] = G[i]
    if H is not None:
        env["h"] = H[i]
    return env


def _value(t, i, env_of, sweep):
    """Node i's value (sweep "fwd") or tangent ("tan"): its template, summed
    over the terms of a listed kind."""
    ((_, used, fn),) = _SWEEPS[t.op[i]][sweep]
    total = 0.0 if _KIND[t.op[i]].summed else None
    for nodes, consts in _terms(t, i):
        env = env_of(nodes, consts)
        value = fn(*[env[n] for n in used])
        total = value if total is None else total + value
    return total


def forward_node(t, i, V):
    if _SWEEPS[t.op[i]]["fwd"]:  # (an input has none)
        V[i] = _value(t, i, lambda nodes, consts: _env(i, nodes, consts, V), "fwd")


def tangent_node(t, i, V, T):
    if _SWEEPS[t.op[i]]["tan"]:
        T[i] = _value(t, i, lambda nodes, consts: _env(i, nodes, consts, V, T=T), "tan")


def reverse_node(t, i, V, G, T=None, H=None):
    """Adjoints G of node i's operands; with tangents T, also the adjoints'
    tangents H (forward over reverse, for Hessian-vector products)."""
    sweeps = _SWEEPS[t.op[i]]
    if not sweeps["rev"]:
        return
    for nodes, consts in _terms(t, i):
        env = _env(i, nodes, consts, V, G, T, H)
        for W, sweep in ((G, "rev"), (H, "hvp")) if H is not None else ((G, "rev"),):
            for target, used, fn in sweeps[sweep]:
                W[nodes[target[1:]]] += fn(*[env[n] for n in used])


def operands(t, i):
    """The nodes node i reads (kinds.operands)."""
    return kinds.operands(_KIND[t.op[i]], t.a[i], t.b[i], t.args)


def mark(t, roots):
    """keep[i]: node i is a root or an operand, however indirect, of one."""
    keep = np.zeros(len(t.op), dtype=bool)
    keep[list(roots)] = True
    for i in range(len(t.op) - 1, -1, -1):
        if keep[i]:
            keep[operands(t, i)] = True
    return keep
