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


def recording():
    """True inside a trace or a `with ft.Tape()` block of this thread."""
    try:
        return len(_state.stack) > 1
    except AttributeError:  # (nothing recorded on this thread yet)
        _stack()
        return False


def push_recorder(rec):
    _stack().append(rec)


def pop_recorder(rec):
    stack = _stack()
    if stack[-1] is not rec:
        raise RuntimeError("fasttape: tapes must be exited in the reverse order of entry")
    stack.pop()


def _is_number(x):
    return isinstance(x, numbers.Real) and not isinstance(x, Var)


class Var(kernel.VarBase):
    """A scalar recorded on a tape: its value now, its gradient after backward().

    ``Var(value)`` records an input node on the current tape: the innermost
    ``with ft.Tape()`` block (or trace) of the calling thread, else that
    thread's default tape. Every operation on Vars records one node and
    computes its value at once (define-by-run).

    Parameters
    ----------
    value : real number
        A Python or NumPy int or float (a bool counts as an int).

    Raises
    ------
    TypeError
        ``value`` is not a real number (a string, an array, a Var ...).

    Notes
    -----
    Operators: ``+ - * / ** %`` with a Var, int or float on either side,
    unary ``-``, ``abs()``; ``< <= > >= == !=`` give conditions (for
    ``ft.where``; ``if cond:`` records a guard). Every unary op-table row is
    a method (``x.exp()``, ``x.tanh()`` ...), and NumPy ufuncs on a Var or
    on object arrays of Vars record nodes. A Var is not hashable, has no
    truth value (``bool(x)`` raises TypeError) and cannot be pickled. Two
    Vars in one operation must be on the same tape (else TapeError).

    Examples
    --------
    >>> w, x, y = ft.Var(1.0), ft.Var(2.0), ft.Var(3.0)
    >>> L = (w * x - y) ** 2 + w ** 2
    >>> L.backward()
    >>> L.value, w.grad, x.grad, y.grad
    (2.0, -2.0, -2.0, 2.0)
    """

    # Recording lives in the backend's VarBase: the kernel's is a C type whose
    # operators call its recorder directly (the hot path of eager use and
    # tracing), the twin's the same in Python. What is here is not hot.
    __slots__ = ()  # (no __dict__: a Var is a recorder and a handle)
    __hash__ = None  # == compares values (a condition), so no hash

    @property
    def value(self):
        """This node's value, a Python float, computed when the node was
        recorded (define-by-run: no sweep is needed to read it)."""
        return self._rec.value(self._h)

    @property
    def grad(self):
        """d v / d self, a float, for the Var v of the last ``v.backward()``
        on this tape; 0.0 before any backward, and for nodes recorded after
        v. Each backward replaces it (gradients are not accumulated)."""
        return self._rec.grad(self._h)

    def backward(self):
        """Compute d self / d u for every Var u recorded before self on its
        tape, by one reverse sweep; read each as ``u.grad``.

        Returns
        -------
        None
            (``ft.check_finite`` checks values as they are recorded, not
            the adjoints of this sweep.)
        """
        self._rec.backward(self._h)

    def __repr__(self):
        return f"Var({self.value!r})"

    def __bool__(self):
        raise TypeError("the truth value of a Var is ambiguous: compare it (x > 0) for a "
                        "condition, use ft.where(cond, a, b), or read x.value")

    def __mod__(self, other):  # Python's and NumPy's remainder (the mod row)
        from .functions import mod
        return mod(self, other)

    def __rmod__(self, other):
        from .functions import mod
        return mod(other, self)

    # NumPy functions on a Var record nodes, as on traced arrays (numpy_api.py)
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        from .numpy_api import array_ufunc
        return array_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        from .numpy_api import array_function
        return array_function(func, args, kwargs)


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


kernel.bind_var_classes(Var, Cond, _state, current_recorder)


def tracing_guards(rec):
    """Collect the guards recorded on rec (while a trace runs on it)."""
    if not hasattr(_state, "guards"):
        _state.guards = {}
    return _state.guards.setdefault(id(rec), [])


def end_tracing_guards(rec):
    return _state.guards.pop(id(rec), [])


def _new(rec, h, cls=None):
    """A Var (or cls, Cond) owning handle h of rec."""
    return kernel.new_var(cls or Var, rec, h)


def _unary_method(op):
    unary, code = kernel.VarBase._unary, op.code

    def method(self):
        return unary(self, code)
    method.__name__ = op.name
    method.__doc__ = f"""{op.name}(): {op.doc}, of this Var.

    Returns
    -------
    Var
        A new Var: one ``{op.name}`` node on this Var's tape. The same as
        ``ft.{op.name}(x)`` (which also takes numbers and arrays).
    """
    return method


def _add_unary_methods():
    """x.exp(), x.tanh() ...: one method per unary row of the op table."""
    for op in ops.OPS:
        if op.kind == ops.UNARY and not hasattr(Var, op.name):
            setattr(Var, op.name, _unary_method(op))


_add_unary_methods()
