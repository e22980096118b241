"""Planning a script stage: its templates filled, its files found, its params file written.

A script stage (entry ``file.py``, docs/scripts.md) names files: ``args`` (positional
arguments), ``deps`` (files and folders it reads), ``outs`` (what it writes), ``metrics`` and
``plots`` files, and list-form ``params`` (keys of the params file). :func:`fill_file_params`
puts the params file's values of the listed keys into the stage's ``params`` (under the full
key: that is what the cache key and the record hold); :func:`resolve_files` fills the
``${params.KEY}``/``${data.NAME}`` templates and finds the args that name project files (deps
without being listed); :func:`script_inputs` turns the deps into the inputs of the cache key —
a path inside an upstream stage's outs is that stage's output, any other is content-hashed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modver import errors
from modver.manifest._params import lookup, missing_key, render_params
from modver.models import StageSpec
from modver.names import did_you_mean
from modver.record import InputKey
from modver.store.data import DataHasher

__all__ = [
    "ScriptFiles",
    "check_file_key",
    "file_key_of",
    "fill_file_params",
    "outside_hash",
    "resolve_files",
    "script_inputs",
]

_TEMPLATE = re.compile(r"\$\{\s*(params|data)\.([^}\s]+)\s*\}")


@dataclass(frozen=True)
class ScriptFiles:
    """A script stage's files with templates filled (project paths, ``/``-separated)."""

    args: tuple[str, ...] = ()
    deps: tuple[str, ...] = ()  # listed ones, then args that name project files
    implied: tuple[str, ...] = ()  # the deps that came from args
    outs: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    plots: tuple[str, ...] = ()
    params_file: str = "params.yaml"
    params_text: str | None = None  # the params file the stage's workspace gets (None: none)
    params_json: bool = False
    upstream: Mapping[str, str] = field(default_factory=dict)  # dep -> the stage whose out holds it
    file_keys: tuple[str, ...] = ()  # the list-form params (keys of the params file)

    def keyed(self) -> dict[str, Any]:
        """What of it goes in the cache key (the deps go in as inputs)."""
        return {"args": list(self.args), "outs": list(self.outs), "metrics": list(self.metrics),
                "plots": list(self.plots)}  # fmt: skip


def file_key_of(stages: tuple[StageSpec, ...], target: str) -> str | None:
    """The list-form key that ``target`` addresses: a key a stage lists, or the listed section
    that holds it (``train.factor`` under ``params: [train]``); None when no stage lists it."""
    for spec in stages:
        for key in spec.file_params:
            if target == key or target.startswith(key + "."):
                return key
    return None


def check_file_key(doc: Mapping[str, Any], where: str, target: str, what: str) -> None:
    """``target``, a key inside a section a stage lists whole, is in the params file, or a clear
    error (a typo would otherwise add a key no script reads)."""
    try:
        lookup(doc, target)
    except KeyError:
        known = [k for k in _dotted(doc) if k.startswith(target.rpartition(".")[0] + ".")]
        raise errors.RunError(
            f"{what}: the params file {where} has no key {target!r}",
            where=where,
            hint=f"{did_you_mean(target, known)}--set changes keys the params file has; add it to {where} first",
        ) from None


def _dotted(doc: Mapping[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in doc.items():
        out.append(prefix + str(key))
        if isinstance(value, Mapping):
            out += _dotted(value, prefix + str(key) + ".")
    return out


def file_value(doc: Mapping[str, Any], sets: Mapping[str, Any], key: str) -> Any:
    """The value of params-file ``key``: a ``--set`` of it, else the file's with the ``--set``
    keys inside it applied (a section listed whole); KeyError if neither."""
    if key in sets:
        return sets[key]
    value = lookup(doc, key)
    inner = {t[len(key) + 1 :]: v for t, v in sets.items() if t.startswith(key + ".")}
    if inner and isinstance(value, Mapping):
        import copy

        value = copy.deepcopy(dict(value))
        for sub, item in sorted(inner.items()):
            _set_in(value, sub, item)
    return value


def _set_in(doc: dict[str, Any], key: str, value: Any) -> None:
    """Set dotted ``key`` of ``doc`` (an existing key with dots of its own first)."""
    if key in doc:
        doc[key] = value
        return
    head, _, rest = key.partition(".")
    if rest and isinstance(doc.get(head), Mapping):
        doc[head] = dict(doc[head])
        _set_in(doc[head], rest, value)
    else:
        doc[key] = value


def fill_file_params(
    stages: tuple[StageSpec, ...], doc: Mapping[str, Any], sets: Mapping[str, Any], where: str
) -> tuple[StageSpec, ...]:
    """The stages with each list-form key's value in ``params`` (``--set`` values win)."""
    from dataclasses import replace

    out = []
    for spec in stages:
        if spec.file_params:
            params = {k: v for k, v in spec.params.items() if k not in spec.file_params}
            for key in spec.file_params:
                try:
                    params[key] = file_value(doc, sets, key)
                except KeyError:
                    raise missing_key(doc, key, spec.name, where) from None
            spec = replace(spec, params=params)
        out.append(spec)
    return tuple(out)


def _fill(text: str, spec: StageSpec, data: Mapping[str, str], doc: Mapping[str, Any], sets: Mapping[str, Any]) -> str:
    def one(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2)
        if kind == "data":
            if name not in data:
                raise errors.ManifestError(
                    f"stage {spec.name}: {match.group(0)} names undeclared data {name!r}",
                    where=spec.name,
                    hint=f"declared data: {', '.join(data) or 'none'}; add it under `data:`",
                )
            return data[name]
        key = name
        value = spec.params.get(key)
        if value is None:
            try:
                value = file_value(doc, sets, key)
            except KeyError:
                raise errors.ManifestError(
                    f"stage {spec.name}: {match.group(0)} names key {key!r}, which the params file does not have",
                    where=spec.name,
                    hint=f"add `{key}` to the params file (params_file:, default params.yaml), or fix the template",
                ) from None
        return _as_arg(value)

    return _TEMPLATE.sub(one, text)


def _as_arg(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def _path(value: str, what: str) -> str:
    import posixpath

    norm = posixpath.normpath(value)
    if value.startswith("/") or norm == ".." or norm.startswith("../") or norm == ".":
        raise errors.ManifestError(
            f"{what} {value!r} is outside the project", where=what, hint="write paths relative to the project root"
        )
    return norm


def resolve_files(
    spec: StageSpec,
    root: Path,
    data: Mapping[str, str],
    doc: Mapping[str, Any],
    sets: Mapping[str, Any],
    params: tuple[str, str, bool],
    upstream_outs: tuple[str, ...] = (),
) -> ScriptFiles:
    """``spec``'s files with templates filled; ``params`` is the params file's (path, text, json).

    An arg that names a path inside ``upstream_outs`` (earlier stages' outs), or an existing
    project file or folder outside the stage's own outs, is a dep."""
    what = f"stage {spec.name}:"
    args = tuple(_fill(a, spec, data, doc, sets) for a in spec.args)
    code = set(spec.code_deps)  # in the version's files already
    deps = [_path(_fill(d, spec, data, doc, sets), f"{what} dep") for d in spec.deps if d not in code]
    outs = tuple(_path(_fill(o, spec, data, doc, sets), f"{what} out") for o in spec.outs)
    implied: list[str] = []
    for arg in args:
        if arg.startswith("-") or "\0" in arg or len(arg) > 4096:
            continue
        try:
            candidate = _path(arg, "arg")
        except errors.ManifestError:
            continue
        if candidate in deps or candidate in code or candidate in implied or _inside(candidate, outs):
            continue
        if _inside(candidate, upstream_outs) or (os.path.lexists(root / candidate) and candidate != ".git"):
            implied.append(candidate)
    metrics = tuple(_path(_fill(m, spec, data, doc, sets), f"{what} metrics file") for m in spec.metrics)
    plots = tuple(_path(_fill(m, spec, data, doc, sets), f"{what} plots file") for m in spec.plots)
    rel, text, is_json = params
    values = {k: spec.params[k] for k in spec.file_params}  # a section listed whole: with its --set keys
    rendered = render_params(text, values, is_json) if values else (text or None)
    return ScriptFiles(
        args,
        tuple([*deps, *implied]),
        tuple(implied),
        outs,
        metrics,
        plots,
        rel,
        rendered,
        is_json,
        file_keys=spec.file_params,
    )


def _inside(path: str, outs: tuple[str, ...]) -> bool:
    return any(path == out or path.startswith(out + "/") for out in outs)


def script_inputs(
    spec: StageSpec, files: ScriptFiles, outs_of: Mapping[str, tuple[str, ...]], keys: Mapping[str, str],
    hasher: DataHasher,
) -> tuple[dict[str, InputKey], dict[str, str]]:  # fmt: skip
    """The cache-key inputs of a script stage's deps (keyed by path), and dep -> upstream stage."""
    inputs: dict[str, InputKey] = {}
    upstream: dict[str, str] = {}
    for dep in files.deps:
        producer = next(
            (name for name, outs in outs_of.items() for out in outs if dep == out or dep.startswith(out + "/")), None
        )
        if producer is not None:
            inputs[dep] = InputKey(stage=producer, key=keys[producer])
            upstream[dep] = producer
            continue
        try:
            inputs[dep] = InputKey(data=dep, hash=hasher.hash(f"{spec.name}/deps", dep))
        except errors.RunError as exc:
            raise errors.RunError(
                f"stage {spec.name}: dep {dep} does not exist or cannot be read ({exc.message})",
                where=dep,
                hint="create it, or list it in the `outs:` of the stage that writes it",
            ) from exc
    for path in spec.outside:  # opted in: hashed where it is, never copied or stored
        inputs[path] = InputKey(data=path, hash=outside_hash(spec.name, path))
    return inputs, upstream


def outside_hash(stage: str, path: str) -> str:
    """The content hash of a dep outside the project (a file or folder; read in full)."""
    from modver.engine.workspace import tree_hash

    found = tree_hash(Path(path))
    if found is None:
        raise errors.RunError(
            f"stage {stage}: outside dep {path} does not exist",
            where=path,
            hint="mount or create it, or remove it from the stage's `deps:`",
        )
    return found
