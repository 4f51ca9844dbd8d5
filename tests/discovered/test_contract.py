"""The contract every exported optimizer must keep.

optax's own contract tests (tests/optax_suite.py), parity with the interpreter
(100 steps, rtol 1e-5), dtype kept, no recompilation on the second update, the
PyTorch class equal to the optax recipe; for Lion, parity with optax.lion
and with a reference PyTorch Lion step written here; for Muon, parity with
optax.contrib.muon and with a reference PyTorch Muon step written here. PyTorch's conventions are
in test_torch_conventions.py.

It covers the modules committed in ``discovered/`` (``COMMITTED``) and any
module it is pointed at, wherever it lies; an export a user writes into
``discovered/`` is not tested unless pointed at:

    python -m pytest tests/discovered --module ./discovered/found.py
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dsl import parse
from dsl.interpreter import to_optax
from tests import optax_suite
from tests.discovered.exports import COMMITTED, PACKAGE, load, optimizer_name, path_of, torch_class
from tests.jit import jitted_updates

SUITE = optax_suite.load()
LR = 1e-3


def pytest_generate_tests(metafunc) -> None:
    """``case`` runs over optax's contract tests (tests/optax_suite.py); ``name``
    over the exports (conftest.py)."""
    if "case" in metafunc.fixturenames:
        cases = optax_suite.cases(SUITE) if SUITE is not None else []
        metafunc.parametrize("case", cases, ids=[c.id for c in cases])


#: Leaf shapes: a matrix Adafactor factors (both dimensions >= 128), one it does
#: not, a vector and a scalar.
SHAPES = [(256, 128), (64, 32), (32,), ()]


#: For Muon: a wide matrix (scaled by sqrt(80 / 48)), a tall one (transposed), a
#: vector and a scalar (AdamW's).
MUON_SHAPES = [(48, 80), (64, 32), (32,), ()]


def tree(rng: np.random.Generator, scale: float = 1.0, dtype=jnp.float32, shapes=SHAPES):
    return {f"p{k}": jnp.asarray(scale * rng.standard_normal(s), dtype)
            for k, s in enumerate(shapes)}


def trajectory(opt, steps: int = 100, shapes=SHAPES):
    rng = np.random.default_rng(0)
    params = tree(rng, 0.1, shapes=shapes)
    grads = [tree(rng, shapes=shapes) for _ in range(steps)]
    state = opt.init(params)
    update = jax.jit(opt.update)
    for g in grads:
        u, state = update(g, state, params)
        params = optax.apply_updates(params, u)
    return params


def close(a, b, rtol=1e-5) -> bool:
    return all(np.allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=rtol,
                           atol=1e-7)
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def test_the_committed_modules_exist() -> None:
    assert [p.stem for p in sorted(PACKAGE.glob("*.py")) if p.stem in COMMITTED] == COMMITTED


def test_module_is_self_contained(name: str) -> None:
    text = path_of(name).read_text(encoding="utf-8")
    for forbidden in ("import dsl", "from dsl", "import search", "from search", "evaluators",
                      "eval(", "exec("):
        assert forbidden not in text, forbidden


def test_parity_with_the_interpreter(name: str) -> None:
    module = load(name)
    ours = trajectory(getattr(module, optimizer_name(name))(LR))
    reference = trajectory(to_optax(parse(module.SOURCE), LR))
    assert close(ours, reference)


def test_optax_contract_suite(name: str, case: optax_suite.Case,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """optax's own tests of contributed optimizers (``optax/contrib/_common_test.py``,
    read from the installed optax; tests/dsl/test_optax_contract.py checks it is
    there) on the module's optax recipe, at its default learning rate if it has
    one (a calibrated export), else at the suite's 1e-3."""
    recipe = getattr(load(name), optimizer_name(name))
    default = inspect.signature(recipe).parameters["learning_rate"].default
    lr = LR if default is inspect.Parameter.empty else default
    optax_suite.run(SUITE, case, f"optsearch_{optimizer_name(name)}", recipe,
                    {"learning_rate": lr}, monkeypatch)


def test_dtype_is_kept_and_no_recompilation(name: str) -> None:
    opt = getattr(load(name), optimizer_name(name))(LR)
    rng = np.random.default_rng(1)
    params = tree(rng, 0.1, jnp.bfloat16)
    grads = [tree(rng, 1.0, jnp.bfloat16) for _ in range(2)]
    traces, updates, _ = jitted_updates(opt, params, grads)
    assert traces == 1
    assert all(u.dtype == jnp.bfloat16 for u in jax.tree.leaves(updates))


torch = pytest.importorskip("torch")


def torch_run(cls, steps: int = 20, state_dict=None, shapes=SHAPES, **kw):
    rng = np.random.default_rng(0)
    params = [torch.nn.Parameter(torch.tensor(0.1 * rng.standard_normal(s), dtype=torch.float32))
              for s in shapes]
    opt = cls(params, **kw)
    grads = [[torch.tensor(rng.standard_normal(tuple(p.shape)), dtype=torch.float32)
              for p in params] for _ in range(steps)]
    return params, opt, grads


def torch_steps(params, opt, grads):
    for gs in grads:
        for p, g in zip(params, gs, strict=True):
            p.grad = g.clone()
        opt.step()
    return [p.detach().numpy().copy() for p in params]


def test_torch_class_equals_the_optax_recipe(name: str) -> None:
    module = load(name)
    cls = torch_class(module, name)
    params, opt, grads = torch_run(cls, lr=LR)
    got = torch_steps(params, opt, grads)
    jparams = {str(k): jnp.asarray(p.detach().numpy()) for k, p in enumerate(torch_run(cls,
                                                                                      lr=LR)[0])}
    jopt = getattr(module, optimizer_name(name))(LR)
    state = jopt.init(jparams)
    for gs in grads:
        g = {str(k): jnp.asarray(x.numpy()) for k, x in enumerate(gs)}
        u, state = jopt.update(g, state, jparams)
        jparams = optax.apply_updates(jparams, u)
    for k, array in enumerate(got):
        np.testing.assert_allclose(array, np.asarray(jparams[str(k)]), rtol=1e-5, atol=1e-6)


def test_lion_matches_optax_lion() -> None:
    lion = load("lion")
    for kw in [{}, {"b1": 0.95, "b2": 0.98, "weight_decay": 0.1}]:
        assert close(trajectory(lion.lion(LR, **kw)), trajectory(optax.lion(LR, **kw)))


def reference_torch_lion_step(params, lr, b1, b2, wd, state):
    """Lion as its paper's pseudocode reads, in plain PyTorch."""
    with torch.no_grad():
        for p in params:
            m = state.setdefault(p, torch.zeros_like(p))
            update = (b1 * m + (1 - b1) * p.grad).sign_()
            p.add_(update + wd * p, alpha=-lr)
            m.mul_(b2).add_(p.grad, alpha=1 - b2)


def test_lion_matches_a_reference_pytorch_step() -> None:
    cls = load("lion").Lion
    params, opt, grads = torch_run(cls, lr=LR, b1=0.9, b2=0.99, weight_decay=0.01)
    got = torch_steps(params, opt, grads)
    ref_params, _, _ = torch_run(cls, lr=LR)
    state = {}
    for gs in grads:
        for p, g in zip(ref_params, gs, strict=True):
            p.grad = g.clone()
        reference_torch_lion_step(ref_params, LR, 0.9, 0.99, 0.01, state)
    for a, p in zip(got, ref_params, strict=True):
        np.testing.assert_allclose(a, p.detach().numpy(), rtol=1e-5, atol=1e-7)


def test_muon_matches_optax_contrib_muon() -> None:
    muon = load("muon")
    other = {"beta": 0.9, "adam_b1": 0.8, "adam_b2": 0.95, "epsilon": 1e-6}
    for kw in [{}, other]:
        reference = optax.contrib.muon(LR, **{{"epsilon": "eps"}.get(k, k): v
                                             for k, v in kw.items()})
        assert close(trajectory(muon.muon(LR, **kw), shapes=MUON_SHAPES),
                     trajectory(reference, shapes=MUON_SHAPES))


def reference_torch_muon_step(params, lr, state, beta=0.95, b1=0.9, b2=0.999, eps=1e-8):
    """Muon in plain PyTorch, as Jordan et al. write it for a weight matrix (Nesterov
    momentum, five Newton-Schulz steps, times sqrt(max(1, fan_out / fan_in)) for
    y = x W), with optax.contrib.muon's bias correction; Nesterov AdamW on the rest."""
    with torch.no_grad():
        for p in params:
            s = state.setdefault(p, {"t": 0, "m": torch.zeros_like(p), "v": torch.zeros_like(p)})
            s["t"] += 1
            t, g = s["t"], p.grad
            mom = beta if p.ndim == 2 else b1
            s["m"].lerp_(g, 1 - mom)
            u = mom * s["m"] / (1 - mom ** (t + 1)) + (1 - mom) * g / (1 - mom ** t)
            if p.ndim == 2:
                x = u.T if p.shape[0] > p.shape[1] else u
                x = x / (x.norm() + 1e-8)
                for _ in range(5):
                    a = x @ x.T
                    x = 3.4445 * x + (-4.775 * a + 2.0315 * a @ a) @ x
                x = x.T if p.shape[0] > p.shape[1] else x
                p.add_(x * max(1.0, p.shape[1] / p.shape[0]) ** 0.5, alpha=-lr)
            else:
                s["v"].lerp_(g * g, 1 - b2)
                p.add_(u / ((s["v"] / (1 - b2 ** t)).sqrt() + eps), alpha=-lr)


def test_muon_matches_a_reference_pytorch_step() -> None:
    """(torch.optim.Muon is another rule: no bias correction, its shape scale for
    PyTorch's (out, in) weights, and 2-D parameters only.)"""
    cls = load("muon").Muon
    params, opt, grads = torch_run(cls, shapes=MUON_SHAPES, lr=LR)
    got = torch_steps(params, opt, grads)
    ref_params, _, _ = torch_run(cls, shapes=MUON_SHAPES, lr=LR)
    state = {}
    for gs in grads:
        for p, g in zip(ref_params, gs, strict=True):
            p.grad = g.clone()
        reference_torch_muon_step(ref_params, LR, state)
    for a, p in zip(got, ref_params, strict=True):
        np.testing.assert_allclose(a, p.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(got[0], torch_run(cls, shapes=MUON_SHAPES, lr=LR)[0][0].detach())


def test_adafactor_matches_optax_adafactor_and_keeps_factored_state() -> None:
    adafactor = load("adafactor")
    ours = adafactor.adafactor(LR)
    reference = optax.adafactor(LR, multiply_by_parameter_scale=True)
    assert close(trajectory(ours), trajectory(reference))
    # a 256 x 128 leaf keeps a mean over its largest axis (128 values) and one over
    # the other (256): O(n + m), as optax does; an unfactored leaf keeps the full moment
    state = ours.init(tree(np.random.default_rng(0)))[0]
    assert state.v_row["p0"].shape == (128,) and state.v_col["p0"].shape == (256,)
    assert state.v_row["p1"].shape == (64, 32) and state.v_col["p1"].shape == ()
    params, opt, grads = torch_run(adafactor.Adafactor, steps=1, lr=LR)
    torch_steps(params, opt, grads)
    assert tuple(opt.state[params[0]]["v_row"].shape) == (128,)
    assert tuple(opt.state[params[0]]["v_col"].shape) == (256,)


@pytest.mark.parametrize("committed", COMMITTED)
def test_module_is_what_the_exporter_writes_today(committed: str) -> None:
    """A committed module is regenerated when the exporter changes
    (``python run_search.py export NAME --name NAME --force``)."""
    from dsl import library
    from dsl.export import export_source, hyperparameter_sites

    name = committed
    text = path_of(name).read_text(encoding="utf-8")
    assert text == export_source(library.get(name), name,
                                 hyperparameters=hyperparameter_sites(library.source(name)),
                                 origin=f"library program {name!r}")
