"""``evaluate(program, task)``: train a program on a proxy task and score it.

Pure and idempotent: the same program, task and seeds give the same result
(timing fields aside). A program that is invalid on the task, or whose training
diverges, gives a result with the failed fitness, never an exception.

Two protocols:

- without ``lr_grid``, each program runs at its own constants and is scored
  against the baseline at its own (the Lion paper's protocol);
- with ``lr_grid`` (an :class:`~evaluators.grid.LrGrid`), the program is trained
  at every multiplier of the grid (in one compiled call per pass) and scored by
  the best, against the baseline calibrated by :data:`~evaluators.grid.WIDE`
  (computed once per machine: :mod:`evaluators.baselines`). A program that only
  rescales the baseline's learning rate then scores about 0, and library
  optimizers with a bare ``* lr`` are judged at their best learning rate.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from dsl import Program, ProgramError, library
from evaluators import baselines, tasks
from evaluators import fitness as fit
from evaluators.encode import Encoded, bucket_of, encode
from evaluators.engine import layout_for, run_encoded_batch, run_engine, run_engine_grid
from evaluators.grid import WIDE, Calibration, LrGrid
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
    lr_multiplier: float = Field(
        1.0, description="The multiplier of the task's schedule the metrics are at: the best "
        "of the grid (1.0 without one).")
    lr_grid: tuple[tuple[float, float | None], ...] = Field(
        (), description="(multiplier, mean metric) for every multiplier trained, in order; "
        "None where a seed diverged. Empty without a grid.")
    lr_at_edge: bool = Field(
        False, description="The best multiplier is the grid's smallest or largest: a wider "
        "grid might do better.")
    baseline_lr: float | None = Field(
        None, description="The baseline's multiplier (its calibrated best, 1.0 without a grid).")

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
    """The baseline program's mean metric on ``task`` and ``seeds`` at its own
    constants (cached)."""
    (metric, _, ok), _ = run_engine(library.get(baseline), task, seeds)
    if not ok.all():
        raise RuntimeError(f"the baseline {baseline!r} diverged on {task.name} with {seeds}")
    return _mean(metric)


def _mean(metric) -> float:
    """The mean over seeds, in float64: a program and its baseline, trained alike,
    score exactly 0."""
    return float(np.mean(metric, dtype=np.float64))


class Baseline(BaseModel):
    """A baseline program calibrated on a task and seeds: its best mean metric."""

    model_config = ConfigDict(frozen=True)

    program: str = Field(description="Library name of the baseline program.")
    task: str
    seeds: tuple[int, ...]
    metric: float = Field(description="Mean metric over the seeds at the best multiplier.")
    lr_multiplier: float = Field(description="The multiplier calibration chose.")
    lr_grid: tuple[tuple[float, float | None], ...] = Field(
        description="(multiplier, mean metric) for every multiplier trained.")
    lr_at_edge: bool = Field(description="The best was at the grid's edge.")


@functools.cache
def calibrated_baseline(task: Task, seeds: tuple[int, ...], baseline: str = BASELINE,
                        grid: LrGrid = WIDE, *,
                        progress: Callable[[str], None] | None = None) -> Baseline:
    """``baseline`` at its best multiplier of ``grid`` on ``task`` and ``seeds``:
    computed once per machine (:mod:`evaluators.baselines`) and per process
    (``progress`` gets a line per pass when it is computed).
    RuntimeError if it diverges at every multiplier."""
    stored = baselines.lookup(_baseline_key(task, seeds, baseline, grid))
    if stored is not None:
        try:
            return Baseline.model_validate(stored)
        except ValueError:
            pass  # an entry of another layout: compute it again
    r = evaluate(library.get(baseline), task, seeds, lr_grid=grid, baseline_value=1.0,
                 progress=progress)
    if r.failed:
        raise RuntimeError(f"the baseline {baseline!r} diverged on {task.name} with {seeds} "
                           f"at every multiplier of {grid.label()}")
    return _keep_baseline(Baseline(program=baseline, task=task.name, seeds=seeds,
                                   metric=_mean(r.metrics),
                                   lr_multiplier=r.lr_multiplier, lr_grid=r.lr_grid,
                                   lr_at_edge=r.lr_at_edge), grid, task)


def _baseline_key(task: Task, seeds: tuple[int, ...], baseline: str, grid: LrGrid) -> str:
    return baselines.key(baseline, task.name + (f"@{task.version}" if task.version else ""),
                         seeds, grid.model_dump_json())


def _keep_baseline(result: Baseline, grid: LrGrid, task: Task) -> Baseline:
    """A baseline's calibration by ``grid`` on ``task``, stored on the machine."""
    baselines.store(_baseline_key(task, result.seeds, result.program, grid),
                    result.model_dump(mode="json"))
    return result


def evaluate(
    program: Program, task: str | Task, seeds: tuple[int, ...] = (0, 1),
    *, baseline: str = BASELINE, lr_grid: LrGrid | None = None, centre: float | None = None,
    baseline_value: float | None = None, progress: Callable[[str], None] | None = None,
) -> EvalResult:
    """Train ``program`` on ``task`` once per seed and score it against ``baseline``.

    With ``lr_grid``, the program is trained at every multiplier of the grid
    (centred on ``centre`` if given) and scored by the best, against the baseline
    calibrated by :data:`~evaluators.grid.WIDE`. ``baseline_value`` replaces the
    baseline's metric (a value computed once elsewhere, e.g. by a search's first
    evaluation). ``progress`` gets a line per pass of the grid: its multipliers, the
    mean metric at each and the time so far.

    >>> from dsl import library
    >>> r = evaluate(library.get("warmstart"), "quadratic/A")
    >>> r.fitness, r.diverged
    (0.0, False)
    """
    task, seeds = _task(task), _seeds(seeds)
    start = time.perf_counter()
    if lr_grid is not None:
        return _calibrated(program, task, seeds, lr_grid, centre, baseline, baseline_value,
                           start, progress)
    try:
        (metric, steps, ok), compile_time = run_engine(program, task, seeds)
    except ProgramError as e:
        return _invalid(task, seeds, e, time.perf_counter() - start)
    base = baseline_metric(task, seeds, baseline) if baseline_value is None else baseline_value
    return _scored(task, seeds, metric, steps, ok, base, time.perf_counter() - start,
                   compile_time).model_copy(update={"baseline_lr": 1.0})


def _calibrated(program: Program, task: Task, seeds: tuple[int, ...], grid: LrGrid,
                centre: float | None, baseline: str, baseline_value: float | None,
                start: float, progress: Callable[[str], None] | None = None) -> EvalResult:
    """:func:`evaluate` with a learning-rate grid: one engine call per pass."""
    cal = Calibration(grid, centre)
    runs: dict[float, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    compile_time = 0.0
    while multipliers := cal.next():
        try:
            (metric, steps, ok), spent = run_engine_grid(program, task, seeds, multipliers)
        except ProgramError as e:
            return _invalid(task, seeds, e, time.perf_counter() - start)
        compile_time += spent
        good = ok.all(axis=1) & np.isfinite(metric).all(axis=1)
        cal.tell(multipliers, tuple(float(np.mean(metric[k])) if good[k] else None
                                    for k in range(len(multipliers))))
        for k, m in enumerate(multipliers):
            runs[m] = metric[k], steps[k], ok[k]
        if progress:
            scores = ", ".join(f"x{m:.3g} {cal.tried[m]:.4g}" if cal.tried[m] is not None
                               else f"x{m:.3g} diverged" for m in multipliers)
            progress(f"{task.name}: lr {scores} ({time.perf_counter() - start:.0f} s)")
    best = cal.best
    chosen = best[0] if best is not None else min(runs, key=lambda m: abs(np.log(m)))
    metric, steps, ok = runs[chosen]
    tried = tuple(sorted(cal.tried.items()))
    if baseline_value is not None:
        base, base_lr = baseline_value, None
    elif (grid == WIDE and centre is None and best is not None
          and program.to_source() == library.get(baseline).to_source()):
        # the baseline itself, calibrated as the baseline is: it is its own baseline
        # (a search's warm start would otherwise be trained twice on a fresh machine)
        base, base_lr = _mean(metric), chosen
        _keep_baseline(Baseline(program=baseline, task=task.name, seeds=seeds, metric=base,
                                lr_multiplier=chosen, lr_grid=tried, lr_at_edge=cal.at_edge),
                       grid, task)
    else:
        calibrated = calibrated_baseline(task, seeds, baseline)
        base, base_lr = calibrated.metric, calibrated.lr_multiplier
    result = _scored(task, seeds, metric, steps, ok, base, time.perf_counter() - start,
                     compile_time)
    return result.model_copy(update={"lr_multiplier": chosen, "lr_grid": tried,
                                     "lr_at_edge": cal.at_edge, "baseline_lr": base_lr})


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
    mean = _mean(metric)
    score = fit.FAILED if diverged else fit.task_score(mean, base)
    return EvalResult(
        task=task.name, seeds=seeds,
        metrics=tuple(float(m) if math.isfinite(m) else None for m in metric),
        steps=tuple(int(s) for s in steps), diverged=diverged, fitness=score, baseline=base,
        wall_time=wall, compile_time=compile_time,
    )


def evaluate_all(
    program: Program, task_names: list[str], seeds: tuple[int, ...] = (0, 1),
    *, baseline: str = BASELINE, lr_grid: LrGrid | None = None,
    centres: dict[str, float] | None = None, progress: Callable[[str], None] | None = None,
    until_failure: bool = False, baselines: dict[str, float] | None = None,
    scales: dict[str, float] | None = None,
) -> tuple[list[EvalResult], float]:
    """Evaluate on several tasks; return the results and the combined fitness (by the
    one multi-task rule, :func:`evaluators.fitness.judge_tasks`, with ``scales``).

    With ``lr_grid``, each task calibrates as :func:`evaluate` does, its grid
    centred on ``centres[task]`` where given. With ``progress``, a line is
    reported per task (per task and seed without a grid: each seed is then
    trained alone, which gives the same result to float rounding, since each
    seed's run does not depend on the others). With ``until_failure``, the tasks
    after the first one the program fails on are not trained (the combined
    fitness is ``FAILED`` whatever they give) and have no result. ``baselines``
    gives each task's baseline metric (a search's judge) instead of ``baseline``'s.
    """
    bases = baselines or {}

    def one(name: str) -> EvalResult:
        if progress is None or lr_grid is not None:
            r = evaluate(program, name, seeds, baseline=baseline, lr_grid=lr_grid,
                         centre=(centres or {}).get(name), baseline_value=bases.get(name))
            if progress:
                at = "" if r.baseline_lr is None else f" at x{r.baseline_lr:.3g}"
                what = ("failed" if r.failed else f"metric {np.mean(r.metrics):.4g} at lr "
                        f"x{r.lr_multiplier:.3g} (baseline {r.baseline:.4g}{at})")
                progress(f"{name}: {what}, {r.wall_time:.1f} s")
            return r
        parts = []
        for seed in _seeds(seeds):
            r = evaluate(program, name, (seed,), baseline=baseline,
                         baseline_value=bases.get(name))
            what = ("failed" if r.failed else f"metric {r.metrics[0]:.4g} (baseline "
                    f"{r.baseline:.4g})")
            progress(f"{name} seed {seed}: {what}, {r.wall_time:.1f} s")
            parts.append(r)
        return _merge(parts)

    outcome = fit.judge_tasks(task_names, one, lambda r: r.fitness, until_failure=until_failure,
                              scales=scales)
    return outcome.results, outcome.fitness


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


def train_runs(program: Program, task_names: list[str], seeds: tuple[int, ...],
               lr_grid: LrGrid = WIDE, *,
               progress: Callable[[str], None] | None = None) -> dict[str, dict]:
    """``program`` calibrated by ``lr_grid`` on each task, as the funnel reads it
    (``search.records.TaskRun``): per task the per-seed metrics at the chosen
    multiplier, the multiplier, whether it was the grid's edge, and any error.

    No baseline is trained: the funnel compares the runs with its own baselines'.
    With ``progress``, a line per task. Exceptions (a task that cannot load) propagate.
    """
    out = {}
    for name in task_names:
        # the metric itself is what the funnel compares: baseline_value only fills the field
        r = evaluate(program, name, seeds, lr_grid=lr_grid, baseline_value=1.0,
                     progress=progress)
        if progress:
            what = (r.error or "diverged at every learning rate" if r.failed else
                    f"metric {np.mean(r.metrics):.4g} at lr x{r.lr_multiplier:.3g}"
                    f"{' (the edge of the grid)' if r.lr_at_edge else ''}")
            progress(f"{name}: {what}, {r.wall_time:.1f} s")
        out[name] = {"metrics": list(r.metrics), "lr_multiplier": r.lr_multiplier,
                     "lr_at_edge": r.lr_at_edge, "error": r.error}
    return out
