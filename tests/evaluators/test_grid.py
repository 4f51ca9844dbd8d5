"""Learning-rate grids and calibration, on metric functions with a known best."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from evaluators.grid import NONE, SEARCH, WIDE, Calibration, LrGrid


def calibrate(grid: LrGrid, metric, centre: float | None = None) -> Calibration:
    """Run a calibration against ``metric(multiplier)`` (None = diverged); record calls."""
    cal = Calibration(grid, centre)
    cal.calls = []  # type: ignore[attr-defined]
    while batch := cal.next():
        cal.calls.append(batch)  # type: ignore[attr-defined]
        cal.tell(batch, tuple(metric(m) for m in batch))
    return cal


def bowl(best: float, diverge_above: float = math.inf):
    """A metric whose log is a parabola in log multiplier, lowest at ``best``."""
    return lambda m: None if m > diverge_above else math.exp(0.3 * math.log(m / best) ** 2)


def test_a_grid_is_geometric_around_its_centre() -> None:
    assert LrGrid(points=3, ratio=10.0, centre=0.1).first() == (0.01, 0.1, 1.0)
    assert LrGrid(points=2, ratio=4.0).first() == (0.5, 2.0)
    assert NONE.first() == (1.0,) and NONE.first(centre=0.3) == (0.3,)
    assert SEARCH.first(centre=2.0) == pytest.approx((2 / 10 ** 0.5, 2.0, 2 * 10 ** 0.5))
    assert WIDE.first() == (1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0)


def test_bad_grids_name_the_field() -> None:
    with pytest.raises(ValidationError, match="ratio"):
        LrGrid(ratio=1.0)
    with pytest.raises(ValidationError, match="points"):
        LrGrid(points=0)
    with pytest.raises(ValidationError, match="centre"):
        LrGrid(centre=-1)


def test_a_single_pass_keeps_the_best_and_knows_its_edge() -> None:
    cal = calibrate(LrGrid(points=3, ratio=10.0), bowl(50.0))
    assert cal.calls == [(0.1, 1.0, 10.0)]
    assert cal.best[0] == 10.0 and cal.at_edge  # the best is the largest tried


def test_the_wide_grid_goes_past_an_edge_and_refines_to_the_vertex() -> None:
    cal = calibrate(WIDE, bowl(0.37))
    assert cal.best[0] == pytest.approx(0.37, rel=1e-4)  # the parabola's own vertex
    assert not cal.at_edge
    assert [len(c) for c in cal.calls] == [7, 2, 2, 1]  # first pass, 1/2, 1/4 steps, vertex
    far = calibrate(WIDE, bowl(3e3))  # past the first pass's 1e2: extended, then found
    assert far.best[0] == pytest.approx(3e3, rel=1e-4) and not far.at_edge
    assert far.calls[1] == (1e3, 1e4)
    too_far = calibrate(WIDE, bowl(1e12))  # two extensions are not enough
    assert too_far.at_edge and max(too_far.tried) >= 1e6


def test_a_rescaled_program_finds_the_rescaled_best() -> None:
    """Calibration is (nearly) blind to a program's own constant: the metric reached for
    a bowl at c and at 20c is the same, so rescaling the learning rate is no discovery."""
    for c in (0.004, 0.08, 1.6):
        a, b = calibrate(WIDE, bowl(c)), calibrate(WIDE, bowl(20 * c))
        # equal to 0.1% (a vertex within 2% of a multiplier tried is not trained again)
        assert a.best[1] == pytest.approx(b.best[1], rel=1e-3)
        assert b.best[0] / a.best[0] == pytest.approx(20, rel=0.03)


def test_divergence_is_excluded_and_everything_diverging_has_no_best() -> None:
    cal = calibrate(WIDE, bowl(5.0, diverge_above=8.0))
    assert cal.tried[10.0] is None and cal.best[0] < 8.0
    dead = calibrate(WIDE, lambda m: None)
    assert dead.best is None and not dead.at_edge and dead.calls == [WIDE.first()]
