"""Tests for evaluators/fitness.py."""

from __future__ import annotations

import math

import pytest

from evaluators.fitness import FAILED, combine, fitness, task_score


def test_scores_are_log_ratios() -> None:
    assert task_score(1.0, 1.0) == 0.0
    assert task_score(0.5, 1.0) == pytest.approx(math.log(2))
    assert task_score(2.0, 1.0) == pytest.approx(-math.log(2))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, 0.0])
def test_non_finite_or_non_positive_metrics_fail(bad: float) -> None:
    assert task_score(bad, 1.0) == FAILED
    assert task_score(1.0, bad) == FAILED


def test_failures_rank_below_every_finite_result() -> None:
    assert FAILED < task_score(1e6, 1e-6)
    assert combine([0.3, FAILED]) == FAILED
    assert combine([]) == FAILED
    assert combine([0.2, -0.1]) == pytest.approx(0.05)
    assert fitness({"a": 0.5, "b": 2.0}, {"a": 1.0, "b": 2.0}) == pytest.approx(math.log(2) / 2)
