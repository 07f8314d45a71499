"""The twin's VarBase: the recording half of ft.Var (the kernel's var.pxi)."""

import numbers

from .. import ops
from ..errors import TapeError

# The recording half of ft.Var (var.py derives Var and Cond from VarBase):
# the kernel's VarBase in Python, operator for operator.

_bound = {}  # var.py's Var and Cond, its thread state and current_recorder


def bind_var_classes(var, cond, state, current):
    """The classes operators return (Var and Cond, subclasses of VarBase),
    and where Var(x) finds its tape: state.stack[-1], or current()."""
    if not (issubclass(var, VarBase) and issubclass(cond, var)):
        raise TypeError("fasttape: Var must derive from VarBase, Cond from Var")
    _bound.update(Var=var, Cond=cond, state=state, current=current)


def new_var(cls, rec, h):
    """A cls (Var or Cond) for handle h of rec, which it now owns."""
    if cls is not _bound["Var"] and cls is not _bound["Cond"]:
        raise TypeError("fasttape: new_var makes a Var or a Cond")
    v = object.__new__(cls)
    v._rec = rec
    v._h = h
    return v


def handles_of(rec, variables):
    """The handles of Vars (VarBase instances) all on rec, as a list."""
    if any(v._rec is not rec for v in variables):
        raise TapeError("fasttape: these Vars live on different tapes")
    return [v._h for v in variables]


_PLAIN = (float, int)


def _is_number(x):
    return isinstance(x, numbers.Real) and not isinstance(x, VarBase)


class VarBase:
    """The operators of ft.Var; see var.py for the rest."""

    __slots__ = ("_rec", "_h")

    def __init__(self, value):
        if value.__class__ not in _PLAIN and not _is_number(value):
            raise TypeError(f"ft.Var takes a real number, got {type(value).__name__}")
        try:
            rec = _bound["state"].stack[-1]
        except AttributeError:
            rec = _bound["current"]()
        h = rec.input(value)
        self._release()  # (a second __init__)
        self._rec, self._h = rec, h

    def __del__(self):
        self._release()

    def __reduce_ex__(self, protocol):
        # A copy would share the handle, released twice (as the kernel's C type).
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")

    def _release(self):
        rec = getattr(self, "_rec", None)
        self._rec = None
        if rec is not None:
            try:
                rec.release(self._h)
            except Exception:  # interpreter shutdown
                pass

    def _unary(self, op):
        return new_var(_bound["Var"], self._rec, self._rec.unary(op, self._h))

    def _with_const(self, op, c):
        return new_var(_bound["Var"], self._rec, self._rec.unary_c(op, self._h, float(c)))

    def _same_tape(self, other):
        if other._rec is not self._rec:
            raise TapeError("fasttape: these Vars live on different tapes")
        return other._h

    def __pos__(self):
        return self

    # == and != compare values too (never identity), so a Var is not hashable.
    __hash__ = None


def _operator(method, op, op_c, how):
    """The operator method of a row of the operator table (ops.OPERATORS): a
    Var records op, a number op_c (negated where the row says); a
    comparison gives a Cond."""
    how = how.split()
    op, op_c = ops.CODE.get(op), ops.CODE.get(op_c)

    def unary(self):
        return new_var(_bound["Var"], self._rec, self._rec.unary(op, self._h))

    def binary(self, other):
        rec, cls = self._rec, _bound["Cond" if "compare" in how else "Var"]
        if isinstance(other, VarBase) and "reflected" not in how:
            h = self._same_tape(other)  # (other's handle, on this tape)
            ha, hb = (h, self._h) if "swap" in how else (self._h, h)
            return new_var(cls, rec, rec.binary(op, ha, hb))
        if other.__class__ in _PLAIN or _is_number(other):
            c = float(other)
            return new_var(cls, rec, rec.unary_c(op_c, self._h, -c if "negate" in how else c))
        return NotImplemented

    fn = unary if "unary" in how else binary
    fn.__name__ = f"__{method}__"
    return fn


for _row in ops.OPERATORS:
    setattr(VarBase, f"__{_row[0]}__", _operator(*_row))
