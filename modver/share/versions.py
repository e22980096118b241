"""Sharing stage histories with a git remote: ``modver push`` and ``modver pull``'s git half.

What travels: every ref under ``refs/modver/`` — the stage histories, their tags and the
committed notes — through :mod:`modver._git.remote` (dulwich). What modver remembers of a remote:
``refs/modver-remotes/<remote>/...``, the remote's refs as the last push or pull saw them (what is
*published*; outside ``refs/modver/``, so they never travel themselves).

The numbering rule (SPEC, "Sharing"): a number the remote has is never changed. ``pull`` takes
the remote's versions of each stage; a version made here and not yet pushed whose number the
remote already uses for other code is written again after the remote's versions
(:meth:`History.restack`: same files and metadata, the next free number), and every manifest pin
and run record that named it is updated (records keep the fingerprint, which never changes). A
local version whose code the remote has under some number takes that number. No version is lost:
the remote's and this clone's code are both in the history after the merge.

Crash safety: the renumbering is recorded before any ref moves, and its pins and records are
updated from that record, which a killed pull leaves for the next command to finish
(:mod:`modver.share.renumber`).

Nothing from the remote is trusted (SPEC, "Bad input and faults"). Before a version is taken,
its chain is read commit by commit (:meth:`History.incoming`: one parent, a readable
``meta.json``, the next number, this stage, a fingerprint no earlier version has) and its stored
code is fingerprinted again (:meth:`History.check_code`). The first version that fails is refused
by name, with the versions after it (they are built on it); the versions before it are taken, and
every other stage goes on. A stage ref whose name is no stage name, and a tag whose name modver
refuses (``v1``, ``latest``, hex) or that names no version taken, are refused the same way. What
was refused is in :attr:`PullResult.refused` (the command exits 1 after taking the rest).

A run in progress writes its record with the version numbers its fingerprints have at that moment
(:mod:`modver.engine.recorder`); a pull moves the stage refs and repairs the records under the exclusive
numbering lock (:meth:`History.numbering`), which the run's writes hold shared: a record is
written either before the refs move (and repaired after) or after (and numbered anew).

``push`` refuses when the remote has versions this clone lacks ("pull first"); its ref updates
are compare-and-swap on the remote, so of two pushes at once one wins and the other is told to
pull, and nothing is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modver import errors
from modver._git import GitRepo
from modver._git.remote import Remote, fetch_refs, push_refs, remote_refs, resolve_remote
from modver.fingerprint import SummaryCache
from modver.models import StageVersion
from modver.names import is_name, validate_name
from modver.share.renumber import (
    PinWriter,
    finish_renumbering,
    pins_to_update,
    renumber_pins_and_records,
    write_journal,
)
from modver.store.history import STAGES_PREFIX, TAGS_PREFIX, History, tag_name_problem
from modver.store.notes import COMMITTED_REF
from modver.store.runstore import RunStore

if TYPE_CHECKING:
    from modver.store.storage import Transfer

__all__ = ["PullResult", "PushResult", "Refusal", "Renumbered", "TagClash", "pull", "push"]

PREFIX = "refs/modver/"
TRACKING = "refs/modver-remotes/"


@dataclass(frozen=True)
class Renumbered:
    """A version made here that took a new number in a pull."""

    old: StageVersion  # as it was here
    new: StageVersion  # as it is now
    pins: tuple[str, ...] = ()  # manifests (project-relative) whose pin was updated
    runs: int = 0  # run records updated

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.old.stage,
            "old": self.old.version,
            "new": self.new.version,
            "fingerprint": self.new.fingerprint,
            "message": self.new.message,
            "pins": list(self.pins),
            "runs": self.runs,
        }


@dataclass(frozen=True)
class TagClash:
    """A tag that names one version here and another on the remote: both are kept as they are."""

    stage: str
    name: str
    here: str  # "v3", or a commit sha outside the history
    remote: str

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "tag": self.name, "here": self.here, "remote": self.remote}


@dataclass(frozen=True)
class Refusal:
    """Something of the remote's that ``pull`` did not take, and why."""

    ref: str  # the remote's ref
    what: str  # "model v3", "tag model@v1", "stage 'a/b'"
    why: str
    stage: str | None = None
    version: str | None = None  # "v3" for a refused version
    tag: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "what": self.what,
            "reason": self.why,
            "stage": self.stage,
            "version": self.version,
            "tag": self.tag,
        }


@dataclass(frozen=True)
class PullResult:
    """What ``pull`` took from the remote (git half), and what it refused."""

    remote: Remote
    new_versions: dict[str, int] = field(default_factory=dict)  # stage -> versions taken from the remote
    renumbered: tuple[Renumbered, ...] = ()
    new_tags: tuple[str, ...] = ()  # "stage@name"
    clashes: tuple[TagClash, ...] = ()
    dry_run: bool = False
    storage: Transfer | None = None  # run records and outputs (modver.store.storage), when modver.toml names storage
    refused: tuple[Refusal, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "remote": self.remote.name,
            "url": self.remote.url,
            "new_versions": dict(self.new_versions),
            "renumbered": [r.to_json() for r in self.renumbered],
            "new_tags": list(self.new_tags),
            "tag_clashes": [c.to_json() for c in self.clashes],
            "refused": [r.to_json() for r in self.refused],
            "dry_run": self.dry_run,
            "storage": None if self.storage is None else self.storage.to_json(),
        }


@dataclass(frozen=True)
class PushResult:
    """What ``push`` sent to the remote (git half)."""

    remote: Remote
    new_versions: dict[str, int] = field(default_factory=dict)  # stage -> versions sent
    new_tags: tuple[str, ...] = ()
    clashes: tuple[TagClash, ...] = ()
    refs: int = 0  # refs updated on the remote
    dry_run: bool = False
    storage: Transfer | None = None  # run records and outputs (modver.store.storage), when modver.toml names storage

    def to_json(self) -> dict[str, Any]:
        return {
            "remote": self.remote.name,
            "url": self.remote.url,
            "new_versions": dict(self.new_versions),
            "new_tags": list(self.new_tags),
            "tag_clashes": [c.to_json() for c in self.clashes],
            "refs": self.refs,
            "dry_run": self.dry_run,
            "storage": None if self.storage is None else self.storage.to_json(),
        }


# -- push ------------------------------------------------------------------------------------------


def push(
    history: History,
    root: Path,
    runs: RunStore,
    remote_name: str | None,
    write_pin: PinWriter,
    *,
    dry_run: bool = False,
) -> PushResult:
    """Send this clone's new versions, tags and notes to the remote (see the module docstring)."""
    repo = history.repo
    finish_renumbering(history, root, runs, write_pin)
    remote = resolve_remote(repo, remote_name)
    local = repo.list_refs(PREFIX)
    seen: dict[str, str] = {}
    clashes: list[TagClash] = []

    def decide(theirs: dict[str, str]) -> dict[str, str]:
        seen.clear()
        seen.update(theirs)
        clashes.clear()
        behind = sorted(
            {_stage_of(name) for name, sha in theirs.items() if _shared(name) and not _has(history, name, sha, local)}
        )
        if behind:
            raise errors.RemoteError(
                f"the remote {remote.name} ({remote.url}) has versions this clone lacks ({', '.join(behind)}): "
                "push refused",
                where=remote.url,
                hint=f"run `modver pull{' ' + remote_name if remote_name else ''}` first "
                "(it keeps every number the remote has), then push again; if the pull refuses versions, "
                "the remote's history was changed outside modver: repair it there first",
            )
        updates = {}
        for name, sha in local.items():
            there = theirs.get(name)
            if there == sha:
                continue
            if name.startswith(TAGS_PREFIX) and there is not None:
                clashes.append(_clash(history, name, sha, there, theirs))
                continue
            updates[name] = sha
        return updates

    if dry_run:
        updates = decide(remote_refs(repo, remote, PREFIX))
        return _push_result(history, remote, seen, updates, clashes, dry_run=True)
    result = push_refs(repo, remote, PREFIX, decide)
    if result.rejected:
        refs = ", ".join(sorted(result.rejected))
        raise errors.RemoteError(
            f"another push reached {remote.name} ({remote.url}) first (it moved {refs}): pull, then push",
            where=remote.url,
            hint="run `modver pull` (it keeps every number the remote has), then push again",
        )
    _remember(repo, remote, {**seen, **result.updated})
    return _push_result(history, remote, seen, result.updated, clashes, dry_run=False)


def _push_result(
    history: History,
    remote: Remote,
    theirs: dict[str, str],
    updates: dict[str, str],
    clashes: list[TagClash],
    *,
    dry_run: bool,
) -> PushResult:
    new_versions = {}
    for name, sha in updates.items():
        if name.startswith(STAGES_PREFIX):
            stage = name[len(STAGES_PREFIX) :]
            before = len(history.versions_at(stage, theirs[name])) if name in theirs else 0
            new_versions[stage] = len(history.versions_at(stage, sha)) - before
    tags = tuple(sorted(_tag_label(n) for n in updates if n.startswith(TAGS_PREFIX)))
    return PushResult(remote, new_versions, tags, tuple(clashes), len(updates), dry_run)


def _shared(name: str) -> bool:
    """Whether the remote's ref ``name`` is one modver shares (a stage ref named as no stage can
    be, made with git itself, is refused by pull and ignored by push)."""
    return not name.startswith(STAGES_PREFIX) or is_name(name[len(STAGES_PREFIX) :])


def _has(history: History, name: str, sha: str, local: dict[str, str]) -> bool:
    """Whether this clone holds everything the remote's ref ``name`` at ``sha`` holds."""
    mine = local.get(name)
    if mine == sha or name.startswith(TAGS_PREFIX):  # tags: a clash, reported, not a refusal
        return True
    if mine is None:
        return False
    if name.startswith(STAGES_PREFIX):
        return any(v.commit == sha for v in history.versions(name[len(STAGES_PREFIX) :]))
    return sha in _ancestry(history.repo, mine)


def _ancestry(repo: GitRepo, tip: str) -> set[str]:
    """Every commit on ``tip``'s first-parent chain (notes and histories are linear)."""
    seen: set[str] = set()
    sha: str | None = tip
    while sha is not None:
        seen.add(sha)
        parents = repo.commit_parents(sha)
        sha = parents[0] if parents else None
    return seen


def _stage_of(ref: str) -> str:
    if ref.startswith(STAGES_PREFIX):
        return ref[len(STAGES_PREFIX) :]
    if ref.startswith(TAGS_PREFIX):
        return "tag " + _tag_label(ref)
    return ref[len(PREFIX) :]


def _tag_label(ref: str) -> str:
    stage, _, name = ref[len(TAGS_PREFIX) :].partition("/")
    return f"{stage}@{name}"


def _clash(history: History, ref: str, here: str, there: str, theirs: dict[str, str]) -> TagClash:
    """The clash of tag ``ref``: at ``here`` here, at ``there`` on the remote (whose refs are ``theirs``)."""
    stage, _, name = ref[len(TAGS_PREFIX) :].partition("/")
    versions = history.versions(stage) if stage in history.stages() else []
    if STAGES_PREFIX + stage in theirs:
        versions = versions + history.versions_at(stage, theirs[STAGES_PREFIX + stage])
    labels = {v.commit: v.version for v in versions}
    return TagClash(stage, name, labels.get(here, here[:12]), labels.get(there, there[:12]))


def _remember(repo: GitRepo, remote: Remote, refs: dict[str, str]) -> None:
    """Record ``refs`` (the remote's, under refs/modver/) as what the remote has now."""
    base = f"{TRACKING}{remote.key}/"
    for name, sha in refs.items():
        if not repo.has_object(sha):
            continue  # a remote's ref this clone never fetched (a tag it refuses): nothing to remember
        tracking = base + name[len(PREFIX) :]
        repo.update_ref(tracking, _to(sha), what=f"recording what {remote.name} has")


def _to(sha: str) -> Callable[[str | None], str | None]:
    """The change of :meth:`GitRepo.update_ref` that points a ref at ``sha``, whatever it names now."""
    return lambda _current: sha


# -- pull ------------------------------------------------------------------------------------------


@dataclass
class _Merge:
    """One stage's merge: the new tip, what the remote added, and what was renumbered."""

    base: str | None  # the stage's tip here when it was merged: the ref moves only from there
    tip: str
    taken: int
    renumbered: list[tuple[StageVersion, StageVersion]]
    commits: dict[str, str]  # old local commit -> the commit of its version now


def pull(
    history: History,
    root: Path,
    runs: RunStore,
    remote_name: str | None,
    write_pin: PinWriter,
    *,
    dry_run: bool = False,
) -> PullResult:
    """Take the remote's versions, tags and notes, renumbering what was made here and clashes;
    refuse, by name, what cannot be trusted (see the module docstring)."""
    repo = history.repo
    finish_renumbering(history, root, runs, write_pin)
    remote = resolve_remote(repo, remote_name)
    theirs = fetch_refs(repo, remote, PREFIX)
    published = repo.list_refs(f"{TRACKING}{remote.key}/")
    merges: dict[str, _Merge] = {}
    refused: list[Refusal] = []
    trusted: dict[str, str] = {}  # the remote's refs as far as they were taken
    summaries = SummaryCache()  # shared by the checks of one pull: each file version is parsed once
    for name, sha in theirs.items():
        if not name.startswith(STAGES_PREFIX):
            continue
        stage = name[len(STAGES_PREFIX) :]
        if not is_name(stage):
            refused.append(Refusal(name, f"stage {stage!r}", _name_problem(stage).message, stage))
            continue
        tip, refusals = _trusted_tip(history, stage, sha, summaries)
        refused.extend(refusals)
        if tip is not None:
            trusted[name] = tip
            merges[stage] = _merge_stage(history, stage, tip, published.get(f"{TRACKING}{remote.key}/stages/{stage}"))
    commits = {old: new for m in merges.values() for old, new in m.commits.items()}
    tag_moves, new_tags, clashes, tag_refusals = _merge_tags(history, theirs, commits, merges)
    refused.extend(tag_refusals)
    refused_tags = {r.ref for r in tag_refusals}
    trusted.update(
        {ref: sha for ref, sha in theirs.items() if not ref.startswith(STAGES_PREFIX) and ref not in refused_tags}
    )
    renumbered = [pair for m in merges.values() for pair in m.renumbered]
    new_versions = {stage: m.taken for stage, m in merges.items() if m.taken}
    if dry_run:
        done = tuple(Renumbered(old, new) for old, new in renumbered)
        return PullResult(
            remote, new_versions, done, tuple(new_tags), tuple(clashes), dry_run=True, refused=tuple(refused)
        )
    pins = pins_to_update(root, renumbered)
    # the refs move and the records are repaired as one step for a run writing its record (module docstring)
    with history.numbering(shared=False):
        if renumbered:  # before any ref moves: what a killed pull leaves, the next command finishes
            stages = sorted({old.stage for old, _ in renumbered})
            write_journal(repo, {"pins": pins, "stages": stages})
        # compare-and-swap from what was merged: a version registered here meanwhile is never dropped
        raced = [
            s
            for s, m in merges.items()
            if m.tip != m.base and not repo.set_ref_if_equals(history.ref(s), m.base, m.tip)
        ]
        for ref, (old, new) in tag_moves.items():
            repo.set_ref_if_equals(ref, old, new)  # a tag moved here meanwhile stays as it was moved
        if COMMITTED_REF in theirs:
            _merge_notes(history, theirs[COMMITTED_REF], commits)
        _remember(repo, remote, trusted)
        counts = renumber_pins_and_records(history, root, runs, write_pin)  # a raced stage's pins stay
    if raced:
        raise errors.ConcurrencyError(
            f"versions of {', '.join(raced)} were registered here while pulling: those stages were not merged",
            where=", ".join(history.ref(s) for s in raced),
            hint="run `modver pull` again",
        )
    done = tuple(
        Renumbered(
            old,
            new,
            tuple(p["manifest"] for p in pins if p["stage"] == old.stage and p["old"] == old.version),
            counts.get((old.stage, new.fingerprint), 0),
        )
        for old, new in renumbered
    )
    return PullResult(remote, new_versions, done, tuple(new_tags), tuple(clashes), refused=tuple(refused))


def _name_problem(name: str) -> errors.InvalidNameError:
    try:
        validate_name(name)
    except errors.InvalidNameError as exc:
        return exc
    raise AssertionError(f"{name!r} is a valid name")  # pragma: no cover - callers check is_name first


def _trusted_tip(
    history: History, stage: str, remote_tip: str, summaries: SummaryCache
) -> tuple[str | None, list[Refusal]]:
    """The newest commit of the remote's ``stage`` chain up to which every version can be taken,
    and the refusals of the versions after it: the first that cannot be trusted (see the module
    docstring), then those built on it. Versions this clone already has are not checked again."""
    ref = history.ref(stage)
    if history.repo.read_ref(ref) == remote_tip:
        return remote_tip, []
    known = {v.commit for v in history.versions(stage)} if stage in history.stages() else set()
    try:
        chain = history.incoming(stage, remote_tip)
    except errors.StoreError as exc:
        return None, [Refusal(STAGES_PREFIX + stage, f"stage {stage}", f"its history cannot be read: {exc}", stage)]
    versions, bad, why, after = chain.versions, chain.bad, chain.why, list(chain.after)
    for i, version in enumerate(versions):
        if version.commit in known:
            continue
        problems = history.check_code(version, cache=summaries)
        if problems:
            versions, bad, why = versions[:i], version.commit, problems[0]
            after = [v.commit for v in chain.versions[i + 1 :]] + ([chain.bad] if chain.bad else []) + after
            break
    if bad is None:
        return remote_tip, []
    number = len(versions) + 1
    first = f"{stage} v{number}"
    refusals = [Refusal(ref, first, f"{why} (commit {bad[:12]})", stage, f"v{number}")]
    refusals += [
        Refusal(ref, f"{stage} v{n}", f"it comes after {first}, which is refused", stage, f"v{n}")
        for n in range(number + 1, number + 1 + len(after))
    ]
    return (versions[-1].commit if versions else None), refusals


def _merge_stage(history: History, stage: str, remote_tip: str, published: str | None) -> _Merge:
    """How ``stage``'s history here and the remote's at ``remote_tip`` become one (no ref moves)."""
    if history.repo.read_ref(history.ref(stage)) == remote_tip:  # the same: nothing to read
        return _Merge(remote_tip, remote_tip, 0, [], {})
    theirs = history.versions_at(stage, remote_tip)
    mine = history.versions(stage) if stage in history.stages() else []
    common = 0
    while common < min(len(mine), len(theirs)) and mine[common].commit == theirs[common].commit:
        common += 1
    base = mine[-1].commit if mine else None
    if common == len(theirs):  # the remote has nothing new
        return _Merge(base, mine[-1].commit, 0, [], {})
    if common == len(mine):  # nothing new here: fast-forward
        return _Merge(base, remote_tip, len(theirs) - common, [], {})
    ours = mine[common:]
    if published is not None:
        shown = {v.commit for v in history.versions_at(stage, published)}
        lost = [v.version for v in ours if v.commit in shown]
        if lost:
            raise errors.RemoteError(
                f"the remote's history of {stage} no longer has {', '.join(lost)}, which it had: "
                "it was rewritten outside modver",
                where=history.ref(stage),
                hint="restore the remote's refs/modver/ from a clone that has them (`modver push` from it)",
            )
    by_fingerprint = {v.fingerprint: v for v in theirs}
    fresh = history.restack(stage, remote_tip, [v for v in ours if v.fingerprint not in by_fingerprint])
    restacked = iter(fresh)
    renumbered, commits = [], {}
    for old in ours:
        new = by_fingerprint.get(old.fingerprint) or next(restacked)
        commits[old.commit] = new.commit
        if new.number != old.number:
            renumbered.append((old, new))
    tip = fresh[-1].commit if fresh else remote_tip
    return _Merge(base, tip, len(theirs) - common, renumbered, commits)


def _merge_tags(
    history: History, theirs: dict[str, str], commits: dict[str, str], merges: dict[str, _Merge]
) -> tuple[dict[str, tuple[str | None, str]], list[str], list[TagClash], list[Refusal]]:
    """Tag refs to set here (ref -> (from, to)), the remote's tags new here, the clashes (kept),
    and the remote's tags refused: a name modver refuses, or a tag naming no version taken."""
    moves: dict[str, tuple[str | None, str]] = {}
    new: list[str] = []
    clashes: list[TagClash] = []
    refused: list[Refusal] = []
    mine = history.repo.list_refs(TAGS_PREFIX)
    for ref, sha in mine.items():  # a tag on a renumbered version follows it
        if sha in commits:
            moves[ref] = (sha, commits[sha])
    taken: dict[str, set[str]] = {}  # stage -> the commits of its versions after the merge
    for ref, sha in theirs.items():
        if not ref.startswith(TAGS_PREFIX):
            continue
        stage, _, name = ref[len(TAGS_PREFIX) :].partition("/")
        bad_name = _name_problem(stage) if not is_name(stage) else tag_name_problem(name)
        why = bad_name.message if bad_name is not None else None
        if why is None:
            if stage not in taken:
                tip = merges[stage].tip if stage in merges else history.repo.read_ref(STAGES_PREFIX + stage)
                taken[stage] = {v.commit for v in history.versions_at(stage, tip)} if tip else set()
            if sha not in taken[stage]:
                why = f"it names {sha[:12]}, which is no version of {stage} taken"
        if why is not None:
            refused.append(Refusal(ref, f"tag {stage}@{name}", why, stage, tag=name))
            continue
        here = moves[ref][1] if ref in moves else mine.get(ref)
        if here is None:
            moves[ref] = (None, sha)
            new.append(_tag_label(ref))
        elif here != sha:
            clashes.append(_clash(history, ref, here, sha, theirs))
    return moves, new, clashes, refused


def _merge_notes(history: History, remote_tip: str, commits: dict[str, str]) -> None:
    """Take the remote's committed notes; notes made here that the remote lacks are written on top."""
    repo = history.repo

    def merged(mine: str | None) -> str | None:
        if mine is None or mine in _ancestry(repo, remote_tip):
            return remote_tip
        if remote_tip in _ancestry(repo, mine) and not commits:
            return None  # ours has everything theirs has
        entries = dict(repo.tree_entries(repo.commit_tree(remote_tip)))
        for name, entry in repo.tree_entries(repo.commit_tree(mine)).items():
            entries.setdefault(commits.get(name, name), entry)
        tree = repo.write_tree(dict(entries))
        return repo.write_commit(tree, [remote_tip], "modver: versions found committed (merged in a pull)\n")

    repo.update_ref(COMMITTED_REF, merged, what="merging the remote's notes of committed versions")
