"""Check that each registered version stores exactly the code its fingerprint was taken from.

A version's commit holds its files under ``src/`` and its fingerprint in ``meta.json``
(docs/storage.md). :func:`verify_version` reads the stored files back, checks that every blob's
bytes match their git id and that every file the version lists is there, fingerprints the
stored code again from scratch (no summary cache) and compares. Nothing is written.

The stored code is fingerprinted under the closure rules the version was registered with, which
its fingerprint's prefix names (``mv1:`` versions were made before files run by ``exec`` counted;
docs/fingerprint.md, "Schemes"). A version does not record whether its manifest counted
docstrings; the stored code is fingerprinted with the given setting first and, if that differs,
with the other one: a version verifies when either reproduces its fingerprint.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from modver import errors
from modver.fingerprint import SummaryCache, fingerprint_stage, scheme_of
from modver.history import History
from modver.models import StageVersion
from modver.sourcetree import git_blob_id

__all__ = ["VersionCheck", "verify_history", "verify_version"]


@dataclass(frozen=True)
class VersionCheck:
    """The verdict on one version: no problems means its stored code is its fingerprint's."""

    version: StageVersion
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the version verified."""
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        """``stage``, ``version``, ``fingerprint``, ``ok`` and ``problems``."""
        v = self.version
        return {
            "stage": v.stage,
            "version": v.version,
            "fingerprint": v.fingerprint,
            "ok": self.ok,
            "problems": list(self.problems),
        }


def verify_version(history: History, version: StageVersion, *, docstrings: bool = False) -> VersionCheck:
    """Re-fingerprint ``version``'s stored files and compare (see the module docstring)."""
    try:
        closure = history.closure(version)
        tree = history.source_tree(version)
        problems = []
        stored = set(tree.iter_files())
        for path in sorted(stored):
            sha = tree.blob_id(path)
            data = tree.read(path)
            if sha is None or data is None or git_blob_id(data) != sha:
                problems.append(f"stored file {path} does not match its git object id")
        for path in sorted({*closure.files, *closure.deps, *closure.imports} - stored):
            problems.append(f"{path} is listed by the version but not stored")
        if problems:
            return VersionCheck(version, tuple(problems))
        found = []
        scheme = scheme_of(version.fingerprint)
        for setting in (docstrings, not docstrings):
            again = fingerprint_stage(
                tree, version.entry, closure.deps, docstrings=setting, cache=SummaryCache(), scheme=scheme
            )
            if again.fingerprint == version.fingerprint:
                return VersionCheck(version)
            found.append(again.fingerprint)
    except errors.ModverError as exc:  # unreadable objects, stored code that no longer parses
        return VersionCheck(version, (f"cannot re-fingerprint the stored code: {exc}",))
    return VersionCheck(
        version,
        (f"the stored code fingerprints as {found[0]}, not {version.fingerprint}",),
    )


def verify_history(history: History, stages: Iterable[str] = (), *, docstrings: bool = False) -> list[VersionCheck]:
    """:func:`verify_version` for every version of ``stages`` (default: every stage), oldest first."""
    names = list(stages) or history.stages()
    checks: list[VersionCheck] = []
    for stage in names:
        versions = history.versions(stage)
        if not versions:
            history.resolve(stage, "latest")  # raises the history's unknown-stage error, with its listing
        checks.extend(verify_version(history, v, docstrings=docstrings) for v in versions)
    return checks
