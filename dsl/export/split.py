"""Where a program's direction, weight decay and learning rate are: an exported
optax recipe chains ``optax.add_decayed_weights`` and ``optax.scale_by_learning_rate``
after the direction, as optax's own AdamW and Lion do, when the program ends
``update = (direction + w * wd) * lr``."""

from __future__ import annotations

from dataclasses import dataclass

from dsl.program import Program


@dataclass(frozen=True)
class Split:
    """Where the direction, the weight decay and the learning rate are in a program."""

    core: tuple[int, ...]  # statement indices that compute the direction
    direction: str  # the variable holding the direction
    weight_decay: float | None  # the decay constant, if the program decays weights


def split_decay_and_lr(p: Program) -> Split | None:
    """Recognise ``update = (direction + w * wd) * lr`` at the end of ``p``; else None."""
    sts = p.statements
    if not sts or sts[-1].target != p.outputs[0] or sts[-1].op != "mul":
        return None
    last = sts[-1]
    lr_reads = [i for i, st in enumerate(sts) if "lr" in st.args]
    if "lr" not in last.args or lr_reads != [len(sts) - 1] or any(s.target == "lr" for s in sts):
        return None
    scaled = [a for a in last.args if a != "lr"]
    if len(scaled) != 1 or not isinstance(scaled[0], str):
        return None
    defs = {st.target: i for i, st in enumerate(sts[:-1])}
    total = defs.get(scaled[0])
    if total is None or sts[total].op != "add":
        return core_only(p, len(sts) - 1, scaled[0], None)
    for k, arg in enumerate(sts[total].args):
        d = defs.get(arg) if isinstance(arg, str) else None
        if d is None or d > total or sts[d].op != "mul" or "w" not in sts[d].args:
            continue
        consts = [a for a in sts[d].args if isinstance(a, float)]
        other = sts[total].args[1 - k]
        if len(consts) == 1 and isinstance(other, str) and _read_once(sts, d, total):
            return core_only(p, (d, total, len(sts) - 1), other, consts[0])
    return core_only(p, len(sts) - 1, scaled[0], None)


def _read_once(sts, d: int, total: int) -> bool:
    target = sts[d].target
    return [i for i, st in enumerate(sts) if target in st.args] == [total]


def core_only(p: Program, dropped, direction: str, wd: float | None) -> Split:
    dropped = {dropped} if isinstance(dropped, int) else set(dropped)
    return Split(tuple(i for i in range(len(p.statements)) if i not in dropped), direction, wd)
