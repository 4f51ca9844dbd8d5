"""The funnel: the search's best programs, verified on larger tasks and held-out ones.

The top ``k`` distinct programs of a run (by search fitness, one per
fingerprint, failures excluded) are evaluated on tier B of the search's task
families; those that beat the AdamW warm start on B by ``margin`` go on to tier
C; every finalist is also scored on held-out meta-validation tasks the search
never trained on. Every fitness is against the AdamW warm start at its own
fixed settings on the same task and seeds (``log(AdamW metric / metric)``).

``funnel.json`` in the run directory is rewritten (atomically) after each tier
of each program, so an interrupted funnel resumes where it stopped: a tier
already in the file for the same tasks is not run again.

Evaluation is passed in (``evaluate(program, tasks) -> (fitness, per-task)``):
search/ never trains.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from dsl import Program
from search.evolution import FAILED
from search.rundir import RunDir

Evaluate = Callable[[Program, list[str]], tuple[float, dict[str, float]]]


def top_programs(run: RunDir, k: int) -> list[dict[str, Any]]:
    """The history records of :meth:`RunDir.top` (distinct, not failed, best first)."""
    return [found.record for found in run.top(k)]


def tier(tasks: list[str], letter: str) -> list[str]:
    """The same task families at another tier."""
    return list(dict.fromkeys(f"{t.split('/')[0]}/{letter}" for t in tasks))


def funnel(run: RunDir, evaluate: Evaluate, *, k: int = 3, margin: float = 0.0,
           held_out: list[str] | None = None,
           progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Run the funnel, resuming ``funnel.json``; return its rows, best first."""
    cfg = run.config()
    tiers = {"B": tier(cfg.tasks, "B"), "held_out": held_out if held_out is not None
             else ["cnn_digits/A"], "C": tier(cfg.tasks, "C")}
    path = run.path / "funnel.json"
    done = _previous_rows(path, tiers)
    rows: list[dict[str, Any]] = []

    def save() -> None:
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"margin": margin, "tier_B": tiers["B"],
                                   "tier_C": tiers["C"], "held_out": tiers["held_out"],
                                   "rows": rows + [r for i, r in done.items()
                                                   if i not in {x["id"] for x in rows}]},
                                  indent=2))
        tmp.replace(path)

    chosen = run.top(k)
    for n, found in enumerate(chosen, start=1):
        row = done.get(found.id) or {"id": found.id, "source": found.record["source"],
                                     "search_fitness": found.fitness, "tiers": {}}
        rows.append(row)
        for name in ("B", "held_out", "C"):
            if name == "C" and not row["tiers"]["B"]["fitness"] > margin:
                break
            if name in row["tiers"]:
                if progress:
                    progress(f"program {found.id} ({n}/{len(chosen)}): {name} "
                             f"{row['tiers'][name]['fitness']:+.4f} (from funnel.json)")
                continue
            if progress:
                progress(f"program {found.id} ({n}/{len(chosen)}): tier {name} "
                         f"({', '.join(tiers[name])})")
            fitness, per_task = evaluate(found.program, tiers[name])
            row["tiers"][name] = {"fitness": fitness, "tasks": per_task}
            if progress:
                progress(f"program {found.id}: {name} fitness {fitness:+.4f}")
            _passed(row, margin)
            save()
        _passed(row, margin)
    save()
    return rows


def _passed(row: dict[str, Any], margin: float) -> None:
    tiers = row["tiers"]
    row["passed_B"] = "B" in tiers and tiers["B"]["fitness"] > margin
    row["passed_C"] = row["passed_B"] and "C" in tiers and tiers["C"]["fitness"] > margin


def _previous_rows(path, tiers: dict[str, list[str]]) -> dict[int, dict[str, Any]]:
    """Rows of an earlier funnel of this run, each keeping only the tiers run on the
    same tasks (an unreadable file is started over)."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    same = {name for name, key in (("B", "tier_B"), ("C", "tier_C"), ("held_out", "held_out"))
            if saved.get(key) == tiers[name]}
    rows = {}
    for row in saved.get("rows", []):
        kept = {name: t for name, t in row.get("tiers", {}).items() if name in same}
        rows[row["id"]] = row | {"tiers": kept}
    return rows


#: What the funnel table's columns mean, printed under it.
COLUMNS = """\
columns: fitness = log(AdamW metric / metric), mean over tasks; 0 = as good as the AdamW
warm start (its fixed settings, same tasks and seeds), higher is better, failed = -1e9.
  search    the fitness the search saw (tier A)      B, C  the same families, larger tiers
  held out  tasks the search never trained on        passed  last tier beaten by --margin
  -         a tier not run (C runs only after B passes)"""


def table(rows: list[dict[str, Any]]) -> str:
    """The funnel as text: one line per program."""
    lines = [f"{'id':>6} {'search':>9} {'B':>9} {'C':>9} {'held out':>9}  passed"]

    def value(fitness: float | None) -> str:
        if fitness is None:
            return f"{'-':>9}"
        return f"{'failed':>9}" if fitness <= FAILED else f"{fitness:+9.4f}"

    def f(row, key):
        t = row["tiers"].get(key)
        return value(t["fitness"] if t else None)

    for row in rows:
        passed = "C" if row["passed_C"] else "B" if row["passed_B"] else "-"
        lines.append(f"{row['id']:>6} {value(row['search_fitness'])} {f(row, 'B')} "
                     f"{f(row, 'C')} {f(row, 'held_out')}  {passed}")
    return "\n".join(lines)
