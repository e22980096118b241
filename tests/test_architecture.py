"""Architecture: folders that are the layers, no circle, sizes, one wrapper per library, a fast start-up.

Every import counts, at the top of a module or inside a function (a function-level import is
still a dependency, only a later one); imports under ``if TYPE_CHECKING:`` load nothing and are
left out. The checker is run on the package and, to prove it catches what it is for, on a copy
of it with an upward import planted.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import modver

PACKAGE = Path(modver.__file__).resolve().parent
PACKAGE_DIRS = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}

# -- the layers --------------------------------------------------------------------------------------
# Written once: a rank per folder (the folder's __init__ docstring says what it owns). A module may
# import modules of its own folder, and of folders (or root modules) of a lower rank; folders of one
# rank do not import each other. The root modules are the ground (rank 0), except those listed.
RANKS = {
    "": 0,  # the ground: errors, models, names, record, results, metrics, sourcetree, serialize, _fs...
    "_git": 1,  # dulwich: objects, refs, locks, remotes
    "fingerprint": 1,  # source -> closure -> digest
    "manifest": 1,  # the YAML: load, validate, edit
    "store": 2,  # everything persisted: .modver/, refs/modver/, <git dir>/modver/, the team's storage
    "engine": 3,  # versions of the manifest's stages; planning, executing, recording one run
    "sweep": 4,  # many runs at once
    "share": 4,  # push and pull
    "report": 4,  # the HTML report
    "explain": 5,  # blame and bisect: mixed configurations of two runs, on the sweep engine
    "api": 6,  # the façade's parts
    "façade": 7,  # project.py (Project, init, runs, load) and demo.py, at the root for their public paths
    "cli": 8,  # typer, rich, --json, the one error handler
    "__main__": 9,  # the console script
}
ROOT_LAYERS = {  # root modules that are not ground -> their layer
    "materialize.py": "store",  # the path every materialized version imports: a re-export of store/materialize.py
    "project.py": "façade",
    "demo.py": "façade",
    "__main__.py": "__main__",
}

# -- sizes -------------------------------------------------------------------------------------------
MAX_MODULE, MAX_CLASS, MAX_FUNCTION = 600, 400, 100  # lines
# "path" or "path:qualified.name" -> why it may be bigger (a stale entry fails the test too)
SIZE_EXCEPTIONS = {
    "_git/__init__.py": "the one dulwich wrapper: every git operation modver makes, with its errors mapped",
    "_git/__init__.py:GitRepo": "the same: one class so that no other module touches dulwich's Repo",
    "fingerprint/_closure.py": "the closure walk: one algorithm over one shared state (docs/fingerprint.md)",
    "fingerprint/_closure.py:ClosureBuilder": "the same walk; its helpers share the visited sets and the cache",
    "fingerprint/_summary.py:_summarize": "one pass over a module's syntax tree, a branch per node kind",
    "store/history.py": "one noun, the stage histories: chains, tags, notes, trust checks, restacking",
    "store/history.py:History": "the same: every method reads or writes the chains under one lock discipline",
    "record.py": "the run record's one schema: every model, to_json/from_json and the shape checks of 0.1's records",
    "sweep/cluster.py": "the only importer of dask: local, scheduler and batch-job executors, worker checks, detach",
}


def _layer(module: str) -> str:
    """The layer of a module: its folder; for a root module, "" (the ground) or its ROOT_LAYERS entry."""
    parts = module.split(".")[1:]
    if len(parts) >= 2 or (parts and parts[0] in PACKAGE_DIRS):
        return parts[0]
    return ROOT_LAYERS.get(f"{parts[0]}.py" if parts else "__init__.py", "")


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _typing_only(tree: ast.AST) -> set[int]:
    return {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for child in ast.walk(node)
    }


def _imported(tree: ast.AST, package: str) -> Iterator[tuple[str, int]]:
    """(dotted name, line) of every import outside ``if TYPE_CHECKING:``, each ``from X import a``
    giving ``X`` and ``X.a``."""
    typing_only = _typing_only(tree)
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, *([base] if base else [])])
            yield base, node.lineno
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno


def module_graph(root: Path) -> dict[str, dict[str, int]]:
    """module -> {modver module it imports: line}, for every module of the package at ``root``."""
    paths = {_module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, dict[str, int]] = {}
    for module, path in paths.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        edges = graph.setdefault(module, {})
        for name, line in _imported(ast.parse(path.read_text(encoding="utf-8")), package):
            while name and name not in paths:  # `from modver.x import f`: the module is modver.x
                name = name.rpartition(".")[0]
            if name and name != module and not module.startswith(name + "."):  # not its own package
                edges.setdefault(name, line)
    return graph


def upward_imports(root: Path) -> list[str]:
    """Every import that goes to a higher layer, or across to another folder of the same rank."""
    out = []
    for module, edges in module_graph(root).items():
        here = _layer(module)
        for target, line in edges.items():
            there = _layer(target)
            if here != there and RANKS[there] >= RANKS[here]:
                out.append(f"{module}:{line} imports {target} ({there or 'ground'} is not below {here or 'ground'})")
    return sorted(out)


def circles(root: Path) -> list[list[str]]:
    """The import circles (strongly connected components of more than one module), Tarjan's way."""
    graph = module_graph(root)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def oversized(root: Path) -> dict[str, int]:
    """``path`` or ``path:qualname`` -> lines, of every module, class and function over its limit."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE:
            out[rel] = len(text.splitlines())

        out.update(_oversized_defs(ast.parse(text), f"{rel}:"))
    return out


def _oversized_defs(node: ast.AST, prefix: str) -> dict[str, int]:
    out = {}
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            size = (child.end_lineno or child.lineno) - child.lineno + 1
            if size > (MAX_CLASS if isinstance(child, ast.ClassDef) else MAX_FUNCTION):
                out[f"{prefix}{child.name}"] = size
            out.update(_oversized_defs(child, f"{prefix}{child.name}."))
    return out


# -- the tests of the layers --------------------------------------------------------------------------


def test_every_folder_has_a_rank_and_says_what_it_owns_and_may_import():
    assert set(RANKS) - {"", "façade", "__main__"} == PACKAGE_DIRS, "give a new folder its rank in RANKS"
    for folder in PACKAGE_DIRS:
        doc = ast.get_docstring(ast.parse((PACKAGE / folder / "__init__.py").read_text(encoding="utf-8")))
        assert doc and "May import" in doc, f"modver/{folder}/__init__.py: say what the layer owns and may import"


def test_imports_point_down_the_layers():
    assert upward_imports(PACKAGE) == []


def test_no_import_circle():
    assert circles(PACKAGE) == []


def test_the_checker_catches_a_planted_upward_import_and_circle(tmp_path):
    copy = tmp_path / "modver"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert upward_imports(copy) == [] and circles(copy) == []
    cache = copy / "store" / "cache.py"
    cache.write_text(
        cache.read_text(encoding="utf-8") + "\n\ndef _planted():\n    from modver.cli import app\n\n    return app\n",
        encoding="utf-8",
    )
    assert any(v.startswith("modver.store.cache:") and "imports modver.cli" in v for v in upward_imports(copy))
    runstore = copy / "store" / "runstore.py"  # the old circle, in a function: runstore -> runindex -> runstore
    runstore.write_text(
        runstore.read_text(encoding="utf-8") + "\n\ndef _planted():\n    from modver.store.runindex import RunIndex\n",
        encoding="utf-8",
    )
    assert ["modver.store.runindex", "modver.store.runstore"] in circles(copy)


def test_modules_classes_and_functions_stay_small_or_say_why():
    found = oversized(PACKAGE)
    unexplained = {name: size for name, size in found.items() if name not in SIZE_EXCEPTIONS}
    assert not unexplained, f"split these, or list them in SIZE_EXCEPTIONS with a reason: {unexplained}"
    stale = sorted(set(SIZE_EXCEPTIONS) - set(found))
    assert not stale, f"these are within the limits now: remove them from SIZE_EXCEPTIONS: {stale}"


# -- the public surface, the wrappers, the start-up ---------------------------------------------------


def test_all_is_sorted_and_complete():
    assert modver.__all__ == sorted(modver.__all__)
    for name in modver.__all__:
        assert getattr(modver, name) is not None
    for name in ("Project", "fingerprint_source", "load", "log_metrics", "runs", "ModverError"):
        assert name in modver.__all__


# library -> the only modules allowed to import it
GIT = ("_git/__init__.py", "_git/faults.py", "_git/lock.py", "_git/objects.py", "_git/raw.py", "_git/tree.py")
GIT += ("_git/remote.py",)  # issue 10: fetch and push of refs/modver/*
CLI = ("cli/__init__.py", "cli/_app.py", "cli/versions.py", "cli/runs.py", "cli/sweeps.py", "cli/sharing.py")
CLI += ("cli/explain.py",)  # issue 18: blame and bisect
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
    "optuna": {"sweep/study.py"},  # issue 19: a search's study, samplers, journal
    "fsspec": {"store/storage.py"},  # issue 10: the team's storage of run records and outputs
    "s3fs": set(),  # reached through fsspec only
}


@pytest.mark.parametrize("library", sorted(OWNERS))
def test_each_library_is_wrapped_in_one_place(library):
    users = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        names = {name for name, _ in _imported(ast.parse(path.read_text(encoding="utf-8")), "")}
        if any(n == library or n.startswith(library + ".") for n in names):
            users.add(rel)
    assert users <= OWNERS[library], f"{library} imported outside its wrapper: {sorted(users - OWNERS[library])}"


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
        "optuna",
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
