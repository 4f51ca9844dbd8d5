"""Tuned baselines ("target setting"): a library optimizer tuned on all its hyperparameters.

A search rewarded for beating AdamW at AdamW's default betas and weight decay is
rewarded for tuning them: every "discovery" of a search judged that way was AdamW
with other constants. So the judge holds the best constants already: the baseline
is tuned, by one protocol with a fixed budget per baseline and task (as AlgoPerf's
external tuning sets its targets), on the learning rate *and* the optimizer's other
hyperparameters. A program that is a known optimizer with other constants then
scores at most about 0 against it, and only a different algorithm scores above.

The protocol (:class:`Protocol`, default :data:`PROTOCOL`), on one task and seed set:

1. the library's defaults, calibrated on the learning rate by the wide grid
   (:data:`evaluators.grid.WIDE`): the starting multiplier;
2. ``trials`` quasi-random points of the baseline's search space (:data:`SPACES`:
   betas as ``1 - beta`` and weight decay on log scales; a scrambled Sobol
   sequence, seeded, ``scipy.stats.qmc``, AlgoPerf's quasi-random search), each
   trained at the ``lanes`` multipliers ``ratio`` apart around the best multiplier
   so far, in one compiled call (the engine's learning-rate lanes: constants are
   data, so no trial compiles);
3. the best point calibrated again around its multiplier (pushed past an edge,
   refined to a quarter of a step and a parabola's vertex): its mean metric is
   the tuned baseline's.

A baseline without a space in :data:`SPACES` is tuned on the learning rate only
(step 1), and its result says so. Results are computed once per machine
(:mod:`evaluators.baselines`: keyed by baseline, task, seeds, protocol and code
version). AdamW's epsilon is not tuned: at the tasks' scales it moved no metric
measured (``docs/benchmarks.md``).

>>> t = tune("adamw", "quadratic/A", (0,), Protocol(trials=2))
>>> sorted(t.hyperparameters), t.program
(['b1', 'b2', 'weight_decay'], 'adamw')
>>> t.metric <= t.default_metric     # never worse than the defaults at their best lr
True
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from dsl import Program, library
from evaluators import baselines
from evaluators.grid import WIDE, LrGrid
from evaluators.tasks import Task


class Axis(BaseModel):
    """One hyperparameter's range, sampled uniformly on a log scale of the value, or of
    ``1 - value`` for a decay rate (``complement``), so 0.9, 0.99 and 0.999 are as far
    apart as they matter."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="The hyperparameter's name in the library program.")
    low: float = Field(gt=0, description="The smallest value.")
    high: float = Field(gt=0, description="The largest value.")
    complement: bool = Field(False, description="Sample 1 - value on a log scale (a beta).")

    def value(self, u: float) -> float:
        """The value at ``u`` in [0, 1) of the range, to 4 significant digits."""
        if self.complement:
            lo, hi = math.log(1 - self.high), math.log(1 - self.low)
            return float(f"{1 - math.exp(hi + u * (lo - hi)):.4g}")
        lo, hi = math.log(self.low), math.log(self.high)
        return float(f"{math.exp(lo + u * (hi - lo)):.4g}")


def _beta(name: str, low: float, high: float) -> Axis:
    return Axis(name=name, low=low, high=high, complement=True)


def _decay(name: str = "weight_decay", low: float = 1e-5, high: float = 1.0) -> Axis:
    return Axis(name=name, low=low, high=high)


#: What each library baseline is tuned on besides the learning rate. Ranges hold the
#: values the field uses (AdamW's beta2 from 0.5, as the searches' retuned AdamWs
#: chose 0.63-0.93; Lion's weight decay 3-10x AdamW's) with room on either side.
SPACES: dict[str, tuple[Axis, ...]] = {
    "adamw": (_beta("b1", 0.5, 0.99), _beta("b2", 0.5, 0.9999), _decay()),
    "lion": (_beta("b1", 0.5, 0.99), _beta("b2", 0.5, 0.999), _decay(low=1e-4, high=10.0)),
    "momentum": (_beta("beta", 0.5, 0.99), _decay(low=1e-6, high=0.1)),
    "muon": (_beta("beta", 0.5, 0.99), _beta("adam_b2", 0.5, 0.9999)),
}


class Protocol(BaseModel):
    """How a baseline is tuned: the same for every baseline and task."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    trials: int = Field(16, ge=0, le=1024, description="Quasi-random points of the "
                        "hyperparameter space tried after the defaults.")
    lanes: int = Field(3, ge=1, le=16, description="Learning-rate multipliers each trial "
                       "is trained at, in one compiled call, around the best so far.")
    ratio: float = Field(10 ** 0.5, gt=1, le=100,
                         description="Between a trial's neighbouring multipliers.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seeds the Sobol sequence's "
                      "scrambling: the same points on every machine.")

    def label(self) -> str:
        """A short description, e.g. ``16 quasi-random trials x 3 lrs``."""
        return f"{self.trials} quasi-random trials x {self.lanes} learning rates"


#: The protocol every tuned baseline uses unless told otherwise.
PROTOCOL = Protocol()


class Trial(BaseModel):
    """One point of the hyperparameter space, at its best multiplier of its lanes."""

    model_config = ConfigDict(frozen=True)

    hyperparameters: dict[str, float]
    lr_multiplier: float
    metric: float | None = Field(description="Best mean metric of its lanes; None if every "
                                 "lane diverged.")
    metrics: tuple[float, ...] = Field((), description="Per-seed metrics there (none for the "
                                       "defaults' calibration).")


class Tuned(BaseModel):
    """A baseline tuned on a task and seeds: its best constants and what they score."""

    model_config = ConfigDict(frozen=True)

    program: str = Field(description="Library name of the baseline.")
    task: str
    seeds: tuple[int, ...]
    protocol: str = Field(description="The protocol's label.")
    hyperparameters: dict[str, float] = Field(
        description="The tuned values of the hyperparameters in SPACES (empty: lr only).")
    lr_multiplier: float = Field(description="The tuned multiplier of the task's schedule.")
    lr_at_edge: bool = Field(description="The best multiplier was the grid's edge.")
    metric: float = Field(description="Mean metric over the seeds at the tuned constants.")
    metrics: tuple[float, ...] = Field(description="Per-seed metrics there.")
    default_metric: float = Field(description="The library defaults' mean metric at their "
                                  "best learning rate (step 1).")
    seed_noise: float | None = Field(
        description="The standard deviation of one seed's log metric about its seed mean, "
        "pooled over the better half of the trials and the final run (None with one seed): "
        "the task's scale in the multi-task rule (evaluators.fitness.combine).")
    trials: tuple[Trial, ...] = Field(description="Every trial, in order.")
    seconds: float = Field(description="Wall time of the tuning (0 for a cached answer).")

    def tuned_program(self) -> Program:
        """The baseline at its tuned constants (its learning rate is the multiplier)."""
        return library.get(self.program, **self.hyperparameters)

    def describe(self) -> str:
        """The tuned constants in a line, e.g. ``lr x0.0178, b1=0.9, b2=0.95``."""
        hp = "".join(f", {k}={v:.4g}" for k, v in self.hyperparameters.items())
        return f"lr x{self.lr_multiplier:.3g}{hp}"


def _task(task: str | Task) -> Task:
    from evaluators import tasks

    return tasks.get(task) if isinstance(task, str) else task


def cache_key(program: str, task: Task, seeds: tuple[int, ...], protocol: Protocol) -> str:
    """The per-machine cache key of one tuning."""
    name = task.name + (f"@{task.version}" if task.version else "")
    return baselines.key(f"tuned:{program}", name, seeds, protocol.model_dump_json())


def cached(program: str, task: str | Task, seeds: tuple[int, ...],
           protocol: Protocol = PROTOCOL) -> Tuned | None:
    """The machine's stored tuning, or None: no training."""
    stored = baselines.lookup(cache_key(program, _task(task), tuple(seeds), protocol))
    if stored is None:
        return None
    try:
        return Tuned.model_validate(stored | {"seconds": 0.0})
    except ValueError:
        return None  # an entry of another layout: tune again


@functools.cache
def _points(n: int, dims: int, seed: int) -> tuple[tuple[float, ...], ...]:
    """``n`` scrambled Sobol points in [0, 1)^dims (the first ``n`` of the sequence)."""
    if n == 0 or dims == 0:
        return ()
    from scipy.stats import qmc

    sampler = qmc.Sobol(d=dims, scramble=True, rng=np.random.default_rng(seed))
    return tuple(tuple(float(x) for x in row) for row in sampler.random(n))


def tune(program: str, task: str | Task, seeds: tuple[int, ...] = (0, 1),
         protocol: Protocol = PROTOCOL, *,
         progress: Callable[[str], None] | None = None) -> Tuned:
    """``program`` (a library name) tuned on ``task`` and ``seeds`` by ``protocol``:
    from the machine's cache, else computed and stored. ``progress`` gets a line per
    trial. RuntimeError if the defaults diverge at every learning rate."""
    from evaluators.evaluate import _seeds, calibrated_baseline, evaluate

    task, seeds = _task(task), _seeds(seeds)
    hit = cached(program, task, seeds, protocol)
    if hit is not None:
        return hit
    start = time.perf_counter()
    say = progress or (lambda line: None)
    default = calibrated_baseline(task, seeds, program, WIDE,
                                  progress=lambda line: say(f"{program} defaults on {line}"))
    say(f"{program} on {task.name}: defaults {default.metric:.4g} at lr "
        f"x{default.lr_multiplier:.3g} ({time.perf_counter() - start:.0f} s)")
    space = SPACES.get(program, ())
    defaults = library.get(program)
    best = Trial(hyperparameters={a.name: _default_value(program, a.name) for a in space},
                 lr_multiplier=default.lr_multiplier, metric=default.metric)
    trials = [best]
    lanes = LrGrid(points=protocol.lanes, ratio=protocol.ratio)
    for k, u in enumerate(_points(protocol.trials, len(space), protocol.seed), start=1):
        hp = {a.name: a.value(x) for a, x in zip(space, u, strict=True)}
        r = evaluate(library.get(program, **hp), task, seeds, lr_grid=lanes,
                     centre=best.lr_multiplier, baseline_value=1.0)
        trial = Trial(hyperparameters=hp, lr_multiplier=r.lr_multiplier,
                      metric=None if r.failed else float(np.mean(r.metrics, dtype=np.float64)),
                      metrics=() if r.failed else tuple(float(m) for m in r.metrics))
        trials.append(trial)
        if trial.metric is not None and trial.metric < best.metric:
            best = trial
        say(f"{program} on {task.name}: trial {k}/{protocol.trials} "
            f"{'diverged' if trial.metric is None else f'{trial.metric:.4g}'} "
            f"({_hp(hp)}, lr x{trial.lr_multiplier:.3g}); best {best.metric:.4g} "
            f"({time.perf_counter() - start:.0f} s)")
    final_grid = LrGrid(points=protocol.lanes, ratio=protocol.ratio, extend=2, refine=2)
    chosen = library.get(program, **best.hyperparameters) if space else defaults
    r = evaluate(chosen, task, seeds, lr_grid=final_grid, centre=best.lr_multiplier,
                 baseline_value=1.0, progress=lambda line: say(f"{program} refined on {line}"))
    if r.failed:  # the best trial diverged when trained again: impossible unless broken
        raise RuntimeError(f"tuning {program} on {task.name}: its best trial "
                           f"({_hp(best.hyperparameters)}) failed when refined: {r.error}")
    metrics = tuple(float(m) for m in r.metrics)
    result = Tuned(program=program, task=task.name, seeds=seeds, protocol=protocol.label(),
                   hyperparameters=best.hyperparameters, lr_multiplier=r.lr_multiplier,
                   lr_at_edge=r.lr_at_edge, metric=float(np.mean(r.metrics, dtype=np.float64)),
                   metrics=metrics, default_metric=default.metric,
                   seed_noise=seed_noise([*(t.metrics for t in trials), metrics]),
                   trials=tuple(trials), seconds=time.perf_counter() - start)
    say(f"{program} on {task.name}: tuned {result.metric:.4g} ({result.describe()}; defaults "
        f"{default.metric:.4g}) in {result.seconds:.0f} s")
    baselines.store(cache_key(program, task, seeds, protocol), result.model_dump(mode="json"))
    return result


def seed_noise(runs: list[tuple[float, ...]]) -> float | None:
    """The pooled standard deviation of one seed's log metric about its run's seed mean,
    over the better half of ``runs`` (per-seed metrics; empty ones skipped): near the
    optimum, where the judge's noise matters. None without two seeds.

    >>> round(seed_noise([(1.0, 1.0), (2.0, 2.0 * math.e ** 0.02), (9.0, 1.0)]), 4)
    0.01
    """
    usable = sorted((r for r in runs if len(r) > 1 and all(m > 0 for m in r)),
                    key=lambda r: sum(r) / len(r))
    usable = usable[:max(1, (len(usable) + 1) // 2)]
    squares, dof = 0.0, 0
    for r in usable:
        logs = np.log(np.asarray(r, dtype=np.float64))
        squares += float(np.sum((logs - logs.mean()) ** 2))
        dof += len(r) - 1
    return math.sqrt(squares / dof) if dof else None


def tuned_run(t: Tuned) -> dict:
    """A tuning as the funnel reads a baseline's training (``search.records.TaskRun``)."""
    return {"metrics": list(t.metrics), "lr_multiplier": t.lr_multiplier,
            "lr_at_edge": t.lr_at_edge, "error": None, "hyperparameters": t.hyperparameters,
            "seed_noise": t.seed_noise}


def _default_value(program: str, name: str) -> float:
    from dsl.export import hyperparameters_of

    return float(hyperparameters_of(library.source(program))[name])


def _hp(hp: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in hp.items()) or "defaults"


__all__ = ["PROTOCOL", "SPACES", "Axis", "Protocol", "Trial", "Tuned", "cached", "seed_noise",
           "tune", "tuned_run"]
