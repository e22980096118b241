"""fingerprint_stage: project-level closures over multi-file trees."""

from __future__ import annotations

import textwrap

import pytest

from modver.errors import EntryNotFoundError, SourceError
from modver.fingerprint import SummaryCache, fingerprint_source, fingerprint_stage
from modver.sourcetree import DictTree, WorkingTree


def make(files):
    return DictTree({path: textwrap.dedent(text) for path, text in files.items()})


def stage(files, entry, deps=(), **kw):
    return fingerprint_stage(make(files), entry, deps, cache=SummaryCache(), **kw)


def assert_reproducible(files, entry, deps=()):
    """A tree holding only Closure.files gives the same fingerprint (the history relies on it)."""
    full = stage(files, entry, deps)
    kept = {path: files[path] for path in full.files}
    again = stage(kept, entry, deps)
    assert again.fingerprint == full.fingerprint
    assert again.files == full.files
    return full


PROJECT = {
    "pipeline/__init__.py": "",
    "pipeline/helpers.py": """
        import numpy as np
        SCALE = 2

        def norm(x):
            return np.asarray(x) * SCALE

        def unused():
            return 0
    """,
    "pipeline/model.py": """
        from pipeline.helpers import norm
        from . import helpers
        from .base import Base

        class Model(Base):
            def fit(self, x):
                return helpers.norm(x) + norm(x)

        def train(data, C=1.0):
            return Model().fit(data) * C
    """,
    "pipeline/base.py": """
        class Base:
            def __init__(self):
                self.ready = True
    """,
    "other.py": "def unrelated():\n    return 1\n",
}
PROJECT = {path: textwrap.dedent(text) for path, text in PROJECT.items()}


def edit(files, path, old, new):
    changed = dict(files)
    assert old in changed[path]
    changed[path] = changed[path].replace(old, new)
    return changed


def test_closure_contents():
    closure = assert_reproducible(PROJECT, "pipeline/model.py:train")
    assert closure.fingerprint.startswith("mv1:")
    assert closure.entry == "pipeline/model.py:train"
    assert closure.files == (
        "pipeline/__init__.py",
        "pipeline/base.py",
        "pipeline/helpers.py",
        "pipeline/model.py",
    )
    names = [(d.path, d.name, d.kind) for d in closure.definitions]
    assert names[0] == ("pipeline/model.py", "train", "function")
    assert ("pipeline/helpers.py", "norm", "function") in names
    assert ("pipeline/helpers.py", "SCALE", "assignment") in names
    assert ("pipeline/base.py", "Base", "class") in names
    assert ("pipeline/helpers.py", "np", "import") in names
    assert not any(d.name == "unused" for d in closure.definitions)
    train = closure.definitions[0]
    assert (train.line, train.end_line) == (10, 11)
    assert closure.unresolved == ()


@pytest.mark.parametrize(
    "path,old,new",
    [
        ("pipeline/helpers.py", "SCALE = 2", "SCALE = 3"),
        ("pipeline/helpers.py", "np.asarray(x)", "np.array(x)"),
        ("pipeline/helpers.py", "import numpy as np", "import cupy as np"),
        ("pipeline/base.py", "self.ready = True", "self.ready = False"),
        ("pipeline/model.py", "C=1.0", "C=2.0"),
        ("pipeline/__init__.py", "", "import logging\nlogging.basicConfig()\n"),
        ("pipeline/helpers.py", "SCALE = 2\n", "SCALE = 2\nnp.random.seed(0)\n"),
    ],
)
def test_changed_by_reached_edits(path, old, new):
    base = stage(PROJECT, "pipeline/model.py:train").fingerprint
    assert stage(edit(PROJECT, path, old, new), "pipeline/model.py:train").fingerprint != base


@pytest.mark.parametrize(
    "path,old,new",
    [
        ("pipeline/helpers.py", "return 0", "return 1"),
        ("other.py", "return 1", "return 2"),
        ("pipeline/helpers.py", "def norm(x):", "# comment\n\ndef norm(  x,  ):"),
        ("pipeline/helpers.py", "SCALE = 2\n", "SCALE = 2\nif __name__ == '__main__':\n    print(1)\n"),
    ],
)
def test_unchanged_by_unreached_edits(path, old, new):
    base = stage(PROJECT, "pipeline/model.py:train").fingerprint
    assert stage(edit(PROJECT, path, old, new), "pipeline/model.py:train").fingerprint == base


def test_seed_edit_in_imported_module():
    a = edit(PROJECT, "pipeline/helpers.py", "SCALE = 2\n", "SCALE = 2\nnp.random.seed(0)\n")
    b = edit(PROJECT, "pipeline/helpers.py", "SCALE = 2\n", "SCALE = 2\nnp.random.seed(1)\n")
    assert stage(a, "pipeline/model.py:train").fingerprint != stage(b, "pipeline/model.py:train").fingerprint


def test_moving_a_helper_to_another_file():
    single = {
        "train.py": """
            import numpy as np
            K = 3
            def helper(x):
                return np.sum(x) * K
            def train(x):
                return helper(x)
        """
    }
    single = {path: textwrap.dedent(text) for path, text in single.items()}
    moved = {
        "train.py": """
            from utils.maths import helper
            def train(x):
                return helper(x)
        """,
        "utils/__init__.py": "",
        "utils/maths.py": """
            import numpy as np
            def helper(x):
                return np.sum(x) * K
            K = 3
        """,
    }
    moved = {path: textwrap.dedent(text) for path, text in moved.items()}
    assert stage(single, "train.py:train").fingerprint == stage(moved, "train.py:train").fingerprint
    assert stage(single, "train.py:train").fingerprint == fingerprint_source(
        textwrap.dedent(single["train.py"]), "train"
    )
    assert_reproducible(moved, "train.py:train")


def test_src_layout_and_entry_folder():
    files = {
        "src/mylib/__init__.py": "",
        "src/mylib/core.py": "def f():\n    return 1\n",
        "scripts/run.py": "from mylib.core import f\nfrom local_helper import g\ndef main():\n    return f() + g()\n",
        "scripts/local_helper.py": "def g():\n    return 2\n",
    }
    closure = assert_reproducible(files, "scripts/run.py:main")
    assert "src/mylib/core.py" in closure.files and "scripts/local_helper.py" in closure.files
    assert "src/mylib/__init__.py" in closure.files
    changed = edit(files, "src/mylib/core.py", "return 1", "return 5")
    assert stage(changed, "scripts/run.py:main").fingerprint != closure.fingerprint


def test_import_module_attribute_chains_and_submodules():
    files = {
        "pkg/__init__.py": "",
        "pkg/sub/__init__.py": "",
        "pkg/sub/mod.py": "def f():\n    return 1\ndef g():\n    return 2\n",
        "main.py": "import pkg.sub.mod\nimport pkg.sub.mod as m\ndef run():\n    return pkg.sub.mod.f() + m.f()\n",
    }
    closure = assert_reproducible(files, "main.py:run")
    assert [d.name for d in closure.definitions] == ["run", "f"]
    assert (
        stage(edit(files, "pkg/sub/mod.py", "return 2", "return 3"), "main.py:run").fingerprint == closure.fingerprint
    )
    assert (
        stage(edit(files, "pkg/sub/mod.py", "return 1", "return 3"), "main.py:run").fingerprint != closure.fingerprint
    )


def test_relative_imports_levels():
    files = {
        "a/__init__.py": "",
        "a/b/__init__.py": "from .impl import VALUE\n",
        "a/b/impl.py": "VALUE = 1\n",
        "a/c/user.py": "from ..b import VALUE\nfrom .. import b\ndef use():\n    return VALUE + b.VALUE\n",
    }
    closure = assert_reproducible(files, "a/c/user.py:use")
    assert "a/b/impl.py" in closure.files
    assert stage(edit(files, "a/b/impl.py", "1", "2"), "a/c/user.py:use").fingerprint != closure.fingerprint


def test_cycles_between_modules():
    files = {
        "a.py": "import b\ndef fa(n):\n    return n and b.fb(n - 1)\n",
        "b.py": "from a import fa\ndef fb(n):\n    return fa(n)\n",
    }
    closure = assert_reproducible(files, "a.py:fa")
    assert {d.name for d in closure.definitions} == {"fa", "fb"}
    assert stage(edit(files, "b.py", "fa(n)", "fa(n + 0)"), "a.py:fa").fingerprint != closure.fingerprint


def test_function_local_imports_are_followed():
    files = {
        "main.py": "def run():\n    from helpers import h\n    import helpers as hh\n    return h() + hh.k()\n",
        "helpers.py": "def h():\n    return 1\ndef k():\n    return 2\ndef z():\n    return 3\n",
    }
    closure = assert_reproducible(files, "main.py:run")
    assert {d.name for d in closure.definitions} == {"run", "h", "k"}
    assert stage(edit(files, "helpers.py", "return 3", "return 4"), "main.py:run").fingerprint == closure.fingerprint


def test_conditional_project_import():
    files = {
        "main.py": "try:\n    from fast import f\nexcept ImportError:\n    from slow import f\ndef run():\n    return f()\n",
        "fast.py": "def f():\n    return 1\n",
        "slow.py": "def f():\n    return 2\n",
    }
    closure = assert_reproducible(files, "main.py:run")
    assert stage(edit(files, "slow.py", "2", "3"), "main.py:run").fingerprint != closure.fingerprint


def test_star_import_fallback():
    files = {
        "main.py": "from helpers import *\ndef run():\n    return h()\n",
        "helpers.py": "def h():\n    return 1\ndef other():\n    return 2\n",
    }
    closure = assert_reproducible(files, "main.py:run")
    assert any("import *" in u.reason for u in closure.unresolved)
    assert stage(edit(files, "helpers.py", "return 2", "return 3"), "main.py:run").fingerprint != closure.fingerprint


def test_getattr_fallback():
    files = {
        "main.py": "import helpers\ndef run(name):\n    return getattr(helpers, name)()\n",
        "helpers.py": "def a():\n    return 1\ndef b():\n    return 2\n",
    }
    closure = assert_reproducible(files, "main.py:run")
    assert [u.reason for u in closure.unresolved] == ["getattr() on module helpers.py"]
    assert closure.unresolved[0].included == "whole module helpers.py"
    assert stage(edit(files, "helpers.py", "return 2", "return 3"), "main.py:run").fingerprint != closure.fingerprint


def test_importlib_fallbacks():
    files = {
        "main.py": (
            "import importlib\n"
            "def run(name):\n"
            "    m = importlib.import_module('plugins')\n"
            "    return m, importlib.import_module(name)\n"
        ),
        "plugins.py": "def p():\n    return 1\n",
    }
    closure = assert_reproducible(files, "main.py:run")
    reasons = sorted(u.reason for u in closure.unresolved)
    assert reasons == ["import of a module named at run time", "importlib import of plugins"]
    assert stage(edit(files, "plugins.py", "1", "2"), "main.py:run").fingerprint != closure.fingerprint


def test_eval_includes_whole_module():
    files = {"main.py": "def a():\n    return 1\ndef run(s):\n    return eval(s)\n"}
    closure = stage(files, "main.py:run")
    assert closure.unresolved and closure.unresolved[0].reason == "eval() in main.py"
    assert stage(edit(files, "main.py", "return 1", "return 2"), "main.py:run").fingerprint != closure.fingerprint


def test_class_bases_across_files_and_method_entry():
    files = {
        "base.py": "class Base:\n    def hook(self):\n        return 1\n",
        "model.py": "from base import Base\nclass M(Base):\n    def fit(self):\n        return self.hook()\n",
    }
    closure = assert_reproducible(files, "model.py:M.fit")
    assert stage(edit(files, "base.py", "return 1", "return 2"), "model.py:M.fit").fingerprint != closure.fingerprint


def test_whole_module_stage_includes_its_main_block():
    files = {
        "train.py": "import helpers\nprint(helpers.f())\nif __name__ == '__main__':\n    print(2)\n",
        "helpers.py": "def f():\n    return 1\nif __name__ == '__main__':\n    f()\n",
    }
    closure = assert_reproducible(files, "train.py")
    assert stage(edit(files, "train.py", "print(2)", "print(3)"), "train.py").fingerprint != closure.fingerprint
    assert stage(edit(files, "helpers.py", "    f()", "    f(); f()"), "train.py").fingerprint == closure.fingerprint


def test_deps_are_included_whole():
    files = dict(PROJECT, **{"config.yaml": "lr: 0.1\n", "extra.py": "A = 1\n"})
    closure = assert_reproducible(files, "pipeline/model.py:train", deps=("config.yaml", "extra.py"))
    assert closure.deps == ("config.yaml", "extra.py")
    assert "config.yaml" in closure.files and "extra.py" in closure.files
    base = closure.fingerprint
    assert (
        stage(
            edit(files, "config.yaml", "0.1", "0.2"), "pipeline/model.py:train", ("config.yaml", "extra.py")
        ).fingerprint
        != base
    )
    assert (
        stage(
            edit(files, "extra.py", "A = 1", "A = 2"), "pipeline/model.py:train", ("config.yaml", "extra.py")
        ).fingerprint
        != base
    )
    assert (
        stage(
            edit(files, "extra.py", "A = 1", "A = 1  # c"), "pipeline/model.py:train", ("config.yaml", "extra.py")
        ).fingerprint
        == base
    )
    with pytest.raises(EntryNotFoundError):
        stage(files, "pipeline/model.py:train", ("missing.txt",))


def test_shadowing_by_new_local_file_changes_resolution():
    files = {"main.py": "import json\ndef run():\n    return json.dumps(1)\n"}
    base = stage(files, "main.py:run")
    assert base.files == ("main.py",)
    shadowed = dict(files, **{"json.py": "def dumps(x):\n    return 'mine'\n"})
    assert stage(shadowed, "main.py:run").fingerprint != base.fingerprint


def test_errors():
    with pytest.raises(EntryNotFoundError) as info:
        stage(PROJECT, "pipeline/missing.py:train")
    assert "pipeline/missing.py" in str(info.value)
    with pytest.raises(EntryNotFoundError) as info:
        stage(PROJECT, "pipeline/model.py:nope")
    assert "train" in str(info.value) and "Model" in str(info.value)
    broken = edit(PROJECT, "pipeline/helpers.py", "def norm(x):", "def norm(x:")
    with pytest.raises(SourceError) as info:
        stage(broken, "pipeline/model.py:train")
    assert str(info.value).startswith("pipeline/helpers.py:")
    latin = {"m.py": "# -*- coding: latin-1 -*-\ndef f():\n    return 'caf\xe9'\n".encode("latin-1")}
    assert fingerprint_stage(DictTree(latin), "m.py:f").fingerprint == fingerprint_source(
        "def f():\n    return 'caf\xe9'\n", "f"
    )
    with pytest.raises(SourceError):
        fingerprint_stage(DictTree({"m.py": b"def f():\n    return '\xff'\n"}), "m.py:f")
    with pytest.raises(SourceError):
        fingerprint_stage(DictTree({"m.py": b"x = 1\0\n"}), "m.py")


def test_working_tree_matches_dict_tree(tmp_path):
    for path, text in PROJECT.items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))
    on_disk = fingerprint_stage(WorkingTree(tmp_path), "pipeline/model.py:train", cache=SummaryCache())
    assert on_disk == stage(PROJECT, "pipeline/model.py:train")


def test_long_chains_do_not_crash():
    n = 1500
    funcs = "".join(f"def f{i}():\n    return f{i + 1}()\n" for i in range(n)) + f"def f{n}():\n    return 0\n"
    closure = stage({"m.py": funcs}, "m.py:f0")
    assert len(closure.definitions) == n + 1
    modules = {f"m{i}.py": f"from m{i + 1} import g\n" for i in range(400)}
    modules["m400.py"] = "def g():\n    return 1\n"
    modules["main.py"] = "from m0 import g\ndef run():\n    return g()\n"
    closure = stage(modules, "main.py:run")
    assert [d.name for d in closure.definitions] == ["run", "g"]
    assert len(closure.files) == 402


def test_stage_deterministic_across_processes():
    import json
    import subprocess
    import sys

    code = (
        "import json, sys; from modver.sourcetree import DictTree;"
        "from modver.fingerprint import fingerprint_stage;"
        "files = json.loads(sys.stdin.read());"
        "print(fingerprint_stage(DictTree(files), 'pipeline/model.py:train').fingerprint)"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(PROJECT),
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("3", "31337")
    }
    assert outs == {stage(PROJECT, "pipeline/model.py:train").fingerprint}


def test_import_files_are_what_loading_the_closure_imports_beyond_it():
    from modver.fingerprint import import_files

    files = {
        "pkg/__init__.py": "from pkg import registry\n",
        "pkg/registry.py": "ITEMS = []\n",
        "pkg/util.py": """
            import os
            import pkg.sub.deep
            from . import certs
            from .config import *
            try:
                from pkg.fast import speedup
            except ImportError:
                speedup = None

            def used(x):
                return x + 1
        """,
        "pkg/certs.py": "from .util import used\n\ndef where():\n    return used(1)\n",  # a cycle
        "pkg/config.py": "DEBUG = False\n",
        "pkg/fast.py": "def speedup():\n    pass\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/deep.py": "import json\n",
        "pkg/unrelated.py": "X = 1\n",
        "stage.py": "from pkg.util import used\n\ndef run(x):\n    return used(x)\n",
    }
    tree = make(files)
    closure = fingerprint_stage(tree, "stage.py:run", cache=SummaryCache())
    assert set(closure.files) == {"stage.py", "pkg/__init__.py", "pkg/util.py", "pkg/config.py"}  # * is in
    extra = import_files(tree, closure, cache=SummaryCache())
    assert extra == ("pkg/certs.py", "pkg/fast.py", "pkg/registry.py", "pkg/sub/__init__.py", "pkg/sub/deep.py")
    # not in the fingerprint: an unused module's edits make no new version
    edited = dict(files, **{"pkg/registry.py": "ITEMS = [1]\n"})
    assert fingerprint_stage(make(edited), "stage.py:run", cache=SummaryCache()).fingerprint == closure.fingerprint
