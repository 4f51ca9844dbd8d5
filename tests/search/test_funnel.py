"""Tests for search/funnel.py: selection, tiers, pass/fail, the saved table."""

from __future__ import annotations

import json

from dsl import Program
from search.funnel import funnel, table, tier, top_programs
from tests.search.test_loop import run_numpy_search


def test_top_programs_are_distinct_and_best_first(tmp_path) -> None:
    run = run_numpy_search(tmp_path / "run")
    top = top_programs(run, 5)
    assert len(top) == 5
    assert len({r["fingerprint"] for r in top}) == 5
    assert [r["fitness"] for r in top] == sorted((r["fitness"] for r in top), reverse=True)
    assert not any(r["cached"] for r in top)


def test_funnel_tiers_and_table(tmp_path) -> None:
    run = run_numpy_search(tmp_path / "run")
    calls = []

    def evaluate(program: Program, tasks: list[str]):
        calls.append(tuple(tasks))
        score = 0.1 if len(program.statements) % 2 else -0.1  # some pass, some fail
        return score, {t: score for t in tasks}

    rows = funnel(run, evaluate, k=4, margin=0.0, held_out=["cnn_digits/A"])
    assert tier(["mlp_mnist1d/A", "quadratic/A"], "B") == ["mlp_mnist1d/B", "quadratic/B"]
    assert ("quadratic/B",) in calls and ("cnn_digits/A",) in calls
    for row in rows:
        assert row["passed_B"] == (row["tiers"]["B"]["fitness"] > 0)
        assert ("C" in row["tiers"]) == row["passed_B"]
    saved = json.loads((run.path / "funnel.json").read_text())
    assert saved["rows"] == rows and saved["tier_C"] == ["quadratic/C"]
    assert table(rows).splitlines()[0].split() == ["id", "search", "B", "C", "held", "out",
                                                   "passed"]


def test_an_interrupted_funnel_resumes_from_funnel_json(tmp_path) -> None:
    import pytest

    run = run_numpy_search(tmp_path / "run")
    calls = []

    def evaluate(program: Program, tasks: list[str]):
        calls.append(tuple(tasks))
        if len(calls) == 5:
            raise KeyboardInterrupt  # the user stops it during the second program
        return 0.1, {t: 0.1 for t in tasks}

    with pytest.raises(KeyboardInterrupt):
        funnel(run, evaluate, k=2)
    saved = json.loads((run.path / "funnel.json").read_text())
    assert len(saved["rows"]) == 2 and set(saved["rows"][0]["tiers"]) == {"B", "held_out", "C"}
    assert set(saved["rows"][1]["tiers"]) == {"B"}  # written as each tier finished
    calls.clear()
    rows = funnel(run, evaluate, k=2, progress=lambda line: None)
    assert calls == [("cnn_digits/A",), ("quadratic/C",)]  # only what was missing
    assert all(r["passed_C"] for r in rows)
    other = funnel(run, evaluate, k=2, held_out=["cnn_digits/B"])  # other tasks: run again
    assert calls[2:] == [("cnn_digits/B",), ("cnn_digits/B",)] and len(other) == 2


def test_funnel_png_draws_only_the_tiers_that_ran(tmp_path) -> None:
    from search.inspect import plot

    run = run_numpy_search(tmp_path / "run")
    funnel(run, lambda program, tasks: (-0.5, {t: -0.5 for t in tasks}), k=2)  # B fails: no C
    paths = plot(run)
    assert [p.name for p in paths] == ["progress.png", "funnel.png"]
    import matplotlib.pyplot as plt

    from search import inspect  # the ticks plot draws, read as each figure is saved

    seen = {}
    real = inspect._save

    def spy(fig, path, written):
        seen[path.name] = [t.get_text() for t in fig.axes[0].get_xticklabels()]
        real(fig, path, written)

    inspect._save = spy
    try:
        plot(run)
    finally:
        inspect._save = real
    plt.close("all")
    assert seen["funnel.png"] == ["search", "B", "held_out"]
