"""The library: known optimizers written as programs, kept as DSL source files.

Each optimizer lives in ``dsl/programs/NAME.dsl``, with a comment saying which
reference it follows and where its conventions differ from the paper's program
form. Named hyperparameters at the top of a file can be overridden:

>>> from dsl import library
>>> "lion" in library.names()
True
>>> library.get("lion", b1=0.95).statements[0].args
('g', 'm', 0.95)
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from dsl.errors import ProgramError
from dsl.parse import parse
from dsl.program import Program


@cache
def _sources() -> dict[str, str]:
    folder = resources.files("dsl") / "programs"
    return {
        f.name.removesuffix(".dsl"): f.read_text(encoding="utf-8")
        for f in folder.iterdir()
        if f.name.endswith(".dsl")
    }


def names() -> list[str]:
    """The library's program names, sorted."""
    return sorted(_sources())


def source(name: str) -> str:
    """The DSL file of ``name``, comments and hyperparameters included."""
    try:
        return _sources()[name]
    except KeyError:
        raise ProgramError(
            f"no library program {name!r}; choose one of: {', '.join(names())}"
        ) from None


@cache
def _default(name: str) -> Program:
    return parse(source(name))


def get(name: str, **hyperparameters: float) -> Program:
    """The program ``name``, with any named hyperparameters overridden."""
    if not hyperparameters:
        return _default(name)
    return parse(source(name), **hyperparameters)
