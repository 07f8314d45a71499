"""What NumPy calls on traced arrays become (NumPy's NEP 13 and NEP 18).

Inside ft.trace and every transform, an array argument is a TracedArray: an
ndarray of Vars (dtype object) whose __array_ufunc__ and __array_function__
hand NumPy's calls to fasttape's own, so that plain `import numpy as np` code
records its fast, branch-free form:

- elementwise ufuncs become op-table rows (np.arctan, np.logaddexp ...), and
  comparisons conditions, never Python bools (so never guards);
- products (@, np.dot, np.matmul, np.inner, np.outer, np.tensordot, np.einsum)
  become one n-ary dot node per output entry (dotc against constants);
- reductions (.sum(), np.mean, np.max ...) become one n-ary sum, or a chain
  of branch-free maximum / minimum nodes; np.where, np.clip are selects;
- shape functions (reshape, transpose, concatenate, slicing ...) run as NumPy
  runs them on object arrays.

Anything else raises UnsupportedError, saying what to use instead.
"""

import functools
import math
import operator
import sys

import numpy as np

from . import functions as F
from .errors import FasttapeError
from .var import Var


class UnsupportedError(FasttapeError, TypeError):
    """A NumPy function that fasttape cannot record on traced arrays or Vars.

    Raised for functions that would compare or branch on traced values
    (np.sort, np.median, np.isnan, ...) or that are not differentiable as
    written; the message says what to use instead.
    """


class TracedArray(np.ndarray):
    """An array of Vars being traced; NumPy functions on it record nodes."""

    __array_priority__ = 100  # (over plain arrays in mixed Python operators)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return array_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return array_function(func, args, kwargs)

    def __array_namespace__(self, *, api_version=None):
        """fasttape.array_api: array-API code keeps this array traced."""
        from . import array_api
        return array_api

    # Indexing by traced values (a mask of conditions, an index from argmax)
    # would pick elements by what the values are now: a branch, baked in.
    def __getitem__(self, index):
        return super().__getitem__(_static(index))

    def __setitem__(self, index, value):
        if isinstance(index, np.ndarray) and index.dtype == object:
            _select_into(self, index, value)  # x[mask] = y: a select, not a branch
        else:
            super().__setitem__(_static(index), value)


def _static(index):
    """index, unless it depends on traced values (then UnsupportedError)."""
    if type(index) is int or type(index) is slice:  # (the common case, at once)
        return index
    for part in index if isinstance(index, tuple) else (index,):
        if isinstance(part, Var) or (isinstance(part, np.ndarray) and part.dtype == object):
            raise UnsupportedError("indexing a traced array by traced values (a mask of "
                                   "conditions, an argmax) would bake in a branch: use "
                                   "np.where(cond, x, y), or np.max for the largest element")
    return index


def _select_into(x, mask, value):
    """x[mask] = value for a mask of conditions: x = where(mask, value, x) in place."""
    if np.size(value) != 1 or np.broadcast_shapes(mask.shape, x.shape) != x.shape:
        raise UnsupportedError("x[mask] = y with a mask of traced conditions takes one "
                               "value y and a mask of x's shape: use np.where(mask, y, x)")
    value = np.ravel(np.asarray(value, dtype=object))[0]
    np.ndarray.__setitem__(x, Ellipsis, F.where(_plain(mask), value, x.view(np.ndarray)))


def array_ufunc(ufunc, method, inputs, kwargs):
    """NEP 13 for traced arrays and Vars: ufunc `method` on inputs, recorded."""
    if ufunc.__name__.endswith("(vectorized)") and method == "__call__":
        # np.frompyfunc's (fasttape's elementwise functions are): elementwise as is
        return wrap(ufunc(*[_objects(x) for x in inputs], **kwargs))
    out = kwargs.pop("out", None)
    for key in ("dtype", "casting", "subok", "order"):
        kwargs.pop(key, None)  # results are Vars whatever is asked
    if kwargs.get("where", True) is not True:
        raise UnsupportedError(f"np.{ufunc.__name__}(..., where=...) on traced arrays: "
                               f"use np.where on the result instead")
    kwargs.pop("where", None)
    plain = [_plain(x) for x in inputs]
    if method == "__call__":
        result = _call(ufunc, plain, kwargs)
    elif method in ("reduce", "accumulate"):
        result = _reduction(ufunc, method, plain[0], **kwargs)
    else:
        raise UnsupportedError(f"np.{ufunc.__name__}.{method} on traced arrays")
    if out is not None:  # (ndarray.mean divides into its own result)
        target = out[0] if isinstance(out, tuple) else out
        target[...] = result
        return target
    return wrap(result)


def array_function(func, args, kwargs):
    """NEP 18 for traced arrays and Vars: func(*args, **kwargs), recorded."""
    handler = HANDLED.get(func)
    if handler is not None:
        return wrap(handler(*_plain_tree(args), **_plain_tree(kwargs)))
    if func in STRUCTURAL:
        return wrap(func._implementation(*_plain_tree(args), **_plain_tree(kwargs)))
    raise UnsupportedError(
        f"np.{func.__name__} is not supported on traced arrays (it would compare or "
        f"branch on Vars, or is not differentiable as written)"
        f"{_FUNCTION_INSTEAD.get(func.__name__, '')}; supported are ufuncs, products, "
        f"reductions (sum mean prod var std max min cumsum), np.where, np.clip and shape "
        f"functions: see fasttape/numpy_api.py")


_FUNCTION_INSTEAD = {
    "sort": ": for the largest or smallest use np.max / np.min",
    "argsort": ": np.argmax / np.argmin give one index, as a Var",
    "median": ": np.mean, or the sample passed in as data",
    "percentile": ": compute it outside the traced function and pass it in",
    "quantile": ": compute it outside the traced function and pass it in",
    "any": ": a sum of conditions, with np.where", "all": ": a product of conditions",
    "nonzero": ": np.where(cond, x, 0.0)", "unique": ": compute it outside and pass it in",
    "isnan": ": compare x != x", "round": ": np.floor(x + 0.5)", "around": ": np.floor(x + 0.5)",
    "cross": ": write the three components with * and -",
}


def wrap(x):
    """Object arrays as TracedArrays (0-d as their element); the rest as is."""
    if isinstance(x, np.ndarray) and x.dtype == object:
        return x.item() if x.ndim == 0 else x.view(TracedArray)
    if isinstance(x, (tuple, list)):
        return type(x)(wrap(v) for v in x)
    return x


def traced(array):
    """An object array of Vars as a TracedArray."""
    return np.asarray(array, dtype=object).view(TracedArray)


def _objects(x):
    """x as a plain ndarray (a Var or a number as a 0-d object array)."""
    if isinstance(x, np.ndarray):
        return _plain(x)
    return np.asarray(x, dtype=object) if isinstance(x, Var) else x


def _plain(x):
    return x.view(np.ndarray) if isinstance(x, TracedArray) else x


def _plain_tree(x):
    if isinstance(x, TracedArray):
        return x.view(np.ndarray)
    if isinstance(x, (tuple, list)):
        return type(x)(_plain_tree(v) for v in x)
    if isinstance(x, dict):
        return {k: _plain_tree(v) for k, v in x.items()}
    return x


# ------------------------------------------------------------ elementwise

def _numbers_by(numpy_ufunc, on_vars):
    """on_vars where an operand is a Var; NumPy's own ufunc on numbers (so
    1 / 0 is inf, as in the sweeps, not a ZeroDivisionError)."""
    def fn(*xs):
        for x in xs:
            if isinstance(x, Var):
                return on_vars(*xs)
        with np.errstate(all="ignore"):
            return float(numpy_ufunc(*xs))
    return fn


def _scale(c):
    return lambda x: x * c


ELEMENTWISE = {
    np.negative: operator.neg, np.positive: operator.pos, np.absolute: abs, np.fabs: abs,
    np.conjugate: operator.pos,  # (real numbers)
    np.deg2rad: _scale(math.pi / 180.0), np.rad2deg: _scale(180.0 / math.pi),
    np.add: operator.add, np.subtract: operator.sub, np.multiply: operator.mul,
    np.true_divide: operator.truediv, np.power: operator.pow, np.float_power: operator.pow,
    np.less: operator.lt, np.less_equal: operator.le, np.greater: operator.gt,
    np.greater_equal: operator.ge, np.equal: operator.eq, np.not_equal: operator.ne,
    np.remainder: F.mod,
}
for _name in ("exp", "log", "sqrt", "sin", "cos", "tan", "tanh", "log1p", "expm1", "arcsin",
              "arccos", "arctan", "sinh", "cosh", "arcsinh", "arccosh", "arctanh", "log2",
              "log10", "exp2", "cbrt", "square", "reciprocal", "floor", "ceil", "sign",
              "arctan2", "hypot", "logaddexp", "logaddexp2", "copysign", "fmod", "fmax", "fmin",
              "maximum", "minimum"):
    ELEMENTWISE[getattr(np, _name)] = getattr(F, _name)
ELEMENTWISE = {u: _numbers_by(u, fn) for u, fn in ELEMENTWISE.items()}
# Negating a condition (~mask): a condition again, 1.0 where it was 0.0.
ELEMENTWISE[np.logical_not] = ELEMENTWISE[np.invert] = _numbers_by(
    np.logical_not, lambda c: c == 0.0)


# Ufuncs whose object loop already records the right node per element: it
# calls a Var's own operator slots from C, faster than a Python function per
# element, and on two plain numbers it cannot raise (unlike 1 / 0 or 10 ** 400).
NATIVE = {np.add, np.subtract, np.multiply, np.negative, np.positive, np.absolute}


def _call(ufunc, inputs, kwargs):
    if ufunc is np.matmul:
        return _matmul(*inputs)
    if ufunc in NATIVE and not kwargs:
        return ufunc(*[_objects(x) for x in inputs])
    fn = ELEMENTWISE.get(ufunc)
    if fn is None:
        raise UnsupportedError(f"{_ufunc_name(ufunc)} is not differentiable on traced "
                               f"arrays{_INSTEAD.get(ufunc.__name__, '')}")
    if kwargs:
        raise UnsupportedError(f"np.{ufunc.__name__} with {sorted(kwargs)} on traced arrays")
    return np.frompyfunc(fn, ufunc.nin, 1)(*inputs)


_INSTEAD = {"logical_and": ": multiply conditions, or use np.where",
            "logical_or": ": add conditions, or use np.where",
            "isnan": ": compare x != x", "isfinite": ": compare np.abs(x) < np.inf",
            "rint": ": use np.floor(x + 0.5)", "trunc": ": use np.fmod",
            # SciPy's elementwise functions (ufuncs too), written with NumPy's
            "expit": ": write 0.5 * (1 + np.tanh(0.5 * x))",
            "log_expit": ": write -np.logaddexp(0, -x)",
            "logit": ": write np.log(x) - np.log1p(-x)",
            "entr": ": write np.where(x > 0, -x * np.log(x), 0.0)",
            "xlogy": ": write np.where(x == 0, 0.0, x * np.log(y))",
            "rel_entr": ": write np.where(x > 0, x * np.log(x / y), 0.0)"}


def _ufunc_name(ufunc):
    """np.exp; scipy.special.expit for SciPy's; else the ufunc's name."""
    name = ufunc.__name__
    if getattr(np, name, None) is ufunc:
        return f"np.{name}"
    special = sys.modules.get("scipy.special")
    if special is not None and getattr(special, name, None) is ufunc:
        return f"scipy.special.{name}"
    return f"the ufunc {name}"


# ------------------------------------------------------------ reductions

_COMBINE = {np.add: F.sum, np.multiply: lambda xs: functools.reduce(operator.mul, xs),
            np.maximum: lambda xs: functools.reduce(F.maximum, xs),
            np.minimum: lambda xs: functools.reduce(F.minimum, xs),
            np.fmax: lambda xs: functools.reduce(F.fmax, xs),
            np.fmin: lambda xs: functools.reduce(F.fmin, xs),
            np.logaddexp: lambda xs: functools.reduce(F.logaddexp, xs)}


def _reduction(ufunc, method, x, axis=0, keepdims=False, initial=None):
    combine = _COMBINE.get(ufunc)
    if combine is None or (method == "accumulate" and ufunc is not np.add):
        raise UnsupportedError(f"np.{ufunc.__name__}.{method} on traced arrays")
    x = np.asarray(x, dtype=object)
    if method == "accumulate":
        return _along(x, axis, _running_sum)
    axes = tuple(range(x.ndim)) if axis is None else _axes(axis, x.ndim)
    moved = np.moveaxis(x, axes, tuple(range(x.ndim - len(axes), x.ndim)))
    keep = moved.shape[:x.ndim - len(axes)]
    rows = moved.reshape(keep + (-1,))
    if rows.shape[-1] == 0 and initial is None:
        if ufunc is np.add:
            initial = 0.0
        elif ufunc is np.multiply:
            initial = 1.0
        else:
            raise ValueError(f"np.{ufunc.__name__}.reduce of an empty traced array")
    out = np.empty(keep, dtype=object)
    for idx in np.ndindex(*keep):
        items = list(rows[idx])
        if initial is not None:
            items = [initial] + items
        out[idx] = combine(items)
    if keepdims:
        out = np.expand_dims(out, axes) if out.ndim else out.reshape((1,) * x.ndim)
    return out if out.ndim else out[()]


def _axes(axis, ndim):
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(a % ndim for a in axes)


def _along(x, axis, fn):
    """fn on each 1-D line of x along axis (flattened when axis is None)."""
    if axis is None:
        x, axis = x.ravel(), 0
    moved = np.moveaxis(x, axis, -1)
    out = np.empty(moved.shape, dtype=object)
    for idx in np.ndindex(*moved.shape[:-1]):
        out[idx] = fn(list(moved[idx]))
    return np.moveaxis(out, -1, axis)


# ------------------------------------------------------------ products

def _matmul(a, b):
    A, B = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    if A.ndim == 0 or B.ndim == 0:
        raise ValueError("matmul: an operand is a scalar; use *")
    if A.ndim <= 2 and B.ndim <= 2:
        return F.dot(A, B)
    # a stack of matrices: broadcast the leading axes, one product each
    A2, B2 = (A if A.ndim > 1 else A[None, :]), (B if B.ndim > 1 else B[:, None])
    lead = np.broadcast_shapes(A2.shape[:-2], B2.shape[:-2])
    A2 = np.broadcast_to(A2, lead + A2.shape[-2:])
    B2 = np.broadcast_to(B2, lead + B2.shape[-2:])
    out = np.empty(lead + (A2.shape[-2], B2.shape[-1]), dtype=object)
    for idx in np.ndindex(*lead):
        out[idx] = F.dot(A2[idx], B2[idx])
    if A.ndim == 1:
        out = out[..., 0, :]
    if B.ndim == 1:
        out = out[..., 0]
    return out


def _dot(a, b, out=None):
    _no_out(out, "dot")
    A, B = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    if A.ndim == 0 or B.ndim == 0:
        return np.frompyfunc(ELEMENTWISE[np.multiply], 2, 1)(A, B)
    if B.ndim <= 2:
        return _matmul(A, B)
    return _tensordot(A, B, axes=([A.ndim - 1], [B.ndim - 2]))


def _inner(a, b):
    A, B = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    if A.ndim == 0 or B.ndim == 0:
        return _dot(A, B)
    return _tensordot(A, B, axes=([A.ndim - 1], [B.ndim - 1]))


def _outer(a, b, out=None):
    _no_out(out, "outer")
    A, B = np.ravel(np.asarray(a, dtype=object)), np.ravel(np.asarray(b, dtype=object))
    return np.frompyfunc(ELEMENTWISE[np.multiply], 2, 1)(A[:, None], B[None, :])


def _tensordot(a, b, axes=2):
    """Contract as NumPy does: every output entry one n-ary dot node."""
    A, B = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    if isinstance(axes, int):
        axa, axb = list(range(A.ndim - axes, A.ndim)), list(range(axes))
    else:
        axa, axb = ([axes[0]] if isinstance(axes[0], int) else list(axes[0]),
                    [axes[1]] if isinstance(axes[1], int) else list(axes[1]))
    axa, axb = [x % A.ndim for x in axa], [x % B.ndim for x in axb]
    if [A.shape[i] for i in axa] != [B.shape[i] for i in axb]:
        raise ValueError("tensordot: shape mismatch for the summed axes")
    free_a = [i for i in range(A.ndim) if i not in axa]
    free_b = [i for i in range(B.ndim) if i not in axb]
    n = int(np.prod([A.shape[i] for i in axa]))
    A2 = A.transpose(free_a + axa).reshape(-1, n)
    B2 = B.transpose(axb + free_b).reshape(n, -1)
    out = F.dot(A2, B2)
    return np.asarray(out, dtype=object).reshape([A.shape[i] for i in free_a] +
                                                 [B.shape[i] for i in free_b])


def _einsum(subscripts, *operands, **kwargs):
    """Each output entry as one n-ary dot of the products that sum into it
    (two operands), or a sum of products."""
    if kwargs.get("out") is not None:
        raise UnsupportedError("np.einsum(..., out=...) on traced arrays")
    ops_ = [np.asarray(x, dtype=object) for x in operands]
    if "->" in subscripts:
        ins, out_sub = subscripts.replace(" ", "").split("->")
    else:
        ins = subscripts.replace(" ", "")
        letters = "".join(ins.split(","))
        out_sub = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    ins = ins.split(",")
    if len(ins) != len(ops_) or "." in subscripts:
        raise UnsupportedError("np.einsum on traced arrays takes explicit subscripts, "
                               "one per operand, without ellipses")
    size = {}
    for sub, x in zip(ins, ops_):
        for c, n in zip(sub, x.shape):
            size[c] = n
    summed = [c for c in size if c not in out_sub]
    out = np.empty(tuple(size[c] for c in out_sub), dtype=object)
    for o_idx in np.ndindex(*out.shape):
        fixed = dict(zip(out_sub, o_idx))
        factors = []
        for s_idx in np.ndindex(*(size[c] for c in summed)):
            at = dict(fixed, **dict(zip(summed, s_idx)))
            factors.append([x[tuple(at[c] for c in sub)] for sub, x in zip(ins, ops_)])
        if len(ops_) == 2:
            out[o_idx] = F.dot([f[0] for f in factors], [f[1] for f in factors])
        else:
            out[o_idx] = F.sum([functools.reduce(operator.mul, f) for f in factors])
    return out if out.ndim else out[()]


def _no_out(out, name):
    if out is not None:
        raise UnsupportedError(f"np.{name}(..., out=...) on traced arrays")


# ------------------------------------------------------------ statistics

def _sum(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=True):
    _no_out(out, "sum")
    return _reduction(np.add, "reduce", a, axis=axis, keepdims=keepdims, initial=initial)


def _count(a, axis):
    shape = np.shape(a)
    if axis is None:
        return int(np.prod(shape))
    return int(np.prod([shape[i] for i in _axes(axis, len(shape))]))


def _mean(a, axis=None, dtype=None, out=None, keepdims=False, where=True):
    _no_out(out, "mean")
    total = _sum(a, axis=axis, keepdims=keepdims)
    return _divide(total, _count(a, axis))


def _divide(x, n):
    if isinstance(x, np.ndarray):
        return np.frompyfunc(lambda v: v / n, 1, 1)(x)
    return x / n


def _var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, where=True, mean=None,
         correction=None):
    _no_out(out, "var")
    ddof = correction if correction is not None else ddof
    A = np.asarray(a, dtype=object)
    centre = _mean(A, axis=axis, keepdims=True)
    dev = np.frompyfunc(ELEMENTWISE[np.subtract], 2, 1)(A, centre)
    sq = np.frompyfunc(lambda v: v * v, 1, 1)(dev)
    return _divide(_sum(sq, axis=axis, keepdims=keepdims), _count(A, axis) - ddof)


def _std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, where=True, mean=None,
         correction=None):
    v = _var(a, axis=axis, ddof=ddof, keepdims=keepdims, correction=correction)
    return np.frompyfunc(F.sqrt, 1, 1)(v) if isinstance(v, np.ndarray) else F.sqrt(v)


def _prod(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=True):
    _no_out(out, "prod")
    return _reduction(np.multiply, "reduce", a, axis=axis, keepdims=keepdims, initial=initial)


def _max(a, axis=None, out=None, keepdims=False, initial=None, where=True):
    _no_out(out, "max")
    return _reduction(np.maximum, "reduce", a, axis=axis, keepdims=keepdims, initial=initial)


def _min(a, axis=None, out=None, keepdims=False, initial=None, where=True):
    _no_out(out, "min")
    return _reduction(np.minimum, "reduce", a, axis=axis, keepdims=keepdims, initial=initial)


def _arg_extremum(better):
    def fn(a, axis=None, out=None, keepdims=False):
        """The index (a Var: first where tied), found by selects, not branches."""
        _no_out(out, "argmax")

        def line(row):
            best, at = row[0], 0.0
            for k, x in enumerate(row[1:], 1):
                wins = better(x, best)
                best, at = F.where(wins, x, best), F.where(wins, float(k), at)
            return at
        A = np.asarray(a, dtype=object)
        if axis is None:
            return line(list(A.ravel()))
        moved = np.moveaxis(A, axis, -1)
        out_ = np.empty(moved.shape[:-1], dtype=object)
        for idx in np.ndindex(*out_.shape):
            out_[idx] = line(list(moved[idx]))
        return out_ if out_.ndim else out_[()]
    return fn


def _cumsum(a, axis=None, dtype=None, out=None):
    _no_out(out, "cumsum")
    return _along(np.asarray(a, dtype=object), axis, _running_sum)


def _running_sum(row):
    total, out = None, []
    for x in row:
        total = x if total is None else total + x
        out.append(total)
    return out


def _where(condition, x=None, y=None):
    if x is None or y is None:
        raise UnsupportedError("np.where(condition) with one argument gives indices, which "
                               "depend on traced values: use np.where(condition, x, y)")
    return F.where(condition, x, y)


def _clip(a, a_min=None, a_max=None, out=None, **kwargs):
    _no_out(out, "clip")
    a_min, a_max = kwargs.pop("min", a_min), kwargs.pop("max", a_max)
    x = a
    if a_min is not None:
        x = np.frompyfunc(ELEMENTWISE[np.maximum], 2, 1)(x, a_min)
    if a_max is not None:
        x = np.frompyfunc(ELEMENTWISE[np.minimum], 2, 1)(x, a_max)
    return x


def _norm(x, ord=None, axis=None, keepdims=False):
    if ord not in (None, 2, "fro") or (ord == 2 and np.ndim(x) != 1 and axis is None):
        raise UnsupportedError(f"np.linalg.norm(ord={ord!r}) on traced arrays: the 2-norm "
                               f"(and Frobenius) only; write others with np.abs and np.sum")
    sq = np.frompyfunc(lambda v: v * v, 1, 1)(np.asarray(x, dtype=object))
    total = _sum(sq, axis=axis, keepdims=keepdims)
    return np.frompyfunc(F.sqrt, 1, 1)(total) if isinstance(total, np.ndarray) else \
        F.sqrt(total)


HANDLED = {
    np.dot: _dot, np.matmul: lambda a, b, **kw: _matmul(a, b), np.inner: _inner,
    np.outer: _outer, np.tensordot: _tensordot, np.einsum: _einsum, np.vdot: (
        lambda a, b: _dot(np.ravel(a), np.ravel(b))),
    np.sum: _sum, np.mean: _mean, np.var: _var, np.std: _std, np.prod: _prod,
    np.max: _max, np.amax: _max, np.min: _min, np.amin: _min,
    np.argmax: _arg_extremum(lambda x, best: x > best),
    np.argmin: _arg_extremum(lambda x, best: x < best),
    np.cumsum: _cumsum, np.where: _where, np.clip: _clip, np.linalg.norm: _norm,
}

STRUCTURAL = {
    np.reshape, np.transpose, np.concatenate, np.stack, np.hstack, np.vstack, np.column_stack,
    np.squeeze, np.expand_dims, np.ravel, np.atleast_1d, np.atleast_2d, np.atleast_3d,
    np.broadcast_to, np.broadcast_arrays, np.copy, np.shape, np.ndim, np.size, np.swapaxes,
    np.moveaxis, np.flip, np.fliplr, np.flipud, np.roll, np.tile, np.repeat, np.split,
    np.array_split, np.take, np.diag, np.diagonal, np.zeros_like, np.ones_like, np.full_like,
    np.empty_like, np.append, np.insert, np.delete, np.triu, np.tril, np.rot90, np.block,
    np.result_type, np.iscomplexobj, np.isrealobj, np.may_share_memory, np.shares_memory,
}


# SciPy's array-API functions take fasttape.array_api for traced arrays, from
# whenever SciPy is imported (fasttape itself does not import it).
from .array_api import route_scipy_on_import  # noqa: E402  (it needs TracedArray)
route_scipy_on_import()
