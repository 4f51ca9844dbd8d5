"""Random programs and statements, drawn with an explicit NumPy generator.

Used to insert statements during mutation, for random-search baselines, and by
tests and benchmarks that need many valid programs. No JAX here.
"""

from __future__ import annotations

import numpy as np

from dsl import abstract, ops
from dsl.errors import ProgramError
from dsl.program import INPUTS, Arg, Program, State, Statement

#: Functions drawn for new statements, in a fixed order so draws are reproducible.
OP_NAMES: tuple[str, ...] = tuple(sorted(ops.OPS))
_NAMED = tuple(sorted(ops.CONSTANTS))


def random_constant(rng: np.random.Generator) -> float | str:
    """A new constant: N(0, 1) as in the Lion search, sometimes a named one."""
    if rng.random() < 0.1:
        return _NAMED[rng.integers(len(_NAMED))]
    return float(np.round(rng.standard_normal(), 4))


def random_args(rng: np.random.Generator, op: ops.Op, variables: list[str]) -> tuple[Arg, ...]:
    """Arguments for ``op``: mostly variables in scope, sometimes constants."""
    args: list[Arg] = []
    for _ in range(op.arity):
        if variables and rng.random() < 0.8:
            args.append(variables[rng.integers(len(variables))])
        else:
            args.append(random_constant(rng))
    return tuple(args)


def random_statement(rng: np.random.Generator, variables: list[str], target: str) -> Statement:
    """``target = op(args)`` with a uniformly drawn function."""
    op = ops.OPS[OP_NAMES[rng.integers(len(OP_NAMES))]]
    return Statement(target, op.name, random_args(rng, op, variables))


def perturbed_constants(program: Program, rng: np.random.Generator, n: int,
                        scale: float = 0.3) -> list[Program]:
    """``n`` functionally distinct copies of ``program`` with every constant scaled
    by 2^a, a ~ N(0, ``scale``): programs of one structure, for benchmarks."""
    out, seen = [], set()
    while len(out) < n:
        statements = tuple(Statement(s.target, s.op, tuple(
            float(np.round(a * 2.0 ** rng.normal(0, scale), 6)) if isinstance(a, float) else a
            for a in s.args)) for s in program.statements)
        child = program.model_copy(update={"statements": statements})
        if abstract.fingerprint(child) not in seen:
            seen.add(abstract.fingerprint(child))
            out.append(child)
    return out


def random_program(
    rng: np.random.Generator,
    length: int,
    n_states: int = 2,
    shape: tuple[int, ...] = (256, 128),
    max_tries: int = 1000,
) -> Program:
    """A program of ``length`` statements that passes ``abstract.check`` for ``shape``.

    Draws candidates until one is valid (about one in ten is, for 20 statements);
    raises ``RuntimeError`` after ``max_tries``.
    """
    states = tuple(State(f"s{k}") for k in range(n_states))
    for _ in range(max_tries):
        variables = list(INPUTS) + [s.name for s in states]
        statements = []
        for i in range(length):
            r = rng.random()
            if r < 0.25 and states:
                target = states[rng.integers(len(states))].name
            elif r < 0.3:
                target = ("g", "lr")[rng.integers(2)]
            else:
                target = f"x{i}"
            statements.append(random_statement(rng, variables, target))
            if target not in variables:
                variables.append(target)
        outputs = (statements[-1].target,) + tuple(s.name for s in states)
        program = Program.model_construct(
            states=states, statements=tuple(statements), outputs=outputs
        )
        try:
            abstract.check(program, shape)
        except ProgramError:
            continue
        return program
    raise RuntimeError(f"no valid program of {length} statements in {max_tries} draws")
