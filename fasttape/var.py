"""Var: a number being recorded, and the functions that record on Vars.

Every arithmetic operation on a Var appends one node to its tape and returns
a new Var (define-by-run). A Var holds its tape's recorder and a handle;
when the last Var of a node goes, its handle is released, so the recorder
can reclaim nodes no live Var reaches.
"""

import numbers
import threading

import numpy as np

from . import ops
from .backend import kernel

_state = threading.local()
CODE = ops.CODE


def _stack():
    stack = getattr(_state, "stack", None)
    if stack is None:
        stack = _state.stack = [kernel.Recorder()]  # the thread's default tape
    return stack


def current_recorder():
    """The innermost `with ft.Tape()` or trace of this thread, else its default tape."""
    return _stack()[-1]


def push_recorder(rec):
    _stack().append(rec)


def pop_recorder(rec):
    stack = _stack()
    if stack[-1] is not rec:
        raise RuntimeError("fasttape: tapes must be exited in the reverse order of entry")
    stack.pop()


def _is_number(x):
    return isinstance(x, numbers.Real) and not isinstance(x, Var)


class Var:
    """A scalar recorded on a tape: its value now, its gradient after backward()."""

    __slots__ = ("_rec", "_h")

    def __init__(self, value):
        if not _is_number(value):
            raise TypeError(f"ft.Var takes a real number, got {type(value).__name__}")
        rec = current_recorder()
        self._rec = rec
        self._h = rec.input(float(value))

    @staticmethod
    def _wrap(rec, h):
        v = object.__new__(Var)
        v._rec = rec
        v._h = h
        return v

    def __del__(self):
        try:
            self._rec.release(self._h)
        except Exception:  # interpreter shutdown
            pass

    @property
    def value(self):
        """This node's value, a float."""
        return self._rec.value(self._h)

    @property
    def grad(self):
        """d v / d self for the Var v of the last backward() on this tape (0.0 before)."""
        return self._rec.grad(self._h)

    def backward(self):
        """Compute d self / d u for every u recorded before self on its tape."""
        self._rec.backward(self._h)

    def __repr__(self):
        return f"Var({self.value!r})"

    # ------------------------------------------------------------ recording

    def _unary(self, op):
        return Var._wrap(self._rec, self._rec.unary(op, self._h))

    def _with_const(self, op, c):
        return Var._wrap(self._rec, self._rec.unary_c(op, self._h, float(c)))

    def _same_tape(self, other):
        if other._rec is not self._rec:
            raise ValueError("fasttape: these Vars live on different tapes")
        return other._h

    def _binop(self, other, op, op_c, c_of=float):
        """self op other; a number becomes a constant of a fused node."""
        if isinstance(other, Var):
            h = self._rec.binary(op, self._h, self._same_tape(other))
            return Var._wrap(self._rec, h)
        if _is_number(other):
            return self._with_const(op_c, c_of(other))
        return NotImplemented

    def _rbinop(self, other, op_c):
        """number op self."""
        if _is_number(other):
            return self._with_const(op_c, other)
        return NotImplemented

    def __add__(self, o): return self._binop(o, CODE["add"], CODE["add_c"])
    def __radd__(self, o): return self._rbinop(o, CODE["add_c"])
    def __sub__(self, o): return self._binop(o, CODE["sub"], CODE["add_c"], lambda c: -float(c))
    def __rsub__(self, o): return self._rbinop(o, CODE["rsub_c"])
    def __mul__(self, o): return self._binop(o, CODE["mul"], CODE["mul_c"])
    def __rmul__(self, o): return self._rbinop(o, CODE["mul_c"])
    def __truediv__(self, o): return self._binop(o, CODE["div"], CODE["div_c"])
    def __rtruediv__(self, o): return self._rbinop(o, CODE["rdiv_c"])
    def __pow__(self, o): return self._binop(o, CODE["pow"], CODE["pow_c"])
    def __rpow__(self, o): return self._rbinop(o, CODE["rpow_c"])
    def __neg__(self): return self._unary(CODE["neg"])
    def __pos__(self): return self
    def __abs__(self): return self._unary(CODE["abs"])


def _add_unary_methods():
    """x.exp(), x.tanh() ...: one method per unary row of the op table."""
    for op in ops.OPS:
        if op.kind == ops.UNARY and not hasattr(Var, op.name):
            def method(self, _code=op.code):
                return self._unary(_code)
            method.__name__ = op.name
            method.__doc__ = f"{op.doc} (records a {op.name!r} node)"
            setattr(Var, op.name, method)


_add_unary_methods()
