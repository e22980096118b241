"""Forged stage histories for tests: commits written with git itself into a (bare) repository, as
modver would write a version, but with whatever files and metadata a forger chooses."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

_IDENTITY = {"GIT_AUTHOR_NAME": "M", "GIT_AUTHOR_EMAIL": "m@x", "GIT_COMMITTER_NAME": "M", "GIT_COMMITTER_EMAIL": "m@x"}


def git(cwd: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, input=stdin, capture_output=True, text=True, check=True,
        env={**os.environ, **_IDENTITY, **(env or {})},
    )  # fmt: skip
    return done.stdout.strip()


def forge(
    repo: Path,
    stage: str,
    files: dict[str, str],
    *,
    meta_text: str | None = None,
    parents: tuple[str, ...] | None = None,
    **meta: object,
) -> str:
    """Append a commit to ``refs/modver/stages/<stage>`` in ``repo``: the next version's tree
    with ``files`` (under ``src/``) and ``meta`` changed in its ``meta.json`` (or ``meta_text`` as
    the whole file); ``parents`` instead of the tip. The new commit."""
    ref = f"refs/modver/stages/{stage}"
    tip = git(repo, "rev-parse", ref)
    fields = json.loads(git(repo, "show", f"{tip}:meta.json"))
    fields.update(number=fields["number"] + 1, message="forged", **meta)
    index = {"GIT_INDEX_FILE": str(repo / "forge-index")}
    git(repo, "read-tree", f"{tip}^{{tree}}", env=index)
    text = meta_text if meta_text is not None else json.dumps(fields, indent=2, sort_keys=True) + "\n"
    for path, content in {**{f"src/{p}": t for p, t in files.items()}, "meta.json": text}.items():
        blob = git(repo, "hash-object", "-w", "--stdin", stdin=content)
        git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=index)
    tree = git(repo, "write-tree", env=index)
    (repo / "forge-index").unlink()
    args = [arg for parent in (parents if parents is not None else (tip,)) for arg in ("-p", parent)]
    commit = git(repo, "commit-tree", tree, *args, "-m", f"{stage} v{fields['number']}: forged")
    git(repo, "update-ref", ref, commit, tip)
    return commit
