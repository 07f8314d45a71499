"""ft.Tape and ft.trace: record a function once, replay it many times.

A traced Tape is frozen: its program (validated arrays) never changes, and
every call sweeps in a workspace of its own. `with ft.Tape() as t:` instead
gives a tape that records eager Vars made inside the block.
"""

import functools
import inspect
import operator

import numpy as np

from . import args as A
from . import io, listing, ops, sparsity
from .backend import kernel
from .errors import ArgumentError, ArgumentTypeError, GuardError, NonFiniteError, TapeError
from .numpy_api import traced
from .var import Var, end_tracing_guards, pop_recorder, push_recorder, tracing_guards

_NO_INPUTS = np.zeros(0)                 # (read-only: shared by every call)
_NO_INPUTS.flags.writeable = False
_NO_NODES = np.zeros(0, dtype=np.int32)
_NO_NODES.flags.writeable = False


def _explained(method):
    """Re-raise the kernel's guard and non-finite reports in the listing's words."""
    @functools.wraps(method)
    def wrapper(self, *args, **kw):
        try:
            return method(self, *args, **kw)
        except (GuardError, NonFiniteError) as exc:
            raise self._explain(exc) from None
    return wrapper


def _picker(idx):
    """The entries at indices idx of a list, as a tuple."""
    return operator.itemgetter(*idx) if len(idx) > 1 else (lambda g, k=idx[0]: (g[k],))


class Tape:
    """A Wengert list: recording (in a ``with`` block) or traced and frozen.

    ``ft.trace(fn, *args)`` (or ``ft.load``) gives a traced tape: frozen,
    replayable at new arguments of the traced shapes, safe to share between
    threads. ``with ft.Tape() as t:`` gives a recording tape instead: Vars
    made inside the block record on it (``len(t)`` counts its nodes); it
    cannot be replayed (calling it raises TapeError).

    Replay methods take the traced function's positional arguments (floats
    or float arrays of the traced shapes) and an optional ``in_axes``:
    ``None`` for one sample, or per argument ``None`` (shared) or ``0``
    (batched: a leading axis of B samples), as one value for all or a tuple.
    ``wrt`` is an argument index or a tuple of them (default 0).

    Examples
    --------
    >>> tape = ft.trace(lambda w, x, y: (w * x - y) ** 2 + w ** 2, 1.0, 2.0, 3.0)
    >>> tape(1.0, 2.0, 3.0), tape.grad(1.0, 2.0, 3.0, wrt=(0, 1, 2))
    (2.0, (-2.0, -2.0, 2.0))
    """

    _scalars = _fast_grad = False  # fast paths, for traced tapes only
    _plans = None
    _layouts = None

    def __init__(self):
        self._rec = kernel.Recorder()
        self._program = None

    def __enter__(self):
        if self._program is not None:
            raise TapeError("a traced tape is frozen; it cannot record more")
        push_recorder(self._rec)
        return self

    def __exit__(self, *exc):
        pop_recorder(self._rec)
        return False

    @classmethod
    def _traced(cls, program, names, shapes, out_spec, fn_name):
        tape = cls.__new__(cls)
        tape._rec, tape._program = None, program
        tape._names, tape._shapes = tuple(names), tuple(tuple(s) for s in shapes)
        tape._out_spec, tape._fn_name = out_spec, fn_name
        # Every argument a scalar: the kernel's one-sample fast path applies.
        tape._scalars = all(s == () for s in tape._shapes)
        tape._fast_grad = tape._scalars and out_spec == "s"
        tape._call1 = program.call1
        tape._picks = {}  # a tuple wrt checked once -> its gradients' picker (the fast path)
        tape._plans, tape._seeds, tape._layouts = {}, {}, {}
        tape._pattern, tape._colourings = None, {}
        sizes = [int(np.prod(s)) for s in tape._shapes]
        tape._offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64).tolist()
        tape._all_nodes = np.arange(program.n_inputs, dtype=np.int32)
        return tape

    # ------------------------------------------------------------ as data

    def _prog(self):
        if self._program is None:
            raise TapeError("this tape records eager Vars; make a replayable one with ft.trace")
        return self._program

    def __len__(self):
        return len(self._rec) if self._program is None else self._program.n

    @property
    def n_inputs(self):
        """The number of input nodes (an int): one per float in the traced
        arguments, so a scalar counts 1 and an array its size."""
        return self._prog().n_inputs

    @property
    def n_outputs(self):
        """The number of output nodes (an int): one per float in the traced
        output's structure, so a scalar output counts 1."""
        return self._prog().n_outputs

    @property
    def nbytes(self):
        """Bytes of the tape's arrays, a batch-1 workspace (values, adjoints)
        and what the kernel works out once for its sweeps (an int; the two
        backends count their own sweep plans, so it differs between them)."""
        p = self._prog()
        arrays = (p.op, p.a, p.b, p.pool, p.args, p.outputs)
        return sum(x.nbytes for x in arrays) + 2 * 8 * p.n + p.plan_nbytes

    def __str__(self):
        return listing.wengert(self._prog(), self._names, self._shapes, self._out_spec)

    def to_dot(self):
        """Graphviz DOT text of the tape's graph (a str): inputs as boxes
        named after the arguments, nodes labelled as ``str(tape)`` writes
        them. Render with ``dot -Tsvg``. TapeError on a recording tape."""
        from .graphviz import to_dot
        return to_dot(self._prog(), self._names, self._shapes, self._out_spec)

    def save(self, path):
        """Write the tape to ``path`` (a path, written at exactly that name,
        or a binary file object) as an uncompressed ``.npz`` that
        ``ft.load`` reads back; ``fasttape/io.py`` documents the format.

        Raises
        ------
        TapeError
            On a recording tape.
        OSError
            The file cannot be written.
        """
        io.write(path, *self._as_data())

    def __reduce__(self):
        """Pickle as the saved file's entries. Unpickling untrusted bytes can
        run arbitrary code (any pickle can); ft.load reads a file from
        elsewhere safely: it is checked and never executes code."""
        return Tape._unpickle, (io.pack(*self._as_data()),)

    @classmethod
    def _unpickle(cls, entries):
        return cls._from_data(*io.unpack(entries))

    def _as_data(self):
        """(arrays, meta): the program's arrays and the metadata io saves with them."""
        p = self._prog()
        arrays = {key: getattr(p, key) for key in io.ARRAYS}
        meta = {"n_inputs": p.n_inputs, "names": self._names, "shapes": self._shapes,
                "out_spec": self._out_spec, "fn_name": self._fn_name}
        return arrays, meta

    @classmethod
    def _from_data(cls, arrays, meta):
        """The traced Tape of io's (arrays, meta); the kernel validates the program."""
        program = kernel.Program(arrays["op"], arrays["a"], arrays["b"], arrays["pool"],
                                 arrays["args"], meta["n_inputs"], arrays["outputs"])
        return cls._traced(program, meta["names"], meta["shapes"], meta["out_spec"],
                           meta["fn_name"])

    def __repr__(self):
        if self._program is None:
            return f"<ft.Tape recording, {len(self)} nodes>"
        return (f"<ft.Tape of {self._fn_name}({', '.join(self._names)}): {len(self)} nodes, "
                f"{self.n_inputs} inputs, {self.n_outputs} outputs>")

    # ------------------------------------------------------------ replay

    def _split(self, args, in_axes):
        """(plan, shared values, batch rows, B) for a call: arrays of the traced
        shapes go straight through; anything else is checked and converted by
        args.check, which also words the errors."""
        plan = self._plan(in_axes)
        split = plan.split(args)
        if split is None:
            split = plan.split(A.check(args, self._names, self._shapes, plan.axes, self._fn_name))
        return (plan,) + split

    def _outputs(self, plan, flat):
        return A.unflatten(flat if plan.batched else flat[0], self._out_spec, plan.batched)

    @_explained
    def __call__(self, *args, in_axes=None):
        """The outputs at ``args`` (forward sweep only).

        Parameters
        ----------
        *args : float or array_like
            One per traced argument, of its traced shape (with a leading
            batch axis where ``in_axes`` says 0).
        in_axes : None, 0, or tuple of None / 0
            None: one sample. Else per argument, shared or batched.

        Returns
        -------
        The output in the traced structure (a float, an ndarray, a tuple or
        list of them); batched, each leaf gains a leading axis of B.

        Raises
        ------
        ArgumentError, ArgumentTypeError
            Wrong number, shape or dtype of arguments.
        GuardError
            A recorded branch comes out otherwise.
        FloatingPointError
            A NaN or infinity, with ``ft.check_finite`` on.
        """
        if in_axes is None and self._scalars:
            fast = self._call1(args, False)  # scalars in: no arrays at all
            if fast is not None:
                if self._out_spec == "s":
                    return fast[0][0]
                return A.unflatten(np.array(fast[0]), self._out_spec, False)
        plan, shared, batch, B = self._split(args, in_axes)
        out, _, _, _ = self._run(plan, shared, batch, B)
        return self._outputs(plan, out)

    def _explain(self, exc):
        """The kernel names a node; say it as str(tape) does."""
        p = self._program
        names = listing.node_names(p, self._names, self._shapes)
        line = lambda i: f"{names[i]} = {listing.expression(p, i, names)}"
        if isinstance(exc, NonFiniteError):
            op = ops.OPS[p.op[exc.node]].name
            return NonFiniteError(f"check_finite: {op} produced a NaN or an infinity at "
                                  f"{line(exc.node)}", node=exc.node)
        cond = int(p.a[exc.node])
        was = "true" if p.pool[p.b[exc.node]] else "false"
        where = ""
        if len(exc.lanes) < exc.lanes_of:
            where = (f" in lanes {exc.lanes.tolist()[:10]} of {exc.lanes_of}; samples that "
                     f"branch differently need ft.where(cond, a, b) instead of if")
        elif exc.lanes_of > 1:
            where = f" in all {exc.lanes_of} lanes"
        return GuardError(f"guard {line(exc.node)}: the condition {line(cond)} was {was} when "
                          f"traced and is not now{where}. Functions from ft.grad and friends "
                          f"re-trace; ft.where records both branches",
                          node=exc.node, lanes=exc.lanes, lanes_of=exc.lanes_of)

    def _scalar_output(self, what):
        self._prog()
        if self._out_spec != "s":
            raise ArgumentTypeError(f"{what} needs a scalar output, but {self._fn_name} returns "
                                    f"{_describe(self._out_spec)}; use jacobian or vjp")

    def value_and_grad(self, *args, wrt=0, in_axes=None):
        """``(value, gradient)`` of a scalar output, by one forward and one
        reverse sweep.

        Parameters
        ----------
        *args : float or array_like
            As for calling the tape.
        wrt : int or tuple of ints, default 0
            The argument(s) to differentiate by.
        in_axes : None, 0, or tuple of None / 0
            As for calling the tape.

        Returns
        -------
        value : float, or ndarray of shape (B,) when batched
        gradient : float or ndarray, or a tuple of them for a tuple ``wrt``
            Each of its argument's shape. Batched: a batched argument's
            gradient is per sample, ``(B,) + shape``; a shared argument's is
            the sum over the batch.

        Raises
        ------
        ArgumentTypeError
            The output is not a scalar (use ``jacobian`` or ``vjp``), or
            arguments of the wrong number or dtype.
        ArgumentError
            A wrong shape, or ``wrt`` not naming an argument.
        GuardError, FloatingPointError
            As for calling the tape.
        """
        try:
            if self._fast_grad and in_axes is None:  # scalars in, scalar out: no arrays at all
                if type(wrt) is int and 0 <= wrt < len(args):
                    fast = self._call1(args, True)
                    if fast is not None:
                        return fast[0][0], fast[1][wrt]
                elif type(wrt) is tuple:
                    entry = self._picks.get(wrt)
                    if entry is not None and (entry[0] is wrt or self._pick(wrt)):
                        fast = self._call1(args, True)
                        if fast is not None:
                            return fast[0][0], entry[1](fast[1])
            kept = self._kept_layout(in_axes, wrt)
            if kept is not None:  # arguments seen before: straight to the kernel
                fast = kept[0].value_and_grad(args)
                if fast is not None:
                    if kept[2]:
                        return fast[0], fast[1][0]
                    return fast[0], tuple(fast[1][k] for k in kept[1])
            return self._value_and_grad(args, wrt, in_axes)
        except (GuardError, NonFiniteError) as exc:  # (inline, not _explained: the hot path)
            raise self._explain(exc) from None

    def _pick(self, wrt):
        """Is this tuple wrt, equal to one checked before but another object,
        exact (plain ints)? Then it is the one the fast path tries first. Only
        the exact form takes the fast path: (True,) equals (1,), but takes the
        checked path, so an answer never depends on what was cached before."""
        if not A.exact_wrt(wrt):
            return False
        self._picks[wrt] = (wrt, self._picks[wrt][1])
        return True

    def _value_and_grad(self, args, wrt, in_axes):
        self._prog()  # (a recording tape: a TapeError saying what to do)
        if self._out_spec != "s":
            self._scalar_output("value_and_grad")
        idx, single = A.normalize_wrt(wrt, len(self._shapes))
        wrt = tuple(wrt) if type(wrt) is list else wrt  # (lists are tuples, kept as such)
        in_axes = tuple(in_axes) if type(in_axes) is list else in_axes
        plan, shared, batch, B = self._split(args, in_axes)
        if plan.batched:
            out, gs, gb, _ = self._run(plan, shared, batch, B, idx, seed=self._ones(B))
            value = out[:, 0]
            self._keep_layout(plan, in_axes, wrt, idx, single)
        else:  # one sample: every input, in order
            values, gs = self._program.call_flat(shared, True)
            value, gb = float(values[0]), None
            self._keep_layout(plan, in_axes, wrt, idx, single)
        grads = tuple(plan.part(k, gs, gb, B) for k in idx)
        if (self._fast_grad and in_axes is None and type(wrt) is tuple and A.exact_wrt(wrt)
                and len(self._picks) < 64):
            self._picks[wrt] = (wrt, _picker(idx))  # (checked: later calls take the fast path)
        return value, (grads[0] if single else grads)

    @_explained
    def value_and_grad_aux(self, *args, wrt=0, in_axes=None):
        """``(outputs, gradient of the first output)`` for a function that
        returns a tuple ``(value, aux ...)``: ``value_and_grad`` with an
        auxiliary output, as ``ft.value_and_grad(..., has_aux=True)`` uses.

        Parameters
        ----------
        *args, wrt, in_axes
            As for :meth:`value_and_grad`.

        Returns
        -------
        outputs : tuple
            The whole output, ``(value, aux ...)``, as calling the tape gives.
        gradient
            Of the value, as :meth:`value_and_grad` gives it.

        Raises
        ------
        ArgumentTypeError
            The output is not a tuple whose first item is a scalar.
        """
        spec = self._out_spec
        if spec == "s" or spec[0] != "t" or not spec[1] or spec[1][0] != "s":
            raise ArgumentTypeError(f"with has_aux, {self._fn_name} must return "
                                    f"(a scalar, auxiliary data)")
        idx, single = A.normalize_wrt(wrt, len(self._shapes))
        plan, shared, batch, B = self._split(args, in_axes)
        seed = np.zeros((B, self._program.n_outputs))
        seed[:, 0] = 1.0  # the value's gradient; the auxiliary outputs ride along
        out, gs, gb, _ = self._run(plan, shared, batch, B, idx, seed=seed)
        grads = tuple(plan.part(k, gs, gb, B) for k in idx)
        return self._outputs(plan, out), (grads[0] if single else grads)

    def _kept_layout(self, in_axes, wrt):
        """(Layout, gradient order, single) kept for a call with in_axes and
        wrt, or None. Only canonical forms find one: np.int64(1) and True
        equal 1, but take the checked path, so a call's answer never depends
        on what was cached before it."""
        try:
            kept = self._layouts.get((in_axes, wrt))
        except (TypeError, AttributeError):  # a list: unhashable; a recording tape: none
            return None
        if kept is None or not (A.exact_wrt(wrt) and A.exact_axes(in_axes)):
            return None
        return kept

    def _fast_path(self, wrt, in_axes, grad_only):
        """A function of the arguments giving value_and_grad (or grad) by a
        kept Layout, or None when it gets arguments it does not take or no
        Layout is kept for in_axes and wrt."""
        if self._fast_grad and in_axes is None and A.exact_wrt(wrt):
            return self._fast_scalars(wrt, grad_only)
        kept = self._kept_layout(in_axes, wrt)
        if kept is None:
            return None
        run, order, single = kept[0].value_and_grad, kept[1], kept[2]

        def fast(args):
            try:
                out = run(args)
            except (GuardError, NonFiniteError) as exc:
                raise self._explain(exc) from None
            if out is None:
                return None
            grads = out[1][0] if single else tuple(out[1][k] for k in order)
            return grads if grad_only else (out[0], grads)
        return fast

    def _fast_scalars(self, wrt, grad_only):
        """_fast_path for a tape of scalars to a scalar: the kernel's
        one-sample call, which takes Python floats as they are."""
        call1, n = self._call1, len(self._shapes)
        if not all(0 <= k < n for k in ((wrt,) if type(wrt) is int else wrt)):
            return None
        pick = operator.itemgetter(wrt) if type(wrt) is int else _picker(wrt)

        def fast(args):
            try:
                out = call1(args, True)
            except (GuardError, NonFiniteError) as exc:
                raise self._explain(exc) from None
            if out is None:
                return None
            return pick(out[1]) if grad_only else (out[0][0], pick(out[1]))
        return fast

    def _layout(self, plan, wanted):
        """The plan's Layout for the arguments `wanted` (indices; None: every
        adjoint), made on first use; it also takes those arguments directly."""
        layout = plan.layouts.get(wanted)
        if layout is None:
            args = [(shape, ax == 0, wanted is None or k in wanted)
                    for k, (shape, ax) in enumerate(zip(self._shapes, plan.axes))]
            nodes = None if wanted is None else plan.wanted(wanted)
            layout = plan.layouts[wanted] = self._program.layout(
                plan.shared_nodes, plan.batch_nodes, nodes, args)
        return layout

    def _run(self, plan, shared, batch, B, wanted=None, **kw):
        """Program.run on the plan's split, with the plan's Layout."""
        return self._program.run(shared, plan.shared_nodes, batch, plan.batch_nodes, B,
                                 layout=self._layout(plan, wanted), **kw)

    def _keep_layout(self, plan, in_axes, wrt, idx, single):
        """Keep the Layout of a value_and_grad under its in_axes and wrt (in
        their canonical forms only), for the fast path to find with no Python
        in between."""
        if not (A.exact_wrt(wrt) and A.exact_axes(in_axes)):
            return
        if (in_axes, wrt) in self._layouts or len(self._layouts) >= 64:
            return
        order = sorted(set(idx))  # the layout's gradients come in argument order
        # (built whole, then published: another thread may look it up at once)
        kept = (self._layout(plan, idx), tuple(order.index(k) for k in idx), single)
        self._layouts[(in_axes, wrt)] = kept

    def _ones(self, B):
        """A read-only seed of ones for B lanes, kept for the next call."""
        seed = self._seeds.get(B)
        if seed is None:
            seed = np.ones((B, 1))
            seed.flags.writeable = False
            if len(self._seeds) < 64:
                self._seeds[B] = seed
        return seed

    def _plan(self, in_axes):
        """The cached Plan of an in_axes (None, 0, or a tuple of them)."""
        if type(in_axes) is list:
            in_axes = tuple(in_axes)
        try:
            plan = self._plans[in_axes]
            if A.exact_axes(in_axes):  # ((None, False) finds (None, 0): check it)
                return plan
        except (KeyError, TypeError):  # (a recording tape's _plans is None)
            self._prog()
        axes = A.normalize_axes(in_axes, len(self._shapes))
        plan = A.Plan(self._shapes, axes)
        if A.exact_axes(in_axes):
            self._plans[in_axes] = plan
        return plan

    def grad(self, *args, wrt=0, in_axes=None):
        """The gradient of a scalar output: ``value_and_grad(...)[1]``.

        Parameters and errors as for :meth:`value_and_grad`.

        Returns
        -------
        float or ndarray (argument's shape), or a tuple for a tuple ``wrt``
        """
        if self._fast_grad and in_axes is None and type(wrt) is tuple:  # as value_and_grad's
            entry = self._picks.get(wrt)
            if entry is not None and (entry[0] is wrt or self._pick(wrt)):
                try:
                    fast = self._call1(args, True)
                except (GuardError, NonFiniteError) as exc:
                    raise self._explain(exc) from None
                if fast is not None:
                    return entry[1](fast[1])
        return self.value_and_grad(*args, wrt=wrt, in_axes=in_axes)[1]

    @_explained
    def vjp(self, args, cotangent, in_axes=None):
        """Cotangents of every argument for an output cotangent (reverse mode).

        Parameters
        ----------
        args : sequence
            The arguments, as a tuple or list.
        cotangent : float, array_like, or the output's structure of them
            Shaped like the output (with a leading batch axis when batched).
        in_axes : None, 0, or tuple of None / 0

        Returns
        -------
        tuple
            One cotangent per argument, of its shape (per sample for a
            batched argument, summed over the batch for a shared one).
        """
        plan, shared, batch, B = self._split(tuple(args), in_axes)
        seed = A.flatten_like(cotangent, self._out_spec, B if plan.batched else None, "cotangent")
        _, gs, gb, _ = self._run(plan, shared, batch, B, seed=seed)
        return tuple(plan.part(k, gs, gb, B) for k in range(len(self._shapes)))

    @_explained
    def jvp(self, args, tangents, in_axes=None):
        """``(outputs, output tangents)`` for argument tangents (forward mode).

        Parameters
        ----------
        args : sequence
            The arguments, as a tuple or list.
        tangents : sequence
            One per argument, of its shape (``(B,) + shape`` if batched).
        in_axes : None, 0, or tuple of None / 0

        Returns
        -------
        outputs, tangents
            Both in the output's structure.

        Raises
        ------
        ArgumentTypeError, ArgumentError
            Not one tangent per argument, or a tangent of the wrong shape.
        """
        plan, shared, batch, B = self._split(tuple(args), in_axes)
        st, bt = self._tangent_split(plan, B, tuple(tangents), "tangent")
        out, _, _, tout = self._run(plan, shared, batch, B, shared_tangent=st, batch_tangent=bt)
        return self._outputs(plan, out), self._outputs(plan, tout)

    def _tangent_split(self, plan, B, tangents, what):
        """Per-argument tangents as (shared, batch) arrays like the inputs."""
        if len(tangents) != len(self._shapes):
            raise ArgumentTypeError(f"{what}: expected {len(self._shapes)}, one per argument, "
                                    f"got {len(tangents)}")
        shared, batch = [], []
        for k, (t, shape, ax) in enumerate(zip(tangents, self._shapes, plan.axes)):
            arr = A.as_float(t, f"{what} of {A.label(self._names, k)}")
            want = shape if ax is None else (B,) + shape
            if arr.shape != want:
                raise ArgumentError(f"{what} of {A.label(self._names, k)}: expected shape "
                                    f"{want}, got {arr.shape}")
            if ax is None:
                shared.append(arr.ravel())
            else:
                batch.append(arr.reshape(B, int(np.prod(shape))))
        return (np.concatenate(shared) if shared else np.zeros(0),
                np.concatenate(batch, axis=1) if batch else np.zeros((B, 0)))

    @_explained
    def jacobian(self, *args, wrt=0, in_axes=None):
        """d outputs / d argument(s), by one reverse sweep per output row.

        Parameters
        ----------
        *args, wrt, in_axes
            As for :meth:`value_and_grad`; the output may be any structure.

        Returns
        -------
        float or ndarray, or structure of them
            Per output leaf, shape ``output.shape + arg.shape``; a leading
            batch axis when batched, per sample for every argument (shared
            ones too). A tuple over ``wrt`` for a tuple ``wrt``.
        """
        self._prog()
        idx, single = A.normalize_wrt(wrt, len(self._shapes))
        X, B, batched = self._every_input(args, in_axes)
        n_out, n_in = self._program.n_outputs, self._program.n_inputs
        if n_out == 0:  # a zero-size output: a zero-size Jacobian
            gb = np.zeros((B, 0, n_in))
        else:  # one lane per (sample, output row), each seeded with a unit cotangent
            _, _, gb, _ = self._program.run(np.zeros(0), np.zeros(0, np.int32),
                                            np.repeat(X, n_out, axis=0), self._all_nodes,
                                            B * n_out, seed=np.tile(np.eye(n_out), (B, 1)))
        gb = gb.reshape(B, n_out, n_in)
        jacs = tuple(self._jac_block(gb, k, B, batched) for k in idx)
        return jacs[0] if single else jacs

    def _every_input(self, args, in_axes):
        """(X, B, batched): X[b] holds every input node's value in sample b."""
        plan, shared, batch, B = self._split(args, in_axes)
        X = np.empty((B, self._program.n_inputs))
        X[:, plan.shared_nodes] = shared
        X[:, plan.batch_nodes] = batch
        return X, B, plan.batched

    # ------------------------------------------------------------ second order

    @_explained
    def hvp(self, args, v, wrt=0, in_axes=None):
        """Hessian-vector product of a scalar output: exact, forward over
        reverse, one sweep pair (a small constant times a gradient's cost).

        Parameters
        ----------
        args : sequence
            The arguments, as a tuple or list.
        v : float or array_like, or a tuple of them
            With ``wrt`` an int: shaped like that argument. With a tuple
            ``wrt``: one vector per argument named.
        wrt : int or tuple of ints, default 0
        in_axes : None, 0, or tuple of None / 0

        Returns
        -------
        float or ndarray, or a tuple for a tuple ``wrt``
            ``H v``, the Hessian with respect to the ``wrt`` arguments times
            ``v``, per argument in its shape.

        Raises
        ------
        ArgumentTypeError
            The output is not a scalar.
        ArgumentError
            Not one vector per ``wrt`` argument.
        """
        self._scalar_output("hvp")
        idx, single = A.normalize_wrt(wrt, len(self._shapes))
        vs = (v,) if single else tuple(v)
        if len(vs) != len(idx):
            raise ArgumentError(f"hvp: {len(idx)} arguments in wrt but {len(vs)} vectors")
        plan, shared, batch, B = self._split(tuple(args), in_axes)
        st, bt = self._tangent_split(plan, B, self._tangents(idx, vs, plan.axes, B), "hvp vector")
        *_, hs, hb = self._run(plan, shared, batch, B, seed=self._ones(B), shared_tangent=st,
                               batch_tangent=bt, hvp=True)
        out = tuple(plan.part(k, hs, hb, B) for k in idx)
        return out[0] if single else out

    def _tangents(self, idx, vs, axes, B):
        """Per-argument tangents: the vectors at idx, zeros elsewhere."""
        tangents = [np.zeros(s if ax is None else (B,) + s)
                    for s, ax in zip(self._shapes, axes)]
        for k, vk in zip(idx, vs):
            tangents[k] = vk
        return tangents

    @_explained
    def hessian(self, *args, wrt=0, in_axes=None):
        """Exact Hessian of a scalar output.

        Hessian-vector products in one batched sweep: one per group of
        columns that share no non-zero row (see sparsity.py), at most one
        per column.

        Parameters
        ----------
        *args, wrt, in_axes
            As for :meth:`value_and_grad`.

        Returns
        -------
        float or ndarray, or a tuple of tuples of blocks for a tuple ``wrt``
            Shape ``arg.shape + arg.shape`` (block ``[i][j]``:
            ``args[i].shape + args[j].shape``); a leading batch axis when
            batched.

        Raises
        ------
        ArgumentTypeError
            The output is not a scalar.
        """
        self._scalar_output("hessian")
        idx, single = A.normalize_wrt(wrt, len(self._shapes))
        X, B, batched = self._every_input(args, in_axes)
        M = self._hessian_matrix(X, B, idx)  # (B, m, m) over the wrt arguments' elements
        off = [0]
        for k in idx:
            off.append(off[-1] + self._offsets[k + 1] - self._offsets[k])
        blocks = []
        for ipos, i in enumerate(idx):
            row = []
            for jpos, j in enumerate(idx):
                block = M[:, off[ipos]:off[ipos + 1], off[jpos]:off[jpos + 1]]
                block = block.reshape((B,) + self._shapes[i] + self._shapes[j])
                block = block if batched else block[0]
                row.append(float(block) if np.ndim(block) == 0 else block)
            blocks.append(tuple(row))
        return blocks[0][0] if single else tuple(blocks)

    def _hessian_matrix(self, X, B, idx):
        n_in = self._program.n_inputs
        plan = self._colourings.get(idx)
        if plan is None:  # worked out once per tape and wrt: the colouring and its indices
            if self._pattern is None:
                self._pattern = sparsity.hessian_pattern(self._program)
            cols = np.concatenate([np.arange(self._offsets[k], self._offsets[k + 1])
                                   for k in idx])
            colour, k, (r, s) = sparsity.colour_columns(self._pattern, cols)
            seeds = np.zeros((k, n_in))  # row c: ones at the columns coloured c
            seeds[colour, cols] = 1.0
            m = len(cols)
            layout = self._program.layout(_NO_NODES, self._all_nodes)
            plan = self._colourings[idx] = (m, k, seeds, colour[s] * n_in + cols[r], r * m + s,
                                            layout)
        m, k, seeds, src, dst, layout = plan
        none = _NO_INPUTS
        *_, hb = self._program.run(none, _NO_NODES, np.repeat(X, k, axis=0),
                                   self._all_nodes, B * k, seed=self._ones(B * k),
                                   shared_tangent=none, hvp=True, layout=layout,
                                   batch_tangent=seeds if B == 1 else np.tile(seeds, (B, 1)))
        # hb[b * k + c] = Hessian times the sum of colour c's columns
        M = np.zeros((B, m * m))
        M[:, dst] = hb.reshape(B, k * n_in)[:, src]
        return M.reshape(B, m, m)

    def _jac_block(self, gb, k, B, batched):
        shape = self._shapes[k]
        block = gb[:, :, self._offsets[k]:self._offsets[k + 1]]
        rows = _leaf_shapes(self._out_spec)
        parts, pos = [], 0
        for rshape in rows:
            size = int(np.prod(rshape))
            part = block[:, pos:pos + size].reshape((B,) + rshape + shape)
            parts.append(part if batched else part[0])
            pos += size
        if self._out_spec == "s" or self._out_spec[0] == "a":
            only = parts[0]
            return float(only) if np.ndim(only) == 0 else only
        return _rebuild(self._out_spec, iter(parts))


def _leaf_shapes(spec):
    if spec == "s":
        return [()]
    if spec[0] == "a":
        return [tuple(spec[1])]
    return [s for child in spec[1] for s in _leaf_shapes(child)]


def _rebuild(spec, parts):
    if spec == "s" or spec[0] == "a":
        part = next(parts)
        return float(part) if np.ndim(part) == 0 else part
    items = [_rebuild(child, parts) for child in spec[1]]
    return tuple(items) if spec[0] == "t" else items


def _describe(spec):
    if spec == "s":
        return "a scalar"
    if spec[0] == "a":
        return f"an array of shape {tuple(spec[1])}"
    return f"a {'tuple' if spec[0] == 't' else 'list'} of {len(spec[1])}"


# ------------------------------------------------------------------ tracing

def param_names(fn, n):
    """fn's parameter names for n positional arguments (a0, a1 ... where unknown)."""
    names = []
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    for p in params:
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
        elif p.kind == p.VAR_POSITIONAL:
            names += [f"{p.name}{k}" for k in range(n - len(names))]
    names = names[:n]
    return names + [f"a{k}" for k in range(len(names), n)]


def trace(fn, *args):
    """Record fn once at example arguments and return the frozen, replayable Tape.

    Parameters
    ----------
    fn : callable
        Takes positional arguments and returns a Var or number, or an
        ndarray, list or tuple of them. Inside fn a float argument is a Var
        and an array argument an ndarray of Vars of its shape, on which
        NumPy functions record nodes (see docs/api.md). Python ``if`` on a
        condition records a guard with the outcome seen here.
    *args : float or array_like of floats
        Example arguments; they fix each argument's shape (and the outcome
        of every guard).

    Returns
    -------
    Tape
        Frozen; the listing ``str(tape)`` uses fn's parameter names.

    Raises
    ------
    ArgumentTypeError
        An argument is not real numbers.
    TapeError
        fn returns a Var of another tape (read outer Vars as arguments).
    FasttapeError
        fn calls a NumPy function that cannot be recorded (the message says
        what to use instead).

    Examples
    --------
    >>> tape = ft.trace(lambda w, x, y: (w * x - y) ** 2 + w ** 2, 1.0, 2.0, 3.0)
    >>> tape.value_and_grad(1.0, 2.0, 3.0)
    (2.0, -2.0)
    """
    names = param_names(fn, len(args))
    arrays = [A.as_float(a, A.label(names, k)) for k, a in enumerate(args)]
    rec = kernel.Recorder()
    push_recorder(rec)
    tracing_guards(rec)
    try:
        inputs, fn_args = [], []
        for arr in arrays:
            flat = [Var(x) for x in arr.ravel().tolist()]
            inputs += flat
            if arr.ndim == 0:
                fn_args.append(flat[0])
            else:
                obj = np.empty(len(flat), dtype=object)
                obj[:] = flat
                fn_args.append(traced(obj.reshape(arr.shape)))  # NumPy calls record nodes
        out = fn(*fn_args)

        def leaf(x):
            if isinstance(x, Var):
                if x._rec is not rec:
                    raise TapeError(f"{getattr(fn, '__name__', 'fn')} returned a Var from "
                                    f"another tape; pass it in as an argument instead")
                return x._h
            return rec.const(float(x))

        flat_out, spec = A.flatten_output(out, leaf)
    finally:
        pop_recorder(rec)
        guards = end_tracing_guards(rec)
    program = rec.freeze([v._h for v in inputs], flat_out, guards)
    return Tape._traced(program, names, [a.shape for a in arrays], spec,
                        getattr(fn, "__name__", "fn"))


def load(path):
    """The Tape saved by ``tape.save`` at ``path``.

    Safe on untrusted files: nothing is unpickled, every array and field is
    checked, and the tape is validated before any sweep runs over it. The
    ops a file uses are matched to this build's by name (in files of format
    version 1 and 2), so adding ops to the op table never makes files
    unloadable.

    Parameters
    ----------
    path : str, os.PathLike or binary file object

    Returns
    -------
    Tape
        Frozen and replayable, as ``ft.trace`` made it.

    Raises
    ------
    TapeError
        A truncated, corrupted or inconsistent file, or one using an op that
        this build lacks or defines differently; the message says why.
    FileNotFoundError
        No file at ``path``.

    Examples
    --------
    >>> tape.save("loss.tape")
    >>> ft.load("loss.tape")(1.0, 2.0, 3.0)
    2.0
    """
    return Tape._from_data(*io.read(path))
