"""Memory stays flat: eager step functions give back their constants with
their nodes, and replaying a traced tape allocates nothing that stays.

Each case runs in a fresh interpreter and reads its resident set size from
/proc/self/statm (skipped where there is none) after a warm-up, so that
what the first steps allocate for good (caches, arenas) is not counted.
The twin is about a hundred times slower: it runs fewer steps, and its
bounds are stated per step below.
"""

import os
import subprocess
import sys

import pytest

import fasttape as ft

TWIN = ft.backend == "python"

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/statm"),
                                reason="reads the resident set size from /proc/self/statm")

RSS = """
import gc, os
def rss():
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
"""

# A step function whose Vars all die at return. Every step brings new float
# constants (k enters each one) and new ft.dot coefficients, as a training
# loop's learning rates, data and schedules do; 0.5 + e and 2 + e are exact
# in binary for these small e, so the gradient is checked exactly.
EAGER = RSS + """
import sys
import fasttape as ft

def step(k):
    e = k * 2.0 ** -40
    x = ft.Var(1.0 + e)
    y = ft.dot([x, x * x], [0.5 + e, 2.0 + e])   # (0.5 + e) x + (2 + e) x^2
    z = y * (3.0 + e) + (7.0 + e)
    z.backward()
    want = ((0.5 + e) + 2.0 * (2.0 + e) * (1.0 + e)) * (3.0 + e)
    assert abs(x.grad - want) < 1e-14 * want, (k, x.grad, want)

steps = int(sys.argv[1])
for k in range(steps // 10):  # warm-up
    step(k)
before = rss()
for k in range(steps):
    step(steps + k)
print(rss() - before)
"""

# A cheap traced tape (the lecture's loss): value and gradient, and the
# value alone, of scalars, and of a small batch.
REPLAY = RSS + """
import sys
import numpy as np
import fasttape as ft

tape = ft.trace(lambda w, x, y: (w * x - y) ** 2 + w ** 2, 1.0, 2.0, 3.0)
xs = np.array([2.0, 3.0])
ys = np.array([3.0, 1.0])
want = ((2.0 * 2.0 - 3.0) ** 2 + 1.0, np.array([2.0 * (2.0 - 3.0) * 2.0 + 2.0,
                                                2.0 * (3.0 - 1.0) * 3.0 + 2.0]))

def replay(k):
    if k % 64:
        assert tape.value_and_grad(1.0, 2.0, 3.0) == (2.0, -2.0)
    else:
        assert tape(1.0, 2.0, 3.0) == 2.0
        _, g = tape.value_and_grad(1.0, xs, ys, in_axes=(None, 0, 0))
        assert g == want[1].sum()

n = int(sys.argv[1])
for k in range(n // 10):
    replay(k)
before = rss()
for k in range(n):
    replay(k)
print(rss() - before)
"""


def growth(code, n):
    out = subprocess.run([sys.executable, "-c", code, str(n)], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return int(out.stdout.split()[-1])


def test_eager_steps_give_their_constants_back():
    """Under 5 MB per 100,000 steps (the twin: 1 MB per 20,000, the same per
    step). Each step adds five new constants; kept, they would cost about
    a hundred bytes each in the pool and its index."""
    steps = 20_000 if TWIN else 100_000
    grown = growth(EAGER, steps)
    assert grown < 5e6 * steps / 100_000, f"{grown / 1e6:.1f} MB over {steps} steps"


def test_replaying_a_tape_keeps_memory_flat():
    """Under 2 MB over 10^6 replays (the twin: over 20,000, so under 100
    bytes a replay: a leak of any Python object a call would show)."""
    n = 20_000 if TWIN else 1_000_000
    grown = growth(REPLAY, n)
    assert grown < 2e6, f"{grown / 1e6:.1f} MB over {n} replays"


def test_eager_steps_keep_the_constant_pool_small():
    """The same in numbers: 3,000 steps, each with three new constants, above
    a Var kept all along. The pool keeps what live nodes use and at most a
    few hundred slots more; values and gradients stay right, the kept Var's
    constants (3.25, 0.125, found again by every step) included."""
    with ft.Tape() as tape:
        kept = ft.Var(2.0) * 3.25 + 0.125
        for k in range(3000):
            e = k * 2.0 ** -30
            x = ft.Var(1.0 + e)
            y = ft.dot([x, kept], [0.5 + e, 3.25]) * (1.5 + e) + 0.125
            y.backward()
            assert x.grad == pytest.approx((0.5 + e) * (1.5 + e), rel=1e-15)
            assert y.value == pytest.approx(((0.5 + e) * (1.0 + e) + 3.25 * 6.625) * (1.5 + e)
                                            + 0.125, rel=1e-15)
        del x, y
        assert len(tape._rec.arrays()[3]) < 300
        assert kept.value == 6.625



def test_a_constant_found_again_stays_while_its_node_lives():
    """A node may find its constant in a slot that only nodes already gone
    used; forgetting the pool's tail later must keep that slot."""
    with ft.Tape() as tape:
        keep = ft.Var(1.0)
        gone = [keep * (1.0 + k / 1000) for k in range(10)]
        del gone  # their constants stay, unused, for now
        y = keep * 1.005  # finds its constant in one of those slots
        more = [keep + (2.0 + k / 1000) for k in range(400)]
        top = keep + 0.0
        del more, top  # more unused constants than the slack: the tail is forgotten
        y.backward()
        assert (y.value, keep.grad) == (1.005, 1.005)
        assert len(tape._rec.arrays()[3]) < 300
