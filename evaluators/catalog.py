"""Task names without loading any task: safe to import where JAX must not be.

The command line validates a config's task names with this before Ray forks
workers; :mod:`evaluators.tasks` builds the tasks themselves from the same lists.
"""

from __future__ import annotations

FAMILIES: tuple[str, ...] = (
    "mlp_mnist1d", "transformer_lm", "autoencoder_digits", "cnn_digits", "quadratic")
TIERS: tuple[str, ...] = ("A", "B", "C")
#: Families kept for meta-validation: the search must never train on them.
HELD_OUT_FAMILIES: frozenset[str] = frozenset({"autoencoder_digits", "cnn_digits"})
#: The held-out tasks a funnel judges finalists on unless told otherwise.
#: ``cnn_digits/A`` separates tuned optimizers too (SNR 5.0) and agrees with the search
#: tasks' ranking (Spearman 0.65; docs/benchmarks.md), but is not a default: a second
#: held-out task doubles the funnel's held-out cost (``funnel --held-out`` names it).
DEFAULT_HELD_OUT: tuple[str, ...] = ("autoencoder_digits/A",)


#: Users' own tasks registered in this process (``evaluators.tasks.register``):
#: name -> held out.
USER: dict[str, bool] = {}


def names() -> list[str]:
    """Every task name, family by family, tiers A to C, then users' registered tasks."""
    return [f"{family}/{tier}" for family in FAMILIES for tier in TIERS] + list(USER)


def held_out() -> list[str]:
    """Tasks kept for meta-validation."""
    return [n for n in names() if n.split("/")[0] in HELD_OUT_FAMILIES or USER.get(n)]
