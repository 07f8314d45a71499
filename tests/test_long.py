"""Long programs: ten million nodes record, replay, list and differentiate,
with no recursion anywhere and clear limits on the tape's size."""

import numpy as np
import pytest

import fasttape as ft
from fasttape import listing, validate

# The pure twin sweeps node by node in Python, about a hundred times slower:
# it runs the same test on a hundred-times shorter tape.
N = 10_000_000 if ft.backend == "cython" else 100_000


def chain(x, y):
    """x_{k+1} = sin(x_k) * y + 0.5, N nodes in one dependency chain."""
    for _ in range(N // 3):
        x = (x.sin() * y) + 0.5
    return x


def test_ten_million_node_chain(monkeypatch):
    monkeypatch.setattr(listing, "SUMMARIZE_AFTER", N // 10)  # the twin's N is small
    tape = ft.trace(chain, 0.3, 0.9)
    assert len(tape) >= N
    # value and gradient against the same recurrence in plain Python
    x, dx, dy, y = 0.3, 1.0, 0.0, 0.9
    for k in range(N // 3):
        s, c = np.sin(x), np.cos(x)
        dx, dy, x = c * y * dx, c * y * dy + s, s * y + 0.5
    value, (gx, gy) = tape.value_and_grad(0.3, 0.9, wrt=(0, 1))
    assert value == pytest.approx(x, rel=1e-12)
    assert (gx, gy) == pytest.approx((dx, dy), rel=1e-9, abs=1e-300)
    text = str(tape)
    lines = text.splitlines()
    assert lines[:3] == ["l0 = sin(x)", "l1 = l0 * y", "l2 = l1 + 0.5"]
    assert "more lines" in text and lines[-1] == f"return l{len(tape) - 3}"
    assert len(text) < 10_000


def test_size_limits_are_clear(monkeypatch):
    p = ft.trace(lambda x: x.sin().cos().exp().log(), 1.0)._program
    monkeypatch.setattr(validate, "MAX_NODES", 3)
    with pytest.raises(ft.TapeError, match="at most 3 nodes"):
        validate.validate(p.op, p.a, p.b, p.pool, p.args, p.n_inputs, p.outputs)
    big = np.array([2**31], dtype=np.int64)
    with pytest.raises(ft.TapeError, match="outside the range of int32"):
        validate.validate(p.op, p.a, p.b, p.pool, big, p.n_inputs, p.outputs)
