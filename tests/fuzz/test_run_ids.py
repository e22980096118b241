"""Fuzz the run references of `show RUN`, `diff RUN_A RUN_B` and `reproduce RUN`."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz._harness import COUNTS, Sandbox, argv_text, scaled

ODD = st.sampled_from([
    "latest", "latest~0", "latest~1", "latest~99", "latest~-1", "latest~", "latest~~1", "latest~1.5", " latest ",
    "LATEST", "latest~" + "9" * 50, "~1", "", " ", ".", "..", "../..", "/", "/etc/passwd", "runs", ".tmp",
    "2026", "20261", "0", "-", "--", "-h", "latest/../x", "a\\b", "é", "\u2028", "run.json", "*", "?",
])  # fmt: skip


def references(sandbox: Sandbox) -> st.SearchStrategy[str]:
    real = st.sampled_from(sandbox.runs)
    return st.one_of(
        real,
        st.tuples(real, st.integers(1, 40)).map(lambda t: t[0][: t[1]]),  # prefixes, some ambiguous
        st.tuples(real, st.text(max_size=3)).map(lambda t: t[0] + t[1]),
        ODD,
        argv_text(40),
        st.integers(0, 10**6).map(lambda n: f"latest~{n}"),
        st.just("x" * 5000),
    )


@scaled()
@given(data=st.data(), command=st.sampled_from(["show", "show --json", "diff", "diff --json", "reproduce"]))
def test_run_references(sandbox: Sandbox, data: st.DataObject, command: str) -> None:
    name, *options = command.split()
    refs = [data.draw(references(sandbox), label="run")]
    if name == "diff":
        refs.append(data.draw(references(sandbox), label="other run"))
    COUNTS["run ids"] += len(refs)
    sandbox.cli("run ids", name, *refs, *options)
