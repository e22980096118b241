"""Fuzz `modver run --set STAGE.PARAM=VALUE`: YAML values, aliases, bombs, depth, length, garbage."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz._harness import COUNTS, Sandbox, argv_text, scaled
from tests.fuzz._yaml import yaml_values

TEXT = argv_text()
VALUES = yaml_values(argv_text(100))
TARGETS = st.one_of(
    st.sampled_from(["prep.scale", "other.x", "other.x"]),
    st.sampled_from(["train.data", "prep.raw", "nope.x", "prep", "prep.", ".x", "prep..x", "prep.for", "prep.__class__",
                     "other.x.y", "PREP.scale", "prep.scale ", " other.x", "=", "other.x=1"]),
    TEXT,
)  # fmt: skip


@scaled()
@given(
    sets=st.lists(st.tuples(TARGETS, VALUES), min_size=1, max_size=3),
    options=st.sampled_from([(), ("--explain",), ("--json",)]),
)
def test_set_values(sandbox: Sandbox, sets: list[tuple[str, str]], options: tuple[str, ...]) -> None:
    COUNTS["--set values"] += len(sets)
    args = [arg for target, value in sets for arg in ("--set", f"{target}={value}")]
    sandbox.cli("--set", "run", *args, *options)
