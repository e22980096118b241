"""Reading YAML within bounds: the ONLY module that imports ``ruamel.yaml``.

It does so lazily, inside functions, so ``import modver.manifest`` stays cheap (the CLI imports
it for ``--help``). :func:`parse` reads text in round-trip mode (positions kept, for
``path:line:col`` errors); every ruamel exception becomes :class:`~modver.errors.ManifestError`
(``raise ... from exc``). :func:`to_plain` turns a parsed value into plain Python, counting it
against a :class:`Budget`; :func:`pos` says where a key or value is; :func:`round_trip` edits a
document through ruamel's round-trip dump (comments and order kept).
"""

from __future__ import annotations

# Only cheap stdlib modules at import time; ruamel.yaml is imported where it is used.
import functools
import re
from collections.abc import Callable, Mapping
from typing import Any

from modver.errors import ManifestError

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
BOUNDS_HINT = (
    f"a manifest is at most {MAX_MANIFEST_BYTES // 1024} KiB; its stages (with their inputs, deps "
    f"and params), and one --set value, expand to at most {MAX_VALUES:,} values and "
    f"{MAX_CHARS:,} characters, lists and mappings nested at most {MAX_DEPTH} deep; a YAML alias "
    "(*name) counts again each time it is used. Keep large inputs in a data file (`data:`)"
)


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
                    hint=BOUNDS_HINT,
                )
        elif token in "]}":
            depth = max(depth - 1, 0)
        pos = match.end()


def parse(text: str, where: str) -> Any:
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


_NO_KEY = object()


def pos(where: str, node: Any, key: Any = _NO_KEY, *, value: bool = False) -> str:
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


def item_pos(where: str, seq: Any, index: int) -> str:
    """``path:line:col`` (1-based) of item ``index`` of a ruamel list, or just the path."""
    try:
        line, col = seq.lc.item(index)
    except (AttributeError, KeyError, TypeError, IndexError):
        return where
    return f"{where}:{line + 1}:{col + 1}"


def type_name(value: Any) -> str:
    """What a parsed value is, for messages: "a string", "a mapping", "nothing (null)", ..."""
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


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Budget:
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
        raise ManifestError(problem + at, where=self.loc, hint=BOUNDS_HINT)


def to_plain(value: Any, where: str, loc: str, budget: Budget, depth: int = 1) -> Any:
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
                    f"param keys must be strings, found {type_name(key)} {key!r}",
                    where=pos(where, value, key) if hasattr(value, "lc") else loc,
                    hint="quote the key",
                )
            item_loc = pos(where, value, key, value=True) if hasattr(value, "lc") else loc
            budget.spend(values=0, chars=len(key))
            out[str(key)] = to_plain(item, where, item_loc, budget, depth + 1)
        return out
    if isinstance(value, list):
        return [to_plain(item, where, item_pos(where, value, i), budget, depth + 1) for i, item in enumerate(value)]
    raise ManifestError(
        f"unsupported param value {_shown(value)} ({type(value).__name__})",
        where=loc,
        hint="params are strings, numbers, booleans, null, lists or mappings; quote dates and tagged values",
    )


def round_trip(text: str, change: Callable[[Any], None]) -> str:
    """``text`` loaded in round-trip mode, changed in place by ``change(doc)``, dumped again with
    the text's own indentation (comments and order kept). Any failure propagates as it is."""
    import io

    from ruamel.yaml.util import load_yaml_guess_indent

    _, indent, block_seq_indent = load_yaml_guess_indent(text)
    yaml = _rt_yaml()
    yaml.indent(mapping=indent or 2, sequence=indent or 2, offset=block_seq_indent or 0)
    doc = yaml.load(text)
    change(doc)
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def reads_as_plain_string(value: str) -> bool:
    """Whether ``value`` written unquoted reads back as that same string."""
    try:
        loaded = _rt_yaml().load(f"k: {value}\n")
    except Exception:  # noqa: BLE001 - a probe: anything odd means "quote it"
        return False
    return isinstance(loaded, Mapping) and type(loaded.get("k")) is str and loaded["k"] == value


def dump(data: Any) -> str:
    """Plain data as block YAML, lists of scalars in flow style (``outs: [data/prepared]``)."""
    import io

    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    def convert(value: Any) -> Any:
        if isinstance(value, Mapping):
            node = CommentedMap()
            for key, item in value.items():
                node[key] = convert(item)
            return node
        if isinstance(value, list):
            seq = CommentedSeq(convert(item) for item in value)
            if all(not isinstance(item, Mapping | list) for item in value) and len(str(value)) <= _FLOW_WIDTH:
                seq.fa.set_flow_style()
            return seq
        return value

    yaml = _rt_yaml()
    yaml.indent(mapping=2, sequence=2, offset=0)
    out = io.StringIO()
    yaml.dump(convert(data), out)
    return out.getvalue()


_FLOW_WIDTH = 80  # a longer list of scalars is written one item a line
