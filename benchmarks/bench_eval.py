"""Evaluation cost: the engine (compile once per bucket) against optax in the same loop.

On tier A of the MLP task: the wall time per distinct program, averaged over 50
programs of one bucket with compilation included, divided by the
execution-only time of the same optimizer written in optax (the warm start,
by hand) in the same training loop. Goal: <= 1.25 on CPU. For context it also
prints the cost of compiling per program (the direct path, jitted afresh for
one program) and the tier-A evaluation time of every task family.

    taskset -c 0 python benchmarks/bench_eval.py [--programs 50] [--task mlp_mnist1d/A]

``--task`` measures the same ratio on another task (the goal is stated for
``mlp_mnist1d/A``); the ratio's two parts are printed too: compilation spread
over the programs, and the engine's execution against optax's.

Last line: ``eval_overhead_ratio: R``.
"""

from __future__ import annotations

import argparse
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dsl import library
from evaluators import evaluate, tasks
from evaluators.engine import device_data, direct_runner, run_direct, run_engine, seed_keys
from search.generate import perturbed_constants

SEEDS = (0, 1)


class WarmState(NamedTuple):
    m: optax.Updates
    v: optax.Updates


def warm_start_in_optax(schedule) -> optax.GradientTransformation:
    """The warm start written by hand: u = m / (sqrt(v) + eps) + 0.01 w; step lr * 1e-3 * u."""

    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return WarmState(zeros, zeros), jnp.zeros([], jnp.int32)

    def update(grads, state, params):
        (m, v), count = state
        m = jax.tree.map(lambda g, m: 0.1 * g + 0.9 * m, grads, m)
        v = jax.tree.map(lambda g, v: 0.001 * g * g + 0.999 * v, grads, v)
        lr = schedule(count) * 0.001
        u = jax.tree.map(lambda m, v, w: -lr * (m / (jnp.sqrt(v) + 1e-8) + 0.01 * w), m, v, params)
        return u, (WarmState(m, v), count + 1)

    return optax.GradientTransformation(init, update)


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=50)
    parser.add_argument("--task", default="mlp_mnist1d/A")
    args = parser.parse_args()
    task = tasks.get(args.task)
    train, val = device_data(task)
    keys = seed_keys(SEEDS)

    reference = direct_runner(task, warm_start_in_optax(task.schedule))
    reference(keys, train, val)  # compile
    t_ref = best_of(lambda: reference(keys, train, val))

    programs = perturbed_constants(library.get("warmstart"), np.random.default_rng(0),
                                   args.programs)
    start = time.perf_counter()
    compile_time = 0.0
    diverged = 0
    for p in programs:
        (metric, steps, ok), c = run_engine(p, task, SEEDS)
        compile_time += c
        diverged += int(not ok.all())
    per_program = (time.perf_counter() - start) / len(programs)

    start = time.perf_counter()
    run_direct(programs[0], task, SEEDS)
    per_program_jit = time.perf_counter() - start

    print(f"task: {task.name}, {task.steps} steps, seeds {SEEDS}, device "
          f"{jax.devices()[0].platform}")
    print(f"optax warm start, execution only: {t_ref:.3f} s")
    print(f"engine, {len(programs)} distinct programs: {per_program:.3f} s per program "
          f"(compiled once: {compile_time:.2f} s; {diverged} diverged)")
    print(f"of the ratio: compilation {compile_time / len(programs) / t_ref:.2f}, execution "
          f"{(per_program - compile_time / len(programs)) / t_ref:.2f} (engine / optax)")
    print(f"per-program jit (direct path, compile included): {per_program_jit:.2f} s "
          f"= {per_program_jit / t_ref:.1f}x")
    for name in [n for n in tasks.names() if n.endswith("/A")]:
        evaluate(programs[1], name)  # compile
        t = best_of(lambda name=name: evaluate(programs[1], name).fitness)
        print(f"tier-A evaluation of one program, {name}: {t:.2f} s")
    print(f"eval_overhead_ratio: {per_program / t_ref:.2f}")


if __name__ == "__main__":
    main()
