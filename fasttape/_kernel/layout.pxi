# Layouts: how calls split a program's inputs. Included by _core.pyx.

cdef int32_t NO_WEIGHTS[1]  # where a Layout without blocks points its weight arrays


cdef class Layout:
    """How calls split a program's inputs into shared and batched ones, and
    what follows from that, worked out once: which shared inputs are only
    read as one number (narrow: they get no rows), which adjoints matter
    (needed), which dot layers run as blocks. Program.run makes one per
    call; a replay plan keeps one per in_axes and wrt, and its
    value_and_grad takes the arguments themselves, with no Python between
    them and the sweep."""
    cdef readonly Program program
    cdef readonly Py_ssize_t ns, nb, n_narrow, block_terms  # (terms: of all dot blocks)
    cdef Py_ssize_t n_gathered       # weights gathered per call: block_terms, or 0
    cdef object _nodes               # private copies of the shared and batched nodes
    cdef const int32_t* _sn
    cdef const int32_t* _bn
    cdef Py_ssize_t _sn_first, _bn_first  # first_of() each
    cdef uint8_t* _flags             # one buffer for the two below
    cdef uint8_t* _kinds             # per input node: 1 shared, 2 batched
    cdef uint8_t* _needed            # per node (NULL: all adjoints matter)
    cdef object _analysis            # the arrays of the first batched call's _analyse:
    cdef uint8_t* _narrow            # per input node (NULL before: not done yet),
    cdef uint8_t* _blocks            # per node
    cdef const int32_t* _wnode
    cdef const int32_t* _woff
    cdef const int32_t* _wfirst
    cdef const int32_t* _wide
    # The arguments of value_and_grad: per argument its per-sample shape,
    # first input node, size, and whether batched and wanted.
    cdef Py_ssize_t n_args
    cdef tuple _shapes
    cdef Py_ssize_t _first[MAX_PARTS]
    cdef Py_ssize_t _size[MAX_PARTS]
    cdef bint _batched[MAX_PARTS]
    cdef bint _wanted[MAX_PARTS]

    def __init__(self, Program program, shared_nodes, batch_nodes, wanted=None, args=None):
        cdef Py_ssize_t k, n_in = program.n_inputs, n = program.n
        cdef const int32_t* want
        self.program = program
        sn = np.array(node_indices("shared_nodes", shared_nodes, n_in), dtype=np.int32)
        bn = np.array(node_indices("batch_nodes", batch_nodes, n_in), dtype=np.int32)
        self._nodes = (sn, bn)
        self._sn, self._bn = <int32_t*> cnp.PyArray_DATA(sn), <int32_t*> cnp.PyArray_DATA(bn)
        self.ns, self.nb = cnp.PyArray_SIZE(sn), cnp.PyArray_SIZE(bn)
        self._sn_first, self._bn_first = first_of(self._sn, self.ns), first_of(self._bn, self.nb)
        self._flags = <uint8_t*> calloc((n_in + 1) + (n + 1), 1)
        if self._flags == NULL:
            raise MemoryError()
        self._kinds = self._flags
        self._check_kinds()
        if wanted is not None:
            wanted = carray(node_indices("wanted", wanted, n_in), cnp.NPY_INT32)
            want = <int32_t*> cnp.PyArray_DATA(wanted)
            self._needed = self._flags + n_in + 1
            for k in range(cnp.PyArray_SIZE(wanted)):
                if not 0 <= want[k] < n_in:
                    raise ValueError(f"wanted holds an index outside the {n_in} input nodes")
                self._needed[want[k]] = 1
            mark_needed(&program.p, n, self._needed)
        self.n_args = -1
        if args is not None:
            self._set_args(args)

    def __dealloc__(self):
        free(self._flags)

    cdef int _check_kinds(self) except -1:
        """Per input node 1 (shared) or 2 (batched): each exactly once."""
        cdef Py_ssize_t k, v, n_in = self.program.n_inputs
        if self.ns + self.nb != n_in:
            raise ValueError(f"expected each of the {n_in} input nodes once")
        for k in range(self.ns + self.nb):
            v = self._sn[k] if k < self.ns else self._bn[k - self.ns]
            if v < 0 or v >= n_in or self._kinds[v]:
                raise ValueError(f"expected each of the {n_in} input nodes once")
            self._kinds[v] = 1 if k < self.ns else 2
        return 0

    cdef int _analyse(self) except -1:
        """For batched calls: which shared inputs no sweep step reads lane by
        lane (narrow), and where runs of dots start that sweep as blocks.
        Another thread may call meanwhile (the NumPy calls here let it run):
        everything is built in locals and published at the end, the narrow
        pointer, which says it is done, last."""
        cdef Program prog = self.program
        cdef Py_ssize_t k, r, i, n_in = prog.n_inputs, n_narrow = 0, terms, gathered
        cdef Prog q = prog.p
        if self._narrow != NULL or self.ns == 0:
            return 0
        flags = np.zeros((n_in + 1) + (prog.n + 1), dtype=np.uint8)
        cdef uint8_t* narrow = <uint8_t*> cnp.PyArray_DATA(flags)
        cdef uint8_t* blocks = narrow + (n_in + 1)
        mark_lanewise(&prog.p, self._kinds, prog.n, &prog._out[0], prog.n_outputs, narrow)
        for k in range(n_in):
            narrow[k] = self._kinds[k] == 1 and not narrow[k]
            n_narrow += narrow[k]
        wide_nodes = np.empty(self.ns - n_narrow + 1, dtype=np.int32)
        cdef int32_t* wide = <int32_t*> cnp.PyArray_DATA(wide_nodes)
        r = 0
        for k in range(n_in):
            if self._kinds[k] == 1 and not narrow[k]:
                wide[r] = k
                r += 1
        q.shared = self._kinds
        found = []
        for r in range(prog._starts.shape[0] - 1):
            i, k = prog._starts[r], prog._starts[r + 1] - prog._starts[r]
            if k > 1 and KIND_OF[q.op[i]] == K_DOT:
                blocks[i] = block_applies(&q, i, k, shared_side(&q, i))
                if blocks[i]:
                    found.append((i, k))
        wnode, woff, wfirst, terms, gathered = place_weights(&q, found, prog.n)
        keep = (flags, wide_nodes, wnode, woff, wfirst)
        if self._narrow != NULL:  # another thread got there first: its arrays stay
            return 0
        # Publish. (Only C assignments from here on: no other thread can run.)
        self._analysis = keep
        self._wide, self._blocks, self.n_narrow = wide, blocks, n_narrow
        self.block_terms, self.n_gathered = terms, gathered
        self._wnode = self._woff = self._wfirst = &NO_WEIGHTS[0]
        if terms:
            self._wnode = <int32_t*> cnp.PyArray_DATA(wnode)
            self._woff = <int32_t*> cnp.PyArray_DATA(woff)
            self._wfirst = <int32_t*> cnp.PyArray_DATA(wfirst)
        self._narrow = narrow
        return 0

    cdef _set_args(self, args):
        """Arguments (shape, batched, wanted), in input node order, for
        value_and_grad."""
        cdef Py_ssize_t k, first = 0, size
        args = list(args)
        if len(args) > MAX_PARTS or self.program.n_outputs < 1:
            return  # no fast path: run() takes them
        shapes = []
        for k, (shape, batched, wanted) in enumerate(args):
            shape = tuple(int(d) for d in shape)
            size = int(np.prod(shape))
            shapes.append(shape)
            self._first[k], self._size[k] = first, size
            self._batched[k], self._wanted[k] = bool(batched), bool(wanted)
            first += size
        if first != self.program.n_inputs:
            raise ValueError(f"the arguments hold {first} inputs, not {self.program.n_inputs}")
        self._shapes, self.n_args = tuple(shapes), len(args)

    def value_and_grad(self, tuple args):
        """(values of output 0 (B,), the adjoints of output 0 for each wanted
        argument, shaped like it: a shared one's summed over lanes), for
        arguments that are all aligned C-contiguous float64 arrays of the
        layout's shapes (or floats, for shared scalars), with one batch size
        B. With nothing batched (one sample), the value is a float. None for
        anything else: the caller then takes the general path, which converts
        and checks."""
        cdef Py_ssize_t k, B = -1, n_args = self.n_args, n_out = self.program.n_outputs
        cdef cnp.ndarray arr
        cdef Call c
        cdef double scalars[MAX_PARTS]
        cdef const double* src[MAX_PARTS]
        if n_args < 0 or len(args) != n_args:
            return None
        for k in range(n_args):
            arg = args[k]
            if type(arg) is float and not self._batched[k] and not self._shapes[k]:
                scalars[k] = <double> arg
                src[k] = &scalars[k]
                continue
            if type(arg) is not np.ndarray:
                return None
            src[k] = <const double*> cnp.PyArray_DATA(<cnp.ndarray> arg)
            arr = <cnp.ndarray> arg
            if cnp.PyArray_TYPE(arr) != cnp.NPY_FLOAT64 or not cnp.PyArray_ISCARRAY_RO(arr):
                return None
            if not self._batched[k]:
                if not same_shape(arr, 0, self._shapes[k]):
                    return None
            elif cnp.PyArray_NDIM(arr) < 1 or not same_shape(arr, 1, self._shapes[k]):
                return None
            elif B < 0:
                B = cnp.PyArray_DIMS(arr)[0]
            elif cnp.PyArray_DIMS(arr)[0] != B:
                return None
        cdef bint one = B < 0  # one sample: every argument shared
        if one:
            if self.nb:
                return None
            B = 1
        grads = []
        for k in range(n_args):
            g = None
            if self._wanted[k]:
                g = new_array(B, self._size[k], True) if self._batched[k] else \
                    new_array(-1, self._size[k], True)
                grads.append(g)
            set_part(&c.parts[k], self.program._input_nodes + self._first[k], self._size[k],
                     self._first[k], self._batched[k], src[k], NULL, data(g), NULL)
        c.n_parts = n_args
        values = new_array(-1 if n_out == 1 else B, B if n_out == 1 else n_out, False)
        c.seed, c.out, c.tout = NULL, data(values), NULL  # (no seed: output 0's gradient)
        self.program._call(&c, self, B, True, False, False)
        if one:
            return float(values[0] if n_out == 1 else values[0, 0]), self._shaped(grads, B)
        return (values if n_out == 1 else values[:, 0]), self._shaped(grads, B)

    cdef tuple _shaped(self, list grads, Py_ssize_t B):
        cdef Py_ssize_t k, j = 0
        for k in range(self.n_args):
            if not self._wanted[k]:
                continue
            shape = self._shapes[k]
            if self._batched[k]:
                if len(shape) != 1:
                    grads[j] = grads[j].reshape((B,) + shape)
            elif len(shape) == 0:
                grads[j] = float(grads[j][0])
            elif len(shape) > 1:
                grads[j] = grads[j].reshape(shape)
            j += 1
        return tuple(grads)


cdef tuple place_weights(const Prog* q, list found, Py_ssize_t n):
    """Where the blocks found (first node, nodes) read their weights, as
    (wnode, woff, wfirst, terms, gathered): their nodes row by row, block
    after block (wnode, from woff[i] for the block at node i), and their
    first node where they are consecutive (wfirst[i], else -1), which the
    block reads in place; the others (gathered: all terms, or 0) are
    gathered once a call. (No arrays where no block applies.)"""
    cdef Py_ssize_t terms = 0
    if not found:  # (most batched calls of small tapes: nothing to place)
        return None, None, None, 0, 0
    woff, wfirst = np.zeros(n + 1, dtype=np.int32), np.full(n + 1, -1, dtype=np.int32)
    wnode = []
    for i, k in found:
        nodes = block_weight_nodes(q, i, k)
        woff[i] = terms
        wnode.append(nodes)
        terms += len(nodes)
        if (np.diff(nodes) == 1).all():  # (a flat weight matrix)
            wfirst[i] = nodes[0]
    gathered = terms if any(wfirst[i] < 0 for i, _ in found) else 0
    return np.concatenate(wnode), woff, wfirst, terms, gathered


cdef inline bint same_shape(cnp.ndarray arr, int skip, tuple shape):
    """arr.shape[skip:] == shape."""
    cdef int d, nd = cnp.PyArray_NDIM(arr)
    cdef cnp.npy_intp* dims = cnp.PyArray_DIMS(arr)
    if nd - skip != len(shape):
        return False
    for d in range(skip, nd):
        if dims[d] != <Py_ssize_t> shape[d - skip]:
            return False
    return True
