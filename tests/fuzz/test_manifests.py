"""Fuzz manifests: near-valid ones built from the schema (wrong types, unknown keys, anchors and
aliases, odd names, huge and deep values, bad entries, cycles), and raw bytes and text."""

from __future__ import annotations

import json
import re

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz._harness import COUNTS, Sandbox, scaled
from tests.fuzz._yaml import SPECIAL, yaml_values

TEXT = st.text(max_size=30)  # a file holds any text; surrogates cannot be written as UTF-8
VALUE = yaml_values(st.text(max_size=60))


SANE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
).map(json.dumps)  # JSON is YAML


def document(near: bool) -> st.SearchStrategy[dict]:
    """A manifest as nested dicts of YAML text: valid in form (``near=False``: names, entries,
    paths and values the schema takes), or near-valid (odd choices, wrong types, unknown keys)."""

    def pick(good: st.SearchStrategy, odd: st.SearchStrategy) -> st.SearchStrategy:
        return st.one_of(good, good, good, odd) if near else good

    def maybe_wrong(value: st.SearchStrategy) -> st.SearchStrategy:
        return st.one_of(value, value, value, value, VALUE) if near else value

    def with_unknown_keys(known: st.SearchStrategy[dict], unknown: list[str]) -> st.SearchStrategy[dict]:
        if not near:
            return known
        extra = st.one_of(
            st.just({}), st.just({}), st.dictionaries(st.sampled_from(unknown), VALUE, min_size=1, max_size=1)
        )
        return st.tuples(known, extra).map(lambda t: {**t[0], **t[1]})

    stage_names = pick(
        st.sampled_from(["prep", "train", "other", "extra"]),
        st.one_of(
            st.sampled_from(["", "a..b", "x.lock", "-x", "data.x", "ü", "a/b", "HEAD", "p" * 300, "1", "null", "@"]),
            TEXT,
        ),
    )
    entries = pick(
        st.sampled_from(["pipe/prep.py:prep", "pipe/train.py:train", "pipe/other.py:other", "pipe/model.py:Model",
                         "pipe/model.py:Model.predict", "pipe/util.py", "pipe/util.py:helper"]),
        st.one_of(
            st.sampled_from(["pipe/prep.py:nope", "pipe/prep.py:prep.x.y", "nope.py", "../x.py:f", "/etc/x.py:f", "pipe/prep.py:",
                             ":f", "pipe", "data/raw.txt", "pipe/util.py:FACTOR", "pipe/prep.py:for", ".git/x.py", "pipe\\prep.py",
                             ".modver/x.py", "pipe/prep.py:prep:x", "pipe//prep.py:prep", "./pipe/../pipe/prep.py:prep"]),
            TEXT,
            VALUE,
        ),
    )  # fmt: skip
    paths = pick(
        st.sampled_from(["data/raw.txt", "data", "pipe/util.py"]),
        st.one_of(
            st.sampled_from(["missing.txt", "../outside", "/etc/hostname", "/dev/null", "~", "", "a\\b", ".", ".modver/runs",
                             ".git/HEAD", "data/", "data/../data/raw.txt", "/", "\u2028"]),
            TEXT,
            VALUE,
        ),
    )  # fmt: skip
    input_refs = pick(
        st.sampled_from(["data.raw", "data.d1", "prep", "train", "other"]),
        st.one_of(st.sampled_from(["data.nope", "data.", "nope", "self", "extra", "data.raw.x"]), VALUE),
    )
    versions = pick(
        st.sampled_from(["v1", "v2", "latest", "working", "first", "git:HEAD"]),
        st.sampled_from(["v9", "git:HEAD~5", "3", "0", "-1", "true", "null", "[v1]", "''", "v1 v2", "git:", "mv1:00"]),
    )
    kwargs = pick(
        st.sampled_from(["raw", "data", "x", "scale", "model"]),
        st.one_of(st.sampled_from(["for", "1x", "a-b", ""]), TEXT),
    )
    stage = with_unknown_keys(
        st.fixed_dictionaries(
            {"entry": entries},
            optional={
                "version": maybe_wrong(versions),
                "inputs": maybe_wrong(st.dictionaries(kwargs, input_refs, max_size=3)),
                "params": maybe_wrong(
                    st.dictionaries(pick(st.sampled_from(["scale", "x", "C"]), TEXT), pick(SANE, VALUE), max_size=3)
                ),
                "deps": maybe_wrong(st.lists(paths, max_size=3)),
            },
        ),
        ["entyr", "input", "Params", "cluster", "1"],
    )
    return with_unknown_keys(
        st.fixed_dictionaries(
            {"stages": maybe_wrong(st.dictionaries(stage_names, maybe_wrong(stage), min_size=1, max_size=4))},
            optional={
                "data": maybe_wrong(
                    st.dictionaries(pick(st.sampled_from(["raw", "d1"]), stage_names), paths, max_size=3)
                ),
                "fingerprint": maybe_wrong(
                    st.fixed_dictionaries({}, optional={"docstrings": pick(st.sampled_from(["true", "false"]), VALUE)})
                ),
            },
        ),
        ["stage", "Stages", "cluster", "sweep"],
    )


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-/]*\Z")


def render(doc: dict, anchors: list[str], indent: int = 0) -> str:
    """Block style for the first two levels (so errors point at lines), flow below; scalars are
    YAML text already. ``anchors``: where to anchor a stage's body and alias it in the next."""
    out = []
    pad = " " * indent
    for i, (key, value) in enumerate(doc.items()):
        name = key if _PLAIN_KEY.match(key) and key not in ("null", "true", "false", "1") else json.dumps(key)
        if isinstance(value, dict) and indent < 4:
            if indent == 2 and anchors and i > 0 and anchors[0] == "alias":  # this stage is the one before it
                out.append(f"{pad}{name}: *s{i - 1}")
                continue
            anchor = f" &s{i}" if indent == 2 and anchors else ""
            out.append(f"{pad}{name}:{anchor}")
            out.append(render(value, anchors, indent + 2) if value else f"{pad}  {{}}")
        else:
            out.append(f"{pad}{name}: {flow(value)}")
    return "\n".join(out)


def flow(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    return str(value)


MANIFESTS = st.tuples(document(False) | document(True), st.sampled_from([[], ["anchor"], ["alias"]])).map(
    lambda t: render(t[0], t[1]) + "\n"
)


def mutate(text: str, edits: list[tuple[int, int, str]]) -> str:
    """``text`` with characters replaced, deleted or inserted at the given places."""
    for position, length, insert in edits:
        at = position % (len(text) + 1)
        text = text[:at] + insert + text[at + length :]
    return text


EDITS = st.lists(
    st.tuples(st.integers(0, 10**6), st.integers(0, 5), st.one_of(st.text(max_size=4), SPECIAL)), min_size=1, max_size=4
)
RAW = st.one_of(
    st.binary(max_size=2000),
    st.text(max_size=2000).map(lambda t: t.encode("utf-8")),
    st.tuples(MANIFESTS, EDITS).map(lambda t: mutate(t[0], t[1]).encode("utf-8")),
    MANIFESTS.map(lambda t: b"\xef\xbb\xbf" + t.replace("\n", "\r\n").encode()),
    MANIFESTS.map(lambda t: t.encode("utf-16")),
    MANIFESTS.map(lambda t: t.replace("  ", "\t").encode()),
)
COMMANDS = st.sampled_from([
    ("run", "{m}"), ("diff", "manifest.yaml", "{m}"), ("snapshot", "--manifest", "{m}"), ("index", "-m", "{m}"),
    ("pin", "prep@v1", "-m", "{m}"), ("unpin", "prep", "-m", "{m}"), ("show", "prep@v1", "-m", "{m}"), ("diff", "-m", "{m}"),
    ("run", "{m}", "--set", "prep.scale=3", "--explain"), ("status", "{m}", "--json"),
])  # fmt: skip


def check(sandbox: Sandbox, content: bytes, command: tuple[str, ...]) -> None:
    """``status`` and one other command on the manifest ``content`` (written as fuzz.yaml: the
    only project file they may change, as `pin` and `unpin` do)."""
    path = sandbox.root / "fuzz.yaml"
    path.write_bytes(content)
    try:
        sandbox.cli("manifests", "status", "fuzz.yaml", inputs=("fuzz.yaml",))
        sandbox.cli("manifests", *[a.format(m="fuzz.yaml") for a in command], inputs=("fuzz.yaml",))
    finally:
        path.unlink()


@scaled()
@given(text=MANIFESTS, command=COMMANDS)
def test_structured_manifests(sandbox: Sandbox, text: str, command: tuple[str, ...]) -> None:
    COUNTS["manifests (structured)"] += 1
    check(sandbox, text.encode("utf-8"), command)


@scaled()
@given(content=RAW, command=COMMANDS)
def test_raw_manifests(sandbox: Sandbox, content: bytes, command: tuple[str, ...]) -> None:
    COUNTS["manifests (raw bytes and text)"] += 1
    check(sandbox, content, command)
