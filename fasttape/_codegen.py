"""Writes the kernel's per-op cases (``_ops.pxi``) from the op table.

Run by setup.py before Cython compiles ``_core.pyx``, so the kernel and the
table cannot drift apart. Each case is one tight loop over ``m`` contiguous
doubles: the lanes of one node, or of a run of like nodes.
"""

import importlib.util
import os
import re

HEADER = "# Generated from fasttape/ops.py by fasttape/_codegen.py. Do not edit.\n"


def _load_ops():
    # Loaded by path: importing the package itself would need the built kernel.
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ops.py")
    spec = importlib.util.spec_from_file_location("_fasttape_ops_for_build", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _helpers(ops):
    out = []
    for name, (body, _) in ops.HELPERS.items():
        args = ops.HELPER_ARGS.get(name, "x")
        params = ", ".join(f"double {a.strip()}" for a in args.split(","))
        out.append(f"cdef inline double {name}({params}) noexcept nogil:\n    {body}\n")
    return "\n".join(out)


def _loop(expr_lines, indent="        "):
    body = "\n".join(indent + "    " + line for line in expr_lines)
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


def _is_number(expr):
    try:
        float(expr)
        return True
    except ValueError:
        return False


def _cases(ops, lines_for, variants=1):
    """An if/elif chain over opcodes (Cython turns it into a C switch). With
    variants, lines_for(op, v) for v in 0 .. variants-1, chosen by `assign`
    (where they differ)."""
    parts, first = [], True
    for op in ops.OPS:
        lines = lines_for(op)
        if lines is None:
            continue
        kw = "if" if first else "elif"
        first = False
        case = f"    {kw} o == {op.code}:  # {op.name}\n"
        forms = {}  # each distinct loop body, and the variants that take it
        for v in range(variants):
            forms.setdefault(tuple(lines_for(op, v) if variants > 1 else lines), []).append(v)
        if len(forms) == 1:
            case += _loops(ops, op, lines, "        ")
        else:
            for k, (form, vs) in enumerate(forms.items()):
                test = (f"{'el' if k else ''}if assign in {tuple(vs)}:" if k < len(forms) - 1
                        else "else:")
                case += f"        {test}\n" + _loops(ops, op, list(form), "            ")
        parts.append(case)
    return "".join(parts)


def generate():
    ops = _load_ops()
    elem = {op.code for op in ops.OPS if op.kind in ops.ELEMENTWISE}
    swept = {op.code for op in ops.OPS if op.kind in (ops.UNARY, ops.CONSTANT, ops.BINARY)}
    binary = lambda op: op.kind == ops.BINARY

    def operands(op):
        return ["x = xa[l]", "f = out[l]"] + (["y = xb[l]"] if binary(op) else [])

    def fwd(op):
        if op.code not in elem:
            return None
        pre = ["x = xa[l]"] if op.kind != ops.CONST else []
        return pre + (["y = xb[l]"] if binary(op) else []) + [f"out[l] = {op.fwd}"]

    # A zero adjoint contributes nothing (zmul), so an infinite or NaN partial
    # in a branch not taken (ft.where) does not poison the gradient. Where
    # this node is an operand's first contributor in the reverse sweep
    # (`assign`: bit 1 for a, bit 2 for b), it sets the adjoint rather than
    # adding to it, so that row needs no zeroing first.
    def rev(op, assign=0):
        if op.code not in swept:
            return None
        to_a = "=" if assign & 1 else "+="
        lines = ["g = gi[l]"] + operands(op) + [f"ga[l] {to_a} zmul({op.d0}, g)"]
        to_b = "=" if assign & 2 else "+="
        return lines + ([f"gb[l] {to_b} zmul({op.d1}, g)"] if binary(op) else [])

    # A zero tangent contributes nothing either: an operand that does not
    # move (an argument outside wrt, a direction with a zero there) adds
    # nothing, however large the partial by it (d/dx x ** y at x = 0, y < 1).
    # A partial that is a number is finite: its plain product does that.
    def times(d, t):
        return f"{d} * {t}" if _is_number(d) else f"zmul({d}, {t})"

    def tan(op):
        if op.code not in elem:
            return None
        if op.code not in swept:
            return ["ti[l] = 0.0"]
        second = f" + {times(op.d1, 'tb[l]')}" if binary(op) else ""
        return operands(op) + [f"ti[l] = {times(op.d0, 'ta[l]')}{second}"]

    # Forward over reverse: the tangent (h) of the adjoint sweep.
    def hvp(op, assign=0):  # (assign: as in rev, for the adjoints and their tangents)
        if op.code not in swept:
            return None
        to_a, to_b = ("=" if assign & 1 else "+="), ("=" if assign & 2 else "+=")
        lines = ["g = gi[l]", "h = hi[l]"] + operands(op) + ["s = ta[l]"]
        if not binary(op):
            return lines + [f"ga[l] {to_a} zmul({op.d0}, g)",
                            f"ha[l] {to_a} zmul({op.d0}, h) + zmul({times(op.d00, 's')}, g)"]
        return lines + [
            "t = tb[l]", f"ga[l] {to_a} zmul({op.d0}, g)", f"gb[l] {to_b} zmul({op.d1}, g)",
            f"ha[l] {to_a} zmul({op.d0}, h) + "
            f"zmul({times(op.d00, 's')} + {times(op.d01, 't')}, g)",
            f"hb[l] {to_b} zmul({op.d1}, h) + "
            f"zmul({times(op.d01, 's')} + {times(op.d11, 't')}, g)"]

    sig = "int o, Py_ssize_t m, double c, "
    decl = ("    cdef Py_ssize_t l\n"
            "    cdef double x = 0.0, y = 0.0, f = 0.0, g = 0.0, h = 0.0, s = 0.0, t = 0.0\n")
    kinds = "\n".join(f"cdef enum: K_{k.upper()} = {i}" for i, k in enumerate(ops.KINDS))
    kind_of = ", ".join(str(ops.KINDS.index(op.kind)) for op in ops.OPS)
    table = ", ".join(f"({op.code}, {op.name!r}, {op.kind!r})" for op in ops.OPS)
    vals = "const double* out, const double* xa, const double* xb"
    return (
        HEADER
        + f"from libc.math cimport {', '.join(ops.LIBM_NAMES)}\n\n"
        + f"{kinds}\n\ncdef enum: N_OPS = {ops.N_OPS}\n"
        + "".join(f"cdef enum: OP_{op.name.upper()} = {op.code}\n" for op in ops.OPS)
        + f"cdef unsigned char KIND_OF[{ops.N_OPS}]\nKIND_OF[:] = [{kind_of}]\n"
        + f"OP_TABLE = ({table},)\n\n"
        + _helpers(ops)
        + "\ncdef inline double zmul(double d, double g) noexcept nogil:\n"
        + "    return d * g if g != 0.0 else 0.0\n"
        + f"\ncdef inline void forward_elem({sig}double* out, const double* xa, const double* xb) noexcept nogil:\n"
        + decl + _cases(ops, fwd)
        + f"\ncdef inline void reverse_elem({sig}{vals},\n"
        + "                               const double* gi, double* ga, double* gb,\n"
        + "                               int assign) noexcept nogil:\n"
        + decl + _cases(ops, rev, variants=4)
        + f"\ncdef inline void tangent_elem({sig}{vals},\n"
        + "                               const double* ta, const double* tb, double* ti) noexcept nogil:\n"
        + decl + _cases(ops, tan)
        + f"\ncdef inline void hvp_elem({sig}{vals}, const double* ta, const double* tb,\n"
        + "                           const double* gi, double* ga, double* gb,\n"
        + "                           const double* hi, double* ha, double* hb,\n"
        + "                           int assign) noexcept nogil:\n"
        + decl + _cases(ops, hvp, variants=4)
    )


def write(path):
    text = generate()
    old = open(path).read() if os.path.exists(path) else None
    if text != old:  # keep the timestamp, and so the build, when nothing changed
        with open(path, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    write(os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ops.pxi"))
