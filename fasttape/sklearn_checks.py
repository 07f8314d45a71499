"""scikit-learn's conventions for the estimators (estimators.py): its
warning and error classes (its own, where scikit-learn is installed), and
its checks of inputs."""

import sys
import warnings

import numpy as np

__all__ = ["ConvergenceWarning", "NotFittedError"]
_ESTIMATOR_MODULES = (__name__, "fasttape.estimators", "fasttape.optimizers")

class ConvergenceWarning(UserWarning):
    """Training stopped before it converged (``max_iter`` reached, or
    L-BFGS-B did not finish).  Where scikit-learn is loaded, the warning
    raised is also an instance of its ``ConvergenceWarning``."""


class NotFittedError(ValueError, AttributeError):
    """Raised when an estimator is used before ``fit``; the same bases as
    scikit-learn's ``NotFittedError``, which it also is where scikit-learn is
    installed."""


def with_sklearn(ours, name):
    """``ours``, or a subclass that is also scikit-learn's class of that name
    where scikit-learn is importable, so either ``except`` clause catches it.
    Looked up lazily: importing scikit-learn costs a second we need not pay
    unless the error or warning happens."""
    skx = sys.modules.get("sklearn.exceptions")
    if skx is None:
        # Not loaded, so no caller can be catching its class: skip the import
        # (about a second), except for errors, which are rare and worth it.
        if name != "NotFittedError":
            return ours
        try:
            import sklearn.exceptions as skx
        except ImportError:
            return ours
    cache = with_sklearn.__dict__.setdefault("cache", {})
    if name not in cache:
        cache[name] = type(ours.__name__, (ours, getattr(skx, name)),
                           {"__module__": ours.__module__, "__doc__": ours.__doc__})
    return cache[name]


class DataConversionWarning(UserWarning):
    pass


def warn(message, kind=UserWarning):
    # Attributed to the first caller outside the estimators' modules (the user's fit).
    level, frame = 2, sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") in _ESTIMATOR_MODULES:
        frame, level = frame.f_back, level + 1
    warnings.warn(message, kind, stacklevel=level)


class AvailableIf:
    """A method that exists only while ``check(instance)`` holds (as
    scikit-learn's ``available_if``): ``hasattr`` is False otherwise."""

    def __init__(self, check, fn):
        self.check, self.fn = check, fn
        self.__doc__ = fn.__doc__

    def __get__(self, obj, owner=None):
        if obj is None:
            return self.fn
        if not self.check(obj):
            raise AttributeError(f"partial_fit is only available for stochastic "
                                 f"optimizers. {obj.solver} is not stochastic.")
        return self.fn.__get__(obj, owner)


# ---------------------------------------------------------------- input checks

def feature_names(X):
    """The column names of a DataFrame-like X if all are strings, else None
    (scikit-learn's rule; mixed string and non-string names are an error)."""
    columns = getattr(X, "columns", None)
    if columns is None or isinstance(X, np.ndarray):
        return None
    names = np.asarray(list(columns), dtype=object)
    types = sorted({type(n).__qualname__ for n in names})
    if len(types) > 1 and "str" in types:
        raise TypeError("Feature names are only supported if all input features have "
                        f"string names, but your input has {types} as feature name / "
                        "column name types. If you want feature names to be stored and "
                        "validated, you must convert them all to strings, by using "
                        "X.columns = X.columns.astype(str) for example.")
    return names if types == ["str"] else None


def as_float_array(X, what="X"):
    """X as a 2-d float32 or float64 array (other types become float64),
    checked as scikit-learn's ``check_array`` does, sparse input densified."""
    if hasattr(X, "toarray"):                  # SciPy sparse: the tape is dense
        X = X.toarray()
    X = np.asarray(X)
    if X.dtype.kind == "c":
        raise ValueError(f"{what}: Complex data not supported")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)               # TypeError/ValueError if not numeric
    if X.ndim != 2:
        raise ValueError(f"Expected 2D array, got {X.ndim}D array instead: {what} of "
                         f"shape {X.shape}. Reshape your data either using "
                         "X.reshape(-1, 1) if your data has a single feature or "
                         "X.reshape(1, -1) if it contains a single sample.")
    for axis, what_ in ((0, "sample"), (1, "feature")):
        if X.shape[axis] < 1:
            raise ValueError(f"Found array with 0 {what_}(s) (shape={X.shape}) while a "
                             "minimum of 1 is required.")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"Input {what} contains NaN or infinity.")
    return X


def check_sample_weight(sample_weight, n):
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.ndim == 0:
        w = np.full(n, float(w))
    if w.shape != (n,):
        raise ValueError(f"sample_weight.shape == {w.shape}, expected ({n},)!")
    if not np.all(np.isfinite(w)):
        raise ValueError("Input sample_weight contains NaN or infinity.")
    if not np.any(w):
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return w


def column_or_1d(y):
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        warn("A column-vector y was passed when a 1d array was expected. Please change "
              "the shape of y to (n_samples, ), for example using ravel().",
              with_sklearn(DataConversionWarning, "DataConversionWarning"))
        return y.ravel()
    return y
