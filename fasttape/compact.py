"""Dropping nodes from a tape: shared by reclaiming and freezing, both backends.

Given which nodes to keep (a mark made by walking operands backwards from the
nodes still wanted), renumber the kept nodes in order, rewrite operand
indices, and keep only the constants and operand lists they use.
"""

import numpy as np

from . import kinds, ops


def compact(op, a, b, pool, args, keep):
    """Return (op, a, b, pool, args, remap) for the kept nodes.

    remap[i] is node i's new index, or -1 where node i is dropped.
    """
    keep = np.asarray(keep, dtype=bool)
    remap = np.cumsum(keep, dtype=np.int64) - 1
    remap[~keep] = -1
    op, a, b = op[keep].copy(), a[keep].copy(), b[keep].copy()
    old_a = a.copy()
    kind = ops.KIND_CODE[op]

    uses_a = kinds.A_NODE[kind]
    a[uses_a] = remap[a[uses_a]]
    uses_b = kinds.B_NODE[kind]
    b[uses_b] = remap[b[uses_b]]

    # Constants of one-constant nodes: keep the used entries, in order.
    one = kinds.B_POOL[kind]
    used = np.zeros(len(pool), dtype=bool)  # (np.unique would sort all of b)
    used[b[one]] = True
    b[one] = (np.cumsum(used) - 1)[b[one]]
    n_pool = int(used.sum())

    # Operand lists, in node order, and after the constants above those of
    # the nodes with a list of them (dotc), in node order too.
    listed = np.flatnonzero(kinds.LISTED[kind])
    start, count = old_a[listed].astype(np.int64), b[listed].astype(np.int64)
    refs, coefs = kinds.REFS[kind[listed]] * count, kinds.COEFS[kind[listed]]
    width = refs + coefs
    a[listed] = base = np.cumsum(width) - width
    args_out = np.empty(int(width.sum()), dtype=np.int32)
    pos, owner = _ragged(start, refs)
    args_out[base[owner] + pos - start[owner]] = remap[args[pos]]
    c = np.flatnonzero(coefs)
    first = args[start[c] + count[c]].astype(np.int64)
    cpos, _ = _ragged(first, count[c])
    args_out[base[c] + refs[c]] = n_pool + np.cumsum(count[c]) - count[c]
    pool = np.concatenate([pool[used], pool[cpos]])
    return op, a.astype(np.int32), b.astype(np.int32), pool, args_out, remap


def _ragged(starts, counts):
    """Positions starts[k] + 0 .. counts[k]-1, and k for each."""
    owner = np.repeat(np.arange(len(starts)), counts)
    offset = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts,
                                                                       counts)
    return starts[owner] + offset, owner


def frozen(rec, inputs, outputs, guards=()):
    """Arguments of Program(...) for what a recorder's outputs and guards need,
    after the enabled passes (compiler.py).

    The traced inputs become nodes 0.. in order (they were recorded first);
    any other input, a Var made inside the traced function, becomes a constant.
    """
    from .compiler import optimize  # (the passes between recording and sweeping)
    from .errors import TapeError

    in_nodes = [rec.node(h) for h in inputs]
    out_nodes = [rec.node(h) for h in outputs]
    if in_nodes != list(range(len(in_nodes))):
        raise TapeError("the traced inputs must be the tape's first nodes")
    keep = rec.mark(out_nodes + [rec.node(h) for h in guards])
    keep[: len(in_nodes)] = True
    op, a, b, pool, args, val = rec.arrays()
    stray = np.flatnonzero(op == ops.CODE["input"])
    stray = stray[stray >= len(in_nodes)]
    op[stray] = ops.CODE["const"]
    b[stray] = len(pool) + np.arange(len(stray))
    pool = np.concatenate([pool, val[stray]])
    op, a, b, pool, args, remap = compact(op, a, b, pool, args, keep)
    return optimize(op, a, b, pool, args, len(in_nodes), remap[out_nodes])
