"""The command line, end to end in subprocesses: ``python -m fasttape ...``."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fasttape as ft
from fasttape import cli, datasets

ROOT = Path(ft.__file__).resolve().parent.parent


def run(*args, cwd=None, timeout=120):
    """Run ``python -m fasttape ARGS`` with the same fasttape and backend."""
    paths = [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths), MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "fasttape", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=timeout)


def have(module):
    import importlib.util
    return importlib.util.find_spec(module) is not None


def accuracy(stdout, which="test"):
    found = re.findall(rf"{which} accuracy:\s*([0-9.]+)", stdout)
    assert found, stdout
    return float(found[-1])


# ---------------------------------------------------------------- help

@pytest.mark.parametrize("args", [["--help"], ["demo", "--help"], ["train", "--help"],
                                  ["bench", "--help"]])
def test_help_exits_zero(args):
    out = run(*args)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: fasttape") and out.stderr == ""


def test_main_returns_exit_codes_in_process(capsys):
    assert cli.main(["--help"]) == 0
    assert cli.main([]) == 2                            # no subcommand
    assert cli.main(["train", "--epochs", "0", "moons"]) == 2
    err = capsys.readouterr().err
    assert "--epochs" in err and "Traceback" not in err


# ---------------------------------------------------------------- demo

def test_demo_end_to_end(tmp_path):
    out = run("demo", "--plot", "boundary.png", cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    listing = text.split("Wengert list, recorded by ft.trace:\n", 1)[1]
    assert listing.splitlines()[0].strip() == "l0 = w * x"
    # the listing is the tape's own text
    traced = str(ft.trace(cli.lecture_loss, 1.0, 2.0, 3.0))
    assert all(line in text for line in traced.splitlines())
    # L and dL/dw by the lecture's closed forms
    w, x, y = 1.0, 2.0, 3.0
    L = (w * x - y) ** 2 + w ** 2
    dw = 2 * x * (w * x - y) + 2 * w
    assert f"L = {L:g}, dL/dw = {dw:g}" in text
    # one progress line per epoch, with loss, accuracy and speed
    epochs = re.findall(r"epoch\s+(\d+)/(\d+)\s+loss ([0-9.]+)\s+train accuracy "
                        r"([0-9.]+)\s+([0-9,]+) samples/s", text)
    assert len(epochs) == int(epochs[0][1]) and int(epochs[-1][0]) == len(epochs)
    assert float(epochs[-1][2]) < float(epochs[0][2])
    assert accuracy(text) >= 0.95
    png = tmp_path / "boundary.png"
    if have("matplotlib"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "boundary.png" in text
    else:
        assert not png.exists() and "matplotlib is not installed" in text


# ---------------------------------------------------------------- train

def _numpy_predict(saved, X):
    """Predictions from an --save file, by a hand-written forward pass."""
    sizes, params = saved["sizes"], saved["params"]
    h, k = (X - saved["mean"]) / saved["std"], 0
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = params[k:k + n_in * n_out].reshape(n_out, n_in)
        b = params[k + n_in * n_out:k + n_in * n_out + n_out]
        k += n_in * n_out + n_out
        h = h @ W.T + b
        if i < len(sizes) - 2:
            h = np.tanh(h)
    assert k == len(params)
    index = (h[:, 0] > 0).astype(int) if sizes[-1] == 1 else h.argmax(axis=1)
    return saved["classes"][index]


def test_train_on_a_csv_with_header_and_string_labels(tmp_path):
    X, y = datasets.make_moons(400, noise=0.1, seed=11)
    X = X * [100.0, 0.01] + [5.0, -3.0]      # wild scales: standardization matters
    names = np.array(["left", "right"])[y]
    lines = ["feature_a,feature_b,side"] + [f"{a!r},{b!r},{c}" for (a, b), c in
                                            zip(X.tolist(), names)]
    (tmp_path / "moons.csv").write_text("\n".join(lines) + "\n")
    args = ["train", "moons.csv", "--hidden", "16,8", "--epochs", "40",
            "--save", "model.npz", "--quiet"]
    if have("matplotlib"):
        args += ["--plot", "moons.png"]
    out = run(*args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "moons.csv: 400 samples, 2 features, 2 classes" in out.stdout
    assert "network 2-16-8-1" in out.stdout
    assert accuracy(out.stdout) >= 0.9
    saved = np.load(tmp_path / "model.npz")
    assert saved["sizes"].tolist() == [2, 16, 8, 1]
    assert saved["classes"].tolist() == ["left", "right"]
    # the saved parameters classify the whole file as well as reported
    overall = np.mean(_numpy_predict(saved, X) == names)
    train_acc, test_acc = accuracy(out.stdout, "train"), accuracy(out.stdout)
    assert overall == pytest.approx(0.75 * train_acc + 0.25 * test_acc, abs=2e-3)
    if have("matplotlib"):
        assert (tmp_path / "moons.png").read_bytes()[:4] == b"\x89PNG"


def test_train_shipped_moons_with_sgd():
    out = run("train", "moons", "--samples", "400", "--hidden", "10",
              "--optimizer", "sgd", "--epochs", "40", "--quiet")
    assert out.returncode == 0, out.stderr
    assert "moons: 400 samples, 2 features, 2 classes" in out.stdout
    assert "sgd lr=0.1" in out.stdout
    assert accuracy(out.stdout) >= 0.9


def test_train_multiclass_csv_without_header(tmp_path):
    # three Gaussian blobs in 4-d, labels 0..2, no header row
    rng = np.random.default_rng(2)
    y = np.arange(300) % 3
    X = rng.normal(size=(300, 4)) + 3.0 * np.eye(4)[y]
    text = "".join(",".join(repr(float(v)) for v in row) + f",{k}\n"
                   for row, k in zip(X, y))
    (tmp_path / "blobs.csv").write_text(text)
    out = run("train", "blobs.csv", "--hidden", "8", "--epochs", "15", "--quiet",
              cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "blobs.csv: 300 samples, 4 features, 3 classes" in out.stdout
    assert "network 4-8-3" in out.stdout
    # the blobs' centres are 3*sqrt(2) apart: nearly all separable
    assert accuracy(out.stdout) >= 0.85


BAD_CSVS = {
    "ragged.csv": "a,b,label\n1,2,0\n3,4\n",
    "words.csv": "a,b,label\n1,2,0\n3,four,1\n",
    "empty.csv": "",
    "header_only.csv": "a,b,label\n",
    "one_class.csv": "1,2,x\n3,4,x\n5,6,x\n",
    "one_column.csv": "1\n2\n3\n",
}


@pytest.mark.parametrize("name", sorted(BAD_CSVS))
def test_bad_csv_is_one_line_and_exit_2(tmp_path, name):
    (tmp_path / name).write_text(BAD_CSVS[name])
    out = run("train", name, "--epochs", "1", cwd=tmp_path)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fasttape train: error:"), out.stderr
    assert name in lines[0]


@pytest.mark.parametrize("args", [
    ["no_such_file.csv"],
    ["."],                                       # a directory
    ["binary.csv"],
    ["three.csv", "--plot", "x.png"],            # --plot needs 2 features
    ["moons", "--hidden", "a,b"],
    ["moons", "--test-size", "1.5"],
])
def test_bad_input_exits_2_without_traceback(tmp_path, args):
    (tmp_path / "binary.csv").write_bytes(bytes(range(256)))
    (tmp_path / "three.csv").write_text("1,2,3,0\n4,5,6,1\n7,8,9,0\n1,1,1,1\n")
    out = run("train", *args, "--epochs", "1", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("fasttape train: error:")


# ---------------------------------------------------------------- bench

def test_bench_table():
    out = run("bench", "--batch", "64", "--seconds", "0.05", timeout=120)
    assert out.returncode == 0, out.stderr
    rows = {line[:32].strip(): line[32:].split() for line in out.stdout.splitlines()
            if line.startswith(("fasttape", "NumPy", "PyTorch", "JAX"))}
    assert "NumPy, hand-written backprop" in rows
    mine = "fasttape, compiled kernel" if ft.backend == "cython" else \
        "fasttape, pure-Python twin"
    # the backend in use must have run, and agree with the NumPy backprop
    assert rows[mine][-1] != "-" and float(rows[mine][-1]) < 1e-10
    for name, module in (("PyTorch (CPU, float64)", "torch"), ("JAX (jit, float64)", "jax")):
        assert (rows[name][0] == "not") != have(module)


# ---------------------------------------------------------------- version, checks first

def test_version():
    out = run("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"fasttape {ft.__version__}"


@pytest.mark.parametrize("option", [["--save", "missing_dir/model.npz"],
                                    ["--save", "."],
                                    ["--plot", "missing_dir/boundary.png"],
                                    ["--plot", "boundary.unknownformat"]])
def test_output_paths_are_checked_before_training(tmp_path, option):
    if option[0] == "--plot" and not have("matplotlib"):
        pytest.skip("--plot needs matplotlib")
    out = run("train", "moons", "--epochs", "1", *option, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert option[1] in out.stderr
    assert out.stdout == ""                       # nothing loaded, nothing trained


def test_continuous_target_is_refused_before_any_class_count(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(299, 2))
    (tmp_path / "reg.csv").write_text("".join(f"{a},{b},{a * b + 0.5}\n" for a, b in X))
    out = run("train", "reg.csv", "--epochs", "1", cwd=tmp_path)
    assert out.returncode == 2 and "continuous" in out.stderr
    assert "classes" not in out.stdout and out.stdout == ""


# ---------------------------------------------------------------- predict

def test_predict_loads_the_saved_model(tmp_path):
    X, y = datasets.make_moons(200, noise=0.1, seed=3)
    X = X * [10.0, 0.1]
    names = np.array(["left", "right"])[y]
    (tmp_path / "train.csv").write_text("a,b,side\n" + "".join(
        f"{p!r},{q!r},{c}\n" for (p, q), c in zip(X.tolist(), names)))
    (tmp_path / "features.csv").write_text("".join(f"{p!r},{q!r}\n" for p, q in X.tolist()))
    out = run("train", "train.csv", "--hidden", "8", "--epochs", "20", "--quiet",
              "--save", "model", cwd=tmp_path)        # .npz is appended
    assert out.returncode == 0, out.stderr
    saved = np.load(tmp_path / "model.npz")
    expected = _numpy_predict(saved, X)               # a hand-written forward pass
    # features only: one label a line on stdout, the summary on stderr
    out = run("predict", "model.npz", "features.csv", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == expected.tolist()
    assert "200 predictions" in out.stderr
    # with the label column: the accuracy too; to a file with --output
    out = run("predict", "model.npz", "train.csv", "--output", "pred.txt", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "pred.txt").read_text().split() == expected.tolist()
    assert accuracy(out.stdout, "") == pytest.approx(np.mean(expected == names), abs=1e-3)
    out = run("predict", "model.npz", "features.csv", "--proba", cwd=tmp_path)
    rows = [line.split(",") for line in out.stdout.split()]
    assert [r[0] for r in rows] == expected.tolist()
    p = np.array([[float(v) for v in r[1:]] for r in rows])
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(np.array(["left", "right"])[p.argmax(axis=1)], expected)


@pytest.mark.parametrize("model, data", [("train.csv", "features.csv"),     # not a model
                                         ("broken.npz", "features.csv"),
                                         ("model.npz", "three.csv"),       # wrong width
                                         ("model.npz", "missing.csv")])
def test_predict_bad_input_exits_2(tmp_path, model, data):
    X, y = datasets.make_moons(60, noise=0.1, seed=0)
    (tmp_path / "train.csv").write_text("".join(f"{p},{q},{c}\n" for (p, q), c in zip(X, y)))
    (tmp_path / "features.csv").write_text("".join(f"{p},{q}\n" for p, q in X))
    (tmp_path / "three.csv").write_text("1,2,3,4\n5,6,7,8\n")
    np.savez(tmp_path / "model.npz", params=np.zeros(41), sizes=np.array([2, 10, 1]),
             activation=np.array("tanh"), classes=np.array([0, 1]), mean=np.zeros(2),
             std=np.ones(2))
    np.savez(tmp_path / "broken.npz", params=np.zeros(5), sizes=np.array([2, 10, 1]),
             activation=np.array("tanh"), classes=np.array([0, 1]), mean=np.zeros(2),
             std=np.ones(2))
    out = run("predict", model, data, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("fasttape predict: error:")


def test_multiclass_picture_has_legend_axis_names_and_matching_colours():
    pytest.importorskip("matplotlib")
    from matplotlib.colors import to_rgb
    X, y = datasets.make_spirals(150, 0.1, 0, n_classes=3)
    labels = np.array(["ant", "bee", "cat"])[y]
    clf = ft.nn.MLPClassifier(hidden_layer_sizes=(16,), max_iter=5, random_state=0)
    clf.fit(X, labels)
    fig = cli._boundary_figure(clf, X, labels, "t", ("width", "height"))
    ax = fig.axes[0]
    assert ax.get_xlabel() == "width" and ax.get_ylabel() == "height"
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["ant", "bee", "cat"]
    regions = ax.collections[0]                   # the contourf: one face per class
    region_rgb = [to_rgb(c) for c in regions.get_facecolor()]
    points = ax.collections[1:]                   # one scatter per class, in order
    assert len(points) == 3 and len(region_rgb) == 3
    for k, pts in enumerate(points):
        np.testing.assert_allclose(to_rgb(pts.get_facecolor()[0]), region_rgb[k])
        assert np.all(labels[np.isin(X[:, 0], pts.get_offsets()[:, 0])] == ["ant", "bee",
                                                                            "cat"][k])
    import matplotlib.pyplot as plt
    plt.close(fig)
