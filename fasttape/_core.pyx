# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""The compiled kernel: forward, reverse and tangent sweeps over a flat tape.

A tape is structure-of-arrays: opcode, operand indices a and b, a constant
pool and a CSR list of operands for n-ary nodes (see ops.py for what each
kind of node keeps where). The workspace is values[node, lane], lanes
contiguous, so every node is one tight loop over lanes; consecutive nodes of
one op whose operands are consecutive too ("runs", as numpy-style code
records them) are one loop over all their lanes. Sweeps run without the GIL.

Only validated programs are swept: Program validates its arrays when built,
and Recorder checks every operand as it records.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memset, memcpy

import numpy as np

from .validate import validate, MAX_NODES
from .errors import TapeError

include "_ops.pxi"

cdef struct Prog:
    const uint8_t* op
    const int32_t* a
    const int32_t* b
    const double* pool
    const int32_t* args


# --------------------------------------------------------------- the sweeps

cdef inline double nary_one_lane(const Prog* p, Py_ssize_t i, const double* V) noexcept nogil:
    """An n-ary node's value in one lane, summed in a register."""
    cdef int kind = KIND_OF[p.op[i]]
    cdef Py_ssize_t j, s = p.a[i], n = p.b[i]
    cdef const int32_t* first = p.args + s
    cdef const int32_t* second = p.args + s + n
    cdef const double* coef
    cdef double acc = 0.0
    if kind == K_SUM:
        for j in range(n):
            acc += V[first[j]]
    elif kind == K_DOT:
        for j in range(n):
            acc += V[first[j]] * V[second[j]]
    else:
        coef = p.pool + second[0]
        for j in range(n):
            acc += coef[j] * V[first[j]]
    return acc


cdef inline void nary_reverse_one_lane(const Prog* p, Py_ssize_t i, const double* V,
                                       double* G) noexcept nogil:
    """An n-ary node's adjoint into its operands', in one lane."""
    cdef int kind = KIND_OF[p.op[i]]
    cdef Py_ssize_t j, s = p.a[i], n = p.b[i]
    cdef const int32_t* first = p.args + s
    cdef const int32_t* second = p.args + s + n
    cdef const double* coef
    cdef double g = G[i]
    if kind == K_SUM:
        for j in range(n):
            G[first[j]] += g
    elif kind == K_DOT:
        for j in range(n):
            G[first[j]] += V[second[j]] * g
            G[second[j]] += V[first[j]] * g
    else:
        coef = p.pool + second[0]
        for j in range(n):
            G[first[j]] += coef[j] * g


cdef inline void forward_node(const Prog* p, Py_ssize_t i, Py_ssize_t k,
                              double* V, Py_ssize_t C) noexcept nogil:
    """Values of nodes i .. i+k-1 (one node unless a run), C lanes each."""
    cdef int o = p.op[i]
    cdef int kind = KIND_OF[o]
    cdef double* out = V + i * C
    cdef const double* coef
    cdef const double* xa
    cdef const double* xb
    cdef Py_ssize_t j, l, s, n
    if kind == K_INPUT:
        return
    if kind == K_CONST:
        forward_elem(o, k * C, p.pool[p.b[i]], out, NULL, NULL)
    elif kind == K_UNARY:
        forward_elem(o, k * C, 0.0, out, V + p.a[i] * C, NULL)
    elif kind == K_UNARY_C:
        forward_elem(o, k * C, p.pool[p.b[i]], out, V + p.a[i] * C, NULL)
    elif kind == K_BINARY:
        forward_elem(o, k * C, 0.0, out, V + p.a[i] * C, V + p.b[i] * C)
    elif C == 1:
        out[0] = nary_one_lane(p, i, V)
    else:
        s = p.a[i]
        n = p.b[i]
        for l in range(C):
            out[l] = 0.0
        for j in range(n):
            xa = V + p.args[s + j] * C
            if kind == K_SUM:
                for l in range(C):
                    out[l] += xa[l]
            elif kind == K_DOT:
                xb = V + p.args[s + n + j] * C
                for l in range(C):
                    out[l] += xa[l] * xb[l]
            else:
                coef = p.pool + p.args[s + n]
                for l in range(C):
                    out[l] += coef[j] * xa[l]


cdef inline void reverse_node(const Prog* p, Py_ssize_t i, Py_ssize_t k, const double* V,
                              double* G, Py_ssize_t C) noexcept nogil:
    """Adds node i's (or run's) adjoint times its partials to its operands'."""
    cdef int o = p.op[i]
    cdef int kind = KIND_OF[o]
    cdef double* gi = G + i * C
    cdef const double* out = V + i * C
    cdef const double* coef
    cdef const double* xa
    cdef const double* xb
    cdef double* ga
    cdef double* gb
    cdef Py_ssize_t j, l, s, n
    if kind == K_INPUT or kind == K_CONST:
        return
    if kind == K_UNARY:
        reverse_elem(o, k * C, 0.0, out, V + p.a[i] * C, NULL, gi, G + p.a[i] * C, NULL)
    elif kind == K_UNARY_C:
        reverse_elem(o, k * C, p.pool[p.b[i]], out, V + p.a[i] * C, NULL, gi, G + p.a[i] * C, NULL)
    elif kind == K_BINARY:
        reverse_elem(o, k * C, 0.0, out, V + p.a[i] * C, V + p.b[i] * C,
                     gi, G + p.a[i] * C, G + p.b[i] * C)
    elif C == 1:
        nary_reverse_one_lane(p, i, V, G)
    else:
        s = p.a[i]
        n = p.b[i]
        for j in range(n):
            ga = G + p.args[s + j] * C
            if kind == K_SUM:
                for l in range(C):
                    ga[l] += gi[l]
            elif kind == K_DOT:
                xa = V + p.args[s + j] * C
                xb = V + p.args[s + n + j] * C
                gb = G + p.args[s + n + j] * C
                for l in range(C):
                    ga[l] += xb[l] * gi[l]
                    gb[l] += xa[l] * gi[l]
            else:
                coef = p.pool + p.args[s + n]
                for l in range(C):
                    ga[l] += coef[j] * gi[l]


cdef inline void tangent_node(const Prog* p, Py_ssize_t i, Py_ssize_t k, const double* V,
                              double* T, Py_ssize_t C) noexcept nogil:
    """Forward-mode tangent of node i (or a run) from its operands' tangents."""
    cdef int o = p.op[i]
    cdef int kind = KIND_OF[o]
    cdef double* ti = T + i * C
    cdef const double* out = V + i * C
    cdef const double* coef
    cdef const double* xa
    cdef const double* xb
    cdef const double* ta
    cdef const double* tb
    cdef Py_ssize_t j, l, s, n
    if kind == K_INPUT:
        return
    if kind == K_CONST:
        tangent_elem(o, k * C, 0.0, out, NULL, NULL, NULL, NULL, ti)
    elif kind == K_UNARY:
        tangent_elem(o, k * C, 0.0, out, V + p.a[i] * C, NULL, T + p.a[i] * C, NULL, ti)
    elif kind == K_UNARY_C:
        tangent_elem(o, k * C, p.pool[p.b[i]], out, V + p.a[i] * C, NULL, T + p.a[i] * C, NULL, ti)
    elif kind == K_BINARY:
        tangent_elem(o, k * C, 0.0, out, V + p.a[i] * C, V + p.b[i] * C,
                     T + p.a[i] * C, T + p.b[i] * C, ti)
    else:
        s = p.a[i]
        n = p.b[i]
        for l in range(C):
            ti[l] = 0.0
        for j in range(n):
            ta = T + p.args[s + j] * C
            if kind == K_SUM:
                for l in range(C):
                    ti[l] += ta[l]
            elif kind == K_DOT:
                xa = V + p.args[s + j] * C
                xb = V + p.args[s + n + j] * C
                tb = T + p.args[s + n + j] * C
                for l in range(C):
                    ti[l] += ta[l] * xb[l] + xa[l] * tb[l]
            else:
                coef = p.pool + p.args[s + n]
                for l in range(C):
                    ti[l] += coef[j] * ta[l]


cdef void sweep_forward(const Prog* p, const int32_t* starts, Py_ssize_t nruns,
                        double* V, Py_ssize_t C) noexcept nogil:
    cdef Py_ssize_t r
    for r in range(nruns):
        forward_node(p, starts[r], starts[r + 1] - starts[r], V, C)


cdef void sweep_reverse(const Prog* p, const int32_t* starts, Py_ssize_t nruns,
                        const double* V, double* G, Py_ssize_t C) noexcept nogil:
    cdef Py_ssize_t r
    for r in range(nruns - 1, -1, -1):
        reverse_node(p, starts[r], starts[r + 1] - starts[r], V, G, C)


cdef void sweep_tangent(const Prog* p, const int32_t* starts, Py_ssize_t nruns,
                        const double* V, double* T, Py_ssize_t C) noexcept nogil:
    cdef Py_ssize_t r
    for r in range(nruns):
        tangent_node(p, starts[r], starts[r + 1] - starts[r], V, T, C)


cdef bint run_continues(const Prog* p, Py_ssize_t i, Py_ssize_t k) noexcept nogil:
    """May node i+k join the run that starts at node i (k nodes so far)?

    Its op must match and its operands continue the run's operand blocks,
    which must lie wholly before the run, so the run's lanes are independent.
    """
    cdef Py_ssize_t j = i + k
    cdef int o = p.op[i]
    cdef int kind = KIND_OF[o]
    if p.op[j] != o:
        return False
    if kind == K_CONST:
        return p.b[j] == p.b[i]
    if kind != K_UNARY and kind != K_UNARY_C and kind != K_BINARY:
        return False
    if p.a[j] != p.a[i] + k or p.a[j] >= i:
        return False
    if kind == K_UNARY_C:
        return p.b[j] == p.b[i]
    if kind == K_BINARY:
        return p.b[j] == p.b[i] + k and p.b[j] < i
    return True


cdef object find_runs(const Prog* p, Py_ssize_t start, Py_ssize_t n):
    """Start nodes of the runs covering nodes start .. n-1, then n."""
    starts = np.empty(n - start + 1, dtype=np.int32)
    cdef int32_t[::1] s = starts
    cdef Py_ssize_t i = start, k, r = 0
    while i < n:
        k = 1
        while i + k < n and run_continues(p, i, k):
            k += 1
        s[r] = i
        r += 1
        i += k
    s[r] = n
    return starts[: r + 1].copy()


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


cdef class Program:
    """A validated, immutable tape and the entry point of its sweeps."""
    cdef readonly object op, a, b, pool, args, outputs, starts
    cdef readonly Py_ssize_t n, n_inputs, n_outputs
    cdef Prog p
    cdef const int32_t[::1] _starts
    cdef const int32_t[::1] _out
    cdef const uint8_t[::1] _opv
    cdef const int32_t[::1] _av
    cdef const int32_t[::1] _bv
    cdef const double[::1] _poolv
    cdef const int32_t[::1] _argsv
    cdef double* _ws
    cdef Py_ssize_t _ws_size
    cdef bint _ws_busy

    def __init__(self, op, a, b, pool, args, n_inputs, outputs):
        (self.op, self.a, self.b, self.pool, self.args, self.n_inputs,
         self.outputs) = validate(op, a, b, pool, args, n_inputs, outputs)
        self.n = len(self.op)
        self.n_outputs = len(self.outputs)
        # Views keep the buffers alive; empty arrays get a harmless stand-in.
        self._opv = self.op if self.n else np.zeros(1, np.uint8)
        self._av = self.a if self.n else np.zeros(1, np.int32)
        self._bv = self.b if self.n else np.zeros(1, np.int32)
        self._poolv = self.pool if len(self.pool) else np.zeros(1)
        self._argsv = self.args if len(self.args) else np.zeros(1, np.int32)
        self._out = self.outputs if self.n_outputs else np.zeros(1, np.int32)
        self.p.op = &self._opv[0]
        self.p.a = &self._av[0]
        self.p.b = &self._bv[0]
        self.p.pool = &self._poolv[0]
        self.p.args = &self._argsv[0]
        self.starts = find_runs(&self.p, self.n_inputs, self.n)
        self.starts.flags.writeable = False
        self._starts = self.starts

    @property
    def n_runs(self):
        return self._starts.shape[0] - 1

    def run(self, shared, shared_nodes, batch, batch_nodes, Py_ssize_t B,
            seed=None, shared_tangent=None, batch_tangent=None):
        """Sweep B lanes. Inputs are split into shared ones (one value for all
        lanes) and batched ones (a row per lane).

        Returns (values (B, n_out), shared adjoints summed over lanes,
        batched adjoints (B, nb), output tangents (B, n_out)); the last three
        are None unless a seed (B, n_out) or tangents were given.
        """
        cdef const double[::1] sv = np.ascontiguousarray(shared, dtype=np.float64)
        cdef const int32_t[::1] sn = np.ascontiguousarray(shared_nodes, dtype=np.int32)
        cdef const double[:, ::1] bv = np.ascontiguousarray(batch, dtype=np.float64)
        cdef const int32_t[::1] bn = np.ascontiguousarray(batch_nodes, dtype=np.int32)
        cdef Py_ssize_t ns = sn.shape[0], nb = bn.shape[0], n_out = self.n_outputs
        self._check_inputs(sv, sn, bv, bn, B)
        cdef bint want_grad = seed is not None, want_tan = shared_tangent is not None
        out = np.empty((B, n_out))
        gs = np.zeros(ns) if want_grad else None
        gb = np.zeros((B, nb)) if want_grad else None
        tout = np.empty((B, n_out)) if want_tan else None
        cdef double[:, ::1] ov = out
        cdef const double[:, ::1] seedv = self._lanes(seed, B, n_out, "seed") if want_grad else None
        cdef double[::1] gsv = gs if want_grad else None
        cdef double[:, ::1] gbv = gb if want_grad else None
        cdef const double[::1] stv = (np.ascontiguousarray(shared_tangent, dtype=np.float64)
                                      if want_tan else None)
        cdef const double[:, ::1] btv = self._lanes(batch_tangent, B, nb, "batch_tangent") if want_tan else None
        cdef double[:, ::1] tov = tout if want_tan else None
        if want_tan and stv.shape[0] != ns:
            raise ValueError(f"shared_tangent has {stv.shape[0]} values for {ns} inputs")
        if B == 0:
            return out, gs, gb, tout
        cdef Py_ssize_t C = chunk_lanes(B, self.n), nn = self.n
        cdef Py_ssize_t block = nn * C
        cdef double* V = self._workspace(block * (1 + want_grad + want_tan))
        cdef double* G = V + block if want_grad else NULL
        cdef double* T = V + block * (1 + want_grad) if want_tan else NULL
        try:
            if nn * B > SMALL_TAPE:
                with nogil:
                    self._chunks(sv, sn, bv, bn, B, C, V, G, T, seedv, gsv, gbv, stv, btv, ov, tov)
            else:
                self._chunks(sv, sn, bv, bn, B, C, V, G, T, seedv, gsv, gbv, stv, btv, ov, tov)
        finally:
            self._release(V)
        return out, gs, gb, tout

    cdef void _chunks(self, const double[::1] sv, const int32_t[::1] sn,
                      const double[:, ::1] bv, const int32_t[::1] bn, Py_ssize_t B,
                      Py_ssize_t C, double* V, double* G, double* T,
                      const double[:, ::1] seedv, double[::1] gsv, double[:, ::1] gbv,
                      const double[::1] stv, const double[:, ::1] btv,
                      double[:, ::1] ov, double[:, ::1] tov) noexcept nogil:
        """The sweeps of run(), chunk by chunk of lanes."""
        cdef Py_ssize_t b0, c, l, k, o, nn = self.n, n_out = self.n_outputs
        cdef Py_ssize_t ns = sn.shape[0], nb = bn.shape[0], nruns = self._starts.shape[0] - 1
        cdef bint want_grad = G != NULL, want_tan = T != NULL
        cdef double* row
        cdef double acc
        b0 = 0
        while b0 < B:
            c = min(C, B - b0)
            if c == 1:
                for k in range(ns):
                    V[sn[k]] = sv[k]
            else:
                for k in range(ns):
                    row = V + sn[k] * c
                    for l in range(c):
                        row[l] = sv[k]
            for k in range(nb):
                row = V + bn[k] * c
                for l in range(c):
                    row[l] = bv[b0 + l, k]
            sweep_forward(&self.p, &self._starts[0], nruns, V, c)
            for o in range(n_out):
                row = V + self._out[o] * c
                for l in range(c):
                    ov[b0 + l, o] = row[l]
            if want_grad:
                memset(G, 0, nn * c * sizeof(double))
                for o in range(n_out):
                    row = G + self._out[o] * c
                    for l in range(c):
                        row[l] += seedv[b0 + l, o]
                sweep_reverse(&self.p, &self._starts[0], nruns, V, G, c)
                if c == 1:
                    for k in range(ns):
                        gsv[k] += G[sn[k]]
                else:
                    for k in range(ns):
                        row = G + sn[k] * c
                        acc = 0.0
                        for l in range(c):
                            acc += row[l]
                        gsv[k] += acc
                for k in range(nb):
                    row = G + bn[k] * c
                    for l in range(c):
                        gbv[b0 + l, k] = row[l]
            if want_tan:
                for k in range(ns):
                    row = T + sn[k] * c
                    for l in range(c):
                        row[l] = stv[k]
                for k in range(nb):
                    row = T + bn[k] * c
                    for l in range(c):
                        row[l] = btv[b0 + l, k]
                sweep_tangent(&self.p, &self._starts[0], nruns, V, T, c)
                for o in range(n_out):
                    row = T + self._out[o] * c
                    for l in range(c):
                        tov[b0 + l, o] = row[l]
            b0 += c

    def call1(self, tuple args, bint grad):
        """Replay of one sample when every input is a plain Python number:
        (output values, adjoints of all inputs of output 0 or None). Returns
        None when some argument is anything else, for the general path."""
        cdef Py_ssize_t k, nn = self.n, n_in = self.n_inputs
        if len(args) != n_in or (grad and self.n_outputs < 1):
            return None
        for x in args:
            if type(x) is not float and type(x) is not int:
                return None
        cdef double* V = self._workspace(nn * (1 + grad))
        cdef double* G = V + nn
        try:
            for k in range(n_in):
                V[k] = args[k]
            if nn > SMALL_TAPE:
                with nogil:
                    self._sweep1(V, G if grad else NULL)
            else:
                self._sweep1(V, G if grad else NULL)
            values = [V[self._out[k]] for k in range(self.n_outputs)]
            return values, ([G[k] for k in range(n_in)] if grad else None)
        finally:
            self._release(V)

    def call_flat(self, const double[::1] x, bint grad):
        """Replay of one sample given all inputs as one flat vector: (output
        values, adjoints of all inputs of output 0, or None)."""
        cdef Py_ssize_t k, nn = self.n, n_in = self.n_inputs
        if x.shape[0] != n_in:
            raise ValueError(f"expected {n_in} input values, got {x.shape[0]}")
        if grad and self.n_outputs < 1:
            raise ValueError("a gradient needs an output")
        values = np.empty(self.n_outputs)
        grads = np.empty(n_in) if grad else None
        cdef double[::1] vv = values
        cdef double[::1] gv = grads if grad else None
        cdef double* V = self._workspace(nn * (1 + grad))
        cdef double* G = V + nn
        try:
            for k in range(n_in):
                V[k] = x[k]
            if nn > SMALL_TAPE:
                with nogil:
                    self._sweep1(V, G if grad else NULL)
            else:
                self._sweep1(V, G if grad else NULL)
            for k in range(self.n_outputs):
                vv[k] = V[self._out[k]]
            if grad:
                for k in range(n_in):
                    gv[k] = G[k]
        finally:
            self._release(V)
        return values, grads

    cdef void _sweep1(self, double* V, double* G) noexcept nogil:
        """One lane: values, then adjoints of output 0 when G is given."""
        cdef Py_ssize_t nruns = self._starts.shape[0] - 1
        sweep_forward(&self.p, &self._starts[0], nruns, V, 1)
        if G != NULL:
            memset(G, 0, self.n * sizeof(double))
            G[self._out[0]] = 1.0
            sweep_reverse(&self.p, &self._starts[0], nruns, V, G, 1)

    cdef double* _workspace(self, Py_ssize_t size) except NULL:
        """The program's own workspace when free (called with the GIL held, so
        the flag is safe), else a fresh one: replays from many threads work."""
        cdef double* ws
        if self._ws_busy or size > WORKSPACE_KEEP:
            ws = <double*> malloc(size * sizeof(double) + 8)
        else:
            if size > self._ws_size:
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

    cdef int _check_inputs(self, const double[::1] sv, const int32_t[::1] sn,
                           const double[:, ::1] bv, const int32_t[::1] bn,
                           Py_ssize_t B) except -1:
        """Every input node given exactly once, as shared or batched."""
        cdef Py_ssize_t k, v, ns = sn.shape[0], nb = bn.shape[0]
        if sv.shape[0] != ns:
            raise ValueError(f"{sv.shape[0]} shared values for {ns} shared inputs")
        if bv.shape[0] != B or bv.shape[1] != nb:
            raise ValueError(f"batch has shape ({bv.shape[0]}, {bv.shape[1]}), "
                             f"expected ({B}, {nb})")
        if ns + nb != self.n_inputs:
            raise ValueError(f"expected each of the {self.n_inputs} input nodes once")
        seen = np.zeros(self.n_inputs + 1, dtype=np.uint8)
        cdef uint8_t[::1] sv_seen = seen
        for k in range(ns + nb):
            v = sn[k] if k < ns else bn[k - ns]
            if v < 0 or v >= self.n_inputs or sv_seen[v]:
                raise ValueError(f"expected each of the {self.n_inputs} input nodes once")
            sv_seen[v] = 1
        return 0

    cdef _lanes(self, arr, Py_ssize_t B, Py_ssize_t width, name):
        arr = np.ascontiguousarray(arr, dtype=np.float64)
        if arr.shape != (B, width):
            raise ValueError(f"{name} has shape {arr.shape}, expected {(B, width)}")
        return arr


include "_recorder.pxi"
