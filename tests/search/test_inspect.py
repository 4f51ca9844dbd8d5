"""Tests for search/inspect.py: report, diff, lineage, plots."""

from __future__ import annotations

from search.inspect import diff, lineage, plot, report
from tests.search.test_loop import run_numpy_search


def test_report_lineage_and_diff(tmp_path) -> None:
    run = run_numpy_search(tmp_path / "run")
    records = list(run.history())
    best = max((r for r in records if not r["cached"]), key=lambda r: r["fitness"])
    chain = lineage(records, best["id"])
    assert chain[0]["id"] == 0 and chain[-1]["id"] == best["id"]
    for parent, child in zip(chain, chain[1:], strict=False):
        assert child["parent"] == parent["id"]
    text = report(run, top=2)
    assert f"program {best['id']}" in text and "lineage:" in text and "warm_start" in text
    assert diff(records[0]["source"], records[0]["source"]) == ""
    assert "+++ program" in diff(best["source"], records[0]["source"]) or best["id"] == 0


def test_plots_are_written(tmp_path) -> None:
    run = run_numpy_search(tmp_path / "run")
    paths = plot(run)
    assert [p.name for p in paths] == ["progress.png"]
    assert paths[0].stat().st_size > 1000
