"""Data-parallel gradients on a Dask cluster (the optional extra ``distributed``).

``value_and_grad(fn, argnums, in_axes)`` is ``ft.value_and_grad`` for batched
arguments that are dask arrays chunked along the batch axis (axis 0): each
block of samples is swept on the worker that holds it, by the traced tape
shipped once per worker, and the shared arguments' gradients of the blocks
are added up in a tree. Needs ``dask[distributed]`` (``pip install
"fasttape[distributed]"``); ``import fasttape`` never imports Dask.
"""

import hashlib
import pickle

import numpy as np

from .errors import ArgumentError, ArgumentTypeError, FasttapeError
from .tape import trace

try:
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # (the extra is not installed: calls say so)
    WorkerPlugin = object

__all__ = ["value_and_grad"]

_FAN_IN = 8  # blocks' gradients added by one task of the tree
_TAPES = {}  # on a worker: the tapes installed there, by digest
_INSTALLS = {}  # and how many times each was (once, unless the plugin is registered again)


class _TapeOnWorkers(WorkerPlugin):
    """Installs a pickled tape on every worker, those that join later too:
    tasks then name it by its digest, so it is sent once per worker, not
    per task (and no memory manager drops or moves it)."""

    def __init__(self, digest, blob):
        self.digest, self.blob = digest, blob

    def setup(self, worker):
        _TAPES[self.digest] = pickle.loads(self.blob)
        _INSTALLS[self.digest] = _INSTALLS.get(self.digest, 0) + 1


def _dask():
    try:
        import dask
        import dask.array as da
        from dask.distributed import default_client
    except ImportError as exc:  # (the extra is not installed)
        raise ImportError("fasttape.distributed needs Dask: pip install \"fasttape[distributed]\" "
                          f"({exc})") from exc
    return dask, da, default_client


def _is_dask(x):
    return type(x).__module__.startswith("dask.") and hasattr(x, "chunks")


def _sweep_block(digest, wrt, in_axes, *args):
    """One block of samples on a worker: (values, gradients), the shared
    arguments' gradients summed over the block. (A block that arrived
    unaligned, as unpickled buffers may be, is copied: the kernel's fast
    path takes aligned arrays.)"""
    tape = _TAPES.get(digest)
    if tape is None:
        raise FasttapeError("fasttape.distributed: this worker has not got the tape "
                            f"{digest[:12]} (its plugin did not run here)")
    args = [np.require(x, np.float64, ["C", "A"]) if isinstance(x, np.ndarray) else x
            for x in args]
    return tape.value_and_grad(*args, wrt=wrt, in_axes=in_axes)


def _values(result):
    return result[0]


def _add(*parts):
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def _grad(result, j):
    """Gradient j of a block's result (a task where the result lies, so
    that only the gradient, not the values, moves)."""
    return result[1][j]


def value_and_grad(fn, argnums=0, in_axes=0, client=None):
    """``ft.value_and_grad`` over dask arrays, run on a Dask cluster.

    Parameters
    ----------
    fn : callable
        A function of one sample returning a scalar, as for
        ``ft.value_and_grad``; traced once (on the first sample) per shape
        of its arguments, so a branch on the data must be written with
        ``ft.where``.
    argnums : int or tuple of ints, default 0
        The argument(s) to differentiate by.
    in_axes : 0, None, or a tuple of 0 / None, default 0
        Per argument: 0 where it is batched along axis 0 (a dask array
        chunked along that axis only, or a NumPy array), None where it is
        shared by every sample (NumPy, or a small dask array, computed first).
        At least one argument must be batched.
    client : dask.distributed.Client, optional
        Where to run; the current client by default.

    Returns
    -------
    callable
        ``f(*args) -> (values, grad)``: ``values`` the per-sample values as a
        dask array left on the workers (NumPy where no argument was a dask
        array); ``grad`` per ``argnums``: a shared argument's gradient summed
        over all samples as a NumPy array (a float for a scalar), a batched
        one's per sample like ``values``. A tuple of them for a tuple
        ``argnums``. The same as ``ft.value_and_grad`` in one process, up to
        rounding (the blocks' sums are added in a tree).

    Notes
    -----
    The traced tape is sent to every worker once, those joining later too
    (a worker plugin named by the tape's digest), and kept there for later
    calls; the shared arguments are sent once per worker per call; the
    batched blocks never leave their workers, and only the summed gradients
    come back.

    Examples
    --------
    >>> import dask.array as da                                  # doctest: +SKIP
    >>> from dask.distributed import Client, LocalCluster
    >>> client = Client(LocalCluster(n_workers=2, threads_per_worker=1))
    >>> X = da.from_array(np.random.rand(100_000, 2), chunks=25_000)
    >>> step = fasttape.distributed.value_and_grad(loss, 0, in_axes=(None, 0))
    >>> values, grad = step(params, X)   # values: dask; grad: NumPy
    """
    single = isinstance(argnums, int)
    wrt = (argnums,) if single else tuple(argnums)
    cache = {}  # per-sample shapes -> (tape, {client id: the tape's future})

    def call(*args):
        dask, da, default_client = _dask()
        axes = _axes(in_axes, len(args))
        if all(ax is None for ax in axes):
            raise ArgumentError("fasttape.distributed.value_and_grad: no argument is batched "
                                "(in_axes); use ft.value_and_grad")
        for k in wrt:
            if not 0 <= k < len(args):
                raise ArgumentError(f"argnums {k} does not name one of the {len(args)} arguments")
        cl = client if client is not None else default_client()
        any_dask = any(_is_dask(x) for x, ax in zip(args, axes) if ax == 0)
        args = [np.asarray(x.compute() if _is_dask(x) else x, dtype=np.float64)
                if ax is None else x for x, ax in zip(args, axes)]
        batched = _blocks(da, [x for x, ax in zip(args, axes) if ax == 0], cl)
        digest = _shipped(cache, cl, fn, args, axes, batched)
        blocks = [b.to_delayed().ravel() for b in batched]
        shared = [dask.delayed(x, pure=True) for x, ax in zip(args, axes) if ax is None]
        results = []
        for i in range(len(blocks[0])):
            sb, bb, block = iter(shared), iter(blocks), []
            for ax in axes:
                block.append(next(sb) if ax is None else next(bb)[i])
            results.append(dask.delayed(_sweep_block, pure=False)(
                digest, wrt, tuple(axes), *block))
        sizes = batched[0].chunks[0]
        shared_grads = [j for j, k in enumerate(wrt) if axes[k] is None]
        trees = [_tree(dask, results, j) for j in shared_grads]
        futures = cl.compute(results + trees)
        grads = dict(zip(shared_grads, (f.result() for f in futures[len(results):])))
        kept = futures[:len(results)]

        def stacked(pick, shape_of):
            parts = [da.from_delayed(dask.delayed(pick)(f), shape=(n,) + shape_of, dtype=float)
                     for f, n in zip(kept, sizes)]
            out = da.concatenate(parts)
            return out if any_dask else out.compute()

        values = stacked(_values, ())
        for j, k in enumerate(wrt):
            if j not in grads:  # a batched argument: per sample, like the values
                grads[j] = stacked(_picker(j), tuple(np.shape(args[k])[1:]))
        out = tuple(grads[j] for j in range(len(wrt)))
        return values, (out[0] if single else out)

    return call


def _picker(j):
    def pick(result):
        return result[1][j]
    return pick


def _axes(in_axes, n):
    axes = (in_axes,) * n if in_axes is None or isinstance(in_axes, int) else tuple(in_axes)
    if len(axes) != n or any(ax not in (None, 0) or ax is False for ax in axes):
        raise ArgumentError(f"in_axes must be 0, None or a tuple of {n} of them, got {in_axes!r}")
    return axes


def _blocks(da, arrays, client):
    """The batched arguments as dask arrays of the same blocks along axis 0
    (one block along the others); NumPy arrays split into one per worker."""
    B = {len(x) for x in arrays}
    if len(B) != 1:
        raise ArgumentError(f"the batched arguments have different lengths {sorted(B)}")
    first = next((x for x in arrays if _is_dask(x)), None)
    if first is not None:
        chunks = first.chunks[0]
    else:
        n, n_workers = arrays[0].shape[0], len(client.scheduler_info()["workers"])
        chunks = max(1, -(-n // max(n_workers, 1)))
    out = []
    for x in arrays:
        if not _is_dask(x):
            x = da.from_array(np.asarray(x, dtype=np.float64), chunks=-1)
        elif x.dtype != np.float64:
            x = x.astype(np.float64)
        out.append(x.rechunk((chunks,) + (-1,) * (x.ndim - 1)))
    return out


def _shipped(cache, client, fn, args, axes, batched):
    """The digest of the traced tape (on the first sample), installed on
    every worker of this client: traced and sent once per shapes and client."""
    key = tuple((ax, np.shape(x)[1:] if ax == 0 else np.shape(x)) for x, ax in zip(args, axes))
    if key not in cache:
        firsts = iter(np.asarray(b[:1].compute())[0] for b in batched)
        sample = [x if ax is None else next(firsts) for x, ax in zip(args, axes)]
        blob = pickle.dumps(trace(fn, *sample))
        cache[key] = (hashlib.sha256(blob).hexdigest(), blob, set())
    digest, blob, clients = cache[key]
    if id(client) not in clients:
        client.register_plugin(_TapeOnWorkers(digest, blob), name=f"fasttape-tape-{digest}")
        clients.add(id(client))
    return digest


def _tree(dask, results, j):
    """The sum of gradient j of the blocks' results by a tree of tasks,
    _FAN_IN at a time, in block order."""
    if not results:
        raise ArgumentTypeError("no blocks to sum")
    parts = [dask.delayed(_grad, pure=True)(r, j) for r in results]
    while len(parts) > 1:
        parts = [dask.delayed(_add, pure=True)(*parts[i:i + _FAN_IN])
                 for i in range(0, len(parts), _FAN_IN)]
    return parts[0]
