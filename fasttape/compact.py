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
    new_pool = [pool[used]]
    n_pool = int(used.sum())

    new_args = []
    n_args = 0
    for i in np.flatnonzero(kinds.LISTED[kind]):  # listed nodes are few; each has many operands
        k = kinds.KINDS[kind[i]]
        start, count = int(old_a[i]), int(b[i])
        lst = remap[args[start:start + k.refs * count]].astype(np.int32)
        if k.coefs:
            first, stop = kinds.pool_slots(k, start, count, args)
            new_pool.append(pool[first:stop])
            lst = np.append(lst, np.int32(n_pool))
            n_pool += count
        a[i] = n_args
        new_args.append(lst)
        n_args += len(lst)
    pool = np.concatenate(new_pool) if new_pool else np.zeros(0)
    args = np.concatenate(new_args).astype(np.int32) if new_args else np.zeros(0, np.int32)
    return op, a.astype(np.int32), b.astype(np.int32), pool, args, remap


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
