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


#: The edit: a new elementwise function and a new leaf-reducing one, each one
#: registration at the end of dsl/ops.py.
EDIT = """

register(100, "softsign", 1, lambda xp, x: x / (1.0 + xp.abs(x)), "x / (1 + |x|)",
         code="{0} / (1.0 + xp.abs({0}))")
register(101, "l1", 1, lambda xp, x: xp.sum(xp.abs(x)), "sum of |x| over the leaf",
         shape=to_scalar, reduces=True, code="xp.sum(xp.abs({0}))",
         flat=lambda seg, x: seg.sum(seg.xp.abs(x), 0))
"""

#: Each function through every semantics the project has, in a copy of the project
#: whose dsl/ops.py has the edit.
ONE_EDIT = r'''
import pathlib

import numpy as np
import jax.numpy as jnp
import torch

from dsl import abstract, library, ops, parse, to_optax
from dsl.export import export_source
from search.generate import random_program
from tests.dsl.test_abstract import PINNED
from tests.dsl.test_export import assert_rule_agrees, load_generated
from tests.evaluators.test_engine import TINY_LR, agree

TEXT = """def train(w, g, lr, t, m):
  m = interp(g, m, 0.9)
  s = softsign(m)
  n = l1(g)
  n = n + 1.0
  u = s / n
  u = u * lr
  return u, m
"""
assert pathlib.Path(ops.__file__).is_relative_to(TMP), ops.__file__  # the edited copy
p = parse(TEXT)
assert parse(p.to_source()) == p
assert abstract.check(p, (8, 4)).states["m"].shape == (8, 4)
assert abstract.check(p, ()).states["m"].shape == ()
for old, new in [("softsign", "tanh"), ("l1", "global_norm")]:  # each function tells apart
    other = parse(TEXT.replace(f"= {old}(", f"= {new}("))
    assert abstract.structural_hash(other) != abstract.structural_hash(p), old
    assert abstract.fingerprint(other) != abstract.fingerprint(p), old
for name, (structure, fingerprint) in PINNED.items():  # no library hash moved
    fresh = parse(library.source(name))
    assert abstract.structural_hash(fresh) == structure, name
    assert abstract.fingerprint(fresh) == fingerprint, name

# the JAX meaning: one step by hand
params, grads = {"w": jnp.ones((3, 2))}, {"w": jnp.full((3, 2), 0.5)}
opt = to_optax(p, learning_rate=0.1)
updates, _ = opt.update(grads, opt.init(params), params)
m = 0.1 * 0.5
np.testing.assert_allclose(updates["w"], -0.1 * (m / (1 + m)) / (6 * 0.5 + 1.0), rtol=1e-6)

agree(p, TINY_LR, rtol=1e-5)  # the engine (its flat twin of l1) equals to_optax

module = load_generated(export_source(p, "found"), "found", pathlib.Path(TMP))
state = module.found(learning_rate=0.1).init(params)
exported, _ = module.found(learning_rate=0.1).update(grads, state, params)
np.testing.assert_allclose(exported["w"], updates["w"], rtol=1e-6)
assert_rule_agrees(p, pathlib.Path(TMP), "numpy")  # the PyTorch rule
w = torch.ones(3, 2, requires_grad=True)
w.grad = torch.full((3, 2), 0.5)
module.Found([w], lr=0.1).step()
np.testing.assert_allclose(w.detach().numpy(), 1.0 + np.asarray(updates["w"]), rtol=1e-6)

# a search proposes it: random programs use both functions
used = {st.op for k in range(300) for st in random_program(np.random.default_rng(k), 8).statements}
assert {"softsign", "l1"} <= used, sorted(used)
print("one edit: ok")
'''


def test_adding_a_function_is_one_edit(tmp_path) -> None:
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for package in ("dsl", "evaluators", "search", "tests"):
        shutil.copytree(root / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    with open(tmp_path / "dsl" / "ops.py", "a") as f:
        f.write(EDIT)
    r = subprocess.run([sys.executable, "-c", f"TMP = {str(tmp_path)!r}\n{ONE_EDIT}"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "one edit: ok" in r.stdout, r.stdout + r.stderr[-3000:]


def test_a_leaf_reducing_function_needs_its_engine_twin(monkeypatch) -> None:
    monkeypatch.setattr(ops, "OPS", dict(ops.OPS))
    monkeypatch.setattr(ops, "RESERVED", set(ops.RESERVED))
    with pytest.raises(ValueError, match="'l1' reduces over the leaf but has no engine twin"):
        ops.register(101, "l1", 1, lambda xp, x: xp.sum(xp.abs(x)), "sum |x|",
                     shape=ops.to_scalar, reduces=True)
    assert "l1" not in ops.OPS and "l1" not in ops.RESERVED
