"""Tests for search/generate.py: random valid programs, reproducible from a seed."""

from __future__ import annotations

import numpy as np

from dsl import abstract, ops, parse
from search.generate import random_program, random_statement


def test_random_programs_are_valid_and_reproducible() -> None:
    a = [random_program(np.random.default_rng(5), 12) for _ in range(2)]
    assert a[0] == a[1]
    for seed in range(20):
        p = random_program(np.random.default_rng(seed), 15, n_states=2)
        assert len(p.statements) == 15
        abstract.check(p, (256, 128))
        assert parse(p.to_source()) == p


def test_random_statements_use_only_variables_in_scope() -> None:
    rng = np.random.default_rng(0)
    seen_ops = set()
    for _ in range(3000):
        s = random_statement(rng, ["w", "g", "x"], "y")
        seen_ops.add(s.op)
        assert len(s.args) == ops.OPS[s.op].arity
        for a in s.args:
            assert (a in ("w", "g", "x") or a in ops.CONSTANTS) if isinstance(a, str) else True
    assert seen_ops == set(ops.OPS)  # every function is eventually drawn


def test_search_never_imports_jax() -> None:
    """Every module of search/, and the parts of evaluators/ the proposer uses, in a
    fresh process: no JAX (nor Ray, nor torch) is loaded."""
    import pkgutil
    import subprocess
    import sys

    import search

    modules = [f"search.{m.name}" for m in pkgutil.iter_modules(search.__path__)]
    modules += ["evaluators", "evaluators.catalog", "evaluators.grid", "evaluators.fitness"]
    assert len(modules) >= 16
    code = (f"import importlib, sys, dsl\nfor m in {modules!r}: importlib.import_module(m)\n"
            "dsl.abstract.fingerprint(dsl.library.get('lion'))\n"
            "loaded = [m for m in ('jax', 'ray', 'torch') if m in sys.modules]\n"
            "assert not loaded, loaded")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
