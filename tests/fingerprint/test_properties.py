"""Property tests over real stdlib modules (derandomized "ci" profile, see conftest.py)."""

from __future__ import annotations

import ast
import io
import subprocess
import sys
import sysconfig
import tokenize
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modver.fingerprint import fingerprint_source
from modver.fingerprint._summary import summarize

STDLIB = Path(sysconfig.get_paths()["stdlib"])
MODULES = [
    "textwrap.py",
    "colorsys.py",
    "bisect.py",
    "heapq.py",
    "fnmatch.py",
    "shlex.py",
    "glob.py",
    "calendar.py",
    "json/decoder.py",
    "statistics.py",
    "string.py",
    "difflib.py",
]
SOURCES = {name: (STDLIB / name).read_text(encoding="utf-8") for name in MODULES}


def top_functions(source):
    """Top-level functions/classes bound exactly once (moving them keeps the module's meaning)."""
    tree = ast.parse(source)
    bindings = summarize(tree, False)["bindings"]
    names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    return [n for n in names if len(bindings[n]) == 1]


def safe_line_starts(source):
    """Line numbers (1-based) before which a whole comment/blank line may be inserted."""
    lines = {1}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.NEWLINE, tokenize.NL):
            lines.add(tok.end[0] + 1)
    total = source.count("\n") + 1
    return sorted(n for n in lines if n <= total)


module_names = st.sampled_from(MODULES)
CI = settings(settings.get_profile("fingerprint-ci"))


@CI
@given(module_names, st.data())
def test_invariant_under_comments_and_blank_lines(name, data):
    source = SOURCES[name]
    positions = safe_line_starts(source)
    chosen = data.draw(st.lists(st.sampled_from(positions), min_size=1, max_size=12, unique=True))
    texts = data.draw(
        st.lists(
            st.sampled_from(["", "# note", "    # indented # comment", "#", "   "]),
            min_size=len(chosen),
            max_size=len(chosen),
        )
    )
    lines = source.split("\n")
    for position, text in sorted(zip(chosen, texts), reverse=True):
        lines.insert(position - 1, text)
    edited = "\n".join(lines)
    assert fingerprint_source(edited) == fingerprint_source(source)
    entry = data.draw(st.sampled_from(top_functions(source)))
    assert fingerprint_source(edited, entry) == fingerprint_source(source, entry)


@CI
@given(module_names, st.data())
def test_invariant_under_docstring_insertion(name, data):
    source = SOURCES[name]
    tree = ast.parse(source)
    bodies = [
        node
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and node.body[0].lineno > node.lineno + len(node.decorator_list)
    ]
    chosen = data.draw(st.lists(st.sampled_from(bodies), min_size=1, max_size=8, unique=True))
    doc = data.draw(st.sampled_from(['"""Generated."""', "'single'", 'r"""raw\n\\d"""']))
    lines = source.split("\n")
    for node in sorted(chosen, key=lambda n: n.body[0].lineno, reverse=True):
        first = node.body[0]
        start = min([first.lineno, *(d.lineno for d in getattr(first, "decorator_list", []))])
        lines.insert(start - 1, " " * first.col_offset + doc)
    edited = "\n".join(lines)
    assert fingerprint_source(edited) == fingerprint_source(source)
    assert fingerprint_source(edited, docstrings=True) != fingerprint_source(source, docstrings=True)


@CI
@given(module_names, st.randoms(use_true_random=False))
def test_invariant_under_reordering_definitions(name, rnd):
    source = SOURCES[name]
    tree = ast.parse(source)
    lines = source.split("\n")
    unique = set(top_functions(source))
    defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in unique]
    segments = []
    for node in sorted(defs, key=lambda n: n.lineno, reverse=True):
        start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        segments.append("\n".join(lines[start - 1 : node.end_lineno]))
        del lines[start - 1 : node.end_lineno]
    rnd.shuffle(segments)
    edited = "\n".join(lines) + "\n\n" + "\n\n".join(segments) + "\n"
    assert fingerprint_source(edited) == fingerprint_source(source)
    for entry in sorted(unique)[:5]:
        assert fingerprint_source(edited, entry) == fingerprint_source(source, entry)


@pytest.mark.parametrize("name", MODULES)
def test_invariant_under_unparse(name):
    source = SOURCES[name]
    assert fingerprint_source(ast.unparse(ast.parse(source))) == fingerprint_source(source)


@CI
@given(module_names, st.data())
def test_changed_by_constant_mutation(name, data):
    source = SOURCES[name]
    tree = ast.parse(source)
    entry = data.draw(st.sampled_from(top_functions(source)))
    node = next(n for n in tree.body if getattr(n, "name", None) == entry)
    docstrings = {id(n.value) for n in ast.walk(node) if isinstance(n, ast.Expr)}
    constants = [
        c
        for c in ast.walk(node)
        if isinstance(c, ast.Constant) and type(c.value) in (int, float, str) and id(c) not in docstrings
    ]
    if not constants:
        return
    target = data.draw(st.sampled_from(constants))
    target.value = target.value + ("x" if isinstance(target.value, str) else 1)
    mutated = ast.unparse(tree)
    original = ast.unparse(ast.parse(source))
    assert fingerprint_source(mutated, entry) != fingerprint_source(original, entry)
    assert fingerprint_source(mutated) != fingerprint_source(original)


def test_deterministic_across_processes_on_stdlib():
    code = (
        "import sys; from modver.fingerprint import fingerprint_source;"
        f"print(*(fingerprint_source(open(p, encoding='utf-8').read()) for p in {[str(STDLIB / m) for m in MODULES]!r}))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": seed}
        ).stdout
        for seed in ("1", "99")
    }
    assert outputs == {" ".join(fingerprint_source(SOURCES[m]) for m in MODULES) + "\n"}
