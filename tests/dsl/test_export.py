"""Tests for dsl/export.py: generated modules are valid, readable and self-contained."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys

import numpy as np
import pytest

from dsl import ProgramError, graph, library, ops, parse
from dsl.export import export_source, hyperparameters_of, split_decay_and_lr

EXPORTABLE = [n for n in library.names() if n != "adafactor"]


def generate(name: str) -> str:
    return export_source(library.get(name), name,
                         hyperparameters=hyperparameters_of(library.source(name)))


@pytest.mark.parametrize("name", EXPORTABLE)
def test_generated_module_imports_and_keeps_its_source(name: str, tmp_path) -> None:
    path = tmp_path / f"{name}.py"
    path.write_text(generate(name))
    spec = importlib.util.spec_from_file_location(f"gen_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert parse(module.SOURCE) == graph.remove_dead(library.get(name))
    assert callable(getattr(module, name)) and callable(getattr(module, f"scale_by_{name}"))


@pytest.mark.skipif(shutil.which("ruff") is None and importlib.util.find_spec("ruff") is None,
                    reason="ruff not installed")
def test_generated_modules_pass_ruff(tmp_path) -> None:
    for name in EXPORTABLE:
        (tmp_path / f"{name}.py").write_text(generate(name))
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated",
                        "--select", "E,F,W,I,B,UP", "--line-length", "100", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_recipes_split_decay_and_learning_rate() -> None:
    lion = split_decay_and_lr(library.get("lion"))
    assert lion is not None and lion.weight_decay == 0.001 and lion.direction == "update"
    assert split_decay_and_lr(library.get("lookahead_adamw")) is None
    text = generate("adamw")
    assert "optax.add_decayed_weights(weight_decay)" in text
    assert "optax.scale_by_learning_rate(learning_rate)" in text
    assert "def adamw(" in text and "b1: float = 0.9" in text


def test_unsupported_functions_are_named() -> None:
    with pytest.raises(ProgramError, match="export does not support .*factor_row"):
        generate("adafactor")


def test_code_templates_agree_with_the_implementations() -> None:
    from dsl.export import HELPERS

    helpers: dict = {"Any": object}
    for src in HELPERS.values():
        exec(src, helpers)  # our own helper source, as a generated module holds it
    rng = np.random.default_rng(0)
    for name, op in ops.OPS.items():
        if op.code is None:
            continue
        args = [rng.uniform(0.2, 0.9, 5) for _ in range(op.arity)]
        with np.errstate(all="ignore"):
            want = op.fn(np, *args)
            got = eval(op.code.format(*(f"a{k}" for k in range(op.arity))),  # our own template
                       {"xp": np, "abs": abs, **helpers}, {f"a{k}": a for k, a in enumerate(args)})
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=name)
