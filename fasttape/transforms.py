"""ft.grad, ft.value_and_grad, ft.jacobian, ft.hessian: function transforms.

Called on numbers, a transform traces fn on its first call for each set of
argument shapes (per sample, when batched), caches the tape and afterwards
only replays it. Two things make a cached tape wrong, and both are checked:
a guard that comes out otherwise (the tape raises GuardError; the transform
re-traces), and a number or array that fn reads from its closure, defaults
or globals changing since the trace (see watch.py; the transform re-traces,
and warns once when that happens on every call).

Called on Vars, or inside a trace, a transform records fn and its derivative
on the tape in use instead (see nested.py): that is how transforms compose.
"""

import functools
import warnings
import weakref

import numpy as np

from . import args as A
from . import nested, pytree
from .errors import ArgumentError, GuardError, RetraceWarning
from .tape import param_names, trace
from .var import recording
from .watch import Snapshot


class _Transformed:
    """fn transformed into `method` of its tape (grad, value_and_grad ...)."""

    MAX_VARIANTS = 16  # tapes kept per argument shapes (one per branch pattern)
    WARN_AFTER = 3     # calls in a row that re-trace for a changed value

    def __init__(self, fn, method, argnums, in_axes, has_aux=False):
        if not callable(fn):
            raise TypeError(f"ft.{method} takes a function, got {type(fn).__name__}")
        self.fn, self.method, self.has_aux = fn, method, bool(has_aux)
        self.argnums = A.canonical_wrt(argnums, "argnums")
        # in_axes: None, 0, or a tuple of them; or a pytree prefix per argument
        # (then every call takes the pytree path)
        self._tree_axes = in_axes if _nested_containers(in_axes) else None
        self.in_axes = None if self._tree_axes is not None else A.canonical_axes(in_axes)
        self._flat = {}  # (argument structures, keywords) -> a transform of leaves
        self.tapes = {}  # argument shapes -> tapes, one per branch pattern met
        self._names, self._axes = {}, {}
        self._layout = None    # the last batched gradient's Layout: tried first
        self._snapshot = None  # what fn read besides its arguments, when traced
        self._watched = False  # ... if anything
        self._retraces, self._warned = 0, False
        # Name and docstring of fn, but never its __dict__: a transform of a
        # transform keeps its own method.
        functools.update_wrapper(self, fn, updated=())

    def __repr__(self):
        return f"<ft.{self.method} of {getattr(self.fn, '__name__', self.fn)!r}>"

    def __call__(self, *args, **kwargs):
        if kwargs or self.has_aux or self._tree_axes is not None:
            return self._trees(args, kwargs)
        if self._watched:  # fn reads numbers or arrays besides its arguments
            self._check_fresh()
        if recording():  # inside a trace: record the derivative there
            return self._trees(args, kwargs) if _has_trees(args) else self._nested(args)
        if self._layout is not None:  # the last batch's tape, if the arguments fit it
            try:
                fast = self._layout(args)
            except GuardError:  # another branch: the tapes below sort it out, and the
                fast = self._layout = None  # one that serves it is tried first next
            if fast is not None:
                return fast
        if _has_trees(args):
            return self._trees(args, kwargs)
        if nested.recorder_of(args) is not None:  # Vars in: Vars out
            return self._nested(args)
        tapes = self.tapes.get(self._key(args), ())
        for tape in tapes:
            try:
                return self._replay(tape, args)
            except GuardError as exc:
                if len(exc.lanes) < exc.lanes_of:  # samples disagree: no tape fits all
                    raise
        # New shapes, or a branch pattern not met before: trace at the first sample.
        key, examples = self._examples(args)
        if Snapshot(self.fn).captures_vars:  # fn reads Vars of an eager tape: record on it
            return self._nested(args)
        tape = trace(self.fn, *examples)
        # The values the tape baked in (taken after the trace, so a list that
        # fn itself appends to while tracing does not count as a change).
        self._snapshot = snapshot = Snapshot(self.fn)
        self._watched = bool(snapshot.entries)
        tapes = self.tapes.setdefault(key, [])
        tapes.append(tape)
        del tapes[: -self.MAX_VARIANTS]
        return self._replay(tape, args)

    def _check_fresh(self):
        """Drop the tapes when a value fn reads has changed since they were
        traced; warn once when that happens call after call."""
        snapshot = self._snapshot
        name = None if snapshot is None else snapshot.changed()
        if name is None:
            self._retraces = 0
            return
        self.tapes, self._layout, self._watched = {}, None, False
        self._retraces += 1
        if self._retraces >= self.WARN_AFTER and not self._warned:
            self._warned = True
            warnings.warn(f"ft.{self.method}({getattr(self.fn, '__name__', 'fn')}) re-traces on "
                          f"every call: {name!r}, which the function reads from its closure "
                          f"or globals, changes each time. Pass it as an argument instead "
                          f"(in_axes=None for a shared one)", RetraceWarning, stacklevel=3)

    def _trees(self, args, kwargs):
        """A call with pytree arguments, keyword arguments or an auxiliary
        output: a transform of fn's leaves, kept per argument structure and
        keywords, answers; gradients come back in the arguments' structures."""
        flats = [pytree.flatten(arg) for arg in args]
        structures = tuple(s for _, s in flats)
        try:
            key = (structures, tuple(sorted(kwargs.items())))
            flat = self._flat.get(key)
        except TypeError:  # unhashable keywords: traced afresh each call
            key = flat = None
        if flat is None:
            flat = self._flatten(structures, kwargs)
            if key is not None and len(self._flat) < 64:
                self._flat[key] = flat
        transform, regroup = flat
        return regroup(transform(*[leaf for leaves, _ in flats for leaf in leaves]))

    def _flatten(self, structures, kwargs):
        """(a transform of fn as a function of its arguments' leaves, the
        function that puts its results back into the arguments' structures)."""
        n = len(structures)
        idx, single = A.normalize_wrt(self.argnums, n, "argnums")
        sizes = [pytree.count(s) for s in structures]
        starts = np.concatenate([[0], np.cumsum(sizes)]).astype(int).tolist()
        leaf_idx = tuple(j for k in idx for j in range(starts[k], starts[k + 1]))
        if not leaf_idx:
            raise ArgumentError(f"argnums={self.argnums!r} names arguments with no leaves")
        axes = self._tree_axes if self._tree_axes is not None else self.in_axes
        if isinstance(axes, (tuple, list)):
            if len(axes) != n:
                raise ArgumentError(f"in_axes has {len(axes)} entries for {n} arguments")
            leaf_axes = [ax for a, s in zip(axes, structures)
                         for ax in pytree.broadcast_prefix(a, s, "in_axes")]
        else:
            leaf_axes = pytree.broadcast_prefix(axes, (tuple, structures), "in_axes")
        fn, has_aux, aux = self.fn, self.has_aux, {}

        def leaves_fn(*leaves):
            pos, args = 0, []
            for s, size in zip(structures, sizes):
                args.append(pytree.unflatten(s, leaves[pos:pos + size]))
                pos += size
            out = fn(*args, **kwargs)
            if not has_aux:
                return out
            if not (isinstance(out, tuple) and len(out) == 2):
                raise ArgumentError("with has_aux=True the function must return a pair "
                                    "(output, auxiliary data)")
            aux_leaves, aux["structure"] = pytree.flatten(out[1])
            return (out[0], *aux_leaves)
        functools.update_wrapper(leaves_fn, fn, updated=())
        if has_aux and self.method not in ("grad", "value_and_grad"):
            raise ArgumentError(f"has_aux is for grad and value_and_grad, not {self.method}")
        # (with an auxiliary output, grad too needs the values: the aux data)
        method = "value_and_grad_aux" if has_aux else self.method
        transform = _Transformed(leaves_fn, method, leaf_idx, tuple(leaf_axes))

        def grouped(items):  # per wrt leaf -> per argument, in its structure
            out, pos = [], 0
            for k in idx:
                size = sizes[k]
                out.append(pytree.unflatten(structures[k], items[pos:pos + size]))
                pos += size
            return out[0] if single else tuple(out)

        def regroup(result):
            if self.method == "hessian":  # a block per pair of leaves
                return grouped([grouped(list(row)) for row in result])
            if self.method == "jacobian":
                return grouped(result)
            value, grads = (None, result) if method == "grad" else result
            if has_aux:
                value = (value[0], pytree.unflatten(aux["structure"], value[1:]))
            grads = grouped(grads)
            if self.method == "grad":
                return (grads, value[1]) if has_aux else grads
            return value, grads
        return transform, regroup

    def _nested(self, args):
        idx, single = A.normalize_wrt(self.argnums, len(args), "argnums")
        axes = A.normalize_axes(self.in_axes, len(args))
        return nested.call(self.method, self.fn, args, idx, single, axes)

    def _examples(self, args):
        """(shapes key, example arguments: a batched argument's first row)."""
        A.normalize_wrt(self.argnums, len(args), "argnums")  # (named as the caller wrote it)
        names = self._names.get(len(args))
        if names is None:
            names = self._names[len(args)] = param_names(self.fn, len(args))
        axes = A.normalize_axes(self.in_axes, len(args))
        examples = []
        for k, (arg, ax) in enumerate(zip(args, axes)):
            arr = A.as_float(arg, A.label(names, k))
            if ax == 0:
                if arr.ndim == 0:
                    raise ArgumentError(f"{A.label(names, k)} is batched (in_axes 0) but is "
                                        f"a scalar; expected shape (B, ...)")
                arr = arr[0] if len(arr) else np.zeros(arr.shape[1:])
            examples.append(arr if arr.ndim else float(arr))
        return tuple(np.shape(e) for e in examples), examples

    def _key(self, args):
        """Per-sample argument shapes, cheaply: the tapes' cache key."""
        axes = self._axes.get(len(args))
        if axes is None:
            axes = self._axes[len(args)] = A.normalize_axes(self.in_axes, len(args))
        return tuple((arg.shape[1:] if ax == 0 else arg.shape) if type(arg) is np.ndarray
                     else np.shape(arg)[1 if ax == 0 else 0:] for arg, ax in zip(args, axes))

    def _replay(self, tape, args):
        if self.method == "tape":  # (ft.vjp and friends): the tape and its outputs
            return tape, tape(*args, in_axes=self.in_axes)
        out = getattr(tape, self.method)(*args, wrt=self.argnums, in_axes=self.in_axes)
        if self._layout is None and self.method in ("grad", "value_and_grad"):
            self._layout = tape._fast_path(self.argnums, self.in_axes, self.method == "grad")
        return out


def _nested_containers(in_axes):
    """in_axes is a pytree prefix, not None, 0 or a flat tuple / list of them."""
    if pytree.is_container(in_axes):
        return type(in_axes) is dict or any(pytree.is_container(a) for a in in_axes)
    return False


def _has_trees(args):
    for arg in args:
        if type(arg) in (tuple, list, dict):
            return True
    return False


def grad(fn, argnums=0, in_axes=None, has_aux=False):
    """A function returning the gradient of scalar fn with respect to argnums.

    Parameters
    ----------
    fn : callable
        Written for one sample; returns a scalar (a Var, a number or a 0-d
        array), or with ``has_aux`` a pair ``(scalar, aux)``.
    argnums : int or tuple of ints, default 0
        Which positional arguments to differentiate; a tuple gives a tuple of
        gradients. A list is read as a tuple.
    in_axes : None, 0, or a tuple / list / pytree prefix of them
        Per argument: ``None`` shared, ``0`` batched along its leading axis.
        A shared argument's gradient is summed over the batch; a batched
        one's is per sample, shape ``(B, ...)``.
    has_aux : bool
        fn returns ``(value, aux)``; the transform returns ``(grad, aux)``.

    Returns
    -------
    callable
        Taking fn's arguments (floats, arrays, or pytrees of them: tuples,
        lists and dicts; keyword arguments pass through undifferentiated)
        and returning the gradient(s), each in its argument's shape and
        structure. Called on Vars or inside a trace it returns Vars, so
        transforms nest: ``ft.grad(ft.grad(f))`` is the second derivative.

    Notes
    -----
    fn is traced on the first call per argument shapes and the tape cached;
    see README "Transforms: caching, re-tracing, nesting".

    Examples
    --------
    >>> ft.grad(lambda w, x, y: (w * x - y) ** 2 + w ** 2)(1.0, 2.0, 3.0)
    -2.0
    """
    return _Transformed(fn, "grad", argnums, in_axes, has_aux)


def value_and_grad(fn, argnums=0, in_axes=None, has_aux=False):
    """A function returning ``(fn's value, its gradient)``; with ``has_aux``,
    ``((value, aux), gradient)``. Batched, the values have shape ``(B,)``.

    Parameters
    ----------
    fn : callable
        Written for one sample; returns a scalar (a Var, a number or a 0-d
        array), or with ``has_aux`` a pair ``(scalar, aux)``.
    argnums : int or tuple of ints, default 0
        Which positional arguments to differentiate; a tuple gives a tuple of
        gradients.
    in_axes : None, 0, or a tuple / list / pytree prefix of them
        Per argument: ``None`` shared, ``0`` batched along its leading axis.
        A shared argument's gradient is summed over the batch; a batched
        one's is per sample, shape ``(B, ...)``.
    has_aux : bool, default False
        fn returns ``(value, aux)``; aux (any pytree) is passed through.

    Returns
    -------
    callable
        Taking fn's arguments (floats, arrays, or pytrees of them; keyword
        arguments pass through undifferentiated) and returning
        ``(value, gradient)``: value a float (an ndarray of shape ``(B,)``
        when batched), each gradient in its argument's shape and structure.
        fn is traced on the first call per argument shapes and the tape
        cached (re-traced when a branch or a value fn reads from its closure
        or globals changes); called on Vars or inside a trace it records on
        the tape in use and returns Vars, so transforms nest.

    Raises
    ------
    ArgumentTypeError
        fn's output is not a scalar (use :func:`jacobian` or :func:`vjp`).
    ArgumentError
        ``argnums`` or ``in_axes`` does not fit the arguments.
    GuardError
        Batched, when samples take different branches of an ``if`` (use
        ``ft.where``); unbatched, a changed branch is re-traced instead.

    Examples
    --------
    >>> ft.value_and_grad(lambda w: w ** 3)(2.0)
    (8.0, 12.0)
    >>> loss = lambda w, x: (w * x - 1.0) ** 2          # one sample
    >>> ft.value_and_grad(loss, in_axes=(None, 0))(1.0, np.array([1.0, 2.0]))
    (array([0., 1.]), 4.0)
    """
    return _Transformed(fn, "value_and_grad", argnums, in_axes, has_aux)


def jacobian(fn, argnums=0, in_axes=None):
    """A function returning d fn / d argument(s).

    Parameters
    ----------
    fn : callable
        May return any structure (a Var, an array, a tuple or list) of Vars
        and numbers.
    argnums, in_axes
        As for :func:`grad` (there is no ``has_aux``).

    Returns
    -------
    callable
        Returning, per output leaf and argument, an array of shape
        ``output.shape + arg.shape`` (a float when both are scalars), in the
        output's structure; a tuple over ``argnums`` for a tuple. Batched, a
        leading axis of B for every argument (shared ones are per sample
        too). A zero-size output gives a zero-size Jacobian.

    Examples
    --------
    >>> ft.jacobian(lambda v: v * v)(np.array([1.0, 2.0]))
    array([[2., 0.],
           [0., 4.]])
    """
    return _Transformed(fn, "jacobian", argnums, in_axes)


def hessian(fn, argnums=0, in_axes=None):
    """A function returning the exact Hessian of scalar fn.

    Computed by forward-over-reverse sweeps (no finite differences), one
    Hessian-vector product per group of columns that share no non-zero row.

    Parameters
    ----------
    fn : callable
        Returns a scalar.
    argnums, in_axes
        As for :func:`grad`.

    Returns
    -------
    callable
        Returning an array of shape ``arg.shape + arg.shape`` (a float for a
        scalar argument); with a tuple ``argnums``, a tuple of tuples of
        blocks ``args[i].shape + args[j].shape``. Batched: a leading axis of
        B, one Hessian per sample.

    Raises
    ------
    ArgumentTypeError
        fn's output is not a scalar.

    Examples
    --------
    >>> ft.hessian(lambda w, x, y: (w * x - y) ** 2 + w ** 2)(1.0, 2.0, 3.0)
    10.0
    """
    return _Transformed(fn, "hessian", argnums, in_axes)


# ------------------------------------------------------------ vjp, jvp, hvp

_TAPES = weakref.WeakKeyDictionary()  # fn -> {(argnums, in_axes): its tape cache}


def _fitted(fn, args, in_axes):
    """(tape, outputs) of fn at args (numbers and arrays), from a transform
    kept per fn and in_axes: traced once per shapes and branch pattern."""
    key = A.canonical_axes(in_axes)
    try:
        kept = _TAPES.setdefault(fn, {})
    except TypeError:  # fn cannot be weakly referenced: no cache
        kept = {}
    transform = kept.get(key)
    if transform is None:
        transform = kept[key] = _Transformed(fn, "tape", 0, key)
    return transform(*args)


def _records(args):
    return recording() or nested.recorder_of(args) is not None


def _picked(values, idx, single):
    picked = tuple(values[k] for k in idx)
    return picked[0] if single else picked


def vjp(fn, *args, argnums=None, in_axes=None):
    """``(fn(*args), vjp_fn)``: reverse mode with a cotangent of one's choice.

    Parameters
    ----------
    fn : callable
        Any output structure.
    *args : float or array_like
        The point.
    argnums : None, int or tuple of ints
        None (default): every argument.
    in_axes : None, 0, or tuple of None / 0
        As for :func:`grad`. Not allowed on Vars (NestingError).

    Returns
    -------
    out
        fn's output at args (a leading batch axis where batched).
    vjp_fn : callable
        ``vjp_fn(cotangent)``, the cotangent in the output's structure and
        shape (with the batch axis where batched), returns the argument
        cotangents: a tuple, one per argument, for ``argnums=None``; for an
        int ``argnums`` that argument's alone; for a tuple a tuple. A shared
        argument's cotangent is summed over the batch.

    Notes
    -----
    The tape is traced once per fn, ``in_axes`` and argument shapes and kept
    (weakly, per fn). Called on Vars or inside a trace, the products are
    recorded as Vars instead.

    Examples
    --------
    >>> out, vjp_fn = ft.vjp(lambda x, y: x * y, 2.0, 3.0)
    >>> out, vjp_fn(1.0)
    (6.0, (3.0, 2.0))
    """
    idx, single = A.normalize_wrt(tuple(range(len(args))) if argnums is None else argnums,
                                  len(args), "argnums")
    if _records(args):
        if in_axes is not None:
            raise nested.NestingError("ft.vjp on Vars takes no in_axes; use ft.grad")
        return nested.vjp(fn, args, idx, single)
    tape, out = _fitted(fn, args, in_axes)

    def vjp_fn(cotangent):
        return _picked(tape.vjp(args, cotangent, in_axes=in_axes), idx, single)
    return out, vjp_fn


def jvp(fn, args, tangents, argnums=None, in_axes=None):
    """``(fn(*args), its tangent)``: a forward-mode directional derivative.

    Parameters
    ----------
    fn : callable
        Any output structure.
    args : tuple or list
        The point.
    tangents : tuple or list, or a single tangent
        One per argument (with ``argnums``: one per argument it names, the
        others held fixed), each of its argument's shape (``(B,) + shape``
        for a batched argument).
    argnums : None, int or tuple of ints
    in_axes : None, 0, or tuple of None / 0

    Returns
    -------
    out, out_tangent
        Both in the output's structure.

    Raises
    ------
    ArgumentError
        Not one tangent per moved argument, or a wrong shape.

    Examples
    --------
    >>> ft.jvp(lambda x, y: x * y, (2.0, 3.0), (1.0, 0.0))
    (6.0, 3.0)
    """
    args, tangents = tuple(args), tuple(tangents) if isinstance(tangents, (tuple, list)) \
        else (tangents,)
    idx, _ = A.normalize_wrt(tuple(range(len(args))) if argnums is None else argnums,
                             len(args), "argnums")
    if len(tangents) != len(idx):
        raise ArgumentError(f"jvp: {len(idx)} arguments to move but {len(tangents)} tangents")
    if _records(args):
        if in_axes is not None:
            raise nested.NestingError("ft.jvp on Vars takes no in_axes; use ft.jacobian")
        return nested.jvp(fn, args, idx, tangents)
    tape, _ = _fitted(fn, args, in_axes)
    full = [np.zeros(np.shape(a)) for a in args]  # the unmoved ones (per sample, if batched)
    for k, t in zip(idx, tangents):
        full[k] = t
    return tape.jvp(args, full, in_axes=in_axes)


def hvp(fn, args, v, argnums=0, in_axes=None):
    """The Hessian of scalar fn times ``v``: exact, forward over reverse, a
    few gradients' cost.

    Parameters
    ----------
    fn : callable
        Returns a scalar.
    args : tuple or list
        The point.
    v : float or array_like, or a tuple of them
        Shaped like the ``argnums`` argument; a tuple of such for a tuple.
    argnums : int or tuple of ints, default 0
    in_axes : None, 0, or tuple of None / 0

    Returns
    -------
    float or ndarray, or a tuple for a tuple ``argnums``
        ``H v``, each in its argument's shape.

    Examples
    --------
    >>> ft.hvp(lambda v: np.sum(v ** 3), (np.array([1.0, 2.0]),), np.array([1.0, 0.0]))
    array([6., 0.])
    """
    args = tuple(args)
    if _records(args):
        idx, single = A.normalize_wrt(argnums, len(args), "argnums")
        vs = (v,) if single else tuple(v)

        def inner(*a):
            g = grad(fn, argnums=idx, in_axes=in_axes)(*a)
            return _sum_of_products(g, vs)
        return grad(inner, argnums=argnums, in_axes=in_axes)(*args)
    tape, _ = _fitted(fn, args, in_axes)
    return tape.hvp(args, v, wrt=A.canonical_wrt(argnums, "argnums"), in_axes=in_axes)


def _sum_of_products(xs, ys):
    """sum over pairs of sum(x * y), for Vars, numbers and arrays of them."""
    from .functions import sum as vsum
    terms = []
    for x, y in zip(xs, ys):
        terms.extend(np.ravel(np.asarray(x, dtype=object) * np.asarray(y)).tolist())
    return vsum(terms)
