"""ft.Var on both backends: the kernel's C VarBase records exactly what the
twin's Python one does, errors and all, and releases every handle once."""

import fractions
import gc
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import fasttape as ft
from fasttape import ops, twin, var

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Every operator of Var with Vars and with numbers of several types on either
# side, and a method per unary row of the op table: (text, plain float value).
X, Y = 0.7, 1.9
NUMBERS = ["2", "2.5", "np.float64(1.5)", "-0.25", "np.int32(3)", "True", "fractions.Fraction(1, 3)"]
BINARY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
          "/": lambda a, b: a / b, "**": lambda a, b: a ** b}
COMPARE = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
           ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
           "==": lambda a, b: a == b, "!=": lambda a, b: a != b}
PLAIN = {"exp": math.exp, "log": math.log, "sqrt": math.sqrt, "sin": math.sin, "cos": math.cos,
         "tan": math.tan, "tanh": math.tanh, "sigmoid": lambda v: 1 / (1 + math.exp(-v)),
         "relu": lambda v: max(v, 0.0), "abs": abs, "log1p": math.log1p,
         "expm1": math.expm1, "neg": lambda v: -v}
# the rest of the unary rows, by NumPy (the rows arccosh skips: not real at X)
PLAIN.update({op.name: getattr(np, op.name) for op in ops.OPS
              if op.kind == ops.UNARY and op.name not in PLAIN and op.name != "arccosh"})


def expressions():
    out = []
    for sym, f in {**BINARY, **COMPARE}.items():
        out.append((f"x {sym} y", float(f(X, Y))))
        for num in NUMBERS:
            c = eval(num)
            if sym == "**" and c < 0:
                continue  # a negative number to a fractional power: no real value
            out.append((f"x {sym} ({num})", float(f(X, c))))
            out.append((f"({num}) {sym} x", float(f(c, X))))
    for op in ops.OPS:
        if op.kind == ops.UNARY and op.name in PLAIN:
            out.append((f"x.{op.name}()", float(PLAIN[op.name](X))))
    out += [("-x", -X), ("+x", X), ("abs(-x)", X), ("(x * y - 1) ** 2 / (y + x)",
                                                     (X * Y - 1) ** 2 / (Y + X))]
    return out


def record(texts):
    """Each expression on a fresh tape: its tape's arrays, value and gradients."""
    out = []
    for text in texts:
        with ft.Tape():
            x, y = ft.Var(X), ft.Var(Y)
            v = eval(text, {"np": np, "fractions": fractions, "x": x, "y": y})
            v.backward()
            arrays = [a.tolist() for a in v._rec.arrays()]
            out.append([type(v).__name__, v.value, x.grad, y.grad, arrays])
    return out


def test_each_operator_records_its_value():
    for (text, want), (cls, value, *_) in zip(expressions(), record(t for t, _ in expressions())):
        assert value == pytest.approx(want, rel=1e-14), text
        assert cls == ("Cond" if any(f" {s} " in text for s in COMPARE) else "Var"), text


def recorded_under(backend):
    """record() of every expression with FASTTAPE_BACKEND=backend, in a subprocess."""
    script = ("import json, sys; sys.path.insert(0, 'tests'); import test_var as t; "
              "print(json.dumps(t.record([e for e, _ in t.expressions()])))")
    env = dict(os.environ, FASTTAPE_BACKEND=backend)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_the_kernels_var_records_what_the_twins_does():
    """The same expressions under each backend (in subprocesses, whichever
    this run uses): the same classes, values, gradients and tapes, node for
    node."""
    for got, want in zip(recorded_under("python"), recorded_under("cython")):
        assert got[0] == want[0] and got[4][:5] == want[4][:5]  # class and tape
        # values: the same formulas, the twin's through NumPy
        np.testing.assert_allclose(got[1:4] + got[4][5], want[1:4] + want[4][5], rtol=1e-14)


def test_the_kernels_var_records_on_the_twins_recorder():
    """ft.Var on a twin Recorder (as the benchmarks' twin rows run) records
    the same tape as on the backend's own."""
    texts = [e for e, _ in expressions()]
    rec = twin.Recorder()
    var.push_recorder(rec)
    try:
        on_twin = record(texts)
    finally:
        var.pop_recorder(rec)
    assert on_twin == record(texts)


def test_operands_it_does_not_know_are_left_to_them():
    x = ft.Var(1.0)
    for other in ("a", [1.0], None, 1j, object()):
        for op in (lambda a, b: a + b, lambda a, b: b * a, lambda a, b: a ** b,
                   lambda a, b: a < b):
            with pytest.raises(TypeError):
                op(x, other)
    with pytest.raises(TypeError):
        pow(x, 2, 3)

    class Other:
        def __radd__(self, v):
            return ("radd", v.value)
    assert x + Other() == ("radd", 1.0)


def test_errors():
    x = ft.Var(1.0)
    with ft.Tape():
        y = ft.Var(2.0)
    for op in (lambda: x + y, lambda: y * x, lambda: x < y, lambda: y >= x, lambda: x ** y):
        with pytest.raises(ValueError, match="^fasttape: these Vars live on different tapes$"):
            op()
    with pytest.raises(TypeError, match="truth value of a Var is ambiguous"):
        bool(x)
    for bad, name in (("1", "str"), (1j, "complex"), (x, "Var"), (None, "NoneType")):
        with pytest.raises(TypeError, match=f"^ft.Var takes a real number, got {name}$"):
            ft.Var(bad)


def test_equality_compares_values_and_a_var_is_not_hashable():
    x, y, z = ft.Var(1.0), ft.Var(1.0), ft.Var(2.0)
    with pytest.raises(TypeError, match="unhashable"):
        hash(x)
    for cond, value in ((x == y, 1.0), (x != y, 0.0), (x == z, 0.0), (x != z, 1.0),
                        (x == 1.0, 1.0), (2.0 == z, 1.0), (x != 1, 0.0), (1.0 != z, 1.0)):
        assert isinstance(cond, ft.Var) and cond.value == value
    nan = ft.Var(float("nan"))
    assert (nan == nan).value == 0.0 and (nan != nan).value == 1.0  # IEEE, as NumPy
    assert (x == "1") is False and (x != None) is True  # noqa: E711  (not numbers)
    tape = ft.trace(lambda v: ft.where(v == 1.0, 10.0 * v, v - 1.0), 1.0)
    assert (tape(1.0), tape(2.0)) == (10.0, 1.0)  # both branches, no guard
    assert tape.grad(np.array([1.0, 3.0]), in_axes=0).tolist() == [10.0, 1.0]
    with pytest.raises(AttributeError):
        x.extra = 1


def test_a_var_is_not_copied_or_pickled():
    """A copy would share the handle, and release it twice."""
    import copy
    import pickle
    x = ft.Var(1.0)
    for make in (copy.copy, copy.deepcopy, pickle.dumps):
        with pytest.raises(TypeError, match="cannot pickle 'Var' object"):
            make(x)


def test_numpy_object_arrays_of_vars():
    values = np.array([0.3, -1.2, 2.5])
    with ft.Tape():
        v = np.empty(3, dtype=object)
        v[:] = [ft.Var(a) for a in values]
        out = 2.0 - v ** 2 / (1 + v) * np.float64(3)
        assert all(type(o) is ft.Var for o in out)
        np.testing.assert_allclose([o.value for o in out],
                                   2.0 - values ** 2 / (1 + values) * 3.0, rtol=1e-15)


def test_every_handle_is_released_once():
    with ft.Tape() as tape:
        kept = [ft.Var(float(k)) for k in range(50)]
        for _ in range(3):
            temp = [k * 2.0 + 1.0 for k in kept]
            del temp
        assert len(tape) == 50  # the dead nodes were on top
        more = [k * k for k in kept[::2]]
        handles = [v._h for v in kept + more]
        assert len(set(handles)) == len(handles)  # a handle is never given twice
        assert [m.value for m in more] == [float(k * k) for k in range(0, 50, 2)]
        del kept, more, handles
    assert len(tape) == 0


def test_a_second_init_releases_the_first_handle():
    with ft.Tape() as tape:
        x = ft.Var(1.0)
        y = x * 3.0
        x.__init__(5.0)
        del y
        assert list(x._rec.live_nodes()) == [2] and x.value == 5.0
        del x
    assert len(tape) == 0


def test_vars_in_a_cycle_are_released_when_it_is_collected():
    with ft.Tape() as tape:
        x = ft.Var(2.0)
        box = [x, x * x]
        box.append(box)
        del x, box
        gc.collect()
    assert len(tape) == 0


def test_a_var_outlives_its_tape_object():
    with ft.Tape() as tape:
        x = ft.Var(3.0)
        y = x ** 3
    del tape
    gc.collect()
    y.backward()
    assert (y.value, x.grad) == (27.0, 27.0)


def test_vars_left_at_interpreter_exit_are_quiet():
    script = ("import fasttape as ft\n"
              "x = ft.Var(1.0); y = x * 2\n"
              "box = [x, y]; box.append(box)\n"
              "with ft.Tape() as t:\n"
              "    z = ft.Var(3.0) + 1\n"
              "print((y + 1).value, z.value)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert done.stdout.split() == ["3.0", "4.0"]
    assert done.stderr == ""


def test_constants_are_pooled_once_each_and_kept_apart_by_bits():
    """Many constants, more than the recorder remembers in front of its
    dictionary, in an order that revisits them: each is in the pool once,
    -0.0 apart from 0.0, and every node uses its own."""
    consts = [k * 0.37 - 3.0 for k in range(40)] + [0.0, -0.0]

    def f(x):
        total = x
        for rounds in range(3):
            for c in consts[::(1 if rounds % 2 == 0 else -1)]:
                total = total + x * c
        return total

    tape = ft.trace(f, 2.0)
    pool = tape._program.pool.tolist()
    assert sorted(pool) == sorted(consts)
    assert [math.copysign(1.0, c) for c in pool if c == 0.0] in ([1.0, -1.0], [-1.0, 1.0])
    assert tape(2.0) == pytest.approx(2.0 + 3 * 2.0 * sum(consts), rel=1e-13)
    assert ft.grad(f)(2.0) == pytest.approx(1.0 + 3 * sum(consts), rel=1e-13)


def test_a_sum_or_dot_that_fails_records_nothing():
    with ft.Tape() as tape:
        xs = [ft.Var(float(k)) for k in range(4)]
        rec = xs[0]._rec
        dead = (xs[0] * 2.0)._h  # released at once: no longer a live handle
        before = [a.tolist() for a in rec.arrays()]
        for bad in (lambda: rec.nary(ops.CODE["sum"], [xs[0]._h, xs[1]._h, dead]),
                    lambda: rec.nary(ops.CODE["dot"], [xs[0]._h, xs[1]._h], [xs[2]._h, dead]),
                    lambda: rec.nary(ops.CODE["dotc"], [xs[0]._h, xs[1]._h], [1.0, "x"]),
                    lambda: rec.nary(ops.CODE["dotc"], [xs[0]._h], [1.0, 2.0])):
            with pytest.raises((ValueError, TypeError)):
                bad()
            assert [a.tolist() for a in rec.arrays()] == before
        with ft.Tape():
            other = ft.Var(1.0)
        with pytest.raises(ValueError, match="different tapes"):
            ft.sum([xs[0], other])
        total = ft.sum(xs + [0.5]) + ft.dot(xs, [1.0, 2.0, 3.0, 4.0])
        assert total.value == 6.5 + 20.0
    assert len(tape) > 4
