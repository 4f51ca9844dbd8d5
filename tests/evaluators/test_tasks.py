"""Tests for evaluators/tasks: the registry, data, schedules, and that tasks train."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dsl import library
from evaluators import evaluate, tasks


def test_registry() -> None:
    assert {"mlp_mnist1d/A", "transformer_lm/B", "cnn_digits/C", "quadratic/A"} <= set(
        tasks.names())
    assert tasks.held_out() == ["cnn_digits/A", "cnn_digits/B", "cnn_digits/C"]
    assert [n for n in tasks.names() if tasks.get(n).held_out] == tasks.held_out()
    with pytest.raises(ValueError, match="unknown task 'mlp/A'.*mlp_mnist1d/A"):
        tasks.get("mlp/A")


def test_tiers_grow() -> None:
    for family in tasks.FAMILIES:
        sizes = []
        for tier in tasks.TIERS:
            task = tasks.get(f"{family}/{tier}")
            params = task.init(np.random.default_rng(0))
            sizes.append(sum(x.size for x in jax.tree.leaves(params)) * task.steps)
        assert sizes[0] * 4 < sizes[1] and sizes[1] * 4 < sizes[2], family


def test_data_is_deterministic_and_local() -> None:
    for name in ["mlp_mnist1d/A", "transformer_lm/A", "cnn_digits/A"]:
        a, b = tasks.get(name).data(), tasks.get(name).data()
        for x, y in zip(a.train + a.val, b.train + b.val, strict=True):
            np.testing.assert_array_equal(x, y)
    lm = tasks.get("transformer_lm/A").data()
    assert lm.train[0].shape == (4096, 33) and lm.train[0].max() < 32


def test_schedule_warms_up_then_decays() -> None:
    task = tasks.get("mlp_mnist1d/A")
    lr = np.asarray(jax.vmap(task.schedule)(jnp.arange(task.steps)))
    peak = int(np.argmax(lr))
    assert lr[0] < 0.05 and lr[peak] == pytest.approx(1.0, abs=1e-3)
    assert 0 < peak < 0.1 * task.steps
    assert np.all(np.diff(lr[peak:]) <= 1e-7) and lr[-1] < 1e-3


@pytest.mark.parametrize("name", [n for n in tasks.names() if n.endswith("/A")])
def test_warm_start_clearly_improves_every_task(name: str) -> None:
    task = tasks.get(name)
    val = tuple(map(jnp.asarray, task.data().val))
    before = np.mean([float(task.metric(task.draws(s)[0], val)) for s in (0, 1)])
    result = evaluate(library.get("warmstart"), task)
    assert not result.diverged and result.fitness == 0.0
    after = np.mean(result.metrics)
    assert after < 0.7 * before, (name, before, after)
