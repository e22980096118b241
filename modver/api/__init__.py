"""The façade's parts: small objects :class:`modver.project.Project` holds and hands its
callers — ``project.sweeps``, ``project.runs``, ``project.outputs``, ``project.sharing`` — each a
thin call of the layers below that returns their models and never prints.

May import: every layer below (the ground modules of ``modver/``, ``modver._git``,
``modver.fingerprint``, ``modver.manifest``, ``modver.store``, ``modver.engine``,
``modver.sweep``, ``modver.share``, ``modver.report``); never the CLI
(tests/test_architecture.py).
"""
