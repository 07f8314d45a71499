"""scikit-learn-style multilayer perceptrons trained with fasttape tapes:
``MLPClassifier`` and ``MLPRegressor`` (public as ``ft.nn.MLPClassifier`` and
``ft.nn.MLPRegressor``).

They take scikit-learn's parameters with the same meaning and set the same
fitted attributes; scikit-learn itself is optional.  Training traces the
per-sample loss once and replays it over whole mini-batches (``in_axes``);
the ``lbfgs`` solver hands the full-batch loss and gradient to SciPy's
L-BFGS-B.  Between calls the fitted ``coefs_`` / ``intercepts_`` are the
model (scikit-learn's layout, ``(n_in, n_out)`` per layer); during training
they are packed into ``ft.nn.MLP``'s flat parameter vector.
"""

import numbers
import sys
import time

import numpy as np

import fasttape as ft
from .nn import MLP, binary_cross_entropy_with_logits, softmax_cross_entropy
from .optimizers import AdamState, SGDState
from .sklearn_checks import (AvailableIf, ConvergenceWarning, NotFittedError, as_float_array,
                             check_sample_weight, column_or_1d, feature_names, warn,
                             with_sklearn)

__all__ = ["MLPClassifier", "MLPRegressor", "ConvergenceWarning", "NotFittedError"]

_SOLVERS = ("adam", "sgd", "lbfgs")
_HIDDEN_ACTIVATIONS = ("identity", "logistic", "tanh", "relu", "sigmoid")
_SCHEDULES = ("constant", "invscaling", "adaptive")


# ---------------------------------------------------------------- per-sample losses

_STEPS = {}      # traced training steps by (sizes, activation, output, weighted)


def _per_sample_loss(model, kind, weighted=True):
    """The traced training loss of one sample: (params, x, t, w), or
    (params, x, t) unweighted."""
    loss = _unweighted_loss(model, kind)
    if not weighted:
        return loss

    def weighted_loss(params, x, t, w):
        return w * loss(params, x, t)
    return weighted_loss


def _unweighted_loss(model, kind):
    if kind == "logistic":             # binary and multilabel: BCE per output
        def loss(params, x, t):
            z = model(params, x)
            if len(z) == 1:
                return binary_cross_entropy_with_logits(z[0], t[0])
            return ft.sum([binary_cross_entropy_with_logits(z[k], t[k])
                           for k in range(len(z))])
    elif kind == "softmax":
        def loss(params, x, t):
            return softmax_cross_entropy(model(params, x), t)
    elif kind == "identity":           # half squared error, summed over outputs
        def loss(params, x, t):
            z = model(params, x)
            return 0.5 * ft.sum([(z[k] - t[k]) ** 2 for k in range(len(z))])
    elif kind == "exp":                # half Poisson deviance, up to a constant
        def loss(params, x, t):
            z = model(params, x)
            return ft.sum([ft.exp(z[k]) - t[k] * z[k] for k in range(len(z))])
    else:
        raise ValueError(f"unknown output activation {kind!r}")
    return loss


def _xlogx(t):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(t > 0, t * np.log(np.where(t > 0, t, 1.0)), 0.0)


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))          # no overflow warning


_HIDDEN_NUMPY = {
    "identity": lambda a: a,
    "logistic": _sigmoid,
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "relu": lambda a: np.maximum(a, 0),
}


# ---------------------------------------------------------------- the base

class _BaseMLP:
    """What MLPClassifier and MLPRegressor share: parameters, validation,
    the stochastic and L-BFGS solvers, prediction."""

    # -- parameters (scikit-learn's convention: __init__ only stores them)

    def _init_params(self, **params):
        for name, value in params.items():
            setattr(self, name, value)

    @classmethod
    def _param_names(cls):
        import inspect
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep=True):
        """The constructor's parameters as a dict (``deep`` is ignored)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set constructor parameters by name; returns self. ValueError for
        a name the constructor does not take."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"Invalid parameter {name!r} for estimator "
                                 f"{type(self).__name__}; valid parameters: "
                                 f"{', '.join(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = type(self)().get_params()
        changed = [f"{k}={v!r}" for k, v in self.get_params().items()
                   if not _same(v, defaults[k])]
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_is_fitted__(self):
        return hasattr(self, "coefs_")

    def _check_params(self):
        hidden = self.hidden_layer_sizes
        hidden = [hidden] if not hasattr(hidden, "__iter__") else list(hidden)
        if any(not isinstance(h, numbers.Integral) or isinstance(h, bool) or h < 1
               for h in hidden):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden}.")
        _choice("activation", self.activation, _HIDDEN_ACTIVATIONS)
        _choice("solver", self.solver, _SOLVERS)
        _choice("learning_rate", self.learning_rate, _SCHEDULES)
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            _number("batch_size", self.batch_size, 1, integral=True)
        _number("alpha", self.alpha, 0)
        _number("learning_rate_init", self.learning_rate_init, 0, open_low=True)
        _number("power_t", self.power_t, 0)
        _number("max_iter", self.max_iter, 1, integral=True)
        _number("tol", self.tol, 0)
        _number("momentum", self.momentum, 0, 1, open_high=False)
        _number("validation_fraction", self.validation_fraction, 0, 1)
        _number("beta_1", self.beta_1, 0, 1)
        _number("beta_2", self.beta_2, 0, 1)
        _number("epsilon", self.epsilon, 0, open_low=True)
        if self.n_iter_no_change != np.inf:
            _number("n_iter_no_change", self.n_iter_no_change, 1, integral=True)
        _number("max_fun", self.max_fun, 1, integral=True)
        return [int(h) for h in hidden]

    # -- input validation

    def _validate_X(self, X, reset):
        names = feature_names(X)
        if reset:
            if names is not None:
                self.feature_names_in_ = names
            elif hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        else:
            self._check_feature_names(names)
        X = as_float_array(X)
        if reset:
            self.n_features_in_ = X.shape[1]
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} "
                             f"is expecting {self.n_features_in_} features as input.")
        return X

    def _check_feature_names(self, names):
        fitted = getattr(self, "feature_names_in_", None)
        cls = type(self).__name__
        if fitted is None and names is None:
            return
        if fitted is None:
            warn(f"X has feature names, but {cls} was fitted without feature names")
            return
        if names is None:
            warn(f"X does not have valid feature names, but {cls} was fitted with "
                  "feature names")
            return
        if len(fitted) == len(names) and np.all(fitted == names):
            return
        message = "The feature names should match those that were passed during fit.\n"
        unexpected = sorted(set(names) - set(fitted))
        missing = sorted(set(fitted) - set(names))
        if unexpected:
            message += "Feature names unseen at fit time:\n" + "".join(
                f"- {n}\n" for n in unexpected[:5])
        if missing:
            message += "Feature names seen at fit time, yet now missing:\n" + "".join(
                f"- {n}\n" for n in missing[:5])
        if not unexpected and not missing:
            message += "Feature names must be in the same order as they were in fit.\n"
        raise ValueError(message)

    def _check_fitted(self):
        if not hasattr(self, "coefs_"):
            raise with_sklearn(NotFittedError, "NotFittedError")(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' "
                "with appropriate arguments before using this estimator.")

    # -- the network

    def _layer_sizes(self):
        return [c.shape[0] for c in self.coefs_] + [self.coefs_[-1].shape[1]]

    def _pack(self):
        """coefs_ and intercepts_ as ft.nn.MLP's flat float64 vector."""
        parts = []
        for W, b in zip(self.coefs_, self.intercepts_):
            parts += [np.asarray(W, dtype=np.float64).T.ravel(),
                      np.asarray(b, dtype=np.float64).ravel()]
        return np.concatenate(parts)

    def _unpack(self, flat, dtype=np.float64):
        """Set coefs_ / intercepts_ from the flat vector: views of it for
        float64 (the optimizer's in-place steps show through), copies in
        the data's dtype for float32."""
        coefs, intercepts = [], []
        for W, b in self.model_.layers(flat):
            coefs.append(W.T if dtype == np.float64 else W.T.astype(dtype))
            intercepts.append(b if dtype == np.float64 else b.astype(dtype))
        self.coefs_, self.intercepts_ = coefs, intercepts

    @property
    def coef_flat_(self):
        """The fitted parameters as one vector in ``ft.nn.MLP``'s layout
        (per layer the ``(n_out, n_in)`` weights row-major, then the biases):
        what ``model_(params, x)`` and ``model_.forward`` take."""
        self._check_fitted()
        return self._pack()

    def _initialize(self, hidden, n_features, n_outputs, dtype):
        sizes = [n_features] + hidden + [n_outputs]
        self.n_outputs_ = n_outputs
        self.n_layers_ = len(sizes)
        self.n_iter_ = 0
        self.t_ = 0
        rng = self._random_state
        factor = 2.0 if self.activation in ("logistic", "sigmoid") else 6.0
        coefs, intercepts = [], []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            bound = np.sqrt(factor / (n_in + n_out))       # Glorot, as scikit-learn
            coefs.append(rng.uniform(-bound, bound, (n_in, n_out)).astype(dtype))
            intercepts.append(rng.uniform(-bound, bound, n_out).astype(dtype))
        self.coefs_, self.intercepts_ = coefs, intercepts
        self.loss_curve_ = []
        self._no_improvement_count = 0
        self._optimizer = None
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = np.inf

    def _model(self):
        sizes = tuple(self._layer_sizes())
        if getattr(self, "model_", None) is None or self.model_.sizes != sizes \
                or self.model_.activation != self.activation:
            self.model_ = MLP(sizes, self.activation)
        return self.model_

    def _get_step(self, weighted):
        """The batched training step (per-sample loss traced once per network
        shape, shared by all estimators: tracing a wide net costs more than
        a few epochs of a small one)."""
        key = (self.model_.sizes, self.activation, self.out_activation_, weighted)
        step = _STEPS.get(key)
        if step is None:
            loss = _per_sample_loss(self.model_, self.out_activation_, weighted)
            in_axes = (None, 0, 0, 0) if weighted else (None, 0, 0)
            step = _STEPS[key] = ft.value_and_grad(loss, argnums=0, in_axes=in_axes)
            while len(_STEPS) > 16:
                _STEPS.pop(next(iter(_STEPS)))
        return step

    def _loss_and_grad(self, flat, X, T, w=None):
        """Mean (weighted) loss over the rows plus the L2 penalty, and its
        gradient, as scikit-learn's backprop defines them."""
        if w is None:
            values, g = self._get_step(False)(flat, X, T)
            sw_sum = float(len(X))
        else:
            values, g = self._get_step(True)(flat, X, T, w)
            sw_sum = float(np.sum(w)) or 1.0      # a batch of zero weights: no step
        g = np.asarray(g, dtype=np.float64)
        penalty = 0.0
        if self.alpha:
            for start, n_in, n_out in self.model_._layout:
                W = flat[start:start + n_in * n_out]
                penalty += np.dot(W, W)
                g[start:start + n_in * n_out] += self.alpha * W
        g *= 1.0 / sw_sum
        data = float(np.sum(values))
        if self.out_activation_ == "exp":
            # the deviance's constant y log y - y: the loss scikit-learn
            # reports, and what L-BFGS-B's relative-decrease test sees
            const = np.sum(_xlogx(T) - T, axis=1)
            data += float(np.sum(const if w is None else w * const))
        loss = data / sw_sum + 0.5 * self.alpha * penalty / sw_sum
        return loss, g

    # -- fitting

    def fit(self, X, y, sample_weight=None):
        """Fit the model to X and y (from fresh weights unless ``warm_start``).

        Parameters
        ----------
        X : array_like or DataFrame, shape (n_samples, n_features)
            Numeric; float32 data keeps float32 weights; sparse matrices are
            densified.
        y : array_like, shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array_like, shape (n_samples,), optional

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _fit(self, X, y, sample_weight, incremental, classes=None):
        hidden = self._check_params()
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the "
                             "target y is None")
        X = self._validate_X(X, reset=first_pass)
        Y = self._encode_targets(y, X.shape[0], first_pass, incremental, classes)
        w = check_sample_weight(sample_weight, X.shape[0])
        if isinstance(self.random_state, np.random.Generator):
            self._random_state = self.random_state
        elif isinstance(self.random_state, np.random.RandomState):
            self._random_state = self.random_state
        else:
            self._random_state = np.random.RandomState(self.random_state)
        if first_pass:
            self._initialize(hidden, X.shape[1], Y.shape[1], X.dtype)
        elif self._layer_sizes() != [X.shape[1]] + hidden + [Y.shape[1]]:
            raise ValueError(f"hidden_layer_sizes changed since the last fit: the "
                             f"network has layers {self._layer_sizes()}")
        self.out_activation_ = self._out_activation()
        self._model()
        flat = self._pack()
        Xf = np.ascontiguousarray(X, dtype=np.float64)
        if self.solver == "lbfgs":
            flat = self._fit_lbfgs(flat, Xf, Y, w)
        else:
            flat = self._fit_stochastic(flat, Xf, Y, w, incremental)
        if not np.all(np.isfinite(flat)):
            raise ValueError("Solver produced non-finite parameter weights. The input "
                             "data may contain large values and need to be preprocessed.")
        self._unpack(flat, X.dtype)
        return self

    def _fit_lbfgs(self, flat, X, Y, w):
        try:
            import scipy.optimize
        except ImportError:
            raise ImportError("solver='lbfgs' needs SciPy (its L-BFGS-B): pip install "
                              "scipy, or use solver='adam' or 'sgd'") from None
        curve = []

        def fun(p):
            return self._loss_and_grad(p, X, Y, w)

        def callback(intermediate_result):
            curve.append(float(intermediate_result.fun))
            if self.verbose:
                print(f"Iteration {len(curve)}, loss = {curve[-1]:.8f}")

        result = scipy.optimize.minimize(
            fun, flat, method="L-BFGS-B", jac=True, callback=callback,
            options={"maxfun": int(self.max_fun), "maxiter": int(self.max_iter),
                     "gtol": float(self.tol)})
        self.n_iter_ = min(int(result.nit), int(self.max_iter))
        self.loss_ = self.best_loss_ = float(result.fun)
        self.loss_curve_ = curve
        self.validation_scores_ = self.best_validation_score_ = None   # no epochs
        if result.status != 0:
            message = result.message
            if isinstance(message, bytes):
                message = message.decode("latin1")
            warn(f"lbfgs failed to converge after {result.nit} iteration(s) "
                  f"(status={result.status}):\n{message}.\n\nIncrease the number of "
                  f"iterations to improve the convergence (max_iter={self.max_iter}).\n"
                  "You might also want to scale the data.",
                  with_sklearn(ConvergenceWarning, "ConvergenceWarning"))
        return np.asarray(result.x, dtype=np.float64)

    def _new_optimizer(self, n):
        if self.solver == "sgd":
            return SGDState(n, self.learning_rate_init, self.learning_rate,
                             self.momentum, self.nesterovs_momentum, self.power_t)
        return AdamState(n, self.learning_rate_init, self.beta_1, self.beta_2,
                          self.epsilon)

    def _fit_stochastic(self, flat, X, Y, w, incremental):
        if not incremental or getattr(self, "_optimizer", None) is None:
            self._optimizer = self._new_optimizer(len(flat))
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        if self.early_stopping:
            train, val = self._validation_split(Y)
            X_val, Y_val = X[val], Y[val]
            w_val = None if w is None else w[val]
            X, Y = X[train], Y[train]
            w = None if w is None else w[train]
            self._best_flat = flat.copy()
        n = len(X)
        if self.batch_size == "auto":
            batch = min(200, n)
        else:
            if self.batch_size > n:
                warn("Got `batch_size` less than 1 or larger than sample size. It is "
                      "going to be clipped")
            batch = int(np.clip(self.batch_size, 1, n))
        self.n_iter_ = 0
        try:
            for _ in range(int(min(self.max_iter, sys.maxsize))):
                start = time.perf_counter()
                Xe, Ye, we = X, Y, w
                if self.shuffle:     # one shuffled copy: every batch a contiguous view
                    order = self._random_state.permutation(n)
                    Xe, Ye = X[order], Y[order]
                    we = None if w is None else w[order]
                total = 0.0
                for lo in range(0, n, batch):
                    hi = min(lo + batch, n)
                    loss, g = self._loss_and_grad(flat, Xe[lo:hi], Ye[lo:hi],
                                                  None if we is None else we[lo:hi])
                    self._optimizer.update(flat, g)
                    total += loss * (hi - lo)
                self.n_iter_ += 1
                self.t_ += n
                self.loss_ = total / n
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    rate = n / max(time.perf_counter() - start, 1e-12)
                    print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f} "
                          f"({rate:,.0f} samples/s)")
                if self.early_stopping:
                    self._update_validation(flat, X_val, Y_val, w_val)
                else:
                    self._update_training_loss()
                self._optimizer.iteration_ends(self.t_)
                if self._no_improvement_count > self.n_iter_no_change:
                    what = ("Validation score" if self.early_stopping
                            else "Training loss")
                    msg = (f"{what} did not improve more than tol={self.tol:f} for "
                           f"{self.n_iter_no_change} consecutive epochs.")
                    if self._optimizer.trigger_stopping(msg, self.verbose):
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) "
                          "reached and the optimization hasn't converged yet.",
                          with_sklearn(ConvergenceWarning, "ConvergenceWarning"))
        except KeyboardInterrupt:
            warn("Training interrupted by user.")
        if self.early_stopping:
            flat = self._best_flat               # the weights of the best score
        return flat

    def _update_training_loss(self):
        # scikit-learn's count: an epoch is stale unless it beats the best
        # loss by tol; training stops once more than n_iter_no_change are.
        last = self.loss_curve_[-1]
        if last > self.best_loss_ - self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        if last < self.best_loss_:
            self.best_loss_ = last

    def _update_validation(self, flat, X_val, Y_val, w_val):
        score = self._validation_score(flat, X_val, Y_val, w_val)
        self.validation_scores_.append(score)
        if self.verbose:
            print(f"Validation score: {score:f}")
        if score < self.best_validation_score_ + self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        if score > self.best_validation_score_:
            self.best_validation_score_ = score
            self._best_flat = flat.copy()

    def _validation_split(self, Y):
        """Train and validation rows (train_test_split's sizes: the validation
        set has ceil(fraction * n) rows), stratified for single-output
        classification."""
        n = len(Y)
        n_val = int(np.ceil(self.validation_fraction * n))
        order = self._random_state.permutation(n)
        strata = self._strata(Y)
        if strata is not None:
            counts = np.bincount(strata)
            if counts[counts > 0].min() < 2:
                few = [str(c) for c in self.classes_[(counts > 0) & (counts < 2)]]
                raise ValueError("The least populated classes in y have only 1 member, "
                                 "which is too few. The minimum number of groups for "
                                 "any class cannot be less than 2. Classes with too "
                                 f"few members are: {few}")
            # shuffled rows grouped by class; evenly spaced picks are proportional
            order = order[np.argsort(strata[order], kind="stable")]
            picks = np.unique(((np.arange(n_val) + 0.5) * n / max(n_val, 1)).astype(int))
            val = order[picks]
        else:
            val = order[:n_val]
        if len(val) < 2:
            raise ValueError("The validation set is too small. Increase "
                             "'validation_fraction' or the size of your dataset.")
        train = np.setdiff1d(np.arange(n), val)
        if len(train) < 1:
            raise ValueError("The training set is empty: lower 'validation_fraction'.")
        return self._random_state.permutation(train), val

    def _strata(self, Y):
        return None

    # -- prediction

    def _forward(self, X, output=True):
        """The output layer's values, after the output activation unless
        ``output`` is False (then the logits)."""
        act = _HIDDEN_NUMPY[self.activation]
        h = X
        last = len(self.coefs_) - 1
        for i, (W, b) in enumerate(zip(self.coefs_, self.intercepts_)):
            h = h @ W + b
            if i < last:
                h = act(h)
        return self._output(h) if output else h

    def _output(self, z):
        kind = self.out_activation_
        if kind == "logistic":
            return _sigmoid(z)
        if kind == "softmax":
            e = np.exp(z - z.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        if kind == "exp":
            return np.exp(z)
        return z

    def _forward_flat(self, flat, X):
        return self._output(self.model_.forward(flat, X))


def _same(a, b):
    try:
        return bool(a == b) and type(a) is type(b)
    except (TypeError, ValueError):
        return a is b


def _choice(name, value, options):
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"The '{name}' parameter must be a str among "
                         f"{sorted(options)}. Got {value!r} instead.")


def _number(name, value, low=None, high=None, integral=False, open_low=False,
            open_high=True):
    kinds = numbers.Integral if integral else numbers.Real
    ok = isinstance(value, kinds) and not isinstance(value, bool)
    if ok and low is not None:
        ok = value > low if open_low else value >= low
    if ok and high is not None:
        ok = value < high if open_high else value <= high
    if not ok:
        lo = "(" if open_low else "["
        hi = ")" if open_high or high is None else "]"
        kind = "an int" if integral else "a float"
        raise ValueError(f"The '{name}' parameter must be {kind} in the range "
                         f"{lo}{low}, {'inf' if high is None else high}{hi}. "
                         f"Got {value!r} instead.")


# ---------------------------------------------------------------- classifier

class MLPClassifier(_BaseMLP):
    """A multilayer-perceptron classifier with scikit-learn's
    ``MLPClassifier`` interface; scikit-learn itself is not needed.

    Two classes use one logistic output (binary cross-entropy), more use
    softmax cross-entropy, and a 2-d 0/1 ``y`` is multilabel (one logistic
    output per label). Parameters and fitted attributes mean what they mean
    in scikit-learn; the defaults differ where noted, for small data sets and
    small networks (README, "Classifiers").

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default (10,)
        scikit-learn: (100,).
    activation : {"identity", "logistic", "tanh", "relu"}, default "tanh"
        Of the hidden layers ("sigmoid" is another name of "logistic").
        scikit-learn: "relu".
    solver : {"adam", "sgd", "lbfgs"}, default "adam"
        "lbfgs" is SciPy's L-BFGS-B on the full-batch loss (needs SciPy).
    alpha : float, default 1e-4
        L2 penalty: ``0.5 * alpha * sum(W**2) / n_samples`` is added to the
        mean loss (biases are not penalized).
    batch_size : int or "auto", default "auto"
        "auto" is ``min(200, n_samples)``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default "constant"
        The schedule of the "sgd" solver.
    learning_rate_init : float, default 0.01
        scikit-learn: 0.001 (for its ten times wider default network).
    power_t : float, default 0.5
        The "invscaling" exponent.
    max_iter : int, default 200
        Epochs (stochastic solvers) or iterations (lbfgs).
    shuffle : bool, default True
    random_state : None, int, RandomState or Generator
        Initial weights, shuffling, the early-stopping split.
    tol : float, default 1e-4
    verbose : bool, default False
        A line per epoch.
    warm_start : bool, default False
        ``fit`` continues from the fitted weights.
    momentum : float, default 0.9
    nesterovs_momentum : bool, default True
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the data (stratified), stop when
        its accuracy has not improved by ``tol`` for more than
        ``n_iter_no_change`` epochs, and keep the best weights.
    validation_fraction : float, default 0.1
    beta_1, beta_2, epsilon : float, default 0.9, 0.999, 1e-8
        Adam's.
    n_iter_no_change : int or np.inf, default 10
        Training stops once more than this many consecutive epochs have not
        improved the training loss (or validation score) by ``tol``.
    max_fun : int, default 15000
        lbfgs: the most loss evaluations.

    Attributes
    ----------
    classes_ : ndarray
        The sorted class labels (for multilabel y, ``arange(n_labels)``).
    coefs_, intercepts_ : list of ndarray
        Per layer the ``(n_in, n_out)`` weights and ``(n_out,)`` biases.
    coef_flat_ : ndarray
        The same parameters in ``ft.nn.MLP``'s flat layout (``model_`` takes
        them).
    model_ : ft.nn.MLP
        The network whose per-sample loss the solvers trace.
    loss_, loss_curve_ : float, list of float
        The (penalized) training loss of the last epoch, and of every epoch
        (lbfgs: of every iteration).
    best_loss_ : float or None
        The best training loss (None with early stopping).
    validation_scores_, best_validation_score_ : list, float or None
        With early stopping: the accuracy on the held-out data per epoch and
        the best one (None without).
    n_iter_ : int
        Epochs (iterations) run by the last ``fit`` or ``partial_fit`` call.
    t_ : int
        Training samples seen.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when fitted on a DataFrame with string column names; data passed
        later must have the same columns in the same order.
    n_layers_, n_outputs_ : int
    out_activation_ : str
        "logistic" or "softmax".

    Raises
    ------
    ValueError
        Bad parameters, non-numeric, non-finite or misshapen data, fewer
        than two classes, columns that differ from the fit's.
        Prediction before ``fit`` raises ``NotFittedError`` (also
        scikit-learn's where it is installed).

    Warns
    -----
    ConvergenceWarning
        ``max_iter`` reached before the stopping rule (or L-BFGS-B's) held.

    Examples
    --------
    >>> X, y = ft.datasets.make_moons(200, noise=0.1, seed=0)
    >>> clf = ft.nn.MLPClassifier(max_iter=30, random_state=0).fit(X, y)
    >>> clf.predict(X[:3]), clf.predict_proba(X[:3]).shape
    (array([0, 1, 1]), (3, 2))
    """

    _estimator_type = "classifier"    # for older scikit-learn versions

    def __init__(self, hidden_layer_sizes=(10,), activation="tanh", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.01, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change=10, max_fun=15000):
        self._init_params(**{k: v for k, v in locals().items()
                             if k not in ("self", "__class__")})

    def __sklearn_tags__(self):
        # Lets scikit-learn's checks see a classifier without inheriting from it.
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags
        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags(multi_label=True),
                    input_tags=InputTags(sparse=True))

    # -- targets

    def _encode_targets(self, y, n, first_pass, incremental, classes):
        y = column_or_1d(y)
        if len(y) != n:
            raise ValueError(f"Found input variables with inconsistent numbers of "
                             f"samples: [{n}, {len(y)}]")
        multilabel = y.ndim == 2
        if multilabel:
            y = np.asarray(y)
            if not (y.dtype.kind in "biuf" and np.all((y == 0) | (y == 1))):
                raise ValueError("Unknown label type: a 2-d y must be a 0/1 "
                                 "multilabel indicator matrix")
            labels = np.arange(y.shape[1])
        elif y.ndim != 1:
            raise ValueError(f"y should be a 1d array, got an array of shape {y.shape} "
                             "instead.")
        else:
            _check_labels(y)
            labels = np.unique(y)
        if classes is not None or (incremental and not hasattr(self, "classes_")):
            labels = self._partial_fit_classes(classes, labels, multilabel)
        elif first_pass:
            self.classes_ = labels
            self._multilabel = multilabel
        else:
            self._check_known_labels(labels, incremental)
        if self._multilabel != multilabel:
            raise ValueError("y's type (multilabel or not) differs from the fit's")
        if multilabel:
            return y.astype(np.float64)
        index = np.searchsorted(self.classes_, y)
        if len(self.classes_) <= 2:       # one class trains towards probability 0
            return index.astype(np.float64)[:, None]
        return np.eye(len(self.classes_))[index]

    def _partial_fit_classes(self, classes, labels, multilabel):
        """partial_fit's rule: ``classes`` on the first call, the same (or
        none) on later ones."""
        if classes is None:
            if not multilabel:
                raise ValueError("classes must be passed on the first call to "
                                 "partial_fit.")
            classes = labels
        classes = np.unique(np.asarray(classes))
        if hasattr(self, "classes_"):
            if not np.array_equal(self.classes_, classes):
                raise ValueError(f"`classes={classes!r}` is not the same as on last call "
                                 f"to partial_fit, was: {self.classes_!r}")
        else:
            self.classes_ = classes
            self._multilabel = multilabel
        self._check_known_labels(labels, incremental=True)
        return classes

    def _check_known_labels(self, labels, incremental):
        if self.warm_start and not incremental:
            if set(labels.tolist()) != set(self.classes_.tolist()):
                raise ValueError("warm_start can only be used where `y` has the same "
                                 "classes as in the previous call to fit. Previously "
                                 f"got {self.classes_}, `y` has {labels}")
        unknown = np.setdiff1d(labels, self.classes_)
        if len(unknown):
            raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` "
                             f"has {self.classes_}. 'y' has {labels}.")

    def _out_activation(self):
        if self._multilabel or len(self.classes_) == 2:
            return "logistic"
        return "softmax"

    def _strata(self, Y):
        if self._multilabel:
            return None
        return (Y[:, 0] > 0.5).astype(int) if Y.shape[1] == 1 else Y.argmax(axis=1)

    def _validation_score(self, flat, X, Y, w):
        P = self._forward_flat(flat, X)
        if not np.all(np.isfinite(P)):
            return np.nan
        if self._multilabel:
            correct = np.all((P > 0.5) == (Y > 0.5), axis=1)
        elif Y.shape[1] == 1:
            correct = (P[:, 0] > 0.5) == (Y[:, 0] > 0.5)
        else:
            correct = P.argmax(axis=1) == Y.argmax(axis=1)
        return float(np.average(correct, weights=w))

    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y), continuing from the current weights (the
        stochastic solvers only: ``hasattr(clf, "partial_fit")`` is False
        for lbfgs, as in scikit-learn).

        Parameters
        ----------
        X, y, sample_weight
            As for :meth:`fit`.
        classes : array_like
            Every class label: required on the first call (unless ``y`` is
            multilabel), and the same if given again.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            No ``classes`` on the first call, different ``classes`` later,
            a label not in ``classes_``, other columns than before, or
            ``early_stopping=True``.
        """
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    partial_fit = AvailableIf(lambda est: est.solver in ("adam", "sgd"), partial_fit)

    # -- prediction

    def _validated_output(self, X):
        self._check_fitted()
        return self._forward(self._validate_X(X, reset=False))

    def decision_function(self, X):
        """The logits (before the output activation): shape ``(n_samples,)``
        for two classes, else ``(n_samples, n_outputs)``."""
        self._check_fitted()
        z = self._forward(self._validate_X(X, reset=False), output=False)
        return z[:, 0] if z.shape[1] == 1 else z

    def predict_proba(self, X):
        """Class probabilities, shape ``(n_samples, n_classes)``, columns in
        the order of ``classes_`` (multilabel: each label's own probability)."""
        P = self._validated_output(X)
        if len(self.classes_) == 1:
            return np.ones_like(P)
        if P.shape[1] == 1 and not self._multilabel:
            return np.hstack([1.0 - P, P])
        return P

    def predict_log_proba(self, X):
        """The logarithm of ``predict_proba(X)``."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """The most probable class of each sample, shape ``(n_samples,)``
        (multilabel: a 0/1 matrix, a label where its probability > 0.5)."""
        P = self._validated_output(X)
        if self._multilabel:
            return (P > 0.5).astype(int)
        if len(self.classes_) == 1:
            return np.repeat(self.classes_, len(P))
        if P.shape[1] == 1:
            return self.classes_[(P[:, 0] > 0.5).astype(int)]
        return self.classes_[np.argmax(P, axis=1)]

    def score(self, X, y, sample_weight=None):
        """Mean accuracy of ``predict(X)`` against ``y`` (multilabel: rows
        entirely right), weighted by ``sample_weight`` if given."""
        pred = self.predict(X)
        y = np.asarray(y)
        correct = np.all(pred == y, axis=1) if pred.ndim == 2 else pred == y.ravel()
        return float(np.average(correct, weights=sample_weight))


def _check_labels(y):
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)):
            raise ValueError("Input y contains NaN or infinity.")
        if np.any(y != np.round(y)):
            raise ValueError("Unknown label type: continuous. Maybe you are trying to "
                             "fit a classifier, which expects discrete classes on a "
                             "regression target with continuous values.")
    if y.dtype.kind == "O":
        types = {type(v) for v in y}
        if len(types) > 1 and str in types:
            raise TypeError("Labels of mixed types (strings and others) cannot be "
                            "sorted into classes")


# ---------------------------------------------------------------- regressor

class MLPRegressor(_BaseMLP):
    """A multilayer-perceptron regressor with scikit-learn's ``MLPRegressor``
    interface; scikit-learn itself is not needed.

    The output layer is linear (``loss="squared_error"``: half the squared
    error, summed over outputs) or exponential (``loss="poisson"``: half the
    Poisson deviance). Parameters and fitted attributes are those of
    :class:`MLPClassifier` (with ``loss`` first), and so are the defaults
    except three, which are scikit-learn's: ``hidden_layer_sizes=(100,)``,
    ``activation="relu"``, ``learning_rate_init=0.001``;
    ``validation_scores_`` hold R² scores, ``out_activation_`` is
    "identity" or "exp", and there is no ``classes_``.

    Examples
    --------
    >>> X = np.linspace(-1, 1, 50)[:, None]
    >>> reg = ft.nn.MLPRegressor(solver="lbfgs", random_state=0).fit(X, X[:, 0] ** 2)
    >>> round(reg.score(X, X[:, 0] ** 2), 2)
    1.0
    """

    _estimator_type = "regressor"

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu",
                 *, solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change=10, max_fun=15000):
        self._init_params(**{k: v for k, v in locals().items()
                             if k not in ("self", "__class__")})

    def __sklearn_tags__(self):
        from sklearn.utils import InputTags, RegressorTags, Tags, TargetTags
        return Tags(estimator_type="regressor",
                    target_tags=TargetTags(required=True, multi_output=True),
                    regressor_tags=RegressorTags(), input_tags=InputTags(sparse=True))

    def _check_params(self):
        _choice("loss", self.loss, ("squared_error", "poisson"))
        return super()._check_params()

    def _encode_targets(self, y, n, first_pass, incremental, classes):
        y = column_or_1d(y)
        if y.dtype.kind == "O":
            y = y.astype(np.float64)
        if y.dtype.kind not in "biuf":
            raise ValueError(f"y: expected numbers, got dtype {y.dtype}")
        y = y.astype(np.float64)
        if y.ndim not in (1, 2):
            raise ValueError(f"y should be a 1d or 2d array, got shape {y.shape}")
        if len(y) != n:
            raise ValueError(f"Found input variables with inconsistent numbers of "
                             f"samples: [{n}, {len(y)}]")
        if not np.all(np.isfinite(y)):
            raise ValueError("Input y contains NaN or infinity.")
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError("Some value(s) of y are negative which is not allowed "
                             "for Poisson regression.")
        return y.reshape(n, -1)

    def _out_activation(self):
        return "exp" if self.loss == "poisson" else "identity"

    def _validation_score(self, flat, X, Y, w):
        P = self._forward_flat(flat, X)
        if not np.all(np.isfinite(P)):
            return np.nan
        return _r2(Y, P, w)

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), continuing from the current weights (the
        stochastic solvers only, as in scikit-learn).

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, incremental=True)

    partial_fit = AvailableIf(lambda est: est.solver in ("adam", "sgd"), partial_fit)

    def predict(self, X):
        """Predictions, shape ``(n_samples,)`` for one output, else
        ``(n_samples, n_outputs)``; in the dtype of the fitted weights."""
        self._check_fitted()
        P = self._forward(self._validate_X(X, reset=False))
        return P[:, 0] if P.shape[1] == 1 else P

    def score(self, X, y, sample_weight=None):
        """R² of ``predict(X)`` against ``y`` (averaged over outputs)."""
        pred = np.asarray(self.predict(X), dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        return _r2(y.reshape(len(y), -1), pred.reshape(len(pred), -1), sample_weight)


def _r2(Y, P, w=None):
    """The coefficient of determination, averaged over columns (1 - SS_res /
    SS_tot; a constant column scores 1 if predicted exactly, else 0)."""
    w = np.ones(len(Y)) if w is None else np.asarray(w, dtype=np.float64)
    w = w[:, None]
    ss_res = np.sum(w * (Y - P) ** 2, axis=0)
    mean = np.sum(w * Y, axis=0) / np.sum(w)
    ss_tot = np.sum(w * (Y - mean) ** 2, axis=0)
    scores = np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0),
                      np.where(ss_res > 0, 0.0, 1.0))
    return float(np.mean(scores))
