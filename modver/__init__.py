"""modver: version each stage of an ML pipeline on its own, by what its code means.

The public surface is re-exported here lazily, so that ``import modver`` (and the CLI's
start-up) does not pay for libcst, dulwich or pandas until they are used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "ModverError": "modver.errors",
    "Project": "modver.project",
    "fingerprint_source": "modver.fingerprint",
    "load": "modver.project",
    "log_metrics": "modver.metrics",
    "runs": "modver.project",
    "should_prune": "modver.metrics",
}

__all__ = sorted([*_EXPORTS, "__version__"])

if TYPE_CHECKING:  # pragma: no cover
    from modver.errors import ModverError as ModverError
    from modver.fingerprint import fingerprint_source as fingerprint_source
    from modver.metrics import log_metrics as log_metrics
    from modver.metrics import should_prune as should_prune
    from modver.project import Project as Project
    from modver.project import load as load
    from modver.project import runs as runs


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'modver' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
