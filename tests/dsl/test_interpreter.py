"""Tests for dsl/interpreter.py: programs as optax optimizers.

The parity table: each seed optimizer written as a library program gives the
same parameters as its reference for 100 steps, with the reference's defaults
and with other hyperparameters; and perturbing any one constant of the program
breaks the parity, so no constant can sit in the wrong place unnoticed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, given, settings

from dsl import Program, ProgramError, Statement, abstract, library, parse
from dsl.interpreter import ProgramState, to_optax
from tests.jit import jitted_updates
from tests.strategies import programs

LR = 1e-2
STEPS = 100
#: A tall matrix, a wide one (Muon transposes the one and scales the other), a
#: vector and a scalar.
SHAPES = {"matrix": (256, 128), "wide": (48, 80), "vector": (128,), "scalar": ()}


def tree(rng: np.random.Generator, scale: float) -> dict[str, jax.Array]:
    return {k: jnp.asarray(scale * rng.standard_normal(s), jnp.float32) for k, s in SHAPES.items()}


def inputs(steps: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    params = tree(rng, 0.1)
    # A tiny scalar weight, so that floors on the parameter scale (Adafactor's
    # min_scale) act and are tested.
    params["scalar"] = params["scalar"] * 1e-3
    grads = [tree(rng, 1.0) for _ in range(steps)]
    return params, jax.tree.map(lambda *xs: jnp.stack(xs), *grads)


def run(opt, params, grads, *, wrap=lambda p: p, views=lambda p, s: p, jit=True):
    """Parameters seen through ``views`` after every step."""

    def body(carry, g):
        p, s = carry
        u, s = opt.update(g, s, p)
        p = optax.apply_updates(p, u)
        return (p, s), views(p, s)

    p0 = wrap(params)
    carry = (p0, opt.init(p0))
    if jit:
        return jax.jit(lambda c, gs: jax.lax.scan(body, c, gs)[1])(carry, grads)
    out = []
    for k in range(jax.tree.leaves(grads)[0].shape[0]):
        carry, view = body(carry, jax.tree.map(lambda x, k=k: x[k], grads))
        out.append(view)
    return jax.tree.map(lambda *xs: jnp.stack(xs), *out)


def close(a, b, rtol: float = 1e-5) -> bool:
    return all(
        np.allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=1e-7)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


# name -> (reference factory taking lr and the program's hyperparameter names,
#          non-default hyperparameters, how to run the reference)
Ref = Callable[..., optax.GradientTransformation]
CASES: dict[str, tuple[Ref, dict[str, float]]] = {
    "sgd": (lambda lr: optax.sgd(lr), {}),
    "momentum": (lambda lr, **h: optax.chain(optax.add_decayed_weights(h.get("weight_decay", 0.0)),
                                             optax.sgd(lr, momentum=h.get("beta", 0.9))),
                 {"beta": 0.5, "weight_decay": 0.01}),
    "nesterov": (lambda lr, **h: optax.sgd(lr, momentum=h.get("beta", 0.9), nesterov=True),
                 {"beta": 0.6}),
    "adam": (lambda lr, **h: optax.adam(lr, **_rename(h)),
             {"b1": 0.8, "b2": 0.95, "epsilon": 1e-3}),
    "adamw": (lambda lr, **h: optax.adamw(lr, **_rename(h)),
              {"b1": 0.85, "b2": 0.9, "epsilon": 1e-4, "weight_decay": 0.05}),
    "rmsprop": (lambda lr, **h: optax.rmsprop(lr, **_rename(h)), {"decay": 0.7, "epsilon": 1e-2}),
    "adagrad": (lambda lr, **h: optax.adagrad(lr, **_rename(h)),
                {"initial_accumulator_value": 0.5, "epsilon": 1e-3}),
    "adabelief": (lambda lr, **h: optax.adabelief(lr, **_rename(h)),
                  {"b1": 0.7, "b2": 0.9, "epsilon": 1e-6, "eps_root": 1e-4}),
    "lion": (lambda lr, **h: optax.lion(lr, **h), {"b1": 0.95, "b2": 0.98, "weight_decay": 0.1}),
    "adan": (lambda lr, **h: optax.adan(lr, **_rename(h)),
             {"b1": 0.9, "b2": 0.8, "b3": 0.95, "epsilon": 1e-5, "eps_root": 1e-4,
              "weight_decay": 0.02}),
    "adafactor": (lambda lr, **h: optax.adafactor(lr, **_rename(h)),
                  {"decay_rate": 0.6, "epsilon": 1e-3, "clipping_threshold": 0.5}),
    "ademamix": (lambda lr, **h: optax.contrib.ademamix(lr, **_rename(h)),
                 {"b1": 0.8, "b2": 0.95, "b3": 0.99, "alpha": 3.0, "epsilon": 1e-4,
                  "weight_decay": 0.05}),
    "cadamw": (lambda lr, **h: cautious(optax.scale_by_adam(
        h.get("b1", 0.9), h.get("b2", 0.999), h.get("epsilon", 1e-8)), lr,
        h.get("weight_decay", 1e-4)), {"b1": 0.8, "b2": 0.95, "weight_decay": 0.05}),
    "clion": (lambda lr, **h: cautious(optax.scale_by_lion(h.get("b1", 0.9), h.get("b2", 0.99)),
                                       lr, h.get("weight_decay", 1e-3)),
              {"b1": 0.8, "b2": 0.95, "weight_decay": 0.05}),
    "muon": (lambda lr, **h: optax.contrib.muon(lr, **_rename(h)),
             {"beta": 0.9, "adam_b1": 0.8, "adam_b2": 0.95, "epsilon": 1e-6}),
    "schedule_free_adamw": (lambda lr, **h: schedule_free_adamw(lr, **_rename(h)),
                            {"b1": 0.8, "b2": 0.95, "epsilon": 1e-4, "weight_decay": 0.05,
                             "weight_lr_power": 1.0}),
}
#: Learning rates other than LR: Schedule-Free AdamW's averaging weights are all
#: equal under a constant rate (weight_lr_power would go untested), so a warm-up.
SCHEDULES: dict[str, optax.Schedule] = {
    "schedule_free_adamw": lambda count: LR * jnp.minimum(1.0, (count + 1.0) / 30.0),
}


def schedule_free_adamw(lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0,
                        weight_lr_power=2.0) -> optax.GradientTransformation:
    """``optax.contrib.schedule_free_adamw`` (its own composition, warm-up aside) with a
    schedule read at one count a step: optax's reads its averaging weight's one step
    later than the base step's, a program reads one ``lr`` a step."""
    if not callable(lr):
        return optax.contrib.schedule_free_adamw(lr, b1=b1, b2=b2, eps=eps,
                                                 weight_decay=weight_decay,
                                                 weight_lr_power=weight_lr_power)
    base = optax.chain(optax.scale_by_rms(decay=b2, eps=eps, eps_in_sqrt=False,
                                          bias_correction=True),
                       optax.add_decayed_weights(weight_decay), optax.scale_by_learning_rate(lr))
    return optax.contrib.schedule_free(base, learning_rate=lambda count: lr(count - 1), b1=b1,
                                       weight_lr_power=weight_lr_power)


def cautious(direction: optax.GradientTransformation, lr: float,
             weight_decay: float) -> optax.GradientTransformation:
    """The cautious optimizers' rule (Liang et al. 2024) written out in optax, as timm's
    ``caution=True``: the direction kept where it agrees in sign with the gradient,
    divided by the fraction of the leaf kept; then decoupled weight decay and lr."""

    def update(grads, state, params):
        d, state = direction.update(grads, state, params)

        def keep(d, g):
            agree = (d * g > 0).astype(d.dtype)
            return d * agree / jnp.maximum(jnp.mean(agree), 1e-8)

        d = jax.tree.map(keep, d, grads)
        return jax.tree.map(lambda d, p: -lr * (d + weight_decay * p), d, params), state

    return optax.GradientTransformation(direction.init, update)


def _rename(h: dict[str, float]) -> dict[str, float]:
    return {{"epsilon": "eps"}.get(k, k): v for k, v in h.items()}


def lookahead_reference(lr: float, **h) -> optax.GradientTransformation:
    inner = {k: v for k, v in h.items() if k not in ("sync_period", "slow_step_size")}
    return optax.lookahead(
        optax.adamw(lr, **_rename(inner)),
        sync_period=int(h.get("sync_period", 5)),
        slow_step_size=h.get("slow_step_size", 0.5),
    )


LOOKAHEAD_HYPER = {"b1": 0.8, "weight_decay": 0.01, "sync_period": 3.0, "slow_step_size": 0.3}


def parity(name: str, hyper: dict[str, float], steps: int = STEPS, program=None, jit=True):
    """(program trajectory, reference trajectory)."""
    params, grads = inputs(steps)
    program = program or library.get(name, **hyper)
    return (trajectory(name, program, steps, jit),
            reference_trajectory(name, hyper, params, grads, jit))


def trajectory(name: str, program: Program, steps: int, jit: bool = True):
    """The program's trajectory, seen as :func:`parity` compares it."""
    params, grads = inputs(steps)
    if name == "lookahead_adamw":
        slow = [s.name for s in program.states].index("slow")
        return run(to_optax(program, LR), params, grads, jit=jit,
                   views=lambda p, s: (p, s.states[slow]))
    return run(to_optax(program, SCHEDULES.get(name, LR)), params, grads, jit=jit)


def reference_trajectory(name: str, hyper: dict[str, float], params, grads, jit: bool):
    if name == "lookahead_adamw":
        return run(lookahead_reference(LR, **hyper), params, grads, jit=jit,
                   wrap=optax.LookaheadParams.init_synced, views=lambda p, s: (p.fast, p.slow))
    factory, lr = CASES[name][0], SCHEDULES.get(name, LR)
    return run(factory(lr, **hyper), params, grads, jit=jit)


ALL = [*CASES, "lookahead_adamw"]


def hyper_for(name: str) -> dict[str, float]:
    return LOOKAHEAD_HYPER if name == "lookahead_adamw" else CASES[name][1]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("defaults", [True, False], ids=["defaults", "other-hyperparameters"])
def test_parity_with_reference(name: str, defaults: bool) -> None:
    hyper = {} if defaults else hyper_for(name)
    ours, ref = parity(name, hyper)
    assert close(ours, ref), name
    # The trajectory really moved (a frozen optimizer would match a frozen one).
    first, last = jax.tree.leaves(ref)[0][0], jax.tree.leaves(ref)[0][-1]
    assert not np.allclose(first, last)


def constant_sites(program: Program) -> list[tuple[int, int]]:
    return [(i, j) for i, st in enumerate(program.statements)
            for j, a in enumerate(st.args) if isinstance(a, float)]


def perturb(program: Program, i: int, j: int) -> Program:
    st = program.statements[i]
    args = list(st.args)
    args[j] = 1.5 * args[j] + 0.01
    statements = list(program.statements)
    statements[i] = Statement(st.target, st.op, tuple(args))
    return program.model_copy(update={"statements": tuple(statements)})


@pytest.mark.parametrize("name", ALL)
def test_perturbing_any_constant_breaks_parity(name: str) -> None:
    program = library.get(name)
    sites = constant_sites(program)
    if name == "sgd":
        assert sites == []  # nothing to perturb: SGD has no constant
        return
    # Eager (a compile per perturbed program costs more), but Muon's matrix products
    # run eagerly cost more still (75 s against 20 s compiled)
    jit = name == "muon"
    ours, ref = parity(name, {}, steps=12, jit=jit)
    assert close(ours, ref)
    for i, j in sites:
        ours = trajectory(name, perturb(program, i, j), 12, jit=jit)
        assert not close(ours, ref), f"{name}: constant {j} of statement {i} is not tested"


def test_schedule_is_evaluated_at_the_update_count() -> None:
    schedule = optax.warmup_cosine_decay_schedule(0.0, 1e-2, 10, 100)
    params, grads = inputs(30)
    ours = run(to_optax(library.get("adamw"), schedule), params, grads)
    ref = run(optax.adamw(schedule), params, grads)
    assert close(ours, ref)


def test_update_compiles_once() -> None:
    opt = to_optax(library.get("adamw"), 1e-3)
    params, grads = inputs(2)
    traces, _, state = jitted_updates(
        opt, params, [jax.tree.map(lambda x, k=k: x[k % 2], grads) for k in range(3)])
    assert traces == 1
    assert int(state.count) == 3


def test_mixed_dtypes_keep_their_dtype() -> None:
    params = {"a": jnp.ones((4, 3), jnp.bfloat16), "b": jnp.ones((5,), jnp.float32),
              "c": jnp.ones((), jnp.bfloat16)}
    opt = to_optax(library.get("adafactor"), 1e-2)
    state = opt.init(params)
    updates, state = jax.jit(opt.update)(jax.tree.map(jnp.ones_like, params), state, params)
    assert {k: v.dtype for k, v in updates.items()} == {k: v.dtype for k, v in params.items()}
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state.states))


def test_states_have_the_inferred_shapes() -> None:
    params = {"m": jnp.zeros((256, 128)), "v": jnp.zeros((128,))}
    state = to_optax(library.get("adafactor")).init(params)
    v_row, v_col = state.states
    assert v_row["m"].shape == (128,) and v_col["m"].shape == (256,)
    assert v_row["v"].shape == (128,) and v_col["v"].shape == ()
    slow = to_optax(library.get("lookahead_adamw")).init(params).states[2]
    np.testing.assert_array_equal(slow["m"], params["m"])


def test_programs_that_read_w_need_params() -> None:
    opt = to_optax(library.get("adamw"))
    params = {"x": jnp.ones(3)}
    with pytest.raises(ValueError, match="pass params"):
        opt.update(params, opt.init(params))
    sgd = to_optax(library.get("sgd"), 0.5)
    updates, _ = sgd.update(params, sgd.init(params))
    np.testing.assert_array_equal(updates["x"], -0.5 * np.ones(3))


def test_invalid_program_fails_at_creation_or_init() -> None:
    p = parse("def train(w, g, lr, t, m):\n  r = factor_row(g)\n  u = g * r\n  return u, m\n")
    opt = to_optax(p)  # fine on unfactored leaves
    opt.init({"v": jnp.zeros(7)})
    with pytest.raises(ProgramError, match="shapes"):
        opt.init({"m": jnp.zeros((256, 128))})


def state_bytes(state: Any) -> int:
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))


def test_state_memory() -> None:
    params = {k: jnp.zeros(s) for k, s in SHAPES.items()}
    lion = to_optax(library.get("lion")).init(params)
    adamw = to_optax(library.get("adamw")).init(params)
    assert state_bytes(lion.states) * 2 == state_bytes(adamw.states)
    big = {"w": jnp.zeros((1024, 1024))}
    ours = state_bytes(to_optax(library.get("adafactor")).init(big))
    ref = state_bytes(optax.adafactor(1e-3).init(big))
    assert abs(ours - ref) <= 0.1 * ref
    assert isinstance(lion, ProgramState)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(shape=(6, 5)))
def test_numpy_and_jax_semantics_agree(program: Program) -> None:
    """JAX float32 is as close to NumPy float64 as NumPy float32 is (times a margin).

    Random programs can be ill-conditioned (``mod`` of a large sum amplifies the
    last bit), so the tolerance per element is measured, not assumed: NumPy's
    own float32 error against float64 says how hard the element is.
    """
    rng = np.random.default_rng(3)
    shape = (6, 5)
    w = rng.standard_normal(shape).astype(np.float32)
    grads = [rng.standard_normal(shape).astype(np.float32) for _ in range(3)]
    lrs = [0.5, 0.25, 0.125]
    args = (program, w, grads, lrs, [1.0, 2.0, 3.0])
    exact = abstract.run_numpy(*args, dtype=np.float64)
    single = abstract.run_numpy(*args, dtype=np.float32)
    opt = to_optax(program, lambda count: jnp.asarray(lrs)[count])
    params = jnp.asarray(w)
    state = opt.init(params)
    with np.errstate(all="ignore"):
        for g, outs64, outs32 in zip(grads, exact, single, strict=True):
            u, state = opt.update(jnp.asarray(g), state, params)
            params = optax.apply_updates(params, u)
            got = -np.asarray(u, np.float64)
            want = np.broadcast_to(np.asarray(outs64[0], np.float64), shape)
            ref32 = np.broadcast_to(np.asarray(outs32[0], np.float64), shape)
            np.testing.assert_array_equal(np.isnan(got), np.isnan(ref32))
            ok = np.isfinite(got) & np.isfinite(want) & np.isfinite(ref32)
            bound = 10 * np.abs(ref32 - want) + 1e-5 * np.abs(want) + 1e-6
            assert np.all(np.abs(got - want)[ok] <= bound[ok])
