"""Tests for search/funnel.py: selection, tiers, pass/fail, the saved table."""

from __future__ import annotations

import json
import math

import pytest

from dsl import Program, library
from search.evolution import FAILED
from search.funnel import (
    beats,
    calibrated_lr,
    compare,
    funnel,
    table,
    tier,
    verdict,
)
from tests.search.test_loop import run_numpy_search


def test_top_programs_are_distinct_and_best_first(tmp_path) -> None:
    run = run_numpy_search(tmp_path / "run")
    top = [found.record for found in run.top(5)]
    assert len(top) == 5
    assert len({r["fingerprint"] for r in top}) == 5
    assert [r["fitness"] for r in top] == sorted((r["fitness"] for r in top), reverse=True)
    assert not any(r["cached"] for r in top)


def fake_train(score_of, calls=None):
    """A ``train`` whose metrics are exp(-score) per seed (so a program's fitness against
    a baseline is the difference of scores); baselines score 0 (AdamW), -0.05 (Lion)
    and -0.2 (momentum), with a little seed noise."""
    base = {"adamw": 0.0, "lion": -0.05, "momentum": -0.2}

    def train(program: Program, tasks: list[str]):
        if calls is not None:
            calls.append(tuple(tasks))
        name = next((n for n in base if program == library.get(n)), None)
        score = base[name] if name else score_of(program)
        return {t: {"metrics": [math.exp(-score + 0.01 * k) for k in range(3)],
                    "lr_multiplier": 0.5, "lr_at_edge": False, "error": None} for t in tasks}

    return train


def test_funnel_tiers_and_table(tmp_path) -> None:
    run = run_numpy_search(tmp_path / "run")
    calls = []

    def score(program):  # some pass, some fail
        return 0.1 if len(program.statements) % 2 else -0.1

    rows = funnel(run, fake_train(score, calls), k=4, margin=0.0, held_out=["cnn_digits/A"])
    assert tier(["mlp_mnist1d/A", "quadratic/A"], "B") == ["mlp_mnist1d/B", "quadratic/B"]
    assert ("quadratic/B",) in calls and ("cnn_digits/A",) in calls
    assert calls[:3] == [("quadratic/B",)] * 3  # the three baselines first, once
    for row in rows:
        b = row["tiers"]["B"]
        assert row["passed_B"] == (b["fitness"] > 0)
        assert ("C" in row["tiers"]) == row["passed_B"]
        task = b["tasks"]["quadratic/B"]
        assert task["best_baseline"] == "adamw"  # the lowest metric of the three
        want = score(run.program(row["id"]).program)  # what the funnel trains
        assert task["vs"]["adamw"]["fitness"] == pytest.approx(want)
        assert task["vs"]["momentum"]["fitness"] == pytest.approx(want + 0.2)
        assert task["stderr"] == pytest.approx(0.0, abs=1e-9)  # the same noise as AdamW's
        assert b["verdict"] == ("beats the best baseline beyond noise" if want > 0
                                else "worse than the best baseline beyond noise")
    saved = json.loads((run.path / "funnel.json").read_text())
    assert saved["rows"] == rows and saved["tier_C"] == ["quadratic/C"]
    assert saved["seeds"] == [1, 2, 3]  # the search trained on seed 0 only
    assert set(saved["baseline_runs"]) == {"adamw", "lion", "momentum"}
    assert table(rows).splitlines()[0].split() == ["id", "search", "B", "C", "held", "out",
                                                   "passed", "verdict"]


def test_comparisons_and_noise() -> None:
    c = compare([1.0, 1.1, 0.9], [1.2, 1.25, 1.15])
    assert c["fitness"] == pytest.approx(math.log(3.6 / 3.0))
    ratios = [math.log(1.2), math.log(1.25 / 1.1), math.log(1.15 / 0.9)]
    mean = sum(ratios) / 3
    sd = math.sqrt(sum((r - mean) ** 2 for r in ratios) / 2)
    assert c["stderr"] == pytest.approx(sd / math.sqrt(3))
    assert beats(c) and verdict(c, "lion") == "beats lion beyond noise"
    noisy = compare([1.0, 1.5, 0.7], [1.1, 1.1, 1.1])
    assert not beats(noisy) and verdict(noisy, "lion") == "within noise of lion"
    assert compare([None, 1.0], [1.0, 1.0])["fitness"] == FAILED
    assert verdict(compare([1.0], [1.1]), "adamw").endswith("one seed, no noise estimate")


def test_an_interrupted_funnel_resumes_from_funnel_json(tmp_path) -> None:
    run = run_numpy_search(tmp_path / "run")
    calls = []
    train = fake_train(lambda p: 0.1, calls)

    def interrupted(program, tasks):
        if len(calls) == 3 + 1 + 3 + 1 + 3 + 1:  # baselines and tier of B, held out, C
            raise KeyboardInterrupt  # the user stops it during the second program
        return train(program, tasks)

    with pytest.raises(KeyboardInterrupt):
        funnel(run, interrupted, k=2)
    saved = json.loads((run.path / "funnel.json").read_text())
    assert len(saved["rows"]) == 1 and set(saved["rows"][0]["tiers"]) == {"B", "held_out", "C"}
    calls.clear()
    rows = funnel(run, train, k=2, progress=lambda line: None)
    # only what was missing: the second program's tiers, no baseline trained again
    assert calls == [("quadratic/B",), ("autoencoder_digits/A",), ("quadratic/C",)]
    assert all(r["passed_C"] for r in rows)
    calls.clear()
    other = funnel(run, train, k=2, held_out=["cnn_digits/B"])  # other tasks: run again
    assert calls == [("cnn_digits/B",)] * 3 + [("cnn_digits/B",)] * 2 and len(other) == 2
    calls.clear()
    funnel(run, train, k=2, seeds=(7, 8))  # other seeds: everything again
    assert len(calls) == 3 * 3 + 2 * 3


def test_funnel_png_draws_only_the_tiers_that_ran(tmp_path) -> None:
    from search.inspect import plot

    run = run_numpy_search(tmp_path / "run")
    funnel(run, fake_train(lambda p: -0.5), k=2)  # B fails: no C
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


def test_the_calibrated_learning_rate_of_the_largest_tier_verified(tmp_path) -> None:
    run = run_numpy_search(tmp_path / "run")
    rows = funnel(run, fake_train(lambda p: 0.1), k=1)  # passes B, then runs C
    best = rows[0]["id"]
    assert calibrated_lr(run, best) == (0.5, "on tier C of the funnel (quadratic/C 0.5)")
    other = run.top(2)[1].id  # never funnelled; its search had no grid
    assert calibrated_lr(run, other) is None


def test_a_tier_weighs_its_tasks_by_the_judges_seed_noise() -> None:
    from search.funnel import judge

    def runs(score, noise=None):
        return {t: {"metrics": [math.exp(-s + 0.001 * k) for k in range(3)], "lr_multiplier": 1.0,
                    "lr_at_edge": False, "error": None} | (
                        {"seed_noise": noise[t]} if noise else {})
                for t, s in score.items()}

    program = runs({"lm": -0.005, "mlp": 0.05})  # 5 noise units better on one, worse on other
    quiet = {"adamw": runs({"lm": 0.0, "mlp": 0.0}, {"lm": 0.001, "mlp": 0.01})}
    tier = judge(program, quiet)
    assert tier["fitness"] == pytest.approx(0.0, abs=1e-9)  # they cancel
    plain = judge(program, {"adamw": runs({"lm": 0.0, "mlp": 0.0})})  # no noise: the mean
    assert plain["fitness"] == pytest.approx((0.05 - 0.005) / 2, abs=1e-9)
    w = 1 / 11  # the tier's error combines the tasks' by the same weights
    lm, mlp = tier["tasks"]["lm"]["stderr"], tier["tasks"]["mlp"]["stderr"]
    assert tier["stderr"] == pytest.approx(math.sqrt((10 * w * lm) ** 2 + (w * mlp) ** 2))
