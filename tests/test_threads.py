"""Many threads at once: no crash, and every result bit-identical to the
same call made alone.

Each case runs in a fresh interpreter (a crash fails the test instead of
killing the run). The stress test runs for FASTTAPE_STRESS_SECONDS seconds
(default 8, so both backends' suites stay short; 20 is the thorough
setting: FASTTAPE_STRESS_SECONDS=20 python -m pytest tests/test_threads.py).
"""

import os
import subprocess
import sys

import fasttape as ft

TWIN = ft.backend == "python"


def run(code, *args, timeout=300):
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                         text=True, timeout=timeout)
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stderr[-3000:]}"
    assert "Traceback" not in out.stderr, out.stderr[-3000:]  # (a thread died)
    return out.stdout.split("\n")


# A 64-32-10 tanh MLP with a softmax cross-entropy loss per sample (as the
# digits benchmark), its data, and its batched value and gradient computed
# alone, before any thread starts.
MLP = """
import sys, threading
import numpy as np
import fasttape as ft

model = ft.nn.MLP([64, 32, 10])
params = model.init(0)
rng = np.random.default_rng(0)
X = rng.standard_normal((64, 64))
Y = np.eye(10)[rng.integers(0, 10, 64)]

def loss(p, x, t):
    return ft.nn.softmax_cross_entropy(model(p, x), t)

def same(a, b):
    if isinstance(a, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return np.array_equal(np.asarray(a), np.asarray(b))

def together(calls):
    # calls[k]() in thread k, all released at once; their results
    out, go = [None] * len(calls), threading.Barrier(len(calls))
    def work(k):
        go.wait()
        out[k] = calls[k]()
    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out
"""

FIRST_CALLS = MLP + """
want = ft.trace(loss, params, X[0], Y[0]).value_and_grad(params, X, Y, in_axes=(None, 0, 0))
trials, wrong = int(sys.argv[1]), 0
for trial in range(trials):
    tape = ft.trace(loss, params, X[0], Y[0])
    vg = ft.value_and_grad(loss, in_axes=(None, 0, 0))
    on_tape = lambda: tape.value_and_grad(params, X, Y, in_axes=(None, 0, 0))
    by_transform = lambda: vg(params, X, Y)
    for got in together([on_tape, on_tape] if trial % 2 else [by_transform, by_transform]):
        wrong += not same(got, want)
print(trials, wrong)
"""


def test_first_batched_call_from_two_threads():
    """Two threads make the first batched call on one tape (and on one
    ft.value_and_grad), on fresh tapes again and again: the Layout that the
    first call works out is used by the other only once complete."""
    trials = 10 if TWIN else 300
    assert run(FIRST_CALLS, trials)[0] == f"{trials} 0"


# One thread sweeps a big eager tape back (the kernel without the GIL) while
# another records on the same tape, with new constants, reclaiming now and
# then: each of its calls either raises FasttapeError or is right.
ONE_EAGER_TAPE = """
import sys, threading, time
import fasttape as ft

n, seconds = int(sys.argv[1]), float(sys.argv[2])
x = ft.Var(1.0)
total = ft.sum([x * float(k % 7) for k in range(n)])
want = float(sum(k % 7 for k in range(n)))
counts = {"backward": 0, "refused": 0, "recorded": 0, "wrong": 0}
stop = time.monotonic() + seconds

def done():  # after `seconds`, once each thing has happened (a loaded machine: longer)
    now = time.monotonic()
    seen = counts["backward"] and counts["recorded"] and counts["refused"]
    return now > stop and (seen or now > stop + 4 * seconds)

def sweeps():
    while not done():
        try:
            total.backward()
            g = x.grad
        except ft.FasttapeError as exc:
            assert "in use by another thread" in str(exc)
            counts["refused"] += 1
            continue
        counts["backward"] += 1
        counts["wrong"] += g != want
        time.sleep(0)  # (a gap for the other thread to record in)

def records():
    k, kept = 0, []
    while not done():
        k += 1
        try:
            garbage = x + 0.25 * k        # below what is kept: a reclaim's work
            y = x * (1.0 + k)
            value = y.value               # (reading is refused too, meanwhile)
        except ft.FasttapeError as exc:
            assert "in use by another thread" in str(exc)
            counts["refused"] += 1
            continue
        counts["recorded"] += 1
        counts["wrong"] += value != 1.0 + k
        kept.append(y)
        if len(kept) > 3 * n:
            kept.clear()

threads = [threading.Thread(target=f) for f in (sweeps, records)]
for t in threads:
    t.start()
for t in threads:
    t.join()
total.backward()
print(counts["backward"], counts["recorded"], counts["refused"], counts["wrong"], x.grad == want)
"""


def test_backward_while_another_thread_records_on_the_tape():
    """One eager tape from two threads: FasttapeError or a right answer,
    never a crash or a corrupted tape (ft.Var and its tape then still work)."""
    n = 5_000 if TWIN else 50_000
    backward, recorded, refused, wrong, ok = run(ONE_EAGER_TAPE, n, 2.0)[0].split()
    assert int(backward) > 0 and int(recorded) > 0 and wrong == "0" and ok == "True"
    if not TWIN:  # (the kernel sweeps without the GIL: the recorder got in its way)
        assert int(refused) > 0


STRESS = MLP + """
import time

seconds = float(sys.argv[1])
BIG = np.repeat(X, 64, axis=0)[:4096]
BIGY = np.repeat(Y, 64, axis=0)[:4096]

def quartic(v):   # a small tape with a dense, non-trivial Hessian
    return ft.sum(v * v * v * v) + ft.dot(v[:-1], v[1:]) * ft.sum(ft.tanh(v))

v0 = np.linspace(-1.0, 1.0, 6)
dv = np.linspace(0.5, -0.25, 6)
V = np.stack([v0 * s for s in (1.0, 0.5, -2.0)])

shared = {"mlp": ft.trace(loss, params, X[0], Y[0]), "quartic": ft.trace(quartic, v0)}
vg = ft.value_and_grad(loss, in_axes=(None, 0, 0))

def eager(k):
    # on this thread's own default tape; a fresh constant every time
    w = [ft.Var(0.25 * j - 0.5) for j in range(5)]
    c = 1.0 + 2.0 ** -20 * (k % 1000)
    h = ft.dot(w, [c, 2.0, -1.0, 0.5, c])
    z = ft.tanh(h * h + w[0] * c) + ft.sum(ww * ww for ww in w)
    z.backward()
    return z.value, tuple(ww.grad for ww in w)

TASKS = {
    "b1": lambda: shared["mlp"].value_and_grad(params, X[:1], Y[:1], in_axes=(None, 0, 0)),
    "b32": lambda: shared["mlp"].value_and_grad(params, X[:32], Y[:32], in_axes=(None, 0, 0)),
    "b4096": lambda: shared["mlp"].value_and_grad(params, BIG, BIGY, in_axes=(None, 0, 0)),
    "one_sample": lambda: shared["mlp"].value_and_grad(params, X[3], Y[3]),
    "forward_b32": lambda: shared["mlp"](params, X[:32], Y[:32], in_axes=(None, 0, 0)),
    "transform_b32": lambda: vg(params, X[:32], Y[:32]),
    "transform_b4096": lambda: vg(params, BIG, BIGY),
    "hvp": lambda: shared["quartic"].hvp((v0,), dv),
    "hessian": lambda: shared["quartic"].hessian(v0),
    "hessian_batched": lambda: shared["quartic"].hessian(V, in_axes=0),
    "eager": lambda: eager(7),
    "eager_2": lambda: eager(11),
}
if ft.backend == "python":   # (the twin takes seconds a call there)
    del TASKS["b4096"], TASKS["transform_b4096"]
WANT = {name: task() for name, task in TASKS.items()}   # alone, before any thread

counts = {name: 0 for name in TASKS}
wrong = []
stop = time.monotonic() + seconds

def worker(t):
    names, k = list(TASKS), t
    while time.monotonic() < stop:
        name = names[k % len(names)]
        k += 1
        got = TASKS[name]()
        counts[name] += 1
        if not same(got, WANT[name]):
            wrong.append(name)
        if k % 23 == 0:   # fresh tapes: first calls again, from any thread
            shared["mlp"] = ft.trace(loss, params, X[0], Y[0])
            shared["quartic"] = ft.trace(quartic, v0)

threads = [threading.Thread(target=worker, args=(t * 5,)) for t in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(" ".join(f"{name}={n}" for name, n in counts.items()))
print("wrong:", sorted(set(wrong)))
"""


def test_stress_four_threads():
    """Four threads, one shared traced tape (replaced by a fresh one every
    so often, so first calls recur) called at B = 1, 32 and 4096, one shared
    ft.value_and_grad, hvp and hessian on another shared tape, and eager Vars
    on each thread's own tape: no crash, and every result bit-identical to
    the same call made alone beforehand."""
    seconds = float(os.environ.get("FASTTAPE_STRESS_SECONDS", "8"))
    counts, wrong = run(STRESS, seconds, timeout=seconds + 300)[:2]
    assert wrong == "wrong: []", counts
    counts = dict(item.split("=") for item in counts.split(" "))
    assert all(int(n) > 0 for n in counts.values()), counts
