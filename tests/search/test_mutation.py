"""Tests for search/mutation.py: every outcome allowed, every required outcome seen."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from dsl import library
from search.config import MutationConfig
from search.mutation import KINDS, mutate, valid

CFG = MutationConfig()


def changed_args(parent, child):
    return [(i, j) for i, (a, b) in enumerate(zip(parent.statements, child.statements, strict=True))
            for j, (x, y) in enumerate(zip(a.args, b.args, strict=True)) if x != y]


@pytest.mark.parametrize("name", ["warmstart", "lion", "adafactor", "program4"])
def test_every_outcome_is_allowed(name: str) -> None:
    parent = library.get(name)
    rng = np.random.default_rng(0)
    for _ in range(150):
        child, m = mutate(parent, rng, CFG)
        assert m["kind"] in KINDS
        assert valid(child, CFG.check_shapes)
        n, k = len(parent.statements), len(child.statements)
        if m["kind"] == "insert":
            assert k == n + 1 and child.statements[m["at"]].to_source() == m["statement"]
        elif m["kind"] == "delete":
            assert k == n - 1 and parent.statements[m["at"]].to_source() == m["statement"]
        else:
            assert k == n and changed_args(parent, child) == [(m["at"], m["arg"])]
            if m["kind"] == "perturb_constant":
                ratio = child.statements[m["at"]].args[m["arg"]] / parent.statements[
                    m["at"]].args[m["arg"]]
                assert ratio > 0  # times 2^a: the sign never flips


def test_every_required_outcome_eventually_appears() -> None:
    parent = library.get("warmstart")
    rng = np.random.default_rng(1)
    kinds, inserted_at, arg_kinds, targets = Counter(), set(), set(), set()
    for _ in range(600):
        child, m = mutate(parent, rng, CFG)
        kinds[m["kind"]] += 1
        if m["kind"] == "insert":
            inserted_at.add(m["at"])
            target = child.statements[m["at"]].target
            targets.add("new" if target not in {s.target for s in parent.statements}
                        | set(parent.state_names) | {"w", "g", "lr", "t"} else "existing")
        if m["kind"] == "change_arg":
            new = child.statements[m["at"]].args[m["arg"]]
            arg_kinds.add("constant" if isinstance(new, float) else "variable")
    assert set(kinds) == set(KINDS) - {"fragment", "crossover"}  # off by default
    assert {0, len(parent.statements)} <= inserted_at
    assert arg_kinds == {"constant", "variable"}
    assert targets == {"new", "existing"}


def test_limits_and_restricted_kinds() -> None:
    rng = np.random.default_rng(2)
    short = MutationConfig(max_length=len(library.get("lion").statements))
    for _ in range(50):
        child, m = mutate(library.get("lion"), rng, short)
        assert len(child.statements) <= short.max_length
    for _ in range(30):
        _, m = mutate(library.get("lion"), rng, CFG, ("perturb_constant",))
        assert m["kind"] == "perturb_constant"


def test_same_seed_same_children() -> None:
    a = [mutate(library.get("adamw"), np.random.default_rng(5), CFG)[0] for _ in range(2)]
    assert a[0] == a[1]


def test_mutation_inserts_the_matrix_functions() -> None:
    """Children of Muon call each of Muon's functions anew, and every child is valid
    on the matrices, vectors and scalars of the shapes checked (the functions have a
    meaning on every leaf: dsl/ops.py)."""
    parent = library.get("muon")
    rng = np.random.default_rng(2)
    inserted = Counter()
    for _ in range(800):
        child, m = mutate(parent, rng, CFG)
        assert valid(child, CFG.check_shapes)
        if m["kind"] == "insert":
            inserted[child.statements[m["at"]].op] += 1
    assert {"newton_schulz", "is_matrix", "fan_in", "fan_out"} <= set(inserted)
    assert any(len(s) == 2 for s in CFG.check_shapes) and any(len(s) < 2 for s in CFG.check_shapes)


def test_fragments_make_valid_children_whose_fragment_is_live() -> None:
    """A fragment of a library program, spliced in, is live in the child at once: here
    Muon's orthogonalization or Lion's sign reaches the update in a tenth of the children
    or more, where a point mutation puts either there about once in 500."""
    from dsl import graph
    from search.fragments import library_fragments

    cfg = MutationConfig(insert=0, delete=0, change_arg=0, perturb_constant=0, fragment=1.0)
    rng = np.random.default_rng(3)
    parent = library.get("warmstart")
    donors, live_new = Counter(), 0
    for _ in range(200):
        child, m = mutate(parent, rng, cfg)
        assert m["kind"] == "fragment" and m["from"] in library.names()
        donors[m["from"]] += 1
        live = graph.remove_dead(child)
        result = m["fragment"].split("; ")[-1].split(" = ")[0]
        assert result in {st.target for st in live.statements}  # the fragment is live
        live_new += any(st.op in ("sign", "newton_schulz") for st in live.statements)
    assert len(donors) >= 8
    assert live_new >= 20
    # a rediscovery search's pool holds nothing of its target
    assert not any("newton_schulz" in f.text() for f in library_fragments(frozenset({"muon"})))


def test_a_config_can_leave_a_target_out_of_the_fragments() -> None:
    """mutation.fragment_exclude: a rediscovery search is never handed its target's parts,
    and an earlier run's identity is kept when it is empty."""
    from search.config import SearchConfig

    cfg = MutationConfig(insert=0, delete=0, change_arg=0, perturb_constant=0, fragment=1.0,
                         fragment_exclude=["muon"])
    rng = np.random.default_rng(4)
    for _ in range(150):
        child, m = mutate(library.get("warmstart"), rng, cfg)
        assert m["from"] != "muon" and "newton_schulz" not in m["fragment"]
    with pytest.raises(ValueError, match="fragment_exclude: 'moun' is not a library program"):
        MutationConfig(fragment_exclude=["moun"])
    assert (SearchConfig().identity_hash()
            == SearchConfig(mutation=MutationConfig(fragment_exclude=[])).identity_hash())


def test_crossover_splices_a_function_of_the_second_parent_live() -> None:
    """A crossover child of AdamW with Lion as the second parent holds, live, a function
    AdamW's live code lacks (Lion's sign), names its donor, and is valid; a donor that is
    the same algorithm has nothing to give."""
    from dsl import graph

    cfg = MutationConfig(insert=0, delete=0, change_arg=0, perturb_constant=0, crossover=1.0)
    rng = np.random.default_rng(5)
    adamw, lion = library.get("warmstart"), library.get("lion")
    have = {st.op for st in graph.remove_dead(adamw).statements}
    for _ in range(40):
        child, m = mutate(adamw, rng, cfg, donor=(7, lion))
        assert m["kind"] == "crossover" and m["from"] == 7
        live = {st.op for st in graph.remove_dead(child).statements}
        assert live - have and (live - have) <= {st.op for st in lion.statements}
    with pytest.raises(RuntimeError, match="no mutation kind"):
        mutate(adamw, rng, cfg, donor=(1, adamw))  # the same program: nothing to give
    with pytest.raises(RuntimeError, match="no mutation kind"):
        mutate(adamw, rng, cfg)  # no second parent: crossover is not drawn
