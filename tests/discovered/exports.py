"""The exported modules under test: the committed ones and any given with --module."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

#: The exported optimizers this repository ships (regenerated from the library).
COMMITTED = ["adafactor", "lion", "muon"]
PACKAGE = Path(__file__).resolve().parents[2] / "discovered"


def path_of(name: str) -> Path:
    return Path(name) if name.endswith(".py") else PACKAGE / f"{name}.py"


def optimizer_name(name: str) -> str:
    return path_of(name).stem


def load(name: str) -> Any:
    """The module at ``name``'s file, freshly imported as ``contract_STEM`` (and in
    sys.modules under that name, as an import puts it: torch.compile looks it up)."""
    path = path_of(name)
    spec = importlib.util.spec_from_file_location(f"contract_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def recipe(module: Any, name: str) -> Any:
    """The module's optax recipe (``lion`` of ``lion.py``)."""
    return getattr(module, optimizer_name(name))


def torch_class(module: Any, name: str) -> Any:
    """The module's ``torch.optim.Optimizer`` class (``Lion`` of ``lion.py``)."""
    return getattr(module, "".join(x.capitalize() for x in optimizer_name(name).split("_")))
