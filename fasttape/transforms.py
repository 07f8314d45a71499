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

import numpy as np

from . import args as A
from . import nested
from .errors import ArgumentError, GuardError, RetraceWarning
from .tape import param_names, trace
from .var import recording
from .watch import Snapshot


class _Transformed:
    """fn transformed into `method` of its tape (grad, value_and_grad ...)."""

    MAX_VARIANTS = 16  # tapes kept per argument shapes (one per branch pattern)
    WARN_AFTER = 3     # calls in a row that re-trace for a changed value

    def __init__(self, fn, method, argnums, in_axes):
        if not callable(fn):
            raise TypeError(f"ft.{method} takes a function, got {type(fn).__name__}")
        self.fn, self.method = fn, method
        self.argnums = A.canonical_wrt(argnums, "argnums")
        self.in_axes = A.canonical_axes(in_axes)
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

    def __call__(self, *args):
        if self._watched:  # fn reads numbers or arrays besides its arguments
            self._check_fresh()
        if recording():  # inside a trace: record the derivative there
            return self._nested(args)
        if self._layout is not None:  # the last batch's tape, if the arguments fit it
            try:
                fast = self._layout(args)
            except GuardError:  # another branch: the tapes below sort it out, and the
                fast = self._layout = None  # one that serves it is tried first next
            if fast is not None:
                return fast
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

    def _nested(self, args):
        idx, single = A.normalize_wrt(self.argnums, len(args), "argnums")
        axes = A.normalize_axes(self.in_axes, len(args))
        return nested.call(self.method, self.fn, args, idx, single, axes)

    def _examples(self, args):
        """(shapes key, example arguments: a batched argument's first row)."""
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
        out = getattr(tape, self.method)(*args, wrt=self.argnums, in_axes=self.in_axes)
        if self._layout is None and self.method in ("grad", "value_and_grad"):
            self._layout = tape._fast_path(self.argnums, self.in_axes, self.method == "grad")
        return out


def grad(fn, argnums=0, in_axes=None):
    """A function returning the gradient of scalar fn with respect to argnums."""
    return _Transformed(fn, "grad", argnums, in_axes)


def value_and_grad(fn, argnums=0, in_axes=None):
    """A function returning (fn's value, its gradient)."""
    return _Transformed(fn, "value_and_grad", argnums, in_axes)


def jacobian(fn, argnums=0, in_axes=None):
    """A function returning d fn / d argument(s): output.shape + arg.shape."""
    return _Transformed(fn, "jacobian", argnums, in_axes)


def hessian(fn, argnums=0, in_axes=None):
    """A function returning the exact Hessian of scalar fn: arg.shape + arg.shape."""
    return _Transformed(fn, "hessian", argnums, in_axes)
