# The sweeps over a tape, node by node (or run by run). Included by _core.pyx.
#
# Every case is generated into ops.pxi from the op and kind tables: the
# per-op loops of elementwise nodes, and the loops of the listed kinds (sum,
# dot, dotc, where). This file routes each node to them and holds the
# hand-written fast paths over them (dot blocks, shared weights and biases
# read as one number, sums over spans, first writes), each with a switch
# that turns it off (the generated path is then the test baseline). Every
# loop runs over `C` contiguous lanes of one node, or k*C for a run.

cdef struct Prog:
    const uint8_t* op
    const int32_t* a
    const int32_t* b
    const double* pool
    const int32_t* args
    Py_ssize_t n_inputs
    const uint8_t* shared  # per input node, 1 where this call shares it (2: batched); or NULL
    const uint8_t* needed  # per node, 1 if its adjoint matters to this call; or NULL: all do
    const uint8_t* narrow  # per input node, 1 if it has no row (see uniform()); or NULL
    const uint8_t* blocks  # per node, 1 where a dot block that applies starts; or NULL
    const uint8_t* flags   # per node, NODE_* bits (or NULL: none set)
    bint first_writes      # may runs set their operands' adjoints (NODE_SETS_A/B)?
    const double* U        # per input node, its value when shared
    double* GU             # per shared input node, its adjoint summed over lanes
    double* HU             # and that adjoint's tangent (Hessian-vector products)
    const int32_t* wnode   # dot blocks' weight nodes, block after block (Layout)
    const int32_t* woff    # per node starting a block, where its weights start in wnode
    const int32_t* wfirst  # and their first node where they are consecutive, else -1
    double* W              # their values (U[wnode]), gathered once a call


cdef enum:
    # Per-node flags a Program works out once (first_contributors, mark_spans).
    NODE_SETS_A = 1        # a run start that sets its a operands' adjoints, not adds
    NODE_SETS_B = 2        # ... and its b operands'
    NODE_ZEROED = 4        # an adjoint row to zero before a reverse sweep
    NODE_SPAN_SUM = 8      # a sum over consecutive nodes (its reverse: a vector add)


cdef inline bint needed(const Prog* p, Py_ssize_t node) noexcept nogil:
    return p.needed == NULL or p.needed[node]


cdef inline bint uniform(const Prog* p, Py_ssize_t node) noexcept nogil:
    """Is node a shared input of this call, so the same in every lane? A dot
    then reads it as one number U[node] (a layer's weights, say), not a row
    of lanes, and sums its adjoint into GU[node]."""
    return p.shared != NULL and node < p.n_inputs and p.shared[node] == 1


cdef inline const double* row(const double* X, Py_ssize_t node, bint used,
                              Py_ssize_t C) noexcept nogil:
    """Node's row of X (values, tangents or adjoints), or NULL where the
    field is not an operand node."""
    return X + node * C if used else NULL


cdef inline double* wrow(double* X, Py_ssize_t node, bint used, Py_ssize_t C) noexcept nogil:
    return X + node * C if used else NULL


cdef inline double constant(const Prog* p, Py_ssize_t i) noexcept nogil:
    return p.pool[p.b[i]] if b_is_pool(KIND_OF[p.op[i]]) else 0.0


# ---------------------------------------------- sums with a shared number (biases)
# An add or sub whose operand is a narrow shared input (a layer's bias, say)
# reads it as one number, through the op table's constant forms: x + c for
# x + b, x + (-c) for x - b, c - x for b - x, the same bits. Its adjoint is
# the lane sum of the node's, taken where the sweep meets the node: for an
# input read there only, the sum the row it no longer has would give.

cdef inline bint narrow_at(const Prog* p, Py_ssize_t node) noexcept nogil:
    """Is node a shared input this call reads as one number (no row)?"""
    return p.narrow != NULL and node < p.n_inputs and p.narrow[node]


cdef inline bint reads_narrow(const Prog* p, Py_ssize_t i, Py_ssize_t k) noexcept nogil:
    """Is the add or sub run i .. i+k-1 reading a narrow input?"""
    cdef Py_ssize_t t
    if p.narrow == NULL or (p.op[i] != OP_ADD and p.op[i] != OP_SUB):
        return False
    for t in range(k):
        if narrow_at(p, p.a[i] + t) or narrow_at(p, p.b[i] + t):
            return True
    return False


cdef void forward_biased(const Prog* p, Py_ssize_t i, Py_ssize_t k, double* V,
                         Py_ssize_t C) noexcept nogil:
    cdef Py_ssize_t t, a, b
    cdef bint add = p.op[i] == OP_ADD
    cdef double* out
    for t in range(k):
        a, b, out = p.a[i] + t, p.b[i] + t, V + (i + t) * C
        if narrow_at(p, a) and narrow_at(p, b):
            forward_elem(OP_CONST, C, p.U[a] + p.U[b] if add else p.U[a] - p.U[b], out,
                         NULL, NULL)
        elif narrow_at(p, b):
            forward_elem(OP_ADD_C, C, p.U[b] if add else -p.U[b], out, V + a * C, NULL)
        elif narrow_at(p, a):
            forward_elem(OP_ADD_C if add else OP_RSUB_C, C, p.U[a], out, V + b * C, NULL)
        else:
            forward_elem(p.op[i], C, 0.0, out, V + a * C, V + b * C)


cdef void reverse_biased(const Prog* p, Py_ssize_t i, Py_ssize_t k, const double* V,
                         double* G, Py_ssize_t C, int assign) noexcept nogil:
    cdef Py_ssize_t t, a, b
    cdef bint add = p.op[i] == OP_ADD
    cdef const double* gi
    cdef const double* f
    for t in range(k - 1, -1, -1):
        a, b, gi, f = p.a[i] + t, p.b[i] + t, G + (i + t) * C, V + (i + t) * C
        if not narrow_at(p, a) and not narrow_at(p, b):
            reverse_elem(p.op[i], C, 0.0, f, V + a * C, V + b * C, gi, G + a * C, G + b * C,
                         assign)
            continue
        if narrow_at(p, a) and needed(p, a):
            p.GU[a] += lane_sum(gi, C)
        if narrow_at(p, b) and needed(p, b):
            p.GU[b] += lane_sum(gi, C) if add else -lane_sum(gi, C)
        if not narrow_at(p, a):  # (the row operand's adjoint, set where the run may)
            reverse_elem(OP_ADD_C, C, 0.0, f, V + a * C, NULL, gi, G + a * C, NULL,
                         NODE_SETS_A if assign & NODE_SETS_A else 0)
        elif not narrow_at(p, b):
            reverse_elem(OP_ADD_C if add else OP_RSUB_C, C, 0.0, f, V + b * C, NULL, gi,
                         G + b * C, NULL, NODE_SETS_A if assign & NODE_SETS_B else 0)


cdef void forward_dot_uniform(const Prog* p, Py_ssize_t i, double* V,
                              Py_ssize_t C) noexcept nogil:
    """A dot's values reading its shared inputs (weights) as one number each
    (uniform()): those may have no rows."""
    cdef Py_ssize_t j, l, n = p.b[i]
    cdef const int32_t* arg = p.args + p.a[i]
    cdef double* out = V + i * C
    cdef const double* xa
    cdef const double* xb
    cdef double w
    for l in range(C):
        out[l] = 0.0
    for j in range(n):
        xa, xb = V + arg[j] * C, V + arg[n + j] * C
        if uniform(p, arg[j]):
            w = p.U[arg[j]]
            for l in range(C):
                out[l] += w * xb[l]
        elif uniform(p, arg[n + j]):
            w = p.U[arg[n + j]]
            for l in range(C):
                out[l] += xa[l] * w
        else:
            for l in range(C):
                out[l] += xa[l] * xb[l]


cdef inline bint reads_uniform(const Prog* p, int kind, Py_ssize_t C) noexcept nogil:
    """Does this dot read shared inputs as one number (batched calls, or any
    call where some have no rows)?"""
    return kind == K_DOT and p.shared != NULL and (C > 1 or p.narrow != NULL)


cdef inline void forward_node(const Prog* p, Py_ssize_t i, Py_ssize_t k,
                              double* V, Py_ssize_t C) noexcept nogil:
    """Values of nodes i .. i+k-1 (one node unless a run), C lanes each."""
    cdef int o = p.op[i]
    cdef int kind = KIND_OF[o]
    cdef Py_ssize_t a = p.a[i], b = p.b[i]
    if kind == K_INPUT:
        return
    if k > 1 and kind == K_DOT:
        forward_dots(p, i, k, V, C)
    elif reads_uniform(p, kind, C):
        forward_dot_uniform(p, i, V, C)
    elif is_listed(kind) and C == 1:
        V[i] = listed_forward_one(kind, p.args + a, b, p.pool, V)
    elif is_listed(kind):
        listed_forward(kind, p.args + a, b, p.pool, V + i * C, V, C)
    elif kind == K_BINARY and reads_narrow(p, i, k):
        forward_biased(p, i, k, V, C)
    else:
        forward_elem(o, k * C, constant(p, i), V + i * C, row(V, a, a_is_node(kind), C),
                     row(V, b, b_is_node(kind), C))


cdef inline void dot_shared(double w, const double* x, const double* gi, double* gw,
                            double* gx, Py_ssize_t C) noexcept nogil:
    """Reverse of w * x[l] over C lanes with w the same in all of them: the
    weight's adjoint, summed over lanes, goes to gw[0] (gx NULL when x's
    adjoint is not needed)."""
    cdef Py_ssize_t l
    cdef double total = dot_lanes(x, gi, C)
    if total != total:  # a NaN: let zero adjoints contribute nothing, as everywhere
        total = 0.0
        for l in range(C):
            total += zmul(x[l], gi[l])
    if gx != NULL:
        for l in range(C):
            gx[l] += zmul(w, gi[l])
    gw[0] += total


cdef extern from "_kernel/tiles.h":
    # Sums over lanes in four partial sums striped over lanes (they
    # pipeline, and vectorize); the same bits in every build.
    double dot_lanes "ft_dot_lanes" (const double* x, const double* y, Py_ssize_t C) noexcept nogil
    double lane_sum "ft_lane_sum" (const double* row, Py_ssize_t C) noexcept nogil
    # Row nodes[k] of W gets column k of src (w rows of width values).
    void transpose_in "ft_transpose_in" (double* W, const int32_t* nodes, const double* src,
                                         Py_ssize_t width, Py_ssize_t w) noexcept nogil


cdef void reverse_dot_uniform(const Prog* p, Py_ssize_t i, const double* V, double* G,
                              Py_ssize_t C) noexcept nogil:
    """A dot's reverse reading its shared inputs as one number each: their
    adjoints, summed over lanes, go to GU (see forward_dot_uniform)."""
    cdef Py_ssize_t j, l, n = p.b[i]
    cdef const int32_t* arg = p.args + p.a[i]
    cdef const double* gi = G + i * C
    cdef const double* xa
    cdef const double* xb
    cdef double* ga
    cdef double* gb
    for j in range(n):
        xa, xb = V + arg[j] * C, V + arg[n + j] * C
        ga, gb = G + arg[j] * C, G + arg[n + j] * C
        if uniform(p, arg[j]):
            dot_shared(p.U[arg[j]], xb, gi, p.GU + arg[j], gb if needed(p, arg[n + j]) else NULL, C)
        elif uniform(p, arg[n + j]):
            dot_shared(p.U[arg[n + j]], xa, gi, p.GU + arg[n + j], ga if needed(p, arg[j]) else NULL, C)
        else:
            for l in range(C):
                ga[l] += zmul(xb[l], gi[l])
                gb[l] += zmul(xa[l], gi[l])


cdef inline void span_sum_reverse(const Prog* p, Py_ssize_t i, double* G, double* H) noexcept nogil:
    """One lane of a sum over consecutive nodes: its reverse as a vector add."""
    cdef Py_ssize_t j, n = p.b[i]
    cdef double* gs = G + p.args[p.a[i]]
    cdef double g = G[i]
    for j in range(n):
        gs[j] += g
    if H != NULL:
        gs, g = H + p.args[p.a[i]], H[i]
        for j in range(n):
            gs[j] += g


cdef inline void list_reverse(const Prog* p, Py_ssize_t i, const double* V, const double* T,
                              double* G, double* H, Py_ssize_t C) noexcept nogil:
    """Adjoints (and with H, their tangents) of the operands of a node with an
    operand list. T and H are NULL for a plain reverse sweep."""
    cdef int kind = KIND_OF[p.op[i]]
    cdef const int32_t* arg = p.args + p.a[i]
    if C == 1 and kind == K_SUM and p.flags != NULL and p.flags[i] & NODE_SPAN_SUM:
        span_sum_reverse(p, i, G, H)
    elif H == NULL and reads_uniform(p, kind, C):
        reverse_dot_uniform(p, i, V, G, C)
    elif C == 1:
        listed_reverse_one(kind, arg, p.b[i], p.pool, G[i], H[i] if H != NULL else 0.0,
                           V, T, G, H)
    else:
        listed_reverse(kind, arg, p.b[i], p.pool, G + i * C, H + i * C if H != NULL else NULL,
                       V, T, G, H, C)


cdef inline void reverse_node(const Prog* p, Py_ssize_t i, Py_ssize_t k, const double* V,
                              double* G, Py_ssize_t C) noexcept nogil:
    """Adds node i's (or a run's) adjoint times its partials to its operands'."""
    cdef int o = p.op[i]
    cdef int kind = KIND_OF[o]
    cdef Py_ssize_t a = p.a[i], b = p.b[i]
    if not has_adjoints(kind):
        return
    if k > 1 and kind == K_DOT:
        reverse_dots(p, i, k, V, G, C)
        return
    if k == 1 and not needed(p, i):  # no wanted input below: nothing to pass on
        return
    cdef int assign = p.flags[i] & (NODE_SETS_A | NODE_SETS_B) if p.first_writes else 0
    if is_listed(kind):
        list_reverse(p, i, V, NULL, G, NULL, C)
    elif kind == K_BINARY and reads_narrow(p, i, k):
        reverse_biased(p, i, k, V, G, C, assign)
    else:
        reverse_elem(o, k * C, constant(p, i), V + i * C, row(V, a, a_is_node(kind), C),
                     row(V, b, b_is_node(kind), C), G + i * C, wrow(G, a, a_is_node(kind), C),
                     wrow(G, b, b_is_node(kind), C), assign)


cdef inline void tangent_node(const Prog* p, Py_ssize_t i, Py_ssize_t k, const double* V,
                              double* T, Py_ssize_t C) noexcept nogil:
    """Forward-mode tangent of node i (or a run) from its operands' tangents."""
    cdef int o = p.op[i]
    cdef int kind = KIND_OF[o]
    cdef Py_ssize_t j, a = p.a[i], b = p.b[i]
    if kind == K_INPUT:
        return
    if k > 1 and kind == K_DOT:  # a dot block, node by node
        for j in range(k):
            tangent_node(p, i + j, 1, V, T, C)
    elif is_listed(kind) and C == 1:
        T[i] = listed_tangent_one(kind, p.args + a, b, p.pool, V, T)
    elif is_listed(kind):
        listed_tangent(kind, p.args + a, b, p.pool, T + i * C, V, T, C)
    else:
        tangent_elem(o, k * C, constant(p, i), V + i * C, row(V, a, a_is_node(kind), C),
                     row(V, b, b_is_node(kind), C), row(T, a, a_is_node(kind), C),
                     row(T, b, b_is_node(kind), C), T + i * C)


cdef inline void hvp_node(const Prog* p, Py_ssize_t i, Py_ssize_t k, const double* V,
                          const double* T, double* G, double* H, Py_ssize_t C) noexcept nogil:
    """Reverse step for adjoints G and, forward over reverse, their tangents H."""
    cdef int o = p.op[i]
    cdef int kind = KIND_OF[o]
    cdef Py_ssize_t a = p.a[i], b = p.b[i]
    cdef int assign = p.flags[i] & (NODE_SETS_A | NODE_SETS_B) if p.first_writes else 0
    cdef Py_ssize_t j
    cdef bint an = a_is_node(kind), bn = b_is_node(kind)
    if not has_adjoints(kind):
        return
    if k > 1 and kind == K_DOT:  # a dot block, node by node
        for j in range(k - 1, -1, -1):
            hvp_node(p, i + j, 1, V, T, G, H, C)
    elif is_listed(kind):
        list_reverse(p, i, V, T, G, H, C)
    else:
        hvp_elem(o, k * C, constant(p, i), V + i * C, row(V, a, an, C), row(V, b, bn, C),
                 row(T, a, an, C), row(T, b, bn, C), G + i * C, wrow(G, a, an, C),
                 wrow(G, b, bn, C), H + i * C, wrow(H, a, an, C), wrow(H, b, bn, C), assign)


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


cdef void sweep_hvp(const Prog* p, const int32_t* starts, Py_ssize_t nruns, const double* V,
                    const double* T, double* G, double* H, Py_ssize_t C) noexcept nogil:
    cdef Py_ssize_t r
    for r in range(nruns - 1, -1, -1):
        hvp_node(p, starts[r], starts[r + 1] - starts[r], V, T, G, H, C)


cdef bint run_continues(const Prog* p, Py_ssize_t i, Py_ssize_t k) noexcept nogil:
    """May node i+k join the run that starts at node i (k nodes so far)?

    Its op must match and its operands continue the run's operand blocks,
    which must lie wholly before the run, so the run's lanes are independent;
    a constant must be the run's.
    """
    cdef Py_ssize_t j = i + k
    cdef int o = p.op[i]
    cdef int kind = KIND_OF[o]
    if p.op[j] != o:
        return False
    if kind == K_DOT:
        return dot_joins(p, i, k)
    if kind == K_INPUT or is_listed(kind):
        return False
    if a_is_node(kind) and (p.a[j] != p.a[i] + k or p.a[j] >= i):
        return False
    if b_is_node(kind) and (p.b[j] != p.b[i] + k or p.b[j] >= i):
        return False
    return not b_is_pool(kind) or p.b[j] == p.b[i]


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


cdef void mark_lanewise(const Prog* p, const uint8_t* shared, Py_ssize_t n,
                        const int32_t* out, Py_ssize_t n_out, uint8_t* wide) noexcept nogil:
    """wide[u] = 1 for each input u that some sweep step reads lane by lane.
    A shared input read only as a dot's single number (uniform(), above)
    stays 0: its row is never touched."""
    cdef Prog q = p[0]
    cdef Py_ssize_t i, j, k, cnt, u, v, n_in = p.n_inputs
    cdef int kind
    cdef int32_t pair[2]
    cdef const int32_t* refs
    q.shared = shared
    for k in range(n_out):
        if out[k] < n_in:
            wide[out[k]] = 1
    for i in range(n_in, n):
        kind = KIND_OF[p.op[i]]
        if p.op[i] == OP_ADD or p.op[i] == OP_SUB:
            continue  # (shared operands read as one number: forward_biased)
        if kind == K_DOT:
            cnt, refs = p.b[i], p.args + p.a[i]
            for j in range(cnt):
                u, v = refs[j], refs[cnt + j]
                if not uniform(&q, u) and u < n_in:
                    wide[u] = 1
                if (uniform(&q, u) or not uniform(&q, v)) and v < n_in:
                    wide[v] = 1
            continue
        cnt = operands_of(kind, p.a[i], p.b[i], p.args, pair, &refs)
        for j in range(cnt):
            if refs[j] < n_in:
                wide[refs[j]] = 1


cdef void mark_needed(const Prog* p, Py_ssize_t n, uint8_t* need) noexcept nogil:
    """need[i] = 1 for every node some wanted input (need[u] = 1 on entry)
    reaches: only those nodes' adjoints matter for the wanted gradients."""
    cdef Py_ssize_t i, j, cnt
    cdef int kind
    cdef int32_t pair[2]
    cdef const int32_t* refs
    for i in range(p.n_inputs, n):
        kind = KIND_OF[p.op[i]]
        if not has_adjoints(kind):
            continue
        cnt = operands_of(kind, p.a[i], p.b[i], p.args, pair, &refs)
        for j in range(cnt):
            if need[refs[j]]:
                need[i] = 1
                break


cdef void first_contributors(const Prog* p, const int32_t* starts, Py_ssize_t nruns,
                             Py_ssize_t n, const int32_t* out, Py_ssize_t n_out,
                             int32_t* last, uint8_t* flags) noexcept nogil:
    """Adjoint rows that need no zeroing before a reverse sweep. A run that
    is, for every node of its a (or b) operand block, the last reader in
    node order is the first to contribute in the reverse sweep: it may set
    those rows (NODE_SETS_A or _B at the run's start) instead of adding to
    them. NODE_ZEROED marks the rows that must start at zero: the rest, and
    the outputs (their seeds come first)."""
    cdef Py_ssize_t r, i, t, k, j, cnt, a0, b0
    cdef int kind
    cdef bint ok_a, ok_b
    cdef int32_t pair[2]
    cdef const int32_t* arg
    for j in range(n):
        last[j] = -1
        flags[j] |= NODE_ZEROED
    for i in range(p.n_inputs, n):  # readers that add to their operands' adjoints
        kind = KIND_OF[p.op[i]]
        if has_adjoints(kind):
            cnt = operands_of(kind, p.a[i], p.b[i], p.args, pair, &arg)
            for j in range(cnt):
                last[arg[j]] = i
    for j in range(n_out):
        last[out[j]] = n  # seeded before the sweep
    for r in range(nruns):
        i, k = starts[r], starts[r + 1] - starts[r]
        kind = KIND_OF[p.op[i]]
        if is_listed(kind) or not has_adjoints(kind):
            continue
        a0, b0 = p.a[i], p.b[i]
        ok_a, ok_b = True, b_is_node(kind)
        for t in range(k):
            ok_a = ok_a and last[a0 + t] == i + t
            ok_b = ok_b and last[b0 + t] == i + t
        if b_is_node(kind) and a0 < b0 + k and b0 < a0 + k:  # blocks that overlap:
            ok_a = ok_b = False  # a set on one side would drop an add on the other
        flags[i] |= (NODE_SETS_A if ok_a else 0) | (NODE_SETS_B if ok_b else 0)
        for t in range(k):
            if ok_a:
                flags[a0 + t] &= ~NODE_ZEROED
            if ok_b:
                flags[b0 + t] &= ~NODE_ZEROED


cdef void mark_spans(const Prog* p, Py_ssize_t n, uint8_t* flags) noexcept nogil:
    """NODE_SPAN_SUM for each sum node whose operands are consecutive nodes
    (ft.sum over an array): one lane of its reverse adds as a block. (Its
    forward keeps the order of every other path: a sum in sequence.)"""
    cdef Py_ssize_t i, j, cnt
    cdef const int32_t* arg
    for i in range(p.n_inputs, n):
        if KIND_OF[p.op[i]] != K_SUM or p.b[i] == 0:
            continue
        cnt, arg = p.b[i], p.args + p.a[i]
        for j in range(1, cnt):
            if arg[j] != arg[0] + j:
                break
        else:
            flags[i] |= NODE_SPAN_SUM
