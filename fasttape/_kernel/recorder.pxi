# The recorder: a growing tape in C buffers, for eager use and for tracing.
# Included by _core.pyx. Its pure-Python twin is twin.Recorder.
#
# A Var holds a handle, not a node index: reclaiming renumbers nodes, and
# only the handle table has to follow. Every operand is checked as it is
# recorded, so the tape is valid by construction.

from libc.stdint cimport uint64_t

from .compact import compact, frozen
from .errors import TAPE_IN_USE, FasttapeError

cdef Py_ssize_t RECLAIM_MIN = 4096  # don't reclaim tapes smaller than this
# Reclaim only when more than a quarter of the nodes is garbage.
cdef Py_ssize_t RECLAIM_KEEP_NUM = 3, RECLAIM_KEEP_DEN = 4
cdef Py_ssize_t LIMIT = MAX_NODES   # nodes, and operand-list entries: int32 indices
# Constants no node uses any more are forgotten in batches of at least this
# many, so that those of a step function are found again by the next step.
cdef Py_ssize_t POOL_SLACK = 256


cdef inline int64_t bits(double c) noexcept:
    """A constant's bit pattern: keeps -0.0 and 0.0 apart as dict keys."""
    cdef int64_t k
    memcpy(&k, &c, sizeof(double))
    return k


cdef enum: N_CACHED = 16  # constants remembered by bits, in front of pool_index

cdef enum:  # Recorder.busy
    FREE = 0
    SWEEPING = 1   # backward, without the GIL: the arrays must stay as they are
    LISTING = 2    # nary, building an operand list: nothing else may be appended
    RECLAIMING = 3 # _reclaim: the arrays are being replaced


cdef inline int cache_line(int64_t k) noexcept:
    """A constant's line in the cache: the top bits of a multiplicative hash."""
    return <int> ((<uint64_t> k * 0x9E3779B97F4A7C15ULL) >> 60)


cdef inline void* grow(void* ptr, Py_ssize_t count, size_t size) except NULL:
    cdef void* new = realloc(ptr, max(count, 1) * size)
    if new == NULL:
        raise MemoryError("fasttape: cannot grow the tape")
    return new


cdef class Recorder:
    cdef uint8_t* op
    cdef int32_t* a
    cdef int32_t* b
    cdef double* val
    cdef double* adj
    cdef uint8_t* live         # node -> its live handles (255: too many to count, kept)
    cdef Py_ssize_t* claims    # (node, size) pairs where a node needed more of the pool
    cdef Py_ssize_t n_claims, cap_claims
    cdef Py_ssize_t owned      # than those below it: the slots the claims cover
    cdef double* pool
    cdef int32_t* args
    cdef int32_t* node_of      # handle -> node, -1 once released
    cdef int32_t* free_handles
    cdef Py_ssize_t n, cap, n_pool, cap_pool, n_args, cap_args
    cdef Py_ssize_t n_handles, cap_handles, n_free
    cdef Py_ssize_t root       # node of the last backward, -1 before any
    cdef Py_ssize_t reclaim_at
    cdef readonly bint reclaim
    cdef int busy              # FREE, or what runs that other threads must not disturb
    cdef dict pool_index       # constant's bits -> pool slot
    cdef int64_t cached_bits[N_CACHED]     # a few of them, looked up in C
    cdef Py_ssize_t cached_slot[N_CACHED]  # (-1: an empty line)
    cdef Prog p

    def __cinit__(self, bint reclaim=True):
        self.reclaim = reclaim
        self.root = -1
        self.reclaim_at = RECLAIM_MIN
        self.pool_index = {}
        self._forget_constants()
        self._reserve(64)

    def __dealloc__(self):
        free(self.op); free(self.a); free(self.b); free(self.val); free(self.adj); free(self.live)
        free(self.claims)
        free(self.pool); free(self.args); free(self.node_of); free(self.free_handles)

    def __len__(self):
        return self.n

    cdef int _reserve(self, Py_ssize_t cap) except -1:
        self.op = <uint8_t*> grow(self.op, cap, sizeof(uint8_t))
        self.a = <int32_t*> grow(self.a, cap, sizeof(int32_t))
        self.b = <int32_t*> grow(self.b, cap, sizeof(int32_t))
        self.val = <double*> grow(self.val, cap, sizeof(double))
        self.adj = <double*> grow(self.adj, cap, sizeof(double))
        self.live = <uint8_t*> grow(self.live, cap, sizeof(uint8_t))
        self.cap = cap
        self.p.op, self.p.a, self.p.b = self.op, self.a, self.b
        return 0

    # ----------------------------------------------------------- recording

    cdef int _check_free(self) except -1:
        """Every entry point that reads or grows the tape asks first (the
        recording ones in _maybe_reclaim): while another thread sweeps it
        back or reclaims it, none may."""
        if self.busy:
            raise FasttapeError(TAPE_IN_USE)
        return 0

    cdef inline Py_ssize_t _node(self, Py_ssize_t h) except -1:
        if h < 0 or h >= self.n_handles or self.node_of[h] < 0:
            raise ValueError(f"fasttape: handle {h} is not a live node of this tape")
        return self.node_of[h]

    cdef inline int _maybe_reclaim(self) except -1:
        # Before operands are looked up: reclaiming renumbers nodes.
        if self.busy:
            self._check_free()
        if self.reclaim and self.n >= self.reclaim_at:
            self._reclaim()
        return 0

    cdef Py_ssize_t _push(self, int op, Py_ssize_t a, Py_ssize_t b, double value=0.0) except -1:
        if self.n >= LIMIT:
            raise TapeError(f"a tape holds at most {LIMIT} nodes")
        if self.n == self.cap:
            self._reserve(2 * self.cap)
        cdef Py_ssize_t i = self.n
        self.op[i] = op
        self.a[i] = a
        self.b[i] = b
        self.live[i] = 0  # (its handle, next, counts 1)
        self.n += 1
        self.val[i] = value  # an input's; any other node's is computed next
        forward_node(&self.p, i, 1, self.val, 1)
        if CHECK_FINITE and not isfinite(self.val[i]):
            self._pop()
            raise NonFiniteError(f"{OP_NAMES[op]} produced {self.val[i]} (node {i} of "
                                 f"this tape)", node=i)
        return self._new_handle(i)

    cdef void _pop(self):
        """Drop the top node (its operand list is the last one)."""
        cdef Py_ssize_t i = self.n - 1
        if is_listed(KIND_OF[self.op[i]]):
            self.n_args = self.a[i]
        self.n -= 1

    cdef Py_ssize_t _new_handle(self, Py_ssize_t node) except -1:
        cdef Py_ssize_t h
        if self.n_free:
            self.n_free -= 1
            h = self.free_handles[self.n_free]
        else:
            if self.n_handles == self.cap_handles:
                self.cap_handles = max(64, 2 * self.cap_handles)
                self.node_of = <int32_t*> grow(self.node_of, self.cap_handles, sizeof(int32_t))
                self.free_handles = <int32_t*> grow(self.free_handles, self.cap_handles,
                                                    sizeof(int32_t))
            h = self.n_handles
            self.n_handles += 1
        self.node_of[h] = node
        if self.live[node] < 255:
            self.live[node] += 1
        return h

    cdef void _forget_constants(self) noexcept:
        cdef Py_ssize_t j
        for j in range(N_CACHED):
            self.cached_slot[j] = -1

    cdef Py_ssize_t _constant(self, double c) except -1:
        cdef int64_t k = bits(c)
        cdef int line = cache_line(k)
        cdef Py_ssize_t slot
        if self.cached_slot[line] >= 0 and self.cached_bits[line] == k:
            slot = self.cached_slot[line]
        else:
            key = k
            found = self.pool_index.get(key)
            slot = self._new_constant(c, key) if found is None else found
            self.cached_bits[line], self.cached_slot[line] = k, slot
        if slot >= self.owned:  # (also a slot found again that only nodes gone used)
            self._claim(self.n, slot + 1)
        return slot

    cdef int _claim(self, Py_ssize_t node, Py_ssize_t size) except -1:
        """Node `node` (about to be recorded, or being reloaded) uses the
        pool's first `size` slots."""
        if self.n_claims == self.cap_claims:
            self.cap_claims = max(16, 2 * self.cap_claims)
            self.claims = <Py_ssize_t*> grow(self.claims, 2 * self.cap_claims, sizeof(Py_ssize_t))
        self.claims[2 * self.n_claims], self.claims[2 * self.n_claims + 1] = node, size
        self.n_claims += 1
        self.owned = size
        return 0

    cdef Py_ssize_t _new_constant(self, double c, key) except -1:
        if self.n_pool == self.cap_pool:
            self.cap_pool = max(64, 2 * self.cap_pool)
            self.pool = <double*> grow(self.pool, self.cap_pool, sizeof(double))
            self.p.pool = self.pool
        self.pool[self.n_pool] = c
        self.pool_index[key] = self.n_pool
        self.n_pool += 1
        return self.n_pool - 1

    cdef Py_ssize_t _arg(self, Py_ssize_t v) except -1:
        if self.n_args >= LIMIT:
            raise TapeError(f"a tape holds at most {LIMIT} operand-list entries")
        if self.n_args == self.cap_args:
            self.cap_args = max(64, 2 * self.cap_args)
            self.args = <int32_t*> grow(self.args, self.cap_args, sizeof(int32_t))
            self.p.args = self.args
        self.args[self.n_args] = v
        self.n_args += 1
        return 0

    cdef int _fields(self, int op, bint b_node, bint b_pool) except -1:
        """op must read node a, and in b a node, a constant or nothing."""
        cdef int kind = KIND_OF[op] if 0 <= op < N_OPS else K_INPUT
        if (not a_is_node(kind) or is_listed(kind) or b_is_node(kind) != b_node
                or b_is_pool(kind) != b_pool):
            raise ValueError(f"fasttape: opcode {op} is not of the kind asked for")
        return 0

    # The cdef entry points are the C Var's (var.pxi); the def ones Python's.

    cdef Py_ssize_t _input(self, double value) except -1:
        self._maybe_reclaim()
        return self._push(0, 0, 0, value)

    cdef Py_ssize_t _unary(self, int op, Py_ssize_t h) except -1:
        self._maybe_reclaim()
        self._fields(op, False, False)
        return self._push(op, self._node(h), 0)

    cdef Py_ssize_t _unary_c(self, int op, Py_ssize_t h, double c) except -1:
        self._maybe_reclaim()
        self._fields(op, False, True)
        return self._push(op, self._node(h), self._constant(c))

    cdef Py_ssize_t _binary(self, int op, Py_ssize_t ha, Py_ssize_t hb) except -1:
        self._maybe_reclaim()
        self._fields(op, True, False)
        return self._push(op, self._node(ha), self._node(hb))

    def input(self, double value):
        return self._input(value)

    def const(self, double value):
        self._maybe_reclaim()
        return self._push(1, 0, self._constant(value))

    def unary(self, int op, Py_ssize_t h):
        return self._unary(op, h)

    def unary_c(self, int op, Py_ssize_t h, double c):
        return self._unary_c(op, h, c)

    def binary(self, int op, Py_ssize_t ha, Py_ssize_t hb):
        return self._binary(op, ha, hb)

    def nary(self, int op, handles, coefs=None):
        """sum(handles); dot(handles, coefs) with coefs handles too, or floats
        (dotc); where(cond, then, else) with handles (cond, then, else)."""
        cdef int kind = KIND_OF[op] if 0 <= op < N_OPS else -1
        if kind < 0 or not is_listed(kind):
            raise ValueError(f"fasttape: opcode {op} has no operand list")
        if fixed_count(kind) and len(handles) != fixed_count(kind):
            raise ValueError("fasttape: where takes a condition and two values")
        cdef Py_ssize_t count = len(handles), start, start_pool
        if (list_refs(kind) == 2 or has_coefs(kind)) and len(coefs) != count:
            raise ValueError("fasttape: dot of operand lists of different lengths")
        self._maybe_reclaim()
        start, start_pool = self.n_args, self.n_pool  # (after: reclaiming moves them)
        self.busy = LISTING  # (a coefficient's __float__ may let another thread run)
        try:
            self._args_of(handles)
            if list_refs(kind) == 2:
                self._args_of(coefs)
            elif has_coefs(kind):
                self._arg(self.n_pool)
                for c in coefs:  # not deduplicated: the run must be contiguous
                    if self.n_pool == self.cap_pool:
                        self.cap_pool = max(64, 2 * self.cap_pool)
                        self.pool = <double*> grow(self.pool, self.cap_pool, sizeof(double))
                        self.p.pool = self.pool
                    self.pool[self.n_pool] = c
                    self.n_pool += 1
                self._claim(self.n, self.n_pool)
        except BaseException:  # a bad handle or coefficient: nothing recorded
            self.n_args, self.n_pool = start, start_pool
            raise
        finally:
            self.busy = FREE
        return self._push(op, start, count)

    cdef int _args_of(self, handles) except -1:
        """Append the nodes of handles to the operand lists (nary, busy)."""
        cdef Py_ssize_t h
        for h in handles:
            if h < 0 or h >= self.n_handles or self.node_of[h] < 0:
                raise ValueError(f"fasttape: handle {h} is not a live node of this tape")
            self._arg(self.node_of[h])
        return 0

    # ----------------------------------------------------------- reading

    def value(self, Py_ssize_t h):
        if self.busy:
            self._check_free()
        return self.val[self._node(h)]

    def node(self, Py_ssize_t h):
        if self.busy:
            self._check_free()
        return self._node(h)

    def hold(self, Py_ssize_t i):
        """A new handle of node i (read in place by a derivative recorded on
        this tape): the node stays while the handle lives."""
        if self.busy:
            self._check_free()
        if i < 0 or i >= self.n:
            raise ValueError(f"fasttape: node {i} is not on this tape")
        return self._new_handle(i)

    def grad(self, Py_ssize_t h):
        if self.busy:
            self._check_free()
        cdef Py_ssize_t i = self._node(h)
        return self.adj[i] if i <= self.root else 0.0

    def release(self, Py_ssize_t h):
        self._release(h)

    cdef void _release(self, Py_ssize_t h) noexcept:
        """A Var is gone. Dead nodes on top of the tape go at once: nothing
        below can refer to them, as operands only point backwards; and with
        them the constants no node left uses. (While the tape is busy the
        nodes stay: the next release or reclaim takes them.)"""
        cdef Py_ssize_t used
        if 0 <= h < self.n_handles and self.node_of[h] >= 0:
            if self.busy:
                self._unlink(h)
                return
            if self.live[self.node_of[h]] < 255:  # (a node may have several handles)
                self.live[self.node_of[h]] -= 1
            self.node_of[h] = -1
            self.free_handles[self.n_free] = h
            self.n_free += 1
            while self.n and not self.live[self.n - 1]:
                self._pop()
            self.root = min(self.root, self.n - 1)
            if self.n_claims and self.claims[2 * self.n_claims - 2] >= self.n:
                self._trim_pool()  # (a node that needed more of the pool is gone)

    cdef void _trim_pool(self) noexcept:
        """Forget the pool's slots no node uses, when more than POOL_SLACK."""
        while self.n_claims and self.claims[2 * self.n_claims - 2] >= self.n:
            self.n_claims -= 1
        self.owned = self.claims[2 * self.n_claims - 1] if self.n_claims else 0
        if self.n_pool - self.owned > POOL_SLACK:
            self._forget_pool(self.owned)

    cdef void _unlink(self, Py_ssize_t h) noexcept:
        """Release handle h, leaving its node where it is (the tape is busy)."""
        if self.busy != RECLAIMING and self.live[self.node_of[h]] < 255:
            self.live[self.node_of[h]] -= 1  # (reclaiming: node_of says it all, at the end)
        self.node_of[h] = -1
        self.free_handles[self.n_free] = h
        self.n_free += 1

    cdef void _forget_pool(self, Py_ssize_t used) noexcept:
        """Drop the pool's slots from `used` on (no node uses them), and their
        entries in the index and the cache."""
        cdef Py_ssize_t s, j
        cdef dict index = self.pool_index
        if len(index) < self.n_pool - used:  # (dot coefficients, which have none)
            self.pool_index = {k: v for k, v in index.items() if v < used}
        else:
            for s in range(used, self.n_pool):
                key = bits(self.pool[s])
                slot = index.get(key)
                if slot is not None and <Py_ssize_t> slot == s:
                    del index[key]
        self.n_pool = used
        for j in range(N_CACHED):
            if self.cached_slot[j] >= used:
                self.cached_slot[j] = -1

    def backward(self, Py_ssize_t h):
        """Adjoints of every node up to h's, of h's value."""
        if self.busy:
            self._check_free()
        cdef Py_ssize_t root = self._node(h), i
        memset(self.adj, 0, (root + 1) * sizeof(double))
        self.adj[root] = 1.0
        self.busy = SWEEPING  # another thread may run meanwhile: it must not grow the tape
        with nogil:
            for i in range(root, -1, -1):
                if self.adj[i] != 0.0:
                    reverse_node(&self.p, i, 1, self.val, self.adj, 1)
        self.busy = FREE
        self.root = root

    # ----------------------------------------------------------- shrinking

    def arrays(self):
        """Copies of the tape's arrays: op, a, b, pool, args, values."""
        self._check_free()
        return self._arrays()

    cdef _arrays(self):
        n = self.n
        return (np.asarray(<uint8_t[:n]> self.op).copy() if n else np.zeros(0, np.uint8),
                np.asarray(<int32_t[:n]> self.a).copy() if n else np.zeros(0, np.int32),
                np.asarray(<int32_t[:n]> self.b).copy() if n else np.zeros(0, np.int32),
                np.asarray(<double[:self.n_pool]> self.pool).copy() if self.n_pool else np.zeros(0),
                np.asarray(<int32_t[:self.n_args]> self.args).copy() if self.n_args
                else np.zeros(0, np.int32),
                np.asarray(<double[:n]> self.val).copy() if n else np.zeros(0))

    def live_nodes(self):
        self._check_free()
        return np.array([self.node_of[h] for h in range(self.n_handles)
                         if self.node_of[h] >= 0], dtype=np.int64)

    def mark(self, roots):
        """keep[i]: node i is a root or an operand, however indirect, of one."""
        self._check_free()
        keep = np.zeros(self.n, dtype=np.uint8)
        if self.n == 0:
            return keep.astype(bool)
        cdef uint8_t[::1] k = keep
        for r in roots:
            k[r] = 1
        self._mark(&k[0])
        return keep.astype(bool)

    cdef Py_ssize_t _mark(self, uint8_t* k) noexcept nogil:
        """Spread the marks k[i] of roots to their operands; the count marked."""
        cdef Py_ssize_t i, j, cnt, marked = 0
        cdef int32_t pair[2]
        cdef const int32_t* refs
        for i in range(self.n - 1, -1, -1):
            if not k[i]:
                continue
            marked += 1
            cnt = operands_of(KIND_OF[self.op[i]], self.a[i], self.b[i], self.args, pair, &refs)
            for j in range(cnt):
                k[refs[j]] = 1
        return marked

    def _reclaim(self):
        """Drop the nodes no live Var can reach, renumbering the rest (and
        the constants with them). When nearly all are reachable (a trace,
        say) copying the tape would buy little: it is left as it is until it
        has doubled. Busy meanwhile: NumPy and compact() let other threads
        run, and they must not record on the arrays being replaced."""
        self._check_free()
        self.busy = RECLAIMING
        try:
            self._compact()
        finally:
            self.busy = FREE

    cdef _compact(self):
        keep = np.zeros(self.n, dtype=np.uint8)
        cdef uint8_t[::1] k = keep
        cdef Py_ssize_t h, n = self.n
        if n:
            memcpy(&k[0], self.live, n)
        if self._mark(&k[0]) * RECLAIM_KEEP_DEN > n * RECLAIM_KEEP_NUM:
            self.reclaim_at = max(RECLAIM_MIN, 2 * n)
            return
        keep = keep.astype(bool)
        op, a, b, pool, args, val = self._arrays()
        adj = np.asarray(<double[:n]> self.adj).copy()
        op, a, b, pool, args, remap = compact(op, a, b, pool, args, keep)
        self._load(op, a, b, pool, args, val[keep], adj[keep])
        cdef int64_t[::1] renum = remap
        for h in range(self.n_handles):
            if self.node_of[h] >= 0:
                self.node_of[h] = renum[self.node_of[h]]
                if self.live[self.node_of[h]] < 255:
                    self.live[self.node_of[h]] += 1
        kept_below = np.flatnonzero(keep[: self.root + 1]) if self.root >= 0 else []
        self.root = remap[kept_below[-1]] if len(kept_below) else -1
        self.reclaim_at = max(RECLAIM_MIN, 2 * self.n)

    cdef _load(self, op, a, b, pool, args, val, adj):
        cdef Py_ssize_t n = len(op)
        self.n = n
        self._reserve(max(64, 2 * n))
        if n:
            np.asarray(<uint8_t[:n]> self.op)[:] = op
            np.asarray(<int32_t[:n]> self.a)[:] = a
            np.asarray(<int32_t[:n]> self.b)[:] = b
            np.asarray(<double[:n]> self.val)[:] = val
            np.asarray(<double[:n]> self.adj)[:] = adj
            memset(self.live, 0, n)
        self.n_pool = self.cap_pool = len(pool)
        self.pool = <double*> grow(self.pool, len(pool), sizeof(double))
        if len(pool):
            np.asarray(<double[:len(pool)]> self.pool)[:] = pool
        self.n_args = self.cap_args = len(args)
        self.args = <int32_t*> grow(self.args, len(args), sizeof(int32_t))
        if len(args):
            np.asarray(<int32_t[:len(args)]> self.args)[:] = args
        self.p.pool, self.p.args = self.pool, self.args
        self.pool_index = {}
        self._forget_constants()
        for slot, c in enumerate(pool):
            self._index_constant(c, slot)
        self._pool_claims()

    cdef int _pool_claims(self) except -1:
        """The claims of the nodes as they are now."""
        cdef Py_ssize_t i, end
        self.n_claims = self.owned = 0
        for i in range(self.n):
            end = pool_end(KIND_OF[self.op[i]], self.a[i], self.b[i], self.args)
            if end > self.owned:
                self._claim(i, end)
        return 0

    cdef _index_constant(self, double c, Py_ssize_t slot):
        self.pool_index.setdefault(bits(c), slot)

    def freeze(self, inputs, outputs, guards=()):
        """A Program of what the outputs and guards need (see compact.frozen)."""
        return Program(*frozen(self, inputs, outputs, guards))
