"""Tests for evaluators/evaluate.py: results, failures, idempotence."""

from __future__ import annotations

import pytest

from dsl import library, parse
from evaluators import FAILED, evaluate, evaluate_all, evaluate_batch


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
