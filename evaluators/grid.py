"""Learning-rate grids: the multipliers of a task's schedule a program is trained at.

A task's schedule peaks at 1.0 and a program scales it by its own constants
(``lr * 0.001``), so a program with a good update direction and an unlucky
constant scores as badly as a bad one, and the search rewards tuning the
learning rate rather than finding an algorithm. Calibration trains a program at
several multipliers of the schedule and scores it by the best, so that what is
compared is each program at its best learning rate, as anyone would tune it.

An :class:`LrGrid` says which multipliers: ``points`` of them, ``ratio``
apart, geometrically centred on ``centre``; optionally pushed past an edge
where the best lies (``extend``), then refined around the best (``refine``
times: the two multipliers half a step either side, then a quarter step, ...;
then the vertex of a parabola through the best and its neighbours in log
multiplier and log metric).
:class:`Calibration` runs that plan, ask/tell: it proposes multipliers, is told
their mean metrics, and keeps the best. No JAX here: the search's
configuration holds a grid.

>>> grid = LrGrid(points=3, ratio=10.0, centre=0.1)
>>> grid.first()
(0.01, 0.1, 1.0)
>>> cal = Calibration(grid)
>>> cal.tell(cal.next(), (0.9, 0.5, None))  # 1.0 diverged
>>> cal.next(), cal.best
((), (0.1, 0.5))
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field


class LrGrid(BaseModel):
    """Multipliers of the task's learning-rate schedule to train a program at."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    centre: float = Field(1.0, ge=1e-6, le=1e6,
                          description="The geometric middle of the first pass.")
    points: int = Field(3, ge=1, le=16, description="Multipliers in the first pass.")
    ratio: float = Field(10 ** 0.5, gt=1, le=1e3,
                         description="Between neighbouring multipliers.")
    extend: int = Field(
        0, ge=0, le=8, description="Times the grid is pushed two points past an edge where its "
        "best lies, before calling the best 'at the edge'.")
    refine: int = Field(
        0, ge=0, le=6, description="Halvings of the step after the passes: the multipliers "
        "half a step either side of the best, then a quarter step around the new best, ...; "
        "then the vertex of a parabola through the best and its neighbours. 0: none.")
    follow_parent: bool = Field(
        False, description="In a search, centre a child's grid on its parent's chosen multiplier "
        "for each task (so a narrow grid can walk to the right learning rate over generations).")

    def first(self, centre: float | None = None) -> tuple[float, ...]:
        """The first pass: ``points`` multipliers ``ratio`` apart around ``centre``."""
        c = self.centre if centre is None else centre
        half = (self.points - 1) / 2
        return tuple(_round(c * self.ratio ** (k - half)) for k in range(self.points))

    def label(self) -> str:
        """A short description, e.g. ``7 points x10 around 0.1, extend 2, refined 2x``."""
        text = f"{self.points} points x{self.ratio:.3g} around {self.centre:g}"
        if self.extend:
            text += f", extend {self.extend}"
        return text + (f", refined {self.refine}x" if self.refine else "")


#: One multiplier: each program at its own constants (the Lion paper's protocol).
NONE = LrGrid(points=1)
#: Wide enough that SGD, AdamW, Lion, Adafactor and Adan (bare ``* lr``) and the warm
#: start (``lr * 0.001``) all find their best inside it, on every task: 1e-4 to 1e2 in
#: decades, pushed further where the best is at an edge, then refined to a fraction of a
#: decade (half, then quarter decades, then a parabola's vertex). What baselines are
#: calibrated with, and the funnel's default.
WIDE = LrGrid(centre=0.1, points=7, ratio=10.0, extend=2, refine=2)
#: The search's default: three multipliers half a decade apart around the parent's choice.
SEARCH = LrGrid(points=3, ratio=10 ** 0.5, follow_parent=True)


def _round(m: float) -> float:
    """Multipliers to 6 significant digits: grids meet on the same values."""
    return float(f"{m:.6g}")


class Calibration:
    """One program's calibration on one task: ask with :meth:`next`, answer with
    :meth:`tell` (the mean metric per multiplier, None where it diverged), until
    :meth:`next` returns ``()``."""

    def __init__(self, grid: LrGrid, centre: float | None = None) -> None:
        self.grid = grid
        self.tried: dict[float, float | None] = {}
        self._queue: list[tuple[float, ...]] = [grid.first(centre)]
        self._extensions = grid.extend
        self._refines = grid.refine
        self._step = grid.ratio
        self._vertexed = not grid.refine

    def next(self) -> tuple[float, ...]:
        """The multipliers to train next, in one call; ``()`` when calibration is done."""
        while self._queue:
            batch = tuple(m for m in self._queue.pop(0) if m not in self.tried)
            if batch:
                return batch
        if self.best is None:
            return ()
        best = self.best[0]
        ordered = sorted(self.tried)
        step = self.grid.ratio
        if self._extensions and best in (ordered[0], ordered[-1]) and len(ordered) > 1:
            self._extensions -= 1
            sign = -1 if best == ordered[0] else 1
            edge = ordered[0] if sign < 0 else ordered[-1]
            self._queue.append(tuple(_round(edge * step ** (sign * k)) for k in (1, 2)))
            return self.next()
        if self._refines:
            self._refines -= 1
            self._step **= 0.5
            self._queue.append((_round(best / self._step), _round(best * self._step)))
            return self.next()
        if not self._vertexed:
            self._vertexed = True
            vertex = self._vertex()
            if vertex is not None:
                self._queue.append((vertex,))
                return self.next()
        return ()

    def tell(self, multipliers: tuple[float, ...], scores: tuple[float | None, ...]) -> None:
        """The mean metric (lower is better) at each multiplier; None if it diverged."""
        for m, s in zip(multipliers, scores, strict=True):
            ok = s is not None and math.isfinite(s) and s > 0
            self.tried[m] = float(s) if ok else None

    @property
    def best(self) -> tuple[float, float] | None:
        """(multiplier, metric) of the best multiplier so far, or None if none trained."""
        scored = [(s, m) for m, s in self.tried.items() if s is not None]
        if not scored:
            return None
        s, m = min(scored)
        return m, s

    @property
    def at_edge(self) -> bool:
        """The best is the smallest or largest multiplier tried (the grid was too narrow)."""
        best = self.best
        if best is None or len(self.tried) < 2:
            return False
        return best[0] in (min(self.tried), max(self.tried))

    def _vertex(self) -> float | None:
        """The minimum of the parabola through the best and its nearest neighbours
        (log multiplier, log metric), if it is convex and not a multiplier tried."""
        best = self.best
        if best is None:
            return None
        ordered = sorted(self.tried)
        i = ordered.index(best[0])
        if i == 0 or i == len(ordered) - 1:
            return None
        points = [(math.log(m), self.tried[m]) for m in ordered[i - 1:i + 2]]
        if any(s is None for _, s in points):
            return None
        (x0, y0), (x1, y1), (x2, y2) = ((x, math.log(s)) for x, s in points)
        denom = (x0 - x1) * (x0 - x2) * (x1 - x2)
        a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / denom
        b = (x2 * x2 * (y0 - y1) + x1 * x1 * (y2 - y0) + x0 * x0 * (y1 - y2)) / denom
        if a <= 0:
            return None
        vertex = _round(math.exp(min(max(-b / (2 * a), x0), x2)))
        near = any(abs(math.log(vertex / m)) < 0.02 for m in self.tried)
        return None if near else vertex
