"""What a program is: a known optimizer with other constants, or a new structure.

A program's *skeleton* is how it computes its update with its dead code removed and
every numeric constant abstracted (:func:`dsl.abstract.skeleton_hash`: names, the
order of independent statements and the argument order of commutative functions do
not matter either, and what a constant of 0 or 1 makes vanish is gone). Two programs
with the same skeleton are the same algorithm with other hyperparameters, so a search
whose best has the warm start's skeleton found constants, not an algorithm. A known
program with up to two of its constants at 0 or 1 is still that program with other
constants (the warm start without weight decay is the warm start with weight decay 0).
:func:`identify` says which of three a program is:

- ``warm_start``: the warm start's skeleton (itself when the constants agree too);
- ``library``: the skeleton of a library program (:mod:`dsl.library`);
- ``new``: neither, with the nearest library skeleton and the diff to it.

>>> from dsl import library
>>> identify(library.get("adamw", b2=0.95), library.get("warmstart")).describe()
'library program adamw with other constants'
>>> identify(library.get("warmstart"), library.get("warmstart")).describe()
'the warm start itself'
>>> identify(library.get("lion"), library.get("warmstart")).kind
'library'
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Iterator
from functools import cache
from typing import Literal, NamedTuple

from dsl import abstract, library
from dsl.graph import remove_dead
from dsl.parse import parse
from dsl.program import Program

Kind = Literal["warm_start", "library", "new"]


class Identity(NamedTuple):
    """What :func:`identify` found."""

    kind: Kind
    #: The library program whose skeleton it has (``library``), else the nearest one.
    name: str
    #: Its constants are the warm start's too (``warm_start`` only).
    same_constants: bool = False
    #: ``new``: a unified diff from the nearest library skeleton to the program's.
    diff: str = ""

    def describe(self) -> str:
        """In words, e.g. ``library program lion with other constants``."""
        if self.kind == "warm_start":
            return "the warm start itself" if self.same_constants else (
                "the warm start with other constants")
        if self.kind == "library":
            return f"library program {self.name} with other constants"
        return f"a new structure (nearest library skeleton: {self.name})"


def skeleton_text(program: Program) -> list[str]:
    """The live statements, each constant written ``C``: what skeletons are diffed by."""
    live = remove_dead(program)
    lines = []
    for st in live.statements:
        masked = st._replace(args=tuple(a if isinstance(a, str) else 0.0 for a in st.args))
        lines.append(masked.to_source().replace("0.0", "C") + "\n")
    return lines + [f"return {', '.join(live.outputs)}\n"]


def _variants(program: Program, most: int = 2) -> Iterator[Program]:
    """``program``, then it with up to ``most`` of its constants set to 0 or to 1."""
    yield program
    sites = [(i, j) for i, st in enumerate(program.statements)
             for j, a in enumerate(st.args) if not isinstance(a, str)]
    for size in range(1, most + 1):
        for chosen in itertools.combinations(sites, size):
            for values in itertools.product((0.0, 1.0), repeat=size):
                statements = list(program.statements)
                for (i, j), value in zip(chosen, values, strict=True):
                    args = list(statements[i].args)
                    args[j] = value
                    statements[i] = statements[i]._replace(args=tuple(args))
                yield program.model_copy(update={"statements": tuple(statements)})


@cache
def _skeletons_of(source: str) -> frozenset[str]:
    """The skeletons of a program (by its text) and of its variants (:func:`_variants`)."""
    return frozenset(abstract.skeleton_hash(v) for v in _variants(parse(source)))


@cache
def _library_skeletons() -> tuple[tuple[frozenset[str], str], ...]:
    return tuple((_skeletons_of(library.get(n).to_source()), n) for n in library.names())


def identify(program: Program, warm: Program) -> Identity:
    """Whether ``program`` is the warm start or a library program with other constants,
    or a new structure (then the nearest library skeleton by the share of live
    statements in common, and the diff from it)."""
    skeleton = abstract.skeleton_hash(program)
    if skeleton in _skeletons_of(warm.to_source()):
        same = abstract.structural_hash(program) == abstract.structural_hash(warm)
        return Identity("warm_start", "", same)
    for others, name in _library_skeletons():
        if skeleton in others:
            return Identity("library", name)
    text = skeleton_text(program)

    def likeness(name: str) -> float:
        return difflib.SequenceMatcher(None, skeleton_text(library.get(name)), text).ratio()

    nearest = max(library.names(), key=lambda name: (likeness(name), name == "adamw"))
    diff = "".join(difflib.unified_diff(skeleton_text(library.get(nearest)), text,
                                        nearest, "program"))
    return Identity("new", nearest, diff=diff)


__all__ = ["Identity", "identify", "skeleton_text"]
