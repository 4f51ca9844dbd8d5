"""Constants-only tuning, ``method: constants``: regularized evolution whose only
mutation perturbs a constant, so every program keeps the warm start's structure. The
baseline a structural search must beat: hyperparameter tuning at the same budget."""

from __future__ import annotations

from search.strategies.regularized import RegularizedEvolution


class ConstantsOnly(RegularizedEvolution):
    """Regularized evolution over the warm start's constants alone."""

    name = "constants"
    kinds = ("perturb_constant",)


__all__ = ["ConstantsOnly"]
