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
    fn.__doc__ = f"{op.doc}, of a Var, a number or an array (elementwise)."
    return fn


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
    fn.__doc__ = f"Elementwise {name} of Vars, numbers or arrays; ties split the gradient."
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
    fn.__doc__ = f"{op.doc}, of Vars, numbers or arrays (elementwise)."
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
    """Sum of Vars and numbers, recorded as one n-ary node."""
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
    """np.dot for Vars (1-D or 2-D operands): each entry is one n-ary node."""
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
    """a where cond holds (is non-zero), else b: a branch-free select whose
    gradient flows only into the branch taken. Elementwise over arrays."""
    if any(isinstance(x, (np.ndarray, list, tuple)) for x in (cond, a, b)):
        if any(_is_var_array(x) or isinstance(x, Var) for x in (cond, a, b)):
            return np.frompyfunc(where, 3, 1)(cond, a, b)
        return np.where(np.asarray(cond) != 0, a, b)
    if not isinstance(cond, Var):
        return a if cond else b  # a known condition picks a branch now
    rec = cond._rec
    branches = [x if isinstance(x, Var) else _new(rec, rec.const(float(x))) for x in (a, b)]
    return _new(rec, rec.nary(ops.CODE["where"], _handles(rec, [cond] + branches)))


def _comparison(name, compare):
    def fn(a, b):
        if _is_var_array(a) or _is_var_array(b):
            return np.frompyfunc(compare, 2, 1)(a, b)
        if isinstance(a, Var) or isinstance(b, Var):
            return compare(a, b)
        return getattr(np, name)(a, b)

    fn.__name__ = name
    fn.__doc__ = (f"Elementwise {name} of Vars, numbers or arrays. On Vars it records "
                  f"conditions for ft.where (NumPy's own operators on object arrays "
                  f"would turn each into a bool, that is, a guard).")
    return fn


less = _comparison("less", lambda a, b: a < b)
less_equal = _comparison("less_equal", lambda a, b: a <= b)
greater = _comparison("greater", lambda a, b: a > b)
greater_equal = _comparison("greater_equal", lambda a, b: a >= b)
equal = _comparison("equal", lambda a, b: a == b)
not_equal = _comparison("not_equal", lambda a, b: a != b)
