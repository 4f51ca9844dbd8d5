"""What every proxy task provides, and the pieces tasks share.

A task trains a small model: it has parameter init, a loss on a batch, training
and validation data, a batch sampler, a learning-rate schedule (linear warm-up
then cosine decay, peak 1.0; the program scales it by its own constant, as in
the Lion search) and a validation metric where lower is better (validation
cross-entropy, or the exact loss for the quadratic). Everything a training loop
calls is pure JAX, so the engine can jit, scan and vmap it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Params = Any
Batch = tuple[jax.Array, ...]


@dataclass(frozen=True)
class Data:
    """Training and validation arrays (features first, labels second)."""

    train: tuple[np.ndarray, ...]
    val: tuple[np.ndarray, ...]


@dataclass(frozen=True)
class Task:
    """One proxy task at one tier, e.g. ``mlp_mnist1d/A``.

    ``init(key)`` gives parameters, ``loss(params, batch)`` a scalar,
    ``sample(key, train)`` a batch of ``batch_size`` from the training arrays
    (passed as JAX arrays), ``metric(params, val)`` the validation metric (lower
    is better). ``held_out`` tasks are for meta-validation: the search never
    trains on them.
    """

    name: str
    family: str
    tier: str
    steps: int
    batch_size: int
    init: Callable[[jax.Array], Params]
    loss: Callable[[Params, Batch], jax.Array]
    metric: Callable[[Params, tuple[jax.Array, ...]], jax.Array]
    data: Callable[[], Data] = field(repr=False)
    held_out: bool = False
    warmup_fraction: float = 0.05
    description: str = ""

    def sample(self, key: jax.Array, train: tuple[jax.Array, ...]) -> Batch:
        """A uniformly drawn batch (with replacement) from the training arrays."""
        n = train[0].shape[0]
        idx = jax.random.randint(key, (self.batch_size,), 0, n)
        return tuple(a[idx] for a in train)

    def schedule(self, step: jax.Array) -> jax.Array:
        """Linear warm-up to 1.0 over ``warmup_fraction`` of the steps, then cosine to 0."""
        step = jnp.asarray(step, jnp.float32)
        warmup = max(1.0, self.warmup_fraction * self.steps)
        rise = (step + 1.0) / warmup
        progress = jnp.clip((step - warmup) / max(1.0, self.steps - warmup), 0.0, 1.0)
        fall = 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
        return jnp.where(step < warmup, rise, fall)


def classifier(
    name: str, steps: int, batch_size: int, init: Callable[[jax.Array], Params],
    logits: Callable[[Params, jax.Array], jax.Array], data: Callable[[], Data], **kw: Any,
) -> Task:
    """A classification task: cross-entropy of ``logits(params, x)`` on (x, label) data,
    validation cross-entropy as the metric."""
    family, _, tier = name.partition("/")
    return Task(
        name=name, family=family, tier=tier, steps=steps, batch_size=batch_size, init=init,
        loss=lambda p, b: cross_entropy(logits(p, b[0]), b[1]),
        metric=lambda p, v: cross_entropy(logits(p, v[0]), v[1]),
        data=data, **kw,
    )


def dense_init(key: jax.Array, widths: tuple[int, ...]) -> list[dict[str, jax.Array]]:
    """He-initialised dense layers with zero biases."""
    layers = []
    for n_in, n_out in zip(widths[:-1], widths[1:], strict=True):
        key, sub = jax.random.split(key)
        w = jax.random.normal(sub, (n_in, n_out)) * jnp.sqrt(2.0 / n_in)
        layers.append({"w": w, "b": jnp.zeros((n_out,))})
    return layers


def mlp(params: list[dict[str, jax.Array]], x: jax.Array) -> jax.Array:
    for layer in params[:-1]:
        x = jax.nn.relu(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, labels[..., None], axis=-1))


def split(x: np.ndarray, y: np.ndarray, n_val: int, seed: int) -> Data:
    """A fixed random train/validation split, features standardised on train."""
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    xt, yt, xv, yv = x[n_val:], y[n_val:], x[:n_val], y[:n_val]
    mu, sd = xt.mean(0), xt.std(0) + 1e-6
    f32 = np.float32
    return Data(train=(((xt - mu) / sd).astype(f32), yt.astype(np.int32)),
                val=(((xv - mu) / sd).astype(f32), yv.astype(np.int32)))
