"""A search's Optuna study: its settings, its search space, and the study itself on a journal file.

``modver sweep --optimize METRIC --trials N`` keeps its study in ``.modver/studies/<name>/``:

- ``journal.log``: Optuna's JournalStorage on its file backend (appends: safe on NFS, where
  SQLite is not; one driver writes it, under its sweep's lock, so Optuna's lock files are not
  used), the truth about every trial — its params, state and value;
- ``sampler.pkl``: the sampler, pickled after each ask, so that a resumed study goes on with
  the sampler's state (its random generator) rather than reseeding it. A driver killed between
  an ask and this write resumes with the state of one ask earlier (the next trial may draw the
  params of the trial that was in flight).

Counting (:meth:`Study.counted`): ``--trials N`` counts finished trials — complete, pruned or
failed — except those told failed because their driver stopped under them: :meth:`Study.recover`
tells each trial still RUNNING in the journal that it failed (its number noted first in the
study's user attribute ``modver_interrupted``) and enqueues its params, so the next ask runs it again under a new
number. So a resumed study ends with exactly N counted trials and never counts one twice.

Samplers (``--sampler``): ``tpe`` (default; with Optuna's constant liar, since trials run at
once), ``random``, ``cmaes`` (needs the ``cmaes`` package), ``qmc`` (needs scipy) and ``grid``
(every searched param a list of values: an axis, a ``choice(...)`` or a small ``int(a,b)``). A
grid axis of a search is a categorical choice the sampler picks from.

This is the only module that imports optuna, and only inside functions: importing it loads none.
"""

from __future__ import annotations

import contextlib
import math
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from modver import _fs, errors
from modver.models import MAX_POINTS, SweepSpec
from modver.store.sweepstore import Best

__all__ = ["PRUNERS", "SAMPLERS", "Optimize", "Study", "check_search"]

SAMPLERS = ("tpe", "random", "cmaes", "grid", "qmc")
PRUNERS = ("none", "median", "asha", "hyperband")
INTERRUPTED = "modver_interrupted"  # the study's user attribute: trials told failed because their driver stopped
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_OPTIMIZE_HINT = "e.g. modver sweep --optimize accuracy --trials 20 --set model.C=loguniform(1e-3,10)"


@dataclass(frozen=True)
class Optimize:
    """What a search optimizes: ``metric`` (highest, or lowest with ``minimize``) over ``trials``
    finished trials, drawn by ``sampler`` (seeded by ``seed``) in the study ``study``."""

    metric: str
    trials: int
    minimize: bool = False
    sampler: str = "tpe"
    seed: int | None = None
    study: str | None = None  # default: the sweep's id
    prune: str = "none"  # the pruner: none, median, asha (successive halving), hyperband

    @property
    def best(self) -> Best:
        return Best(self.metric, lowest=self.minimize)

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "direction": "minimize" if self.minimize else "maximize",
                "trials": self.trials, "sampler": self.sampler, "seed": self.seed, "study": self.study,
                "prune": self.prune}  # fmt: skip

    @classmethod
    def from_json(cls, data: Any) -> Optimize:
        return cls(str(data["metric"]), int(data["trials"]), data.get("direction") == "minimize",
                   str(data.get("sampler") or "tpe"), data.get("seed"), data.get("study"),
                   str(data.get("prune") or "none"))  # fmt: skip


def check_search(spec: SweepSpec, optimize: Optimize | None) -> None:
    """A search is well formed, or :class:`~modver.errors.SweepError` / :class:`~modver.errors.UsageError`
    says why — before anything runs: distributions need ``--optimize``; a search needs something
    to search, no ``--zip``, at least one trial, a known sampler; a grid sampler discrete params."""
    if optimize is None:
        if spec.search:
            d = spec.search[0]
            raise errors.SweepError(
                f"--set {d.target}={d.text()} is a distribution: only a search draws from it",
                hint="give --optimize METRIC --trials N (a grid sweep takes lists of values: --set model.C=0.1,1,10)",
            )
        return
    if not optimize.metric.strip():
        raise errors.UsageError("--optimize needs a metric's name", hint=_OPTIMIZE_HINT)
    if not 1 <= optimize.trials <= MAX_POINTS:
        raise errors.UsageError(f"--trials must be between 1 and {MAX_POINTS:,}, not {optimize.trials}",
                                hint=_OPTIMIZE_HINT)  # fmt: skip
    if optimize.sampler not in SAMPLERS:
        raise errors.UsageError(f"unknown --sampler {optimize.sampler!r}", hint=f"give one of {', '.join(SAMPLERS)}")
    if optimize.prune not in PRUNERS:
        raise errors.UsageError(f"unknown --prune {optimize.prune!r}", hint=f"give one of {', '.join(PRUNERS)}")
    if optimize.study is not None and not _NAME.match(optimize.study):
        raise errors.UsageError(
            f"bad --study name {optimize.study[:60]!r}", hint="letters, digits, '_', '-' and '.', not first"
        )
    if spec.zip:
        raise errors.SweepError("a search does not pair axes: --zip (or zip:) cannot go with --optimize",
                                hint="give the values as a grid axis or a choice(...)")  # fmt: skip
    if not spec.search and not spec.grid:
        raise errors.SweepError("nothing to search: no --set is a distribution or an axis", hint=_OPTIMIZE_HINT)
    for axis in spec.grid:
        bad = [v for v in axis.values if v is not None and not isinstance(v, bool | int | float | str)]
        if bad:
            raise errors.SweepError(
                f"--set {axis.target}: a search picks one plain value of an axis, not {bad[0]!r}",
                hint="give lists and mappings as fixed --set values",
            )
    if optimize.sampler == "grid":
        size = math.prod(len(v) for v in _grid_values(spec).values())
        if optimize.trials > size:
            raise errors.UsageError(
                f"--sampler grid: the grid has {size} points, fewer than --trials {optimize.trials}",
                hint=f"give --trials {size} or fewer, or more values",
            )


def _grid_values(spec: SweepSpec) -> dict[str, list[Any]]:
    """Every searched param's values, for the grid sampler; SweepError for a continuous one."""
    values = {a.target: list(a.values) for a in spec.grid}
    for d in spec.search:
        if d.kind == "choice":
            values[d.target] = list(d.args)
        elif d.kind == "int" and not d.log and d.args[1] - d.args[0] < MAX_POINTS:
            values[d.target] = list(range(d.args[0], d.args[1] + 1))
        else:
            raise errors.SweepError(
                f"--sampler grid needs values to go through, and --set {d.target}={d.text()} is continuous",
                hint="give it as an axis (V1,V2,...) or choice(...), or use --sampler tpe|random|qmc",
            )
    return values


def _space(spec: SweepSpec) -> dict[str, Any]:
    """The search space: Optuna's distribution of each searched param (an axis is a choice)."""
    from optuna import distributions as od

    space: dict[str, Any] = {a.target: od.CategoricalDistribution(a.values) for a in spec.grid}
    for d in spec.search:
        if d.kind == "choice":
            space[d.target] = od.CategoricalDistribution(d.args)
        elif d.kind == "int":
            space[d.target] = od.IntDistribution(d.args[0], d.args[1], log=d.log)
        else:
            space[d.target] = od.FloatDistribution(d.args[0], d.args[1], log=d.kind == "loguniform")
    return space


def _sampler(optimize: Optimize, spec: SweepSpec) -> Any:
    import optuna

    seed = optimize.seed
    name = optimize.sampler
    try:
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if name == "grid":
            return optuna.samplers.GridSampler(_grid_values(spec), seed=seed)
        if name == "cmaes":
            import cmaes  # noqa: F401 - Optuna's CMA-ES sampler needs it

            return optuna.samplers.CmaEsSampler(seed=seed)
        if name == "qmc":
            import scipy  # noqa: F401 - Optuna's QMC sampler needs it

            return optuna.samplers.QMCSampler(seed=seed)
    except ImportError as exc:
        raise errors.UsageError(
            f"--sampler {name} needs the {exc.name} package, which is not installed",
            hint=f"pip install {exc.name} (or use --sampler tpe)",
        ) from exc
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def _held_lock() -> Any:
    """Optuna's journal lock, held already: one driver writes a study, under its sweep's lock
    (flock; on NFS the kernel makes it a POSIX lock), so Optuna's own lock files — which a
    killed driver or a failed write would leave behind — are not needed."""
    from optuna.storages.journal._file import BaseJournalFileLock

    class HeldLock(BaseJournalFileLock):
        def acquire(self) -> bool:
            return True

        def release(self) -> None:
            return None

    return HeldLock()


def _pruner(name: str) -> Any:
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner()
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner()
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


class Study:
    """A search's study in ``folder`` (see the module docstring). Open it with :meth:`open`;
    only one driver does (the sweep's lock), so nothing here waits on another writer."""

    def __init__(self, folder: Path, study: Any, space: dict[str, Any]):
        self.folder, self._study, self._space = folder, study, space
        self._asked: dict[int, Any] = {}  # trial number -> Optuna's trial, while it runs

    def _writing(self) -> contextlib.AbstractContextManager[None]:
        """A journal write the file system refuses (a full disk, EIO, read-only) as one clear error."""
        return _fs.write_faults(f"cannot write the journal of the study in {self.folder.name}", str(self.folder))

    @classmethod
    def open(cls, folder: Path, name: str, optimize: Optimize, spec: SweepSpec, *, resume: bool) -> Study:
        """Create the study (``resume``: load it, with its pickled sampler)."""
        import logging

        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        optuna.logging.set_verbosity(logging.ERROR)  # its "trial N finished" lines and notes are not ours to print
        space = _space(spec)
        journal = folder / "journal.log"
        with _fs.write_faults(f"cannot make the folder of study {name}", str(folder)):
            folder.mkdir(parents=True, exist_ok=True)
        sampler = _sampler(optimize, spec)
        if resume:
            with contextlib.suppress(OSError, pickle.UnpicklingError, EOFError, AttributeError):
                sampler = pickle.loads((folder / "sampler.pkl").read_bytes())
        try:
            storage = JournalStorage(JournalFileBackend(str(journal), lock_obj=_held_lock()))
            direction: Literal["minimize", "maximize"] = "minimize" if optimize.minimize else "maximize"
            study = optuna.create_study(
                study_name=name,
                storage=storage,
                sampler=sampler,
                direction=direction,
                load_if_exists=resume,
                pruner=_pruner(optimize.prune),
            )
        except optuna.exceptions.DuplicatedStudyError as exc:
            raise errors.SweepError(f"study {name} exists already", where=str(folder),
                                    hint="resume its sweep with `modver sweep --resume ID` (see `modver sweeps`), "
                                    "or give another --study NAME") from exc  # fmt: skip
        except (OSError, ValueError, KeyError) as exc:
            raise errors.SweepError(f"cannot open study {name}: {exc}", where=str(journal),
                                    hint="the journal may be damaged; start a new study with --study NAME") from exc  # fmt: skip
        return cls(folder, study, space)

    def counted(self) -> int:
        """How many finished trials count towards ``--trials`` (see the module docstring)."""
        from optuna.trial import TrialState

        done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        stopped = self.interrupted()
        return sum(t.state in done and t.number not in stopped for t in self._study.get_trials(deepcopy=False))

    def recover(self) -> list[int]:
        """Trials left RUNNING by a driver that stopped: each told failed (interrupted) and its
        params enqueued to run again; their numbers."""
        with self._writing():
            return self._recover()

    def _recover(self) -> list[int]:
        from optuna.trial import TrialState

        numbers = []
        for trial in self._study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            # noted first, so that it never counts, even if this driver dies before the tell
            self._study.set_user_attr(INTERRUPTED, sorted(self.interrupted() | {trial.number}))
            self._study.tell(trial.number, state=TrialState.FAIL)
            if set(trial.params) == set(self._space):  # asked in full: run the same params again
                self._study.enqueue_trial(dict(trial.params), skip_if_exists=False)
            numbers.append(trial.number)
        return numbers

    def interrupted(self) -> set[int]:
        """The trials told failed because their driver stopped under them."""
        return set(self._study.user_attrs.get(INTERRUPTED, ()))

    def states(self) -> dict[int, str]:
        """Each trial's state, by number: complete, pruned, fail, running, waiting."""
        return {t.number: t.state.name.lower() for t in self._study.get_trials(deepcopy=False)}

    def ask(self) -> tuple[int, dict[str, Any]]:
        """A new trial (an enqueued one first): its number and params; the sampler's state saved."""
        with self._writing():
            trial = self._study.ask(self._space)
        self._asked[trial.number] = trial
        params = {target: trial.params[target] for target in self._space}
        with _fs.write_faults("cannot save the sampler's state", str(self.folder / "sampler.pkl")):
            _fs.write_bytes_atomic(self.folder / "sampler.pkl", pickle.dumps(self._study.sampler))
        return trial.number, params

    def report(self, number: int, value: float, step: int) -> bool:
        """Trial ``number``'s stage logged ``value`` of the metric at ``step``: whether its pruner
        prunes it now."""
        trial = self._asked.get(number)
        if trial is None or not math.isfinite(value):
            return False
        with self._writing():
            trial.report(value, step)
        return bool(trial.should_prune())

    def tell(self, number: int, value: float | None, *, pruned: bool = False) -> None:
        """Trial ``number`` finished with ``value`` of the metric, or failed (None), or was pruned."""
        from optuna.trial import TrialState

        self._asked.pop(number, None)
        with self._writing():
            if pruned:
                self._study.tell(number, state=TrialState.PRUNED)
            elif value is None or not math.isfinite(value):
                self._study.tell(number, state=TrialState.FAIL)
            else:
                self._study.tell(number, value)
