"""Sharing with a team: ``modver push`` and ``modver pull`` — stage histories, tags and notes
with a git remote (renumbering versions that clash), run records and cached outputs with the
team's storage.

May import: the ground modules of ``modver/``, ``modver._git``, ``modver.fingerprint``,
``modver.manifest``, ``modver.store`` and ``modver.engine``; never the sweeps, the report (its
siblings), the façade or the CLI (tests/test_architecture.py).
"""
