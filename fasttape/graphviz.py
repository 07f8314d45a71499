"""A tape as a Graphviz graph: ``tape.to_dot()``.

One node per tape node, labelled as str(tape) writes it (inputs by their
parameter names, the rest ``l3 = l1 ** 2``), one edge per operand reference
(so ``l0 * l0`` has two edges from l0), and outputs drawn with a double
border and tagged ``out k``; guards are hexagons. Render with
``dot -Tsvg tape.dot``.
"""

from . import kinds, listing, ops


def operands(program, i):
    """The node indices node i reads, in order, with repeats."""
    return kinds.operands(ops.KIND_OF[program.op[i]], int(program.a[i]), int(program.b[i]),
                          program.args)


def _quote(text):
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + text.replace("\n", "\\n").replace("\r", "\\r") + '"'


def to_dot(program, names, shapes, out_spec):
    """Graphviz DOT text of the tape's graph (out_spec is accepted for
    symmetry with the listing; outputs are marked by position)."""
    name = listing.node_names(program, names, shapes)
    outs = {}
    for k, j in enumerate(program.outputs.tolist()):
        outs.setdefault(j, []).append(f"out {k}")
    lines = ["digraph tape {", '  node [fontname="monospace"];']
    for i in range(program.n):
        if i < program.n_inputs:
            attrs = f"label={_quote(name[i])}, shape=box, style=rounded"
        else:  # a guard checks a branch rather than computing: drawn apart
            label = f"{name[i]} = {listing.expression(program, i, name)}"
            shape = "hexagon" if ops.OPS[program.op[i]].kind == ops.GUARD else "ellipse"
            attrs = f"label={_quote(label)}, shape={shape}"
        if i in outs:
            attrs += f", peripheries=2, xlabel={_quote(', '.join(outs[i]))}"
        lines.append(f"  n{i} [{attrs}];")
    for i in range(program.n_inputs, program.n):
        lines += [f"  n{j} -> n{i};" for j in operands(program, i)]
    lines.append("}")
    return "\n".join(lines) + "\n"
