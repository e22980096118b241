"""fingerprint_source: one module, imports external (SPEC "Fingerprint")."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from modver.errors import EntryNotFoundError, SourceError
from modver.fingerprint import definition_source, fingerprint_source

BASE = '''\
import numpy as np
from sklearn.linear_model import LogisticRegression

SCALE = 2.0


def normalize(x, eps=1e-8):
    """Scale x."""
    return (x - x.mean()) / (x.std() + eps) * SCALE


class Model(LogisticRegression):
    def fit(self, x, y):
        return super().fit(normalize(x), y)

    def predict(self, x):
        return super().predict(normalize(x))


def unrelated():
    return 42


def train(data, C=1.0):
    """Train a model."""
    model = Model(C=C)
    return model.fit(data["x"], data["y"])


if __name__ == "__main__":
    train({})
'''


def fp(source, entry="train", **kw):
    return fingerprint_source(textwrap.dedent(source), entry, **kw)


BASE_FP = fp(BASE)

SAME = {
    "comments and blank lines": BASE.replace("SCALE = 2.0\n", "# a comment\n\n\nSCALE = 2.0  # two\n"),
    "whitespace": BASE.replace("(x - x.mean())", "( x-x.mean() )"),
    "black rewrap": BASE.replace("def normalize(x, eps=1e-8):", "def normalize(\n    x,\n    eps=1e-8,\n):"),
    "quotes": BASE.replace('data["x"]', "data['x']"),
    "redundant parens": BASE.replace("return model.fit", "return (model.fit").replace('data["y"])\n', 'data["y"]))\n'),
    "trailing comma": BASE.replace("model = Model(C=C)", "model = Model(C=C,)"),
    "docstrings": BASE.replace('"""Train a model."""', '"""Another text."""').replace('    """Scale x."""\n', ""),
    "order of definitions": BASE.replace("def unrelated():\n    return 42\n", "").replace(
        "SCALE = 2.0\n", "SCALE = 2.0\n\n\ndef unrelated():\n    return 42\n"
    ),
    "unreached edit": BASE.replace("return 42", "return 43"),
    "main block of the module": BASE.replace("    train({})", "    train({'a': 1})"),
    "line continuation": BASE.replace("return (x - x.mean())", "return (x - \\\n x.mean())"),
}

CHANGED = {
    "signature default": BASE.replace("def train(data, C=1.0)", "def train(data, C=2.0)"),
    "signature param": BASE.replace("def train(data, C=1.0)", "def train(data, C=1.0, *, k=0)"),
    "body": BASE.replace("model = Model(C=C)", "model = Model(C=C * 2)"),
    "helper body": BASE.replace("(x.std() + eps)", "(x.std() - eps)"),
    "helper default": BASE.replace("eps=1e-8", "eps=1e-9"),
    "constant": BASE.replace("SCALE = 2.0", "SCALE = 3.0"),
    "class method": BASE.replace("super().predict(normalize(x))", "super().predict(x)"),
    "class bases": BASE.replace("class Model(LogisticRegression)", "class Model(object)"),
    "third-party import": BASE.replace(
        "from sklearn.linear_model import LogisticRegression",
        "from sklearn.svm import LinearSVC as LogisticRegression",
    ),
    "decorator": BASE.replace("def train(", "@staticmethod\ndef train("),
    "import-time statement": BASE.replace("SCALE = 2.0\n", "SCALE = 2.0\nnp.random.seed(0)\n"),
    "int vs float constant": BASE.replace("SCALE = 2.0", "SCALE = 2"),
    "string content": BASE.replace('data["x"]', 'data["X"]'),
}


@pytest.mark.parametrize("name", sorted(SAME))
def test_unchanged_by(name):
    assert fp(SAME[name]) == BASE_FP, name


@pytest.mark.parametrize("name", sorted(CHANGED))
def test_changed_by(name):
    assert fp(CHANGED[name]) != BASE_FP, name


def test_future_import_is_always_included():
    src = "from __future__ import annotations\ndef f(x: int) -> int:\n    return x\n"
    assert fp(src, "f") != fp(src.split("\n", 1)[1], "f")


def test_seed_value_matters():
    a = BASE.replace("SCALE = 2.0\n", "SCALE = 2.0\nnp.random.seed(0)\n")
    b = BASE.replace("SCALE = 2.0\n", "SCALE = 2.0\nnp.random.seed(1)\n")
    assert fp(a) != fp(b)


def test_whole_module_includes_main_block_and_everything():
    whole = fp(BASE, None)
    assert whole != BASE_FP
    assert fp(BASE.replace("    train({})", "    train({'a': 1})"), None) != whole
    assert fp(BASE.replace("return 42", "return 43"), None) != whole
    assert fp(SAME["order of definitions"], None) == whole
    assert fp(SAME["comments and blank lines"], None) == whole


def test_docstrings_option():
    changed = BASE.replace('"""Train a model."""', '"""Another text."""')
    assert fp(changed, docstrings=True) != fp(BASE, docstrings=True)
    assert fp(changed) == fp(BASE)


def test_class_and_method_entries():
    model = fp(BASE, "Model")
    assert fp(BASE, "Model.fit") != model  # the entry method is part of the identity
    assert fp(BASE, "Model.fit") != fp(BASE, "Model.predict")
    assert fp(BASE.replace("return 42", "return 0"), "Model.fit") == fp(BASE, "Model.fit")
    assert fp(CHANGED["class method"], "Model.fit") != fp(BASE, "Model.fit")


def test_mutual_recursion_and_self_recursion():
    src = """
    def even(n):
        return n == 0 or odd(n - 1)
    def odd(n):
        return n != 0 and even(n - 1)
    def fact(n):
        return 1 if n < 2 else n * fact(n - 1)
    """
    assert fp(src, "even") != fp(src.replace("n != 0", "n > 0"), "fact")
    assert fp(src, "even") != fp(src.replace("n != 0", "n > 0"), "even")
    assert fp(src, "fact") == fp(src.replace("n != 0", "n > 0"), "fact")


def test_local_names_are_not_references():
    src = """
    x = 1
    def f(x):
        y = [x for x in range(3)]
        return lambda x: x + len(y)
    """
    assert fp(src, "f") == fp(src.replace("x = 1", "x = 2"), "f")
    src2 = """
    x = 1
    def f():
        global x
        x += 1
    """
    assert fp(src2, "f") != fp(src2.replace("x = 1", "x = 2"), "f")


def test_nested_function_free_names():
    src = """
    K = 1
    def outer(a):
        def inner(b):
            return a + b + K
        return inner
    """
    assert fp(src, "outer") != fp(src.replace("K = 1", "K = 2"), "outer")


def test_reached_through_default_decorator_annotation():
    src = """
    import functools
    D = 3
    def deco(f):
        return f
    class T: pass
    @deco
    def f(a: T, b=D) -> None:
        return a
    """
    base = fp(src, "f")
    assert fp(src.replace("D = 3", "D = 4"), "f") != base
    assert fp(src.replace("return f", "return None"), "f") != base
    assert fp(src.replace("class T: pass", "class T: x = 1"), "f") != base


def test_conditional_definitions_are_included():
    src = """
    import sys
    if sys.platform == "win32":
        def helper(): return 1
    else:
        def helper(): return 2
    def f():
        return helper()
    """
    assert fp(src, "f") != fp(src.replace("return 2", "return 3"), "f")


def test_deterministic_across_processes():
    code = "from modver.fingerprint import fingerprint_source; import sys; print(fingerprint_source(sys.stdin.read(), 'train'))"
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            input=BASE,
            capture_output=True,
            text=True,
            env={"PYTHONHASHSEED": seed},
            check=True,
        ).stdout.strip()
        for seed in ("0", "7", "4242")
    }
    assert outs == {BASE_FP}


def test_syntax_error_message():
    with pytest.raises(SourceError) as info:
        fingerprint_source("def f(:\n    pass\n")
    message = str(info.value)
    assert message.startswith("<source>:1:")
    assert "def f(:" in message and "^" in message


def test_null_bytes():
    with pytest.raises(SourceError):
        fingerprint_source("x = 1\0\n")


def test_missing_entry_lists_callables():
    with pytest.raises(EntryNotFoundError) as info:
        fingerprint_source(BASE, "nope")
    assert "normalize" in str(info.value) and "Model.fit" in str(info.value)
    with pytest.raises(EntryNotFoundError):
        fingerprint_source(BASE, "Model.nope")


def test_deep_nesting_does_not_crash():
    long_sum = "x = " + " + ".join(["1"] * 20000) + "\n"
    if sys.version_info < (3, 12):  # the recursion limit governs the parser: modver raises it
        first = fingerprint_source(long_sum)
        assert first == fingerprint_source(long_sum.replace(" + ", "+"))
        assert first != fingerprint_source(long_sum.replace("1", "2", 2))
    else:  # 3.12+ has a fixed C limit: CPython itself cannot compile this module, so: a clear error
        with pytest.raises(SourceError, match="cannot parse"):
            fingerprint_source(long_sum)
    nested = "def f():\n" + "".join("    " * (i + 1) + "if x:\n" for i in range(90)) + "    " * 91 + "pass\n"
    fingerprint_source(nested)


def test_definition_source():
    src = "import os\n\n\n# helper comment\n@deco\ndef f(x):\n    return x  # keep\n\n\nclass C:\n    def m(self):\n        return 1\n\nY = 2\n"
    assert definition_source(src, "f") == "# helper comment\n@deco\ndef f(x):\n    return x  # keep\n"
    assert definition_source(src, "C.m").strip() == "def m(self):\n    return 1"
    assert definition_source(src, "Y") == "Y = 2\n"
    with pytest.raises(EntryNotFoundError):
        definition_source(src, "nope")
    with pytest.raises(SourceError):
        definition_source("def (:", "f")


def test_importing_fingerprint_does_not_import_libcst():
    code = (
        "import sys, modver.fingerprint;"
        "from modver.fingerprint import fingerprint_source; fingerprint_source('x = 1');"
        "assert 'libcst' not in sys.modules, 'libcst imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_dynamic_fallbacks_reported_in_source_mode():
    src = """
    def helper(): return 1
    def other(): return 2
    def f(name):
        return eval(name)
    """
    assert fp(src, "f") != fp(src.replace("return 2", "return 3"), "f")  # whole module


def test_statements_that_do_nothing_do_not_count():
    from modver import fingerprint_source

    variants = [
        "class W(Warning):\n    'doc'\n",
        "class W(Warning):\n    'doc'\n    pass\n",
        "class W(Warning):\n    pass\n",
        "class W(Warning):\n    ...\n",
    ]
    assert len({fingerprint_source(v, "W") for v in variants}) == 1
    assert fingerprint_source("def f():\n    pass\n", "f") == fingerprint_source("def f():\n    ...\n", "f")
    assert fingerprint_source("def f():\n    pass\n", "f") != fingerprint_source("def f():\n    return None\n", "f")
    # with docstrings kept, the docstring still counts, the pass still does not
    with_doc = [fingerprint_source(v, "W", docstrings=True) for v in variants[:2]]
    assert with_doc[0] == with_doc[1] != fingerprint_source(variants[2], "W", docstrings=True)
