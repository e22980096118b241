"""Where modver keeps things: :class:`Store` names every path of the store, once.

A project's store is two folders (docs/storage.md)::

    <root>/.modver/                 git-ignored (its own .gitignore says "*")
        runs/<run-id>/              run records and what each stage printed (store.runstore)
        cache/outputs/<key-hex>/    cached stage outputs (store.cache)
        cache/parse/                parsed module summaries (modver.fingerprint)
        cache/manifests/            validated manifests, by content
        cache/data.json             content hashes of data inputs (store.data)
        cache/runs-index.sqlite     the runs index, a cache of the records (store.runindex)
        versions/_modver_<hex16>/   materialized versions (store.materialize)
        sweeps/<sweep-id>.json      sweep records (store.sweepstore)
        studies/<name>/             a search's Optuna study: journal.log, sampler.pkl (sweep.search)
        index.json                  how far `modver index` walked (engine.indexer)
        locks/                      gc.lock, manifest-<hash>.lock
        logs/cluster/               what Dask logged, and detached sweeps' driver output
        tmp/                        temporary files (the store's file system: renames are atomic)
        report.html                 `modver report`'s default page
    <git common dir>/modver/        shared by every worktree of the repository, like the refs
        numbering                   the numbering lock (store.history)
        renumber.json               a pull's renumbering journal (share.versions)

and ``<root>/modver.toml`` names the team's storage (store.storage).

A :class:`Store` is made once, by the façade, from the repository's root and its git common
directory, and passed down; nothing else spells these paths. It is plain paths, so it pickles:
a stage task carries it to any process; ``Store(tmp_path)`` is a store of its own for a test. It also opens the parts of the store that are wired
together: the output cache with the team's storage as its fallback, and the run records whose
final writes go through to the runs index (:meth:`Store.output_cache`, :meth:`Store.run_store`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from modver import _fs

if TYPE_CHECKING:  # pragma: no cover
    from modver._git import GitRepo
    from modver.store.cache import OutputCache
    from modver.store.runindex import RunIndex
    from modver.store.runstore import RunStore

__all__ = ["STORE_DIR", "VERSIONS_DIR", "Store"]

STORE_DIR = ".modver"
VERSIONS_DIR = "versions"
_GITIGNORE = "# made by modver: git ignores the whole store\n*\n"


@dataclass(frozen=True)
class Store:
    """The store of the project at ``root`` (see the module docstring). ``git_dir`` is the git
    common directory (default ``root/.git``; a linked worktree's is its main repository's)."""

    root: Path
    git_dir: Path | None = None

    @classmethod
    def of(cls, repo: GitRepo) -> Store:
        """The store of an opened repository."""
        return cls(repo.root, repo.common_dir)

    @classmethod
    def around(cls, version_folder: Path) -> Store:
        """The store whose ``versions/`` holds ``version_folder`` (``<root>/.modver/versions/_modver_X``):
        materialized code knows only its ``__file__``."""
        return cls(version_folder.parents[2])

    def make(self) -> Store:
        """Make ``.modver/`` if it is missing, with a ``.gitignore`` of ``*`` inside, so git ignores
        the store whichever command makes it first, without editing any file of the user's."""
        if not (self.path / ".gitignore").is_file():
            with _fs.write_faults(f"cannot make the store {self.path}", str(self.path)):
                self.path.mkdir(exist_ok=True)
                _fs.write_text_atomic(self.path / ".gitignore", _GITIGNORE)
        return self

    # -- .modver/ -------------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """``.modver/`` itself."""
        return self.root / STORE_DIR

    @property
    def runs(self) -> Path:
        return self.path / "runs"

    @property
    def outputs(self) -> Path:
        return self.path / "cache" / "outputs"

    @property
    def parse_cache(self) -> Path:
        return self.path / "cache" / "parse"

    @property
    def manifest_cache(self) -> Path:
        return self.path / "cache" / "manifests"

    @property
    def data_hashes(self) -> Path:
        return self.path / "cache" / "data.json"

    @property
    def runs_index(self) -> Path:
        return self.path / "cache" / "runs-index.sqlite"

    @property
    def versions(self) -> Path:
        return self.path / VERSIONS_DIR

    @property
    def sweeps(self) -> Path:
        return self.path / "sweeps"

    @property
    def explain(self) -> Path:
        """``explain/``: ``blames/<id>.json`` (each blame's result) and ``data/<hash>/`` (data bytes
        a blame restored from git to revert a data input)."""
        return self.path / "explain"

    @property
    def studies(self) -> Path:
        """A search's Optuna study: ``studies/<name>/journal.log`` (and its sampler's state)."""
        return self.path / "studies"

    @property
    def index_state(self) -> Path:
        return self.path / "index.json"

    @property
    def gc_lock(self) -> Path:
        return self.path / "locks" / "gc.lock"

    def manifest_lock(self, key: str) -> Path:
        """The lock of one manifest file (``key``: a digest of its real path)."""
        return self.path / "locks" / f"manifest-{key}.lock"

    @property
    def cluster_logs(self) -> Path:
        return self.path / "logs" / "cluster"

    @property
    def tmp(self) -> Path:
        return self.path / "tmp"

    @property
    def report(self) -> Path:
        return self.path / "report.html"

    # -- beside it ------------------------------------------------------------------------------

    @property
    def config(self) -> Path:
        """``modver.toml`` at the project root (committed): the team's storage."""
        return self.root / "modver.toml"

    @property
    def git_modver(self) -> Path:
        """``<git common dir>/modver/``."""
        return (self.git_dir if self.git_dir is not None else self.root / ".git") / "modver"

    @property
    def numbering_lock(self) -> Path:
        return self.git_modver / "numbering"

    @property
    def renumber_journal(self) -> Path:
        return self.git_modver / "renumber.json"

    # -- the parts wired together ---------------------------------------------------------------

    def output_cache(self) -> OutputCache:
        """The cached outputs; an entry missing here that the team's storage has is fetched from it
        (:func:`modver.store.storage.fetch_output`)."""
        from modver.store.cache import OutputCache

        return OutputCache(self.outputs, fetch=self._fetch_output)

    def _fetch_output(self, hexkey: str) -> bool:
        if not self.config.is_file():  # no modver.toml: nothing to ask (and fsspec never loaded)
            return False
        from modver.store.storage import fetch_output

        return fetch_output(self, hexkey)

    def run_store(self) -> RunStore:
        """The run records; a record's final write is indexed at once (:meth:`RunIndex.note`)."""
        from modver.store.runstore import RunStore

        return RunStore(self.runs, on_final=self._note_run)

    def _note_run(self, run_id: str) -> None:
        from modver.store.runindex import NOTE_SECONDS

        self.run_index(NOTE_SECONDS).note(run_id)

    def run_index(self, busy: float | None = None) -> RunIndex:
        """The runs index (``busy``: how long a write waits for another process's, default
        :data:`~modver.store.runindex.BUSY_SECONDS`)."""
        from modver.store.runindex import BUSY_SECONDS, RunIndex
        from modver.store.runstore import RunStore

        return RunIndex(RunStore(self.runs), self.runs_index, BUSY_SECONDS if busy is None else busy)
