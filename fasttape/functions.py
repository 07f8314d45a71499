"""ft.exp, ft.maximum, ft.sum, ft.dot ...: functions on Vars, numbers and arrays.

A Var records a node; a number or a float array is computed at once with
the op table's own NumPy formula; an object array is mapped element by
element.
"""

import numpy as np

from . import ops
from .backend import kernel
from .var import Var, _is_number, _new

_handles = kernel.handles_of

__all__ = ["maximum", "minimum", "sum", "dot", "where", "less", "less_equal", "greater",
           "greater_equal", "equal", "not_equal"]


def _is_var_array(x):
    return isinstance(x, (np.ndarray, list, tuple)) and np.asarray(x).dtype == object


def _unary_function(op):
    numpy_fwd = ops.compile_numpy(op.fwd, "x, y, c")

    def fn(x):
        if isinstance(x, Var):
            return x._unary(op.code)
        if _is_var_array(x):
            return np.frompyfunc(fn, 1, 1)(np.asarray(x, dtype=object))
        with np.errstate(all="ignore"):
            out = numpy_fwd(np.asarray(x, dtype=float), 0.0, 0.0)
        return float(out) if np.ndim(out) == 0 else out

    fn.__name__ = op.name
    fn.__doc__ = unary_doc(op, numpy_fwd)
    return fn


# Example arguments for the generated docstrings: the first at which the
# row's formula is finite is shown, with its value (computed at import).
_UNARY_SAMPLES = ((0.5,), (1.5,))
_BINARY_SAMPLES = ((-3.0, 4.0), (3.0, 4.0))


def _example(numpy_fwd, samples):
    """(arguments, value) of the first sample at which numpy_fwd is finite."""
    with np.errstate(all="ignore"):
        for args in samples:
            padded = [np.asarray(a, dtype=float) for a in args] + [0.0] * (3 - len(args))
            value = float(numpy_fwd(*padded))
            if np.isfinite(value):
                break
    return ", ".join(repr(a) for a in args), value


def unary_doc(op, numpy_fwd):
    """The NumPy-style docstring of ft.<name> for a unary op-table row."""
    args, value = _example(numpy_fwd, _UNARY_SAMPLES)
    return f"""{op.name}(x): {op.doc}; elementwise.

    Parameters
    ----------
    x : Var, float, or array_like of floats or of Vars
        A Var records one ``{op.name}`` node on its tape (a traced function's
        tape, or the eager one). A number or a float array is computed at
        once with NumPy; an array of Vars is mapped element by element.

    Returns
    -------
    Var, float or ndarray
        Same kind and shape as ``x``: a Var, a float, a float array, or an
        object array of Vars. Values outside the domain follow IEEE as NumPy
        does (``nan``); a Var raises FloatingPointError there instead while
        ``ft.check_finite`` is on.

    See Also
    --------
    Var.{op.name} : the same as a method, ``x.{op.name}()``.

    Examples
    --------
    >>> ft.{op.name}({args})
    {value!r}
    """


def binary_doc(op, numpy_fwd):
    """The NumPy-style docstring of ft.<name> for a binary op-table row."""
    args, value = _example(numpy_fwd, _BINARY_SAMPLES)
    return f"""{op.name}(a, b): {op.doc}, with x = a and y = b; elementwise.

    Parameters
    ----------
    a, b : Var, float, or array_like of floats or of Vars
        If either is a Var, one ``{op.name}`` node is recorded on its tape (a
        number on the other side is recorded as a constant node); both Vars
        must be on the same tape. Numbers and float arrays are computed at
        once with NumPy (broadcasting); arrays of Vars element by element.

    Returns
    -------
    Var, float or ndarray
        A Var if either operand is a Var, a float for two numbers, else an
        ndarray of the broadcast shape (object dtype if it holds Vars).

    Raises
    ------
    TapeError
        The two operands are Vars of different tapes.

    Examples
    --------
    >>> ft.{op.name}({args})
    {value!r}
    """


for _op in ops.OPS:
    if _op.kind == ops.UNARY:
        globals()[_op.name] = _unary_function(_op)
        __all__.append(_op.name)


def _extremum(name):
    code, code_c = ops.CODE[name], ops.CODE[name + "_c"]
    numpy_fn = ops.NUMPY_NAMES["maxv" if name == "maximum" else "minv"]

    def fn(a, b):
        if isinstance(a, Var) and isinstance(b, Var):
            return _new(a._rec, a._rec.binary(code, a._h, a._same_tape(b)))
        if isinstance(a, Var) and _is_number(b):
            return a._with_const(code_c, b)
        if _is_number(a) and isinstance(b, Var):
            return b._with_const(code_c, a)
        if _is_var_array(a) or _is_var_array(b):
            return np.frompyfunc(fn, 2, 1)(a, b)
        out = numpy_fn(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
        return float(out) if np.ndim(out) == 0 else out

    fn.__name__ = name
    fn.__doc__ = f"""{name}(a, b): the {"larger" if name == "maximum" else "smaller"} of a and b; elementwise, branch-free.

    A NaN operand gives NaN, as NumPy's ``np.{name}``. No guard is recorded,
    so a traced tape stays valid whichever operand wins.

    Parameters
    ----------
    a, b : Var, float, or array_like of floats or of Vars
        If either is a Var, one ``{name}`` node is recorded (a number on the
        other side is the node's constant). Numbers and float arrays are
        computed at once with NumPy; arrays of Vars element by element.

    Returns
    -------
    Var, float or ndarray
        A Var if either operand is a Var, a float for two numbers, else an
        ndarray of the broadcast shape. The gradient goes to the operand
        that wins; at a tie it is split, half to each (as JAX does).

    Examples
    --------
    >>> ft.{name}(1.0, 2.0)
    {1.0 if name == "minimum" else 2.0!r}
    >>> ft.grad(lambda x: ft.{name}(x, 2.0))(2.0)   # a tie
    0.5
    """
    return fn


maximum = _extremum("maximum")
minimum = _extremum("minimum")


def _binary_function(op):
    """A function of two Vars, numbers or arrays for a binary row that has no
    constant form: a number operand is recorded as a constant node."""
    numpy_fwd = ops.compile_numpy(op.fwd, "x, y, c")

    def fn(a, b):
        if isinstance(a, Var) or isinstance(b, Var):
            rec = (a if isinstance(a, Var) else b)._rec
            a, b = (x if isinstance(x, Var) else _new(rec, rec.const(float(x))) for x in (a, b))
            return _new(rec, rec.binary(op.code, a._h, a._same_tape(b)))
        if _is_var_array(a) or _is_var_array(b):
            return np.frompyfunc(fn, 2, 1)(a, b)
        with np.errstate(all="ignore"):
            out = numpy_fwd(np.asarray(a, dtype=float), np.asarray(b, dtype=float), 0.0)
        return float(out) if np.ndim(out) == 0 else out

    fn.__name__ = op.name
    fn.__doc__ = binary_doc(op, numpy_fwd)
    return fn


_HAND_WRITTEN = {"add", "sub", "mul", "div", "pow", "maximum", "minimum", "lt", "le", "eq", "ne"}
for _op in ops.OPS:
    if _op.kind == ops.BINARY and _op.name not in _HAND_WRITTEN:
        globals()[_op.name] = _binary_function(_op)
        __all__.append(_op.name)


def _recorder_of(items):
    for item in items:
        if isinstance(item, Var):
            return item._rec
    return None


def sum(iterable):
    """Sum of Vars and numbers, recorded as one n-ary ``sum`` node.

    Parameters
    ----------
    iterable : iterable or ndarray of Vars and numbers
        An ndarray is summed over all its elements. The numbers among the
        items are added as one constant after the node.

    Returns
    -------
    Var or float
        A Var if any item is a Var (all must be on one tape), else a float
        (0.0 for no items). Unlike a chain of ``+``, the node costs one
        pass and its gradient is 1 for every operand.

    Raises
    ------
    TapeError
        The Vars live on different tapes.

    Examples
    --------
    >>> ft.sum([1.0, 2.0, 3.5])
    6.5
    >>> ft.grad(lambda v: ft.sum(v * v))(np.array([1.0, 2.0]))
    array([2., 4.])
    """
    items = list(np.asarray(iterable, dtype=object).ravel()) if isinstance(
        iterable, np.ndarray) else list(iterable)
    variables = [x for x in items if isinstance(x, Var)]
    numbers_ = [float(x) for x in items if not isinstance(x, Var)] if len(
        variables) < len(items) else []
    if not variables:
        return float(np.sum(numbers_))
    rec = variables[0]._rec
    out = _new(rec, rec.nary(ops.CODE["sum"], _handles(rec, variables)))
    extra = float(np.sum(numbers_)) if numbers_ else 0.0
    return out + extra if extra != 0.0 else out


def _dot1(a, b):
    """Dot product of two 1-D sequences: one node for the Var pairs, one for
    the Var-number pairs, numbers folded into a constant."""
    if len(a) != len(b):
        raise ValueError(f"ft.dot: shapes ({len(a)},) and ({len(b)},) not aligned")
    rec = _recorder_of(a) or _recorder_of(b)
    if rec is None:
        return float(np.dot(np.asarray(a, float), np.asarray(b, float)))
    pairs, scaled, const = ([], []), ([], []), 0.0
    for u, v in zip(a, b):
        if isinstance(u, Var) and isinstance(v, Var):
            pairs[0].append(u)
            pairs[1].append(v)
        elif isinstance(u, Var) or isinstance(v, Var):
            var, num = (u, v) if isinstance(u, Var) else (v, u)
            scaled[0].append(var)
            scaled[1].append(float(num))
        else:
            const += float(u) * float(v)
    terms = []
    if pairs[0]:
        h = rec.nary(ops.CODE["dot"], _handles(rec, pairs[0]), _handles(rec, pairs[1]))
        terms.append(_new(rec, h))
    if scaled[0]:
        h = rec.nary(ops.CODE["dotc"], _handles(rec, scaled[0]), scaled[1])
        terms.append(_new(rec, h))
    out = terms[0] if len(terms) == 1 else terms[0] + terms[1]
    return out + const if const != 0.0 else out


def dot(a, b):
    """Dot product of vectors or matrices of Vars and numbers, as ``np.dot``.

    Each entry of the result is one n-ary ``dot`` node (for the pairs of
    Vars) and one ``dotc`` node (for Vars times numbers, such as a layer's
    weights against an input), rather than a chain of multiply-adds.

    Parameters
    ----------
    a, b : array_like, 1-D or 2-D
        Vars, numbers or float arrays on either side, e.g. a float weight
        matrix and an array of Vars.

    Returns
    -------
    Var, float or ndarray
        1-D with 1-D: a scalar (a Var if any operand is one, else a float);
        2-D with 1-D, 1-D with 2-D: a 1-D object array; 2-D with 2-D: a 2-D
        object array of shape ``(a.shape[0], b.shape[1])``.

    Raises
    ------
    ValueError
        The inner lengths differ, or an operand is neither 1-D nor 2-D.

    Examples
    --------
    >>> ft.dot([1.0, 2.0], [3.0, 4.0])
    11.0
    >>> ft.grad(lambda w: ft.dot(w, [3.0, 4.0]))(np.array([1.0, 2.0]))
    array([3., 4.])
    """
    A, Bm = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    if A.ndim == 1 and Bm.ndim == 1:
        return _dot1(A, Bm)
    if A.ndim == 2 and Bm.ndim == 1:
        return _fill((A.shape[0],), lambda i: _dot1(A[i], Bm))
    if A.ndim == 1 and Bm.ndim == 2:
        return _fill((Bm.shape[1],), lambda j: _dot1(A, Bm[:, j]))
    if A.ndim == 2 and Bm.ndim == 2:
        if A.shape[1] != Bm.shape[0]:
            raise ValueError(f"ft.dot: shapes {A.shape} and {Bm.shape} not aligned")
        return _fill((A.shape[0], Bm.shape[1]), lambda i, j: _dot1(A[i], Bm[:, j]))
    raise ValueError(f"ft.dot takes 1-D or 2-D operands, got {A.ndim}-D and {Bm.ndim}-D")


def _fill(shape, entry):
    out = np.empty(shape, dtype=object)
    for idx in np.ndindex(*shape):
        out[idx] = entry(*idx)
    return out


def where(cond, a, b):
    """``a`` where ``cond`` holds (is non-zero), else ``b``: a branch-free select.

    Both branches are recorded, and the gradient flows only into the one
    taken, so a NaN or infinity in the other branch cannot reach it. No
    guard is recorded: a traced tape stays valid for every outcome, and
    samples of one batch may take different branches.

    Parameters
    ----------
    cond : condition (a Var from ``<``, ``==`` ...), number, bool or array
        A Var records one ``where`` node. A plain number or bool picks a
        branch now (nothing is recorded).
    a, b : Var, number, or arrays of them
        The two branches; numbers are recorded as constants.

    Returns
    -------
    Var, number or ndarray
        Elementwise (with broadcasting) if any argument is an array: an
        object array if any element is a Var, else ``np.where``'s result.

    Examples
    --------
    >>> f = lambda x: ft.where(x > 0, ft.log(x), 0.0)
    >>> ft.grad(f)(2.0), ft.grad(f)(-1.0)
    (0.5, 0.0)
    """
    if any(isinstance(x, (np.ndarray, list, tuple)) for x in (cond, a, b)):
        if any(_is_var_array(x) or isinstance(x, Var) for x in (cond, a, b)):
            return np.frompyfunc(where, 3, 1)(cond, a, b)
        return np.where(np.asarray(cond) != 0, a, b)
    if not isinstance(cond, Var):
        return a if cond else b  # a known condition picks a branch now
    rec = cond._rec
    branches = [x if isinstance(x, Var) else _new(rec, rec.const(float(x))) for x in (a, b)]
    return _new(rec, rec.nary(ops.CODE["where"], _handles(rec, [cond] + branches)))


def _comparison_example(name):
    """The gradient shown in a comparison's docstring example."""
    return repr(getattr(np, name)(np.array([0.0, 1.0, 2.0]), 1.0).astype(float))


def _comparison(name, compare):
    def fn(a, b):
        if _is_var_array(a) or _is_var_array(b):
            return np.frompyfunc(compare, 2, 1)(a, b)
        if isinstance(a, Var) or isinstance(b, Var):
            return compare(a, b)
        return getattr(np, name)(a, b)

    fn.__name__ = name
    fn.__doc__ = f"""{name}(a, b): the comparison as a condition; elementwise.

    On Vars it records conditions (Vars whose value is 1.0 where the
    comparison holds, else 0.0) for ``ft.where``; on object arrays of Vars
    it does so element by element, where NumPy's own operators on a plain
    object array would call ``bool`` on each result and so record guards.

    Parameters
    ----------
    a, b : Var, number, or array_like of numbers or of Vars

    Returns
    -------
    condition Var, object ndarray of them, or NumPy's bool result
        Conditions if any operand holds Vars, else ``np.{name}(a, b)``.
        Using a condition as a Python bool (``if``) records a guard.

    Examples
    --------
    >>> f = lambda v: ft.sum(ft.where(ft.{name}(v, 1.0), v, 0.0))
    >>> ft.grad(f)(np.array([0.0, 1.0, 2.0]))
    {_comparison_example(name)}
    """
    return fn


less = _comparison("less", lambda a, b: a < b)
less_equal = _comparison("less_equal", lambda a, b: a <= b)
greater = _comparison("greater", lambda a, b: a > b)
greater_equal = _comparison("greater_equal", lambda a, b: a >= b)
equal = _comparison("equal", lambda a, b: a == b)
not_equal = _comparison("not_equal", lambda a, b: a != b)
