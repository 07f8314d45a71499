"""An array-API namespace for traced arrays, and SciPy's way to it.

Array-API code (SciPy's `scipy.special.logsumexp`, `softmax`, `log_softmax`,
...) asks for its arrays' namespace `xp` and calls `xp.asarray`, `xp.max`,
`xp.where`, `xp.isfinite` ... NumPy as `xp` would turn a traced array into a
plain object array at the first `xp.asarray`, after which `np.max` compares
Vars as Python bools (guards). This namespace keeps traced arrays traced, so
each call lands in numpy_api's NEP 13/18 handlers and records its branch-free
form; everything it does not define is NumPy's own function.

A traced array's `__array_namespace__()` returns this module. SciPy does not
ask an ndarray subclass for it (it takes NumPy's namespace for every ndarray,
and rejects object arrays under SCIPY_ARRAY_API), so SciPy's
`array_namespace` is routed here for traced arguments as soon as SciPy is
imported (`route_scipy`); for all other arguments SciPy's own function runs,
unchanged. fasttape never imports SciPy itself.
"""

import functools
import importlib.abc
import importlib.machinery
import sys
import threading

import numpy as np

from .numpy_api import TracedArray, UnsupportedError, traced
from .var import Var

__array_api_version__ = "2023.12"

_FLOAT = np.dtype(np.float64)


_WRAPPED = {}


def __getattr__(name):
    """What this namespace does not define is NumPy's (which dispatches to
    numpy_api on traced arrays), with a Var result as a 0-d traced array (the
    standard's functions return arrays: code reads .ndim, indexes by ())."""
    obj = getattr(np, name)
    if not callable(obj) or isinstance(obj, type):  # constants, dtypes
        return obj
    fn = _WRAPPED.get(name)
    if fn is None:
        @functools.wraps(obj)
        def fn(*args, **kwargs):
            out = obj(*args, **kwargs)
            return traced(out) if isinstance(out, Var) else out
        fn = _WRAPPED.setdefault(name, fn)
    return fn


def _as_traced(obj):
    """obj as a TracedArray if it holds Vars, else None."""
    if isinstance(obj, TracedArray):
        return obj
    if isinstance(obj, Var):
        return traced(obj)
    if isinstance(obj, (list, tuple)) or (isinstance(obj, np.ndarray) and obj.dtype == object):
        arr = np.asarray(obj, dtype=object)
        if any(isinstance(v, Var) for v in arr.flat):
            return traced(arr)
    return None


def _real(dtype, what):
    """Traced values are float64: any other dtype asked of them is refused."""
    if dtype is None:
        return
    dt = np.dtype(dtype)
    if dt != object and dt.kind != "f":
        raise UnsupportedError(f"{what} of a traced array as {dt}: traced values are "
                               f"float64 (conditions are 1.0 or 0.0); use np.where")


def _float_dtype(dtype):
    """A dtype, with traced arrays' object dtype (and Vars) read as float64."""
    try:
        dt = np.dtype(dtype)
    except TypeError:  # a Var or an array passed where a dtype goes
        return _FLOAT
    return _FLOAT if dt == object else dt


def asarray(obj, /, *, dtype=None, device=None, copy=None):
    """A traced array stays traced (a copy if copy=True); anything else is NumPy's."""
    t = _as_traced(obj)
    if t is not None:
        _real(dtype, "asarray")
        return t.copy() if copy else t
    if copy:
        return np.array(obj, dtype=dtype, copy=True)
    return np.asarray(obj, dtype=dtype)


def astype(x, dtype, /, *, copy=True, device=None):
    t = _as_traced(x)
    if t is not None:
        _real(dtype, "astype")
        return t.copy() if copy else t
    return np.asarray(x).astype(dtype, copy=copy)


def isdtype(dtype, kind):
    """np.isdtype, a traced array's dtype (object) counting as float64."""
    dt = _float_dtype(dtype)
    if isinstance(kind, tuple):
        return any(isdtype(dt, k) for k in kind)
    if isinstance(kind, str):
        return {"bool": dt.kind == "b", "signed integer": dt.kind == "i",
                "unsigned integer": dt.kind == "u", "integral": dt.kind in "iu",
                "real floating": dt.kind == "f", "complex floating": dt.kind == "c",
                "numeric": dt.kind in "iufc"}[kind]
    return dt == _float_dtype(kind)


def result_type(*arrays_and_dtypes):
    """np.result_type, traced arrays counting as float64 (never complex)."""
    has_traced = any(_as_traced(x) is not None for x in arrays_and_dtypes)
    dt = np.result_type(*[_FLOAT if _as_traced(x) is not None
                          else (_float_dtype(x.dtype) if isinstance(x, np.ndarray) else x)
                          for x in arrays_and_dtypes])
    if has_traced and dt.kind != "f":
        raise UnsupportedError(f"traced values are float64: they do not combine into {dt}")
    return dt


def max(x, /, *, axis=None, keepdims=False):
    """np.max, with its gradient split evenly among tied maxima (as JAX's).

    np.max's chain of maximum nodes gives a tie to one side, which is
    enough for values but not for functions that are smooth across ties:
    logsumexp's gradient is softmax, 1/3 each for three equal entries. The
    result is the chain's value plus a correction that is exactly 0 but
    whose derivative moves the gradient onto all tied entries alike."""
    t = _as_traced(x)
    if t is None:
        return np.max(x, axis=axis, keepdims=keepdims)
    m = np.max(t, axis=axis, keepdims=True)
    ties = t == m
    shift = np.sum(np.where(ties, t - m, 0.0), axis=axis, keepdims=True)
    shift = shift / np.sum(ties, axis=axis, keepdims=True)
    out = m + np.where(shift == 0.0, shift, 0.0)  # (inf - inf: no correction)
    return out if keepdims else asarray(np.squeeze(out, axis=axis))


# Finiteness as conditions (values 1.0 or 0.0), so a select can use them.
def isnan(x):
    t = _as_traced(x)
    return np.isnan(x) if t is None else t != t


def isinf(x):
    t = _as_traced(x)
    return np.isinf(x) if t is None else np.abs(t) == np.inf


def isfinite(x):
    t = _as_traced(x)
    return np.isfinite(x) if t is None else np.abs(t) < np.inf


# Traced values are real.
def real(x):
    return x if _as_traced(x) is not None else np.real(x)


def conj(x):
    return x if _as_traced(x) is not None else np.conj(x)


def imag(x):
    return np.zeros(np.shape(x)) if _as_traced(x) is not None else np.imag(x)


# ------------------------------------------------------------ SciPy's route here

_lock = threading.Lock()
_routed_scipy = False
# The module that defines SciPy's array_namespace, its re-export (which
# SciPy's modules import) and array-api-extra's vendored copy of it.
_SOURCE = "scipy._lib._array_api_override"
_NAMES = ("array_namespace", "scipy_array_namespace")


def route_scipy():
    """SciPy's array_namespace returns this namespace when an argument is
    traced (a traced array, a Var, or a list or tuple holding Vars), and runs
    as before otherwise. Once, as soon as SciPy has defined the function:
    the modules that imported it already get the routed one in its place,
    the modules imported later import the routed one."""
    global _routed_scipy
    with _lock:
        source = sys.modules.get(_SOURCE)
        if _routed_scipy or getattr(source, "array_namespace", None) is None:
            return
        original = source.array_namespace
        routed = _routed(original)
        for name, module in list(sys.modules.items()):
            if not name.startswith("scipy") or module is None:
                continue
            names = getattr(module, "__dict__", {})
            for key in _NAMES:
                if names.get(key) is original:
                    setattr(module, key, routed)
        _routed_scipy = True


def _routed(original):
    namespace = sys.modules[__name__]

    @functools.wraps(original)
    def array_namespace(*arrays):
        for x in arrays:
            if isinstance(x, (TracedArray, Var)) or (
                    isinstance(x, (list, tuple)) and any(isinstance(v, Var) for v in x)):
                return namespace
        return original(*arrays)
    return array_namespace


class _AfterScipyDefinesIt(importlib.abc.MetaPathFinder):
    """An import hook for one module, SciPy's _array_api_override: it loads
    as usual, then route_scipy runs. Every other import passes it by."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _SOURCE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None:
            return None
        exec_module = spec.loader.exec_module

        def exec_then_route(module):
            exec_module(module)
            route_scipy()
        spec.loader.exec_module = exec_then_route
        return spec


def route_scipy_on_import():
    """Route SciPy now if it is imported, else as soon as it is."""
    if _SOURCE in sys.modules:
        route_scipy()
    elif not any(isinstance(f, _AfterScipyDefinesIt) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterScipyDefinesIt())
