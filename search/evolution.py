"""The search's proposer, ask/tell: a strategy plug-in behind one driver.

The driver does what every strategy needs done the same way. Its first phase is
the warm start: asked first (id 0) and alone, and only once it is told (its fitness
and learning rates known) does the strategy begin (:meth:`Strategy.init`). Then
each ``ask`` is the strategy's proposal with the next id; a candidate whose
evaluation could not run (an infrastructure error, not its fitness) is handed back
with ``retry`` and asked again, same id, before anything new; ``tell`` keeps the
best program and passes the result to the strategy. Which strategy is the config's
``method``, a name in :mod:`search.strategies`' registry (regularized evolution by
default; random search; constants-only tuning). No JAX, no Ray: fitness comes from
outside. The state, the strategy's and the random generator's included, round-trips
through JSON: it is the checkpoint.

With a learning-rate grid that follows the parent (``lr_grid.follow_parent``),
each member keeps the multiplier its evaluation chose per task (``lr``), and a
child is asked with its parent's as ``lr_centre``; a program without a parent is
centred on the warm start's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dsl import Program, parse
from evaluators.fitness import FAILED  # (plain Python: no JAX)
from search import strategies
from search.config import SearchConfig
from search.strategies.base import Candidate, Context, Member, member_data, member_of

#: The driver's own keys in the checkpoint; every other key is the strategy's state.
_DRIVER = ("next_id", "best", "warm_fitness", "told", "rng", "retries", "warm_lr")


@dataclass
class Evolution:
    """The search's proposer. Build with :meth:`start`; resume with :meth:`from_state`."""

    cfg: SearchConfig
    warm: Program
    rng: np.random.Generator
    strategy: strategies.Strategy
    state: dict[str, Any] | None = None  # the strategy's, from the warm start's result on
    next_id: int = 0
    best: Member | None = None
    warm_fitness: float | None = None
    told: int = 0
    retries: list[Candidate] = field(default_factory=list)
    warm_lr: dict[str, float] | None = None
    starts: tuple[Program, ...] = ()  # the programs of cfg.warm_starts

    @staticmethod
    def start(cfg: SearchConfig, warm: Program, starts: tuple[Program, ...] = ()) -> Evolution:
        """A new search (``starts``: the programs of ``cfg.warm_starts``); KeyError if
        ``cfg.method`` names no registered strategy."""
        return Evolution(cfg, warm, np.random.default_rng(cfg.seed), strategies.get(cfg.method),
                         starts=tuple(starts))

    @property
    def context(self) -> Context:
        warm = Member(0, self.warm, self.warm_fitness, self.warm_lr)
        return Context(self.cfg, self.rng, warm, self.best, self.starts)

    @property
    def phase(self) -> str:
        """``warm_start`` until the warm start is told, then ``search``."""
        return "warm_start" if self.state is None else "search"

    # --- ask / tell -------------------------------------------------------------

    def ask(self) -> Candidate:
        """The next program to evaluate: a candidate handed back by :meth:`retry` first;
        in the warm-start phase the warm start itself (once); then the strategy's."""
        if self.retries:
            return self.retries.pop(0)
        cid = self.next_id
        self.next_id += 1
        if cid == 0:
            return Candidate(0, None, self.warm, {"kind": "warm_start"}, 0)
        if self.state is None:
            raise RuntimeError("the warm start must be told before the search asks for more")
        proposal = self.strategy.ask(self.context, self.state)
        parent = proposal.parent
        return Candidate(cid, None if parent is None else max(parent.id, 0), proposal.program,
                         proposal.mutation, self.round, self._centre(parent))

    def _centre(self, parent: Member | None) -> dict[str, float] | None:
        """Where a child's learning-rate grid is centred: its parent's multipliers
        (the warm start's without a parent, and on tasks the parent was not trained on)."""
        grid = self.cfg.lr_grid
        if grid is None or not grid.follow_parent:
            return None
        lr = (self.warm_lr or {}) | (parent.lr if parent is not None and parent.lr else {})
        return lr or None

    def retry(self, candidate: Candidate) -> None:
        """Hand back a candidate whose evaluation could not run: asked again next."""
        self.retries.append(candidate)

    def tell(self, candidate: Candidate, fitness: float, *, lr: dict[str, float] | None = None,
             fresh: bool = True) -> None:
        """Record ``candidate``'s fitness (and the multipliers its evaluation chose per
        task, ``lr``). The warm start's result ends the warm-start phase: the strategy
        begins from it. A result that is not ``fresh`` (a cache hit) is no new
        information (regularized evolution's plateau does not count it)."""
        self.told += 1
        fitness = float(fitness) if np.isfinite(fitness) else FAILED
        member = Member(candidate.id, candidate.program, fitness, lr)
        if fitness > FAILED and (self.best is None or fitness > self.best.fitness):
            self.best = member
        if candidate.id == 0:
            self.warm_fitness, self.warm_lr = fitness, lr
            if self.state is None:
                self.state = self.strategy.init(self.context)
            return
        if self.state is not None:
            self.strategy.tell(self.context, self.state, member, candidate.round, fresh)

    # --- where the search is ------------------------------------------------------

    @property
    def round(self) -> int:
        return 0 if self.state is None else self.strategy.round(self.state)

    @property
    def exploring(self) -> bool:
        return self.state is None or self.strategy.exploring(self.context, self.state)

    @property
    def population(self) -> list[Member]:
        """The strategy's population, where it keeps one (oldest first)."""
        return [member_of(d) for d in (self.state or {}).get("population", [])]

    @property
    def since_improvement(self) -> int:
        return int((self.state or {}).get("since_improvement", 0))

    # --- state ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly, as JSON-able data: the driver's keys
        and the strategy's state beside them (the layout runs made before strategies were
        plug-ins wrote, so they resume as they were)."""
        return (self.state or {}) | {
            "next_id": self.next_id, "best": member_data(self.best),
            "warm_fitness": self.warm_fitness, "told": self.told,
            "rng": self.rng.bit_generator.state,
            "retries": [{"id": c.id, "parent": c.parent, "source": c.program.to_source(),
                         "mutation": c.mutation, "round": c.round, "lr_centre": c.lr_centre}
                        for c in self.retries],
            "warm_lr": self.warm_lr,
        }

    @staticmethod
    def from_state(cfg: SearchConfig, warm: Program, state: dict[str, Any],
                   starts: tuple[Program, ...] = ()) -> Evolution:
        rng = np.random.default_rng()
        rng.bit_generator.state = state["rng"]
        own = {k: v for k, v in state.items() if k not in _DRIVER}
        started = state["warm_fitness"] is not None
        if started and "population" in own:  # an older run's population: ids and programs
            for d in own["population"]:
                parse(d["source"])  # a source that is no program is refused here
        return Evolution(
            cfg, warm, rng, strategies.get(cfg.method), own if started else None,
            state["next_id"], member_of(state["best"]), state["warm_fitness"], state["told"],
            [Candidate(d["id"], d["parent"], parse(d["source"]), d["mutation"], d["round"],
                       d.get("lr_centre")) for d in state.get("retries", [])],
            state.get("warm_lr"), tuple(starts),
        )


__all__ = ["FAILED", "Candidate", "Evolution", "Member"]
