# The sweeps over a tape, node by node (or run by run). Included by _core.pyx.
#
# Elementwise nodes call the generated per-op loops of _ops.pxi; the few
# kinds with operand lists (sum, dot, dotc, where) are written out here.
# Every loop runs over `C` contiguous lanes of one node, or k*C for a run.

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


cdef inline const double* operand(const Prog* p, Py_ssize_t i, const double* V,
                                  Py_ssize_t C) noexcept nogil:
    return V + p.a[i] * C


cdef inline double constant(const Prog* p, Py_ssize_t i) noexcept nogil:
    cdef int kind = KIND_OF[p.op[i]]
    return p.pool[p.b[i]] if kind == K_CONST or kind == K_UNARY_C or kind == K_GUARD else 0.0


cdef inline double nary_one_lane(const Prog* p, Py_ssize_t i, const double* V) noexcept nogil:
    """An n-ary node's value in one lane, summed in a register."""
    cdef int kind = KIND_OF[p.op[i]]
    cdef Py_ssize_t j, n = p.b[i]
    cdef const int32_t* first = p.args + p.a[i]
    cdef const int32_t* second = first + n
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


cdef inline double tangent_one_lane(const Prog* p, Py_ssize_t i, const double* V,
                                   const double* T) noexcept nogil:
    """An n-ary node's tangent in one lane, summed in a register in the
    order of tangent_node's loops."""
    cdef int kind = KIND_OF[p.op[i]]
    cdef Py_ssize_t j, n = p.b[i]
    cdef const int32_t* first = p.args + p.a[i]
    cdef const int32_t* second = first + n
    cdef const double* coef
    cdef double acc = 0.0
    if kind == K_SUM:
        for j in range(n):
            acc += T[first[j]]
    elif kind == K_DOT:
        for j in range(n):
            acc += T[first[j]] * V[second[j]] + V[first[j]] * T[second[j]]
    else:
        coef = p.pool + second[0]
        for j in range(n):
            acc += coef[j] * T[first[j]]
    return acc


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


cdef inline void forward_node(const Prog* p, Py_ssize_t i, Py_ssize_t k,
                              double* V, Py_ssize_t C) noexcept nogil:
    """Values of nodes i .. i+k-1 (one node unless a run), C lanes each."""
    cdef int o = p.op[i]
    cdef int kind = KIND_OF[o]
    cdef double* out = V + i * C
    cdef const int32_t* arg = p.args + p.a[i]
    cdef const double* coef
    cdef const double* xa
    cdef const double* xb
    cdef const double* xc
    cdef double w
    cdef Py_ssize_t j, l, n = p.b[i]
    if kind == K_INPUT:
        return
    if k > 1 and kind == K_DOT:
        forward_dots(p, i, k, V, C)
    elif kind == K_CONST:
        forward_elem(o, k * C, constant(p, i), out, NULL, NULL)
    elif kind == K_UNARY or kind == K_UNARY_C or kind == K_GUARD:
        forward_elem(o, k * C, constant(p, i), out, operand(p, i, V, C), NULL)
    elif kind == K_BINARY and reads_narrow(p, i, k):
        forward_biased(p, i, k, V, C)
    elif kind == K_BINARY:
        forward_elem(o, k * C, 0.0, out, operand(p, i, V, C), V + p.b[i] * C)
    elif kind == K_SELECT:
        xa, xb, xc = V + arg[0] * C, V + arg[1] * C, V + arg[2] * C
        for l in range(C):
            out[l] = xb[l] if xa[l] != 0.0 else xc[l]
    elif C == 1 and p.narrow == NULL:  # (narrow shared weights have no rows: see uniform())
        out[0] = nary_one_lane(p, i, V)
    else:
        for l in range(C):
            out[l] = 0.0
        for j in range(n):
            xa = V + arg[j] * C
            if kind == K_SUM:
                for l in range(C):
                    out[l] += xa[l]
            elif kind == K_DOT:
                xb = V + arg[n + j] * C
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
            else:
                coef = p.pool + arg[n]
                for l in range(C):
                    out[l] += coef[j] * xa[l]


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


cdef extern from "_tiles.h":
    # Sums over lanes in four partial sums striped over lanes (they
    # pipeline, and vectorize); the same bits in every build.
    double dot_lanes "ft_dot_lanes" (const double* x, const double* y, Py_ssize_t C) noexcept nogil
    double lane_sum "ft_lane_sum" (const double* row, Py_ssize_t C) noexcept nogil
    # Row nodes[k] of W gets column k of src (w rows of width values).
    void transpose_in "ft_transpose_in" (double* W, const int32_t* nodes, const double* src,
                                         Py_ssize_t width, Py_ssize_t w) noexcept nogil


cdef inline void list_reverse_one_lane(const Prog* p, Py_ssize_t i, const double* V,
                                       const double* T, double* G, double* H) noexcept nogil:
    """list_reverse for one lane (sum, dot, dotc): no inner loops over lanes."""
    cdef int kind = KIND_OF[p.op[i]]
    cdef Py_ssize_t j, u, v, n = p.b[i]
    cdef const int32_t* arg = p.args + p.a[i]
    cdef const double* coef = p.pool + arg[n] if kind == K_DOTC else NULL
    cdef double g = G[i], h = H[i] if H != NULL else 0.0
    cdef double* gs
    if kind == K_SUM and p.flags != NULL and p.flags[i] & NODE_SPAN_SUM:
        gs = G + arg[0]
        for j in range(n):
            gs[j] += g
        if H != NULL:
            gs = H + arg[0]
            for j in range(n):
                gs[j] += h
        return
    for j in range(n):
        u = arg[j]
        if kind == K_SUM:
            G[u] += g
            if H != NULL:
                H[u] += h
        elif kind == K_DOT:
            v = arg[n + j]
            G[u] += zmul(V[v], g)
            G[v] += zmul(V[u], g)
            if H != NULL:
                H[u] += zmul(T[v], g) + zmul(V[v], h)
                H[v] += zmul(T[u], g) + zmul(V[u], h)
        else:
            G[u] += zmul(coef[j], g)
            if H != NULL:
                H[u] += zmul(coef[j], h)


cdef inline void list_reverse(const Prog* p, Py_ssize_t i, const double* V, const double* T,
                              double* G, double* H, Py_ssize_t C) noexcept nogil:
    """Adjoints (and with H, their tangents) of the operands of a node with an
    operand list. T and H are NULL for a plain reverse sweep."""
    cdef int kind = KIND_OF[p.op[i]]
    cdef Py_ssize_t j, l, n = p.b[i]
    cdef const int32_t* arg = p.args + p.a[i]
    cdef const double* gi = G + i * C
    cdef const double* hi = H + i * C if H != NULL else NULL
    cdef const double* coef
    cdef const double* cond
    cdef const double* xa
    cdef const double* xb
    cdef double* ga
    cdef double* gb
    cdef double* ha
    cdef double* hb
    if C == 1 and kind != K_SELECT and p.narrow == NULL:
        list_reverse_one_lane(p, i, V, T, G, H)
        return
    if kind == K_SELECT:  # only the branch taken receives anything
        cond = V + arg[0] * C
        ga, gb = G + arg[1] * C, G + arg[2] * C
        for l in range(C):
            if cond[l] != 0.0:
                ga[l] += gi[l]
            else:
                gb[l] += gi[l]
        if H != NULL:
            ha, hb = H + arg[1] * C, H + arg[2] * C
            for l in range(C):
                if cond[l] != 0.0:
                    ha[l] += hi[l]
                else:
                    hb[l] += hi[l]
        return
    for j in range(n):
        ga = G + arg[j] * C
        ha = H + arg[j] * C if H != NULL else NULL
        if kind == K_SUM:
            for l in range(C):
                ga[l] += gi[l]
            if H != NULL:
                for l in range(C):
                    ha[l] += hi[l]
        elif kind == K_DOT:
            xa, xb = V + arg[j] * C, V + arg[n + j] * C
            gb = G + arg[n + j] * C
            if H == NULL and uniform(p, arg[j]):  # a shared weight: its lanes are summed anyway
                dot_shared(p.U[arg[j]], xb, gi, p.GU + arg[j],
                           gb if needed(p, arg[n + j]) else NULL, C)
            elif H == NULL and uniform(p, arg[n + j]):
                dot_shared(p.U[arg[n + j]], xa, gi, p.GU + arg[n + j],
                           ga if needed(p, arg[j]) else NULL, C)
            else:
                for l in range(C):
                    ga[l] += zmul(xb[l], gi[l])
                    gb[l] += zmul(xa[l], gi[l])
            if H != NULL:
                hb = H + arg[n + j] * C
                for l in range(C):
                    ha[l] += zmul(T[arg[n + j] * C + l], gi[l]) + zmul(xb[l], hi[l])
                    hb[l] += zmul(T[arg[j] * C + l], gi[l]) + zmul(xa[l], hi[l])
        else:
            coef = p.pool + arg[n]
            for l in range(C):
                ga[l] += zmul(coef[j], gi[l])
            if H != NULL:
                for l in range(C):
                    ha[l] += zmul(coef[j], hi[l])


cdef inline void reverse_node(const Prog* p, Py_ssize_t i, Py_ssize_t k, const double* V,
                              double* G, Py_ssize_t C) noexcept nogil:
    """Adds node i's (or a run's) adjoint times its partials to its operands'."""
    cdef int o = p.op[i]
    cdef int kind = KIND_OF[o]
    if kind == K_INPUT or kind == K_CONST or kind == K_GUARD:
        return
    if k > 1 and kind == K_DOT:
        reverse_dots(p, i, k, V, G, C)
        return
    if k == 1 and not needed(p, i):  # no wanted input below: nothing to pass on
        return
    cdef int assign = p.flags[i] & (NODE_SETS_A | NODE_SETS_B) if p.first_writes else 0
    if kind == K_UNARY or kind == K_UNARY_C:
        reverse_elem(o, k * C, constant(p, i), V + i * C, operand(p, i, V, C), NULL,
                     G + i * C, G + p.a[i] * C, NULL, assign)
    elif kind == K_BINARY and reads_narrow(p, i, k):
        reverse_biased(p, i, k, V, G, C, assign)
    elif kind == K_BINARY:
        reverse_elem(o, k * C, 0.0, V + i * C, operand(p, i, V, C), V + p.b[i] * C,
                     G + i * C, G + p.a[i] * C, G + p.b[i] * C, assign)
    else:
        list_reverse(p, i, V, NULL, G, NULL, C)


cdef inline void tangent_node(const Prog* p, Py_ssize_t i, Py_ssize_t k, const double* V,
                              double* T, Py_ssize_t C) noexcept nogil:
    """Forward-mode tangent of node i (or a run) from its operands' tangents."""
    cdef int o = p.op[i]
    cdef int kind = KIND_OF[o]
    cdef double* ti = T + i * C
    cdef const int32_t* arg = p.args + p.a[i]
    cdef const double* coef
    cdef const double* cond
    cdef const double* ta
    cdef const double* tb
    cdef Py_ssize_t j, l, n = p.b[i]
    if kind == K_INPUT:
        return
    if k > 1 and kind == K_DOT:  # a dot block, node by node
        for j in range(k):
            tangent_node(p, i + j, 1, V, T, C)
    elif kind == K_CONST or kind == K_UNARY or kind == K_UNARY_C or kind == K_GUARD:
        tangent_elem(o, k * C, constant(p, i), V + i * C, operand(p, i, V, C), NULL,
                     T + p.a[i] * C, NULL, ti)
    elif kind == K_BINARY:
        tangent_elem(o, k * C, 0.0, V + i * C, operand(p, i, V, C), V + p.b[i] * C,
                     T + p.a[i] * C, T + p.b[i] * C, ti)
    elif kind == K_SELECT:
        cond, ta, tb = V + arg[0] * C, T + arg[1] * C, T + arg[2] * C
        for l in range(C):
            ti[l] = ta[l] if cond[l] != 0.0 else tb[l]
    elif C == 1 and p.narrow == NULL:
        ti[0] = tangent_one_lane(p, i, V, T)
    else:
        for l in range(C):
            ti[l] = 0.0
        for j in range(n):
            ta = T + arg[j] * C
            if kind == K_SUM:
                for l in range(C):
                    ti[l] += ta[l]
            elif kind == K_DOT:
                tb = T + arg[n + j] * C
                for l in range(C):
                    ti[l] += ta[l] * V[arg[n + j] * C + l] + V[arg[j] * C + l] * tb[l]
            else:
                coef = p.pool + arg[n]
                for l in range(C):
                    ti[l] += coef[j] * ta[l]


cdef inline void hvp_node(const Prog* p, Py_ssize_t i, Py_ssize_t k, const double* V,
                          const double* T, double* G, double* H, Py_ssize_t C) noexcept nogil:
    """Reverse step for adjoints G and, forward over reverse, their tangents H."""
    cdef int o = p.op[i]
    cdef int kind = KIND_OF[o]
    cdef Py_ssize_t a = p.a[i], b = p.b[i]
    cdef int assign = p.flags[i] & (NODE_SETS_A | NODE_SETS_B) if p.first_writes else 0
    cdef Py_ssize_t j
    if kind == K_INPUT or kind == K_CONST or kind == K_GUARD:
        return
    if k > 1 and kind == K_DOT:  # a dot block, node by node
        for j in range(k - 1, -1, -1):
            hvp_node(p, i + j, 1, V, T, G, H, C)
    elif kind == K_UNARY or kind == K_UNARY_C:
        hvp_elem(o, k * C, constant(p, i), V + i * C, V + a * C, NULL, T + a * C, NULL,
                 G + i * C, G + a * C, NULL, H + i * C, H + a * C, NULL, assign)
    elif kind == K_BINARY:
        hvp_elem(o, k * C, 0.0, V + i * C, V + a * C, V + b * C, T + a * C, T + b * C,
                 G + i * C, G + a * C, G + b * C, H + i * C, H + a * C, H + b * C, assign)
    else:
        list_reverse(p, i, V, T, G, H, C)


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
    which must lie wholly before the run, so the run's lanes are independent.
    """
    cdef Py_ssize_t j = i + k
    cdef int o = p.op[i]
    cdef int kind = KIND_OF[o]
    if p.op[j] != o:
        return False
    if kind == K_CONST:
        return p.b[j] == p.b[i]
    if kind == K_DOT:
        return dot_joins(p, i, k)
    if kind != K_UNARY and kind != K_UNARY_C and kind != K_BINARY and kind != K_GUARD:
        return False
    if p.a[j] != p.a[i] + k or p.a[j] >= i:
        return False
    if kind == K_UNARY_C or kind == K_GUARD:
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


cdef void mark_lanewise(const Prog* p, const uint8_t* shared, Py_ssize_t n,
                        const int32_t* out, Py_ssize_t n_out, uint8_t* wide) noexcept nogil:
    """wide[u] = 1 for each input u that some sweep step reads lane by lane.
    A shared input read only as a dot's single number (uniform(), above)
    stays 0: its row is never touched."""
    cdef Prog q = p[0]
    cdef Py_ssize_t i, j, k, cnt, u, v, n_in = p.n_inputs
    cdef int kind
    cdef const int32_t* arg
    q.shared = shared
    for k in range(n_out):
        if out[k] < n_in:
            wide[out[k]] = 1
    for i in range(n_in, n):
        kind = KIND_OF[p.op[i]]
        if p.op[i] == OP_ADD or p.op[i] == OP_SUB:
            continue  # (shared operands read as one number: forward_biased)
        if kind == K_UNARY or kind == K_UNARY_C or kind == K_GUARD or kind == K_BINARY:
            if p.a[i] < n_in:
                wide[p.a[i]] = 1
            if kind == K_BINARY and p.b[i] < n_in:
                wide[p.b[i]] = 1
        elif kind == K_DOT:
            cnt, arg = p.b[i], p.args + p.a[i]
            for j in range(cnt):
                u, v = arg[j], arg[cnt + j]
                if uniform(&q, u):
                    if v < n_in:
                        wide[v] = 1
                elif uniform(&q, v):
                    if u < n_in:
                        wide[u] = 1
                else:
                    if u < n_in:
                        wide[u] = 1
                    if v < n_in:
                        wide[v] = 1
        elif kind >= K_SUM:
            cnt, arg = p.b[i], p.args + p.a[i]
            for j in range(cnt):
                if arg[j] < n_in:
                    wide[arg[j]] = 1


cdef void mark_needed(const Prog* p, Py_ssize_t n, uint8_t* need) noexcept nogil:
    """need[i] = 1 for every node some wanted input (need[u] = 1 on entry)
    reaches: only those nodes' adjoints matter for the wanted gradients."""
    cdef Py_ssize_t i, j, cnt
    cdef int kind
    cdef const int32_t* arg
    for i in range(p.n_inputs, n):
        kind = KIND_OF[p.op[i]]
        if kind == K_UNARY or kind == K_UNARY_C or kind == K_BINARY:
            need[i] = need[p.a[i]] or (kind == K_BINARY and need[p.b[i]])
        elif kind >= K_SUM:
            cnt, arg = p.b[i] * (2 if kind == K_DOT else 1), p.args + p.a[i]
            for j in range(cnt):
                if need[arg[j]]:
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
    cdef const int32_t* arg
    for j in range(n):
        last[j] = -1
        flags[j] |= NODE_ZEROED
    for i in range(p.n_inputs, n):  # readers that add to their operands' adjoints
        kind = KIND_OF[p.op[i]]
        if kind == K_UNARY or kind == K_UNARY_C or kind == K_BINARY:
            last[p.a[i]] = i
            if kind == K_BINARY:
                last[p.b[i]] = i
        elif kind >= K_SUM:
            cnt = 3 if kind == K_SELECT else p.b[i] * (2 if kind == K_DOT else 1)
            arg = p.args + p.a[i]
            for j in range(cnt):
                last[arg[j]] = i
    for j in range(n_out):
        last[out[j]] = n  # seeded before the sweep
    for r in range(nruns):
        i, k = starts[r], starts[r + 1] - starts[r]
        kind = KIND_OF[p.op[i]]
        if kind != K_UNARY and kind != K_UNARY_C and kind != K_BINARY:
            continue
        a0, b0 = p.a[i], p.b[i]
        ok_a, ok_b = True, kind == K_BINARY
        for t in range(k):
            ok_a = ok_a and last[a0 + t] == i + t
            ok_b = ok_b and last[b0 + t] == i + t
        if kind == K_BINARY and a0 < b0 + k and b0 < a0 + k:  # blocks that overlap:
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
