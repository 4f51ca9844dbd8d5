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


def test_cache_hits_do_not_end_a_round() -> None:
    """The plateau counts fresh evaluations: a round of cache answers goes on."""
    evo = Evolution.start(cfg(plateau=3), library.get("warmstart"))
    evo.tell(evo.ask(), 0.0)
    for _ in range(10):
        evo.tell(evo.ask(), -1.0, fresh=False)
    assert evo.round == 0 and evo.since_improvement == 0
    for _ in range(3):
        evo.tell(evo.ask(), -1.0)
    assert evo.round == 1


def test_a_child_centres_its_grid_on_its_parents_learning_rates() -> None:
    evo = Evolution.start(cfg(population=2, tournament=2), library.get("warmstart"))
    warm_lr = {"mlp_mnist1d/A": 3.0, "transformer_lm/A": 5.0}
    evo.tell(evo.ask(), 0.0, lr=warm_lr)
    child = evo.ask()
    assert child.lr_centre == warm_lr  # its parent is the warm start
    evo.tell(child, 1.0, lr={"mlp_mnist1d/A": 0.5, "transformer_lm/A": 9.0})
    grandchild = evo.ask()  # the tournament over (warm start, child) picks the child
    assert grandchild.parent == child.id
    assert grandchild.lr_centre == {"mlp_mnist1d/A": 0.5, "transformer_lm/A": 9.0}
    # a parent not trained on a task (below the hurdle) leaves that task at the warm start's
    screened = Evolution.start(cfg(population=2, tournament=2), library.get("warmstart"))
    screened.tell(screened.ask(), 0.0, lr=warm_lr)
    first = screened.ask()
    screened.tell(first, 1.0, lr={"mlp_mnist1d/A": 0.5})
    assert screened.ask().lr_centre == {"mlp_mnist1d/A": 0.5, "transformer_lm/A": 5.0}
    state = json.loads(json.dumps(evo.state_dict()))  # the multipliers survive a resume
    twin = Evolution.from_state(cfg(population=2, tournament=2), library.get("warmstart"), state)
    assert [m.lr for m in twin.population] == [m.lr for m in evo.population]
    assert twin.ask().lr_centre == evo.ask().lr_centre
    # random programs (no parent) start from the warm start's; no grid, no centre
    rnd = Evolution.start(cfg(method="random"), library.get("warmstart"))
    rnd.tell(rnd.ask(), 0.0, lr=warm_lr)
    assert rnd.ask().lr_centre == warm_lr
    plain = Evolution.start(cfg(lr_grid=None), library.get("warmstart"))
    plain.tell(plain.ask(), 0.0, lr=warm_lr)
    assert plain.ask().lr_centre is None
