"""The HTML report of the runs (``modver report``): the data it shows and the page, from the
templates beside this file.

May import: the ground modules of ``modver/``, ``modver._git``, ``modver.fingerprint``,
``modver.manifest``, ``modver.store`` and ``modver.engine``; never the sweeps, sharing (its
siblings), the façade or the CLI (tests/test_architecture.py).
"""
