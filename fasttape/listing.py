"""A tape as text: the Wengert list the way the lecture writes it.

Inputs keep the traced function's parameter names (w, x[2] ...); every
other node is l0, l1 ... in order; constants are written inline.
"""

import numpy as np

from . import ops

_KIND = [op.kind for op in ops.OPS]


def number(c):
    c = float(c)
    return str(int(c)) if c.is_integer() and abs(c) < 1e15 else repr(c)


def input_names(names, shapes):
    out = []
    for name, shape in zip(names, shapes):
        if shape == ():
            out.append(name)
        else:
            out += [f"{name}[{','.join(map(str, idx))}]" for idx in np.ndindex(*shape)]
    return out


def node_names(program, names, shapes):
    inputs = input_names(names, shapes)
    return inputs + [f"l{k}" for k in range(program.n - program.n_inputs)]


def expression(program, i, name):
    """Node i's right-hand side, e.g. 'l1 ** 2'."""
    op = ops.OPS[program.op[i]]
    a, b = int(program.a[i]), int(program.b[i])
    if op.kind in ops.NARY:
        first = [name[j] for j in program.args[a:a + b]]
        if op.kind == ops.SELECT:
            return f"where({', '.join(first)})"
        if op.kind == ops.SUM:
            return f"sum({', '.join(first)})"
        if op.kind == ops.DOT:
            second = [name[j] for j in program.args[a + b:a + 2 * b]]
        else:
            off = int(program.args[a + b])
            second = [number(c) for c in program.pool[off:off + b]]
        return f"dot([{', '.join(first)}], [{', '.join(second)}])"
    fields = {"x": name[a] if op.kind not in (ops.INPUT, ops.CONST) else "",
              "y": name[b] if op.kind == ops.BINARY else "",
              "c": number(program.pool[b]) if op.kind in (ops.CONST, ops.CONSTANT, ops.GUARD)
              else ""}
    text = op.sym.format(**fields)
    return text.replace("+ -", "- ")  # x - 3 is recorded as x + -3


def lines(program, names, shapes, start=0, stop=None):
    """The listing's lines for non-input nodes start .. stop-1 (l-numbering)."""
    name = node_names(program, names, shapes)
    n0 = program.n_inputs
    stop = program.n - n0 if stop is None else min(stop, program.n - n0)
    return [f"{name[n0 + k]} = {expression(program, n0 + k, name)}" for k in range(start, stop)]


def wengert(program, names, shapes, out_spec):
    name = node_names(program, names, shapes)
    outs = [name[j] for j in program.outputs]
    ret = outs[0] if out_spec == "s" else f"({', '.join(outs)})"
    return "\n".join(lines(program, names, shapes) + [f"return {ret}"])
