"""Tests for evaluators/tuning.py: the tuned baselines, the judge of every fitness."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dsl import library
from evaluators import evaluate
from evaluators.grid import LrGrid
from evaluators.tuning import SPACES, Axis, Protocol, _points, cached, tune

TASK, SEEDS = "quadratic/A", (0, 1)
PROTOCOL = Protocol(trials=8)


@pytest.fixture(scope="module")
def tuned():
    return tune("adamw", TASK, SEEDS, PROTOCOL)


def _vs(tuned, **changes):
    """AdamW at the tuned constants with ``changes``, at its best learning rate around
    the tuned one, against the tuned baseline: (fitness, standard error of the per-seed
    log-ratios)."""
    r = evaluate(library.get("adamw", **(tuned.hyperparameters | changes)), TASK, SEEDS,
                 lr_grid=LrGrid(points=3, ratio=10 ** 0.5, refine=2),
                 centre=tuned.lr_multiplier, baseline_value=tuned.metric)
    ratios = np.log(np.array(tuned.metrics) / np.array(r.metrics))
    return r.fitness, float(np.std(ratios, ddof=1) / math.sqrt(len(ratios)))


def test_adamw_at_its_tuned_constants_scores_zero(tuned) -> None:
    r = evaluate(tuned.tuned_program(), TASK, SEEDS,
                 lr_grid=LrGrid(points=1, centre=tuned.lr_multiplier),
                 baseline_value=tuned.metric)
    assert r.fitness == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("change", ["b2", "weight_decay"])
def test_adamw_with_other_constants_scores_below_it_beyond_noise(tuned, change) -> None:
    value = 0.9 if change == "b2" else 10 * tuned.hyperparameters["weight_decay"]
    fitness, se = _vs(tuned, **{change: value})
    assert fitness < -2 * se and fitness < 0


def test_the_protocol_spends_its_budget_and_keeps_every_trial(tuned) -> None:
    assert len(tuned.trials) == PROTOCOL.trials + 1  # the defaults, then the quasi-random
    assert tuned.trials[0].hyperparameters == {"b1": 0.9, "b2": 0.999, "weight_decay": 1e-4}
    assert set(tuned.hyperparameters) == {"b1", "b2", "weight_decay"}
    best = min(t.metric for t in tuned.trials if t.metric is not None)
    assert tuned.metric <= best * 1.001  # refined on the learning rate: no worse
    assert tuned.default_metric == tuned.trials[0].metric
    assert tuned.protocol == "8 quasi-random trials x 3 learning rates"


def test_a_second_tuning_answers_from_the_cache_without_training(tuned, monkeypatch) -> None:
    import importlib

    ev = importlib.import_module("evaluators.evaluate")  # the module, not the function

    def no_training(*a, **k):
        raise AssertionError("trained again")

    monkeypatch.setattr(ev, "evaluate", no_training)
    monkeypatch.setattr(ev, "calibrated_baseline", no_training)
    again = tune("adamw", TASK, SEEDS, PROTOCOL)
    assert again.seconds == 0.0 and again.metric == tuned.metric
    assert again.hyperparameters == tuned.hyperparameters
    assert cached("adamw", TASK, SEEDS, Protocol(trials=9)) is None  # another protocol


def test_axes_cover_their_range_on_the_right_scale() -> None:
    beta = Axis(name="b2", low=0.5, high=0.9999, complement=True)
    assert beta.value(0.0) == 0.5 and beta.value(0.999999) == pytest.approx(0.9999, abs=1e-6)
    assert beta.value(0.5) == pytest.approx(1 - math.sqrt(1e-4 * 0.5), rel=1e-3)  # log middle
    decay = Axis(name="weight_decay", low=1e-5, high=1.0)
    assert decay.value(0.0) == pytest.approx(1e-5) and decay.value(0.6) == pytest.approx(1e-2)


def test_the_quasi_random_points_are_the_same_on_every_call() -> None:
    a = _points(16, 3, 0)
    _points.cache_clear()
    assert _points(16, 3, 0) == a and _points(16, 3, 1) != a
    assert all(0 <= x < 1 for row in a for x in row) and len(set(a)) == 16


def test_every_space_names_hyperparameters_its_program_has() -> None:
    from dsl.export import hyperparameters_of

    for name, space in SPACES.items():
        declared = hyperparameters_of(library.source(name))
        for axis in space:
            assert axis.name in declared, (name, axis.name)
            assert axis.low < axis.high


def test_the_default_searchs_judge_on_its_real_tasks() -> None:
    """AdamW tuned by the default protocol on the default search's tasks and seeds beats
    its library defaults beyond the seeds' noise, and the language model, whose seeds
    agree far more, weighs most."""
    from evaluators.fitness import weights
    from evaluators.tuning import PROTOCOL
    from search.config import SearchConfig

    cfg = SearchConfig()
    tuned = {t: tune("adamw", t, tuple(cfg.seeds), PROTOCOL) for t in cfg.tasks}
    for t in tuned.values():
        assert t.seed_noise is not None and t.seed_noise > 0
        gain = math.log(t.default_metric / t.metric)
        assert gain > 2 * t.seed_noise / math.sqrt(len(t.seeds)), (t.task, gain, t.seed_noise)
        assert set(t.hyperparameters) == {"b1", "b2", "weight_decay"}
    w = weights(cfg.tasks, {t: v.seed_noise for t, v in tuned.items()})
    assert w["transformer_lm/A"] > w["mlp_mnist1d/A"]
