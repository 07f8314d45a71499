"""The kind table: what a node's fields hold, and how each sweep treats it.

A node is (op, a, b). Its op's kind says what a and b hold:

    a    "node"   an operand node          "list"   where its operand list starts in args
    b    "node"   a second operand node    "pool"   its constant's slot in the pool
         "count"  the length of its list

and gives the lane templates of the four sweeps, in the op table's text form
(``ops.py``), over the names

    x, y         the operand nodes a and b (or a list's three entries x, y, z)
    u, v         term j of a list: args[a + j] and, for dot, args[a + b + j]
    c, k         the node's constant; term j's constant (dotc: pool[args[a + b] + j])
    f, g, h      the node's value, adjoint and the adjoint's tangent
    tx, tu ...   an operand's tangent

A template is a list of (target, expression): ``f`` or ``t`` (the node's value
or tangent), ``gx`` (add to x's adjoint), ``hx`` (add to its tangent); the
forward-over-reverse sweep does ``rev``, then ``hvp`` for the tangents. The
elementwise kinds write them with the op's formulas in braces ({fwd} {d0}
...); the listed kinds (sum, dot, dotc) sum ``f`` and ``t`` over their terms.
From this table come the twin's sweeps (``twin.py`` evaluates the text with
NumPy), the kernel's per-kind cases (``_kernel/codegen.py`` writes them), and every
walk over operands (``operands`` below; validation, compaction, marking,
sparsity, listings and files).

Like ops.py, this module imports nothing from fasttape, so the build can
load it on its own.
"""

import re
from collections import namedtuple

import numpy as np

Kind = namedtuple("Kind", "code name a b refs coefs fixed summed names fwd rev tan hvp sym doc")
# refs: node references in a list per unit of its count (dot: two lists);
# coefs: the list ends with the pool slot of count constants (dotc);
# fixed: the count every node of the kind has (where: 3); summed: f and t
# are sums over the list's terms; names: the operand names a term binds;
# sym: how a listing writes the node ({args} for a list kind).

INPUT, CONST, UNARY, CONSTANT, BINARY, GUARD = "input", "const", "unary", "unary_c", "binary", "guard"
SUM, DOT, DOTC, SELECT = "sum", "dot", "dotc", "select"

# The elementwise templates; the kernel's tangent and forward-over-reverse
# loops read a zero tangent as contributing nothing too (see zmul).
_UNARY = dict(
    fwd=[("f", "{fwd}")],
    rev=[("gx", "zmul({d0}, g)")],
    tan=[("t", "zmul({d0}, tx)")],
    hvp=[("hx", "zmul({d0}, h) + zmul(zmul({d00}, tx), g)")])
_BINARY = dict(
    fwd=[("f", "{fwd}")],
    rev=[("gx", "zmul({d0}, g)"), ("gy", "zmul({d1}, g)")],
    tan=[("t", "zmul({d0}, tx) + zmul({d1}, ty)")],
    hvp=[("hx", "zmul({d0}, h) + zmul(zmul({d00}, tx) + zmul({d01}, ty), g)"),
         ("hy", "zmul({d1}, h) + zmul(zmul({d01}, tx) + zmul({d11}, ty), g)")])
_CONSTANT = dict(fwd=[("f", "{fwd}")], rev=[], tan=[("t", "0.0")], hvp=[])  # const, guard


def _kind(name, a="", b="", refs=0, coefs=False, fixed=0, summed=False, names=(),
          fwd=(), rev=(), tan=(), hvp=(), sym="", doc=""):
    return (name, a, b, refs, coefs, fixed, summed, tuple(names), list(fwd), list(rev),
            list(tan), list(hvp), sym, doc)


_ROWS = [
    _kind(INPUT, doc="a value the caller supplies"),
    _kind(CONST, b="pool", **_CONSTANT, doc="f(c): a constant"),
    _kind(UNARY, a="node", names="x", **_UNARY, doc="f(x)"),
    _kind(CONSTANT, a="node", b="pool", names="x", **_UNARY, doc="f(x, c): x and a number"),
    _kind(BINARY, a="node", b="node", names="xy", **_BINARY, doc="f(x, y)"),
    _kind(GUARD, a="node", b="pool", names="x", **_CONSTANT,
          doc="like unary_c, but no derivative: f = 1 where a recorded branch goes another way"),
    _kind(SUM, a="list", b="count", refs=1, summed=True, names="u",
          fwd=[("f", "u")], rev=[("gu", "g")], tan=[("t", "tu")],
          hvp=[("hu", "h")], sym="sum({u})", doc="u[0] + u[1] + ..."),
    _kind(DOT, a="list", b="count", refs=2, summed=True, names="uv",
          fwd=[("f", "u * v")], rev=[("gu", "zmul(v, g)"), ("gv", "zmul(u, g)")],
          tan=[("t", "tu * v + u * tv")],
          hvp=[("hu", "zmul(tv, g) + zmul(v, h)"), ("hv", "zmul(tu, g) + zmul(u, h)")],
          sym="dot([{u}], [{v}])", doc="u[0] * v[0] + u[1] * v[1] + ..."),
    _kind(DOTC, a="list", b="count", refs=1, coefs=True, summed=True, names="u",
          fwd=[("f", "k * u")], rev=[("gu", "zmul(k, g)")], tan=[("t", "k * tu")],
          hvp=[("hu", "zmul(k, h)")],
          sym="dot([{u}], [{k}])", doc="k[0] * u[0] + k[1] * u[1] + ..., k constants"),
    # Only the branch taken receives anything (not even a zero times an
    # infinite adjoint): sel, not a product.
    _kind(SELECT, a="list", b="count", refs=1, fixed=3, names="xyz",
          fwd=[("f", "sel(x, y, z)")], rev=[("gy", "sel(x, g, 0.0)"), ("gz", "sel(x, 0.0, g)")],
          tan=[("t", "sel(x, ty, tz)")],
          hvp=[("hy", "sel(x, h, 0.0)"), ("hz", "sel(x, 0.0, h)")],
          sym="where({x}, {y}, {z})", doc="y where x is not 0, else z"),
]

KINDS = tuple(Kind(code, *row) for code, row in enumerate(_ROWS))
BY_NAME = {kind.name: kind for kind in KINDS}
N_KINDS = len(KINDS)


def listed(kind):
    """Are kind's operands a list in args (rather than the fields a, b)?"""
    return kind.a == "list"


def elementwise(kind):
    """Does kind take its formulas from its op's row?"""
    return kind.name != INPUT and not listed(kind)


def list_length(kind, count):
    """Entries of args a node of kind with this count uses (refs, then the
    constants' slot)."""
    return kind.refs * count + (1 if kind.coefs else 0)


def mask(test):
    """Per kind code, test(kind), as a bool array (NumPy lookups by kind)."""
    return np.array([bool(test(kind)) for kind in KINDS])


# Per kind code (NumPy lookups over a whole tape): which fields are what.
A_NODE = mask(lambda k: k.a == "node")
B_NODE = mask(lambda k: k.b == "node")
B_POOL = mask(lambda k: k.b == "pool")
LISTED = mask(listed)
COEFS = mask(lambda k: k.coefs)
REFS = np.array([k.refs for k in KINDS], dtype=np.int64)


def terms(kind, a, b, args, pool):
    """The terms of a node of kind with fields a, b: a list of
    ({name: node}, {constant name: value}), one term unless summed."""
    if kind.name == INPUT:
        return []
    if not listed(kind):
        nodes = {"x": a, "y": b} if kind.b == "node" else ({"x": a} if kind.a == "node" else {})
        return [(nodes, {"c": pool[b]} if kind.b == "pool" else {})]
    if not kind.summed:  # named entries (where: x, y, z)
        return [({name: int(args[a + j]) for j, name in enumerate(kind.names)}, {})]
    out = []
    for j in range(b):
        nodes = {"u": int(args[a + j])}
        if kind.refs == 2:
            nodes["v"] = int(args[a + b + j])
        out.append((nodes, {"k": pool[args[a + b] + j]} if kind.coefs else {}))
    return out


def operands(kind, a, b, args):
    """The node indices a node of kind reads, in order, with repeats."""
    if listed(kind):
        return [int(r) for r in args[a:a + kind.refs * b]]
    return [int(a)] * (kind.a == "node") + [int(b)] * (kind.b == "node")


def pool_slots(kind, a, b, args):
    """(first, stop) of the pool slots a node of kind reads, or None."""
    if kind.b == "pool":
        return int(b), int(b) + 1
    if kind.coefs:
        start = int(args[a + b])
        return start, start + int(b)
    return None


def expand(kind, op, sweep):
    """kind's template for sweep ("fwd", "rev", "tan", "hvp") with op's
    formulas in place: [(target, expression), ...]."""
    fields = op._asdict() if op is not None else {}
    return [(target, expr.format(**fields)) for target, expr in getattr(kind, sweep)]


def second_pairs(kind):
    """Operand pairs (p, q) whose second derivative kind's hvp template
    reads: hp reading tq (for an elementwise kind, as its op's row allows)."""
    return [(target[1:], t[1:]) for target, expr in kind.hvp
            for t in re.findall(r"\bt[a-z]\b", expr)]


def receivers(kind):
    """The operand names whose adjoints a node of kind adds to."""
    return [target[1:] for target, _ in kind.rev]


# Helpers the templates use: (Cython source, NumPy twin). zmul(d, g) is
# d * g, but exactly 0 where g is 0: a zero adjoint (or tangent) contributes
# nothing, so a NaN or infinite partial in a branch not taken does not
# poison a gradient, nor one by an operand that does not move.
HELPERS = {
    "zmul": ("return d * g if g != 0.0 else 0.0",
             lambda d, g: np.where(np.asarray(g) != 0.0, np.asarray(d) * g, 0.0)),
    "sel": ("return y if x != 0.0 else z",
            lambda x, y, z: np.where(np.asarray(x) != 0.0, y, z)),
}
HELPER_ARGS = {"zmul": "d, g", "sel": "x, y, z"}
