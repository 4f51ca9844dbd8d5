"""A run as one self-contained HTML page: progress, the lineage of the best programs as
an interactive picture, the top programs, the funnel and the failures.

``report.html`` opens from disk, offline, with no server: plotly's JavaScript is inlined
once and the data the page shows is embedded in it. A running search rewrites it at
each checkpoint (atomically, :func:`search.files.replace`), so reloading the page shows
the search as it is; ``run_search.py report RUN`` writes it for any run.

What the page holds:

- the run: its configuration, how many programs were recorded, trained, failed, below
  the hurdle and lost to infrastructure, the cache's hit rate, the best and what it is;
- progress: each trained program's fitness in the order results came, the best so far,
  and the failures, programs below the hurdle and infrastructure errors as they grew;
- the lineage of the best programs: each node a program (placed by when it was
  evaluated and its fitness), each edge the mutation or operator that made it;
  selecting a node shows its source, how it was made, its change in fitness and its
  diff against its parent;
- the top programs with their diffs against the warm start, the funnel's table and its
  tuned baselines when it ran, and the most frequent failures.

A run directory is untrusted input: every text from it is HTML-escaped, and the data
embedded in a script cannot close it (``<`` is written ``\\u003c``).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from search import files
from search.evolution import FAILED
from search.inspect import diff, error_summary, how_made, lineage_graph, shown
from search.rundir import RunDir

FILE = "report.html"
#: The best programs whose lineages the picture draws.
LINEAGE_TOP = 5


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _json(data: Any) -> str:
    """JSON that is safe inside a <script> element."""
    return (json.dumps(data, separators=(",", ":"), allow_nan=False)
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _progress(records: list[dict[str, Any]]):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    trained = [r for r in records if not r["cached"]]
    xs, ys, ids, best_x, best_y = [], [], [], [], []
    best = None
    failed = screened = infra = 0
    counts: dict[str, list[int]] = {"failed": [], "below hurdle": [], "infrastructure": []}
    for n, r in enumerate(trained, start=1):
        if r.get("infra"):
            infra += 1
        elif r["fitness"] <= FAILED:
            failed += 1
        else:
            screened += bool(r.get("screened"))
            xs.append(n)
            ys.append(r["fitness"])
            ids.append(r["id"])
            if best is None or r["fitness"] > best:
                best = r["fitness"]
            best_x.append(n)
            best_y.append(best)
        counts["failed"].append(failed)
        counts["below hurdle"].append(screened)
        counts["infrastructure"].append(infra)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3],
                        vertical_spacing=0.06)
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name="a trained program",
                               marker={"size": 4, "opacity": 0.5}, customdata=ids,
                               hovertemplate="program %{customdata}: %{y:+.4f}<extra></extra>"),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=best_x, y=best_y, mode="lines", name="best so far",
                             line={"shape": "hv"}), row=1, col=1)
    steps = list(range(1, len(trained) + 1))
    for name, values in counts.items():
        fig.add_trace(go.Scatter(x=steps, y=values, mode="lines", name=name), row=2, col=1)
    fig.add_hline(y=0.0, line_dash="dash", line_color="gray", row=1, col=1)
    fig.update_yaxes(title_text="fitness", row=1, col=1)
    fig.update_yaxes(title_text="count", row=2, col=1)
    fig.update_xaxes(title_text="programs trained (in the order results came)", row=2, col=1)
    fig.update_layout(height=520, margin={"t": 30, "b": 40, "l": 60, "r": 20},
                      legend={"orientation": "h", "y": 1.08})
    return fig


def lineage_nodes(run: RunDir, records: list[dict[str, Any]], top: int = LINEAGE_TOP
                  ) -> dict[int, dict[str, Any]]:
    """The programs on the lineages of the ``top`` best (every ancestor back to a program
    without a parent): per id its fitness, parent, how it was made, its change in
    fitness, whether its skeleton is new, its source and its diff against its parent."""
    graph = lineage_graph(records)
    by_id = {r["id"]: r for r in records if not r.get("infra")}
    order = {r["id"]: n for n, r in enumerate(records)}
    wanted: set[int] = set()
    for found in run.top(top):
        node = found.id
        while node is not None and node not in wanted and node in by_id:
            wanted.add(node)
            parents = list(graph.predecessors(node))
            node = parents[0] if parents else None
    first_of: dict[str, int] = {}
    for r in records:  # the first program of each skeleton
        first_of.setdefault(r.get("skeleton", ""), r["id"])
    nodes = {}
    for i in sorted(wanted, key=lambda k: order[k]):
        r = by_id[i]
        parent = by_id.get(r["parent"]) if r["parent"] is not None else None
        fitness = r["fitness"]
        change = (None if parent is None or fitness <= FAILED or parent["fitness"] <= FAILED
                  else fitness - parent["fitness"])
        skeleton = r.get("skeleton", "")
        nodes[i] = {"id": i, "parent": r["parent"] if parent is not None else None,
                    "order": order[i], "fitness": None if fitness <= FAILED else fitness,
                    "what": how_made(r["mutation"]), "change": change,
                    "new_skeleton": parent is not None and first_of.get(skeleton) == i,
                    "source": r["source"],
                    "diff": diff(r["source"], parent["source"]) if parent else ""}
    return nodes


def _lineage(nodes: dict[int, dict[str, Any]]):
    import plotly.graph_objects as go

    floor = min([n["fitness"] for n in nodes.values() if n["fitness"] is not None] + [0.0])
    y = {i: (n["fitness"] if n["fitness"] is not None else floor - 0.05) for i, n in nodes.items()}
    ex, ey = [], []
    for i, n in nodes.items():
        if n["parent"] in nodes:
            p = nodes[n["parent"]]
            ex += [p["order"], n["order"], None]
            ey += [y[p["id"]], y[i], None]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=ex, y=ey, mode="lines", line={"color": "#bbb", "width": 1},
                             hoverinfo="skip", showlegend=False))
    ids = list(nodes)

    def hover(n: dict[str, Any]) -> str:  # plotly reads <br>; the rest is escaped
        fitness = "failed" if n["fitness"] is None else f"{n['fitness']:+.4f}"
        return (f"program {n['id']}: {fitness}<br>{html.escape(n['what'][:120])}"
                + ("<br>a new skeleton" if n["new_skeleton"] else ""))

    fig.add_trace(go.Scatter(
        x=[nodes[i]["order"] for i in ids], y=[y[i] for i in ids], mode="markers",
        customdata=ids, showlegend=False, text=[hover(nodes[i]) for i in ids],
        hoverinfo="text",
        marker={"size": 11, "line": {"width": 1, "color": "#333"},
                "color": ["#d62728" if nodes[i]["new_skeleton"] else
                          "#999" if nodes[i]["fitness"] is None else "#1f77b4" for i in ids]}))
    fig.update_layout(height=420, margin={"t": 20, "b": 40, "l": 60, "r": 20},
                      xaxis_title="when it was recorded", yaxis_title="fitness",
                      clickmode="event+select")
    return fig


_SCRIPT = """
var nodes = JSON.parse(document.getElementById('lineage-data').textContent);
function signed(x) { return (x >= 0 ? '+' : '') + x.toFixed(4); }
function showNode(id) {
  var n = nodes[id];
  if (!n) { return; }
  var change = n.change === null ? '' : ' (' + signed(n.change) + ' on its parent)';
  var fitness = n.fitness === null ? 'failed' : signed(n.fitness);
  document.getElementById('node-title').textContent = 'program ' + n.id + ': ' + fitness +
    change;
  document.getElementById('node-what').textContent = n.what +
    (n.new_skeleton ? ' (a new skeleton)' : '');
  document.getElementById('node-source').textContent = n.source;
  document.getElementById('node-diff').textContent = n.diff || '(no parent)';
}
var plot = document.getElementById('lineage');
plot.on('plotly_click', function (d) { showNode(String(d.points[0].customdata)); });
var ids = Object.keys(nodes);
if (ids.length) { showNode(ids[ids.length - 1]); }
"""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #ccc;
padding: 2px 8px; text-align: left; vertical-align: top; }
pre { background: #f6f6f6; padding: 0.5em; overflow-x: auto; font-size: 12px; }
h2 { margin-top: 1.5em; border-bottom: 1px solid #ddd; }
.panel { display: flex; gap: 1em; } .panel > div { flex: 1; min-width: 0; }
"""


def build(run: RunDir, top: int = 5) -> str:
    """The report's HTML text (see the module)."""
    cfg = run.config()
    records = list(run.history())
    trained = [r for r in records if not r["cached"] and not r.get("infra")]
    failed = sum(r["fitness"] <= FAILED for r in trained)
    screened = sum(bool(r.get("screened")) for r in trained)
    infra = sum(bool(r.get("infra")) for r in records)
    cached = sum(r["cached"] for r in records)
    best = run.best()
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>optsearch: "
             f"{_e(run.path.name)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{_e(run.path)}</h1>",
             "<table>",
             *(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in (
                 ("method", cfg.method), ("tasks", ", ".join(cfg.tasks)),
                 ("seeds", ", ".join(map(str, cfg.seeds))), ("judge", cfg.judge),
                 ("warm start", ", ".join([cfg.warm_start, *cfg.warm_starts])),
                 ("programs trained", f"{len(trained)} of max_evals {cfg.max_evals}"),
                 ("failed", failed), ("below the hurdle", screened),
                 ("infrastructure errors", infra),
                 ("answered by the cache", f"{cached} of {len(records)} proposals "
                  f"({cached / len(records):.0%})" if records else "0"),
                 ("best", "none yet" if best is None else
                  f"program {best.id}, {shown(best.fitness)}: {run.identify(best).describe()}"))),
             "</table>"]
    if not records:
        parts.append("<p>No program evaluated yet.</p></body></html>")
        return "\n".join(parts)
    progress = _progress(records)
    parts += ["<h2>Progress</h2>",
              progress.to_html(full_html=False, include_plotlyjs=True, div_id="progress")]
    nodes = lineage_nodes(run, records)
    if nodes:
        parts += [f"<h2>Lineage of the {min(LINEAGE_TOP, len(run.top(LINEAGE_TOP)))} best</h2>",
                  "<p>Each point a program (red: the first of a new skeleton; grey: failed); "
                  "select one to see it.</p>",
                  _lineage(nodes).to_html(full_html=False, include_plotlyjs=False,
                                          div_id="lineage"),
                  f"<script type='application/json' id='lineage-data'>{_json(nodes)}</script>",
                  "<div class='panel'><div><h3 id='node-title'>select a program</h3>"
                  "<p id='node-what'></p><pre id='node-source'></pre></div>"
                  "<div><h3>diff against its parent</h3><pre id='node-diff'></pre></div></div>",
                  f"<script>{_SCRIPT}</script>"]
    warm = records[0]["source"]
    parts.append("<h2>Top programs</h2>")
    for found in run.top(top):
        parts += [f"<h3>program {found.id}: {_e(shown(found.fitness))}, "
                  f"{_e(run.identify(found).describe())}</h3>",
                  f"<pre>{_e(diff(found.program.to_source(), warm) or '(the warm start)')}</pre>"]
    parts += _funnel(run)
    errors = error_summary(run, 10)
    if errors:
        parts += ["<h2>Most frequent failures</h2><table><tr><th>count</th><th>what</th></tr>",
                  *(f"<tr><td>{n}</td><td>{_e(message)}</td></tr>" for message, n in errors),
                  "</table>"]
    parts.append("</body></html>")
    return "\n".join(parts)


def _funnel(run: RunDir) -> list[str]:
    from search.funnel import baselines_table, table

    try:
        saved = run.funnel()
    except Exception:  # noqa: BLE001 -- a funnel.json broken by hand: the report goes on
        return ["<h2>Funnel</h2><p>funnel.json could not be read.</p>"]
    if saved is None:
        return []
    return ["<h2>Funnel</h2>", f"<pre>{_e(table(saved['rows']))}</pre>",
            "<h3>Tuned baselines</h3>", f"<pre>{_e(baselines_table(saved))}</pre>"]


def write(run: RunDir, top: int = 5) -> Path:
    """Write ``report.html`` in the run directory (atomically); its path."""
    path = run.path / FILE
    files.replace(path, build(run, top))
    return path


__all__ = ["FILE", "build", "lineage_nodes", "write"]
