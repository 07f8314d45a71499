"""A tape as text: the Wengert list the way the lecture writes it.

Inputs keep the traced function's parameter names (w, x[2] ...); every
other node is l0, l1 ... in order; constants are written inline.
"""

import numpy as np

from . import kinds, ops


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


class NodeNames:
    """name[i] of node i: its input name, or l0, l1 ... made on demand, so a
    tape of ten million nodes costs no ten million strings."""

    def __init__(self, program, names, shapes):
        self.inputs = input_names(names, shapes)
        self.n = program.n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        i = int(i)
        if not 0 <= i < self.n:
            raise IndexError(i)
        k = len(self.inputs)
        return self.inputs[i] if i < k else f"l{i - k}"

    def __iter__(self):
        return (self[i] for i in range(self.n))


def node_names(program, names, shapes):
    return NodeNames(program, names, shapes)


def expression(program, i, name):
    """Node i's right-hand side, e.g. 'l1 ** 2'."""
    op, kind = ops.OPS[program.op[i]], ops.KIND_OF[program.op[i]]
    terms = kinds.terms(kind, int(program.a[i]), int(program.b[i]), program.args, program.pool)
    fields = {key: [] for key in "xyzcuvk"}
    for nodes, consts in terms:  # (a summed kind's fields list its terms')
        for key, node in nodes.items():
            fields[key].append(name[node])
        for key, c in consts.items():
            fields[key].append(number(c))
    fields = {key: ", ".join(texts) for key, texts in fields.items()}
    text = (kind.sym or op.sym).format(**fields)
    return text.replace("+ -", "- ")  # x - 3 is recorded as x + -3


def lines(program, names, shapes, start=0, stop=None):
    """The listing's lines l{start} .. l{stop-1}."""
    name = node_names(program, names, shapes)
    n0 = program.n_inputs
    stop = program.n - n0 if stop is None else min(stop, program.n - n0)
    return [f"{name[n0 + k]} = {expression(program, n0 + k, name)}" for k in range(start, stop)]


HEAD, TAIL = 40, 10  # lines shown of a listing longer than SUMMARIZE_AFTER
SUMMARIZE_AFTER = 100_000


def wengert(program, names, shapes, out_spec):
    """The whole listing; a very long one shows its head and tail, as NumPy
    summarizes a large array (listing.lines gives any part in full)."""
    name = node_names(program, names, shapes)
    outs = [name[j] for j in program.outputs]
    ret = outs[0] if out_spec == "s" else f"({', '.join(outs)})"
    count = program.n - program.n_inputs
    if count <= SUMMARIZE_AFTER:
        body = lines(program, names, shapes)
    else:
        body = (lines(program, names, shapes, 0, HEAD)
                + [f"... {count - HEAD - TAIL} more lines ..."]
                + lines(program, names, shapes, count - TAIL, count))
    return "\n".join(body + [f"return {ret}"])
