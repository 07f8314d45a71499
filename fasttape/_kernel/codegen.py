"""Writes the kernel's per-op and per-kind cases (``_kernel/ops.pxi``) from
the op table (``ops.py``) and the kind table (``kinds.py``).

Run by setup.py before Cython compiles ``_core.pyx``, so the kernel and the
tables cannot drift apart. Each elementwise case is one tight loop over ``m``
contiguous doubles: the lanes of one node, or of a run of like nodes. Each
listed kind (sum, dot, dotc, where) gets its loops over its operand list,
over C lanes and over one lane (summed in a register). The kind predicates
and ``operands_of`` let every walk over a tape read operands one way.
"""

import importlib
import os
import re
import sys
import types

HEADER = "# Generated from fasttape/ops.py and fasttape/kinds.py by fasttape/_kernel/codegen.py. Do not edit.\n"
HERE = os.path.dirname(os.path.abspath(__file__))
TABLES = os.path.dirname(HERE)  # fasttape/, where ops.py and kinds.py are


def load_tables():
    """fasttape's ops module (with its kinds), loaded without the package:
    importing fasttape itself would need the built kernel."""
    name = "_fasttape_tables"
    if name not in sys.modules:
        package = types.ModuleType(name)
        package.__path__ = [TABLES]
        sys.modules[name] = package
    return importlib.import_module(name + ".ops")


# ------------------------------------------------------------ elementwise ops

# Where the elementwise loops find each template name, and write each target.
ELEM_READS = {"x": "xa[l]", "y": "xb[l]", "f": "out[l]", "g": "gi[l]", "h": "hi[l]",
              "tx": "ta[l]", "ty": "tb[l]"}
ELEM_WRITES = {"f": "out[l]", "t": "ti[l]", "gx": "ga[l]", "gy": "gb[l]", "hx": "ha[l]",
               "hy": "hb[l]"}
_NUMBER_TIMES_TANGENT = re.compile(r"zmul\((-?[0-9]+\.?[0-9]*(?:e-?[0-9]+)?), (t[a-z])\)")


def _reads(exprs, names):
    """Load lines for the template names the expressions use."""
    text = " ".join(exprs)
    return [f"{name} = {where}" for name, where in names.items()
            if re.search(rf"\b{name}\b", text)]


def _statements(template, writes, assign=0):
    """One line per (target, expression); with assign (bit 1: x, bit 2: y),
    the adjoint targets (and their tangents) of those operands are set, not
    added to (the first contributor in a reverse sweep)."""
    out = []
    for target, expr in template:
        # A partial that is a number is finite: its plain product with a
        # tangent is what zmul gives (a zero tangent contributes nothing).
        expr = _NUMBER_TIMES_TANGENT.sub(r"\1 * \2", expr)
        bit = {"x": 1, "y": 2}.get(target[1:], 0) if target[0] in "gh" else 0
        op = "=" if target in ("f", "t") or assign & bit else "+="
        out.append(f"{writes[target]} {op} {expr}")
    return out


def _loop(lines, indent):
    body = "\n".join(indent + "    " + line for line in lines)
    return f"{indent}for l in range(m):\n{body}\n"


def _with_constant(lines, value):
    """The lines with the node's constant c written as the literal value."""
    return [re.sub(r"\bc\b", repr(value), line) for line in lines]


def _loops(ops, op, lines, indent):
    """The loop of one op: one per special constant, then the general one."""
    special = ops.SPECIAL_CONSTANTS.get(op.name, ())
    if not special:
        return _loop(lines, indent)
    out = ""
    for k, value in enumerate(special):
        out += f"{indent}{'el' if k else ''}if c == {value!r}:\n"
        out += _loop(_with_constant(lines, value), indent + "    ")
    return out + f"{indent}else:\n" + _loop(lines, indent + "    ")


def _elem_lines(ops, op, sweeps, assign=0):
    """The loop body of op for the given sweeps of its kind's templates."""
    kinds = ops.kinds
    kind = ops.KIND_OF[op.code]
    template = [t for sweep in sweeps for t in kinds.expand(kind, op, sweep)]
    if not template:
        return None
    lines = _statements(template, ELEM_WRITES, assign)
    used = [line.split(" ", 2)[2] for line in lines]
    return _reads(used, ELEM_READS) + lines


def _cases(ops, lines_for, variants=1):
    """An if/elif chain over the elementwise opcodes (Cython turns it into a
    C switch). With variants, lines_for(op, v) for v in 0 .. variants-1,
    chosen by `assign` (where they differ)."""
    parts, first = [], True
    for op in ops.OPS:
        if not ops.kinds.elementwise(ops.KIND_OF[op.code]):
            continue
        forms = {}  # each distinct loop body, and the variants that take it
        for v in range(variants):
            lines = lines_for(op, v)
            if lines is not None:
                forms.setdefault(tuple(lines), []).append(v)
        if not forms:
            continue
        case = f"    {'if' if first else 'elif'} o == {op.code}:  # {op.name}\n"
        first = False
        if len(forms) == 1:
            case += _loops(ops, op, list(next(iter(forms))), "        ")
        else:
            for k, (form, vs) in enumerate(forms.items()):
                test = (f"{'el' if k else ''}if assign in {tuple(vs)}:" if k < len(forms) - 1
                        else "else:")
                case += f"        {test}\n" + _loops(ops, op, list(form), "            ")
        parts.append(case)
    return "".join(parts) or "    pass\n"


DECL = ("    cdef Py_ssize_t l\n"
        "    cdef double x = 0.0, y = 0.0, f = 0.0, g = 0.0, h = 0.0, tx = 0.0, ty = 0.0\n")


def _elementwise(ops):
    sig = "int o, Py_ssize_t m, double c, "
    vals = "const double* out, const double* xa, const double* xb"
    return (
        f"\ncdef inline void forward_elem({sig}double* out, const double* xa, const double* xb) noexcept nogil:\n"
        + DECL + _cases(ops, lambda op, v=0: _elem_lines(ops, op, ["fwd"]))
        + f"\ncdef inline void reverse_elem({sig}{vals},\n"
        + "                               const double* gi, double* ga, double* gb,\n"
        + "                               int assign) noexcept nogil:\n"
        + DECL + _cases(ops, lambda op, v: _elem_lines(ops, op, ["rev"], v), variants=4)
        + f"\ncdef inline void tangent_elem({sig}{vals},\n"
        + "                               const double* ta, const double* tb, double* ti) noexcept nogil:\n"
        + DECL + _cases(ops, lambda op, v=0: _elem_lines(ops, op, ["tan"]))
        + f"\ncdef inline void hvp_elem({sig}{vals}, const double* ta, const double* tb,\n"
        + "                           const double* gi, double* ga, double* gb,\n"
        + "                           const double* hi, double* ha, double* hb,\n"
        + "                           int assign) noexcept nogil:\n"
        + DECL + _cases(ops, lambda op, v: _elem_lines(ops, op, ["rev", "hvp"], v), variants=4)
    )


# ------------------------------------------------------------ listed kinds

def _term(kind, template, lanes):
    """Lines of one term of a listed kind's template: over C lanes (row
    pointers, then a loop), or one lane's statements."""
    exprs = " ".join(expr for _, expr in template)
    index = ({"u": "arg[j]", "v": "arg[n + j]"} if kind.summed
             else {name: f"arg[{j}]" for j, name in enumerate(kind.names)})
    setup = ["k = pool[arg[n] + j]"] if re.search(r"\bk\b", exprs) else []

    def row(array, name):  # where term operand name's entry of array is
        if not lanes:
            return f"{array}[{index[name]}]"
        if f"{array}{name} = " not in " ".join(setup):
            setup.append(f"{array}{name} = {array} + {index[name]} * C")
        return f"{array}{name}[l]"

    reads = {"g": "gi[l]", "h": "hi[l]"} if lanes else {}
    for name in kind.names:
        for array, prefix in (("V", ""), ("T", "t")):
            if re.search(rf"\b{prefix}{name}\b", exprs):
                reads[prefix + name] = row(array, name)
    body = _reads([exprs], reads)
    for target, expr in template:
        if target in ("f", "t"):
            dest = ("out[l]" if target == "f" else "ti[l]") if lanes else "acc"
            body.append(f"{dest} {'+=' if kind.summed else '='} {expr}")
        else:
            body.append(f"{row('G' if target[0] == 'g' else 'H', target[1:])} += {expr}")
    if lanes:
        return setup + ["for l in range(C):"] + ["    " + line for line in body]
    return setup + body


def _listed_cases(ops, sweep, lanes):
    """An if/elif chain over the listed kinds: sweep's template, over each
    term of the list (reverse: with the tangents' template where H is given)."""
    kinds = ops.kinds
    out, first = "", True
    for kind in filter(kinds.listed, kinds.KINDS):
        body = []
        if kind.summed and lanes and sweep in ("fwd", "tan"):
            body += ["for l in range(C):", f"    {'out' if sweep == 'fwd' else 'ti'}[l] = 0.0"]
        term = _term(kind, kinds.expand(kind, None, sweep), lanes)
        if sweep == "rev":
            term += ["if H != NULL:"] + ["    " + line for line in
                                        _term(kind, kinds.expand(kind, None, "hvp"), lanes)]
        body += (["for j in range(n):"] + ["    " + line for line in term]) if kind.summed else term
        out += f"    {'if' if first else 'elif'} kind == K_{kind.name.upper()}:\n"
        out += "".join(f"        {line}\n" for line in body)
        first = False
    return out


LIST_DECL = ("    cdef Py_ssize_t j, l\n"
             "    cdef double x = 0.0, y = 0.0, z = 0.0, u = 0.0, v = 0.0, k = 0.0\n"
             "    cdef double tx = 0.0, ty = 0.0, tz = 0.0, tu = 0.0, tv = 0.0, acc = 0.0\n")


def _pointer_decl(names, arrays):
    return "".join(f"    cdef {'const ' if a in 'VT' else ''}double* {a}{n} = NULL\n"
                   for a in arrays for n in names)


def _listed(ops):
    kinds = ops.kinds
    names = "xyzuv"
    head = "int kind, const int32_t* arg, Py_ssize_t n, const double* pool"
    return (
        f"\ncdef inline void listed_forward({head}, double* out,\n"
        "                                const double* V, Py_ssize_t C) noexcept nogil:\n"
        '    """The values of a listed node over C lanes."""\n'
        + LIST_DECL + _pointer_decl(names, "V") + _listed_cases(ops, "fwd", True)
        + f"\ncdef inline double listed_forward_one({head}, const double* V) noexcept nogil:\n"
        '    """A listed node\'s value in one lane, summed in a register."""\n'
        + LIST_DECL + _listed_cases(ops, "fwd", False) + "    return acc\n"
        + f"\ncdef inline void listed_tangent({head}, double* ti,\n"
        "                                const double* V, const double* T, Py_ssize_t C) noexcept nogil:\n"
        '    """The tangents of a listed node over C lanes."""\n'
        + LIST_DECL + _pointer_decl(names, "VT") + _listed_cases(ops, "tan", True)
        + f"\ncdef inline double listed_tangent_one({head}, const double* V,\n"
        "                                       const double* T) noexcept nogil:\n"
        + LIST_DECL + _listed_cases(ops, "tan", False) + "    return acc\n"
        + f"\ncdef inline void listed_reverse({head}, const double* gi,\n"
        "                                const double* hi, const double* V, const double* T,\n"
        "                                double* G, double* H, Py_ssize_t C) noexcept nogil:\n"
        '    """Adds a listed node\'s adjoints gi (and with H, their tangents hi) to\n'
        '    its operands\', over C lanes."""\n'
        + LIST_DECL + _pointer_decl(names, "VTGH") + _listed_cases(ops, "rev", True)
        + f"\ncdef inline void listed_reverse_one({head}, double g, double h,\n"
        "                                    const double* V, const double* T, double* G,\n"
        "                                    double* H) noexcept nogil:\n"
        + LIST_DECL + _listed_cases(ops, "rev", False)
    )


# ------------------------------------------------------------ kind predicates

def _predicates(ops):
    kinds = ops.kinds

    def test(name, doc, keep, ret="bint", value=None):
        codes = [k for k in kinds.KINDS if keep(k)]
        if value is None:
            body = " or ".join(f"kind == K_{k.name.upper()}" for k in codes) or "False"
        else:
            body = "".join(f"{value(k)} if kind == K_{k.name.upper()} else (" for k in codes)
            body += "0" + ")" * len(codes)
        return (f"cdef inline {ret} {name}(int kind) noexcept nogil:\n"
                f'    """{doc}"""\n    return {body}\n\n')

    return (
        test("is_listed", "Are the kind's operands a list in args?", kinds.listed)
        + test("a_is_node", "Is field a an operand node?", lambda k: k.a == "node")
        + test("b_is_node", "Is field b an operand node?", lambda k: k.b == "node")
        + test("b_is_pool", "Is field b a constant's pool slot?", lambda k: k.b == "pool")
        + test("has_coefs", "Does the list end with the slot of its constants?",
               lambda k: k.coefs)
        + test("has_adjoints", "Does the kind pass adjoints to its operands?",
               lambda k: bool(k.rev))
        + test("list_refs", "Node references in the list per unit of its count.",
               lambda k: k.refs, "int", lambda k: k.refs)
        + test("fixed_count", "The count every node of the kind has, or 0.",
               lambda k: k.fixed, "int", lambda k: k.fixed)
        + "cdef inline Py_ssize_t operands_of(int kind, int32_t a, int32_t b, const int32_t* args,\n"
        "                                     int32_t* pair, const int32_t** refs) noexcept nogil:\n"
        '    """The operand nodes of a node: refs[0][0 .. count - 1], count returned\n'
        '    (pair holds them for a kind whose operands are its fields)."""\n'
        "    if is_listed(kind):\n"
        "        refs[0] = args + a\n"
        "        return list_refs(kind) * b\n"
        "    pair[0], pair[1] = a, b\n"
        "    refs[0] = pair if a_is_node(kind) else pair + 1\n"
        "    return a_is_node(kind) + b_is_node(kind)\n\n"
        "cdef inline Py_ssize_t pool_end(int kind, int32_t a, int32_t b,\n"
        "                                const int32_t* args) noexcept nogil:\n"
        '    """One past the last pool slot a node reads, or 0."""\n'
        "    if b_is_pool(kind):\n"
        "        return b + 1\n"
        "    if has_coefs(kind):\n"
        "        return args[a + b] + b\n"
        "    return 0\n"
    )


# ------------------------------------------------------------ operators

def _operators(ops):
    """Var's operator table (ops.OPERATORS) as C arrays, indexed by VAR_*."""
    rows = ops.OPERATORS
    flags = [sum(ops.OPERATOR_FLAGS[w] for w in how.split()) for *_, how in rows]
    code = lambda name: str(ops.CODE[name]) if name else "-1"
    return (
        "".join(f"cdef enum: VAR_{name.upper()} = {k}\n" for k, (name, *_) in enumerate(rows))
        + "".join(f"cdef enum: OPERATOR_{w.upper()} = {bit}\n"
                  for w, bit in ops.OPERATOR_FLAGS.items())
        + f"cdef int OPERATOR_OP[{len(rows)}]\n"
        + f"OPERATOR_OP[:] = [{', '.join(code(r[1]) for r in rows)}]\n"
        + f"cdef int OPERATOR_OP_C[{len(rows)}]\n"
        + f"OPERATOR_OP_C[:] = [{', '.join(code(r[2]) for r in rows)}]\n"
        + f"cdef int OPERATOR_HOW[{len(rows)}]\n"
        + f"OPERATOR_HOW[:] = [{', '.join(map(str, flags))}]\n"
    )


# ------------------------------------------------------------ the file

def _helpers(helpers, helper_args):
    out = []
    for name, (body, _) in helpers.items():
        args = helper_args.get(name, "x")
        params = ", ".join(f"double {a.strip()}" for a in args.split(","))
        out.append(f"cdef inline double {name}({params}) noexcept nogil:\n    {body}\n")
    return "\n".join(out)


def generate(ops=None):
    """The text of ops.pxi for the tables of ops (fasttape's by default)."""
    ops = ops or load_tables()
    kinds = ops.kinds
    kind_enum = "\n".join(f"cdef enum: K_{k.name.upper()} = {k.code}" for k in kinds.KINDS)
    kind_of = ", ".join(str(ops.KIND_OF[op.code].code) for op in ops.OPS)
    return (
        HEADER
        + f"from libc.math cimport {', '.join(ops.LIBM_NAMES)}\n"
        + "from libc.stdint cimport int32_t\n\n"
        + f"{kind_enum}\ncdef enum: N_KINDS = {kinds.N_KINDS}\n\ncdef enum: N_OPS = {ops.N_OPS}\n"
        + "".join(f"cdef enum: OP_{op.name.upper()} = {op.code}\n" for op in ops.OPS)
        + f"cdef unsigned char KIND_OF[{ops.N_OPS}]\nKIND_OF[:] = [{kind_of}]\n"
        + f"OP_NAMES = {tuple(op.name for op in ops.OPS)!r}\n"
        + "# What the build was made from, for the import-time check (backend.py).\n"
        + f"OP_TABLE = {ops.signature()!r}\n\n"
        + _operators(ops) + "\n"
        + _predicates(ops) + "\n"
        + _helpers(ops.HELPERS, ops.HELPER_ARGS) + "\n"
        + _helpers(kinds.HELPERS, kinds.HELPER_ARGS)
        + _elementwise(ops)
        + _listed(ops)
    )


def write(path):
    text = generate()
    old = open(path).read() if os.path.exists(path) else None
    if text != old:  # keep the timestamp, and so the build, when nothing changed
        with open(path, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    write(os.path.join(HERE, "ops.pxi"))
