"""A small Transformer language model on a corpus the project generates.

The corpus is deterministic (a fixed seed) and needs no download: a sparse
second-order Markov chain over 32 tokens. The previous token allows 8 successors
(bigram structure, learnt first); the pair of previous tokens weights them
(Dirichlet(0.5): 1,024 contexts to learn, so a small model is still learning at
the end of its budget instead of sitting at the entropy floor). Each position
instead copies the token 8 places back with probability 0.2, so a model gains
from attention as well as from n-gram statistics. 32,768 training sequences (tier
C sees each about once) and 1,024 for validation. The metric is validation
cross-entropy per token.
"""

from __future__ import annotations

from functools import cache

import jax
import jax.numpy as jnp
import numpy as np

from evaluators.tasks.base import Data, Task, normal

VOCAB, SEQ, COPY_LAG, COPY_P, SUCCESSORS = 32, 32, 8, 0.2, 8
N_TRAIN, N_VAL = 32_768, 1024
#: tier -> (width, layers, heads, steps, batch)
#: B costs about 17x A (18 s a 2-seed evaluation on 2 cores) and C under a minute.
TIERS = {"A": (32, 1, 2, 300, 16), "B": (48, 2, 4, 800, 32), "C": (64, 4, 4, 1000, 32)}


@cache
def _data() -> Data:
    rng = np.random.default_rng(2024)
    contexts = VOCAB * VOCAB
    allowed = np.stack([rng.choice(VOCAB, SUCCESSORS, replace=False) for _ in range(VOCAB)])
    cumulative = np.cumsum(rng.dirichlet(np.full(SUCCESSORS, 0.5), size=contexts), axis=1)
    n = N_TRAIN + N_VAL
    seqs = np.zeros((n, SEQ + 1), np.int32)
    seqs[:, :2] = rng.integers(VOCAB, size=(n, 2))
    for i in range(2, SEQ + 1):
        context = seqs[:, i - 2] * VOCAB + seqs[:, i - 1]
        pick = (rng.random(n)[:, None] > cumulative[context]).sum(axis=1)
        nxt = allowed[seqs[:, i - 1], np.minimum(pick, SUCCESSORS - 1)]
        if i >= COPY_LAG:
            copy = rng.random(n) < COPY_P
            nxt = np.where(copy, seqs[:, i - COPY_LAG], nxt)
        seqs[:, i] = nxt
    return Data(train=(seqs[:N_TRAIN],), val=(seqs[N_TRAIN:],))


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
        description=f"Transformer LM, width {d}, {layers} layer(s), on a generated "
                    "second-order Markov language (32 tokens)",
    )
