"""The one walker: runs a program's statements under any semantics.

Shape inference, NumPy execution (fingerprints), JAX execution and code
generation differ only in what a constant is and what applying an op means; the
loop over statements, the variable environment, liveness skipping and error
reporting are here, once (the pattern of ``eval_jaxpr`` in JAX's "Writing custom
interpreters" guide).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from dsl import ops
from dsl.errors import ProgramError
from dsl.graph import liveness
from dsl.program import INPUTS, Program

#: A semantics: ``const(value)`` makes a constant, ``apply(op, args)`` an op's value.
Const = Callable[[float], Any]
Apply = Callable[[ops.Op, list[Any]], Any]


class Plan:
    """A program prepared for fast repeated walking (names resolved once).

    ``live`` keeps only those statement indices; ``outputs`` only those returned
    values (0 is the update), e.g. to skip the returns of dead states. An unknown
    function or a wrong arity raises :class:`ProgramError` here, before any walk.
    """

    __slots__ = ("program", "steps", "outputs")

    def __init__(
        self,
        program: Program,
        live: Iterable[int] | None = None,
        outputs: Iterable[int] | None = None,
    ) -> None:
        keep = None if live is None else set(live)
        self.program = program
        self.steps: list[tuple[int, str, ops.Op, tuple[tuple[bool, Any], ...]]] = []
        for i, st in enumerate(program.statements):
            op = ops.OPS.get(st.op)
            if op is None or len(st.args) != op.arity:
                reason = (
                    f"unknown function {st.op!r}" if op is None
                    else f"{st.op} takes {op.arity} arguments, got {len(st.args)}"
                )
                raise ProgramError(reason, statement=i)
            if keep is not None and i not in keep:
                continue
            args = tuple(
                (False, ops.CONSTANTS[a]) if isinstance(a, str) and a in ops.CONSTANTS
                else (isinstance(a, str), a)
                for a in st.args
            )
            self.steps.append((i, st.target, op, args))
        names = program.outputs
        self.outputs = names if outputs is None else tuple(names[k] for k in outputs)

    @staticmethod
    def of(program: Program) -> Plan:
        """The plan of every statement and output, cached on the program."""
        return program.derived("plan", lambda: Plan(program))

    @staticmethod
    def live_of(program: Program) -> Plan:
        """The plan of the live statements, returning the update and the live states.

        Dead statements cannot change the update, so executing them is wasted
        work (and a dead NaN is harmless). Cached on the program.
        """

        def build() -> Plan:
            live = liveness(program)
            outputs = (0,) + tuple(k + 1 for k in sorted(live.states))
            return Plan(program, live.statements, outputs)

        return program.derived("live_plan", build)


def initial_env(program: Program, inputs: Mapping[str, Any], states: Iterable[Any]) -> dict:
    """The variables at the start of a step: the inputs, then the states."""
    env = {name: inputs[name] for name in INPUTS if name in inputs}
    env.update(zip(program.state_names, states, strict=True))
    return env


def walk(plan: Plan, env: dict[str, Any], const: Const, apply: Apply) -> tuple[Any, ...]:
    """Run one step; return the update and the next states (the program's outputs).

    ``env`` holds the inputs and states and is updated in place. A variable read
    before it is assigned, or a shape rule's refusal, raises :class:`ProgramError`
    naming the statement.
    """
    consts: dict[float, Any] = {}
    for i, target, op, args in plan.steps:
        values = []
        for is_var, a in args:
            if is_var:
                try:
                    values.append(env[a])
                except KeyError:
                    raise _undefined(plan.program, i, a) from None
            else:
                c = consts.get(a)
                if c is None:
                    c = consts[a] = const(a)
                values.append(c)
        try:
            env[target] = apply(op, values)
        except ops.ShapeError as e:
            raise ProgramError(
                f"{op.name}: {e}", statement=i, source=plan.program.statements[i].to_source()
            ) from None
    out = []
    for name in plan.outputs:
        try:
            out.append(env[name])
        except KeyError:
            raise _undefined(plan.program, None, name) from None
    return tuple(out)


def _undefined(program: Program, index: int | None, name: str) -> ProgramError:
    assigned = {st.target for st in program.statements}
    reason = "used before assignment" if name in assigned else "unknown variable"
    if index is None:
        return ProgramError(f"{reason} {name!r} in the return")
    return ProgramError(f"{reason} {name!r}", statement=index,
                        source=program.statements[index].to_source())
