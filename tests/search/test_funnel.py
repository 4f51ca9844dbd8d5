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
