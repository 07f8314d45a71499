"""The op table: the single source of truth for every operation.

Each row gives an op's opcode, name, kind, forward formula and local partial
derivatives. Formulas are expression strings over

    x  value of the first operand      y  value of the second operand
    c  the node's constant             f  the node's own result

written in the common subset of Python and Cython, so the same text is
evaluated by NumPy in the pure twin and compiled into the Cython kernel
(``_codegen.py`` writes the kernel's cases from this table at build time).
The reverse sweep never names an op: ``adj[a] += d0 * adj[i]`` and
``adj[b] += d1 * adj[i]``; the forward-mode sweep uses the same partials.

Adding an op is adding a row (and, if its formula needs a new helper, a line
in HELPERS). This module imports nothing from fasttape, so the build can load
it on its own.
"""

from collections import namedtuple

import numpy as np

# Kinds say which fields a node uses; they, not op names, drive the sweeps.
INPUT = "input"      # value supplied by the caller
CONST = "const"      # c = pool[b]
UNARY = "unary"      # f(x), x = node a
CONSTANT = "unary_c"  # f(x, c), x = node a, c = pool[b]
BINARY = "binary"    # f(x, y), x = node a, y = node b
SUM = "sum"          # args[a : a+b]                    -> sum
DOT = "dot"          # args[a : a+b] . args[a+b : a+2b] -> dot of two node lists
DOTC = "dotc"        # pool[args[a+b] + j] * args[a+j]  -> dot with constants
NARY = (SUM, DOT, DOTC)
KINDS = (INPUT, CONST, UNARY, CONSTANT, BINARY, SUM, DOT, DOTC)

Op = namedtuple("Op", "code name kind fwd d0 d1 sym doc")
# sym: how str(tape) writes the node; {x} {y} {c} are operand names.

_ROWS = [
    # name       kind      forward            d/d first operand        d/d second     listing
    ("input",    INPUT,    "",                "",                      "",            "",                "an input of the tape"),
    ("const",    CONST,    "c",               "",                      "",            "{c}",             "a constant"),
    ("add",      BINARY,   "x + y",           "1.0",                   "1.0",         "{x} + {y}",       "x + y"),
    ("sub",      BINARY,   "x - y",           "1.0",                   "-1.0",        "{x} - {y}",       "x - y"),
    ("mul",      BINARY,   "x * y",           "y",                     "x",           "{x} * {y}",       "x * y"),
    ("div",      BINARY,   "x / y",           "1.0 / y",               "-f / y",      "{x} / {y}",       "x / y"),
    ("pow",      BINARY,   "pow(x, y)",       "y * pow(x, y - 1.0)",   "powd1(x, f)", "{x} ** {y}",      "x ** y, both Vars"),
    ("maximum",  BINARY,   "maxv(x, y)",      "maxd(x, y)",            "maxd(y, x)",  "maximum({x}, {y})", "larger of x, y (ties split the gradient)"),
    ("minimum",  BINARY,   "minv(x, y)",      "maxd(y, x)",            "maxd(x, y)",  "minimum({x}, {y})", "smaller of x, y (ties split the gradient)"),
    ("add_c",    CONSTANT, "x + c",           "1.0",                   "",            "{x} + {c}",       "x + number (x - c is x + (-c))"),
    ("rsub_c",   CONSTANT, "c - x",           "-1.0",                  "",            "{c} - {x}",       "number - x"),
    ("mul_c",    CONSTANT, "c * x",           "c",                     "",            "{c} * {x}",       "number * x"),
    ("div_c",    CONSTANT, "x / c",           "1.0 / c",               "",            "{x} / {c}",       "x / number"),
    ("rdiv_c",   CONSTANT, "c / x",           "-f / x",                "",            "{c} / {x}",       "number / x"),
    ("pow_c",    CONSTANT, "powc(x, c)",      "c * powc(x, c - 1.0)",  "",            "{x} ** {c}",      "x ** number"),
    ("rpow_c",   CONSTANT, "pow(c, x)",       "f * log(c)",            "",            "{c} ** {x}",      "number ** x"),
    ("maximum_c", CONSTANT, "maxv(x, c)",     "maxd(x, c)",            "",            "maximum({x}, {c})", "larger of x and a number"),
    ("minimum_c", CONSTANT, "minv(x, c)",     "maxd(c, x)",            "",            "minimum({x}, {c})", "smaller of x and a number"),
    ("neg",      UNARY,    "-x",              "-1.0",                  "",            "-{x}",            "-x"),
    ("exp",      UNARY,    "exp(x)",          "f",                     "",            "exp({x})",        "e ** x"),
    ("log",      UNARY,    "log(x)",          "1.0 / x",               "",            "log({x})",        "natural logarithm"),
    ("sqrt",     UNARY,    "sqrt(x)",         "0.5 / f",               "",            "sqrt({x})",       "square root"),
    ("sin",      UNARY,    "sin(x)",          "cos(x)",                "",            "sin({x})",        "sine"),
    ("cos",      UNARY,    "cos(x)",          "-sin(x)",               "",            "cos({x})",        "cosine"),
    ("tan",      UNARY,    "tan(x)",          "1.0 + f * f",           "",            "tan({x})",        "tangent"),
    ("tanh",     UNARY,    "tanh(x)",         "1.0 - f * f",           "",            "tanh({x})",       "hyperbolic tangent"),
    ("sigmoid",  UNARY,    "sigmoid(x)",      "f * (1.0 - f)",         "",            "sigmoid({x})",    "1 / (1 + exp(-x))"),
    ("relu",     UNARY,    "maxv(x, 0.0)",    "step(x)",               "",            "relu({x})",       "max(x, 0); gradient 0 at 0"),
    ("abs",      UNARY,    "fabs(x)",         "sign(x)",               "",            "abs({x})",        "|x|; gradient 0 at 0"),
    ("log1p",    UNARY,    "log1p(x)",        "1.0 / (1.0 + x)",       "",            "log1p({x})",      "log(1 + x), accurate near 0"),
    ("expm1",    UNARY,    "expm1(x)",        "f + 1.0",               "",            "expm1({x})",      "exp(x) - 1, accurate near 0"),
    ("sum",      SUM,      "",                "",                      "",            "sum({args})",     "sum of n operands, one node"),
    ("dot",      DOT,      "",                "",                      "",            "dot({args})",     "sum of products of two operand lists"),
    ("dotc",     DOTC,     "",                "",                      "",            "dot({args})",     "sum of constants times operands"),
]

OPS = tuple(Op(code, *row[:5], row[5], row[6]) for code, row in enumerate(_ROWS))
BY_NAME = {op.name: op for op in OPS}
CODE = {op.name: op.code for op in OPS}
N_OPS = len(OPS)

# Helpers the formulas use beyond libm: (Cython source, NumPy twin).
HELPERS = {
    "sigmoid": ("return 1.0 / (1.0 + exp(-x))",
                lambda x: 1.0 / (1.0 + np.exp(-x))),
    "step": ("return 1.0 if x > 0.0 else 0.0",
             lambda x: np.where(x > 0.0, 1.0, 0.0)),
    "sign": ("return 1.0 if x > 0.0 else (-1.0 if x < 0.0 else 0.0)",
             lambda x: np.sign(x) * 1.0),
    # d max(x, y) / dx: 1, 0 or 1/2 at a tie, as JAX splits it.
    "maxd": ("return 1.0 if x > y else (0.5 if x == y else 0.0)",
             lambda x, y: np.where(x > y, 1.0, np.where(x == y, 0.5, 0.0))),
    # d x**y / dy = x**y log x, taken as 0 at x = 0 (the limit from the right).
    "powd1": ("return 0.0 if x == 0.0 else y * log(x)",
              lambda x, y: np.where(x == 0.0, 0.0, y * np.log(np.where(x == 0.0, 1.0, x)))),
    # maximum / minimum propagate NaN, as NumPy's do (fmax would drop it).
    "maxv": ("return x if (x > y or x != x) else y", np.maximum),
    "minv": ("return x if (x < y or x != x) else y", np.minimum),
    # x ** c with the common square exact and cheap, and so d/dx x**2 = 2 x.
    "powc": ("return x * x if y == 2.0 else (x if y == 1.0 else pow(x, y))",
             lambda x, y: x * x if y == 2.0 else (x * 1.0 if y == 1.0 else np.power(x, y))),
}
HELPER_ARGS = {"maxd": "x, y", "powd1": "x, y", "powc": "x, y", "maxv": "x, y", "minv": "x, y"}

# The NumPy meaning of every name a formula may use.
NUMPY_NAMES = dict(
    exp=np.exp, log=np.log, sqrt=np.sqrt, sin=np.sin, cos=np.cos, tan=np.tan,
    tanh=np.tanh, log1p=np.log1p, expm1=np.expm1, fabs=np.abs, pow=np.power,
    **{name: fn for name, (_, fn) in HELPERS.items()},
)
LIBM_NAMES = ("exp", "log", "sqrt", "sin", "cos", "tan", "tanh", "log1p", "expm1",
              "fabs", "pow")


def compile_numpy(expr, args):
    """A NumPy function of ``args`` (e.g. "x, y, c, f") evaluating ``expr``."""
    if not expr:
        return None
    return eval(f"lambda {args}: {expr}", dict(NUMPY_NAMES))
