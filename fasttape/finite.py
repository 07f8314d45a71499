"""ft.check_finite: stop at the first node that produces a NaN or an infinity.

Off by default, and then free: the sweeps test one flag per chunk of lanes.
`ft.check_finite(True)` turns it on (False off); `with ft.check_finite():`
turns it on for a block and restores the previous setting after.
"""

from .backend import kernel

_on = [False]


class check_finite:
    """Turn the check on (or off) now; as a context manager, for the block."""

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
