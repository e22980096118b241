"""Fuzz `modver runs --where EXPR [--sort KEY]`: expressions from the grammar, deep nesting, garbage."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz._harness import COUNTS, Sandbox, argv_text, scaled

COLUMNS = [
    "run", "status", "started", "duration", "version.prep", "version.train", "param.prep.scale",
    "metric.mean", "metric.loss", "mean", "scale", "prep", "model.C", 'version["prep"]', "version['no-such']",
    "nope", "metric.nope", "param", "version", "param.prep", "cached.prep",
]  # fmt: skip
CONSTANTS = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.floats().map(repr),  # nan and inf read as names: unknown columns
    st.text(max_size=12).map(repr),
    st.sampled_from(
        ["None", "True", "False", "...", "b'x'", "1e999", "-0.0", "0x1F", "1_000", "1j", "-True", "--1", '"v1"']
    ),
)
OPERATORS = ["==", "!=", "<", "<=", ">", ">=", "in", "not in", "is", "is not"]


def _sequence(items: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(st.sampled_from("([{"), st.lists(items, max_size=4)).map(
        lambda t: t[0] + ", ".join(t[1]) + {"(": ")", "[": "]", "{": "}"}[t[0]]
    )


OPERAND = st.one_of(st.sampled_from(COLUMNS), CONSTANTS, _sequence(CONSTANTS), _sequence(st.sampled_from(COLUMNS)))
COMPARISON = st.lists(st.tuples(st.sampled_from(OPERATORS), OPERAND), min_size=1, max_size=3).flatmap(
    lambda rest: OPERAND.map(lambda first: first + "".join(f" {op} {right}" for op, right in rest))
)
GRAMMAR = st.recursive(
    st.one_of(COMPARISON, st.sampled_from(COLUMNS), CONSTANTS),
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=4).flatmap(
            lambda xs: st.sampled_from([" and ", " or "]).map(lambda j: j.join(xs))
        ),
        inner.map(lambda x: f"not {x}"),
        inner.map(lambda x: f"({x})"),
    ),
    max_leaves=12,
)
DEEP = st.tuples(
    st.sampled_from(["not ", "(", "-", "~", "+", "[", "version.", "not (", "a["]), st.integers(50, 3000), COMPARISON
).map(lambda t: t[0] * t[1] + t[2] + {"(": ")", "[": "]", "not (": ")", "a[": "]"}.get(t[0], "") * t[1])
GARBAGE = st.one_of(
    argv_text(200),
    st.sampled_from([
        "__import__('os').system('touch pwned')", "lambda: 1", "[x for x in run]", "run.__class__", "f'{run}'",
        "run if 1 else 2", "*run", "(run := 1)", "yield run", "await run", "run()", "open('x', 'w')",
        "run == 1;", "run ==", "", " ", "\t", "#", "'''", "\\", "é == 1", "𝔯𝔲𝔫 == 1",
    ]),
)  # fmt: skip
EXPRESSIONS = st.one_of(GRAMMAR, DEEP, GARBAGE, st.lists(GRAMMAR, min_size=50, max_size=400).map(" or ".join))
SORT = st.one_of(st.none(), st.sampled_from(COLUMNS).flatmap(lambda c: st.sampled_from([c, "-" + c])), argv_text(20))


@scaled()
@given(expression=EXPRESSIONS, sort=SORT, output=st.sampled_from([(), ("--json",), ("--csv",)]))
@example(expression="not " * 5000 + "run", sort=None, output=())  # RecursionError inside ast.parse
@example(expression="-" * 50000 + "1 == run", sort=None, output=())  # MemoryError inside ast.parse
@example(expression="__import__('os').system('touch pwned')", sort=None, output=())
def test_where_expressions(sandbox: Sandbox, expression: str, sort: str | None, output: tuple[str, ...]) -> None:
    COUNTS["where expressions"] += 1
    args = ["runs", "--where", expression, *output]
    if sort is not None:
        COUNTS["--sort keys"] += 1
        args += ["--sort", sort]
    sandbox.cli("where", *args)
