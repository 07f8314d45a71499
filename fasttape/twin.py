"""The pure-Python twin of the kernel: the same sweeps over the same arrays.

Written plainly, node by node, with NumPy over the lanes; every formula is
the op and kind tables' own text. It is the reference the kernel is tested
against, and what runs when the kernel is not built. Its parts are in
``fasttape/_twin/``, file for file beside the kernel's in ``fasttape/_kernel/``;
this module holds its Program, as ``fasttape/_core.pyx`` holds the kernel's.
"""

import numpy as np

from . import ops
from ._twin.layout import Layout
from ._twin.recorder import Recorder
from ._twin.sweeps import (_CHECK_FINITE, compile_sweeps, forward_node, mark, reverse_node,
                           set_check_finite, tangent_node)
from ._twin.var import VarBase, bind_var_classes, handles_of, new_var
from .errors import GuardError, NonFiniteError
from .validate import node_indices, validate

__all__ = ["Program", "Recorder", "Layout", "VarBase", "bind_var_classes", "handles_of",
           "new_var", "set_check_finite", "compile_sweeps", "forward_node", "reverse_node",
           "tangent_node", "mark", "set_num_threads", "get_num_threads"]

_NUM_THREADS = [1]


def set_num_threads(n):
    """Accepted and remembered, but the twin sweeps every call on the
    calling thread: it is the reference, written for clarity."""
    _NUM_THREADS[0] = n


def get_num_threads():
    return _NUM_THREADS[0]


class Program:
    """A validated, immutable tape and its sweeps (the kernel's Program)."""

    def __init__(self, op, a, b, pool, args, n_inputs, outputs):
        (self.op, self.a, self.b, self.pool, self.args, self.n_inputs,
         self.outputs) = validate(op, a, b, pool, args, n_inputs, outputs)
        self.n, self.n_outputs = len(self.op), len(self.outputs)
        self.guards = np.flatnonzero(self.op == ops.CODE["guard"]).astype(np.int32)

    def run(self, shared, shared_nodes, batch, batch_nodes, B, seed=None,
            shared_tangent=None, batch_tangent=None, hvp=False, wanted=None, layout=None):
        """Same contract as the kernel's Program.run (every adjoint is set;
        a layout's node lists are the ones given)."""
        if layout is not None and layout.program is not self:
            raise ValueError("the layout is another program's")
        shared = np.asarray(shared, dtype=float)
        batch = np.asarray(batch, dtype=float)
        sn = node_indices("shared_nodes", shared_nodes, self.n_inputs).astype(np.int64)
        bn = node_indices("batch_nodes", batch_nodes, self.n_inputs).astype(np.int64)
        self._check_inputs(shared, sn, batch, bn, B)
        if hvp and (seed is None or shared_tangent is None):
            raise ValueError("hvp needs a seed and tangents")
        if seed is not None:
            seed = self._lanes(seed, B, self.n_outputs, "seed")
        T = None
        if shared_tangent is not None:
            st = np.asarray(shared_tangent, dtype=float)
            if st.shape != (len(sn),):
                raise ValueError(f"shared_tangent has shape {st.shape}, expected ({len(sn)},)")
            T = np.zeros((self.n, B))
            T[sn] = st[:, None]
            T[bn] = self._lanes(batch_tangent, B, len(bn), "batch_tangent").T
        V = np.zeros((self.n, B))
        V[sn] = shared[:, None]
        V[bn] = batch.T
        with np.errstate(all="ignore"):
            for i in range(self.n_inputs, self.n):
                forward_node(self, i, V)
        self._check(V)
        out = V[self.outputs].T.copy()
        gs = gb = tout = hs = hb = None
        with np.errstate(all="ignore"):
            if T is not None:
                for i in range(self.n_inputs, self.n):
                    tangent_node(self, i, V, T)
                tout = T[self.outputs].T.copy()
            if seed is not None:
                G = np.zeros((self.n, B))
                np.add.at(G, self.outputs, seed.T)
                H = np.zeros((self.n, B)) if hvp else None
                for i in range(self.n - 1, self.n_inputs - 1, -1):
                    reverse_node(self, i, V, G, T if hvp else None, H)
                gs, gb = G[sn].sum(axis=1), G[bn].T.copy()
                if hvp:
                    hs, hb = H[sn].sum(axis=1), H[bn].T.copy()
        result = (out, gs, gb, tout)
        return result + (hs, hb) if hvp else result

    plan_nbytes = 0  # (the kernel's runs and sweep plans: the twin keeps none)

    def layout(self, shared_nodes, batch_nodes, wanted=None, args=None):
        """Same contract as the kernel's Program.layout."""
        return Layout(self, shared_nodes, batch_nodes, wanted, args)

    def _check(self, V):
        """Guards that missed; with check_finite, the first non-finite node."""
        if _CHECK_FINITE[0]:
            bad = np.flatnonzero(~np.isfinite(V).all(axis=1))
            if len(bad):
                raise NonFiniteError(f"node {bad[0]} is not finite", node=int(bad[0]))
        if len(self.guards):
            missed = V[self.guards] != 0.0  # (guards, lanes)
            if missed.any():
                lanes = np.flatnonzero(missed.any(axis=0))
                first = self.guards[np.argmax(missed[:, lanes[0]])]
                raise GuardError(f"guard at node {first} took the other branch",
                                 node=int(first), lanes=lanes, lanes_of=V.shape[1])

    def call1(self, args, grad):
        """Same contract as the kernel's Program.call1."""
        if len(args) != self.n_inputs or (grad and self.n_outputs < 1):
            return None
        if any(type(x) not in (float, int) for x in args):
            return None
        out, gs = self.call_flat(np.array(args, dtype=float), grad)
        return out.tolist(), (gs.tolist() if grad else None)

    def call_flat(self, x, grad):
        """Same contract as the kernel's Program.call_flat."""
        x = np.asarray(x, dtype=float)
        if x.shape != (self.n_inputs,):
            raise ValueError(f"expected {self.n_inputs} input values, got {x.shape}")
        if grad and self.n_outputs < 1:
            raise ValueError("a gradient needs an output")
        seed = np.eye(1, self.n_outputs) if grad else None
        out, gs, _, _ = self.run(x, np.arange(self.n_inputs), np.zeros((1, 0)),
                                 np.zeros(0, np.int64), 1, seed=seed)
        return out[0], gs

    def _check_inputs(self, shared, sn, batch, bn, B):
        if shared.shape != sn.shape:
            raise ValueError(f"{shared.shape} shared values for {sn.shape} shared inputs")
        if batch.shape != (B, len(bn)):
            raise ValueError(f"batch has shape {batch.shape}, expected {(B, len(bn))}")
        nodes = np.concatenate([sn, bn])
        if sorted(nodes.tolist()) != list(range(self.n_inputs)):
            raise ValueError(f"expected each of the {self.n_inputs} input nodes once")

    @staticmethod
    def _lanes(arr, B, width, name):
        arr = np.asarray(arr, dtype=float)
        if arr.shape != (B, width):
            raise ValueError(f"{name} has shape {arr.shape}, expected {(B, width)}")
        return arr
