"""Step time of programs run through dsl.to_optax against optax's own optimizers.

One jitted training step (loss, gradient, optimizer update, apply) of a small
MLP, with ``to_optax(Lion)``, ``to_optax(AdamW)`` and ``to_optax(Muon)`` against
``optax.lion``, ``optax.adamw`` and ``optax.contrib.muon``, timed in the same run
and interleaved so machine noise hits both sides alike. Goal: ratio <= 1.05.

    python benchmarks/bench_step.py [--rounds 15] [--steps 100]

Last line: ``step_time_ratio: R`` (the worst of the three).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dsl import library
from dsl.interpreter import to_optax

WIDTHS = (64, 512, 512, 10)
BATCH = 128


def init_mlp(key: jax.Array) -> list[dict[str, jax.Array]]:
    layers = []
    for n_in, n_out in zip(WIDTHS[:-1], WIDTHS[1:], strict=True):
        key, sub = jax.random.split(key)
        layers.append({"w": jax.random.normal(sub, (n_in, n_out)) / np.sqrt(n_in),
                       "b": jnp.zeros((n_out,))})
    return layers


def loss(params, x, y):
    h = x
    for layer in params[:-1]:
        h = jax.nn.relu(h @ layer["w"] + layer["b"])
    logits = h @ params[-1]["w"] + params[-1]["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def make_step(opt: optax.GradientTransformation):
    @jax.jit
    def step(params, state, x, y):
        grads = jax.grad(loss)(params, x, y)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return step


def timed(opt, params, x, y, steps: int) -> tuple[float, object]:
    step = make_step(opt)
    state = opt.init(params)
    p, state = step(params, state, x, y)  # compile
    jax.block_until_ready(p)

    def run() -> float:
        nonlocal p, state
        start = time.perf_counter()
        for _ in range(steps):
            p, state = step(p, state, x, y)
        jax.block_until_ready(p)
        return (time.perf_counter() - start) / steps

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()

    key = jax.random.PRNGKey(0)
    params = init_mlp(key)
    x = jax.random.normal(jax.random.PRNGKey(1), (BATCH, WIDTHS[0]))
    y = jax.random.randint(jax.random.PRNGKey(2), (BATCH,), 0, WIDTHS[-1])
    pairs = {
        "lion": (to_optax(library.get("lion"), 1e-4), optax.lion(1e-4)),
        "adamw": (to_optax(library.get("adamw"), 1e-3), optax.adamw(1e-3)),
        "muon": (to_optax(library.get("muon"), 1e-3), optax.contrib.muon(1e-3)),
    }
    ratios = {}
    for name, (ours, ref) in pairs.items():
        run_ours, run_ref = timed(ours, params, x, y, args.steps), timed(ref, params, x, y,
                                                                         args.steps)
        t_ours, t_ref = [], []
        for _ in range(args.rounds):  # interleaved, so noise hits both alike
            t_ours.append(run_ours())
            t_ref.append(run_ref())
        m_ours, m_ref = float(np.median(t_ours)), float(np.median(t_ref))
        ratios[name] = m_ours / m_ref
        print(f"{name}: to_optax {m_ours * 1e6:.1f} us/step, optax {m_ref * 1e6:.1f} us/step, "
              f"ratio {ratios[name]:.3f}")
    print(f"device: {jax.devices()[0].platform}")
    print(f"step_time_ratio: {max(ratios.values()):.3f}")


if __name__ == "__main__":
    main()
