"""Judging programs: proxy tasks, the training engine, fitness against the warm start.

Never imports Ray or search/. Importing the package loads no JAX: ``evaluate``
and its kin load it when first used, so ``evaluators.grid`` and
``evaluators.catalog`` are safe where JAX must not be (the search's proposer).

>>> from dsl import library
>>> from evaluators import evaluate
>>> evaluate(library.get("lion"), "quadratic/A").task
'quadratic/A'
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

#: Public names and the modules that define them, imported on first use.
_LAZY = {
    "BASELINE": "evaluators.evaluate", "EvalResult": "evaluators.evaluate",
    "evaluate": "evaluators.evaluate", "evaluate_all": "evaluators.evaluate",
    "evaluate_batch": "evaluators.evaluate", "FAILED": "evaluators.fitness",
    "LrGrid": "evaluators.grid",
}


class _Package(types.ModuleType):
    """This package's module type: importing ``evaluators.evaluate`` sets the
    package's ``evaluate`` to that module, yet the name means the function."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "evaluate" and isinstance(value, types.ModuleType):
            value = value.evaluate
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in ("fitness", "tasks", "grid", "engine", "catalog"):
        return importlib.import_module(f"evaluators.{name}")
    raise AttributeError(f"module 'evaluators' has no attribute {name!r}")


__all__ = ["BASELINE", "FAILED", "EvalResult", "LrGrid", "evaluate", "evaluate_all",
           "evaluate_batch", "fitness", "tasks"]
