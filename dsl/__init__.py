"""Optimizer programs: syntax, the function set, abstract execution, liveness.

>>> from dsl import parse, library, abstract
>>> p = library.get("lion")
>>> parse(p.to_source()) == p
True
>>> abstract.check(p, (4, 3)).states["m"].shape
(4, 3)

``dsl.to_optax(program)`` gives any program its JAX meaning as an optax
optimizer (imported on first use, so abstract execution never loads JAX).
"""

from dsl import abstract, graph, library, ops
from dsl.errors import ProgramError
from dsl.parse import parse
from dsl.program import INPUTS, Program, State, Statement


def __getattr__(name: str):
    # JAX is imported only when the JAX semantics are asked for, so search/ (which
    # imports dsl for abstract execution) never pulls JAX in.
    if name == "to_optax":
        from dsl.interpreter import to_optax

        return to_optax
    raise AttributeError(f"module 'dsl' has no attribute {name!r}")


__all__ = [
    "INPUTS",
    "Program",
    "ProgramError",
    "State",
    "Statement",
    "abstract",
    "graph",
    "library",
    "ops",
    "parse",
    "to_optax",
]
