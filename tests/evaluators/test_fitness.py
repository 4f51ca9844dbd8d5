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


def test_tasks_weigh_by_the_inverse_of_their_seed_noise() -> None:
    from evaluators.fitness import combine, weights

    assert weights(["lm", "mlp"], {"lm": 0.001, "mlp": 0.01}) == pytest.approx(
        {"lm": 10 / 11, "mlp": 1 / 11})
    assert weights(["lm", "mlp"], {"lm": 0.001}) == {"lm": 0.5, "mlp": 0.5}  # one missing
    assert weights(["lm", "mlp"], None) == {"lm": 0.5, "mlp": 0.5}
    # five standard deviations count the same on either task
    scales = {"lm": 0.001, "mlp": 0.01}
    assert combine({"lm": 0.005, "mlp": 0.0}, scales) == pytest.approx(
        combine({"lm": 0.0, "mlp": 0.05}, scales))
    # a log-ratio still: 1% better everywhere is +0.01 whatever the weights
    assert combine({"lm": 0.01, "mlp": 0.01}, scales) == pytest.approx(0.01)
    assert combine({"lm": 0.01, "mlp": FAILED}, scales) == FAILED
    assert combine({}) == FAILED


def test_the_multitask_rule_trains_in_order_fails_fast_and_screens() -> None:
    from evaluators.fitness import judge_tasks

    trained: list[str] = []

    def train(task):
        trained.append(task)
        return {"a": 0.02, "b": FAILED, "c": 0.5, "d": -0.4}[task]

    out = judge_tasks(["a", "b", "c"], train, lambda s: s)
    assert trained == ["a", "b"] and out.fitness == FAILED and out.skipped == ["c"]
    assert not out.screened
    trained.clear()
    out = judge_tasks(["a", "d", "c"], train, lambda s: s, hurdle=-0.1)
    assert trained == ["a", "d"] and out.screened and out.skipped == ["c"]
    assert out.fitness == pytest.approx(-0.19)
    trained.clear()
    out = judge_tasks(["a", "d"], train, lambda s: s, hurdle=-0.1)  # the last task screens none
    assert not out.screened and out.skipped == []
    out = judge_tasks(["a", "b", "c"], train, lambda s: s, until_failure=False)
    assert out.skipped == [] and out.fitness == FAILED
    out = judge_tasks(["a", "d"], train, lambda s: s, scales={"a": 0.01, "d": 0.04})
    assert out.fitness == pytest.approx((0.02 / 0.01 - 0.4 / 0.04) / (1 / 0.01 + 1 / 0.04))
