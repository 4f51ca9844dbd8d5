"""Fitness: a program's metrics against a baseline's, and the one multi-task rule.

Per task, the score is ``log(baseline / metric)`` with both metrics averaged
over the same seeds: 0 is "as good as the baseline" (by default a search's judge,
AdamW tuned on all its hyperparameters), positive is better, and it is symmetric
in ratios (halving the loss scores +0.69, doubling it -0.69). A NaN, an Inf, a
diverged seed or an error on any task gives :data:`FAILED`, below every finite result.

Tasks are combined by :func:`combine`: the mean, or, given each task's *scale* (the
seed noise of its judge: the standard deviation of one seed's log metric, measured
once with the tuned baseline, :mod:`evaluators.tuning`), the mean weighted by
``1 / scale``. The weights sum to one, so the fitness stays a log-ratio (a program 1%
better on every task scores +0.01), while a gain of five standard deviations on a
task whose seeds agree to 0.1% counts as much as five on a task whose seeds differ by
1%. :func:`judge_tasks` is the whole rule, used by the search's workers, by
:func:`evaluators.evaluate_all` (simplify), the funnel and the benchmarks: tasks in
the order given (cheap ones first), stop at the first task failed (the fitness is
``FAILED`` whatever the others give), and stop when the fitness so far is below the
hurdle (the program is *screened*: its fitness is that so far).

>>> combine({"a": 0.1, "b": -0.1})
0.0
>>> round(combine({"a": 0.1, "b": -0.1}, {"a": 0.01, "b": 0.03}), 6)  # a's seeds agree more
0.05
>>> out = judge_tasks(["a", "b"], train=lambda t: {"a": -0.3, "b": 0.5}[t],
...                   score=lambda s: s, hurdle=-0.1)
>>> out.results, out.fitness, out.skipped, out.screened
([-0.3], -0.3, ['b'], True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Generic, NamedTuple, TypeVar

#: The fitness of a failed evaluation: below any finite result, and JSON-safe.
FAILED = -1e9

R = TypeVar("R")


def task_score(metric: float, baseline: float) -> float:
    """``log(baseline / metric)``: 0 when equal, > 0 when the metric is lower."""
    if not (math.isfinite(metric) and math.isfinite(baseline)) or metric <= 0 or baseline <= 0:
        return FAILED
    return math.log(baseline / metric)


def weights(tasks: Iterable[str], scales: Mapping[str, float | None] | None) -> dict[str, float]:
    """Each task's weight in :func:`combine`: ``1 / scale`` normalised to sum to one; equal
    weights unless every task has a positive finite scale."""
    tasks = list(tasks)
    given = [scales.get(t) if scales else None for t in tasks]
    if not tasks or any(s is None or not math.isfinite(s) or s <= 0 for s in given):
        return {t: 1 / len(tasks) for t in tasks} if tasks else {}
    inverse = {t: 1 / s for t, s in zip(tasks, given, strict=True)}  # type: ignore[operator]
    total = sum(inverse.values())
    return {t: w / total for t, w in inverse.items()}


def combine(scores: Mapping[str, float] | Iterable[float],
            scales: Mapping[str, float | None] | None = None) -> float:
    """Per-task scores as one fitness: their mean, weighted by ``1 / scale`` where every
    task has a scale (:func:`weights`); :data:`FAILED` if any task failed or none ran.
    Scores given without task names are averaged."""
    if not isinstance(scores, Mapping):
        scores = {str(k): s for k, s in enumerate(scores)}
        scales = None
    if not scores or any(s <= FAILED for s in scores.values()):
        return FAILED
    w = weights(scores, scales)
    return sum(w[t] * s for t, s in scores.items())


def fitness(metrics: Mapping[str, float], baselines: Mapping[str, float],
            scales: Mapping[str, float | None] | None = None) -> float:
    """Combined fitness of per-task mean metrics against per-task baseline metrics."""
    return combine({name: task_score(metrics[name], baselines[name]) for name in metrics},
                   scales)


class Outcome(NamedTuple, Generic[R]):
    """What :func:`judge_tasks` gave: the results of the tasks trained, in order."""

    results: list[R]
    fitness: float
    #: Tasks not trained: after a failure, or after the hurdle screened the program.
    skipped: list[str]
    #: The fitness so far fell below the hurdle with tasks left.
    screened: bool


def judge_tasks(tasks: Sequence[str], train: Callable[[str], R], score: Callable[[R], float],
                *, hurdle: float | None = None, until_failure: bool = True,
                scales: Mapping[str, float | None] | None = None) -> Outcome[R]:
    """The multi-task rule: train ``tasks`` in order (``train(task)``, scored by
    ``score(result)``); with ``until_failure``, none after the first failed; with
    ``hurdle``, none after the combined fitness so far (:func:`combine` with ``scales``)
    falls below it. The fitness is the combination of the tasks trained."""
    results: list[R] = []
    scored: dict[str, float] = {}
    screened = False
    for k, task in enumerate(tasks):
        results.append(train(task))
        scored[task] = score(results[-1])
        if until_failure and scored[task] <= FAILED:
            break
        if hurdle is not None and combine(scored, scales) < hurdle:
            screened = k + 1 < len(tasks)
            break
    return Outcome(results, combine(scored, scales), [t for t in tasks if t not in scored],
                   screened)
