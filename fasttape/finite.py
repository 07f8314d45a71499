"""ft.check_finite: stop at the first node that produces a NaN or an infinity.

Off by default, and then free: the sweeps test one flag per chunk of lanes.
`ft.check_finite(True)` turns it on (False off); `with ft.check_finite():`
turns it on for a block and restores the previous setting after.
"""

from .backend import kernel

_on = [False]


class check_finite:
    """Stop at the first node that produces a NaN or an infinity.

    ``ft.check_finite(True)`` turns the check on for the whole process (all
    threads), ``ft.check_finite(False)`` off; ``with ft.check_finite():``
    turns it on for the block and restores the previous setting after.
    Off (the default), values follow IEEE arithmetic as NumPy's do, and the
    check costs nothing.

    Parameters
    ----------
    on : bool, default True
        The setting from now on (or inside the ``with`` block).

    Raises
    ------
    FloatingPointError
        While on: from a replay of a traced tape, naming the op and its line
        in ``str(tape)`` (``check_finite: log produced a NaN or an infinity
        at l0 = log(x)``), or from an eager operation on Vars, naming the op.
        The check covers the values of the forward sweep.

    Examples
    --------
    >>> tape = ft.trace(lambda x: ft.log(x) * 2, 1.0)
    >>> tape(-1.0)
    nan
    >>> with ft.check_finite():
    ...     tape(-1.0)
    Traceback (most recent call last):
    fasttape.errors.NonFiniteError: check_finite: log produced a NaN or an infinity at l0 = log(x)
    """

    def __init__(self, on=True):
        self._previous = _on[0]
        _set(bool(on))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _set(self._previous)
        return False


def _set(on):
    _on[0] = on
    kernel.set_check_finite(on)


def enabled():
    return _on[0]
