"""The manifest: load and validate a project's YAML, and edit its pins keeping comments.

This is the only module that imports ``ruamel.yaml``. It does so lazily, inside functions, so
``import modver.manifest`` stays cheap (the CLI imports it for ``--help``); every ruamel
exception is translated into :class:`~modver.errors.ManifestError` (``raise ... from exc``).

Schema (see docs and ``STARTER_MANIFEST``)::

    data:        {name: path}                    # optional; paths relative to the project root
    stages:
      <name>:                                    # a name (modver/names.py)
        entry: path.py | path.py:name | path.py:Class.method     # required
        version: v3                              # optional pin; an int N means "vN"
        inputs: {kwarg: data.<name> | <stage>}   # optional
        params: {kwarg: value}                   # optional; JSON-like values
        deps: [path, ...]                        # optional; extra files fingerprinted whole
    fingerprint: {docstrings: false}             # optional

Pin edits (:func:`set_pin`) change only the ``version`` line of one stage: block-style
mappings are edited in place in the text (every other byte is kept: comments, order, quoting,
indentation, line endings); anything else falls back to ruamel's round-trip dump. Either way
the result is re-parsed and checked before it atomically replaces the file.
"""

from __future__ import annotations

# Only cheap stdlib modules at import time; difflib, json, tempfile and ruamel.yaml are
# imported where they are used.
import copy
import functools
import keyword
import os
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modver.errors import InvalidNameError, ManifestError, UnknownStageError
from modver.models import StageSpec
from modver.names import did_you_mean, validate_name

__all__ = [
    "DEFAULT_OPTIONS",
    "FINGERPRINT_KEYS",
    "STAGE_KEYS",
    "STARTER_MANIFEST",
    "TOP_LEVEL_KEYS",
    "Manifest",
    "dump_manifest_dict",
    "load_manifest",
    "load_manifest_cached",
    "load_manifest_text",
    "manifest_schema",
    "read_manifest_bytes",
    "set_pin",
]

TOP_LEVEL_KEYS = ("data", "stages", "fingerprint")
STAGE_KEYS = ("entry", "version", "inputs", "params", "deps")
FINGERPRINT_KEYS = ("docstrings",)
DEFAULT_OPTIONS: dict[str, Any] = {"docstrings": False}

_DATA_PREFIX = "data."

# Bounds on what a manifest or a --set value may hold (docs/concepts.md, "Bounds"). Real
# manifests are a few kilobytes with hundreds of values; YAML aliases (`*name`) copy what they
# name each time they are used, so a few lines can expand to billions of values: params are
# counted while they are converted, aliases expanded.
MAX_MANIFEST_BYTES = 256 * 1024  # ruamel parses ~25,000 values a second: at most ~6 s
MAX_VALUES = 20_000  # values in a manifest's stages (stages, inputs, deps, params), or in one --set
MAX_CHARS = 1_000_000  # characters of strings (keys and values) in them
MAX_DEPTH = 32  # lists and mappings nested in one param value
MAX_SET_CHARS = 100_000  # one --set value as typed (Linux caps one argument at 128 KiB anyway)
MAX_FLOW_DEPTH = 64  # [ and { nested in the text, checked before parsing (ruamel's scanner
#                      slows with depth: 3,000 nested [ took 4 s, a --set value of 100,000 minutes)
_BOUNDS_HINT = (
    f"a manifest is at most {MAX_MANIFEST_BYTES // 1024} KiB; its stages (with their inputs, deps "
    f"and params), and one --set value, expand to at most {MAX_VALUES:,} values and "
    f"{MAX_CHARS:,} characters, lists and mappings nested at most {MAX_DEPTH} deep; a YAML alias "
    "(*name) counts again each time it is used. Keep large inputs in a data file (`data:`)"
)
_PLAIN_VERSION_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/@~^+-]*\Z")
_INIT_HINT = "`modver init` creates a starter manifest"

STARTER_MANIFEST = """\
# modver manifest: declares the stages of your pipeline and pins one version of each.
# One manifest is one experiment; a project may have many (modver run other.yaml).

# Named input files, content-hashed; paths are relative to the project root.
data:
#  raw: data/raw.csv

# Stages run in the order their inputs require. Uncomment and adapt:
stages:
#  preprocess:
#    entry: pipeline/preprocess.py:preprocess  # file.py, file.py:function or file.py:Class.method
#    version: v1              # the pinned version; absent means "the working tree"
#    inputs: {raw: data.raw}  # keyword argument -> data.<name> or another stage
#    params: {scale: true}    # keyword arguments
#  train:
#    entry: pipeline/train.py:train
#    inputs: {data: preprocess}
#    params: {C: 1.0}
#    deps: [configs/model.yaml]  # extra files whose whole content is part of the version

# Optional: make docstrings part of a stage's fingerprint (default false).
# fingerprint: {docstrings: true}
"""


@dataclass(frozen=True)
class Manifest:
    """A loaded, validated manifest.

    ``data`` maps names to file paths (relative to the project root, ``/``-separated);
    ``stages`` keeps the file's order; ``options`` always holds every fingerprint option
    (``{"docstrings": False}`` unless the manifest says otherwise). ``root`` is the project
    root the paths are relative to (the manifest's folder unless given).
    """

    path: Path
    data: dict[str, str]
    stages: dict[str, StageSpec]
    options: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_OPTIONS))
    root: Path | None = None

    def __post_init__(self) -> None:
        if self.root is None:
            object.__setattr__(self, "root", Path(self.path).parent)

    def stage(self, name: str) -> StageSpec:
        """The stage called ``name``; :class:`UnknownStageError` listing the declared ones."""
        try:
            return self.stages[name]
        except KeyError:
            raise _unknown_stage(name, self.stages, str(self.path)) from None

    def order(self) -> list[str]:
        """Stage names in an order that runs every stage after the stages it takes as inputs.

        Ties keep the file's order. A cycle raises :class:`ManifestError` naming it,
        e.g. ``a -> b -> a`` (data flows along the arrows).
        """
        order, cycle = _topological_order(self.stages)
        if cycle is not None:
            raise ManifestError(
                f"the inputs of stages {', '.join(sorted(set(cycle)))} form a cycle: " + " -> ".join(cycle),
                where=str(self.path),
                hint="a stage cannot take its own output as input, directly or through others",
            )
        return order


# --------------------------------------------------------------------------- public functions


def load_manifest(path: Path | str, root: Path | str | None = None) -> Manifest:
    """Load and validate the manifest at ``path``; errors say ``path:line:col`` and a hint.

    Entry files are not checked for existence here (the façade checks them against the right
    tree: the working tree or a commit).
    """
    path = Path(path)
    text = _read_text(path)
    return load_manifest_text(text, path, root)


def load_manifest_text(text: str | bytes, path: Path | str, root: Path | str | None = None) -> Manifest:
    """Like :func:`load_manifest` for content read elsewhere (a manifest in a git commit)."""
    path = Path(path)
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "surrogatepass"))
    _check_size(size, str(path))
    if isinstance(text, bytes):
        text = _decode(text, str(path))
    doc = _parse(text, str(path))
    return _build(doc, path, Path(root) if root is not None else None)


def _check_size(size: int, where: str) -> None:
    if size > MAX_MANIFEST_BYTES:
        raise ManifestError(
            f"the manifest is larger than {MAX_MANIFEST_BYTES // 1024} KiB",
            where=where,
            hint=_BOUNDS_HINT,
        )


def dump_manifest_dict(manifest: Manifest) -> dict[str, Any]:
    """A plain JSON-able dict of the manifest (for run records and manifest diffs).

    Shape: ``{"data": {...}, "stages": {name: {"entry", "version", "inputs", "params",
    "deps"}}, "fingerprint": {...}}`` with every stage key present (``version`` is null when
    unpinned). It is itself a valid manifest: JSON is YAML.
    """
    return {
        "data": dict(manifest.data),
        "stages": {
            name: {
                "entry": spec.entry,
                "version": spec.version,
                "inputs": dict(spec.inputs),
                "params": copy.deepcopy(dict(spec.params)),
                "deps": list(spec.deps),
            }
            for name, spec in manifest.stages.items()
        },
        "fingerprint": dict(manifest.options),
    }


def set_pin(path: Path | str, stage: str, version: str | int | None, *, temp_dir: Path | None = None) -> None:
    """Pin ``stage`` to ``version`` in the manifest at ``path`` (None removes the pin).

    Only the stage's ``version`` line changes; a missing key is added right after ``entry``.
    The file is replaced atomically, its temporary copy made in ``temp_dir`` (the store's
    ``tmp/``: a killed edit leaves nothing beside the manifest); a manifest reached through a
    symlink is edited where the link points. An unknown stage raises :class:`UnknownStageError`.
    """
    path = Path(path)
    where = str(path)
    if version is not None:
        version = _normalize_version(version, where)
    for _attempt in range(5):
        raw = read_manifest_bytes(path)
        bom = raw.startswith(b"\xef\xbb\xbf")
        text = _decode(raw[3:] if bom else raw, where)
        doc = _parse(text, where)
        manifest = _build(doc, path, None)
        old = manifest.stage(stage)
        if old.version == version:
            return
        expected = dump_manifest_dict(manifest)
        expected["stages"][stage]["version"] = version
        new_text = _edit_in_place(text, doc, stage, version)
        if new_text is None or not _loads_to(new_text, path, expected):
            new_text = _edit_round_trip(text, stage, version, where)
            if not _loads_to(new_text, path, expected):
                raise ManifestError(
                    f"could not change the pin of {stage!r} without altering something else",
                    where=where,
                    hint=f"edit the `version:` of {stage!r} by hand",
                )
        data = new_text.encode("utf-8")
        if _write_if_unchanged(path, raw, (b"\xef\xbb\xbf" if bom else b"") + data, temp_dir):
            return
    raise ManifestError(
        "the manifest kept changing while modver edited it",
        where=where,
        hint="another process is editing it; try again",
    )


# --------------------------------------------------------------------------- reading / parsing


def read_manifest_bytes(path: Path) -> bytes:
    """The manifest's bytes; a folder, a FIFO or a device (never read: it could block) and a
    file beyond :data:`MAX_MANIFEST_BYTES` raise :class:`ManifestError`."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            mode = os.fstat(fd).st_mode
            if stat.S_ISDIR(mode):
                raise IsADirectoryError
            if not stat.S_ISREG(mode):
                raise ManifestError(
                    f"{path} is not a regular file (a FIFO, a socket or a device)",
                    where=str(path),
                    hint="give the YAML file's path",
                )
            raw = handle.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise ManifestError(
            f"no manifest at {path}",
            where=str(path),
            hint="check the path (manifests are YAML files such as manifest.yaml); "
            "`modver init` writes a starter manifest.yaml at the project root",
        ) from None
    except IsADirectoryError:
        raise ManifestError(
            f"{path} is a folder, not a manifest file",
            where=str(path),
            hint="give the YAML file's path",
        ) from None
    except OSError as exc:
        raise ManifestError(f"cannot read the manifest {path}: {exc.strerror or exc}", where=str(path)) from exc
    _check_size(len(raw), str(path))
    return raw


def _read_text(path: Path) -> str:
    raw = read_manifest_bytes(path)
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    return _decode(raw, str(path))


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ManifestError(
            "the manifest is not valid UTF-8 text",
            where=f"{where}:{line}:{col}",
            hint="save the file as UTF-8",
        ) from exc


def _rt_yaml() -> Any:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt", pure=True)
    yaml.Constructor = _checked_constructor()
    yaml.preserve_quotes = True
    yaml.allow_duplicate_keys = False
    yaml.width = 4096
    return yaml


class _Refused(Exception):
    """What the node check refuses before ruamel builds the document, and where."""

    def __init__(self, message: str, mark: Any, hint: str):
        super().__init__(message)
        self.message, self.mark, self.hint = message, mark, hint


@functools.cache
def _checked_constructor() -> type:
    """ruamel's round-trip constructor, checking the parsed nodes before it builds them:

    - a list or mapping used as a key is refused: ruamel hashes such keys in time exponential
      in their nesting (``{{{{{{{{{{{{{{a: }}}}}}}}}}}}}}`` took minutes), and no manifest key
      may be one (every key is a name);
    - text holding a lone surrogate (an escape like ``"\\ud800"``) is refused: it cannot be
      written as UTF-8, in a record or a path.
    """
    from ruamel.yaml.constructor import RoundTripConstructor
    from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

    def check(root: Any) -> None:
        seen: set[int] = set()
        todo = [root]
        while todo:  # each node once: an alias is the node it names
            node = todo.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, ScalarNode) and not _encodes(node.value):
                raise _Refused(
                    f"{_shown(node.value)} holds a lone surrogate escape",
                    node.start_mark,
                    "write the character itself, or one \\U0001XXXX escape, not a surrogate pair",
                )
            if isinstance(node, MappingNode):
                for key, value in node.value:
                    if not isinstance(key, ScalarNode):
                        raise _Refused(
                            "a list or mapping is used as a key; keys are names",
                            key.start_mark,
                            "write a name (quote it if it holds special characters) before the ':'",
                        )
                    todo += [key, value]
            elif isinstance(node, SequenceNode):
                todo.extend(node.value)

    class CheckedConstructor(RoundTripConstructor):
        def construct_document(self, node: Any) -> Any:
            check(node)
            return super().construct_document(node)

    return CheckedConstructor


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_FLOW_TOKEN = re.compile(r"""[\[\]{}#]|"(?:[^"\\]|\\.)*"?|'(?:[^']|'')*'?""")


def _check_flow_depth(text: str, where: str) -> None:
    """Refuse text nesting ``[`` and ``{`` deeper than :data:`MAX_FLOW_DEPTH`, before parsing.

    Quoted strings and comments are skipped; a quote or ``#`` inside a plain word (``it's``,
    ``a#b``) is part of the word. Brackets inside plain words count too (no real word holds
    64 of them).
    """
    depth, pos = 0, 0
    while match := _FLOW_TOKEN.search(text, pos):
        token, start = match.group(), match.start()
        before = text[start - 1] if start else "\n"
        if token[0] in "'\"#" and not (before.isspace() or (token[0] != "#" and before in "[{,:")):
            pos = start + 1  # part of a plain word
            continue
        if token[0] == "#":
            end = text.find("\n", start)
            pos = len(text) if end < 0 else end
            continue
        if token in "[{":
            depth += 1
            if depth > MAX_FLOW_DEPTH:
                line = text.count("\n", 0, start) + 1
                col = start - (text.rfind("\n", 0, start) + 1) + 1
                raise ManifestError(
                    f"nested too deeply: more than {MAX_FLOW_DEPTH} levels of [ and {{",
                    where=f"{where}:{line}:{col}",
                    hint=_BOUNDS_HINT,
                )
        elif token in "]}":
            depth = max(depth - 1, 0)
        pos = match.end()


def _parse(text: str, where: str) -> Any:
    """Parse YAML in round-trip mode (keeps positions); any ruamel failure → ManifestError.

    ruamel's warnings (an anchor defined twice, which YAML allows) are not printed.
    """
    import warnings

    from ruamel.yaml.error import (
        MarkedYAMLError,
        YAMLError,
        YAMLFutureWarning,
        YAMLWarning,
    )

    _check_flow_depth(text, where)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", YAMLWarning)
            warnings.simplefilter("ignore", YAMLFutureWarning)
            return _rt_yaml().load(text)
    except _Refused as exc:
        raise ManifestError(
            exc.message, where=f"{where}:{exc.mark.line + 1}:{exc.mark.column + 1}", hint=exc.hint
        ) from exc
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark is not None else where
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            problem = f"{exc.problem} ({exc.context})"
        problem = " ".join(str(problem).split())
        hint = "check the YAML syntax around that position (indentation, ':' and quotes)"
        if "\t" in problem or "'\\t'" in problem:
            hint = "indent with spaces, not tabs"
        if type(exc).__name__ == "DuplicateKeyError":
            hint = "each key may appear only once in a mapping; remove or rename the duplicate"
        raise ManifestError(f"malformed YAML: {problem}", where=loc, hint=hint) from exc
    except YAMLError as exc:
        position = getattr(exc, "position", None)
        if isinstance(position, int) and 0 <= position <= len(text):
            line = text.count("\n", 0, position) + 1
            col = position - (text.rfind("\n", 0, position) + 1) + 1
            char = getattr(exc, "character", None)
            if isinstance(char, str) and len(char) == 1:
                char = ord(char)
            shown = f" U+{char:04X}" if isinstance(char, int) else ""
            raise ManifestError(
                f"malformed YAML: the character{shown} is not allowed in YAML",
                where=f"{where}:{line}:{col}",
                hint="remove it, or write it as an escape inside double quotes",
            ) from exc
        raise ManifestError(
            f"malformed YAML: {' '.join(str(exc).split())}",
            where=where,
            hint="check the YAML syntax",
        ) from exc
    except RecursionError as exc:
        raise ManifestError("malformed YAML: nested too deeply", where=where, hint="flatten the manifest") from exc
    except Exception as exc:
        raise ManifestError(
            f"malformed YAML: {type(exc).__name__}: {exc}",
            where=where,
            hint="check the YAML syntax",
        ) from exc


# --------------------------------------------------------------------------- validation

_NO_KEY = object()


def _pos(where: str, node: Any, key: Any = _NO_KEY, *, value: bool = False) -> str:
    """``path:line:col`` (1-based) of a key or value in a ruamel node, or just the path."""
    try:
        if key is _NO_KEY:
            line, col = node.lc.line, node.lc.col
        elif value:
            line, col = node.lc.value(key)
        else:
            line, col = node.lc.key(key)
    except (AttributeError, KeyError, TypeError, IndexError):
        return where
    if line is None or col is None:
        return where
    return f"{where}:{line + 1}:{col + 1}"


def _item_pos(where: str, seq: Any, index: int) -> str:
    try:
        line, col = seq.lc.item(index)
    except (AttributeError, KeyError, TypeError, IndexError):
        return where
    return f"{where}:{line + 1}:{col + 1}"


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool) or type(value).__name__ == "ScalarBoolean":
        return "a boolean"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def _check_keys(node: Any, allowed: tuple[str, ...], what: str, where: str) -> None:
    for key in node:
        if not isinstance(key, str):
            raise ManifestError(
                f"keys in {what} must be strings, found {_type_name(key)} {key!r}",
                where=_pos(where, node, key),
                hint=f"allowed keys: {', '.join(allowed)}",
            )
        if key not in allowed:
            raise ManifestError(
                f"unknown key {key!r} in {what}",
                where=_pos(where, node, key),
                hint=f"{did_you_mean(key, allowed)}allowed keys: {', '.join(allowed)}",
            )


def _mapping_or_empty(parent: Any, key: str, what: str, where: str, hint: str) -> Any:
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ManifestError(
            f"{what} must be a mapping, found {_type_name(value)}",
            where=_pos(where, parent, key, value=True),
            hint=hint,
        )
    return value


def _is_identifier(name: Any) -> bool:
    return isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)


def _project_path(value: Any, what: str, loc: str, *, suffix: str | None = None) -> str:
    """A ``/``-separated path inside the project, normalised; else ManifestError."""
    if not isinstance(value, str) or not value.strip():
        raise ManifestError(
            f"{what} must be a file path, found {_type_name(value)}",
            where=loc,
            hint="write a path relative to the project root, e.g. `configs/model.yaml`",
        )
    if "\\" in value:
        raise ManifestError(f"{what} {value!r} uses '\\'", where=loc, hint="write paths with '/' on every platform")
    if value.startswith("/") or re.match(r"[A-Za-z]:", value):
        raise ManifestError(f"{what} {value!r} is absolute", where=loc, hint="write it relative to the project root")
    norm = posixpath.normpath(value)
    if norm == ".." or norm.startswith("../") or norm == ".":
        raise ManifestError(
            f"{what} {value!r} is outside the project",
            where=loc,
            hint="stage code must live inside the project root",
        )
    if suffix is not None and (not norm.endswith(suffix) or posixpath.basename(norm) == suffix):
        raise ManifestError(f"{what} {value!r} is not a {suffix} file", where=loc)
    return norm


def _parse_entry(value: Any, loc: str) -> str:
    hint = "write `path/to/file.py`, `path/to/file.py:function` or `path/to/file.py:Class.method`"
    if not isinstance(value, str):
        raise ManifestError(f"entry must be a string, found {_type_name(value)}", where=loc, hint=hint)
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


def _normalize_version(value: Any, loc: str) -> str | None:
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
        f"version must be a version reference like v3, found {_type_name(value)} {value!r}",
        where=loc,
        hint="write `version: v3` (or a tag, `latest`, a fingerprint prefix, `git:REV`); "
        "remove the key to use the working tree",
    )


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Budget:
    """What params may still expand to (see MAX_VALUES): one per manifest, one per --set value.

    ``total`` says what is counted ("the manifest's stages hold"); :meth:`start` names the value
    being converted and its place, which errors report (aliased content has its anchor's place).
    """

    def __init__(self, total: str):
        self.total = total
        self.values = MAX_VALUES
        self.chars = MAX_CHARS
        self.subject, self.loc = "", ""

    def start(self, subject: str, loc: str) -> None:
        self.subject, self.loc = subject, loc

    def spend(self, *, values: int = 1, chars: int = 0) -> None:
        self.values -= values
        self.chars -= chars
        if self.values < 0 or self.chars < 0:
            bound = f"{MAX_VALUES:,} values" if self.values < 0 else f"{MAX_CHARS:,} characters"
            self.fail(f"too big: {self.total} more than {bound} once YAML aliases are expanded")

    def fail(self, problem: str) -> None:
        at = f" (at {self.subject})" if self.subject else ""
        raise ManifestError(problem + at, where=self.loc, hint=_BOUNDS_HINT)


def _plain(value: Any, where: str, loc: str, budget: _Budget, depth: int = 1) -> Any:
    """A ruamel value as plain JSON-like Python (dict/list/str/int/float/bool/None).

    Aliases are expanded (each use is a copy), counted against ``budget``.
    """
    budget.spend(chars=len(value) if isinstance(value, str) else 0)
    if depth > MAX_DEPTH and isinstance(value, Mapping | list):
        budget.fail(f"nested too deeply: more than {MAX_DEPTH} levels of lists and mappings")
    if value is None or isinstance(value, bool):
        return value
    if type(value).__name__ == "ScalarBoolean":
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ManifestError(
                    f"param keys must be strings, found {_type_name(key)} {key!r}",
                    where=_pos(where, value, key) if hasattr(value, "lc") else loc,
                    hint="quote the key",
                )
            item_loc = _pos(where, value, key, value=True) if hasattr(value, "lc") else loc
            budget.spend(values=0, chars=len(key))
            out[str(key)] = _plain(item, where, item_loc, budget, depth + 1)
        return out
    if isinstance(value, list):
        return [_plain(item, where, _item_pos(where, value, i), budget, depth + 1) for i, item in enumerate(value)]
    raise ManifestError(
        f"unsupported param value {_shown(value)} ({type(value).__name__})",
        where=loc,
        hint="params are strings, numbers, booleans, null, lists or mappings; quote dates and tagged values",
    )


def _build(doc: Any, path: Path, root: Path | None) -> Manifest:
    where = str(path)
    if doc is None:
        raise ManifestError("the manifest is empty", where=where, hint=f"declare `stages:`; {_INIT_HINT}")
    if not isinstance(doc, Mapping):
        raise ManifestError(
            f"the manifest must be a mapping with `stages:`, found {_type_name(doc)}",
            where=_pos(where, doc),
            hint=f"top-level keys: {', '.join(TOP_LEVEL_KEYS)}; {_INIT_HINT}",
        )
    _check_keys(doc, TOP_LEVEL_KEYS, "the manifest's top level", where)

    # data
    data_node = _mapping_or_empty(doc, "data", "`data`", where, "write `data: {name: path/to/file}`")
    data: dict[str, str] = {}
    for name, value in data_node.items():
        validate_name(name, "data", where=_pos(where, data_node, name))
        loc = _pos(where, data_node, name, value=True)
        if not isinstance(value, str) or not value.strip():
            raise ManifestError(
                f"data {name!r} must be a file path, found {_type_name(value)}",
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

    # fingerprint options
    options = dict(DEFAULT_OPTIONS)
    fp_node = _mapping_or_empty(doc, "fingerprint", "`fingerprint`", where, "write `fingerprint: {docstrings: true}`")
    _check_keys(fp_node, FINGERPRINT_KEYS, "`fingerprint`", where)
    for key, value in fp_node.items():
        if value is None:
            continue
        if not (isinstance(value, bool) or type(value).__name__ == "ScalarBoolean"):
            raise ManifestError(
                f"fingerprint.{key} must be true or false, found {_type_name(value)}",
                where=_pos(where, fp_node, key, value=True),
            )
        options[key] = bool(value)

    # stages: names first (inputs may name later stages), then bodies
    stages_node = _mapping_or_empty(
        doc, "stages", "`stages`", where, "write each stage as `name: {entry: file.py:function}`"
    )
    for name in stages_node:
        validate_name(name, "stage", where=_pos(where, stages_node, name))
        if name.startswith(_DATA_PREFIX):
            raise ManifestError(
                f"stage name {name!r} reads like a data reference",
                where=_pos(where, stages_node, name),
                hint="stage names must not start with 'data.'; rename the stage",
            )
    stages: dict[str, StageSpec] = {}
    budget = _Budget("the manifest's stages hold")
    for name, body in stages_node.items():
        stages[name] = _build_stage(name, body, stages_node, data, where, budget)

    _order, cycle = _topological_order(stages)
    if cycle is not None:
        first = cycle[-1]  # a consumer inside the cycle: point at its `inputs`
        raise ManifestError(
            "the inputs of stages form a cycle: " + " -> ".join(cycle),
            where=_pos(where, stages_node[first], "inputs", value=True),
            hint="a stage cannot take its own output as input, directly or through others",
        )
    return Manifest(path=path, data=data, stages=stages, options=options, root=root)


def _build_stage(
    name: str, body: Any, stages_node: Any, data: dict[str, str], where: str, budget: _Budget
) -> StageSpec:
    head = _pos(where, stages_node, name)
    if body is None or (isinstance(body, Mapping) and "entry" not in body):
        _check_keys(body or {}, STAGE_KEYS, f"stage {name!r}", where)
        raise ManifestError(
            f"stage {name!r} has no `entry`",
            where=head,
            hint="add `entry: path/to/file.py:function` under the stage",
        )
    if isinstance(body, str):
        raise ManifestError(
            f"stage {name!r} must be a mapping, found a string",
            where=_pos(where, stages_node, name, value=True),
            hint=f"write `{name}: {{entry: {body}}}`",
        )
    if not isinstance(body, Mapping):
        raise ManifestError(
            f"stage {name!r} must be a mapping, found {_type_name(body)}",
            where=_pos(where, stages_node, name, value=True),
            hint="write `entry:` and the other stage keys under the stage name",
        )
    _check_keys(body, STAGE_KEYS, f"stage {name!r}", where)
    budget.start(f"stage {name!r}", head)
    budget.spend()

    def loc(key: str) -> str:
        return _pos(where, body, key, value=True)

    entry = _parse_entry(body["entry"], loc("entry"))
    version = _normalize_version(body.get("version"), loc("version"))

    inputs: dict[str, str] = {}
    inputs_node = _mapping_or_empty(
        body,
        "inputs",
        f"inputs of stage {name!r}",
        where,
        "write `inputs: {argument: data.<name> or <stage>}`",
    )
    budget.start(f"the inputs of stage {name!r}", loc("inputs"))
    budget.spend(values=len(inputs_node))
    for kwarg, ref in inputs_node.items():
        kloc = _pos(where, inputs_node, kwarg)
        if not _is_identifier(kwarg):
            raise ManifestError(
                f"input {kwarg!r} of stage {name!r} is not a Python keyword argument name",
                where=kloc,
                hint="input names are the stage function's parameter names",
            )
        vloc = _pos(where, inputs_node, kwarg, value=True)
        if not isinstance(ref, str):
            raise ManifestError(
                f"input {kwarg!r} of stage {name!r} must name data.<name> or a stage, found {_type_name(ref)}",
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

    params_node = body.get("params")
    if params_node is None:
        params: dict[str, Any] = {}
    elif not isinstance(params_node, Mapping):
        raise ManifestError(
            f"params of stage {name!r} must be a mapping, found {_type_name(params_node)}",
            where=loc("params"),
            hint="write `params: {name: value}`",
        )
    else:
        params = {}
        for key, value in params_node.items():
            kloc = _pos(where, params_node, key)
            if not isinstance(key, str) or not key:
                raise ManifestError(
                    f"param names of stage {name!r} must be strings, found {_type_name(key)} {key!r}",
                    where=kloc,
                    hint="quote the name",
                )
            if key in inputs:
                raise ManifestError(
                    f"stage {name!r} has both an input and a param called {key!r}",
                    where=kloc,
                    hint="each keyword argument comes from one place; rename one of them",
                )
            vloc = _pos(where, params_node, key, value=True)
            budget.start(f"param {key!r} of stage {name!r}", vloc)
            params[key] = _plain(value, where, vloc, budget)

    deps_node = body.get("deps")
    deps: list[str] = []
    if deps_node is not None:
        if isinstance(deps_node, str):
            raise ManifestError(
                f"deps of stage {name!r} must be a list of paths, found a string",
                where=loc("deps"),
                hint=f"write `deps: [{deps_node}]`",
            )
        if not isinstance(deps_node, list):
            raise ManifestError(
                f"deps of stage {name!r} must be a list of paths, found {_type_name(deps_node)}",
                where=loc("deps"),
                hint="write `deps: [path/to/file, ...]`",
            )
        budget.start(f"the deps of stage {name!r}", loc("deps"))
        budget.spend(values=len(deps_node))
        for index, item in enumerate(deps_node):
            item_loc = _item_pos(where, deps_node, index)
            deps.append(_project_path(item, f"dep of stage {name!r}", item_loc))

    return StageSpec(name=name, entry=entry, version=version, inputs=inputs, params=params, deps=tuple(deps))


def _topological_order(stages: Mapping[str, StageSpec]) -> tuple[list[str], list[str] | None]:
    """(order, None), or (partial order, cycle) with the cycle as ``[a, b, a]`` in data flow."""
    needs = {
        name: [ref for ref in spec.inputs.values() if not ref.startswith(_DATA_PREFIX) and ref in stages]
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


def _unknown_stage(name: str, declared: Iterable[str], where: str) -> UnknownStageError:
    declared = list(declared)
    listing = ", ".join(declared) if declared else "no stages"
    return UnknownStageError(
        f"unknown stage {name!r}; {where} declares {listing}",
        where=where,
        hint=f"{did_you_mean(name, declared)}stages are declared under `stages:` in the manifest",
    )


# --------------------------------------------------------------------------- pin editing


def _loads_to(text: str, path: Path, expected: dict[str, Any]) -> bool:
    try:
        manifest = _build(_parse(text, str(path)), path, None)
    except (ManifestError, InvalidNameError):
        return False
    return dump_manifest_dict(manifest) == expected


def _scalar_end(line: str, start: int, *, flow: bool = False) -> int | None:
    """End index (exclusive) of the single-line YAML scalar starting at ``start``, or None."""
    quote = line[start : start + 1]
    if quote == "'":
        i = start + 1
        while i < len(line):
            if line[i] == "'":
                if line[i + 1 : i + 2] == "'":
                    i += 2
                    continue
                return i + 1
            i += 1
        return None
    if quote == '"':
        i = start + 1
        while i < len(line):
            if line[i] == "\\":
                i += 2
                continue
            if line[i] == '"':
                return i + 1
            i += 1
        return None
    content = line.rstrip("\r\n")
    stop = re.search(r"\s#|[,}\]]" if flow else r"\s#", content[start:])
    end = start + stop.start() if stop else len(content)
    while end > start and content[end - 1] in " \t":
        end -= 1
    return end if end > start else None


def _render_scalar(value: str, like: str) -> str:
    """``value`` as a YAML scalar, quoted the way the old scalar text ``like`` was."""
    import json

    if like.startswith("'"):
        return "'" + value.replace("'", "''") + "'"
    if like.startswith('"') or not _PLAIN_VERSION_RE.match(value) or not _plain_is_string(value):
        return json.dumps(value)
    return value


def _plain_is_string(value: str) -> bool:
    try:
        loaded = _rt_yaml().load(f"k: {value}\n")
    except Exception:  # noqa: BLE001 - a probe: anything odd means "quote it"
        return False
    return isinstance(loaded, Mapping) and type(loaded.get("k")) is str and loaded["k"] == value


def _edit_in_place(text: str, doc: Any, stage: str, version: str | None) -> str | None:
    """Edit only the ``version`` of one stage in the text; None when that is not possible.

    Handles block mappings (one line per key) and single-line flow mappings
    (``{entry: a.py, version: v1}``); the caller re-parses the result to check it.
    """
    body = doc["stages"][stage]
    lines = text.splitlines(keepends=True)
    try:
        flow = bool(body.fa.flow_style())
        if "version" in body:
            kline, kcol = body.lc.key("version")
            vline, vcol = body.lc.value("version")
        else:
            kline, kcol = body.lc.key("entry")
            vline, vcol = body.lc.value("entry")
    except (AttributeError, KeyError, TypeError, IndexError):
        return None
    if vline != kline or kline >= len(lines):
        return None
    line = lines[kline]
    end = _scalar_end(line, vcol, flow=flow)
    if end is None:
        return None
    if "version" in body:
        if version is not None:
            lines[kline] = line[:vcol] + _render_scalar(version, line[vcol:end]) + line[end:]
        elif not flow:
            del lines[kline]
        else:
            after = re.match(r"\s*,\s*", line[end:])
            before = re.search(r",\s*\Z", line[:kcol])
            if after:
                lines[kline] = line[:kcol] + line[end + after.end() :]
            elif before:
                lines[kline] = line[: before.start()] + line[end:]
            else:
                lines[kline] = line[:kcol] + line[end:]
        return "".join(lines)
    if version is None:
        return text
    rendered = _render_scalar(version, "")
    if flow:
        lines[kline] = line[:end] + ", version: " + rendered + line[end:]
        return "".join(lines)
    newline = line[len(line.rstrip("\r\n")) :]
    if not newline:
        newline = "\r\n" if "\r\n" in text else "\n"
        lines[kline] = line + newline
    lines.insert(kline + 1, " " * kcol + "version: " + rendered + newline)
    return "".join(lines)


def _edit_round_trip(text: str, stage: str, version: str | None, where: str) -> str:
    """Fallback edit through ruamel's round-trip dump (keeps comments and order)."""
    import io

    from ruamel.yaml.util import load_yaml_guess_indent

    try:
        _, indent, block_seq_indent = load_yaml_guess_indent(text)
        yaml = _rt_yaml()
        yaml.indent(mapping=indent or 2, sequence=indent or 2, offset=block_seq_indent or 0)
        doc = yaml.load(text)
        body = doc["stages"][stage]
        if version is None:
            body.pop("version", None)
        elif "version" in body:
            old = body["version"]
            # keep the old quoting style (ruamel's ScalarString subclasses)
            styled = isinstance(old, str) and type(old) is not str
            body["version"] = type(old)(version) if styled else version
        else:
            keys = list(body)
            body.insert(keys.index("entry") + 1 if "entry" in keys else 0, "version", version)
        out = io.StringIO()
        yaml.dump(doc, out)
        return out.getvalue()
    except Exception as exc:
        raise ManifestError(
            f"could not rewrite the manifest: {type(exc).__name__}: {exc}",
            where=where,
            hint=f"edit the `version:` of {stage!r} by hand",
        ) from exc


def _write_if_unchanged(path: Path, expected_old: bytes, data: bytes, temp_dir: Path | None) -> bool:
    """Atomically replace ``path`` with ``data`` unless its content changed since it was read.

    A manifest reached through a symlink is edited where the link points; the link stays.
    """
    from modver import _fs

    try:
        return _fs.replace_file(path, data, temp_dir=temp_dir, only_if=lambda: path.read_bytes() == expected_old)
    except OSError as exc:
        raise ManifestError(f"cannot write the manifest {path}: {exc.strerror or exc}", where=str(path)) from exc


def parse_scalar(text: str, where: str = "--set value") -> Any:
    """A ``--set`` value typed as a YAML scalar: ``0.5`` → float, ``true`` → bool, ``[1, 2]`` → list.

    Anything that is not valid YAML, a mapping/list with non-plain values, or a value beyond
    the bounds (:data:`MAX_SET_CHARS` typed, :data:`MAX_VALUES` expanded) raises
    :class:`ManifestError`; ``where`` names the value in messages (``--set model.C``).
    """
    if len(text) > MAX_SET_CHARS:
        raise ManifestError(
            f"the value is {len(text):,} characters long, more than {MAX_SET_CHARS:,}",
            where=where,
            hint=_BOUNDS_HINT,
        )
    if text.strip() == "":
        return ""
    doc = _parse(text, where)
    budget = _Budget("the value holds")
    budget.start("", where)
    return _plain(doc, where, where, budget)


# --------------------------------------------------------------------------- the parsed-manifest cache


def manifest_schema() -> str:
    """A digest of the shape of :class:`Manifest` and :class:`StageSpec` (their fields and
    types) and of this module's validation bounds: a cached manifest parsed by a modver whose
    models differ is never used."""
    import hashlib
    from dataclasses import fields

    shape = [[cls.__name__, [[f.name, str(f.type)] for f in fields(cls)]] for cls in (Manifest, StageSpec)]
    text = repr([shape, MAX_MANIFEST_BYTES, TOP_LEVEL_KEYS, STAGE_KEYS, FINGERPRINT_KEYS])
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def load_manifest_cached(path: Path, root: Path, cache_dir: Path | None) -> Manifest:
    """:func:`load_manifest`, remembering valid manifests in ``cache_dir`` by the digest of their
    bytes, path, root and :func:`manifest_schema`, so later commands skip parsing YAML (and
    importing the YAML library). A missing, damaged or stale entry is parsed again; with
    ``cache_dir`` None nothing is remembered."""
    import hashlib
    import pickle

    from modver import _fs

    data = read_manifest_bytes(path)  # a FIFO or a huge file is refused, never read
    if cache_dir is None:
        return load_manifest_text(data, path, root)
    schema = manifest_schema()
    key = hashlib.blake2b(b"\0".join([schema.encode(), os.fsencode(path), os.fsencode(root), data])).hexdigest()
    cached = cache_dir / f"{key[:32]}.pickle"
    try:
        with open(cached, "rb") as handle:
            found = pickle.load(handle)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, IndexError, KeyError,
            TypeError, ValueError):  # fmt: skip
        found = None  # missing or damaged: parsed again and rewritten
    if isinstance(found, tuple) and len(found) == 2 and found[0] == schema and isinstance(found[1], Manifest):
        return found[1]
    loaded = load_manifest_text(data, path, root)
    try:  # a read-only store works too, parsing every time
        _fs.write_bytes_atomic(cached, pickle.dumps((schema, loaded), protocol=pickle.HIGHEST_PROTOCOL), durable=False)
    except OSError:
        pass
    return loaded
