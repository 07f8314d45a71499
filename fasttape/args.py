"""Checking and flattening the arguments of a replay, and its outputs.

A tape's inputs are the flattened elements of its arguments, in order. A
call splits them into shared inputs (one value for every lane) and batched
ones (a row per lane), as in_axes says; outputs are flattened the same way
and rebuilt into the structure the traced function returned.
"""

import numpy as np

from .errors import ArgumentError, ArgumentTypeError


def label(names, k):
    return f"argument {names[k]!r} (position {k})"


def as_float(value, what):
    """A float64 array of a number or array argument, or a named TypeError."""
    from .var import Var

    if isinstance(value, Var) or (isinstance(value, np.ndarray) and value.dtype == object):
        raise ArgumentTypeError(f"{what} holds Vars; a replay takes numbers")
    try:
        arr = np.asarray(value)
    except Exception as exc:
        raise ArgumentTypeError(f"{what}: cannot read {type(value).__name__} as numbers") from exc
    if arr.dtype.kind not in "biuf":
        raise ArgumentTypeError(f"{what} must be real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def canonical_axes(in_axes):
    """in_axes as None, 0 or a tuple of None / 0 (a list becomes a tuple), or
    a named error; the length is checked per call, by normalize_axes."""
    if isinstance(in_axes, list):
        in_axes = tuple(in_axes)
    entries = in_axes if isinstance(in_axes, tuple) else (in_axes,)
    for ax in entries:
        if ax is not None and not (isinstance(ax, (int, np.integer)) and not isinstance(
                ax, (bool, np.bool_)) and ax == 0):
            raise ArgumentError(f"in_axes entries must be 0 (batched) or None (shared), "
                                f"got {ax!r}")
    if isinstance(in_axes, tuple):
        return tuple(None if ax is None else 0 for ax in in_axes)
    return None if in_axes is None else 0


def exact_axes(in_axes):
    """in_axes is already canonical (so a cached entry may serve it): None, or
    exactly the int 0, or a tuple of them. False == 0, but is not accepted."""
    if in_axes is None or (type(in_axes) is int and in_axes == 0):
        return True
    return type(in_axes) is tuple and all(
        ax is None or (type(ax) is int and ax == 0) for ax in in_axes)


def normalize_axes(in_axes, n):
    """in_axes as a tuple of 0 / None, one per argument."""
    axes = canonical_axes(in_axes)
    if not isinstance(axes, tuple):
        return (axes,) * n
    if len(axes) != n:
        raise ArgumentError(f"in_axes has {len(axes)} entries for {n} arguments")
    return axes


def canonical_wrt(wrt, word="wrt"):
    """wrt as an int or a tuple of ints (a list becomes a tuple), or a named
    error; whether they name arguments is checked per call."""
    single = not isinstance(wrt, (tuple, list))
    idx = (wrt,) if single else tuple(wrt)
    if not idx:
        raise ArgumentError(f"{word}=() names no argument: give an argument's index, "
                            f"or a tuple of them")
    for w in idx:
        if not isinstance(w, (int, np.integer)) or isinstance(w, (bool, np.bool_)):
            raise ArgumentError(f"{word} must be an int or a tuple of ints, got {wrt!r}")
    idx = tuple(int(w) for w in idx)
    return idx[0] if single else idx


def exact_wrt(wrt):
    """wrt is already canonical: exactly an int, or a tuple of exact ints."""
    if type(wrt) is int:
        return True
    return type(wrt) is tuple and all(type(w) is int for w in wrt) and len(wrt) > 0


def normalize_wrt(wrt, n, word="wrt"):
    """(indices, single): wrt as a tuple of argument indices."""
    if type(wrt) is int and 0 <= wrt < n:  # the common case, at once
        return (wrt,), True
    wrt = canonical_wrt(wrt, word)
    single = type(wrt) is int
    idx = (wrt,) if single else wrt
    for w in idx:
        if not -n <= w < n:
            raise ArgumentError(f"{word}={wrt!r} does not name one of the {n} arguments")
    return tuple(w % n for w in idx), single


def check(args, names, shapes, axes, fn_name):
    """The arguments of a call as float64 arrays of the traced shapes (with a
    leading batch axis where axes say 0), or an error naming the argument and
    the shapes expected and given."""
    n = len(shapes)
    if len(args) != n:
        raise ArgumentTypeError(f"{fn_name}() takes {n} argument{'s' * (n != 1)} "
                                f"({', '.join(names)}), got {len(args)}")
    arrays, B = [], None
    for k, (arg, shape, ax) in enumerate(zip(args, shapes, axes)):
        arr = as_float(arg, label(names, k))
        if ax is None and arr.shape != shape:
            raise ArgumentError(f"{label(names, k)}: expected shape {shape}, got {arr.shape}")
        if ax == 0:
            if arr.ndim == 0 or arr.shape[1:] != shape:
                raise ArgumentError(f"{label(names, k)} is batched: expected shape "
                                    f"(B,) + {shape}, got {arr.shape}")
            if B is not None and arr.shape[0] != B:
                raise ArgumentError(f"{label(names, k)} has batch size {arr.shape[0]}, "
                                    f"but an earlier argument has {B}")
            B = arr.shape[0]
        arrays.append(arr)
    return arrays


# ------------------------------------------------------------------ outputs
# A spec is "s" (a scalar), ("a", shape), ("t", [specs]) or ("l", [specs]).

def flatten_output(out, leaf):
    """(flat leaves, spec) of a traced function's output; leaf(x) records a
    Var or a number as an output node."""
    from .var import Var

    if isinstance(out, Var) or isinstance(out, (int, float, np.floating, np.integer)):
        return [leaf(out)], "s"
    if isinstance(out, np.ndarray):
        if out.ndim == 0:  # (np.tensordot's scalar, say) counts as a scalar
            return flatten_output(out.item(), leaf)
        return [leaf(x) for x in out.ravel()], ("a", out.shape)
    if isinstance(out, (tuple, list)):
        flat, specs = [], []
        for item in out:
            f, s = flatten_output(item, leaf)
            flat += f
            specs.append(s)
        return flat, ("t" if isinstance(out, tuple) else "l", specs)
    raise ArgumentTypeError(f"a traced function must return Vars, numbers, or arrays, "
                            f"tuples or lists of them; got {type(out).__name__}")


def spec_size(spec):
    if spec == "s":
        return 1
    if spec[0] == "a":
        return int(np.prod(spec[1]))
    return sum(spec_size(s) for s in spec[1])


def unflatten(flat, spec, batched):
    """Rebuild the output structure from flat values (B, n) (or (n,) when not
    batched); leaves get a leading batch axis when batched."""
    return _unflatten(flat, spec, batched, 0)[0]


def _unflatten(flat, spec, batched, pos):
    size = spec_size(spec)
    if spec == "s":
        return (flat[:, pos].copy() if batched else float(flat[pos])), pos + 1
    if spec[0] == "a":
        block = flat[:, pos:pos + size] if batched else flat[pos:pos + size]
        shape = ((flat.shape[0],) if batched else ()) + tuple(spec[1])
        return block.reshape(shape).copy(), pos + size
    items = []
    for s in spec[1]:
        item, pos = _unflatten(flat, s, batched, pos)
        items.append(item)
    return (tuple(items) if spec[0] == "t" else items), pos


def flatten_like(value, spec, B, what):
    """Flatten a cotangent shaped like the output into (B, n_out)."""
    if spec == "s" or spec[0] == "a":
        shape = () if spec == "s" else tuple(spec[1])
        want = shape if B is None else (B,) + shape
        arr = as_float(value, what)
        if arr.shape != want:
            raise ArgumentError(f"{what}: expected shape {want}, got {arr.shape}")
        return arr.reshape(1 if B is None else B, int(np.prod(shape)))
    if not isinstance(value, (tuple, list)) or len(value) != len(spec[1]):
        raise ArgumentError(f"{what} must match the output's structure "
                            f"({len(spec[1])} items)")
    parts = [flatten_like(v, s, B, what) for v, s in zip(value, spec[1])]
    return np.concatenate(parts, axis=1)


_NO_BATCH = np.zeros((1, 0))
_NO_BATCH.flags.writeable = False


class Plan:
    """How one in_axes splits a tape's arguments into shared and batched
    inputs, worked out once per in_axes; split() is the per-call fast path."""

    def __init__(self, shapes, axes):
        self.shapes, self.axes = shapes, axes
        self.batched = any(ax == 0 for ax in axes)
        self.one_array = len(shapes) == 1 and not self.batched and shapes[0] != ()
        self.sizes = sizes = [int(np.prod(s)) for s in shapes]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.slots, ends = [], {None: 0, 0: 0}
        shared, batch = [], []
        self.nodes, self._wanted = [], {}  # each argument's input nodes
        self.layouts = {}  # the program's Layouts of this split, by wanted arguments
        for k, ax in enumerate(axes):
            nodes = np.arange(offsets[k], offsets[k + 1], dtype=np.int32)
            self.nodes.append(nodes)
            (shared if ax is None else batch).append(nodes)
            self.slots.append((ends[ax], ends[ax] + sizes[k]))
            ends[ax] += sizes[k]
        self.shared_nodes = np.concatenate(shared) if shared else np.zeros(0, np.int32)
        self.batch_nodes = np.concatenate(batch) if batch else np.zeros(0, np.int32)

    def split(self, args):
        """(shared values, batch rows, B) when every argument is already a
        float64 array (or float) of the traced shape; None sends the call down
        the checked general path, which also words the errors."""
        if len(args) != len(self.shapes):
            return None
        if self.one_array:  # one unbatched array: the commonest call, at once
            arg = args[0]
            if type(arg) is np.ndarray and arg.dtype == np.float64 and arg.shape == self.shapes[0]:
                return arg.reshape(-1), _NO_BATCH, 1
            return None
        shared, batch, B = [], [], None
        for arg, shape, size, ax in zip(args, self.shapes, self.sizes, self.axes):
            if type(arg) is not np.ndarray:
                if ax is None and shape == () and type(arg) is float:
                    shared.append(np.array((arg,)))
                    continue
                return None
            if arg.dtype != np.float64:
                return None
            if ax is None:
                if arg.shape != shape:
                    return None
                shared.append(arg.reshape(-1))
            else:
                if arg.shape[1:] != shape or arg.ndim != len(shape) + 1:
                    return None
                if B is None:
                    B = arg.shape[0]
                elif arg.shape[0] != B:
                    return None
                batch.append(arg.reshape(B, size))
        B = 1 if B is None else B
        shared = shared[0] if len(shared) == 1 else (np.concatenate(shared) if shared
                                                      else np.zeros(0))
        batch = batch[0] if len(batch) == 1 else (np.concatenate(batch, axis=1) if batch
                                                   else np.zeros((B, 0)))
        return shared, batch, B

    def wanted(self, idx):
        """The input nodes of the arguments idx (kept per idx)."""
        nodes = self._wanted.get(idx)
        if nodes is None:
            nodes = self._wanted[idx] = np.concatenate([self.nodes[k] for k in idx])
        return nodes

    def part(self, k, gs, gb, B):
        """Argument k's slice of shared (summed) or batched adjoints."""
        if self.one_array:
            return gs.reshape(self.shapes[0])
        lo, hi = self.slots[k]
        shape = self.shapes[k]
        if self.axes[k] is None:
            return float(gs[lo]) if shape == () else gs[lo:hi].reshape(shape)
        return gb[:, lo:hi].reshape((B,) + shape)
