"""The twin's growing tape for eager recording (the kernel's recorder.pxi)."""

import threading

import numpy as np

from .. import kinds, ops
from ..compact import compact, frozen
from ..errors import TAPE_IN_USE, FasttapeError, NonFiniteError, TapeError
from ..validate import MAX_NODES
from .sweeps import _CHECK_FINITE, _KIND, forward_node, mark, reverse_node


class Recorder:
    """A growing tape in Python lists (the kernel's Recorder).

    Threads: as the kernel's, it refuses (FasttapeError) whatever would
    read or grow the tape while another thread runs a backward pass or a
    reclaim on it (they take a lock), and a Var released meanwhile waits.
    Unlike the kernel's, its recording steps are Python and not atomic: two
    threads recording on one twin tape at the same moment may interleave
    inside a step, which is why an eager tape is for one thread at a time."""

    RECLAIM_MIN = 4096
    RECLAIM_KEEP = 0.75  # reclaim only when more than a quarter of the nodes is garbage
    POOL_SLACK = 256  # constants no node uses are forgotten in batches of this many or more

    def __init__(self, reclaim=True):
        self.reclaim = reclaim
        self.op, self.a, self.b, self.val, self.adj = [], [], [], [], []
        self.live = []  # node -> has a live handle
        self.pool, self.args, self.pool_index = [], [], {}
        # (node, pool size) where a node needed more of the pool than those
        # below it: the first `owned` slots are what the claims cover.
        self.claims, self.owned = [], 0
        self.node_of, self.free_handles = [], []
        self.root, self.reclaim_at = -1, self.RECLAIM_MIN
        self._lock, self._busy = threading.Lock(), False  # (a backward pass or a reclaim)
        self._later = []  # handles released while busy

    def __len__(self):
        return len(self.op)

    # ----------------------------------------------------------- recording

    def _hold(self):
        """Take the tape for a backward pass or a reclaim."""
        if not self._lock.acquire(False):
            raise FasttapeError(TAPE_IN_USE)
        self._busy = True

    def _unhold(self):
        self._busy = False
        self._lock.release()

    def _check_free(self):
        if self._busy:
            raise FasttapeError(TAPE_IN_USE)

    def _node(self, h):
        if self._busy:
            raise FasttapeError(TAPE_IN_USE)
        if not (0 <= h < len(self.node_of)) or self.node_of[h] < 0:
            raise ValueError(f"fasttape: handle {h} is not a live node of this tape")
        return self.node_of[h]

    def _maybe_reclaim(self):
        # Before operands are looked up: reclaiming renumbers nodes.
        if self._busy:
            raise FasttapeError(TAPE_IN_USE)
        if self.reclaim and len(self.op) >= self.reclaim_at:
            self._reclaim()

    def _push(self, op, a, b, value=0.0):
        if len(self.op) >= MAX_NODES:
            raise TapeError(f"a tape holds at most {MAX_NODES} nodes")
        i = len(self.op)
        self.op.append(op)
        self.a.append(a)
        self.b.append(b)
        # NumPy scalars, so that 1 / 0 is inf as in the kernel, not an exception
        self.val.append(np.float64(value))  # an input's; any other node's is computed next
        self.adj.append(0.0)
        self.live.append(0)  # (its handle, next, counts 1)
        with np.errstate(all="ignore"):
            forward_node(self, i, self.val)
        self.val[i] = np.float64(self.val[i])
        if _CHECK_FINITE[0] and not np.isfinite(self.val[i]):
            value = self.val[i]
            self._pop()
            raise NonFiniteError(f"{ops.OPS[op].name} produced {value} (node {i} of "
                                 f"this tape)", node=i)
        return self._new_handle(i)

    def _new_handle(self, i):
        self.live[i] += 1  # (a node may have several handles)
        if self.free_handles:
            h = self.free_handles.pop()
            self.node_of[h] = i
            return h
        self.node_of.append(i)
        return len(self.node_of) - 1

    def _pop(self):
        """Drop the top node (its operand list is the last one)."""
        if kinds.listed(_KIND[self.op[-1]]):
            del self.args[self.a[-1]:]
        for column in (self.op, self.a, self.b, self.val, self.adj, self.live):
            column.pop()

    def _constant(self, c):
        key = np.float64(c).tobytes()  # by bits: keeps -0.0 and 0.0 apart
        slot = self.pool_index.get(key)
        if slot is None:
            slot = self.pool_index[key] = len(self.pool)
            self.pool.append(float(c))
        if slot >= self.owned:  # (also a slot found again that only nodes gone used)
            self._claim(slot + 1)
        return slot

    def _claim(self, size):
        """The node about to be recorded uses the pool's first size slots."""
        self.owned = size
        self.claims.append((len(self.op), size))

    def _fields(self, op, b_node, b_pool):
        """op must read node a, and in b a node, a constant or nothing."""
        kind = _KIND[op] if 0 <= op < ops.N_OPS else kinds.BY_NAME[kinds.INPUT]
        if (kind.a != "node" or (kind.b == "node") != b_node
                or (kind.b == "pool") != b_pool):
            raise ValueError(f"fasttape: opcode {op} is not of the kind asked for")

    def input(self, value):
        self._maybe_reclaim()
        return self._push(0, 0, 0, value)

    def const(self, value):
        self._maybe_reclaim()
        return self._push(1, 0, self._constant(value))

    def unary(self, op, h):
        self._maybe_reclaim()
        self._fields(op, False, False)
        return self._push(op, self._node(h), 0)

    def unary_c(self, op, h, c):
        self._maybe_reclaim()
        self._fields(op, False, True)
        return self._push(op, self._node(h), self._constant(c))

    def binary(self, op, ha, hb):
        self._maybe_reclaim()
        self._fields(op, True, False)
        return self._push(op, self._node(ha), self._node(hb))

    def nary(self, op, handles, coefs=None):
        """sum(handles); dot(handles, coefs) with coefs handles too, or floats
        (dotc)."""
        kind = _KIND[op] if 0 <= op < ops.N_OPS else None
        if kind is None or not kinds.listed(kind):
            raise ValueError(f"fasttape: opcode {op} has no operand list")
        if kind.fixed and len(handles) != kind.fixed:
            raise ValueError("fasttape: where takes a condition and two values")
        self._maybe_reclaim()
        nodes = [self._node(h) for h in handles]
        count = len(nodes)
        if (kind.refs == 2 or kind.coefs) and len(coefs) != count:
            raise ValueError("fasttape: dot of operand lists of different lengths")
        if kind.refs == 2:
            nodes += [self._node(h) for h in coefs]
        elif kind.coefs:
            coefs = [float(c) for c in coefs]  # (all checked before any is recorded)
            nodes.append(len(self.pool))
            self.pool.extend(coefs)
            self._claim(len(self.pool))
        start = len(self.args)
        self.args.extend(nodes)
        return self._push(op, start, count)

    # ----------------------------------------------------------- reading

    def value(self, h):
        return float(self.val[self._node(h)])

    def node(self, h):
        return self._node(h)

    def hold(self, i):
        """A new handle of node i (read in place by a derivative recorded on
        this tape): the node stays while the handle lives."""
        if not 0 <= i < len(self.op):
            raise ValueError(f"fasttape: node {i} is not on this tape")
        return self._new_handle(i)

    def grad(self, h):
        i = self._node(h)
        return self.adj[i] if i <= self.root else 0.0

    def release(self, h):
        """A Var is gone. Dead nodes on top of the tape go at once: nothing
        below can refer to them, as operands only point backwards; and with
        them, when there are enough, the constants no node left uses. (While
        the tape is busy the handle waits for the next release.)"""
        if self._busy:
            self._later.append(h)
            return
        while self._later:
            self._unlink(self._later.pop())
        if 0 <= h < len(self.node_of) and self.node_of[h] >= 0:
            self.live[self.node_of[h]] -= 1
            self.node_of[h] = -1
            self.free_handles.append(h)
            while self.op and not self.live[-1]:
                self._pop()
            self.root = min(self.root, len(self.op) - 1)
            claims = self.claims
            if claims and claims[-1][0] >= len(self.op):  # (a node that needed more is gone)
                self._trim_pool()

    def _unlink(self, h):
        if 0 <= h < len(self.node_of) and self.node_of[h] >= 0:
            self.live[self.node_of[h]] -= 1
            self.node_of[h] = -1
            self.free_handles.append(h)

    def _trim_pool(self):
        """Forget the pool's slots no node uses, when they are more than
        POOL_SLACK."""
        claims = self.claims
        while claims and claims[-1][0] >= len(self.op):  # (made by nodes now gone)
            claims.pop()
        self.owned = used = claims[-1][1] if claims else 0
        if len(self.pool) - used > self.POOL_SLACK:
            self._forget_pool(used)

    def _forget_pool(self, used):
        """Drop the pool's slots from `used` on (no node uses them) and their
        index entries."""
        if len(self.pool_index) < len(self.pool) - used:  # (dot coefficients, which have none)
            self.pool_index = {k: v for k, v in self.pool_index.items() if v < used}
        else:
            for s in range(used, len(self.pool)):
                key = np.float64(self.pool[s]).tobytes()
                if self.pool_index.get(key) == s:
                    del self.pool_index[key]
        del self.pool[used:]

    def backward(self, h):
        """Adjoints of every node up to h's, of h's value."""
        root = self._node(h)
        self._hold()
        try:
            self.adj[: root + 1] = [0.0] * (root + 1)
            self.adj[root] = 1.0
            with np.errstate(all="ignore"):
                for i in range(root, -1, -1):
                    if self.adj[i] != 0.0:
                        reverse_node(self, i, self.val, self.adj)
            self.adj[: root + 1] = [float(g) for g in self.adj[: root + 1]]
            self.root = root
        finally:
            self._unhold()

    # ----------------------------------------------------------- shrinking

    def arrays(self):
        """Copies of the tape's arrays: op, a, b, pool, args, values."""
        self._check_free()
        return self._arrays()

    def _arrays(self):
        return (np.array(self.op, np.uint8), np.array(self.a, np.int32),
                np.array(self.b, np.int32), np.array(self.pool, np.float64),
                np.array(self.args, np.int32), np.array(self.val, np.float64))

    def live_nodes(self):
        self._check_free()
        return self._live_nodes()

    def _live_nodes(self):
        return np.array([i for i in self.node_of if i >= 0], dtype=np.int64)

    def mark(self, roots):
        self._check_free()
        return mark(self, roots)

    def _reclaim(self):
        """Drop the nodes no live Var can reach, renumbering the rest (and
        the constants with them). When nearly all are reachable (a trace,
        say) copying the tape would buy little: it is left as it is until it
        has doubled."""
        self._hold()
        try:
            self._compact()
        finally:
            self._unhold()

    def _compact(self):
        keep = mark(self, self._live_nodes())
        if keep.sum() > self.RECLAIM_KEEP * len(self.op):
            self.reclaim_at = max(self.RECLAIM_MIN, 2 * len(self.op))
            return
        op, a, b, pool, args, val = self._arrays()
        adj = np.array(self.adj)
        op, a, b, pool, args, remap = compact(op, a, b, pool, args, keep)
        self.op, self.a, self.b = op.tolist(), a.tolist(), b.tolist()
        self.pool, self.args = pool.tolist(), args.tolist()
        self.val, self.adj = val[keep].tolist(), adj[keep].tolist()
        self.pool_index = {}
        for slot, c in enumerate(self.pool):
            self.pool_index.setdefault(np.float64(c).tobytes(), slot)
        self.claims = _pool_claims(op, a, b, args)
        self.owned = self.claims[-1][1] if self.claims else 0
        self.node_of = [int(remap[i]) if i >= 0 else -1 for i in self.node_of]
        self.live = [0] * len(self.op)
        for i in self.node_of:
            if i >= 0:
                self.live[i] += 1
        kept_below = np.flatnonzero(keep[: self.root + 1]) if self.root >= 0 else []
        self.root = int(remap[kept_below[-1]]) if len(kept_below) else -1
        self.reclaim_at = max(self.RECLAIM_MIN, 2 * len(self.op))

    def freeze(self, inputs, outputs, guards=()):
        """A Program of what the outputs and guards need (see compact.frozen)."""
        from ..twin import Program  # (the twin's Program imports this module)
        return Program(*frozen(self, inputs, outputs, guards))


def _pool_claims(op, a, b, args):
    """Recorder.claims of a tape: (node, pool size it and the nodes below
    it use) wherever that grows."""
    kind = ops.KIND_CODE[op]
    end = np.where(kinds.B_POOL[kind], b.astype(np.int64) + 1, 0)
    for i in np.flatnonzero(kinds.COEFS[kind]):
        end[i] = kinds.pool_slots(_KIND[op[i]], a[i], b[i], args)[1]
    if not len(end):
        return []
    end = np.maximum.accumulate(end)
    grows = np.flatnonzero(np.diff(end, prepend=0) > 0)
    return [(int(i), int(end[i])) for i in grows]
