"""log_metrics: collection per stage, threads, outside a run, validation, summaries."""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

import modver
from modver.errors import MetricError
from modver.metrics import (
    clear_unattached,
    collect_metrics,
    current_collector,
    log_metrics,
    summarize,
    unattached_metrics,
)


def test_log_metrics_is_the_public_one() -> None:
    assert modver.log_metrics is log_metrics


def test_collects_into_the_current_stage() -> None:
    with collect_metrics("model") as collector:
        log_metrics(loss=0.5, step=0)
        log_metrics(step=1, loss=0.25, acc=np.float32(0.75))
        log_metrics(n=np.int64(3), flag=True, exact=Fraction(1, 4), zero_d=np.array(2.5))
    assert [(e["name"], e["value"], e["step"], e["stage"]) for e in collector.events] == [
        ("loss", 0.5, 0, "model"),
        ("loss", 0.25, 1, "model"),
        ("acc", 0.75, 1, "model"),
        ("n", 3, None, "model"),
        ("flag", 1, None, "model"),
        ("exact", 0.25, None, "model"),
        ("zero_d", 2.5, None, "model"),
    ]
    assert type(collector.events[3]["value"]) is int and type(collector.events[2]["value"]) is float
    assert collector.last()["loss"] == 0.25
    assert current_collector() is None


def test_nested_collectors_and_stage_threads() -> None:
    with collect_metrics("outer") as outer:
        with collect_metrics("inner") as inner:
            log_metrics(a=1)
        log_metrics(b=2)
        worker = threading.Thread(target=lambda: log_metrics(from_thread=3))
        worker.start()
        worker.join()
    assert [e["name"] for e in inner.events] == ["a"]
    assert [e["name"] for e in outer.events] == ["b", "from_thread"]


def test_concurrent_stages_in_tasks_stay_apart() -> None:
    async def stage(name: str) -> list[str]:
        with collect_metrics(name) as collector:
            for i in range(3):
                log_metrics(step=i, **{name: i})
                await asyncio.sleep(0)
        return [e["stage"] for e in collector.events]

    async def main() -> list[list[str]]:
        return await asyncio.gather(stage("a"), stage("b"))

    assert asyncio.run(main()) == [["a"] * 3, ["b"] * 3]


def test_outside_a_run_is_validated_and_buffered() -> None:
    clear_unattached()
    log_metrics(acc=0.5)
    assert [(e["name"], e["value"], e["stage"]) for e in unattached_metrics()] == [("acc", 0.5, None)]
    with pytest.raises(MetricError, match="not a number"):
        log_metrics(acc="high")
    clear_unattached()
    assert unattached_metrics() == []


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"acc": "0.9"}, "metric 'acc' is not a number: str"),
        ({"acc": None}, "NoneType"),
        ({"acc": [0.9]}, "list"),
        ({"acc": 1 + 2j}, "complex"),
        ({"acc": Decimal("0.5")}, "Decimal"),
        ({"acc": np.array([1.0, 2.0])}, "more than one value"),
        ({"step": 1.5, "acc": 1}, "step"),
        ({"step": "3", "acc": 1}, "step"),
    ],
)
def test_non_numeric_values_are_errors(kwargs, match) -> None:
    with collect_metrics("s") as collector, pytest.raises(MetricError, match=match) as info:
        log_metrics(**kwargs)
    assert info.value.hint and collector.events == []


def test_summarize_last_values_and_series() -> None:
    events = []
    with collect_metrics("train") as train:
        log_metrics(step=0, loss=1.0)
        log_metrics(step=1, loss=0.5)
    with collect_metrics("evaluate") as evaluate:
        log_metrics(acc=0.9)
    events = [*train.events, *evaluate.events]
    last, series = summarize(events)
    assert last == {"loss": 0.5, "acc": 0.9}
    assert series == {
        "loss": [{"step": 0, "value": 1.0, "stage": "train"}, {"step": 1, "value": 0.5, "stage": "train"}],
        "acc": [{"step": None, "value": 0.9, "stage": "evaluate"}],
    }
