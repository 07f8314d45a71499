"""Small neural-network classifiers built on fasttape tapes.

The pieces are deliberately plain: an :class:`MLP` that lays its weights out in
one flat float64 vector, per-sample losses written with fasttape ops, optimizers
that update that vector in place with NumPy, and :class:`MLPClassifier` and
:class:`MLPRegressor` (in ``fasttape/estimators.py``), scikit-learn-style
estimators that tie them together.  Training traces the
per-sample loss once and replays it over whole mini-batches (``in_axes``), so
the per-sample Python work happens once, not once per sample and step.
"""


import numpy as np

import fasttape as ft

__all__ = ["MLP", "binary_cross_entropy_with_logits", "softmax_cross_entropy",
           "SGD", "Adam", "MLPClassifier", "MLPRegressor", "ConvergenceWarning",
           "NotFittedError"]

# name -> (fasttape op, NumPy twin for fast prediction)
_ACTIVATIONS = {
    "identity": (lambda v: v, lambda a: a),
    "logistic": (lambda v: ft.sigmoid(v), lambda a: 0.5 * (1.0 + np.tanh(0.5 * a))),
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
    activation : {"tanh", "relu", "logistic", "identity"}, default "tanh"
        Of the hidden layers ("sigmoid" is another name of "logistic").

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
        """A fresh parameter vector: Glorot-uniform weights for tanh, logistic
        and identity (and the linear output), He-normal for relu, zero biases.

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


# ---------------------------------------------------------------- estimators

# Defined in their own module; this is their public home.
from .estimators import (ConvergenceWarning, MLPClassifier, MLPRegressor,  # noqa: E402
                         NotFittedError)
