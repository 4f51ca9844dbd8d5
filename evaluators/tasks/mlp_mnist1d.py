"""An MLP classifier on MNIST-1D (generated procedurally by the ``mnist1d`` package)."""

from __future__ import annotations

from functools import cache

import numpy as np

from evaluators.tasks.base import Data, Task, classifier, dense_init, mlp

#: tier -> (hidden width, steps, batch). B is ~10x A in width^2 x steps, C ~100x.
TIERS = {"A": (64, 800, 64), "B": (128, 2400, 64), "C": (320, 5000, 128)}


@cache
def _data() -> Data:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = 5000
    d = make_dataset(args)  # procedural: no download
    x = np.concatenate([d["x"], d["x_test"]])
    y = np.concatenate([d["y"], d["y_test"]])
    return Data(
        train=(x[:4000].astype(np.float32), y[:4000].astype(np.int32)),
        val=(x[4000:].astype(np.float32), y[4000:].astype(np.int32)),
    )


def make(tier: str) -> Task:
    width, steps, batch = TIERS[tier]
    widths = (40, width, width, 10)
    return classifier(
        f"mlp_mnist1d/{tier}", steps, batch, lambda rng: dense_init(rng, widths), mlp, _data,
        description=f"MLP 40-{width}-{width}-10 on MNIST-1D, {steps} steps",
    )
