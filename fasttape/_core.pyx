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
vectorizable elementary functions, _recorder.pxi the recorder.
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


# --------------------------------------------------------------- programs

cdef Py_ssize_t SMALL_TAPE = 1024  # node-lanes below which releasing the GIL costs more
cdef Py_ssize_t WORKSPACE_KEEP = 1 << 23  # doubles a program keeps between calls


cdef Py_ssize_t chunk_lanes(Py_ssize_t B, Py_ssize_t n):
    """Lanes per chunk: keep values and adjoints near cache size."""
    cdef Py_ssize_t C = 32768 // max(n, 1)
    if C < 16:
        C = 16
    if C > 4096:
        C = 4096
    return min(C, B)


_KIND_ARRAY = np.array([KIND_OF[o] for o in range(N_OPS)], dtype=np.uint8)
cdef bint CHECK_FINITE = False


def set_check_finite(bint on):
    """Make every sweep and record stop at the first non-finite value."""
    global CHECK_FINITE
    CHECK_FINITE = on


cdef struct Call:
    # One call's buffers, all row-major; NULL where not asked for.
    Py_ssize_t B, ns, nb, n_out
    const double* sv       # shared input values (ns)
    const int32_t* sn      # their nodes
    const double* bv       # batched input values (B, nb)
    const int32_t* bn      # their nodes
    const double* seed     # output cotangents (B, n_out)
    const double* st       # shared input tangents (ns)
    const double* bt       # batched input tangents (B, nb)
    double* out            # output values (B, n_out)
    double* gs             # shared adjoints, summed over lanes (ns)
    double* gb             # batched adjoints (B, nb)
    double* tout           # output tangents (B, n_out)
    double* hs             # shared adjoint tangents: Hessian-vector products (ns)
    double* hb             # batched ones (B, nb)
    int32_t* miss          # per lane, the first guard node that missed, or -1
    const uint8_t* shared  # per input node, 1 if shared, 2 if batched (or NULL)
    const uint8_t* narrow  # per input node, 1 if shared and only ever read in lane 0 (or NULL)
    const uint8_t* needed  # per node, 1 if its adjoint is needed (NULL: all are)
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
        self._out = padded[5]
        self.starts = find_runs(&self.p, self.n_inputs, self.n)
        self.starts.flags.writeable = False
        self._starts = self.starts
        self.guards = np.flatnonzero(_KIND_ARRAY[self.op] == K_GUARD).astype(np.int32)
        self._inputs = np.arange(max(self.n_inputs, 1), dtype=np.int32)
        self._input_nodes = <int32_t*> cnp.PyArray_DATA(self._inputs)
        self._guards = self.guards

    @property
    def n_runs(self):
        return self._starts.shape[0] - 1

    def run(self, shared, shared_nodes, batch, batch_nodes, Py_ssize_t B,
            seed=None, shared_tangent=None, batch_tangent=None, bint hvp=False, wanted=None):
        """Sweep B lanes. Inputs are split into shared ones (one value for all
        lanes) and batched ones (a row per lane). `wanted` (input nodes) may
        name the only adjoints the caller reads; others may then be left unset.

        Returns (values (B, n_out), shared adjoints summed over lanes,
        batched adjoints (B, nb), output tangents (B, n_out)), the last three
        None unless a seed (B, n_out) or tangents were given; with hvp=True
        (seed and tangents given) also (shared, batched) adjoint tangents:
        Hessian-vector products.
        """
        sn = carray(node_indices("shared_nodes", shared_nodes, self.n_inputs), cnp.NPY_INT32)
        bn = carray(node_indices("batch_nodes", batch_nodes, self.n_inputs), cnp.NPY_INT32)
        sv, bv = carray(shared, cnp.NPY_FLOAT64), carray(batch, cnp.NPY_FLOAT64)
        cdef uint8_t* kinds = self._check_inputs(sv, sn, bv, bn, B)
        try:
            return self._run(sv, sn, bv, bn, B, seed, shared_tangent, batch_tangent, hvp, kinds,
                             None if wanted is None else
                             node_indices("wanted", wanted, self.n_inputs))
        finally:
            free(kinds)

    cdef object _run(self, sv, sn, bv, bn, Py_ssize_t B, seed, shared_tangent, batch_tangent,
                     bint hvp, const uint8_t* kinds, wanted):
        cdef Py_ssize_t ns = cnp.PyArray_SIZE(sn), nb = cnp.PyArray_SIZE(bn)
        cdef Py_ssize_t n_out = self.n_outputs
        cdef bint want_grad = seed is not None, want_tan = shared_tangent is not None
        if hvp and not (want_grad and want_tan):
            raise ValueError("hvp needs a seed and tangents")
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
        miss = np.full(B, -1, dtype=np.int32) if self._guards.shape[0] else None
        cdef Call c
        c.B, c.ns, c.nb, c.n_out = B, ns, nb, n_out
        c.sv, c.bv, c.seed = data(sv), data(bv), data(seed)
        c.sn, c.bn = <int32_t*> data(sn), <int32_t*> data(bn)
        c.st, c.bt = data(shared_tangent), data(batch_tangent)
        c.out, c.gs, c.gb, c.tout = data(out), data(gs), data(gb), data(tout)
        c.hs, c.hb = data(hs), data(hb)
        c.miss = <int32_t*> data(miss)
        c.shared = kinds
        # Nodes no wanted input reaches need no adjoint (a batch's data, say).
        needed = None
        if wanted is not None and want_grad and not hvp and B > 1:
            needed = np.zeros(self.n + 1, dtype=np.uint8)
            needed[wanted] = 1
            mark_needed(&self.p, self.n, <uint8_t*> cnp.PyArray_DATA(needed))
        c.needed = <uint8_t*> data(needed)
        if B:
            self._sweep(&c, want_grad, want_tan, hvp)
        result = (out, gs, gb, tout)
        return result + (hs, hb) if hvp else result

    cdef int _sweep(self, Call* c, bint grad, bint tan, bint hvp) except -1:
        """Run the sweeps of a call in a workspace, then report guards that
        missed and non-finite values."""
        cdef uint8_t* narrow = NULL
        cdef Py_ssize_t k, n_narrow = 0
        c.check = CHECK_FINITE  # read once: another thread may turn it over meanwhile
        if c.shared != NULL and c.B > 1 and not (tan or hvp or c.check):
            narrow = <uint8_t*> calloc(self.n_inputs + 1, 1)
            if narrow == NULL:
                raise MemoryError()
            mark_lanewise(&self.p, c.shared, self.n, &self._out[0], self.n_outputs, narrow)
            for k in range(self.n_inputs):
                narrow[k] = c.shared[k] == 1 and not narrow[k]
                n_narrow += narrow[k]
        c.narrow = narrow
        try:
            return self._sweep_in(c, grad, tan, hvp, self.n - n_narrow)
        finally:
            free(narrow)

    cdef int _sweep_in(self, Call* c, bint grad, bint tan, bint hvp, Py_ssize_t rows) except -1:
        # Chunks of lanes sized by the rows the sweep really touches.
        cdef Py_ssize_t C = chunk_lanes(c.B, rows), block = self.n * C
        cdef double* V = self._workspace(block * (1 + grad + tan + hvp))
        cdef double* G = V + block if grad else NULL
        cdef double* T = V + block * (1 + grad) if tan else NULL
        cdef double* H = V + block * (1 + grad + tan) if hvp else NULL
        cdef Prog p = self.p  # this call's view: which inputs it shares, which adjoints count
        p.shared, p.needed = c.shared, c.needed
        c.bad = -1
        try:
            if self.n * c.B > SMALL_TAPE:
                with nogil:
                    self._chunks(&p, c, C, V, G, T, H)
            else:
                self._chunks(&p, c, C, V, G, T, H)
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
        cdef Py_ssize_t b0 = 0, w, l, k, o, nn = self.n, n_out = c.n_out
        cdef Py_ssize_t nruns = self._starts.shape[0] - 1
        cdef const int32_t* starts = &self._starts[0]
        while b0 < c.B:
            w = min(C, c.B - b0)
            put_inputs(V, c.sv, c.sn, c.ns, c.bv, c.bn, c.nb, b0, w, c.narrow)
            sweep_forward(p, starts, nruns, V, w)
            for o in range(n_out):
                for l in range(w):
                    c.out[(b0 + l) * n_out + o] = V[self._out[o] * w + l]
            self._check(c, V, b0, w)
            if T != NULL:
                put_inputs(T, c.st, c.sn, c.ns, c.bt, c.bn, c.nb, b0, w, NULL)
                sweep_tangent(p, starts, nruns, V, T, w)
                for o in range(n_out):
                    for l in range(w):
                        c.tout[(b0 + l) * n_out + o] = T[self._out[o] * w + l]
            if G != NULL:
                zero_adjoints(G, self.n_inputs, nn, w, c.narrow)
                for o in range(n_out):
                    for l in range(w):
                        G[self._out[o] * w + l] += c.seed[(b0 + l) * n_out + o]
                if H != NULL:
                    memset(H, 0, nn * w * sizeof(double))
                    sweep_hvp(p, starts, nruns, V, T, G, H, w)
                    take_adjoints(H, c.hs, c.hb, c.sn, c.ns, c.bn, c.nb, b0, w, NULL)
                else:
                    sweep_reverse(p, starts, nruns, V, G, w)
                take_adjoints(G, c.gs, c.gb, c.sn, c.ns, c.bn, c.nb, b0, w, c.narrow)
            b0 += w

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
        grad, the adjoints of output 0 into gs (which starts at zero)."""
        cdef double few[8]  # the seed of a call with few outputs needs no allocation
        cdef double* seed = &few[0]
        if self.n_outputs >= 8:
            seed = <double*> malloc((self.n_outputs + 1) * sizeof(double))
        cdef int32_t miss = -1
        cdef Call c
        if seed == NULL:
            raise MemoryError()
        memset(seed, 0, (self.n_outputs + 1) * sizeof(double))
        seed[0] = 1.0
        c.B, c.ns, c.nb, c.n_out = 1, self.n_inputs, 0, self.n_outputs
        c.sv, c.sn = x, self._input_nodes
        c.bv = c.st = c.bt = NULL
        c.bn = NULL
        c.seed = seed if grad else NULL
        c.out, c.gs, c.gb, c.tout, c.hs, c.hb = out, gs if grad else NULL, NULL, NULL, NULL, NULL
        c.miss, c.shared, c.narrow, c.needed = &miss, NULL, NULL, NULL
        try:
            self._sweep(&c, grad, False, False)
        finally:
            if seed != &few[0]:
                free(seed)
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

    cdef uint8_t* _check_inputs(self, sv, sn, bv, bn, Py_ssize_t B) except NULL:
        """Every input node given exactly once, as shared or batched. Returns
        (to be freed) which are shared: 1, or batched: 2, per input node."""
        cdef Py_ssize_t k, v, ns = cnp.PyArray_SIZE(sn), nb = cnp.PyArray_SIZE(bn)
        cdef const int32_t* snp = <int32_t*> data(sn)
        cdef const int32_t* bnp = <int32_t*> data(bn)
        if sv.shape != (ns,) or sn.ndim != 1 or bn.ndim != 1:
            raise ValueError(f"{sv.shape} shared values for {ns} shared inputs")
        if bv.shape != (B, nb):
            raise ValueError(f"batch has shape {bv.shape}, expected ({B}, {nb})")
        if ns + nb != self.n_inputs:
            raise ValueError(f"expected each of the {self.n_inputs} input nodes once")
        cdef uint8_t* seen = <uint8_t*> calloc(self.n_inputs + 1, 1)
        if seen == NULL:
            raise MemoryError()
        for k in range(ns + nb):
            v = snp[k] if k < ns else bnp[k - ns]
            if v < 0 or v >= self.n_inputs or seen[v]:
                free(seen)
                raise ValueError(f"expected each of the {self.n_inputs} input nodes once")
            seen[v] = 1 if k < ns else 2
        return seen

    cdef _lanes(self, arr, Py_ssize_t B, Py_ssize_t width, name):
        arr = carray(arr, cnp.NPY_FLOAT64)
        if arr.shape != (B, width):
            raise ValueError(f"{name} has shape {arr.shape}, expected {(B, width)}")
        return arr



cdef inline void put_inputs(double* W, const double* sv, const int32_t* sn, Py_ssize_t ns,
                            const double* bv, const int32_t* bn, Py_ssize_t nb,
                            Py_ssize_t b0, Py_ssize_t w, const uint8_t* narrow) noexcept nogil:
    """Input rows of a chunk of w lanes: shared values repeated (a narrow one
    only in lane 0), batched ones copied."""
    cdef Py_ssize_t k, l
    cdef double* row
    for k in range(ns):
        row = W + sn[k] * w
        if narrow != NULL and narrow[sn[k]]:
            row[0] = sv[k]
            continue
        for l in range(w):
            row[l] = sv[k]
    for k in range(nb):
        row = W + bn[k] * w
        for l in range(w):
            row[l] = bv[(b0 + l) * nb + k]


cdef inline void zero_adjoints(double* G, Py_ssize_t n_in, Py_ssize_t n, Py_ssize_t w,
                               const uint8_t* narrow) noexcept nogil:
    """Adjoints start at zero: every lane, but only lane 0 of a narrow input."""
    cdef Py_ssize_t k
    if narrow == NULL:
        memset(G, 0, n * w * sizeof(double))
        return
    memset(G + n_in * w, 0, (n - n_in) * w * sizeof(double))
    for k in range(n_in):
        if narrow[k]:
            G[k * w] = 0.0
        else:
            memset(G + k * w, 0, w * sizeof(double))


cdef inline void take_adjoints(const double* W, double* gs, double* gb, const int32_t* sn,
                               Py_ssize_t ns, const int32_t* bn, Py_ssize_t nb,
                               Py_ssize_t b0, Py_ssize_t w, const uint8_t* narrow) noexcept nogil:
    """Input adjoints of a chunk: shared ones summed over lanes (a narrow one
    has its sum in lane 0 already), batched ones copied."""
    cdef Py_ssize_t k, l
    cdef const double* row
    for k in range(ns):
        if narrow != NULL and narrow[sn[k]]:
            gs[k] += W[sn[k] * w]
        else:
            gs[k] += lane_sum(W + sn[k] * w, w)
    for k in range(nb):
        row = W + bn[k] * w
        for l in range(w):
            gb[(b0 + l) * nb + k] = row[l]


include "_recorder.pxi"
include "_var.pxi"
