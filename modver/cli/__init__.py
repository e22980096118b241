"""The ``modver`` command line: a thin typer layer over :mod:`modver.project`.

Every command calls one façade method and renders what it returns (:mod:`modver.cli._output`): rich
tables and syntax-highlighted diffs on a terminal, plain text otherwise, JSON with ``--json``.
Errors go through one handler, installed once on the app (:class:`_Handled`): a
:class:`ModverError` prints ``Error: ...`` and a hint on stderr and exits 1; anything else is an
internal error whose traceback shows only with ``--debug``.

The app, its error handler and shared options are in :mod:`modver.cli._app`; the commands, one
module per subject, register themselves on it: :mod:`~modver.cli.versions`,
:mod:`~modver.cli.runs`, :mod:`~modver.cli.sweeps`, :mod:`~modver.cli.explain`,
:mod:`~modver.cli.sharing`.

May import: every layer below — the façade (:mod:`modver.project`, :mod:`modver.demo`) and the
models it returns; it is the only layer that imports typer and rich (tests/test_architecture.py).
"""

from __future__ import annotations

from modver.cli._app import app, run

# isort: off
# each module registers its commands on the app, in the order `modver --help` lists them
from modver.cli import versions, runs, sweeps, explain, sharing  # noqa: F401
# isort: on

__all__ = ["app", "run"]
