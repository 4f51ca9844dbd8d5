"""Tests for evaluators/tasks: the registry, data, schedules, and that tasks train."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dsl import library
from evaluators import catalog, evaluate, tasks


def test_registry() -> None:
    assert {"mlp_mnist1d/A", "transformer_lm/B", "cnn_digits/C", "quadratic/A"} <= set(
        tasks.names())
    assert tasks.held_out() == [f"{f}/{t}" for f in ("autoencoder_digits", "cnn_digits")
                                for t in "ABC"]
    assert set(catalog.DEFAULT_HELD_OUT) <= set(tasks.held_out())
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
    for name in ["mlp_mnist1d/A", "transformer_lm/A", "cnn_digits/A", "autoencoder_digits/A"]:
        a, b = tasks.get(name).data(), tasks.get(name).data()
        for x, y in zip(a.train + a.val, b.train + b.val, strict=True):
            np.testing.assert_array_equal(x, y)
    lm = tasks.get("transformer_lm/A").data()
    assert lm.train[0].shape == (32768, 33) and lm.val[0].shape == (1024, 33)
    assert lm.train[0].max() < 32
    mnist = tasks.get("mlp_mnist1d/A").data()
    assert mnist.train[0].shape == (40000, 40) and mnist.val[0].shape == (10000, 40)
    assert mnist.train[0].dtype == np.float32 and set(np.unique(mnist.train[1])) == set(range(10))


def test_the_language_is_second_order() -> None:
    """The next token depends on the previous two, beyond what the previous one says:
    a model must use both (and attention for the copies) to approach the floor."""
    seqs = tasks.get("transformer_lm/A").data().train[0]
    prev2, prev1, nxt = seqs[:, :-2].ravel(), seqs[:, 1:-1].ravel(), seqs[:, 2:].ravel()

    def entropy(context: np.ndarray) -> float:
        joint = np.zeros((context.max() + 1, 32))
        np.add.at(joint, (context, nxt), 1)
        p = joint / joint.sum()
        cond = joint / np.maximum(joint.sum(1, keepdims=True), 1)
        return float(-(p[p > 0] * np.log(cond[p > 0])).sum())

    bigram, trigram = entropy(prev1), entropy(prev2 * 32 + prev1)
    assert 2.0 < bigram < np.log(32) - 0.5 and trigram < bigram - 0.3, (bigram, trigram)


def test_generated_data_is_made_once_per_machine(tmp_path, monkeypatch) -> None:
    from evaluators.tasks import datacache

    calls = []

    def make():
        calls.append(1)
        return {"x": np.arange(4.0)}

    assert datacache.arrays("t-v1", make, tmp_path)["x"].tolist() == [0, 1, 2, 3]
    assert datacache.arrays("t-v1", make, tmp_path)["x"].tolist() == [0, 1, 2, 3]
    assert len(calls) == 1
    (tmp_path / "data" / "t-v1.npz").write_bytes(b"torn")  # a torn file is made again
    assert datacache.arrays("t-v1", make, tmp_path)["x"].tolist() == [0, 1, 2, 3]
    assert len(calls) == 2


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
