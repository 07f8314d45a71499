"""Wrong calls raise named errors that say what was expected and what was given."""

import numpy as np
import pytest

import fasttape as ft


def loss(w, x, y):
    return (w * x - y) ** 2 + w ** 2


@pytest.fixture
def tape():
    return ft.trace(loss, 1.0, 2.0, 3.0)


def test_hierarchy():
    assert issubclass(ft.TapeError, ft.FasttapeError) and issubclass(ft.TapeError, ValueError)
    assert issubclass(ft.GuardError, ft.FasttapeError) and issubclass(ft.GuardError, RuntimeError)
    assert issubclass(ft.ArgumentError, ValueError)
    assert issubclass(ft.ArgumentTypeError, TypeError)


def test_wrong_argument_count(tape):
    with pytest.raises(TypeError, match=r"loss\(\) takes 3 arguments \(w, x, y\), got 2"):
        tape(1.0, 2.0)
    with pytest.raises(TypeError, match="takes 3 arguments"):
        tape.grad(1.0, 2.0, 3.0, 4.0)
    with pytest.raises(TypeError, match="takes 3 positional arguments but 4 were given"):
        ft.grad(loss)(1.0, 2.0, 3.0, 4.0)


def test_wrong_shape_names_argument_and_both_shapes():
    f = ft.trace(lambda w, x: ft.dot(w, x), np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match=r"argument 'x' \(position 1\): expected shape \(3,\), "
                                         r"got \(4,\)"):
        f(np.ones(3), np.ones(4))
    with pytest.raises(ft.FasttapeError):
        f(np.ones(3), np.ones(4))


def test_batched_shape_errors():
    f = ft.trace(lambda w, x: ft.dot(w, x), np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match=r"'x' \(position 1\) is batched: expected shape "
                                         r"\(B,\) \+ \(3,\), got \(5, 2\)"):
        f(np.ones(3), np.ones((5, 2)), in_axes=(None, 0))
    with pytest.raises(ValueError, match="batch size 4, but an earlier argument has 5"):
        f(np.ones((5, 3)), np.ones((4, 3)), in_axes=0)
    with pytest.raises(ValueError, match="in_axes has 1 entries for 2 arguments"):
        f(np.ones(3), np.ones(3), in_axes=(0,))
    with pytest.raises(ValueError, match="must be 0 .* or None"):
        f(np.ones(3), np.ones(3), in_axes=(None, 1))


def test_wrong_dtype(tape):
    with pytest.raises(TypeError, match=r"argument 'x' \(position 1\) must be real numbers, "
                                        r"got dtype complex128"):
        tape(1.0, 2.0 + 1j, 3.0)
    with pytest.raises(TypeError, match="argument 'w'"):
        tape("one", 2.0, 3.0)
    with pytest.raises(TypeError, match="holds Vars"):
        tape(ft.Var(1.0), 2.0, 3.0)


def test_integers_and_bools_are_numbers(tape):
    assert tape(1, 2, 3) == 2.0
    assert tape(np.int32(1), np.float32(2.0), True) == (1 * 2 - 1) ** 2 + 1 ** 2


def test_grad_needs_a_scalar_output():
    f = ft.trace(lambda x: x * 2.0, np.ones(3))
    with pytest.raises(TypeError, match=r"scalar output.*shape \(3,\)"):
        f.grad(np.ones(3))
    np.testing.assert_allclose(f.jacobian(np.ones(3)), 2 * np.eye(3))


def test_bad_wrt(tape):
    with pytest.raises(ValueError, match="wrt=3"):
        tape.grad(1.0, 2.0, 3.0, wrt=3)
    assert tape.grad(1.0, 2.0, 3.0, wrt=-1) == 2.0  # negative counts from the end


def test_trace_rejects_non_numbers():
    with pytest.raises(TypeError, match="argument 'x'"):
        ft.trace(lambda x: x, "abc")
    with pytest.raises(TypeError, match="must return Vars"):
        ft.trace(lambda x: {"a": x}, 1.0)


def test_mixing_tapes_is_an_error():
    outside = ft.Var(2.0)
    with pytest.raises(ft.TapeError, match="another tape"):
        ft.trace(lambda x: outside, 1.0)
    with pytest.raises(ValueError, match="different tapes"):
        ft.trace(lambda x: x * outside, 1.0)


def test_var_needs_a_number():
    with pytest.raises(TypeError, match="real number"):
        ft.Var("1.0")
    with pytest.raises(TypeError, match="real number"):
        ft.Var(np.ones(2))


def test_eager_tape_is_not_replayable():
    with ft.Tape() as t:
        ft.Var(1.0)
    with pytest.raises(ft.TapeError, match="ft.trace"):
        t(1.0)
