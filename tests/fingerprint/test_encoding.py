from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from modver._encoding import digest, digest_value, encode, encode_node


def test_no_collisions_between_types():
    values = [
        1,
        "1",
        True,
        1.0,
        b"1",
        [1],
        (1,),
        {"1": 1},
        {1: 1},
        None,
        "None",
        0,
        False,
        0.0,
        -0.0,
        "",
        b"",
        [],
        (),
        {},
        ...,
        1 + 0j,
        {1},
        frozenset(),
        "True",
        [[]],
        [(), ()],
    ]
    encodings = [encode(v) for v in values]
    assert len(set(encodings)) == len(values)
    assert len({digest_value(v) for v in values}) == len(values)


def test_prefix_free_containers():
    assert encode(["ab", "c"]) != encode(["a", "bc"])
    assert encode([["a"], "b"]) != encode([["a", "b"]])
    assert encode({"a": "b", "c": "d"}) != encode({"a": "bc", "": "d"})


def test_dict_key_order_irrelevant():
    assert encode({"b": 1, "a": 2}) == encode({"a": 2, "b": 1})
    assert encode({1: "x", "1": "y"}) == encode({"1": "y", 1: "x"})


def test_stable_known_values():
    # pinned: changing these is a new scheme
    assert encode(None) == b"n"
    assert encode(True) == b"T"
    assert encode(12) == b"i12;"
    assert encode("é") == b"s2:\xc3\xa9"
    assert encode(1.5) == b"f0x1.8000000000000p+0;"
    assert encode([1, (b"x",)]) == b"[i1;(b1:x)]"
    assert digest(b"") == "mv1:" + "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"


def test_digest_shape():
    d = digest_value({"lr": 0.1})
    assert d.startswith("mv1:") and len(d) == 4 + 64


def test_surrogates_and_nan():
    assert encode("\ud800") != encode("\ud801")
    assert encode(float("nan")) == encode(float("nan"))
    assert encode(float("inf")) != encode(float("-inf"))


def test_unsupported_type():
    with pytest.raises(TypeError):
        encode(object())


def test_ast_node_encoding_skips_positions_and_ctx():
    a = ast.parse("x = 1")
    b = ast.parse("\n\nx   =   1  # c")
    assert encode(a) == encode(b)
    assert encode(ast.parse("x = 1")) != encode(ast.parse("x = 2"))
    assert b"lineno" not in encode(a) and b"ctx" not in encode(a)


def test_docstring_dropping():
    a = ast.parse('def f():\n    "doc"\n    return 1\n')
    b = ast.parse("def f():\n    return 1\n")
    assert encode_node(a, docstrings=False) == encode_node(b, docstrings=False)
    assert encode_node(a, docstrings=True) != encode_node(b, docstrings=True)


def test_stable_across_processes():
    code = (
        "from modver._encoding import digest_value;"
        "print(digest_value({'a': [1, 2.5, 'x', b'y', None, True, {'z': (1,)}], 'b': {3, 1, 2}}))"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("0", "1", "12345")
    }
    assert len(outs) == 1
