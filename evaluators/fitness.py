"""Fitness: a program's metrics against the warm start's, combined into one number.

Per task, the score is ``log(baseline / metric)`` with both metrics averaged
over the same seeds: 0 is "as good as the baseline" (by default the search's
AdamW warm start), positive is better, and it is symmetric in ratios (halving
the loss scores +0.69, doubling it -0.69). Tasks are combined by the mean.
A NaN, an Inf, a diverged seed or an error on any task gives :data:`FAILED`,
below every finite result.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

#: The fitness of a failed evaluation: below any finite result, and JSON-safe.
FAILED = -1e9


def task_score(metric: float, baseline: float) -> float:
    """``log(baseline / metric)``: 0 when equal, > 0 when the metric is lower."""
    if not (math.isfinite(metric) and math.isfinite(baseline)) or metric <= 0 or baseline <= 0:
        return FAILED
    return math.log(baseline / metric)


def combine(scores: Iterable[float]) -> float:
    """The mean of per-task scores; :data:`FAILED` if any task failed or none ran."""
    scores = list(scores)
    if not scores or any(s <= FAILED for s in scores):
        return FAILED
    return sum(scores) / len(scores)


def fitness(metrics: Mapping[str, float], baselines: Mapping[str, float]) -> float:
    """Combined fitness of per-task mean metrics against per-task baseline metrics."""
    return combine(task_score(metrics[name], baselines[name]) for name in metrics)
