"""fasttape.distributed on a real Dask cluster: two worker processes started
here (a LocalCluster), gradients over dask arrays equal to one process."""

import subprocess
import sys

import numpy as np
import pytest

import fasttape as ft

model = ft.nn.MLP([2, 5, 1])
PARAMS = model.init(0)


def loss(p, x, t):
    return ft.nn.binary_cross_entropy_with_logits(model(p, x)[0], t)


def data(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 2)), (rng.random(n) > 0.5).astype(float)


@pytest.fixture(scope="module")
def client():
    pytest.importorskip("dask.distributed", reason="needs the extra: pip install "
                        "\"fasttape[distributed]\"")
    from dask.distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    with Client(cluster) as c:
        yield c
    cluster.close()


def test_equals_one_process(client):
    """Values (a dask array, on the workers) to 1e-12, the summed gradient
    to 1e-10 relative, with blocks of uneven sizes."""
    import dask.array as da
    from fasttape import distributed
    X, T = data(1000)
    Xd, Td = da.from_array(X, chunks=((300, 300, 250, 150), (2,))), da.from_array(T, chunks=300)
    values, grad = distributed.value_and_grad(loss, 0, in_axes=(None, 0, 0))(PARAMS, Xd, Td)
    want_v, want_g = ft.value_and_grad(loss, 0, in_axes=(None, 0, 0))(PARAMS, X, T)
    assert isinstance(values, da.Array) and isinstance(grad, np.ndarray)
    np.testing.assert_allclose(values.compute(), want_v, rtol=1e-12, atol=0)
    assert np.abs(grad - want_g).max() <= 1e-10 * np.abs(want_g).max()


def test_batched_gradient_and_numpy_inputs(client):
    """A batched argument's gradient is per sample, a dask array; NumPy in
    gives NumPy out."""
    import dask.array as da
    from fasttape import distributed
    X, T = data(301, seed=1)
    f = distributed.value_and_grad(loss, (0, 1), in_axes=(None, 0, 0))
    want_v, (want_p, want_x) = ft.value_and_grad(loss, (0, 1), in_axes=(None, 0, 0))(PARAMS, X, T)
    values, (gp, gx) = f(PARAMS, da.from_array(X, chunks=100), T)
    assert isinstance(gx, da.Array) and gx.shape == X.shape
    np.testing.assert_allclose(gx.compute(), want_x, rtol=1e-12, atol=1e-15)
    assert np.abs(gp - want_p).max() <= 1e-10 * np.abs(want_p).max()
    values, (gp, gx) = f(PARAMS, X, T)
    assert type(values) is np.ndarray and type(gx) is np.ndarray
    np.testing.assert_allclose(values, want_v, rtol=1e-12, atol=0)


def test_tape_is_shipped_once_per_worker(client):
    """After three calls (16 blocks each) each worker has installed the
    tape once; a new parameter vector changes the gradient, not the tape."""
    import dask.array as da
    from fasttape import distributed
    X, T = data(400, seed=2)
    cube = lambda p, x, t: loss(p, x, t) ** 3  # noqa: E731  (a tape no other test made)
    f = distributed.value_and_grad(cube, 0, in_axes=(None, 0, 0))
    before = client.run(_installs)
    for scale in (1.0, 0.5, 2.0):
        _, grad = f(PARAMS * scale, da.from_array(X, chunks=25), da.from_array(T, chunks=25))
        want = ft.value_and_grad(cube, 0, in_axes=(None, 0, 0))(PARAMS * scale, X, T)[1]
        assert np.abs(grad - want).max() <= 1e-10 * np.abs(want).max()
    after = client.run(_installs)
    assert len(after) == 2
    for worker in after:
        new = {d: n for d, n in after[worker].items() if d not in before[worker]}
        assert list(new.values()) == [1], (worker, new)


def _installs(dask_worker):
    """How many times each tape was installed on this worker."""
    from fasttape import distributed
    return dict(distributed._INSTALLS)


def test_arguments_are_checked(client):
    from fasttape import distributed
    X, T = data(10)
    with pytest.raises(ft.ArgumentError, match="no argument is batched"):
        distributed.value_and_grad(loss, 0, in_axes=None)(PARAMS, X[0], T[0])
    with pytest.raises(ft.ArgumentError, match="different lengths"):
        distributed.value_and_grad(loss, 0, in_axes=(None, 0, 0))(PARAMS, X, T[:5])


WITHOUT_DASK = """
import sys
sys.modules["dask"] = None    # as if not installed
import fasttape as ft
from fasttape import distributed
assert "dask" not in [m.split(".")[0] for m in sys.modules if sys.modules[m] is not None]
try:
    distributed.value_and_grad(lambda x: x * x)(1.0)
except ImportError as exc:
    print("ImportError", "fasttape[distributed]" in str(exc))
"""


def test_fasttape_imports_without_dask():
    out = subprocess.run([sys.executable, "-c", WITHOUT_DASK], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["ImportError", "True"]
