"""Sweeps: many runs at once — a sweep's axes and points, its graph of shared stage tasks, the
driver that runs and records them, and the executors (a local Dask cluster, a running
scheduler, batch jobs: :mod:`modver.sweep.cluster`, the only importer of dask).

May import: the ground modules of ``modver/``, ``modver._git``, ``modver.fingerprint``,
``modver.manifest``, ``modver.store`` and ``modver.engine``; never sharing, the report (its
siblings), the façade or the CLI (tests/test_architecture.py).
"""
