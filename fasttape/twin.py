"""The pure-Python twin of the kernel: the same sweeps over the same arrays.

Written plainly, node by node, with NumPy over the lanes; every formula is
the op table's own text. It is the reference the kernel is tested against,
and what runs when the kernel is not built.
"""

import numpy as np

from . import ops
from .compact import compact, frozen
from .errors import TapeError
from .validate import MAX_NODES, validate

_KIND = [op.kind for op in ops.OPS]
_FWD = [ops.compile_numpy(op.fwd, "x, y, c") for op in ops.OPS]
_D0 = [ops.compile_numpy(op.d0, "x, y, c, f") for op in ops.OPS]
_D1 = [ops.compile_numpy(op.d1, "x, y, c, f") for op in ops.OPS]
_ELEMENTWISE = (ops.CONST, ops.UNARY, ops.CONSTANT, ops.BINARY)


def _operands(t, i, V):
    """(x, y, c) of an elementwise node, zeros for the fields it lacks."""
    kind, a, b = _KIND[t.op[i]], t.a[i], t.b[i]
    x = V[a] if kind in (ops.UNARY, ops.CONSTANT, ops.BINARY) else 0.0
    y = V[b] if kind == ops.BINARY else 0.0
    c = t.pool[b] if kind in (ops.CONST, ops.CONSTANT) else 0.0
    return x, y, c


def _nary(t, i):
    """(operands, second operands or constants) of an n-ary node."""
    kind, s, n = _KIND[t.op[i]], t.a[i], t.b[i]
    first = t.args[s:s + n]
    if kind == ops.DOT:
        return first, t.args[s + n:s + 2 * n]
    if kind == ops.DOTC:
        off = t.args[s + n]
        return first, t.pool[off:off + n]
    return first, None


def forward_node(t, i, V):
    kind = _KIND[t.op[i]]
    if kind == ops.INPUT:
        return
    if kind in _ELEMENTWISE:
        V[i] = _FWD[t.op[i]](*_operands(t, i, V))
        return
    first, second = _nary(t, i)
    total = np.zeros_like(V[i])
    for j, u in enumerate(first):
        if kind == ops.SUM:
            total = total + V[u]
        elif kind == ops.DOT:
            total = total + V[u] * V[second[j]]
        else:
            total = total + second[j] * V[u]
    V[i] = total


def reverse_node(t, i, V, G):
    kind, o = _KIND[t.op[i]], t.op[i]
    if kind in (ops.INPUT, ops.CONST):
        return
    if kind in _ELEMENTWISE:
        x, y, c = _operands(t, i, V)
        G[t.a[i]] += _D0[o](x, y, c, V[i]) * G[i]
        if kind == ops.BINARY:
            G[t.b[i]] += _D1[o](x, y, c, V[i]) * G[i]
        return
    first, second = _nary(t, i)
    for j, u in enumerate(first):
        if kind == ops.SUM:
            G[u] += G[i]
        elif kind == ops.DOT:
            G[u] += V[second[j]] * G[i]
            G[second[j]] += V[u] * G[i]
        else:
            G[u] += second[j] * G[i]


def tangent_node(t, i, V, T):
    kind, o = _KIND[t.op[i]], t.op[i]
    if kind == ops.INPUT:
        return
    if kind == ops.CONST:
        T[i] = 0.0
        return
    if kind in _ELEMENTWISE:
        x, y, c = _operands(t, i, V)
        T[i] = _D0[o](x, y, c, V[i]) * T[t.a[i]]
        if kind == ops.BINARY:
            T[i] = T[i] + _D1[o](x, y, c, V[i]) * T[t.b[i]]
        return
    first, second = _nary(t, i)
    total = np.zeros_like(T[i])
    for j, u in enumerate(first):
        if kind == ops.SUM:
            total = total + T[u]
        elif kind == ops.DOT:
            total = total + T[u] * V[second[j]] + V[u] * T[second[j]]
        else:
            total = total + second[j] * T[u]
    T[i] = total


def mark(t, roots):
    """keep[i]: node i is a root or an operand, however indirect, of one."""
    keep = np.zeros(len(t.op), dtype=bool)
    keep[list(roots)] = True
    for i in range(len(t.op) - 1, -1, -1):
        if not keep[i]:
            continue
        kind = _KIND[t.op[i]]
        if kind in (ops.UNARY, ops.CONSTANT, ops.BINARY):
            keep[t.a[i]] = True
        if kind == ops.BINARY:
            keep[t.b[i]] = True
        if kind in ops.NARY:
            first, second = _nary(t, i)
            keep[list(first)] = True
            if kind == ops.DOT:
                keep[list(second)] = True
    return keep


class Program:
    """A validated, immutable tape and its sweeps (the kernel's Program)."""

    def __init__(self, op, a, b, pool, args, n_inputs, outputs):
        (self.op, self.a, self.b, self.pool, self.args, self.n_inputs,
         self.outputs) = validate(op, a, b, pool, args, n_inputs, outputs)
        self.n, self.n_outputs = len(self.op), len(self.outputs)

    def run(self, shared, shared_nodes, batch, batch_nodes, B,
            seed=None, shared_tangent=None, batch_tangent=None):
        """Same contract as the kernel's Program.run."""
        shared = np.asarray(shared, dtype=float)
        batch = np.asarray(batch, dtype=float)
        sn, bn = np.asarray(shared_nodes, np.int64), np.asarray(batch_nodes, np.int64)
        self._check_inputs(shared, sn, batch, bn, B)
        V = np.zeros((self.n, B))
        V[sn] = shared[:, None]
        V[bn] = batch.T
        with np.errstate(all="ignore"):
            for i in range(self.n_inputs, self.n):
                forward_node(self, i, V)
            out = V[self.outputs].T.copy()
            gs = gb = tout = None
            if seed is not None:
                seed = self._lanes(seed, B, self.n_outputs, "seed")
                G = np.zeros((self.n, B))
                np.add.at(G, self.outputs, seed.T)
                for i in range(self.n - 1, self.n_inputs - 1, -1):
                    reverse_node(self, i, V, G)
                gs, gb = G[sn].sum(axis=1), G[bn].T.copy()
            if shared_tangent is not None:
                st = np.asarray(shared_tangent, dtype=float)
                if st.shape != (len(sn),):
                    raise ValueError(f"shared_tangent has {st.shape} values for {len(sn)} inputs")
                T = np.zeros((self.n, B))
                T[sn] = st[:, None]
                T[bn] = self._lanes(batch_tangent, B, len(bn), "batch_tangent").T
                for i in range(self.n_inputs, self.n):
                    tangent_node(self, i, V, T)
                tout = T[self.outputs].T.copy()
        return out, gs, gb, tout

    def call1(self, args, grad):
        """Same contract as the kernel's Program.call1."""
        if len(args) != self.n_inputs or (grad and self.n_outputs < 1):
            return None
        if any(type(x) not in (float, int) for x in args):
            return None
        seed = np.eye(1, self.n_outputs) if grad else None
        out, gs, _, _ = self.run(np.array(args, dtype=float), np.arange(self.n_inputs),
                                 np.zeros((1, 0)), np.zeros(0, np.int64), 1, seed=seed)
        return out[0].tolist(), (gs.tolist() if grad else None)

    def call_flat(self, x, grad):
        """Same contract as the kernel's Program.call_flat."""
        x = np.asarray(x, dtype=float)
        if x.shape != (self.n_inputs,):
            raise ValueError(f"expected {self.n_inputs} input values, got {x.shape[0]}")
        if grad and self.n_outputs < 1:
            raise ValueError("a gradient needs an output")
        seed = np.eye(1, self.n_outputs) if grad else None
        out, gs, _, _ = self.run(x, np.arange(self.n_inputs), np.zeros((1, 0)),
                                 np.zeros(0, np.int64), 1, seed=seed)
        return out[0], gs

    def _check_inputs(self, shared, sn, batch, bn, B):
        if shared.shape != sn.shape:
            raise ValueError(f"{shared.shape} shared values for {sn.shape} shared inputs")
        if batch.shape != (B, len(bn)):
            raise ValueError(f"batch has shape {batch.shape}, expected {(B, len(bn))}")
        nodes = np.concatenate([sn, bn])
        if sorted(nodes.tolist()) != list(range(self.n_inputs)):
            raise ValueError(f"expected each of the {self.n_inputs} input nodes once")

    @staticmethod
    def _lanes(arr, B, width, name):
        arr = np.asarray(arr, dtype=float)
        if arr.shape != (B, width):
            raise ValueError(f"{name} has shape {arr.shape}, expected {(B, width)}")
        return arr


class Recorder:
    """A growing tape in Python lists (the kernel's Recorder)."""

    RECLAIM_MIN = 4096

    def __init__(self, reclaim=True):
        self.reclaim = reclaim
        self.op, self.a, self.b, self.val, self.adj = [], [], [], [], []
        self.live = []  # node -> has a live handle
        self.pool, self.args, self.pool_index = [], [], {}
        self.node_of, self.free_handles = [], []
        self.root, self.reclaim_at = -1, self.RECLAIM_MIN

    def __len__(self):
        return len(self.op)

    # ----------------------------------------------------------- recording

    def _node(self, h):
        if not (0 <= h < len(self.node_of)) or self.node_of[h] < 0:
            raise ValueError(f"fasttape: handle {h} is not a live node of this tape")
        return self.node_of[h]

    def _maybe_reclaim(self):
        # Before operands are looked up: reclaiming renumbers nodes.
        if self.reclaim and len(self.op) >= self.reclaim_at:
            self._reclaim()

    def _push(self, op, a, b):
        if len(self.op) >= MAX_NODES:
            raise TapeError(f"a tape holds at most {MAX_NODES} nodes")
        i = len(self.op)
        self.op.append(op)
        self.a.append(a)
        self.b.append(b)
        self.val.append(0.0)
        self.adj.append(0.0)
        self.live.append(True)
        with np.errstate(all="ignore"):
            forward_node(self, i, self.val)
        self.val[i] = float(self.val[i])
        if self.free_handles:
            h = self.free_handles.pop()
            self.node_of[h] = i
            return h
        self.node_of.append(i)
        return len(self.node_of) - 1

    def _constant(self, c):
        key = np.float64(c).tobytes()  # by bits: keeps -0.0 and 0.0 apart
        if key not in self.pool_index:
            self.pool_index[key] = len(self.pool)
            self.pool.append(float(c))
        return self.pool_index[key]

    def _kind(self, op, kind):
        if not (0 <= op < ops.N_OPS) or _KIND[op] != kind:
            raise ValueError(f"fasttape: opcode {op} is not of the kind asked for")

    def input(self, value):
        self._maybe_reclaim()
        h = self._push(0, 0, 0)
        self.val[self.node_of[h]] = float(value)
        return h

    def const(self, value):
        self._maybe_reclaim()
        return self._push(1, 0, self._constant(value))

    def unary(self, op, h):
        self._maybe_reclaim()
        self._kind(op, ops.UNARY)
        return self._push(op, self._node(h), 0)

    def unary_c(self, op, h, c):
        self._maybe_reclaim()
        self._kind(op, ops.CONSTANT)
        return self._push(op, self._node(h), self._constant(c))

    def binary(self, op, ha, hb):
        self._maybe_reclaim()
        self._kind(op, ops.BINARY)
        return self._push(op, self._node(ha), self._node(hb))

    def nary(self, op, handles, coefs=None):
        """sum(handles); dot(handles, coefs) with coefs handles too, or floats
        (dotc)."""
        kind = _KIND[op] if 0 <= op < ops.N_OPS else None
        if kind not in ops.NARY:
            raise ValueError(f"fasttape: opcode {op} is not n-ary")
        self._maybe_reclaim()
        nodes = [self._node(h) for h in handles]
        if kind != ops.SUM and len(coefs) != len(nodes):
            raise ValueError("fasttape: dot of operand lists of different lengths")
        start = len(self.args)
        self.args.extend(nodes)
        if kind == ops.DOT:
            self.args.extend(self._node(h) for h in coefs)
        elif kind == ops.DOTC:
            self.args.append(len(self.pool))
            self.pool.extend(float(c) for c in coefs)
        return self._push(op, start, len(nodes))

    # ----------------------------------------------------------- reading

    def value(self, h):
        return self.val[self._node(h)]

    def node(self, h):
        return self._node(h)

    def grad(self, h):
        i = self._node(h)
        return self.adj[i] if i <= self.root else 0.0

    def release(self, h):
        """A Var is gone. Dead nodes on top of the tape go at once: nothing
        below can refer to them, as operands only point backwards."""
        if 0 <= h < len(self.node_of) and self.node_of[h] >= 0:
            self.live[self.node_of[h]] = False
            self.node_of[h] = -1
            self.free_handles.append(h)
            while self.op and not self.live[-1]:
                if _KIND[self.op[-1]] in ops.NARY:  # its operand list is the last one
                    del self.args[self.a[-1]:]
                for column in (self.op, self.a, self.b, self.val, self.adj, self.live):
                    column.pop()
            self.root = min(self.root, len(self.op) - 1)

    def backward(self, h):
        """Adjoints of every node up to h's, of h's value."""
        root = self._node(h)
        self.adj[: root + 1] = [0.0] * (root + 1)
        self.adj[root] = 1.0
        with np.errstate(all="ignore"):
            for i in range(root, -1, -1):
                if self.adj[i] != 0.0:
                    reverse_node(self, i, self.val, self.adj)
        self.adj = [float(g) for g in self.adj]
        self.root = root

    # ----------------------------------------------------------- shrinking

    def arrays(self):
        """Copies of the tape's arrays: op, a, b, pool, args, values."""
        return (np.array(self.op, np.uint8), np.array(self.a, np.int32),
                np.array(self.b, np.int32), np.array(self.pool, np.float64),
                np.array(self.args, np.int32), np.array(self.val, np.float64))

    def live_nodes(self):
        return np.array([i for i in self.node_of if i >= 0], dtype=np.int64)

    def mark(self, roots):
        return mark(self, roots)

    def _reclaim(self):
        """Drop the nodes no live Var can reach, renumbering the rest."""
        keep = self.mark(self.live_nodes())
        op, a, b, pool, args, val = self.arrays()
        adj = np.array(self.adj)
        op, a, b, pool, args, remap = compact(op, a, b, pool, args, keep)
        self.op, self.a, self.b = op.tolist(), a.tolist(), b.tolist()
        self.pool, self.args = pool.tolist(), args.tolist()
        self.val, self.adj = val[keep].tolist(), adj[keep].tolist()
        self.pool_index = {}
        for slot, c in enumerate(self.pool):
            self.pool_index.setdefault(np.float64(c).tobytes(), slot)
        self.node_of = [int(remap[i]) if i >= 0 else -1 for i in self.node_of]
        self.live = [False] * len(self.op)
        for i in self.node_of:
            if i >= 0:
                self.live[i] = True
        kept_below = np.flatnonzero(keep[: self.root + 1]) if self.root >= 0 else []
        self.root = int(remap[kept_below[-1]]) if len(kept_below) else -1
        self.reclaim_at = max(self.RECLAIM_MIN, 2 * len(self.op))

    def freeze(self, inputs, outputs):
        """A Program of what the outputs need (see compact.frozen)."""
        return Program(*frozen(self, inputs, outputs))
