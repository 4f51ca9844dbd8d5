"""Search strategies as plug-ins: a strategy is a class implementing
:class:`~search.strategies.base.Strategy` (init / ask / tell over an explicit state),
chosen by name (the config's ``method``) from this registry. A new one is one module
and one :func:`register` call::

    from search.mutation import mutate
    from search.strategies import register
    from search.strategies.base import Proposal, Strategy

    @register
    class Greedy(Strategy):
        name = "greedy"
        def ask(self, ctx, state):  # always mutate the best so far
            parent = ctx.best or ctx.warm
            child, how = mutate(parent.program, ctx.rng, ctx.cfg.mutation)
            return Proposal(child, parent, how)

Import the module before the search starts (``task_modules`` in a config are imported
first); ``method: greedy`` then runs it.
"""

from __future__ import annotations

from search.strategies.base import Strategy
from search.strategies.constants import ConstantsOnly
from search.strategies.random_search import RandomSearch
from search.strategies.regularized import RegularizedEvolution

STRATEGIES: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Make ``cls`` a strategy that a config's ``method`` names (its ``name``); usable
    as a class decorator. A name already taken by another class is refused."""
    name = getattr(cls, "name", "")
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"a strategy's name must be an identifier, got {name!r}")
    if STRATEGIES.get(name, cls) is not cls:
        raise ValueError(f"a strategy named {name!r} is registered already "
                         f"({STRATEGIES[name].__module__}.{STRATEGIES[name].__qualname__})")
    STRATEGIES[name] = cls
    return cls


def get(name: str) -> Strategy:
    """The strategy registered as ``name``; KeyError naming the known ones otherwise."""
    try:
        return STRATEGIES[name]()
    except KeyError:
        raise KeyError(f"method {name!r} is no registered strategy (known: "
                       f"{', '.join(sorted(STRATEGIES))})") from None


for _cls in (RegularizedEvolution, RandomSearch, ConstantsOnly):
    register(_cls)

__all__ = ["STRATEGIES", "Strategy", "get", "register"]
