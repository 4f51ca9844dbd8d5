"""Can the search find a known optimizer it was not given? Leave one out, search, look.

A target library optimizer T (``--target``: ``muon`` by default, ``lion`` the second)
is removed from everything the search is handed: from the warm starts, and from the
fragments it may splice in (T's own and any holding a function of T's that AdamW
lacks: ``mutation.fragment_exclude``); the function set stays whole, so a point
mutation can still insert T's distinguishing function (:data:`DISTINGUISHING`:
``newton_schulz`` for Muon, ``sign`` for Lion). Searches then run, over several
search seeds, on a task where tuned T beats tuned AdamW (checked and printed first),
judged against tuned AdamW as every search is, in two arms:

- ``default``: the search's defaults (the AdamW warm start alone, point mutations);
- ``structural``: fragments of the other library programs at weight 0.2 and the
  exploration rounds started in turn from AdamW and :data:`STARTS` (less T).

Per search seed and arm it reports whether the best program holds T's distinguishing
function live, the evaluations until the first program that does (and trained
without failing), and the best's fitness on the held-out task against tuned AdamW
and against tuned T (each tuned by the judge's protocol on the held-out seeds; the
program at its best learning rate of the wide grid). Last line: ``rediscovery_rate:
X``, the structural arm's fraction of search seeds whose best holds the function.

    python benchmarks/bench_rediscovery.py --quick      # 5 seeds x 2 arms, 400 evaluations
    python benchmarks/bench_rediscovery.py --target lion --search-seeds 10 --evals 600
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.stats import mean_se  # noqa: E402

#: What makes each target itself: the function a rediscovery must hold live.
DISTINGUISHING = {"muon": "newton_schulz", "lion": "sign"}
#: The other programs the structural arm's exploration rounds start from (T left out).
STARTS = ("momentum", "lion", "muon", "adafactor")
#: The held-out task and the seeds every best is judged on there (no search used them).
HELD_OUT, HELD_OUT_SEEDS = "autoencoder_digits/A", (2, 3, 4)


def arms(target: str) -> dict[str, dict]:
    """The two arms' config changes for ``target``."""
    starts = [s for s in STARTS if s != target]
    return {"default": {},
            "structural": {"mutation": {"fragment": 0.2, "fragment_exclude": [target]},
                           "warm_starts": starts, "restarts": 1 + len(starts)}}


def one_search(arm: str, seed: int, fields: dict, target: str, out: str, trials: int) -> dict:
    """One search and its best judged on the held-out task; the figures as a dict."""
    from dsl import graph, parse
    from evaluators.evaluate import evaluate
    from evaluators.fitness import FAILED
    from evaluators.grid import WIDE
    from evaluators.tuning import Protocol, tune
    from search.config import SearchConfig
    from search.executor import make_executor
    from search.funnel import compare
    from search.loop import Search
    from search.rundir import RunDir

    cfg = SearchConfig.model_validate(fields | {"seed": seed})
    run = RunDir.create(Path(out) / f"{arm}-seed{seed}", cfg)
    start = time.perf_counter()
    Search.open(cfg, run).run_until_done(make_executor(cfg))
    searched = time.perf_counter() - start
    function = DISTINGUISHING[target]
    fresh = first = 0
    for r in run.history():
        if r["cached"] or r.get("infra"):
            continue
        fresh += 1
        if (not first and r["fitness"] > FAILED
                and function in graph.live_ops(parse(r["source"]))):
            first = fresh
    best = run.best()
    holds = function in graph.live_ops(best.program)
    r = evaluate(best.program, HELD_OUT, HELD_OUT_SEEDS, lr_grid=WIDE, baseline_value=1.0)
    metrics = [] if r.failed else list(r.metrics)
    versus = {}
    for name in ("adamw", target):
        base = tune(name, HELD_OUT, HELD_OUT_SEEDS, Protocol(trials=trials))
        versus[name] = compare(metrics or [None], list(base.metrics))
    return {"arm": arm, "seed": seed, "search": best.fitness, "best_id": best.id,
            "holds": holds, "first": first or None, "fresh": fresh,
            "best_source": best.program.to_source(),
            "held_out": {k: v["fitness"] if v["fitness"] > FAILED else None
                         for k, v in versus.items()},
            "held_out_se": {k: v["stderr"] for k, v in versus.items()},
            "search_s": searched, "held_out_s": time.perf_counter() - start - searched}


def target_check(target: str, tasks: list[str], seeds: tuple[int, ...], protocol) -> list[str]:
    """Per search task, tuned T against tuned AdamW on the search seeds, in words."""
    from evaluators.tuning import tune
    from search.funnel import compare

    lines = []
    for task in tasks:
        a, t = tune("adamw", task, seeds, protocol), tune(target, task, seeds, protocol)
        c = compare(list(t.metrics), list(a.metrics))
        se = c["stderr"] or math.nan
        verdict = "beyond noise" if c["fitness"] > 2 * se else "NOT beyond noise"
        lines.append(f"{task}: tuned {target} {t.metric:.4g} vs tuned adamw {a.metric:.4g}: "
                     f"{c['fitness']:+.4f} ± {se:.4f} ({verdict})")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default="muon", choices=sorted(DISTINGUISHING))
    ap.add_argument("--search-seeds", type=int, default=5, help="search seeds per arm")
    ap.add_argument("--evals", type=int, default=400, help="evaluations per search")
    ap.add_argument("--tasks", nargs="+", default=["mlp_mnist1d/A"],
                    help="the searches' tasks (tuned T should beat tuned AdamW there)")
    ap.add_argument("--jobs", type=int, default=2, help="searches run at once")
    ap.add_argument("--trials", type=int, default=16,
                    help="the tuning protocol's trials for T and AdamW on the held-out task "
                         "and in the check (the searches' judge keeps the default)")
    ap.add_argument("--quick", action="store_true",
                    help="5 search seeds, 400 evaluations each (about 12 minutes on 2 cores)")
    ap.add_argument("--out", help="where the runs go (default: a temporary folder)")
    args = ap.parse_args()
    if args.quick:
        args.search_seeds, args.evals = 5, 400
    if args.search_seeds < 1 or args.evals < 2 or args.jobs < 1:
        ap.error("--search-seeds and --jobs must be at least 1, --evals at least 2")
    from evaluators.tuning import Protocol, tune

    protocol = Protocol(trials=args.trials)
    seeds = (0, 1)
    out = Path(args.out or tempfile.mkdtemp(prefix="bench-rediscovery-"))
    start = time.perf_counter()
    print(f"target {args.target} ({DISTINGUISHING[args.target]}), left out of the warm starts "
          f"and the fragments; {args.search_seeds} search seeds x 2 arms, {args.evals} "
          f"evaluations each on {', '.join(args.tasks)}; runs in {out}", flush=True)
    # the judges, tuned once here (cached per machine) before the searches share them
    for line in target_check(args.target, args.tasks, seeds, protocol):
        print(f"  {line}", flush=True)
    for name in ("adamw", args.target):
        tune(name, HELD_OUT, HELD_OUT_SEEDS, protocol)
    base = {"tasks": args.tasks, "seeds": list(seeds), "executor": "serial",
            "max_evals": args.evals}
    rows: list[dict] = []
    settings = arms(args.target)
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(one_search, arm, seed, base | changes, args.target, str(out),
                               args.trials)
                   for seed in range(args.search_seeds) for arm, changes in settings.items()]
        for future in futures:
            r = future.result()
            rows.append(r)
            held = ", ".join(f"vs {k} {'failed' if v is None else f'{v:+.4f}'}"
                             for k, v in r["held_out"].items())
            print(f"  {r['arm']:<10} seed {r['seed']}: best {r['best_id']} search "
                  f"{r['search']:+.4f}, holds {DISTINGUISHING[args.target]}: "
                  f"{'yes' if r['holds'] else 'no'}, first such program after "
                  f"{r['first'] or '-'} of {r['fresh']} evaluations; held out {held} "
                  f"({r['search_s']:.0f} s + {r['held_out_s']:.0f} s)", flush=True)
    print(f"\nall in {time.perf_counter() - start:.0f} s; held-out fitness: log(tuned metric / "
          f"the best's metric) on {HELD_OUT}, seeds {HELD_OUT_SEEDS}, mean ± standard error "
          "over search seeds (a best that fails there counts as -inf: left out, counted)")
    print(f"{'arm':<11} {'holds':>6} {'found one':>9} {'first (median)':>15} "
          f"{'vs adamw':>18} {f'vs {args.target}':>18}")
    rate = 0.0
    for arm in settings:
        mine = [r for r in rows if r["arm"] == arm]
        holds = sum(r["holds"] for r in mine) / len(mine)
        found = [r["first"] for r in mine if r["first"]]
        median = sorted(found)[len(found) // 2] if found else None
        cells = []
        for name in ("adamw", args.target):
            values = [r["held_out"][name] for r in mine if r["held_out"][name] is not None]
            m, se = mean_se(values) if values else (math.nan, math.nan)
            cells.append(f"{m:+.4f} ±{se:.4f}")
        print(f"{arm:<11} {holds:>6.0%} {len(found):>5}/{len(mine):<3} {median or '-':>15} "
              f"{cells[0]:>18} {cells[1]:>18}")
        if arm == "structural":
            rate = holds
    (out / "results.json").write_text(json.dumps({"rows": rows, "arms": settings}, indent=1))
    print(f"rediscovery_rate: {rate:.2f}")


if __name__ == "__main__":
    main()
