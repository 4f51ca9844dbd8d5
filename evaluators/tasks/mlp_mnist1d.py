"""An MLP classifier on MNIST-1D (generated procedurally by the ``mnist1d`` package).

The generator makes any number of examples, so the task has enough that
optimization, not regularization, limits the metric: 40,000 training rows (tier A
sees each about 1.3 times) and 10,000 validation rows (a validation set 10x the
earlier one's, so the metric's own sampling noise is small). Generated once per
machine (:mod:`evaluators.tasks.datacache`).
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import version

import numpy as np

from evaluators.tasks import datacache
from evaluators.tasks.base import Data, classifier, dense_init, mlp

#: tier -> (hidden width, steps, batch). B is ~10x A in width^2 x steps, C ~100x.
TIERS = {"A": (64, 800, 64), "B": (128, 2400, 64), "C": (320, 5000, 128)}
#: Examples generated (80% training, 20% validation) and the generator's seed.
SAMPLES, SEED = 50_000, 42


def _generate() -> dict[str, np.ndarray]:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed = SAMPLES, SEED
    d = make_dataset(args)  # procedural: no download
    return {"x": d["x"].astype(np.float32), "y": d["y"].astype(np.int32),
            "x_val": d["x_test"].astype(np.float32), "y_val": d["y_test"].astype(np.int32)}


@cache
def _data() -> Data:
    d = datacache.arrays(f"mnist1d-{version('mnist1d')}-{SAMPLES}-seed{SEED}", _generate)
    return Data(train=(d["x"], d["y"]), val=(d["x_val"], d["y_val"]))


def make(tier: str):
    width, steps, batch = TIERS[tier]
    widths = (40, width, width, 10)
    return classifier(
        f"mlp_mnist1d/{tier}", steps, batch, lambda rng: dense_init(rng, widths), mlp, _data,
        description=f"MLP 40-{width}-{width}-10 on MNIST-1D (40,000 rows), {steps} steps",
    )
