"""How many threads one batched call may use: ft.set_num_threads,
ft.get_num_threads and FASTTAPE_NUM_THREADS (read at import).

A batched call (``in_axes``, ``Tape.run`` ...) sweeps its samples in chunks
of lanes; with n threads the chunks are split across them, each thread in
its own workspace. The shared arguments' gradients are summed per chunk and
those sums added in chunk order, so the results are bit for bit the same on
any number of threads. Calls too small for a split to pay stay on one.
"""

import numbers
import os

from .backend import kernel
from .errors import ArgumentError, ArgumentTypeError

ENV = "FASTTAPE_NUM_THREADS"


def _checked(n, what):
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise ArgumentTypeError(f"{what} must be a positive integer, got {n!r}")
    if n < 1:
        raise ArgumentError(f"{what} must be at least 1, got {n}")
    return int(n)


def cores():
    """The number of cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def set_num_threads(n):
    """Let each batched call split its samples across up to ``n`` threads.

    Results are bit-identical for every ``n``: each chunk of samples sums
    its part of a shared argument's gradient, and those parts are added in
    chunk order. Calls too small for a split to pay (a few thousand
    node-samples per thread) run on one thread. The default is
    ``FASTTAPE_NUM_THREADS`` when set, else ``OMP_NUM_THREADS`` when set,
    else the number of cores the process may use.
    The pure-Python twin (``FASTTAPE_BACKEND=python``) accepts the setting
    and runs every call on the calling thread.

    Parameters
    ----------
    n : int
        At least 1. A bool, float or other non-integer raises
        ``ft.ArgumentTypeError``; ``n < 1`` raises ``ft.ArgumentError``.

    Examples
    --------
    >>> import fasttape as ft
    >>> ft.set_num_threads(1)       # one core, as before threads
    >>> ft.get_num_threads()
    1
    >>> ft.set_num_threads(ft.threads.cores())
    """
    kernel.set_num_threads(_checked(n, "the number of threads"))


def get_num_threads():
    """The number of threads a batched call may use (``ft.set_num_threads``).

    Returns
    -------
    int
    """
    return kernel.get_num_threads()


def _from_environment():
    text = os.environ.get(ENV, "").strip()
    if not text:  # OpenMP's own setting next (Dask's workers set it to 1, say)
        omp = os.environ.get("OMP_NUM_THREADS", "").strip()
        return int(omp) if omp.isdigit() and int(omp) > 0 else cores()
    try:
        n = int(text)
    except ValueError:
        raise ImportError(f"{ENV} must be a positive integer, got {text!r}") from None
    if n < 1:
        raise ImportError(f"{ENV} must be at least 1, got {n}")
    return n


set_num_threads(_from_environment())
