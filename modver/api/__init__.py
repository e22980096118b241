"""The façade's parts: small objects :class:`modver.project.Project` holds, each the methods of one
subject — ``project.versions``, ``project.runs``, ``project.sweeps``, ``project.outputs``,
``project.sharing`` — given the project's :class:`~modver.api.workspace.Workspace` (its
repository, store, histories and manifests). Each method is a thin call of the layers below that
returns their models and never prints.

May import: every layer below (the ground modules of ``modver/``, ``modver._git``,
``modver.fingerprint``, ``modver.manifest``, ``modver.store``, ``modver.engine``,
``modver.sweep``, ``modver.share``, ``modver.report``, ``modver.explain``); never the façade's module
(``modver.project``) or the CLI (tests/test_architecture.py).
"""
