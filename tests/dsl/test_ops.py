"""Tests for dsl/ops.py: the function set, its domains and shape rules."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from dsl import ops

LION_SET = [
    "abs", "cos", "sin", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
    "arcsinh", "arccosh", "arctanh", "exp", "exp2", "exp10", "expm1", "log", "log10", "log2",
    "log1p", "square", "sqrt", "cube", "cbrt", "sign", "reciprocal", "norm", "invert",
    "negative", "global_norm", "interp", "dot", "cosine_sim", "clip_by_global_norm", "power",
    "clip", "add", "sub", "mul", "div", "max", "min",
]


def test_lion_function_set_is_complete() -> None:
    assert set(LION_SET) <= set(ops.OPS)
    assert {"pi", "e", "eps"} == set(ops.CONSTANTS)
    assert len(LION_SET) + len(ops.CONSTANTS) == 46  # the paper's 45, plus clip
    assert ops.CONSTANTS["eps"] == 1e-8


def test_infix_table() -> None:
    assert ops.INFIX == {"+": "add", "-": "sub", "*": "mul", "/": "div"}


def f(name: str, *args):
    with np.errstate(all="ignore"):
        return ops.OPS[name].fn(np, *[np.asarray(a, dtype=np.float64) for a in args])


def test_domain_choices() -> None:
    assert f("log", -np.e) == pytest.approx(1.0)
    assert f("sqrt", -4.0) == 2.0
    assert f("log1p", -1.0) == pytest.approx(np.log(2.0))
    assert np.isnan(f("arcsin", 2.0))
    assert np.isinf(f("reciprocal", 0.0))
    np.testing.assert_array_equal(f("clip", [-3.0, 0.5, 3.0], -1.0), [-1.0, 0.5, 1.0])
    assert f("invert", 0.25) == 0.75
    np.testing.assert_allclose(f("norm", [3.0, 4.0]), [0.6, 0.8])
    np.testing.assert_array_equal(f("norm", [0.0, 0.0]), [0.0, 0.0])
    assert f("global_norm", [3.0, 4.0]) == 5.0
    assert f("cosine_sim", [1.0, 0.0], [0.0, 0.0]) == 0.0
    assert f("cosine_sim", [1.0, 1.0], [2.0, 2.0]) == pytest.approx(1.0)
    assert f("interp", 2.0, 4.0, 0.25) == 2.5
    assert f("mod", 12.0, 5.0) == 2.0 and f("mod", -1.0, 5.0) == 4.0
    assert f("where", 0.0, 1.0, 2.0) == 2.0 and f("where", -3.0, 1.0, 2.0) == 1.0
    assert f("gt", 2.0, 1.0) == 1.0 and f("le", 2.0, 1.0) == 0.0 and f("eq", 1.0, 1.0) == 1.0
    np.testing.assert_allclose(f("clip_by_global_norm", [3.0, 4.0], 1.0), [0.6, 0.8])
    np.testing.assert_array_equal(f("clip_by_global_norm", [0.0, 0.0], 1.0), [0.0, 0.0])
    assert f("rms", [3.0, 4.0]) == pytest.approx(np.sqrt(12.5))


@pytest.mark.parametrize("name", sorted(ops.OPS))
def test_numpy_and_jax_implementations_agree(name: str) -> None:
    op = ops.OPS[name]
    rng = np.random.default_rng(7)
    shape = (130, 128) if op.factored else (6, 5)
    args = [rng.uniform(0.2, 0.9, shape) for _ in range(op.arity)]
    if name == "unfactor":
        like = args[2]
        args = [ops.OPS["factor_row"].apply(np, like), ops.OPS["factor_col"].apply(np, like),
                like]
    if op.kinds[-1] == "scalar":
        args[-1] = np.float64(0.5)
    with np.errstate(all="ignore"):
        expected = op.apply(np, *args)
    got = op.apply(jnp, *[jnp.asarray(a, dtype=jnp.float32) for a in args])
    np.testing.assert_allclose(np.asarray(got), expected, rtol=2e-5, atol=1e-6)


def test_factored_dims_follow_optax() -> None:
    from optax._src import factorized

    for shape in [(256, 128), (128, 256), (1024, 1024), (64, 512), (3, 200, 130), (128,), ()]:
        assert ops.factored_dims(shape) == factorized._factored_dims(shape, True, 128), shape


def test_elementwise_shape_rule() -> None:
    assert ops.elementwise((3, 2), (), (3, 2)) == (3, 2)
    assert ops.elementwise((), None) is None
    assert ops.elementwise((), ()) == ()
    with pytest.raises(ops.ShapeError, match=r"\(3, 2\) and \(2,\) differ"):
        ops.elementwise((3, 2), (2,))


def test_factored_shapes_and_values() -> None:
    x = np.random.default_rng(0).uniform(1, 2, (256, 128))
    kw = {"min_dim": 128}
    r, c = ops.OPS["factor_row"].fn(np, x, **kw), ops.OPS["factor_col"].fn(np, x, **kw)
    assert r.shape == (128,) and c.shape == (256,)
    v = ops.OPS["unfactor"].fn(np, r, c, x, **kw)
    np.testing.assert_allclose(v, np.outer(c, r) / r.mean())
    vec = np.arange(1.0, 4.0)
    assert ops.OPS["factor_row"].fn(np, vec, **kw) is vec
    assert ops.OPS["factor_col"].fn(np, vec, **kw) == 2.0
    assert ops.OPS["factor_row"].shape((256, 128), min_dim=128) == (128,)
    assert ops.OPS["factor_col"].shape((256, 128), min_dim=128) == (256,)
    with pytest.raises(ops.ShapeError, match="needs"):
        ops.OPS["unfactor"].shape((256,), (256,), (256, 128), min_dim=128)
