"""ft.nn.MLPClassifier / MLPRegressor: scikit-learn's parameters, attributes and
input validation.

Expected numbers come from elsewhere: scikit-learn's own estimators started
from the same weights (where installed), closed forms, or the count rules
spelled out step by step.
"""

import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import fasttape as ft
from fasttape import datasets, nn

TWIN = ft.backend == "python"


class Frame:
    """The little of a DataFrame that feature names need: ``columns`` and
    ``__array__`` (so these tests run without pandas)."""

    def __init__(self, data, columns):
        self.data, self.columns = np.asarray(data, dtype=float), list(columns)

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    def reorder(self, columns):
        index = [self.columns.index(c) for c in columns]
        return Frame(self.data[:, index], columns)


def quiet_fit(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nn.ConvergenceWarning)
        return est.fit(*args, **kwargs)


def blobs(n=120, k=3, d=4, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    return rng.normal(size=(n, d)) + 3.0 * np.eye(d)[y % d], y


# ---------------------------------------------------------------- silent wrong answers

def test_reordered_columns_raise_and_missing_names_warn():
    X, y = blobs()
    names = ["a", "b", "c", "d"]
    clf = quiet_fit(nn.MLPClassifier(max_iter=20, random_state=0), Frame(X, names), y)
    np.testing.assert_array_equal(clf.feature_names_in_, names)
    same = clf.predict(Frame(X, names))
    with pytest.raises(ValueError, match="same order as they were in fit"):
        clf.predict(Frame(X, names).reorder(["b", "a", "c", "d"]))
    with pytest.raises(ValueError, match="unseen at fit time:\n- e"):
        clf.predict_proba(Frame(X, ["a", "b", "c", "e"]))
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        np.testing.assert_array_equal(clf.predict(X), same)
    # fitted without names, given names: a warning, not an error
    plain = quiet_fit(nn.MLPClassifier(max_iter=5, random_state=0), X, y)
    assert not hasattr(plain, "feature_names_in_")
    with pytest.warns(UserWarning, match="X has feature names"):
        plain.predict(Frame(X, names))
    # refitting on a plain array forgets the names
    quiet_fit(clf, X, y)
    assert not hasattr(clf, "feature_names_in_")


def test_reordered_dataframe_raises_like_scikit_learn():
    pd = pytest.importorskip("pandas")
    X, y = blobs()
    df = pd.DataFrame(X, columns=["w", "x", "y", "z"])
    reg = quiet_fit(nn.MLPRegressor(hidden_layer_sizes=(5,), max_iter=5, random_state=0),
                    df, X[:, 0])
    reg.predict(df)
    with pytest.raises(ValueError, match="feature names should match"):
        reg.predict(df[["x", "w", "y", "z"]])
    with pytest.raises(TypeError, match="string names"):
        reg.fit(pd.DataFrame(X, columns=["a", 1, "b", 2]), X[:, 0])


def test_partial_fit_classes_are_fixed_on_the_first_call():
    X, y = blobs()
    clf = nn.MLPClassifier(random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X, y)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="not the same as on last call"):
        clf.partial_fit(X, y + 5, classes=[5, 6, 7])
    with pytest.raises(ValueError, match="not in `self.classes_`"):
        clf.partial_fit(X, y + 5)
    clf.partial_fit(X[y < 2], y[y < 2], classes=[2, 1, 0])     # the same set: fine
    clf.partial_fit(X, y)
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    # a first call may name classes that y does not contain yet
    late = nn.MLPClassifier(random_state=0).partial_fit(X[y < 2], y[y < 2], classes=[0, 1, 2])
    assert late.predict_proba(X).shape == (len(X), 3)


# ---------------------------------------------------------------- same numbers as scikit-learn

def _sklearn_pair(kind, **params):
    sk = pytest.importorskip("sklearn.neural_network")
    ours = getattr(nn, kind)(**params)
    theirs = getattr(sk, kind)(**params)
    return ours, theirs


@pytest.mark.parametrize("solver, extra", [
    ("sgd", dict(momentum=0.9, nesterovs_momentum=True)),
    ("sgd", dict(momentum=0.5, nesterovs_momentum=False, learning_rate="invscaling")),
    ("adam", dict(beta_1=0.8, epsilon=1e-6)),
])
@pytest.mark.parametrize("kind", ["MLPClassifier", "MLPRegressor"])
def test_stochastic_solvers_follow_scikit_learn_step_by_step(kind, solver, extra):
    # Same seed -> the same initial weights; no shuffling -> the same batches;
    # so every step must agree with scikit-learn's to rounding.
    X, y = blobs(60, seed=1)
    if kind == "MLPRegressor":
        y = X @ [0.5, -1.0, 0.25, 2.0]
    params = dict(hidden_layer_sizes=(7, 5), activation="tanh", solver=solver,
                  alpha=0.01, batch_size=16, learning_rate_init=0.01, max_iter=4,
                  shuffle=False, random_state=3, tol=0.0, **extra)
    ours, theirs = _sklearn_pair(kind, **params)
    quiet_fit(ours, X, y)
    quiet_fit(theirs, X, y)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    assert ours.n_iter_ == theirs.n_iter_ == 4 and ours.t_ == theirs.t_


@pytest.mark.parametrize("kind", ["MLPClassifier", "MLPRegressor", "poisson"])
def test_lbfgs_reaches_scikit_learns_optimum(kind):
    pytest.importorskip("scipy")
    X, y = blobs(80, k=2, seed=2)
    params = dict(hidden_layer_sizes=(4,), activation="logistic", solver="lbfgs",
                  alpha=0.1, max_iter=50, tol=1e-10, random_state=0)
    if kind == "MLPRegressor":
        y = np.tanh(X[:, 0]) + 0.1 * X[:, 1]
    if kind == "poisson":           # the loss scikit-learn reports: the half deviance
        kind, params["loss"] = "MLPRegressor", "poisson"
        y = np.random.default_rng(0).poisson(np.exp(0.3 * X[:, 0]))
    # the same objective and gradient from the same start: the same 50
    # L-BFGS-B iterations (run long, rounding picks between flat optima)
    ours, theirs = _sklearn_pair(kind, **params)
    quiet_fit(ours, X, y)
    quiet_fit(theirs, X, y)
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-8)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-6, atol=1e-9)
    # (scikit-learn's MLPRegressor means to do the same; its check misses a call)
    assert not hasattr(ours, "partial_fit")
    assert len(ours.loss_curve_) == ours.n_iter_ and ours.loss_curve_[-1] == ours.loss_


def test_lbfgs_without_scipy_says_so():
    code = ("import sys; sys.modules['scipy'] = None\n"
            "import numpy as np\n"
            "from fasttape import nn\n"
            "try:\n"
            "    nn.MLPRegressor(solver='lbfgs').fit(np.eye(3), [1.0, 2.0, 3.0])\n"
            "except ImportError as e:\n"
            "    print('refused:', e)\n")
    out = _run_python(code)
    assert "refused: solver='lbfgs' needs SciPy" in out


# ---------------------------------------------------------------- the stopping rule

def test_n_iter_no_change_counts_like_scikit_learn():
    # With tol huge no epoch improves by tol, but the first always beats the
    # initial best (inf): the count is 0, 1, 2, ... and training stops when it
    # exceeds n_iter_no_change, after n_iter_no_change + 2 epochs.
    X, y = blobs()
    for n in (1, 3):
        clf = nn.MLPClassifier(tol=1e9, n_iter_no_change=n, max_iter=50, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("error", nn.ConvergenceWarning)   # stopped, not run out
            clf.fit(X, y)
        assert clf.n_iter_ == n + 2 and clf._no_improvement_count == n + 1
        assert clf.best_loss_ == min(clf.loss_curve_)
    clf = nn.MLPClassifier(tol=1e9, n_iter_no_change=np.inf, max_iter=6, random_state=0)
    with pytest.warns(nn.ConvergenceWarning, match=r"Maximum iterations \(6\)"):
        clf.fit(X, y)
    assert clf.n_iter_ == 6


def test_early_stopping_keeps_the_best_validation_weights():
    X, y = blobs(200, seed=3)
    clf = nn.MLPClassifier(early_stopping=True, validation_fraction=0.2, tol=0.01,
                           n_iter_no_change=2, max_iter=300, learning_rate_init=0.05,
                           random_state=0).fit(X, y)
    assert clf.best_loss_ is None and len(clf.validation_scores_) == clf.n_iter_ < 300
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    # the last n_iter_no_change + 1 epochs did not beat the best by tol
    assert all(s < clf.best_validation_score_ + 0.01 for s in clf.validation_scores_[-3:])
    # the kept weights are those of the best epoch: refit with the same seed
    # and stop after that epoch (no early stopping, the same split and steps)
    best = int(np.argmax(clf.validation_scores_)) + 1
    again = quiet_fit(clf.__class__(**{**clf.get_params(), "max_iter": best,
                                       "n_iter_no_change": np.inf}), X, y)
    for a, b in zip(clf.coefs_, again.coefs_):
        np.testing.assert_array_equal(a, b)
    plain = quiet_fit(nn.MLPClassifier(max_iter=3), X, y)
    assert plain.validation_scores_ is None and plain.best_validation_score_ is None


def test_early_stopping_split_is_stratified_and_refuses_tiny_sets():
    X, y = blobs(100, k=2, seed=4)
    y = np.where(np.arange(100) < 10, 1, 0)            # 10 % of class 1
    clf = nn.MLPClassifier(early_stopping=True, validation_fraction=0.2, random_state=0)
    clf._random_state = np.random.RandomState(0)
    clf._multilabel = False
    train, val = clf._validation_split(np.eye(2)[y])
    assert len(val) == 20 and np.sum(y[val]) == 2       # ceil(0.2 n), proportional
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == 100
    with pytest.raises(ValueError, match="validation set is too small"):
        nn.MLPRegressor(early_stopping=True).fit(X[:3], y[:3])
    with pytest.raises(ValueError, match="only 1 member"):
        nn.MLPClassifier(early_stopping=True).fit(X[:4], [0, 0, 0, 1])
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        nn.MLPRegressor(early_stopping=True).partial_fit(X, y)


# ---------------------------------------------------------------- defaults

@pytest.mark.skipif(TWIN, reason="a 40 s training on the pure twin; the twin's "
                    "arithmetic is checked against the kernel's elsewhere")
def test_defaults_learn_unscaled_digits():
    # Raw 0..16 pixels: batches of 32 at the default rate 0.01 made the loss
    # noisy and stopped near 0.92; scikit-learn's "auto" batches (200) do not.
    X, y = datasets.load_digits() if _have("sklearn") else pytest.skip("needs the digits")
    order = np.random.default_rng(0).permutation(len(y))
    X, y = 16.0 * X[order], y[order]
    clf = quiet_fit(nn.MLPClassifier(hidden_layer_sizes=(100,), random_state=0),
                    X[:1347], y[:1347])
    assert clf.score(X[1347:], y[1347:]) >= 0.96 and clf.n_iter_ < clf.max_iter


def _have(module):
    import importlib.util
    return importlib.util.find_spec(module) is not None


# ---------------------------------------------------------------- parameters

def test_alpha_shrinks_the_weights():
    pytest.importorskip("scipy")
    X, y = blobs(60)
    sums = [np.sum([np.abs(c).sum() for c in quiet_fit(
        nn.MLPClassifier(alpha=a, solver="lbfgs", max_iter=100, random_state=1), X, y).coefs_])
        for a in (0.0, 1.0, 10.0)]
    assert sums[0] > sums[1] > sums[2]


def test_warm_start_continues_and_checks_classes():
    X, y = blobs()
    clf = nn.MLPClassifier(warm_start=True, max_iter=5, random_state=0)
    quiet_fit(clf, X, y)
    first = [c.copy() for c in clf.coefs_]
    curve = list(clf.loss_curve_)
    quiet_fit(clf, X, y)
    assert clf.n_iter_ == 5 and len(clf.loss_curve_) == 10 and clf.t_ == 10 * len(X)
    assert clf.loss_curve_[:5] == curve and clf.loss_curve_[5] < curve[0]
    # continued from the first fit's weights: a fresh 5-epoch fit differs
    cold = quiet_fit(nn.MLPClassifier(max_iter=5, random_state=0), X, y)
    np.testing.assert_array_equal(cold.coefs_[0], first[0])
    assert not np.array_equal(clf.coefs_[0], first[0])
    with pytest.raises(ValueError, match="warm_start can only be used where `y` has the "
                       "same classes"):
        clf.fit(X, np.where(y == 2, 1, y))


def test_coefs_are_the_model_and_settable():
    X, y = blobs(30, k=2)
    clf = quiet_fit(nn.MLPClassifier(hidden_layer_sizes=(5, 4), max_iter=2, random_state=0),
                    X, y)
    assert [c.shape for c in clf.coefs_] == [(4, 5), (5, 4), (4, 1)]
    assert [b.shape for b in clf.intercepts_] == [(5,), (4,), (1,)]
    assert clf.n_layers_ == 4 and clf.n_outputs_ == 1 and clf.out_activation_ == "logistic"
    h = X
    for W, b in zip(clf.coefs_[:-1], clf.intercepts_[:-1]):
        h = np.tanh(h @ W + b)
    z = (h @ clf.coefs_[-1] + clf.intercepts_[-1])[:, 0]
    np.testing.assert_allclose(clf.predict_proba(X)[:, 1], 1 / (1 + np.exp(-z)), rtol=1e-12)
    # coef_flat_ is the same network in ft.nn.MLP's layout
    np.testing.assert_allclose(clf.model_.forward(clf.coef_flat_, X)[:, 0], z, rtol=1e-12)
    # weights set by hand are what partial_fit continues from: one SGD step
    # (momentum 0) moves them by -lr * the mean gradient
    sgd = nn.MLPClassifier(hidden_layer_sizes=(5, 4), solver="sgd", momentum=0.0,
                           learning_rate_init=0.1, alpha=0.0, batch_size=30,
                           random_state=0).partial_fit(X, y, classes=[0, 1])
    sgd.coefs_ = [c * 0.5 for c in clf.coefs_]
    sgd.intercepts_ = [b + 0.1 for b in clf.intercepts_]
    start = sgd.coef_flat_
    _, g = sgd._loss_and_grad(start, X, y.astype(float)[:, None], np.ones(len(y)))
    sgd.partial_fit(X, y)
    np.testing.assert_allclose(sgd.coef_flat_, start - 0.1 * g, rtol=1e-12, atol=1e-15)


def test_parameter_validation():
    X, y = blobs(30)
    for bad in [dict(activation="softsign"), dict(solver="newton"), dict(alpha=-1.0),
                dict(batch_size=0), dict(learning_rate="optimal"), dict(momentum=1.5),
                dict(validation_fraction=1.0), dict(beta_1=1.0), dict(epsilon=0.0),
                dict(n_iter_no_change=0), dict(max_iter=0), dict(hidden_layer_sizes=(3, 0)),
                dict(learning_rate_init=0.0), dict(max_fun=0)]:
        with pytest.raises(ValueError, match=list(bad)[0]):
            nn.MLPClassifier(**bad).fit(X, y)
    with pytest.raises(ValueError, match="loss"):
        nn.MLPRegressor(loss="huber").fit(X, X[:, 0])
    with pytest.warns(UserWarning, match="clipped"):
        quiet_fit(nn.MLPClassifier(batch_size=100, max_iter=1), X, y)


def test_activation_names():
    X, y = blobs(40)
    for name in ("identity", "logistic", "tanh", "relu"):
        clf = quiet_fit(nn.MLPClassifier(activation=name, max_iter=3, random_state=0), X, y)
        h = X @ clf.coefs_[0] + clf.intercepts_[0]
        h = {"identity": h, "logistic": 1 / (1 + np.exp(-h)), "tanh": np.tanh(h),
             "relu": np.maximum(h, 0)}[name]
        z = h @ clf.coefs_[1] + clf.intercepts_[1]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        np.testing.assert_allclose(clf.predict_proba(X), e / e.sum(axis=1, keepdims=True),
                                   rtol=1e-10)


def test_multilabel_and_one_class():
    X, y = blobs(90)
    Y = np.column_stack([y == 0, y != 1, X[:, 0] > 0]).astype(int)
    clf = nn.MLPClassifier(max_iter=300, batch_size=16, random_state=0)
    quiet_fit(clf, X, Y)
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == 3
    P = clf.predict_proba(X)
    np.testing.assert_array_equal(clf.predict(X), (P > 0.5).astype(int))
    assert clf.score(X, Y) > 0.9 and np.ptp(P.sum(axis=1)) > 0.1     # not a softmax
    one = quiet_fit(nn.MLPClassifier(max_iter=3), X, np.full(90, "only"))
    assert list(one.predict(X[:2])) == ["only", "only"] and one.score(X, ["only"] * 90) == 1


# ---------------------------------------------------------------- the regressor

def test_regressor_fits_outputs_and_poisson():
    pytest.importorskip("scipy")
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (200, 2))
    Y = np.column_stack([np.sin(2 * X[:, 0]), X[:, 0] * X[:, 1]])
    reg = quiet_fit(nn.MLPRegressor(hidden_layer_sizes=(20,), activation="tanh",
                                    solver="lbfgs", max_iter=400, random_state=0), X, Y)
    assert reg.predict(X).shape == (200, 2) and reg.score(X, Y) > 0.98
    # score is R^2, averaged over the outputs
    P = reg.predict(X)
    r2 = [1 - np.sum((Y[:, j] - P[:, j]) ** 2) / np.sum((Y[:, j] - Y[:, j].mean()) ** 2)
          for j in range(2)]
    assert reg.score(X, Y) == pytest.approx(np.mean(r2), rel=1e-12)
    # Poisson: an exponential output, so a log-linear rate is learnt exactly
    counts = rng.poisson(np.exp(0.5 + X[:, 0]))
    pois = quiet_fit(nn.MLPRegressor(loss="poisson", hidden_layer_sizes=(1,),
                                     activation="identity", solver="lbfgs", alpha=0.0,
                                     tol=1e-10, random_state=0), X, counts)
    assert pois.out_activation_ == "exp" and np.all(pois.predict(X) > 0)
    # at the optimum the deviance's gradient vanishes: sum(mu - y) = 0, sum((mu - y) x) = 0
    mu = pois.predict(X)
    assert abs(np.sum(mu - counts)) < 1e-3 * len(X)
    np.testing.assert_allclose((mu - counts) @ X / len(X), 0.0, atol=1e-3)
    with pytest.raises(ValueError, match="negative"):
        nn.MLPRegressor(loss="poisson").fit(X, -counts)


def test_regressor_partial_fit_equals_fit():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 3))
    y = X @ [1.0, -2.0, 0.5]
    params = dict(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=0.01,
                  batch_size=50, random_state=2, tol=0.0)
    fitted = quiet_fit(nn.MLPRegressor(max_iter=20, **params), X, y)
    stepped = nn.MLPRegressor(**params)
    for _ in range(20):
        stepped.partial_fit(X, y)
    np.testing.assert_allclose(stepped.predict(X), fitted.predict(X), rtol=1e-12)
    with pytest.raises(ValueError, match="NaN"):
        nn.MLPRegressor().fit(X, np.full(50, np.nan))


def test_non_finite_weights_raise():
    X = np.finfo(np.float64).max * np.random.default_rng(0).uniform(size=(10, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="non-finite parameter weights"):
            nn.MLPRegressor(max_iter=5).fit(X, np.arange(10.0))


def test_float32_data_keeps_float32_weights():
    X, y = blobs(60)
    reg = quiet_fit(nn.MLPRegressor(hidden_layer_sizes=(5,), max_iter=5, random_state=0),
                    X.astype(np.float32), y.astype(float))
    assert all(c.dtype == np.float32 for c in reg.coefs_ + reg.intercepts_)
    assert reg.predict(X.astype(np.float32)).dtype == np.float32
    reg64 = quiet_fit(nn.MLPRegressor(hidden_layer_sizes=(5,), max_iter=5, random_state=0),
                      X, y.astype(float))
    np.testing.assert_allclose(reg.predict(X), reg64.predict(X), rtol=1e-5, atol=1e-5)


def test_pickle_keeps_training_state():
    X, y = blobs()
    reg = nn.MLPRegressor(hidden_layer_sizes=(6,), random_state=0)
    for _ in range(3):
        reg.partial_fit(X, X[:, 0])
    copy = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(copy.predict(X), reg.predict(X))
    reg.partial_fit(X, X[:, 0])
    copy.partial_fit(X, X[:, 0])
    np.testing.assert_array_equal(copy.predict(X), reg.predict(X))


# ---------------------------------------------------------------- scikit-learn's checks

@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("kind", ["MLPClassifier", "MLPRegressor"])
def test_scikit_learn_estimator_checks(kind):
    sklearn = pytest.importorskip("sklearn")
    import inspect
    from sklearn.utils.estimator_checks import check_estimator
    if "on_fail" not in inspect.signature(check_estimator).parameters:
        pytest.skip("needs scikit-learn >= 1.6 (check_estimator(on_fail=...))")
    # Short training keeps the checks fast; check_classifiers_train and
    # check_regressors_train still demand their accuracy of these settings.
    est = getattr(nn, kind)(max_iter=15 if TWIN else 30, random_state=0)
    if kind == "MLPRegressor":
        est.set_params(hidden_layer_sizes=(20,), max_iter=60, learning_rate_init=0.01)
    results = check_estimator(est, on_fail=None)
    failed = [r for r in results if r["status"] == "failed"]
    assert not failed, [(r["check_name"], str(r["exception"])[:200]) for r in failed]
    assert sum(r["status"] == "passed" for r in results) > 30, sklearn.__version__


def test_errors_and_warnings_are_scikit_learns_where_installed():
    pytest.importorskip("sklearn")
    from sklearn.exceptions import ConvergenceWarning, NotFittedError
    with pytest.raises(NotFittedError):
        nn.MLPRegressor().predict(np.zeros((1, 2)))
    with pytest.warns(ConvergenceWarning):
        nn.MLPRegressor(max_iter=1).fit(np.eye(3), [1.0, 2.0, 3.0])
    with pytest.warns(nn.ConvergenceWarning):
        nn.MLPRegressor(max_iter=1).fit(np.eye(3), [1.0, 2.0, 3.0])


def _run_python(code):
    root = Path(ft.__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(root)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=str(root), timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout
