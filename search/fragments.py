"""Fragments of known optimizers, spliced into a program: a structural leap in one step.

A point mutation inserts one random statement; the few statements that make Lion,
Muon or Adafactor what they are (the sign of an interpolation, the orthogonalized
momentum, a factored second moment) are rarely drawn that way. A *fragment* is a live
statement of a library program whose function the warm start does not use, with the
statements of the same step it reads (its backward slice, at most :data:`MAX_SIZE`
statements). What it reads from elsewhere (a state, a variable cut off the slice) is a
*hole*; the inputs ``w``, ``g``, ``lr`` and ``t`` stay themselves.

:func:`splice` inserts a fragment before a live statement of another program, fills
each hole with a variable in scope there, and makes the fragment live by giving its
result to one of that statement's variable arguments. Abstract execution (the caller's
check) rejects a splice whose shapes do not fit.

>>> from dsl import library
>>> by_donor = {f.donor for f in library_fragments()}
>>> {"addsign", "muon", "adafactor"} <= by_donor  # addsign's sign of an interpolation: Lion's
True
>>> texts = {f.text() for f in library_fragments()}
>>> "f0 = newton_schulz(?0)" in texts and "f0 = interp(g, ?0, 0.9)\\nf1 = sign(f0)" in texts
True
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from dsl import Program, graph, library
from dsl.program import INPUTS, Statement

#: The most statements a fragment holds (its slice is cut there: the rest are holes).
MAX_SIZE = 4


@dataclass(frozen=True)
class Fragment:
    """Statements of a donor program, their targets ``f0, f1, ...`` (the last is the
    result), reading inputs, constants, each other and holes ``?0, ?1, ...``."""

    donor: str
    statements: tuple[Statement, ...]
    holes: int

    def text(self) -> str:
        return "\n".join(st.to_source() for st in self.statements)

    @property
    def ops(self) -> frozenset[str]:
        return frozenset(st.op for st in self.statements)


def _slice(program: Program, end: int, size: int) -> Fragment:
    """The backward slice of statement ``end`` within one step, cut at ``size``
    statements (the nearest first), as a fragment."""
    def defined_before(name: str, i: int) -> int | None:
        return next((k for k in range(i - 1, -1, -1) if program.statements[k].target == name),
                    None)

    chosen: set[int] = {end}
    todo = [end]
    while todo:
        i = todo.pop()
        for a in program.statements[i].args:
            if isinstance(a, str) and a not in INPUTS:
                k = defined_before(a, i)
                if k is not None and k not in chosen and len(chosen) < size:
                    chosen.add(k)
                    todo.append(k)
    order = sorted(chosen)
    names: dict[int, str] = {i: f"f{n}" for n, i in enumerate(order)}
    holes: dict[tuple[str, int | None], str] = {}
    out = []
    for i in order:
        st = program.statements[i]
        args: list[Any] = []
        for a in st.args:
            if not isinstance(a, str) or a in INPUTS:
                args.append(a)
                continue
            k = defined_before(a, i)
            if k in names:
                args.append(names[k])
            else:  # a state, or a statement cut off the slice
                args.append(holes.setdefault((a, k), f"?{len(holes)}"))
        out.append(Statement(names[i], st.op, tuple(args)))
    return Fragment("", tuple(out), len(holes))


@functools.cache
def library_fragments(exclude: frozenset[str] = frozenset()) -> tuple[Fragment, ...]:
    """The fragments of every library program but ``exclude`` (names): for each live
    statement whose function the warm start does not use, its slices of 1 to
    :data:`MAX_SIZE` statements, each distinct text once (the first donor named). A
    fragment that holds a function of an excluded program is left out too, so a
    rediscovery search cannot be handed the target's own parts."""
    common = {st.op for st in library.get("warmstart").statements}
    banned = {st.op for name in exclude for st in library.get(name).statements} - common
    seen: dict[str, Fragment] = {}
    for name in library.names():
        if name in exclude or name == "warmstart":
            continue
        p = library.get(name)
        live = graph.liveness(p).statements
        for i in sorted(live):
            if p.statements[i].op in common:
                continue
            for size in range(1, MAX_SIZE + 1):
                f = _slice(p, i, size)
                if not f.ops & banned:
                    seen.setdefault(f.text(), Fragment(name, f.statements, f.holes))
    return tuple(seen.values())


def splice(program: Program, fragment: Fragment, rng: np.random.Generator
           ) -> tuple[Program, dict[str, Any]] | None:
    """``program`` with ``fragment`` inserted before one of its live statements, holes
    filled from the variables in scope there, its result given to one of that statement's
    variable arguments; None if the program has no such place."""
    live = sorted(graph.liveness(program).statements)
    places = [i for i in live if any(isinstance(a, str) for a in program.statements[i].args)]
    if not places:
        return None
    at = places[int(rng.integers(len(places)))]
    scope = list(INPUTS) + list(program.state_names)
    for st in program.statements[:at]:
        if st.target not in scope:
            scope.append(st.target)
    taken = set(scope) | {st.target for st in program.statements}
    fresh: dict[str, str] = {}
    for st in fragment.statements:
        fresh[st.target] = next(f"{st.target}_{k}" for k in range(len(taken) + 2)
                                if f"{st.target}_{k}" not in taken)
        taken.add(fresh[st.target])
    fill = {f"?{h}": scope[int(rng.integers(len(scope)))] for h in range(fragment.holes)}

    def arg(a: Any) -> Any:
        return fresh.get(a, fill.get(a, a)) if isinstance(a, str) else a

    inserted = [Statement(fresh[st.target], st.op, tuple(map(arg, st.args)))
                for st in fragment.statements]
    target = program.statements[at]
    slots = [j for j, a in enumerate(target.args) if isinstance(a, str)]
    j = slots[int(rng.integers(len(slots)))]
    args = list(target.args)
    args[j] = inserted[-1].target
    statements = [*program.statements[:at], *inserted,
                  Statement(target.target, target.op, tuple(args)),
                  *program.statements[at + 1:]]
    child = Program.model_construct(states=program.states, statements=tuple(statements),
                                    outputs=program.outputs)
    return child, {"kind": "fragment", "from": fragment.donor, "at": at, "arg": j,
                   "fragment": "; ".join(st.to_source() for st in inserted)}


def crossover(recipient: Program, donor: Program, rng: np.random.Generator
              ) -> tuple[Program, dict[str, Any]] | None:
    """``recipient`` with a live fragment of ``donor`` spliced in (:func:`splice`): one of
    the donor's live statements whose function the recipient's live code lacks, with up
    to :data:`MAX_SIZE` statements of its slice; None if the donor has none (the same
    algorithm with other constants has nothing to give)."""
    have = graph.live_ops(recipient)
    live = sorted(graph.liveness(donor).statements)
    ends = [i for i in live if donor.statements[i].op not in have]
    if not ends:
        return None
    end = ends[int(rng.integers(len(ends)))]
    fragment = _slice(donor, end, int(rng.integers(1, MAX_SIZE + 1)))
    made = splice(recipient, fragment, rng)
    if made is None:
        return None
    child, how = made
    return child, how | {"kind": "crossover"}


__all__ = ["MAX_SIZE", "Fragment", "crossover", "library_fragments", "splice"]
