# VarBase: the recording half of ft.Var as a C type. Included by _core.pyx
# after the recorder. var.py's public Var and Cond derive from it (the twin's
# VarBase is the same in Python).
#
# Its operators call the Recorder's cdef methods directly and its
# __dealloc__ releases the handle: that is most of eager recording's cost
# saved. On any other recorder (the twin's) it calls the Python methods.

cimport cython
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_Check
from cpython.long cimport PyLong_Check
from cpython.object cimport PyObject, PyTypeObject

from numbers import Real

cdef tuple EMPTY = ()

# var.py's public classes and thread state, set by bind_var_classes.
cdef type VarClass = None, CondClass = None
cdef object var_state = None, current_recorder = None


def bind_var_classes(var, cond, state, current):
    """The classes operators return (Var and Cond, subclasses of VarBase),
    and where Var(x) finds its tape: state.stack[-1], or current()."""
    global VarClass, CondClass, var_state, current_recorder
    if not (issubclass(var, VarBase) and issubclass(cond, var) and
            (<PyTypeObject*> var).tp_new == (<PyTypeObject*> VarBase).tp_new and
            (<PyTypeObject*> cond).tp_new == (<PyTypeObject*> VarBase).tp_new):
        raise TypeError("fasttape: Var must derive from VarBase, Cond from Var")
    VarClass, CondClass, var_state, current_recorder = var, cond, state, current


def new_var(type cls, rec, Py_ssize_t h):
    """A cls (Var or Cond) for handle h of rec, which it now owns."""
    if cls is not VarClass and cls is not CondClass:
        raise TypeError("fasttape: new_var makes a Var or a Cond")
    return wrap(cls, rec, h)


def handles_of(rec, variables):
    """The handles of Vars (VarBase instances) all on rec, as a list."""
    cdef list out = []
    cdef VarBase v
    for v in variables:
        if v._rec is not rec:
            raise TapeError("fasttape: these Vars live on different tapes")
        out.append(v._h)
    return out


cdef inline VarBase wrap(type cls, object rec, Py_ssize_t h):
    # (VarBase.__new__(cls) would go through Python: call the slot itself)
    cdef VarBase v = <VarBase> (<PyTypeObject*> cls).tp_new(cls, <PyObject*> EMPTY, NULL)
    v._rec = rec
    v._h = h
    return v


cdef inline bint as_real(object x, double* out) except -1:
    """Put x in out and say True when it is a real number (not a Var)."""
    if PyFloat_Check(x):
        out[0] = PyFloat_AS_DOUBLE(x)
        return True
    if PyLong_Check(x) or (not isinstance(x, VarBase) and isinstance(x, Real)):
        out[0] = x
        return True
    return False


# Recording on either recorder: the kernel's directly, another through Python.

cdef inline Py_ssize_t rec_input(object rec, double value) except -1:
    if type(rec) is Recorder:
        return (<Recorder> rec)._input(value)
    return rec.input(value)


cdef inline Py_ssize_t rec_unary(object rec, int op, Py_ssize_t h) except -1:
    if type(rec) is Recorder:
        return (<Recorder> rec)._unary(op, h)
    return rec.unary(op, h)


cdef inline Py_ssize_t rec_unary_c(object rec, int op, Py_ssize_t h, double c) except -1:
    if type(rec) is Recorder:
        return (<Recorder> rec)._unary_c(op, h, c)
    return rec.unary_c(op, h, c)


cdef inline Py_ssize_t rec_binary(object rec, int op, Py_ssize_t ha, Py_ssize_t hb) except -1:
    if type(rec) is Recorder:
        return (<Recorder> rec)._binary(op, ha, hb)
    return rec.binary(op, ha, hb)


cdef inline Py_ssize_t same_tape(VarBase x, VarBase y) except -1:
    if y._rec is not x._rec:
        raise TapeError("fasttape: these Vars live on different tapes")
    return y._h


cdef object apply_operator(VarBase x, object y, int row):
    """x's operator `row` of the operator table (ops.OPERATORS) with y: a Var
    y records the row's op, a number its constant form (negated where the
    row says); a comparison gives a Cond."""
    cdef double c
    cdef Py_ssize_t hy
    cdef int how = OPERATOR_HOW[row]
    cdef type cls = CondClass if how & OPERATOR_COMPARE else VarClass
    if how & OPERATOR_UNARY:
        return wrap(cls, x._rec, rec_unary(x._rec, OPERATOR_OP[row], x._h))
    if not how & OPERATOR_REFLECTED and isinstance(y, VarBase):
        hy = same_tape(x, <VarBase> y)
        return wrap(cls, x._rec, rec_binary(x._rec, OPERATOR_OP[row], hy, x._h)
                    if how & OPERATOR_SWAP else rec_binary(x._rec, OPERATOR_OP[row], x._h, hy))
    if as_real(y, &c):
        return wrap(cls, x._rec, rec_unary_c(x._rec, OPERATOR_OP_C[row], x._h,
                                             -c if how & OPERATOR_NEGATE else c))
    return NotImplemented


@cython.no_gc_clear  # __dealloc__ needs _rec; a Var is never part of a cycle
@cython.auto_pickle(False)
cdef class VarBase:
    """The operators of ft.Var; see var.py for the rest."""
    cdef readonly object _rec
    cdef readonly Py_ssize_t _h

    @cython.wraparound(True)
    def __init__(self, value):
        cdef double v
        if not as_real(value, &v):
            raise TypeError(f"ft.Var takes a real number, got {type(value).__name__}")
        try:
            rec = var_state.stack[-1]
        except AttributeError:
            rec = current_recorder()
        h = rec_input(rec, v)
        self._release()  # (a second __init__)
        self._rec, self._h = rec, h

    def __dealloc__(self):
        self._release()

    cdef void _release(self) noexcept:
        rec, self._rec = self._rec, None
        if type(rec) is Recorder:
            (<Recorder> rec)._release(self._h)
        elif rec is not None:
            try:
                rec.release(self._h)
            except BaseException:  # interpreter shutdown
                pass

    def _unary(self, int op):
        return wrap(VarClass, self._rec, rec_unary(self._rec, op, self._h))

    def _with_const(self, int op, double c):
        return wrap(VarClass, self._rec, rec_unary_c(self._rec, op, self._h, c))

    def _same_tape(self, VarBase other):
        return same_tape(self, other)

    # Each operator is a row of the operator table (ops.OPERATORS).
    def __add__(self, other): return apply_operator(self, other, VAR_ADD)
    def __sub__(self, other): return apply_operator(self, other, VAR_SUB)
    def __mul__(self, other): return apply_operator(self, other, VAR_MUL)
    def __truediv__(self, other): return apply_operator(self, other, VAR_TRUEDIV)

    def __pow__(self, other, mod):
        return apply_operator(self, other, VAR_POW) if mod is None else NotImplemented

    def __radd__(self, other): return apply_operator(self, other, VAR_RADD)
    def __rsub__(self, other): return apply_operator(self, other, VAR_RSUB)
    def __rmul__(self, other): return apply_operator(self, other, VAR_RMUL)
    def __rtruediv__(self, other): return apply_operator(self, other, VAR_RTRUEDIV)

    def __rpow__(self, other, mod):
        return apply_operator(self, other, VAR_RPOW) if mod is None else NotImplemented

    def __neg__(self): return apply_operator(self, None, VAR_NEG)
    def __abs__(self): return apply_operator(self, None, VAR_ABS)
    def __pos__(self): return self

    def __lt__(self, other): return apply_operator(self, other, VAR_LT)
    def __le__(self, other): return apply_operator(self, other, VAR_LE)
    def __gt__(self, other): return apply_operator(self, other, VAR_GT)
    def __ge__(self, other): return apply_operator(self, other, VAR_GE)
    # == and != compare values too (never identity), so a Var is not hashable.
    def __eq__(self, other): return apply_operator(self, other, VAR_EQ)
    def __ne__(self, other): return apply_operator(self, other, VAR_NE)
    __hash__ = None
