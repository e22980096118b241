"""The canonical, type-tagged byte encoding behind every modver digest (scheme ``mv1``).

Every value is encoded as one self-delimiting token sequence that starts with a tag byte, so no
two values of different types (or different values of one type) share an encoding:

=============  ==========================================================================
value          encoding
=============  ==========================================================================
None           ``n``
True / False   ``T`` / ``F``
Ellipsis       ``e``
int            ``i`` + decimal digits + ``;``
float          ``f`` + ``float.hex(x)`` + ``;``
complex        ``c`` + ``float.hex(real)`` + ``,`` + ``float.hex(imag)`` + ``;``
str            ``s`` + byte length + ``:`` + UTF-8 bytes (lone surrogates kept, ``surrogatepass``)
bytes          ``b`` + length + ``:`` + bytes
list           ``[`` + items + ``]``
tuple          ``(`` + items + ``)``
set/frozenset  ``<`` + items sorted by their encoding + ``>``
dict           ``{`` + (key, value) pairs sorted by the key's encoding + ``}``
AST node       ``N`` + class name + ``(`` + (field name + ``=`` + value)* + ``)``
=============  ==========================================================================

AST nodes: the fields are ``node._fields`` in order, skipping ``ctx``, ``type_comment`` and
``kind`` and any field whose value is None or ``[]`` (so an empty ``type_params`` on Python 3.12+
does not change a digest). Positions (``lineno`` ...) are attributes, not fields: never encoded.

``digest`` is ``"mv1:" + blake2b(digest_size=32).hexdigest()``. Changing anything here changes
digests: that is a new scheme with a new prefix, never a silent edit.
"""

from __future__ import annotations

import ast
import re
from hashlib import blake2b
from typing import Any

__all__ = ["SCHEME", "digest", "digest_value", "encode", "encode_node"]

SCHEME = "mv1"
_PREFIX = SCHEME + ":"
_SKIPPED_FIELDS = frozenset({"ctx", "type_comment", "kind"})

# class -> (b"N<name>(", ((field, b"<field>="), ...)), filled on first use
_NODE_LAYOUT: dict[type[ast.AST], tuple[bytes, tuple[tuple[str, bytes], ...]]] = {}


def digest(data: bytes) -> str:
    """``"mv1:"`` + the BLAKE2b-256 hex digest of ``data``."""
    return _PREFIX + blake2b(data, digest_size=32).hexdigest()


def digest_value(value: Any) -> str:
    """The digest of ``encode(value)``."""
    return digest(encode(value))


def encode(value: Any) -> bytes:
    """The canonical encoding of ``value`` (see the module docstring). TypeError on other types."""
    out: list[bytes] = []
    _encode(value, out, True)
    return b"".join(out)


def encode_node(node: ast.AST, *, docstrings: bool = True) -> bytes:
    """The encoding of an AST node; with ``docstrings=False``, string-only statements are dropped.

    A statement that is a bare string constant (a docstring, or an attribute docstring) has no
    effect when run; leaving it out makes digests independent of documentation.
    """
    out: list[bytes] = []
    _encode(node, out, docstrings)
    return b"".join(out)


_STATEMENT_LISTS = frozenset({"body", "orelse", "finalbody"})
# subclasses of these (IntEnum, str enums, OrderedDict ...) encode as the first base they are
_BASES: tuple[type[Any], ...] = (bool, int, float, str, bytes, list, tuple, dict)


def _layout(cls: type[ast.AST]) -> tuple[bytes, tuple[tuple[str, bytes], ...]]:
    layout = _NODE_LAYOUT.get(cls)
    if layout is None:
        fields = tuple((name, name.encode("ascii") + b"=") for name in cls._fields if name not in _SKIPPED_FIELDS)
        layout = (b"N" + cls.__name__.encode("ascii") + b"(", fields)
        _NODE_LAYOUT[cls] = layout
    return layout


def _first(pair: tuple[bytes, Any]) -> bytes:
    return pair[0]


def _is_doc(stmt: Any) -> bool:
    return type(stmt) is ast.Expr and type(stmt.value) is ast.Constant and type(stmt.value.value) is str


def _is_noop(stmt: Any) -> bool:
    """``pass`` and bare non-string constants (``...``, ``0``): statements that do nothing.

    ``class W(Warning): "doc"`` and ``class W(Warning): "doc"; pass`` mean the same, as do
    ``def f(): pass`` and ``def f(): ...``.
    """
    if type(stmt) is ast.Pass:
        return True
    return type(stmt) is ast.Expr and type(stmt.value) is ast.Constant and type(stmt.value.value) is not str


def _encode(value: Any, out: list[bytes], docstrings: bool) -> None:
    # The hot path of fingerprinting: exact-type dispatch, most frequent types first.
    append = out.append
    cls = type(value)
    if isinstance(value, ast.AST):
        layout = _NODE_LAYOUT.get(cls) or _layout(cls)
        append(layout[0])
        for name, label in layout[1]:
            field = getattr(value, name, None)
            if field is None or field == []:
                continue
            append(label)
            if type(field) is list:
                if name in _STATEMENT_LISTS:
                    field = [stmt for stmt in field if not _is_noop(stmt) and (docstrings or not _is_doc(stmt))]
                append(b"[")
                for item in field:
                    _encode(item, out, docstrings)
                append(b"]")
            else:
                _encode(field, out, docstrings)
        append(b")")
    elif cls is str:
        data = value.encode("utf-8", "surrogatepass")
        append(b"s%d:" % len(data))
        append(data)
    elif value is None:
        append(b"n")
    elif cls is bool:
        append(b"T" if value else b"F")
    elif cls is int:
        append(b"i%d;" % value)
    elif cls is float:
        append(b"f" + value.hex().encode("ascii") + b";")
    elif cls is list:
        append(b"[")
        for item in value:
            _encode(item, out, docstrings)
        append(b"]")
    elif cls is tuple:
        append(b"(")
        for item in value:
            _encode(item, out, docstrings)
        append(b")")
    elif cls is dict:
        pairs = sorted(((encode(key), val) for key, val in value.items()), key=_first)
        append(b"{")
        for key_bytes, val in pairs:
            append(key_bytes)
            _encode(val, out, docstrings)
        append(b"}")
    elif cls is bytes:
        append(b"b%d:" % len(value))
        append(value)
    elif value is Ellipsis:
        append(b"e")
    elif cls is complex:
        append(b"c" + value.real.hex().encode("ascii") + b"," + value.imag.hex().encode("ascii") + b";")
    elif cls is set or cls is frozenset:
        append(b"<")
        out.extend(sorted(encode(item) for item in value))
        append(b">")
    else:
        for base in _BASES:
            if isinstance(value, base):
                _encode(base(value), out, docstrings)
                return
        raise TypeError(f"modver cannot encode a value of type {cls.__name__}: {value!r:.80}")


_DIGEST_TEXT = re.compile(r"^(?:[a-z][a-z0-9]*:)?([0-9a-f]{16,128})$")


def digest_hex(text: object) -> str | None:
    """The hex part of a digest written ``"<scheme>:<hex>"`` (or bare ``<hex>``, 16-128 digits),
    or None when ``text`` is no such digest: the one rule for fingerprints and cache keys."""
    match = _DIGEST_TEXT.match(text) if isinstance(text, str) else None
    return None if match is None else match.group(1)
