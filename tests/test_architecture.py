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
    "rich": set(CLI) | {"cli/_output.py"},  # the command line: its commands, and how it shows things
    "libcst": {"fingerprint/_cst.py", "store/_rewrite.py"},  # normalization; rewriting a version's imports
    "pandas": {"engine/runtable.py", "serialize.py"},  # the runs DataFrame; the DataFrame serializer
    "numpy": {"serialize.py"},
    "torch": {"serialize.py"},
    "xxhash": {"serialize.py"},
    "filelock": {"_fs.py"},
    "dask": {"sweep/cluster.py"},  # executors (issue 9): local, a running scheduler, batch jobs
    "distributed": {"sweep/cluster.py"},
    "dask_jobqueue": {"sweep/cluster.py"},
    "fsspec": {"store/storage.py"},  # issue 10: the team's storage of run records and outputs
    "s3fs": set(),  # reached through fsspec only
}
FACADE = {"modver.project", "modver.cli", "modver.cli._output", "modver.results"}
ENGINE = {
    "modver.engine.run",
    "modver.engine.planner",
    "modver.engine.executor",
    "modver.engine.recorder",
    "modver.engine.indexer",
    "modver.engine.registry",
}
# module -> modules it must not import (dependency direction: cli -> project -> engine -> storage -> models)
LAYERS = {
    "models.py": FACADE | ENGINE | {"modver.store.history", "modver._git", "modver.record"},
    "record.py": FACADE | ENGINE | {"modver.store.history", "modver._git", "modver.store.runstore"},
    "errors.py": FACADE | ENGINE | {"modver.models"},
    "project.py": {"modver.cli", "modver.cli._output"},
    "results.py": {"modver.cli", "modver.project"},
    "engine/run.py": FACADE,
    "engine/planner.py": FACADE | {"modver.engine.run", "modver.engine.executor", "modver.engine.recorder"},
    "engine/executor.py": FACADE
    | {"modver.engine.run", "modver.engine.planner", "modver.engine.recorder", "modver.engine.registry"},
    "engine/recorder.py": FACADE
    | {"modver.engine.run", "modver.engine.planner", "modver.engine.executor", "modver.engine.registry"},
    "engine/registry.py": FACADE | ENGINE - {"modver.engine.registry"},
    "engine/indexer.py": FACADE
    | {"modver.engine.run", "modver.engine.planner", "modver.engine.executor", "modver.engine.recorder"},
    "store/runstore.py": FACADE | ENGINE,
    "sweep/cluster.py": FACADE | ENGINE - {"modver.engine.executor"},  # runs stage tasks; knows nothing of runs
    "engine/runtable.py": FACADE | ENGINE,
    "store/runindex.py": FACADE | ENGINE,
    "report/page.py": FACADE | ENGINE,
    "store/history.py": FACADE | ENGINE,
    "store/notes.py": FACADE | ENGINE,
    # sweeps (issue 9, sweep-core): axes are models; records are storage; the graph and its driver are engine
    "sweep/axes.py": FACADE | ENGINE | {"modver.store.runstore", "modver.sweep.cluster"},
    "store/sweepstore.py": FACADE | ENGINE | {"modver.sweep.cluster"},
    "sweep/graph.py": FACADE | {"modver.engine.recorder", "modver.sweep.cluster"},
    "sweep/driver.py": FACADE,
    "api/sweeps.py": {"modver.cli", "modver.cli._output"},  # the façade's sweep methods
    **{module: FACADE | ENGINE | {"modver.store.history"} for module in GIT},
    "share/versions.py": FACADE | ENGINE,  # issue 10
    "store/storage.py": FACADE | ENGINE | {"modver.store.history", "modver._git", "modver.share.versions"},
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
