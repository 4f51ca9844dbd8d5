"""Strategies as plug-ins: one protocol, a registry, and old checkpoints resumed as they were."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from dsl import library
from search import strategies
from search.config import SearchConfig
from search.evolution import Evolution
from search.executor import SerialExecutor
from search.loop import Search
from search.rundir import RunDir

DATA = Path(__file__).parent / "data" / "evolution_state_before_strategies.json"


@pytest.mark.parametrize("method", ["evolution", "constants", "random"])
def test_a_checkpoint_written_before_strategies_were_plug_ins_resumes_as_it_was(method) -> None:
    """The state the old Evolution wrote (tests/search/data, made by the code before the
    change) gives the same next candidates, ids, parents and mutations, as it did then
    (and rounds, for the strategies that have them: random search keeps none)."""
    saved = json.loads(DATA.read_text())[method]
    cfg = SearchConfig(**saved["config"])
    evo = Evolution.from_state(cfg, library.get("warmstart"), saved["state"])
    for k, (cid, parent, round_, source, mutation) in enumerate(saved["next"]):
        c = evo.ask()
        assert (c.id, c.parent, c.program.to_source(), c.mutation) == (
            cid, parent, source, mutation)
        if method != "random":
            assert c.round == round_
        evo.tell(c, 0.1 * k - 0.3)


def test_the_warm_start_is_a_phase_before_the_strategy_begins() -> None:
    evo = Evolution.start(SearchConfig(population=3), library.get("warmstart"))
    assert evo.phase == "warm_start"
    first = evo.ask()
    assert first.id == 0 and first.mutation == {"kind": "warm_start"}
    with pytest.raises(RuntimeError, match="warm start must be told"):
        evo.ask()
    evo.tell(first, -0.02, lr={"quadratic/A": 0.1})
    assert evo.phase == "search"
    # the strategy began from the told warm start: its population is the warm start's
    assert [(m.id, m.fitness, m.lr) for m in evo.population] == [
        (0, -0.02, {"quadratic/A": 0.1})] * 3


def test_an_unknown_method_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"method 'nope' is no registered strategy \(known: "
                       r"constants, evolution, random"):
        strategies.get("nope")
    with pytest.raises(ValueError, match="registered already"):
        strategies.register(type("Other", (strategies.Strategy,), {"name": "random"}))


GREEDY = '''\
"""A strategy written outside the package: always mutate the best so far."""
from search.mutation import mutate
from search.strategies import register
from search.strategies.base import Proposal, Strategy


@register
class Greedy(Strategy):
    name = "greedy_test"

    def init(self, ctx):
        return {"asked": 0}

    def ask(self, ctx, state):
        state["asked"] += 1
        parent = ctx.best or ctx.warm
        child, how = mutate(parent.program, ctx.rng, ctx.cfg.mutation)
        return Proposal(child, parent, how)
'''


def test_a_strategy_from_outside_the_package_runs_a_search(tmp_path, monkeypatch) -> None:
    """One module and one registry line: a search with ``method`` naming it runs,
    checkpoints its state, and resumes it."""
    (tmp_path / "greedy_mod.py").write_text(textwrap.dedent(GREEDY))
    monkeypatch.syspath_prepend(str(tmp_path))
    import greedy_mod  # noqa: F401  (registers it)

    try:
        cfg = SearchConfig(executor="serial", method="greedy_test", tasks=["quadratic/A"],
                           seeds=[0], max_evals=5, lr_grid=None, judge="warm_start")
        run = RunDir.create(tmp_path / "run", cfg)
        search = Search.open(cfg, run)
        evo = search.run_until_done(SerialExecutor())
        assert search.evaluated == 5 and evo.state == {"asked": search.proposals - 1}
        records = list(run.history())
        # each child's parent is the best program told before it was asked (serially)
        for i, r in enumerate(records[1:], start=1):
            best = max(records[:i], key=lambda x: x["fitness"])
            assert r["parent"] == best["id"], (i, r["parent"], best["id"])
        saved = json.loads(run.checkpoint_path.read_text())
        assert saved["evolution"]["asked"] == evo.state["asked"]
        more = cfg.model_copy(update={"max_evals": 7})
        again = Search.open(more, RunDir(tmp_path / "run"))
        evo = again.run_until_done(SerialExecutor())
        # the state came back from the checkpoint: it counts every proposal of both runs
        assert again.evaluated == 7 and evo.state["asked"] == again.proposals - 1
    finally:
        strategies.STRATEGIES.pop("greedy_test", None)


def test_exploration_rounds_start_in_turn_from_each_warm_start() -> None:
    """With warm_starts, round r's first proposal is the r-th of [warm_start, *warm_starts]
    (cyclically) and its children come from it; exploitation rounds from the best."""
    cfg = SearchConfig(population=3, plateau=2, restarts=4, warm_starts=["lion", "momentum"])
    starts = (library.get("lion"), library.get("momentum"))
    evo = Evolution.start(cfg, library.get("warmstart"), starts)
    evo.tell(evo.ask(), 0.0)
    firsts = {}
    for _ in range(40):
        c = evo.ask()
        if c.round not in firsts:
            firsts[c.round] = c
        evo.tell(c, -1.0 if c.mutation["kind"] != "start" else -0.5)
    assert evo.round >= 5
    assert firsts[1].program == library.get("lion") and firsts[1].parent is None
    assert firsts[1].mutation == {"kind": "start", "program": "lion"}
    assert firsts[2].program == library.get("momentum")
    assert firsts[3].mutation["kind"] != "start"  # round 3 is the warm start's again
    assert firsts[4].mutation["kind"] != "start"  # exploitation: from the best
    # a round's children descend from its own program once it is told
    state = json.loads(json.dumps(evo.state_dict()))
    twin = Evolution.from_state(cfg, library.get("warmstart"), state, starts)
    assert [twin.ask().program for _ in range(3)] == [evo.ask().program for _ in range(3)]


def test_warm_starts_keep_old_runs_identity() -> None:
    assert SearchConfig().identity_hash() == SearchConfig(warm_starts=[]).identity_hash()
    assert SearchConfig().identity_hash() != SearchConfig(warm_starts=["lion"]).identity_hash()


def test_evolution_with_crossover_asks_children_of_two_parents() -> None:
    """With mutation.crossover, some children name a second parent from the population
    (recorded as the mutation's 'from'); at weight 0 no second tournament is drawn, so the
    default search's draws are those of runs made before (the fixture test above)."""
    from search.config import MutationConfig

    cfg = SearchConfig(population=6, plateau=50, warm_starts=["lion"], restarts=2,
                       mutation=MutationConfig(crossover=0.5))
    evo = Evolution.start(cfg, library.get("warmstart"), (library.get("lion"),))
    evo.tell(evo.ask(), 0.0)
    told = {0}
    kinds = []
    for k in range(150):
        c = evo.ask()
        if c.mutation["kind"] == "crossover":
            assert c.mutation["from"] in told and c.parent in told
            kinds.append(c.mutation["kind"])
        told.add(c.id)
        evo.tell(c, -0.01 * (k % 7))
    assert len(kinds) >= 5
