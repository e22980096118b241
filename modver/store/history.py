"""Stage histories: each stage's versions, a chain of commits under ``refs/modver/stages/<stage>``.

Layout (see docs/storage.md):

- ``refs/modver/stages/<stage>``: one commit per version, parent = the previous version. Its
  tree holds ``meta.json`` (sorted keys, indent 2) and ``src/<path>`` for every file of the
  version's closure (the same git blob as in the user's tree: nothing is stored twice).
  Author and committer ``modver <modver@localhost>``, message ``<stage> v<N>: <message>``.
- ``refs/modver/tags/<stage>/<name>``: a named version (points at its commit).
- ``refs/modver/notes/committed``: where a working-tree version was later found committed
  (:mod:`modver.store.notes`).

Registration is compare-and-swap on the stage ref, retried: concurrent processes never lose a
version nor give two fingerprints one number. Branches, HEAD, the index and the working tree
are never touched. Git access goes through :mod:`modver._git` only.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modver import _fs, errors
from modver._git import GitRepo, GitTree
from modver._git.faults import write_failure
from modver.models import Closure, Definition, SourceTree, StageVersion, Unresolved
from modver.names import did_you_mean, is_name, validate_name
from modver.store.layout import Store
from modver.store.notes import COMMITTED_REF, CommittedNotes

if TYPE_CHECKING:
    from modver.fingerprint import SummaryCache

__all__ = [
    "COMMITTED_REF",
    "STAGES_PREFIX",
    "TAGS_PREFIX",
    "History",
    "load_index_state",
    "save_index_state",
]

STAGES_PREFIX = "refs/modver/stages/"
TAGS_PREFIX = "refs/modver/tags/"
_SCHEME_PREFIX = re.compile(r"mv\d+:\Z")  # a fingerprint's scheme ("mv1:", "mv2:", docs/fingerprint.md)
META = "meta.json"
SRC = "src"

_VERSION = re.compile(r"v(\d+)\Z")
_HEX_PREFIX = re.compile(r"[0-9a-fA-F]{6,64}\Z")
_RESERVED = ("latest", "working")
_MAX_WAIT = 30.0  # seconds of retrying a contended compare-and-swap before giving up


@dataclass
class _Chain:
    """The parsed versions of one stage at one ref tip (cache entry)."""

    tip: str
    versions: list[StageVersion]  # without tags
    by_fingerprint: dict[str, StageVersion]
    by_commit: dict[str, StageVersion]


@dataclass
class _Pending:
    """Versions of one stage registered inside :meth:`History.batch`, not yet on the ref."""

    base: str | None  # the ref's tip when the batch started using it
    chain: _Chain
    registrations: list[tuple[Closure, dict[str, str], str | None, str, datetime]]


def _iso(created: datetime | None) -> datetime:
    when = created or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).replace(microsecond=0)


def _commit_message(stage: str, number: int, message: str) -> str:
    """``<stage> v<N>: <first line>``, then the rest of a multi-line message."""
    first, _, rest = message.strip().partition("\n")
    subject = f"{stage} v{number}: {first.strip()}".rstrip()
    return f"{subject}\n\n{rest.strip()}\n" if rest.strip() else subject + "\n"


def _bare_fingerprint(text: str) -> str:
    return text.split(":", 1)[1] if ":" in text else text


def tag_name_problem(name: str) -> errors.InvalidNameError | None:
    """Why ``name`` cannot be a tag (not a name, or one that already means something in a
    version reference: ``latest``, ``working``, ``vN``, 6+ hex digits), or None."""
    try:
        validate_name(name, "tag")
    except errors.InvalidNameError as exc:
        return exc
    if name in _RESERVED or _VERSION.match(name) or _HEX_PREFIX.match(name):
        return errors.InvalidNameError(
            f"invalid tag name {name!r}: 'latest', 'working', vN and 6+ hex digits "
            "already mean something in a version reference",
            hint="choose another name, e.g. 'best' or 'baseline'",
        )
    return None


class _CorruptHistory(errors.StoreError):
    """A commit of a stage's history that is no version of it; ``why`` says what is wrong."""

    def __init__(self, message: str, why: str, *, where: str, hint: str):
        super().__init__(message, where=where, hint=hint)
        self.why = why


@dataclass(frozen=True)
class Incoming:
    """A chain of versions from elsewhere (a remote), read without trusting it: the versions that
    read as the next versions, oldest first, up to the first that does not (``bad``), why it does
    not, and the commits after it."""

    versions: list[StageVersion]
    bad: str | None = None
    why: str = ""
    after: tuple[str, ...] = ()


class History:
    """The versions of every stage of one repository."""

    def __init__(self, repo: GitRepo):
        self.repo = repo
        self._chains: dict[str, _Chain] = {}
        self._metas: dict[str, dict[str, Any]] = {}
        self._batch: dict[str, _Pending] | None = None
        self.rebased: set[str] = set()  # stages whose batch was re-registered on a moved ref
        self._notes = CommittedNotes(repo)

    # -- reading ----------------------------------------------------------------------------

    @staticmethod
    def ref(stage: str) -> str:
        """The ref holding ``stage``'s history."""
        return STAGES_PREFIX + validate_name(stage)

    def stages(self) -> list[str]:
        """Names of stages that have a history, sorted (a ref whose name is no stage name, which
        only git itself can have made, is not one)."""
        names = (name[len(STAGES_PREFIX) :] for name in self.repo.list_refs(STAGES_PREFIX))
        return sorted(name for name in names if is_name(name))

    def _chain(self, stage: str) -> _Chain | None:
        if self._batch is not None and stage in self._batch:
            return self._batch[stage].chain
        tip = self.repo.read_ref(self.ref(stage))
        if tip is None:
            return None
        cached = self._chains.get(stage)
        if cached is not None and cached.tip == tip:
            return cached
        chain = self._parse_chain(stage, tip, cached)
        self._chains[stage] = chain
        return chain

    def _parse_chain(self, stage: str, tip: str, cached: _Chain | None) -> _Chain:
        """The chain of versions ending at commit ``tip``, reusing ``cached`` where it is a prefix."""
        # walk back from the tip until the cached tip (appends only) or the first version
        fresh: list[str] = []
        sha: str | None = tip
        base: list[StageVersion] = []
        while sha is not None:
            if cached is not None and sha == cached.tip:
                base = list(cached.versions)
                break
            fresh.append(sha)
            parents = self.repo.commit_parents(sha)
            if len(parents) > 1:
                raise self._corrupt(stage, sha, "a history commit has several parents")
            sha = parents[0] if parents else None
        versions = base
        by_fingerprint = {v.fingerprint: v for v in versions}
        for commit in reversed(fresh):
            version = self._version_from_commit(stage, commit)
            if version.number != len(versions) + 1:
                raise self._corrupt(stage, commit, f"expected v{len(versions) + 1}, found v{version.number}")
            named = self._meta_of(commit, stage).get("stage", stage)
            if named != stage:
                raise self._corrupt(stage, commit, f"its {META} says it is a version of stage {named!r}")
            twin = by_fingerprint.setdefault(version.fingerprint, version)
            if twin is not version:  # one fingerprint, one number: a second claim is never a version
                raise self._corrupt(stage, commit, f"v{version.number} claims the fingerprint of {twin.version}")
            versions.append(version)
        return _Chain(tip, versions, by_fingerprint, {v.commit: v for v in versions})

    def _corrupt(self, stage: str, commit: str, why: str) -> _CorruptHistory:
        ref = STAGES_PREFIX + stage if is_name(stage) else None
        return _CorruptHistory(
            f"corrupt history of stage {stage} at commit {commit[:12]}: {why}",
            why,
            where=ref or commit,
            hint=f"the ref was changed outside modver; inspect it with `git log {ref or commit}`",
        )

    def _meta_of(self, commit: str, stage: str | None = None) -> dict[str, Any]:
        meta = self._metas.get(commit)
        if meta is None:
            blob = self.repo.tree_at(commit).read(META)
            if blob is None:
                raise self._corrupt(stage or "?", commit, f"no {META}")
            try:
                meta = json.loads(blob.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise self._corrupt(stage or "?", commit, f"unreadable {META}: {exc}") from exc
            if not isinstance(meta, dict):
                raise self._corrupt(stage or "?", commit, f"{META} is not an object")
            self._metas[commit] = meta
        return meta

    def _version_from_commit(self, stage: str, commit: str) -> StageVersion:
        meta = self._meta_of(commit, stage)
        try:
            return StageVersion(
                stage=stage,
                number=int(meta["number"]),
                fingerprint=str(meta["fingerprint"]),
                entry=str(meta["entry"]),
                origin=meta.get("origin"),
                created=str(meta["created"]),
                message=str(meta.get("message", "")),
                commit=commit,
                files=tuple(meta.get("files", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise self._corrupt(stage, commit, f"{META} lacks {exc}") from exc

    def _with_tags(self, stage: str, versions: list[StageVersion]) -> list[StageVersion]:
        """``versions`` with their tags and, for working-tree versions, the commit later found."""
        names: dict[str, list[str]] = {}
        for name, commit in self._tag_refs(stage).items():
            names.setdefault(commit, []).append(name)
        committed = self._notes.read()
        if not names and not committed:
            return list(versions)
        return [
            replace(v, tags=tuple(sorted(names.get(v.commit, ()))), committed=committed.get(v.commit))
            if v.commit in names or v.commit in committed
            else v
            for v in versions
        ]

    def record_committed(self, found: list[tuple[StageVersion, str]]) -> list[StageVersion]:
        """Note, for each (working-tree version, git commit), that the version's code was found
        committed there (the first commit found wins); returns the versions newly noted
        (:mod:`modver.store.notes`)."""
        return self._notes.record(found, deadline=time.monotonic() + _MAX_WAIT)

    def _tag_refs(self, stage: str) -> dict[str, str]:
        """``stage``'s tag refs, name -> commit; a name that ``tag`` refuses (``v1``, ``latest``,
        hex: made with git itself) is not a tag, neither shown nor resolved."""
        prefix = f"{TAGS_PREFIX}{stage}/"
        found = {name[len(prefix) :]: sha for name, sha in self.repo.list_refs(prefix).items()}
        return {name: sha for name, sha in found.items() if tag_name_problem(name) is None}

    def versions(self, stage: str) -> list[StageVersion]:
        """``stage``'s versions, oldest (v1) first, with their tags; [] when it has none."""
        chain = self._chain(stage)
        return [] if chain is None else self._with_tags(stage, chain.versions)

    def find(self, stage: str, fingerprint: str) -> StageVersion | None:
        """The version of ``stage`` with exactly this fingerprint, or None."""
        chain = self._chain(stage)
        if chain is None:
            return None
        found = chain.by_fingerprint.get(fingerprint)
        return None if found is None else self._with_tags(stage, [found])[0]

    def label(self, stage: str, fingerprint: str) -> str | None:
        """The number (``"v3"``) of ``stage``'s version with this fingerprint now, or None (no
        such version, or no stage by that name): what a record names a version by."""
        if not is_name(stage):
            return None
        chain = self._chain(stage)
        found = chain.by_fingerprint.get(fingerprint) if chain is not None else None
        return None if found is None else found.version

    def latest(self, stage: str) -> StageVersion | None:
        """The newest version of ``stage``, or None."""
        versions = self.versions(stage)
        return versions[-1] if versions else None

    # -- resolving --------------------------------------------------------------------------

    def _unknown_stage(self, stage: str) -> errors.UnknownStageError:
        known = self.stages()
        listing = ", ".join(known) if known else "none yet"
        return errors.UnknownStageError(
            f"unknown stage {stage!r}: no versions registered; stages with a history: {listing}",
            where=stage,
            hint=f"{did_you_mean(stage, known)}run `modver index` or `modver snapshot` to register versions",
        )

    def resolve(self, stage: str, ref: str) -> StageVersion:
        """The version ``ref`` names: ``vN``, ``latest``, a tag, or a fingerprint prefix.

        Fingerprint prefixes need 6+ hex digits, with or without their scheme (``mv1:``, ``mv2:``).
        (``working`` and ``git:REV`` are the façade's business.)
        """
        chain = self._chain(stage)
        if chain is None:
            raise self._unknown_stage(stage)
        versions = self._with_tags(stage, chain.versions)
        text = ref.strip()
        if text == "latest":
            return versions[-1]
        match = _VERSION.match(text)
        if match:
            number = int(match.group(1))
            if 1 <= number <= len(versions):
                return versions[number - 1]
            raise self._unknown_version(stage, ref, versions)
        tags = self._tag_refs(stage)
        if text in tags:
            by_commit = {v.commit: v for v in versions}
            if tags[text] in by_commit:
                return by_commit[tags[text]]
            raise self._corrupt(stage, tags[text], f"tag {text} points outside the history")
        bare = _bare_fingerprint(text).lower()
        scheme = text.partition(":")[0] + ":" if ":" in text else ""
        if _HEX_PREFIX.match(bare) and (not scheme or _SCHEME_PREFIX.match(scheme)):
            hits = [
                v
                for v in versions
                if v.fingerprint.startswith(scheme) and _bare_fingerprint(v.fingerprint).startswith(bare)
            ]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                listing = ", ".join(f"{v.version} ({v.fingerprint[:16]}…)" for v in hits)
                raise errors.AmbiguousVersionError(
                    f"ambiguous version {stage}@{ref}: it matches {listing}",
                    where=f"{stage}@{ref}",
                    hint="give more digits of the fingerprint, or use vN",
                )
        raise self._unknown_version(stage, ref, versions)

    def _unknown_version(self, stage: str, ref: str, versions: list[StageVersion]) -> errors.UnknownVersionError:
        has = "v1" if len(versions) == 1 else f"v1..v{len(versions)}"
        tags = sorted({t for v in versions for t in v.tags})
        listing = f"{has} (tags: {', '.join(tags)})" if tags else has
        names = [v.version for v in versions] + tags + ["latest", "working"]
        return errors.UnknownVersionError(
            f"unknown version {stage}@{ref}; {stage} has {listing}",
            where=f"{stage}@{ref}",
            hint=f"{did_you_mean(ref, names)}see `modver log {stage}`",
        )

    # -- registering ------------------------------------------------------------------------

    def _store_files(self, closure: Closure, tree: SourceTree) -> dict[str, str]:
        """Blob ids for ``src/<path>`` of every closure file, writing only missing blobs."""
        stored: dict[str, str] = {}
        own = isinstance(tree, GitTree) and tree.repo is self.repo  # its blobs are in this store
        for path in sorted(set(closure.files) | set(closure.deps) | set(closure.imports)):
            content_id = tree.content_id(path)
            if content_id is not None and (own or self.repo.has_object(content_id)):
                stored[f"{SRC}/{path}"] = content_id
                continue
            data = tree.read(path)
            if data is None:
                raise errors.SourceError(
                    f"{path} is part of the closure of {closure.entry} but cannot be read",
                    where=path,
                    hint="check that the file exists and is readable",
                )
            blob = self.repo.write_blob(data)
            if content_id is not None and blob != content_id:
                # the tree gave other bytes than the ones the fingerprint saw: never store them
                raise errors.SourceError(
                    f"{path} changed while {closure.entry} was being registered",
                    where=path,
                    hint="run the command again (a source tree must read each file once)",
                )
            stored[f"{SRC}/{path}"] = blob
        return stored

    def register(
        self,
        stage: str,
        closure: Closure,
        tree: SourceTree,
        *,
        origin: str | None,
        message: str = "",
        created: datetime | None = None,
    ) -> tuple[StageVersion, bool]:
        """Register ``closure`` as the next version of ``stage``, unless its fingerprint is known.

        Returns ``(version, True)`` for a new version, ``(existing, False)`` otherwise. The files
        of the closure are taken from ``tree`` (their blobs are reused when already stored).
        """
        existing = self.find(stage, closure.fingerprint)
        if existing is not None:
            return existing, False
        files = self._store_files(closure, tree)
        if self._batch is not None:
            return self._append_pending(stage, closure, files, origin, message, _iso(created)), True
        return self._register_files(stage, closure, files, origin, message, _iso(created))

    def _new_commit(
        self,
        stage: str,
        chain: _Chain | None,
        closure: Closure,
        files: dict[str, str],
        origin: str | None,
        message: str,
        when: datetime,
    ) -> StageVersion:
        """Write the commit of the next version on top of ``chain`` (no ref is changed)."""
        number = 1 if chain is None else len(chain.versions) + 1
        created = when.isoformat()
        meta = {
            "scheme": closure.fingerprint.partition(":")[0],
            "stage": stage,
            "number": number,
            "fingerprint": closure.fingerprint,
            "entry": closure.entry,
            "origin": origin,
            "created": created,
            "message": message,
            "files": list(closure.files),
            "definitions": [asdict(d) for d in closure.definitions],
            "unresolved": [asdict(u) for u in closure.unresolved],
            "deps": list(closure.deps),
            "imports": list(closure.imports),
        }
        meta_blob = self.repo.write_blob(
            (json.dumps(meta, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()
        )
        root = self.repo.write_tree({META: meta_blob, **files})
        commit = self.repo.write_commit(
            root, [] if chain is None else [chain.tip], _commit_message(stage, number, message), when=when
        )
        self._metas[commit] = meta
        return StageVersion(
            stage=stage,
            number=number,
            fingerprint=closure.fingerprint,
            entry=closure.entry,
            origin=origin,
            created=created,
            message=message,
            commit=commit,
            files=tuple(closure.files),
        )

    def _register_files(
        self, stage: str, closure: Closure, files: dict[str, str], origin: str | None, message: str, when: datetime
    ) -> tuple[StageVersion, bool]:
        """Append a version with compare-and-swap on the ref, retried until it lands.

        A failed swap means another process registered a version meanwhile: re-read the chain
        (the fingerprint may now be known) and build on its new tip. Locks are the git layer's
        business (:meth:`GitRepo.set_ref_if_equals` waits for them or raises).
        """
        ref = self.ref(stage)
        deadline = time.monotonic() + _MAX_WAIT
        delay = 0.002
        moves = 0
        while True:
            chain = self._chain(stage)
            if chain is not None:
                found = chain.by_fingerprint.get(closure.fingerprint)
                if found is not None:
                    return self._with_tags(stage, [found])[0], False
            version = self._new_commit(stage, chain, closure, files, origin, message, when)
            if self.repo.set_ref_if_equals(ref, None if chain is None else chain.tip, version.commit):
                return version, True
            moves += 1
            if time.monotonic() > deadline:
                raise errors.ConcurrencyError(
                    f"could not register a version of {stage}: other processes moved {ref} "
                    f"{moves} times in {_MAX_WAIT:g}s",
                    where=ref,
                    hint=f"other modver processes keep registering versions of {stage}; "
                    "run the command again when they are done",
                )
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.1)

    # -- batches ----------------------------------------------------------------------------

    def _append_pending(
        self, stage: str, closure: Closure, files: dict[str, str], origin: str | None, message: str, when: datetime
    ) -> StageVersion:
        assert self._batch is not None
        pending = self._batch.get(stage)
        chain = pending.chain if pending is not None else self._chain(stage)
        version = self._new_commit(stage, chain, closure, files, origin, message, when)
        versions = [*(chain.versions if chain else []), version]
        new_chain = _Chain(
            version.commit, versions, {v.fingerprint: v for v in versions}, {v.commit: v for v in versions}
        )
        if pending is None:
            pending = self._batch[stage] = _Pending(None if chain is None else chain.tip, new_chain, [])
        pending.chain = new_chain
        pending.registrations.append((closure, files, origin, message, when))
        return version

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Register many versions at once: objects go to git as one pack, each ref moves once.

        Inside the block, :meth:`register` appends to in-memory chains; at its end (also on an
        error, so no completed registration is lost) the objects are written and every stage's
        ref is compare-and-swapped from its old tip to its new one. If another process
        registered versions of a stage meanwhile, that stage's versions are registered again one
        by one on top of the new tip (re-checking fingerprints), so nothing is lost or doubled.
        When the objects cannot be written (a full disk), no ref moves: the error is raised and
        the versions of the batch are not registered (registering them again writes them).
        """
        if self._batch is not None:
            yield
            return
        self._batch = {}
        written = False
        try:
            with self.repo.buffered_objects():
                try:
                    yield
                finally:
                    self.repo.flush_objects()  # here, so that a failed write is known below
                    written = True
        finally:
            batch, self._batch = self._batch, None
            if not written:
                batch = {}  # its commits were never written: no ref may name them
            for stage, pending in batch.items():
                if self.repo.set_ref_if_equals(self.ref(stage), pending.base, pending.chain.tip):
                    self._chains[stage] = pending.chain
                    continue
                self.rebased.add(stage)
                for closure, files, origin, message, when in pending.registrations:
                    self._register_files(stage, closure, files, origin, message, when)

    # -- sharing (modver.share.versions) --------------------------------------------------------------

    def incoming(self, stage: str, tip: str) -> Incoming:
        """The chain ending at commit ``tip`` (fetched from a remote), read version by version up
        to the first commit that is not the next version: a commit with several parents, an
        unreadable ``meta.json``, the wrong number or stage, or a fingerprint that an earlier
        version of the chain has. Its code is not checked here (:meth:`check_code`)."""
        commits: list[str] = []
        merged: str | None = None  # the oldest commit with several parents
        sha: str | None = tip
        while sha is not None:
            commits.append(sha)
            parents = self.repo.commit_parents(sha)
            if len(parents) > 1:
                merged = sha
            sha = parents[0] if parents else None
        commits.reverse()
        versions: list[StageVersion] = []
        seen: dict[str, StageVersion] = {}
        for i, commit in enumerate(commits):
            why = ""
            if commit == merged:
                why = "a history commit has several parents"
            else:
                try:
                    version = self._version_from_commit(stage, commit)
                    named = self._meta_of(commit, stage).get("stage", stage)
                except _CorruptHistory as exc:
                    why = exc.why
                except errors.StoreError as exc:  # an object that cannot be read
                    why = exc.message
                else:
                    if version.number != i + 1:
                        why = f"it says it is v{version.number}, and comes after v{i}"
                    elif named != stage:
                        why = f"its {META} says it is a version of stage {named!r}"
                    elif version.fingerprint in seen:
                        twin = seen[version.fingerprint]
                        why = f"{stage} {twin.version} already has fingerprint {version.fingerprint}"
            if why:
                return Incoming(versions, commit, why, tuple(commits[i + 1 :]))
            seen[version.fingerprint] = version
            versions.append(version)
        return Incoming(versions)

    def check_code(
        self, version: StageVersion, *, docstrings: bool = False, cache: SummaryCache | None = None
    ) -> tuple[str, ...]:
        """What is wrong with ``version``'s stored code (empty: nothing): every stored blob must
        match its git id, every file the version lists must be stored, and the stored code must
        fingerprint as the version's fingerprint, under the closure rules of its scheme, with
        docstrings counted or not (a version does not record which; ``docstrings`` is tried
        first). ``cache`` is a :class:`~modver.fingerprint.SummaryCache` to share between calls
        (default: a fresh one, nothing reused)."""
        from modver.fingerprint import SummaryCache, fingerprint_stage, scheme_of
        from modver.sourcetree import git_blob_id

        try:
            closure = self.closure(version)
            tree = self.source_tree(version)
            problems = []
            stored = set(tree.iter_files())
            for path in sorted(stored):
                sha = tree.blob_id(path)
                data = tree.read(path)
                if sha is None or data is None or git_blob_id(data) != sha:
                    problems.append(f"stored file {path} does not match its git object id")
            for path in sorted({*closure.files, *closure.deps, *closure.imports} - stored):
                problems.append(f"{path} is listed by the version but not stored")
            if problems:
                return tuple(problems)
            found = []
            scheme = scheme_of(version.fingerprint)
            summaries = cache if cache is not None else SummaryCache()
            for setting in (docstrings, not docstrings):
                again = fingerprint_stage(
                    tree, version.entry, closure.deps, docstrings=setting, cache=summaries, scheme=scheme
                )
                if again.fingerprint == version.fingerprint:
                    return ()
                found.append(again.fingerprint)
        except errors.ModverError as exc:  # unreadable objects, stored code that no longer parses
            return (f"cannot re-fingerprint the stored code: {exc}",)
        return (f"the stored code fingerprints as {found[0]}, not {version.fingerprint}",)

    @contextlib.contextmanager
    def numbering(self, *, shared: bool) -> Iterator[None]:
        """Hold the numbering lock: exclusive while a pull renumbers versions and repairs the run
        records that name them, shared while a run derives its record's version numbers from its
        fingerprints and writes it (so each sees the numbers before or after, never between)."""
        if not self.repo.on_disk:
            yield  # an in-memory repository (tests): one process
            return
        path = Store.of(self.repo).numbering_lock
        what = "version numbers: a pull is renumbering versions" if shared else "version numbers: a run is recording"
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(_fs.shared_or_exclusive_lock(path, shared=shared, what=what))
            except OSError as exc:
                raise write_failure("cannot take the numbering lock", exc, str(path)) or errors.StoreError(
                    f"cannot take the numbering lock: {exc.strerror or exc}",
                    where=str(path),
                    hint=f"modver needs to write in {path.parent}: check its permissions",
                ) from exc
            yield

    def versions_at(self, stage: str, tip: str) -> list[StageVersion]:
        """The versions of the chain ending at commit ``tip`` (a remote's), oldest first, no tags."""
        return list(self._parse_chain(stage, tip, self._chains.get(stage)).versions)

    def restack(self, stage: str, onto: str | None, versions: list[StageVersion]) -> list[StageVersion]:
        """Write ``versions`` again as the versions after commit ``onto``, numbered on from it:
        the same files and metadata, a new number; no ref moves. The new versions, in order.

        The commits depend only on their contents, so two clones restacking the same versions
        on the same tip make the same commits."""
        number = len(self.versions_at(stage, onto)) if onto else 0
        parent, out = onto, []
        for old in versions:
            number += 1
            meta = {**self._meta_of(old.commit, stage), "number": number}
            blob = self.repo.write_blob(
                (json.dumps(meta, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()
            )
            files: dict[str, str | tuple[int, str]] = dict(self.repo.tree_entries(self.repo.commit_tree(old.commit)))
            files[META] = blob
            when = datetime.fromisoformat(old.created)
            message = _commit_message(stage, number, old.message)
            commit = self.repo.write_commit(self.repo.write_tree(files), [parent] if parent else [], message, when=when)
            self._metas[commit] = meta
            out.append(replace(old, number=number, commit=commit, tags=()))
            parent = commit
        return out

    # -- tags -------------------------------------------------------------------------------

    def tag(self, stage: str, ref_or_version: str | StageVersion, name: str, *, force: bool = False) -> StageVersion:
        """Name a version: ``refs/modver/tags/<stage>/<name>``; returns it with its tags.

        Moving an existing tag to another version needs ``force=True``.
        """
        problem = tag_name_problem(name)
        if problem is not None:
            raise problem
        if isinstance(ref_or_version, StageVersion):
            if ref_or_version.stage != stage:
                raise errors.UnknownVersionError(
                    f"{ref_or_version.stage}@{ref_or_version.version} is not a version of {stage}"
                )
            version = self.resolve(stage, ref_or_version.version)
            if version.commit != ref_or_version.commit:
                raise self._corrupt(stage, ref_or_version.commit, "version commit mismatch")
        else:
            version = self.resolve(stage, ref_or_version)
        refname = f"{TAGS_PREFIX}{stage}/{name}"
        deadline = time.monotonic() + _MAX_WAIT
        while True:
            current = self.repo.read_ref(refname)
            if current == version.commit:
                break
            if current is not None and not force:
                at = self._chain(stage)
                other = at.by_commit.get(current) if at else None
                label = f"{stage}@{other.version}" if other else current[:12]
                raise errors.InvalidNameError(
                    f"tag {name!r} of stage {stage} already points to {label}",
                    where=refname,
                    hint="use --force to move it, or choose another name",
                )
            if self.repo.set_ref_if_equals(refname, current, version.commit):
                break
            if time.monotonic() > deadline:
                raise errors.ConcurrencyError(
                    f"could not set {refname}: other processes kept moving it",
                    where=refname,
                    hint="run the command again when the other modver processes are done",
                )
            time.sleep(0.01 * random.random())
        return self.resolve(stage, version.version)

    def tags(self, stage: str) -> dict[str, StageVersion]:
        """``stage``'s tags: name -> version (tags pointing outside the history are skipped)."""
        chain = self._chain(stage)
        if chain is None:
            return {}
        versions = {v.commit: v for v in self._with_tags(stage, chain.versions)}
        return {name: versions[commit] for name, commit in sorted(self._tag_refs(stage).items()) if commit in versions}

    # -- contents ---------------------------------------------------------------------------

    def meta(self, version: StageVersion) -> dict[str, Any]:
        """The version's full ``meta.json`` (definitions, unresolved references, deps...)."""
        return dict(self._meta_of(version.commit, version.stage))

    def closure(self, version: StageVersion) -> Closure:
        """The :class:`~modver.models.Closure` recorded for ``version``."""
        meta = self._meta_of(version.commit, version.stage)
        try:
            return Closure(
                fingerprint=meta["fingerprint"],
                entry=meta["entry"],
                files=tuple(meta.get("files", ())),
                definitions=tuple(Definition(**d) for d in meta.get("definitions", ())),
                unresolved=tuple(Unresolved(**u) for u in meta.get("unresolved", ())),
                deps=tuple(meta.get("deps", ())),
                imports=tuple(meta.get("imports", ())),
            )
        except (KeyError, TypeError) as exc:
            raise self._corrupt(version.stage, version.commit, f"bad {META}: {exc}") from exc

    def source_tree(self, version: StageVersion) -> GitTree:
        """The version's files as a SourceTree (paths relative to the project root)."""
        return self.repo.tree_at(version.commit).subtree(SRC)

    def files(self, version: StageVersion) -> dict[str, bytes]:
        """The version's files: project path -> bytes."""
        return self.files_at(version.commit)

    def files_at(self, commit: str) -> dict[str, bytes]:
        """The files stored by the version commit ``commit``: project path -> bytes, to be run.

        Nothing in a history is trusted (its refs travel with plain ``git fetch`` too): the
        code is fingerprinted again first (:meth:`check_code`), and code that is not what its
        version's fingerprint says is refused with StoreError naming the version."""
        meta = self._meta_of(commit)
        stage = str(meta.get("stage") or "?")
        version = self._version_from_commit(stage, commit)
        problems = self.check_code(version)
        if problems:
            raise errors.StoreError(
                f"{stage}@{version.version} (commit {commit[:12]}) is not used: {problems[0]}",
                where=self.ref(stage) if is_name(stage) else commit,
                hint=f"the version was changed outside modver (forged or damaged); `modver verify` lists such "
                f"versions; restore {STAGES_PREFIX}{stage} from a clone that has it right",
            )
        tree = self.repo.tree_at(commit).subtree(SRC)
        result: dict[str, bytes] = {}
        for path in tree.iter_files():
            data = tree.read(path)
            if data is not None:
                result[path] = data
        return result


# -- index progress cache (.modver/index.json) ------------------------------------------------


def load_index_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The index progress cache at ``path``; {} when missing or unreadable (it is a cache)."""
    try:
        data = _fs.read_json(Path(path))
    except (FileNotFoundError, errors.StoreError):
        return {}  # the next index walks again; versions already registered keep their numbers
    return data if isinstance(data, dict) else {}


def save_index_state(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write the index progress cache atomically (temp file + rename)."""
    try:
        _fs.write_json_atomic(Path(path), state)
    except OSError as exc:
        raise errors.StoreError(
            f"cannot write the index cache: {exc}", where=str(path), hint="check permissions"
        ) from exc
