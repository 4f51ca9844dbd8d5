"""Tests for search/evolution.py: regularized evolution, restarts, baselines, state."""

from __future__ import annotations

import json

from dsl import library
from search.config import SearchConfig
from search.evolution import FAILED, Evolution


def cfg(**kw) -> SearchConfig:
    return SearchConfig(**({"population": 4, "tournament": 2, "plateau": 5, "restarts": 2} | kw))


def test_warm_start_first_then_aging() -> None:
    evo = Evolution.start(cfg(), library.get("warmstart"))
    first = evo.ask()
    assert first.id == 0 and first.program == library.get("warmstart")
    evo.tell(first, 0.0)
    ids = []
    for k in range(10):
        c = evo.ask()
        assert c.parent is not None and c.id == k + 1
        evo.tell(c, float(k))
        ids.append(c.id)
    assert len(evo.population) == 4
    assert [m.id for m in evo.population] == ids[-4:]  # the oldest are gone


def test_failed_candidates_never_win() -> None:
    evo = Evolution.start(cfg(), library.get("warmstart"))
    evo.tell(evo.ask(), FAILED)
    for _ in range(3):
        evo.tell(evo.ask(), float("nan"))
    assert evo.best is None
    c = evo.ask()
    evo.tell(c, -5.0)
    assert evo.best.id == c.id


def test_rounds_explore_then_exploit_from_the_best() -> None:
    evo = Evolution.start(cfg(plateau=3, restarts=2), library.get("warmstart"))
    evo.tell(evo.ask(), 0.0)
    good = evo.ask()
    evo.tell(good, 1.0)
    for _ in range(3):
        evo.tell(evo.ask(), -1.0)
    assert evo.round == 1 and evo.exploring  # second exploration round: from the warm start
    assert {m.program for m in evo.population} == {library.get("warmstart")}
    for _ in range(3):
        evo.tell(evo.ask(), -1.0)
    assert evo.round == 2 and not evo.exploring
    assert {m.id for m in evo.population} == {good.id}  # exploitation: from the best


def test_state_round_trip_continues_exactly() -> None:
    evo = Evolution.start(cfg(), library.get("warmstart"))
    for k in range(8):
        evo.tell(evo.ask(), float(k % 3))
    state = json.loads(json.dumps(evo.state_dict()))
    twin = Evolution.from_state(cfg(), library.get("warmstart"), state)
    for _ in range(5):
        a, b = evo.ask(), twin.ask()
        assert (a.id, a.parent, a.program, a.mutation) == (b.id, b.parent, b.program, b.mutation)
        evo.tell(a, 0.5)
        twin.tell(b, 0.5)


def test_baselines() -> None:
    rnd = Evolution.start(cfg(method="random"), library.get("warmstart"))
    rnd.tell(rnd.ask(), 0.0)
    c = rnd.ask()
    assert c.mutation == {"kind": "random"} and c.parent is None
    const = Evolution.start(cfg(method="constants"), library.get("warmstart"))
    const.tell(const.ask(), 0.0)
    for _ in range(10):
        c = const.ask()
        assert c.mutation["kind"] == "perturb_constant"
        const.tell(c, 0.0)
