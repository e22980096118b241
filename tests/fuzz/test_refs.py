"""Fuzz version references, `STAGE@REF`, in `show`, `pin`, `diff`, `log` and `tag`."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz._harness import COUNTS, Sandbox, argv_text, scaled

TEXT = argv_text()
STAGES = st.one_of(
    st.sampled_from(["prep", "train", "other"]),
    st.sampled_from(["nope", "", "PREP", "prep ", " prep", "../prep", "data.raw", "prep.",
                     "a..b", "x.lock", "-prep", "refs/heads/main", "HEAD", "p" * 300, "ü", "prep/v1"]),
    TEXT,
)  # fmt: skip
WORDS = st.sampled_from(["v1", "v2", "v3", "latest", "working", "first", "git:HEAD", "git:HEAD~1", "git:main"]) | st.sampled_from([
    "v0", "v-1", "v01", "V1", "v", "v1.0", "v" + "9" * 40, "latest", "working", "first", "nope",
    "git:HEAD", "git:HEAD~1", "git:HEAD~2", "git:HEAD~99", "git:HEAD^2", "git:main", "git:main~1", "git:nope", "git:",
    "git:..", "git:HEAD..HEAD", "git:refs/heads/main", "git:HEAD@{0}", "git:" + "0" * 40, "git:-1", "git:--all",
    "mv1:", "mv1:00", "000000", "", "@", "latest~1", "~", "^", "..", "/", "refs/modver/stages/prep",
])  # fmt: skip


def versions(sandbox: Sandbox) -> st.SearchStrategy[str]:
    fingerprints = sorted({f for fs in sandbox.fingerprints.values() for f in fs})
    prefixes = st.tuples(st.sampled_from(fingerprints), st.integers(0, 72), st.booleans()).map(
        lambda t: (t[0] if t[2] else t[0].split(":", 1)[1])[: t[1]]
    )
    return st.one_of(WORDS, prefixes, prefixes.map(str.upper), TEXT)


def references(sandbox: Sandbox) -> st.SearchStrategy[str]:
    """A third of them name a registered version of a declared stage."""
    real = st.sampled_from(sorted(sandbox.fingerprints)).flatmap(
        lambda stage: st.one_of(
            st.sampled_from(["v1", "v2", "latest", "working", "git:HEAD", "git:HEAD~2", "git:main"]),
            st.tuples(st.sampled_from(sandbox.fingerprints[stage]), st.integers(10, 71)).map(lambda t: t[0][4 : t[1]]),
        ).map(lambda ref: f"{stage}@{ref}")
    )
    spelled = st.tuples(STAGES, versions(sandbox)).map("@".join)
    odd = st.one_of(spelled.map(lambda r: r + "@v1"), spelled.map(lambda r: "@" + r), STAGES)
    return st.one_of(real, spelled, odd)


@scaled()
@given(data=st.data(), command=st.sampled_from(["show", "show --json", "diff", "diff2", "log", "pin", "tag"]))
def test_version_references(sandbox: Sandbox, data: st.DataObject, command: str) -> None:
    ref = data.draw(references(sandbox), label="ref")
    COUNTS["version references"] += 1
    if command == "log":
        sandbox.cli("refs", "log", ref.partition("@")[0] or ref, "--json")
    elif command == "diff2":
        other = data.draw(st.one_of(references(sandbox), versions(sandbox)), label="second ref")
        COUNTS["version references"] += 1
        sandbox.cli("refs", "diff", ref, other)
    elif command == "pin":  # pin edits the manifest it is given: a copy, the only file it may change
        (sandbox.root / "pin.yaml").write_bytes((sandbox.root / "manifest.yaml").read_bytes())
        try:
            sandbox.cli("refs", "pin", ref, "-m", "pin.yaml", inputs=("pin.yaml",))
        finally:
            (sandbox.root / "pin.yaml").unlink()
    elif command == "tag":
        name = data.draw(st.one_of(WORDS, STAGES, TEXT), label="tag name")
        COUNTS["tag names"] += 1
        sandbox.cli("refs", "tag", ref, name)
    else:
        sandbox.cli("refs", *command.split()[:1], ref, *command.split()[1:])
