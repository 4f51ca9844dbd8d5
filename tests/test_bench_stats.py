"""Tests for benchmarks/stats.py."""

from __future__ import annotations

import math

import pytest

from benchmarks.stats import mean_se


def test_mean_and_standard_error() -> None:
    assert mean_se([1.0, 2.0, 3.0]) == pytest.approx((2.0, math.sqrt(1 / 3)))
    mean, se = mean_se([5.0])
    assert mean == 5.0 and math.isnan(se)  # one value has no spread
