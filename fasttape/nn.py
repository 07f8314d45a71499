"""Small neural-network classifiers built on fasttape tapes.

The pieces are deliberately plain: an :class:`MLP` that lays its weights out in
one flat float64 vector, per-sample losses written with fasttape ops, optimizers
that update that vector in place with NumPy, and :class:`MLPClassifier`, a
scikit-learn-style estimator that ties them together.  Training traces the
per-sample loss once and replays it over whole mini-batches (``in_axes``), so
the per-sample Python work happens once, not once per sample and step.
"""

import inspect
import sys
import time
import warnings

import numpy as np

import fasttape as ft

__all__ = ["MLP", "binary_cross_entropy_with_logits", "softmax_cross_entropy",
           "SGD", "Adam", "MLPClassifier"]

# name -> (fasttape op, NumPy twin for fast prediction)
_ACTIVATIONS = {
    "tanh": (lambda v: ft.tanh(v), np.tanh),
    "relu": (lambda v: ft.relu(v), lambda a: np.maximum(a, 0.0)),
    "sigmoid": (lambda v: ft.sigmoid(v), lambda a: 0.5 * (1.0 + np.tanh(0.5 * a))),
}


def _check_activation(activation):
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, "
                         f"got {activation!r}")


class MLP:
    """A fully connected network; hidden layers use ``activation``, the last
    layer is linear (it returns logits).

    Parameters live in one flat vector, layer by layer: the weight matrix
    (shape ``(n_out, n_in)``, row-major, so a row is one unit's weights) and then
    the biases.  A flat vector is what ``ft.grad`` and the optimizers handle best.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, inputs first and outputs last, e.g. ``(2, 10, 1)``;
        at least two, each positive.
    activation : {"tanh", "relu", "sigmoid"}, default "tanh"
        Of the hidden layers.

    Attributes
    ----------
    sizes : tuple of int
    activation : str
    n_params : int
        Length of the parameter vector.

    Raises
    ------
    ValueError
        Fewer than two sizes, a size below 1, or an unknown activation.

    Examples
    --------
    >>> model = ft.nn.MLP((2, 10, 1))
    >>> params = model.init(seed=0)          # shape (41,)
    >>> loss = lambda p, x: model(p, x)[0] ** 2
    >>> ft.grad(loss)(params, np.array([0.5, -0.5])).shape
    (41,)
    """

    def __init__(self, sizes, activation="tanh"):
        sizes = tuple(int(s) for s in sizes)
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes needs at least two positive layer sizes, got {sizes}")
        _check_activation(activation)
        self.sizes = sizes
        self.activation = activation
        self._layout = []          # (weights slice start, n_in, n_out) per layer
        offset = 0
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            self._layout.append((offset, n_in, n_out))
            offset += n_out * n_in + n_out
        self.n_params = offset

    def __repr__(self):
        return f"MLP({list(self.sizes)}, activation={self.activation!r})"

    def init(self, seed=None):
        """A fresh parameter vector: Glorot-uniform weights for tanh/sigmoid (and
        the linear output), He-normal for relu, zero biases.

        Parameters
        ----------
        seed : None, int or numpy.random.Generator
            Passed to ``numpy.random.default_rng``.

        Returns
        -------
        ndarray of float64, shape (n_params,)
        """
        rng = np.random.default_rng(seed)
        params = np.zeros(self.n_params)
        last = len(self._layout) - 1
        for k, (start, n_in, n_out) in enumerate(self._layout):
            n_w = n_in * n_out
            if self.activation == "relu" and k < last:
                w = rng.normal(0.0, np.sqrt(2.0 / n_in), n_w)
            else:
                bound = np.sqrt(6.0 / (n_in + n_out))
                w = rng.uniform(-bound, bound, n_w)
            params[start:start + n_w] = w
        return params

    def layers(self, params):
        """``[(W, b), ...]``: views of ``params`` shaped per layer, ``W`` of
        shape ``(n_out, n_in)`` and ``b`` of shape ``(n_out,)``.

        Raises
        ------
        ValueError
            ``params`` is not of shape ``(n_params,)``.
        """
        params = np.asarray(params)
        if params.shape != (self.n_params,):
            raise ValueError(f"params: expected shape ({self.n_params},), "
                             f"got {params.shape}")
        out = []
        for start, n_in, n_out in self._layout:
            end = start + n_in * n_out
            out.append((params[start:end].reshape(n_out, n_in), params[end:end + n_out]))
        return out

    def __call__(self, params, x):
        """Output logits for one sample, recorded: use it inside a traced
        function or transform.

        Parameters
        ----------
        params : array_like, shape (n_params,)
            Floats or Vars (a traced argument).
        x : array_like, shape (sizes[0],)
            One sample's features, Vars or floats.

        Returns
        -------
        ndarray of object, shape (sizes[-1],)
            One Var per output; each unit's weighted sum is one n-ary
            ``dot`` node.

        Raises
        ------
        ValueError
            ``x`` or ``params`` of the wrong size.
        """
        act = _ACTIVATIONS[self.activation][0]
        h = np.asarray(x, dtype=object).reshape(-1)
        if h.shape[0] != self.sizes[0]:
            raise ValueError(f"x: expected {self.sizes[0]} features, got {h.shape[0]}")
        layers = self.layers(params)
        for k, (W, b) in enumerate(layers):
            # One n-ary dot node per unit, not a chain of multiply-adds; all
            # the layer's dots first, so its bias adds and then its
            # activations record as runs the kernel sweeps as one loop each.
            dots = [ft.dot(W[j], h) for j in range(W.shape[0])]
            z = [d + b[j] for j, d in enumerate(dots)]
            if k < len(layers) - 1:
                z = [act(v) for v in z]
            h = np.empty(len(z), dtype=object)
            h[:] = z
        return h

    def forward(self, params, X):
        """Logits for a 2-d float batch ``X`` in plain NumPy (fast prediction,
        nothing recorded).

        Parameters
        ----------
        params : array_like of float, shape (n_params,)
        X : array_like of float, shape (n_samples, sizes[0])

        Returns
        -------
        ndarray, shape (n_samples, sizes[-1])
        """
        act = _ACTIVATIONS[self.activation][1]
        h = np.asarray(X, dtype=np.float64)
        layers = self.layers(np.asarray(params, dtype=np.float64))
        for k, (W, b) in enumerate(layers):
            h = h @ W.T + b
            if k < len(layers) - 1:
                h = act(h)
        return h


# ---------------------------------------------------------------- losses

def _softplus(z):
    """log(1 + exp(z)) = m + log1p(exp(-|z|)) with m = max(z, 0), and -|z|
    written as z - 2m so that only one kinked op appears.

    exp never overflows and log1p keeps tiny losses accurate.  The recorded
    derivative is m' + s (1 - 2 m') with s = exp(-|z|) / (1 + exp(-|z|)):
    sigmoid(z) for z != 0, and at z = 0, where s = 1/2, it is 1/2 whatever
    gradient the kink of max reports (0, 1/2 or 1).  The textbook
    relu(z) + log1p(exp(-abs(z))) records 0 there instead: relu and abs both
    report a zero gradient at their kinks.
    """
    m = ft.maximum(z, 0.0)
    return m + ft.log1p(ft.exp(z - 2.0 * m))


def binary_cross_entropy_with_logits(z, y):
    """Per-sample binary cross-entropy of a logit ``z`` against a target ``y``
    in [0, 1]: softplus(z) - z*y.  Its gradient in z is sigmoid(z) - y.

    Numerically stable (no overflow for large ``|z|``), and the recorded
    gradient is exactly ``sigmoid(z) - y`` everywhere, ``z = 0`` included.

    Parameters
    ----------
    z : Var or float
        The logit.
    y : Var or float
        The target (a traced argument when batched).

    Returns
    -------
    Var or float

    Examples
    --------
    >>> ft.nn.binary_cross_entropy_with_logits(0.0, 1.0)    # log 2
    0.6931471805599453
    >>> ft.grad(ft.nn.binary_cross_entropy_with_logits)(0.0, 1.0)
    -0.5
    """
    return _softplus(z) - z * y


def softmax_cross_entropy(logits, label):
    """Per-sample cross-entropy of softmax(logits) against ``label``: an int
    class index, or a one-hot (or probability) vector, which is what batched
    training passes, the label being a traced input there.  The gradient in
    the logits is softmax(logits) - onehot.

    Parameters
    ----------
    logits : array_like of Vars or floats, shape (k,)
    label : int, or array_like of shape (k,)
        A Python or NumPy int class index in ``range(k)``, or a one-hot or
        probability vector (Vars or floats). In a batched call
        (``in_axes=0`` over an int array) the index is a traced input: it
        is compared with each class, and an index out of range in a later
        batch raises (``ValueError`` on re-tracing, or ``ft.GuardError``
        when only some samples of a batch are out of range).

    Returns
    -------
    Var or float
        ``logsumexp(logits) - logits[label]`` (or ``- label @ logits``),
        computed with the maximum subtracted, so it cannot overflow.

    Raises
    ------
    ValueError
        An index out of range, or a vector of the wrong shape.

    Examples
    --------
    >>> ft.grad(lambda z: ft.nn.softmax_cross_entropy(z, 1))(np.zeros(3))
    array([ 0.33333333, -0.66666667,  0.33333333])
    >>> step = ft.value_and_grad(ft.nn.softmax_cross_entropy, in_axes=(0, 0))
    >>> step(np.zeros((2, 3)), np.array([0, 2]))[1][1]
    array([ 0.33333333,  0.33333333, -0.66666667])
    """
    logits = np.asarray(logits, dtype=object).reshape(-1)
    m = logits[0]
    for v in logits[1:]:
        m = ft.maximum(m, v)           # max subtraction: no overflow in exp
    shifted = [v - m for v in logits]  # (all subtractions, then all exps: two runs)
    lse = m + ft.log(ft.sum([ft.exp(d) for d in shifted]))
    if isinstance(label, (int, np.integer)):
        if not 0 <= label < len(logits):
            raise ValueError(f"label: class index {label} out of range for "
                             f"{len(logits)} logits")
        return lse - logits[label]
    onehot = np.asarray(label, dtype=object).reshape(-1)
    if onehot.shape == (1,) and len(logits) > 1 and isinstance(onehot[0], ft.Var):
        # A traced class index (batched from an int array): pick its logit
        # with recorded comparisons, so the tape holds for every index.
        index = onehot[0]
        # Recorded as guards: a replay with an index out of range re-traces
        # (and raises here) or raises ft.GuardError, never a silent zero.
        in_range = bool(index > -0.5) and bool(index < len(logits) - 0.5)
        if not (in_range and float(index.value).is_integer()):
            raise ValueError(f"label: class index {index.value} out of range for "
                             f"{len(logits)} logits")
        onehot = [index == k for k in range(len(logits))]
        return lse - ft.dot(onehot, logits)
    if onehot.shape != logits.shape:
        raise ValueError(f"label: expected an int or a vector of shape {logits.shape}, "
                         f"got shape {onehot.shape}")
    return lse - ft.dot(onehot, logits)


# ---------------------------------------------------------------- optimizers

class SGD:
    """Stochastic gradient descent with optional (heavy-ball) momentum, as
    ``torch.optim.SGD``: v = momentum * v + g; p -= lr * v.

    Parameters
    ----------
    lr : float, default 0.1
        Learning rate, > 0.
    momentum : float, default 0.0
        In [0, 1). The velocity starts at the first gradient, as torch's.

    Raises
    ------
    ValueError
        ``lr <= 0`` or ``momentum`` outside [0, 1).

    Examples
    --------
    >>> p = np.array([1.0, 2.0])
    >>> ft.nn.SGD(0.1).step(p, np.array([1.0, 1.0]))   # p is updated in place
    array([0.9, 1.9])
    """

    def __init__(self, lr=0.1, momentum=0.0):
        if lr <= 0 or not 0 <= momentum < 1:
            raise ValueError(f"need lr > 0 and 0 <= momentum < 1, got lr={lr}, "
                             f"momentum={momentum}")
        self.lr, self.momentum = float(lr), float(momentum)
        self.velocity = None

    def step(self, params, grad):
        """Update ``params`` in place by one step along ``grad``.

        Parameters
        ----------
        params : ndarray of float64
            Updated in place (a flat vector, as ``MLP.init`` gives).
        grad : array_like of float, the shape of params

        Returns
        -------
        ndarray
            ``params`` itself.
        """
        grad = np.asarray(grad, dtype=np.float64)
        if self.momentum:
            if self.velocity is None:
                self.velocity = grad.copy()     # torch starts the buffer at g
            else:
                self.velocity *= self.momentum
                self.velocity += grad
            grad = self.velocity
        params -= self.lr * grad
        return params


class Adam:
    """Adam with bias correction, the update order of ``torch.optim.Adam``
    (betas 0.9 / 0.999, eps 1e-8 added after the square root).

    Parameters
    ----------
    lr : float, default 1e-3
        Learning rate, > 0.
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8

    Raises
    ------
    ValueError
        ``lr <= 0``.

    Examples
    --------
    >>> p = np.array([1.0, 2.0])
    >>> ft.nn.Adam(0.1).step(p, np.array([1.0, -1.0]))  # first step: lr * sign
    array([0.9, 2.1])
    """

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        if lr <= 0:
            raise ValueError(f"need lr > 0, got {lr}")
        self.lr, self.betas, self.eps = float(lr), tuple(betas), float(eps)
        self.t = 0
        self.m = self.v = None

    def step(self, params, grad):
        """Update ``params`` in place by one Adam step along ``grad``; returns
        ``params``. Parameters as for :meth:`SGD.step`."""
        grad = np.asarray(grad, dtype=np.float64)
        b1, b2 = self.betas
        if self.m is None:
            self.m, self.v = np.zeros_like(grad), np.zeros_like(grad)
        self.t += 1
        self.m *= b1
        self.m += (1 - b1) * grad
        self.v *= b2
        self.v += (1 - b2) * grad * grad
        correction1 = 1 - b1 ** self.t
        correction2 = 1 - b2 ** self.t
        denom = np.sqrt(self.v) / np.sqrt(correction2) + self.eps
        params -= (self.lr / correction1) * self.m / denom
        return params


# ---------------------------------------------------------------- estimator

class MLPClassifier:
    """A multilayer-perceptron classifier with the scikit-learn estimator
    interface (``fit``, ``predict``, ``predict_proba``, ``score``, ``classes_``,
    ``loss_curve_``, ``get_params`` / ``set_params``); scikit-learn itself is
    not needed.  Two classes use one logit and binary cross-entropy, more use
    softmax cross-entropy.  Each epoch is a shuffled pass of mini-batches, each
    batch one batched replay of the traced per-sample loss.  Training stops
    after ``max_iter`` epochs, or earlier once the epoch loss has not improved
    by ``tol`` for ``n_iter_no_change`` epochs (as scikit-learn's does).

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default (10,)
    activation : {"tanh", "relu", "sigmoid"}, default "tanh"
    solver : {"adam", "sgd"}, default "adam"
    learning_rate_init : float, default 0.01
        Larger than scikit-learn's 0.001 because batches are smaller and
        the nets tiny; it reaches the two-moons target in ~25 epochs.
    batch_size : int, default 32
    max_iter : int, default 200
        Epochs.
    random_state : None, int or Generator
        Seed of the initial weights and the shuffling.
    verbose : bool, default False
        Print a line per epoch.
    momentum : float, default 0.9
        SGD only.
    tol : float, default 1e-4
    n_iter_no_change : int, default 10
        Early stopping on the training loss.

    Attributes
    ----------
    classes_ : ndarray
        The sorted class labels.
    n_features_in_ : int
    model_ : MLP
    coef_flat_ : ndarray
        The model's parameter vector.
    loss_curve_ : list of float
        Mean per-sample loss of each epoch.
    n_iter_ : int
        Epochs run.
    t_ : int
        Samples seen.

    Raises
    ------
    ValueError
        From ``fit``: bad parameters, non-numeric, non-finite or misshapen
        data, fewer than two classes. Prediction before ``fit`` raises
        scikit-learn's ``NotFittedError`` (this module's where scikit-learn
        is not installed; a ValueError and an AttributeError).

    Examples
    --------
    >>> X, y = ft.datasets.make_moons(200, noise=0.1, seed=0)
    >>> clf = ft.nn.MLPClassifier(max_iter=30, random_state=0).fit(X, y)
    >>> clf.predict(X[:3]), clf.predict_proba(X[:3]).shape
    (array([0, 1, 1]), (3, 2))
    """

    def __init__(self, hidden_layer_sizes=(10,), activation="tanh", solver="adam",
                 learning_rate_init=0.01, batch_size=32, max_iter=200,
                 random_state=None, verbose=False, momentum=0.9, tol=1e-4,
                 n_iter_no_change=10):
        # scikit-learn convention: __init__ only stores its arguments.
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.random_state = random_state
        self.verbose = verbose
        self.momentum = momentum
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change

    _PARAM_NAMES = tuple(inspect.signature(__init__).parameters)[1:]   # all but self

    def get_params(self, deep=True):
        """The constructor's parameters as a dict (``deep`` is ignored)."""
        return {name: getattr(self, name) for name in self._PARAM_NAMES}

    def set_params(self, **params):
        """Set constructor parameters by name; returns self. ValueError for
        a name the constructor does not take."""
        for name, value in params.items():
            if name not in self._PARAM_NAMES:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}; "
                                 f"valid parameters: {', '.join(self._PARAM_NAMES)}")
            setattr(self, name, value)
        return self

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def __sklearn_tags__(self):
        # Lets scikit-learn's checks see a classifier without inheriting from it.
        from sklearn.utils import ClassifierTags, Tags, TargetTags
        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags())

    _estimator_type = "classifier"    # for older scikit-learn versions

    # -- input checking

    def _check_X(self, X, n_features=None):
        if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
            raise TypeError("X: sparse input is not supported; pass a dense array")
        X = np.asarray(X)
        if X.dtype.kind == "c":
            raise ValueError("X: Complex data not supported")
        # Messages follow scikit-learn's check_array, which its checks look for.
        X = X.astype(np.float64, copy=False)     # TypeError/ValueError if not numeric
        if X.ndim != 2:
            raise ValueError(f"X: expected a 2-d array (n_samples, n_features), "
                             f"got shape {X.shape}. Reshape your data with "
                             "X.reshape(-1, 1) or X.reshape(1, -1)")
        for axis, what in ((0, "sample"), (1, "feature")):
            if X.shape[axis] < 1:
                raise ValueError(f"X: found array with 0 {what}(s) (shape={X.shape}) "
                                 "while a minimum of 1 is required.")
        if not np.all(np.isfinite(X)):
            raise ValueError("X: input contains NaN or infinity")
        if n_features is not None and X.shape[1] != n_features:
            raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is "
                             f"expecting {n_features} features as input")
        return X

    def _check_params(self):
        hidden = self.hidden_layer_sizes
        hidden = (hidden,) if np.isscalar(hidden) else tuple(hidden)
        if any(int(h) != h or h < 1 for h in hidden):
            raise ValueError(f"hidden_layer_sizes must be positive ints, got {hidden}")
        _check_activation(self.activation)
        if self.solver not in ("adam", "sgd"):
            raise ValueError(f"solver must be 'adam' or 'sgd', got {self.solver!r}")
        if not self.learning_rate_init > 0:
            raise ValueError(f"learning_rate_init must be > 0, got {self.learning_rate_init}")
        if int(self.batch_size) < 1 or int(self.max_iter) < 1:
            raise ValueError("batch_size and max_iter must be >= 1")
        return tuple(int(h) for h in hidden)

    def _targets(self, y):
        """Training targets: a 0/1 float per sample (binary) or one-hot rows."""
        index = np.searchsorted(self.classes_, y)
        if len(self.classes_) == 2:
            return index.astype(np.float64)
        return np.eye(len(self.classes_))[index]

    # -- training

    def _setup(self, X, y, classes=None):
        hidden = self._check_params()
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, "
                             "but the target y is None")
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn("A column-vector y was passed when a 1d array was expected. "
                          "Please change the shape of y to (n_samples, ), for example "
                          "using ravel().", _data_conversion_warning(), stacklevel=3)
            y = y.ravel()
        if y.ndim != 1:
            raise ValueError(f"y: expected a 1-d array of labels, got shape {y.shape}")
        if len(y) != len(X):
            raise ValueError(f"X and y have inconsistent numbers of samples: "
                             f"{len(X)} and {len(y)}")
        if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
            raise ValueError("y: input contains NaN or infinity")
        if y.dtype.kind == "f" and np.any(y != np.round(y)):
            raise ValueError("Unknown label type: continuous target values; "
                             "a classifier needs class labels")
        self.classes_ = np.unique(y if classes is None else np.asarray(classes))
        if len(self.classes_) < 2:
            raise ValueError(f"the data has only one class ({self.classes_[0]!r}); "
                             "a classifier needs at least 2")
        self.n_features_in_ = X.shape[1]
        n_out = 1 if len(self.classes_) == 2 else len(self.classes_)
        self.model_ = MLP((X.shape[1],) + hidden + (n_out,), self.activation)
        self._rng = np.random.default_rng(self.random_state)
        self.coef_flat_ = self.model_.init(self._rng)
        self._optimizer = (Adam(self.learning_rate_init) if self.solver == "adam"
                           else SGD(self.learning_rate_init, self.momentum))
        self._step = self._make_step()
        self.loss_curve_ = []
        self.n_iter_ = 0
        self.t_ = 0

    def _loss_fn(self):
        model = self.model_
        if model.sizes[-1] == 1:
            def per_sample_loss(params, x, t):
                return binary_cross_entropy_with_logits(model(params, x)[0], t)
        else:
            def per_sample_loss(params, x, t):
                return softmax_cross_entropy(model(params, x), t)
        return per_sample_loss

    def _make_step(self):
        """The training step: per-sample loss traced once, replayed per batch;
        returns (per-sample losses, gradient summed over the batch)."""
        return ft.value_and_grad(self._loss_fn(), argnums=0, in_axes=(None, 0, 0))

    def __getstate__(self):
        # The traced step is a closure: rebuilt after unpickling, not pickled.
        return {k: v for k, v in self.__dict__.items() if k != "_step"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        if "model_" in state:
            self._step = self._make_step()

    def _epoch(self, X, T):
        """One shuffled pass over the data; returns the mean per-sample loss."""
        n = len(X)
        batch = max(1, min(int(self.batch_size), n))
        order = self._rng.permutation(n)
        total = 0.0
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            values, g = self._step(self.coef_flat_, X[idx], T[idx])
            # g is the batch's summed gradient; the mean keeps lr batch-independent.
            self._optimizer.step(self.coef_flat_, np.asarray(g) / len(idx))
            total += float(np.sum(values))
            self.t_ += len(idx)
        self.n_iter_ += 1
        loss = total / n
        self.loss_curve_.append(loss)
        return loss

    def fit(self, X, y):
        """Train from fresh weights.

        Parameters
        ----------
        X : array_like of float, shape (n_samples, n_features)
        y : array_like, shape (n_samples,)
            Class labels (ints, strings ...; at least two classes).

        Returns
        -------
        self
        """
        X = self._check_X(X)
        self._setup(X, y)
        T = self._targets(np.asarray(y).ravel())
        best, stale = np.inf, 0
        for _ in range(int(self.max_iter)):
            start = time.perf_counter()
            loss = self._epoch(X, T)
            if self.verbose:
                rate = len(X) / max(time.perf_counter() - start, 1e-12)
                print(f"Iteration {self.n_iter_}, loss = {loss:.8f} "
                      f"({rate:,.0f} samples/s)")
            # Early stop as scikit-learn: no tol-sized improvement for a while.
            if loss > best - self.tol:
                stale += 1
            else:
                stale = 0
            best = min(best, loss)
            if stale >= self.n_iter_no_change:
                if self.verbose:
                    print(f"Training loss did not improve more than tol={self.tol} "
                          f"for {self.n_iter_no_change} epochs; stopping.")
                break
        return self

    def partial_fit(self, X, y, classes=None):
        """One epoch over (X, y), continuing from the current parameters; the
        first call must name all ``classes`` unless ``y`` contains them all.

        Parameters
        ----------
        X, y
            As for :meth:`fit`.
        classes : array_like, optional
            Every class label; read on the first call only.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            ``y`` has a label not in ``classes_``, or X a different number
            of features than before.
        """
        X = self._check_X(X, getattr(self, "n_features_in_", None))
        if not hasattr(self, "coef_flat_"):
            self._setup(X, y, classes)
        y = np.asarray(y).ravel()
        unknown = np.setdiff1d(y, self.classes_)
        if len(unknown):
            raise ValueError(f"y contains labels not seen in classes: {unknown[:5]}")
        self._epoch(X, self._targets(y))
        return self

    # -- prediction

    def _check_fitted(self):
        if not hasattr(self, "coef_flat_"):
            raise _not_fitted_error()(f"This {type(self).__name__} instance is not fitted "
                                 "yet. Call 'fit' with appropriate arguments first.")

    def decision_function(self, X):
        """The logits: shape ``(n_samples,)`` for two classes, else
        ``(n_samples, n_classes)``."""
        self._check_fitted()
        logits = self.model_.forward(self.coef_flat_, self._check_X(X, self.n_features_in_))
        return logits[:, 0] if logits.shape[1] == 1 else logits

    def predict_proba(self, X):
        """Class probabilities, shape ``(n_samples, n_classes)``, columns in
        the order of ``classes_``."""
        logits = self.decision_function(X)
        if logits.ndim == 1:
            p1 = 0.5 * (1.0 + np.tanh(0.5 * logits))     # sigmoid without overflow
            return np.column_stack([1.0 - p1, p1])
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X):
        """The logarithm of ``predict_proba(X)``."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """The most probable class of each sample, shape ``(n_samples,)``."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def score(self, X, y, sample_weight=None):
        """Mean accuracy of ``predict(X)`` against ``y`` (a float in [0, 1];
        weighted by ``sample_weight`` if given)."""
        correct = self.predict(X) == np.asarray(y).ravel()
        return float(np.average(correct, weights=sample_weight))


class NotFittedError(ValueError, AttributeError):
    """Raised when a classifier is used before ``fit``; the same bases as
    scikit-learn's ``NotFittedError``, which is raised instead where installed."""


def _data_conversion_warning():
    # scikit-learn's class where it is loaded already (its checks expect it).
    module = sys.modules.get("sklearn.exceptions")
    return getattr(module, "DataConversionWarning", UserWarning)


def _not_fitted_error():
    # Looked up lazily: importing scikit-learn costs a second we need not pay.
    try:
        from sklearn.exceptions import NotFittedError as cls
    except ImportError:
        cls = NotFittedError
    return cls

