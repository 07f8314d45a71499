"""The ``fasttape`` command line: ``demo``, ``train``, ``predict`` and ``bench``.

Run as ``python -m fasttape COMMAND`` or as the installed ``fasttape``
script; ``--help`` (also of every command) lists the options, and
docs/api.md describes them.

- ``demo``: the lecture's example (Wengert list, values, adjoints), then the
  2-10-1 tanh classifier on two moons, with a decision-boundary picture
  where matplotlib is installed.
- ``train DATA``: a classifier on ``moons``, ``spirals``, ``digits`` or a
  CSV file (label in the last column); prints train and test accuracy, and
  saves the model with ``--save``.
- ``predict MODEL DATA``: loads a model saved by ``train --save`` and
  prints its prediction for each row of a CSV file (and the accuracy where
  the file has a label column).
- ``bench``: times one batched gradient on the kernel, the pure twin,
  NumPy by hand, and PyTorch and JAX where installed.

``main(argv)`` returns the exit code: 0 on success, 2 for bad input (a usage
error, a file that is not usable data), printed as one line on stderr, never as
a traceback.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

PROG = "fasttape"
SHIPPED = ("moons", "spirals", "digits")


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


# ---------------------------------------------------------------- parser

def build_parser():
    from fasttape import __version__

    parser = argparse.ArgumentParser(
        prog=PROG, description="fasttape: reverse-mode automatic differentiation, "
        "record once and replay many times.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="the lecture's example, then a classifier on "
                          "two moons", description="Show the Wengert list, forward "
                          "values and adjoints of L(w,x,y) = (w*x - y)**2 + w**2 at "
                          "(1, 2, 3), then train the lecture's 2-10-1 tanh classifier "
                          "on the two-moons data.")
    demo.add_argument("--epochs", type=_positive_int, default=40,
                      help="training epochs (default 40)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--plot", metavar="FILE", default="fasttape_moons.png",
                      help="decision-boundary picture, written where matplotlib is "
                      "installed (default fasttape_moons.png)")
    demo.add_argument("--no-plot", action="store_true", help="skip the picture")

    train = sub.add_parser("train", help="train a classifier on a shipped data set "
                           "or a CSV file", description="Train an MLP classifier on "
                           "a shipped data set (moons, spirals, digits) or a CSV file "
                           "(numeric features, label in the last column, optional "
                           "header), report train and test accuracy.")
    train.add_argument("data", help="moons, spirals, digits, or a path to a CSV file")
    train.add_argument("--hidden", type=_sizes, default=(32,), metavar="SIZES",
                       help="hidden layer sizes, comma separated, e.g. 32,16 "
                       "(default 32)")
    train.add_argument("--activation", choices=("tanh", "relu", "logistic", "identity",
                                                "sigmoid"),
                       default="tanh", help="hidden activation (default tanh; sigmoid "
                       "is another name of logistic)")
    train.add_argument("--optimizer", choices=("adam", "sgd"), default="adam",
                       help="default adam")
    train.add_argument("--lr", type=_positive_float, default=None,
                       help="learning rate (default 0.01 for adam, 0.1 for sgd)")
    train.add_argument("--momentum", type=float, default=0.9,
                       help="SGD momentum (default 0.9)")
    train.add_argument("--epochs", type=_positive_int, default=50,
                       help="default 50")
    train.add_argument("--batch-size", type=_positive_int, default=32,
                       help="default 32")
    train.add_argument("--seed", type=int, default=0,
                       help="seed for the data, the split and the initial weights")
    train.add_argument("--test-size", type=float, default=0.25,
                       help="held-out fraction (default 0.25)")
    train.add_argument("--samples", type=_positive_int, default=1000,
                       help="size of generated data sets (moons, spirals)")
    train.add_argument("--noise", type=float, default=0.1,
                       help="noise of generated data sets (default 0.1)")
    train.add_argument("--no-standardize", action="store_true",
                       help="use the features as they are (default: scale each to "
                       "zero mean, unit variance on the training split)")
    train.add_argument("--plot", metavar="FILE",
                       help="decision-boundary PNG (2-feature data, needs matplotlib)")
    train.add_argument("--save", metavar="FILE",
                       help="save the trained model to an .npz file (for "
                       "'fasttape predict')")
    train.add_argument("--quiet", action="store_true",
                       help="no per-epoch progress lines")

    predict = sub.add_parser("predict", help="predict with a model saved by train "
                             "--save", description="Load a model saved by 'fasttape "
                             "train --save' and predict the class of each row of a CSV "
                             "file: one label a line. A file with one more column than "
                             "the model has features is taken to end in a label "
                             "column, and the accuracy is reported too.")
    predict.add_argument("model", help="an .npz file written by 'fasttape train --save'")
    predict.add_argument("data", help="a CSV file of features (optionally a header "
                         "row and a last label column)")
    predict.add_argument("--output", metavar="FILE",
                         help="write the predictions to FILE instead of the standard "
                         "output")
    predict.add_argument("--proba", action="store_true",
                         help="print each class's probability as well")

    bench = sub.add_parser("bench", help="time the kernel against the pure twin, "
                           "NumPy, PyTorch and JAX", description="Time one gradient of "
                           "the summed classifier loss over a batch: the compiled "
                           "kernel, the pure-Python twin, a hand-written NumPy "
                           "backprop, and PyTorch / JAX where they are installed.")
    bench.add_argument("--batch", type=_positive_int, default=1000,
                       help="samples per gradient (default 1000)")
    bench.add_argument("--hidden", type=_positive_int, default=10,
                       help="hidden units of the 2-H-1 classifier (default 10)")
    bench.add_argument("--seconds", type=_positive_float, default=0.5,
                       help="time budget per row (default 0.5)")
    bench.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return parser


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _sizes(text):
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints like 32,16, "
                                         f"got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"layer sizes must be >= 1, got {text!r}")
    return sizes


def main(argv=None):
    """Run the command line on ``argv`` (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code: 0 on success (and for ``--help``), 2 for a usage
        error or unusable data (one line on stderr, no traceback), 130 when
        interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:           # --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 0
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    command = {"demo": cmd_demo, "train": cmd_train, "predict": cmd_predict,
               "bench": cmd_bench}[args.command]
    try:
        return command(args) or 0
    except (UsageError, ValueError, OSError, ImportError) as exc:
        # Data and file problems are the user's to fix: one line, no traceback.
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130


# ---------------------------------------------------------------- demo

def lecture_loss(w, x, y):
    return (w * x - y) ** 2 + w ** 2


def cmd_demo(args):
    import fasttape as ft
    from fasttape import datasets

    print("The lecture's example: L(w, x, y) = (w*x - y)**2 + w**2 at w=1, x=2, y=3")
    print(f"(backend: {ft.backend})\n")
    print("Wengert list, recorded by ft.trace:")
    tape = ft.trace(lecture_loss, 1.0, 2.0, 3.0)
    for line in str(tape).splitlines():
        print("    " + line)

    # The same computation eagerly, node by node, so each node's value and
    # adjoint dL/dnode can be shown after one backward sweep.
    with ft.Tape():
        w, x, y = ft.Var(1.0), ft.Var(2.0), ft.Var(3.0)
        l0 = w * x
        l1 = l0 - y
        l2 = l1 ** 2
        l3 = w ** 2
        l4 = l2 + l3
        l4.backward()
    rows = [("w", "input", w), ("x", "input", x), ("y", "input", y),
            ("l0", "w * x", l0), ("l1", "l0 - y", l1), ("l2", "l1 ** 2", l2),
            ("l3", "w ** 2", l3), ("l4", "l2 + l3", l4)]
    print("\nForward values and adjoints (eager ft.Var, one backward()):")
    print(f"    {'node':<5}{'expression':<12}{'value':>8}{'dL/dnode':>10}")
    for name, expr, v in rows:
        print(f"    {name:<5}{expr:<12}{v.value:>8g}{v.grad:>10g}")
    closed = 2 * x.value * (w.value * x.value - y.value) + 2 * w.value
    print(f"\nL = {l4.value:g}, dL/dw = {w.grad:g}, dL/dx = {x.grad:g}, "
          f"dL/dy = {y.grad:g}   (by hand: dL/dw = 2x(wx - y) + 2w = {closed:g})")
    print(f"replayed tape: tape(1, 2, 3) = {tape(1.0, 2.0, 3.0):g}, "
          f"tape.grad(..., wrt=(0, 1, 2)) = "
          f"{tuple(float(g) for g in tape.grad(1.0, 2.0, 3.0, wrt=(0, 1, 2)))}")

    print("\nThe lecture's classifier: 2 inputs, 10 tanh hidden units, 1 logit, "
          "on two moons (1000 points, noise 0.1)")
    X, y = datasets.make_moons(1000, noise=0.1, seed=args.seed)
    split = _split(len(y), 0.25, args.seed)
    clf = _classifier(hidden=(10,), activation="tanh", optimizer="adam", lr=None,
                      momentum=0.9, batch_size=32, seed=args.seed)
    _fit_with_progress(clf, X[split[0]], y[split[0]], args.epochs, quiet=False)
    print(f"test accuracy: {clf.score(X[split[1]], y[split[1]]):.3f} "
          f"on {len(split[1])} held-out points")
    if not args.no_plot:
        if _have_matplotlib():
            _plot_boundary(clf, X, y, args.plot, "fasttape: 2-10-1 tanh on two moons")
            print(f"decision boundary saved to {args.plot}")
        else:
            print("(matplotlib is not installed: no decision-boundary picture)")
    return 0


# ---------------------------------------------------------------- train

def cmd_train(args):
    from fasttape import datasets

    if not 0 < args.test_size < 1:
        raise UsageError(f"--test-size must be between 0 and 1, got {args.test_size}")
    if args.plot and not _have_matplotlib():
        raise UsageError("--plot needs matplotlib: pip install matplotlib")
    # Output paths are checked before training, not after it.
    if args.plot:
        _check_writable(args.plot, "--plot")
        _check_plot_format(args.plot)
    if args.save:
        _check_writable(args.save, "--save")
        args.save = _npz_path(args.save)
        _check_writable(args.save, "--save")
    X, y, name = _load(args.data, args, datasets)
    if args.plot and X.shape[1] != 2:
        raise UsageError(f"--plot needs 2-feature data; {name} has {X.shape[1]} features")
    _check_labels(y, name)
    train_idx, test_idx = _split(len(y), args.test_size, args.seed)
    if len(train_idx) < 2 or len(test_idx) < 1:
        raise UsageError(f"{name}: too few samples ({len(y)}) to split into train "
                         "and test sets")
    mean, std = np.zeros(X.shape[1]), np.ones(X.shape[1])
    if not args.no_standardize:
        mean, std = X[train_idx].mean(axis=0), X[train_idx].std(axis=0)
        std[std == 0] = 1.0             # constant features (e.g. blank pixels)
    Xs = (X - mean) / std

    classes = np.unique(y)
    print(f"{name}: {len(y)} samples, {X.shape[1]} features, {len(classes)} classes; "
          f"training on {len(train_idx)}, testing on {len(test_idx)}")
    clf = _classifier(args.hidden, args.activation, args.optimizer, args.lr,
                      args.momentum, args.batch_size, args.seed)
    sizes = (X.shape[1],) + tuple(args.hidden) + (1 if len(classes) == 2 else len(classes),)
    print(f"network {'-'.join(map(str, sizes))}, {args.activation}, {args.optimizer} "
          f"lr={clf.learning_rate_init:g}, batch {args.batch_size}, {args.epochs} epochs")
    _fit_with_progress(clf, Xs[train_idx], y[train_idx], args.epochs, args.quiet,
                       classes=classes)
    print(f"train accuracy: {clf.score(Xs[train_idx], y[train_idx]):.3f}")
    print(f"test accuracy:  {clf.score(Xs[test_idx], y[test_idx]):.3f}")
    if args.plot:
        _plot_boundary(_Standardized(clf, mean, std), X, y, args.plot,
                       f"fasttape: {'-'.join(map(str, sizes))} {args.activation} on {name}",
                       _feature_names(args.data, X.shape[1]))
        print(f"decision boundary saved to {args.plot}")
    if args.save:
        np.savez(args.save, params=clf.coef_flat_, sizes=np.array(sizes),
                 activation=np.array(args.activation), classes=classes,
                 mean=mean, std=std)
        print(f"model saved to {args.save} (use: {PROG} predict {args.save} DATA.csv)")
    return 0


def _check_labels(y, name):
    """A classifier's labels: refuse a continuous target before announcing
    anything about classes."""
    if y.dtype.kind == "f":
        raise UsageError(f"{name}: the labels (last column) are non-integer numbers, a "
                         f"continuous target ({len(np.unique(y))} distinct values); the "
                         "classifier needs class labels")
    if len(np.unique(y)) < 2:
        raise UsageError(f"{name}: need at least 2 classes, found {len(np.unique(y))}")


def _npz_path(path):
    # np.savez appends .npz to other names: check the file it will write.
    return path if path.endswith(".npz") else path + ".npz"


def _check_writable(path, option):
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"{option} {path!r} is a directory, not a file name")
    if not os.path.isdir(folder):
        raise UsageError(f"{option} {path!r}: the folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK) or (os.path.exists(path)
                                         and not os.access(path, os.W_OK)):
        raise UsageError(f"{option} {path!r}: not writable")


def _check_plot_format(path):
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.backend_bases import FigureCanvasBase

    ext = os.path.splitext(path)[1].lstrip(".").lower()
    formats = FigureCanvasBase.get_supported_filetypes()
    if ext not in formats:
        raise UsageError(f"--plot {path!r}: unknown picture format {ext or '(none)'!r}; "
                         f"use one of {', '.join(sorted(formats))}")


def _feature_names(data, n):
    """A CSV file's header names for its n features, else x1, x2, ..."""
    names = [f"x{i + 1}" for i in range(n)]
    if data in SHIPPED or not os.path.isfile(data):
        return names
    try:
        with open(data, newline="") as f:
            first = next((ln for ln in f if ln.strip()), "")
    except (OSError, UnicodeDecodeError):
        return names
    delimiter = next((d for d in ",\t;" if d in first), ",")
    cells = [c.strip() for c in first.rstrip("\r\n").split(delimiter)]
    header = len(cells) == n + 1 and not all(_is_number(c) for c in cells[:-1])
    return cells[:n] if header else names


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


# ---------------------------------------------------------------- predict

MODEL_KEYS = ("params", "sizes", "activation", "classes", "mean", "std")


def load_model(path):
    """A classifier saved by ``train --save``, rebuilt, with the scaling it was
    trained with.

    Returns
    -------
    (MLPClassifier, mean, std)
        ``clf.predict((X - mean) / std)`` classifies raw feature rows.

    Raises
    ------
    UsageError
        Not a readable model file, or one whose arrays do not fit together.
    """
    from fasttape.nn import MLP, MLPClassifier

    try:
        with np.load(path, allow_pickle=False) as f:
            saved = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError):
        raise UsageError(f"{path}: not a model saved by '{PROG} train --save' (not "
                         "a readable .npz file)") from None
    missing = [k for k in MODEL_KEYS if k not in saved]
    if missing:
        raise UsageError(f"{path}: not a model saved by '{PROG} train --save' "
                         f"(missing {', '.join(missing)})")
    try:
        sizes = tuple(int(s) for s in saved["sizes"].ravel())
        activation = str(saved["activation"])
        model = MLP(sizes, activation)
        params = np.asarray(saved["params"], dtype=np.float64).ravel()
        layers = model.layers(params)
        classes, mean, std = saved["classes"].ravel(), saved["mean"], saved["std"]
        n_out = 1 if len(classes) == 2 else len(classes)
        if sizes[-1] != n_out or mean.shape != (sizes[0],) or std.shape != (sizes[0],) \
                or not np.all(np.isfinite(params)) or not np.all(std > 0):
            raise ValueError("its arrays do not fit together")
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{path}: damaged model file: {' '.join(str(exc).split())}") \
            from None
    clf = MLPClassifier(hidden_layer_sizes=sizes[1:-1], activation=activation)
    clf.classes_, clf._multilabel = classes, False
    clf.coefs_ = [W.T.copy() for W, _ in layers]
    clf.intercepts_ = [b.copy() for _, b in layers]
    clf.n_features_in_, clf.n_layers_, clf.n_outputs_ = sizes[0], len(sizes), n_out
    clf.out_activation_ = "logistic" if n_out == 1 else "softmax"
    clf.model_ = model
    return clf, mean.astype(np.float64), std.astype(np.float64)


def cmd_predict(args):
    from fasttape import datasets

    clf, mean, std = load_model(args.model)
    if args.output:
        _check_writable(args.output, "--output")
    n = clf.n_features_in_
    if not os.path.isfile(args.data):
        raise UsageError(f"{args.data!r} is not an existing file")
    try:
        X, y = datasets.load_csv(args.data, label=False)
    except datasets.CSVError:
        X, y = datasets.load_csv(args.data)       # a column of non-numeric labels
    if y is None and X.shape[1] == n + 1:          # a numeric label column
        X, y = X[:, :n], X[:, n]
        if np.all(y == np.round(y)):
            y = y.astype(np.int64)
    if X.shape[1] != n:
        raise UsageError(f"{args.data}: {X.shape[1]} columns, but the model takes "
                         f"{n} features (and optionally a label column)")
    Xs = (X - mean) / std
    pred = clf.predict(Xs)
    lines = [str(p) for p in pred]
    if args.proba:
        proba = clf.predict_proba(Xs)
        lines = [f"{p}," + ",".join(f"{q:.6g}" for q in row) for p, row in zip(lines, proba)]
    text = "\n".join(lines) + "\n"
    summary = f"{len(pred)} predictions by {args.model}"
    if y is not None:
        same = np.array([str(a) == str(b) for a, b in zip(pred, y)])
        summary += f"; accuracy: {np.mean(same):.3f}"
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
        print(f"{summary}, written to {args.output}")
    else:
        sys.stdout.write(text)
        print(summary, file=sys.stderr)
    return 0


def _load(data, args, datasets):
    if data == "moons":
        return (*datasets.make_moons(args.samples, args.noise, args.seed), "moons")
    if data == "spirals":
        return (*datasets.make_spirals(args.samples, args.noise, args.seed), "spirals")
    if data == "digits":
        return (*datasets.load_digits(), "digits")
    if not os.path.exists(data):
        raise UsageError(f"{data!r} is neither a shipped data set "
                         f"({', '.join(SHIPPED)}) nor an existing file")
    if os.path.isdir(data):
        raise UsageError(f"{data!r} is a directory, not a CSV file")
    X, y = datasets.load_csv(data)
    return X, y, os.path.basename(data)


class _Standardized:
    """A fitted classifier seen through the training split's scaling, so the
    picture can be drawn in the data's own coordinates."""

    def __init__(self, clf, mean, std):
        self.clf, self.mean, self.std = clf, mean, std
        self.classes_ = clf.classes_

    def predict_proba(self, X):
        return self.clf.predict_proba((X - self.mean) / self.std)


# ---------------------------------------------------------------- shared

def _split(n, test_size, seed):
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(n * test_size)))
    return order[n_test:], order[:n_test]


def _classifier(hidden, activation, optimizer, lr, momentum, batch_size, seed):
    from fasttape.nn import MLPClassifier

    if lr is None:
        lr = 0.01 if optimizer == "adam" else 0.1
    return MLPClassifier(hidden_layer_sizes=tuple(hidden), activation=activation,
                         solver=optimizer, learning_rate_init=lr, momentum=momentum,
                         batch_size=batch_size, random_state=seed)


def _fit_with_progress(clf, X, y, epochs, quiet, classes=None):
    """One ``partial_fit`` per epoch, with a progress line after each."""
    classes = np.unique(y) if classes is None else classes
    width = len(str(epochs))
    start_all = time.perf_counter()
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        clf.partial_fit(X, y, classes=classes)
        seconds = time.perf_counter() - start
        if not quiet:
            print(f"epoch {epoch:>{width}}/{epochs}  loss {clf.loss_curve_[-1]:.4f}  "
                  f"train accuracy {clf.score(X, y):.3f}  "
                  f"{len(X) / max(seconds, 1e-9):,.0f} samples/s", flush=True)
    total = time.perf_counter() - start_all
    print(f"trained {epochs} epochs in {total:.2f} s "
          f"({epochs * len(X) / max(total, 1e-9):,.0f} samples/s)")


def _have_matplotlib():
    return _importable("matplotlib")


def _plot_boundary(clf, X, y, path, title, feature_names=("x1", "x2")):
    import matplotlib.pyplot as plt

    fig = _boundary_figure(clf, X, y, title, feature_names)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _boundary_figure(clf, X, y, title, feature_names):
    import matplotlib
    matplotlib.use("Agg")                  # files only, no display needed
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    pad = 0.1 * (X.max(axis=0) - X.min(axis=0)) + 1e-9
    lo, hi = X.min(axis=0) - pad, X.max(axis=0) + pad
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
    proba = clf.predict_proba(np.column_stack([gx.ravel(), gy.ravel()]))
    classes = list(clf.classes_)
    codes = np.array([classes.index(v) for v in y])
    fig, ax = plt.subplots(figsize=(6, 5))
    if proba.shape[1] == 2:
        p1 = proba[:, 1].reshape(gx.shape)
        ax.contourf(gx, gy, p1, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.6)
        ax.contour(gx, gy, p1, levels=[0.5], colors="k", linewidths=1.5)
        colours = [plt.get_cmap("RdBu_r")(0.0), plt.get_cmap("RdBu_r")(1.0)]
    else:
        # One colour per class, the same for its region and its points.
        colours = [plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")(k % 20)
                   for k in range(len(classes))]
        ax.contourf(gx, gy, proba.argmax(axis=1).reshape(gx.shape),
                    levels=np.arange(len(classes) + 1) - 0.5,
                    cmap=ListedColormap(colours), alpha=0.35)
    for k, label in enumerate(classes):
        mine = codes == k
        ax.scatter(X[mine, 0], X[mine, 1], color=colours[k], s=12, edgecolors="white",
                   linewidths=0.4, label=str(label))
    ax.legend(title="class", loc="best", fontsize="small", framealpha=0.8)
    ax.set_xlabel(feature_names[0])
    ax.set_ylabel(feature_names[1])
    ax.set_title(title)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- bench

def _bench_data(batch, hidden):
    from fasttape import datasets
    from fasttape.nn import MLP

    X, y = datasets.make_moons(batch, noise=0.1, seed=0)
    model = MLP((2, hidden, 1), "tanh")
    return model, model.init(0), X, y.astype(np.float64)


def _time(fn, seconds):
    """Median seconds per call of ``fn`` over a time budget (after a warm-up)."""
    result = fn()
    times = []
    deadline = time.perf_counter() + seconds
    while not times or (time.perf_counter() < deadline and len(times) < 1000):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def _bench_fasttape(batch, hidden, seconds):
    import fasttape as ft
    from fasttape.nn import binary_cross_entropy_with_logits

    model, params, X, y = _bench_data(batch, hidden)

    def per_sample_loss(p, x, t):
        return binary_cross_entropy_with_logits(model(p, x)[0], t)

    step = ft.value_and_grad(per_sample_loss, argnums=0, in_axes=(None, 0, 0))
    per_call, (_, grad) = _time(lambda: step(params, X, y), seconds)
    return per_call, np.asarray(grad, dtype=np.float64)


def _bench_numpy(batch, hidden, seconds):
    """Hand-written forward and backward of the same loss, summed over the batch."""
    model, params, X, y = _bench_data(batch, hidden)
    (W1, b1), (W2, b2) = model.layers(params)

    def value_and_grad():
        h = np.tanh(X @ W1.T + b1)
        z = h @ W2[0] + b2[0]
        loss = np.logaddexp(0.0, z) - z * y
        dz = 0.5 * (1.0 + np.tanh(0.5 * z)) - y            # sigmoid(z) - y
        dh = np.outer(dz, W2[0]) * (1.0 - h * h)
        return loss, np.concatenate([(dh.T @ X).ravel(), dh.sum(axis=0),
                                     dz @ h, [dz.sum()]])

    per_call, (_, grad) = _time(value_and_grad, seconds)
    return per_call, grad


def _bench_torch(batch, hidden, seconds):
    import torch

    model, params, X, y = _bench_data(batch, hidden)
    p = torch.tensor(params, dtype=torch.float64, requires_grad=True)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    n1 = hidden * 2

    def value_and_grad():
        p.grad = None
        W1, b1 = p[:n1].reshape(hidden, 2), p[n1:n1 + hidden]
        W2, b2 = p[n1 + hidden:n1 + 2 * hidden], p[-1]
        z = torch.tanh(Xt @ W1.T + b1) @ W2 + b2
        torch.nn.functional.binary_cross_entropy_with_logits(z, yt, reduction="sum").backward()
        return p.grad

    per_call, grad = _time(value_and_grad, seconds)
    return per_call, grad.detach().numpy().copy()


def _bench_jax(batch, hidden, seconds):
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)

    model, params, X, y = _bench_data(batch, hidden)
    n1 = hidden * 2

    def loss(p):
        W1, b1 = p[:n1].reshape(hidden, 2), p[n1:n1 + hidden]
        W2, b2 = p[n1 + hidden:n1 + 2 * hidden], p[-1]
        z = jnp.tanh(X @ W1.T + b1) @ W2 + b2
        return jnp.sum(jnp.logaddexp(0.0, z) - z * y)

    step = jax.jit(jax.value_and_grad(loss))
    per_call, (_, grad) = _time(lambda: jax.block_until_ready(step(params)), seconds)
    return per_call, np.asarray(grad)


def _bench_other_backend(backend, args):
    """Run the fasttape row in a fresh interpreter with FASTTAPE_BACKEND set."""
    env = dict(os.environ, FASTTAPE_BACKEND=backend)
    cmd = [sys.executable, "-m", "fasttape", "bench", "--worker", "--batch",
           str(args.batch), "--hidden", str(args.hidden), "--seconds", str(args.seconds)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines() or ["failed"]
        raise RuntimeError(lines[-1])
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["seconds"], np.array(result["grad"])


def cmd_bench(args):
    import fasttape as ft

    if args.worker:                         # the subprocess side of a twin row
        seconds, grad = _bench_fasttape(args.batch, args.hidden, args.seconds)
        print(json.dumps({"seconds": seconds, "grad": grad.tolist()}))
        return 0

    print(f"gradient of the summed BCE loss of a 2-{args.hidden}-1 tanh classifier "
          f"over {args.batch} two-moons samples (median of repeats)\n")
    rows = []

    def fasttape_row(backend):
        if backend == ft.backend:
            return lambda: _bench_fasttape(args.batch, args.hidden, args.seconds)
        return lambda: _bench_other_backend(backend, args)

    candidates = [("fasttape, compiled kernel", fasttape_row("cython")),
                  ("fasttape, pure-Python twin", fasttape_row("python")),
                  ("NumPy, hand-written backprop",
                   lambda: _bench_numpy(args.batch, args.hidden, args.seconds))]
    for name, module, fn in (("PyTorch (CPU, float64)", "torch", _bench_torch),
                             ("JAX (jit, float64)", "jax", _bench_jax)):
        if _importable(module):
            candidates.append((name, lambda fn=fn: fn(args.batch, args.hidden,
                                                      args.seconds)))
        else:
            rows.append((name, None, "not installed"))
    reference = None
    measured = []
    for name, run in candidates:
        try:
            seconds, grad = run()
        except Exception as exc:           # one unavailable row must not end the table
            measured.append((name, None, f"unavailable: {' '.join(str(exc).split())}"))
            continue
        if "NumPy" in name:
            reference = grad
        measured.append((name, seconds, grad))

    print(f"{'':<32}{'per gradient':>14}{'samples/s':>14}{'max |grad - NumPy|':>20}")
    for name, seconds, info in measured + rows:
        if seconds is None:
            print(f"{name:<32}{info:>14}")
            continue
        diff = (f"{np.max(np.abs(info - reference)):.1e}" if reference is not None
                and np.shape(info) == np.shape(reference) else "-")
        print(f"{name:<32}{_fmt_seconds(seconds):>14}{args.batch / seconds:>14,.0f}"
              f"{diff:>20}")
    return 0


def _importable(module):
    import importlib.util
    return importlib.util.find_spec(module) is not None


def _fmt_seconds(s):
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s * 1e9:.3g} ns"
