"""The kind table (fasttape/kinds.py) drives every per-kind case: the twin
evaluates its templates, the kernel's loops are generated from them, and
every walk over operands reads its layout. So adding an op is one row of the
op table, and Var's operators are rows of a table too.
"""

import re
import textwrap
import types

import numpy as np
import pytest

import fasttape as ft
from fasttape import kinds, ops, twin
from fasttape._kernel import codegen

rng = np.random.default_rng(5)

# One new row, written as it would be added to ops.py.
CUBE = '    _row("cube", UNARY, "x * x * x", ("3.0 * x * x",), ("6.0 * x",), "cube({x})", "x ** 3"),\n'


def table_with(row):
    """The op table with one more row at its end, from ops.py's own text."""
    codegen.load_tables()  # (the package the table's relative import resolves in)
    source = open(ops.__file__).read()
    end = "]\n\nOPS = tuple("
    assert source.count(end) == 1
    module = types.ModuleType("_fasttape_tables.ops_with_a_row")
    module.__package__ = "_fasttape_tables"
    exec(compile(source.replace(end, row + end), ops.__file__, "exec"), module.__dict__)
    return module


def kernel_case(text, function, op):
    """op's case in a generated kernel function, as Python: the loops are
    written in the common subset of Python and Cython."""
    body = text.split(f"cdef inline void {function}(", 1)[1].split("\ncdef ", 1)[0]
    case = re.search(rf"o == {op.code}:  # {op.name}\n((?:        .*\n)+)", body)
    return textwrap.dedent(case.group(1))


def run_kernel_case(code, **rows):
    """Runs a case's loop over the lanes of the given rows (NumPy arrays)."""
    m = len(next(row for row in rows.values() if row is not None))
    exec(code, dict(ops.NUMPY_NAMES, m=m, c=0.0, assign=0, **rows))


def run_twin(sweeps, sweep, **env):
    """{target: value} of the twin's compiled templates for one sweep."""
    return {target: fn(*[env[n] for n in used]) for target, used, fn in sweeps[sweep]}


def test_a_unary_op_is_one_row():
    table = table_with(CUBE)
    op = table.BY_NAME["cube"]
    assert op.code == ops.N_OPS and table.KIND_OF[op.code].name == kinds.UNARY
    text = codegen.generate(table)
    assert f"cdef enum: OP_CUBE = {op.code}" in text
    assert table.signature() != ops.signature()  # (so a kernel built without it is refused)
    sweeps = twin.compile_sweeps(op, table.KIND_OF[op.code])

    x, t, g, h = (rng.uniform(-2, 2, 16) for _ in range(4))
    f = np.zeros(16)
    run_kernel_case(kernel_case(text, "forward_elem", op), out=f, xa=x, xb=None)
    np.testing.assert_array_equal(f, run_twin(sweeps, "fwd", x=x)["f"])
    np.testing.assert_allclose(f, x ** 3, rtol=1e-15)

    ga = np.zeros(16)
    run_kernel_case(kernel_case(text, "reverse_elem", op), out=f, xa=x, xb=None, gi=g, ga=ga,
                    gb=None)
    np.testing.assert_array_equal(ga, run_twin(sweeps, "rev", x=x, f=f, g=g)["gx"])
    step = 1e-6
    np.testing.assert_allclose(ga, g * ((x + step) ** 3 - (x - step) ** 3) / (2 * step),
                               rtol=1e-8)

    ti = np.zeros(16)
    run_kernel_case(kernel_case(text, "tangent_elem", op), out=f, xa=x, xb=None, ta=t, tb=None,
                    ti=ti)
    np.testing.assert_array_equal(ti, run_twin(sweeps, "tan", x=x, f=f, tx=t)["t"])
    np.testing.assert_allclose(ti, 3 * x * x * t, rtol=1e-15)

    ga, ha = np.zeros(16), np.zeros(16)
    run_kernel_case(kernel_case(text, "hvp_elem", op), out=f, xa=x, xb=None, ta=t, tb=None,
                    gi=g, ga=ga, gb=None, hi=h, ha=ha, hb=None)
    np.testing.assert_array_equal(ha, run_twin(sweeps, "hvp", x=x, f=f, g=g, h=h, tx=t)["hx"])
    np.testing.assert_allclose(ha, 3 * x * x * h + 6 * x * t * g, rtol=1e-14)


def test_the_kernel_source_has_every_rows_cases():
    text = codegen.generate()
    for op in ops.OPS:
        kind = ops.KIND_OF[op.code]
        if kinds.elementwise(kind):
            assert op.fwd in kernel_case(text, "forward_elem", op)
        if kinds.elementwise(kind) and kind.rev:
            assert op.d0 in kernel_case(text, "reverse_elem", op)
            assert op.d00 in kernel_case(text, "hvp_elem", op)


def every_kind_tape():
    """A traced tape with a node of every kind."""
    def fn(x, y):
        s = ft.sum([x, y, x * y])
        d = ft.dot([x, y], [y, s]) + ft.dot([2.0, -1.0], [x, y])
        w = ft.where(x > y, d, s.exp())
        return (w - 3.0) * (x < 0.5) + (2.0 if y > 0.0 else 1.0) + ft.Var(2.0)
    return ft.trace(fn, 0.3, 0.7)._program


def test_every_kind_is_in_the_test_tape():
    p = every_kind_tape()
    assert {ops.KIND_OF[o].name for o in p.op} == {k.name for k in kinds.KINDS}


def test_operands_follow_each_kinds_layout():
    """kinds.operands against the layout written out by hand."""
    p = every_kind_tape()
    by_hand = {kinds.INPUT: lambda a, b: [], kinds.CONST: lambda a, b: [],
               kinds.UNARY: lambda a, b: [a], kinds.CONSTANT: lambda a, b: [a],
               kinds.GUARD: lambda a, b: [a], kinds.BINARY: lambda a, b: [a, b],
               kinds.SUM: lambda a, b: list(p.args[a:a + b]),
               kinds.DOT: lambda a, b: list(p.args[a:a + 2 * b]),
               kinds.DOTC: lambda a, b: list(p.args[a:a + b]),
               kinds.SELECT: lambda a, b: list(p.args[a:a + 3])}
    for i in range(p.n):
        kind = ops.KIND_OF[p.op[i]]
        a, b = int(p.a[i]), int(p.b[i])
        assert kinds.operands(kind, a, b, p.args) == by_hand[kind.name](a, b)
        nodes = [j for nodes, _ in kinds.terms(kind, a, b, p.args, p.pool) for j in nodes.values()]
        assert sorted(nodes) == sorted(by_hand[kind.name](a, b))


def test_listed_kinds_are_those_with_operand_lists():
    assert [k.name for k in kinds.KINDS if kinds.listed(k)] == list(ops.NARY)


@pytest.mark.parametrize("method, op, op_c, how", ops.OPERATORS)
def test_var_operators_follow_the_table(method, op, op_c, how):
    """Each row of the operator table, on the backend in use: a Var operand
    records op (swapped where the row says), a number op_c (negated where it
    says), and a comparison gives a condition."""
    call = lambda x, *y: getattr(x, f"__{method}__")(*y)
    if "unary" in how:
        p = ft.trace(lambda x: call(x), 1.5)._program
        assert p.op[-1] == ops.CODE[op] and p.a[-1] == 0
        return
    if "reflected" not in how:
        p = ft.trace(lambda x, y: call(x, y), 1.5, 2.5)._program
        assert p.op[-1] == ops.CODE[op]
        assert (p.a[-1], p.b[-1]) == ((1, 0) if "swap" in how else (0, 1))
    p = ft.trace(lambda x: call(x, 2.5), 1.5)._program
    assert p.op[-1] == ops.CODE[op_c] and p.a[-1] == 0
    assert p.pool[p.b[-1]] == (-2.5 if "negate" in how else 2.5)
    result = call(ft.Var(1.5), 2.5)
    assert (type(result).__name__ == "Cond") == ("compare" in how)
