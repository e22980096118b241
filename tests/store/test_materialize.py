"""Materialized versions: private packages, import rewriting, isolation, pickles, tracebacks."""

from __future__ import annotations

import inspect
import json
import multiprocessing
import pickle
import secrets
import subprocess
import sys
import textwrap
import traceback
from pathlib import Path

import pytest

from modver.errors import EntryNotFoundError, MaterializeError, SourceError, StageFailedError
from modver.store import materialize as mat
from modver.store.cache import OutputCache
from modver.store.layout import Store
from tests._syncspy import SyncSpy


def new_fingerprint() -> str:
    # A fingerprint names one content: every test gets fresh ones, since imported version
    # packages stay in sys.modules for the whole test session.
    return "mv1:" + secrets.token_hex(32)


def version(factor: int) -> dict[str, bytes]:
    """A small project: a package, a sibling helper of the entry, every import form."""
    files = {
        "pipe/__init__.py": "",
        "pipe/util.py": f"""\
import json  # third-party/stdlib stays as it is

FACTOR = {factor}


def helper(x):
    return x * FACTOR
""",
        "pipe/prep.py": """\
from pipe.util import helper
import pipe.util as u
import pipe.util
from pipe import util
from . import util as rel
from .util import FACTOR
import os, \\
    pipe.util
import importlib
import siblings


def prep(x):
    assert u is pipe.util is util is rel is importlib.import_module("pipe.util")
    assert FACTOR == siblings.factor()
    return helper(x)


def fails():
    raise ValueError("line 20")
""",
        "pipe/siblings.py": """\
from pipe.util import FACTOR


def factor():
    return FACTOR
""",
    }
    return {path: text.encode() for path, text in files.items()}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path)


@pytest.fixture(autouse=True)
def fingerprints() -> None:
    global FP_A, FP_B
    FP_A, FP_B = new_fingerprint(), new_fingerprint()


def test_two_versions_of_one_helper_side_by_side(store: Store) -> None:
    mat.materialize(version(2), FP_A, store, entry="pipe/prep.py:prep")
    mat.materialize(version(3), FP_B, store, entry="pipe/prep.py:prep")
    prep_a = mat.load_entry(store, FP_A, "pipe/prep.py:prep")
    prep_b = mat.load_entry(store, FP_B, "pipe/prep.py:prep")
    assert prep_a(10) == 20 and prep_b(10) == 30
    assert prep_a.__module__ == mat.package_name(FP_A) + ".pipe.prep"
    assert sys.modules[mat.package_name(FP_A) + ".pipe.util"].FACTOR == 2
    assert sys.modules[mat.package_name(FP_B) + ".pipe.util"].FACTOR == 3
    assert "pipe.util" not in sys.modules  # the working tree's name is never imported


def test_rewritten_source_keeps_lines_and_third_party_imports(store: Store) -> None:
    folder = mat.materialize(version(2), FP_A, store, entry="pipe/prep.py:prep")
    original = version(2)["pipe/prep.py"].decode()
    written = (folder / "pipe/prep.py").read_text()
    assert written.count("\n") == original.count("\n")
    package = mat.package_name(FP_A)
    assert f"from {package}.pipe.util import helper" in written
    assert f"import {package}.pipe.util as u" in written
    assert f"import {package}.pipe.util; from {package} import pipe" in written
    assert f"from {package}.pipe import siblings" in written  # sibling of the entry
    assert "from . import util as rel" in written and "import importlib\n" in written
    assert f'importlib.import_module("{package}.pipe.util")' in written
    assert (folder / "pipe/util.py").read_text().startswith("import json  #")
    # unchanged lines are byte-identical
    for before, after in zip(original.splitlines(), written.splitlines()):
        if "import" not in before and before != "    pipe.util":  # that one continues an import
            assert before == after


def test_file_is_read_as_the_project_files_path(store: Store, tmp_path: Path) -> None:
    source = textwrap.dedent("""\
        import os
        from pathlib import Path

        HERE = Path(__file__).parent
        SAME = os.path.abspath(__file__) == __file__


        NAMED = f"at {__file__}" + f'at {__file__}' + f'''at {__file__}'''


        def where(__file__=None):  # a parameter named like it stays a parameter
            global SAME
            spec_file = os.__file__  # an attribute of another module stays as it is
            return str(HERE), spec_file, __file__, dict(__file__=1)


        def unpack():
            (__file__, other), [*rest] = ("a", "b"), [1]
            for __file__ in ["c"]:
                pass
            return __file__
        """).encode()
    fp = new_fingerprint()
    folder = mat.materialize({"pipe/__init__.py": b"", "pipe/paths.py": source}, fp, store)
    written = (folder / "pipe/paths.py").read_text()
    assert written.count("\n") == source.decode().count("\n") and "os.__file__" in written
    compile(written, "paths.py", "exec")
    here, os_file, param, kw = mat.load_entry(store, fp, "pipe/paths.py:where")("given")
    assert here == str(store.root / "pipe")  # the project's folder, where its other files are
    assert os_file.endswith("os.py") and param == "given" and kw == {"__file__": 1}
    module = sys.modules[mat.module_name(fp, "pipe/paths.py")]
    assert f"at {store.root / 'pipe' / 'paths.py'}" * 3 == module.NAMED
    assert mat.load_entry(store, fp, "pipe/paths.py:unpack")() == "c"


def test_tracebacks_and_getsource_point_at_the_materialized_file(store: Store) -> None:
    folder = mat.materialize(version(2), FP_A, store, entry="pipe/prep.py:prep")
    fails = mat.load_entry(store, FP_A, "pipe/prep.py:fails")
    with pytest.raises(ValueError) as info:
        fails()
    last = traceback.extract_tb(info.value.__traceback__)[-1]
    assert Path(last.filename).resolve() == (folder / "pipe/prep.py").resolve()
    assert version(2)["pipe/prep.py"].decode().splitlines()[19].strip() == 'raise ValueError("line 20")'
    assert last.lineno == 20 and last.line == 'raise ValueError("line 20")'
    assert inspect.getsource(fails) == 'def fails():\n    raise ValueError("line 20")\n'
    assert Path(inspect.getsourcefile(fails)).name == "prep.py"


def test_materialize_is_immutable_and_reused(store: Store) -> None:
    first = mat.materialize(version(2), FP_A, store)
    info = (first / mat.INFO_FILE).read_text()
    again = mat.materialize(version(99), FP_A, store)  # same fingerprint: never rewritten
    assert again == first and (first / mat.INFO_FILE).read_text() == info
    assert "FACTOR = 2" in (first / "pipe/util.py").read_text()
    assert any(first.glob("pipe/__pycache__/util.*.pyc"))
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".")]


def test_pickled_object_loads_in_a_fresh_process_with_only_the_store(store: Store, tmp_path: Path) -> None:
    """An output whose class lives in user code, cached, loads later without that code."""
    files = {
        "model.py": b"from shapes import Box\n\n\ndef train(n):\n    return Box(n)\n",
        "shapes.py": b"class Box:\n    def __init__(self, n):\n        self.n = n\n\n    def area(self):\n        return self.n * self.n\n",
    }
    mat.materialize(files, FP_A, store, entry="model.py:train")
    box = mat.load_entry(store, FP_A, "model.py:train")(4)
    key = "mv1:" + "5" * 64
    OutputCache(store.outputs).put(key, box, {"stage": "train"})
    blob = tmp_path / "box.pkl"
    blob.write_bytes(pickle.dumps(box))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = textwrap.dedent(
        f"""
        import pickle
        from pathlib import Path
        from modver.store.cache import OutputCache
        from modver.store.layout import Store
        from modver.store.materialize import make_importable
        store = Store(Path({str(store.root)!r}))
        make_importable(store)
        box = OutputCache(store.outputs).load({key!r})
        again = pickle.loads(open({str(blob)!r}, "rb").read())
        print(type(box).__module__, box.area(), again.area())
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=elsewhere, capture_output=True, text=True, check=True)
    assert done.stdout.split() == [mat.package_name(FP_A) + ".shapes", "16", "16"]


def _materialize_worker(files: dict[str, bytes], fingerprint: str, store: Store, barrier) -> str:
    barrier.wait()
    folder = mat.materialize(files, fingerprint, store)
    return mat.load_entry(store, fingerprint, "pipe/prep.py:prep")(1) and str(folder)


def test_concurrent_materialize_from_processes(store: Store) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(4)
        with ctx.Pool(4) as pool:
            folders = pool.starmap(_materialize_worker, [(version(2), FP_A, store, barrier)] * 4)
    assert len(set(folders)) == 1
    assert sorted(p.name for p in store.versions.iterdir()) == [mat.package_name(FP_A)]


def test_entries_classes_methods_and_errors(store: Store) -> None:
    files = {
        "stage.py": b"""\
class Trainer:
    def __init__(self):
        self.base = 100

    def fit(self, lr, epochs=1):
        return self.base + lr * epochs

    @staticmethod
    def plain(x):
        return -x

    @classmethod
    def build(cls, x):
        return (cls.__name__, x)


VALUE = 3
""",
    }
    mat.materialize(files, FP_A, store)
    cls = mat.load_entry(store, FP_A, "stage.py:Trainer")
    assert isinstance(cls, type) and cls().base == 100
    fit = mat.load_entry(store, FP_A, "stage.py:Trainer.fit")
    assert fit(lr=2, epochs=3) == 106
    assert list(inspect.signature(fit).parameters) == ["lr", "epochs"]
    assert mat.load_entry(store, FP_A, "stage.py:Trainer.plain")(2) == -2
    assert mat.load_entry(store, FP_A, "stage.py:Trainer.build")(1) == ("Trainer", 1)
    with pytest.raises(EntryNotFoundError, match="'missing' is not defined in module stage.py"):
        mat.load_entry(store, FP_A, "stage.py:missing")
    with pytest.raises(EntryNotFoundError, match="class Trainer"):
        mat.load_entry(store, FP_A, "stage.py:Trainer.nope")
    with pytest.raises(EntryNotFoundError, match="not callable"):
        mat.load_entry(store, FP_A, "stage.py:VALUE")
    with pytest.raises(EntryNotFoundError, match="not part of version"):
        mat.load_entry(store, FP_A, "other.py:f")
    with pytest.raises(EntryNotFoundError, match="not materialized"):
        mat.load_entry(store, FP_B, "stage.py:Trainer")


def test_whole_module_stage_runs_as_main_with_arguments(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    files = {
        "scripts/train.py": f"""\
import argparse
import sys

from helpers import double

parser = argparse.ArgumentParser()
parser.add_argument("--n", type=int)
parser.add_argument("--flag")
args = parser.parse_args()
if __name__ == "__main__":
    open({str(out)!r}, "w").write(f"{{double(args.n)}} {{args.flag}} {{sys.argv[0].endswith('train.py')}}")
""".encode(),
        "scripts/helpers.py": b"def double(x):\n    return 2 * x\n",
    }
    mat.materialize(files, FP_A, store, entry="scripts/train.py")
    argv = sys.argv[:]
    result = mat.run_module_as_main(store, FP_A, "scripts/train.py", ["--n=21", "--flag=true"])
    assert out.read_text() == "42 true True" and sys.argv == argv and result["args"].n == 21
    out.unlink()
    stage = mat.load_entry(store, FP_A, "scripts/train.py")
    assert stage(n=5, flag=False) is None and out.read_text() == "10 false True"
    with pytest.raises(StageFailedError, match="exited with status 2"):
        mat.run_module_as_main(store, FP_A, "scripts/train.py", ["--bogus"])
    assert sys.argv == argv


def test_params_to_argv() -> None:
    assert mat.params_to_argv({"n": 3, "lr": 0.5, "name": "x y", "on": True, "off": False, "none": None, "ks": [1, 2]}) == [
        "--n=3", "--lr=0.5", "--name=x y", "--on=true", "--off=false", "--none=null", "--ks=[1, 2]",
    ]  # fmt: skip


def test_src_layout_and_root_modules(store: Store) -> None:
    files = {
        "src/lib/__init__.py": b"",
        "src/lib/core.py": b"def f():\n    return 'src'\n",
        "tools.py": b"def g():\n    return 'root'\n",
        "jobs/run.py": b"import lib.core\nfrom tools import g\n\n\ndef main():\n    return lib.core.f(), g()\n",
    }
    mat.materialize(files, FP_A, store, entry="jobs/run.py:main")
    assert mat.load_entry(store, FP_A, "jobs/run.py:main")() == ("src", "root")


def test_bad_input(store: Store) -> None:
    with pytest.raises(MaterializeError, match="invalid fingerprint"):
        mat.materialize({}, "nope", store)
    for bad in ["../evil.py", "/abs.py", mat.INFO_FILE]:
        with pytest.raises(MaterializeError, match="project-relative"):
            mat.materialize({bad: b""}, FP_A, store)
    with pytest.raises(SourceError, match=r"bad\.py:2:"):
        mat.materialize({"bad.py": b"import os\ndef f(:\n"}, FP_B, store)
    assert not (store.versions / mat.package_name(FP_B)).exists()
    assert not [p for p in store.versions.iterdir() if p.name.startswith(".")]
    folder = mat.materialize(version(2), FP_A, store)
    (folder / mat.INFO_FILE).unlink()  # damaged by hand
    with pytest.raises(MaterializeError, match="unreadable") as info:
        mat.materialize(version(2), FP_A, store)
    assert "delete that folder" in info.value.hint


def test_two_fingerprints_sharing_a_package_name_are_refused(store: Store) -> None:
    folder = mat.materialize(version(2), FP_A, store)
    twin = FP_A[:-4] + ("0000" if not FP_A.endswith("0000") else "1111")  # same first 64 bits
    assert mat.package_name(twin) == folder.name
    with pytest.raises(MaterializeError, match="share the package name") as info:
        mat.materialize(version(3), twin, store)
    assert "collision" in info.value.hint
    assert json.loads((folder / mat.INFO_FILE).read_text())["fingerprint"] == FP_A  # the first is untouched


def test_files_are_read_only_to_materialize_a_new_version(store: Store) -> None:
    reads = []

    def files() -> dict[str, bytes]:
        reads.append(1)
        return version(2)

    first = mat.materialize(files, FP_A, store)
    assert mat.materialize(files, FP_A, store) == first and reads == [1]


def test_a_run_publishes_a_version_folder_only_after_every_file_is_on_disk(
    run_project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash of the machine right after the rename never leaves a torn file in a version."""
    from tests.helpers import mv

    spy = SyncSpy(monkeypatch)
    mv(run_project.root, "run")
    versions = run_project.root / ".modver" / mat.VERSIONS_DIR
    published = spy.published(versions)
    assert len(published) == 3  # prep, other, train
    for index, tmp, final in published:
        written = {p.relative_to(final).as_posix() for p in final.rglob("*")} | {"."}
        assert mat.INFO_FILE in written and any(name.endswith(".pyc") for name in written)
        assert written <= spy.synced_before(index, tmp), final.name
