"""Passes between recording and sweeping: a traced tape is rewritten once,
when it is frozen, so that how it was written matters less to the sweep.

Each pass is a function of the tape's arrays, vectorized with NumPy (tapes
hold millions of nodes), and can be turned off (``ft.set_passes``, or the
environment variable ``FASTTAPE_PASSES``: ``auto``, ``all``, ``none`` or a
comma list; ``auto``, the default, runs them all on tapes not already in
runs, as array code records them):

    fold   IEEE-exact constant folding: a node whose operands are all
           constants becomes a constant, for ops whose result NumPy gives to
           the bit as the sweep does (+ - * /, sqrt, comparisons ...; not
           exp or pow), and only where it is finite (check_finite reports
           the node as recorded).
    cse    common subexpressions: nodes of one op with the same operands and
           the same constant bits become one (operands of add and mul sorted).
    sums   chains of adds, each intermediate result read only by the next
           add, become one n-ary sum, in the chain's order (x + 0.0 may
           start a chain: 0.0 + x is the same number); adds that sweep in
           runs (elementwise code on arrays) stay. A sum adds from 0.0,
           so the one difference is the sign of a zero: where every term is
           -0.0, the chain gives -0.0 and the sum +0.0.
    dots   sums whose terms are products read nowhere else become dot nodes
           (dotc where every product is by a number): the same sums of the
           same products, which the kernel sweeps as dot layers.
    schedule  independent nodes reordered so that like ones form runs, where
           that makes fewer (a Python loop over elements: exp, *, + for each
           in turn becomes a run of exps, of products, of sums).

Dead code needs no pass of its own: freezing keeps only what the outputs
and guards read (compact.frozen), and each pass drops the nodes it leaves
unread. Inputs, outputs and guards stay, and guards fire as before.
"""

import os

import numpy as np

from . import kinds, ops
from .compact import _ragged, compact

PASSES = ("fold", "cse", "sums", "dots", "schedule")
_K = ops.KIND_CODE
_KIND = {name: kinds.BY_NAME[name].code for name in (kinds.INPUT, kinds.CONST, kinds.GUARD,
                                                      kinds.SUM)}
_CONST, _ADD, _ADD_C, _MUL, _MUL_C = (ops.CODE[n] for n in ("const", "add", "add_c", "mul",
                                                            "mul_c"))
_COMMUTATIVE = (_ADD, _MUL)
# Ops whose NumPy formula (the twin's) gives the kernel's bits: correctly
# rounded IEEE operations and exact ones. (Not maximum and minimum: NumPy's
# and the kernel's pick differently between -0.0 and 0.0.)
_EXACT = ("add", "sub", "mul", "div", "lt", "le", "eq", "ne", "add_c", "rsub_c", "mul_c",
          "div_c", "rdiv_c", "lt_c", "le_c", "gt_c", "ge_c", "eq_c", "ne_c", "neg", "sqrt",
          "abs", "square", "reciprocal", "floor", "ceil", "copysign")
_ROUNDS = 32  # at most, for folding and merging nested expressions


def _parse(text):
    text = text.strip().lower()
    if text in ("", "auto"):
        return AUTO
    if text == "all":
        return PASSES
    if text == "none":
        return ()
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    _check(names)
    return names


def _check(names):
    bad = [n for n in names if n not in PASSES]
    if bad:
        raise ValueError(f"unknown pass {bad[0]!r}; the passes are {', '.join(PASSES)}")


AUTO = "auto"  # every pass, on tapes not already in runs
_setting = [_parse(os.environ.get("FASTTAPE_PASSES", AUTO))]


def enabled():
    """The names of the passes that run on tapes frozen from now on."""
    return PASSES if _setting[0] == AUTO else _setting[0]


class set_passes:
    """Choose the passes that rewrite a traced tape before its first sweep.

    ``ft.set_passes("auto")`` (the setting at import) runs every pass on
    tapes traced from now on that are not already in runs: scalar code
    (Python loops over elements, say), not array code, which records its
    fast form already and would pay for the passes in tracing time.
    ``ft.set_passes("all")`` runs every pass on every tape,
    ``ft.set_passes("none")`` none, and
    ``ft.set_passes(("cse", "dots"))`` those named; ``with
    ft.set_passes("none"):`` sets them for the block and restores the
    previous setting after. The environment variable ``FASTTAPE_PASSES``
    (``auto``, ``all``, ``none`` or a comma list) gives the setting at import. No pass changes a value (but the sign of a zero sum, see
    ``sums``) or a derivative beyond rounding; docs/api.md lists what each
    pass does.

    Parameters
    ----------
    names : "auto", "all", "none", or iterable of str
        Of ``fold``, ``cse``, ``sums``, ``dots``, ``schedule``.

    Raises
    ------
    ValueError
        An unknown pass name.
    """

    def __init__(self, names="auto"):
        if isinstance(names, str):
            names = _parse(names)
        else:
            names = tuple(names)
            _check(names)
        self.previous = enabled()
        self._restore = _setting[0]
        _setting[0] = AUTO if names == AUTO else tuple(n for n in PASSES if n in names)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _setting[0] = self._restore
        return False


# ------------------------------------------------------------------ the tape


class _Tape:
    """A tape's arrays while passes rewrite it; `live` marks the nodes kept."""

    def __init__(self, op, a, b, pool, args, n_inputs, outputs):
        self.op = np.array(op, dtype=np.uint8)
        self.a, self.b = np.array(a, dtype=np.int64), np.array(b, dtype=np.int64)
        self.pool, self.args = np.array(pool, dtype=np.float64), np.array(args, dtype=np.int64)
        self.n_inputs, self.outputs = n_inputs, np.array(outputs, dtype=np.int64)
        self.live = np.ones(len(self.op), dtype=bool)

    def kind(self):
        return _K[self.op]

    def add_pool(self, values):
        """Append constants; return the slot of the first."""
        start = len(self.pool)
        self.pool = np.concatenate([self.pool, np.asarray(values, dtype=np.float64)])
        return start

    def add_list(self, refs):
        """Append an operand list; return where it starts."""
        start = len(self.args)
        self.args = np.concatenate([self.args, np.asarray(refs, dtype=np.int64)])
        return start

    def list_refs(self, nodes):
        """(positions in args, owner index into nodes) of the operand lists of
        the listed nodes `nodes`."""
        return _ragged(self.a[nodes], kinds.REFS[self.kind()[nodes]] * self.b[nodes])

    def references(self):
        """(reader, operand) of every operand reference of the live nodes."""
        kind, live = self.kind(), self.live
        ra = np.flatnonzero(kinds.A_NODE[kind] & live)
        rb = np.flatnonzero(kinds.B_NODE[kind] & live)
        listed = np.flatnonzero(kinds.LISTED[kind] & live)
        pos, owner = self.list_refs(listed)
        return (np.concatenate([ra, rb, listed[owner]]),
                np.concatenate([self.a[ra], self.b[rb], self.args[pos]]))

    def uses(self):
        """Per node, how many times live nodes and the outputs read it."""
        _, operand = self.references()
        return (np.bincount(operand, minlength=len(self.op))
                + np.bincount(self.outputs, minlength=len(self.op)))

    def redirect(self, rep):
        """Every live operand reference and output i becomes rep[i]."""
        kind, live = self.kind(), self.live
        ua, ub = kinds.A_NODE[kind] & live, kinds.B_NODE[kind] & live
        self.a[ua], self.b[ub] = rep[self.a[ua]], rep[self.b[ub]]
        pos, _ = self.list_refs(np.flatnonzero(kinds.LISTED[kind] & live))
        self.args[pos] = rep[self.args[pos]]
        self.outputs = rep[self.outputs]

    def drop_unread(self):
        """Drop nodes no live node, output or guard reads (a few rounds: the
        passes leave short dead chains at most)."""
        root = np.zeros(len(self.op), dtype=bool)
        root[: self.n_inputs] = True
        root[self.kind() == _KIND[kinds.GUARD]] = True
        for _ in range(_ROUNDS):
            dead = self.live & ~root & (self.uses() == 0)
            if not dead.any():
                return
            self.live &= ~dead

    def arrays(self):
        """Program(...)'s arguments for the live nodes."""
        op, a, b, pool, args, remap = compact(self.op, self.a, self.b, self.pool, self.args,
                                              self.live)
        return op, a, b, pool, args, self.n_inputs, remap[self.outputs].astype(np.int32)


# ------------------------------------------------------------------ the passes


def fold(t):
    """Nodes of exact ops whose operands are all constants become constants."""
    exact = np.zeros(ops.N_OPS, dtype=bool)
    exact[[ops.CODE[n] for n in _EXACT]] = True
    for _ in range(_ROUNDS):
        kind, is_const = t.kind(), t.op == _CONST
        ok = exact[t.op] & t.live
        ok &= ~kinds.A_NODE[kind] | is_const[np.where(kinds.A_NODE[kind], t.a, 0)]
        ok &= ~kinds.B_NODE[kind] | is_const[np.where(kinds.B_NODE[kind], t.b, 0)]
        nodes = np.flatnonzero(ok)
        if not len(nodes):
            return
        values = _evaluate(t, nodes)
        nodes, values = nodes[np.isfinite(values)], values[np.isfinite(values)]
        if not len(nodes):
            return
        t.b[nodes] = t.add_pool(values) + np.arange(len(nodes))
        t.op[nodes], t.a[nodes] = _CONST, 0


def _evaluate(t, nodes):
    """The values of `nodes` (operands all constants) by the op table's formulas."""
    out = np.empty(len(nodes))
    for code in np.unique(t.op[nodes]):
        sel = t.op[nodes] == code
        idx, kind = nodes[sel], ops.KIND_OF[code]
        value = lambda field: t.pool[t.b[field[idx]]]  # an operand's constant
        x = value(t.a) if kind.a == "node" else 0.0
        y = value(t.b) if kind.b == "node" else 0.0
        c = t.pool[t.b[idx]] if kind.b == "pool" else 0.0
        with np.errstate(all="ignore"):
            out[sel] = np.broadcast_to(ops.compile_numpy(ops.OPS[code].fwd, "x, y, c")(x, y, c),
                                       len(idx))
    return out


def cse(t):
    """Merge nodes that compute the same thing from the same operands. After
    a first round over every node, a round looks again only at the nodes
    that read (as merged) a node the last round merged or merged into: no
    other node's key changed."""
    n = len(t.op)
    rep, look = np.arange(n), t.live.copy()
    reader, operand = t.references()
    for _ in range(_ROUNDS * 4):
        found = _duplicates(t, rep, look)
        if not len(found):
            break
        before = rep.copy()
        rep[found[0]] = found[1]
        while True:  # (a canonical node may itself have been merged since)
            deeper = rep[rep]
            if np.array_equal(deeper, rep):
                break
            rep = deeper
        moved = np.zeros(n, dtype=bool)
        changed = np.flatnonzero(rep != before)
        moved[changed] = moved[rep[changed]] = True
        look = np.zeros(n, dtype=bool)
        look[reader[moved[rep[operand]]]] = True
    t.redirect(rep)
    t.live &= rep == np.arange(n)


def _duplicates(t, rep, look):
    """(duplicates, their first equal) among the live nodes, reading each
    operand as rep of it: of the nodes `look` marks, and the nodes equal to them."""
    kind = t.kind()
    bits = np.append(t.pool, 0.0).view(np.int64)  # (never empty)
    cand = t.live & (kind != _KIND[kinds.INPUT]) & (kind != _KIND[kinds.GUARD])
    cand &= (rep == np.arange(len(t.op))) & look
    plain = np.flatnonzero(cand & ~kinds.LISTED[kind])
    k = kind[plain]
    ka = np.where(kinds.A_NODE[k], rep[t.a[plain]], 0)
    kb = np.where(kinds.B_NODE[k], rep[t.b[plain]],
                  np.where(kinds.B_POOL[k], bits[np.where(kinds.B_POOL[k], t.b[plain], 0)], 0))
    swap = np.isin(t.op[plain], _COMMUTATIVE) & (ka > kb)
    ka, kb = np.where(swap, kb, ka), np.where(swap, ka, kb)
    k1 = (t.op[plain].astype(np.int64) << 32) | ka
    order = np.lexsort((plain, kb, k1))
    same = (k1[order][1:] == k1[order][:-1]) & (kb[order][1:] == kb[order][:-1])
    dups, firsts = _groups(plain[order], same)
    ld, lf = _listed_duplicates(t, rep, np.flatnonzero(cand & kinds.LISTED[kind]))
    return (np.concatenate([dups, ld]), np.concatenate([firsts, lf])) if len(dups) + len(ld) \
        else ()


def _groups(sorted_nodes, same):
    """For runs of equal keys in sorted order: (every node but the first, the
    run's first node)."""
    if not len(sorted_nodes):
        return sorted_nodes, sorted_nodes
    start = np.concatenate([[True], ~same])
    first = sorted_nodes[np.flatnonzero(start)][np.cumsum(start) - 1]
    return sorted_nodes[~start], first[~start]


def _listed_duplicates(t, rep, nodes):
    """The same for listed nodes: equal operand lists (and constants). Lists
    are grouped by a hash, and only lists whose hashes match are compared."""
    h = _list_hashes(t, rep, nodes)
    k1 = (t.op[nodes].astype(np.int64) << 32) | t.b[nodes]
    order = np.lexsort((nodes, h, k1))
    same = (k1[order][1:] == k1[order][:-1]) & (h[order][1:] == h[order][:-1])
    dups, firsts = _groups(nodes[order], same)
    equal = [_list_key(t, rep, d) == _list_key(t, rep, f) for d, f in zip(dups, firsts)]
    return dups[equal], firsts[equal]


def _list_hashes(t, rep, nodes):
    """Per listed node, a hash of its operands (as rep of them) and constants."""
    pos, owner = t.list_refs(nodes)
    j = (pos - t.a[nodes][owner]).astype(np.uint64)
    with np.errstate(over="ignore"):
        mix = (j + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15) | np.uint64(1)
        terms = rep[t.args[pos]].astype(np.uint64) * mix
        coefs = np.flatnonzero(kinds.COEFS[t.kind()[nodes]])
        if len(coefs):  # dotc: its constants' bits too
            first = t.args[t.a[nodes[coefs]] + t.b[nodes[coefs]]]
            cpos, cown = _ragged(first, t.b[nodes[coefs]])
            cj = (cpos - first[cown]).astype(np.uint64)
            cmix = (cj + np.uint64(1)) * np.uint64(0xC2B2AE3D27D4EB4F) | np.uint64(1)
            owner = np.concatenate([owner, coefs[cown]])
            terms = np.concatenate([terms, t.pool[cpos].view(np.uint64) * cmix])
        h = np.zeros(len(nodes), dtype=np.uint64)
        np.add.at(h, owner, terms)
    return h.view(np.int64)


def _list_key(t, rep, i):
    kd = kinds.KINDS[_K[t.op[i]]]
    start, count = int(t.a[i]), int(t.b[i])
    key = (int(t.op[i]), tuple(rep[t.args[start:start + kd.refs * count]].tolist()))
    if kd.coefs:
        first, stop = kinds.pool_slots(kd, start, count, t.args)
        key += (t.pool[first:stop].tobytes(),)
    return key


def sums(t):
    """Chains of adds, each link read only by the next, into n-ary sums.
    Adds that sweep in runs (elementwise code on arrays) stay: a run is one
    loop over all its nodes, which many small sums would not be."""
    uses, n, in_run = t.uses(), len(t.op), _in_runs(t)
    is_zero = np.zeros(n, dtype=bool)  # x + 0.0, which may start a chain
    adc = np.flatnonzero((t.op == _ADD_C) & t.live)
    is_zero[adc] = t.pool[t.b[adc]].view(np.int64) == 0
    link = t.live & (uses == 1) & ((t.op == _ADD) | is_zero) & ~in_run
    link[t.outputs] = False
    adds = np.flatnonzero((t.op == _ADD) & t.live & ~in_run)
    prev = np.full(n, -1)  # the link before each add of a chain
    prev[adds] = np.where(link[t.a[adds]], t.a[adds], np.where(link[t.b[adds]], t.b[adds], -1))
    members = np.flatnonzero(prev >= 0)
    if not len(members):
        return
    nxt = np.arange(n)
    nxt[prev[members]] = members
    end = nxt.copy()
    while True:  # pointer jumping: each member's chain end
        deeper = end[end]
        if np.array_equal(deeper, end):
            break
        end = deeper
    chain = np.union1d(members, prev[members])  # every node of every chain
    head = chain[prev[chain] < 0]  # first links: an add (two terms), or x + 0.0 (one)
    nterms = np.where(np.isin(chain, head) & (t.op[chain] == _ADD), 2, 1)
    order = np.lexsort((chain, end[chain]))
    chain, nterms = chain[order], nterms[order]
    ends, per_end = np.unique(end[chain], return_counts=True)
    totals = np.add.reduceat(nterms, np.concatenate([[0], np.cumsum(per_end)[:-1]]))
    keep = totals >= 3
    ends, totals = ends[keep], totals[keep]
    take = np.isin(end[chain], ends)
    chain, nterms = chain[take], nterms[take]
    # Each link's terms in order: a head's operand(s), then each link's other one.
    is_head = prev[chain] < 0
    other = np.where(t.a[chain] == prev[chain], t.b[chain], t.a[chain])
    first = np.where(is_head, t.a[chain], other)
    terms = np.empty(int(nterms.sum()), dtype=np.int64)
    at = np.cumsum(nterms) - nterms
    terms[at] = first
    two = nterms == 2
    terms[at[two] + 1] = t.b[chain[two]]
    start = t.add_list(terms)
    t.a[ends] = start + np.cumsum(totals) - totals
    t.b[ends] = totals
    t.op[ends] = ops.CODE["sum"]
    t.live[chain] = False
    t.live[ends] = True


def _joins(t):
    """Per node j > 0, does it join node j - 1's run (the kernel's
    run_continues)? The same op, each operand one further and before both."""
    kind, j = t.kind(), np.arange(1, len(t.op))
    kj = kind[j]
    pair = (t.op[j] == t.op[j - 1]) & ~kinds.LISTED[kj] & (kj != _KIND[kinds.INPUT])
    pair &= ~kinds.A_NODE[kj] | ((t.a[j] == t.a[j - 1] + 1) & (t.a[j] < j - 1))
    pair &= ~kinds.B_NODE[kj] | ((t.b[j] == t.b[j - 1] + 1) & (t.b[j] < j - 1))
    pair &= ~kinds.B_POOL[kj] | (t.b[j] == t.b[j - 1])
    return pair


def _in_runs(t):
    """Nodes that share a run with a neighbour."""
    j = np.flatnonzero(_joins(t)) + 1
    in_run = np.zeros(len(t.op), dtype=bool)
    in_run[j] = in_run[j - 1] = True
    return in_run


def dots(t):
    """Sums of products read nowhere else into dot (or dotc) nodes."""
    once = (t.uses() == 1) & t.live
    once[t.outputs] = False
    nodes = np.flatnonzero((t.kind() == _KIND[kinds.SUM]) & t.live & (t.b > 0))
    pos, owner = t.list_refs(nodes)
    term = t.args[pos]
    for code, target in ((_MUL, "dot"), (_MUL_C, "dotc")):
        bad = np.bincount(owner, weights=~(once[term] & (t.op[term] == code)),
                          minlength=len(nodes))
        take = np.flatnonzero(bad == 0)
        if len(take):
            ok = np.isin(owner, take)
            _to_dots(t, nodes[take], term[ok], np.searchsorted(take, owner[ok]),
                     target == "dotc")


def _to_dots(t, nodes, products, owner, by_numbers):
    """Make the sums `nodes` dots of their terms `products` (owner: index into
    nodes, in list order): lists [x..., y...], or [x..., the constants' slot]."""
    m = t.b[nodes]
    width = m + 1 if by_numbers else 2 * m
    base = np.cumsum(width) - width
    j = np.arange(len(products)) - (np.cumsum(m) - m)[owner]  # place in its list
    lists = np.empty(int(width.sum()), dtype=np.int64)
    lists[base[owner] + j] = t.a[products]
    if by_numbers:
        lists[base + m] = t.add_pool(t.pool[t.b[products]]) + np.cumsum(m) - m
    else:
        lists[base[owner] + m[owner] + j] = t.b[products]
    t.a[nodes] = t.add_list(lists) + base
    t.op[nodes] = ops.CODE["dotc" if by_numbers else "dot"]
    t.live[products] = False


def schedule(t):
    """Reorder independent nodes so that like ones form runs: by depth (the
    longest path from an input), then op, constant slot and operands, guards
    last in their order. Kept only where it makes fewer runs; tapes deeper
    than _DEPTH (long scalar programs, whose like nodes are seldom
    independent) are left as they are."""
    n, kind = len(t.op), t.kind()
    before = _runs(t)
    if before * _GROUPED <= n:  # already in runs (array code): little to gain, much to pay
        return
    level = _levels(t)
    if level is None:
        return
    level[: t.n_inputs] = -1  # inputs stay first
    guard = kind == _KIND[kinds.GUARD]
    level[guard] = level.max() + 1
    slot = np.where(kinds.B_POOL[kind] & ~guard, t.b, -1)
    ka = np.where(kinds.A_NODE[kind] & ~guard, t.a, -1)
    kb = np.where(kinds.B_NODE[kind], t.b, -1)
    order = np.lexsort((np.arange(n), kb, ka, slot, t.op, level))
    new = np.empty(n, dtype=np.int64)
    new[order] = np.arange(n)
    old = (t.op, t.a, t.b, t.args, t.outputs, t.live)
    pos, _ = t.list_refs(np.flatnonzero(kinds.LISTED[kind]))
    t.args = t.args.copy()
    t.args[pos] = new[t.args[pos]]
    t.op, t.a, t.b, t.live = t.op[order], t.a[order], t.b[order], t.live[order]
    k = t.kind()
    t.a = np.where(kinds.A_NODE[k], new[np.where(kinds.A_NODE[k], t.a, 0)], t.a)
    t.b = np.where(kinds.B_NODE[k], new[np.where(kinds.B_NODE[k], t.b, 0)], t.b)
    t.outputs = new[t.outputs]
    if _runs(t) >= before:  # nothing gained: keep the order as traced
        t.op, t.a, t.b, t.args, t.outputs, t.live = old


_DEPTH = 64
_GROUPED = 4  # nodes per run, on average, past which a tape is left as it is


def _levels(t):
    """Per node, the longest path from an input to it, or None past _DEPTH."""
    reader, operand = t.references()
    level = np.zeros(len(t.op), dtype=np.int64)
    for _ in range(_DEPTH):
        deeper = np.zeros_like(level)
        np.maximum.at(deeper, reader, level[operand] + 1)
        if np.array_equal(deeper, level):
            return level
        level = deeper
    return None


def _runs(t):
    """About how many runs the kernel finds in a tape of live nodes only."""
    return len(t.op) - int(_joins(t).sum())


_RUN = {"fold": fold, "cse": cse, "sums": sums, "dots": dots, "schedule": schedule}


def optimize(op, a, b, pool, args, n_inputs, outputs, passes=None):
    """Program(...)'s arguments after the passes (default: those enabled)."""
    auto = passes is None and _setting[0] == AUTO
    passes = enabled() if passes is None else passes
    if not passes or len(op) == n_inputs:
        return op, a, b, pool, args, n_inputs, outputs
    t = _Tape(op, a, b, pool, args, n_inputs, outputs)
    if auto and _runs(t) * _GROUPED <= len(op):  # array code: in runs already
        return op, a, b, pool, args, n_inputs, outputs
    for name in PASSES:
        if name in passes and name != "schedule":
            _RUN[name](t)
    t.drop_unread()
    if "schedule" in passes:
        t = _Tape(*t.arrays())  # (on the dropped nodes' neighbours)
        schedule(t)
    return t.arrays()
