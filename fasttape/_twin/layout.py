"""The twin's Layout: a call's split of the inputs (the kernel's layout.pxi)."""

import numpy as np

from ..validate import node_indices


class Layout:
    """The kernel's Layout: a call's split of the inputs, kept. Here it only
    keeps the nodes and argument shapes; value_and_grad runs run()."""

    def __init__(self, program, shared_nodes, batch_nodes, wanted=None, args=None):
        n_in = program.n_inputs
        self.program = program
        self.sn = node_indices("shared_nodes", shared_nodes, n_in).copy()
        self.bn = node_indices("batch_nodes", batch_nodes, n_in).copy()
        self.wanted = None if wanted is None else node_indices("wanted", wanted, n_in)
        self.ns, self.nb = len(self.sn), len(self.bn)
        nodes = np.concatenate([self.sn, self.bn]).astype(np.int64)
        if len(nodes) != n_in or not np.array_equal(np.sort(nodes), np.arange(n_in)):
            raise ValueError(f"expected each of the {n_in} input nodes once")
        if self.wanted is not None and len(self.wanted) and \
                (self.wanted.min() < 0 or self.wanted.max() >= n_in):
            raise ValueError(f"wanted holds an index outside the {n_in} input nodes")
        self.args = None
        if args is not None and program.n_outputs >= 1:
            self.args = [(tuple(shape), bool(batched), bool(w)) for shape, batched, w in args]

    def value_and_grad(self, args):
        """Same contract as the kernel's Layout.value_and_grad."""
        if self.args is None or len(args) != len(self.args):
            return None
        B = None
        args = list(args)
        for k, (arg, (shape, batched, _)) in enumerate(zip(args, self.args)):
            if type(arg) is float and not batched and shape == ():
                args[k] = np.array(arg)
                continue
            if type(arg) is not np.ndarray or arg.dtype != np.float64 or \
                    not arg.flags.c_contiguous:
                return None
            if arg.shape[1 if batched else 0:] != shape or arg.ndim != len(shape) + batched:
                return None
            if batched:
                if B is not None and arg.shape[0] != B:
                    return None
                B = arg.shape[0]
        one = B is None  # one sample: every argument shared
        if one and len(self.bn):
            return None
        B = 1 if one else B
        shared = [a.reshape(-1) for a, spec in zip(args, self.args) if not spec[1]]
        batch = [a.reshape(B, -1) for a, spec in zip(args, self.args) if spec[1]]
        out, gs, gb, _ = self.program.run(
            np.concatenate(shared) if shared else np.zeros(0), self.sn,
            np.concatenate(batch, axis=1) if batch else np.zeros((B, 0)), self.bn, B,
            seed=np.ones((B, self.program.n_outputs)) *
            (np.arange(self.program.n_outputs) == 0), wanted=self.wanted)
        grads, s, b = [], 0, 0
        for shape, batched, wanted in self.args:
            size = int(np.prod(shape))
            if wanted:
                if batched:
                    grads.append(gb[:, b:b + size].reshape((B,) + shape))
                else:
                    g = gs[s:s + size]
                    grads.append(float(g[0]) if shape == () else g.reshape(shape))
            s, b = (s, b + size) if batched else (s + size, b)
        return (float(out[0, 0]) if one else out[:, 0]), tuple(grads)


# ------------------------------------------------------------------ Var
