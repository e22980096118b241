"""docs/from-dvc.md runs: its dvc.yaml and params.yaml (DVC's example-get-started), converted by
`modver init --from-dvc` with stand-in scripts, print and write what the page shows."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers import GitProject, mv

DOC = Path(__file__).resolve().parents[2] / "docs" / "from-dvc.md"
SHOWN_ROOT = "/work/example-get-started"


def _block(text: str, name: str) -> str:
    found = re.search(rf"<!-- {re.escape(name)} -->\n```\w+\n(.*?)```", text, flags=re.S)
    assert found is not None, f"docs/from-dvc.md has no block marked {name}"
    return found.group(1)


def test_the_example_conversion_prints_and_writes_what_the_page_shows(git_project: GitProject):
    text = DOC.read_text(encoding="utf-8")
    p = git_project
    p.write("dvc.yaml", _block(text, "dvc.yaml"))
    p.write("params.yaml", _block(text, "params.yaml"))
    p.write("dvc.lock", "schema: '2.0'\n")
    p.write(".dvc/config", "[core]\n    remote = storage\n")
    for script in ("prepare", "featurization", "train", "evaluate"):
        p.write(f"src/{script}.py", "import sys\nimport yaml\n\nprint(sys.argv)\n")
    p.commit("example-get-started, scripts stood in for")
    command, _, shown = _block(text, "output").partition("\n")
    assert command == "$ modver init --from-dvc"
    out = mv(p.root, "init", "--from-dvc", str(p.root)).stdout
    assert out.replace(str(p.root), SHOWN_ROOT) == shown
    assert p.read("manifest.yaml") == _block(text, "manifest.yaml")
