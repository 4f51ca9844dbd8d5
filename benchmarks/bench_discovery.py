"""Does evolution discover anything? The Lion paper's comparison, judged honestly.

Three methods search from the same warm start with the same evaluation budget,
the same search seed and the same learning-rate calibration (each program at its
best learning rate around its parent's), judged as every search is (against AdamW
tuned on its learning rate, betas and weight decay: ``SearchConfig.judge``):
regularized evolution, constants only (mutating the warm start's constants:
hyperparameter tuning) and random programs. Each method's best program then goes
through the funnel: trained at its best learning rate (the wide grid) on seeds
no search used, on tier B of the search's families and on the held-out tasks,
against AdamW, Lion and SGD with momentum, each tuned on all its hyperparameters
on those seeds (``evaluators.tuning``; ``--trials`` sets the budget). At this judge a
known optimizer with other constants scores at most about 0, so constants-only
tuning's held-out figure should be about 0, and only a new structure can score above.

    python benchmarks/bench_discovery.py --quick     # 15 minutes on 2 cores
    python benchmarks/bench_discovery.py             # the default search's tasks and budget

``--quick`` searches ``mlp_mnist1d/A`` only (150 evaluations per method, serial)
and funnels on ``mlp_mnist1d/B`` and the default held-out tasks
(``evaluators.catalog.DEFAULT_HELD_OUT``); the full mode searches the default tasks
(``mlp_mnist1d/A``, ``transformer_lm/A``) for 600 evaluations per method on Ray and
funnels on their tier B and the same held-out tasks. Runs are kept under ``--out``.

Prints, per method: the search fitness (against the search's judge, on its own
seeds), what its best is (the warm start or a library program with other
constants, or a new structure), and for each funnel task the fitness against the
best tuned baseline with its standard error and the verdict.
``--search-seeds N`` repeats the whole comparison for N search seeds from ``--seed``
and adds each figure's mean ± standard error over them (the search's own noise,
which one seed hides; one seed's held-out figure moved by 0.25 between seeds 0 and 1),
evolution minus constants-only paired by search seed, and how many bests are new
structures. Last line: ``evolution_minus_constants_heldout: X``, the paired mean
over search seeds of evolution's held-out fitness minus constants-only's (both
against the best tuned baseline of each held-out task). ``--methods`` and
``--set FIELD=VALUE`` (any search setting, for every method) compare search
dynamics; the last line then names the first two methods.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.stats import mean_se  # noqa: E402
from evaluators.catalog import DEFAULT_HELD_OUT  # noqa: E402
from evaluators.evaluate import train_runs  # noqa: E402
from evaluators.grid import WIDE  # noqa: E402
from evaluators.tuning import Protocol, tune, tuned_run  # noqa: E402
from search.config import SearchConfig  # noqa: E402
from search.executor import make_executor  # noqa: E402
from search.funnel import funnel  # noqa: E402
from search.loop import Search  # noqa: E402
from search.rundir import RunDir  # noqa: E402

METHODS = ("evolution", "constants", "random")


def search(method: str, out: Path, **fields) -> RunDir:
    cfg = SearchConfig(method=method, **fields)
    run = RunDir.create(out / method, cfg)
    start = time.perf_counter()
    searcher = Search.open(cfg, run)
    shown = [0]
    step = max(1, cfg.max_evals // 10)

    def progress(stats) -> None:  # a line every tenth of the budget: full runs take an hour
        if stats.evaluated >= shown[0] + step:
            shown[0] = stats.evaluated - stats.evaluated % step
            best = "none yet" if stats.best is None else f"{stats.best:+.4f}"
            print(f"  {method}: {stats.evaluated}/{cfg.max_evals} evaluations, "
                  f"{stats.elapsed:.0f} s, best {best}", flush=True)

    searcher.run_until_done(make_executor(cfg), progress)
    best = run.best()
    print(f"{method}: {searcher.evaluated} evaluations in {time.perf_counter() - start:.0f} s, "
          f"best search fitness {best.fitness:+.4f} (program {best.id})", flush=True)
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="the 15-minute version")
    ap.add_argument("--evals", type=int, help="evaluations per method (default 150 quick, "
                    "600 full)")
    ap.add_argument("--seed", type=int, default=0, help="the searches' seed (the first)")
    ap.add_argument("--search-seeds", type=int, default=1,
                    help="search seeds to run, from --seed (then a summary over them)")
    ap.add_argument("--tasks", nargs="+", help="the searches' tasks (default: mlp_mnist1d/A "
                    "quick, the default search's otherwise)")
    ap.add_argument("--out", help="where the runs go (default: a temporary folder)")
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS),
                    help="which methods to run (evolution first: the last line is its)")
    ap.add_argument("--trials", type=int, default=16,
                    help="the funnel baselines' tuning budget (evaluators.tuning.Protocol)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="a SearchConfig field for every method, e.g. population=64 (JSON "
                         "values); repeatable, to compare search dynamics")
    args = ap.parse_args()
    if args.search_seeds < 1:
        ap.error(f"--search-seeds must be at least 1, got {args.search_seeds}")
    out = Path(args.out or tempfile.mkdtemp(prefix="bench-discovery-"))
    if args.quick:
        fields = {"tasks": ["mlp_mnist1d/A"], "executor": "serial",
                  "max_evals": args.evals or 150}
    else:
        fields = {"max_evals": args.evals or 600}
    fields |= {"seed": args.seed, "plateau": 40}
    if args.tasks:
        fields["tasks"] = args.tasks
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            fields[key] = json.loads(value)
        except json.JSONDecodeError:
            fields[key] = value
    held_out = list(DEFAULT_HELD_OUT)
    seeds = (10, 11, 12)  # no search trains on them

    trained: dict[tuple[str, str], dict] = {}  # the baselines, trained once for all methods

    def train(program, task_names):
        for task in task_names:
            key = (program.to_source(), task)
            if key not in trained:
                trained[key] = train_runs(program, [task], seeds, WIDE)[task]
        return {task: trained[(program.to_source(), task)] for task in task_names}

    protocol = Protocol(trials=args.trials)

    def tuned(name, task_names):  # per machine: once for every method and search seed
        runs = {}
        for task in task_names:
            t = tune(name, task, seeds, protocol)
            runs[task] = tuned_run(t)
        return runs

    per_seed: list[dict[str, tuple]] = []  # per search seed: method -> (best, funnel row)
    for k in range(args.search_seeds):
        fields["seed"] = args.seed + k
        where = out if args.search_seeds == 1 else out / f"seed{args.seed + k}"
        results = {}
        for method in args.methods:
            run = search(method, where, **fields)
            rows = funnel(run, train, k=1, held_out=held_out, seeds=seeds,
                          grid=f"{WIDE.label()}; baselines {protocol.label()}",
                          tiers_run=("B", "held_out"), tune=tuned)
            best = run.best()
            results[method] = (best, rows[0], run.identify(best))
        per_seed.append(results)
        report(results, f"search seed {args.seed + k}")
    if args.search_seeds > 1:
        summary(per_seed, args.methods)
    print(f"runs kept in {out}")
    first, second = (args.methods + args.methods)[:2]
    diffs = [results[first][1]["tiers"]["held_out"]["fitness"]
             - results[second][1]["tiers"]["held_out"]["fitness"] for results in per_seed]
    print(f"{first}_minus_{second}_heldout: {sum(diffs) / len(diffs):.4f}")


def report(results: dict[str, tuple], title: str) -> None:
    """One search seed's table and best programs."""
    print()
    print(f"{title}: {'method':<10} {'search':>8}  task: fitness against the best tuned "
          "baseline (AdamW, Lion, SGD momentum), ± standard error over 3 unseen seeds")
    for method, (best, row, _) in results.items():
        cells = []
        for tier in ("B", "held_out"):
            for task, t in row["tiers"][tier]["tasks"].items():
                se = "" if t["stderr"] is None else f"±{t['stderr']:.3f}"
                cells.append(f"{task} {t['fitness']:+.3f}{se} ({t['verdict']}, lr "
                             f"x{t['lr_multiplier']:.3g})")
        print(f"{method:<10} {best.fitness:+8.4f}  " + "; ".join(cells))
    for method, (best, _, identity) in results.items():
        print(f"{method} best program (id {best.id}: {identity.describe()}):")
        print("  " + best.program.to_source().replace("\n", "\n  ").rstrip())


def summary(per_seed: list[dict[str, tuple]], methods: list[str]) -> None:
    """Per method, each figure's mean ± standard error over the search seeds: the
    noise of the search itself, which one search seed does not show."""
    print()
    print(f"over {len(per_seed)} search seeds (mean ± standard error): method, search "
          "fitness, then per task the fitness against the best tuned baseline")
    for method in methods:
        rows = [results[method] for results in per_seed]
        cells = ["search {:+.4f} ±{:.4f}".format(*mean_se([r[0].fitness for r in rows]))]
        for tier in ("B", "held_out"):
            for task in rows[0][1]["tiers"][tier]["tasks"]:
                m, se = mean_se([r[1]["tiers"][tier]["tasks"][task]["fitness"] for r in rows])
                cells.append(f"{task} {m:+.3f} ±{se:.3f}")
        new = sum(r[2].kind == "new" for r in rows if len(r) > 2)
        print(f"{method:<10} " + "; ".join(cells)
              + (f"; new structures {new}/{len(rows)}" if len(rows[0]) > 2 else ""))
    if len(methods) > 1:
        first, second = methods[:2]
        for tier in ("B", "held_out"):
            for task in per_seed[0][first][1]["tiers"][tier]["tasks"]:
                m, se = mean_se([r[first][1]["tiers"][tier]["tasks"][task]["fitness"]
                                 - r[second][1]["tiers"][tier]["tasks"][task]["fitness"]
                                 for r in per_seed])
                print(f"{first} minus {second}, paired by search seed: {task} {m:+.3f} "
                      f"±{se:.3f}")


if __name__ == "__main__":
    main()
