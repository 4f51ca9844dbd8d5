"""The update's scale: constants that only multiply the update, folded into the learning rate.

A program found by a search often holds its step size in two places: ``lr``, the
multiplier calibration chose, and a constant that a mutation left on the update's
path, e.g. ``update = step * 0.0003`` before ``update = update * lr``. Exported as
it is, such a program's optimizer takes ``lr=56.2`` and ``c1=0.0003``: its step
(0.0169) is split between two numbers, and a user who sets a familiar learning rate
(1e-3) takes a step of 3e-7. :func:`fold_scale` moves every such constant into the
learning rate, so the exported ``lr`` is the effective peak step size.

A constant is *only a scale* of the update when it sits in the product that makes
the update: the update's statement, and through it every ``mul`` (either operand)
and ``div`` (the numerator; a constant denominator divides) whose value is read
once, by that product alone. ``lr`` must be a factor of that product and read
nowhere else, so the update is exactly ``lr * F * rest`` with ``rest`` free of ``lr``
and of the folded constants: then ``lr' = lr * F`` with the constants set to 1 is the
same function of the same inputs. Where the product's last factor is a sum of two
products (``(direction * c + w * wd) * lr``, the decoupled weight decay), ``c`` is
folded and ``wd`` divided by it: ``(direction + w * wd / c) * (c * lr)``. Only
positive constants fold (a negative one would make the learning rate negative).

>>> from dsl import parse
>>> p = parse("def train(w, g, lr, m):\\n  m = interp(g, m, 0.9)\\n  s = sign(m)\\n"
...           "  u = s * 0.0003\\n  u = u * lr\\n  return u, m")
>>> folded = fold_scale(p)
>>> folded.factor
0.0003
>>> print(folded.program.to_source().splitlines()[-3:-1])
['  s = sign(m)', '  u = s * lr']
"""

from __future__ import annotations

from dataclasses import dataclass

from dsl import graph
from dsl.program import Program, Statement

Site = tuple[int, int]  # (statement, argument)


@dataclass(frozen=True)
class Folded:
    """A program with its update's constant scale folded out (see :func:`fold_scale`)."""

    program: Program
    factor: float  # multiplies a learning rate of the original to give the same updates
    origin: tuple[int, ...]  # for each statement, its index in the original program

    def sites(self, named: dict[Site, str] | None) -> dict[Site, str] | None:
        """Names of the original's constants (by statement and argument) as sites of the
        folded program; a folded constant's name is gone with it."""
        if named is None:
            return None
        where = {i: k for k, i in enumerate(self.origin)}
        return {(where[i], j): n for (i, j), n in named.items() if i in where}



@dataclass(frozen=True)
class _Reads:
    """Which definition each read sees: per statement and argument, the defining
    statement (None: an input or the step's incoming state), and per definition the
    reads of its value (returns count as reads)."""

    source: dict[Site, int | None]
    count: dict[int, int]


def _reads(p: Program) -> _Reads:
    last: dict[str, int] = {}
    source: dict[Site, int | None] = {}
    count: dict[int, int] = {i: 0 for i in range(len(p.statements))}
    for i, st in enumerate(p.statements):
        for j, a in enumerate(st.args):
            if isinstance(a, str):
                source[(i, j)] = last.get(a)
                if a in last:
                    count[last[a]] += 1
        last[st.target] = i
    for out in p.outputs:
        if out in last:
            count[last[out]] += 1
    return _Reads(source, count)


def _product(p: Program, reads: _Reads, i: int, sign: int, sites: list[tuple[int, int, int]],
             leaves: list[tuple[int, int]]) -> None:
    """Walk the product that statement ``i`` computes: constant factors into ``sites``
    (statement, argument, +1 multiplies / -1 divides), other factors into ``leaves``
    (statement, argument)."""
    st = p.statements[i]
    if st.op not in ("mul", "div") or all(isinstance(a, float) for a in st.args):
        leaves.append((i, -1))
        return
    for j, a in enumerate(st.args):
        s = sign if (st.op == "mul" or j == 0) else -sign
        if isinstance(a, float):
            sites.append((i, j, s))
            continue
        k = reads.source[(i, j)]
        if (s == sign and k is not None and reads.count[k] == 1
                and p.statements[k].op in ("mul", "div") and _untouched(p, k, i)):
            _product(p, reads, k, s, sites, leaves)
        else:
            leaves.append((i, j))


def _untouched(p: Program, k: int, i: int) -> bool:
    """Whether the operands statement ``k`` reads keep their values until statement ``i``
    (so that ``k``, removed, can be read as its operand there)."""
    names = {a for a in p.statements[k].args if isinstance(a, str)}
    return not any(p.statements[m].target in names for m in range(k + 1, i))


def fold_scale(program: Program) -> Folded:
    """``program`` with the positive constants that only scale its update (through the
    product with ``lr``, see the module) removed, and their product: the factor by
    which a learning rate for ``program`` is multiplied to give the same updates to
    the returned one (1.0 when nothing folds). Dead code is removed first.
    """
    p = graph.remove_dead(program)
    origin = tuple(sorted(graph.liveness(program).statements))
    unchanged = Folded(p, 1.0, origin)
    if not p.statements:
        return unchanged
    last = max((i for i, st in enumerate(p.statements) if st.target == p.outputs[0]), default=None)
    if last is None:
        return unchanged
    reads = _reads(p)
    sites: list[tuple[int, int, int]] = []
    leaves: list[tuple[int, int]] = []
    _product(p, reads, last, 1, sites, leaves)
    lr_reads = [(i, j) for i, st in enumerate(p.statements) for j, a in enumerate(st.args)
                if a == "lr" and reads.source[(i, j)] is None]  # the input, not a rescaled lr

    if len(lr_reads) != 1 or lr_reads[0] not in leaves:
        return unchanged
    sites = [(i, j, s) for i, j, s in sites if p.statements[i].args[j] > 0]
    decay = _decay_site(p, reads, leaves, sites)
    factor = 1.0
    for i, j, s in sites:
        c = p.statements[i].args[j]
        factor = factor * c if s > 0 else factor / c
    if not sites or factor == 1.0 or not 0 < factor < float("inf"):
        return unchanged
    removed = {i for i, _, _ in sites}
    p = _fold(p, sites)
    if decay is not None:  # the decay term's constant, divided by the folded factor
        i, j = decay
        p = _scaled(p, (i - sum(k < i for k in removed), j), 1 / factor)
    kept = tuple(i for k, i in enumerate(origin) if k not in removed)
    return Folded(p, float(f"{factor:.12g}"), kept)


def _decay_site(p: Program, reads: _Reads, leaves: list[tuple[int, int]],
                sites: list[tuple[int, int, int]]) -> Site | None:
    """Where the product's one sum factor ``a + b`` has a scaled branch ``a`` (its
    constants joining ``sites``) and a branch ``b = w * c`` whose ``c`` absorbs the
    fold: ``b``'s statement and the constant's position. None (and ``sites`` left as
    they are) otherwise."""
    sums = [(i, j) for i, j in leaves if j >= 0 and reads.source[(i, j)] is not None
            and p.statements[reads.source[(i, j)]].op == "add"
            and reads.count[reads.source[(i, j)]] == 1]
    if len(sums) != 1:
        return None
    k = reads.source[sums[0]]
    for a in (0, 1):
        b_def = reads.source.get((k, 1 - a))
        a_def = reads.source.get((k, a))
        if b_def is None or a_def is None or reads.count[a_def] != 1:
            continue
        b = p.statements[b_def]
        consts = [n for n, x in enumerate(b.args) if isinstance(x, float)]
        if b.op != "mul" or "w" not in b.args or len(consts) != 1 or reads.count[b_def] != 1:
            continue
        more: list[tuple[int, int, int]] = []
        inner: list[tuple[int, int]] = []
        if p.statements[a_def].op not in ("mul", "div"):
            continue
        _product(p, reads, a_def, 1, more, inner)
        more = [(i, j, s) for i, j, s in more if p.statements[i].args[j] > 0]
        if more and _untouched(p, a_def, k):
            sites.extend(more)
            return b_def, consts[0]
    return None


def _fold(p: Program, sites: list[tuple[int, int, int]]) -> Program:
    """``p`` with each site's statement removed, its value read as its other operand."""
    for i in sorted({i for i, _, _ in sites}, reverse=True):
        st = p.statements[i]
        others = [a for n, a in enumerate(st.args) if n not in {j for k, j, _ in sites if k == i}]
        if len(others) != 1 or not isinstance(others[0], str):
            raise AssertionError(f"{st.to_source()}: not a scaling statement")
        p = graph.replace_statement(p, i, None, alias=others[0])
    return p


def _scaled(p: Program, site: Site, by: float) -> Program:
    """``p`` with the constant at ``site`` multiplied by ``by``."""
    i, j = site
    st = p.statements[i]
    args = list(st.args)

    args[j] = float(f"{args[j] * by:.12g}")
    return graph.replace_statement(p, i, Statement(st.target, st.op, tuple(args)))


__all__ = ["Folded", "fold_scale"]

