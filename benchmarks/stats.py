"""Small statistics the benchmarks share."""

from __future__ import annotations

import math


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (NaN with one value).

    >>> mean_se([1.0, 3.0])
    (2.0, 1.0)
    """
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)
