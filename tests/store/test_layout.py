"""Store: every path of the store named once, the same as 0.1's and today's, the git side in the
git common directory, and plain enough to pickle."""

from __future__ import annotations

import pickle
from pathlib import Path

from modver._git import GitRepo
from modver.store.layout import Store
from tests.helpers import GitProject

# the on-disk layout modver 0.1 wrote and reads: a change here is a format change, not a refactor
LAYOUT = {
    "path": ".modver",
    "runs": ".modver/runs",
    "outputs": ".modver/cache/outputs",
    "parse_cache": ".modver/cache/parse",
    "manifest_cache": ".modver/cache/manifests",
    "data_hashes": ".modver/cache/data.json",
    "runs_index": ".modver/cache/runs-index.sqlite",
    "versions": ".modver/versions",
    "sweeps": ".modver/sweeps",
    "index_state": ".modver/index.json",
    "gc_lock": ".modver/locks/gc.lock",
    "cluster_logs": ".modver/logs/cluster",
    "tmp": ".modver/tmp",
    "report": ".modver/report.html",
    "config": "modver.toml",
    "git_modver": ".git/modver",
    "numbering_lock": ".git/modver/numbering",
    "renumber_journal": ".git/modver/renumber.json",
}


def test_every_path_is_the_one_the_store_has_always_had(tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert {name: getattr(store, name).relative_to(tmp_path).as_posix() for name in LAYOUT} == LAYOUT
    assert store.manifest_lock("ab12").relative_to(tmp_path).as_posix() == ".modver/locks/manifest-ab12.lock"
    assert Store.around(store.versions / "_modver_0123456789abcdef") == store


def test_make_gives_the_store_a_gitignore_of_everything_once(tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert not store.path.exists()
    assert store.make() is store and (store.path / ".gitignore").read_text().splitlines()[-1] == "*"
    (store.path / ".gitignore").write_text("kept\n")
    store.make()
    assert (store.path / ".gitignore").read_text() == "kept\n"  # there already: left as it is


def test_a_store_pickles_and_its_parts_open_where_it_says(tmp_path: Path) -> None:
    store = Store(tmp_path, tmp_path / "elsewhere.git")
    assert pickle.loads(pickle.dumps(store)) == store
    assert store.output_cache().root == store.outputs and store.output_cache().fetch is not None
    assert store.run_store().root == store.runs and store.run_store().on_final is not None
    assert store.run_index().path == store.runs_index and store.run_index().runs.root == store.runs
    assert store.git_modver == tmp_path / "elsewhere.git" / "modver"


def test_no_modver_toml_no_storage_asked(tmp_path: Path) -> None:
    """Without modver.toml the cache's fallback answers at once that nothing came."""
    store = Store(tmp_path)
    fetch = store.output_cache().fetch
    assert fetch is not None and not fetch("0" * 32)


def test_a_linked_worktree_keeps_the_git_side_in_the_common_dir(tmp_path: Path) -> None:
    (tmp_path / "main").mkdir()
    main = GitProject(tmp_path / "main")
    main.write("a.py", "x = 1\n")
    main.commit("a")
    linked = tmp_path / "linked"
    main.git("worktree", "add", "-q", str(linked))
    with GitRepo.discover(linked) as repo:
        store = Store.of(repo)
    assert store.path == linked.resolve() / ".modver"  # each worktree its own .modver/
    assert store.numbering_lock.resolve() == main.root.resolve() / ".git" / "modver" / "numbering"  # one for all
