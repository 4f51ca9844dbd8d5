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


#: Seconds of one training run (one seed, one learning rate, compiled) of each built-in
#: task on the reference machine (2 CPU cores; docs/benchmarks.md, "Every task and
#: tier"): what the funnel's estimate of its cost starts from.
SECONDS: dict[str, float] = {
    "mlp_mnist1d/A": 0.065, "mlp_mnist1d/B": 0.63, "mlp_mnist1d/C": 5.65,
    "transformer_lm/A": 0.49, "transformer_lm/B": 8.95, "transformer_lm/C": 24.9,
    "autoencoder_digits/A": 0.05, "autoencoder_digits/B": 0.6, "autoencoder_digits/C": 8.2,
    "cnn_digits/A": 0.59, "cnn_digits/B": 2.55, "cnn_digits/C": 11.3,
    "quadratic/A": 0.005, "quadratic/B": 0.035, "quadratic/C": 5.25,
}

#: Users' own tasks registered in this process (``evaluators.tasks.register``):
#: name -> held out.
USER: dict[str, bool] = {}


def names() -> list[str]:
    """Every task name, family by family, tiers A to C, then users' registered tasks."""
    return [f"{family}/{tier}" for family in FAMILIES for tier in TIERS] + list(USER)


def held_out() -> list[str]:
    """Tasks kept for meta-validation."""
    return [n for n in names() if n.split("/")[0] in HELD_OUT_FAMILIES or USER.get(n)]
