"""Architecture: the public surface, one wrapper module per library, a fast start-up."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import modver

PACKAGE = Path(modver.__file__).resolve().parent

# library -> the only modules allowed to import it
GIT = ("_git/__init__.py", "_git/faults.py", "_git/lock.py", "_git/objects.py", "_git/raw.py", "_git/tree.py")
GIT += ("_git/remote.py",)  # issue 10: fetch and push of refs/modver/*
CLI = ("cli/__init__.py", "cli/_app.py", "cli/versions.py", "cli/runs.py", "cli/sweeps.py", "cli/sharing.py")
OWNERS = {
    "dulwich": set(GIT) - {"_git/tree.py"},  # the git package (its GitTree reads through GitRepo)
    "ruamel": {"manifest/_yaml.py"},
    "typer": set(CLI),
    "rich": set(CLI) | {"_output.py"},  # the command line: its commands, and how it shows things
    "libcst": {"fingerprint/_cst.py", "_rewrite.py"},  # normalization; rewriting a version's imports
    "pandas": {"runtable.py", "serialize.py"},  # the runs DataFrame; the DataFrame serializer
    "numpy": {"serialize.py"},
    "torch": {"serialize.py"},
    "xxhash": {"serialize.py"},
    "filelock": {"_fs.py"},
    "dask": {"cluster.py"},  # executors (issue 9): local, a running scheduler, batch jobs
    "distributed": {"cluster.py"},
    "dask_jobqueue": {"cluster.py"},
    "fsspec": {"storage.py"},  # issue 10: the team's storage of run records and outputs
    "s3fs": set(),  # reached through fsspec only
}
FACADE = {"modver.project", "modver.cli", "modver._output", "modver.results"}
ENGINE = {"modver.engine", "modver.planner", "modver.executor", "modver.recorder", "modver.indexer", "modver.registry"}
# module -> modules it must not import (dependency direction: cli -> project -> engine -> storage -> models)
LAYERS = {
    "models.py": FACADE | ENGINE | {"modver.history", "modver._git", "modver.record"},
    "record.py": FACADE | ENGINE | {"modver.history", "modver._git", "modver.runstore"},
    "errors.py": FACADE | ENGINE | {"modver.models"},
    "project.py": {"modver.cli", "modver._output"},
    "results.py": {"modver.cli", "modver.project"},
    "engine.py": FACADE,
    "planner.py": FACADE | {"modver.engine", "modver.executor", "modver.recorder"},
    "executor.py": FACADE | {"modver.engine", "modver.planner", "modver.recorder", "modver.registry"},
    "recorder.py": FACADE | {"modver.engine", "modver.planner", "modver.executor", "modver.registry"},
    "registry.py": FACADE | ENGINE - {"modver.registry"},
    "indexer.py": FACADE | {"modver.engine", "modver.planner", "modver.executor", "modver.recorder"},
    "runstore.py": FACADE | ENGINE,
    "cluster.py": FACADE | ENGINE - {"modver.executor"},  # runs stage tasks; knows nothing of runs
    "runtable.py": FACADE | ENGINE,
    "runindex.py": FACADE | ENGINE,
    "report.py": FACADE | ENGINE,
    "history.py": FACADE | ENGINE,
    "notes.py": FACADE | ENGINE,
    # sweeps (issue 9, sweep-core): axes are models; records are storage; the graph and its driver are engine
    "sweep.py": FACADE | ENGINE | {"modver.runstore", "modver.cluster"},
    "sweepstore.py": FACADE | ENGINE | {"modver.cluster"},
    "graph.py": FACADE | {"modver.recorder", "modver.cluster"},
    "driver.py": FACADE,
    "_sweep_facade.py": {"modver.cli", "modver._output"},  # the façade's sweep methods
    **{module: FACADE | ENGINE | {"modver.history"} for module in GIT},
    "sharing.py": FACADE | ENGINE,  # issue 10
    "storage.py": FACADE | ENGINE | {"modver.history", "modver._git", "modver.sharing"},
}


def _imports(path: Path) -> set[str]:
    """What a module imports, outside ``if TYPE_CHECKING:`` blocks (typing-only imports load nothing)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
        for child in ast.walk(node)
    }
    names = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_all_is_sorted_and_complete():
    assert modver.__all__ == sorted(modver.__all__)
    for name in modver.__all__:
        assert getattr(modver, name) is not None
    for name in ("Project", "fingerprint_source", "load", "log_metrics", "runs", "ModverError"):
        assert name in modver.__all__


@pytest.mark.parametrize("library", sorted(OWNERS))
def test_each_library_is_wrapped_in_one_place(library):
    users = {
        p.relative_to(PACKAGE).as_posix()
        for p in _modules()
        if any(n == library or n.startswith(library + ".") for n in _imports(p))
    }
    assert users <= OWNERS[library], f"{library} imported outside its wrapper: {sorted(users - OWNERS[library])}"


@pytest.mark.parametrize("module", sorted(LAYERS))
def test_imports_point_one_way(module):
    imported = _imports(PACKAGE / module)
    bad = {n for n in imported for f in LAYERS[module] if n == f or n.startswith(f + ".")}
    assert not bad, f"{module} imports upward: {sorted(bad)}"


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(out.stdout.split())


def test_import_modver_is_light():
    loaded = _loaded_after("import modver")
    assert not loaded & {
        "dulwich",
        "libcst",
        "ruamel",
        "typer",
        "rich",
        "pandas",
        "numpy",
        "dask",
        "distributed",
        "fsspec",
    }


def test_version_does_not_load_the_cli():
    code = "import sys; sys.argv = ['modver', '--version']\nfrom modver.__main__ import main; main()"
    out = subprocess.run(
        [sys.executable, "-c", code + "\nprint(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    )
    first, loaded = out.stdout.split("\n", 1)
    assert first == f"modver {modver.__version__}"
    assert not set(loaded.split()) & {"typer", "rich", "dulwich", "libcst"}


def test_status_does_not_load_libcst_or_pandas(pipeline_project):
    code = f"import os; os.chdir({str(pipeline_project.root)!r})\nfrom modver.project import Project\nwith Project('.') as p: p.status()\n"
    loaded = _loaded_after(code)
    assert "libcst" not in loaded and "pandas" not in loaded
