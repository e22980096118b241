"""Fuzz damaged run records: valid JSON with any field replaced, removed or added (or bytes that
are not JSON), read by every command that reads records (`show`, `runs`, `log`, `diff`,
`reproduce`)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz._harness import COUNTS, Sandbox, scaled

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def places(value: Any, path: tuple = ()) -> list[tuple]:
    """Every path into a JSON value (keys and list indexes), the value itself first."""
    out = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            out += places(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += places(item, (*path, index))
    return out


def damage(record: Any, path: tuple, how: str, value: Any) -> Any:
    if not path:
        return value
    parent = record
    for key in path[:-1]:
        parent = parent[key]
    if how == "remove" and isinstance(parent, dict):
        del parent[path[-1]]
    elif how == "add" and isinstance(parent, dict):
        parent[f"{path[-1]}-new"] = value
    else:
        parent[path[-1]] = value
    return record


def strings(value: Any) -> set[str]:
    """Every string in a JSON value, keys too: swapping them makes records that are well formed
    but inconsistent (an input naming a stage or data file the record does not have)."""
    if isinstance(value, dict):
        return set(value).union(*(strings(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(strings(v) for v in value))
    return {value} if isinstance(value, str) else set()


UNREADABLE = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"", b"null", b"[]", b'{"run": "x"', "[" * 100_000, '{"run": "x", "pid": ' + "1" * 5000 + "}"]),
)


@scaled()
@given(data=st.data(), how=st.sampled_from(["replace", "replace", "remove", "add", "rewrite"]),
       command=st.sampled_from(["show", "show --json", "runs", "runs --json", "log", "diff", "reproduce"]))  # fmt: skip
def test_damaged_records(sandbox: Sandbox, data: st.DataObject, how: str, command: str) -> None:
    run = data.draw(st.sampled_from(sandbox.runs), label="run")
    path = sandbox.root / ".modver" / "runs" / run / "run.json"
    original = path.read_bytes()
    record = json.loads(original)
    if how == "rewrite":  # not JSON, or JSON that Python cannot read
        content = data.draw(UNREADABLE, label="content")
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    else:
        where = data.draw(st.sampled_from(places(record)), label="field")
        value = data.draw(JSON | st.sampled_from(sorted(strings(record))), label="value")
        path.write_text(json.dumps(damage(record, where, how, value)))
    COUNTS["damaged run records"] += 1
    name, *options = command.split()
    refs = {"show": [run], "diff": [run, sandbox.runs[0]], "reproduce": [run]}.get(name, [])
    try:
        sandbox.cli("records", name, *refs, *options)
    finally:
        path.write_bytes(original)
