"""The engine: the versions of a manifest's stages, and one run of it.

It owns the registry (fingerprinting, registering and resolving stage versions), the indexer
(versions from git history), planning a run (versions, cache keys, why each stage runs), the
stage task and its executor, the recorder of a run's record, the run itself
(:mod:`modver.engine.run`), and what is computed from versions and records: status, verify, the
diffs and the runs table.

May import: the ground modules of ``modver/``, ``modver._git``, ``modver.fingerprint``,
``modver.manifest`` and ``modver.store``; never the sweeps, sharing, the report, the façade or
the CLI (tests/test_architecture.py).
"""
