"""fasttape: exact gradients from a flat tape and a compiled kernel.

Record a computation once as a Wengert list (opcodes and operand indices in
contiguous arrays), then replay it, forward and in reverse, over many samples
in one call. See README.md for a tour and docs/api.md for the reference;
``help(ft.<name>)`` documents each public name.
"""

from .backend import name as backend
from .errors import (ArgumentError, ArgumentTypeError, FasttapeError, GuardError,
                     NonFiniteError, RetraceWarning, TapeError)
from .var import Var
from .functions import *  # noqa: F401,F403  exp, log, ..., maximum, minimum, sum, dot
from .functions import __all__ as _function_names
from .tape import Tape, load, trace
from .transforms import grad, hessian, hvp, jacobian, jvp, value_and_grad, vjp
from .finite import check_finite
from .compiler import set_passes
from .threads import get_num_threads, set_num_threads
from .numpy_api import UnsupportedError
from . import datasets, nn  # after the core: they are written with ft.* themselves

__version__ = "0.1.0"

__all__ = ["backend", "Var", "Tape", "trace", "load", "grad", "value_and_grad", "jacobian",
           "hessian", "vjp", "jvp", "hvp", "check_finite", "set_passes", "set_num_threads",
           "get_num_threads",
           "nn", "datasets",
           "FasttapeError", "TapeError", "GuardError", "ArgumentError",
           "ArgumentTypeError", "NonFiniteError", "RetraceWarning", "UnsupportedError",
           *_function_names]
