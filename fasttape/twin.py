"""The pure-Python twin of the kernel: the same sweeps over the same arrays.

Written plainly, node by node, with NumPy over the lanes; every formula is
the op table's own text. It is the reference the kernel is tested against,
and what runs when the kernel is not built.
"""

import numbers
import re
import threading

import numpy as np

from . import kinds, ops
from .compact import compact, frozen
from .errors import TAPE_IN_USE, FasttapeError, GuardError, NonFiniteError, TapeError
from .validate import MAX_NODES, node_indices, validate

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


class Program:
    """A validated, immutable tape and its sweeps (the kernel's Program)."""

    def __init__(self, op, a, b, pool, args, n_inputs, outputs):
        (self.op, self.a, self.b, self.pool, self.args, self.n_inputs,
         self.outputs) = validate(op, a, b, pool, args, n_inputs, outputs)
        self.n, self.n_outputs = len(self.op), len(self.outputs)
        self.guards = np.flatnonzero(self.op == ops.CODE["guard"]).astype(np.int32)

    def run(self, shared, shared_nodes, batch, batch_nodes, B, seed=None,
            shared_tangent=None, batch_tangent=None, hvp=False, wanted=None, layout=None):
        """Same contract as the kernel's Program.run (every adjoint is set;
        a layout's node lists are the ones given)."""
        if layout is not None and layout.program is not self:
            raise ValueError("the layout is another program's")
        shared = np.asarray(shared, dtype=float)
        batch = np.asarray(batch, dtype=float)
        sn = node_indices("shared_nodes", shared_nodes, self.n_inputs).astype(np.int64)
        bn = node_indices("batch_nodes", batch_nodes, self.n_inputs).astype(np.int64)
        self._check_inputs(shared, sn, batch, bn, B)
        if hvp and (seed is None or shared_tangent is None):
            raise ValueError("hvp needs a seed and tangents")
        if seed is not None:
            seed = self._lanes(seed, B, self.n_outputs, "seed")
        T = None
        if shared_tangent is not None:
            st = np.asarray(shared_tangent, dtype=float)
            if st.shape != (len(sn),):
                raise ValueError(f"shared_tangent has shape {st.shape}, expected ({len(sn)},)")
            T = np.zeros((self.n, B))
            T[sn] = st[:, None]
            T[bn] = self._lanes(batch_tangent, B, len(bn), "batch_tangent").T
        V = np.zeros((self.n, B))
        V[sn] = shared[:, None]
        V[bn] = batch.T
        with np.errstate(all="ignore"):
            for i in range(self.n_inputs, self.n):
                forward_node(self, i, V)
        self._check(V)
        out = V[self.outputs].T.copy()
        gs = gb = tout = hs = hb = None
        with np.errstate(all="ignore"):
            if T is not None:
                for i in range(self.n_inputs, self.n):
                    tangent_node(self, i, V, T)
                tout = T[self.outputs].T.copy()
            if seed is not None:
                G = np.zeros((self.n, B))
                np.add.at(G, self.outputs, seed.T)
                H = np.zeros((self.n, B)) if hvp else None
                for i in range(self.n - 1, self.n_inputs - 1, -1):
                    reverse_node(self, i, V, G, T if hvp else None, H)
                gs, gb = G[sn].sum(axis=1), G[bn].T.copy()
                if hvp:
                    hs, hb = H[sn].sum(axis=1), H[bn].T.copy()
        result = (out, gs, gb, tout)
        return result + (hs, hb) if hvp else result

    plan_nbytes = 0  # (the kernel's runs and sweep plans: the twin keeps none)

    def layout(self, shared_nodes, batch_nodes, wanted=None, args=None):
        """Same contract as the kernel's Program.layout."""
        return Layout(self, shared_nodes, batch_nodes, wanted, args)

    def _check(self, V):
        """Guards that missed; with check_finite, the first non-finite node."""
        if _CHECK_FINITE[0]:
            bad = np.flatnonzero(~np.isfinite(V).all(axis=1))
            if len(bad):
                raise NonFiniteError(f"node {bad[0]} is not finite", node=int(bad[0]))
        if len(self.guards):
            missed = V[self.guards] != 0.0  # (guards, lanes)
            if missed.any():
                lanes = np.flatnonzero(missed.any(axis=0))
                first = self.guards[np.argmax(missed[:, lanes[0]])]
                raise GuardError(f"guard at node {first} took the other branch",
                                 node=int(first), lanes=lanes, lanes_of=V.shape[1])

    def call1(self, args, grad):
        """Same contract as the kernel's Program.call1."""
        if len(args) != self.n_inputs or (grad and self.n_outputs < 1):
            return None
        if any(type(x) not in (float, int) for x in args):
            return None
        out, gs = self.call_flat(np.array(args, dtype=float), grad)
        return out.tolist(), (gs.tolist() if grad else None)

    def call_flat(self, x, grad):
        """Same contract as the kernel's Program.call_flat."""
        x = np.asarray(x, dtype=float)
        if x.shape != (self.n_inputs,):
            raise ValueError(f"expected {self.n_inputs} input values, got {x.shape}")
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


class Layout:
    """The kernel's Layout: a call's split of the inputs, kept. Here it only
    keeps the nodes and argument shapes; value_and_grad runs run()."""

    def __init__(self, program, shared_nodes, batch_nodes, wanted=None, args=None):
        n_in = program.n_inputs
        self.program = program
        self.sn = node_indices("shared_nodes", shared_nodes, n_in).copy()
        self.bn = node_indices("batch_nodes", batch_nodes, n_in).copy()
        self.wanted = None if wanted is None else node_indices("wanted", wanted, n_in)
        self.ns, self.nb = len(self.sn), len(self.bn)
        nodes = np.concatenate([self.sn, self.bn]).astype(np.int64)
        if len(nodes) != n_in or not np.array_equal(np.sort(nodes), np.arange(n_in)):
            raise ValueError(f"expected each of the {n_in} input nodes once")
        if self.wanted is not None and len(self.wanted) and \
                (self.wanted.min() < 0 or self.wanted.max() >= n_in):
            raise ValueError(f"wanted holds an index outside the {n_in} input nodes")
        self.args = None
        if args is not None and program.n_outputs >= 1:
            self.args = [(tuple(shape), bool(batched), bool(w)) for shape, batched, w in args]

    def value_and_grad(self, args):
        """Same contract as the kernel's Layout.value_and_grad."""
        if self.args is None or len(args) != len(self.args):
            return None
        B = None
        args = list(args)
        for k, (arg, (shape, batched, _)) in enumerate(zip(args, self.args)):
            if type(arg) is float and not batched and shape == ():
                args[k] = np.array(arg)
                continue
            if type(arg) is not np.ndarray or arg.dtype != np.float64 or \
                    not arg.flags.c_contiguous:
                return None
            if arg.shape[1 if batched else 0:] != shape or arg.ndim != len(shape) + batched:
                return None
            if batched:
                if B is not None and arg.shape[0] != B:
                    return None
                B = arg.shape[0]
        one = B is None  # one sample: every argument shared
        if one and len(self.bn):
            return None
        B = 1 if one else B
        shared = [a.reshape(-1) for a, spec in zip(args, self.args) if not spec[1]]
        batch = [a.reshape(B, -1) for a, spec in zip(args, self.args) if spec[1]]
        out, gs, gb, _ = self.program.run(
            np.concatenate(shared) if shared else np.zeros(0), self.sn,
            np.concatenate(batch, axis=1) if batch else np.zeros((B, 0)), self.bn, B,
            seed=np.ones((B, self.program.n_outputs)) *
            (np.arange(self.program.n_outputs) == 0), wanted=self.wanted)
        grads, s, b = [], 0, 0
        for shape, batched, wanted in self.args:
            size = int(np.prod(shape))
            if wanted:
                if batched:
                    grads.append(gb[:, b:b + size].reshape((B,) + shape))
                else:
                    g = gs[s:s + size]
                    grads.append(float(g[0]) if shape == () else g.reshape(shape))
            s, b = (s, b + size) if batched else (s + size, b)
        return (float(out[0, 0]) if one else out[:, 0]), tuple(grads)


# ------------------------------------------------------------------ Var

# The recording half of ft.Var (var.py derives Var and Cond from VarBase):
# the kernel's VarBase in Python, operator for operator.

_bound = {}  # var.py's Var and Cond, its thread state and current_recorder


def bind_var_classes(var, cond, state, current):
    """The classes operators return (Var and Cond, subclasses of VarBase),
    and where Var(x) finds its tape: state.stack[-1], or current()."""
    if not (issubclass(var, VarBase) and issubclass(cond, var)):
        raise TypeError("fasttape: Var must derive from VarBase, Cond from Var")
    _bound.update(Var=var, Cond=cond, state=state, current=current)


def new_var(cls, rec, h):
    """A cls (Var or Cond) for handle h of rec, which it now owns."""
    if cls is not _bound["Var"] and cls is not _bound["Cond"]:
        raise TypeError("fasttape: new_var makes a Var or a Cond")
    v = object.__new__(cls)
    v._rec = rec
    v._h = h
    return v


def handles_of(rec, variables):
    """The handles of Vars (VarBase instances) all on rec, as a list."""
    if any(v._rec is not rec for v in variables):
        raise TapeError("fasttape: these Vars live on different tapes")
    return [v._h for v in variables]


_PLAIN = (float, int)


def _is_number(x):
    return isinstance(x, numbers.Real) and not isinstance(x, VarBase)


class VarBase:
    """The operators of ft.Var; see var.py for the rest."""

    __slots__ = ("_rec", "_h")

    def __init__(self, value):
        if value.__class__ not in _PLAIN and not _is_number(value):
            raise TypeError(f"ft.Var takes a real number, got {type(value).__name__}")
        try:
            rec = _bound["state"].stack[-1]
        except AttributeError:
            rec = _bound["current"]()
        h = rec.input(value)
        self._release()  # (a second __init__)
        self._rec, self._h = rec, h

    def __del__(self):
        self._release()

    def __reduce_ex__(self, protocol):
        # A copy would share the handle, released twice (as the kernel's C type).
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")

    def _release(self):
        rec = getattr(self, "_rec", None)
        self._rec = None
        if rec is not None:
            try:
                rec.release(self._h)
            except Exception:  # interpreter shutdown
                pass

    def _unary(self, op):
        return new_var(_bound["Var"], self._rec, self._rec.unary(op, self._h))

    def _with_const(self, op, c):
        return new_var(_bound["Var"], self._rec, self._rec.unary_c(op, self._h, float(c)))

    def _same_tape(self, other):
        if other._rec is not self._rec:
            raise TapeError("fasttape: these Vars live on different tapes")
        return other._h

    def __pos__(self):
        return self

    # == and != compare values too (never identity), so a Var is not hashable.
    __hash__ = None


def _operator(method, op, op_c, how):
    """The operator method of a row of the operator table (ops.OPERATORS): a
    Var records op, a number op_c (negated where the row says); a
    comparison gives a Cond."""
    how = how.split()
    op, op_c = ops.CODE.get(op), ops.CODE.get(op_c)

    def unary(self):
        return new_var(_bound["Var"], self._rec, self._rec.unary(op, self._h))

    def binary(self, other):
        rec, cls = self._rec, _bound["Cond" if "compare" in how else "Var"]
        if isinstance(other, VarBase) and "reflected" not in how:
            h = self._same_tape(other)  # (other's handle, on this tape)
            ha, hb = (h, self._h) if "swap" in how else (self._h, h)
            return new_var(cls, rec, rec.binary(op, ha, hb))
        if other.__class__ in _PLAIN or _is_number(other):
            c = float(other)
            return new_var(cls, rec, rec.unary_c(op_c, self._h, -c if "negate" in how else c))
        return NotImplemented

    fn = unary if "unary" in how else binary
    fn.__name__ = f"__{method}__"
    return fn


for _row in ops.OPERATORS:
    setattr(VarBase, f"__{_row[0]}__", _operator(*_row))
