"""Random search, ``method: random``: each program drawn afresh by
:func:`search.mutation.random_valid_program`, nothing learnt from results. The
baseline that shows what selection adds."""

from __future__ import annotations

from typing import Any

from search.mutation import random_valid_program
from search.strategies.base import Context, Proposal, Strategy


class RandomSearch(Strategy):
    """Valid random programs, independent of every result."""

    name = "random"

    def ask(self, ctx: Context, state: dict[str, Any]) -> Proposal:
        return Proposal(random_valid_program(ctx.rng, ctx.cfg.mutation), None,
                        {"kind": "random"})


__all__ = ["RandomSearch"]
