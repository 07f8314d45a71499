"""Tapes as files: a program's arrays and metadata to bytes and back.

This module knows nothing of Tape: ``Tape.save``, ``ft.load`` and pickling
hand it a program's arrays and the metadata below, and build the Tape from
what it reads back.

The file format, version 2, is an uncompressed NumPy ``.npz`` (a zip of
``.npy`` entries, as ``numpy.savez`` writes it; nothing in it is pickled)
holding exactly these entries:

    meta      0-d unicode string: a JSON object, below
    op        uint8[n]    each node's op, as an index into meta's "ops" list
    a, b      int32[n]    each node's operand fields, as its op's kind says
    pool      float64[k]  the constant pool
    args      int32[m]    operand lists of the n-ary nodes
    outputs   int32[r]    the output nodes, flattened as out_spec says

    meta = {"format": "fasttape.tape",      the magic
            "format_version": 2,
            "fasttape_version": "0.1.0",    the writer's (informational)
            "ops": [{"name": "mul", "kind": "binary", "fwd": "x * y",
                     "d0": "y", "d1": "x", "d00": "0.0", "d01": "1.0",
                     "d11": "0.0"}, ...],   the op-table rows the nodes use
            "n_inputs": 3,                  the first n_inputs nodes are inputs
            "names": ["w", "x", "y"],       the traced function's parameters
            "shapes": [[], [2], ...],       each argument's shape
            "out_spec": "s" | ["a", shape] | ["t", [spec, ...]] | ["l", [spec, ...]],
            "fn_name": "loss"}

Each row in "ops" is an op as fasttape.ops.OPS defines it: its name, kind
and formulas (the forward formula and the first and second partials), and
the nodes' opcodes index that list. Reading maps each row a node uses to
this build's row of the same name, so adding or reordering rows in the op
table never makes a file unloadable. A used row this build lacks, or whose
kind or formulas differ from this build's, is refused with a TapeError
naming the op and what differs. Rows no node uses are not compared.

Version 1 files are still read. They differ only in the op rows: instead
of "ops", meta holds "op_table": [[code, name, kind], ...], the writer's
whole op table, and opcodes are its codes. Their used rows are mapped by
name the same way, and must have this build's kind (version 1 files carry
no formulas to compare).

Reading checks everything and raises TapeError with the reason (any
damaged or forged bytes, .npy headers included; it never executes code
from the file); the zip's CRC-32s catch corrupted bytes, so a damaged file
never loads as a tape that computes different numbers. Entries must be
stored uncompressed, so reading takes memory in proportion to the file's
size. A path that does not exist raises FileNotFoundError. A pickled tape
carries the same entries (pack / unpack) and is checked the same way. But
pickle itself is unsafe on untrusted bytes: unpickling can run
arbitrary code that the pickle names, before unpack is ever reached. For a
tape from elsewhere use ft.load, which reads only arrays and JSON and never
executes code from the file.
"""

import json
import math
import os
import re
import reprlib
import struct
import zipfile
import zlib

import numpy as np

from . import kinds, ops
from .errors import TapeError

MAGIC = "fasttape.tape"
FORMAT_VERSION = 2
ARRAYS = {"op": np.uint8, "a": np.int32, "b": np.int32, "pool": np.float64,
          "args": np.int32, "outputs": np.int32}
TAPE_META = ("n_inputs", "names", "shapes", "out_spec", "fn_name")  # what the Tape gives
ROW_FIELDS = ("name", "kind", "fwd", "d0", "d1", "d00", "d01", "d11")  # what defines an op
_ROWS_KEY = {1: "op_table", 2: "ops"}  # the meta field listing op rows, by format version
_HEAD = ("format", "format_version", "fasttape_version")
_MAX_ROWS = 256  # opcodes are uint8
_MAX_ENTRIES = 4 * (len(ARRAYS) + 1)
_MAX_NDIM, _MAX_DIM = 32, 2**31 - 1
_MAX_HEADER = 10000  # bytes of a .npy header; numpy's writer makes about 128
_DESCR = re.compile(r"[<>|=]?[biufcSU][0-9]{0,12}")
_HEADER = re.compile(  # as numpy.lib.format writes it; sizes with up to 30 digits
    r" *\{ *'descr' *: *'([^'\\]{0,80})' *, *'fortran_order' *: *(True|False) *, *'shape' *:"
    r" *\( *(|[0-9]{1,30} *,|[0-9]{1,30}(?: *, *[0-9]{1,30})+(?: *,)?) *\)(?: *,)? *\} *\n?")
# Errors the zip reader raises on damaged bytes: zipfile raises
# NotImplementedError and RuntimeError for odd compression or flag bits,
# UnicodeDecodeError (a ValueError) for a forged UTF-8 name, and struct.error
# for short records.
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError,
                RuntimeError, struct.error, OverflowError, MemoryError)
_OPS_BY_NAME = {op.name: op for op in ops.OPS}


# ------------------------------------------------------------------ writing

def pack(arrays, meta):
    """A tape's entries as a file holds them: {"meta": 0-d str array, "op":
    ..., ...}, from its program's arrays (ARRAYS' keys, opcodes of this
    build's op table) and its metadata (TAPE_META's keys)."""
    import fasttape

    op = np.asarray(arrays["op"])
    used = np.unique(op)  # this build's codes, in table order
    head = {"format": MAGIC, "format_version": FORMAT_VERSION,
            "fasttape_version": getattr(fasttape, "__version__", "unknown"),
            "ops": [{f: getattr(ops.OPS[c], f) for f in ROW_FIELDS} for c in used.tolist()],
            "n_inputs": int(meta["n_inputs"]), "names": list(meta["names"]),
            "shapes": [[int(d) for d in s] for s in meta["shapes"]],
            "fn_name": meta["fn_name"]}
    # out_spec nests as deep as the traced outputs: its text is built
    # without recursion, as _parse reads it.
    text = json.dumps(head)[:-1] + ', "out_spec": ' + _spec_to_json(meta["out_spec"]) + "}"
    entries = {"meta": np.array(text), "op": np.searchsorted(used, op).astype(np.uint8)}
    entries.update((key, np.array(arrays[key])) for key in ARRAYS if key != "op")
    return entries


def write(path, arrays, meta):
    """Write a tape's arrays and metadata (as pack takes them) to path (a
    path, written at exactly that name, or a binary file object)."""
    entries = pack(arrays, meta)
    if hasattr(path, "write"):
        np.savez(path, **entries)
    else:  # opened here: numpy.savez would append ".npz" to a bare path
        with open(path, "wb") as f:
            np.savez(f, **entries)


def _spec_to_json(spec):
    """out_spec's JSON text: "s", ["a", shape], ["t", [spec, ...]], ["l", [...]]."""
    out, todo = [], [(spec, None)]  # specs to write, or text to copy
    while todo:
        spec, text = todo.pop()
        if text is not None:
            out.append(text)
        elif spec == "s":
            out.append('"s"')
        elif spec[0] == "a":
            out.append(json.dumps(["a", [int(d) for d in spec[1]]]))
        else:
            out.append(f'["{spec[0]}", [')
            todo.append((None, "]]"))
            for k in range(len(spec[1]) - 1, -1, -1):
                todo.append((spec[1][k], None))
                if k:
                    todo.append((None, ", "))
    return "".join(out)


# ------------------------------------------------------------------ reading

def read(path):
    """(arrays, meta) of the tape file at path, as unpack gives them.

    Safe on untrusted files: nothing is unpickled and every array and field
    is checked (the Tape built from them validates the program before any
    sweep runs over it). TapeError says why a file is refused;
    FileNotFoundError if there is no file at path.
    """
    if hasattr(path, "read"):
        return unpack(_read_npz(path, "the tape file"))
    where = repr(os.fspath(path))
    if os.path.exists(path) and not os.path.isfile(path):
        raise TapeError(f"{where} is not a tape file: not a regular file")
    with open(path, "rb") as f:  # a missing file is FileNotFoundError, as for open()
        return unpack(_read_npz(f, where))


def _read_npz(f, where):
    """{entry name: array} of an npz, without pickle; memory bounded by the file."""
    try:
        size = f.seek(0, os.SEEK_END)  # (zipfile seeks too; it needs a seekable file)
        with zipfile.ZipFile(f) as zf:
            infos = zf.infolist()
            if len(infos) > _MAX_ENTRIES:
                raise TapeError(f"{where} is not a tape file: {len(infos)} entries")
            entries = {}
            for info in infos:
                key = info.filename[:-4] if info.filename.endswith(".npy") else None
                if key is None or key in entries:
                    raise TapeError(f"{where} has an unexpected entry {info.filename!r}")
                if info.compress_size > size:  # checked before reading allocates it
                    raise TapeError(f"{where} is corrupt: entry {key!r} claims "
                                    f"{info.compress_size} bytes, more than the file's {size}")
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
        raw = member.read()
    shape, fortran, dtype, start = _npy_header(raw, key)
    data = memoryview(raw)[start:]
    # Sizes are compared as Python ints: a forged huge shape allocates nothing.
    if len(data) != math.prod(shape) * dtype.itemsize:
        raise TapeError(f"entry {key!r} holds {len(data)} bytes of data, not the "
                        f"{dtype} array of shape {shape} its header describes")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def _npy_header(raw, key):
    """(shape, fortran_order, dtype, data offset) of a .npy entry's bytes.

    numpy's own header reader runs the header through Python's compiler,
    and lets SyntaxError, TypeError and more escape on forged headers. This
    one matches the dict numpy writes, {'descr': '<i4', 'fortran_order':
    False, 'shape': (5,), }, and nothing else (no structured or subarray
    dtypes, which tape entries never have).
    """
    if raw[:6] != b"\x93NUMPY" or len(raw) < 10:
        raise TapeError(f"entry {key!r} is not a .npy array")
    version = (raw[6], raw[7])
    if version not in ((1, 0), (2, 0)):
        raise TapeError(f"entry {key!r} has .npy format version {version}")
    size, start = (2, 10) if version == (1, 0) else (4, 12)
    end = start + int.from_bytes(raw[8:8 + size], "little")
    if len(raw) < end or end - start > _MAX_HEADER:
        raise TapeError(f"entry {key!r} has a .npy header of {end - start} bytes, "
                        f"beyond its data or the {_MAX_HEADER} allowed")
    text = raw[start:end].decode("latin-1")
    match = _HEADER.fullmatch(text)
    if not match:
        raise TapeError(f"entry {key!r} has a .npy header that is not {{'descr': a dtype "
                        f"string, 'fortran_order': a bool, 'shape': a tuple of sizes}}: "
                        f"{text!r:.100}")
    descr, fortran, sizes = match.groups()
    shape = tuple(int(d) for d in sizes.replace(",", " ").split())
    if len(shape) > _MAX_NDIM:
        raise TapeError(f"entry {key!r} has {len(shape)} dimensions; at most {_MAX_NDIM}")
    return shape, fortran == "True", _npy_dtype(descr, key), end
def _npy_dtype(descr, key):
    # One letter and a width ('<i4', '|u1', '<U42'): no object, structured
    # or subarray dtypes.
    if not _DESCR.fullmatch(descr):
        raise TapeError(f"entry {key!r} has dtype {descr!r:.80}; tape files hold only "
                        f"numbers and text")
    try:
        dtype = np.dtype(descr)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TapeError(f"entry {key!r} has an unknown dtype {descr!r:.80}") from exc
    if dtype.itemsize == 0:
        raise TapeError(f"entry {key!r} has dtype {descr!r}, of size 0")
    return dtype


# ------------------------------------------------------------------ checking

def unpack(entries):
    """(arrays, meta) of a tape's entries (as pack makes them, or as a file
    of any format version holds them), checked: arrays as ARRAYS says, with
    opcodes of this build's op table; meta with TAPE_META's keys, shapes as
    tuples and out_spec as the tracer makes it. The program itself is
    validated when the Tape is built from them. (Unpickling untrusted bytes
    can run any code before this is called; ft.load is the safe way to
    read a tape from elsewhere.)"""
    if not isinstance(entries, dict):
        raise TapeError(f"a tape's state is a dict of arrays, got {type(entries).__name__}")
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
    arr["op"] = _our_opcodes(arr["op"], meta["rows"], meta["fasttape_version"])
    _check_nary_total(arr)
    if meta["n_leaves"] != len(arr["outputs"]):
        raise TapeError(f"out_spec describes {meta['n_leaves']} outputs, but the tape "
                        f"has {len(arr['outputs'])}")
    return arr, {key: meta[key] for key in TAPE_META}


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
    listed = np.flatnonzero(kinds.LISTED[ops.KIND_CODE])  # opcodes with operand lists
    counts = arr["b"][np.isin(arr["op"], listed)]
    if (counts < 0).any() or int(counts.sum(dtype=np.int64)) > len(arr["args"]):
        raise TapeError("n-ary nodes' operand counts do not fit the args array")


def _meta(value):
    """The checked metadata, with names, shapes and out_spec as Tape keeps them."""
    if not isinstance(value, np.ndarray) or value.dtype.kind != "U" or value.shape != ():
        raise TapeError("the 'meta' entry must be a 0-d unicode string")
    # numpy turns UTF-32 units past U+10FFFF into a SystemError or a broken str
    codes = np.frombuffer(value.tobytes(), dtype=value.dtype.byteorder + "u4")
    if (codes > 0x10FFFF).any():
        raise TapeError("the 'meta' entry is not Unicode text: it has a character code "
                        f"{int(codes.max()):#x}")
    try:
        meta = _parse(str(value[()]))
    except ValueError as exc:
        raise TapeError(f"the tape's metadata is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise TapeError("the tape's metadata is not a JSON object")
    if meta.get("format") != MAGIC:
        raise TapeError(f"not a fasttape tape: format {_show(meta.get('format'))}, "
                        f"expected {MAGIC!r}")
    version, writer = meta.get("format_version"), meta.get("fasttape_version")
    if not _is_int(version) or version < 1:
        raise TapeError(f"unknown tape format version {_show(version)}")
    if version > FORMAT_VERSION:
        raise TapeError(f"the tape has format version {version} (written by fasttape "
                        f"{_show(writer)}); this fasttape reads up to version {FORMAT_VERSION}; "
                        f"upgrade fasttape to read it")
    fields = _HEAD + (_ROWS_KEY[version],) + TAPE_META
    for key in fields:
        if key not in meta:
            raise TapeError(f"the tape's metadata lacks {key!r}")
    extra = sorted(set(meta) - set(fields))
    if extra:
        raise TapeError(f"the tape's metadata has an unexpected field {extra[0]!r}")
    rows = _rows(meta[_ROWS_KEY[version]], version)
    if not isinstance(writer, str) or not isinstance(meta["fn_name"], str):
        raise TapeError("the tape's fasttape_version and fn_name must be strings")
    n_inputs, names, shapes = meta["n_inputs"], meta["names"], meta["shapes"]
    if not _is_int(n_inputs) or n_inputs < 0:
        raise TapeError(f"n_inputs must be a non-negative integer, got {_show(n_inputs)}")
    if not isinstance(names, list) or not all(isinstance(s, str) for s in names):
        raise TapeError("names must be a list of strings")
    if not isinstance(shapes, list) or len(shapes) != len(names):
        raise TapeError(f"shapes must be a list with one shape per name ({len(names)})")
    shapes = [_shape(s, f"the shape of {name!r}") for s, name in zip(shapes, names)]
    if sum(math.prod(s) for s in shapes) != n_inputs:
        raise TapeError(f"names and shapes describe {sum(math.prod(s) for s in shapes)} "
                        f"input values, but n_inputs is {n_inputs}")
    out_spec, n_leaves = _spec(meta["out_spec"])
    return dict(meta, names=names, shapes=shapes, out_spec=out_spec, n_leaves=n_leaves,
                rows=rows)


def _rows(table, version):
    """The file's op rows as {field: text} dicts, checked for form only:
    only the rows the nodes use are compared with this build's."""
    key = _ROWS_KEY[version]
    form = ("[code, name, kind], code its position" if version == 1 else
            "{" + ", ".join(f'"{f}": text' for f in ROW_FIELDS) + "}")
    if not isinstance(table, list) or len(table) > _MAX_ROWS:
        raise TapeError(f"the tape's {key} must be a list of at most {_MAX_ROWS} rows {form}")
    rows = []
    for k, row in enumerate(table):
        if version == 1:
            ok = (isinstance(row, list) and len(row) == 3 and _is_int(row[0]) and row[0] == k
                  and isinstance(row[1], str) and isinstance(row[2], str))
            row = {"name": row[1], "kind": row[2]} if ok else None
        else:
            ok = (isinstance(row, dict) and sorted(row) == sorted(ROW_FIELDS)
                  and all(isinstance(text, str) for text in row.values()))
        if not ok:
            raise TapeError(f"row {k} of the tape's {key} is {_show(table[k])}, not {form}")
        rows.append(row)
    return rows


def _our_opcodes(op, rows, writer):
    """The nodes' opcodes in this build's op table: each row a node uses is
    this build's row of the same name, and must be defined the same way."""
    if len(op) and int(op.max()) >= len(rows):
        bad = int(np.argmax(op >= len(rows)))
        raise TapeError(f"node {bad} has opcode {op[bad]}, but the tape's op table has "
                        f"only {len(rows)} rows")
    ours = np.zeros(len(rows), np.uint8)
    for k in np.unique(op).tolist():
        ours[k] = _our_op(rows[k], writer).code
    return ours[op]


def _our_op(row, writer):
    op = _OPS_BY_NAME.get(row["name"])
    if op is None:
        raise TapeError(f"the tape uses the op {_show(row['name'])}, which this fasttape "
                        f"does not have (the tape was written by fasttape {_show(writer)}); "
                        f"read it with that version, or re-trace and save it with this one")
    for field, text in row.items():
        if text != getattr(op, field):
            raise TapeError(f"the tape's op {op.name!r} is not this fasttape's: its {field} "
                            f"is {_show(text)} there and {getattr(op, field)!r} here (the "
                            f"tape was written by fasttape {_show(writer)}); it would compute "
                            f"other numbers, so re-trace and save it with this build")
    return op


def _shape(value, what):
    if (not isinstance(value, list) or len(value) > _MAX_NDIM
            or not all(_is_int(d) and 0 <= d <= _MAX_DIM for d in value)):
        raise TapeError(f"{what} must be a list of at most {_MAX_NDIM} sizes, got {_show(value)}")
    return tuple(value)


def _spec(value):
    """(out_spec as the tracer makes it, number of output leaves), built
    with a stack of its own: outputs nest as deep as the traced function's."""
    root, n_leaves = [], 0
    todo = [(value, root)]  # (a spec to convert, the list its result joins)
    while todo:
        value, parent = todo.pop()
        if value == "s":
            parent.append("s")
            n_leaves += 1
            continue
        if not (isinstance(value, list) and len(value) == 2 and value[0] in ("a", "t", "l")
                and (value[0] == "a" or isinstance(value[1], list))):
            raise TapeError(f"malformed out_spec {_show(value)}")
        tag, body = value
        if tag == "a":
            shape = _shape(body, "an out_spec array shape")
            parent.append(("a", shape))
            n_leaves += math.prod(shape)
        else:
            parent.append((tag, []))
            todo.extend((child, parent[-1][1]) for child in reversed(body))
    return root[0], n_leaves


# JSON without recursion: out_spec's nesting is the traced outputs' (two
# arrays a level), which json.loads would refuse past the recursion limit.
_SPACE = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r"(-?(?:0|[1-9][0-9]*))(\.[0-9]+)?([eE][-+]?[0-9]+)?|true|false|null")
_LITERAL = {"true": True, "false": False, "null": None}


def _parse(text):
    """The value of JSON text, as json.loads gives it (strict: no NaN or
    Infinity); ValueError if it is not JSON."""
    stack = []  # open arrays and objects: [container, key of the next value]
    pos = 0
    while True:
        pos = _SPACE.match(text, pos).end()
        char = text[pos:pos + 1]
        if char in ("[", "{"):  # open a container; its first value comes next
            stack.append([[] if char == "[" else {}, None])
            pos = _SPACE.match(text, pos + 1).end()
            if text[pos:pos + 1] != ("]" if char == "[" else "}"):
                if char == "{":
                    pos = _key(text, pos, stack[-1])
                continue
            pos += 1
            value = stack.pop()[0]
        elif char == '"':
            value, pos = json.decoder.scanstring(text, pos + 1)
        else:
            match = _SCALAR.match(text, pos)
            if not match:
                raise ValueError(f"expected a value at character {pos}")
            pos, word = match.end(), match.group()
            value = (_LITERAL[word] if word in _LITERAL else
                     int(word) if match.group(2) is match.group(3) is None else float(word))
        while True:  # value is complete: store it, and close what it completes
            if not stack:
                if _SPACE.match(text, pos).end() != len(text):
                    raise ValueError(f"extra data at character {pos}")
                return value
            top = stack[-1]
            if isinstance(top[0], list):
                top[0].append(value)
            else:
                top[0][top[1]] = value
            pos = _SPACE.match(text, pos).end()
            char = text[pos:pos + 1]
            if char == ",":
                pos += 1
                if isinstance(top[0], dict):
                    pos = _key(text, _SPACE.match(text, pos).end(), top)
                break
            if char != ("]" if isinstance(top[0], list) else "}"):
                raise ValueError(f"expected ',' or a closing bracket at character {pos}")
            pos += 1
            value = stack.pop()[0]


def _key(text, pos, top):
    """Read an object's '"key":' at pos into top; the position after it."""
    if text[pos:pos + 1] != '"':
        raise ValueError(f"expected a key at character {pos}")
    top[1], pos = json.decoder.scanstring(text, pos + 1)
    pos = _SPACE.match(text, pos).end()
    if text[pos:pos + 1] != ":":
        raise ValueError(f"expected ':' at character {pos}")
    return pos + 1


def _show(value):
    """A short repr of a value read from a file, however long or deep."""
    return _REPR.repr(value)


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxstring, _REPR.maxother = 4, 8, 80, 80


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)
