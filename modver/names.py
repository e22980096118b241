"""Names: the one rule for stage and tag names, and the one did-you-mean for every unknown name.

Stage and tag names become git ref components (``refs/modver/stages/<stage>``,
``refs/modver/tags/<stage>/<tag>``) and file names (``<run>/<stage>.stdout``): letters, digits,
``_``, ``.`` and ``-``, starting with a letter or digit, without ``..``, not ending in ``.`` or
``.lock``. :func:`did_you_mean` words the suggestion for an unknown stage, version, tag, run,
param or column the same way everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TypeGuard

from modver.errors import InvalidNameError

__all__ = ["did_you_mean", "is_name", "suggest", "validate_name"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")


def is_name(name: object) -> TypeGuard[str]:
    """Whether ``name`` may be a stage or tag name (see the module docstring)."""
    return (
        isinstance(name, str)
        and bool(_NAME.match(name))
        and ".." not in name
        and not name.endswith(".")
        and not name.endswith(".lock")
    )


def validate_name(name: object, what: str = "stage", *, where: str | None = None) -> str:
    """Return ``name`` if it may be a stage/tag name, else raise :class:`InvalidNameError`."""
    if not is_name(name):
        shown = name if isinstance(name, str) else repr(name)
        raise InvalidNameError(
            f"invalid {what} name {shown!r}",
            where=where,
            hint=f"a {what} name starts with a letter or digit and uses only letters, digits, "
            "'_', '.' and '-' (no '..', not ending in '.' or '.lock'), e.g. 'preprocess' or 'model_v2'",
        )
    return name


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """The choice closest to ``word`` (a typo of it), or None when none is close."""
    import difflib

    close = difflib.get_close_matches(word, list(dict.fromkeys(choices)), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"did you mean 'model'? "`` for the closest of ``choices``, or ``""``: a hint's opening."""
    close = suggest(word, choices)
    return f"did you mean {close!r}? " if close else ""
