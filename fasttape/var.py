"""Var: a number being recorded, and the functions that record on Vars.

Every arithmetic operation on a Var appends one node to its tape and returns
a new Var (define-by-run). A Var holds its tape's recorder and a handle;
when the last Var of a node goes, its handle is released, so the recorder
can reclaim nodes no live Var reaches.
"""

import numbers
import threading

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
        if value.__class__ not in _PLAIN and not _is_number(value):
            raise TypeError(f"ft.Var takes a real number, got {type(value).__name__}")
        try:
            rec = _state.stack[-1]
        except AttributeError:
            rec = current_recorder()
        self._rec = rec
        self._h = rec.input(value)

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
    # The operators are made by the factories below: this is the hot path of
    # eager use, so each is one flat function with its opcodes bound.

    def _unary(self, op):
        return _new(self._rec, self._rec.unary(op, self._h))

    def _with_const(self, op, c):
        return _new(self._rec, self._rec.unary_c(op, self._h, float(c)))

    def _same_tape(self, other):
        if other._rec is not self._rec:
            raise ValueError("fasttape: these Vars live on different tapes")
        return other._h

    def __pos__(self):
        return self

    def __bool__(self):
        raise TypeError("the truth value of a Var is ambiguous: compare it (x > 0) for a "
                        "condition, use ft.where(cond, a, b), or read x.value")

    # Comparisons record a condition (value 1.0 or 0.0): a Cond.
    def _compare(self, other, op, op_c, swap):
        rec = self._rec
        if isinstance(other, Var):
            self._same_tape(other)
            a, b = (other, self) if swap else (self, other)  # x > y is y < x
            return _new(rec, rec.binary(op, a._h, b._h), Cond)
        if _is_number(other):
            return _new(rec, rec.unary_c(op_c, self._h, other), Cond)
        return NotImplemented

    def __lt__(self, o): return self._compare(o, CODE["lt"], CODE["lt_c"], False)
    def __le__(self, o): return self._compare(o, CODE["le"], CODE["le_c"], False)
    def __gt__(self, o): return self._compare(o, CODE["lt"], CODE["gt_c"], True)
    def __ge__(self, o): return self._compare(o, CODE["le"], CODE["ge_c"], True)
    __hash__ = object.__hash__


class Cond(Var):
    """A recorded comparison: 1.0 where it holds, else 0.0. Use it in
    ft.where(cond, a, b); using it as a bool records a guard."""

    __slots__ = ()

    def __bool__(self):
        """The outcome now, recorded as a guard: a replay that comes out
        otherwise raises ft.GuardError (functions from ft.grad re-trace)."""
        outcome = self.value != 0.0
        rec = self._rec
        h = rec.unary_c(CODE["guard"], self._h, 1.0 if outcome else 0.0)
        guards = getattr(_state, "guards", {}).get(id(rec))
        if guards is not None:
            guards.append(h)  # a trace keeps it as a root of its tape
        else:
            rec.release(h)  # eager code is never replayed
        return outcome


def tracing_guards(rec):
    """Collect the guards recorded on rec (while a trace runs on it)."""
    if not hasattr(_state, "guards"):
        _state.guards = {}
    return _state.guards.setdefault(id(rec), [])


def end_tracing_guards(rec):
    return _state.guards.pop(id(rec), [])


_object_new = object.__new__
_PLAIN = (float, int)


def _new(rec, h, cls=None):
    v = _object_new(cls or Var)
    v._rec = rec
    v._h = h
    return v


def _binary_operator(name, op, op_c, negate=False):
    """self op other: a Var records `op`, a number a fused `op_c` node."""
    def method(self, other):
        rec = self._rec
        if other.__class__ is Var or isinstance(other, Var):
            if other._rec is not rec:
                raise ValueError("fasttape: these Vars live on different tapes")
            return _new(rec, rec.binary(op, self._h, other._h))
        if other.__class__ in _PLAIN or _is_number(other):
            return _new(rec, rec.unary_c(op_c, self._h, -other if negate else other))
        return NotImplemented
    method.__name__ = name
    return method


def _reflected_operator(name, op_c):
    """number op self, as a fused node."""
    def method(self, other):
        if other.__class__ in _PLAIN or _is_number(other):
            return _new(self._rec, self._rec.unary_c(op_c, self._h, other))
        return NotImplemented
    method.__name__ = name
    return method


def _unary_operator(name, op):
    def method(self):
        return _new(self._rec, self._rec.unary(op, self._h))
    method.__name__ = name
    return method


for _name, _op, _op_c, _negate in [("add", "add", "add_c", False), ("sub", "sub", "add_c", True),
                                   ("mul", "mul", "mul_c", False), ("truediv", "div", "div_c", False),
                                   ("pow", "pow", "pow_c", False)]:
    setattr(Var, f"__{_name}__", _binary_operator(f"__{_name}__", CODE[_op], CODE[_op_c], _negate))
for _name, _op_c in [("add", "add_c"), ("sub", "rsub_c"), ("mul", "mul_c"),
                     ("truediv", "rdiv_c"), ("pow", "rpow_c")]:
    setattr(Var, f"__r{_name}__", _reflected_operator(f"__r{_name}__", CODE[_op_c]))
Var.__neg__ = _unary_operator("__neg__", CODE["neg"])
Var.__abs__ = _unary_operator("__abs__", CODE["abs"])


def _add_unary_methods():
    """x.exp(), x.tanh() ...: one method per unary row of the op table."""
    for op in ops.OPS:
        if op.kind == ops.UNARY and not hasattr(Var, op.name):
            method = _unary_operator(op.name, op.code)
            method.__doc__ = f"{op.doc} (records a {op.name!r} node)"
            setattr(Var, op.name, method)


_add_unary_methods()
