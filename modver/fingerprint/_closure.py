"""The project-level closure of a stage and its fingerprint (schemes ``mv1``, ``mv2``, ``mv3``).

Units (top-level statements, see ``_summary``) are numbered in depth-first discovery order from
the entry, references visited in syntactic order. A unit is encoded as its kind, the digest of
its own normalized syntax, and the DFS numbers its references resolved to; project-local import
statements are never encoded: a name refers to the definition it resolves to. File paths never
enter the digest, so reordering definitions or moving them across files changes nothing.

``mv2`` adds one rule to ``mv1``: a project file that the code runs with ``exec(open(P).read())``,
``exec(compile(open(P).read(), ...))`` or ``runpy.run_path(P)`` (P a string literal) is in the
closure, every statement of it. A stage that runs no such file has the same digest under both
and keeps its ``mv1:`` prefix; one that does is ``mv2:`` (docs/fingerprint.md, "Schemes").

``mv3`` fixes one rule of ``mv2``: an ``importlib.import_module("m")`` or ``__import__("m")`` of a
project module is encoded as a reference to that module, whole. ``mv1``/``mv2`` encoded it with
the reference list of whatever reference came before it in the unit (and crashed when none
did). A stage whose encoding is the same either way keeps its ``mv1:``/``mv2:`` digest; one
whose encoding changes is ``mv3:``.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from typing import Any

from modver._encoding import digest, encode
from modver.errors import EntryNotFoundError, ModverError, PathError
from modver.fingerprint._cache import SummaryCache
from modver.fingerprint._summary import (
    U_DIGEST,
    U_END,
    U_FLAGS,
    U_KIND,
    U_LINE,
    U_MAIN,
    U_NAMES,
    U_REFS,
    U_SPEC,
    decode_source,
    parse_source,
    summarize,
)
from modver.models import Definition, SourceTree, Unresolved

Key = tuple[str, int]  # (module path, unit index)

SCHEMES = ("mv1", "mv2", "mv3")  # closure rules, oldest first; a digest's prefix names the oldest that gives it
LATEST_SCHEME = SCHEMES[-1]


class _Recorder:
    """Every content id the closure asked the tree for, in order (for the stage memo)."""

    def __init__(self, tree: SourceTree) -> None:
        self.tree = tree
        self.probes: dict[str, str | None] = {}

    def content_id(self, path: str) -> str | None:
        if path in self.probes:
            return self.probes[path]
        blob = self.tree.content_id(path)
        self.probes[path] = blob
        return blob


class ClosureBuilder:
    """One stage's closure over one tree. ``local=False`` treats every import as external."""

    def __init__(
        self,
        tree: SourceTree,
        cache: SummaryCache,
        docstrings: bool,
        entry_path: str,
        *,
        local: bool = True,
        text: str | None = None,
        scheme: str = LATEST_SCHEME,
    ) -> None:
        if scheme not in SCHEMES:
            raise ValueError(f"unknown fingerprint scheme {scheme!r}; known: {', '.join(SCHEMES)}")
        self.tree = tree
        self.recorder = _Recorder(tree)
        self.cache = cache
        self.docstrings = docstrings
        self.entry_path = entry_path
        self.local = local
        self.text = text  # fingerprint_source: the entry's text, not read from the tree
        self.follow_runs = local and scheme != "mv1"  # mv2: files run by exec()/runpy are in
        self.import_rule = scheme not in ("mv1", "mv2")  # mv3: importlib imports encoded as themselves
        self.import_fixed = False  # an importlib import whose mv3 encoding differs from mv2's
        roots = [posixpath.dirname(entry_path), "", "src"]
        self.roots = list(dict.fromkeys(roots))
        self.summaries: dict[str, dict[str, Any]] = {}
        self.entered: list[str] = []
        self.whole_entry = False
        self.index: dict[Key, int] = {}
        self.order: list[Key] = []
        self.records: list[list[Any]] = []  # [kind, digest, [(chain, ctx, targets)]]
        self.whole: dict[str, int] = {}
        self.ran: dict[str, int] = {}  # files run by exec()/runpy.run_path(), numbered
        self.deps: frozenset[str] = frozenset()  # the stage's deps: files (counted as such)
        self.memoizable = True  # False when a probe raised (a symlink out of the project)
        self.unresolved: dict[tuple, Unresolved] = {}
        self._resolved: dict[tuple, list] = {}
        self._resolving: set[tuple] = set()
        self._found: dict[str, tuple[str, str] | None] = {}

    # -- files ---------------------------------------------------------------------------------
    def exists(self, path: str) -> bool:
        return self.recorder.content_id(path) is not None

    def summary(self, path: str) -> dict[str, Any]:
        found = self.summaries.get(path)
        if found is not None:
            return found
        text = self.text
        blob: str | None
        if text is not None and path == self.entry_path:
            from modver.sourcetree import git_blob_id

            blob = git_blob_id(text.encode("utf-8", "surrogatepass"))
            compute = lambda: summarize(parse_source(text, path), self.docstrings)  # noqa: E731
        else:
            blob = self.recorder.content_id(path)
            if blob is None:
                raise EntryNotFoundError(f"file not found: {path}", where=path)

            def compute() -> dict[str, Any]:
                data = self.tree.read(path)
                if data is None:
                    raise EntryNotFoundError(f"file not found: {path}", where=path)
                return summarize(parse_source(decode_source(data, path), path), self.docstrings)

        found = self.cache.summary(blob, self.docstrings, compute)
        self.summaries[path] = found
        return found

    def enter(self, path: str) -> None:
        """Module ``path`` is imported by the stage: its import-time statements are in."""
        if path.endswith("/") or path in self.entered:
            return
        self.entered.append(path)

    # -- import resolution ---------------------------------------------------------------------
    def _module_file(self, base: str) -> str | None:
        for candidate in (base + ".py", base + "/__init__.py"):
            if self.exists(candidate):
                return candidate
        return None

    def _enter_packages(self, root: str, parts: Sequence[str]) -> None:
        for depth in range(1, len(parts)):
            init = posixpath.join(root, *parts[:depth], "__init__.py")
            if self.exists(init):
                self.enter(init)

    def find_absolute(self, dotted: str) -> tuple[str, str] | None:
        """(search root, file) of module ``dotted`` in the project, or None (external)."""
        if not self.local or not dotted:
            return None
        if dotted in self._found:
            return self._found[dotted]
        self._found[dotted] = found = self._find_absolute(dotted)
        return found

    def _find_absolute(self, dotted: str) -> tuple[str, str] | None:
        parts = dotted.split(".")
        for root in self.roots:
            found = self._module_file(posixpath.join(root, *parts))
            if found is not None:
                self._enter_packages(root, parts)
                return root, found
        return None

    def package_dir(self, path: str, level: int) -> str | None:
        folder = posixpath.dirname(path)
        for _ in range(level - 1):
            if not folder:
                return None
            folder = posixpath.dirname(folder)
        return folder

    def module_ref(self, folder: str, dotted: str) -> str | None:
        """The file of ``folder/dotted`` or, for a folder without __init__, ``folder/dotted/``."""
        base = posixpath.join(folder, *dotted.split(".")) if dotted else folder
        found = self._module_file(base) if base else None
        if found is not None:
            return found
        return base + "/" if base else None

    def submodule(self, module: str, name: str) -> str | None:
        if module.endswith("/"):
            folder = module[:-1]
        elif module.endswith("/__init__.py") or module == "__init__.py":
            folder = posixpath.dirname(module)
        else:
            return None
        if not self.local:
            return None
        found = self._module_file(posixpath.join(folder, name))
        if found is not None:
            self.enter(found)
        return found

    def resolve_import(self, path: str, spec: tuple, rest: tuple[str, ...]) -> list | None:
        """Targets of ``rest`` through import ``spec`` in module ``path``; None if external."""
        if not self.local:
            return None
        if spec[0] == "import":
            dotted, asname = spec[1], spec[2]
            found = self.find_absolute(dotted)
            if found is None:
                return None
            root, target = found
            self.enter(target)
            if asname:
                return self.resolve_in_module(target, rest)
            top = dotted.partition(".")[0]
            module = self._module_file(posixpath.join(root, top))
            if module is None:
                module = posixpath.join(root, top) + "/"
            else:
                self.enter(module)
            return self.resolve_in_module(module, rest)
        _, level, dotted, name = spec
        if level:
            folder = self.package_dir(path, level)
            if folder is None:
                return None
            base = self.module_ref(folder, dotted)
            if base is None:
                return None
        else:
            found = self.find_absolute(dotted)
            if found is not None:
                base = found[1]
            else:
                base = None
                for root in self.roots:
                    folder = posixpath.join(root, *dotted.split("."))
                    if name != "*" and self._module_file(posixpath.join(folder, name)) is not None:
                        base = folder + "/"
                        break
                if base is None:
                    return None
        self.enter(base)
        if name == "*":
            return [("whole", base)]
        return self.resolve_in_module(base, (name, *rest))

    def resolve_in_module(self, module: str, chain: tuple[str, ...]) -> list:
        """Targets of attribute ``chain`` on ``module`` (a file, or a folder ending in '/')."""
        if not chain:
            return [("whole", module)]
        if not module.endswith("/"):
            summary = self.summary(module)
            if chain[0] in summary["bindings"] or summary["stars"]:
                found = self.resolve_name(module, chain)
                if found or chain[0] in summary["bindings"]:
                    return found
        sub = self.submodule(module, chain[0])
        if sub is not None:
            return self.resolve_in_module(sub, chain[1:])
        return []

    def resolve_name(self, path: str, chain: tuple[str, ...]) -> list:
        """Targets of a global name (with its attribute chain) looked up in module ``path``."""
        memo_key = (path, chain)
        known = self._resolved.get(memo_key)
        if known is not None:
            return known
        if memo_key in self._resolving:
            return []
        self._resolving.add(memo_key)
        try:
            found = self._resolve_name(path, chain)
        finally:
            self._resolving.discard(memo_key)
        self._resolved[memo_key] = found
        return found

    def _resolve_name(self, path: str, chain: tuple[str, ...]) -> list:
        summary = self.summary(path)
        indices = summary["bindings"].get(chain[0])
        if indices is None:
            for spec, _ in summary["stars"]:
                found = self.resolve_import(path, (*spec[:3], chain[0]), chain[1:])
                if found:
                    return found
            return []
        units = summary["units"]
        targets: list = []
        for index in indices:
            unit = units[index]
            spec = unit[U_SPEC]
            if unit[U_KIND] == "import" and spec is not None and spec[-1] != "*":
                found = self.resolve_import(path, spec, chain[1:])
                if found is None:
                    targets.append((path, index))
                else:
                    targets.extend(found)
            else:
                targets.append((path, index))
        return targets

    # -- traversal -----------------------------------------------------------------------------
    def _report(self, path: str, line: int, reason: str, included: str) -> None:
        self.unresolved.setdefault(
            (path, line, reason), Unresolved(path=path, line=line, reason=reason, included=included)
        )

    def _whole_units(self, module: str) -> list[Key]:
        if module.endswith("/"):
            return []
        summary = self.summary(module)
        keep_main = self.whole_entry and module == self.entry_path
        return [(module, index) for index, unit in enumerate(summary["units"]) if keep_main or not unit[U_MAIN]]

    def _expand(self, targets: list, path: str, line: int, why: str) -> tuple[list, list[Key]]:
        """(encoded targets, unit keys to visit)."""
        tokens: list = []
        keys: list[Key] = []
        for target in targets:
            if target[0] == "whole":
                module = target[1]
                self.enter(module)
                if module not in self.whole:
                    self.whole[module] = len(self.whole)
                    shown = module[:-1] + " (namespace package)" if module.endswith("/") else module
                    self._report(path, line, why.format(module=shown), f"whole module {shown}")
                tokens.append(("m", module))
                keys.extend(self._whole_units(module))
            else:
                tokens.append(target)
                keys.append(target)
        return tokens, keys

    def _open(self, key: Key) -> list[Key]:
        """Number unit ``key`` and resolve its references; return the units it reaches."""
        path, index = key
        self.index[key] = len(self.order)
        self.order.append(key)
        self.enter(path)
        unit = self.summary(path)["units"][index]
        line = unit[U_LINE]
        children: list[Key] = []
        refs: list = []
        tokens: list | None = None  # the last reference's tokens: what mv1/mv2 encoded an importlib import with
        for chain, ctx, spec in unit[U_REFS]:
            if spec is None:
                targets = self.resolve_name(path, chain)
            else:
                targets = self.resolve_import(path, spec, chain[1:]) or []
            if not targets:
                continue
            why = "getattr() on module {module}" if ctx == "getattr" else "module {module} used as a value"
            tokens, keys = self._expand(targets, path, line, why)
            refs.append([chain, tokens])
            children.extend(keys)
        for kind, flag_line, detail in unit[U_FLAGS]:
            if kind == "runs":
                if self.follow_runs:
                    ran = self._run_file(path, flag_line, *detail)
                    if ran is not None:
                        refs.append([("<runs>",), [("r", ran)]])
                        children.extend((ran, i) for i in range(len(self.summary(ran)["units"])))
            elif kind == "dynamic":
                tokens, keys = self._expand([("whole", path)], path, flag_line, detail + " in {module}")
                refs.append([("<" + detail + ">",), tokens])
                children.extend(keys)
            elif detail is None:
                self._report(
                    path,
                    flag_line,
                    "import of a module named at run time",
                    "nothing: the module name is computed at run time",
                )
            else:
                found = self.find_absolute(detail)
                if found is not None:
                    imported, keys = self._expand(
                        [("whole", found[1])], path, flag_line, f"importlib import of {detail}"
                    )
                    if imported != tokens:
                        self.import_fixed = True
                    # mv1/mv2 took the previous reference's tokens (none: they crashed, and no
                    # digest of theirs can be reproduced; the module is then encoded either way)
                    stale = tokens if tokens is not None else imported
                    refs.append([("<import " + detail + ">",), imported if self.import_rule else stale])
                    children.extend(keys)
        spec = unit[U_SPEC]
        if spec is not None and spec[-1] == "*":
            starred = self.resolve_import(path, spec, ())
            if starred:
                line = unit[U_LINE]
                tokens, keys = self._expand(starred, path, line, "from {module} import *")
                refs.append([("*",), tokens])
                children.extend(keys)
        self.records.append([unit[U_KIND], unit[U_DIGEST], refs])
        return children

    def _run_file(self, path: str, line: int, literal: str | None, call: str) -> str | None:
        """The project file a call at ``path:line`` runs (every statement of it goes in the
        closure), or None, reported: the path is computed, missing, or outside the project.

        ``open(P)`` is relative to the working directory, which is the project root when a stage
        runs; P is also tried relative to the entry's folder (a script run from its own folder).
        """
        if literal is None:
            self._report(
                path,
                line,
                f"{call} runs a file named at run time",
                "nothing: list the files it can run in the stage's deps:",
            )
            return None
        entry_dir = posixpath.dirname(self.entry_path)
        candidates = (
            []
            if posixpath.isabs(literal)
            else [posixpath.normpath(literal), posixpath.normpath(posixpath.join(entry_dir, literal))]
        )
        inside = [c for c in dict.fromkeys(candidates) if c != "." and c != ".." and not c.startswith("../")]
        why = "the path leaves the project: never included"
        for candidate in inside:
            try:
                found = self.exists(candidate)
            except PathError as exc:  # a symlink out of the project: never read, never stored
                self.memoizable = False
                why = f"never included: {exc}"
                break
            if not found:
                why = "no such file in the project"
                continue
            if candidate in self.deps:  # listed by the user: counted once, as a deps: file
                self._report(path, line, f"{call} runs {candidate}", "counted as a deps: file")
                return None
            if candidate not in self.ran:
                self.ran[candidate] = len(self.ran)
                self._report(path, line, f"{call} runs {candidate}", f"{candidate}, every statement")
            return candidate
        self._report(path, line, f"{call} runs {literal}", why)
        return None

    def visit(self, start: Key) -> None:
        """Depth-first, preorder, iterative (closures may be deep)."""
        if start in self.index:
            return
        stack: list[tuple[list[Key], int]] = [(self._open(start), 0)]
        index = self.index
        while stack:
            children, position = stack[-1]
            if position >= len(children):
                stack.pop()
                continue
            stack[-1] = (children, position + 1)
            child = children[position]
            if child not in index:
                stack.append((self._open(child), 0))

    def visit_import_time(self) -> None:
        position = 0
        while position < len(self.entered):
            module = self.entered[position]
            position += 1
            summary = self.summary(module)
            keep_main = self.whole_entry and module == self.entry_path
            for index in summary["import_time"]:
                if keep_main or not summary["units"][index][U_MAIN]:
                    self.visit((module, index))

    # -- entry ---------------------------------------------------------------------------------
    def run(self, target: str | None, deps: Sequence[str]) -> tuple[str | None, list[str], list[list[Any]]]:
        path = self.entry_path
        self.deps = frozenset(posixpath.normpath(dep) for dep in deps)
        if self.text is None and not self.exists(path):
            raise EntryNotFoundError(
                f"entry file not found: {path}",
                where=path,
                hint="check the stage's `entry:` (a path relative to the project root)",
            )
        summary = self.summary(path)
        if self.local:
            parts = path.split("/")
            for depth in range(len(parts) - 1, 0, -1):
                init = "/".join(parts[:depth]) + "/__init__.py"
                if not self.exists(init):
                    break
                self.enter(init)
        self.enter(path)
        self.entered.remove(path)
        self.entered.insert(0, path)
        if target is None:
            self.whole_entry = True
            units = summary["units"]
            for index in summary["import_time"]:
                self.visit((path, index))
            ordinal: dict[str, int] = {}
            rest = []
            for index, unit in enumerate(units):
                name = (unit[U_NAMES] or ("",))[0]
                ordinal[name] = ordinal.get(name, -1) + 1
                rest.append(((name, ordinal[name]), index))
            for _, index in sorted(rest):
                self.visit((path, index))
        else:
            name, _, method = target.partition(".")
            indices = summary["bindings"].get(name)
            units = summary["units"]
            if indices is None or (method and method not in summary["methods"].get(name, ())):
                listed = [*summary["callables"]]
                for cls, names in summary["methods"].items():
                    listed.extend(f"{cls}.{m}" for m in names)
                shown = ", ".join(listed) if listed else "no functions or classes"
                raise EntryNotFoundError(
                    f"{path} has no callable {target!r}; it defines: {shown}",
                    where=path,
                    hint="check the stage's `entry:` (file.py:function, file.py:Class.method)",
                )
            for key in self.resolve_name(path, (name,)):
                if key[0] == "whole":
                    _tokens, keys = self._expand([key], path, 1, "module {module} used as a value")
                    for unit_key in keys:
                        self.visit(unit_key)
                else:
                    self.visit(key)
        self.visit_import_time()
        dep_parts = [self.dep_digest(dep) for dep in deps]
        return target, dep_parts, self.records

    def dep_digest(self, dep: str) -> str:
        if self.recorder.content_id(dep) is None:
            raise EntryNotFoundError(
                f"dependency file not found: {dep}",
                where=dep,
                hint="fix the stage's `deps:` list (paths relative to the project root)",
            )
        if dep.endswith(".py"):
            units = self.summary(dep)["units"]
            return digest(encode(("module", [unit[U_DIGEST] for unit in units])))
        data = self.tree.read(dep)
        if data is None:
            raise EntryNotFoundError(f"dependency file not found: {dep}", where=dep)
        return digest(encode(("raw", data)))

    def fingerprint(self, target: str | None, deps: Sequence[str]) -> str:
        target, dep_parts, records = self.run(target, deps)
        index = self.index
        whole, ran = self.whole, self.ran
        encoded_units = []
        for kind, unit_digest, refs in records:
            encoded_refs = [
                (
                    chain,
                    [
                        ("m", whole[t[1]]) if t[0] == "m" else ("r", ran[t[1]]) if t[0] == "r" else index[t]
                        for t in tokens
                    ],
                )
                for chain, tokens in refs
            ]
            encoded_units.append((kind, unit_digest, encoded_refs))
        # the oldest scheme whose rules give this encoding: mv1 and mv2 agree unless the stage
        # runs a file; mv2 and mv3 agree unless an importlib import was encoded otherwise
        scheme = "mv3" if self.import_rule and self.import_fixed else "mv2" if self.ran else "mv1"
        hexdigest = digest(encode((scheme + "/stage", target, encoded_units, sorted(dep_parts))))
        return scheme + ":" + hexdigest.partition(":")[2]

    def definitions(self) -> tuple[Definition, ...]:
        out = []
        for path, index in self.order:
            unit = self.summary(path)["units"][index]
            names = unit[U_NAMES]
            kind = unit[U_KIND]
            name = names[0] if names else "<module>"
            out.append(
                Definition(
                    path=path,
                    name=name,
                    kind=kind,
                    line=unit[U_LINE],
                    end_line=unit[U_END],
                    digest=unit[U_DIGEST],
                )
            )
        return tuple(out)

    def import_files(self, known: Sequence[str]) -> tuple[str, ...]:
        """Project files beyond ``known`` that importing the ``.py`` files of ``known`` imports:
        every module-level import statement runs on import, used by the stage or not."""
        if not self.local:
            return ()
        seen = set(known)
        queue = sorted(path for path in known if path.endswith(".py"))
        extra: list[str] = []
        while queue:
            module = queue.pop()
            try:
                units = self.summary(module)["units"]
            except ModverError:  # unreadable or invalid: importing it fails the same way
                continue
            for unit in units:
                if unit[U_KIND] != "import" or unit[U_SPEC] is None:
                    continue
                for path in self._imported_files(module, unit[U_SPEC]):
                    if path not in seen:
                        seen.add(path)
                        extra.append(path)
                        queue.append(path)
        return tuple(sorted(extra))

    def _imported_files(self, module: str, spec: tuple) -> list[str]:
        """The project files one import statement loads: packages on the way, the module, and
        for ``from m import name`` the submodule ``name`` if there is one."""
        if spec[0] == "import":
            name, parts, folders = None, spec[1].split("."), self.roots
        else:
            _, level, dotted, name = spec
            parts = dotted.split(".") if dotted else []
            if level:
                folder = self.package_dir(module, level)
                folders = [] if folder is None else [folder]
            else:
                folders = self.roots
        for folder in folders:
            found: list[str] = []
            current = folder
            for part in parts:
                current = posixpath.join(current, part) if current else part
                if self.exists(current + "/__init__.py"):
                    found.append(current + "/__init__.py")
            if parts and self.exists(current + ".py"):
                found.append(current + ".py")
            if name and name != "*":
                sub = self._module_file(posixpath.join(current, name) if current else name)
                if sub is not None:
                    found.append(sub)
            if found:
                return found
        return []

    def files(self, deps: Sequence[str]) -> tuple[str, ...]:
        found = {path for path, blob in self.recorder.probes.items() if blob is not None}
        found.update(deps)
        if self.text is None:
            found.add(self.entry_path)
        return tuple(sorted(found))
