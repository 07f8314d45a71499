"""ft.grad, ft.value_and_grad, ft.jacobian: function transforms over tapes.

The function is traced on its first call for each set of argument shapes
(per sample, when batched) and the tape cached; later calls only replay.
"""

import functools

import numpy as np

from . import args as A
from .errors import ArgumentError, GuardError
from .tape import param_names, trace


class _Transformed:
    """fn transformed into `method` of its tape (grad, value_and_grad ...)."""

    MAX_VARIANTS = 16  # tapes kept per argument shapes (one per branch pattern)

    def __init__(self, fn, method, argnums, in_axes):
        self.fn, self.method, self.argnums, self.in_axes = fn, method, argnums, in_axes
        self.tapes = {}  # argument shapes -> tapes, one per branch pattern met
        self._names, self._axes = {}, {}
        self._layout = None  # the last batched gradient's Layout: tried first
        functools.update_wrapper(self, fn)

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

    def __call__(self, *args):
        if self._layout is not None:  # the last batch's tape, if the arguments fit it
            try:
                fast = self._layout(args)
            except GuardError:  # another branch: the tapes below sort it out, and the
                fast = self._layout = None  # one that serves it is tried first next
            if fast is not None:
                return fast
        tapes = self.tapes.get(self._key(args), ())
        for tape in tapes:
            try:
                return self._replay(tape, args)
            except GuardError as exc:
                if len(exc.lanes) < exc.lanes_of:  # samples disagree: no tape fits all
                    raise
        # New shapes, or a branch pattern not met before: trace at the first sample.
        key, examples = self._examples(args)
        tapes = self.tapes.setdefault(key, [])
        tape = trace(self.fn, *examples)
        tapes.append(tape)
        del tapes[: -self.MAX_VARIANTS]
        return self._replay(tape, args)

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
