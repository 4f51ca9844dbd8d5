"""A small Transformer language model on a corpus the project generates.

The corpus is deterministic (a fixed seed) and needs no download: a sparse
first-order Markov chain over 32 tokens, where each position instead copies the
token 8 places back with probability 0.2, so a model gains from attention as
well as from bigram statistics. The metric is validation cross-entropy per token.
"""

from __future__ import annotations

from functools import cache

import jax
import jax.numpy as jnp
import numpy as np

from evaluators.tasks.base import Data, Task, normal

VOCAB, SEQ, COPY_LAG, COPY_P = 32, 32, 8, 0.2
#: tier -> (width, layers, heads, steps, batch)
TIERS = {"A": (32, 1, 2, 300, 16), "B": (64, 2, 4, 1500, 32), "C": (128, 4, 4, 4000, 64)}


@cache
def _data() -> Data:
    rng = np.random.default_rng(2023)
    successors = np.stack([rng.choice(VOCAB, 3, replace=False) for _ in range(VOCAB)])
    weights = rng.dirichlet(np.ones(3), size=VOCAB)
    n = 4096 + 512
    seqs = np.zeros((n, SEQ + 1), np.int32)
    seqs[:, 0] = rng.integers(VOCAB, size=n)
    for i in range(1, SEQ + 1):
        prev = seqs[:, i - 1]
        pick = (rng.random(n)[:, None] > np.cumsum(weights[prev], axis=1)).sum(axis=1)
        nxt = successors[prev, np.minimum(pick, 2)]
        if i >= COPY_LAG:
            copy = rng.random(n) < COPY_P
            nxt = np.where(copy, seqs[:, i - COPY_LAG], nxt)
        seqs[:, i] = nxt
    return Data(train=(seqs[:4096],), val=(seqs[4096:],))


def _init(rng: np.random.Generator, d: int, layers: int) -> dict:
    def gauss(shape, scale):
        return normal(rng, shape, scale)

    def ones():
        return np.ones((d,), np.float32)

    blocks = [
        {"qkv": gauss((d, 3 * d), d**-0.5), "proj": gauss((d, d), d**-0.5 / layers),
         "up": gauss((d, 4 * d), d**-0.5), "down": gauss((4 * d, d), (4 * d) ** -0.5 / layers),
         "ln1": ones(), "ln2": ones()}
        for _ in range(layers)
    ]
    return {"embed": gauss((VOCAB, d), 1.0), "pos": gauss((SEQ, d), 0.1), "blocks": blocks,
            "ln_f": ones(), "unembed": gauss((d, VOCAB), d**-0.5)}


def _norm(x: jax.Array, scale: jax.Array) -> jax.Array:
    x = x - x.mean(-1, keepdims=True)
    return scale * x * jax.lax.rsqrt((x * x).mean(-1, keepdims=True) + 1e-5)


def _logits(p: dict, tokens: jax.Array, heads: int) -> jax.Array:
    x = p["embed"][tokens] + p["pos"]
    t, d = x.shape[-2], x.shape[-1]
    mask = jnp.tril(jnp.ones((t, t), bool))
    for blk in p["blocks"]:
        q, k, v = jnp.split(_norm(x, blk["ln1"]) @ blk["qkv"], 3, axis=-1)
        q, k, v = (a.reshape(*a.shape[:-1], heads, d // heads) for a in (q, k, v))
        att = jnp.einsum("...qhc,...khc->...hqk", q, k) / jnp.sqrt(d // heads)
        att = jax.nn.softmax(jnp.where(mask, att, -1e9), axis=-1)
        out = jnp.einsum("...hqk,...khc->...qhc", att, v).reshape(x.shape)
        x = x + out @ blk["proj"]
        x = x + jax.nn.gelu(_norm(x, blk["ln2"]) @ blk["up"]) @ blk["down"]
    return _norm(x, p["ln_f"]) @ p["unembed"]


def _loss(p: dict, seqs: jax.Array, heads: int) -> jax.Array:
    logp = jax.nn.log_softmax(_logits(p, seqs[:, :-1], heads))
    return -jnp.mean(jnp.take_along_axis(logp, seqs[:, 1:, None], axis=-1))


def make(tier: str) -> Task:
    d, layers, heads, steps, batch = TIERS[tier]
    return Task(
        name=f"transformer_lm/{tier}", family="transformer_lm", tier=tier, steps=steps,
        batch_size=batch,
        init=lambda rng: _init(rng, d, layers),
        loss=lambda p, b: _loss(p, b[0], heads),
        metric=lambda p, v: _loss(p, v[0], heads),
        data=_data,
        description=f"Transformer LM, width {d}, {layers} layer(s), on a generated corpus",
    )
