"""docs/api.md covers the public API, every public name has a real
docstring, and the reference's examples run (and assert their results)."""

import inspect
import pathlib
import re

import numpy as np
import pytest

import fasttape as ft

API_MD = pathlib.Path(__file__).resolve().parent.parent / "docs" / "api.md"
TEXT = API_MD.read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```python\n(.*?)^```", TEXT, flags=re.S | re.M)


def _module_names(module):
    """__all__, plus the classes defined in the module (its errors)."""
    names = set(module.__all__)
    names |= {name for name, obj in vars(module).items()
              if inspect.isclass(obj) and obj.__module__ == module.__name__
              and not name.startswith("_")}
    return sorted(names)


def _public_methods(cls):
    return sorted(name for name in dir(cls) if not name.startswith("_"))


def _is_real_docstring(doc):
    """A Parameters or Returns section, or at least a few lines of text."""
    doc = inspect.cleandoc(doc or "")
    if re.search(r"^(Parameters|Returns)\n-+$", doc, flags=re.M):
        return True
    lines = [line for line in doc.splitlines() if line.strip()]
    return len(lines) >= 2 and len(doc) >= 80


TOP = [name for name in ft.__all__ if name != "backend"]  # (backend is a str)
NN = _module_names(ft.nn)
DATASETS = _module_names(ft.datasets)


def _mentioned(pattern):
    return re.search(pattern, TEXT) is not None


@pytest.mark.parametrize("name", ft.__all__)
def test_every_top_level_name_is_in_api_md(name):
    assert _mentioned(rf"\bft\.{re.escape(name)}\b"), f"ft.{name} missing from docs/api.md"


@pytest.mark.parametrize("name", TOP)
def test_every_top_level_name_has_a_real_docstring(name):
    assert _is_real_docstring(getattr(ft, name).__doc__), f"ft.{name}"


@pytest.mark.parametrize("module, name", [(ft.nn, n) for n in NN] +
                         [(ft.datasets, n) for n in DATASETS])
def test_nn_and_datasets_names(module, name):
    short = module.__name__.split(".")[-1]
    assert _mentioned(rf"\bft\.{short}\.{re.escape(name)}\b"), f"ft.{short}.{name}"
    assert _is_real_docstring(getattr(module, name).__doc__), f"ft.{short}.{name}"


@pytest.mark.parametrize("cls, name", [(cls, n) for cls in (ft.nn.MLP, ft.nn.SGD, ft.nn.Adam,
                                                            ft.nn.MLPClassifier,
                                                            ft.nn.MLPRegressor)
                                       for n in _public_methods(cls)
                                       if callable(getattr(cls, n))])
def test_nn_methods_have_docstrings(cls, name):
    doc = getattr(cls, name).__doc__
    assert doc and len(doc.strip()) >= 30, f"{cls.__name__}.{name}"
    assert _mentioned(rf"\b{re.escape(name)}\("), f"{cls.__name__}.{name} not in docs/api.md"


@pytest.mark.parametrize("name", _public_methods(ft.Tape))
def test_tape_methods(name):
    assert _mentioned(rf"\btape\.{re.escape(name)}\b"), f"tape.{name} missing"
    assert _is_real_docstring(getattr(ft.Tape, name).__doc__), f"Tape.{name}"


@pytest.mark.parametrize("name", _public_methods(ft.Var))
def test_var_methods(name):
    assert _mentioned(rf"\bx\.{re.escape(name)}\b"), f"x.{name} missing"
    assert _is_real_docstring(getattr(ft.Var, name).__doc__), f"Var.{name}"


def test_help_on_value_and_grad_is_enough_to_use_it():
    doc = ft.value_and_grad.__doc__
    for word in ("argnums", "in_axes", "has_aux", "Returns", "Examples"):
        assert word in doc or word in ft.grad.__doc__, word


def test_generated_docstrings_show_the_value_they_claim():
    """A generated example prints the function's value at its argument."""
    for name in ft.__all__:
        doc = getattr(ft, name).__doc__ or ""
        m = re.search(r">>> ft\.(\w+)\(([-\d., ]+)\)\n\s+(\S+)\n", doc)
        if m and m.group(1) == name:
            args = [float(a) for a in m.group(2).split(",")]
            assert getattr(ft, name)(*args) == float(m.group(3)), name


def test_api_md_has_examples():
    assert len(BLOCKS) >= 20


@pytest.mark.parametrize("k", range(len(BLOCKS)))
def test_api_md_example_runs(k, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # (the command-line example may write files)
    if "from scipy" in BLOCKS[k]:
        pytest.importorskip("scipy")  # (an optional extra)
    code = compile(BLOCKS[k], f"docs/api.md example {k}", "exec")
    exec(code, {"np": np, "ft": ft, "__name__": "__docs__"})
