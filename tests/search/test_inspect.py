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


def test_report_of_a_run_that_only_failed_names_the_errors(tmp_path) -> None:
    from search.config import SearchConfig
    from search.executor import SerialExecutor
    from search.loop import Search, SearchStopped
    from search.rundir import RunDir

    def broken(job):
        return {"id": job["id"], "fitness": None, "infra": True, "tasks": {},
                "error": "mlp_mnist1d/A: ModuleNotFoundError: No module named 'mnist1d'"}

    cfg = SearchConfig(executor="serial", tasks=["quadratic/A"], seeds=[0], population=4)
    run = RunDir.create(tmp_path / "run", cfg)
    try:
        Search.open(cfg, run).run_until_done(SerialExecutor(broken))
    except SearchStopped:
        pass
    assert report(run).splitlines() == [
        f"{run.path}: no program evaluated yet",
        "      1 x infrastructure: mlp_mnist1d/A: ModuleNotFoundError: No module named 'mnist1d'"]
    assert plot(run)[0].name == "progress.png"  # an empty plot, not a crash


def test_report_shows_the_learning_rate_each_task_chose(tmp_path) -> None:
    from dsl import library
    from search.cache import Cache
    from search.config import SearchConfig
    from search.rundir import RunDir

    run = RunDir.create(tmp_path / "run", SearchConfig())
    warm = library.get("warmstart")
    keys = Cache.keys(warm)
    run.append({"id": 0, "parent": None, "round": 0, "mutation": {"kind": "warm_start"},
                "source": warm.to_source(), "structural_hash": keys[0], "fingerprint": keys[1],
                "cached": False, "fitness": 0.0, "tasks": {
                    "mlp_mnist1d/A": {"fitness": 0.0, "metrics": [1.1, 1.1],
                                      "lr_multiplier": 3.16228, "lr_at_edge": False},
                    "transformer_lm/A": {"fitness": 0.0, "metrics": [1.44, 1.44],
                                         "lr_multiplier": 100.0, "lr_at_edge": True}}})
    text = report(run)
    assert "mlp_mnist1d/A: fitness +0.0000, metrics [1.1, 1.1], at lr x3.16\n" in text
    assert "metrics [1.44, 1.44], at lr x100 (the edge of its grid)" in text
