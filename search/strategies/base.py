"""The protocol every search strategy implements, and the records it exchanges.

A strategy decides which program to try next and what to make of a result; the
driver (:class:`search.evolution.Evolution`) does the rest the same way for every
strategy: ids, the warm start first and alone, candidates handed back after an
infrastructure error, the best program, learning-rate centres, and the checkpoint.

A strategy holds no state of its own: :meth:`Strategy.init` returns it as JSON-able
data, :meth:`Strategy.ask` and :meth:`Strategy.tell` read and change it, and the
driver writes it into the checkpoint, so a resumed search continues exactly. All
randomness comes from the driver's generator (``ctx.rng``), drawn in ask and tell
only, so a seeded search is the same on every run. No JAX, no Ray: fitness comes
from outside.

>>> from search.strategies import get
>>> get("evolution").name, get("random").name, get("constants").name
('evolution', 'random', 'constants')
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from dsl import Program, parse
from search.config import SearchConfig


@dataclass(frozen=True)
class Member:
    """A program in the population, with its id and fitness (None until told)."""

    id: int
    program: Program
    fitness: float | None
    lr: dict[str, float] | None = None


@dataclass(frozen=True)
class Candidate:
    """A program asked for, to be evaluated and told back. ``lr_centre``: per task,
    the multiplier its learning-rate grid is centred on (its parent's choice), or None."""

    id: int
    parent: int | None
    program: Program
    mutation: dict[str, Any]
    round: int
    lr_centre: dict[str, float] | None = None


@dataclass(frozen=True)
class Proposal:
    """What a strategy asks for: a program, the member it came from (its id; None for
    a program made from nothing), and how it was made (recorded in the history)."""

    program: Program
    parent: Member | None
    mutation: dict[str, Any]


@dataclass(frozen=True)
class Context:
    """What the driver gives a strategy: the configuration, the random generator, the
    warm start (its fitness and learning rates once told) and the best program so far."""

    cfg: SearchConfig
    rng: np.random.Generator
    warm: Member
    best: Member | None
    #: The programs of ``cfg.warm_starts``, in order (rounds may start from them).
    starts: tuple[Program, ...] = ()


class Strategy:
    """A search strategy. Subclass it, set ``name``, and register it
    (:func:`search.strategies.register`); ``method: NAME`` in a config then uses it.

    ``init`` gives the state at the start, from the warm start (told: its fitness is
    known); ``ask`` proposes; ``tell`` hears a result. ``fresh`` is False for a cache
    hit (a result, but no new information). ``round`` and ``exploring`` say where the
    search is, for the records and the progress line.
    """

    name: ClassVar[str] = ""

    def init(self, ctx: Context) -> dict[str, Any]:
        return {}

    def ask(self, ctx: Context, state: dict[str, Any]) -> Proposal:
        raise NotImplementedError

    def tell(self, ctx: Context, state: dict[str, Any], member: Member, round: int,
             fresh: bool) -> None:
        """``member`` was asked in round ``round``."""

    def round(self, state: dict[str, Any]) -> int:
        return int(state.get("round", 0))

    def exploring(self, ctx: Context, state: dict[str, Any]) -> bool:
        return False


def member_data(m: Member | None) -> dict[str, Any] | None:
    """A member as checkpoint data."""
    return None if m is None else {"id": m.id, "source": m.program.to_source(),
                                   "fitness": m.fitness, "lr": m.lr}


@functools.lru_cache(maxsize=4096)
def _parsed(source: str) -> Program:
    return parse(source)


def member_of(d: dict[str, Any] | None) -> Member | None:
    """A member from checkpoint data (sources parsed once per process)."""
    if d is None:
        return None
    return Member(d["id"], _parsed(d["source"]), d["fitness"], d.get("lr"))


__all__ = ["Candidate", "Context", "Member", "Proposal", "Strategy", "member_data", "member_of"]
