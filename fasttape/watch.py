"""What a traced function reads besides its arguments, and whether it changed.

A trace bakes the numbers a function reads from its closure, its defaults and
its module's globals into the tape as constants. A cached transform must not
answer from them once they change, so when it traces it takes a snapshot of
every such number and numeric array (and of the functions it calls, one level
of helpers at a time); before a call answers from a cached tape, the snapshot
is compared with what the names hold now, in-place array writes included.

Comparing costs nothing for a function that reads no such value (the common
case: everything comes in as arguments), a few tens of nanoseconds a number,
and one memory comparison an array.
"""

import numbers
import types

import numpy as np

from .var import Var

MAX_DEPTH = 4  # helper functions followed: f calls g calls h ...


class Snapshot:
    """Values read by a function; changed() names the first one that differs
    now, or None. An entry is (name, where, key, obj, kept, mutable): the
    value is where[key] (a global), where.cell_contents (key None: a closure
    cell) or obj itself (where None: a default); obj is the object read at the
    snapshot, kept what was kept of it, and mutable says obj's contents can
    change in place (an array, a list), so being the same object is not enough."""

    __slots__ = ("entries", "captures_vars")

    def __init__(self, fn):
        self.entries, self.captures_vars = [], False
        self._scan(fn, set(), 0)

    def changed(self):
        for name, where, key, obj, kept, mutable in self.entries:
            try:
                now = obj if where is None else (
                    where.cell_contents if key is None else where[key])
            except (KeyError, ValueError):  # deleted, or an emptied cell
                return name
            if (now is not obj or mutable) and not _same(now, kept):
                return name
        return None

    def _scan(self, fn, seen, depth):
        if id(fn) in seen or depth > MAX_DEPTH:
            return
        seen.add(id(fn))
        inner = getattr(fn, "__wrapped__", None)  # a transform, or a decorated function
        if inner is not None:
            return self._scan(inner, seen, depth)
        if isinstance(fn, types.MethodType):
            return self._scan(fn.__func__, seen, depth)
        if hasattr(fn, "func") and hasattr(fn, "args") and hasattr(fn, "keywords"):
            for k, value in enumerate(fn.args):  # functools.partial
                self._watch(f"partial argument {k}", None, None, value, seen, depth)
            for key, value in (fn.keywords or {}).items():
                self._watch(key, None, None, value, seen, depth)
            return self._scan(fn.func, seen, depth)
        if not isinstance(fn, types.FunctionType):
            return
        code = fn.__code__
        for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
            try:
                value = cell.cell_contents
            except ValueError:  # not assigned yet
                continue
            self._watch(name, cell, None, value, seen, depth)
        for k, value in enumerate(fn.__defaults__ or ()):
            self._watch(f"default {k}", None, None, value, seen, depth)
        glob = fn.__globals__
        for name in sorted(_global_names(code)):
            if name in glob:
                self._watch(name, glob, name, glob[name], seen, depth)

    def _watch(self, name, where, key, value, seen, depth):
        kept = _kept(value)
        if kept is _VARS:
            self.captures_vars = True
        elif kept is not _IGNORED:
            mutable = isinstance(value, (np.ndarray, list)) or (
                isinstance(value, tuple) and any(isinstance(v, (np.ndarray, list)) for v in value))
            self.entries.append((name, where, key, value, kept, mutable))
        elif callable(value) and not isinstance(value, type):
            self._scan(value, seen, depth + 1)


def _global_names(code):
    """Names code (and code nested in it: lambdas, comprehensions) may read
    as globals; attribute names come along, which costs only a lookup."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


_IGNORED, _VARS = object(), object()


def _kept(value):
    """What to keep of a value: a number or a copy of an array (with the
    array's identity), _VARS for Vars, _IGNORED for everything else (modules,
    functions, objects: a trace does not read their contents as numbers)."""
    if isinstance(value, Var):
        return _VARS
    if isinstance(value, bool) or isinstance(value, numbers.Number):
        return (type(value), value)
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return _VARS if any(isinstance(x, Var) for x in value.ravel().tolist()) else _IGNORED
        return (np.ndarray, value.dtype, value.shape, value.tobytes())
    if isinstance(value, (tuple, list)) and len(value) <= 4096:
        if _plain_numbers(value):  # (a layout, a list of sizes): compared whole, in C
            return (_SEQUENCE, type(value), tuple(value))
        items = [_kept(v) for v in value]
        if any(k is _VARS for k in items):
            return _VARS
        if all(k is not _IGNORED for k in items):
            return (type(value), tuple(items))
    return _IGNORED


_SEQUENCE = object()


def _plain_numbers(value):
    """A tuple or list of ints, floats, bools, strings and None, or of tuples
    of them: what == compares exactly, item by item."""
    return all(type(v) in (int, float, bool, str, type(None)) or
               (type(v) is tuple and _plain_numbers(v)) for v in value)


def _same(now, kept):
    kind = kept[0]
    if kind is _SEQUENCE:
        return type(now) is kept[1] and len(now) == len(kept[2]) and tuple(now) == kept[2]
    if kind is np.ndarray:
        return (type(now) is np.ndarray and now.dtype == kept[1] and now.shape == kept[2]
                and now.tobytes() == kept[3])
    if type(now) is not kind:
        return False
    if kind is tuple or kind is list:
        return len(now) == len(kept[1]) and all(_same(v, k) for v, k in zip(now, kept[1]))
    old = kept[1]
    # the same number, NaN included, and the same sign of zero
    return now is old or (now == old and (now != 0 or str(now) == str(old))) or (
        now != now and old != old)
