"""Tests for evaluators/evaluate.py: results, failures, idempotence."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from dsl import library, parse
from evaluators import FAILED, baselines, evaluate, evaluate_all, evaluate_batch, tasks
from evaluators.evaluate import calibrated_baseline
from evaluators.grid import WIDE, LrGrid

#: The module (``evaluators.evaluate`` names the function).
evaluate_module = importlib.import_module("evaluators.evaluate")


def test_warm_start_scores_zero_and_is_idempotent() -> None:
    a = evaluate(library.get("warmstart"), "quadratic/A", seeds=(3, 4))
    b = evaluate(library.get("warmstart"), "quadratic/A", seeds=(3, 4))
    assert a.fitness == 0.0 and not a.diverged and a.steps == (300, 300)
    assert a.model_dump(exclude={"wall_time", "compile_time"}) == b.model_dump(
        exclude={"wall_time", "compile_time"})
    assert b.compile_time == 0.0


@pytest.mark.parametrize("seeds", [(-1,), (), (0.5,), (0, True)])
def test_bad_seeds_are_named(seeds) -> None:
    for fn in (evaluate, evaluate_batch):
        arg = library.get("warmstart")
        with pytest.raises(ValueError, match=r"seeds must be one or more integers >= 0, got \["):
            fn(arg if fn is evaluate else [arg], "quadratic/A", seeds)


def test_nan_program_gets_the_worst_fitness_without_an_exception() -> None:
    nan = parse("def train(w, g, lr, t):\n  z = g - g\n  u = z / z\n  u = u * lr\n  return u\n")
    r = evaluate(nan, "quadratic/A")
    assert r.diverged and r.fitness == FAILED and r.failed
    assert r.metrics == (None, None)
    assert r.steps == (1, 1)


def test_invalid_program_for_the_task_is_an_error_result() -> None:
    # unfactor() fed a full moment: valid on vectors, not on the factored 256x128 leaf.
    p = parse("def train(w, g, lr, t):\n  x = g * g\n  v = unfactor(x, 0.5, w)\n"
              "  u = g * v\n  u = u * lr\n  return u\n")
    r = evaluate(p, "quadratic/C")
    assert r.fitness == FAILED and "unfactor" in r.error


def test_better_program_scores_positive_and_tasks_combine() -> None:
    lion = library.get("lion")  # sign steps at peak lr 1.0: far ahead of lr 1e-3 here
    results, combined = evaluate_all(lion, ["quadratic/A"], seeds=(0, 1))
    assert results[0].fitness > 2.0
    assert combined == results[0].fitness


def test_a_batch_scores_each_program_as_evaluate_does() -> None:
    """One vmapped call (the accelerator path) gives each program its own result;
    an invalid one fails alone and a NaN one diverges alone."""
    nan = parse("def train(w, g, lr, t):\n  z = g - g\n  u = z / z\n  u = u * lr\n  return u\n")
    invalid = parse("def train(w, g, lr, t):\n  u = dot(g, g)\n  u = u * lr\n  return u\n")
    programs = [library.get("lion"), invalid, nan, library.get("warmstart"), library.get("sgd")]
    batch = evaluate_batch(programs, "quadratic/A")
    alone = [evaluate(p, "quadratic/A") for p in programs]
    assert [r.error is not None for r in batch] == [False, True, False, False, False]
    assert batch[2].diverged and batch[2].fitness == FAILED and batch[2].steps == alone[2].steps
    for got, want in zip(batch, alone, strict=True):
        assert got.fitness == pytest.approx(want.fitness, rel=1e-5, abs=1e-6)
        assert got.steps == want.steps


# --- learning-rate calibration (evaluators/grid.py) --------------------------------------


def rescaled_warm_start(scale: float):
    """The warm start with its learning rate multiplied by ``scale`` and nothing else."""
    return parse(library.source("warmstart").replace("lr * 0.001", f"lr * {0.001 * scale!r}"))


def test_a_grid_scores_the_best_multiplier_and_records_every_one() -> None:
    grid = LrGrid(points=3, ratio=10.0, centre=10.0)
    r = evaluate(library.get("warmstart"), "quadratic/A", lr_grid=grid)
    assert [m for m, _ in r.lr_grid] == [1.0, 10.0, 100.0]
    means = dict(r.lr_grid)
    assert r.lr_multiplier == min(means, key=means.get)
    assert np.mean(r.metrics) == pytest.approx(means[r.lr_multiplier])
    # the metrics are those of the program trained at the chosen multiplier
    alone = evaluate(rescaled_warm_start(r.lr_multiplier), "quadratic/A")
    assert r.metrics == pytest.approx(alone.metrics, rel=1e-4)
    # scored against the warm start calibrated by the wide grid, not by this grid
    base = calibrated_baseline(tasks.get("quadratic/A"), (0, 1))
    assert r.baseline == base.metric and r.baseline_lr == base.lr_multiplier
    assert r.fitness == pytest.approx(np.log(base.metric / means[r.lr_multiplier]))
    assert base.metric <= min(means.values())  # the wide grid found at least as good


def test_rescaling_the_warm_start_learning_rate_scores_about_zero() -> None:
    """The issue's acceptance: x0.05 or x20 on the warm start's lr is no discovery.
    Without calibration the same programs score far from 0 (x0.05: about -0.47); with it
    they score within seed noise (the std of the log of a two-seed mean of the warm start
    here is about 0.012; the bound is 2.5 times that)."""
    for scale in (0.05, 20.0):
        p = rescaled_warm_start(scale)
        r = evaluate(p, "mlp_mnist1d/A", lr_grid=WIDE)
        assert abs(r.fitness) < 0.03, (scale, r.fitness)
        assert not r.lr_at_edge
        assert r.lr_multiplier * scale == pytest.approx(r.baseline_lr, rel=0.6)
    assert evaluate(rescaled_warm_start(0.05), "mlp_mnist1d/A").fitness < -0.3


def test_library_optimizers_train_at_their_best_learning_rate() -> None:
    """The README's showcase: Lion (a bare ``* lr``) diverges at the schedule's peak of
    1.0 but calibrated it trains, at a learning rate several times smaller than AdamW's."""
    assert evaluate(library.get("lion"), "mlp_mnist1d/A").failed
    lion = evaluate(library.get("lion"), "mlp_mnist1d/A", lr_grid=WIDE)
    adamw = evaluate(library.get("adamw"), "mlp_mnist1d/A", lr_grid=WIDE)
    assert not lion.failed and not adamw.failed and -0.5 < lion.fitness < 0.5
    assert not lion.lr_at_edge and not adamw.lr_at_edge
    assert 2 < adamw.lr_multiplier / lion.lr_multiplier < 20


def test_the_calibrated_baseline_is_computed_once_per_machine(monkeypatch) -> None:
    task = tasks.get("quadratic/A")
    grid = LrGrid(points=2, ratio=10.0, centre=10.0)
    first = calibrated_baseline(task, (5,), grid=grid)
    key = baselines.key("warmstart", task.name, (5,), grid.model_dump_json())
    assert baselines.lookup(key)["metric"] == first.metric
    calibrated_baseline.cache_clear()  # a new process: only the disk cache is left

    def no_training(*args, **kw):
        raise AssertionError("trained again")

    monkeypatch.setattr(evaluate_module, "run_engine_grid", no_training)
    assert calibrated_baseline(task, (5,), grid=grid) == first
    # another code version is another key
    monkeypatch.setattr(baselines, "code_version", lambda: "other")
    assert baselines.lookup(baselines.key("warmstart", task.name, (5,),
                                          grid.model_dump_json())) is None


def test_the_baseline_calibrated_as_a_program_is_its_own_baseline(monkeypatch, tmp_path) -> None:
    """A search's warm start is calibrated by WIDE, as the baseline is: it is trained
    once, not again for its baseline, and what it found is the machine's baseline."""
    task = tasks.get("quadratic/A")
    expected = calibrated_baseline(task, (7,))  # computed the usual way, then forgotten
    monkeypatch.setenv("OPTSEARCH_CACHE_DIR", str(tmp_path))
    calibrated_baseline.cache_clear()
    calls = []
    real = evaluate_module.run_engine_grid
    monkeypatch.setattr(evaluate_module, "run_engine_grid",
                        lambda *a, **kw: calls.append(a[3]) or real(*a, **kw))
    r = evaluate(library.get("warmstart"), task, (7,), lr_grid=WIDE)
    assert sorted(m for batch in calls for m in batch) == sorted(m for m, _ in r.lr_grid)
    assert r.fitness == 0.0 and r.baseline == expected.metric
    assert r.baseline_lr == r.lr_multiplier == expected.lr_multiplier
    calibrated_baseline.cache_clear()
    calls.clear()
    assert calibrated_baseline(task, (7,)) == expected and not calls  # stored on the machine
    # another program, or the warm start around a centre, is scored against it, untouched
    other = evaluate(library.get("warmstart"), task, (7,), lr_grid=WIDE, centre=10.0)
    assert other.baseline == expected.metric


def test_evaluate_all_calibrates_each_task_around_its_centre() -> None:
    grid = LrGrid(points=3, ratio=10.0)
    lines = []
    results, combined = evaluate_all(library.get("warmstart"), ["quadratic/A"], (0, 1),
                                     lr_grid=grid, centres={"quadratic/A": 10.0},
                                     progress=lines.append)
    assert [m for m, _ in results[0].lr_grid] == [1.0, 10.0, 100.0]
    assert combined == results[0].fitness
    assert results[0] == evaluate(library.get("warmstart"), "quadratic/A", (0, 1),
                                  lr_grid=grid, centre=10.0).model_copy(
        update={"wall_time": results[0].wall_time, "compile_time": results[0].compile_time})
    assert len(lines) == 1 and lines[0].startswith("quadratic/A: metric ")
    assert " at lr x" in lines[0]


def test_evaluate_all_until_failure_trains_no_task_after_the_first_failure() -> None:
    blows_up = parse("def train(w, g, lr, t):\n  u = g * 1000000.0\n  return u\n")
    tasks = ["quadratic/A", "quadratic/B"]
    every, combined = evaluate_all(blows_up, tasks, (0,))
    assert [r.task for r in every] == tasks and combined == FAILED
    first, combined = evaluate_all(blows_up, tasks, (0,), until_failure=True)
    assert [r.task for r in first] == ["quadratic/A"] and first[0].diverged
    assert combined == FAILED
    ok, combined = evaluate_all(library.get("warmstart"), tasks, (0,), until_failure=True)
    assert [r.task for r in ok] == tasks and abs(combined) < 1e-6
