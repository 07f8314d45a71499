"""Fuzz ft.load with damaged and forged tape files.

    python tests/fuzz_io.py --files 1000000 [--seed 20241126] [--jobs 2]

Each file is one of a few saved tapes (in the current format, and in
version 1's) with its bytes flipped, spliced or truncated, an array or
metadata entry edited (the op rows included), or one entry's .npy header
forged (dtype strings such as '(<i4, 2)' or structured ones, huge or
negative shapes, junk fortran_order, non-dict headers, other versions).
Each must either raise TapeError at load, or load and replay to float64
results (NaN and infinities allowed) or to a deliberate TapeError /
GuardError; damaged bytes must never load as a different tape. Anything
else is a failure. Files are fuzzed in chunks, each in a subprocess of its
own, so a crash is counted (with its chunk, to rerun) instead of ending the
run. Prints the counts as JSON; exits 1 on any failure or crash. The same
seed gives the same files.
"""

import argparse
import faulthandler
import io
import json
import os
import subprocess
import sys
import tempfile
import traceback
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import fasttape as ft
from fasttape import ops
from fasttape.io import pack

CHUNK = 20000


# ------------------------------------------------------------------ the tapes

def lecture(w, x, y):
    return (w * x - y) ** 2 + w ** 2


def layer(W, x):
    h = ft.tanh(W @ x)
    return h, ft.sum(h * h), [x[0] / 3.0, ft.exp(x[1])]


def nary(p, x):
    return ft.dot(p, x) + ft.sum(list(p * p)) + ft.dot(np.array([0.5, -1.0, 2.0]), x)


def control(x, y):
    z = ft.where(x > y, x * y, x - y)
    if x > 0:
        return z + ft.maximum(x, y) ** 2
    return z


def to_state(tape):
    """The entries tape.save writes."""
    return pack(*tape._as_data())


def version_1(state):
    """The same entries in format version 1: the whole op table as
    [code, name, kind] rows, and opcodes of this build's table."""
    meta = json.loads(state["meta"].item())
    code = {op.name: op.code for op in ops.OPS}
    codes = np.array([code[row["name"]] for row in meta.pop("ops")], np.uint8)
    meta.update(format_version=1, op_table=[[op.code, op.name, op.kind] for op in ops.OPS])
    return dict(state, meta=np.array(json.dumps(meta)), op=codes[state["op"]])


def saved(state):
    buf = io.BytesIO()
    np.savez(buf, **state)
    return buf.getvalue()


def bases():
    out = []
    for fn, ex in [(lecture, (1.0, 2.0, 3.0)),
                   (layer, (np.arange(6.0).reshape(2, 3) / 5, np.array([0.3, -1.0, 2.0]))),
                   (nary, (np.array([1.0, -2.0, 0.5]), np.array([0.1, 0.2, 3.0]))),
                   (control, (1.5, 0.5))]:
        tape = ft.trace(fn, *ex)
        state = to_state(tape)
        for written in (state, version_1(state)):  # (tape, entries, file, entries saved now)
            out.append((tape, written, saved(written), state))
    return out


def leaves(x):
    if isinstance(x, (tuple, list)):
        return [leaf for item in x for leaf in leaves(item)]
    return [x]


def replay(tape, rng):
    """Some replays of every kind; fails unless each result is float64."""
    args = [rng.standard_normal(s) if s else float(rng.standard_normal()) for s in tape._shapes]
    out = [tape(*args), tape.vjp(args, tape(*args)), tape.jvp(args, args)]
    if tape._out_spec == "s":
        wrt = tuple(range(len(args)))
        out += [tape.value_and_grad(*args, wrt=wrt), tape.hessian(*args, wrt=wrt)]
    batch = [np.stack([np.asarray(a)] * 2) for a in args]
    out.append(tape(*batch, in_axes=0))
    for leaf in leaves(out):  # any float64, NaN and infinities included (IEEE)
        assert isinstance(leaf, (float, np.ndarray)), type(leaf)
        assert np.asarray(leaf).dtype == np.float64


# ------------------------------------------------------------------ mutations

INT_EDGES = [-1, -2**31, 2**31 - 1, 2**31 - 2]


class Mutator:
    def __init__(self, rng):
        self.rng = rng
        self.kinds = []  # of the nodes of the tape being edited

    def pick(self, options):
        return options[int(self.rng.integers(0, len(options)))]

    # ---------------------------------------------------- array and meta edits

    def node_edit(self, state, n, n_in):
        i = int(self.rng.integers(n_in, n)) if n > n_in else 0
        key = self.pick(["a", "b"])
        arr = state[key].copy()
        arr[i] = self.pick([i, i + 1, n, n + 7, -1, -i - 1] + INT_EDGES)
        state[key] = arr

    def opcode_edit(self, state, n, n_in):
        arr = state["op"].copy()
        i = int(self.rng.integers(0, n))
        rows = int(arr.max()) + 1  # (at least) the rows the file lists
        arr[i] = (self.rng.integers(rows, 256) if self.rng.random() < 0.3
                  else self.rng.integers(0, rows))
        state["op"] = arr

    def length_edit(self, state, n, n_in):
        key = self.pick(["op", "a", "b", "pool", "args", "outputs"])
        arr = state[key]
        extra = arr[:1] if len(arr) else np.zeros(1, arr.dtype)
        state[key] = arr[:-1] if self.rng.random() < 0.5 else np.concatenate([arr, extra])

    def dtype_edit(self, state, n, n_in):
        key = self.pick(["op", "a", "b", "pool", "args", "outputs"])
        dtype = self.pick(["int64", "int16", "float32", "float64", "uint8", "int32", "bool",
                           "complex128", "<U3", "object", ">i4", ">f8"])
        state[key] = state[key].astype(dtype)

    def ndim_edit(self, state, n, n_in):
        key = self.pick(["op", "a", "b", "pool", "args", "outputs", "meta"])
        arr = state[key]
        state[key] = arr[None] if self.rng.random() < 0.7 or arr.size == 0 else arr.reshape(-1)[0]

    def nary_edit(self, state, n, n_in):
        nodes = [i for i in range(n) if self.kinds[i] in ops.NARY]
        if not nodes:
            return self.node_edit(state, n, n_in)
        i = int(self.pick(nodes))
        key = self.pick(["a", "b"])
        arr = state[key].copy()
        arr[i] = self.pick(INT_EDGES + [len(state["args"]), len(state["args"]) + 1, 2**30])
        state[key] = arr

    def args_edit(self, state, n, n_in):
        arr = state["args"].copy()
        if len(arr):
            arr[int(self.rng.integers(0, len(arr)))] = self.pick(INT_EDGES + [0, n, n - 1, 3])
        state["args"] = arr

    def outputs_edit(self, state, n, n_in):
        arr = state["outputs"].copy()
        arr[int(self.rng.integers(0, len(arr)))] = self.pick(INT_EDGES + [n, n - 1, 0])
        state["outputs"] = arr

    def pool_edit(self, state, n, n_in):
        arr = state["pool"].copy()
        if len(arr):
            arr[int(self.rng.integers(0, len(arr)))] = self.pick(
                [np.nan, np.inf, -np.inf, 1e308, 0.0, -0.0])
        state["pool"] = arr

    def meta_edit(self, state, n, n_in):
        text = state["meta"].item()
        meta = json.loads(text)
        choice = int(self.rng.integers(0, 13))
        key = "ops" if "ops" in meta else "op_table"  # the op rows: version 2 or 1
        if choice == 0:
            meta["n_inputs"] += int(self.pick([-1, 1, 10**12]))
        elif choice == 1:
            meta["format_version"] = int(self.pick([0, 1, 2, 3, 10**20]))
        elif choice == 2:
            meta["out_spec"] = self.pick(["s", ["a", [2]], ["t", []], ["l", ["s", "s"]], 3,
                                          ["a", [2**31 - 1] * 32], ["a", [-1]]])
        elif choice == 3:
            meta["shapes"] = meta["shapes"][::-1] + [[]]
        elif choice == 4:
            rows = meta[key]
            j = int(self.rng.integers(0, len(rows)))
            rows[j], rows[-1] = rows[-1], rows[j]
        elif choice == 5:
            meta.pop(self.pick(list(meta)))
        elif choice == 6:
            state["meta"] = np.array(text[:int(self.rng.integers(0, len(text)))])
            return
        elif choice == 7:  # a prefix of the op rows: loads if the nodes fit it
            del meta[key][int(self.rng.integers(0, len(meta[key]))):]
        elif choice == 8:
            meta["n_inputs"] = self.pick([10**30, 2**63, -2**63, 1e300, None, "3"])
        elif choice == 9:
            meta["shapes"] = [self.pick([[2**31 - 1] * 32, [10**30], [0, 10**9]])
                              for _ in meta["shapes"]]
        elif choice == 10:  # a row renamed, or given another kind or formula
            row = meta[key][int(self.rng.integers(0, len(meta[key])))]
            field = self.pick(list(row) if isinstance(row, dict) else [0, 1, 2])
            row[field] = self.pick(["mul", "sin", "sum", "binary", "select", "x", "", "erf",
                                    0, 1, 255, 1.0, None, ["x"]])
        elif choice == 11:  # an extra row, used or not
            meta[key].insert(int(self.rng.integers(0, len(meta[key]) + 1)),
                             self.pick([dict(meta[key][0]) if key == "ops" else [0, "a", "b"],
                                        "row", [], {}]))
        else:
            meta["names"] = meta["names"][:-1]
        state["meta"] = np.array(json.dumps(meta))

    def entry_edit(self, state, n, n_in):
        if self.rng.random() < 0.5:
            del state[str(self.pick(list(state)))]
        else:
            state["extra"] = np.zeros(3)

    EDITS = ["node_edit", "opcode_edit", "length_edit", "dtype_edit", "ndim_edit", "nary_edit",
             "args_edit", "outputs_edit", "pool_edit", "meta_edit", "entry_edit"]

    def edit(self, state, tape):
        name = self.pick(self.EDITS)
        edited = dict(state)
        self.kinds = [ops.OPS[c].kind for c in tape._program.op]
        getattr(self, name)(edited, len(state["op"]), tape.n_inputs)
        return name, saved(edited)

    # ---------------------------------------------------- damaged bytes

    def truncate(self, data):
        return data[:int(self.rng.integers(0, len(data)))]

    def flip(self, data):
        data = bytearray(data)
        for _ in range(int(self.rng.integers(1, 9))):
            data[int(self.rng.integers(0, len(data)))] ^= int(self.rng.integers(1, 256))
        return bytes(data)

    def splice(self, data):
        i, j = sorted(self.rng.integers(0, len(data), 2))
        return data[:i] + data[j:]

    # ---------------------------------------------------- forged zip records

    # (signature, [(offset, width), ...]) of the local header, central
    # directory and end records: flags, method, CRC, sizes, name and extra
    # lengths, entry counts and offsets.
    RECORDS = [(b"PK\x03\x04", [(6, 2), (8, 2), (14, 4), (18, 4), (22, 4), (26, 2), (28, 2)]),
               (b"PK\x01\x02", [(8, 2), (10, 2), (16, 4), (20, 4), (24, 4), (28, 2), (30, 2),
                                 (32, 2), (34, 2), (42, 4)]),
               (b"PK\x05\x06", [(8, 2), (10, 2), (12, 4), (16, 4), (20, 2)])]

    def zipfield(self, data):
        """One field of one zip record set to an edge value."""
        sig, fields = self.pick(self.RECORDS)
        starts, at = [], data.find(sig)
        while at >= 0:
            starts.append(at)
            at = data.find(sig, at + 1)
        offset, width = self.pick(fields)
        at = self.pick(starts) + offset
        old = int.from_bytes(data[at:at + width], "little")
        top = 2 ** (8 * width) - 1
        value = self.pick([0, 1, top, top - 1, old + 1, max(old - 1, 0), old ^ 0x800, old | 1,
                           old ^ 8, 99, int(self.rng.integers(0, top + 1))]) & top
        return data[:at] + value.to_bytes(width, "little") + data[at + width:]

    # ---------------------------------------------------- forged .npy headers

    DESCRS = ["'(<i4, 2)'", "'[(\"a\",\"<i4\")]'", "[('a', '<i4')]", "[('a', '<i4', (2,))]",
              "'<i4,<i4'", "'(2,)<i4'", "'<i4 (2,)'", "('<i4', (2,))", "('<i4', 2)", "'|O'",
              "'O'", "'<U99999999999'", "'<U0'", "'|S0'", "'|V8'", "'<M8[s]'", "'<m8'",
              "'|b1'", "'<c16'", "'<f2'", "'>f8'", "'<i8'", "'=i4'", "'<U2'", "'<f16'", "''",
              "' '", "'<i4\\x00'", "'x' * 3", "5", "None", "{'a': 1}", "b'<i4'", "'<\u0131\u0034'",
              "'(' * 5", "'" + "(" * 300 + "'", "'i4,' * 50", "'<i4' '<i4'", "'>u1'", "'|u1'"]
    SHAPES = ["(4611686018427387904,)", "(" + "9" * 30 + ",)", "(-1,)", "(3, -3)", "[3]", "3",
              "(3.0,)", "(True,)", "()", "(" + "1, " * 40 + ")", "(" + "0, " * 70 + ")",
              "(9223372036854775807, 9223372036854775807)", "('3',)", "(" + "9" * 5000 + ",)",
              "(2**62,)", "(-9223372036854775808,)", "(1, -1)", "None", "(0,)",
              "(0, 4611686018427387904, 4611686018427387904)", "(0, -1)"]
    FORTRANS = ["False", "True", "'yes'", "0", "1", "None", "[]"]
    JUNK = ["[1, 2]", "'str'", "1", "{1, 2}", "(" * 1000, "{" * 300, "{'descr': " + "[" * 300,
            "\x00", "", "lambda: 0", "__import__('os')", "{**{}}", "{'a': 1}", "...",
            "{'descr': '<i4', 'fortran_order': False, 'shape': (5,)", "\xff\xfe junk",
            "{'descr': '<i4', 'fortran_order': False, 'shape': (1,), 'shape': (2,)}",
            "{'descr': '<i4', 'shape': (1,)}", "{1: 2, [1]: 3}", "-'a'", "1e999999",
            "{'descr': '<i4', 'fortran_order': False, 'shape': (5,), 'x': 1}",
            "\"\"\"" + "a" * 100, "\\", "# comment", "{'descr': '<i4'}\n\x00\x00"]

    def header(self, state):
        """The state saved with one entry's .npy header forged."""
        key = self.pick(list(state))
        arr = state[key]
        parts = (self.pick(self.DESCRS) if self.rng.random() < 0.6 else repr(arr.dtype.str),
                 self.pick(self.FORTRANS) if self.rng.random() < 0.3 else "False",
                 self.pick(self.SHAPES) if self.rng.random() < 0.5 else repr(arr.shape))
        if self.rng.random() < 0.15:
            text = self.pick(self.JUNK)
        else:
            text = "{'descr': %s, 'fortran_order': %s, 'shape': %s, }" % parts
        text += " " * int(self.rng.integers(0, 64)) + "\n"
        body = text.encode("latin-1", "replace")
        version = self.pick([(1, 0)] * 6 + [(2, 0)] * 2 + [(3, 0), (0, 0), (1, 1), (255, 255)])
        width = 4 if version[0] >= 2 else 2
        length = len(body)
        if self.rng.random() < 0.1:
            length = int(self.rng.integers(0, 2 ** (8 * width)))
        data = arr.tobytes()
        if self.rng.random() < 0.2:
            data = data[:int(self.rng.integers(0, len(data) + 1))]
        elif self.rng.random() < 0.1:
            data = bytes(int(self.rng.integers(0, 4 * len(data) + 9)))
        elif self.rng.random() < 0.1:  # any bytes: text past U+10FFFF, NaNs, wild indices
            data = self.rng.bytes(len(data))
        npy = (b"\x93NUMPY" + bytes(version) + length.to_bytes(width, "little")
               + body + data)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
            for name, value in state.items():
                if name == key:
                    zf.writestr(name + ".npy", npy)
                else:
                    with zf.open(name + ".npy", "w") as f:
                        np.lib.format.write_array(f, np.asanyarray(value))
        return buf.getvalue()


# ------------------------------------------------------------------ a chunk

def fuzz_chunk(count, seed, chunk):
    """Counts of outcomes (and the first failures) of count files."""
    rng = np.random.default_rng([seed, chunk])
    mut = Mutator(rng)
    outcomes, failures = {}, []
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "t.tape")
    tapes = bases()
    for k in range(count):
        tape, state, data, now = tapes[k % len(tapes)]
        what = mut.pick(["truncate", "flip", "splice", "zipfield", "edit", "edit", "header",
                         "header"])
        if what == "edit":
            what, data = mut.edit(state, tape)
        elif what == "header":
            data = mut.header(state)
        else:
            data = getattr(mut, what)(data)
        if k % 10 == 0:  # a file on disk now and then; in memory is the same reader, faster
            with open(path, "wb") as f:
                f.write(data)
            source = path
        else:
            source = io.BytesIO(data)
        try:
            outcome = load_and_replay(source, what, now, rng)
        except Exception:
            failures.append(f"chunk {chunk}, file {k} ({what}):\n{traceback.format_exc()}")
            outcome = "FAILED"
        outcomes[f"{what}: {outcome}"] = outcomes.get(f"{what}: {outcome}", 0) + 1
    if os.path.exists(path):
        os.remove(path)
    os.rmdir(tmp)
    return {"outcomes": outcomes, "failures": failures[:5], "n_failures": len(failures)}


def load_and_replay(source, what, now, rng):
    try:
        loaded = ft.load(source)
    except ft.TapeError:
        return "rejected"
    # Damaged bytes (not deliberate edits) must not load as another tape:
    # saved now, it is the entries the undamaged file's tape saves.
    if what in ("truncate", "flip", "splice", "zipfield"):
        for key, value in to_state(loaded).items():
            assert np.array_equal(value, now[key]), f"{key} changed"
    try:
        replay(loaded, rng)
        return "replayed"
    except (ft.TapeError, ft.GuardError):  # documented, deliberate refusals
        return "refused at replay"


# ------------------------------------------------------------------ the run

def run_chunk(k, size, seed):
    """One chunk in a subprocess: (its report, or None if it crashed; stderr)."""
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--chunk", str(k),
                           "--files", str(size), "--seed", str(seed)],
                          capture_output=True, text=True)
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        return None, f"chunk {k} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1]), ""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=20241126)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--chunk", type=int, default=None, help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.chunk is not None:  # a worker: one chunk, its report on stdout
        faulthandler.enable()
        report = fuzz_chunk(opts.files, opts.seed, opts.chunk)
        print(json.dumps(report))
        return 1 if report["n_failures"] else 0
    sizes = [min(CHUNK, opts.files - start) for start in range(0, opts.files, CHUNK)]
    with ThreadPoolExecutor(max(1, opts.jobs)) as pool:
        results = list(pool.map(run_chunk, range(len(sizes)), sizes,
                                [opts.seed] * len(sizes)))
    outcomes, failures, crashes = {}, [], []
    for (report, err), size in zip(results, sizes):
        if report is None:
            crashes.append(err)
            continue
        for name, n in report["outcomes"].items():
            outcomes[name] = outcomes.get(name, 0) + n
        failures += report["failures"]
    done = sum(outcomes.values())
    n_failed = sum(n for name, n in outcomes.items() if name.endswith("FAILED"))
    summary = {
        "backend": ft.backend, "seed": opts.seed, "files": opts.files, "ran": done,
        "rejected (TapeError at load)": sum(
            n for name, n in outcomes.items() if name.endswith("rejected")),
        "loaded": sum(n for name, n in outcomes.items()
                      if name.endswith("replayed") or name.endswith("refused at replay")),
        "other exceptions": n_failed, "crashed chunks": len(crashes),
        "outcomes": dict(sorted(outcomes.items())), "failures": failures[:5],
        "crashes": crashes[:3]}
    print(json.dumps(summary, indent=1))
    return 1 if n_failed or crashes or done != opts.files else 0


if __name__ == "__main__":
    sys.exit(main())
