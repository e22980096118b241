"""The bundled digits example runs end to end as plain Python (no modver runner involved)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

pytest.importorskip("sklearn")

import modver

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits"


@pytest.fixture
def example(monkeypatch):
    """Import the example's ``pipeline`` package fresh, with ``log_metrics`` captured."""
    logged: list[dict] = []

    def log_metrics(step=None, **metrics):
        logged.append({"step": step, **metrics})

    # modver.log_metrics may not exist yet (modver.metrics is written elsewhere): set it
    # before pipeline.evaluate runs `from modver import log_metrics`.
    monkeypatch.setattr(modver, "log_metrics", log_metrics, raising=False)
    monkeypatch.syspath_prepend(str(EXAMPLE))
    for name in [m for m in sys.modules if m == "pipeline" or m.startswith("pipeline.")]:
        monkeypatch.delitem(sys.modules, name)
    modules = {
        stage: importlib.import_module(f"pipeline.{stage}")
        for stage in ("features", "preprocess", "augment", "model", "evaluate")
    }
    yield modules, logged
    for name in [m for m in sys.modules if m == "pipeline" or m.startswith("pipeline.")]:
        del sys.modules[name]


def test_digits_pipeline_end_to_end(example):
    modules, logged = example
    data = modules["preprocess"].preprocess(raw=str(EXAMPLE / "data" / "digits.npz"), scale=True)
    assert data["X_train"].shape[1] == 64
    assert data["X_train"].min() >= 0.0 and data["X_train"].max() <= 1.0
    assert len(data["X_train"]) + len(data["X_test"]) == 1797

    augmented = modules["augment"].augment(data=data, noise=0.1)
    assert len(augmented["X_train"]) == 2 * len(data["X_train"])
    assert len(augmented["X_test"]) == len(data["X_test"])

    model = modules["model"].train(data=augmented, C=1.0)
    metrics = modules["evaluate"].evaluate(model=model, data=data)
    assert metrics["accuracy"] > 0.8
    assert 0.0 < metrics["f1"] <= 1.0
    assert logged == [{"step": None, **metrics}]
    # how fast each stage is: benchmarks/, not a wall-clock assertion that fails on a loaded machine


def test_digits_pipeline_is_deterministic(example):
    modules, _ = example
    raw = str(EXAMPLE / "data" / "digits.npz")
    first = modules["augment"].augment(data=modules["preprocess"].preprocess(raw=raw))
    second = modules["augment"].augment(data=modules["preprocess"].preprocess(raw=raw))
    for key in first:
        assert (first[key] == second[key]).all()


def test_features_helper_is_shared(example):
    modules, _ = example
    for stage in ("preprocess", "augment"):
        assert modules[stage].normalize is modules["features"].normalize
        assert modules[stage].RANDOM_SEED == modules["features"].RANDOM_SEED
