"""fasttape's exceptions: each is a FasttapeError and the fitting builtin."""


class FasttapeError(Exception):
    """Base class of every error fasttape raises on purpose.

    Each subclass also derives from the builtin that fits (ValueError,
    TypeError, RuntimeError, FloatingPointError), so ``except ValueError``
    and ``except ft.FasttapeError`` both catch, say, an ArgumentError.
    See docs/api.md, "Errors and warnings".
    """


class TapeError(FasttapeError, ValueError):
    """A tape (or tape file) is malformed, or cannot do what was asked.

    Raised by ``ft.load`` and unpickling for a truncated, corrupted or
    incompatible file (the message says why), by calling or saving a
    recording ``ft.Tape()``, by entering a traced tape as a ``with`` block,
    and by an operation on Vars of two different tapes. A ValueError.
    """


class GuardError(FasttapeError, RuntimeError):
    """A replay took a branch other than the one recorded.

    A traced ``if x > 0:`` records a guard with the outcome seen while
    tracing; replaying the tape where it comes out otherwise raises this,
    naming the guard and its condition as ``str(tape)`` prints them.
    Transforms (``ft.grad`` ...) re-trace instead, except in a batch whose
    samples disagree: then the message suggests ``ft.where``. A RuntimeError.

    Attributes
    ----------
    node : int
        The guard's node index (inputs included).
    lanes : ndarray of int
        The samples (lanes) that went the other way.
    lanes_of : int
        The number of lanes in the call.
    """

    def __init__(self, message, node=None, lanes=None, lanes_of=None):
        super().__init__(message)
        self.node, self.lanes, self.lanes_of = node, lanes, lanes_of


class NonFiniteError(FasttapeError, FloatingPointError):
    """With ``ft.check_finite`` on, a node produced a NaN or an infinity.

    A FloatingPointError, exported as ``ft.NonFiniteError``; the message
    names the op and, on a traced tape, its line in ``str(tape)``. ``node``
    is the node's index.
    """

    def __init__(self, message, node=None):
        super().__init__(message)
        self.node = node


class ArgumentError(FasttapeError, ValueError):
    """A call got the wrong shape of argument, or a bad ``wrt``, ``argnums``,
    ``in_axes`` or tangent.

    The message names the argument (by name and position) and shows the
    shape expected and the shape given. A ValueError.
    """


class ArgumentTypeError(FasttapeError, TypeError):
    """A call got the wrong number of arguments, an argument of the wrong
    type or dtype, or asked a scalar-output method (grad, hessian ...) of a
    tape whose output is not a scalar. A TypeError.
    """


class RetraceWarning(UserWarning):
    """A cached transform re-traces on every call: a value its function reads
    from a closure or a global (named in the message) keeps changing.

    Issued once per transform, after three calls in a row re-traced. The
    results stay correct; pass the value as an argument instead (with
    ``in_axes=None`` where batched) to trace once. A UserWarning.
    """


# What both recorders raise (as FasttapeError) when a second thread uses an
# eager tape that another thread is sweeping back or reclaiming.
TAPE_IN_USE = ("fasttape: this eager tape is in use by another thread (a backward pass or a "
               "reclaim is running on it); use one eager tape from one thread at a time, "
               "for instance each thread its own default tape")
