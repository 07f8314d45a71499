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


# What both recorders raise (as FasttapeError) when a second thread uses an
# eager tape that another thread is sweeping back or reclaiming.
TAPE_IN_USE = ("fasttape: this eager tape is in use by another thread (a backward pass or a "
               "reclaim is running on it); use one eager tape from one thread at a time, "
               "for instance each thread its own default tape")
