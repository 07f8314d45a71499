"""Run the benchmark suite (or read its JSON) and print a markdown table of ratios.

    python benchmarks/report.py                 # runs `pytest benchmarks`, single-threaded
    python benchmarks/report.py --json out.json # also keeps the JSON
    python benchmarks/report.py --read out.json # only formats an earlier run
    python benchmarks/report.py -- -k W2        # more pytest arguments after --

Within each group (one workload) the baseline is fasttape's kernel row; a row's
"ratio" is its median time over the baseline's. Each group also gets
"fasttape / best peer": the kernel's median over the fastest peer's (peers are
everything not fasttape: hand-written NumPy / Python, PyTorch, JAX, CasADi), so
below 1 means fasttape is faster. Recording groups compare time per node and
also show nodes per second. A summary checks the project's targets (issue 5);
its "limit" column is the kernel's time over the group's hand-fused C floor
(a row of role "limit", neither fasttape nor a peer), how far from the limit.
A second summary checks the tape compiler's targets (issue 14) on every
program row, plain and idiomatic, each with its own limit where there is one;
a third, the threaded sweeps' (issue 15): the groups marked "threads" time the
same call on one thread and on two.

The run is single-threaded (OMP/MKL/OPENBLAS_NUM_THREADS=1, XLA_FLAGS for
JAX, torch.set_num_threads(1) in the suite, FASTTAPE_NUM_THREADS=1 but for
the threads groups) and unsets OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE for its own run only: on some machines they are set to work
around old OpenBLAS builds and make a current NumPy slower.
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SINGLE_THREAD = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                  "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")}
SINGLE_THREAD["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
SINGLE_THREAD["JAX_PLATFORMS"] = "cpu"
SINGLE_THREAD["FASTTAPE_NUM_THREADS"] = "1"  # (the threads groups set their own)
SLOW_BLAS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

# Display names, by the part of a test's name after its workload.
LABELS = {
    "kernel": "fasttape kernel",
    "gradient": "fasttape value and gradient",
    "hessian_numpy": "NumPy dense Hessian by hand",
    "kernel_value_only": "fasttape kernel, value only",
    "twin": "fasttape pure twin",
    "plain_python": "Python by hand",
    "numpy": "NumPy by hand",
    "torch": "PyTorch eager",
    "torch_eager": "PyTorch eager",
    "torch_func": "torch.func",
    "torch_compile": "torch.compile",
    "jax_jit": "JAX jit",
    "jax_make_jaxpr": "JAX make_jaxpr",
    "casadi": "CasADi SX",
    "sklearn": "scikit-learn",
    "plain_numpy": "fasttape kernel, the loss in plain NumPy",
    "plain_sum": "fasttape kernel, `.sum()` instead of ft.sum",
    "batch_matrix": "fasttape kernel, the batch as one matrix in plain NumPy",
    "all_gradients": "fasttape kernel, all three gradients (wrt=(0, 1, 2))",
    "transform_all_gradients": "fasttape kernel, all three through ft.value_and_grad",
    "jax_scan": "JAX jit, lax.scan",
    "limit": "hand-fused C (the limit)",
    "transform": "fasttape kernel, through ft.value_and_grad",
    "transform_check (lecture)": "the check, for the lecture (reads nothing else)",
    "transform_check (global number)": "the check, reading a global number",
    "transform_check (global array)": "the check, reading a global array of 1,000",
}
for _case in ("W2-4096", "W3-256", "W2-32"):  # (benchmarks/test_bench_threads.py)
    LABELS[f"one_thread ({_case})"] = "fasttape kernel, one thread"
    LABELS[f"two_threads ({_case})"] = "fasttape kernel, two threads"

# The targets of issue 5: (group, what, test) with test(kernel, best_peer, rows)
# returning (measured text, met?) or None when the rows needed are missing.
US = 1e-6


def _abs_target(limit_s):
    def test(kernel, peer, rows):
        if kernel is None:
            return None
        t = kernel["stats"]["median"]
        return f"{_fmt_time(t)}", t < limit_s
    return test


def _peer_target(limit, only=None):
    def test(kernel, peer, rows):
        if only is not None:
            peer = min((b for b in rows if _label(b) == only), default=None,
                       key=lambda b: _per_unit(b))
        if kernel is None or peer is None:
            return None
        r = _per_unit(kernel) / _per_unit(peer)
        return f"{r:.2f}x {LABELS.get(_label(peer), _label(peer))}", r <= limit
    return test


def _rate_target(nodes_per_s):
    def test(kernel, peer, rows):
        if kernel is None or "nodes" not in kernel.get("extra_info", {}):
            return None
        rate = 1.0 / _per_unit(kernel)
        return f"{rate / 1e6:.2f} M nodes/s", rate >= nodes_per_s
    return test


TARGETS = [
    ("W1 lecture replay", "value and gradient under 1 µs", _abs_target(1 * US)),
    ("W1 lecture eager", "record + backward under 4 µs", _abs_target(4 * US)),
    ("W1 transform check", "a transform's freshness check: at most 0.2 µs", _abs_target(0.2 * US)),
    ("W2 classifier B=1", "at most 0.5x best peer", _peer_target(0.5)),
    ("W2 classifier B=32", "at most 0.5x best peer", _peer_target(0.5)),
    ("W2 classifier B=256", "at most 0.5x best peer", _peer_target(0.5)),
    ("W2 classifier B=4096", "at most 0.7x best peer", _peer_target(0.7)),
    ("W3 digits B=256", "at most 0.8x best peer", _peer_target(0.8)),
    ("W3 digits SGD to 95%", "no slower than NumPy by hand", _peer_target(1.0, only="numpy")),
    ("F1 fit digits 64-64-10", "at most 0.5x scikit-learn's fit (issue 16)",
     _peer_target(0.5, only="sklearn")),
    ("F2 fit 784-128-10", "at most 1.0x scikit-learn's fit (issue 16)",
     _peer_target(1.0, only="sklearn")),
    ("W4 rosenbrock n=100", "under 3.5 µs", _abs_target(3.5 * US)),
    ("W4 rosenbrock n=10000", "at most 1.0x JAX jit", _peer_target(1.0, only="jax_jit")),
    ("W5 recording traced", "at least 3 M nodes/s", _rate_target(3e6)),
    ("S1 hvp n=10000", "within 4x of one gradient", _peer_target(4.0, only="gradient")),
    ("S2 hessian n=100", "within 2x of NumPy's dense form", _peer_target(2.0, only="hessian_numpy")),
]


# The targets of issue 14 (the tape compiler), on each program class written
# plainly and idiomatically: (group, rows, what, test) with test(row, group rows)
# returning (measured text, met?) or None. Rows are labels (see _label).
def _vs(limit, only=None):
    """The row over the best peer (or the peer `only`) at most `limit`."""
    def test(row, rows):
        peers = [b for b in rows if _role(b) == "peer" and (only is None or _label(b) == only)]
        if not peers:
            return None
        peer = min(peers, key=_per_unit)
        r = _per_unit(row) / _per_unit(peer)
        return f"{r:.2f}x {_name(peer)}", r <= limit
    return test


def _under(limit_s):
    def test(row, rows):
        t = row["stats"]["median"]
        return _fmt_time(t), t < limit_s
    return test


def _and_floor(test, within):
    """test, and the row within `within` times the C floor of its group."""
    def both(row, rows):
        first = test(row, rows)
        floor = _limit_ratio(row, rows)
        if first is None or floor is None:
            return first
        return f"{first[0]}; {floor:.1f}x the C floor", first[1] and floor <= within
    return both


TARGETS_14 = [
    ("W1 lecture replay", ("all_gradients", "transform_all_gradients"),
     "all gradients under 0.7 µs", _under(0.7 * US)),
    ("W4 rosenbrock n=10000", ("kernel", "plain_sum"),
     "at most 0.5x best peer, within 6x of the C floor", _and_floor(_vs(0.5), 6.0)),
    ("W3 digits B=256", ("plain_numpy", "batch_matrix"), "at most 0.7x NumPy by hand",
     _vs(0.7, only="numpy")),
    ("X1 logistic d=100 B=1024", ("kernel", "plain_numpy"), "at most 0.5x NumPy by hand",
     _vs(0.5, only="numpy")),
    ("X2 relu 784-128-10 B=128", ("kernel", "plain_numpy"), "at most 1.0x NumPy by hand",
     _vs(1.0, only="numpy")),
    ("X3 rk4 B=1", ("kernel",), "at most 0.5x CasADi", _vs(0.5, only="casadi")),
    ("X3 rk4 B=512", ("kernel", "plain_numpy"), "at most 0.7x JAX lax.scan",
     _vs(0.7, only="jax_scan")),
]


# The targets of issue 15 (threaded sweeps): two threads over one, per group.
# At B = 32 the call stays on one thread: "no slower" allows timing noise (3 %).
TARGETS_15 = [
    ("W2 classifier B=4096, threads", "at least 1.8x", 1.8),
    ("W3 digits B=256, threads", "at least 1.6x", 1.6),
    ("W2 classifier B=32, threads", "no slower than one thread", 0.97),
]


def summary_15(data):
    """Issue 15's targets: one thread against two, one line a group."""
    groups = {group: rows for group, rows, _, _ in grouped(data)}
    lines = ["| workload | one thread | two threads | speedup | target | met |",
             "|---|---:|---:|---:|---|:---:|"]
    for group, what, least in TARGETS_15:
        rows = groups.get(group, [])
        by = {b.get("extra_info", {}).get("threads"): b for b in rows}
        if 1 not in by or 2 not in by:
            continue
        one, two = by[1]["stats"]["median"], by[2]["stats"]["median"]
        mark = "yes" if one / two >= least else "**no**"
        lines.append(f"| {group} | {_fmt_time(one)} | {_fmt_time(two)} | {one / two:.2f}x | "
                     f"{what} | {mark} |")
    return "\n".join(lines)


def run_suite(json_path, extra):
    env = dict(os.environ, **SINGLE_THREAD)
    for var in SLOW_BLAS:
        env.pop(var, None)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "pytest", HERE, "-q", "-p", "no:cacheprovider",
           f"--benchmark-json={json_path}", *extra]
    print("$", " ".join(cmd), file=sys.stderr)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"the benchmark run failed (exit code {proc.returncode})")
    return elapsed


# --------------------------------------------------------------- rows

def _role(bench):
    role = bench.get("extra_info", {}).get("role")
    if role:
        return role
    name = bench["name"]  # a JSON from before roles: guess from the name
    return "kernel" if "kernel" in name else "fasttape" if "twin" in name else "peer"


def _label(bench):
    """'test_w2_peer[32-jax_jit]' -> 'jax_jit'; 'test_w1_eager_kernel' -> 'kernel'."""
    base = bench["name"].split("::")[-1]
    m = re.match(r"test_(\w+?)(?:\[(.*)\])?$", base)
    stem, params = (m.group(1), m.group(2)) if m else (base, None)
    parts = stem.split("_")
    if re.fullmatch(r"[wsxf]\d+", parts[0]):
        parts = parts[1:]
    if parts and parts[0] in ("eager", "traced", "sgd", "fit") and len(parts) > 1:
        parts = parts[1:]
    if parts == ["peer"] and params:
        return params.split("-")[-1]
    if params and not re.fullmatch(r"[\d-]+", params):  # a named case: W1 transform check
        return "_".join(parts) + f" ({params})"
    return "_".join(parts) or base


def _per_unit(bench):
    """Median seconds per call, or per node for recording rows."""
    nodes = bench.get("extra_info", {}).get("nodes")
    return bench["stats"]["median"] / (nodes or 1)


def _fmt_time(seconds):
    us = seconds * 1e6
    if us >= 1e5:
        return f"{us / 1e3:,.0f} ms"
    if us >= 1e4:
        return f"{us / 1e3:.1f} ms"
    if us >= 100:
        return f"{us:,.0f} µs"
    return f"{us:.2f} µs"


def _natural(text):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def grouped(data):
    groups = {}
    for bench in data["benchmarks"]:
        groups.setdefault(bench.get("group") or "(no group)", []).append(bench)
    out = []
    for group in sorted(groups, key=_natural):
        rows = sorted(groups[group], key=_per_unit)
        kernel = next((b for b in rows if _role(b) == "kernel"), None)
        peers = [b for b in rows if _role(b) == "peer"]
        out.append((group, rows, kernel, peers[0] if peers else None))
    return out


def _limit_ratio(row, rows):
    """row's time over its group's C floor, or None without one."""
    limit = next((b for b in rows if _role(b) == "limit"), None)
    return _per_unit(row) / _per_unit(limit) if limit and row else None


def _name(bench):
    return LABELS.get(_label(bench), _label(bench))


def summary(data):
    """One line a group: the kernel, the best peer, their ratio, the target."""
    targets = {g: (what, test) for g, what, test in TARGETS}
    lines = ["| workload | fasttape kernel | best peer | fasttape / best peer | "
             "target | measured | met | limit |",
             "|---|---:|---|---:|---|---:|:---:|---:|"]
    for group, rows, kernel, peer in grouped(data):
        k = _fmt_time(kernel["stats"]["median"]) if kernel else "–"
        p = f"{_name(peer)}, {_fmt_time(peer['stats']['median'])}" if peer else "–"
        ratio = f"{_per_unit(kernel) / _per_unit(peer):.2f}" if kernel and peer else "–"
        what, result = "", None
        if group in targets:
            what, test = targets[group]
            result = test(kernel, peer, rows)
        measured, met = result if result else ("–", None)
        mark = {True: "yes", False: "**no**", None: ""}[met]
        floor = _limit_ratio(kernel, rows)
        limit = f"{floor:.1f}x" if floor is not None else "–"
        lines.append(f"| {group} | {k} | {p} | {ratio} | {what} | {measured} | {mark} | "
                     f"{limit} |")
    return "\n".join(lines)


def summary_14(data):
    """Issue 14's targets: one line a program row (plain and idiomatic)."""
    groups = {group: rows for group, rows, _, _ in grouped(data)}
    lines = ["| workload | program | median | target | measured | met | limit |",
             "|---|---|---:|---|---:|:---:|---:|"]
    for group, labels, what, test in TARGETS_14:
        for label in labels:
            rows = groups.get(group, [])
            row = next((b for b in rows if _label(b) == label), None)
            if row is None:
                continue
            result = test(row, rows)
            measured, met = result if result else ("–", None)
            mark = {True: "yes", False: "**no**", None: ""}[met]
            floor = _limit_ratio(row, rows)
            limit = f"{floor:.1f}x" if floor is not None else "–"
            lines.append(f"| {group} | {_name(row)} | {_fmt_time(row['stats']['median'])} | "
                         f"{what} | {measured} | {mark} | {limit} |")
    return "\n".join(lines)


def table(data):
    lines = []
    for group, rows, kernel, peer in grouped(data):
        recording = any("nodes" in b.get("extra_info", {}) for b in rows)
        head = "| benchmark | median | min | rounds | ratio to kernel |"
        rule = "|---|---:|---:|---:|---:|"
        if recording:
            head += " nodes/s |"
            rule += "---:|"
        lines += [f"#### {group}", "", head, rule]
        for b in rows:
            s = b["stats"]
            mark = " (baseline)" if b is kernel else ""
            ratio = f"{_per_unit(b) / _per_unit(kernel):.2f}" if kernel else "–"
            line = (f"| {_name(b)}{mark} | {_fmt_time(s['median'])} | {_fmt_time(s['min'])} | "
                    f"{s['rounds']} | {ratio} |")
            if recording:
                line += f" {1.0 / _per_unit(b) / 1e6:.2f} M |"
            lines.append(line)
        if kernel and peer:
            lines.append("")
            lines.append(f"fasttape / best peer ({_name(peer)}): "
                         f"{_per_unit(kernel) / _per_unit(peer):.2f}")
        lines.append("")
    return "\n".join(lines)


def machine(data, elapsed=None):
    info = data.get("machine_info", {})
    cpu = info.get("cpu", {})
    parts = [f"- CPU: {cpu.get('brand_raw') or platform.processor() or '?'} "
             f"({cpu.get('count', os.cpu_count())} logical cores; runs single-threaded, "
             f"but for the groups marked threads)",
             f"- {info.get('python_implementation', 'Python')} {info.get('python_version', '?')} "
             f"on {info.get('system', platform.system())} {info.get('release', '')}",
             f"- date: {data.get('datetime', '?')}"]
    versions = info.get("fasttape_versions")
    if versions:
        parts.append("- " + "; ".join(f"{k} {v}" for k, v in versions.items() if v)
                     + "".join(f"; {k} not installed" for k, v in versions.items() if not v))
    else:
        try:
            if ROOT not in sys.path:
                sys.path.insert(0, ROOT)
            import numpy as np

            import fasttape as ft
            parts.append(f"- numpy {np.__version__}; fasttape {ft.__version__}, "
                         f"backend {ft.backend}")
        except Exception as exc:  # formatting an old JSON without the package at hand
            parts.append(f"- (fasttape not importable here: {exc})")
    blas = info.get("fasttape_blas")
    if blas:
        parts.append("- NumPy BLAS: " + "; ".join(
            f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')}, "
            f"{b.get('num_threads')} thread{'s' if b.get('num_threads') != 1 else ''})"
            for b in blas))
    env = info.get("fasttape_env")
    if env:
        slow = [v for v in SLOW_BLAS if env.get(v)]
        parts.append(f"- OPENBLAS_NUM_THREADS={env.get('OPENBLAS_NUM_THREADS')}, "
                     f"XLA_FLAGS={env.get('XLA_FLAGS')}"
                     + (f"; {', '.join(slow)} set" if slow else "")
                     + ("; torch.compile rows off (FASTTAPE_BENCH_TORCH_COMPILE=0)"
                        if env.get("FASTTAPE_BENCH_TORCH_COMPILE") == "0" else ""))
    commit = data.get("commit_info", {})
    if commit.get("id"):
        parts.append(f"- commit {commit['id'][:10]}{' (dirty)' if commit.get('dirty') else ''}")
    if elapsed is not None:
        parts.append(f"- the suite took {elapsed / 60:.1f} min")
    return "\n".join(parts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--read", metavar="JSON", help="format an existing pytest-benchmark JSON")
    ap.add_argument("--json", metavar="JSON", help="where to keep the JSON of a new run")
    ap.add_argument("pytest_args", nargs="*", help="more arguments for pytest (after --)")
    args = ap.parse_args(argv)
    elapsed = None
    if args.read:
        path = args.read
    else:
        path = args.json or os.path.join(tempfile.mkdtemp(), "bench.json")
        elapsed = run_suite(path, args.pytest_args)
    with open(path) as f:
        data = json.load(f)
    print("## fasttape benchmarks\n")
    print(machine(data, elapsed))
    print()
    print("### Summary\n")
    print(summary(data))
    print()
    print("### The tape compiler's targets (issue 14)\n")
    print(summary_14(data))
    print()
    print("### Threaded sweeps (issue 15)\n")
    print(summary_15(data))
    print()
    print("### All rows\n")
    print(table(data))


if __name__ == "__main__":
    main()
