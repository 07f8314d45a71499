# Dot blocks: a layer of units as one matrix product. Included by _core.pyx.
#
# A run of dot nodes that share one operand list X (a layer's inputs), whose
# other operands are this call's shared weights W, computes lane by lane
# out[r] = sum_j W[r, j] * X[j]: a matrix product, swept here in register
# tiles over W as an (m, n) matrix (the call's own weights where they are
# consecutive nodes, else a copy gathered once a call) instead of one node
# at a time streaming X.
# Every lane's sums run in the same order as the node-by-node loops of
# sweeps.pxi (which a block falls back to when it does not apply); where
# the build targets FMA the tiles fuse each multiply-add (see tiles.h),
# elsewhere both paths give the same bits.

cdef extern from "_kernel/tiles.h":
    # units x a tile of lanes; units x inputs; 4 inputs x a tile of lanes (see there)
    bint FT_TILES
    bint FT_FMA
    int FT_TILE_LANES      # lanes per register tile: two vectors
    int FT_FR              # a forward tile's units, at most
    int FT_WR, FT_WC       # a weight tile's units and inputs
    void ft_forward_tiles(const double* W, Py_ssize_t n, const double** X, double* out,
                          Py_ssize_t C, Py_ssize_t tiled, int rows) noexcept nogil
    void ft_weight_tiles(const double* G, const double** X, Py_ssize_t C, double* dW,
                         Py_ssize_t n, int rows, int cols) noexcept nogil
    void ft_input_tile(const double* W, Py_ssize_t n, Py_ssize_t m, const double* G,
                       double** GX, Py_ssize_t C, Py_ssize_t l0) noexcept nogil

cdef Py_ssize_t TILE_LANES = FT_TILE_LANES


cdef inline bint same_list(const Prog* p, Py_ssize_t i, Py_ssize_t j, Py_ssize_t side) noexcept nogil:
    """Do dot nodes i and j have the same operand list on `side` (0 first, 1 second)?"""
    cdef Py_ssize_t t, n = p.b[i]
    cdef const int32_t* x = p.args + p.a[i] + side * n
    cdef const int32_t* y = p.args + p.a[j] + side * n
    if p.b[j] != n:
        return False
    for t in range(n):
        if x[t] != y[t]:
            return False
    return True


cdef inline Py_ssize_t shared_side(const Prog* p, Py_ssize_t i) noexcept nogil:
    """The operand list a dot run starting at node i shares: the second (the
    inputs, as in ft.dot(W[j], x)) when both could be."""
    return 1 if same_list(p, i, i + 1, 1) else 0


cdef bint dot_joins(const Prog* p, Py_ssize_t i, Py_ssize_t k) noexcept nogil:
    """May dot node i+k join the dot block starting at node i? It must share
    the block's operand list X, which must be increasing (no operand twice,
    so each X adjoint row gets its terms in node order), and read only nodes
    before the block."""
    cdef Py_ssize_t t, side, j = i + k, n = p.b[i]
    cdef const int32_t* arg = p.args + p.a[j]
    if n == 0 or p.b[j] != n:
        return False
    if k == 1:
        side = 1 if same_list(p, i, j, 1) else (0 if same_list(p, i, j, 0) else -1)
        if side < 0:
            return False
        for t in range(1, n):
            if arg[side * n + t] <= arg[side * n + t - 1]:
                return False
    elif not same_list(p, i, j, shared_side(p, i)):
        return False
    for t in range(2 * n):
        if arg[t] >= i:
            return False
    return True


cdef bint block_applies(const Prog* p, Py_ssize_t i, Py_ssize_t k,
                        Py_ssize_t side) noexcept nogil:
    """With p's shared inputs, are all of the block's W operands shared
    weights (one number each) and none of its X operands? (Layout asks.)"""
    cdef Py_ssize_t r, t, n = p.b[i]
    cdef const int32_t* arg
    if not FT_TILES or p.shared == NULL:
        return False
    for t in range(n):
        if uniform(p, p.args[p.a[i] + side * n + t]):
            return False
    for r in range(k):
        arg = p.args + p.a[i + r] + (1 - side) * n
        for t in range(n):
            if not uniform(p, arg[t]):
                return False
    return True


cdef object block_weight_nodes(const Prog* p, Py_ssize_t i, Py_ssize_t k):
    """The W operands of the block i .. i+k-1, row by row: (k * n,) int32."""
    cdef Py_ssize_t r, side = shared_side(p, i), n = p.b[i]
    out = np.empty(k * n, dtype=np.int32)
    cdef int32_t[::1] w = out
    for r in range(k):
        memcpy(&w[r * n], p.args + p.a[i + r] + (1 - side) * n, n * sizeof(int32_t))
    return out


cdef inline bint as_block(const Prog* p, Py_ssize_t i, Py_ssize_t C) noexcept nogil:
    return p.blocks != NULL and p.blocks[i] and C >= TILE_LANES


cdef struct Block:
    # One dot block in one chunk: W as an (m, n) matrix, X and its adjoints as rows.
    Py_ssize_t m, n, C
    const double* W
    double* dW             # (m, n) weight adjoints, summed over lanes
    const double** X       # n rows of C lanes
    double** GX            # their adjoint rows (NULL where not needed)
    const int32_t* wnode   # W's nodes, row by row (the block's other operand lists)


cdef int open_block(Block* blk, const Prog* p, Py_ssize_t i, Py_ssize_t k, Py_ssize_t side,
                    const double* V, double* G, Py_ssize_t C) noexcept nogil:
    """Point at W (gathered by the call) and gather X's rows; -1 when out of
    memory (the caller falls back)."""
    cdef Py_ssize_t t, n = p.b[i]
    cdef const int32_t* xs = p.args + p.a[i] + side * n
    blk.m, blk.n, blk.C = k, n, C
    blk.W = p.U + p.wfirst[i] if p.wfirst[i] >= 0 else p.W + p.woff[i]
    blk.wnode = p.wnode + p.woff[i]
    blk.dW = <double*> malloc((k * n + 1) * sizeof(double))
    blk.X = <const double**> malloc((2 * n + 1) * sizeof(double*))
    if blk.dW == NULL or blk.X == NULL:
        close_block(blk)
        return -1
    blk.GX = <double**> (blk.X + n)
    for t in range(n):
        blk.X[t] = V + xs[t] * C
        blk.GX[t] = G + xs[t] * C if G != NULL and needed(p, xs[t]) else NULL
    return 0


cdef void close_block(Block* blk) noexcept nogil:
    free(blk.dW)
    free(<void*> blk.X)


# ------------------------------------------------------------ forward

cdef inline void forward_row(const Block* blk, const double* W, double* out,
                             Py_ssize_t l0, Py_ssize_t lanes) noexcept nogil:
    """One unit over `lanes` lanes from l0 (the tiles' leftovers)."""
    cdef Py_ssize_t j, l
    cdef const double* x
    cdef double w
    for l in range(l0, l0 + lanes):
        out[l] = 0.0
    for j in range(blk.n):
        x, w = blk.X[j], W[j]
        for l in range(l0, l0 + lanes):
            out[l] += w * x[l]


cdef void block_forward(const Block* blk, double* out) noexcept nogil:
    """out[r, l] = sum_j W[r, j] * X[j][l], for the m rows of the block."""
    cdef Py_ssize_t r = 0, m = blk.m, n = blk.n, C = blk.C
    cdef Py_ssize_t tiled = C - C % TILE_LANES
    while r < m:
        ft_forward_tiles(blk.W + r * n, n, blk.X, out + r * C, C, tiled, min(FT_FR, m - r))
        r += FT_FR
    for r in range(m):
        forward_row(blk, blk.W + r * n, out + r * C, tiled, C - tiled)


# ------------------------------------------------------------ reverse

cdef void block_weights(const Block* blk, const double* G) noexcept nogil:
    """dW[r, j] = sum over lanes of X[j] * G[r] (G: the block's adjoint rows),
    with zero adjoints contributing nothing where a sum comes out NaN."""
    cdef Py_ssize_t r, j, l, m = blk.m, n = blk.n, C = blk.C
    cdef double total
    cdef bint nan = False
    j = 0
    while j < n:  # a few inputs' rows stay in L1 while every unit's adjoints pass by
        r = 0
        while r < m:
            ft_weight_tiles(G + r * C, blk.X + j, C, blk.dW + r * n + j, n,
                            min(FT_WR, m - r), min(FT_WC, n - j))
            r += FT_WR
        j += FT_WC
    for r in range(m * n):  # (no branch: it vectorizes)
        nan |= blk.dW[r] != blk.dW[r]
    for r in range(m * n if nan else 0):
        if blk.dW[r] != blk.dW[r]:  # as dot_shared: let zero adjoints contribute nothing
            total = 0.0
            for l in range(C):
                total += zmul(blk.X[r % n][l], G[(r // n) * C + l])
            blk.dW[r] = total


cdef void input_rows(const Block* blk, const double* G, Py_ssize_t j,
                     Py_ssize_t l0) noexcept nogil:
    """GX[j] over lanes l0 .. C-1, one input at a time."""
    cdef Py_ssize_t r, l, n = blk.n, C = blk.C
    cdef double* gx = blk.GX[j]
    cdef double w
    if gx == NULL:
        return
    for r in range(blk.m - 1, -1, -1):
        w = blk.W[r * n + j]
        for l in range(l0, C):
            gx[l] += zmul(w, G[r * C + l])


cdef void block_inputs(const Block* blk, const double* G) noexcept nogil:
    """GX[j] += sum_r W[r, j] * G[r], the units in reverse node order, as the
    node-by-node reverse sweep adds them. Inputs whose adjoints are not
    needed (a batch's data) are skipped."""
    cdef Py_ssize_t j = 0, c, l0, n = blk.n, C = blk.C
    cdef Py_ssize_t tiled = C - C % TILE_LANES
    while j < n:
        if j + 4 <= n and blk.GX[j] != NULL and blk.GX[j + 1] != NULL \
                and blk.GX[j + 2] != NULL and blk.GX[j + 3] != NULL:
            l0 = 0
            while l0 < tiled:
                ft_input_tile(blk.W + j, n, blk.m, G, blk.GX + j, C, l0)
                l0 += TILE_LANES
            for c in range(4):
                input_rows(blk, G, j + c, tiled)
            j += 4
        else:
            input_rows(blk, G, j, 0)
            j += 1


# ------------------------------------------------------------ the sweeps' entries

cdef void forward_dots(const Prog* p, Py_ssize_t i, Py_ssize_t k, double* V,
                       Py_ssize_t C) noexcept nogil:
    """Values of the dot block i .. i+k-1."""
    cdef Block blk
    cdef Py_ssize_t r, side = shared_side(p, i)
    if as_block(p, i, C) and open_block(&blk, p, i, k, side, V, NULL, C) == 0:
        block_forward(&blk, V + i * C)
        close_block(&blk)
        return
    for r in range(k):
        forward_node(p, i + r, 1, V, C)


cdef void reverse_dots(const Prog* p, Py_ssize_t i, Py_ssize_t k, const double* V,
                       double* G, Py_ssize_t C) noexcept nogil:
    """Adjoints from the dot block i .. i+k-1 to its operands."""
    cdef Block blk
    cdef Py_ssize_t r, t, side = shared_side(p, i), n = p.b[i]
    for r in range(k):
        if not needed(p, i + r):
            break
    else:
        if as_block(p, i, C) and open_block(&blk, p, i, k, side, V, G, C) == 0:
            block_inputs(&blk, G + i * C)
            block_weights(&blk, G + i * C)
            if p.wfirst[i] >= 0:  # distinct weights: any order
                for t in range(k * n):
                    p.GU[p.wfirst[i] + t] += blk.dW[t]
            else:
                for r in range(k - 1, -1, -1):  # node order, as if swept one by one
                    for t in range(n):
                        p.GU[blk.wnode[r * n + t]] += blk.dW[r * n + t]
            close_block(&blk)
            return
    for r in range(k - 1, -1, -1):
        reverse_node(p, i + r, 1, V, G, C)
