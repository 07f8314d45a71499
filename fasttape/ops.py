"""The op table: the single source of truth for every operation.

Each row gives an op's opcode, name, kind, forward formula and local partial
derivatives. Formulas are expression strings over

    x  value of the first operand      y  value of the second operand
    c  the node's constant             f  the node's own result

written in the common subset of Python and Cython, so the same text is
evaluated by NumPy in the pure twin and compiled into the Cython kernel
(``_kernel/codegen.py`` writes the kernel's cases from this table at build time).
The reverse sweep never names an op: ``adj[a] += d0 * adj[i]`` and
``adj[b] += d1 * adj[i]``; the forward-mode sweep uses the same partials.

Adding an op is adding a row (and, if its formula needs a new helper, a line
in HELPERS). This module imports nothing from fasttape, so the build can load
it on its own.
"""

import re
from collections import namedtuple

import numpy as np

# Kinds say which fields a node uses and how each sweep treats it (kinds.py);
# they, not op names, drive the sweeps.
from . import kinds  # noqa: E402
from .kinds import (BINARY, CONST, CONSTANT, DOT, DOTC, GUARD, INPUT, KINDS,  # noqa: E402
                    SELECT, SUM, UNARY)

NARY = (SUM, DOT, DOTC, SELECT)  # kinds whose operands are listed in args
ELEMENTWISE = (CONST, UNARY, CONSTANT, BINARY, GUARD)  # kinds with formulas

Op = namedtuple("Op", "code name kind fwd d0 d1 d00 d01 d11 sym doc")
# d0, d1: first partials by the first and second operand; d00, d01, d11: the
# second partials (for Hessian-vector products). sym: how str(tape) writes
# the node, with {x} {y} {c} the operands' names.


def _row(name, kind, fwd="", d=("",), dd=("", "", ""), sym="", doc=""):
    d0, d1 = (tuple(d) + ("",))[:2]
    d00, d01, d11 = (tuple(dd) + ("", ""))[:3]
    if kind in ELEMENTWISE and kind != CONST:  # unwritten partials are zero
        d0, d00 = d0 or "0.0", d00 or "0.0"
        if kind == BINARY:
            d1, d01, d11 = d1 or "0.0", d01 or "0.0", d11 or "0.0"
    row = (name, kind, fwd, d0, d1, d00, d01, d11, sym, doc)
    if kind == BINARY:
        _BINARY_ROWS[name] = row
    return row


_BINARY_ROWS = {}  # name -> row, for the rows with a number that follow from them


def _substitute(text, x, y):
    """text with x and y replaced (at once) by the given names."""
    return re.sub(r"\b[xy]\b", lambda m: x if m.group() == "x" else y, text)


def _const(name, of, order, sym, doc):
    """The row of binary op `of` with a number: order "x, c" puts it in y's
    place, "c, x" in x's (so the node's operand x is the op's y)."""
    row = _BINARY_ROWS[of]  # (name, kind, fwd, d0, d1, d00, d01, d11, sym, doc)
    if order == "x, c":
        fwd, d0, d00 = (_substitute(t, "x", "c") for t in (row[2], row[3], row[5]))
    else:
        fwd, d0, d00 = (_substitute(t, "c", "x") for t in (row[2], row[4], row[7]))
    return _row(name, CONSTANT, fwd, (d0,), (d00,), sym, doc)


_ROWS = [
    _row("input", INPUT, doc="an input of the tape"),
    _row("const", CONST, "c", sym="{c}", doc="a constant"),
    _row("add", BINARY, "x + y", ("1.0", "1.0"), sym="{x} + {y}", doc="x + y"),
    _row("sub", BINARY, "x - y", ("1.0", "-1.0"), sym="{x} - {y}", doc="x - y"),
    _row("mul", BINARY, "x * y", ("y", "x"), ("0.0", "1.0", "0.0"), "{x} * {y}", "x * y"),
    _row("div", BINARY, "x / y", ("1.0 / y", "-f / y"),
         ("0.0", "-1.0 / (y * y)", "2.0 * f / (y * y)"), "{x} / {y}", "x / y"),
    _row("pow", BINARY, "pow(x, y)", ("powd0(x, y)", "powd1(x, f)"),
         ("powd00(x, y)", "pow(x, y - 1.0) + y * powd1(x, pow(x, y - 1.0))",
          "powd1(x, powd1(x, f))"),
         "{x} ** {y}", "x ** y, both Vars"),
    _row("maximum", BINARY, "maxv(x, y)", ("maxd(x, y)", "maxd(y, x)"),
         sym="maximum({x}, {y})", doc="larger of x, y (ties split the gradient)"),
    _row("minimum", BINARY, "minv(x, y)", ("maxd(y, x)", "maxd(x, y)"),
         sym="minimum({x}, {y})", doc="smaller of x, y (ties split the gradient)"),
    _row("lt", BINARY, "lt(x, y)", sym="{x} < {y}", doc="condition x < y (1 or 0)"),
    _row("le", BINARY, "le(x, y)", sym="{x} <= {y}", doc="condition x <= y (1 or 0)"),
    # A binary op with a number: its row follows from the binary row, with
    # the number c in place of y ("x, c") or of x ("c, x").
    _const("add_c", "add", "x, c", "{x} + {c}", "x + number (x - c is x + -c)"),
    _const("rsub_c", "sub", "c, x", "{c} - {x}", "number - x"),
    _const("mul_c", "mul", "c, x", "{c} * {x}", "number * x"),
    _const("div_c", "div", "x, c", "{x} / {c}", "x / number"),
    _const("rdiv_c", "div", "c, x", "{c} / {x}", "number / x"),
    _const("pow_c", "pow", "x, c", "{x} ** {c}", "x ** number"),
    _const("rpow_c", "pow", "c, x", "{c} ** {x}", "number ** x"),
    _const("maximum_c", "maximum", "x, c", "maximum({x}, {c})", "larger of x and a number"),
    _const("minimum_c", "minimum", "x, c", "minimum({x}, {c})", "smaller of x and a number"),
    _const("lt_c", "lt", "x, c", "{x} < {c}", "condition x < number"),
    _const("le_c", "le", "x, c", "{x} <= {c}", "condition x <= number"),
    _const("gt_c", "lt", "c, x", "{x} > {c}", "condition x > number"),
    _const("ge_c", "le", "c, x", "{x} >= {c}", "condition x >= number"),
    _row("neg", UNARY, "-x", ("-1.0",), sym="-{x}", doc="-x"),
    _row("exp", UNARY, "vexp(x)", ("f",), ("f",), "exp({x})", "e ** x"),
    _row("log", UNARY, "vlog(x)", ("1.0 / x",), ("-1.0 / (x * x)",), "log({x})", "natural logarithm"),
    _row("sqrt", UNARY, "sqrt(x)", ("0.5 / f",), ("-0.25 / (f * f * f)",), "sqrt({x})", "square root"),
    _row("sin", UNARY, "sin(x)", ("cos(x)",), ("-f",), "sin({x})", "sine"),
    _row("cos", UNARY, "cos(x)", ("-sin(x)",), ("-f",), "cos({x})", "cosine"),
    _row("tan", UNARY, "tan(x)", ("1.0 + f * f",), ("2.0 * f * (1.0 + f * f)",), "tan({x})",
         "tangent"),
    _row("tanh", UNARY, "vtanh(x)", ("1.0 - f * f",), ("-2.0 * f * (1.0 - f * f)",), "tanh({x})",
         "hyperbolic tangent"),
    _row("sigmoid", UNARY, "sigmoid(x)", ("f * (1.0 - f)",), ("f * (1.0 - f) * (1.0 - 2.0 * f)",),
         "sigmoid({x})", "1 / (1 + exp(-x))"),
    _row("relu", UNARY, "maxv(x, 0.0)", ("step(x)",), sym="relu({x})", doc="max(x, 0); gradient 0 at 0"),
    _row("abs", UNARY, "fabs(x)", ("sign(x)",), sym="abs({x})", doc="|x|; gradient 0 at 0"),
    _row("log1p", UNARY, "vlog1p(x)", ("1.0 / (1.0 + x)",), ("-1.0 / ((1.0 + x) * (1.0 + x))",),
         "log1p({x})", "log(1 + x), accurate near 0"),
    _row("expm1", UNARY, "expm1(x)", ("f + 1.0",), ("f + 1.0",), "expm1({x})",
         "exp(x) - 1, accurate near 0"),
    _row("guard", GUARD, "miss(x, c)", sym="guard({x} == {c})",
         doc="a branch taken while tracing: f = 1 where it would go the other way"),
    _row("sum", SUM, sym="sum({args})", doc="sum of n operands, one node"),
    _row("dot", DOT, sym="dot({args})", doc="sum of products of two operand lists"),
    _row("dotc", DOTC, sym="dot({args})", doc="sum of constants times operands"),
    _row("where", SELECT, sym="where({args})", doc="t where cond is true (non-zero), else e"),
    # Rows added after the first release go last, so older files keep their opcodes.
    _row("eq", BINARY, "eq(x, y)", sym="{x} == {y}", doc="condition x == y (1 or 0)"),
    _row("ne", BINARY, "1.0 - eq(x, y)", sym="{x} != {y}", doc="condition x != y (1 or 0)"),
    _const("eq_c", "eq", "x, c", "{x} == {c}", "condition x == number"),
    _const("ne_c", "ne", "x, c", "{x} != {c}", "condition x != number"),
    # The rest of NumPy's differentiable ufuncs (fasttape/numpy_api.py maps them).
    _row("arcsin", UNARY, "asin(x)", ("1.0 / sqrt(1.0 - x * x)",),
         ("x / ((1.0 - x * x) * sqrt(1.0 - x * x))",), "arcsin({x})", "inverse sine"),
    _row("arccos", UNARY, "acos(x)", ("-1.0 / sqrt(1.0 - x * x)",),
         ("-x / ((1.0 - x * x) * sqrt(1.0 - x * x))",), "arccos({x})", "inverse cosine"),
    _row("arctan", UNARY, "atan(x)", ("1.0 / (1.0 + x * x)",),
         ("-2.0 * x / ((1.0 + x * x) * (1.0 + x * x))",), "arctan({x})", "inverse tangent"),
    _row("sinh", UNARY, "sinh(x)", ("cosh(x)",), ("f",), "sinh({x})", "hyperbolic sine"),
    _row("cosh", UNARY, "cosh(x)", ("sinh(x)",), ("f",), "cosh({x})", "hyperbolic cosine"),
    _row("arcsinh", UNARY, "asinh(x)", ("1.0 / sqrt(x * x + 1.0)",),
         ("-x / ((x * x + 1.0) * sqrt(x * x + 1.0))",), "arcsinh({x})",
         "inverse hyperbolic sine"),
    _row("arccosh", UNARY, "acosh(x)", ("1.0 / sqrt(x * x - 1.0)",),
         ("-x / ((x * x - 1.0) * sqrt(x * x - 1.0))",), "arccosh({x})",
         "inverse hyperbolic cosine"),
    _row("arctanh", UNARY, "atanh(x)", ("1.0 / (1.0 - x * x)",),
         ("2.0 * x / ((1.0 - x * x) * (1.0 - x * x))",), "arctanh({x})",
         "inverse hyperbolic tangent"),
    # (1 / log 2, 1 / log 10, log 2 and its square, as literals)
    _row("log2", UNARY, "log2(x)", ("1.4426950408889634 / x",),
         ("-1.4426950408889634 / (x * x)",), "log2({x})", "base-2 logarithm"),
    _row("log10", UNARY, "log10(x)", ("0.4342944819032518 / x",),
         ("-0.4342944819032518 / (x * x)",), "log10({x})", "base-10 logarithm"),
    _row("exp2", UNARY, "exp2(x)", ("0.6931471805599453 * f",), ("0.4804530139182014 * f",),
         "exp2({x})", "2 ** x"),
    _row("cbrt", UNARY, "cbrt(x)", ("1.0 / (3.0 * f * f)",),
         ("-2.0 / (9.0 * f * f * f * f * f)",), "cbrt({x})", "cube root"),
    _row("square", UNARY, "x * x", ("2.0 * x",), ("2.0",), "square({x})", "x * x"),
    _row("reciprocal", UNARY, "1.0 / x", ("-f * f",), ("2.0 * f * f * f",),
         "reciprocal({x})", "1 / x"),
    _row("floor", UNARY, "floor(x)", sym="floor({x})", doc="largest integer <= x; gradient 0"),
    _row("ceil", UNARY, "ceil(x)", sym="ceil({x})", doc="smallest integer >= x; gradient 0"),
    _row("sign", UNARY, "sign(x)", sym="sign({x})", doc="-1, 0 or 1; gradient 0"),
    _row("arctan2", BINARY, "atan2(x, y)", ("y / (x * x + y * y)", "-x / (x * x + y * y)"),
         # (written so that x * x + y * y squared cannot overflow)
         ("-2.0 * (x / (x * x + y * y)) * (y / (x * x + y * y))",
          "((x / (x * x + y * y)) * x - (y / (x * x + y * y)) * y) / (x * x + y * y)",
          "2.0 * (x / (x * x + y * y)) * (y / (x * x + y * y))"),
         "arctan2({x}, {y})", "angle of the point (y, x): arctan2(x, y)"),
    _row("hypot", BINARY, "hypot(x, y)", ("x / f", "y / f"),
         ("(y / f) * (y / f) / f", "-(x / f) * (y / f) / f", "(x / f) * (x / f) / f"),
         "hypot({x}, {y})", "sqrt(x * x + y * y), without overflow"),
    _row("logaddexp", BINARY, "maxv(x, y) + vlog1p(vexp(-fabs(x - y)))",
         ("vexp(x - f)", "vexp(y - f)"),
         ("vexp(x - f) * vexp(y - f)", "-vexp(x - f) * vexp(y - f)",
          "vexp(x - f) * vexp(y - f)"), "logaddexp({x}, {y})", "log(exp(x) + exp(y))"),
    _row("logaddexp2", BINARY, "maxv(x, y) + 1.4426950408889634 * vlog1p(exp2(-fabs(x - y)))",
         ("exp2(x - f)", "exp2(y - f)"),
         ("0.6931471805599453 * exp2(x - f) * exp2(y - f)",
          "-0.6931471805599453 * exp2(x - f) * exp2(y - f)",
          "0.6931471805599453 * exp2(x - f) * exp2(y - f)"),
         "logaddexp2({x}, {y})", "log2(2 ** x + 2 ** y)"),
    _row("copysign", BINARY, "copysign(x, y)", ("copysign(1.0, x) * copysign(1.0, y)",),
         sym="copysign({x}, {y})", doc="|x| with the sign of y"),
    _row("fmod", BINARY, "fmod(x, y)", ("1.0", "(f - x) / y"), sym="fmod({x}, {y})",
         doc="x - trunc(x / y) * y (C's remainder)"),
    _row("mod", BINARY, "pymod(x, y)", ("1.0", "(f - x) / y"), sym="{x} % {y}",
         doc="x - floor(x / y) * y (Python's and NumPy's remainder)"),
    _row("fmax", BINARY, "fmax(x, y)", ("fmaxd(x, y)", "fmaxd(y, x)"), sym="fmax({x}, {y})",
         doc="larger of x, y, ignoring a NaN (ties split the gradient)"),
    _row("fmin", BINARY, "fmin(x, y)", ("fmaxd(y, x)", "fmaxd(x, y)"), sym="fmin({x}, {y})",
         doc="smaller of x, y, ignoring a NaN (ties split the gradient)"),
]

OPS = tuple(Op(code, *row) for code, row in enumerate(_ROWS))
KIND_OF = tuple(kinds.BY_NAME[op.kind] for op in OPS)  # each op's row of the kind table
KIND_CODE = np.array([kind.code for kind in KIND_OF], dtype=np.int8)
BY_NAME = {op.name: op for op in OPS}
CODE = {op.name: op.code for op in OPS}
N_OPS = len(OPS)


# How a Var's operators record, for the kernel's Var and the twin's alike:
# (method, op with another Var, op with a number, how). "negate": the
# number is negated (x - c is recorded as x + -c); "swap": the Vars are
# swapped (x > y is y < x); "reflected": number op x, a number form only;
# "compare": the result is a condition (a Cond); "unary": no operand.
OPERATORS = (
    ("add", "add", "add_c", ""),
    ("sub", "sub", "add_c", "negate"),
    ("mul", "mul", "mul_c", ""),
    ("truediv", "div", "div_c", ""),
    ("pow", "pow", "pow_c", ""),
    ("radd", "", "add_c", "reflected"),
    ("rsub", "", "rsub_c", "reflected"),
    ("rmul", "", "mul_c", "reflected"),
    ("rtruediv", "", "rdiv_c", "reflected"),
    ("rpow", "", "rpow_c", "reflected"),
    ("lt", "lt", "lt_c", "compare"),
    ("le", "le", "le_c", "compare"),
    ("gt", "lt", "gt_c", "compare swap"),
    ("ge", "le", "ge_c", "compare swap"),
    ("eq", "eq", "eq_c", "compare"),
    ("ne", "ne", "ne_c", "compare"),
    ("neg", "neg", "", "unary"),
    ("abs", "abs", "", "unary"),
)
OPERATOR_FLAGS = {"negate": 1, "swap": 2, "reflected": 4, "compare": 8, "unary": 16}


def signature():
    """What a built kernel must agree with: each op's code, name, kind and
    formulas, and each kind's layout and templates."""
    return (tuple((op.code, op.name, op.kind, op.fwd, op.d0, op.d1, op.d00, op.d01, op.d11)
                  for op in OPS),
            tuple(tuple(kind)[:-2] for kind in kinds.KINDS), OPERATORS)


# Constants for which the kernel gets a loop of its own, with c a literal:
# the formulas then fold to plain arithmetic (x ** 2 to x * x, its partial
# to 2 * x) and the loop vectorizes, where the general one calls pow.
SPECIAL_CONSTANTS = {"pow_c": (2.0,)}

# Helpers the formulas use beyond libm: (Cython source, NumPy twin).
HELPERS = {
    "sigmoid": ("return 1.0 / (1.0 + vexp(-x))",
                lambda x: 1.0 / (1.0 + np.exp(-x))),
    "step": ("return 1.0 if x > 0.0 else 0.0",
             lambda x: np.where(x > 0.0, 1.0, 0.0)),
    "sign": ("return 1.0 if x > 0.0 else (-1.0 if x < 0.0 else x * 0.0)",  # NaN stays NaN
             lambda x: np.sign(x) * 1.0),
    # d max(x, y) / dx: 1, 0 or 1/2 at a tie, as JAX splits it.
    "maxd": ("return 1.0 if x > y else (0.5 if x == y else 0.0)",
             lambda x, y: np.where(x > y, 1.0, np.where(x == y, 0.5, 0.0))),
    # d x**y / dy = x**y log x, taken as 0 at x = 0 (the limit from the right).
    # (Also d c**x / dx = c**x log c, as powd1(c, f).)
    "powd1": ("return 0.0 if x == 0.0 else y * vlog(x)",
              lambda x, y: np.where(x == 0.0, 0.0, y * np.log(np.where(x == 0.0, 1.0, x)))),
    # maximum / minimum propagate NaN, as NumPy's do (fmax would drop it).
    "maxv": ("return x if (x > y or x != x) else y", np.maximum),
    "minv": ("return x if (x < y or x != x) else y", np.minimum),
    # conditions are 1.0 or 0.0; a guard misses where the truth differs.
    "lt": ("return 1.0 if x < y else 0.0", lambda x, y: np.where(x < y, 1.0, 0.0)),
    "le": ("return 1.0 if x <= y else 0.0", lambda x, y: np.where(x <= y, 1.0, 0.0)),
    "eq": ("return 1.0 if x == y else 0.0", lambda x, y: np.where(x == y, 1.0, 0.0)),
    # Python's remainder (the sign of y), as NumPy's mod; d fmax(x, y) / dx,
    # which is 1 where y is a NaN that fmax ignores.
    "pymod": ("cdef double r = fmod(x, y)\n    return r + y if (r != 0.0 and ((r < 0.0) != (y < 0.0))) else r",
              np.mod),
    "fmaxd": ("return 1.0 if (x > y or y != y) else (0.5 if x == y else 0.0)",
              lambda x, y: np.where((x > y) | (y != y), 1.0, np.where(x == y, 0.5, 0.0))),
    "miss": ("return 0.0 if (x != 0.0) == (y != 0.0) else 1.0",
             lambda x, y: np.where((x != 0.0) == (y != 0.0), 0.0, 1.0)),
    # The power rule where its plain product is 0 * inf or 0 * nan at x = 0:
    # each helper is the product written beside it, with the limit taken
    # where x ** y is constant or linear in x (or 0 ** y constant in y), so
    # d/dx x**0 = 0, d2/dx2 x**1 = 0 and d/dy 0**y = 0 (y > 0) hold at 0.
    # powd0(x, y) = y * x**(y - 1) = d x**y / dx, taken as 0 where y == 0.
    "powd0": ("return 0.0 if y == 0.0 else y * pow(x, y - 1.0)",
              lambda x, y: np.where(y == 0.0, 0.0,
                                    y * np.power(x, np.where(y == 0.0, 1.0, y) - 1.0))),
    # powd00(x, y) = y * (y - 1) * x**(y - 2) = d2 x**y / dx2, taken as 0
    # where y is 0 or 1.
    "powd00": ("return 0.0 if (y == 0.0 or y == 1.0) else y * (y - 1.0) * pow(x, y - 2.0)",
               lambda x, y: np.where((y == 0.0) | (y == 1.0), 0.0, y * (y - 1.0) * np.power(
                   x, np.where((y == 0.0) | (y == 1.0), 2.0, y) - 2.0))),
}
HELPER_ARGS = {name: "x, y" for name in ("maxd", "powd1", "maxv", "minv", "lt", "le", "eq",
                                                 "miss", "pymod", "fmaxd", "powd0", "powd00")}

# The NumPy meaning of every name a formula may use. vexp, vlog, vlog1p and
# vtanh are the kernel's own vectorizable functions (fasttape/_kernel/vmath.pxi),
# within two ulp of NumPy's.
NUMPY_NAMES = dict(
    exp=np.exp, log=np.log, sqrt=np.sqrt, sin=np.sin, cos=np.cos, tan=np.tan,
    tanh=np.tanh, log1p=np.log1p, expm1=np.expm1, fabs=np.abs, pow=np.power,
    vexp=np.exp, vlog=np.log, vlog1p=np.log1p, vtanh=np.tanh,
    asin=np.arcsin, acos=np.arccos, atan=np.arctan, sinh=np.sinh, cosh=np.cosh,
    asinh=np.arcsinh, acosh=np.arccosh, atanh=np.arctanh, log2=np.log2, log10=np.log10,
    exp2=np.exp2, cbrt=np.cbrt, floor=np.floor, ceil=np.ceil, atan2=np.arctan2,
    hypot=np.hypot, copysign=np.copysign, fmod=np.fmod, fmax=np.fmax, fmin=np.fmin,
    **{name: fn for name, (_, fn) in HELPERS.items()},
    **{name: fn for name, (_, fn) in kinds.HELPERS.items()},
)
LIBM_NAMES = ("exp", "log", "sqrt", "sin", "cos", "tan", "tanh", "log1p", "expm1",
              "fabs", "pow", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh",
              "log2", "log10", "exp2", "cbrt", "floor", "ceil", "atan2", "hypot", "copysign",
              "fmod", "fmax", "fmin")


def compile_numpy(expr, args):
    """A NumPy function of ``args`` (e.g. "x, y, c, f") evaluating ``expr``."""
    if not expr:
        return None
    return eval(f"lambda {args}: {expr}", dict(NUMPY_NAMES))
