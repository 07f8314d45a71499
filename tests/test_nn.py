"""fasttape.nn: the MLP, the losses, the optimizers and MLPClassifier.

Every expected number is computed another way: a NumPy backprop written out
by hand, closed-form derivatives, or optimizer steps spelled out as scalars.
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

# The pure twin is much slower: the same checks, on less data where it matters.
TWIN = ft.backend == "python"


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


# ---------------------------------------------------------------- reference

_ACT = {
    "tanh": (np.tanh, lambda a, h: 1.0 - h * h),
    "relu": (lambda a: np.maximum(a, 0.0), lambda a, h: (a > 0) * 1.0),
    "sigmoid": (sigmoid, lambda a, h: h * (1.0 - h)),
    "logistic": (sigmoid, lambda a, h: h * (1.0 - h)),
    "identity": (lambda a: a, lambda a, h: np.ones_like(a)),
}


def reference_loss_and_grad(sizes, activation, params, X, T):
    """Per-sample losses and the batch-summed gradient of an MLP, by hand.

    The layout (per layer: weights as (n_out, n_in) row-major, then biases) is
    re-derived here rather than taken from nn.MLP.
    """
    Ws, bs, k = [], [], 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        Ws.append(params[k:k + n_in * n_out].reshape(n_out, n_in))
        k += n_in * n_out
        bs.append(params[k:k + n_out])
        k += n_out
    assert k == len(params)
    f, df = _ACT[activation]
    hs, pre = [X], []
    for i, (W, b) in enumerate(zip(Ws, bs)):
        a = hs[-1] @ W.T + b
        pre.append(a)
        hs.append(a if i == len(Ws) - 1 else f(a))
    z = hs[-1]
    if sizes[-1] == 1:
        z = z[:, 0]
        loss = np.logaddexp(0.0, z) - z * T
        delta = (sigmoid(z) - T)[:, None]
    else:
        e = np.exp(z - z.max(axis=1, keepdims=True))
        loss = z.max(axis=1) + np.log(e.sum(axis=1)) - (z * T).sum(axis=1)
        delta = e / e.sum(axis=1, keepdims=True) - T        # softmax - onehot
    grads = []
    for i in reversed(range(len(Ws))):
        grads = [(delta.T @ hs[i]).ravel(), delta.sum(axis=0)] + grads
        if i > 0:
            delta = (delta @ Ws[i]) * df(pre[i - 1], hs[i])
    return loss, np.concatenate(grads)


# ---------------------------------------------------------------- MLP

def test_mlp_layout_and_init():
    model = nn.MLP([3, 5, 4, 2], activation="tanh")
    assert model.n_params == (3 * 5 + 5) + (5 * 4 + 4) + (4 * 2 + 2)
    p = model.init(0)
    assert p.shape == (model.n_params,) and p.dtype == np.float64
    np.testing.assert_array_equal(p, model.init(0))
    assert not np.array_equal(p, model.init(1))
    for (W, b), (n_in, n_out) in zip(model.layers(p), [(3, 5), (5, 4), (4, 2)]):
        assert W.shape == (n_out, n_in) and b.shape == (n_out,)
        assert np.all(b == 0)
        assert np.abs(W).max() <= np.sqrt(6.0 / (n_in + n_out))     # Glorot bound
        assert np.abs(W).max() > 0.5 * np.sqrt(6.0 / (n_in + n_out))
    # He init for relu hidden layers: std sqrt(2 / fan_in) (checked on a wide layer)
    wide = nn.MLP([400, 300, 1], activation="relu")
    W = wide.layers(wide.init(0))[0][0]
    assert abs(W.std() / np.sqrt(2.0 / 400) - 1.0) < 0.02


def test_mlp_rejects_bad_configuration():
    with pytest.raises(ValueError):
        nn.MLP([3], "tanh")
    with pytest.raises(ValueError):
        nn.MLP([3, 0, 1], "tanh")
    with pytest.raises(ValueError, match="activation"):
        nn.MLP([3, 2, 1], "softsign")
    with pytest.raises(ValueError, match="shape"):
        nn.MLP([3, 2, 1]).layers(np.zeros(5))


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
def test_mlp_traced_output_matches_numpy(activation):
    model = nn.MLP([3, 4, 2], activation)
    rng = np.random.default_rng(1)
    params = model.init(1) + 0.1 * rng.normal(size=model.n_params)
    x = rng.normal(size=3)
    tape = ft.trace(lambda p, x: model(p, x), params, x)
    out = np.asarray(tape(params, x), dtype=np.float64)
    # hand-written forward, independent of MLP.forward
    f = _ACT[activation][0]
    W1 = params[:12].reshape(4, 3)
    b1 = params[12:16]
    W2 = params[16:24].reshape(2, 4)
    b2 = params[24:26]
    np.testing.assert_allclose(out, W2 @ f(W1 @ x + b1) + b2, rtol=1e-13)
    np.testing.assert_allclose(model.forward(params, x[None])[0], out, rtol=1e-13)


def test_each_unit_is_one_dot_node():
    model = nn.MLP([2, 10, 1])
    params = model.init(0)
    tape = ft.trace(lambda p, x: model(p, x)[0], params, np.zeros(2))
    lines = str(tape).splitlines()
    dots = [ln for ln in lines if "dot(" in ln]
    assert len(dots) == 10 + 1                    # one n-ary node per unit
    assert not any(" * " in ln for ln in lines)   # no chain of multiply-adds
    # and the whole network stays a few nodes per unit, not thousands
    assert len(tape) < 2 + model.n_params + 4 * 11 + 10


# ---------------------------------------------------------------- losses

@pytest.mark.parametrize("z", [-50.0, -1.0, 0.0, 1.0, 50.0])
@pytest.mark.parametrize("y", [0.0, 1.0, 0.25])
def test_bce_gradient_is_sigmoid_minus_y(z, y):
    value, g = ft.value_and_grad(nn.binary_cross_entropy_with_logits)(z, y)
    expected = sigmoid(z) - y
    if z == 0.0:
        assert g == expected                      # exactly 1/2 - y at the kink
    else:
        # a few ulps of sigmoid(z) and y: the subtraction may cancel digits
        assert g == pytest.approx(expected, rel=1e-15, abs=4e-16 * (sigmoid(z) + y))
    assert value == pytest.approx(np.logaddexp(0.0, z) - z * y, rel=1e-15, abs=1e-300)


def test_bce_is_stable_for_huge_logits_in_a_batch():
    z = np.array([-1000.0, -50.0, -1e-9, 0.0, 1e-9, 50.0, 1000.0])
    y = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0])
    step = ft.value_and_grad(nn.binary_cross_entropy_with_logits, argnums=0,
                             in_axes=(0, 0))
    values, g = step(z, y)
    np.testing.assert_allclose(values, np.logaddexp(0.0, z) - z * y, rtol=1e-15)
    with np.errstate(over="ignore"):
        np.testing.assert_allclose(g, sigmoid(z) - y, rtol=1e-15, atol=1e-300)


@pytest.mark.parametrize("logits, label", [
    ([0.5, -1.0, 2.0], 1),
    ([0.0, 0.0, 0.0, 0.0], 3),          # ties everywhere
    ([1000.0, -1000.0, 999.0], 2),      # would overflow without max subtraction
    ([3.0, 3.0, -2.0], 0),              # tie at the maximum
])
def test_softmax_cross_entropy_value_and_gradient(logits, label):
    logits = np.array(logits)
    value, g = ft.value_and_grad(lambda l: nn.softmax_cross_entropy(l, label))(logits)
    e = np.exp(logits - logits.max())
    lse = logits.max() + np.log(e.sum())
    onehot = np.eye(len(logits))[label]
    assert value == pytest.approx(lse - logits[label], rel=1e-14, abs=1e-14)
    np.testing.assert_allclose(g, e / e.sum() - onehot, rtol=1e-14, atol=1e-15)
    # a one-hot vector label (what batched training passes) gives the same
    v2, g2 = ft.value_and_grad(nn.softmax_cross_entropy, argnums=0)(logits, onehot)
    assert v2 == pytest.approx(value, rel=1e-15, abs=1e-15)
    np.testing.assert_allclose(g2, g, rtol=1e-14, atol=1e-15)


def test_softmax_cross_entropy_batched_integer_labels():
    # The label batched from an int array arrives as a traced scalar: the same
    # values and gradients as one-hot rows, by the closed form.
    rng = np.random.default_rng(3)
    Z = rng.normal(size=(6, 4)) * 3
    labels = np.array([0, 3, 1, 2, 3, 0])
    step = ft.value_and_grad(nn.softmax_cross_entropy, argnums=0, in_axes=(0, 0))
    values, g = step(Z, labels)
    e = np.exp(Z - Z.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(values, -np.log(p[np.arange(6), labels]), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(g, p - np.eye(4)[labels], rtol=1e-13, atol=1e-15)
    # a later batch with an index out of range raises, never a silent zero row
    with pytest.raises((ValueError, ft.GuardError)):
        step(Z[:2], np.array([0, 4]))
    with pytest.raises(ValueError, match="out of range"):
        step(Z[:2], np.array([-1, -1]))


def test_softmax_cross_entropy_rejects_bad_labels():
    logits = np.zeros(3)
    with pytest.raises(ValueError, match="out of range"):
        ft.grad(lambda l: nn.softmax_cross_entropy(l, 3))(logits)
    with pytest.raises(ValueError, match="shape"):
        ft.grad(lambda l: nn.softmax_cross_entropy(l, np.ones(2)))(logits)


# ---------------------------------------------------------------- gradients

def _gradient_case(sizes, activation, n, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, sizes[0]))
    y = rng.integers(0, max(2, sizes[-1]), size=n)
    y[:2] = [0, 1]
    if sizes[-1] > 2:
        y[:sizes[-1]] = np.arange(sizes[-1])
    clf = nn.MLPClassifier(hidden_layer_sizes=sizes[1:-1], activation=activation,
                           random_state=seed, max_iter=1, alpha=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nn.ConvergenceWarning)
        clf.fit(X, y)
    assert clf.model_.sizes == tuple(sizes)
    # non-zero biases too, so every parameter's gradient is exercised
    params = clf.coef_flat_ + 0.3 * rng.normal(size=clf.model_.n_params)
    return clf, params, X, y


@pytest.mark.parametrize("sizes, activation", [
    ((2, 10, 1), "tanh"),            # the lecture's classifier, BCE
    ((5, 7, 4), "tanh"),             # softmax, 4 classes
    ((4, 6, 5, 3), "relu"),          # softmax, two hidden layers
    ((3, 4, 1), "sigmoid"),
    ((3, 5, 1), "logistic"),
    ((3, 5, 3), "identity"),
])
def test_classifier_gradient_matches_numpy_backprop(sizes, activation):
    clf, params, X, y = _gradient_case(sizes, activation, 40, seed=len(sizes))
    T = y.astype(float) if sizes[-1] == 1 else np.eye(sizes[-1])[y]
    # the classifier's own training step: the mean loss and its gradient
    loss, g = clf._loss_and_grad(params, X, T.reshape(len(y), -1), np.ones(len(y)))
    ref_loss, ref_grad = reference_loss_and_grad(sizes, activation, params, X, T)
    assert loss == pytest.approx(np.mean(ref_loss), rel=1e-12)
    np.testing.assert_allclose(g, ref_grad / len(y), rtol=1e-10, atol=1e-12)


def test_penalty_and_sample_weights_in_the_gradient():
    # scikit-learn's objective: sum_i w_i loss_i / sum w + alpha/2 |W|^2 / sum w
    # (weights only, not biases), computed here from the per-sample reference.
    sizes, alpha = (4, 6, 3), 0.3
    clf, params, X, y = _gradient_case(sizes, "tanh", 30, seed=7)
    clf.set_params(alpha=alpha)
    w = np.random.default_rng(0).uniform(0.0, 2.0, len(y))
    T = np.eye(3)[y]
    loss, g = clf._loss_and_grad(params, X, T, w)
    ref_loss, _ = reference_loss_and_grad(sizes, "tanh", params, X, T)
    ref_grad = sum(w[i] * reference_loss_and_grad(sizes, "tanh", params, X[i:i + 1],
                                                  T[i:i + 1])[1] for i in range(len(y)))
    mask = np.zeros_like(params)
    mask[:24] = mask[30:48] = 1.0                # the two weight matrices
    W2 = np.sum((params * mask) ** 2)
    assert loss == pytest.approx(w @ ref_loss / w.sum() + 0.5 * alpha * W2 / w.sum(),
                                 rel=1e-12)
    np.testing.assert_allclose(g, (ref_grad + alpha * mask * params) / w.sum(),
                               rtol=1e-10, atol=1e-12)


def test_public_pieces_compose_to_the_same_gradient():
    # What a user writes by hand from the API page, for the 2-10-1 network.
    model = nn.MLP([2, 10, 1])
    rng = np.random.default_rng(5)
    params = model.init(5) + 0.2 * rng.normal(size=model.n_params)
    X, y = datasets.make_moons(64, noise=0.1, seed=5)

    def per_sample_loss(p, x, t):
        return nn.binary_cross_entropy_with_logits(model(p, x)[0], t)

    step = ft.value_and_grad(per_sample_loss, argnums=0, in_axes=(None, 0, 0))
    values, g = step(params, X, y.astype(float))
    ref_loss, ref_grad = reference_loss_and_grad((2, 10, 1), "tanh", params, X, y)
    np.testing.assert_allclose(values, ref_loss, rtol=1e-10)
    np.testing.assert_allclose(g, ref_grad, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------- optimizers

GRADS = [np.array([0.5, -2.0, 0.0]), np.array([-1.0, 1.0, 3.0]),
         np.array([0.25, 0.0, -1e-3])]


def test_sgd_plain_and_momentum_by_hand():
    for momentum in (0.0, 0.9):
        opt = nn.SGD(lr=0.1, momentum=momentum)
        p = np.array([1.0, -1.0, 2.0])
        same = p
        expected = [1.0, -1.0, 2.0]
        velocity = [None] * 3
        for g in GRADS:
            opt.step(p, g)
            for i in range(3):
                v = g[i] if velocity[i] is None else momentum * velocity[i] + g[i]
                velocity[i] = v
                expected[i] -= 0.1 * v
            np.testing.assert_allclose(p, expected, rtol=1e-15)
        assert p is same                             # updated in place


def test_adam_by_hand():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    opt = nn.Adam(lr)
    p = np.array([1.0, -1.0, 2.0])
    expected = [1.0, -1.0, 2.0]
    m, v = [0.0] * 3, [0.0] * 3
    for t, g in enumerate(GRADS, start=1):
        opt.step(p, g)
        for i in range(3):
            m[i] = b1 * m[i] + (1 - b1) * g[i]
            v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2
            m_hat = m[i] / (1 - b1 ** t)
            v_hat = v[i] / (1 - b2 ** t)
            expected[i] -= lr * m_hat / (v_hat ** 0.5 + eps)
        np.testing.assert_allclose(p, expected, rtol=1e-13)
    # The first step moves each coordinate by lr * g / (|g| + eps): by lr, for g != 0.
    q = np.zeros(3)
    nn.Adam(lr).step(q, GRADS[0])
    np.testing.assert_allclose(q, [-lr * 0.5 / (0.5 + eps), lr * 2 / (2 + eps), 0.0],
                               rtol=1e-15)


def test_adam_and_sgd_match_torch_when_installed():
    torch = pytest.importorskip("torch")
    for make_ours, make_torch in [
            (lambda: nn.Adam(0.01), lambda w: torch.optim.Adam([w], lr=0.01)),
            (lambda: nn.SGD(0.1, momentum=0.9),
             lambda w: torch.optim.SGD([w], lr=0.1, momentum=0.9))]:
        ours, p = make_ours(), np.array([1.0, -1.0, 2.0])
        w = torch.tensor([1.0, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
        theirs = make_torch(w)
        for g in GRADS:
            ours.step(p, g)
            w.grad = torch.tensor(g)
            theirs.step()
        np.testing.assert_allclose(p, w.detach().numpy(), rtol=1e-14)


# ---------------------------------------------------------------- classifier

def _moons_split(n=1000):
    X, y = datasets.make_moons(n, noise=0.1, seed=0)
    k = (3 * n) // 4
    return X[:k], y[:k], X[k:], y[k:]


def test_lecture_classifier_learns_the_moons():
    # The API page's promise: defaults, ten hidden units, no tuning.
    Xtr, ytr, Xte, yte = _moons_split()
    clf = nn.MLPClassifier(hidden_layer_sizes=(10,), random_state=0).fit(Xtr, ytr)
    accuracy = np.mean(clf.predict(Xte) == yte)
    assert accuracy >= 0.95
    assert clf.score(Xte, yte) == accuracy
    assert clf.model_.sizes == (2, 10, 1)
    assert len(clf.loss_curve_) == clf.n_iter_ <= clf.max_iter
    assert clf.loss_curve_[-1] < 0.5 * clf.loss_curve_[0]
    # loss_curve_ is the mean per-sample BCE seen during the epochs: the final
    # parameters' full-data loss, computed by hand, is of the same size.
    p1 = clf.predict_proba(Xtr)[:, 1]
    final = -np.mean(ytr * np.log(p1) + (1 - ytr) * np.log1p(-p1))
    assert final < 2 * clf.loss_curve_[-1] + 0.01


def test_digits_64_32_10():
    pytest.importorskip("sklearn")
    X, y = datasets.load_digits()
    order = np.random.default_rng(0).permutation(len(y))
    X, y = X[order], y[order]
    q = len(y) // 4
    # Fewer epochs on the slow twin; both still must clear the bar.
    clf = nn.MLPClassifier(hidden_layer_sizes=(32,), max_iter=8 if TWIN else 20,
                           random_state=0).fit(X[q:], y[q:])
    assert clf.model_.sizes == (64, 32, 10)
    assert clf.score(X[:q], y[:q]) >= 0.95


@pytest.mark.parametrize("labels", [
    np.array(["no", "yes"]),
    np.array([-1, 7]),
    np.array(["ant", "bee", "cat"]),
    np.array([2.0, 5.0, 9.0]),          # integral floats are class labels too
    np.array([False, True]),
])
def test_classes_of_any_label_type(labels):
    X, y = datasets.make_moons(200, noise=0.05, seed=1)
    if len(labels) == 3:         # split the second moon in two by x
        y = np.where((y == 1) & (X[:, 0] > 1.0), 2, y)
    target = labels[y]
    clf = nn.MLPClassifier(random_state=0, max_iter=40, batch_size=20).fit(X, target)
    np.testing.assert_array_equal(clf.classes_, np.sort(labels))
    pred = clf.predict(X)
    assert pred.dtype == target.dtype and set(pred) <= set(labels)
    assert np.mean(pred == target) >= 0.85
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), len(labels))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(pred, clf.classes_[proba.argmax(axis=1)])


def test_predict_proba_is_the_networks_sigmoid():
    Xtr, ytr, Xte, _ = _moons_split(200)
    clf = nn.MLPClassifier(random_state=0, max_iter=5).fit(Xtr, ytr)
    # the network's logit, replayed from a tape, through a hand-written sigmoid
    tape = ft.trace(lambda p, x: clf.model_(p, x)[0], clf.coef_flat_, Xte[0])
    logits = np.array([tape(clf.coef_flat_, x) for x in Xte[:10]])
    np.testing.assert_allclose(clf.predict_proba(Xte[:10])[:, 1], sigmoid(logits),
                               rtol=1e-12)
    np.testing.assert_allclose(clf.decision_function(Xte[:10]), logits, rtol=1e-12)


def test_estimator_params_clone_and_determinism():
    clf = nn.MLPClassifier(hidden_layer_sizes=(6,), learning_rate_init=0.05,
                           max_iter=7, random_state=3)
    params = clf.get_params()
    import inspect
    signature = inspect.signature(nn.MLPClassifier).parameters
    assert set(params) == set(signature)
    assert params["hidden_layer_sizes"] == (6,) and params["max_iter"] == 7
    assert clf.set_params(max_iter=5, solver="sgd") is clf
    assert clf.get_params()["max_iter"] == 5 and clf.solver == "sgd"
    with pytest.raises(ValueError, match="(?i)invalid parameter"):
        clf.set_params(hidden=3)
    twin = type(clf)(**clf.get_params())             # what sklearn.clone does
    X, y = datasets.make_moons(100, noise=0.1, seed=2)
    a = clf.fit(X, y).predict_proba(X)
    b = twin.fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)              # same seed, same numbers
    assert clf.n_iter_ == 5 and len(clf.loss_curve_) == 5
    # __init__ stored the arguments as given and fit did not change them
    assert clf.get_params()["hidden_layer_sizes"] == (6,)


def test_sgd_solver_learns_too():
    Xtr, ytr, Xte, yte = _moons_split(400)
    clf = nn.MLPClassifier(solver="sgd", learning_rate_init=0.1, random_state=0,
                           max_iter=60).fit(Xtr, ytr)
    assert clf.score(Xte, yte) >= 0.9


def test_unfitted_and_bad_input_errors():
    clf = nn.MLPClassifier()
    with pytest.raises(ValueError, match="not fitted"):
        clf.predict(np.zeros((2, 2)))
    X, y = datasets.make_moons(40, noise=0.1, seed=0)
    with pytest.raises(ValueError, match="inconsistent"):
        clf.fit(X, y[:-1])
    with pytest.raises(ValueError, match="NaN"):
        clf.fit(np.where(X > 1, np.nan, X), y)
    with pytest.raises(ValueError, match="continuous"):
        clf.fit(X, X[:, 0])
    with pytest.raises(ValueError, match="solver"):
        nn.MLPClassifier(solver="newton").fit(X, y)
    clf = nn.MLPClassifier(max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match="expecting 2 features"):
        clf.predict(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="2D"):
        clf.predict(np.zeros(2))


def test_partial_fit_and_pickle_round_trip():
    X, y = datasets.make_moons(120, noise=0.1, seed=4)
    clf = nn.MLPClassifier(random_state=0)
    for _ in range(3):
        clf.partial_fit(X, y, classes=[0, 1])
    # n_iter_ counts the epochs of the last call (one), as in scikit-learn
    assert clf.n_iter_ == 1 and len(clf.loss_curve_) == 3 and clf.t_ == 3 * len(X)
    copy = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    # both continue identically: the optimizer state and rng were pickled too
    clf.partial_fit(X, y)
    copy.partial_fit(X, y)
    np.testing.assert_array_equal(copy.coef_flat_, clf.coef_flat_)


def test_works_without_scikit_learn():
    # A fresh interpreter in which importing sklearn fails.
    code = (
        "import sys; sys.modules['sklearn'] = None\n"
        "import numpy as np\n"
        "from fasttape import nn, datasets\n"
        "X, y = datasets.make_moons(100, noise=0.1, seed=0)\n"
        "clf = nn.MLPClassifier(max_iter=3, random_state=0).fit(X, y)\n"
        "assert clf.predict(X).shape == (100,)\n"
        "try:\n"
        "    nn.MLPClassifier().predict(X)\n"
        "except ValueError as e:\n"
        "    print('unfitted:', type(e).__name__)\n"
        "print('ok', clf.n_iter_)\n")
    root = Path(ft.__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(root)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=str(root), timeout=120)
    assert out.returncode == 0, out.stderr
    assert "unfitted: NotFittedError" in out.stdout and "ok 3" in out.stdout

# scikit-learn's estimator checks, for both estimators: tests/test_estimators.py
