# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""The compiled kernel: forward, reverse, tangent and forward-over-reverse
sweeps over a flat tape (Program), and the recorder that builds one.

A tape is structure-of-arrays: opcode, operand indices a and b, a constant
pool and a CSR list of operands for n-ary nodes (see ops.py for what each
kind of node keeps where). The workspace is values[node, lane], lanes
contiguous, so every node is one tight loop over lanes; consecutive nodes of
one op whose operands are consecutive too ("runs", as numpy-style code
records them) are one loop over all their lanes. Sweeps of any size run
without the GIL (tiny ones keep it: releasing it would cost more).

Only validated programs are swept: Program validates its arrays when built,
and Recorder checks every operand as it records. _sweeps.pxi holds the
node-level sweeps, _ops.pxi (generated) the per-op loops, _vmath.pxi the
vectorizable elementary functions, _dotblock.pxi (with _tiles.h) layers of
dots swept as matrix products, _layout.pxi how a call splits its inputs,
_recorder.pxi the recorder and _var.pxi the C half of ft.Var.
"""

from libc.math cimport isfinite
from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memset, memcpy

import numpy as np
cimport numpy as cnp

cnp.import_array()

from .validate import MAX_NODES, node_indices, validate
from .errors import GuardError, NonFiniteError, TapeError

include "_vmath.pxi"
include "_ops.pxi"

include "_sweeps.pxi"
include "_dotblock.pxi"


# --------------------------------------------------------------- programs

cdef Py_ssize_t CHUNK_DOUBLES = 16384  # per buffer (values, adjoints ...): 128 kB
cdef Py_ssize_t SMALL_TAPE = 1024  # node-lanes below which releasing the GIL costs more
cdef Py_ssize_t WORKSPACE_KEEP = 1 << 23  # doubles a program keeps between calls


cdef Py_ssize_t chunk_lanes(Py_ssize_t B, Py_ssize_t n, bint dense):
    """Lanes per chunk: keep values and adjoints near cache size (twice that
    for calls with dot blocks, whose tiles gain from longer rows more than
    elementwise loops lose), and whole register tiles of lanes in every
    chunk but the last."""
    cdef Py_ssize_t C = CHUNK_DOUBLES * (2 if dense else 1) // max(n, 1)
    if C < 16:
        C = 16
    if C > 4096:
        C = 4096
    return B if B <= C else C - C % TILE_LANES


_KIND_ARRAY = np.array([KIND_OF[o] for o in range(N_OPS)], dtype=np.uint8)
cdef bint CHECK_FINITE = False


cdef bint DOT_BLOCKS = True
FUSED_MULTIPLY_ADD = bool(FT_FMA)  # do dot blocks round each multiply-add once (AVX2 build)?


def set_dot_blocks(bint on):
    """Sweep layers of dots as matrix products (the default), or node by
    node: the plain path, which tests and benchmarks compare against."""
    global DOT_BLOCKS
    DOT_BLOCKS = on


cdef bint FIRST_WRITES = True


def set_first_writes(bint on):
    """Let a reverse sweep's first contribution to an adjoint row set it,
    so that row needs no zeroing (the default), or zero every row and add:
    the plain path, which tests compare against."""
    global FIRST_WRITES
    FIRST_WRITES = on


def set_check_finite(bint on):
    """Make every sweep and record stop at the first non-finite value."""
    global CHECK_FINITE
    CHECK_FINITE = on


cdef enum:
    MAX_PARTS = 16         # arguments a Layout's fast path takes


cdef struct Part:
    # Input nodes given together: shared (a value each, for every lane) or
    # batched (a row of `width` values per lane: row-major (B, width)).
    const int32_t* nodes
    Py_ssize_t width
    Py_ssize_t first       # nodes[0] when the nodes are consecutive, else -1
    bint batched
    const double* v        # values
    const double* t        # tangents, or NULL
    double* g              # adjoints (a shared one summed over lanes), or NULL
    double* h              # adjoint tangents (Hessian-vector products), or NULL


cdef struct Call:
    # One call's buffers, all row-major; NULL where not asked for.
    Py_ssize_t B, n_out, n_parts
    Part parts[MAX_PARTS]
    const double* seed     # output cotangents (B, n_out)
    double* out            # output values (B, n_out)
    double* tout           # output tangents (B, n_out)
    int32_t* miss          # per lane, the first guard node that missed, or -1
    const uint8_t* shared  # per input node, 1 if shared, 2 if batched (or NULL)
    const uint8_t* narrow  # per input node, 1 if shared and never read lane by lane (or NULL)
    const int32_t* wide    # with narrow: the other shared input nodes (they get rows)
    Py_ssize_t n_wide
    const uint8_t* needed  # per node, 1 if its adjoint is needed (NULL: all are)
    const uint8_t* blocks  # per node, 1 where a dot block that applies starts (or NULL)
    const int32_t* wnode   # the blocks' weight nodes, block by block (Layout), and
    const int32_t* woff    # per node, where its block's weights start in wnode
    const int32_t* wfirst  # and their first node where they are consecutive, else -1
    Py_ssize_t n_wnode     # how many to gather (0: every block reads U in place)
    bint dense             # dot blocks do most of the work (chunk_lanes)
    Py_ssize_t bad         # the first node with a non-finite value, or -1
    bint check             # look for non-finite values (check_finite)


cdef inline object carray(object obj, int typenum):
    """obj as an aligned C-contiguous array of typenum (no copy when it is one)."""
    return cnp.PyArray_FROM_OTF(obj, typenum, cnp.NPY_ARRAY_IN_ARRAY)


cdef inline double* data(object arr):
    """The data pointer of an array made by carray or new_array, NULL for None."""
    return NULL if arr is None else <double*> cnp.PyArray_DATA(<cnp.ndarray> arr)


cdef inline object new_array(Py_ssize_t rows, Py_ssize_t cols, bint zero):
    """A float64 array (rows, cols), or (cols,) when rows < 0."""
    cdef cnp.npy_intp dims[2]
    cdef int nd = 1 if rows < 0 else 2
    if rows < 0:
        dims[0] = cols
    else:
        dims[0], dims[1] = rows, cols
    if zero:
        return cnp.PyArray_ZEROS(nd, dims, cnp.NPY_FLOAT64, 0)
    return cnp.PyArray_EMPTY(nd, dims, cnp.NPY_FLOAT64, 0)


cdef class Layout


cdef class Program:
    """A validated, immutable tape and the entry point of its sweeps."""
    cdef readonly object op, a, b, pool, args, outputs, starts, guards
    cdef readonly Py_ssize_t n, n_inputs, n_outputs
    cdef Prog p
    cdef const int32_t[::1] _starts
    cdef const int32_t[::1] _out
    cdef const int32_t[::1] _guards
    cdef object _keep  # the arrays behind p's pointers
    cdef object _inputs          # 0 .. n_inputs-1, for one-sample calls
    cdef object _flags           # per node, NODE_* bits (_sweeps.pxi)
    cdef const uint8_t* _flags_p
    cdef const int32_t[:, ::1] _zero_spans  # those rows past the inputs, as [start, end) spans
    cdef Py_ssize_t _n_spans
    cdef const int32_t* _input_nodes
    cdef double* _ws
    cdef Py_ssize_t _ws_size
    cdef bint _ws_busy

    def __init__(self, op, a, b, pool, args, n_inputs, outputs):
        (self.op, self.a, self.b, self.pool, self.args, self.n_inputs,
         self.outputs) = validate(op, a, b, pool, args, n_inputs, outputs)
        self.n = len(self.op)
        self.n_outputs = len(self.outputs)
        # Empty arrays get a one-element stand-in, so every pointer is valid.
        padded = [x if len(x) else np.zeros(1, x.dtype)
                  for x in (self.op, self.a, self.b, self.pool, self.args, self.outputs)]
        self._keep = padded
        cdef const uint8_t[::1] opv = padded[0]
        cdef const int32_t[::1] av = padded[1]
        cdef const int32_t[::1] bv = padded[2]
        cdef const double[::1] poolv = padded[3]
        cdef const int32_t[::1] argsv = padded[4]
        self.p.op, self.p.a, self.p.b = &opv[0], &av[0], &bv[0]
        self.p.pool, self.p.args = &poolv[0], &argsv[0]
        self.p.n_inputs, self.p.shared, self.p.needed = self.n_inputs, NULL, NULL
        self.p.narrow = NULL
        self.p.blocks, self.p.flags, self.p.first_writes = NULL, NULL, False
        self._out = padded[5]
        self.starts = find_runs(&self.p, self.n_inputs, self.n)
        self.starts.flags.writeable = False
        self._starts = self.starts
        self.guards = np.flatnonzero(_KIND_ARRAY[self.op] == K_GUARD).astype(np.int32)
        self._inputs = np.arange(max(self.n_inputs, 1), dtype=np.int32)
        self._input_nodes = <int32_t*> cnp.PyArray_DATA(self._inputs)
        self._guards = self.guards
        self._flags = np.zeros(self.n + 1, dtype=np.uint8)
        self._flags_p = <uint8_t*> cnp.PyArray_DATA(self._flags)
        mark_spans(&self.p, self.n, <uint8_t*> self._flags_p)
        self._plan_adjoints()
        self.p.flags = self._flags_p

    cdef _plan_adjoints(self):
        """Which runs set their operands' adjoints in a reverse sweep, and so
        which rows still need zeroing: as spans of nodes past the inputs."""
        cdef Py_ssize_t n = self.n
        last = np.empty(n + 1, dtype=np.int32)
        cdef int32_t[::1] lastv = last
        first_contributors(&self.p, &self._starts[0], self._starts.shape[0] - 1, n,
                           &self._out[0], self.n_outputs, &lastv[0], <uint8_t*> self._flags_p)
        zeroed = (self._flags[self.n_inputs:n] & NODE_ZEROED) != 0
        rows = np.flatnonzero(zeroed) + self.n_inputs
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1  # consecutive rows: one span
        spans = np.array([(f[0], f[-1] + 1) for f in np.split(rows, breaks) if len(f)],
                         dtype=np.int32)
        self._zero_spans = spans.reshape(-1, 2) if len(spans) else np.zeros((1, 2), np.int32)
        self._n_spans = len(spans)

    @property
    def plan_nbytes(self):
        """Bytes of what the program works out once for its sweeps (runs,
        first writes, sums over spans), beyond the tape's own arrays."""
        return sum(x.nbytes for x in (self.starts, self.guards, self._flags,
                                      self._zero_spans.base))

    @property
    def n_runs(self):
        return self._starts.shape[0] - 1

    def run(self, shared, shared_nodes, batch, batch_nodes, Py_ssize_t B, seed=None,
            shared_tangent=None, batch_tangent=None, bint hvp=False, wanted=None,
            Layout layout=None):
        """Sweep B lanes. Inputs are split into shared ones (one value for all
        lanes) and batched ones (a row per lane). `wanted` (input nodes) may
        name the only adjoints the caller reads; others may then be left unset.

        Returns (values (B, n_out), shared adjoints summed over lanes,
        batched adjoints (B, nb), output tangents (B, n_out)), the last three
        None unless a seed (B, n_out) or tangents were given; with hvp=True
        (seed and tangents given) also (shared, batched) adjoint tangents:
        Hessian-vector products. `layout`, this program's Layout of the same
        node lists and wanted (Program.layout), saves working it out again.
        """
        cdef Layout lay = layout
        if lay is None:
            lay = self.layout(shared_nodes, batch_nodes, wanted)
        elif lay.program is not self:
            raise ValueError("the layout is another program's")
        cdef Py_ssize_t ns = lay.ns, nb = lay.nb, n_out = self.n_outputs
        cdef bint want_grad = seed is not None, want_tan = shared_tangent is not None
        if hvp and not (want_grad and want_tan):
            raise ValueError("hvp needs a seed and tangents")
        sv, bv = carray(shared, cnp.NPY_FLOAT64), carray(batch, cnp.NPY_FLOAT64)
        if sv.shape != (ns,):
            raise ValueError(f"{sv.shape} shared values for {ns} shared inputs")
        if bv.shape != (B, nb):
            raise ValueError(f"batch has shape {bv.shape}, expected ({B}, {nb})")
        if want_grad:
            seed = self._lanes(seed, B, n_out, "seed")
        if want_tan:
            shared_tangent = carray(shared_tangent, cnp.NPY_FLOAT64)
            if shared_tangent.shape != (ns,):
                raise ValueError(f"shared_tangent has shape {shared_tangent.shape}, expected ({ns},)")
            batch_tangent = self._lanes(batch_tangent, B, nb, "batch_tangent")
        out = new_array(B, n_out, False)
        gs = new_array(-1, ns, True) if want_grad else None
        gb = new_array(B, nb, True) if want_grad else None
        tout = new_array(B, n_out, False) if want_tan else None
        hs = new_array(-1, ns, True) if hvp else None
        hb = new_array(B, nb, True) if hvp else None
        cdef Call c
        c.n_parts = 2
        set_part(&c.parts[0], lay._sn, ns, lay._sn_first, False, data(sv), data(shared_tangent),
                 data(gs), data(hs))
        set_part(&c.parts[1], lay._bn, nb, lay._bn_first, True, data(bv), data(batch_tangent),
                 data(gb), data(hb))
        c.seed, c.out, c.tout = data(seed), data(out), data(tout)
        self._call(&c, lay, B, want_grad, want_tan, hvp)
        result = (out, gs, gb, tout)
        return result + (hs, hb) if hvp else result

    def layout(self, shared_nodes, batch_nodes, wanted=None, args=None):
        """The Layout of calls that share the input nodes shared_nodes and
        batch batch_nodes (each input exactly once), reading the adjoints of
        `wanted` only (None: all). With args, a list of (shape, batched,
        wanted) per argument, their inputs in node order, it also takes such
        arguments directly (Layout.value_and_grad)."""
        return Layout(self, shared_nodes, batch_nodes, wanted, args)

    cdef int _call(self, Call* c, Layout lay, Py_ssize_t B, bint grad, bint tan,
                   bint hvp) except -1:
        """Fill in what the layout knows, then sweep."""
        cdef Py_ssize_t rows
        miss = np.full(B, -1, dtype=np.int32) if self._guards.shape[0] else None
        c.B, c.n_out, c.miss = B, self.n_outputs, <int32_t*> data(miss)
        c.check = CHECK_FINITE  # read once: another thread may turn it over meanwhile
        c.shared = lay._kinds
        if B > 1:
            lay._analyse()
        c.needed = lay._needed if grad and not hvp and B > 1 else NULL
        c.narrow = lay._narrow if B > 1 and not (tan or hvp or c.check) else NULL
        c.blocks = lay._blocks if DOT_BLOCKS and B > 1 else NULL
        c.wnode, c.woff, c.wfirst, c.n_wnode = lay._wnode, lay._woff, lay._wfirst, lay.n_gathered
        c.wide, c.n_wide = lay._wide, lay.ns - lay.n_narrow
        rows = self.n - (lay.n_narrow if c.narrow != NULL else 0)
        # mostly matrix products: (the same chunks with blocks off, for the same sums)
        c.dense = B > 1 and lay.block_terms > rows
        if B:
            self._sweep(c, grad, tan, hvp, rows)
        return 0

    cdef int _sweep(self, Call* c, bint grad, bint tan, bint hvp, Py_ssize_t rows) except -1:
        """Run the sweeps of a call in a workspace, chunks of lanes sized by
        the rows the sweep really touches, then report guards that missed
        and non-finite values."""
        cdef Py_ssize_t C = chunk_lanes(c.B, rows, c.dense), block = self.n * C
        cdef Py_ssize_t k, n_in = self.n_inputs
        cdef Py_ssize_t rows_total = block * (1 + grad + tan + hvp)
        cdef Py_ssize_t n_w = c.n_wnode if c.blocks != NULL else 0
        cdef double* V = self._workspace(rows_total + 3 * n_in + n_w)
        cdef double* G = V + block if grad else NULL
        cdef double* T = V + block * (1 + grad) if tan else NULL
        cdef double* H = V + block * (1 + grad + tan) if hvp else NULL
        cdef double* U = V + rows_total  # shared inputs by node: values, adjoints, their tangents
        cdef Prog p = self.p  # this call's view: which inputs it shares, which adjoints count
        p.shared, p.needed, p.blocks = c.shared, c.needed, c.blocks
        p.first_writes = grad and FIRST_WRITES
        p.narrow = c.narrow
        p.U, p.GU, p.HU = U, U + n_in, U + 2 * n_in
        if not direct_adjoints(c):  # (one sample: rows are the inputs and their adjoints)
            memset(U + n_in, 0, (2 if hvp else 1) * n_in * sizeof(double))
            shared_values(c, U)
        p.wnode, p.woff, p.wfirst, p.W = c.wnode, c.woff, c.wfirst, U + 3 * n_in
        for k in range(n_w):  # the blocks' weights, compact, once a call
            p.W[k] = U[c.wnode[k]]
        c.bad = -1
        try:
            if self.n * c.B > SMALL_TAPE:
                with nogil:
                    self._chunks(&p, c, C, V, G, T, H)
            else:
                self._chunks(&p, c, C, V, G, T, H)
            if not direct_adjoints(c):
                shared_adjoints(c, p.GU, p.HU)
        finally:
            self._release(V)
        if c.bad >= 0:
            raise NonFiniteError(f"node {c.bad} is not finite", node=c.bad)
        if self._guards.shape[0]:
            miss = np.asarray(<int32_t[:c.B]> c.miss)
            if (miss >= 0).any():
                lanes = np.flatnonzero(miss >= 0)
                raise GuardError(f"guard at node {miss[lanes[0]]} took the other branch",
                                 node=int(miss[lanes[0]]), lanes=lanes, lanes_of=c.B)
        return 0

    cdef void _chunks(self, const Prog* p, Call* c, Py_ssize_t C, double* V, double* G,
                      double* T, double* H) noexcept nogil:
        """The sweeps of one call, chunk by chunk of at most C lanes."""
        cdef Py_ssize_t b0 = 0, w, l, o, nn = self.n, n_out = c.n_out
        cdef Py_ssize_t nruns = self._starts.shape[0] - 1
        cdef const int32_t* starts = &self._starts[0]
        while b0 < c.B:
            w = min(C, c.B - b0)
            put_inputs(V, c, p.U, b0, w, False)
            sweep_forward(p, starts, nruns, V, w)
            for o in range(n_out):
                for l in range(w):
                    c.out[(b0 + l) * n_out + o] = V[self._out[o] * w + l]
            self._check(c, V, b0, w)
            if T != NULL:
                put_inputs(T, c, NULL, b0, w, True)
                sweep_tangent(p, starts, nruns, V, T, w)
                for o in range(n_out):
                    for l in range(w):
                        c.tout[(b0 + l) * n_out + o] = T[self._out[o] * w + l]
            if G != NULL:
                if p.first_writes:
                    self._zero_rows(G, w, c, True)
                else:
                    memset(G, 0, nn * w * sizeof(double))
                if c.seed == NULL:  # the gradient of output 0
                    for l in range(w):
                        G[self._out[0] * w + l] += 1.0
                for o in range(n_out if c.seed != NULL else 0):
                    for l in range(w):
                        G[self._out[o] * w + l] += c.seed[(b0 + l) * n_out + o]
                if H != NULL:
                    if p.first_writes:
                        self._zero_rows(H, w, c, False)
                    else:
                        memset(H, 0, nn * w * sizeof(double))
                    sweep_hvp(p, starts, nruns, V, T, G, H, w)
                    take_adjoints(H, c, p.HU, b0, w, True)
                else:
                    sweep_reverse(p, starts, nruns, V, G, w)
                take_adjoints(G, c, p.GU, b0, w, False)
            b0 += w

    cdef void _zero_rows(self, double* G, Py_ssize_t w, const Call* c,
                         bint skip_unneeded) noexcept nogil:
        """Zero the adjoint rows a reverse sweep adds to before anything sets
        them. Narrow inputs have no rows; with skip_unneeded, an input whose
        adjoint is not needed is a leaf no one reads."""
        cdef Py_ssize_t j, k, s
        cdef const Part* part
        cdef const uint8_t* needed = c.needed if skip_unneeded else NULL
        if c.narrow == NULL and w == 1:  # one lane: rows are single adjoints
            for k in range(self.n_inputs):
                G[k] = 0.0
        elif c.narrow == NULL:
            for k in range(self.n_inputs):
                self._zero_input(G, w, k, needed)
        else:  # the rows there are: batched inputs and the wide shared ones
            for j in range(c.n_parts):
                part = &c.parts[j]
                for k in range(part.width if part.batched else 0):
                    self._zero_input(G, w, part.nodes[k], needed)
            for k in range(c.n_wide):
                self._zero_input(G, w, c.wide[k], needed)
        for s in range(self._n_spans):
            memset(G + self._zero_spans[s, 0] * w, 0,
                   (self._zero_spans[s, 1] - self._zero_spans[s, 0]) * w * sizeof(double))

    cdef inline void _zero_input(self, double* G, Py_ssize_t w, Py_ssize_t k,
                                 const uint8_t* needed) noexcept nogil:
        if self._flags_p[k] & NODE_ZEROED and (needed == NULL or needed[k]):
            memset(G + k * w, 0, w * sizeof(double))

    cdef void _check(self, Call* c, const double* V, Py_ssize_t b0, Py_ssize_t w) noexcept nogil:
        """Guards that missed in these lanes; with check_finite on, the first
        node (lowest index, so the one that produced it) not finite."""
        cdef Py_ssize_t k, l, g, i
        for k in range(self._guards.shape[0]):
            g = self._guards[k]
            for l in range(w):
                if V[g * w + l] != 0.0 and c.miss[b0 + l] < 0:
                    c.miss[b0 + l] = g
        if c.check:
            for i in range(self.n if c.bad < 0 else c.bad):
                for l in range(w):
                    if not isfinite(V[i * w + l]):
                        c.bad = i
                        return

    def call1(self, tuple args, bint grad):
        """Replay of one sample when every input is a plain Python number:
        (output values, adjoints of all inputs of output 0 or None). Returns
        None when some argument is anything else, for the general path."""
        cdef Py_ssize_t k, n_in = self.n_inputs, n_out = self.n_outputs
        if len(args) != n_in or (grad and n_out < 1):
            return None
        for x in args:
            if type(x) is not float and type(x) is not int:
                return None
        cdef double* buf = <double*> calloc(2 * n_in + n_out + 1, sizeof(double))
        if buf == NULL:
            raise MemoryError()
        try:
            for k in range(n_in):
                buf[k] = args[k]
            self._one(buf, grad, buf + n_in, buf + n_in + n_out)
            values = [buf[n_in + k] for k in range(n_out)]
            return values, ([buf[n_in + n_out + k] for k in range(n_in)] if grad else None)
        finally:
            free(buf)

    def call_flat(self, x, bint grad):
        """Replay of one sample given all inputs as one flat vector: (output
        values, adjoints of all inputs of output 0, or None)."""
        x = carray(x, cnp.NPY_FLOAT64)
        if x.shape != (self.n_inputs,):
            raise ValueError(f"expected {self.n_inputs} input values, got {x.shape}")
        if grad and self.n_outputs < 1:
            raise ValueError("a gradient needs an output")
        out = new_array(-1, self.n_outputs, False)
        gs = new_array(-1, self.n_inputs, True) if grad else None
        self._one(data(x), grad, data(out), data(gs))
        return out, gs

    cdef int _one(self, const double* x, bint grad, double* out, double* gs) except -1:
        """One sample with every input from x: values into out and, with
        grad, the adjoints of output 0 into gs."""
        cdef int32_t miss = -1
        cdef Call c
        c.B, c.n_out, c.n_parts = 1, self.n_outputs, 1
        set_part(&c.parts[0], self._input_nodes, self.n_inputs, 0, False, x, NULL,
                 gs if grad else NULL, NULL)
        c.seed, c.out, c.tout = NULL, out, NULL  # (no seed: output 0's gradient)
        c.miss, c.shared, c.narrow, c.needed, c.blocks = &miss, NULL, NULL, NULL, NULL
        c.n_wnode, c.n_wide = 0, 0
        c.dense = False
        c.check = CHECK_FINITE
        self._sweep(&c, grad, False, False, self.n)
        return 0

    cdef double* _workspace(self, Py_ssize_t size) except NULL:
        """The program's own workspace when free (called with the GIL held, so
        the flag is safe), else a fresh one: replays from many threads work."""
        cdef double* ws
        if self._ws_busy or size > WORKSPACE_KEEP:
            ws = <double*> malloc(size * sizeof(double) + 8)
        else:
            if size > self._ws_size or self._ws == NULL:
                ws = <double*> realloc(self._ws, size * sizeof(double) + 8)
                if ws == NULL:
                    raise MemoryError("fasttape: cannot allocate the sweep workspace")
                self._ws, self._ws_size = ws, size
            self._ws_busy = True
            ws = self._ws
        if ws == NULL:
            raise MemoryError("fasttape: cannot allocate the sweep workspace")
        return ws

    cdef void _release(self, double* ws):
        if ws == self._ws:
            self._ws_busy = False
        else:
            free(ws)

    def __dealloc__(self):
        free(self._ws)

    cdef _lanes(self, arr, Py_ssize_t B, Py_ssize_t width, name):
        arr = carray(arr, cnp.NPY_FLOAT64)
        if arr.shape != (B, width):
            raise ValueError(f"{name} has shape {arr.shape}, expected {(B, width)}")
        return arr


include "_layout.pxi"


# --------------------------------------------------------------- inputs and adjoints

cdef inline void set_part(Part* part, const int32_t* nodes, Py_ssize_t width, Py_ssize_t first,
                          bint batched, const double* v, const double* t, double* g,
                          double* h) noexcept:
    part.nodes, part.width, part.first, part.batched = nodes, width, first, batched
    part.v, part.t, part.g, part.h = v, t, g, h


cdef Py_ssize_t first_of(const int32_t* nodes, Py_ssize_t width) noexcept nogil:
    """nodes[0] if the nodes are consecutive, else -1."""
    cdef Py_ssize_t k
    for k in range(1, width):
        if nodes[k] != nodes[0] + k:
            return -1
    return nodes[0] if width else 0


cdef inline bint direct_adjoints(const Call* c) noexcept nogil:
    """A one-sample call that shares nothing by lanes (no dot reads a weight
    as one number): its input rows take the values, and give the adjoints,
    directly; U, GU and HU go unused."""
    return c.B == 1 and c.shared == NULL


cdef void shared_values(const Call* c, double* U) noexcept nogil:
    """U[node] = the value of each shared input."""
    cdef Py_ssize_t j, k
    cdef const Part* part
    for j in range(c.n_parts):
        part = &c.parts[j]
        if part.batched:
            continue
        if part.first >= 0:
            memcpy(U + part.first, part.v, part.width * sizeof(double))
        else:
            for k in range(part.width):
                U[part.nodes[k]] = part.v[k]


cdef void shared_adjoints(const Call* c, const double* GU, const double* HU) noexcept nogil:
    """Each shared input's adjoint (and its tangent), summed over all lanes."""
    cdef Py_ssize_t j, k
    cdef const Part* part
    for j in range(c.n_parts):
        part = &c.parts[j]
        if part.batched:
            continue
        if part.g != NULL:
            for k in range(part.width):
                part.g[k] = GU[part.nodes[k]]
        if part.h != NULL:
            for k in range(part.width):
                part.h[k] = HU[part.nodes[k]]


cdef inline void put_inputs(double* W, const Call* c, const double* U, Py_ssize_t b0,
                            Py_ssize_t w, bint tangents) noexcept nogil:
    """Input rows of a chunk of w lanes (their tangents with `tangents`):
    shared values repeated (a narrow one has none: it is read as one
    number), batched ones copied."""
    cdef Py_ssize_t j, k, l, width
    cdef const double* src
    cdef const Part* part
    cdef double* row
    cdef double x
    for j in range(c.n_parts):
        part = &c.parts[j]
        width = part.width
        src = part.t if tangents else part.v
        if c.narrow != NULL and not part.batched:
            continue  # (below)
        if w == 1 and part.first >= 0 and c.narrow == NULL:  # one lane: rows are values
            memcpy(W + part.first, src + (b0 * width if part.batched else 0),
                   width * sizeof(double))
            continue
        if part.batched:
            transpose_in(W, part.nodes, src + b0 * width, width, w)
            continue
        for k in range(width):
            row = W + part.nodes[k] * w
            x = src[k]
            for l in range(w):
                row[l] = x
    for k in range(c.n_wide if c.narrow != NULL else 0):  # (no tangents with narrow)
        row = W + c.wide[k] * w
        x = U[c.wide[k]]
        for l in range(w):
            row[l] = x


cdef inline void take_adjoints(const double* W, const Call* c, double* GU, Py_ssize_t b0,
                               Py_ssize_t w, bint tangents) noexcept nogil:
    """Input adjoints of a chunk (their tangents with `tangents`): shared ones
    summed over lanes into GU (a narrow one has no row: it is summed there
    already), batched ones copied where asked for."""
    cdef Py_ssize_t j, k, l, node, width
    cdef const Part* part
    cdef const double* row
    cdef double* dst
    for j in range(c.n_parts):
        part = &c.parts[j]
        width = part.width
        dst = part.h if tangents else part.g
        if dst == NULL or (c.narrow != NULL and not part.batched):
            continue  # (narrow: below)
        if w == 1 and part.first >= 0 and c.narrow == NULL:  # one lane: rows are sums
            row = W + part.first
            if part.batched:
                memcpy(dst + b0 * width, row, width * sizeof(double))
            elif direct_adjoints(c):
                memcpy(dst, row, width * sizeof(double))
            else:
                for k in range(width):
                    GU[part.first + k] += row[k]
            continue
        for k in range(width):
            node = part.nodes[k]
            row = W + node * w
            if part.batched:
                for l in range(w):
                    dst[(b0 + l) * width + k] = row[l]
            elif direct_adjoints(c):
                dst[k] = row[0]
            else:
                GU[node] += lane_sum(row, w)
    for k in range(c.n_wide if c.narrow != NULL else 0):  # (narrow ones are summed already)
        node = c.wide[k]
        if c.needed == NULL or c.needed[node]:
            GU[node] += lane_sum(W + node * w, w)


include "_recorder.pxi"
include "_var.pxi"
