"""Strategies for YAML text: scalars of every kind, flow collections, anchors and aliases,
alias bombs, deep nesting, long values and garbage (shared by the --set and manifest fuzzers)."""

from __future__ import annotations

import json

from hypothesis import strategies as st

SPECIAL = st.sampled_from([
    "~", "null", "true", "False", "yes", "on", ".inf", "-.inf", ".nan", ".NaN", "0o17", "0x1f", "0b101", "1_000",
    "+1", "-0", "1e1000", "0777", "2001-12-14", "2001-12-14t21:59:43.10-05:00", "12:30:45",
    "!!python/object/apply:os.system ['touch pwned']", "!!binary aGk=", "!!set {a, b}", "!!omap [a: 1]",
    "!!str 1", "!!int x", "!!float", "!custom x", "? a", "- a", "a: b", "|\n  x", ">\n  x", "--- a\n--- b",
    "%YAML 1.2\n---\na", "*undefined", "&a", "&a [*a]", "&a {k: *a}", "{<<: {a: 1}, b: 2}", "[&a {x: 1}, {<<: *a}]",
    "'unterminated", '"\\uD800"', '"\\U0010FFFF"', '"\\x00"', "\t", "#", "[", "{", "]", ",", "a, b", "\ufeff1",
    '{"\\ud85a\\ude22": 1}', "{[a]: 1}", "{{{{{{{{{{{{{{{{{{{{a: }}}}}}}}}}}}}}}}}}}}",
])  # fmt: skip


def bomb(ways: int, depth: int) -> str:
    """A "billion laughs": each level a list of ``ways`` aliases of the level before."""
    levels = [f"&a0 [{', '.join(['x'] * ways)}]"]
    levels += [f"&a{i} [{', '.join([f'*a{i - 1}'] * ways)}]" for i in range(1, depth)]
    return "[" + ", ".join(levels) + "]"


def yaml_values(text: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """One YAML value as text (flow style: it fits on one line, after ``key: `` or ``--set x=``)."""
    scalars = st.one_of(
        st.integers(-(10**20), 10**20).map(str),
        st.integers(4000, 6000).map(lambda n: "1" * n),  # Python refuses ints of more than 4300 digits
        st.floats().map(repr),
        SPECIAL,
        text.filter(lambda t: "\n" not in t),
        text.map(json.dumps),
        text.map(lambda t: "'" + t.replace("'", "''") + "'"),
    )
    keys = st.one_of(
        st.sampled_from(["a", "b", "1", "null", "true", "[1]", "{a: 1}", "''", "&k x"]), text.map(json.dumps)
    )
    flow = st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=5).map(lambda xs: "[" + ", ".join(xs) + "]"),
            st.lists(st.tuples(keys, inner), max_size=4).map(
                lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}"
            ),
            st.tuples(inner, st.integers(1, 30)).map(lambda t: "[&a " + t[0] + ", " + ", ".join(["*a"] * t[1]) + "]"),
        ),
        max_leaves=20,
    )
    return st.one_of(
        flow,
        st.tuples(st.integers(2, 12), st.integers(1, 9)).map(lambda t: bomb(*t)),
        st.tuples(st.integers(1, 3000), st.sampled_from(["[]", "{a: }"])).map(
            lambda t: t[1][0] * t[0] + t[1][1:-1] + t[1][-1] * t[0]
        ),
        st.tuples(st.integers(1, 150_000), st.sampled_from(["x", "1,", "é", "'"])).map(lambda t: t[1] * t[0]),
        st.integers(1, 6000).map(lambda n: "[" + ", ".join(str(i / 3) for i in range(n)) + "]"),
        text,
    )
