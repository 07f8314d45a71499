"""Tapes as files: save, load and pickle a traced tape.

The file format, version 1, is an uncompressed NumPy ``.npz`` (a zip of
``.npy`` entries, as ``numpy.savez`` writes it; nothing in it is pickled)
holding exactly these entries:

    meta      0-d unicode string: a JSON object, below
    op        uint8[n]    opcode of each node (a row of fasttape.ops.OPS)
    a, b      int32[n]    each node's operand fields, as its op's kind says
    pool      float64[k]  the constant pool
    args      int32[m]    operand lists of the n-ary nodes
    outputs   int32[r]    the output nodes, flattened as out_spec says

    meta = {"format": "fasttape.tape",      the magic
            "format_version": 1,
            "fasttape_version": "0.1.0",    the writer's (informational)
            "op_table": [[code, name, kind], ...],  the writer's op table
            "n_inputs": 3,                  the first n_inputs nodes are inputs
            "names": ["w", "x", "y"],       the traced function's parameters
            "shapes": [[], [2], ...],       each argument's shape
            "out_spec": "s" | ["a", shape] | ["t", [spec, ...]] | ["l", [spec, ...]],
            "fn_name": "loss"}

Opcodes mean what the writer's op table says, so a file is read only by a
build whose table is the same, row for row. Reading checks everything and
raises TapeError with the reason; the zip's CRC-32s catch corrupted bytes,
so a damaged file never loads as a tape that computes different numbers.
Entries must be stored uncompressed, so reading takes memory in proportion
to the file's size. A path that does not exist raises FileNotFoundError.
A pickled tape carries the same entries (to_state / from_state) and is
checked the same way.
"""

import json
import math
import os
import tokenize
import zipfile
import zlib
from io import BytesIO

import numpy as np
from numpy.lib import format as npy

from . import ops
from .backend import kernel
from .errors import TapeError

MAGIC = "fasttape.tape"
FORMAT_VERSION = 1
ARRAYS = {"op": np.uint8, "a": np.int32, "b": np.int32, "pool": np.float64,
          "args": np.int32, "outputs": np.int32}
META = ("format", "format_version", "fasttape_version", "op_table", "n_inputs",
        "names", "shapes", "out_spec", "fn_name")
_MAX_NDIM, _MAX_DIM, _MAX_DEPTH = 32, 2**31 - 1, 100
# Errors the zip and .npy readers raise on damaged bytes: zipfile raises
# NotImplementedError and RuntimeError for odd compression or flag bits, and
# numpy's .npy header parser lets tokenize.TokenError escape.
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError,
                RuntimeError, tokenize.TokenError)


def op_table():
    """This build's op table signature: [[code, name, kind], ...]."""
    return [[op.code, op.name, op.kind] for op in ops.OPS]


# ------------------------------------------------------------------ writing

def to_state(tape):
    """The tape's entries, as saved: {"meta": 0-d str array, "op": ..., ...}."""
    import fasttape

    p = tape._prog()
    meta = {"format": MAGIC, "format_version": FORMAT_VERSION,
            "fasttape_version": getattr(fasttape, "__version__", "unknown"),
            "op_table": op_table(), "n_inputs": int(p.n_inputs),
            "names": list(tape._names), "shapes": [list(s) for s in tape._shapes],
            "out_spec": _spec_to_json(tape._out_spec), "fn_name": tape._fn_name}
    state = {"meta": np.array(json.dumps(meta))}
    state.update((key, np.array(getattr(p, key))) for key in ARRAYS)
    return state


def save(tape, path):
    """Write tape to path (a path or a binary file object)."""
    state = to_state(tape)
    if hasattr(path, "write"):
        np.savez(path, **state)
    else:  # opened here: numpy.savez would append ".npz" to a bare path
        with open(path, "wb") as f:
            np.savez(f, **state)


def _spec_to_json(spec):
    if spec == "s":
        return "s"
    if spec[0] == "a":
        return ["a", [int(d) for d in spec[1]]]
    return [spec[0], [_spec_to_json(s) for s in spec[1]]]


# ------------------------------------------------------------------ reading

def load(path):
    """The Tape saved by ``tape.save`` at ``path``.

    Safe on untrusted files: nothing is unpickled, every array and field is
    checked, and the tape is validated before any sweep runs over it.

    Parameters
    ----------
    path : str, os.PathLike or binary file object

    Returns
    -------
    Tape
        Frozen and replayable, as ``ft.trace`` made it.

    Raises
    ------
    TapeError
        A truncated, corrupted or inconsistent file, or one written with a
        different op table; the message says why.
    FileNotFoundError
        No file at ``path``.

    Examples
    --------
    >>> tape.save("loss.tape")
    >>> ft.load("loss.tape")(1.0, 2.0, 3.0)
    2.0
    """
    if hasattr(path, "read"):
        return _build(_read_npz(path, "the tape file"))
    where = repr(os.fspath(path))
    if os.path.exists(path) and not os.path.isfile(path):
        raise TapeError(f"{where} is not a tape file: not a regular file")
    with open(path, "rb") as f:  # a missing file is FileNotFoundError, as for open()
        return _build(_read_npz(f, where))


def from_state(state):
    """The Tape of to_state's entries (unpickling), checked like a file."""
    if not isinstance(state, dict):
        raise TapeError(f"a tape's state is a dict of arrays, got {type(state).__name__}")
    return _build(state)


def _read_npz(f, where):
    """{entry name: array} of an npz, without pickle; memory bounded by the file."""
    try:
        with zipfile.ZipFile(f) as zf:
            infos = zf.infolist()
            if len(infos) > 4 * len(META):
                raise TapeError(f"{where} is not a tape file: {len(infos)} entries")
            entries = {}
            for info in infos:
                key = info.filename[:-4] if info.filename.endswith(".npy") else None
                if key is None or key in entries:
                    raise TapeError(f"{where} has an unexpected entry {info.filename!r}")
                entries[key] = _read_entry(zf, info, key)
            return entries
    except TapeError:
        raise  # already says what is wrong (and is a ValueError, caught below)
    except _READ_ERRORS as exc:
        raise TapeError(f"{where} is truncated or corrupt: {exc}") from exc


def _read_entry(zf, info, key):
    # Stored entries only, read whole: no header, however forged, makes us
    # read past the file, and the CRC-32 is checked before any parsing.
    if info.compress_type != zipfile.ZIP_STORED:
        raise TapeError(f"entry {key!r} is compressed; tape files are written uncompressed")
    with zf.open(info) as member:
        raw = BytesIO(member.read())
    version = npy.read_magic(raw)
    if version not in ((1, 0), (2, 0)):
        raise TapeError(f"entry {key!r} has .npy format version {version}")
    read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
    shape, fortran, dtype = read_header(raw)
    if dtype.hasobject or dtype.itemsize == 0:
        raise TapeError(f"entry {key!r} has dtype {dtype}; tape files hold only numbers and text")
    data = raw.read()
    if min(shape, default=0) < 0 or len(data) != math.prod(shape) * dtype.itemsize:
        raise TapeError(f"entry {key!r} holds {len(data)} bytes of data, not the "
                        f"{dtype} array of shape {shape} its header describes")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


# ------------------------------------------------------------------ checking

def _build(entries):
    from .tape import Tape

    if "meta" not in entries:
        raise TapeError("not a fasttape tape: it has no 'meta' entry")
    meta = _meta(entries["meta"])
    missing = [k for k in ARRAYS if k not in entries]
    if missing:
        raise TapeError(f"the tape lacks the array entry {missing[0]!r}")
    extra = [k for k in entries if k != "meta" and k not in ARRAYS]
    if extra:
        raise TapeError(f"the tape has an unexpected entry {extra[0]!r}")
    arr = {key: _array(key, entries[key], dtype) for key, dtype in ARRAYS.items()}
    _check_nary_total(arr)
    program = kernel.Program(arr["op"], arr["a"], arr["b"], arr["pool"], arr["args"],
                             meta["n_inputs"], arr["outputs"])
    if meta["n_leaves"] != program.n_outputs:
        raise TapeError(f"out_spec describes {meta['n_leaves']} outputs, but the tape "
                        f"has {program.n_outputs}")
    return Tape._traced(program, meta["names"], meta["shapes"], meta["out_spec"],
                        meta["fn_name"])


def _array(key, value, dtype):
    want = np.dtype(dtype)
    if not isinstance(value, np.ndarray):
        raise TapeError(f"entry {key!r} must be an array, got {type(value).__name__}")
    if value.ndim != 1:
        raise TapeError(f"entry {key!r} must be 1-D, got shape {value.shape}")
    # Any byte order will do; the kind and width must be the format's.
    if (value.dtype.kind, value.dtype.itemsize) != (want.kind, want.itemsize):
        raise TapeError(f"entry {key!r} must have dtype {want}, got {value.dtype}")
    return value.astype(want)


def _check_nary_total(arr):
    # The recorder gives each n-ary node its own operand list, so the counts
    # (b) sum to at most len(args); overlapping lists in a forged file would
    # let validation's per-operand checks grow quadratically in memory.
    if len(arr["op"]) != len(arr["b"]):
        return  # validation names this
    nary = [op.code for op in ops.OPS if op.kind in ops.NARY]
    counts = arr["b"][np.isin(arr["op"], nary)]
    if (counts < 0).any() or int(counts.sum(dtype=np.int64)) > len(arr["args"]):
        raise TapeError("n-ary nodes' operand counts do not fit the args array")


def _meta(value):
    """The checked metadata, with names, shapes and out_spec as Tape keeps them."""
    if not isinstance(value, np.ndarray) or value.dtype.kind != "U" or value.shape != ():
        raise TapeError("the 'meta' entry must be a 0-d unicode string")
    try:
        meta = json.loads(str(value[()]))
    except (ValueError, RecursionError) as exc:
        raise TapeError(f"the tape's metadata is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise TapeError("the tape's metadata is not a JSON object")
    if meta.get("format") != MAGIC:
        raise TapeError(f"not a fasttape tape: format {meta.get('format')!r:.80}, "
                        f"expected {MAGIC!r}")
    version, writer = meta.get("format_version"), meta.get("fasttape_version")
    if not _is_int(version) or version < 1:
        raise TapeError(f"unknown tape format version {version!r:.80}")
    if version > FORMAT_VERSION:
        raise TapeError(f"the tape has format version {version} (written by fasttape "
                        f"{writer!s:.80}); this fasttape reads up to version {FORMAT_VERSION}; "
                        f"upgrade fasttape to read it")
    for key in META:
        if key not in meta:
            raise TapeError(f"the tape's metadata lacks {key!r}")
    extra = sorted(set(meta) - set(META))
    if extra:
        raise TapeError(f"the tape's metadata has an unexpected field {extra[0]!r}")
    _check_op_table(meta["op_table"], writer)
    if not isinstance(writer, str) or not isinstance(meta["fn_name"], str):
        raise TapeError("the tape's fasttape_version and fn_name must be strings")
    n_inputs, names, shapes = meta["n_inputs"], meta["names"], meta["shapes"]
    if not _is_int(n_inputs) or n_inputs < 0:
        raise TapeError(f"n_inputs must be a non-negative integer, got {n_inputs!r}")
    if not isinstance(names, list) or not all(isinstance(s, str) for s in names):
        raise TapeError("names must be a list of strings")
    if not isinstance(shapes, list) or len(shapes) != len(names):
        raise TapeError(f"shapes must be a list with one shape per name ({len(names)})")
    shapes = [_shape(s, f"the shape of {name!r}") for s, name in zip(shapes, names)]
    if sum(math.prod(s) for s in shapes) != n_inputs:
        raise TapeError(f"names and shapes describe {sum(math.prod(s) for s in shapes)} "
                        f"input values, but n_inputs is {n_inputs}")
    out_spec, n_leaves = _spec(meta["out_spec"], 0)
    return dict(meta, names=names, shapes=shapes, out_spec=out_spec, n_leaves=n_leaves)


def _check_op_table(table, writer):
    ours = op_table()
    if table == ours:
        return
    if not isinstance(table, list):
        raise TapeError("the tape's op_table must be a list of [code, name, kind] rows")
    for k in range(max(len(table), len(ours))):
        theirs = table[k] if k < len(table) else "no row"
        mine = ours[k] if k < len(ours) else "no row"
        if theirs != mine:
            raise TapeError(f"the tape was written with a different op table (fasttape "
                            f"{writer!s:.80}): row {k} is {theirs!s:.80} there and {mine} here; "
                            f"opcodes would mean other ops, so re-trace and save it "
                            f"with this build")


def _shape(value, what):
    if (not isinstance(value, list) or len(value) > _MAX_NDIM
            or not all(_is_int(d) and 0 <= d <= _MAX_DIM for d in value)):
        raise TapeError(f"{what} must be a list of at most {_MAX_NDIM} sizes, got {value!r:.80}")
    return tuple(value)


def _spec(value, depth):
    """(out_spec as the tracer makes it, number of output leaves)."""
    if value == "s":
        return "s", 1
    if depth > _MAX_DEPTH or not (isinstance(value, list) and len(value) == 2
                                  and value[0] in ("a", "t", "l")):
        raise TapeError(f"malformed out_spec {value!r:.80}")
    tag, body = value
    if tag == "a":
        shape = _shape(body, "an out_spec array shape")
        return ("a", shape), math.prod(shape)
    if not isinstance(body, list):
        raise TapeError(f"malformed out_spec {value!r:.80}")
    parts = [_spec(s, depth + 1) for s in body]
    return (tag, [s for s, _ in parts]), sum(n for _, n in parts)


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)
