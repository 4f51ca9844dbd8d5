"""Proposing programs: generation and (to come) mutation, evolution, cache, executors.

No JAX here: search/ only proposes and records; evaluators/ judge.
"""

from search.generate import random_program, random_statement

__all__ = ["random_program", "random_statement"]
