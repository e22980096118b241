"""The path materialized code imports: every version written since 0.1 reads ``__file__``
through ``__import__("modver.materialize").materialize.project_file(__file__)`` (and
``version_file``), so this name stays for the versions already in stores. The code lives in
:mod:`modver.store.materialize`."""

from __future__ import annotations

from modver.store.materialize import project_file, version_file, version_import

__all__ = ["project_file", "version_file", "version_import"]
