"""The task-suite report: do the proxy tasks separate optimizers, and do tiers agree?

For each task, classical and modern optimizers (SGD with momentum, AdamW, Lion,
Adafactor, Adan, Muon) are each tuned by learning-rate calibration and trained on ``--seeds`` seeds:

- **noise**: the seed noise, the standard deviation over seeds of the log metric,
  pooled over the optimizers (root mean square of each one's);
- **spread**: the range of the tuned optimizers' mean log metric (best to worst);
- **SNR**: spread / noise, the number of single-seed standard deviations between
  the best and the worst tuned optimizer (a 2-seed search sees noise/sqrt(2));
- **time**: one evaluation as the search runs it (2 seeds, one multiplier,
  compiled beforehand), and its compilation.

Tier A tasks are calibrated by the wide grid (``evaluators.grid.WIDE``); other tiers
by a 3-point grid half a decade apart around the optimizer's tier-A multiplier,
pushed past an edge and refined once (what the funnel's wide grid would find, at a
fraction of its cost).

Then about ``--programs`` programs (the library's and mutants of the warm start)
are each calibrated on 2 seeds (the wide grid on tier A and the held-out tasks; on
tier B 3 points around the program's tier-A multiplier, pushed past an edge, not
refined) and ranked; the Spearman correlation of their
ranks is printed for tier A -> tier B of each search family and for the search
tasks (mean log metric over them) -> the held-out tasks. A program that diverges
at every multiplier ranks last.

    python benchmarks/bench_tasks.py [--seeds 5] [--programs 30] [--tasks ...]
                                     [--optimizers ...] [--corr-tiers B] [--out F.json]
                                     [--task-modules my_tasks.py]

Last line: ``min_task_signal_to_noise: X`` (over the tasks of the report).
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

from dsl import abstract, library
from evaluators import evaluate, tasks
from evaluators.catalog import DEFAULT_HELD_OUT
from evaluators.engine import run_engine
from evaluators.grid import WIDE, LrGrid
from search.config import MutationConfig
from search.mutation import mutate

OPTIMIZERS = ("momentum", "adamw", "lion", "adafactor", "adan", "muon")
SEARCH_TASKS = ("mlp_mnist1d/A", "transformer_lm/A")


def grid_for(task: str, tier_a_lr: float | None, refine: int = 1) -> LrGrid:
    """WIDE on tier A (or without a tier-A result); else 3 points around it."""
    if tier_a_lr is None:
        return WIDE
    return LrGrid(centre=tier_a_lr, points=3, ratio=10 ** 0.5, extend=2, refine=refine)


def log_metrics(result) -> np.ndarray | None:
    """Per-seed log metrics, None if a seed failed."""
    if result.failed or any(m is None for m in result.metrics):
        return None
    return np.log(np.asarray(result.metrics, float))


def eval_time(task: str) -> tuple[float, float]:
    """(seconds of one compiled 2-seed run of the warm start, seconds compiling it)."""
    start = time.perf_counter()
    run_engine(library.get("warmstart"), tasks.get(task), (0, 1))
    first = time.perf_counter() - start
    start = time.perf_counter()
    run_engine(library.get("warmstart"), tasks.get(task), (0, 1))
    run = time.perf_counter() - start
    return run, max(0.0, first - run)


def task_report(task: str, optimizers: tuple[str, ...], seeds: tuple[int, ...],
                tier_a: dict[str, float]) -> dict:
    """Noise, spread and SNR of the tuned ``optimizers`` on ``task``."""
    rows = {}
    for name in optimizers:
        r = evaluate(library.get(name), task, seeds, lr_grid=grid_for(task, tier_a.get(name)),
                     baseline_value=1.0)
        logs = log_metrics(r)
        rows[name] = {"lr": r.lr_multiplier, "at_edge": r.lr_at_edge,
                      "mean_log": None if logs is None else float(logs.mean()),
                      "std_log": None if logs is None else float(logs.std(ddof=1)),
                      "metric": None if logs is None else float(np.exp(logs).mean())}
    ok = [row for row in rows.values() if row["mean_log"] is not None]
    noise = math.sqrt(np.mean([row["std_log"] ** 2 for row in ok])) if ok else math.nan
    spread = (max(row["mean_log"] for row in ok) - min(row["mean_log"] for row in ok)
              if len(ok) > 1 else 0.0)
    run, compile_s = eval_time(task)
    return {"task": task, "optimizers": rows, "noise": noise, "spread": spread,
            "snr": spread / noise if noise > 0 else math.inf, "eval_s": run,
            "compile_s": compile_s}


def programs(n: int, seed: int = 0) -> list[tuple[str, object]]:
    """The library's programs, then distinct valid mutants of the warm start, ``n`` in all."""
    out = [(name, library.get(name)) for name in library.names()][:n]
    seen = {abstract.structural_hash(p) for _, p in out}
    rng, cfg = np.random.default_rng(seed), MutationConfig()
    warm = library.get("warmstart")
    parent = warm
    while len(out) < n:
        child, _ = mutate(parent, rng, cfg)
        parent = child if rng.random() < 0.5 else warm  # some chains of two mutations
        h = abstract.structural_hash(child)
        if h not in seen:
            seen.add(h)
            out.append((f"mutant{len(out)}", child))
    return out


def ranks(values: list[float]) -> np.ndarray:
    """Average ranks (1 = smallest), ties shared, +inf last."""
    v = np.asarray(values, float)
    order = np.argsort(v, kind="stable")
    r = np.empty(len(v))
    r[order] = np.arange(1, len(v) + 1)
    for x in np.unique(v):
        same = v == x
        r[same] = r[same].mean()
    return r


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation of two score lists (ties and +inf handled by rank)."""
    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = math.sqrt(float((ra**2).sum() * (rb**2).sum()))
    return float((ra * rb).sum() / den) if den > 0 else math.nan


def program_scores(progs, task: str, tier_a_lrs: dict[str, float] | None,
                   seeds: tuple[int, ...]) -> tuple[list[float], dict[str, float]]:
    """Each program's mean log metric on ``task`` (inf if it failed) and its multiplier."""
    scores, lrs = [], {}
    for name, p in progs:
        centre = None if tier_a_lrs is None else tier_a_lrs.get(name)
        r = evaluate(p, task, seeds, lr_grid=grid_for(task, centre, refine=0),
                     baseline_value=1.0)
        logs = log_metrics(r)
        scores.append(math.inf if logs is None else float(logs.mean()))
        if logs is not None:
            lrs[name] = r.lr_multiplier
    return scores, lrs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5, help="seeds per optimizer and task (>= 3)")
    ap.add_argument("--tasks", nargs="+", default=None,
                    help="tasks of the noise report (default: the search's tier-A tasks, "
                    "their tier B, and the held-out tasks)")
    ap.add_argument("--optimizers", nargs="+", default=list(OPTIMIZERS))
    ap.add_argument("--programs", type=int, default=30, help="programs ranked (0: no ranking)")
    ap.add_argument("--search-tasks", nargs="+", default=list(SEARCH_TASKS),
                    help="tier-A tasks whose tier B and held-out agreement is measured")
    ap.add_argument("--held-out", nargs="+", default=list(DEFAULT_HELD_OUT),
                    help="held-out tasks the search tasks' ranking is compared with")
    ap.add_argument("--corr-tiers", nargs="+", default=["B"], help="tiers ranked against A")
    ap.add_argument("--task-modules", nargs="+", default=[],
                    help="modules or .py files registering your own tasks (see docs/guide.md)")
    ap.add_argument("--out", help="also write the report as JSON here")
    args = ap.parse_args()
    if args.seeds < 3:
        ap.error(f"--seeds must be at least 3 to estimate noise, got {args.seeds}")
    tasks.load_modules(args.task_modules)
    held = list(args.held_out)
    names = args.tasks or [*args.search_tasks,
                           *(t.replace("/A", f"/{x}") for x in args.corr_tiers
                             for t in args.search_tasks),
                           *(n for n in tasks.held_out() if n.endswith("/A"))]
    seeds = tuple(range(args.seeds))
    report: dict = {"seeds": list(seeds), "tasks": [], "correlations": {}}
    tier_a: dict[str, dict[str, float]] = {}
    print(f"{'task':<24} {'noise':>7} {'spread':>7} {'SNR':>6} {'eval s':>7} {'compile s':>9}  "
          f"tuned optimizers: mean metric at lr multiplier")
    for name in sorted(names, key=lambda n: n.split("/")[1]):  # tier A first
        family, _, tier = name.partition("/")
        known = tier_a.get(family, {}) if tier != "A" else {}
        row = task_report(name, tuple(args.optimizers), seeds, known)
        if tier == "A":
            tier_a[family] = {k: v["lr"] for k, v in row["optimizers"].items()
                              if v["mean_log"] is not None}
        report["tasks"].append(row)
        tuned = ", ".join(f"{k} {v['metric']:.4g}@{v['lr']:.3g}{'(edge)' if v['at_edge'] else ''}"
                          if v["metric"] is not None else f"{k} failed"
                          for k, v in row["optimizers"].items())
        print(f"{name:<24} {row['noise']:7.4f} {row['spread']:7.4f} {row['snr']:6.1f} "
              f"{row['eval_s']:7.2f} {row['compile_s']:9.2f}  {tuned}", flush=True)
    if args.programs:
        progs = programs(args.programs)
        two = (0, 1)
        a_scores, a_lrs = {}, {}
        for task in [*args.search_tasks, *held]:
            a_scores[task], a_lrs[task] = program_scores(progs, task, None, two)
        for task in args.search_tasks:
            for letter in args.corr_tiers:
                other = task.replace("/A", f"/{letter}")
                b_scores, _ = program_scores(progs, other, a_lrs[task], two)
                rho = spearman(a_scores[task], b_scores)
                report["correlations"][f"{task} -> {other}"] = rho
                print(f"spearman {task} -> {other}: {rho:.3f} ({len(progs)} programs)",
                      flush=True)
        search_mean = np.mean([a_scores[t] for t in args.search_tasks], axis=0)
        for task in held:
            rho = spearman(list(search_mean), a_scores[task])
            report["correlations"][f"search tasks -> {task}"] = rho
            print(f"spearman search tasks -> {task}: {rho:.3f} ({len(progs)} programs)")
        report["programs"] = {name: {t: s[i] for t, s in a_scores.items()}
                              for i, (name, _) in enumerate(progs)}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1, default=float)
    print(f"min_task_signal_to_noise: {min(r['snr'] for r in report['tasks']):.2f}")


if __name__ == "__main__":
    main()
