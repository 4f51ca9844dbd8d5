"""Tests for benchmarks/bench_tasks.py's statistics: ranks and Spearman's correlation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.bench_tasks import programs, ranks, spearman


def test_ranks_share_ties_and_put_failures_last() -> None:
    np.testing.assert_array_equal(ranks([0.3, 0.1, 0.3, math.inf, 0.2]), [3.5, 1, 3.5, 5, 2])
    np.testing.assert_array_equal(ranks([math.inf, math.inf, 1.0]), [2.5, 2.5, 1])


def test_spearman_matches_its_definition() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # no ties: 1 - 6 sum(d^2) / (n (n^2 - 1)); here d = (0, 1, -1, 0, 0): 1 - 12/120
    assert spearman([1, 2, 3, 4, 5], [1, 3, 2, 4, 5]) == pytest.approx(0.9)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))  # no ranking to agree with


def test_the_ranked_programs_are_distinct_library_programs_then_mutants() -> None:
    from dsl import abstract, library

    progs = programs(20)
    assert len(progs) == 20 and [n for n, _ in progs][:3] == library.names()[:3]
    assert len({abstract.structural_hash(p) for _, p in progs}) == 20
    assert programs(20)[-1][1].to_source() == progs[-1][1].to_source()  # seeded
