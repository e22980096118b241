"""The script-stage keys of a manifest (docs/scripts.md): ``cmd``, ``args``, ``deps`` (with
``{path, outside: true}`` items), ``outs``, ``metrics``, ``plots``, list-form ``params``,
``${params.KEY}``/``${data.NAME}`` templates and the top-level ``params_file``; the checks
across stages (two stages writing one path, a params-file key that also names a dict param)."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping
from typing import Any

from modver.errors import ManifestError
from modver.manifest._check import check_keys as _check_keys
from modver.manifest._check import project_path as _project_path
from modver.manifest._yaml import Budget, item_pos, pos, type_name
from modver.models import StageSpec

__all__ = ["DEFAULT_PARAMS_FILE", "arg", "check_files", "cmd", "outside_deps", "params_file", "params_key", "paths",
           "producer", "template_path"]  # fmt: skip

DEFAULT_PARAMS_FILE = "params.yaml"


def cmd(name: str, body: Any, where: str) -> tuple[str, tuple[str, ...]]:
    """``cmd: python FILE ARGS...`` (DVC's spelling): the script's entry and its args."""
    import shlex

    loc = pos(where, body, "cmd", value=True)
    value = body["cmd"]
    for other in ("entry", "args"):
        if other in body:
            raise ManifestError(
                f"stage {name!r} has both `cmd` and `{other}`",
                where=pos(where, body, other),
                hint="give the script and its arguments once: `cmd: python FILE ARGS` or `entry:` with `args:`",
            )
    try:
        words = shlex.split(value) if isinstance(value, str) else []
    except ValueError as exc:
        raise ManifestError(f"cmd of stage {name!r} cannot be split into words: {exc}", where=loc) from exc
    runner = posixpath.basename(words[0]) if words else ""
    if not re.fullmatch(r"python[0-9.]*", runner) or len(words) < 2 or not words[1].endswith(".py"):
        raise ManifestError(
            f"cmd of stage {name!r} does not run a Python file: {value!r}",
            where=loc,
            hint="write `cmd: python path/to/script.py ARGS...`; commands that run other programs "
            "are not supported yet: call them from a Python script (subprocess.run)",
        )
    entry = _project_path(words[1], "entry file", loc, suffix=".py")
    return entry, tuple(arg(word, f"arg of stage {name!r}", loc) for word in words[2:])


_OUTSIDE_KEYS = ("path", "outside")


def outside_deps(name: str, body: Any, where: str) -> tuple[str, ...]:
    """A script stage's deps outside the project, opted in per path with
    ``{path: /abs/path, outside: true}``: absolute, normalised."""
    node = body.get("deps")
    if not isinstance(node, list):
        return ()
    found = []
    for i, item in enumerate(node):
        if not isinstance(item, Mapping):
            continue
        loc = item_pos(where, node, i)
        _check_keys(item, _OUTSIDE_KEYS, f"a dep of stage {name!r}", where)
        path, outside = item.get("path"), item.get("outside")
        if not (isinstance(outside, bool) or type(outside).__name__ == "ScalarBoolean") or not bool(outside):
            raise ManifestError(
                f"dep {path!r} of stage {name!r}: a dep written as a mapping must say `outside: true`",
                where=loc,
                hint="write a project path as a plain string; `{path: /data/x, outside: true}` opts in to data outside the project",
            )
        if not isinstance(path, str) or not path.startswith("/"):
            raise ManifestError(
                f"outside dep of stage {name!r} must be an absolute path, found {type_name(path)} {path!r}",
                where=loc,
                hint="write e.g. `{path: /data/imagenet, outside: true}`",
            )
        found.append(posixpath.normpath(path))
    return tuple(found)


def paths(
    name: str,
    body: Any,
    key: str,
    where: str,
    budget: Budget,
    check: Callable[[Any, str, str], str],
    skip: Callable[[Any], bool] = lambda item: False,
) -> tuple[str, ...]:
    """A stage's list under ``key`` (``deps``, ``args``, ``outs``, ...), each item ``check``-ed."""
    node = body.get(key)
    if node is None:
        return ()
    loc = pos(where, body, key, value=True)
    kind = "list" if key in ("args", "params") else "list of paths"
    if isinstance(node, str):
        raise ManifestError(
            f"{key} of stage {name!r} must be a {kind}, found a string",
            where=loc,
            hint=f"write `{key}: [{node}]`",
        )
    if not isinstance(node, list):
        raise ManifestError(
            f"{key} of stage {name!r} must be a {kind}, found {type_name(node)}",
            where=loc,
            hint=f"write `{key}: [path/to/file, ...]`" if kind != "list" else f"write `{key}: [item, ...]`",
        )
    budget.start(f"the {key} of stage {name!r}", loc)
    budget.spend(values=len(node))
    what = f"{_SINGULAR.get(key, key)} of stage {name!r}"
    items = tuple(check(item, what, item_pos(where, node, i)) for i, item in enumerate(node) if not skip(item))
    for i, item in enumerate(items):
        if item in items[:i]:
            raise ManifestError(f"{what} {item!r} is listed twice", where=item_pos(where, node, i))
    return items


_SINGULAR = {"deps": "dep", "args": "arg", "outs": "out", "metrics": "metrics file", "plots": "plots file",
             "params": "params-file key"}  # fmt: skip
_TEMPLATE = re.compile(r"\$\{([^}]*)\}")
_TEMPLATE_REF = re.compile(r"(params|data)\.([A-Za-z_][\w.-]*)")


def _check_templates(value: str, what: str, loc: str) -> None:
    """Every ``${...}`` in ``value`` is ``${params.KEY}`` or ``${data.NAME}``."""
    for match in _TEMPLATE.finditer(value):
        if not _TEMPLATE_REF.fullmatch(match.group(1).strip()):
            raise ManifestError(
                f"{what} {value!r}: unknown template {match.group(0)!r}",
                where=loc,
                hint="templates are ${params.KEY} (a key of the params file) or ${data.NAME}",
            )
    if "${" in _TEMPLATE.sub("", value):
        raise ManifestError(f"{what} {value!r}: an unclosed '${{'", where=loc, hint="write ${params.KEY}")


def template_path(value: Any, what: str, loc: str) -> str:
    """A project path that may hold ``${}`` templates (checked again once they are filled)."""
    if isinstance(value, str) and "${" in value:
        _check_templates(value, what, loc)
        return value
    return _project_path(value, what, loc)


def arg(value: Any, what: str, loc: str) -> str:
    """One positional argument: a string, a number or a boolean, written as the command line reads it."""
    if isinstance(value, bool) or type(value).__name__ == "ScalarBoolean":
        return "True" if value else "False"
    if isinstance(value, int | float):
        return repr(value)
    if not isinstance(value, str):
        raise ManifestError(
            f"{what} must be a string or a number, found {type_name(value)}",
            where=loc,
            hint="write positional arguments as a list of strings, e.g. `args: [config/train.py]`",
        )
    _check_templates(value, what, loc)
    return str(value)


def params_key(value: Any, what: str, loc: str) -> str:
    """A key of the params file, ``section.key`` (dots go down into mappings)."""
    if not isinstance(value, str) or not value.strip() or any(not part for part in value.split(".")):
        raise ManifestError(
            f"{what} must be a key of the params file like `train.lr`, found {type_name(value)} {value!r}",
            where=loc,
            hint="list-form params are keys of params_file (default params.yaml); "
            "write `params: {name: value}` to pass values on the command line",
        )
    return value


def check_files(stages: Mapping[str, StageSpec], stages_node: Any, where: str) -> None:
    """Script stages' files: no two stages write one path (or one inside the other), and no
    list-form key also names a dict-form ``STAGE.PARAM``."""
    written: dict[str, str] = {}
    for name, spec in stages.items():
        for out in spec.outs:
            for path, other in written.items():
                if out == path or out.startswith(path + "/") or path.startswith(out + "/"):
                    raise ManifestError(
                        f"stages {other!r} and {name!r} both write {min(out, path, key=len)!r} (outs {path!r} and {out!r})",
                        where=pos(where, stages_node[name], "outs", value=True),
                        hint="each file or folder is the out of one stage; write to different paths",
                    )
            written[out] = name
    for name, spec in stages.items():
        for dep in spec.deps if spec.is_script else ():
            holder = next(((o, w) for o, w in written.items() if o.startswith(dep + "/")), None)
            if holder is not None:
                raise ManifestError(
                    f"dep {dep!r} of stage {name!r} holds {holder[0]!r}, an out of stage {holder[1]!r}",
                    where=pos(where, stages_node[name], "deps", value=True),
                    hint="list the files or folders it reads, not a folder that also holds outs",
                )
    for name, spec in stages.items():
        for key in spec.file_params:
            stage, _, param = key.partition(".")
            if stage not in stages:
                continue
            params = stages[stage].params  # a section listed whole (`params: [train]`) holds every `train.X`
            clash = (param if param in params else None) if param else next(iter(params), None)
            if clash is not None:
                param = clash
                raise ManifestError(
                    f"params-file key {key!r} of stage {name!r} also names param {param!r} of stage {stage!r}",
                    where=pos(where, stages_node[name], "params", value=True),
                    hint=f"`--set {key}=...` would mean both; rename the param or the params-file section",
                )


def producer(stages: Mapping[str, StageSpec], path: str) -> str | None:
    """The stage whose ``outs`` hold ``path`` (the out itself or a path inside it), or None."""
    for name, spec in stages.items():
        for out in spec.outs:
            if path == out or path.startswith(out + "/"):
                return name
    return None


def params_file(doc: Any, where: str) -> str:
    """The ``params_file:`` (default :data:`DEFAULT_PARAMS_FILE`), a project path."""
    if not isinstance(doc, Mapping) or doc.get("params_file") is None:
        return DEFAULT_PARAMS_FILE
    value = doc["params_file"]
    loc = pos(where, doc, "params_file", value=True)
    path = _project_path(value, "params_file", loc)
    if not path.endswith((".yaml", ".yml", ".json")):
        raise ManifestError(
            f"params_file {path!r} is not a YAML or JSON file",
            where=loc,
            hint="write e.g. `params_file: params.yaml`",
        )
    return path
