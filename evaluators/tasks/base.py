"""What every proxy task provides, and the pieces tasks share.

A task trains a small model: it has parameter init, a loss on a batch, training
and validation data, a batch sampler, a learning-rate schedule (linear warm-up
then cosine decay, peak 1.0; the program scales it by its own constant, as in
the Lion search) and a validation metric where lower is better (validation
cross-entropy, or the exact loss for the quadratic). Everything a training loop
calls is pure JAX, so the engine can jit, scan and vmap it.

A seed's random numbers (initial parameters, every step's batch) are drawn on
the host, in NumPy, before training (:meth:`Task.draws`): random numbers drawn
inside the compiled loop cost every task's loop 1.2 s of compile on one core
(JAX's normal sampler and threefry) and 5-10% of its steps.
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


class TaskError(RuntimeError):
    """A task that cannot judge optimizers as it is defined (its metric came out negative,
    say): the task's fault, never a program's fitness; the message names the task."""


@dataclass(frozen=True)
class Data:
    """Training and validation arrays (features first, labels second)."""

    train: tuple[np.ndarray, ...]
    val: tuple[np.ndarray, ...]


@dataclass(frozen=True)
class Task:
    """One proxy task at one tier, e.g. ``mlp_mnist1d/A``.

    ``init(rng)`` gives parameters (float32 NumPy arrays) from a NumPy
    generator, ``loss(params, batch)`` a scalar, ``sample(idx, train)`` the
    batch of rows ``idx`` of the training arrays (passed as JAX arrays),
    ``metric(params, val)`` the validation metric (lower is better).
    ``held_out`` tasks are for meta-validation: the search never trains on them.
    """

    name: str
    family: str
    tier: str
    steps: int
    batch_size: int
    init: Callable[[np.random.Generator], Params]
    loss: Callable[[Params, Batch], jax.Array]
    metric: Callable[[Params, tuple[jax.Array, ...]], jax.Array]
    data: Callable[[], Data] = field(repr=False)
    held_out: bool = False
    warmup_fraction: float = 0.05
    description: str = ""
    #: What the task's numbers depend on beyond its name and the project's code (a
    #: user task's data and functions): part of the baseline cache's key.
    version: str = ""

    def sample(self, idx: jax.Array, train: tuple[jax.Array, ...]) -> Batch:
        """The batch of rows ``idx`` (a row of :meth:`draws`' indices) of the training arrays."""
        return tuple(a[idx] for a in train)

    def draws(self, seed: int) -> tuple[Params, np.ndarray]:
        """A seed's initial parameters and its batches: (steps, batch_size) row indices,
        drawn uniformly with replacement. Two independent streams of one seed: the
        parameters do not change with the number of steps.

        >>> from evaluators import tasks
        >>> params, idx = tasks.get("quadratic/A").draws(0)
        >>> idx.shape, params["matrix"].shape
        ((300, 16), (16, 8))
        """
        init_rng, data_rng = (np.random.default_rng(s)
                              for s in np.random.SeedSequence(seed).spawn(2))
        n = len(self.data().train[0])
        return self.init(init_rng), data_rng.integers(0, n, (self.steps, self.batch_size),
                                                      dtype=np.int32)

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


def normal(rng: np.random.Generator, shape: tuple[int, ...], scale: float) -> np.ndarray:
    """Gaussian float32 values of standard deviation ``scale``."""
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def dense_init(rng: np.random.Generator, widths: tuple[int, ...]) -> list[dict[str, np.ndarray]]:
    """He-initialised dense layers with zero biases."""
    return [{"w": normal(rng, (n_in, n_out), np.sqrt(2.0 / n_in)),
             "b": np.zeros((n_out,), np.float32)}
            for n_in, n_out in zip(widths[:-1], widths[1:], strict=True)]


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
