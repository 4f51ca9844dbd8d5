"""Optimizer programs: syntax, the function set, abstract execution, liveness.

>>> from dsl import parse, library, abstract
>>> p = library.get("lion")
>>> parse(p.to_source()) == p
True
>>> abstract.check(p, (4, 3)).states["m"].shape
(4, 3)
"""

from dsl import abstract, graph, library, ops
from dsl.errors import ProgramError
from dsl.parse import parse
from dsl.program import INPUTS, Program, State, Statement

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
]
