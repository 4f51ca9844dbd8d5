"""Mutation: a child program from a parent, valid by construction.

Four kinds, as in the Lion search: insert a random statement, delete one,
change one argument (to another variable in scope or a new constant), and
perturb a constant (times 2^a, a ~ N(0, 1)); and two structural ones: ``fragment``
splices in a live fragment of a library program (:mod:`search.fragments`: the sign
of an interpolation, an orthogonalized momentum, a factored second moment), and
``crossover`` one of a second parent (a function the first parent's live code
lacks, with its slice), each made live at once. A draw that abstract execution
rejects is redrawn, up to ``max_tries`` times per kind; then the next kind is
tried. Dead statements are kept (stepping stones); only validity is required.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dsl import Program, ProgramError, abstract
from dsl.program import INPUTS, Statement
from search.config import MutationConfig
from search.fragments import crossover, library_fragments, splice
from search.generate import random_constant, random_statement

#: The kinds, in the order their weights are drawn by (a kind added later goes last:
#: with weight 0 it leaves every earlier draw as it was).
KINDS = ("insert", "delete", "change_arg", "perturb_constant", "fragment", "crossover")


def _scope(program: Program, i: int) -> list[str]:
    """Variables readable at statement ``i``: inputs, states, earlier targets."""
    names = list(INPUTS) + list(program.state_names)
    for st in program.statements[:i]:
        if st.target not in names:
            names.append(st.target)
    return names


def _with(program: Program, statements: list[Statement]) -> Program:
    return Program.model_construct(
        states=program.states, statements=tuple(statements), outputs=program.outputs)


def _insert(program: Program, rng: np.random.Generator, cfg: MutationConfig):
    n = len(program.statements)
    if n >= cfg.max_length:
        return None
    i = int(rng.integers(n + 1))
    scope = _scope(program, i)
    taken = {st.target for st in program.statements} | set(scope)
    if rng.random() < 0.5:
        target = next(f"x{k}" for k in range(n + len(taken) + 1) if f"x{k}" not in taken)
    else:
        writable = [v for v in scope if v not in ("t",)]
        target = writable[int(rng.integers(len(writable)))]
    st = random_statement(rng, scope, target)
    return _with(program, [*program.statements[:i], st, *program.statements[i:]]), {
        "kind": "insert", "at": i, "statement": st.to_source()}


def _delete(program: Program, rng: np.random.Generator, cfg: MutationConfig):
    n = len(program.statements)
    if n <= 1:
        return None
    i = int(rng.integers(n))
    removed = program.statements[i].to_source()
    return _with(program, [*program.statements[:i], *program.statements[i + 1:]]), {
        "kind": "delete", "at": i, "statement": removed}


def _change_arg(program: Program, rng: np.random.Generator, cfg: MutationConfig):
    sites = [(i, j) for i, st in enumerate(program.statements) for j in range(len(st.args))]
    if not sites:
        return None
    i, j = sites[int(rng.integers(len(sites)))]
    st = program.statements[i]
    scope = _scope(program, i)
    new = scope[int(rng.integers(len(scope)))] if rng.random() < 0.7 else random_constant(rng)
    if new == st.args[j]:
        return None
    args = list(st.args)
    args[j] = new
    statements = list(program.statements)
    statements[i] = Statement(st.target, st.op, tuple(args))
    return _with(program, statements), {
        "kind": "change_arg", "at": i, "arg": j, "statement": statements[i].to_source()}


def _perturb_constant(program: Program, rng: np.random.Generator, cfg: MutationConfig):
    sites = [(i, j) for i, st in enumerate(program.statements)
             for j, a in enumerate(st.args) if isinstance(a, float)]
    if not sites:
        return None
    i, j = sites[int(rng.integers(len(sites)))]
    st = program.statements[i]
    args = list(st.args)
    args[j] = float(np.float64(args[j]) * 2.0 ** rng.standard_normal())
    if not np.isfinite(args[j]):
        return None
    statements = list(program.statements)
    statements[i] = Statement(st.target, st.op, tuple(args))
    return _with(program, statements), {
        "kind": "perturb_constant", "at": i, "arg": j, "statement": statements[i].to_source()}


def _fragment(program: Program, rng: np.random.Generator, cfg: MutationConfig):
    if len(program.statements) >= cfg.max_length:
        return None
    pool = library_fragments(frozenset(cfg.fragment_exclude))
    made = splice(program, pool[int(rng.integers(len(pool)))], rng)
    if made is None or len(made[0].statements) > cfg.max_length:
        return None
    return made


_APPLY = {"insert": _insert, "delete": _delete, "change_arg": _change_arg,
          "perturb_constant": _perturb_constant, "fragment": _fragment}


def _crossover(program: Program, rng: np.random.Generator, cfg: MutationConfig,
               donor: tuple[int, Program]):
    if len(program.statements) >= cfg.max_length:
        return None
    made = crossover(program, donor[1], rng)
    if made is None or len(made[0].statements) > cfg.max_length:
        return None
    return made[0], made[1] | {"from": donor[0]}


def valid(program: Program, shapes: list[tuple[int, ...]]) -> bool:
    """Whether abstract execution accepts ``program`` on every shape."""
    try:
        for shape in shapes:
            abstract.check(program, shape)
    except ProgramError:
        return False
    return True


def mutate(
    program: Program, rng: np.random.Generator, cfg: MutationConfig,
    kinds: tuple[str, ...] = KINDS, donor: tuple[int, Program] | None = None,
) -> tuple[Program, dict[str, Any]]:
    """A valid child of ``program`` and a description of the mutation.

    Kinds are drawn by their weights in ``cfg`` (restricted to ``kinds``); a kind
    that cannot produce a valid child in ``cfg.max_tries`` draws gives way to the
    others. Raises ``RuntimeError`` if none can (a program too constrained).
    ``donor`` (an id and a program: a second parent) is what ``crossover`` takes a
    fragment from; without one, crossover is not drawn.
    """
    weights = np.array([getattr(cfg, k) if k in kinds and (k != "crossover" or donor)
                        else 0.0 for k in KINDS])
    remaining = weights.copy()
    while remaining.sum() > 0:
        k = int(rng.choice(len(KINDS), p=remaining / remaining.sum()))
        for _ in range(cfg.max_tries):
            if KINDS[k] == "crossover":
                made = _crossover(program, rng, cfg, donor)
            else:
                made = _APPLY[KINDS[k]](program, rng, cfg)
            if made is not None and valid(made[0], cfg.check_shapes):
                return made
        remaining[k] = 0.0
    raise RuntimeError("no mutation kind produced a valid child")


def random_valid_program(rng: np.random.Generator, cfg: MutationConfig) -> Program:
    """A random program valid on every check shape (the random-search baseline)."""
    from search.generate import random_program

    for _ in range(100):
        length = int(rng.integers(3, min(cfg.max_length, 20) + 1))
        p = random_program(rng, length, n_states=int(rng.integers(0, 3)),
                           shape=cfg.check_shapes[0])
        if valid(p, cfg.check_shapes):
            return p
    raise RuntimeError("no valid random program in 100 draws")


__all__ = ["KINDS", "mutate", "random_valid_program", "valid"]
