"""The import rules of DESIGN.md, read from the source (imports inside functions count).

- dsl/ (programs) imports neither search/ nor evaluators/;
- evaluators/ (judging) imports neither search/ nor Ray (decision 6);
- search/ (proposing) imports no JAX, optax or torch, and of evaluators/ only its
  JAX-free interface (the task catalogue, ``FAILED``, the learning-rate grid), except
  the executor, the one place that knows both sides;
- discovered/ (exported modules) imports nothing of this project: it is copied
  into other codebases.

tests/search/test_generate.py checks the same in a fresh process for what is loaded.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = {"dsl", "search", "evaluators", "discovered", "run_search"}
#: The modules of evaluators/ that search/ may import: plain Python, no JAX.
EVALUATORS_INTERFACE = {"evaluators.catalog", "evaluators.fitness", "evaluators.grid"}


def imports(path: Path, root: Path = ROOT) -> set[str]:
    """Every module ``path`` imports, as a dotted name (relative imports resolved)."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            # `from evaluators import evaluate` may name a module: count both forms
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return found


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def top(name: str) -> str:
    return name.split(".")[0]


def test_the_packages_are_found() -> None:
    assert len(sources("dsl")) >= 15 and len(sources("search")) >= 12
    assert len(sources("evaluators")) >= 10 and len(sources("discovered")) >= 3


@pytest.mark.parametrize("path", sources("dsl"), ids=str)
def test_dsl_imports_neither_search_nor_evaluators(path: Path) -> None:
    bad = {m for m in imports(path) if top(m) in {"search", "evaluators", "run_search"}}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", sources("evaluators"), ids=str)
def test_evaluators_import_neither_search_nor_ray(path: Path) -> None:
    bad = {m for m in imports(path) if top(m) in {"search", "ray", "run_search"}}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", sources("search"), ids=str)
def test_search_imports_no_jax_and_only_the_evaluators_interface(path: Path) -> None:
    found = imports(path)
    bad = {m for m in found if top(m) in {"jax", "jaxlib", "optax", "torch", "run_search"}}
    if path.name != "executor.py":
        bad |= {m for m in found if top(m) == "evaluators"
                and not any(m == i or m.startswith(i + ".") for i in EVALUATORS_INTERFACE)}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_evaluators_interface_is_plain_python() -> None:
    for name in EVALUATORS_INTERFACE:
        found = imports(ROOT / (name.replace(".", "/") + ".py"))
        assert not {m for m in found if top(m) in {"jax", "jaxlib", "optax", "torch", "ray"}}
        assert not {m for m in found if top(m) == "evaluators"} - EVALUATORS_INTERFACE, name


@pytest.mark.parametrize("path", sources("discovered"), ids=str)
def test_exported_modules_import_nothing_of_the_project(path: Path) -> None:
    bad = {m for m in imports(path) if top(m) in PROJECT}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_a_broken_rule_is_seen(tmp_path) -> None:
    """The reader finds imports inside functions, relative ones, and a module named in
    ``from package import module`` (a rule that cannot fail is no rule)."""
    assert {"evaluators", "evaluators.evaluate"} <= imports(ROOT / "search" / "executor.py")
    path = tmp_path / "search" / "probe.py"
    path.parent.mkdir()
    path.write_text("def f():\n    from ..evaluators import engine\n    import jax.numpy\n")
    assert {"evaluators.engine", "jax.numpy"} <= imports(path, tmp_path)
