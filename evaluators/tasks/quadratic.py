"""A noisy quadratic: the cheap family for tests (seconds, no data set).

loss(θ) = ½ Σ hᵢ (θᵢ − ξᵢ)² with ξ ~ N(θ*, σ²) per sample and curvatures hᵢ spread
over three decades; the metric is the noise-free loss ½ Σ hᵢ (θᵢ − θ*ᵢ)² (lower is
better). The optimum θ* is a fixed random point, not 0, so that weight decay alone
cannot solve it. Parameters are a vector and a matrix, so factored and unfactored
leaves appear.
"""

from __future__ import annotations

from functools import cache

import jax.numpy as jnp
import numpy as np

from evaluators.tasks.base import Data, Task, normal

#: tier -> (vector size, matrix rows, matrix cols, steps, batch)
TIERS = {"A": (64, 16, 8, 300, 16), "B": (256, 128, 16, 1000, 16), "C": (1024, 256, 128, 3000, 16)}
NOISE = 0.5


def _curvature(shape: tuple[int, ...], seed: int) -> np.ndarray:
    n = int(np.prod(shape))
    return np.logspace(-2, 1, n)[np.random.default_rng(seed).permutation(n)].reshape(shape)


@cache
def _data(tier: str) -> Data:
    """Training samples ξ ~ N(θ*, σ²); the validation "sample" is θ* itself."""
    n, r, c, _, _ = TIERS[tier]
    rng = np.random.default_rng(7)
    optimum = rng.standard_normal(n + r * c)
    noise = optimum + NOISE * rng.standard_normal((4096, n + r * c))
    return Data(train=(noise.astype(np.float32),), val=(optimum[None].astype(np.float32),))


def make(tier: str) -> Task:
    n, r, c, steps, batch = TIERS[tier]
    h_vec = jnp.asarray(_curvature((n,), 1), jnp.float32)
    h_mat = jnp.asarray(_curvature((r, c), 2), jnp.float32)

    def loss(p, b):
        xi = b[0]
        dv = p["vector"][None] - xi[:, :n]
        dm = p["matrix"][None] - xi[:, n:].reshape(-1, r, c)
        per = 0.5 * (jnp.sum(h_vec * dv**2, axis=1) + jnp.sum(h_mat * dm**2, axis=(1, 2)))
        return jnp.mean(per)

    def metric(p, v):
        return loss(p, v)  # the single validation sample is the optimum: no noise

    def init(rng):
        return {"vector": normal(rng, (n,), 1.0), "matrix": normal(rng, (r, c), 1.0)}

    return Task(
        name=f"quadratic/{tier}", family="quadratic", tier=tier, steps=steps, batch_size=batch,
        init=init, loss=loss, metric=metric, data=lambda: _data(tier),
        description=f"noisy quadratic, {n} + {r}x{c} parameters",
    )
