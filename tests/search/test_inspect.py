"""Tests for search/inspect.py: report, diff, lineage, plots."""

from __future__ import annotations

import pytest

from evaluators.fitness import FAILED
from search.funnel import funnel
from search.inspect import diff, funnel_figure, lineage, plot, progress_figure, report
from tests.search.test_funnel import fake_train
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


def test_the_progress_plot_shows_each_rounds_best_so_far(tmp_path) -> None:
    run = run_numpy_search(tmp_path / "run")
    ax = progress_figure(run).axes[0]
    assert ax.get_xlabel() == "evaluations"
    assert ax.get_ylabel() == "best fitness: log(AdamW warm start's metric / metric)"
    records = run.evaluated()
    rounds = sorted({r["round"] for r in records})
    series = [line for line in ax.get_lines() if line.get_label().startswith("round ")]
    assert [line.get_label() for line in series] == [f"round {r}" for r in rounds]
    for line, rnd in zip(series, rounds, strict=True):
        xs, ys = line.get_data()
        mine = [(n + 1, r["fitness"]) for n, r in enumerate(records)
                if r["round"] == rnd and r["fitness"] > FAILED]
        assert list(xs) == [n for n, _ in mine]  # every evaluation of the round that ran
        assert list(ys) == [max(f for _, f in mine[:k + 1]) for k in range(len(mine))]
    assert max(max(line.get_data()[1]) for line in series) == run.best().fitness
    reference = [line for line in ax.get_lines() if "warm start" in line.get_label()]
    assert run.config().lr_grid is not None  # the default: the warm start calibrated
    assert [line.get_label() for line in reference] == ["AdamW warm start (at its best "
                                                        "learning rate)"]
    assert [p.name for p in plot(run)] == ["progress.png"]  # no funnel yet


def test_the_funnel_plot_shows_each_finalist_per_tier_against_its_reference(tmp_path) -> None:
    run = run_numpy_search(tmp_path / "run")
    rows = funnel(run, fake_train(lambda p: 0.1), k=2, held_out=["autoencoder_digits/A"],
                  tiers_run=("B", "held_out"))
    ax = funnel_figure(run).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["search", "B", "held_out"]
    assert ax.get_ylabel() == "fitness: log(reference metric / metric)"
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert "0: search vs the warm start; tiers vs the best of adamw, lion, momentum, tuned" in lines
    for row in rows:
        xs, ys = lines[f"program {row['id']}"].get_data()
        assert list(xs) == [0, 1, 2]
        assert list(ys) == pytest.approx([row["search_fitness"], 0.1, 0.1])
    assert [p.name for p in plot(run)] == ["progress.png", "funnel.png"]


def test_report_of_a_run_that_only_failed_names_the_errors(tmp_path) -> None:
    from search.config import SearchConfig
    from search.executor import SerialExecutor
    from search.loop import Search, SearchStopped
    from search.rundir import RunDir

    def broken(job):
        return {"id": job["id"], "fitness": None, "infra": True, "tasks": {},
                "error": "mlp_mnist1d/A: ModuleNotFoundError: No module named 'mnist1d'"}

    cfg = SearchConfig(executor="serial", tasks=["quadratic/A"], seeds=[0], population=4,
                       judge="warm_start")
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


def test_the_progress_plot_names_another_warm_start_apart(tmp_path) -> None:
    """Fitness is always against the library's AdamW warm start: a run started from
    another program shows that program's own fitness as a line of its own."""
    run = run_numpy_search(tmp_path / "run", warm_start="adamw")
    ax = progress_figure(run).axes[0]
    warm = next(r for r in run.evaluated() if r["id"] == 0)
    lines = {line.get_label(): line.get_data()[1] for line in ax.get_lines()
             if "warm start" in line.get_label()}
    assert set(lines) == {"AdamW warm start (at its best learning rate)",
                          "this run's warm start, adamw"}
    assert list(lines["this run's warm start, adamw"]) == [warm["fitness"]] * 2


def test_the_progress_plot_names_the_tuned_judge_and_the_warm_start_against_it(
        tmp_path) -> None:
    from search.executor import SerialExecutor
    from search.loop import Search
    from search.rundir import RunDir
    from tests.search.test_loop import TUNED, small_config, tuning_evaluate

    cfg = small_config(judge="tuned", max_evals=6)
    run = RunDir.create(tmp_path / "run", cfg)
    Search.open(cfg, run).run_until_done(SerialExecutor(tuning_evaluate([], TUNED)))
    ax = progress_figure(run).axes[0]
    assert ax.get_ylabel() == "best fitness: log(tuned AdamW's metric / metric)"
    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith(
        "round ")]
    assert labels == ["AdamW tuned on lr, betas and weight decay (the judge)",
                      "this run's warm start, warmstart"]
