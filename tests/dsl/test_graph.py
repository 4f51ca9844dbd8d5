"""Tests for dsl/graph.py: cross-step dataflow, liveness, dead-code removal."""

from __future__ import annotations

import networkx as nx
import numpy as np
from hypothesis import HealthCheck, given, settings

from dsl import Program, abstract, graph, library, parse
from tests.strategies import programs

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_program4_loses_the_cosh_statement_and_the_state_it_feeds() -> None:
    p = library.get("program4")
    cosh = next(i for i, s in enumerate(p.statements) if s.op == "cosh")
    live = graph.liveness(p)
    assert cosh not in live.statements
    assert live.statements == frozenset(range(len(p.statements))) - {cosh}
    assert live.states == frozenset({1})  # v is carried; m is overwritten before it is read
    simple = graph.remove_dead(p)
    assert simple.state_names == ("v",)
    assert simple.outputs == ("update", "v")
    assert "cosh" not in simple.to_source()
    abstract.check(simple, (256, 128))


def test_a_single_step_analysis_would_keep_cosh() -> None:
    # Within one step, `m = cosh(update)` feeds the returned m; only the next step
    # shows it is overwritten before being read.
    p = library.get("program4")
    g = graph.dataflow(p)
    cosh = next(i for i, s in enumerate(p.statements) if s.op == "cosh")
    assert g.has_edge(("stmt", cosh), ("out", 1))
    assert not nx.has_path(g, ("stmt", cosh), graph.UPDATE)


def test_state_read_in_a_later_step_is_live() -> None:
    p = parse("def train(w, g, lr, t, m):\n  u = m * lr\n  m = interp(g, m, 0.9)\n"
              "  return u, m\n")
    live = graph.liveness(p)
    assert live.statements == {0, 1} and live.states == {0} and "g" in live.inputs


@SETTINGS
@given(programs())
def test_liveness_equals_networkx_ancestors(program: Program) -> None:
    reach = nx.ancestors(graph.dataflow(program), graph.UPDATE)
    live = graph.liveness(program)
    assert live.statements == {k for kind, k in reach if kind == "stmt"}
    assert live.states == {k for kind, k in reach if kind == "state"}


@SETTINGS
@given(programs())
def test_remove_dead_keeps_the_function(program: Program) -> None:
    simple = graph.remove_dead(program)
    assert len(simple.statements) == len(graph.liveness(program).statements)
    abstract.check(simple, (6, 5))
    assert abstract.fingerprint(simple) == abstract.fingerprint(program)
    # Full runs, every statement executed, give the same updates.
    rng = np.random.default_rng(1)
    w = rng.standard_normal((6, 5))
    grads = [rng.standard_normal((6, 5)) for _ in range(4)]
    args = (w, grads, [0.5, 0.4, 0.3, 0.2], [1.0, 2.0, 3.0, 4.0])
    full = abstract.run_numpy(program, *args)
    short = abstract.run_numpy(simple, *args)
    for a, b in zip(full, short, strict=True):
        np.testing.assert_array_equal(np.broadcast_to(a[0], (6, 5)), np.broadcast_to(b[0], (6, 5)))
    assert graph.remove_dead(simple) == simple
