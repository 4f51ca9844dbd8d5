"""Task names without loading any task: safe to import where JAX must not be.

The command line validates a config's task names with this before Ray forks
workers; :mod:`evaluators.tasks` builds the tasks themselves from the same lists.
"""

from __future__ import annotations

FAMILIES: tuple[str, ...] = ("mlp_mnist1d", "transformer_lm", "cnn_digits", "quadratic")
TIERS: tuple[str, ...] = ("A", "B", "C")
#: Families kept for meta-validation: the search must never train on them.
HELD_OUT_FAMILIES: frozenset[str] = frozenset({"cnn_digits"})


def names() -> list[str]:
    """Every task name, family by family, tiers A to C."""
    return [f"{family}/{tier}" for family in FAMILIES for tier in TIERS]


def held_out() -> list[str]:
    """Tasks kept for meta-validation."""
    return [n for n in names() if n.split("/")[0] in HELD_OUT_FAMILIES]
