"""Threaded sweeps (ft.set_num_threads): one batched call split across
threads gives the same bits as on one thread, and the right numbers.

The cases that sweep run in a fresh interpreter (a crash fails the test
instead of killing the run).
"""

import os
import subprocess
import sys

import pytest

import fasttape as ft


def run(code, *args, env=None, timeout=300):
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                         text=True, timeout=timeout, env={**os.environ, **(env or {})})
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stderr[-3000:]}"
    assert "Traceback" not in out.stderr, out.stderr[-3000:]  # (a thread died)
    return out.stdout.split("\n")


# An 8-16-4 tanh MLP with a softmax cross-entropy per sample: at B = 1024 its
# calls have many chunks of lanes, enough for several threads.
SETUP = """
import sys, threading
import numpy as np
import fasttape as ft

model = ft.nn.MLP([8, 16, 4])
params = model.init(0)
rng = np.random.default_rng(1)
B = int(sys.argv[1])
X = rng.standard_normal((B, 8))
Y = np.eye(4)[rng.integers(0, 4, B)]
dp = rng.standard_normal(params.shape)

def loss(p, x, t):
    return ft.nn.softmax_cross_entropy(model(p, x), t)

tape = ft.trace(loss, params, X[0], Y[0])
AX = (None, 0, 0)
vg = ft.value_and_grad(loss, in_axes=AX)
CALLS = {
    "value_and_grad": lambda: vg(params, X, Y),
    "tape.value_and_grad": lambda: tape.value_and_grad(params, X, Y, in_axes=AX),
    "vjp": lambda: tape.vjp((params, X, Y), np.linspace(-1.0, 1.0, B), in_axes=AX),
    "hvp": lambda: tape.hvp((params, X, Y), dp, in_axes=AX),
    "jacobian": lambda: tape.jacobian(params, X, Y, wrt=(0, 1), in_axes=AX),
}

def same(a, b):
    if isinstance(a, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.tobytes() == b.tobytes()
"""

IDENTICAL = SETUP + """
ft.set_num_threads(1)
one = {name: call() for name, call in CALLS.items()}
for n in (2, 3, 1, 2):
    ft.set_num_threads(n)
    for name, call in CALLS.items():
        print(n, name, same(call(), one[name]))

# and the right numbers: sums of one-sample calls
value, grad = one["value_and_grad"]
h = one["hvp"]
want_v = np.array([tape(params, X[i], Y[i]) for i in range(B)])
want_g = sum(tape.value_and_grad(params, X[i], Y[i])[1] for i in range(B))
want_h = sum(tape.hvp((params, X[i], Y[i]), dp) for i in range(B))
scale = np.abs(want_g).max()
print("values", np.allclose(value, want_v, rtol=1e-13, atol=0))
print("grad", np.allclose(grad, want_g, rtol=0, atol=1e-12 * scale))
print("hvp", np.allclose(h, want_h, rtol=0, atol=1e-12 * np.abs(want_h).max()))
"""


def test_bit_identical_on_any_number_of_threads():
    """value_and_grad, vjp, hvp and jacobian of a batch on 1, 2 and 3
    threads: the same bits, and the sums of one-sample calls."""
    lines = [line for line in run(IDENTICAL, 1024) if line]
    assert len(lines) == 4 * 5 + 3
    assert all(line.endswith(" True") for line in lines), "\n".join(lines)


def test_odd_batch_sizes_are_bit_identical():
    """Batches whose last chunk is short, and batches of a few chunks."""
    for B in (1, 3, 67, 333):
        lines = [line for line in run(IDENTICAL, B) if line]
        assert all(line.endswith(" True") for line in lines), f"B={B}\n" + "\n".join(lines)


CONCURRENT = SETUP + """
ft.set_num_threads(1)
want = {name: call() for name, call in CALLS.items()}
ft.set_num_threads(2)
wrong, names = [], list(CALLS)

def work(k):
    for r in range(int(sys.argv[2])):
        name = names[(k + r) % len(names)]
        if not same(CALLS[name](), want[name]):
            wrong.append(name)

threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(len(wrong))
"""


def test_concurrent_calls_while_threaded():
    """Four Python threads call at once, each call split across two threads:
    every result is the one computed alone."""
    assert run(CONCURRENT, 1024, 40)[0] == "0"


def test_set_num_threads_validates():
    before = ft.get_num_threads()
    try:
        ft.set_num_threads(3)
        assert ft.get_num_threads() == 3
        for bad in (0, -2):
            with pytest.raises(ft.ArgumentError, match="at least 1"):
                ft.set_num_threads(bad)
        for bad in (1.5, True, "2", None):
            with pytest.raises(ft.ArgumentTypeError, match="positive integer"):
                ft.set_num_threads(bad)
        assert ft.get_num_threads() == 3  # (unchanged by the refusals)
    finally:
        ft.set_num_threads(before)


SHOW = "import fasttape as ft, os; print(ft.get_num_threads(), len(os.sched_getaffinity(0)))"


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs os.sched_getaffinity")
def test_environment_and_default():
    """FASTTAPE_NUM_THREADS at import, else OMP_NUM_THREADS; neither set,
    the cores the process may use."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("FASTTAPE_NUM_THREADS", "OMP_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", SHOW], capture_output=True, text=True, env=env)
    n, cores = out.stdout.split()
    assert n == cores
    out = subprocess.run([sys.executable, "-c", SHOW], capture_output=True, text=True,
                         env={**env, "OMP_NUM_THREADS": "5"})
    assert out.stdout.split()[0] == "5"
    assert run(SHOW, env={"FASTTAPE_NUM_THREADS": "3", "OMP_NUM_THREADS": "5"})[0][0] == "3"
    for bad in ("zero", "0", "1.5"):
        out = subprocess.run([sys.executable, "-c", SHOW], capture_output=True, text=True,
                             env={**os.environ, "FASTTAPE_NUM_THREADS": bad})
        assert out.returncode != 0 and "FASTTAPE_NUM_THREADS" in out.stderr


FORK = SETUP + """
import os
ft.set_num_threads(2)
want = CALLS["value_and_grad"]()     # (threads started in this process)
pid = os.fork()
if pid == 0:   # OpenMP's threads are not in the child: it must not wait for them
    os._exit(0 if same(CALLS["value_and_grad"](), want) else 3)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_after_threaded_calls():
    """A child forked after threaded calls sweeps (on one thread), the same
    bits, instead of waiting forever for threads it does not have."""
    assert run(FORK, 1024, timeout=60)[0] == "0"
