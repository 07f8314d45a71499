"""Run the benchmark suite (or read its JSON) and print a markdown table of ratios.

    python benchmarks/report.py                 # runs `pytest benchmarks`, single-threaded
    python benchmarks/report.py --json out.json # also keeps the JSON
    python benchmarks/report.py --read out.json # only formats an earlier run

Within each group the baseline is the fasttape kernel's row (its name holds
"kernel"), else the fastest row; "ratio" is a row's time over the baseline's.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SINGLE_THREAD = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                  "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")}


def run_suite(json_path, extra):
    env = dict(os.environ, **SINGLE_THREAD)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "pytest", HERE, "-q", "-p", "no:cacheprovider",
           f"--benchmark-json={json_path}", *extra]
    print("$", " ".join(cmd), file=sys.stderr)
    proc = subprocess.run(cmd, cwd=ROOT, env=env)
    if proc.returncode != 0:
        sys.exit(f"the benchmark run failed (exit code {proc.returncode})")


def _short(name):
    name = name.split("::")[-1]
    return name[len("test_"):] if name.startswith("test_") else name


def _fmt_time(seconds):
    us = seconds * 1e6
    if us >= 1e5:
        return f"{us / 1e3:,.0f} ms"
    if us >= 100:
        return f"{us:,.0f} µs"
    return f"{us:.2f} µs"


def table(data):
    groups = {}
    for bench in data["benchmarks"]:
        groups.setdefault(bench.get("group") or "(no group)", []).append(bench)
    lines = []
    for group in sorted(groups):
        rows = sorted(groups[group], key=lambda b: b["stats"]["median"])
        kernel = [b for b in rows if "kernel" in b["name"]]
        base = kernel[0] if kernel else rows[0]
        lines += [f"### {group}", "",
                  "| benchmark | median | mean | min | rounds | ratio (median / baseline) |",
                  "|---|---:|---:|---:|---:|---:|"]
        for b in rows:
            s = b["stats"]
            mark = " (baseline)" if b is base else ""
            lines.append(f"| {_short(b['name'])}{mark} | {_fmt_time(s['median'])} | "
                         f"{_fmt_time(s['mean'])} | {_fmt_time(s['min'])} | {s['rounds']} | "
                         f"{s['median'] / base['stats']['median']:.2f} |")
        lines.append("")
    return "\n".join(lines)


def machine(data):
    info = data.get("machine_info", {})
    cpu = info.get("cpu", {})
    parts = [f"- CPU: {cpu.get('brand_raw') or platform.processor() or '?'} "
             f"({cpu.get('count', os.cpu_count())} logical cores; runs single-threaded)",
             f"- {info.get('python_implementation', 'Python')} {info.get('python_version', '?')} "
             f"on {info.get('system', platform.system())} {info.get('release', '')}",
             f"- date: {data.get('datetime', '?')}"]
    try:
        if ROOT not in sys.path:
            sys.path.insert(0, ROOT)
        import numpy as np

        import fasttape as ft
        parts.append(f"- numpy {np.__version__}; fasttape {ft.__version__}, backend {ft.backend}")
    except Exception as exc:  # formatting an old JSON without the package at hand
        parts.append(f"- (fasttape not importable here: {exc})")
    commit = data.get("commit_info", {})
    if commit.get("id"):
        parts.append(f"- commit {commit['id'][:10]}{' (dirty)' if commit.get('dirty') else ''}")
    return "\n".join(parts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--read", metavar="JSON", help="format an existing pytest-benchmark JSON")
    ap.add_argument("--json", metavar="JSON", help="where to keep the JSON of a new run")
    ap.add_argument("pytest_args", nargs="*", help="more arguments for pytest (after --)")
    args = ap.parse_args(argv)
    if args.read:
        path = args.read
    else:
        path = args.json or os.path.join(tempfile.mkdtemp(), "bench.json")
        run_suite(path, args.pytest_args)
    with open(path) as f:
        data = json.load(f)
    print("## fasttape benchmarks\n")
    print(machine(data))
    print()
    print(table(data))


if __name__ == "__main__":
    main()
