"""A deep autoencoder on scikit-learn's 8x8 digits (shipped with scikit-learn).

A held-out family of another kind than the search's classifiers and language
model: unsupervised, a regression loss, and a narrow bottleneck through tanh
layers, the classic hard case for optimizers (deep autoencoders are where
second-order and adaptive methods were first shown to matter). Pixels are scaled
to [0, 1]; the metric is the validation mean squared reconstruction error.
"""

from __future__ import annotations

from functools import cache

import jax
import jax.numpy as jnp
import numpy as np

from evaluators.tasks.base import Data, Task, dense_init

#: tier -> (hidden width, code width, steps, batch)
TIERS = {"A": (32, 8, 800, 64), "B": (96, 8, 2400, 64), "C": (256, 16, 5000, 128)}
N_VAL = 400


@cache
def _data() -> Data:
    from sklearn.datasets import load_digits

    x = (load_digits().data / 16.0).astype(np.float32)
    order = np.random.default_rng(1).permutation(len(x))
    x = x[order]
    return Data(train=(x[N_VAL:],), val=(x[:N_VAL],))


def _reconstruct(params: list[dict[str, jax.Array]], x: jax.Array) -> jax.Array:
    for layer in params[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def _mse(params: list[dict[str, jax.Array]], batch: tuple[jax.Array, ...]) -> jax.Array:
    x = batch[0]
    return jnp.mean((_reconstruct(params, x) - x) ** 2)


def make(tier: str) -> Task:
    hidden, code, steps, batch = TIERS[tier]
    widths = (64, hidden, hidden, code, hidden, hidden, 64)
    return Task(
        name=f"autoencoder_digits/{tier}", family="autoencoder_digits", tier=tier,
        steps=steps, batch_size=batch, init=lambda rng: dense_init(rng, widths),
        loss=_mse, metric=_mse, data=_data, held_out=True,
        description=f"tanh autoencoder 64-{hidden}-{hidden}-{code}-{hidden}-{hidden}-64 "
                    f"on sklearn digits, {steps} steps",
    )
