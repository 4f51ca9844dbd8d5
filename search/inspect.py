"""Looking at a run: top programs, their diff against the warm start, lineage, plots.

Read-only and safe on a running search: the history is only read (a line being
written is skipped) and nothing in the run directory is changed except the PNG
files it is asked to draw.
"""

from __future__ import annotations

import difflib
import io
from pathlib import Path
from typing import Any

import networkx as nx

from search import files
from search.evolution import FAILED
from search.loop import failure_message
from search.rundir import RunDir, RunProgram


def lineage_graph(records: list[dict[str, Any]]) -> nx.DiGraph:
    """Parent -> child edges over every recorded program, with the mutation on each edge."""
    graph = nx.DiGraph()
    for rec in records:
        graph.add_node(rec["id"], fitness=rec["fitness"])
        if rec["parent"] is not None:
            graph.add_edge(rec["parent"], rec["id"], mutation=rec["mutation"])
    return graph


def lineage(records: list[dict[str, Any]], program_id: int) -> list[dict[str, Any]]:
    """The records from the warm start down to ``program_id``, oldest first."""
    graph = lineage_graph(records)
    by_id = {r["id"]: r for r in records}
    if program_id not in by_id:
        raise KeyError(f"no program {program_id} in the history")
    chain = [program_id]
    while True:
        parents = list(graph.predecessors(chain[-1]))
        if not parents or parents[0] in chain:
            break
        chain.append(parents[0])
    return [by_id[i] for i in reversed(chain) if i in by_id]


def diff(source: str, warm_source: str) -> str:
    """A unified diff of a program against the warm start."""
    return "".join(difflib.unified_diff(warm_source.splitlines(True), source.splitlines(True),
                                        "warm start", "program"))


def terminal_safe(text: str) -> str:
    r"""``text`` with every control character but the newline written as an escape: what a
    run directory holds (task names, error messages) cannot move the cursor, recolour or
    retitle the terminal it is shown on.

    >>> terminal_safe("a\x1b[31mred\tb\nc")
    'a\\x1b[31mred\\tb\nc'
    """
    return "\n".join(map(files.shown, text.split("\n")))


def report(run: RunDir, top: int = 3, program_id: int | None = None) -> str:
    """The run's best programs (or program ``program_id``): fitness per task, the
    program without dead code, its diff against the warm start, its lineage; every
    control character from the run escaped (:func:`terminal_safe`)."""
    return terminal_safe(_report(run, top, program_id))


def _report(run: RunDir, top: int, program_id: int | None) -> str:
    records = [r for r in run.history() if not r.get("infra")]
    errors = error_summary(run)
    if not records:
        lines = [f"{run.path}: no program evaluated yet"]
        lines.extend(f"  {n:>5} x {message}" for message, n in errors)
        return "\n".join(lines)
    warm = records[0]["source"]
    chosen = [run.program(program_id)] if program_id is not None else run.top(top)
    lines = [f"{run.path}: {len(records)} programs, "
             f"{sum(not r['cached'] for r in records)} evaluated"]
    if not chosen:
        lines.append("no program finished without failing")
    for found in chosen:
        lines.extend(_describe(run, found, records, warm))
    if errors:
        lines.append("\nmost frequent failures (divergences, invalid programs, infrastructure):")
        lines.extend(f"  {n:>5} x {message}" for message, n in errors)
    return "\n".join(lines)


def _describe(run: RunDir, found: RunProgram, records: list[dict[str, Any]],
              warm: str) -> list[str]:
    rec = found.record
    fitness = "failed" if found.failed else f"{found.fitness:+.4f}"
    lines = [f"\nprogram {found.id}  fitness {fitness}  round {found.round}"]
    for task, t in sorted(rec.get("tasks", {}).items()):
        lr = (f", at lr x{t['lr_multiplier']:.3g}"
              + (" (the edge of its grid)" if t.get("lr_at_edge") else "")
              if t.get("lr_multiplier") else "")
        metrics = ", ".join("-" if m is None else f"{m:.4g}" for m in t["metrics"])
        lines.append(f"  {task}: fitness {shown(t['fitness'])}, metrics [{metrics}]{lr}")
    why = ("its fitness on the tasks before was below the hurdle" if rec.get("screened")
           else "the program had already failed")
    for task in rec.get("skipped", []):
        lines.append(f"  {task}: not trained ({why})")
    identity = run.identify(found)
    lines.append(f"what it is: {identity.describe()}")
    if identity.diff:
        lines.append(f"  its skeleton (constants as C) against {identity.name}'s:")
        lines.extend(f"    {line}" for line in identity.diff.rstrip().splitlines()[2:])
    source = found.program.to_source()
    lines.append(source.rstrip())
    dead = len(found.genome.statements) - len(found.program.statements)
    if dead:
        lines.append(f"({dead} dead statement{'s' * (dead > 1)} not shown; history.jsonl "
                     "keeps the genome as evaluated)")
    lines.append("diff against the warm start:")
    lines.append(diff(source, warm).rstrip() or "  (none)")
    lines.append("lineage:")
    for step in lineage(records, found.id):
        lines.append(f"  {step['id']:>6} {shown(step['fitness']):>7}  "
                     f"{how_made(step['mutation'])}")
    return lines


def how_made(mutation: dict[str, Any]) -> str:
    """How a program was made, in a line: the mutation or operator, and what it changed.

    >>> how_made({"kind": "crossover", "from": 7, "fragment": "f0_1 = sign(m)"})
    'crossover with 7: f0_1 = sign(m)'
    """
    kind = str(mutation.get("kind", "?"))
    if kind == "fragment":  # a library program's fragment, spliced in
        return f"fragment of {mutation.get('from')}: {mutation.get('fragment')}"
    if kind == "crossover":  # a second parent's fragment, spliced in
        return f"crossover with {mutation.get('from')}: {mutation.get('fragment')}"
    if kind == "start":  # a round's own program, one of the config's warm_starts
        return f"start: {mutation.get('program')} (one of warm_starts)"
    return kind + (f": {mutation['statement']}" if "statement" in mutation else "")


def shown(fitness: float | None) -> str:
    """A fitness as a person reads it: ``+0.0123``, or ``failed`` (never ``-1000000000``),
    or ``-`` (an infrastructure error: none).

    >>> shown(0.01234), shown(-1e9), shown(None)
    ('+0.0123', 'failed', '-')
    """
    if fitness is None:
        return "-"
    return "failed" if fitness <= FAILED else f"{fitness:+.4f}"


def error_summary(run: RunDir, k: int = 5) -> list[tuple[str, int]]:
    """The ``k`` most frequent reasons programs failed or could not be evaluated,
    with their counts (cache answers not counted again)."""
    counts: dict[str, int] = {}
    for rec in run.history():
        message = None if rec["cached"] else failure_message(rec)
        if message:
            prefix = "infrastructure: " if rec.get("infra") else ""
            key = terminal_safe(prefix + message.splitlines()[0][:200])
            counts[key] = counts.get(key, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


def _save(fig, path: Path, written: list[Path]) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, dpi=100, format="png")
    plt.close(fig)
    files.replace(path, image.getvalue())  # atomic, and never through a link planted there
    written.append(path)


def progress_figure(run: RunDir):
    """Best fitness against evaluations, one series per round (a matplotlib Figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = run.evaluated()
    fig, ax = plt.subplots(figsize=(7, 4))
    for rnd in sorted({r["round"] for r in records}):
        xs, ys, best = [], [], None
        for n, r in enumerate(records):
            if r["round"] == rnd and r["fitness"] > FAILED:
                best = r["fitness"] if best is None else max(best, r["fitness"])
                xs.append(n + 1)
                ys.append(best)
        if xs:
            ax.step(xs, ys, where="post", label=f"round {rnd}")
    cfg = run.config()
    warm = next((r for r in records if r["id"] == 0), None)
    if cfg.judge == "tuned":
        ax.axhline(0.0, color="gray", lw=0.8, ls="--",
                   label="AdamW tuned on lr, betas and weight decay (the judge)")
        judge = "tuned AdamW's"
    else:
        how = "at its best learning rate" if cfg.lr_grid else "at its own constants"
        ax.axhline(0.0, color="gray", lw=0.8, ls="--", label=f"AdamW warm start ({how})")
        judge = "AdamW warm start's"
    if ((cfg.warm_start != "warmstart" or cfg.judge == "tuned") and warm is not None
            and warm["fitness"] > FAILED):
        ax.axhline(warm["fitness"], color="black", lw=0.8, ls=":",
                   label=f"this run's warm start, {cfg.warm_start}")
    ax.set_xlabel("evaluations")
    ax.set_ylabel(f"best fitness: log({judge} metric / metric)")
    ax.legend(fontsize=8)
    return fig


def funnel_figure(run: RunDir):
    """Each finalist's fitness per tier of the funnel (a matplotlib Figure), None
    before the funnel ran. The search's point is against the warm start, the tiers'
    against the best of the tuned baselines, as the funnel's table."""
    saved = run.funnel()
    if saved is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = saved["rows"]
    run_tiers = [t for t in ("B", "C", "held_out") if any(t in r["tiers"] for r in rows)]
    tiers = ["search"] + run_tiers  # never a tier that no program was run on
    fig, ax = plt.subplots(figsize=(7, 4))
    for row in rows:
        values = [row["search_fitness"]] + [row["tiers"][t]["fitness"] if t in row["tiers"]
                                            else None for t in run_tiers]
        xs = [i for i, v in enumerate(values) if v is not None and v > FAILED]
        ax.plot(xs, [values[i] for i in xs], marker="o", label=f"program {row['id']}")
    ax.set_xticks(range(len(tiers)), tiers)
    ax.axhline(0.0, color="gray", lw=0.8, ls="--",
               label=f"0: search vs the warm start; tiers vs the best of "
                     f"{', '.join(saved['baselines'])}, tuned")
    ax.set_ylabel("fitness: log(reference metric / metric)")
    ax.legend(fontsize=8)
    return fig


def plot(run: RunDir) -> list[Path]:
    """``progress.png`` and, once the funnel ran, ``funnel.png`` in the run directory."""
    written: list[Path] = []
    funnel = funnel_figure(run)  # funnel.json read before anything is written: a refusal
    progress = progress_figure(run)  # writes nothing
    _save(progress, run.path / "progress.png", written)
    if funnel is not None:
        _save(funnel, run.path / "funnel.png", written)
    return written
