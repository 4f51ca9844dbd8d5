"""The update rule as generated PyTorch code that overwrites the values it no
longer needs, as a hand-written PyTorch optimizer does."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from dsl import ops
from dsl.export.jax_rule import LEAF, SCALAR, ShapeExpr, shape_exprs
from dsl.export.text import Site, _number, _texts, _wrap
from dsl.program import Program
from dsl.walk import Plan, walk


@dataclass(frozen=True)
class _Value:
    """What the PyTorch emitter knows of a value.

    ``tensor``: computed from w, g or a state (a tensor, of ``shape``);
    otherwise a number or a 0-d tensor. ``wide``: computed from a state
    (of the states' dtype, float32 or float64, never narrower than the
    parameter's). ``owned``: a tensor this step made
    or a state's own tensor, which may be overwritten once its value is dead
    (and returned as a state without a copy). ``pinned``: an owned tensor that a
    later value may share (a function returned it as its result), never overwritten.
    """

    text: str
    name: str | None = None
    tensor: bool = False
    wide: bool = False
    owned: bool = False
    shape: ShapeExpr = SCALAR
    pinned: bool = False


def inplace_forms(op: ops.Op) -> list[tuple[int, str, tuple[int, ...]]]:
    """``op``'s PyTorch in-place forms as (argument overwritten, template, arguments
    that must not be parameter-shaped tensors): a commutative op's form serves
    either argument, and ``alpha=`` takes a number (or a 0-d tensor)."""
    forms = list(op.inplace)
    if op.commutative and op.arity == 2:
        have = {k for k, _ in forms}
        forms += [(1 - k, t.replace("{0}", "{x}").replace("{1}", "{0}").replace("{x}", "{1}"))
                  for k, t in op.inplace if 1 - k not in have]
    return [(k, t, tuple(int(j) for j in re.findall(r"alpha=[^{,)]*\{(\d)\}", t)))
            for k, t in forms]


def torch_fresh(op: ops.Op, texts: list[str], numbers: list[bool]) -> str:
    """``op``'s PyTorch expression for a new value; ``numbers`` marks the arguments
    that may be Python numbers, which PyTorch's functions do not take."""
    template = op.torch or re.sub(r"\bxp\b", "torch", op.code)
    calls = set(re.findall(r"(torch\.\w+|\w+)\(", template))
    if calls - TAKE_NUMBERS and "as_tensor" not in calls:  # (a form that converts its own)
        texts = [f"as_tensor(torch, {x})" if n else x for x, n in zip(texts, numbers, strict=True)]
    return template.format(*texts)


#: Functions in PyTorch forms that take numbers as well as tensors.
TAKE_NUMBERS = frozenset({"interp", "as_tensor", "abs"})


def torch_rule_source(p: Program, core: tuple[int, ...], returns: str,
                      names: dict[Site, str], inplace: bool = True) -> tuple[list[str], bool]:
    """The body of the PyTorch rule, and whether the direction it returns is a
    tensor of its own (one the caller may overwrite).

    Each statement overwrites an argument in place (the op's ``inplace`` forms)
    when that argument is a tensor of the step's own whose value is not read
    again (nor returned), so the step makes few new tensors, as a hand-written
    PyTorch optimizer does; otherwise it makes a new one.
    """
    sts = [p.statements[i] for i in core]
    outputs = returns.split(", ")
    lines: list[str] = []
    position = iter(range(len(sts)))
    state_shapes, shapes = shape_exprs(p, core)

    def dead_after(s: int, name: str) -> bool:
        if sts[s].target == name:
            return True
        for st in sts[s + 1:]:
            if name in st.args:
                return False
            if st.target == name:
                return True
        return name not in outputs

    def const(value: float) -> _Value:
        return _Value(_number(value))

    def apply(op: ops.Op, args: list[_Value]) -> _Value:
        s = next(position)
        target = sts[s].target
        tensor, wide = any(a.tensor for a in args), any(a.wide for a in args)
        texts = _texts(sts[s], args, names, core[s])
        shape = shapes[s]
        for k, template, numbers in inplace_forms(op) if inplace else ():
            a = args[k]
            if (a.owned and not a.pinned and a.shape == shape and shape is not None
                    and (a.wide or not wide)
                    and [b.name for b in args].count(a.name) == 1
                    and not any(args[j].tensor and args[j].shape != SCALAR for j in numbers)
                    and dead_after(s, a.name)):
                lines.append(f"    {target} = {template.format(*texts)}")
                break
        else:
            fresh = torch_fresh(op, texts, [not a.tensor for a in args])
            lines.append(f"    {target} = {fresh}")
        # A function that may return an argument itself makes no tensor of its own, and
        # that argument may no longer be overwritten either: the two may be one tensor.
        if op.may_alias:
            for a in args:
                if a.owned and a.name is not None and env.get(a.name) == a:
                    env[a.name] = replace(a, pinned=True)
        owned = tensor and not op.may_alias
        return _Value(target, target, tensor, wide, owned=owned, shape=shape)

    env = {"w": _Value("w", "w", tensor=True, shape=LEAF),
           "g": _Value("g", "g", tensor=True, shape=LEAF), "lr": _Value("lr", "lr"),
           "t": _Value("t", "t")}
    env.update({s: _Value(s, s, tensor=True, wide=True, owned=True, shape=state_shapes[s])
                for s in p.state_names})
    walk(Plan(p, core, outputs=()), env, const, apply)
    # The states are tensors of their own, float32 (float64 for float64 parameters).
    dtype = "torch.promote_types(w.dtype, torch.float32)"
    results = [outputs[0]]
    for k, o in enumerate(outputs[1:]):
        value = env[o]
        if not value.tensor:
            results.append(f"torch.as_tensor({o}, dtype={dtype}, device=w.device)")
        elif not value.owned or o in outputs[1:k + 1]:  # w, g, an alias, a second copy
            results.append(f"{o}.to({dtype}, copy=True)")
        elif not value.wide:
            results.append(f"{o}.to({dtype})")
        else:
            results.append(o)
    one = f"    return {', '.join(results)}"
    lines.append(one if len(one) <= 100 else _wrap("return ", results, "", "    "))
    direction = outputs[0]
    assigned = direction in {st.target for st in sts}
    return lines, assigned and env[direction].owned and direction not in outputs[1:]
