"""``modver demo``: the bundled digits example, a git history in which its stages evolve
independently, and the main workflow on it — narrated, in a temporary folder.

The history is written through dulwich (no git binary), like everything else in modver.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from modver import errors

Echo = Callable[[str], None]
Show = Callable[[list[str]], int]


def example_dir() -> Path:
    """The bundled example project: ``modver/_examples/digits`` in an installed package (it is
    package data, mapped from ``examples/digits`` of the source tree, which a checkout uses)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_examples" / "digits", here.parent / "examples" / "digits"):
        if (candidate / "manifest.yaml").exists():
            return candidate
    raise errors.DemoError(
        "the bundled example project is missing from this installation of modver",
        where=str(here),
        hint="reinstall modver: pip install --force-reinstall 'modver[example]'",
    )


def check_example_requirements() -> None:
    """The example's stages need scikit-learn and NumPy (the ``example`` extra)."""
    import importlib.util

    missing = [
        name
        for module, name in (("numpy", "numpy"), ("sklearn", "scikit-learn"))
        if importlib.util.find_spec(module) is None
    ]
    if missing:
        raise errors.DemoError(
            f"the demo's example pipeline needs {' and '.join(missing)}, which are not installed",
            hint="install them with the example extra: pip install 'modver[example]'",
        )


@contextmanager
def _chdir(path: Path):
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _edit(root: Path, path: str, old: str, new: str) -> None:
    file = root / path
    text = file.read_text(encoding="utf-8")
    if old not in text:
        raise errors.DemoError(f"demo: cannot edit {path}: the example changed", where=path)
    file.write_text(text.replace(old, new, 1), encoding="utf-8")


# The edits that make the demo's history: (commit message, [(file, old, new)], what it shows).
HISTORY: list[tuple[str, list[tuple[str, str, str]], str]] = [
    (
        "Reformat preprocess (formatting only)",
        [
            (
                "pipeline/preprocess.py",
                "    n_test = int(round(len(labels) * test_size))\n",
                "    # how many samples go to the held-out split\n"
                "    n_test = int(round(\n        len(labels) * test_size,\n    ))\n",
            )
        ],
        "a comment and re-wrapped lines: no stage gets a new version",
    ),
    (
        "Square-root contrast in the shared normalize helper",
        [
            (
                "pipeline/features.py",
                "    return flat / PIXEL_MAX if scale else flat\n",
                "    return np.sqrt(flat / PIXEL_MAX) if scale else flat\n",
            )
        ],
        "a helper used by preprocess and augment: both get a new version",
    ),
    (
        "Stronger regularisation in the model",
        [
            (
                "pipeline/model.py",
                "    model = SVC(C=C, gamma=gamma)\n",
                '    model = SVC(C=C, gamma=gamma, class_weight="balanced")\n',
            )
        ],
        "only the model stage changes",
    ),
]


def build_history(root: Path, echo: Echo) -> None:
    """Commit the example, then one commit per entry of :data:`HISTORY` (through dulwich)."""
    from modver import _git

    with _git.GitRepo.discover(root) as repo:
        repo.commit_all("Add the digits pipeline")
        echo("  commit 1: Add the digits pipeline")
        for n, (message, edits, why) in enumerate(HISTORY, start=2):
            for path, old, new in edits:
                _edit(root, path, old, new)
            repo.commit_all(message)
            echo(f"  commit {n}: {message}  — {why}")


def run_demo(keep: Path | None, echo: Echo, show: Show) -> Path:
    """Walk through the main workflow on a copy of the example; ``show`` runs one CLI command.

    The project is built in ``keep`` (a new or empty folder) or in a new temporary folder, and
    left there to explore; its path is returned and said at the end.
    """
    source = example_dir()
    check_example_requirements()
    base = keep if keep is not None else Path(tempfile.mkdtemp(prefix="modver-demo-")) / "digits"
    root = base.resolve()
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        what = "is not empty" if root.is_dir() else "is a file, not a folder"
        raise errors.UsageError(f"{root} {what}", hint="give --keep a new or empty folder")
    try:
        shutil.copytree(
            source, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".modver", "__pycache__", ".git")
        )
    except OSError as exc:
        raise errors.UsageError(f"cannot make the demo project in {root}: {exc.strerror or exc}", where=str(root),
                                hint="give --keep a folder you can write in") from exc  # fmt: skip

    def step(title: str, *args: str) -> None:
        echo("")
        echo(f"## {title}")
        echo(f"$ modver {' '.join(args)}")
        code = show(list(args))
        if code != 0:
            raise errors.DemoError(f"demo step `modver {' '.join(args)}` failed (exit {code})")

    try:
        with _chdir(root):
            echo(f"modver demo — the digits example in {root}")
            step("Make it a modver project (git init through dulwich, .modver/ git-ignored)", "init")
            echo("")
            echo("## A history in which the stages evolve independently")
            build_history(root, echo)
            step("Register every stage's versions from the git history", "index")
            step("Each stage has its own history; the formatting-only commit made no version", "log")
            step("The working tree against the pins (none yet: every stage follows the working tree)", "status")
            step("Run the pipeline: every stage runs once, its output is cached", "run", "--explain")
            echo("")
            echo("## Change one stage in the working tree, without committing: the model")
            _edit(root, "pipeline/model.py", "    model = SVC(C=C,", "    model = SVC(C=C / 10,")
            echo("  pipeline/model.py: model = SVC(C=C / 10, ...)   # stronger regularisation")
            step("Only the changed stage and what depends on it run again", "run", "--explain")
            step("Roll back one stage: pin preprocess to its first version", "pin", "preprocess@v1")
            step("What changed in meaning between the pins and the working tree", "diff")
            step("preprocess runs at v1; the stages downstream of it run again", "run", "--explain")
            step("Every run in one table", "runs")
            step("Each version and the runs that used it", "log", "model")
            echo("")
            echo("In Python: modver.runs() is this table as a DataFrame, and")
            echo("modver.load('model') returns the fitted model of the latest run.")
    finally:
        echo("")
        echo(f"The demo project is in {root}: `cd` there to try more commands; delete it when done.")
    return root
