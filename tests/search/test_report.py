"""The run's HTML report: what it holds, that it escapes a run directory's text, and that
it loads in a real browser (headless Chromium) with no console error, mid-search too."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from search import report
from search.config import SearchConfig
from search.executor import SerialExecutor
from search.loop import Search
from search.rundir import RunDir


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A small serial search whose report was rewritten at each checkpoint; the first
    rewrite (mid-search) is kept beside it."""
    folder = tmp_path_factory.mktemp("report")
    cfg = SearchConfig(executor="serial", tasks=["quadratic/A"], seeds=[0], max_evals=12,
                       population=4, plateau=4, judge="warm_start", checkpoint_every=3)
    run = RunDir.create(folder / "run", cfg)
    search = Search.open(cfg, run)
    rewrites: list[int] = []

    def rewrite() -> None:
        path = report.write(run)
        rewrites.append(search.evaluated)
        if len(rewrites) == 1:
            shutil.copy(path, folder / "mid-search.html")

    search.on_checkpoint = rewrite
    search.run_until_done(SerialExecutor())
    assert len(rewrites) >= 4 and rewrites[0] < 12  # at each checkpoint, the first mid-way
    return run, folder


def _data(text: str) -> dict:
    found = re.search(r"<script type='application/json' id='lineage-data'>(.*?)</script>", text)
    return json.loads(found.group(1))


def test_the_report_holds_the_run_and_the_lineage_of_its_best(small_run) -> None:
    run, _ = small_run
    text = (run.path / report.FILE).read_text()
    assert text.startswith("<!DOCTYPE html>") and text.count("<script") >= 4
    # plotly's JavaScript inlined, nothing fetched: it opens offline
    assert "Plotly.newPlot" in text and not re.search(r"<script[^>]*\bsrc=", text)
    nodes = _data(text)
    best = run.best()
    chain = [best.id]
    while nodes[str(chain[-1])]["parent"] is not None:
        chain.append(nodes[str(chain[-1])]["parent"])
    assert chain[-1] == 0 and str(best.id) in nodes  # the best's whole lineage, to the warm start
    node = nodes[str(best.id)]
    assert node["source"] == best.record["source"]
    assert node["diff"].startswith("--- warm start") or node["parent"] is None
    assert f"program {best.id}, " in text and "answered by the cache" in text


def test_a_run_directorys_text_cannot_break_out_of_the_page(small_run, tmp_path) -> None:
    """A hostile mutation record (text from a run someone handed you) is escaped in the
    HTML and cannot close the embedded data's script."""
    run, _ = small_run
    copy = tmp_path / "run"
    shutil.copytree(run.path, copy)
    lines = (copy / "history.jsonl").read_text().splitlines()
    hostile = "</script><script>alert(1)</script><b>"
    records = [json.loads(line) for line in lines]
    best = max(records, key=lambda r: r["fitness"])
    best["mutation"] = {"kind": hostile, "statement": hostile}
    (copy / "history.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    text = report.build(RunDir(copy))
    assert hostile not in text and "<script>alert" not in text
    assert _data(text)[str(best["id"])]["what"].startswith(hostile)  # the data keeps it, inert


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (.ci/run installs Debian's)")
@pytest.mark.parametrize("page", ["final", "mid-search"])
def test_the_report_loads_in_headless_chromium_without_console_errors(small_run, page) -> None:
    run, folder = small_run
    path = run.path / report.FILE if page == "final" else folder / "mid-search.html"
    flags = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--virtual-time-budget=8000"]
    r = subprocess.run([*flags, "--enable-logging=stderr", "--v=0", "--dump-dom",
                        path.as_uri()], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    console = [line for line in r.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console  # no error, no warning, nothing logged by the page
    dom = r.stdout
    assert dom.count('class="main-svg"') >= 4  # both charts drawn (two SVG layers each)
    nodes = _data(path.read_text())
    last = list(nodes)[-1]
    # the page's own script ran: it shows the latest program of the lineage
    assert re.search(rf'id="node-title">program {last}: ', dom)
    shot = folder / f"{page}.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,1800",
                    path.as_uri()], capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 20_000  # a page with charts, not a blank one
