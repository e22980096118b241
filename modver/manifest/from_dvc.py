"""A DVC pipeline (``dvc.yaml``) as a modver manifest: ``modver init --from-dvc``.

:func:`convert_dvc` is pure: the text of ``dvc.yaml`` and a read-only view of the project's
files (params files, ``vars`` files, module lookups) in, the manifest's data and the notes of
what was left out or changed out. It writes nothing; ``modver.project.init`` writes the result.

What converts (docs/from-dvc.md): ``cmd: python FILE ARGS`` → ``entry: FILE`` and ``args``;
``deps`` (the script and the project-local Python files it reaches are dropped: modver
fingerprints them), ``params`` of ``params.yaml`` (and of one other params file) → list-form
params, ``outs``, ``metrics``, ``plots``; ``vars`` and ``${}`` (a key of the params file stays a
template, ``${params.KEY}``, where modver allows one); ``foreach``/``do`` and ``matrix``
expanded; ``wdir`` joined to the paths; the top-level ``metrics:`` and ``plots:`` attached to
the stage whose outs hold them. Everything else is named with its line.
"""

from __future__ import annotations

import itertools
import posixpath
import re
import shlex
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from modver.errors import ManifestError, ModverError
from modver.manifest._yaml import dump, parse
from modver.names import is_name

DEFAULT_PARAMS = "params.yaml"
_TEMPLATE = re.compile(r"\$\{\s*([^}]*?)\s*\}")
_PYTHON = re.compile(r"(?:.*/)?python(?:\d+(?:\.\d+)?)?$")
_SHELL = re.compile(r"[|&;<>`]|\$\(")
_PY_FLAGS = {"-u", "-O", "-OO", "-B", "-E", "-s", "-S", "-I", "-q", "-b", "-bb"}
_PY_FLAGS_WITH_VALUE = {"-W", "-X"}
_IMAGES = (".png", ".jpg", ".jpeg", ".svg", ".gif")
_STAGE_KEYS = {"cmd", "deps", "params", "outs", "metrics", "plots", "wdir", "vars", "desc", "meta"}
_TOP_KEYS = {"stages", "vars", "metrics", "plots", "artifacts", "params", "datasets"}


class Tree(Protocol):
    """The project's files, read-only (:class:`~modver.sourcetree.WorkingTree` or a ``DictTree``)."""

    def read(self, path: str) -> bytes | None: ...

    def is_dir(self, path: str) -> bool: ...


@dataclass(frozen=True)
class Note:
    """Something of dvc.yaml that did not convert as it is: ``line`` of dvc.yaml and why."""

    line: int | None
    message: str
    kind: str = "ignored"  # "ignored" (converted without it) | "skipped" (a stage left out) | "info"

    def render(self, where: str) -> str:
        return f"{where}:{self.line}: {self.message}" if self.line else f"{where}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "kind": self.kind, "message": self.message}


@dataclass(frozen=True)
class Conversion:
    """The manifest made from a dvc.yaml: its data (``stages``, maybe ``params_file``) and notes."""

    manifest: dict[str, Any]
    notes: tuple[Note, ...]
    source: str = "dvc.yaml"
    stages: tuple[str, ...] = field(default=())  # the stages converted, in order

    def text(self) -> str:
        """The manifest as YAML, with a line saying where it came from."""
        return f"# converted from {self.source} by `modver init --from-dvc`\n" + dump(self.manifest)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "stages": list(self.stages),
            "manifest": self.manifest,
            "notes": [n.to_json() for n in self.notes],
        }


class _Skip(Exception):
    """A stage that cannot be converted; its message says why."""


def convert_dvc(
    text: str,
    tree: Tree,
    closure: Callable[[str], Collection[str]] = lambda entry: (entry,),
    *,
    where: str = "dvc.yaml",
) -> Conversion:
    """The manifest of the DVC pipeline ``text`` (see the module docstring). ``closure(entry)``
    gives the project files a script's fingerprint covers (deps among them are dropped).

    Raises ManifestError when dvc.yaml is not YAML or has no ``stages:`` mapping; a stage that
    does not convert is a note, not an error."""
    doc = parse(text, where)
    if not isinstance(doc, Mapping) or not isinstance(doc.get("stages"), Mapping):
        raise ManifestError(
            f"{where} has no `stages:` mapping", where=where, hint="give the dvc.yaml of a DVC pipeline"
        )
    return _Converter(doc, tree, closure, where).run()


class _Converter:
    def __init__(self, doc: Any, tree: Tree, closure: Callable[[str], Collection[str]], where: str) -> None:
        self.doc, self.tree, self.closure, self.where = doc, tree, closure, where
        self.notes: list[Note] = []
        self.stages: dict[str, dict[str, Any]] = {}
        self.stage_params: dict[str, list[tuple[str, str, int | None]]] = {}  # stage -> (file, key, line)
        self.files: dict[str, Any] = {}  # params/vars files read
        self.base = posixpath.dirname(where)  # dvc.yaml's folder: its paths are relative to it
        self.default_params = self.at_base(DEFAULT_PARAMS)
        self.params = self.load(self.default_params, None) or {}
        self.context: dict[str, Any] = {}

    # -- the whole file -------------------------------------------------------------------------
    def run(self) -> Conversion:
        doc = self.doc
        for key in doc:
            if key not in _TOP_KEYS:
                self.note(_line(doc, key), f"top-level `{key}:` is not a DVC key modver knows: ignored")
        if "artifacts" in doc:
            names = ", ".join(str(k) for k in doc["artifacts"] or {})
            self.note(_line(doc, "artifacts"), f"`artifacts:` ({names}) not converted: modver has no model registry")
        for key in ("params", "datasets"):
            if key in doc:
                self.note(_line(doc, key), f"top-level `{key}:` not converted")
        try:
            self.context = self.vars(doc.get("vars"), _line(doc, "vars"), {})
        except _Skip as exc:
            raise ManifestError(f"`vars:` of {self.where}: {exc}", where=f"{self.where}:{_line(doc, 'vars')}") from exc
        for name, body in doc["stages"].items():
            line = _line(doc["stages"], name)
            try:
                for stage, stage_body, ctx in self.expand(str(name), body, line):
                    self.convert_stage(stage, stage_body, ctx, line)
            except _Skip as exc:
                self.note(line, f"stage {name!r} not converted: {exc}", "skipped")
        self.attach_top_level()
        manifest = self.finish_params()
        order = ("entry", "args", "deps", "params", "outs", "metrics", "plots")
        manifest["stages"] = {n: {k: s[k] for k in order if k in s} for n, s in self.stages.items()}
        if self.tree.read(posixpath.join(posixpath.dirname(self.where), "dvc.lock")) is not None:
            self.note(None, "dvc.lock is not read: modver's cache starts empty, so the first `modver run` runs "
                      "every stage (DVC's cache and dvc.lock are left as they are)", "info")  # fmt: skip
        ordered = sorted(self.notes, key=lambda n: (n.line is None, n.line or 0))
        return Conversion(manifest, tuple(ordered), self.where, tuple(self.stages))

    def at_base(self, path: str) -> str:
        """A path of dvc.yaml as a path of the project (dvc.yaml may sit in a subfolder)."""
        return posixpath.normpath(posixpath.join(self.base, path))

    def note(self, line: int | None, message: str, kind: str = "ignored") -> None:
        self.notes.append(Note(line, message, kind))

    def load(self, path: str, line: int | None) -> Any:
        """A YAML (or JSON) file of the project as plain data; None when absent or unreadable."""
        if path not in self.files:
            data = self.tree.read(path)
            value = None
            if data is not None:
                try:
                    value = _plain(parse(data.decode("utf-8", "replace"), path))
                except ModverError as exc:
                    self.note(line, f"cannot read {path}: {exc}")
            self.files[path] = value
        return self.files[path]

    def vars(self, node: Any, line: int | None, base: dict[str, Any]) -> dict[str, Any]:
        """``vars:``: mappings merged in, and files (``file.yaml`` or ``file.yaml:key,...``) read."""
        context = dict(base)
        for item in _listed(node, "`vars`"):
            if isinstance(item, Mapping):
                context.update(_plain(item))
                continue
            path, _, keys = str(item).partition(":")
            path = self.at_base(path)
            loaded = self.load(path, line)
            if not isinstance(loaded, Mapping):
                raise _Skip(f"vars file {path} (line {line}) is missing or not a mapping")
            if path == self.default_params and not keys:
                continue  # the params file: its keys stay ${params.KEY} templates
            chosen = [k.strip() for k in keys.split(",")] if keys else list(loaded)
            context.update({k: loaded[k] for k in chosen if k in loaded})
        return context

    # -- one stage ------------------------------------------------------------------------------
    def expand(self, name: str, body: Any, line: int | None) -> list[tuple[str, Any, dict[str, Any]]]:
        """``(name, body, context)`` of each stage ``name`` stands for (``foreach``/``matrix`` expanded)."""
        if not isinstance(body, Mapping):
            raise _Skip("a stage must be a mapping")
        if "foreach" in body:
            items = body["foreach"]
            if isinstance(items, str):
                items = self.resolve_value(items, self.context)
            if isinstance(items, Mapping):
                pairs = [(str(k), {"key": k, "item": v}) for k, v in items.items()]
            elif isinstance(items, list):
                pairs = [
                    (str(i) if isinstance(v, Mapping | list) else str(v), {"item": v}) for i, v in enumerate(items)
                ]
            else:
                raise _Skip("`foreach` must be a list, a mapping or a ${} of one")
            if not pairs:
                raise _Skip("`foreach` has no items")
            return [(f"{name}-{_slug(k)}", body.get("do"), {**self.context, **c}) for k, c in pairs]
        if "matrix" in body:
            if not isinstance(body["matrix"], Mapping):
                raise _Skip("`matrix` must be a mapping of lists")
            axes = {
                k: (self.resolve_value(v, self.context) if isinstance(v, str) else v) for k, v in body["matrix"].items()
            }
            if not axes or not all(isinstance(v, list) and v for v in axes.values()):
                raise _Skip("`matrix` must have axes, each a list of values")
            out = []
            for combo in itertools.product(*axes.values()):
                item = dict(zip(axes, combo))
                suffix = "-".join(_slug(str(v)) for v in combo)
                rest = {k: v for k, v in body.items() if k != "matrix"}
                out.append((f"{name}-{suffix}", rest, {**self.context, "item": item}))
            return out
        return [(name, body, self.context)]

    def convert_stage(self, name: str, body: Any, ctx: dict[str, Any], line: int | None) -> None:
        if not isinstance(body, Mapping):
            raise _Skip("`do` must be a mapping")
        if not is_name(name):
            raise _Skip(f"{name!r} is not a valid modver stage name")
        for key in body:
            if key not in _STAGE_KEYS:
                what = {"frozen": "modver has no frozen stages", "always_changed": "use `modver run --force STAGE`"}
                self.note(_line(body, key, line), f"stage {name!r}: `{key}` not converted" + (
                    f" ({what[key]})" if key in what else ""))  # fmt: skip
        ctx = self.vars(body.get("vars"), _line(body, "vars", line), ctx) if body.get("vars") else ctx
        wdir = self.at_base(self.literal(str(body.get("wdir") or "."), ctx))
        wdir = "" if wdir == "." else wdir
        if wdir.startswith("..") or wdir.startswith("/"):
            raise _Skip(f"wdir {wdir!r} is outside the project")
        if "cmd" not in body:
            raise _Skip("it has no `cmd`")
        entry, args = self.command(body["cmd"], ctx, wdir)
        stage: dict[str, Any] = {"entry": entry}
        outs = self.paths(name, body, "outs", ctx, wdir, line)
        metrics = self.paths(name, body, "metrics", ctx, wdir, line)
        plots = self.paths(name, body, "plots", ctx, wdir, line)
        deps = self.paths(name, body, "deps", ctx, wdir, line)
        if wdir:
            args = self.wdir_args(name, args, wdir, [*deps, *outs, *metrics, *plots], line)
        if args:
            stage["args"] = args
        covered = set(self.closure(entry))
        dropped = [d for d in deps if d == entry or (d.endswith(".py") and d in covered)]
        if dropped:
            self.note(_line(body, "deps", line), f"stage {name!r}: deps {', '.join(dropped)} not listed: modver "
                      f"fingerprints {entry} and the project's Python it imports", "info")  # fmt: skip
        kept = [d for d in deps if d not in dropped]
        if kept:
            stage["deps"] = kept
        self.stage_params[name] = self.param_refs(name, body.get("params"), ctx, _line(body, "params", line))
        for key, values in (("outs", outs), ("metrics", metrics), ("plots", plots)):
            if values:
                stage[key] = values
        self.stages[name] = stage

    def command(self, cmd: Any, ctx: dict[str, Any], wdir: str) -> tuple[str, list[str]]:
        """``(entry, args)`` of ``python FILE ARGS`` (``python -m pkg.mod`` of a project module too)."""
        if isinstance(cmd, list):
            if len(cmd) != 1:
                raise _Skip(f"a list of {len(cmd)} commands: modver runs one Python script per stage")
            cmd = cmd[0]
        text = self.interpolate(str(cmd), ctx, template=True)
        if _SHELL.search(text.replace("${", "")):
            raise _Skip(f"`{cmd}` is a shell command line, not `python FILE ARGS`")
        try:
            words = shlex.split(text)
        except ValueError as exc:
            raise _Skip(f"cannot split `{cmd}`: {exc}") from exc
        if not words or not _PYTHON.match(words[0]):
            raise _Skip(f"`{cmd}` does not run a Python script (command stages are not supported yet)")
        rest = words[1:]
        while rest and (rest[0] in _PY_FLAGS or rest[0] in _PY_FLAGS_WITH_VALUE):
            rest = rest[2:] if rest[0] in _PY_FLAGS_WITH_VALUE else rest[1:]
        if not rest or rest[0] == "-c":
            raise _Skip(f"`{cmd}` does not name a script file")
        if rest[0] == "-m" and len(rest) > 1:
            module = rest[1].replace(".", "/")
            for candidate in (f"{module}.py", f"{module}/__main__.py"):
                path = posixpath.join(wdir, candidate) if wdir else candidate
                if self.tree.read(path) is not None:
                    return path, rest[2:]
            raise _Skip(f"`{cmd}`: module {rest[1]} is not a file of the project")
        script = posixpath.normpath(posixpath.join(wdir, rest[0]) if wdir else rest[0])
        if "${" in script or not script.endswith(".py"):
            raise _Skip(f"`{cmd}`: {rest[0]} is not a Python file")
        if self.tree.read(script) is None:
            raise _Skip(f"{script} (run by `{cmd}`) is not a file of the project")
        return script, rest[1:]

    def wdir_args(self, name: str, args: list[str], wdir: str, paths: list[str], line: int | None) -> list[str]:
        """Arguments that are paths of the stage, relative to ``wdir``, made relative to the root."""
        out = []
        for arg in args:
            joined = posixpath.normpath(posixpath.join(wdir, arg))
            known = joined in paths or self.tree.read(joined) is not None or self.tree.is_dir(joined)
            out.append(joined if known and not arg.startswith("-") else arg)
        self.note(line, f"stage {name!r} runs in {wdir}/ under DVC; modver runs every script at the project "
                  "root: its paths were joined to the wdir, but paths the script opens itself must be too")  # fmt: skip
        return out

    def paths(self, name: str, body: Any, key: str, ctx: dict[str, Any], wdir: str, line: int | None) -> list[str]:
        """The paths of ``deps``/``outs``/``metrics``/``plots``; their options are noted, not kept."""
        out: list[str] = []
        node = body.get(key) or []
        for index, item in enumerate(node if isinstance(node, list) else [node]):
            at = _item_line(node, index, line)
            if isinstance(item, Mapping):
                if len(item) != 1 or not isinstance(next(iter(item.values())) or {}, Mapping):
                    raise _Skip(f"an item of `{key}` (line {at}) must be a path or one path with its options")
                (path, options), *_ = item.items()
                for option, value in (options or {}).items():
                    self.note(_line(options, option, at), _option_note(name, key, str(path), str(option), value))
            elif isinstance(item, str | int | float) and not isinstance(item, bool):
                path = item
            else:
                raise _Skip(f"an item of `{key}` (line {at}) is not a path")
            path = self.interpolate(str(path), ctx, template=True)
            if key == "plots" and path.lower().endswith(_IMAGES):
                self.note(at, f"stage {name!r}: plot {path} not converted: modver's plots are series files "
                          "(csv, tsv, json)")  # fmt: skip
                continue
            clean = posixpath.normpath(posixpath.join(wdir, path) if wdir else path)
            if clean.startswith("../") or clean == ".." or clean.startswith("/"):
                raise _Skip(f"{key} {path!r} is outside the project")
            out.append(clean)
        return out

    def param_refs(
        self, name: str, node: Any, ctx: dict[str, Any], line: int | None
    ) -> list[tuple[str, str, int | None]]:
        """(file, key, line) of every param a stage lists (a whole file: each of its top-level keys)."""
        refs: list[tuple[str, str, int | None]] = []
        for index, item in enumerate(_listed(node, "`params`")):
            at = _item_line(node, index, line)
            if isinstance(item, Mapping):
                for path, keys in item.items():
                    if keys is not None and not isinstance(keys, list):
                        raise _Skip(f"params of {path} (line {at}) must be a list of keys")
                    path = self.at_base(self.interpolate(str(path), ctx, template=False))
                    if not keys:
                        loaded = self.load(path, at)
                        if not isinstance(loaded, Mapping):
                            raise _Skip(f"params file {path} is missing: its keys cannot be listed")
                        keys = list(loaded)
                    refs.extend((path, self.interpolate(str(k), ctx, template=False), at) for k in keys)
            elif isinstance(item, str):
                refs.append((self.default_params, self.interpolate(item, ctx, template=False), at))
            else:
                raise _Skip(f"a param (line {at}) must be a key of params.yaml or `file: [keys]`")
        return refs

    # -- after every stage ----------------------------------------------------------------------
    def finish_params(self) -> dict[str, Any]:
        """List-form params of the one params file; keys of other files become a dep on the file."""
        used = {file for refs in self.stage_params.values() for file, _, _ in refs}
        main = self.default_params if self.default_params in used or len(used) != 1 else next(iter(used))
        for name, refs in self.stage_params.items():
            stage = self.stages.get(name)
            if stage is None:
                continue
            keys = list(dict.fromkeys(k for f, k, _ in refs if f == main))
            if keys:
                stage["params"] = keys
            for file in dict.fromkeys(f for f, _, _ in refs if f != main):
                at = next(line for f, _, line in refs if f == file)
                deps = stage.setdefault("deps", [])
                if file not in deps:
                    deps.append(file)
                self.note(at, f"stage {name!r}: params of {file} kept as a dep on the whole file (modver reads "
                          f"list-form params from one file, {main}): `--set` does not reach them")  # fmt: skip
        return {} if main == DEFAULT_PARAMS or not used else {"params_file": main}

    def attach_top_level(self) -> None:
        """Top-level ``metrics:``/``plots:``: each file goes to the stage whose outs hold it."""
        for key in ("metrics", "plots"):
            node = self.doc.get(key) or []
            if not isinstance(node, list):
                self.note(_line(self.doc, key), f"top-level `{key}:` is not a list: not converted")
                continue
            for index, item in enumerate(node):
                at = _item_line(node, index, _line(self.doc, key))
                for path in self.top_level_files(key, item, at):
                    path = self.at_base(self.interpolate(path, self.context, template=True))
                    if key == "plots" and path.lower().endswith(_IMAGES):
                        self.note(at, f"plot {path} not converted: modver's plots are series files (csv, tsv, json)")
                        continue
                    owner = next(
                        (n for n, s in self.stages.items() if any(_inside(path, o) for o in s.get("outs", []))), None
                    )
                    if owner is None:
                        self.note(at, f"{key} file {path}: no converted stage writes it: not attached")
                        continue
                    listed = self.stages[owner].setdefault(key, [])
                    if path not in listed:
                        listed.append(path)

    def top_level_files(self, key: str, item: Any, line: int | None) -> list[str]:
        if not isinstance(item, Mapping):
            return [str(item)]
        (plot_id, options), *_ = item.items() or [(None, None)]
        if plot_id is None or (options is not None and not isinstance(options, Mapping)):
            self.note(line, f"{key} item is not a path or a plot definition: not converted")
            return []
        options = options or {}
        shown = [o for o in options if o not in ("y",)]
        if shown:
            self.note(line, f"{key} {plot_id!r}: {', '.join(map(str, shown))} not converted (the report draws "
                      "every numeric column of a plots file against its steps)")  # fmt: skip
        y = options.get("y")
        if isinstance(y, Mapping):
            return [str(path) for path in y]
        return [str(plot_id)]

    # -- ${} ---------------------------------------------------------------------------------------
    def interpolate(self, text: str, ctx: dict[str, Any], *, template: bool) -> str:
        """``text`` with each ``${x}`` of ``vars``/``foreach`` filled in; a key of the params file
        stays ``${params.x}`` where ``template`` (args and paths), else its value is filled in."""

        def fill(match: re.Match[str]) -> str:
            expr = match.group(1)
            found, value = _lookup(ctx, expr)
            if found:
                if isinstance(value, Mapping | list):
                    raise _Skip(f"${{{expr}}} is a {type(value).__name__}: only scalars convert")
                return _scalar(value)
            found, value = _lookup(self.params, expr)
            if found:
                return f"${{params.{expr}}}" if template else _scalar(value)
            raise _Skip(f"${{{expr}}} is not in vars, foreach or {DEFAULT_PARAMS}")

        return _TEMPLATE.sub(fill, text)

    def literal(self, text: str, ctx: dict[str, Any]) -> str:
        return self.interpolate(text, ctx, template=False)

    def resolve_value(self, text: str, ctx: dict[str, Any]) -> Any:
        """A whole-string ``${x}`` as the value it names (a list for ``foreach: ${models}``)."""
        match = _TEMPLATE.fullmatch(text.strip())
        if match is None:
            return text
        for source in (ctx, self.params):
            found, value = _lookup(source, match.group(1))
            if found:
                return value
        raise _Skip(f"{text} is not in vars or {DEFAULT_PARAMS}")


def _listed(node: Any, what: str) -> list[Any]:
    """A list key's items (nothing for null); anything else is a stage that does not convert."""
    if node is None:
        return []
    if not isinstance(node, list):
        raise _Skip(f"{what} must be a list")
    return list(node)


def _option_note(stage: str, key: str, path: str, option: str, value: Any) -> str:
    what = f"stage {stage!r}: {key} {path}: `{option}: {value}`"
    if option == "cache" and value is False:
        return f"{what} ignored: modver keeps every out in its cache (a run's outs are restored from it)"
    if option == "persist":
        return f"{what} ignored: every run starts in a fresh workspace without the previous out"
    if option in ("template", "x", "y", "x_label", "y_label", "title"):
        return f"{what} not converted: plot templates and axes are DVC's (the report draws every numeric column)"
    return f"{what} ignored"


def _lookup(ctx: Any, expr: str) -> tuple[bool, Any]:
    value = ctx
    for part in expr.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"  # as DVC writes a boolean into a command line
    return "" if value is None else str(value)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "item"


def _inside(path: str, out: str) -> bool:
    return path == out or path.startswith(out.rstrip("/") + "/")


def _line(node: Any, key: Any, default: int | None = None) -> int | None:
    try:
        return int(node.lc.key(key)[0]) + 1
    except (AttributeError, KeyError, TypeError, IndexError):
        return default


def _item_line(seq: Any, index: int, default: int | None) -> int | None:
    try:
        return int(seq.lc.item(index)[0]) + 1
    except (AttributeError, KeyError, TypeError, IndexError):
        return default


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value if value is None else str(value)
