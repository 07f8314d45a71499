"""fasttape's exceptions: each is a FasttapeError and the fitting builtin."""


class FasttapeError(Exception):
    """Base class of every error fasttape raises on purpose."""


class TapeError(FasttapeError, ValueError):
    """A tape (or tape file) is malformed, or cannot do what was asked."""


class GuardError(FasttapeError, RuntimeError):
    """A replay took a branch other than the one recorded."""


class ArgumentError(FasttapeError, ValueError):
    """A call got the wrong number or shape of arguments."""


class ArgumentTypeError(FasttapeError, TypeError):
    """A call got an argument of the wrong type or dtype."""
