"""``evaluate(program, task)``: train a program on a proxy task and score it.

Pure and idempotent: the same program, task and seeds give the same result
(timing fields aside). A program that is invalid on the task, or whose training
diverges, gives a result with the failed fitness, never an exception.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from dsl import Program, ProgramError, library
from evaluators import fitness as fit
from evaluators import tasks
from evaluators.encode import Encoded, bucket_of, encode
from evaluators.engine import layout_for, run_encoded_batch, run_engine
from evaluators.tasks import Task

#: The program every fitness is measured against (the search's warm start).
BASELINE = "warmstart"


class EvalResult(BaseModel):
    """One program on one task, over several seeds."""

    model_config = ConfigDict(frozen=True)

    task: str = Field(description="Task name, e.g. 'mlp_mnist1d/A'.")
    seeds: tuple[int, ...] = Field(description="Seeds trained, one run each.")
    metrics: tuple[float | None, ...] = Field(
        description="Validation metric per seed (lower is better); None where not finite.")
    steps: tuple[int, ...] = Field(description="Steps run per seed before stopping.")
    diverged: bool = Field(description="Some seed hit NaN/Inf or a loss blow-up.")
    fitness: float = Field(description="log(baseline metric / metric); FAILED on failure.")
    baseline: float | None = Field(default=None, description="The baseline's mean metric.")
    error: str | None = Field(default=None, description="Why the program could not run.")
    wall_time: float = Field(description="Seconds for this call, compilation included.")
    compile_time: float = Field(description="Seconds of that spent compiling (0 if cached).")

    @property
    def failed(self) -> bool:
        return self.fitness <= fit.FAILED


def _task(task: str | Task) -> Task:
    return tasks.get(task) if isinstance(task, str) else task


def _seeds(seeds: tuple[int, ...]) -> tuple[int, ...]:
    """Seeds as a tuple of ints; a ValueError names a bad one (they seed NumPy: >= 0)."""
    seeds = tuple(seeds)
    bad = [s for s in seeds if isinstance(s, bool) or int(s) != s or s < 0]
    if not seeds or bad:
        raise ValueError(f"seeds must be one or more integers >= 0, got {list(seeds)}")
    return tuple(int(s) for s in seeds)


@functools.cache
def baseline_metric(task: Task, seeds: tuple[int, ...], baseline: str = BASELINE) -> float:
    """The baseline program's mean metric on ``task`` and ``seeds`` (cached)."""
    (metric, _, ok), _ = run_engine(library.get(baseline), task, seeds)
    if not ok.all():
        raise RuntimeError(f"the baseline {baseline!r} diverged on {task.name} with {seeds}")
    return float(np.mean(metric))


def evaluate(
    program: Program, task: str | Task, seeds: tuple[int, ...] = (0, 1),
    *, baseline: str = BASELINE,
) -> EvalResult:
    """Train ``program`` on ``task`` once per seed and score it against ``baseline``.

    >>> from dsl import library
    >>> r = evaluate(library.get("warmstart"), "quadratic/A")
    >>> r.fitness, r.diverged
    (0.0, False)
    """
    task, seeds = _task(task), _seeds(seeds)
    start = time.perf_counter()
    try:
        (metric, steps, ok), compile_time = run_engine(program, task, seeds)
    except ProgramError as e:
        return _invalid(task, seeds, e, time.perf_counter() - start)
    base = baseline_metric(task, seeds, baseline)
    return _scored(task, seeds, metric, steps, ok, base, time.perf_counter() - start,
                   compile_time)


def evaluate_batch(
    programs: list[Program], task: str | Task, seeds: tuple[int, ...] = (0, 1),
    *, baseline: str = BASELINE,
) -> list[EvalResult]:
    """:func:`evaluate` for many programs, those of one bucket trained in one
    vmapped call (:func:`~evaluators.engine.run_engine_batch`: for accelerators;
    on CPU evaluating one by one is far faster). Results come in the order given; a
    program invalid on the task fails alone. Each result's times are its share
    of its batch's.

    >>> from dsl import library
    >>> results = evaluate_batch([library.get("warmstart")] * 2, "quadratic/A")
    >>> [abs(r.fitness) < 1e-6 for r in results]  # as good as the warm start, to rounding
    [True, True]
    """
    task, seeds = _task(task), _seeds(seeds)
    layout = layout_for(task)
    results: list[EvalResult | None] = [None] * len(programs)
    groups: dict[int, list[tuple[int, Encoded]]] = {}
    for i, program in enumerate(programs):
        start = time.perf_counter()
        try:
            bucket = bucket_of(program)
            groups.setdefault(bucket, []).append((i, encode(program, layout, bucket)))
        except ProgramError as e:
            results[i] = _invalid(task, seeds, e, time.perf_counter() - start)
    for bucket, group in groups.items():
        start = time.perf_counter()
        members = [i for i, _ in group]
        (metric, steps, ok), compile_time = run_encoded_batch(
            [enc for _, enc in group], bucket, task, seeds)
        base = baseline_metric(task, seeds, baseline)
        share = (time.perf_counter() - start) / len(members)
        for k, i in enumerate(members):
            results[i] = _scored(task, seeds, metric[k], steps[k], ok[k], base, share,
                                 compile_time / len(members))
    return results  # type: ignore[return-value]


def _invalid(task: Task, seeds: tuple[int, ...], error: ProgramError, wall: float) -> EvalResult:
    return EvalResult(task=task.name, seeds=seeds, metrics=(None,) * len(seeds),
                      steps=(0,) * len(seeds), diverged=False, fitness=fit.FAILED,
                      error=str(error), wall_time=wall, compile_time=0.0)


def _scored(task: Task, seeds: tuple[int, ...], metric, steps, ok, base: float, wall: float,
            compile_time: float) -> EvalResult:
    diverged = not bool(ok.all())
    mean = float(np.mean(metric))
    score = fit.FAILED if diverged else fit.task_score(mean, base)
    return EvalResult(
        task=task.name, seeds=seeds,
        metrics=tuple(float(m) if math.isfinite(m) else None for m in metric),
        steps=tuple(int(s) for s in steps), diverged=diverged, fitness=score, baseline=base,
        wall_time=wall, compile_time=compile_time,
    )


def evaluate_all(
    program: Program, task_names: list[str], seeds: tuple[int, ...] = (0, 1),
    *, baseline: str = BASELINE, progress: Callable[[str], None] | None = None,
) -> tuple[list[EvalResult], float]:
    """Evaluate on several tasks; return the results and the combined fitness.

    With ``progress``, each task is trained one seed at a time and a line is
    reported per task and seed (the result is the same, to float rounding: each
    seed's run does not depend on the others).
    """
    if progress is None:
        results = [evaluate(program, name, seeds, baseline=baseline) for name in task_names]
    else:
        results = []
        for name in task_names:
            parts = []
            for seed in _seeds(seeds):
                r = evaluate(program, name, (seed,), baseline=baseline)
                what = ("failed" if r.failed else f"metric {r.metrics[0]:.4g} (AdamW "
                        f"{r.baseline:.4g})")
                progress(f"{name} seed {seed}: {what}, {r.wall_time:.1f} s")
                parts.append(r)
            results.append(_merge(parts))
    return results, fit.combine(r.fitness for r in results)


def _merge(parts: list[EvalResult]) -> EvalResult:
    """One task's per-seed results as one result over all their seeds."""
    metrics = tuple(m for r in parts for m in r.metrics)
    error = next((r.error for r in parts if r.error), None)
    diverged = any(r.diverged for r in parts)
    bases = [r.baseline for r in parts]
    base = float(np.mean(bases)) if all(b is not None for b in bases) else None
    score = (fit.FAILED if error or diverged or base is None or None in metrics
             else fit.task_score(float(np.mean(metrics)), base))
    return EvalResult(task=parts[0].task, seeds=tuple(s for r in parts for s in r.seeds),
                      metrics=metrics, steps=tuple(s for r in parts for s in r.steps),
                      diverged=diverged, fitness=score, baseline=base, error=error,
                      wall_time=sum(r.wall_time for r in parts),
                      compile_time=sum(r.compile_time for r in parts))
