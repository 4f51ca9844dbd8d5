"""Dataflow across steps: which statements and states can reach the update.

The graph has a node per input read, state read, statement and returned value,
an edge from each value to each statement that reads it, and an edge from each
returned state to that state's read *in the next step*. A statement is live when
a path leads from it to the update, possibly through later steps. So in the
paper's Program 4, ``m = cosh(update)`` is dead: the next step overwrites ``m``
before reading it, a fact a single-step analysis cannot see.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from dsl.errors import ProgramError
from dsl.program import INPUTS, MAX_LIVE, Arg, Program, Statement

UPDATE = ("out", 0)


def edges(program: Program) -> tuple[list[tuple], list[tuple]]:
    """The nodes and edges of the cross-step dataflow graph (see :func:`dataflow`)."""
    current: dict[str, tuple] = {name: ("in", name) for name in INPUTS}
    for k, name in enumerate(program.state_names):
        current[name] = ("state", k)
    nodes = list(current.values())
    links = []
    for i, st in enumerate(program.statements):
        node = ("stmt", i)
        nodes.append(node)
        links.extend((current[a], node) for a in st.args if isinstance(a, str) and a in current)
        current[st.target] = node
    for k, name in enumerate(program.outputs):
        nodes.append(("out", k))
        if name in current:
            links.append((current[name], ("out", k)))
        if k:
            links.append((("out", k), ("state", k - 1)))
    return nodes, links


def dataflow(program: Program) -> nx.DiGraph:
    """The cross-step dataflow graph of ``program``, as a networkx ``DiGraph``.

    Nodes: ``("in", name)`` for inputs, ``("state", k)`` for the value of state
    ``k`` at the start of a step, ``("stmt", i)`` for statements and ``("out", k)``
    for returned values (``("out", 0)`` is the update). Reads of undefined names
    are left out; abstract execution reports them. Live nodes are
    ``nx.ancestors(dataflow(p), UPDATE)``.
    """
    nodes, links = edges(program)
    graph = nx.DiGraph(links)
    graph.add_nodes_from(nodes)
    return graph


@dataclass(frozen=True)
class Liveness:
    """What reaches the update: statement indices, state indices, and inputs."""

    statements: frozenset[int]
    states: frozenset[int]
    inputs: frozenset[str]


def liveness(program: Program) -> Liveness:
    """The statements, states and inputs on some path to the update (across steps).

    Cached on the program.

    >>> from dsl import library
    >>> live = liveness(library.get("program4"))
    >>> sorted(set(range(len(library.get("program4").statements))) - live.statements)
    [10]
    """
    return program.derived("liveness", lambda: _liveness(program))


def _liveness(program: Program) -> Liveness:
    # The same answer as nx.ancestors(dataflow(program), UPDATE) (a test holds
    # them together), by a plain walk over the edge list: building a networkx
    # graph costs more than abstract execution may spend on a whole program.
    _, links = edges(program)
    parents: dict[tuple, list[tuple]] = {}
    for a, b in links:
        parents.setdefault(b, []).append(a)
    reach: set[tuple] = set()
    todo = [UPDATE]
    while todo:
        for parent in parents.get(todo.pop(), ()):
            if parent not in reach:
                reach.add(parent)
                todo.append(parent)
    kinds: dict[str, set] = {"stmt": set(), "state": set(), "in": set()}
    for kind, key in reach:
        if kind in kinds:
            kinds[kind].add(key)
    return Liveness(frozenset(kinds["stmt"]), frozenset(kinds["state"]), frozenset(kinds["in"]))


def live_ops(program: Program) -> frozenset[str]:
    """The functions of the statements that reach the update (across steps).

    >>> from dsl import library
    >>> sorted(live_ops(library.get("lion")))
    ['add', 'interp', 'mul', 'sign']
    """
    statements = liveness(program).statements
    return frozenset(st.op for i, st in enumerate(program.statements) if i in statements)


def remove_dead(program: Program) -> Program:
    """``program`` without dead statements and dead states.

    A state is dead when its value at the start of a step never reaches the
    update; it leaves the signature and the return (a variable of the same name
    may still be used within a step).
    """
    live = liveness(program)
    states = tuple(s for k, s in enumerate(program.states) if k in live.states)
    statements = tuple(st for i, st in enumerate(program.statements) if i in live.statements)
    outputs = (program.outputs[0],) + tuple(
        program.outputs[k + 1] for k in range(len(program.states)) if k in live.states
    )
    return Program.model_construct(states=states, statements=statements, outputs=outputs)


def replace_statement(p: Program, i: int, statement: Statement | None,
                      alias: Arg | None = None) -> Program:
    """``p`` with statement ``i`` replaced, or removed with later reads of its target
    (until reassigned) and returns renamed to ``alias``."""
    sts = list(p.statements)
    outputs = list(p.outputs)
    if statement is not None:
        sts[i] = statement
        return Program.model_construct(states=p.states, statements=tuple(sts),
                                       outputs=tuple(outputs))
    target = sts[i].target
    del sts[i]
    for k in range(i, len(sts)):
        st = sts[k]
        sts[k] = Statement(st.target, st.op, tuple(alias if a == target else a for a in st.args))
        if st.target == target:
            break
    else:
        outputs = [alias if o == target else o for o in outputs]
        if any(not isinstance(o, str) for o in outputs):
            raise ProgramError("a constant cannot be returned")
    return Program.model_construct(states=p.states, statements=tuple(sts), outputs=tuple(outputs))


def trainable(program: Program) -> Program:
    """``program``, once its live statements fit the engine (:data:`~dsl.program.MAX_LIVE`);
    else a :class:`ProgramError` saying so (every evaluation of it would fail).

    >>> from dsl import library
    >>> trainable(library.get("lion")) is library.get("lion")
    True
    """
    n = len(remove_dead(program).statements)
    if n > MAX_LIVE:
        raise ProgramError(f"{n} live statements: the engine trains programs of at most "
                           f"{MAX_LIVE} (every evaluation of this one would fail)")
    return program
