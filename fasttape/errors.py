"""fasttape's exceptions: each is a FasttapeError and the fitting builtin."""


class FasttapeError(Exception):
    """Base class of every error fasttape raises on purpose."""


class TapeError(FasttapeError, ValueError):
    """A tape (or tape file) is malformed, or cannot do what was asked."""


class GuardError(FasttapeError, RuntimeError):
    """A replay took a branch other than the one recorded.

    node: the guard's node; lanes: the lanes that went the other way, out of
    lanes_of in the call.
    """

    def __init__(self, message, node=None, lanes=None, lanes_of=None):
        super().__init__(message)
        self.node, self.lanes, self.lanes_of = node, lanes, lanes_of


class NonFiniteError(FasttapeError, FloatingPointError):
    """With check_finite on, a node produced a NaN or an infinity (node: its index)."""

    def __init__(self, message, node=None):
        super().__init__(message)
        self.node = node


class ArgumentError(FasttapeError, ValueError):
    """A call got the wrong number or shape of arguments."""


class ArgumentTypeError(FasttapeError, TypeError):
    """A call got an argument of the wrong type or dtype."""


class RetraceWarning(UserWarning):
    """A cached transform re-traces on every call: a value its function reads
    from a closure or a global (named in the message) keeps changing."""
