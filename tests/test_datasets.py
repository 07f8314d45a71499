"""fasttape.datasets: generated data, digits, and the CSV reader."""

import numpy as np
import pytest

import fasttape as ft
from fasttape import datasets


# ---------------------------------------------------------------- generated

def test_make_moons_geometry_and_labels():
    X, y = datasets.make_moons(301, noise=0.0, seed=3)
    assert X.shape == (301, 2) and X.dtype == np.float64 and y.shape == (301,)
    assert np.bincount(y).tolist() == [150, 151]
    # Without noise, class 0 lies on the unit circle's upper half and class 1 on
    # the circle of radius 1 centred at (1, 0.5), lower half.
    r0 = np.hypot(X[y == 0, 0], X[y == 0, 1])
    r1 = np.hypot(X[y == 1, 0] - 1.0, X[y == 1, 1] - 0.5)
    np.testing.assert_allclose(r0, 1.0, rtol=1e-12)
    np.testing.assert_allclose(r1, 1.0, rtol=1e-12)
    assert np.all(X[y == 0, 1] >= -1e-12) and np.all(X[y == 1, 1] <= 0.5 + 1e-12)


def test_make_moons_matches_sklearn_points_when_noiseless():
    sk = pytest.importorskip("sklearn.datasets")
    Xs, ys = sk.make_moons(200, noise=0.0, shuffle=False)
    X, y = datasets.make_moons(200, noise=0.0, seed=0)
    for label in (0, 1):     # the same point sets, in another order
        a, b = Xs[ys == label], X[y == label]
        assert len(a) == len(b)
        nearest = np.abs(a[:, None, :] - b[None, :, :]).sum(axis=2).min(axis=1)
        assert nearest.max() < 1e-12


def test_generated_data_are_seeded_and_noisy():
    for make in (datasets.make_moons, datasets.make_spirals):
        a, ya = make(200, noise=0.2, seed=7)
        b, yb = make(200, noise=0.2, seed=7)
        c, _ = make(200, noise=0.2, seed=8)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ya, yb)
        assert not np.allclose(a, c)
        clean, yc = make(200, noise=0.0, seed=7)
        np.testing.assert_array_equal(yc, ya)       # same shuffle, noise added after
        resid = a - clean
        assert 0.15 < resid.std() < 0.25             # the noise asked for


def test_make_spirals_classes_and_radius():
    X, y = datasets.make_spirals(300, noise=0.0, seed=0, n_classes=3)
    assert X.shape == (300, 2) and np.bincount(y).tolist() == [100, 100, 100]
    r = np.hypot(X[:, 0], X[:, 1])
    assert r.min() >= 0.05 - 1e-12 and r.max() <= 1.0 + 1e-12
    # Arms are rotated copies: the radius/angle relation holds per class.
    theta = np.arctan2(X[:, 1], X[:, 0])
    expected = 2.5 * np.pi * r + 2 * np.pi * y / 3
    np.testing.assert_allclose(np.cos(theta), np.cos(expected), atol=1e-9)


@pytest.mark.parametrize("bad", [dict(n=1), dict(n=2.5), dict(noise=-1.0)])
def test_generated_data_reject_bad_arguments(bad):
    args = dict(n=10, noise=0.1, seed=0)
    args.update(bad)
    with pytest.raises(ValueError):
        datasets.make_moons(**args)


# ---------------------------------------------------------------- digits

def test_load_digits_scaled_from_sklearn():
    sk = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_digits()
    raw = sk.load_digits()
    assert X.shape == (1797, 64) and set(np.unique(y)) == set(range(10))
    np.testing.assert_array_equal(X * 16.0, raw.data)
    np.testing.assert_array_equal(y, raw.target)


def test_load_digits_without_sklearn_says_why(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="scikit-learn"):
        datasets.load_digits()


# ---------------------------------------------------------------- CSV

def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_load_csv_with_header_and_string_labels(tmp_path):
    path = write(tmp_path, "x1,x2,label\n1.5,2,cat\n-3,4e-1,dog\n\n5,6,cat\n")
    X, y = datasets.load_csv(path)
    np.testing.assert_array_equal(X, [[1.5, 2.0], [-3.0, 0.4], [5.0, 6.0]])
    assert y.tolist() == ["cat", "dog", "cat"]


def test_load_csv_without_header_integer_labels(tmp_path):
    rows = np.random.default_rng(0).normal(size=(20, 3))
    labels = np.arange(20) % 3
    text = "".join(",".join(repr(float(v)) for v in r) + f",{k}\n" for r, k in zip(rows, labels))
    X, y = datasets.load_csv(write(tmp_path, text))
    np.testing.assert_array_equal(X, rows)       # repr round-trips exactly
    assert y.dtype.kind == "i" and y.tolist() == labels.tolist()


def test_load_csv_tabs_and_float_labels(tmp_path):
    X, y = datasets.load_csv(write(tmp_path, "a\tb\n1\t0.5\n2\t1.5\n"))
    np.testing.assert_array_equal(X, [[1.0], [2.0]])
    assert y.dtype.kind == "f" and y.tolist() == [0.5, 1.5]


def test_load_csv_features_only(tmp_path):
    X, y = datasets.load_csv(write(tmp_path, "a,b\n1,2\n3,4.5\n"), label=False)
    np.testing.assert_array_equal(X, [[1.0, 2.0], [3.0, 4.5]])
    assert y is None
    X, _ = datasets.load_csv(write(tmp_path, "7\n8\n"), label=False)    # one column
    np.testing.assert_array_equal(X, [[7.0], [8.0]])
    with pytest.raises(datasets.CSVError, match="line 3: expected 2 columns, got 1"):
        datasets.load_csv(write(tmp_path, "1,2\n3,4\n5\n"), label=False)
    with pytest.raises(datasets.CSVError, match="not a number"):
        datasets.load_csv(write(tmp_path, "1,2\n3,x\n"), label=False)


@pytest.mark.parametrize("text, message", [
    ("", "no data"),
    ("\n\n", "no data"),
    ("a,b,label\n", "no data"),
    ("1,2,0\n3,4\n", "line 2"),
    ("1,2,0\n3,4,5,1\n", "expected 3 columns"),
    ("a,b,c\n1,2,x\n3,oops,y\n", "'oops' is not a number"),
    ("1,2,0\n3,nan,1\n", "NaN"),
    ("label\n1\n2\n", "feature column"),
])
def test_load_csv_rejects_bad_files(tmp_path, text, message):
    with pytest.raises(datasets.CSVError, match=message) as info:
        datasets.load_csv(write(tmp_path, text))
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, ft.FasttapeError)


def test_load_csv_rejects_binary_files(tmp_path):
    path = tmp_path / "blob.csv"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(datasets.CSVError):
        datasets.load_csv(str(path))
