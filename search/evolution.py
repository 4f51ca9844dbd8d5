"""Regularized evolution with restarts, ask/tell (Real et al. 2019; Chen et al. 2023).

A round starts with the whole population equal to its seed program (the warm
start, or the best program so far). ``ask`` draws ``tournament`` members at
random, mutates the fittest; ``tell`` appends the child and drops the oldest.
A round ends when its best has not improved for ``plateau`` fresh evaluations
(a cache hit is a result but no new information, so it does not count): the first
``restarts`` rounds start from the warm start (exploration), later ones from
the best program found (exploitation). No JAX, no Ray: fitness comes from
outside. A candidate whose evaluation could not run (an infrastructure error,
not its fitness) is handed back with ``retry`` and asked again, same id, before
anything new. The state, random generator included, round-trips through JSON.

With a learning-rate grid that follows the parent (``lr_grid.follow_parent``),
each member keeps the multiplier its evaluation chose per task (``lr``), and a
child is asked with its parent's as ``lr_centre``; a program without a parent
(the warm start's children of a new round included) is centred on the warm
start's.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dsl import Program, parse
from evaluators.fitness import FAILED  # (plain Python: no JAX)
from search.config import SearchConfig
from search.mutation import mutate, random_valid_program


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


@dataclass
class Evolution:
    """The search's proposer. Build with :meth:`start`; resume with :meth:`from_state`."""

    cfg: SearchConfig
    warm: Program
    rng: np.random.Generator
    population: deque[Member] = field(default_factory=deque)
    next_id: int = 0
    round: int = 0
    round_best: float = FAILED
    since_improvement: int = 0
    best: Member | None = None
    warm_fitness: float | None = None
    told: int = 0
    retries: list[Candidate] = field(default_factory=list)
    warm_lr: dict[str, float] | None = None

    @staticmethod
    def start(cfg: SearchConfig, warm: Program) -> Evolution:
        evo = Evolution(cfg, warm, np.random.default_rng(cfg.seed))
        evo._seed_round(Member(-1, warm, None))
        return evo

    # --- ask / tell -------------------------------------------------------------

    def ask(self) -> Candidate:
        """The next program to evaluate. The very first is the warm start itself;
        a candidate handed back by :meth:`retry` comes before anything new."""
        if self.retries:
            return self.retries.pop(0)
        cid = self.next_id
        self.next_id += 1
        if cid == 0:
            return Candidate(0, None, self.warm, {"kind": "warm_start"}, self.round)
        if self.cfg.method == "random":
            program = random_valid_program(self.rng, self.cfg.mutation)
            return Candidate(cid, None, program, {"kind": "random"}, self.round,
                             self._centre(None))
        parent = self._tournament()
        kinds = ("perturb_constant",) if self.cfg.method == "constants" else None
        child, mutation = (mutate(parent.program, self.rng, self.cfg.mutation, kinds)
                           if kinds else mutate(parent.program, self.rng, self.cfg.mutation))
        return Candidate(cid, parent.id if parent.id >= 0 else 0, child, mutation, self.round,
                         self._centre(parent))

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
        task, ``lr``); may end the round and start the next. A result that is not
        ``fresh`` (a cache hit) does not count towards the plateau."""
        self.told += 1
        fitness = float(fitness) if np.isfinite(fitness) else FAILED
        if candidate.id == 0:
            self.warm_fitness, self.warm_lr = fitness, lr
            self.population = deque(
                Member(0, m.program, fitness, lr) if m.id == -1 else m for m in self.population)
        member = Member(candidate.id, candidate.program, fitness, lr)
        if fitness > FAILED and (self.best is None or fitness > self.best.fitness):
            self.best = member
        if candidate.round != self.round:
            return  # a straggler from an earlier round: counted, not bred from
        if candidate.id != 0:
            self.population.append(member)
            while len(self.population) > self.cfg.population:
                self.population.popleft()
        if fitness > self.round_best:
            self.round_best, self.since_improvement = fitness, 0
        elif fresh:
            self.since_improvement += 1
            if self.since_improvement >= self.cfg.plateau:
                self._next_round()

    # --- rounds -------------------------------------------------------------------

    def _tournament(self) -> Member:
        idx = self.rng.choice(len(self.population), size=self.cfg.tournament, replace=True)
        contenders = [self.population[int(i)] for i in idx]
        return max(contenders, key=lambda m: FAILED if m.fitness is None else m.fitness)

    def _seed_round(self, seed: Member) -> None:
        self.population = deque([seed] * self.cfg.population)
        self.round_best = FAILED if seed.fitness is None else seed.fitness
        self.since_improvement = 0

    def _next_round(self) -> None:
        self.round += 1
        if self.round < self.cfg.restarts or self.best is None:
            self._seed_round(Member(0, self.warm, self.warm_fitness, self.warm_lr))
        else:
            self._seed_round(self.best)

    @property
    def exploring(self) -> bool:
        return self.round < self.cfg.restarts

    # --- state ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly, as JSON-able data."""

        def member(m: Member | None):
            return None if m is None else {"id": m.id, "source": m.program.to_source(),
                                           "fitness": m.fitness, "lr": m.lr}

        return {
            "population": [member(m) for m in self.population],
            "next_id": self.next_id, "round": self.round, "round_best": self.round_best,
            "since_improvement": self.since_improvement, "best": member(self.best),
            "warm_fitness": self.warm_fitness, "told": self.told,
            "rng": self.rng.bit_generator.state,
            "retries": [{"id": c.id, "parent": c.parent, "source": c.program.to_source(),
                         "mutation": c.mutation, "round": c.round, "lr_centre": c.lr_centre}
                        for c in self.retries],
            "warm_lr": self.warm_lr,
        }

    @staticmethod
    def from_state(cfg: SearchConfig, warm: Program, state: dict[str, Any]) -> Evolution:
        sources: dict[str, Program] = {}

        def member(d):
            if d is None:
                return None
            program = sources.get(d["source"]) or sources.setdefault(d["source"],
                                                                     parse(d["source"]))
            return Member(d["id"], program, d["fitness"], d.get("lr"))

        rng = np.random.default_rng()
        rng.bit_generator.state = state["rng"]
        return Evolution(
            cfg, warm, rng, deque(member(d) for d in state["population"]), state["next_id"],
            state["round"], state["round_best"], state["since_improvement"],
            member(state["best"]), state["warm_fitness"], state["told"],
            [Candidate(d["id"], d["parent"], parse(d["source"]), d["mutation"], d["round"],
                       d.get("lr_centre")) for d in state.get("retries", [])],
            state.get("warm_lr"),
        )
