"""The manifest: load and validate a project's YAML, and edit its pins keeping comments.

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
    cluster: {kind: slurm, jobs: 8, options: {}} # optional; where `modver sweep` runs (modver.sweep.cluster)

Pin edits (:func:`set_pin`) change only the ``version`` line of one stage: block-style
mappings are edited in place in the text (every other byte is kept: comments, order, quoting,
indentation, line endings); anything else falls back to ruamel's round-trip dump. Either way
the result is re-parsed and checked before it atomically replaces the file.

This module holds the model (:class:`Manifest`), the public functions and the cache of parsed
manifests; the package's other modules, one job each:

- :mod:`~modver.manifest._yaml`: reading YAML within bounds, the only module importing
  ``ruamel.yaml`` (lazily, so ``import modver.manifest`` stays cheap: the CLI imports it for
  ``--help``); every ruamel exception becomes :class:`~modver.errors.ManifestError`;
- :mod:`~modver.manifest._schema`: what a manifest may hold, and the check that a parsed one does;
- :mod:`~modver.manifest._pin`: changing one stage's ``version`` in the text.

May import: the ground modules of ``modver/`` (models, errors, names, ``_fs``...); never another
folder of modver (tests/test_architecture.py).
"""

from __future__ import annotations

# Only cheap stdlib modules at import time; hashlib, pickle and ruamel.yaml are imported where
# they are used.
import copy
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modver.errors import InvalidNameError, ManifestError, UnknownStageError
from modver.manifest._pin import edit_in_place, edit_round_trip
from modver.manifest._schema import (
    DEFAULT_OPTIONS,
    FINGERPRINT_KEYS,
    STAGE_KEYS,
    TOP_LEVEL_KEYS,
    cluster_section,
    normalize_version,
    topological_order,
    validate,
)
from modver.manifest._script import DEFAULT_PARAMS_FILE, params_file, producer
from modver.manifest._yaml import BOUNDS_HINT, MAX_MANIFEST_BYTES, MAX_SET_CHARS, Budget, parse, to_plain
from modver.models import StageSpec
from modver.names import did_you_mean

__all__ = [
    "DEFAULT_OPTIONS",
    "DEFAULT_PARAMS_FILE",
    "FINGERPRINT_KEYS",
    "SET_TARGET",
    "STAGE_KEYS",
    "STARTER_MANIFEST",
    "TOP_LEVEL_KEYS",
    "Manifest",
    "dump_manifest_dict",
    "load_manifest",
    "load_manifest_cached",
    "load_manifest_text",
    "manifest_schema",
    "parse_scalar",
    "producer",
    "read_manifest_bytes",
    "set_pin",
    "split_set",
]

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
    cluster: dict[str, Any] | None = None  # the `cluster:` section (where `modver sweep` runs), plain values
    params_file: str = DEFAULT_PARAMS_FILE  # the file list-form params are keys of (project path)

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
        order, cycle = topological_order(self.stages)
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
    doc = parse(text, str(path))
    return _build(doc, path, Path(root) if root is not None else None)


def _check_size(size: int, where: str) -> None:
    if size > MAX_MANIFEST_BYTES:
        raise ManifestError(
            f"the manifest is larger than {MAX_MANIFEST_BYTES // 1024} KiB",
            where=where,
            hint=BOUNDS_HINT,
        )


def dump_manifest_dict(manifest: Manifest) -> dict[str, Any]:
    """A plain JSON-able dict of the manifest (for run records and manifest diffs).

    Shape: ``{"data": {...}, "stages": {name: {"entry", "version", "inputs", "params",
    "deps"}}, "fingerprint": {...}}`` with every stage key present (``version`` is null when
    unpinned). It is itself a valid manifest: JSON is YAML.
    """
    dumped: dict[str, Any] = {
        "data": dict(manifest.data),
        "stages": {name: _dump_stage(spec) for name, spec in manifest.stages.items()},
        "fingerprint": dict(manifest.options),
    }
    if manifest.params_file != DEFAULT_PARAMS_FILE:
        dumped["params_file"] = manifest.params_file
    return dumped


def _dump_stage(spec: StageSpec) -> dict[str, Any]:
    """One stage of :func:`dump_manifest_dict`; the script keys only when the stage has them
    (a manifest without them dumps as it always did). List-form params dump as their list."""
    params: Any = list(spec.file_params) if spec.file_params else copy.deepcopy(dict(spec.params))
    out: dict[str, Any] = {
        "entry": spec.entry,
        "version": spec.version,
        "inputs": dict(spec.inputs),
        "params": params,
        "deps": [*spec.deps, *({"path": path, "outside": True} for path in spec.outside)],
    }
    for key in ("args", "outs", "metrics", "plots"):
        if getattr(spec, key):
            out[key] = list(getattr(spec, key))
    return out


SET_TARGET = re.compile(r"^[^.=\s]+\.[^=\s]+$")  # STAGE.PARAM: no space, no `=`, a dot after the stage


def split_set(item: str) -> tuple[str, str] | None:
    """``STAGE.PARAM=VALUE`` → (``STAGE.PARAM``, the value's text), or None when ``item`` is not
    of that form: the one reader of ``--set`` for ``run`` and ``sweep`` (each raises its own error,
    with its own example); the value is typed by :func:`parse_scalar` (or split into a sweep's axis)."""
    target, eq, text = item.partition("=")
    return (target, text) if eq and SET_TARGET.match(target) else None


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
            hint=BOUNDS_HINT,
        )
    if text.strip() == "":
        return ""
    doc = parse(text, where)
    budget = Budget("the value holds")
    budget.start("", where)
    return to_plain(doc, where, where, budget)


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
        version = normalize_version(version, where)
    for _attempt in range(5):
        raw = read_manifest_bytes(path)
        bom = raw.startswith(b"\xef\xbb\xbf")
        text = _decode(raw[3:] if bom else raw, where)
        doc = parse(text, where)
        manifest = _build(doc, path, None)
        old = manifest.stage(stage)
        if old.version == version:
            return
        expected = dump_manifest_dict(manifest)
        expected["stages"][stage]["version"] = version
        new_text = edit_in_place(text, doc, stage, version)
        if new_text is None or not _loads_to(new_text, path, expected):
            new_text = edit_round_trip(text, stage, version, where)
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


# --------------------------------------------------------------------------- reading, building, writing


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


def _build(doc: Any, path: Path, root: Path | None) -> Manifest:
    data, stages, options = validate(doc, str(path))
    cluster = cluster_section(doc, str(path))
    return Manifest(
        path=path, data=data, stages=stages, options=options, root=root, cluster=cluster,
        params_file=params_file(doc, str(path)),
    )  # fmt: skip


def _unknown_stage(name: str, declared: Iterable[str], where: str) -> UnknownStageError:
    declared = list(declared)
    listing = ", ".join(declared) if declared else "no stages"
    return UnknownStageError(
        f"unknown stage {name!r}; {where} declares {listing}",
        where=where,
        hint=f"{did_you_mean(name, declared)}stages are declared under `stages:` in the manifest",
    )


def _loads_to(text: str, path: Path, expected: dict[str, Any]) -> bool:
    try:
        manifest = _build(parse(text, str(path)), path, None)
    except (ManifestError, InvalidNameError):
        return False
    return dump_manifest_dict(manifest) == expected


def _write_if_unchanged(path: Path, expected_old: bytes, data: bytes, temp_dir: Path | None) -> bool:
    """Atomically replace ``path`` with ``data`` unless its content changed since it was read.

    A manifest reached through a symlink is edited where the link points; the link stays.
    """
    from modver import _fs

    try:
        return _fs.replace_file(path, data, temp_dir=temp_dir, only_if=lambda: path.read_bytes() == expected_old)
    except OSError as exc:  # the manifest is the old one or the new one, never a part
        raise _fs.write_failure(f"cannot write the manifest {path}", exc, str(path)) or ManifestError(
            f"cannot write the manifest {path}: {exc.strerror or exc}", where=str(path)
        ) from exc


# --------------------------------------------------------------------------- the parsed-manifest cache


def manifest_schema() -> str:
    """A digest of the shape of :class:`Manifest` and :class:`StageSpec` (their fields and
    types), of the manifest's keys and of its size bound: a cached manifest parsed by a modver
    whose models differ is never used."""
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
