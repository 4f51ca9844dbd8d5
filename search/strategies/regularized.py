"""Regularized evolution with restarts (Real et al. 2019; Chen et al. 2023): the
default strategy, ``method: evolution``.

A round starts with the whole population equal to its seed program (the warm
start, or the best program so far). ``ask`` draws ``tournament`` members at
random and mutates the fittest; ``tell`` appends the child and drops the oldest.
A round ends when its best has not improved for ``plateau`` fresh evaluations (a
cache hit is a result but no new information, so it does not count): the first
``restarts`` rounds start from the warm start (exploration), later ones from the
best program found (exploitation). A result asked in an earlier round counts, but
is not bred from. With ``warm_starts``, exploration round r starts from the r-th
program of ``[warm_start, *warm_starts]`` (cyclically): the round's population is
that program, untold, and the program itself is the round's first proposal
(``{"kind": "start"}``); its children are asked beside it.

State: ``population`` (members, oldest first), ``round``, ``round_best``,
``since_improvement`` and ``start`` (the index in ``warm_starts`` of a round's
program not asked yet, or None).
"""

from __future__ import annotations

from typing import Any

from evaluators.fitness import FAILED  # (plain Python: no JAX)
from search.mutation import mutate
from search.strategies.base import Context, Member, Proposal, Strategy, member_data, member_of


class RegularizedEvolution(Strategy):
    """Tournament selection, mutation, and the oldest member dropped."""

    name = "evolution"
    #: The mutation kinds a child is drawn from (None: all, by their weights).
    kinds: tuple[str, ...] | None = None

    def init(self, ctx: Context) -> dict[str, Any]:
        state: dict[str, Any] = {"round": 0}
        _seed_round(ctx, state, ctx.warm)
        return state

    def ask(self, ctx: Context, state: dict[str, Any]) -> Proposal:
        if state.get("start") is not None:  # the round's own program, asked first
            k, state["start"] = state["start"], None
            return Proposal(ctx.starts[k], None, {"kind": "start",
                                                  "program": ctx.cfg.warm_starts[k]})
        parent = _tournament(ctx, state["population"])
        if self.kinds:
            child, mutation = mutate(parent.program, ctx.rng, ctx.cfg.mutation, self.kinds)
        elif ctx.cfg.mutation.crossover > 0:  # a second parent, only then (same draws else)
            donor = _tournament(ctx, state["population"])
            child, mutation = mutate(parent.program, ctx.rng, ctx.cfg.mutation,
                                     donor=(max(donor.id, 0), donor.program))
        else:
            child, mutation = mutate(parent.program, ctx.rng, ctx.cfg.mutation)
        return Proposal(child, parent, mutation)

    def tell(self, ctx: Context, state: dict[str, Any], member: Member, round: int,
             fresh: bool) -> None:
        if round != state["round"]:
            return  # a straggler from an earlier round: counted, not bred from
        population = state["population"]
        population.append(member_data(member))
        del population[:max(0, len(population) - ctx.cfg.population)]
        fitness = member.fitness
        if fitness > state["round_best"]:
            state["round_best"], state["since_improvement"] = fitness, 0
        elif fresh:
            state["since_improvement"] += 1
            if state["since_improvement"] >= ctx.cfg.plateau:
                state["round"] += 1
                exploring = state["round"] < ctx.cfg.restarts or ctx.best is None
                k = state["round"] % (1 + len(ctx.starts)) if exploring else 0
                if k:  # from another warm start: untold until its own result comes
                    _seed_round(ctx, state, Member(-1, ctx.starts[k - 1], None))
                    state["start"] = k - 1
                else:
                    _seed_round(ctx, state, ctx.warm if exploring else ctx.best)

    def exploring(self, ctx: Context, state: dict[str, Any]) -> bool:
        return state["round"] < ctx.cfg.restarts


def _tournament(ctx: Context, population: list[dict[str, Any]]) -> Member:
    """The fittest of ``tournament`` members drawn at random (with replacement)."""
    idx = ctx.rng.choice(len(population), size=ctx.cfg.tournament, replace=True)
    contenders = [population[int(i)] for i in idx]
    return member_of(max(contenders, key=lambda m: FAILED if m["fitness"] is None
                         else m["fitness"]))


def _seed_round(ctx: Context, state: dict[str, Any], seed: Member) -> None:
    state["population"] = [member_data(seed)] * ctx.cfg.population
    state["round_best"] = FAILED if seed.fitness is None else seed.fitness
    state["since_improvement"] = 0


__all__ = ["RegularizedEvolution"]
