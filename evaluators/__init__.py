"""Judging programs: proxy tasks, the training engine, fitness against the warm start.

Never imports Ray or search/.

>>> from dsl import library
>>> from evaluators import evaluate
>>> evaluate(library.get("lion"), "quadratic/A").task
'quadratic/A'
"""

from evaluators import fitness, tasks
from evaluators.evaluate import BASELINE, EvalResult, evaluate, evaluate_all, evaluate_batch
from evaluators.fitness import FAILED

__all__ = [
    "BASELINE", "FAILED", "EvalResult", "evaluate", "evaluate_all", "evaluate_batch", "fitness",
    "tasks",
]
