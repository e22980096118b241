"""The store: everything modver keeps, and where.

It owns ``.modver/`` (run records, cached outputs, materialized versions, sweep records, the
caches and locks), the stage histories in git (``refs/modver/``: versions, tags, committed
notes), the git-side ``<git common dir>/modver/`` folder, and the team's storage named by
``modver.toml``. :class:`modver.store.layout.Store` names every one of those paths.

May import: the ground modules of ``modver/`` (errors, models, names, record, sourcetree,
``_fs``, ``_encoding``, ``_paths``), ``modver._git``, ``modver.fingerprint`` and
``modver.manifest``; never the engine, the sweeps, sharing, the report, the façade or the CLI
(tests/test_architecture.py).
"""
