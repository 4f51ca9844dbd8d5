"""The registry of proxy tasks: ``family/tier`` names, e.g. ``mlp_mnist1d/A``.

>>> from evaluators import tasks
>>> tasks.get("quadratic/A").steps
300
>>> "cnn_digits/A" in tasks.held_out()
True
"""

from __future__ import annotations

from functools import cache

from evaluators.catalog import TIERS, held_out, names
from evaluators.tasks import autoencoder_digits, cnn_digits, mlp_mnist1d, quadratic, transformer_lm
from evaluators.tasks.base import Data, Task
from evaluators.tasks.user import REGISTERED, from_arrays, load_modules, register, unregister

FAMILIES = {
    "mlp_mnist1d": mlp_mnist1d,
    "transformer_lm": transformer_lm,
    "autoencoder_digits": autoencoder_digits,
    "cnn_digits": cnn_digits,
    "quadratic": quadratic,
}


def get(name: str) -> Task:
    """The task called ``family/tier`` (one of the project's or a registered one); a
    ValueError lists the choices."""
    return REGISTERED[name] if name in REGISTERED else _builtin(name)


@cache
def _builtin(name: str) -> Task:
    family, _, tier = name.partition("/")
    if family not in FAMILIES or tier not in TIERS:
        raise ValueError(f"unknown task {name!r}; choose one of: {', '.join(names())}")
    return FAMILIES[family].make(tier)


__all__ = ["Data", "FAMILIES", "TIERS", "Task", "from_arrays", "get", "held_out", "load_modules",
           "names", "register", "unregister"]
