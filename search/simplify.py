"""Simplification: make a found program readable without changing what it does.

Four passes, each logged step by step:

(a) dead statements and dead states, across steps (:func:`dsl.graph.remove_dead`);
(b) rewrites that keep the function exactly, each accepted only when the
    fingerprint is unchanged: ``x / sqrt(x * x)`` and ``x / abs(x)`` become
    ``sign(x)``, two chained interpolations toward the same input become one
    (``interp(a, interp(a, x, b1), b2) = interp(a, x, b1 * b2)``), identities
    (``x * 1``, ``x + 0``, ``x - 0``, ``x / 1``, ``-(-x)``, ``interp(x, x, b)``,
    ``interp(x, y, 0)`` and ``interp(x, y, 1)``) disappear, and
    statements of constants alone are folded;
(c) ablation: each statement is removed (its uses read its first input
    instead) and the removal kept when fitness stays within ``tolerance``;
(d) constants are rounded to few significant digits when fitness holds.

(c) and (d) need a fitness function, passed in: search/ never trains.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from dsl import Program, ProgramError, abstract, graph, ops
from dsl.program import Arg, Statement

Fitness = Callable[[Program], float]
SHAPES = [(256, 128), (128,), ()]


@dataclass
class Simplification:
    """The simplified program and what was done to get there."""

    program: Program
    log: list[str] = field(default_factory=list)


def _valid(p: Program) -> bool:
    try:
        for shape in SHAPES:
            abstract.check(p, shape)
    except ProgramError:
        return False
    return True


def _definitions(p: Program, i: int) -> dict[str, int]:
    """For each variable, the statement defining its value as read by statement ``i``."""
    defs: dict[str, int] = {}
    for k, st in enumerate(p.statements[:i]):
        defs[st.target] = k
    return defs


def _rewrites(p: Program, i: int) -> list[tuple[str, Program]]:
    """Exact rewrites of statement ``i`` (candidates; the fingerprint decides)."""
    st = p.statements[i]
    defs = _definitions(p, i)
    out: list[tuple[str, Program]] = []

    def stmt(k: str) -> Statement | None:
        d = defs.get(k) if isinstance(k, str) else None
        return None if d is None else p.statements[d]

    def propose(reason: str, new: Statement | None = None, alias: Arg | None = None) -> None:
        try:
            out.append((reason, graph.replace_statement(p, i, new, alias)))
        except ProgramError:
            pass

    a = st.args
    if st.op == "div" and isinstance(a[1], str):
        r = stmt(a[1])
        if r is not None and r.op in ("sqrt", "abs"):
            q = stmt(r.args[0]) if r.op == "sqrt" else None
            if (r.op == "abs" and r.args[0] == a[0]) or (
                    q is not None and ((q.op == "mul" and q.args == (a[0], a[0]))
                                       or (q.op == "square" and q.args == (a[0],)))):
                propose(f"{st.to_source()}: x / |x| is sign(x)",
                        Statement(st.target, "sign", (a[0],)))
    if st.op == "interp" and isinstance(a[1], str) and isinstance(a[2], float):
        inner = stmt(a[1])
        if inner is not None and inner.op == "interp" and inner.args[0] == a[0] and isinstance(
                inner.args[2], float):
            beta = float(np.float64(inner.args[2]) * a[2])
            propose(f"{st.to_source()} after {inner.to_source()}: one interpolation "
                    f"with weight {beta!r}", Statement(st.target, "interp",
                                                     (a[0], inner.args[1], beta)))
    if st.op == "interp" and a[0] == a[1]:  # a weighted mean of x and x
        propose(f"{st.to_source()}: an interpolation between x and x is x", alias=a[0])
    elif st.op == "interp" and a[2] in (0.0, 1.0):  # all weight on one end
        propose(f"{st.to_source()}: weight {a[2]!r}", alias=a[int(a[2])])
    identity = ops.OPS[st.op].identity  # x * 1, x - 0 (and 1 * x, 0 + x) are x
    if identity is not None and ops.OPS[st.op].commutative and a[0] == identity:
        propose(f"{st.to_source()}: identity", alias=a[1])
    if identity is not None and a[-1] == identity:
        propose(f"{st.to_source()}: identity", alias=a[0])
    if st.op == "negative" and isinstance(a[0], str):
        inner = stmt(a[0])
        if inner is not None and inner.op == "negative":
            propose(f"{st.to_source()}: double negation", alias=inner.args[0])
    if all(not (isinstance(x, str) and x not in ops.CONSTANTS) for x in a):
        values = [np.float64(ops.CONSTANTS.get(x, x)) if isinstance(x, str) else np.float64(x)
                  for x in a]
        with np.errstate(all="ignore"):
            v = ops.OPS[st.op].apply(np, *values)
        if np.ndim(v) == 0 and np.isfinite(v):
            propose(f"{st.to_source()}: constant {float(v)!r}", alias=float(v))
    return out


def rewrite(p: Program, log: list[str]) -> Program:
    """Apply exact rewrites until none applies; each must keep the fingerprint."""
    finger = abstract.fingerprint(p)
    changed = True
    while changed:
        changed = False
        for i in range(len(p.statements)):
            for reason, candidate in _rewrites(p, i):
                candidate = graph.remove_dead(candidate)
                if _valid(candidate) and abstract.fingerprint(candidate) == finger:
                    log.append(f"rewrite: {reason}")
                    p, changed = candidate, True
                    break
            if changed:
                break
    return p


def reads_weights(statement: Statement) -> bool:
    """A ``protect`` predicate: keep statements that read ``w`` (weight decay)."""
    return "w" in statement.args


def _protected(p: Program, protect: Callable[[Statement], bool] | None) -> set[int]:
    """Statements ``protect`` selects, and those reading their values downstream."""
    if protect is None:
        return set()
    marked: set[str] = set()
    out: set[int] = set()
    for i, st in enumerate(p.statements):
        if protect(st) or any(a in marked for a in st.args):
            out.add(i)
            marked.add(st.target)
        else:
            marked.discard(st.target)
    return out


def ablate(p: Program, fitness: Fitness, tolerance: float, log: list[str],
           protect: Callable[[Statement], bool] | None = None) -> Program:
    """Remove statements (reading their first input instead) while fitness holds.

    Statements ``protect`` selects, and the statements that use their values,
    are never removed.
    """
    base = fitness(p)
    i = 0
    while i < len(p.statements):
        st = p.statements[i]
        inputs = [a for a in st.args if isinstance(a, str) and a not in ops.CONSTANTS]
        kept = True
        if inputs and i not in _protected(p, protect):
            try:
                candidate = graph.remove_dead(graph.replace_statement(p, i, None, alias=inputs[0]))
            except ProgramError:
                candidate = None
            if candidate is not None and _valid(candidate):
                score = fitness(candidate)
                if score >= base - tolerance:
                    log.append(f"ablation: removed {st.to_source()} (fitness {base:+.4f} -> "
                               f"{score:+.4f})")
                    p, base, kept = candidate, max(base, score), False
        if kept:
            i += 1
    return p


def round_constants(p: Program, fitness: Fitness, tolerance: float, log: list[str],
                    digits: tuple[int, ...] = (1, 2, 3)) -> Program:
    """Round each constant to the fewest significant digits that keep fitness."""
    base = fitness(p)
    for i, st in enumerate(p.statements):
        for j, a in enumerate(st.args):
            if not isinstance(a, float) or a == 0:
                continue
            for d in digits:
                r = float(f"{a:.{d}g}")
                if r == a:
                    break
                args = list(st.args)
                args[j] = r
                candidate = graph.replace_statement(p, i, Statement(st.target, st.op, tuple(args)))
                if _valid(candidate) and fitness(candidate) >= base - tolerance:
                    log.append(f"rounding: {a!r} -> {r!r} in {st.to_source()}")
                    p = candidate
                    st = p.statements[i]
                    break
    return p


def simplify(program: Program, fitness: Fitness | None = None, tolerance: float = 0.01,
             protect: Callable[[Statement], bool] | None = None) -> Simplification:
    """Simplify ``program``; without ``fitness`` only passes (a) and (b) run.

    ``protect(statement)`` true keeps a statement from ablation (e.g.
    :func:`reads_weights` keeps weight decay that a short proxy does not reward).
    The ``x / |x|`` rewrite also turns the 0/0 NaN at exactly zero into 0.
    """
    log: list[str] = []
    p = graph.remove_dead(program)
    if len(p.statements) < len(program.statements) or p.states != program.states:
        removed = len(program.statements) - len(p.statements)
        gone = sorted(set(program.state_names) - set(p.state_names))
        log.append(f"dead code: removed {removed} statement(s)"
                   + (f" and state(s) {', '.join(gone)}" if gone else ""))
    p = rewrite(p, log)
    if fitness is not None:
        p = ablate(p, fitness, tolerance, log, protect)
        p = rewrite(p, log)
        p = round_constants(p, fitness, tolerance, log)
    return Simplification(p, log)
