"""Which second derivatives can be non-zero, and Hessians from few HVPs.

The Hessian is a sum over nodes of the node's adjoint times its local second
partials, each spread over the inputs its operands depend on. So H[j, k] can
be non-zero only if some node has a non-zero second partial in operands a, b
with j among a's inputs and k among b's (the op table says which second
partials are identically zero). Columns that share no non-zero row can be
found together: one Hessian-vector product with their sum as the vector,
each entry read back from the one column of its colour that has it
(Curtis, Powell and Reid's grouping). A tridiagonal Hessian, Rosenbrock's,
needs three products however large it is.
"""

import numpy as np

from . import kinds, ops

_ZERO = "0.0"


def _second_partials(op):
    """Operand pairs (x, y) whose second partial is not identically 0."""
    return [pair for pair, d in ((("x", "x"), op.d00), (("x", "y"), op.d01),
                                 (("y", "y"), op.d11)) if d and d != _ZERO]


_PAIRS = [_second_partials(op) for op in ops.OPS]


def hessian_pattern(program):
    """Set of (j, k) input pairs, j <= k, where the Hessian may be non-zero."""
    deps = [frozenset((i,)) for i in range(program.n_inputs)]
    pattern = set()
    empty = frozenset()

    def add(left, right):
        for j in left:
            for k in right:
                pattern.add((j, k) if j <= k else (k, j))

    for i in range(program.n_inputs, program.n):
        op, kind = ops.OPS[program.op[i]], ops.KIND_OF[program.op[i]]
        flows = set(kinds.receivers(kind))  # operands whose derivatives flow on
        node_deps = []
        for nodes, _ in kinds.terms(kind, int(program.a[i]), int(program.b[i]),
                                    program.args, program.pool):
            for x, y in _PAIRS[op.code] if kinds.elementwise(kind) else kinds.second_pairs(kind):
                add(deps[nodes[x]], deps[nodes[y]])
            node_deps += [deps[j] for name, j in nodes.items() if name in flows]
        deps.append(frozenset().union(*node_deps))
    return pattern


def colour_columns(pattern, cols):
    """Colours for the columns cols (input indices) such that two columns of
    one colour never share a non-zero row; returns (colour per column,
    number of colours, rows and columns (positions in cols) to recover)."""
    where = {c: r for r, c in enumerate(cols)}
    rows = [[] for _ in cols]  # rows[r]: positions s with H[cols[r], cols[s]] possibly != 0
    for j, k in pattern:
        if j in where and k in where:
            r, s = where[j], where[k]
            rows[r].append(s)
            if r != s:
                rows[s].append(r)
    colour = np.full(len(cols), -1)
    for s in range(len(cols)):
        taken = {colour[t] for r in rows[s] for t in rows[r] if colour[t] >= 0}
        c = 0
        while c in taken:
            c += 1
        colour[s] = c
    r = np.array([r for r in range(len(cols)) for _ in rows[r]], dtype=np.int64)
    s = np.array([s for r in range(len(cols)) for s in rows[r]], dtype=np.int64)
    return colour, int(colour.max()) + 1 if len(cols) else 0, (r, s)
