"""Writes the kernel's per-op cases (``_ops.pxi``) from the op table.

Run by setup.py before Cython compiles ``_core.pyx``, so the kernel and the
table cannot drift apart. Each case is one tight loop over ``m`` contiguous
doubles: the lanes of one node, or of a run of like nodes.
"""

import importlib.util
import os

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


def _loop(expr_lines):
    body = "\n".join("            " + line for line in expr_lines)
    return f"        for l in range(m):\n{body}\n"


def _cases(ops, lines_for):
    """An if/elif chain over opcodes (Cython turns it into a C switch)."""
    parts, first = [], True
    for op in ops.OPS:
        lines = lines_for(op)
        if lines is None:
            continue
        kw = "if" if first else "elif"
        first = False
        parts.append(f"    {kw} o == {op.code}:  # {op.name}\n" + _loop(lines))
    return "".join(parts)


def _elementwise(ops):
    return [op for op in ops.OPS if op.kind in (ops.CONST, ops.UNARY, ops.CONSTANT, ops.BINARY)]


def generate():
    ops = _load_ops()
    elem = {op.code for op in _elementwise(ops)}
    binary = lambda op: op.kind == ops.BINARY

    def fwd(op):
        if op.code not in elem:
            return None
        pre = ["x = xa[l]"] if op.kind != ops.CONST else []
        if binary(op):
            pre.append("y = xb[l]")
        return pre + [f"out[l] = {op.fwd}"]

    def rev(op):
        if op.code not in elem or op.kind == ops.CONST:
            return None
        lines = ["g = gi[l]", "x = xa[l]", "f = out[l]"]
        if binary(op):
            lines += ["y = xb[l]", f"ga[l] += ({op.d0}) * g", f"gb[l] += ({op.d1}) * g"]
        else:
            lines.append(f"ga[l] += ({op.d0}) * g")
        return lines

    def tan(op):
        if op.code not in elem:
            return None
        if op.kind == ops.CONST:
            return ["ti[l] = 0.0"]
        lines = ["x = xa[l]", "f = out[l]"]
        if binary(op):
            lines += ["y = xb[l]", f"ti[l] = ({op.d0}) * ta[l] + ({op.d1}) * tb[l]"]
        else:
            lines.append(f"ti[l] = ({op.d0}) * ta[l]")
        return lines

    sig = "int o, Py_ssize_t m, double c, "
    decl = "    cdef Py_ssize_t l\n    cdef double x = 0.0, y = 0.0, f = 0.0, g = 0.0\n"
    kinds = "\n".join(f"cdef enum: K_{k.upper()} = {i}" for i, k in enumerate(ops.KINDS))
    kind_of = ", ".join(str(ops.KINDS.index(op.kind)) for op in ops.OPS)
    table = ", ".join(f"({op.code}, {op.name!r}, {op.kind!r})" for op in ops.OPS)
    return (
        HEADER
        + f"from libc.math cimport {', '.join(ops.LIBM_NAMES)}\n\n"
        + f"{kinds}\n\ncdef enum: N_OPS = {ops.N_OPS}\n"
        + f"cdef unsigned char KIND_OF[{ops.N_OPS}]\nKIND_OF[:] = [{kind_of}]\n"
        + f"OP_TABLE = ({table},)\n\n"
        + _helpers(ops)
        + f"\ncdef inline void forward_elem({sig}double* out, const double* xa, const double* xb) noexcept nogil:\n"
        + decl + _cases(ops, fwd)
        + f"\ncdef inline void reverse_elem({sig}const double* out, const double* xa, const double* xb,\n"
        + "                               const double* gi, double* ga, double* gb) noexcept nogil:\n"
        + decl + _cases(ops, rev)
        + f"\ncdef inline void tangent_elem({sig}const double* out, const double* xa, const double* xb,\n"
        + "                               const double* ta, const double* tb, double* ti) noexcept nogil:\n"
        + decl + _cases(ops, tan)
    )


def write(path):
    text = generate()
    old = open(path).read() if os.path.exists(path) else None
    if text != old:  # keep the timestamp, and so the build, when nothing changed
        with open(path, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    write(os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ops.pxi"))
