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

from modver.models import StageVersion
from modver.store.history import History

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
    """Re-fingerprint ``version``'s stored files and compare (see the module docstring;
    :meth:`History.check_code <modver.store.history.History.check_code>` does it)."""
    return VersionCheck(version, history.check_code(version, docstrings=docstrings))


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
