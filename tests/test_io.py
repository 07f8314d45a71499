"""Tapes as data: sizes, str(tape), to_dot, save / load / pickle, and a fuzz
test that no damaged tape file can crash the interpreter or load wrongly."""

import io
import json
import os
import pickle
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import fasttape as ft
from fasttape import ops
from fasttape.graphviz import operands, to_dot
from fasttape.io import ARRAYS, FORMAT_VERSION, pack


def lecture(w, x, y):
    return (w * x - y) ** 2 + w ** 2


def layer(W, x):  # arrays in, a tuple out
    h = ft.tanh(W @ x)
    return h, ft.sum(h * h), [x[0] / 3.0, 2.0]


def nary(p, x):  # n-ary nodes: one sum, dot and constant dot each
    return ft.dot(p, x) + ft.sum(list(p * p)) + ft.dot(np.array([0.5, -1.0, 2.0]), x)


def control(x, y):  # a where (select), comparisons and a guard
    z = ft.where(x > y, x * y, x - y)
    if x > 0:
        return z + ft.maximum(x, y) ** 2
    return z


CASES = {
    "control": (control, (1.5, 0.5)),
    "lecture": (lecture, (1.0, 2.0, 3.0)),
    "layer": (layer, (np.arange(6.0).reshape(2, 3) / 5, np.array([0.3, -1.0, 2.0]))),
    "nary": (nary, (np.array([1.0, -2.0, 0.5]), np.array([0.1, 0.2, 3.0]))),
}


# This build's op rows, as a file records them: {field: text}.
ROW_FIELDS = ("name", "kind", "fwd", "d0", "d1", "d00", "d01", "d11")
OURS = [{field: getattr(op, field) for field in ROW_FIELDS} for op in ops.OPS]
CODE = {op.name: op.code for op in ops.OPS}
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


@pytest.fixture(params=sorted(CASES))
def case(request):
    fn, args = CASES[request.param]
    return ft.trace(fn, *args), args


def to_state(tape):
    """The entries tape.save writes and pickling carries."""
    return pack(*tape._as_data())


def arrays(tape):
    p = tape._program
    return {key: getattr(p, key) for key in ARRAYS}


def results(tape, args):
    """Everything a replay can say, flattened to comparable arrays."""
    out = [tape(*args), tape.jacobian(*args, wrt=(0, 1)),
           tape.vjp(args, tape(*args)), tape.jvp(args, args)]
    if tape._out_spec == "s":
        out.append(tape.value_and_grad(*args, wrt=tuple(range(len(args)))))
        out.append(tape.hessian(*args, wrt=tuple(range(len(args)))))
    batch = tuple(np.stack([np.asarray(a), np.asarray(a) * 2]) for a in args)
    out.append(tape(*batch, in_axes=0))
    return [np.asarray(x, dtype=float) for x in _leaves(out)]


def _leaves(x):
    if isinstance(x, (tuple, list)):
        return [leaf for item in x for leaf in _leaves(item)]
    return [x]


def assert_same_tape(t1, t2, args):
    for key, arr in arrays(t1).items():
        other = arrays(t2)[key]
        assert other.dtype == arr.dtype and np.array_equal(other, arr), key
    assert t2.n_inputs == t1.n_inputs and len(t2) == len(t1)
    assert (t2._names, t2._shapes, t2._out_spec, t2._fn_name) == \
           (t1._names, t1._shapes, t1._out_spec, t1._fn_name)
    assert str(t2) == str(t1) and repr(t2) == repr(t1) and t2.to_dot() == t1.to_dot()
    r1, r2 = results(t1, args), results(t2, args)
    assert len(r1) == len(r2)
    for x1, x2 in zip(r1, r2):
        assert np.array_equal(x1, x2, equal_nan=True)


# ------------------------------------------------------------------ as data

def test_sizes_match_the_arrays(case):
    tape, _ = case
    p = tape._program
    assert len(tape) == len(p.op) == len(p.a) == len(p.b)
    assert tape.n_inputs == p.n_inputs == sum(int(np.prod(s)) for s in tape._shapes)
    assert tape.n_outputs == len(p.outputs)
    data = sum(arr.nbytes for arr in arrays(tape).values())
    assert data <= tape.nbytes <= data + 64 * len(tape)  # arrays plus a small workspace


def test_str_is_the_lecture_s_wengert_list():
    tape = ft.trace(lecture, 1.0, 2.0, 3.0)
    assert str(tape) == "\n".join(["l0 = w * x", "l1 = l0 - y", "l2 = l1 ** 2",
                                   "l3 = w ** 2", "l4 = l2 + l3", "return l4"])


def expected_refs(p, i):
    """Operand references by the layout ops.py documents (independent of
    graphviz.operands, for the kinds these tests record)."""
    kind, a, b = ops.OPS[p.op[i]].kind, int(p.a[i]), int(p.b[i])
    return {ops.INPUT: [], ops.CONST: [], ops.UNARY: [a], ops.CONSTANT: [a],
            ops.BINARY: [a, b], ops.SUM: list(p.args[a:a + b]),
            ops.DOT: list(p.args[a:a + 2 * b]), ops.DOTC: list(p.args[a:a + b]),
            ops.GUARD: [a], ops.SELECT: list(p.args[a:a + 3])}[kind]


def test_to_dot_has_every_node_and_edge(case):
    tape, _ = case
    p, dot = tape._program, tape.to_dot()
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    labels = dict(re.findall(r'^\s*n(\d+) \[label="((?:[^"\\]|\\.)*)"', dot, re.M))
    assert sorted(map(int, labels)) == list(range(len(tape)))
    listing = str(tape).splitlines()[:-1]  # without "return ..."
    assert [labels[str(i)] for i in range(p.n_inputs, p.n)] == listing
    inputs = [n if s == () else f"{n}[" for n, s in zip(tape._names, tape._shapes)
              for _ in range(int(np.prod(s)))]
    assert all(labels[str(i)].startswith(inputs[i]) for i in range(p.n_inputs))
    edges = re.findall(r"n(\d+) -> n(\d+)", dot)
    want = sorted((int(j), i) for i in range(p.n) for j in expected_refs(p, i))
    assert dot.count("->") == len(want) and sorted((int(j), int(i)) for j, i in edges) == want
    for i in range(p.n):
        assert operands(p, i) == [int(j) for j in expected_refs(p, i)]
    marked = re.findall(r"n(\d+) \[.*peripheries=2", dot)
    assert sorted(map(int, marked)) == sorted(set(p.outputs.tolist()))


def test_to_dot_escapes_quotes():
    tape = ft.trace(lecture, 1.0, 2.0, 3.0)
    dot = to_dot(tape._program, ['w"1\\', "x", "y"], tape._shapes, tape._out_spec)
    assert r'label="w\"1\\"' in dot and r'label="l0 = w\"1\\ * x"' in dot


# ------------------------------------------------------------------ round trips

def test_save_load_round_trip(case, tmp_path):
    tape, args = case
    path = tmp_path / "t.tape"  # saved at exactly this name (no ".npz" appended)
    tape.save(path)
    assert os.listdir(tmp_path) == ["t.tape"]
    assert_same_tape(tape, ft.load(path), args)
    assert_same_tape(tape, ft.load(str(path)), args)
    buf = io.BytesIO()
    tape.save(buf)
    buf.seek(0)
    assert_same_tape(tape, ft.load(buf), args)


def test_pickle_round_trip(case):
    tape, args = case
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        assert_same_tape(tape, pickle.loads(pickle.dumps(tape, protocol)), args)


def test_loaded_tape_keeps_its_guards(tmp_path):
    tape = ft.trace(control, 1.5, 0.5)
    tape.save(tmp_path / "t")
    messages = set()
    for t in (tape, ft.load(tmp_path / "t"), pickle.loads(pickle.dumps(tape))):
        assert "guard(" in str(t) and "where(" in str(t)
        with pytest.raises(ft.GuardError) as err:
            t(-1.0, 0.5)
        messages.add(str(err.value))
    assert len(messages) == 1  # the same guard, named the same way


def test_saved_file_is_plain_npz_without_pickle(tmp_path):
    ft.trace(lecture, 1.0, 2.0, 3.0).save(tmp_path / "t")
    with np.load(tmp_path / "t", allow_pickle=False) as npz:
        meta, op = json.loads(npz["meta"].item()), npz["op"]
        assert sorted(npz.files) == sorted(["meta", *ARRAYS])
    assert meta["format"] == "fasttape.tape" and meta["format_version"] == FORMAT_VERSION
    assert meta["names"] == ["w", "x", "y"] and meta["out_spec"] == "s"
    # The rows the nodes use, each defined as the op table defines it; the
    # opcodes index that list.
    p = ft.trace(lecture, 1.0, 2.0, 3.0)._program
    used = sorted(set(p.op.tolist()))
    assert meta["ops"] == [OURS[c] for c in used]
    assert [r["name"] for r in meta["ops"]] == ["input", "add", "sub", "mul", "pow_c"]
    assert np.array_equal(np.array(used)[op], p.op)
    assert meta["fasttape_version"] == ft.__version__


def test_pickle_is_documented_unsafe_and_load_is_not(capsys):
    # Unpickling runs whatever code the bytes name; ft.load of the same bytes
    # refuses them. The README and the docstrings must say so.
    class Payload:
        def __reduce__(self):
            return print, ("code ran",)
    data = pickle.dumps(Payload())
    pickle.loads(data)
    assert capsys.readouterr().out == "code ran\n"
    rejects(data, "truncated or corrupt")
    assert capsys.readouterr().out == ""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    section = readme[readme.index("## Tapes as data"):]
    section = section[:section.find("\n## ", 1)]
    assert "arbitrary code" in section and "ft.load" in section
    for doc in (ft.Tape.__reduce__.__doc__, ft.io.__doc__, ft.io.unpack.__doc__):
        assert "arbitrary code" in doc or "any code" in doc


def test_eager_tapes_do_not_save():
    with ft.Tape() as t:
        ft.Var(1.0) * 2
    with pytest.raises(ft.TapeError, match="ft.trace"):
        pickle.dumps(t)


# ------------------------------------------------------------------ op rows by name

def every_kind(p, x):  # a node of every kind, arrays in, a tuple out
    z = ft.where(p[0] > x[0], p[0] * x[1], x[2] - 1.5)
    if x[1] > 0:
        z = z + ft.maximum(p[1], 2.0) ** 2
    s = ft.dot(p, x) + ft.sum(list(p * p)) + ft.dot(np.array([0.5, -1.0, 2.0]), x)
    return ft.tanh(s) + z, [x[0] / 3.0, 2.0]


EVERY_KIND_ARGS = (np.array([1.0, -2.0, 0.5]), np.array([0.1, 0.2, 3.0]))
ALL_TAPES = dict(CASES, every_kind=(every_kind, EVERY_KIND_ARGS))


def written_state(tape, table=OURS, version=2, listed="used"):
    """The file a writer whose op table is `table` (row dicts, in its order)
    saves for tape, laid out by hand in format `version`: version 1 lists
    the whole table as [code, name, kind] rows; version 2 lists rows (the
    used ones, or with listed="all" every row) and the opcodes index that list.
    A row's "ours" key names the op of this build it stands for (default: its name)."""
    p = tape._program
    code = {row.get("ours", row["name"]): k for k, row in enumerate(table)}
    table = [{f: row[f] for f in ROW_FIELDS} for row in table]
    op = np.array([code[ops.OPS[c].name] for c in p.op])
    meta = {"format": "fasttape.tape", "format_version": version, "fasttape_version": "9.9",
            "n_inputs": int(p.n_inputs), "names": list(tape._names),
            "shapes": [list(s) for s in tape._shapes], "out_spec": tape._out_spec,
            "fn_name": tape._fn_name}
    if version == 1:
        meta["op_table"] = [[k, row["name"], row["kind"]] for k, row in enumerate(table)]
    else:
        rows = sorted(set(op.tolist())) if listed == "used" else list(range(len(table)))
        meta["ops"] = [table[k] for k in rows]
        op = np.searchsorted(rows, op)
    state = {"meta": np.array(json.dumps(meta)), "op": op.astype(np.uint8)}
    state.update((key, np.array(getattr(p, key))) for key in ARRAYS if key != "op")
    return state


def written_by(*args, **kw):
    return saved(written_state(*args, **kw))


def new_row(name="erf", kind=ops.UNARY):
    return dict(name=name, kind=kind, fwd="erf(x)", d0="1.1283791670955126 * exp(-x * x)",
                d1="", d00="-2.0 * x * d0", d01="", d11="")


@pytest.mark.parametrize("name", sorted(ALL_TAPES))
def test_writer_with_more_or_reordered_rows_loads(name):
    # A newer writer's table: a row inserted near the front, so every later
    # opcode moves, and rows reordered. Rows are matched by name: the file
    # loads and replays exactly as the tape it was written from.
    fn, args = ALL_TAPES[name]
    tape = ft.trace(fn, *args)
    inserted = OURS[:2] + [new_row()] + OURS[2:]
    reordered = [new_row("erfc")] + OURS[::-1] + [new_row()]
    for table in (inserted, reordered):
        for version, listed in ((1, "all"), (2, "used"), (2, "all")):
            assert_same_tape(tape, load_bytes(written_by(tape, table, version, listed)), args)


def test_used_row_missing_or_changed_is_refused():
    tape = ft.trace(control, 1.5, 0.5)  # uses mul and where; not hypot or sin
    def table(target, /, **change):
        rows = [dict(row, ours=target, **change) if row["name"] == target else row
                for row in OURS]
        return [row for row in rows if row["name"] != "drop"]
    for version in (1, 2):
        msg = rejects(written_by(tape, table("mul", name="times"), version), "'times'")
        assert "does not have" in msg
        msg = rejects(written_by(tape, table("mul", kind="unary_c"), version), "'mul'")
        assert "kind" in msg and "'unary_c'" in msg and "'binary'" in msg
        msg = rejects(written_by(tape, table("where", kind="sum"), version), "'where'")
        # Rows the tape does not use may differ or be missing.
        for unused in (table("hypot", name="drop"), table("sin", kind="binary", fwd="x")):
            assert_same_tape(tape, load_bytes(written_by(tape, unused, version, "all")),
                             (1.5, 0.5))
    for field in ("fwd", "d0", "d1", "d00", "d01", "d11"):  # formulas: version 2 only
        msg = rejects(written_by(tape, table("mul", **{field: "x + 1.0"})), "'mul'")
        assert f"{field} is 'x + 1.0' there and {OURS[CODE['mul']][field]!r} here" in msg


def test_version_1_file_still_loads():
    # Saved by the version-1 writer (the whole table as [code, name, kind]
    # rows): read by row name, it replays as the same function traced now.
    loaded = ft.load(os.path.join(DATA, "every_kind.v1.tape"))
    with ft.set_passes("none"):  # the file holds the tape as recorded
        tape = ft.trace(every_kind, *EVERY_KIND_ARGS)
    assert (loaded._names, loaded._shapes, loaded._out_spec, loaded._fn_name) == \
           (tape._names, tape._shapes, tape._out_spec, tape._fn_name)
    assert str(loaded) == str(tape)
    for x1, x2 in zip(results(loaded, EVERY_KIND_ARGS), results(tape, EVERY_KIND_ARGS)):
        assert np.array_equal(x1, x2)
    # By hand: where(1 > 0.1, 1 * 0.2, .) + max(-2, 2) ** 2, and 0.1 - 0.4 + 1.5
    # + (1 + 4 + 0.25) + (0.05 - 0.2 + 6) under tanh.
    out, rest = loaded(*EVERY_KIND_ARGS)
    assert np.isclose(out, np.tanh(12.3) + 4.2, rtol=1e-15) and rest == [0.1 / 3.0, 2.0]


# ------------------------------------------------------------------ failures

def saved(state):
    buf = io.BytesIO()
    np.savez(buf, **state)
    return buf.getvalue()


def load_bytes(data):
    return ft.load(io.BytesIO(data))


def state_with(tape=None, drop=(), meta=None, **arrays_):
    state = to_state(tape or ft.trace(lecture, 1.0, 2.0, 3.0))
    if meta is not None:
        m = json.loads(state["meta"].item())
        meta(m)
        state["meta"] = np.array(json.dumps(m))
    state.update(arrays_)
    for key in drop:
        del state[key]
    return state


def rejects(data_or_state, match):
    """Loading raises a TapeError (a ValueError) whose message matches."""
    with pytest.raises(ft.TapeError, match=match) as info:
        if isinstance(data_or_state, dict):
            ft.Tape._unpickle(data_or_state)
        else:
            load_bytes(data_or_state)
    assert isinstance(info.value, ValueError)
    return str(info.value)


@pytest.mark.parametrize("key", ["meta", *ARRAYS])
def test_missing_entry(key):
    state = state_with(drop=[key])
    rejects(saved(state), repr(key) if key != "meta" else "no 'meta' entry")
    rejects(state, repr(key) if key != "meta" else "no 'meta' entry")


# Each entry with every other dtype: other widths of its kind, other kinds
# of its width, and text.
@pytest.mark.parametrize("key, dtype", [
    (key, np.dtype(dtype)) for key in sorted(ARRAYS)
    for dtype in [np.int64, np.int32, np.uint32, np.int16, np.int8, np.uint8, np.float64,
                  np.float32, "<U2"] if np.dtype(dtype) != np.dtype(ARRAYS[key])])
def test_wrong_dtype(key, dtype):
    state = state_with()
    state[key] = state[key].astype(dtype)
    assert state[key].dtype != np.dtype(ARRAYS[key])
    rejects(saved(state), rf"entry '{key}' must have dtype")
    rejects(state, rf"entry '{key}' must have dtype")


@pytest.mark.parametrize("key", sorted(ARRAYS))
def test_wrong_ndim(key):
    state = state_with()
    state[key] = state[key][None, :]
    rejects(saved(state), rf"entry '{key}' must be 1-D")
    state[key] = np.array(7, dtype=ARRAYS[key])
    rejects(saved(state), rf"entry '{key}' must be 1-D")


def test_other_byte_order_is_read():
    tape, args = ft.trace(nary, *CASES["nary"][1]), CASES["nary"][1]
    state = {k: (v.astype(v.dtype.newbyteorder(">")) if k != "meta" else v)
             for k, v in to_state(tape).items()}
    assert_same_tape(tape, load_bytes(saved(state)), args)


@pytest.mark.parametrize("key", ["op", "a", "b", "outputs"])
def test_wrong_length(key):
    state = state_with()
    state[key] = state[key][:-1]
    rejects(saved(state), "disagree in length|n_inputs|out_spec describes|outputs")


@pytest.mark.parametrize("version, match", [
    (FORMAT_VERSION + 1, "format version 3 .*reads up to version 2"),
    (0, "unknown tape format version 0"), ("1", "unknown tape format version '1'"),
    (True, "unknown tape format version True")])
def test_unknown_or_future_version(version, match):
    rejects(saved(state_with(meta=lambda m: m.update(format_version=version))), match)


def test_future_version_is_reported_before_other_differences():
    def future(m):
        m.update(format_version=FORMAT_VERSION + 1, ops=[], extra_field=1)
    state = state_with(drop=["pool"], meta=future)
    state["new_entry"] = np.zeros(1)
    rejects(saved(state), "format version 3")


def test_wrong_magic():
    rejects(saved(state_with(meta=lambda m: m.update(format="something.else"))),
            "not a fasttape tape: format 'something.else'")


def test_op_rows_of_the_wrong_form():
    def v2(edit):
        return saved(state_with(meta=edit))
    rejects(v2(lambda m: m.update(ops="mul")), "the tape's ops must be a list of at most 256")
    rejects(v2(lambda m: m.update(ops=m["ops"] * 60)), "the tape's ops must be a list of at most")
    for edit in [lambda row: row.pop("d11"), lambda row: row.update(sym="{x} * {y}"),
                 lambda row: row.update(fwd=None), lambda row: row.update(kind=["binary"])]:
        def edited(m):
            edit(m["ops"][3])
        rejects(v2(edited), r"row 3 of the tape's ops is \{.*, not \{\"name\": text, \"kind")
    rejects(v2(lambda m: m["ops"].__setitem__(1, ["add", "binary"])), "row 1 of the tape's ops")
    tape = ft.trace(lecture, 1.0, 2.0, 3.0)
    def v1(edit):
        state = written_state(tape, version=1)
        meta = json.loads(state["meta"].item())
        edit(meta["op_table"])
        state["meta"] = np.array(json.dumps(meta))
        return saved(state)
    assert_same_tape(tape, load_bytes(v1(lambda rows: None)), (1.0, 2.0, 3.0))
    for k, row in [(0, [1, "input", "input"]), (1, [True, "const", "const"]),
                   (2, [2.0, "add", "binary"]), (3, [3, "sub"]), (4, [4, "mul", 5]),
                   (5, {"name": "div", "kind": "binary"})]:
        msg = rejects(v1(lambda rows: rows.__setitem__(k, row)),
                      rf"row {k} of the tape's op_table is .*, not \[code, name, kind\]")
        assert repr(row[1] if isinstance(row, list) else "div") in msg


def test_version_1_prefix_table_loads():
    # A file from an older build with fewer ops loads, and replays exactly
    # as the tape it was saved from; a node past the file's table does not.
    for name, (fn, args) in sorted(CASES.items()):
        tape = ft.trace(fn, *args)
        used = int(tape._program.op.max()) + 1
        for rows in sorted({used, (used + ops.N_OPS) // 2, max(used, ops.N_OPS - 1)}):
            loaded = load_bytes(written_by(tape, OURS[:rows], version=1))
            assert_same_tape(tape, loaded, args)
            assert json.loads(to_state(loaded)["meta"].item())["format_version"] == 2
        if used > 1:
            state = written_state(tape, version=1)
            meta = json.loads(state["meta"].item())
            del meta["op_table"][used - 1:]
            state["meta"] = np.array(json.dumps(meta))
            msg = rejects(saved(state), "op table has only")
            node = int(np.argmax(tape._program.op == used - 1))
            assert f"node {node} has opcode {used - 1}" in msg


def test_malformed_json():
    state = state_with()
    state["meta"] = np.array(state["meta"].item()[:-5])
    rejects(saved(state), "not valid JSON")
    state["meta"] = np.array("[" * 100000)
    rejects(saved(state), "not valid JSON")
    state["meta"] = np.array("[1, 2]")
    rejects(saved(state), "not a JSON object")
    state["meta"] = np.array([1, 2], dtype=np.int32)
    rejects(saved(state), "'meta' entry must be a 0-d unicode string")


@pytest.mark.parametrize("text", [
    '{"a": [1, -2.5, 3e2, -0, true, false, null, "x\\u00e9\\n"], "b": {}, "c": []}',
    ' [ [ [] , {} ] , { "k" : { "k" : [ 1 ] } } ] ', '"s"', "0", "-1.5E-3", '{"a": 1, "a": 2}',
    pytest.param("[" * 3000 + "]" * 3000, id="3000 arrays"),
    pytest.param('{"x": ' * 3000 + "1" + "}" * 3000, id="3000 objects")])
def test_metadata_json_reader_agrees_with_json(text):
    sys.setrecursionlimit(10000)  # json.loads needs it for the deep ones
    try:
        assert ft.io._parse(text) == json.loads(text)
    finally:
        sys.setrecursionlimit(1000)


@pytest.mark.parametrize("text", [
    "", " ", "[", "]", "[1,]", "[1 2]", '{"a" 1}', '{"a": 1,}', "{1: 2}", "01", "1.", "-",
    ".5", "NaN", "Infinity", "tru", "[1]]", "[1] x", '"\x01"', '"\\q"', '{"a": [}', "[}",
    pytest.param("[" * 3000, id="3000 open"), pytest.param("1" * 5000, id="5000 digits")])
def test_metadata_json_reader_refuses_what_is_not_json(text):
    with pytest.raises(ValueError):
        ft.io._parse(text)
    def no_constants(name):
        raise ValueError(name)
    with pytest.raises((ValueError, RecursionError)):
        json.loads(text, parse_constant=no_constants)


@pytest.mark.parametrize("field", ["format", "format_version", "ops", "n_inputs",
                                   "names", "shapes", "fasttape_version"])
def test_deep_values_in_metadata(field):
    # Read without recursion, so any field may be nested deeply; each is
    # refused with a TapeError whose message stays short.
    n = 20000  # deeper than json.loads or repr could go
    for deep in ("[" * n + "]" * n, '{"k": ' * n + "1" + "}" * n):
        state = state_with(meta=lambda m: m.update({field: "DEEP"}))
        state["meta"] = np.array(state["meta"].item().replace('"DEEP"', deep))
        assert len(rejects(saved(state), ".")) < 400


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("bad", [0x110000, 0xFFFFFFFF])
def test_meta_with_characters_past_unicode(order, bad):
    # UTF-32 code units past U+10FFFF: numpy makes a SystemError of them, or
    # a broken str (here, the function's name).
    state = state_with()
    meta = state["meta"].item()
    codes = np.array([ord(c) for c in meta], dtype=order + "u4")
    codes[meta.index('"lecture"') + 1] = bad
    for edited in (codes, np.full(1, bad, dtype=order + "u4")):
        state["meta"] = edited.view(f"{order}U{len(edited)}").reshape(())
        rejects(saved(state), "meta.*not Unicode")
        rejects(state, "meta.*not Unicode")


@pytest.mark.parametrize("field", ["names", "shapes", "out_spec", "fn_name", "n_inputs",
                                   "ops", "fasttape_version"])
def test_missing_meta_field(field):
    rejects(saved(state_with(meta=lambda m: m.pop(field))), f"lacks '{field}'")


def test_unexpected_meta_field_and_entry():
    rejects(saved(state_with(meta=lambda m: m.update(comment="hi"))), "unexpected field 'comment'")
    rejects(saved(state_with(extra=np.zeros(2))), "unexpected entry 'extra'")


@pytest.mark.parametrize("edit, match", [
    (lambda m: m.update(n_inputs=2), "describe 3 input values, but n_inputs is 2"),
    (lambda m: m.update(n_inputs=-1), "n_inputs must be a non-negative integer"),
    (lambda m: m.update(n_inputs=3.0), "n_inputs must be a non-negative integer"),
    (lambda m: m.update(names=["w", "x"]), "one shape per name"),
    (lambda m: m.update(shapes=[[], [], [2]]), "describe 4 input values"),
    (lambda m: m.update(shapes=[[], [], [-1]]), "shape of 'y'"),
    (lambda m: m.update(shapes=[[], [], [1.0]]), "shape of 'y'"),
    (lambda m: m.update(shapes=[[], [], [1] * 40]), "shape of 'y'"),
    (lambda m: m.update(names=["w", "x", 3]), "names must be a list of strings"),
    (lambda m: m.update(fn_name=None), "fn_name must be"),
])
def test_names_and_shapes_inconsistent_with_inputs(edit, match):
    rejects(saved(state_with(meta=edit)), match)


def test_n_inputs_agreeing_with_shapes_but_not_the_tape():
    def edit(m):
        m.update(n_inputs=2, names=["w", "x"], shapes=[[], []])
    rejects(saved(state_with(meta=edit)), "inputs must be exactly the first 2 nodes")


@pytest.mark.parametrize("spec, match", [
    (["a", [2]], "out_spec describes 2 outputs, but the tape has 1"),
    (["t", ["s", "s"]], "out_spec describes 2 outputs"),
    (["t", []], "out_spec describes 0 outputs"),
    ("x", "malformed out_spec"), (["a"], "malformed out_spec"), (["q", []], "malformed out_spec"),
    (["t", "s"], "malformed out_spec"), (["a", [2.5]], "out_spec array shape"),
    (["t", [["t", [["l", ["s"]]]]]], None),  # nested but one leaf: loads
])
def test_out_spec_leaf_count(spec, match):
    data = saved(state_with(meta=lambda m: m.update(out_spec=spec)))
    if match is None:
        assert load_bytes(data)(1.0, 2.0, 3.0) is not None
    else:
        rejects(data, match)


def test_deeply_nested_out_spec():
    spec = "s"
    for _ in range(200):  # one leaf under 200 tuples: loads
        spec = ["t", [spec]]
    tape = load_bytes(saved(state_with(meta=lambda m: m.update(out_spec=spec))))
    value = tape(1.0, 2.0, 3.0)
    for _ in range(200):
        assert type(value) is tuple and len(value) == 1
        value = value[0]
    assert value == lecture(1.0, 2.0, 3.0)
    spec[1][0] = ["a", "s"]  # malformed at the bottom: named without recursion
    rejects(saved(state_with(meta=lambda m: m.update(out_spec=spec))), "out_spec array shape")
    spec[1][0] = ["q", []]
    rejects(saved(state_with(meta=lambda m: m.update(out_spec=spec))), "malformed out_spec")


# Deep outputs in a subprocess: tracing and replaying recurse once per level
# (and need a higher recursion limit at depth 1000), saving, pickling and
# loading must not (they run here under a limit of 150 frames).
DEEP = r'''
import io, pickle, sys
import numpy as np
import fasttape as ft

depth = int(sys.argv[1])

def nest(x):
    for _ in range(depth):
        x = (x,)
    return x

def leaf(v):
    for _ in range(depth):
        assert type(v) is tuple and len(v) == 1, v
        v = v[0]
    return v

def f(x, y):
    return nest(x * y + ft.sin(x))

sys.setrecursionlimit(20000)
tape = ft.trace(f, 0.5, 2.0)
buf = io.BytesIO()
sys.setrecursionlimit(150)
tape.save(buf)
loaded = ft.load(io.BytesIO(buf.getvalue()))
unpickled = pickle.loads(pickle.dumps(tape))
sys.setrecursionlimit(20000)
want = tape(0.5, 2.0), tape.jacobian(0.5, 2.0, wrt=(0, 1))
assert np.isclose(leaf(want[0]), 0.5 * 2.0 + np.sin(0.5), rtol=1e-15, atol=0)
assert np.isclose(leaf(want[1][0]), 2.0 + np.cos(0.5), rtol=1e-15, atol=0)
assert leaf(want[1][1]) == 0.5
for t in (loaded, unpickled):
    assert t._out_spec == tape._out_spec
    got = t(0.5, 2.0), t.jacobian(0.5, 2.0, wrt=(0, 1))
    assert leaf(got[0]) == leaf(want[0]) and leaf(got[1][0]) == leaf(want[1][0])
    assert leaf(got[1][1]) == leaf(want[1][1])
    assert t.vjp((0.5, 2.0), nest(1.0)) == (leaf(want[1][0]), 0.5)
print("ok")
'''


@pytest.mark.parametrize("depth", [150, 1000])
def test_deep_outputs_save_load_and_pickle(depth):
    root = os.path.dirname(os.path.dirname(os.path.abspath(ft.__file__)))
    env = dict(os.environ, PYTHONPATH=root, FASTTAPE_BACKEND=ft.backend)
    proc = subprocess.run([sys.executable, "-c", DEEP, str(depth)], capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def _set(key, node, value):
    """An edit of the lecture tape's file: key[node] = value (node -1 is the last)."""
    def edit(p):
        arr = to_state(ft.trace(lecture, 1.0, 2.0, 3.0))[key].copy()
        arr[node] = value(p) if callable(value) else value
        return {key: arr}
    return edit


@pytest.mark.parametrize("edit, match", [
    (_set("a", 3, 5), "first operand does not point backwards"),    # forward
    (_set("a", 3, 3), "first operand does not point backwards"),    # itself
    (_set("b", 4, -1), "second operand does not point backwards"),  # negative
    (_set("op", -1, 255), "opcode 255"),
    (_set("op", 3, 0), "inputs must be exactly the first 3 nodes"),
    (_set("outputs", 0, lambda p: p.n), "output index is out of range"),
    (_set("outputs", 0, -1), "output index is out of range"),
    (_set("b", 5, lambda p: len(p.pool)), "constant pool"),
])
def test_invalid_program(edit, match):
    tape = ft.trace(lecture, 1.0, 2.0, 3.0)
    p = tape._program  # l0 = w * x is node 3, l1 = l0 - y node 4, l2 = l1 ** 2 node 5
    assert [ops.OPS[c].kind for c in p.op[3:6]] == [ops.BINARY, ops.BINARY, ops.CONSTANT]
    rejects(saved(state_with(tape, **edit(p))), match)


def test_huge_and_overlapping_nary_counts():
    tape = ft.trace(nary, *CASES["nary"][1])
    p = tape._program
    nary_nodes = [i for i in range(p.n) if ops.OPS[p.op[i]].kind in ops.NARY]
    for count in (2**31 - 1, len(p.args), -1):
        b = p.b.copy()
        b[nary_nodes[0]] = count
        rejects(saved(state_with(tape, b=b)), "operand counts|operand list out of range")


@pytest.mark.parametrize("cut", [0, 1, 10, 100, -1, -22, -200])
def test_truncated_file(cut):
    data = saved(state_with())
    rejects(data[:cut], "truncated or corrupt|not a tape file|holds .* bytes")


@pytest.mark.parametrize("size", [2**31 - 16, 2**32 - 1])
def test_forged_entry_size_allocates_nothing(tmp_path, size):
    # A zip entry claiming gigabytes in a small file: refused before reading,
    # where reading from disk would have allocated a buffer of that size.
    import struct
    import tracemalloc
    data = bytearray(saved(state_with()))
    central = data.index(b"PK\x01\x02")
    data[18:26] = data[central + 20:central + 28] = struct.pack("<II", size, size)
    (tmp_path / "t").write_bytes(data)
    tracemalloc.start()
    try:
        with pytest.raises(ft.TapeError, match=f"entry 'meta' claims {size} bytes"):
            ft.load(tmp_path / "t")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * len(data)


def test_corrupted_bytes_fail_the_checksum():
    good = saved(state_with())
    data = bytearray(good)
    data[data.index("fasttape.tape".encode("utf-32-le")) + 4] ^= 0x01  # inside the meta text
    rejects(bytes(data), "truncated or corrupt.*CRC")
    data = bytearray(good)
    npy = data.index(b"\x93NUMPY", data.index(b"pool.npy"))
    at = npy + 10 + int.from_bytes(data[npy + 8:npy + 10], "little")  # the pool's data
    assert data[at:at + 8] == np.float64(2.0).tobytes()
    data[at + 6] ^= 0x10  # 2.0 -> another number: the CRC-32 must catch it
    rejects(bytes(data), "CRC")


def test_not_a_tape_file(tmp_path):
    rejects(b"", "truncated or corrupt")
    rejects(b"hello, world\n" * 10, "truncated or corrupt")
    npy = io.BytesIO()
    np.save(npy, np.zeros(3))
    rejects(npy.getvalue(), "truncated or corrupt")
    with pytest.raises(ft.TapeError, match="not a regular file"):
        ft.load(tmp_path)
    with pytest.raises(FileNotFoundError):
        ft.load(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("not a tape")
    with pytest.raises(ft.TapeError, match=r"notes\.txt' is truncated or corrupt"):
        ft.load(tmp_path / "notes.txt")
    (tmp_path / "cut.tape").write_bytes(saved(state_with())[:-30])
    with pytest.raises(ft.TapeError, match=r"cut\.tape' is truncated or corrupt"):
        ft.load(tmp_path / "cut.tape")
    other = io.BytesIO()
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("readme.txt", "hi")
    msg = rejects(other.getvalue(), "unexpected entry 'readme.txt'")
    assert "corrupt" not in msg


def test_compressed_or_pickled_entries_are_refused():
    buf = io.BytesIO()
    np.savez_compressed(buf, **to_state(ft.trace(lecture, 1.0, 2.0, 3.0)))
    rejects(buf.getvalue(), "compressed")
    state = state_with()
    state["op"] = state["op"].astype(object)
    rejects(saved(state), r"has dtype '\|O'")


def forged(key, header, version=(1, 0), data=None):
    """The lecture tape's file with entry key's .npy header text replaced."""
    state = state_with()
    body = header.encode("latin-1") + b"\n"
    width = 2 if version == (1, 0) else 4
    npy = (b"\x93NUMPY" + bytes(version) + len(body).to_bytes(width, "little") + body
           + (state[key].tobytes() if data is None else data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:  # stored, with correct CRC-32s
        for name, value in state.items():
            if name == key:
                zf.writestr(name + ".npy", npy)
            else:
                with zf.open(name + ".npy", "w") as f:
                    np.lib.format.write_array(f, value)
    return buf.getvalue()


def header(descr="'|u1'", fortran="False", shape=None):
    shape = shape or repr(to_state(ft.trace(lecture, 1.0, 2.0, 3.0))["op"].shape)
    return f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}"


def test_forged_header_that_is_valid_loads():
    tape = ft.trace(lecture, 1.0, 2.0, 3.0)
    assert_same_tape(tape, load_bytes(forged("op", header())), (1.0, 2.0, 3.0))
    assert_same_tape(tape, load_bytes(forged("op", header(), version=(2, 0))), (1.0, 2.0, 3.0))


@pytest.mark.parametrize("descr", [
    "'(<i4, 2)'", "'[(\"a\",\"<i4\")]'", "[('a', '<i4')]", "('<u1', (2,))", "'<i4,<i4'",
    "'(2,)u1'", "'|O'", "'<M8[s]'", "'|V1'", "'<U0'", "'<U99999999999'", "'zz'", "None", "5",
    "'((('", "b'|u1'"])
def test_forged_header_dtype(descr):
    rejects(forged("op", header(descr=descr)), "entry 'op' has .*dtype")


@pytest.mark.parametrize("shape", [
    "(4611686018427387904,)", "(" + "9" * 40 + ",)", "(2**62,)", "(-1,)", "(3, -3)", "[6]",
    "6", "(6.0,)", "(True,)", "(" + "1, " * 40 + ")", "('6',)",
    pytest.param("(" + "9" * 5000 + ",)", id="5000 digits")])
def test_forged_header_shape(shape):
    # Huge sizes are compared with the data, never allocated.
    rejects(forged("op", header(shape=shape)), "entry 'op' has (a .npy header that is not"
            "|40 dimensions; at most 32)|entry 'op' holds")


@pytest.mark.parametrize("text", [
    header(fortran="'yes'"), header(fortran="1"), "[1, 2]", "'text'", "{'descr': '|u1'}",
    header()[:-3] + ", 'x': 1}", pytest.param("(" * 1000, id="1000 parentheses"),
    pytest.param("{'descr': " + "[" * 300, id="300 brackets"), "{1: 2, [1]: 3}", "\x00",
    "__import__('os')", "\xff\xfe", "1e999999", "\"\"\"" + "a" * 10, "1if 1 else 2",
    header(descr="'\\q'"), pytest.param("-" * 5000 + "1", id="5000 minus signs"),
    header().replace("'fortran_order': False, ", "") + "'fortran_order': False, "])
def test_forged_header_text(text, recwarn):
    # Refused without Python's compiler: no warnings, no SyntaxError.
    rejects(forged("op", text), "entry 'op' has a .npy header that is not")
    assert not recwarn.list


@pytest.mark.parametrize("version", [(3, 0), (0, 0), (1, 1), (255, 255)])
def test_forged_header_version(version):
    rejects(forged("op", header(), version=version), "format version")


def test_forged_header_length():
    data = bytearray(forged("op", header()))
    at = data.index(b"\x93NUMPY", data.index(b"op.npy"))
    data[at + 8:at + 10] = (0xFFFF).to_bytes(2, "little")  # beyond the entry
    rejects(bytes(data), "truncated or corrupt.*CRC")  # the CRC-32 catches it first
    rejects(forged("op", header() + " " * 20000), "header of 2")


def test_bad_pickle_state():
    tape = ft.trace(lecture, 1.0, 2.0, 3.0)
    rejects(state_with(tape, op=tape._program.op.tolist()), "entry 'op' must be an array")
    with pytest.raises(ft.TapeError, match="dict"):
        ft.Tape._unpickle(["not", "a", "dict"])


# ------------------------------------------------------------------ fuzzing

# tests/fuzz_io.py runs each chunk of files in a subprocess of its own, so a
# crash is reported rather than killing the test run (faulthandler then
# prints where). Each damaged, edited or header-forged tape file must either
# raise TapeError at load, or load and replay to float64 results or to a
# deliberate TapeError / GuardError; damaged bytes must never load as a
# different tape. `python tests/fuzz_io.py --files 1000000` runs a long one.

def test_fuzz_damaged_files_never_crash_or_mislead():
    # The tapes are tiny, so loading dominates: about 1 ms a file on either
    # backend, a few seconds here.
    count = 5000
    fuzzer = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz_io.py")
    root = os.path.dirname(os.path.dirname(os.path.abspath(ft.__file__)))
    paths = [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths),
               FASTTAPE_BACKEND=ft.backend)
    proc = subprocess.run([sys.executable, fuzzer, "--files", str(count), "--jobs", "1",
                           "--seed", "20241126"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, (
        f"fuzzer exited {proc.returncode}\nstdout: {proc.stdout[-6000:]}\n"
        f"stderr: {proc.stderr[-3000:]}")
    report = json.loads(proc.stdout)
    assert report["backend"] == ft.backend and report["ran"] == count
    assert report["other exceptions"] == 0 and report["crashed chunks"] == 0
    outcomes = report["outcomes"]
    assert sum(outcomes.values()) == count
    # The mutations must reach both sides: many rejected, some still loading,
    # forged headers among both.
    assert sum(v for k, v in outcomes.items() if k.endswith("rejected")) > count // 3
    assert sum(v for k, v in outcomes.items() if k.endswith("replayed")) > count // 20
    assert outcomes["header: rejected"] > count // 5
    assert outcomes["header: replayed"] > count // 200
