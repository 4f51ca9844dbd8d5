"""The funnel: the search's best programs, verified on larger tasks and held-out ones.

The top ``k`` distinct programs of a run (by search fitness, one per
fingerprint, failures excluded) are evaluated on tier B of the search's task
families; those that beat the AdamW warm start on B by ``margin`` go on to tier
C; every finalist is also scored on held-out meta-validation tasks the search
never trained on. The table is written to ``funnel.json`` in the run directory.

Evaluation is passed in (``evaluate(program, tasks) -> (fitness, per-task)``):
search/ never trains.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from dsl import Program, parse
from search.evolution import FAILED
from search.rundir import RunDir

Evaluate = Callable[[Program, list[str]], tuple[float, dict[str, float]]]


def top_programs(run: RunDir, k: int) -> list[dict[str, Any]]:
    """The ``k`` best distinct programs of a run's history (not failed, not cached copies)."""
    best: dict[str, dict[str, Any]] = {}
    for rec in run.history():
        if rec["cached"] or rec["fitness"] <= FAILED:
            continue
        kept = best.get(rec["fingerprint"])
        if kept is None or rec["fitness"] > kept["fitness"]:
            best[rec["fingerprint"]] = rec
    return sorted(best.values(), key=lambda r: (-r["fitness"], r["id"]))[:k]


def tier(tasks: list[str], letter: str) -> list[str]:
    """The same task families at another tier."""
    return list(dict.fromkeys(f"{t.split('/')[0]}/{letter}" for t in tasks))


def funnel(run: RunDir, evaluate: Evaluate, *, k: int = 3, margin: float = 0.0,
           held_out: list[str] | None = None,
           progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Run the funnel and write ``funnel.json``; return its rows, best first."""
    cfg = run.config()
    tier_b, tier_c = tier(cfg.tasks, "B"), tier(cfg.tasks, "C")
    held_out = held_out if held_out is not None else ["cnn_digits/A"]
    rows = []
    for rec in top_programs(run, k):
        program = parse(rec["source"])
        row: dict[str, Any] = {"id": rec["id"], "source": rec["source"],
                               "search_fitness": rec["fitness"], "tiers": {}}
        for name, tasks in (("B", tier_b), ("held_out", held_out)):
            fitness, per_task = evaluate(program, tasks)
            row["tiers"][name] = {"fitness": fitness, "tasks": per_task}
            if progress:
                progress(f"program {rec['id']}: {name} fitness {fitness:+.4f}")
        row["passed_B"] = row["tiers"]["B"]["fitness"] > margin
        if row["passed_B"]:
            fitness, per_task = evaluate(program, tier_c)
            row["tiers"]["C"] = {"fitness": fitness, "tasks": per_task}
            if progress:
                progress(f"program {rec['id']}: C fitness {fitness:+.4f}")
        row["passed_C"] = row["passed_B"] and row["tiers"]["C"]["fitness"] > margin
        rows.append(row)
    path = run.path / "funnel.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"margin": margin, "tier_B": tier_b, "tier_C": tier_c,
                               "held_out": held_out, "rows": rows}, indent=2))
    tmp.replace(path)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The funnel as text: one line per program."""
    lines = [f"{'id':>6} {'search':>9} {'B':>9} {'C':>9} {'held out':>9}  passed"]

    def f(row, key):
        t = row["tiers"].get(key)
        return f"{t['fitness']:+9.4f}" if t else f"{'-':>9}"

    for row in rows:
        passed = "C" if row["passed_C"] else "B" if row["passed_B"] else "-"
        lines.append(f"{row['id']:>6} {row['search_fitness']:+9.4f} {f(row, 'B')} "
                     f"{f(row, 'C')} {f(row, 'held_out')}  {passed}")
    return "\n".join(lines)
