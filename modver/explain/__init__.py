"""Explaining results: which change moved a metric — ``blame`` (the share of each factor that
differs between two runs) and ``bisect`` (the first version of a stage's history that crosses a
threshold). Both build mixed configurations of two runs (:mod:`modver.explain.factors`) and run
them on the sweep engine, every stage whose key ran before served from the cache.

May import: the ground modules of ``modver/``, ``modver._git``, ``modver.fingerprint``,
``modver.manifest``, ``modver.store``, ``modver.engine`` and ``modver.sweep``; never the façade's
parts (``modver.api``), the façade or the CLI (tests/test_architecture.py).
"""
