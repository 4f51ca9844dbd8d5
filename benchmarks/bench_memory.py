"""Optimizer-state bytes of programs (via dsl.to_optax) against optax's optimizers.

Measured from the pytree ``init`` returns, counter included, for the parity tree
{256x128, 128, scalar} and a 1024x1024 matrix.

    python benchmarks/bench_memory.py

Last line: ``lion_to_adamw_state_ratio: R`` (goal 0.5: one state instead of two).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from dsl import library
from dsl.interpreter import to_optax

REFERENCES = {"adamw": optax.adamw(1e-3), "lion": optax.lion(1e-4),
              "adafactor": optax.adafactor(1e-3)}
TREES = {
    "{256x128, 128, scalar}": {"m": jnp.zeros((256, 128)), "v": jnp.zeros(128), "s": jnp.zeros(())},
    "1024x1024": {"w": jnp.zeros((1024, 1024))},
}


def state_bytes(state) -> int:
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))


def main() -> None:
    ours = {}
    for tree_name, tree in TREES.items():
        for name, ref in REFERENCES.items():
            mine = state_bytes(to_optax(library.get(name)).init(tree))
            theirs = state_bytes(ref.init(tree))
            ours[(tree_name, name)] = mine
            print(f"{tree_name:24s} {name:10s} program {mine:>9,d} B   optax {theirs:>9,d} B   "
                  f"ratio {mine / theirs:.4f}")
    big = "1024x1024"
    print(f"lion_to_adamw_state_ratio: {ours[(big, 'lion')] / ours[(big, 'adamw')]:.4f}")


if __name__ == "__main__":
    main()
