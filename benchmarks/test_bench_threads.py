"""Benchmarks of threaded sweeps (ft.set_num_threads, issue 15): the same
batched value-and-gradient call on one thread and on two. Every other group
of the suite runs on one thread (benchmarks/conftest.py); these groups say
how much a second core gives.

Groups:
  W2 classifier B=4096, threads   the W2 call (benchmarks/test_bench_classifiers.py)
  W3 digits B=256, threads        the W3 call
  W2 classifier B=32, threads     a batch too small to split: it stays on one
                                  thread, so two should cost nothing

Rows: "one thread" (the baseline, role kernel) and "two threads"; the
results are checked bit for bit against the one-thread call.
"""

import numpy as np
import pytest

import fasttape as ft
from _peers import FASTTAPE_ROLE, KERNEL, KERNEL_ROLE, TIMING, run
from test_bench_classifiers import W2_SIZES, W3_BATCH, W3_SIZES, fasttape_call, workload

pytest.importorskip("pytest_benchmark")
pytestmark = TIMING

CASES = {"W2-4096": (W2_SIZES, 4096, "W2 classifier B=4096, threads"),
         "W3-256": (W3_SIZES, W3_BATCH, f"W3 digits B={W3_BATCH}, threads"),
         "W2-32": (W2_SIZES, 32, "W2 classifier B=32, threads")}


@pytest.fixture
def threads():
    """Set the thread count for one row; back to one thread after it."""
    yield ft.set_num_threads
    ft.set_num_threads(1)


def bench(benchmark, case, n, set_threads):
    if not KERNEL:
        pytest.skip("the twin runs every call on one thread")
    sizes, batch, group = CASES[case]
    w = workload(sizes, batch)
    call = fasttape_call(w, False, False)
    set_threads(1)
    want = call(w.params, w.X, w.T)
    set_threads(n)
    got = call(w.params, w.X, w.T)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    run(benchmark, group, KERNEL_ROLE if n == 1 else FASTTAPE_ROLE, call, w.params, w.X, w.T,
        threads=n)


@pytest.mark.parametrize("case", CASES)
def test_one_thread(benchmark, case, threads):
    bench(benchmark, case, 1, threads)


@pytest.mark.parametrize("case", CASES)
def test_two_threads(benchmark, case, threads):
    bench(benchmark, case, 2, threads)
