"""The examples in docstrings run, and print what they say (a runnable example that
is never run rots)."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dsl", "evaluators", "search", "discovered", "benchmarks")


def modules_with_examples() -> list[str]:
    """Every module of the packages whose source holds an example, found from the files
    (nothing imported to find them)."""
    names = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if ">>> " in path.read_text():
                parts = path.relative_to(ROOT).with_suffix("").parts
                names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(names)


def test_the_examples_are_found() -> None:
    assert {"dsl.interpreter", "evaluators.evaluate", "evaluators.tasks.base"} <= set(
        modules_with_examples())


@pytest.mark.parametrize("name", modules_with_examples())
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS,
                             verbose=False, report=True)
    assert result.attempted > 0 and result.failed == 0, result
