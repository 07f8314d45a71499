"""Checks a tape's arrays once, before any unchecked sweep may run over them.

Both backends call this when a program is built, so a hand-made, loaded or
corrupted tape raises TapeError here instead of reading out of bounds later.
"""

import numbers

import numpy as np

from . import kinds, ops
from .errors import TapeError

MAX_NODES = 2**31 - 2  # operand indices are int32


def _array(name, value, dtype):
    """A read-only contiguous copy in dtype; integers must fit it exactly."""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # a ragged list, say
        raise TapeError(f"tape array {name!r} is not an array: {exc}") from exc
    if arr.ndim != 1:
        raise TapeError(f"tape array {name!r} must be 1-D, got shape {arr.shape}")
    want = np.dtype(dtype)
    kinds = "iu" if want.kind in "iu" else "fiu"
    if arr.size and arr.dtype.kind not in kinds:
        raise TapeError(f"tape array {name!r} must have dtype {want}, got {arr.dtype}")
    if want.kind in "iu" and arr.size:
        info = np.iinfo(want)
        if arr.min() < info.min or arr.max() > info.max:
            raise TapeError(f"tape array {name!r} has values outside the range of {want}")
    arr = np.ascontiguousarray(arr, dtype=want).copy()
    arr.flags.writeable = False
    return arr


def _ragged_positions(starts, counts):
    """Flat positions starts[i] + 0..counts[i]-1, and the owner of each."""
    total = int(counts.sum())
    owner = np.repeat(np.arange(len(starts)), counts)
    offset = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return starts[owner] + offset, owner


def _check_listed(kind, idx, a, b, args, n_pool):
    """The operand lists of the nodes idx, all of kind (a listed one)."""
    if len(idx) == 0:
        return
    name = kind.name if kind.name != kinds.SELECT else "where"
    start, count = a[idx].astype(np.int64), b[idx].astype(np.int64)
    if kind.fixed and (count != kind.fixed).any():
        raise TapeError(f"a {name} node must have exactly {kind.fixed} operands")
    refs = kind.refs * count
    need = refs + (1 if kind.coefs else 0)
    if (start < 0).any() or (count < 0).any() or (start + need > len(args)).any():
        raise TapeError(f"{name} node operand list out of range of the args array")
    if need.sum() > len(args):  # lists may not overlap: keeps this check linear in size
        raise TapeError(f"{name} nodes list more operands than the args array holds")
    pos, owner = _ragged_positions(start, refs)
    ref = args[pos]
    if ((ref < 0) | (ref >= idx[owner])).any():
        raise TapeError(f"{name} node has an operand that does not point backwards")
    if kind.coefs:
        off = args[start + count].astype(np.int64)
        if ((off < 0) | (off + count > n_pool)).any():
            raise TapeError(f"{name} node constants out of range of the constant pool")


def validate(op, a, b, pool, args, n_inputs, outputs):
    """Return normalized read-only copies of the arrays, or raise TapeError."""
    op = _array("op", op, np.uint8)
    a, b = _array("a", a, np.int32), _array("b", b, np.int32)
    pool, args = _array("pool", pool, np.float64), _array("args", args, np.int32)
    outputs = _array("outputs", outputs, np.int32)
    n = len(op)
    if len(a) != n or len(b) != n:
        raise TapeError(f"tape arrays disagree in length: op {n}, a {len(a)}, b {len(b)}")
    if n > MAX_NODES:
        raise TapeError(f"a tape holds at most {MAX_NODES} nodes, got {n}")
    if not isinstance(n_inputs, numbers.Integral) or isinstance(n_inputs, bool):
        raise TapeError(f"n_inputs must be an integer, got {n_inputs!r}")
    if not 0 <= n_inputs <= n:
        raise TapeError(f"n_inputs {n_inputs} out of range for {n} nodes")
    n_inputs = int(n_inputs)
    if (op >= ops.N_OPS).any():
        bad = int(np.argmax(op >= ops.N_OPS))
        raise TapeError(f"node {bad} has opcode {op[bad]}, but there are {ops.N_OPS} ops")
    kind = ops.KIND_CODE[op]
    is_input = kind == kinds.BY_NAME[kinds.INPUT].code
    if not is_input[:n_inputs].all() or is_input[n_inputs:].any():
        raise TapeError(f"inputs must be exactly the first {n_inputs} nodes")
    idx = np.arange(n, dtype=np.int64)
    if ((a < 0) | (a >= idx))[kinds.A_NODE[kind]].any():
        raise TapeError("a node's first operand does not point backwards")
    if ((b < 0) | (b >= idx))[kinds.B_NODE[kind]].any():
        raise TapeError("a node's second operand does not point backwards")
    if ((b < 0) | (b >= len(pool)))[kinds.B_POOL[kind]].any():
        raise TapeError("a node's constant is out of range of the constant pool")
    for k in filter(kinds.listed, kinds.KINDS):
        _check_listed(k, np.flatnonzero(kind == k.code), a, b, args, len(pool))
    if ((outputs < 0) | (outputs >= n)).any():
        raise TapeError(f"an output index is out of range for {n} nodes")
    return op, a, b, pool, args, n_inputs, outputs


def node_indices(name, value, limit):
    """Input node indices of a call as int32, each in [0, limit), or ValueError."""
    arr = np.asarray(value)
    if arr.dtype == np.int32 and arr.ndim == 1:
        return arr
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise ValueError(f"{name} must be a 1-D array of integers, got {arr.dtype} {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= limit):
        raise ValueError(f"{name} holds an index outside the {limit} input nodes")
    return arr.astype(np.int32)
