"""Small classification data sets: two generated ones (no download), the
scikit-learn digits where scikit-learn is installed, and a CSV reader.

Every loader returns ``(X, y)``: ``X`` a float64 array of shape
``(n_samples, n_features)``, ``y`` a 1-d array of labels.
"""

import csv

import numpy as np

from .errors import FasttapeError

__all__ = ["make_moons", "make_spirals", "load_digits", "load_csv", "CSVError"]


class CSVError(FasttapeError, ValueError):
    """A CSV file that cannot be read as numeric features plus a label.

    Raised by :func:`load_csv`; a ``ft.FasttapeError`` and a ValueError.
    """


def make_moons(n=1000, noise=0.1, seed=0):
    """Two interleaving half circles in 2-d, labels 0 and 1 (``n // 2`` of
    class 0), shuffled, with Gaussian noise of standard deviation ``noise``.
    The same construction as scikit-learn's ``make_moons``.

    Parameters
    ----------
    n : int, default 1000
        Number of samples, >= 2.
    noise : float, default 0.1
        Standard deviation of the Gaussian noise, >= 0.
    seed : None or int, default 0

    Returns
    -------
    X : ndarray of float64, shape (n, 2)
    y : ndarray of int64, shape (n,)

    Raises
    ------
    ValueError
        ``n`` not an int >= 2, or ``noise < 0``.

    Examples
    --------
    >>> X, y = ft.datasets.make_moons(200, noise=0.1, seed=0)
    >>> X.shape, np.bincount(y)
    ((200, 2), array([100, 100]))
    """
    n = _check_n(n)
    rng = np.random.default_rng(seed)
    n0 = n // 2
    n1 = n - n0
    t0 = np.linspace(0.0, np.pi, n0)
    t1 = np.linspace(0.0, np.pi, n1)
    X = np.concatenate([np.column_stack([np.cos(t0), np.sin(t0)]),
                        np.column_stack([1.0 - np.cos(t1), 0.5 - np.sin(t1)])])
    y = np.concatenate([np.zeros(n0, dtype=np.int64), np.ones(n1, dtype=np.int64)])
    return _shuffle_and_noise(X, y, noise, rng)


def make_spirals(n=1000, noise=0.1, seed=0, n_classes=2):
    """``n_classes`` interleaved spiral arms in 2-d (each one and a quarter
    turns), labels ``0 .. n_classes-1``, shuffled, with Gaussian noise of
    standard deviation ``noise``.  Harder than the moons: it needs a wider net.

    Parameters
    ----------
    n : int, default 1000
        Number of samples, >= 2 (as equal per class as they divide).
    noise : float, default 0.1
    seed : None or int, default 0
    n_classes : int, default 2
        >= 2.

    Returns
    -------
    X : ndarray of float64, shape (n, 2)
    y : ndarray of int64, shape (n,)

    Raises
    ------
    ValueError
        ``n``, ``noise`` or ``n_classes`` out of range.
    """
    n = _check_n(n)
    if int(n_classes) < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    rng = np.random.default_rng(seed)
    y = np.arange(n) % int(n_classes)
    r = np.empty(n)
    for k in range(int(n_classes)):
        members = y == k
        r[members] = np.linspace(0.05, 1.0, members.sum())   # radius along the arm
    theta = 2.5 * np.pi * r + 2.0 * np.pi * y / int(n_classes)
    X = np.column_stack([r * np.cos(theta), r * np.sin(theta)])
    return _shuffle_and_noise(X, y.astype(np.int64), noise, rng)


def _check_n(n):
    if int(n) != n or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    return int(n)


def _shuffle_and_noise(X, y, noise, rng):
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    order = rng.permutation(len(y))
    X, y = X[order], y[order]
    if noise:
        X = X + rng.normal(0.0, noise, X.shape)
    return X, y


def load_digits():
    """The 8x8 handwritten digits (1797 samples, 64 features, labels 0-9) from
    scikit-learn, with pixel intensities scaled from 0..16 to [0, 1].

    Returns
    -------
    X : ndarray of float64, shape (1797, 64)
    y : ndarray of int64, shape (1797,)

    Raises
    ------
    ImportError
        scikit-learn is not installed.
    """
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        raise ImportError("load_digits needs scikit-learn, which ships the digits "
                          "data: pip install scikit-learn") from None
    data = sk_load_digits()
    return data.data.astype(np.float64) / 16.0, data.target.astype(np.int64)


def load_csv(path, label=True):
    """Read a CSV file whose last column is the label and the others numeric
    features (``label=False``: every column a feature, and ``y`` is None).
    A first row whose features are not all numbers is taken as a header.  Labels that are all integers come back as ints, all numbers as
    floats, else as strings.  Raises :class:`CSVError` (a ValueError) naming
    the line for ragged rows, non-numeric features and files with no data.

    The delimiter is a comma, unless the first line has none but has tabs
    or semicolons.

    Parameters
    ----------
    path : str or os.PathLike
    label : bool, default True
        Whether the last column is the label.

    Returns
    -------
    X : ndarray of float64, shape (n_samples, n_features)
    y : ndarray of int64, float64 or str, shape (n_samples,), or None

    Raises
    ------
    CSVError
        Not a text file, no data rows, ragged rows, a non-numeric or
        non-finite feature, or fewer than two columns.
    OSError
        The file cannot be opened.
    """
    try:
        with open(path, newline="") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise CSVError(f"{path}: not a text CSV file") from None
    if "\0" in text:
        raise CSVError(f"{path}: not a text CSV file")
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), "")
    # Comma unless the first line has none but has tabs or semicolons.
    delimiter = next((d for d in ",\t;" if d in first), ",")
    try:
        rows = [(n, row) for n, row in enumerate(csv.reader(lines, delimiter=delimiter), 1)
                if any(cell.strip() for cell in row)]
    except csv.Error as exc:
        raise CSVError(f"{path}: {exc}") from None

    n_label = 1 if label else 0
    if rows and not _all_numbers(rows[0][1][:len(rows[0][1]) - n_label]):
        rows = rows[1:]                      # a header row
    if not rows:
        raise CSVError(f"{path}: no data rows")
    width = len(rows[0][1])
    if not label:
        rows = [(line, row + [""]) for line, row in rows]     # an empty label column
    elif width < 2:
        raise CSVError(f"{path}: line {rows[0][0]}: need at least one feature "
                       "column and a label column")
    features, labels = [], []
    for line, row in rows:
        if len(row) != width + 1 - n_label:
            raise CSVError(f"{path}: line {line}: expected {width} columns, "
                           f"got {len(row) - 1 + n_label}")
        try:
            features.append([float(cell) for cell in row[:-1]])
        except ValueError:
            bad = next(c for c in row[:-1] if not _is_number(c))
            raise CSVError(f"{path}: line {line}: feature {bad.strip()!r} is not "
                           "a number") from None
        labels.append(row[-1].strip())
    X = np.array(features, dtype=np.float64)
    if not np.all(np.isfinite(X)):
        raise CSVError(f"{path}: features contain NaN or infinity")
    return X, (_label_array(labels) if label else None)


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _all_numbers(cells):
    return all(_is_number(c) for c in cells)


def _label_array(labels):
    if all(_is_number(v) for v in labels):
        y = np.array([float(v) for v in labels])
        if np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            return y.astype(np.int64)
        return y
    return np.array(labels)
