"""A program: an optimizer's update rule as immutable data.

::

    def train(w, g, lr, t, m, v):
      g2 = square(g)
      m = interp(g, m, 0.9)
      ...
      return update, m, v

Inputs are the weight ``w``, the gradient ``g``, the schedule value ``lr`` and the
1-based step ``t``; they may be reassigned. States follow in the signature (0 to
8 of them), each starting at zero, or as a copy of ``w`` when written ``slow=w``.
Each statement assigns one function of variables and numeric constants. The
return gives the update first (the caller applies ``w ← w − update``), then the
next value of each state, in signature order.
"""

from __future__ import annotations

import keyword
import math
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, PrivateAttr, model_validator

from dsl import ops
from dsl.errors import ProgramError

INPUTS: tuple[str, ...] = ("w", "g", "lr", "t")
MAX_STATES = 8
#: Most statements a program text may have (the paper's programs have under 30).
MAX_STATEMENTS = 1000
#: Most *live* statements a program the engine trains may have (its largest bucket,
#: :data:`evaluators.encode.BUCKETS`); a search's ``mutation.max_length`` is at most this.
MAX_LIVE = 64

Arg = str | float


class State(NamedTuple):
    """A state carried from one step to the next: its name and how it starts."""

    name: str
    init: Literal["zeros", "w"] = "zeros"


class Statement(NamedTuple):
    """``target = op(*args)``; an argument is a variable name or a float constant."""

    target: str
    op: str
    args: tuple[Arg, ...]

    def to_source(self) -> str:
        """The statement as canonical text, e.g. ``m = interp(g, m, 0.9)``."""
        op = ops.OPS[self.op]
        printed = [format_arg(a) for a in self.args]
        if op.infix:
            return f"{self.target} = {printed[0]} {op.infix} {printed[1]}"
        return f"{self.target} = {self.op}({', '.join(printed)})"


def format_arg(arg: Arg) -> str:
    """A variable prints as its name, a constant as the shortest exact float text."""
    return arg if isinstance(arg, str) else repr(float(arg))


def validate_structure(
    states: tuple[State, ...], statements: tuple[Statement, ...], outputs: tuple[str, ...]
) -> None:
    """Raise :class:`ProgramError` for a program that is malformed as data.

    Checks names, functions, arities, constants and the return; shapes, use
    before assignment and dependence on ``g`` are abstract execution's job.
    """
    if len(states) > MAX_STATES:
        raise ProgramError(f"{len(states)} states; at most {MAX_STATES} are allowed")
    if len(statements) > MAX_STATEMENTS:
        raise ProgramError(f"{len(statements)} statements; at most {MAX_STATEMENTS} are "
                           "allowed", statement=MAX_STATEMENTS)
    seen = set(INPUTS)
    for s in states:
        _check_name(s.name, "state")
        if s.name in seen:
            raise ProgramError(f"duplicate parameter name {s.name!r}")
        seen.add(s.name)
    for i, st in enumerate(statements):
        try:
            _check_name(st.target, "variable")
            op = ops.get(st.op)
            if len(st.args) != op.arity:
                raise ProgramError(
                    f"{st.op} takes {op.arity} argument{'s' * (op.arity != 1)}, "
                    f"got {len(st.args)}"
                )
            for a in st.args:
                if isinstance(a, str):
                    if not a.isidentifier():
                        raise ProgramError(f"argument {a!r} is not a variable name")
                elif not math.isfinite(a):
                    raise ProgramError(f"constant {a!r} is not finite")
        except KeyError as e:
            raise ProgramError(e.args[0], statement=i) from None
        except ProgramError as e:
            raise ProgramError(e.message, statement=i) from None
    if len(outputs) != 1 + len(states):
        raise ProgramError(
            f"the return gives {len(outputs)} value{'s' * (len(outputs) != 1)}; expected the "
            f"update and one per state ({1 + len(states)})"
        )
    for name in outputs:
        if not isinstance(name, str) or not name.isidentifier() or name in ops.CONSTANTS:
            raise ProgramError(f"the return must name variables, got {name!r}")


def _check_name(name: str, what: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ProgramError(f"{what} name {name!r} is not an identifier")
    if name in ops.RESERVED:
        raise ProgramError(f"{what} name {name!r} is reserved for a function or constant")


class Program(BaseModel):
    """An update rule: states, statements, and the returned update and states.

    Immutable; equal programs compare equal and hash alike. Build one with
    :func:`dsl.parse`, print it with :meth:`to_source`, and round-trip it through
    JSON with ``model_dump_json`` / ``model_validate_json``.

    >>> from dsl import parse
    >>> p = parse("def train(w, g, lr, t):\\n  u = g * lr\\n  return u\\n")
    >>> p.to_source().splitlines()[1]
    '  u = g * lr'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    states: tuple[State, ...] = ()
    statements: tuple[Statement, ...] = ()
    outputs: tuple[str, ...]

    # Derived facts (plan, liveness, checks) cached by the modules that compute
    # them; safe because a Program never changes. Not part of equality.
    _derived: dict[str, Any] | None = PrivateAttr(default=None)  # a factory costs ~20 us

    def _cache(self) -> dict[str, Any]:
        private = self.__pydantic_private__  # skips pydantic's slow __getattr__
        cache = private["_derived"]
        if cache is None:
            cache = private["_derived"] = {}
        return cache

    def derived(self, key: Any, compute: Any) -> Any:
        """``compute()`` once per program and ``key``; later calls reuse the value."""
        cache = self._cache()
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> Program:
        """A copy (with ``update`` applied and validated); derived facts are not copied."""
        if update:
            data = {**dict(self), **update}
            return Program(**data)
        copy = super().model_copy(deep=deep)
        copy.__pydantic_private__["_derived"] = None
        return copy

    def _key(self) -> tuple:
        return (self.states, self.statements, self.outputs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Program) and self._key() == other._key()

    def __hash__(self) -> int:
        return self.derived("hash", lambda: hash(self._key()))

    @model_validator(mode="after")
    def _valid(self) -> Program:
        validate_structure(self.states, self.statements, self.outputs)
        return self

    @property
    def state_names(self) -> tuple[str, ...]:
        """The state names, in signature order."""
        cache = self._cache()
        try:
            return cache["state_names"]
        except KeyError:
            names = cache["state_names"] = tuple(s.name for s in self.states)
            return names

    def to_source(self) -> str:
        """Canonical text: ``parse(p.to_source()) == p``."""
        params = list(INPUTS)
        params += [s.name if s.init == "zeros" else f"{s.name}={s.init}" for s in self.states]
        lines = [f"def train({', '.join(params)}):"]
        lines += [f"  {st.to_source()}" for st in self.statements]
        lines.append(f"  return {', '.join(self.outputs)}")
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.to_source()
