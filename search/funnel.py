"""The funnel: the search's best programs, verified on larger tasks and held-out ones,
against classical optimizers tuned the same way.

The top ``k`` distinct programs of a run (by search fitness, one per
fingerprint, failures excluded) are trained on tier B of the search's task
families; those that beat the best baseline on B by ``margin`` go on to tier C;
every finalist is also trained on held-out meta-validation tasks the search
never trained on. Every training, finalists' and baselines' alike, is on seeds
the search never used, each program at its best learning rate (the same
calibration grid for all: the caller's ``train``). The baselines are
classical optimizers (:data:`BASELINES`: AdamW, Lion, SGD with momentum), and
per task the finalist's fitness is given against each and against the best of
them (``log(baseline metric / metric)``, seed means), with the standard error
of the per-seed log-ratios (the seeds pair up: same initial parameters and
batches). A finalist *beats* a baseline on a task when its fitness exceeds
twice that standard error; the verdict says so in words.

``funnel.json`` in the run directory is rewritten (atomically) after each tier
of each program, so an interrupted funnel resumes where it stopped: a tier
already in the file for the same tasks, seeds and baselines is not run again,
nor is a baseline.

Training is passed in (``train(program, tasks) -> {task: TaskRun}``): search/
never trains. So is the baselines' (``tune(name, tasks)``): by default the command
line tunes each on its learning rate and its other hyperparameters
(:mod:`evaluators.tuning`), so a finalist that is a baseline with other constants
cannot beat it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from dsl import Program, library
from evaluators.catalog import DEFAULT_HELD_OUT, SECONDS, names
from evaluators.fitness import combine, weights
from search.evolution import FAILED
from search.records import Comparison, FunnelFile, FunnelRow, FunnelTask, FunnelTier, TaskRun
from search.rundir import RunDir, RunDirError

#: The classical optimizers every finalist is compared with (library names).
BASELINES = ("adamw", "lion", "momentum")
#: Training seeds of the funnel: this many after the search's largest.
SEEDS = 3


Train = Callable[[Program, list[str]], dict[str, TaskRun]]
#: A baseline (a library name) at its best constants on tasks.
Tune = Callable[[str, list[str]], dict[str, TaskRun]]


#: The funnel's budget unless told otherwise, in minutes on 2 cores with nothing cached:
#: the tasks that do not fit are left out, named, one flag (``--budget``) away.
BUDGET_MINUTES = 15.0
#: Trainings (one seed, one learning rate) a baseline's tuning runs beyond its trials'
#: (the wide grid's calibration of its defaults, about 13, and the refinement, about 8),
#: and its compiled calls beyond one a trial.
TUNING_RUNS, TUNING_CALLS = 21, 8
#: Trainings and compiled calls of one program's calibration by the wide grid.
CALIBRATION_RUNS, CALIBRATION_CALLS = 13, 5
#: Fitted to tunings measured on the reference machine (docs/benchmarks.md, "The funnel's
#: budget"): a training run as a lane of a compiled call costs this many times its run
#: alone (the table's), and each compiled call this many seconds more.
SLOWDOWN, CALL_SECONDS = 0.7, 0.3


def task_seconds(task: str, *, tunings: int, trials: int, lanes: int, programs: int,
                 seeds: int) -> float | None:
    """The estimated wall time, on the reference machine, of one funnel task: ``tunings``
    baselines tuned (``trials`` points at ``lanes`` learning rates each) and ``programs``
    calibrated, on ``seeds`` seeds; None for a task of unknown cost (a user's).

    >>> round(task_seconds("mlp_mnist1d/B", tunings=3, trials=16, lanes=3, programs=1,
    ...                    seeds=3))
    314
    """
    per = SECONDS.get(task)
    if per is None:
        return None
    runs = seeds * (tunings * (TUNING_RUNS + trials * lanes) + programs * CALIBRATION_RUNS)
    calls = tunings * (TUNING_CALLS + trials) + programs * CALIBRATION_CALLS
    return runs * per * SLOWDOWN + calls * CALL_SECONDS


@dataclass(frozen=True)
class Plan:
    """The tasks a funnel runs within its budget, and what it leaves out."""

    tiers: dict[str, list[str]]  # per tier (B, held_out, C), the tasks it runs
    left_out: dict[str, list[str]]  # per tier, the tasks the budget leaves out
    seconds: float  # the estimate with nothing cached, tasks of unknown cost aside
    unknown: list[str]  # tasks of unknown cost (a user's own), run whatever they cost
    costs: dict[str, float]  # each task's estimate with nothing cached, where known

    def describe(self) -> str:
        """The plan in a line or two."""
        text = f"about {minutes(self.seconds)} on 2 cores with nothing cached"
        if self.tiers.get("C"):
            text += " (tier C's share only if a program passes B)"
        if self.unknown:
            text += f", plus {', '.join(self.unknown)} (of unknown cost)"
        out = [f"{t} ({tier}, about {minutes(self.costs[t])})"
               for tier, ts in self.left_out.items() for t in ts]
        if out:
            text += (f"; left out to fit the budget: {', '.join(out)} (a larger --budget, or "
                     "--budget 0 for every task, runs them)")
        return text


def plan(tiers: dict[str, list[str]], cost: Callable[[str], float | None],
         budget_s: float) -> Plan:
    """The tasks of ``tiers`` (B, held_out, C, in that order of priority) that fit
    ``budget_s`` seconds by ``cost`` (a task's estimate with nothing cached, so the plan
    is the same on every machine and every run of the same command); ``budget_s`` 0 is
    no budget. Tier C counts as if every program went on to it.

    >>> plan({"B": ["a/B", "b/B"], "held_out": ["h/A"], "C": ["a/C"]},
    ...      {"a/B": 100, "b/B": 5000, "h/A": 50, "a/C": 900}.get, 900).left_out
    {'B': ['b/B'], 'held_out': [], 'C': ['a/C']}
    """
    kept: dict[str, list[str]] = {}
    left: dict[str, list[str]] = {}
    total, unknown, costs = 0.0, [], {}
    for name in ("B", "held_out", "C"):
        kept[name], left[name] = [], []
        for task in tiers.get(name, []):
            seconds = cost(task)
            if seconds is None:
                unknown.append(task)
                kept[name].append(task)
                continue
            costs[task] = seconds
            if not budget_s or total + seconds <= budget_s:
                total += seconds
                kept[name].append(task)
            else:
                left[name].append(task)
    return Plan(kept, left, total, unknown, costs)


def minutes(seconds: float) -> str:
    """A duration in words: ``45 s``, ``6 min``."""
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def funnel_seeds(search_seeds: list[int], n: int = SEEDS) -> tuple[int, ...]:
    """``n`` seeds the search never trained on: those after its largest."""
    start = max(search_seeds) + 1
    return tuple(range(start, start + n))


def compare(metrics: list[float | None], base: list[float | None]) -> Comparison:
    """A program's per-seed metrics against a baseline's on the same seeds:
    ``fitness`` (log of the ratio of seed means; FAILED if the program failed) and
    ``stderr`` (of the per-seed log-ratios; None with one seed)."""
    if any(m is None or not m > 0 for m in metrics) or not metrics:
        return {"fitness": FAILED, "stderr": None}
    if any(b is None or not b > 0 for b in base):
        return {"fitness": math.inf, "stderr": None}  # the baseline failed: anything beats it
    fitness = math.log(sum(base) / sum(metrics))
    ratios = [math.log(b / m) for b, m in zip(base, metrics, strict=True)]
    n = len(ratios)
    if n < 2:
        return {"fitness": fitness, "stderr": None}
    mean = sum(ratios) / n
    std = math.sqrt(sum((r - mean) ** 2 for r in ratios) / (n - 1))
    return {"fitness": fitness, "stderr": std / math.sqrt(n)}


def beats(c: Comparison, margin: float = 0.0) -> bool:
    """Better than the baseline by more than ``margin`` and twice the standard error."""
    noise = 2 * c["stderr"] if c["stderr"] is not None else math.inf
    return c["fitness"] > FAILED and c["fitness"] - margin > noise


def verdict(c: Comparison, best: str, margin: float = 0.0) -> str:
    """The comparison with the best baseline, in words."""
    if c["fitness"] <= FAILED:
        return "failed"
    if c["stderr"] is None:
        return f"{c['fitness']:+.3f} vs {best}: one seed, no noise estimate"
    if beats(c, margin):
        return f"beats {best} beyond noise"
    if -c["fitness"] > 2 * c["stderr"]:
        return f"worse than {best} beyond noise"
    return f"within noise of {best}"


def tier(tasks: list[str], letter: str) -> list[str]:
    """The same task families at another tier, where it exists (a user's family may
    have registered tier A only)."""
    known = set(names())
    return [t for t in dict.fromkeys(f"{t.split('/')[0]}/{letter}" for t in tasks) if t in known]


def tiers_of(run: RunDir, held_out: list[str] | None = None) -> dict[str, list[str]]:
    """Every task of each tier of a run's funnel: its task families at B and C, and the
    held-out tasks (default :data:`DEFAULT_HELD_OUT`)."""
    tasks = run.config().tasks
    return {"B": tier(tasks, "B"), "held_out": held_out if held_out is not None
            else list(DEFAULT_HELD_OUT), "C": tier(tasks, "C")}


def funnel(run: RunDir, train: Train, *, k: int = 3, margin: float = 0.0,
           held_out: list[str] | None = None, seeds: tuple[int, ...] | None = None,
           baselines: tuple[str, ...] = BASELINES, grid: str = "",
           tiers_run: tuple[str, ...] = ("B", "held_out", "C"),
           progress: Callable[[str], None] | None = None,
           tune: Tune | None = None, tiers: dict[str, list[str]] | None = None
           ) -> list[FunnelRow]:
    """Run the funnel, resuming ``funnel.json``; return its rows, best first.

    ``train`` trains a program on tasks at ``seeds`` (the caller binds them;
    default :func:`funnel_seeds`) and ``grid`` describes its calibration, for the
    record. A tier's ``fitness`` is the mean over its tasks of the fitness against
    the best baseline of each task. ``tiers_run`` leaves tiers out (C costs most);
    ``tiers`` gives each tier's tasks (default :func:`tiers_of`: all of them; a
    :func:`plan` within a budget leaves some out), a tier with none is not run.
    ``tune`` gives the baselines' runs (default: ``train`` of each library program at
    its own constants, on the learning rate only).
    """
    if tune is None:
        def tune(name: str, tasks: list[str]) -> dict[str, TaskRun]:
            return train(library.get(name), tasks)

    cfg = run.config()
    seeds = tuple(seeds) if seeds is not None else funnel_seeds(cfg.seeds)
    tiers = tiers if tiers is not None else tiers_of(run, held_out)
    setup = {"seeds": list(seeds), "baselines": list(baselines), "grid": grid}
    done, base_runs = _previous(run, tiers, setup)
    rows: list[FunnelRow] = []

    def save() -> None:
        kept = rows + [r for i, r in done.items() if i not in {x["id"] for x in rows}]
        run.write_funnel(FunnelFile(
            seeds=list(seeds), baselines=list(baselines), grid=grid, margin=margin,
            tier_B=tiers["B"], tier_C=tiers["C"], held_out=tiers["held_out"],
            baseline_runs=base_runs, rows=kept))

    def baseline_runs(tasks: list[str]) -> None:
        for name in baselines:
            missing = [t for t in tasks if t not in base_runs.get(name, {})]
            if missing and progress:
                progress(f"baseline {name}: {', '.join(missing)}")
            for task in missing:  # kept task by task: a stopped funnel loses none
                base_runs.setdefault(name, {}).update(tune(name, [task]))
                save()

    chosen = run.top(k)
    for n, found in enumerate(chosen, start=1):
        row = done.get(found.id) or FunnelRow(id=found.id, source=found.record["source"],
                                              search_fitness=found.fitness, tiers={})
        rows.append(row)
        for name in ("B", "held_out", "C"):
            if name not in tiers_run or not tiers[name]:
                continue
            if name == "C" and not row.get("passed_B"):
                break
            if name in row["tiers"]:
                if progress:
                    progress(f"program {found.id} ({n}/{len(chosen)}): {name} "
                             f"{row['tiers'][name]['fitness']:+.4f} (from funnel.json)")
                _passed(row, margin)
                continue
            baseline_runs(tiers[name])
            if progress:
                progress(f"program {found.id} ({n}/{len(chosen)}): tier {name} "
                         f"({', '.join(tiers[name])})")
            runs = train(found.program, tiers[name])
            row["tiers"][name] = judge(runs, {b: base_runs[b] for b in baselines}, margin)
            if progress:
                progress(f"program {found.id}: {name} {row['tiers'][name]['fitness']:+.4f} "
                         f"against the best baseline: {row['tiers'][name]['verdict']}")
            _passed(row, margin)
            save()
        _passed(row, margin)
    save()
    return rows


def judge(runs: dict[str, TaskRun], base: dict[str, dict[str, TaskRun]],
          margin: float = 0.0) -> FunnelTier:
    """One tier of one program: per task, the comparison with each baseline and with
    the best (the lowest mean metric); the tier's fitness and standard error (over
    tasks by :func:`evaluators.fitness.combine`, weighted by the first baseline's seed
    noise per task where known), and a verdict."""
    tasks: dict[str, FunnelTask] = {}
    for task, r in runs.items():
        vs = {name: compare(r["metrics"], b[task]["metrics"]) for name, b in base.items()}
        means = {name: _mean(b[task]["metrics"]) for name, b in base.items()}
        best = min(means, key=lambda name: means[name])
        tasks[task] = FunnelTask(
            metric=_mean(r["metrics"]), metrics=r["metrics"], lr_multiplier=r["lr_multiplier"],
            lr_at_edge=r["lr_at_edge"], error=r.get("error"), vs=vs, best_baseline=best,
            fitness=vs[best]["fitness"], stderr=vs[best]["stderr"],
            verdict=verdict(vs[best], best, margin))
    # the one multi-task rule: tasks weighted by the inverse of their judge's seed noise
    # (the first baseline's, tuned) where every task has it, else the plain mean
    judge = next(iter(base.values()), {})
    scales = {t: judge.get(t, {}).get("seed_noise") for t in tasks}
    w = weights(tasks, scales)
    fitness = combine({t: v["fitness"] for t, v in tasks.items()}, scales)
    errors = [(w[t], v["stderr"]) for t, v in tasks.items()]
    stderr = (None if fitness <= FAILED or any(e is None for _, e in errors)
              else math.sqrt(sum((k * e) ** 2 for k, e in errors)))
    overall = Comparison(fitness=fitness, stderr=stderr)
    return FunnelTier(fitness=fitness, stderr=stderr, beats_best=beats(overall, margin),
                      verdict=verdict(overall, "the best baseline", margin).replace(
                          "vs the best baseline", "against the best baseline"),
                      tasks=tasks)


def _mean(values: list[float | None]) -> float:
    if any(v is None for v in values) or not values:
        return math.inf
    return sum(values) / len(values)  # type: ignore[arg-type]


def _passed(row: FunnelRow, margin: float) -> None:
    tiers = row["tiers"]
    row["passed_B"] = "B" in tiers and tiers["B"]["fitness"] > margin
    row["passed_C"] = row["passed_B"] and "C" in tiers and tiers["C"]["fitness"] > margin
    row["beats_best"] = {name: t.get("beats_best", False) for name, t in tiers.items()}


def _previous(run: RunDir, tiers: dict[str, list[str]], setup: dict[str, object]
              ) -> tuple[dict[int, FunnelRow], dict[str, dict[str, TaskRun]]]:
    """Rows and baseline runs of an earlier funnel of this run with the same seeds,
    baselines and grid, each row keeping only the tiers run on the same tasks (an
    unreadable or different file is started over)."""
    try:
        saved = run.funnel()
    except RunDirError:
        return {}, {}
    if saved is None or any(saved[key] != value for key, value in setup.items()):
        return {}, {}
    same = {name for name, key in (("B", "tier_B"), ("C", "tier_C"), ("held_out", "held_out"))
            if saved[key] == tiers[name]}
    rows = {}
    for row in saved["rows"]:
        kept = {name: t for name, t in row["tiers"].items() if name in same}
        rows[row["id"]] = row | {"tiers": kept}
    return rows, saved["baseline_runs"]


#: What the funnel table's columns mean, printed under it (see :func:`columns`).
COLUMNS = """\
columns: fitness = log(baseline metric / metric) against the best of the tuned baselines
on each task ({baselines}; each program and baseline at its best
learning rate, on seeds the search never used), mean over tasks, ± its standard error
over seeds; 0 = as good as the best baseline, higher is better, failed = -1e9.
  search    the fitness the search saw (tier A, its own baseline)   B, C  larger tiers
  held out  tasks the search never trained on     passed  last tier beaten by --margin
  verdict   the last tier run against the best baseline, noise = 2 standard errors
  -         a tier not run (C runs only after B passes)"""


def columns(baselines: tuple[str, ...] = BASELINES) -> str:
    """What the funnel table's columns mean, naming the baselines it was run against.

    >>> columns(("adamw", "muon")).splitlines()[1][:25]
    'on each task (adamw, muon'
    """
    return COLUMNS.format(baselines=", ".join(baselines))


def table(rows: list[FunnelRow]) -> str:
    """The funnel as text: one line per program."""
    lines = [f"{'id':>6} {'search':>9} {'B':>15} {'C':>15} {'held out':>15}  passed  "
             "verdict"]

    def value(t: FunnelTier | Comparison | None, width: int = 15) -> str:
        if t is None:
            return f"{'-':>{width}}"
        if t["fitness"] <= FAILED:
            return f"{'failed':>{width}}"
        se = "" if t.get("stderr") is None else f"±{t['stderr']:.3f}"
        return f"{t['fitness']:+.3f}{se}".rjust(width)

    for row in rows:
        passed = "C" if row["passed_C"] else "B" if row["passed_B"] else "-"
        last = next((row["tiers"][t] for t in ("C", "held_out", "B") if t in row["tiers"]), None)
        search = Comparison(fitness=row["search_fitness"], stderr=None)
        lines.append(f"{row['id']:>6} {value(search, 9)} "
                     f"{value(row['tiers'].get('B'))} {value(row['tiers'].get('C'))} "
                     f"{value(row['tiers'].get('held_out'))}  {passed:<6}  "
                     f"{last['verdict'] if last else '-'}")
    return "\n".join(lines)


def baselines_table(saved: FunnelFile) -> str:
    """The tuned baselines of a funnel: per task, each one's mean metric and the
    learning-rate multiplier calibration chose."""
    runs = saved["baseline_runs"]
    tasks = sorted({t for r in runs.values() for t in r})
    cells = {task: ["-" if (r := runs[name].get(task)) is None else
                    f"{_mean(r['metrics']):.4g} at lr x{r['lr_multiplier']:.3g}"
                    + "".join(f", {k} {v:.3g}" for k, v in r.get("hyperparameters", {}).items())
                    for name in runs]
             for task in tasks}
    width = max([18, *(len(t) + 2 for t in tasks)])
    col = max([len(name) for name in runs] + [len(c) for row in cells.values() for c in row]) + 2
    lines = [f"{'task':<{width}}" + "".join(f"{name:>{col}}" for name in runs)]
    lines += [f"{task:<{width}}" + "".join(f"{c:>{col}}" for c in cells[task]) for task in tasks]
    return "\n".join(lines)


def calibrated_lr(run: RunDir, program_id: int) -> tuple[float, str] | None:
    """The learning rate calibration chose for a run's program on the largest tier it
    was verified on (tier C, else B from ``funnel.json``, else the search's own tier
    A), with a note naming the tier and tasks: the geometric mean of the tasks'
    multipliers where they differ. None if no calibration is known (a search
    without a learning-rate grid, never funnelled)."""
    try:
        saved = run.funnel()
    except RunDirError:
        saved = None
    row = next((r for r in saved["rows"] if r["id"] == program_id), None) if saved else None
    for name in ("C", "B"):
        t = row["tiers"].get(name) if row else None
        if t and t["fitness"] > FAILED:
            found = _geometric({k: v["lr_multiplier"] for k, v in t["tasks"].items()},
                               f"tier {name} of the funnel")
            if found:
                edge = [k for k, v in t["tasks"].items() if v.get("lr_at_edge")]
                return _at_edge(found, edge)
    found = run.program(program_id)
    edge = [k for k, v in found.record.get("tasks", {}).items()
            if isinstance(v, dict) and v.get("lr_at_edge")]
    return _at_edge(_geometric(found.lr, "the search's tasks"), edge) if found.lr else None


def _at_edge(found: tuple[float, str] | None, tasks: list[str]) -> tuple[float, str] | None:
    """``found``'s note, saying where the best learning rate was at its grid's edge (the
    best may lie beyond: tune it)."""
    if found is None or not tasks:
        return found
    return found[0], (f"{found[1]}; at the edge of its grid on {', '.join(sorted(tasks))}, "
                      "so a better one may lie beyond: tune it")


def _geometric(lr: dict[str, float], where: str) -> tuple[float, str] | None:
    # the multipliers come from a run directory: one that is no learning rate is left out
    lr = {t: m for t, m in lr.items() if isinstance(m, float) and 0 < m < math.inf}
    if not lr:
        return None
    value = float(f"{math.exp(sum(map(math.log, lr.values())) / len(lr)):.3g}")
    tasks = ", ".join(f"{t} {m:.3g}" for t, m in sorted(lr.items()))
    how = "" if len(lr) == 1 else ", the geometric mean of"
    return value, f"on {where}{how} ({tasks})"
