"""Which search settings find the most? Settings compared over several search seeds.

A search's best is the best of many noisy measurements on its own training seeds,
so its search fitness flatters settings that try more programs. Each search's best
is therefore trained again on seeds no search used (10, 11, 12), at its best
learning rate of the wide grid, against the warm start calibrated the same way on
those seeds: the *re-test* fitness, which is what a setting is judged by. Each
setting runs with the same search seeds, tasks and evaluation budget, evolution
from the AdamW warm start, serial executor; the searches run ``--jobs`` at a time
in separate processes (the figures are fitnesses, not times: running them side by
side changes only the wall time).

    python benchmarks/bench_dynamics.py                      # the built-in comparison
    python benchmarks/bench_dynamics.py --seeds 3 --evals 150 \\
        --setting default --setting T4 tournament=4         # your own

``--setting NAME FIELD=VALUE ...`` (repeatable) names a setting and the
:class:`~search.config.SearchConfig` fields it changes (JSON values; dotted names
for nested fields, e.g. ``mutation.perturb_constant=0.5``); the first setting is
the reference. Prints per run the search fitness, the re-test fitness, the rounds,
the fresh evaluations and the cache hits; per setting the mean and standard error
over search seeds of both fitnesses and the difference from the reference. Last
line: ``best_setting_retest_gain: X``, the best setting's mean re-test fitness
minus the reference's (0 when the reference is best).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.stats import mean_se  # noqa: E402

#: The comparison run without ``--setting``: the defaults, then one change at a time.
SETTINGS: dict[str, dict] = {
    "default": {},
    "P64": {"population": 64},
    "T4": {"tournament": 4},
    "plateau80": {"plateau": 80},
    "restarts1": {"restarts": 1},
    "perturb0.5": {"mutation.perturb_constant": 0.5},
}
RETEST_SEEDS = (10, 11, 12)


def config_fields(base: dict, changes: dict) -> dict:
    """``base`` with ``changes`` applied; a dotted name sets a nested field."""
    fields = json.loads(json.dumps(base))
    for key, value in changes.items():
        *path, last = key.split(".")
        node = fields
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return fields


def one_search(name: str, seed: int, fields: dict, out: str) -> dict:
    """Run one search and re-test its best; the figures as a plain dict."""
    from evaluators.evaluate import evaluate_all
    from evaluators.fitness import FAILED
    from evaluators.grid import WIDE
    from search.config import SearchConfig
    from search.executor import make_executor
    from search.loop import Search
    from search.rundir import RunDir

    cfg = SearchConfig.model_validate(config_fields(fields, {"seed": seed}))
    run = RunDir.create(Path(out) / f"{name}-seed{seed}", cfg)
    start = time.perf_counter()
    Search.open(cfg, run).run_until_done(make_executor(cfg))
    searched = time.perf_counter() - start
    records = list(run.history())
    fresh = [r for r in records if not r["cached"]]
    best = run.best()
    _, retest = evaluate_all(best.program, cfg.tasks, RETEST_SEEDS, lr_grid=WIDE)
    return {
        "setting": name, "seed": seed, "search": best.fitness,
        "retest": retest if retest > FAILED else None, "best_id": best.id,
        "best_source": best.program.to_source(), "rounds": max(r["round"] for r in records) + 1,
        "evaluations": len(records), "fresh": len(fresh),
        "failed": sum(1 for r in fresh if r["fitness"] is not None and r["fitness"] <= FAILED),
        "search_s": searched, "retest_s": time.perf_counter() - start - searched,
    }


def parse_settings(items: list[list[str]] | None) -> dict[str, dict]:
    """``--setting NAME FIELD=VALUE ...`` items as {name: {field: value}} (JSON values,
    else strings); the built-in comparison without any. ValueError names a bad item."""
    if not items:
        return dict(SETTINGS)
    settings = {}
    for name, *assignments in items:
        if name in settings:
            raise ValueError(f"--setting {name} is named twice")
        changes = {}
        for item in assignments:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ValueError(f"--setting {name}: {item!r} is not FIELD=VALUE")
            try:
                changes[key] = json.loads(value)
            except json.JSONDecodeError:
                changes[key] = value
        settings[name] = changes
    return settings


def summarize(rows: list[dict], names: list[str]) -> dict[str, dict[str, float]]:
    """Per setting: the mean and standard error over search seeds of the search and
    re-test fitnesses, of the re-test's difference from the first setting's with the
    same search seed, and the mean number of rounds. A best that fails on the unseen
    seeds counts as 0 (the warm start): it is no better."""
    def retests(name: str) -> dict[int, float]:
        return {r["seed"]: r["retest"] or 0.0 for r in rows if r["setting"] == name}

    reference = retests(names[0])
    out = {}
    for name in names:
        mine = [r for r in rows if r["setting"] == name]
        mine_retest = retests(name)
        s = out[name] = {}
        s["search"], s["search_se"] = mean_se([r["search"] for r in mine])
        s["retest"], s["retest_se"] = mean_se(list(mine_retest.values()))
        s["gain"], s["gain_se"] = mean_se([v - reference[seed] for seed, v in mine_retest.items()])
        s["rounds"] = sum(r["rounds"] for r in mine) / len(mine)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--setting", nargs="+", action="append", metavar=("NAME", "FIELD=VALUE"),
                    help="a setting to compare (repeatable; the first is the reference)")
    ap.add_argument("--seeds", type=int, default=4, help="search seeds per setting")
    ap.add_argument("--first-seed", type=int, default=0,
                    help="the first search seed (to add seeds to an earlier comparison)")
    ap.add_argument("--evals", type=int, default=200, help="evaluations per search")
    ap.add_argument("--tasks", nargs="+", default=["mlp_mnist1d/A"],
                    help="the searches' tasks")
    ap.add_argument("--jobs", type=int, default=2, help="searches run at once")
    ap.add_argument("--out", help="where the runs go (default: a temporary folder)")
    args = ap.parse_args()
    if args.seeds < 1 or args.first_seed < 0 or args.evals < 1 or args.jobs < 1:
        ap.error("--seeds, --evals and --jobs must be at least 1, --first-seed at least 0")
    try:
        settings = parse_settings(args.setting)
    except ValueError as e:
        ap.error(str(e))
    from search.config import SearchConfig  # checks every setting before anything runs

    base = {"tasks": args.tasks, "executor": "serial", "max_evals": args.evals}
    for name, changes in settings.items():
        try:
            SearchConfig.model_validate(config_fields(base, changes))
        except ValueError as e:
            ap.error(f"--setting {name}: {e}")
    out = Path(args.out or tempfile.mkdtemp(prefix="bench-dynamics-"))
    print(f"{len(settings)} settings x {args.seeds} search seeds (from {args.first_seed}), "
          f"{args.evals} evaluations "
          f"each on {', '.join(args.tasks)}; runs in {out}", flush=True)
    start = time.perf_counter()
    rows: list[dict] = []
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        futures = [pool.submit(one_search, name, seed, config_fields(base, changes), str(out))
                   for seed in seeds for name, changes in settings.items()]
        for future in futures:
            r = future.result()
            rows.append(r)
            retest = "failed" if r["retest"] is None else f"{r['retest']:+.4f}"
            print(f"  {r['setting']:<12} seed {r['seed']}: search {r['search']:+.4f}, re-test "
                  f"{retest}, {r['rounds']} rounds, {r['fresh']} fresh of {r['evaluations']} "
                  f"({r['failed']} failed), {r['search_s']:.0f} s + {r['retest_s']:.0f} s",
                  flush=True)
    print(f"\nall in {time.perf_counter() - start:.0f} s; mean ± standard error over "
          f"{args.seeds} search seeds; gain: re-test minus {next(iter(settings))}'s, same seed")
    print(f"{'setting':<12} {'search':>16} {'re-test':>16} {'gain':>16} {'rounds':>7}")
    stats = summarize(rows, list(settings))
    for name, s in stats.items():
        print(f"{name:<12} {s['search']:+8.4f} ±{s['search_se']:.4f} {s['retest']:+8.4f} "
              f"±{s['retest_se']:.4f} {s['gain']:+8.4f} ±{s['gain_se']:.4f} {s['rounds']:7.1f}")
    (out / "results.json").write_text(json.dumps({"rows": rows, "settings": settings,
                                                  "summary": stats}, indent=1))
    best = max(stats, key=lambda name: stats[name]["retest"])
    print(f"best_setting_retest_gain: {stats[best]['gain']:.4f}")


if __name__ == "__main__":
    main()
