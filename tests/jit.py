"""A test helper: run an optimizer's jitted update and count how often it is traced."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jax
import optax


def jitted_updates(opt: optax.GradientTransformation, params: Any,
                   grads: Iterable[Any]) -> tuple[int, Any, Any]:
    """Apply ``opt.update`` under one ``jax.jit`` for each gradient (params fixed).

    Returns (how many times the update was traced, the last updates, the last state).
    """
    state = opt.init(params)
    traces = []

    @jax.jit
    def step(g, s, p):
        traces.append(1)
        return opt.update(g, s, p)

    updates = None
    for g in grads:
        updates, state = step(g, state, params)
    return len(traces), updates, state
