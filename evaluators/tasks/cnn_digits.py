"""A small CNN on shifted, noisy 8x8 digits made from scikit-learn's (shipped with it).

Held out. scikit-learn's 1,797 digits alone are too easy and too few: a CNN reaches
a validation cross-entropy near 0.15, where a handful of the 400 validation digits
decide the metric and the seed noise (std of the log metric 0.26 over 5 seeds) was
half the spread between tuned optimizers. Here each digit is shown many times, each
time moved by up to one pixel and covered in Gaussian pixel noise: 1,397 digits make
40,000 training images and the other 400 make 8,000 validation images (a digit is in
one set only), so the task is one of optimization (one pass or less over the
training images) and its metric averages over many hard images. One convolution,
wide: a second one (8 to 16 channels) doubled the seed noise (std of the log metric
0.03-0.13 against 0.01-0.02; docs/benchmarks.md).

The convolution is written as 3x3 patches times a matrix (slices and one matmul),
not ``lax.conv``: on CPU, XLA's convolution of a batch of seeds ran tier C in over
four minutes.
"""

from __future__ import annotations

from functools import cache

import jax
import jax.numpy as jnp
import numpy as np

from evaluators.tasks.base import Data, classifier, normal

#: tier -> (channels, steps, batch)
TIERS = {"A": (32, 600, 64), "B": (64, 1800, 64), "C": (128, 4000, 64)}
N_VAL_DIGITS, N_TRAIN, N_VAL = 400, 40_000, 8_000
#: Pixel noise (pixels are scaled to [0, 1]) and the largest shift, in pixels.
NOISE, SHIFT = 0.35, 1


def _augment(x: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator):
    """``n`` images drawn from ``x`` (N, 8, 8), each shifted and noised."""
    pick = rng.integers(0, len(x), n)
    padded = np.pad(x, ((0, 0), (SHIFT, SHIFT), (SHIFT, SHIFT)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (8, 8), axis=(1, 2))
    dy, dx = rng.integers(0, 2 * SHIFT + 1, (2, n))
    out = windows[pick, dy, dx] + rng.normal(0, NOISE, (n, 8, 8))
    return out.astype(np.float32), y[pick].astype(np.int32)


@cache
def _data() -> Data:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)
    order = np.random.default_rng(1).permutation(len(x))
    x, y = x[order], digits.target[order]
    rng = np.random.default_rng(2)
    train = _augment(x[N_VAL_DIGITS:], y[N_VAL_DIGITS:], N_TRAIN, rng)
    val = _augment(x[:N_VAL_DIGITS], y[:N_VAL_DIGITS], N_VAL, rng)
    return Data(train=train, val=val)


def _init(rng: np.random.Generator, channels: int) -> dict[str, np.ndarray]:
    return {
        "conv": normal(rng, (9, channels), np.sqrt(2.0 / 9)),
        "conv_b": np.zeros((channels,), np.float32),
        "dense": normal(rng, (16 * channels, 10), np.sqrt(1.0 / (16 * channels))),
        "dense_b": np.zeros((10,), np.float32),
    }


def _conv3x3(h: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
    """A 'same' 3x3 convolution of (batch, height, width, channels) maps, as patches
    (the nine shifted copies side by side) times ``w`` (9 x channels in, out)."""
    height, width = h.shape[1:3]
    padded = jnp.pad(h, ((0, 0), (1, 1), (1, 1), (0, 0)))
    patches = jnp.concatenate([padded[:, i:i + height, j:j + width]
                               for i in range(3) for j in range(3)], axis=-1)
    return jax.nn.relu(patches @ w + b)


def _pool(h: jax.Array) -> jax.Array:
    """2x2 average pooling."""
    n, height, width, c = h.shape
    return h.reshape(n, height // 2, 2, width // 2, 2, c).mean(axis=(2, 4))


def _logits(p: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    h = _pool(_conv3x3(x.reshape(-1, 8, 8, 1), p["conv"], p["conv_b"]))  # 4x4
    return h.reshape(h.shape[0], -1) @ p["dense"] + p["dense_b"]


def make(tier: str):
    channels, steps, batch = TIERS[tier]
    return classifier(
        f"cnn_digits/{tier}", steps, batch, lambda rng: _init(rng, channels), _logits, _data,
        held_out=True,
        description=f"CNN (3x3 conv, {channels} channels, pool, dense) on 40,000 shifted, "
                    "noisy digits",
    )
