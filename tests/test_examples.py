"""The examples in docstrings run, and print what they say (a runnable example that
is never run rots)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dsl", "evaluators", "search", "discovered")


def modules_with_examples() -> list[str]:
    names = []
    for package in PACKAGES:
        for info in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
            path = ROOT / (info.name.replace(".", "/") + ("/__init__.py" if info.ispkg else ".py"))
            if ">>> " in path.read_text():
                names.append(info.name)
        if ">>> " in (ROOT / package / "__init__.py").read_text():
            names.append(package)
    return sorted(names)


def test_the_examples_are_found() -> None:
    assert {"dsl.interpreter", "evaluators.evaluate", "evaluators.tasks.base"} <= set(
        modules_with_examples())


@pytest.mark.parametrize("name", modules_with_examples())
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS,
                             verbose=False, report=True)
    assert result.attempted > 0 and result.failed == 0, result
