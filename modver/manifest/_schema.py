"""What a manifest may hold, and the check that a parsed one does (errors say ``path:line:col``).

:func:`validate` turns the parsed YAML document into the manifest's data files, stages
(:class:`~modver.models.StageSpec`, in the file's order) and fingerprint options, refusing
anything else with a :class:`~modver.errors.ManifestError` that names the key, its place and a
fix (a did-you-mean for misspelt keys, stages and data). The schema is in
:mod:`modver.manifest`'s docstring.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from modver.errors import ManifestError
from modver.manifest._check import check_keys as _check_keys
from modver.manifest._check import is_identifier as _is_identifier
from modver.manifest._check import mapping_or_empty as _mapping_or_empty
from modver.manifest._check import project_path as _project_path
from modver.manifest._script import arg as _arg
from modver.manifest._script import check_files, producer
from modver.manifest._script import cmd as _cmd
from modver.manifest._script import outside_deps as _outside_deps
from modver.manifest._script import params_key as _params_key
from modver.manifest._script import paths as _paths
from modver.manifest._script import template_path as _template_path
from modver.manifest._yaml import Budget, pos, to_plain, type_name
from modver.models import StageSpec
from modver.names import did_you_mean, validate_name

TOP_LEVEL_KEYS = ("data", "stages", "fingerprint", "cluster", "params_file")
STAGE_KEYS = ("entry", "cmd", "version", "inputs", "params", "deps", "args", "outs", "metrics", "plots")
SCRIPT_KEYS = ("args", "outs", "metrics", "plots")
FINGERPRINT_KEYS = ("docstrings",)
DEFAULT_OPTIONS: dict[str, Any] = {"docstrings": False}

_DATA_PREFIX = "data."
_INIT_HINT = "`modver init` creates a starter manifest"


def validate(doc: Any, where: str) -> tuple[dict[str, str], dict[str, StageSpec], dict[str, Any]]:
    """The data files, stages and fingerprint options of the parsed manifest ``doc``
    (``where`` is its path, for messages)."""
    if doc is None:
        raise ManifestError("the manifest is empty", where=where, hint=f"declare `stages:`; {_INIT_HINT}")
    if not isinstance(doc, Mapping):
        raise ManifestError(
            f"the manifest must be a mapping with `stages:`, found {type_name(doc)}",
            where=pos(where, doc),
            hint=f"top-level keys: {', '.join(TOP_LEVEL_KEYS)}; {_INIT_HINT}",
        )
    _check_keys(doc, TOP_LEVEL_KEYS, "the manifest's top level", where)
    data = _data(doc, where)
    options = _options(doc, where)
    return data, _stages(doc, data, where), options


# -- the cluster: section (issue 9, sweep-core): where `modver sweep` runs its tasks --
CLUSTER_KEYS = ("kind", "jobs", "options", "start_timeout")


def cluster_section(doc: Any, where: str) -> dict[str, Any] | None:
    """The ``cluster:`` section as plain values (``kind``, ``jobs``, ``options``,
    ``start_timeout``), or None. Its keys are checked here, its values by
    :meth:`modver.sweep.cluster.ClusterConfig.from_json`."""
    hint = "write e.g. cluster: {kind: slurm, jobs: 8, options: {queue: gpu, cores: 4}}"
    if not isinstance(doc, Mapping) or doc.get("cluster") is None:
        return None
    node = _mapping_or_empty(doc, "cluster", "`cluster`", where, hint)
    _check_keys(node, CLUSTER_KEYS, "`cluster`", where)
    loc = pos(where, doc, "cluster", value=True)
    budget = Budget("the cluster section holds")
    budget.start("cluster", loc)
    return dict(to_plain(node, where, loc, budget))


def _data(doc: Any, where: str) -> dict[str, str]:
    data_node = _mapping_or_empty(doc, "data", "`data`", where, "write `data: {name: path/to/file}`")
    data: dict[str, str] = {}
    for name, value in data_node.items():
        validate_name(name, "data", where=pos(where, data_node, name))
        loc = pos(where, data_node, name, value=True)
        if not isinstance(value, str) or not value.strip():
            raise ManifestError(
                f"data {name!r} must be a file path, found {type_name(value)}",
                where=loc,
                hint="write `name: path/to/file` relative to the project root",
            )
        if "\\" in value:
            raise ManifestError(
                f"data {name!r}: {value!r} uses '\\'",
                where=loc,
                hint="write paths with '/' on every platform",
            )
        data[name] = value if value.startswith("/") else posixpath.normpath(value)
    return data


def _options(doc: Any, where: str) -> dict[str, Any]:
    options = dict(DEFAULT_OPTIONS)
    fp_node = _mapping_or_empty(doc, "fingerprint", "`fingerprint`", where, "write `fingerprint: {docstrings: true}`")
    _check_keys(fp_node, FINGERPRINT_KEYS, "`fingerprint`", where)
    for key, value in fp_node.items():
        if value is None:
            continue
        if not (isinstance(value, bool) or type(value).__name__ == "ScalarBoolean"):
            raise ManifestError(
                f"fingerprint.{key} must be true or false, found {type_name(value)}",
                where=pos(where, fp_node, key, value=True),
            )
        options[key] = bool(value)
    return options


def _stages(doc: Any, data: dict[str, str], where: str) -> dict[str, StageSpec]:
    """Every stage: names first (inputs may name later stages), then bodies, then the cycle check."""
    stages_node = _mapping_or_empty(
        doc, "stages", "`stages`", where, "write each stage as `name: {entry: file.py:function}`"
    )
    for name in stages_node:
        validate_name(name, "stage", where=pos(where, stages_node, name))
        if name.startswith(_DATA_PREFIX):
            raise ManifestError(
                f"stage name {name!r} reads like a data reference",
                where=pos(where, stages_node, name),
                hint="stage names must not start with 'data.'; rename the stage",
            )
    stages: dict[str, StageSpec] = {}
    budget = Budget("the manifest's stages hold")
    for name, body in stages_node.items():
        stages[name] = _stage(name, body, stages_node, data, where, budget)
    check_files(stages, stages_node, where)

    _order, cycle = topological_order(stages)
    if cycle is not None:
        first = cycle[-1]  # a consumer inside the cycle: point at its `inputs` (or `deps`)
        key = "inputs" if "inputs" in stages_node[first] else "deps"
        raise ManifestError(
            "the inputs of stages form a cycle: " + " -> ".join(cycle),
            where=pos(where, stages_node[first], key, value=True),
            hint="a stage cannot take its own output as input, directly or through others",
        )
    return stages


def _stage(name: str, body: Any, stages_node: Any, data: dict[str, str], where: str, budget: Budget) -> StageSpec:
    head = pos(where, stages_node, name)
    if body is None or (isinstance(body, Mapping) and "entry" not in body and "cmd" not in body):
        _check_keys(body or {}, STAGE_KEYS, f"stage {name!r}", where)
        raise ManifestError(
            f"stage {name!r} has no `entry`",
            where=head,
            hint="add `entry: path/to/file.py:function` under the stage",
        )
    if isinstance(body, str):
        raise ManifestError(
            f"stage {name!r} must be a mapping, found a string",
            where=pos(where, stages_node, name, value=True),
            hint=f"write `{name}: {{entry: {body}}}`",
        )
    if not isinstance(body, Mapping):
        raise ManifestError(
            f"stage {name!r} must be a mapping, found {type_name(body)}",
            where=pos(where, stages_node, name, value=True),
            hint="write `entry:` and the other stage keys under the stage name",
        )
    _check_keys(body, STAGE_KEYS, f"stage {name!r}", where)
    budget.start(f"stage {name!r}", head)
    budget.spend()
    cmd_args: tuple[str, ...] | None = None
    if "cmd" in body:
        entry, cmd_args = _cmd(name, body, where)
    else:
        entry = _parse_entry(body["entry"], pos(where, body, "entry", value=True))
    version = normalize_version(body.get("version"), pos(where, body, "version", value=True))
    inputs = _inputs(name, body, stages_node, data, where, budget)
    script = ":" not in entry
    if not script:
        for key in SCRIPT_KEYS:
            if body.get(key) is not None:
                raise ManifestError(
                    f"`{key}` of stage {name!r}: only a script stage (entry `file.py`) has {key}",
                    where=pos(where, body, key),
                    hint="make the entry the script's file, or return the result from the function",
                )
    file_params: tuple[str, ...] = ()
    if isinstance(body.get("params"), list):
        if not script:
            raise ManifestError(
                f"params of stage {name!r} must be a mapping: list-form params are for script stages",
                where=pos(where, body, "params", value=True),
                hint="write `params: {name: value}`",
            )
        file_params = _paths(name, body, "params", where, budget, _params_key)
        params: dict[str, Any] = {}
    else:
        params = _params(name, body, inputs, where, budget)
    deps = _deps(name, body, where, budget, script=script)
    return StageSpec(
        name=name, entry=entry, version=version, inputs=inputs, params=params, deps=deps,
        args=cmd_args if cmd_args is not None else _paths(name, body, "args", where, budget, _arg),
        outs=_paths(name, body, "outs", where, budget, _template_path),
        metrics=_paths(name, body, "metrics", where, budget, _template_path),
        plots=_paths(name, body, "plots", where, budget, _template_path),
        file_params=file_params,
        outside=_outside_deps(name, body, where) if script else (),
    )  # fmt: skip


def _inputs(name: str, body: Any, stages_node: Any, data: dict[str, str], where: str, budget: Budget) -> dict[str, str]:
    """A stage's ``inputs``: keyword argument -> ``data.<name>`` or a declared stage."""
    inputs: dict[str, str] = {}
    inputs_node = _mapping_or_empty(
        body,
        "inputs",
        f"inputs of stage {name!r}",
        where,
        "write `inputs: {argument: data.<name> or <stage>}`",
    )
    budget.start(f"the inputs of stage {name!r}", pos(where, body, "inputs", value=True))
    budget.spend(values=len(inputs_node))
    for kwarg, ref in inputs_node.items():
        kloc = pos(where, inputs_node, kwarg)
        if not _is_identifier(kwarg):
            raise ManifestError(
                f"input {kwarg!r} of stage {name!r} is not a Python keyword argument name",
                where=kloc,
                hint="input names are the stage function's parameter names",
            )
        vloc = pos(where, inputs_node, kwarg, value=True)
        if not isinstance(ref, str):
            raise ManifestError(
                f"input {kwarg!r} of stage {name!r} must name data.<name> or a stage, found {type_name(ref)}",
                where=vloc,
            )
        if ref.startswith(_DATA_PREFIX):
            dname = ref[len(_DATA_PREFIX) :]
            if dname not in data:
                declared = ", ".join(data) or "none"
                raise ManifestError(
                    f"input {kwarg!r} of stage {name!r} refers to undeclared data {dname!r}",
                    where=vloc,
                    hint=f"{did_you_mean(dname, data)}declared data: {declared}; add it under `data:`",
                )
        elif ref not in stages_node:
            declared = ", ".join(stages_node) or "none"
            raise ManifestError(
                f"input {kwarg!r} of stage {name!r} refers to unknown stage {ref!r}",
                where=vloc,
                hint=f"{did_you_mean(ref, stages_node)}declared stages: {declared}; use data.<name> for a data file",
            )
        inputs[kwarg] = ref
    return inputs


def _params(name: str, body: Any, inputs: dict[str, str], where: str, budget: Budget) -> dict[str, Any]:
    """A stage's ``params``, as plain Python values (counted against ``budget``)."""
    params_node = body.get("params")
    if params_node is None:
        return {}
    if not isinstance(params_node, Mapping):
        raise ManifestError(
            f"params of stage {name!r} must be a mapping, found {type_name(params_node)}",
            where=pos(where, body, "params", value=True),
            hint="write `params: {name: value}`",
        )
    params: dict[str, Any] = {}
    for key, value in params_node.items():
        kloc = pos(where, params_node, key)
        if not isinstance(key, str) or not key:
            raise ManifestError(
                f"param names of stage {name!r} must be strings, found {type_name(key)} {key!r}",
                where=kloc,
                hint="quote the name",
            )
        if key in inputs:
            raise ManifestError(
                f"stage {name!r} has both an input and a param called {key!r}",
                where=kloc,
                hint="each keyword argument comes from one place; rename one of them",
            )
        vloc = pos(where, params_node, key, value=True)
        budget.start(f"param {key!r} of stage {name!r}", vloc)
        params[key] = to_plain(value, where, vloc, budget)
    return params


def _deps(name: str, body: Any, where: str, budget: Budget, *, script: bool = False) -> tuple[str, ...]:
    """A stage's ``deps``: project paths of extra files fingerprinted whole (a function stage),
    or of the files and folders a script stage reads (``${}`` templates allowed; the
    ``{path: ..., outside: true}`` items are :func:`_outside_deps`)."""
    check = _template_path if script else _project_path
    return _paths(name, body, "deps", where, budget, check, skip=lambda item: script and isinstance(item, Mapping))


def _parse_entry(value: Any, loc: str) -> str:
    hint = "write `path/to/file.py`, `path/to/file.py:function` or `path/to/file.py:Class.method`"
    if not isinstance(value, str):
        raise ManifestError(f"entry must be a string, found {type_name(value)}", where=loc, hint=hint)
    file_part, sep, target = value.strip().partition(":")
    if not file_part.endswith(".py"):
        raise ManifestError(f"entry {value!r} does not name a .py file", where=loc, hint=hint)
    path = _project_path(file_part, "entry file", loc, suffix=".py")
    if not sep:
        return path
    parts = target.split(".")
    if not 1 <= len(parts) <= 2 or not all(_is_identifier(p) for p in parts):
        raise ManifestError(
            f"entry {value!r}: {target!r} is not a function, class or Class.method name",
            where=loc,
            hint=hint,
        )
    return f"{path}:{target}"


def normalize_version(value: Any, loc: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or type(value).__name__ == "ScalarBoolean":
        pass
    elif isinstance(value, int):
        if value >= 1:
            return f"v{int(value)}"
    elif isinstance(value, str):
        text = value.strip()
        if text and not any(ch.isspace() for ch in text):
            return text
    raise ManifestError(
        f"version must be a version reference like v3, found {type_name(value)} {value!r}",
        where=loc,
        hint="write `version: v3` (or a tag, `latest`, a fingerprint prefix, `git:REV`); "
        "remove the key to use the working tree",
    )


def topological_order(stages: Mapping[str, StageSpec]) -> tuple[list[str], list[str] | None]:
    """(order, None), or (partial order, cycle) with the cycle as ``[a, b, a]`` in data flow."""
    needs = {
        name: [ref for ref in spec.inputs.values() if not ref.startswith(_DATA_PREFIX) and ref in stages]
        + [up for dep in spec.deps if (up := producer(stages, dep)) is not None]
        for name, spec in stages.items()
    }
    # Kahn's algorithm; of the stages ready to run, the first in the file goes first
    import heapq

    names = list(stages)
    waiting = {name: len(set(deps)) for name, deps in needs.items()}
    users: dict[str, list[str]] = {name: [] for name in names}
    for name, deps in needs.items():
        for dep in set(deps):
            users[dep].append(name)
    rank = {name: i for i, name in enumerate(names)}
    ready = [rank[name] for name in names if not waiting[name]]
    order: list[str] = []
    while ready:
        name = names[heapq.heappop(ready)]
        order.append(name)
        for user in users[name]:
            waiting[user] -= 1
            if not waiting[user]:
                heapq.heappush(ready, rank[user])
    if len(order) < len(names):
        done = set(order)
        return order, _find_cycle([n for n in names if n not in done], needs, done)
    return order, None


def _find_cycle(remaining: list[str], needs: dict[str, list[str]], done: set[str]) -> list[str]:
    # Every remaining stage waits on another remaining one: walking "needs" must loop.
    path: list[str] = []
    seen: dict[str, int] = {}
    node = remaining[0]
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = next(d for d in needs[node] if d not in done)
    loop = path[seen[node] :]
    loop.reverse()  # producer -> consumer
    rank = {n: i for i, n in enumerate(remaining)}
    start = min(range(len(loop)), key=lambda i: rank[loop[i]])
    loop = loop[start:] + loop[:start]
    return [*loop, loop[0]]
