"""The update's scale folded into the learning rate: the same updates, fewer constants."""

import jax.numpy as jnp
import numpy as np
import pytest

from dsl import library, parse
from dsl.interpreter import init_leaf, step_leaf
from dsl.scale import fold_scale
from search.config import MutationConfig
from search.mutation import mutate


def _updates(program, lr: float, steps: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    w = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
    states = init_leaf(program, w)
    out = []
    for t in range(1, steps + 1):
        g = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
        update, states = step_leaf(program, w, g, jnp.float32(lr), jnp.float32(t), states)
        out.append(np.asarray(update))
        w = w - update
    return out


def _fold(program):
    folded = fold_scale(program)
    return folded.program, folded.factor


def _same(p, q, factor, lr=0.7) -> None:
    for a, b in zip(_updates(p, lr), _updates(q, lr * factor), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-7)


def test_a_constant_on_the_update_is_folded():
    p = parse("def train(w, g, lr, m):\n  m = interp(g, m, 0.9)\n  s = sign(m)\n"
              "  u = s * 0.0003\n  u = u * lr\n  return u, m")
    q, factor = _fold(p)
    assert factor == pytest.approx(0.0003)
    assert all(0.0003 not in st.args for st in q.statements)
    assert len(q.statements) == len(p.statements) - 1
    _same(p, q, factor)


def test_constants_on_lr_and_a_divisor_fold_together():
    p = parse("def train(w, g, lr):\n  a = lr * 4.0\n  d = g / 2.0\n  u = d * a\n  return u")
    q, factor = _fold(p)
    assert factor == pytest.approx(2.0)
    assert [st.op for st in q.statements] == ["mul"]
    _same(p, q, factor)


def test_decoupled_weight_decay_is_divided_by_the_folded_constant():
    p = parse("def train(w, g, lr, m):\n  m = interp(g, m, 0.9)\n  s = m * 0.01\n"
              "  d = w * 0.001\n  s = s + d\n  u = s * lr\n  return u, m")
    q, factor = _fold(p)
    assert factor == pytest.approx(0.01)
    decay = next(st for st in q.statements if "w" in st.args)
    assert decay.args[1] == pytest.approx(0.1)  # 0.001 / 0.01: the same decay per step
    _same(p, q, factor)


@pytest.mark.parametrize("source", [
    # lr read twice: the update is not lr times the rest
    "def train(w, g, lr):\n  a = g * lr\n  b = a * 3.0\n  u = b + lr\n  return u",
    # the constant's value is read twice: it is not only the update's scale
    "def train(w, g, lr, m):\n  a = m * 0.5\n  m = a + g\n  u = a * lr\n  return u, m",
    # a negative constant would make the learning rate negative
    "def train(w, g, lr):\n  a = g * -2.0\n  u = a * lr\n  return u",
    # a constant inside a nonlinearity is not a scale
    "def train(w, g, lr):\n  a = g * 3.0\n  s = sign(a)\n  u = s * lr\n  return u",
])
def test_what_is_not_only_a_scale_stays(source):
    p = parse(source)
    q, factor = _fold(p)
    assert factor == 1.0 and q == p


def test_named_constants_keep_their_names_where_they_stay():
    """A file's named constants map to the folded program's statements; a folded one's
    name goes with it."""
    from dsl.export import hyperparameter_sites

    text = ("b1 = 0.9\nscale = 0.01\ndef train(w, g, lr, m):\n  m = interp(g, m, b1)\n"
            "  u = m * scale\n  u = u * lr\n  return u, m")
    folded = fold_scale(parse(text))
    names = folded.sites(hyperparameter_sites(text))
    assert names == {(0, 2): "b1"}
    assert folded.program.statements[0].args[2] == 0.9


def test_the_warm_starts_scale_on_lr_is_folded():
    """The warm start carries its step as ``lr = lr * 0.001``: exported, lr is the step."""
    q, factor = _fold(library.get("warmstart"))
    assert factor == pytest.approx(0.001)
    assert [st.target for st in q.statements].count("lr") == 0


def test_library_programs_keep_their_updates():
    for name in library.names():
        p = library.get(name)
        q, factor = _fold(p)
        _same(p, q, factor)


def test_mutated_programs_keep_their_updates():
    """A property over a search's own proposals, each with a scale appended to its
    update: folding never changes an update."""
    from dsl.program import Program, Statement

    rng = np.random.default_rng(3)
    cfg = MutationConfig()
    folded = 0
    p = library.get("warmstart")
    for _ in range(200):
        child, _ = mutate(p, rng, cfg)
        out = child.outputs[0]
        scaled = Program.model_construct(
            states=child.states, outputs=child.outputs,
            statements=(*child.statements, Statement(out, "mul", (out, 0.37))))
        q, factor = _fold(scaled)
        child = scaled

        if factor != 1.0:
            folded += 1
            with np.errstate(all="ignore"):
                a, b = _updates(child, 0.3), _updates(q, 0.3 * factor)
            for x, y in zip(a, b, strict=True):
                ok = np.isfinite(x)
                np.testing.assert_allclose(x[ok], y[ok], rtol=1e-4, atol=1e-6)
        p = child if rng.random() < 0.5 else p
    assert folded >= 5  # the property was exercised, not vacuous
