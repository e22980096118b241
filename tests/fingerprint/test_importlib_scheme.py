"""``importlib.import_module("m")`` / ``__import__("m")`` of a project module (scheme mv3).

mv1/mv2 encoded such an import with the reference list of the reference before it in the unit
(and crashed with UnboundLocalError when there was none); mv3 encodes it as what it is, the
module, whole. Stages whose encoding is the same either way keep their digest.
"""

from __future__ import annotations

import textwrap

from modver.fingerprint import SummaryCache, fingerprint_stage, scheme_of
from modver.fingerprint._closure import ClosureBuilder
from modver.sourcetree import DictTree
from modver.store._rewrite import rewrite_source
from tests.helpers import GitProject, mv, mv_json

PLUGINS = "def p():\n    return 1\n"


def tree(main: str, **others: str) -> DictTree:
    return DictTree({"main.py": textwrap.dedent(main), "plugins.py": PLUGINS, **others})


def fp(files: DictTree, scheme: str | None = None) -> str:
    kw = {} if scheme is None else {"scheme": scheme}
    return fingerprint_stage(files, "main.py:run", cache=SummaryCache(), **kw).fingerprint


def import_refs(files: DictTree, scheme: str) -> list:
    """The encoded references of the ``<import plugins>`` pseudo-name, per unit that has one."""
    builder = ClosureBuilder(files, SummaryCache(), False, "main.py", scheme=scheme)
    _, _, records = builder.run("run", ())
    return [tokens for _kind, _digest, refs in records for chain, tokens in refs if chain == ("<import plugins>",)]


DUNDER = """
    def run():
        return __import__('plugins').p()
"""

IMPORTLIB = """
    import importlib

    def run():
        return importlib.import_module('plugins').p()
"""


def test_a_stage_whose_only_project_reference_is_dunder_import_fingerprints() -> None:
    files = tree(DUNDER)
    closure = fingerprint_stage(files, "main.py:run", cache=SummaryCache())  # mv2 raised UnboundLocalError
    assert closure.fingerprint.startswith("mv3:") and scheme_of(closure.fingerprint) == "mv3"
    assert closure.files == ("main.py", "plugins.py")
    assert fp(tree(DUNDER, **{"plugins.py": PLUGINS.replace("1", "2")})) != closure.fingerprint
    assert fp(tree(DUNDER, **{"plugins.py": "# a comment\n" + PLUGINS})) == closure.fingerprint
    assert fp(files, "mv3") == closure.fingerprint  # reproducible under the scheme its prefix names


def test_importlib_import_is_encoded_as_the_module_not_the_previous_reference() -> None:
    files = tree(IMPORTLIB)
    assert import_refs(files, "mv3") == [[("m", "plugins.py")]]
    stale = import_refs(files, "mv2")
    assert stale != [[("m", "plugins.py")]]  # mv2: the tokens of `importlib`, the reference before it
    digest = fp(files)
    assert digest.startswith("mv3:")
    old = fp(files, "mv2")
    assert old.startswith("mv1:") and old != digest  # the digest mv1/mv2 gave, still reproducible


def test_stages_without_a_project_importlib_import_keep_their_digests() -> None:
    plain = tree("""
        from plugins import p

        def run(name):
            import importlib
            return p(), importlib.import_module(name), importlib.import_module('json')
    """)
    assert fp(plain) == fp(plain, "mv2") and fp(plain).startswith("mv1:")


def test_an_import_whose_mv2_encoding_was_right_keeps_its_digest() -> None:
    same = tree("""
        import plugins

        def run():
            module = plugins
            return module, __import__('plugins')
    """)  # the reference before the import is the module, used as a value: the same tokens
    assert import_refs(same, "mv2") == import_refs(same, "mv3") == [[("m", "plugins.py")]]
    assert fp(same) == fp(same, "mv2") and not fp(same).startswith("mv3:")


def test_a_dunder_import_stage_is_versioned_through_the_cli(git_project: GitProject) -> None:
    """`modver snapshot` / `status` of such a stage said "internal error: UnboundLocalError"."""
    git_project.write("manifest.yaml", "stages:\n  load:\n    entry: main.py:run\n")
    git_project.write("main.py", textwrap.dedent(DUNDER))
    git_project.write("plugins.py", PLUGINS)
    git_project.write(".gitignore", ".modver/\n")
    git_project.commit("a stage that imports its plugins by name")
    mv(git_project.root, "snapshot")
    [version] = mv_json(git_project.root, "log", "load")
    assert version["fingerprint"].startswith("mv3:")
    assert "plugins.py" in mv(git_project.root, "show", "load@v1").stdout
    git_project.write("plugins.py", PLUGINS.replace("1", "2"))
    [status] = mv_json(git_project.root, "status")
    assert status["changed"] is True


def test_an_importlib_stage_runs_at_an_mv3_version(git_project: GitProject) -> None:
    git_project.write("manifest.yaml", "stages:\n  load:\n    entry: main.py:run\n")
    git_project.write("main.py", textwrap.dedent(IMPORTLIB))
    git_project.write("plugins.py", PLUGINS)
    git_project.write(".gitignore", ".modver/\n")
    git_project.commit("a stage that imports its plugins with importlib")
    record = mv_json(git_project.root, "run")
    assert record["status"] == "succeeded"
    assert record["fingerprints"]["load"].startswith("mv3:")
    assert mv_json(git_project.root, "run")["cached"] == {"load": True}


DUNDER_RUN = """
    import modver

    def run():
        plugins = __import__('plugins')  # the module
        tools = __import__('tools.scale')  # the top package, its submodule loaded
        scale = __import__('tools.scale', None, None, ['double'], 0)  # the submodule itself
        total = plugins.p() + tools.scale.double(2) + scale.double(3) + len(f"{__import__('plugins').p()}")
        modver.log_metrics(total=total)
        return total
"""


def test_a_dunder_import_stage_runs_from_its_version(git_project: GitProject) -> None:
    """`__import__('m')` and `__import__('a.b')` of project modules fingerprint (mv3) and run from
    the materialized version (before: ModuleNotFoundError), not from the working tree."""
    git_project.write("manifest.yaml", "stages:\n  load:\n    entry: main.py:run\n")
    git_project.write("main.py", textwrap.dedent(DUNDER_RUN))
    git_project.write("plugins.py", PLUGINS)
    git_project.write("tools/__init__.py", "")
    git_project.write("tools/scale.py", "def double(x):\n    return 2 * x\n")
    git_project.write(".gitignore", ".modver/\n")
    git_project.commit("a stage that imports its plugins with __import__")
    record = mv_json(git_project.root, "run")
    assert record["status"] == "succeeded" and record["metrics"] == {"total": 1 + 4 + 6 + 1}
    assert record["fingerprints"]["load"].startswith("mv3:")
    mv(git_project.root, "pin", "load@v1")
    git_project.write("plugins.py", PLUGINS.replace("1", "100"))  # the working tree moves on
    git_project.write("tools/scale.py", "def double(x):\n    return 0\n")
    again = mv_json(git_project.root, "run", "--force", "load")
    assert again["metrics"] == {"total": 12} and again["versions"]["load"] == "v1"  # the version's code ran


class _Locator:
    """Project modules ``plugins`` and ``tools.*``, in the package ``_modver_x``."""

    def target(self, dotted: str, importer: str) -> str | None:
        return f"_modver_x.{dotted}" if dotted.split(".")[0] in ("plugins", "tools") else None

    def run_file(self, literal: str) -> str | None:
        return None


def test_the_rewrite_of_dunder_import_keeps_lines_and_leaves_relative_and_foreign_imports() -> None:
    source = textwrap.dedent("""
        a = __import__('plugins')
        b = __import__(
            "tools.scale",
            fromlist=["double"],
        )
        c = __import__('plugins', globals(), None, [], 1)  # relative: as written
        d = __import__('json'), __import__(name), f"{__import__('plugins')}"
    """).encode()
    out = rewrite_source(source, "main.py", _Locator()).decode()
    assert out.count("\n") == source.decode().count("\n")
    helper = "materialize.version_import"
    assert f'a = __import__("modver.materialize").{helper}("_modver_x.plugins", "plugins")' in out
    assert f'{helper}(\n    "_modver_x.tools.scale", "tools.scale",\n    fromlist=["double"],\n)' in out
    assert "c = __import__('plugins', globals(), None, [], 1)" in out
    assert "__import__('json'), __import__(name)" in out
    assert f"""f"{{__import__('modver.materialize').{helper}('_modver_x.plugins', 'plugins')}}\"""" in out
