"""The function set: every function a program may call, each defined once.

One :class:`Op` per function holds its name, stable opcode, arity, argument
kinds, shape rule, array implementation, printed form, exported code (with the
helpers it copies and, for Adafactor's functions, its shape in exported code) and,
for a function that reduces over the leaf, its training engine's twin. Printing,
abstract execution, the NumPy and JAX interpreters, the structural hash, the
engine and code generation all read this table, so adding a function is one
:func:`register` call here.

The implementation of each op is written once against an array namespace
``xp`` (``numpy`` or ``jax.numpy``), so the NumPy semantics (fingerprints) and
the JAX semantics (training) cannot drift apart; the longer ones live in
:mod:`dsl.helpers`, whose source exported modules copy.

Programs run per parameter leaf: ``w`` and ``g`` have the leaf's shape, ``lr``
and ``t`` are scalars. Every value is a float array; comparisons give 1.0 or 0.0.

Numeric domains (the one place they are decided):

- ``log``, ``log2``, ``log10``, ``log1p`` and ``sqrt`` take ``|x|`` first, as in the
  Lion search, so they are defined for every input (``log(0)`` is ``-inf``).
- ``arcsin``, ``arccos``, ``arctanh`` (|x| <= 1), ``arccosh`` (x >= 1) and ``power``
  (a negative base with a non-integer exponent) give NaN outside their domain,
  like NumPy. A NaN makes a candidate fail; it never raises.
- ``/`` and ``reciprocal`` give ``±inf`` for a zero divisor (NaN for 0/0).
- ``clip(x, c)`` clips to ``[-|c|, |c|]``.
- ``norm(x)`` is ``x / ||x||`` (unit L2 norm over the leaf, shape kept; zero stays
  zero); ``global_norm(x)`` is the scalar ``||x||``. Norms, ``dot``,
  ``cosine_sim``, ``mean`` and ``rms`` reduce over the whole leaf (a program sees
  one leaf at a time, so "global" means the leaf).
- ``cosine_sim`` is 0 when either argument is all zero.
- ``invert(x)`` is ``1 - x`` (``reciprocal`` already covers ``1 / x``).
- ``mod`` is the floored modulo of NumPy (``mod(t, k) == 0`` every k steps).
- ``where(c, a, b)`` takes ``a`` where ``c != 0``.
- ``factor_row``/``factor_col``/``unfactor`` follow Adafactor's factored second
  moment as ``optax.adafactor`` does: a leaf is factored when it has rank >= 2 and
  its second-largest dimension is at least :data:`FACTOR_MIN_DIM`; then
  ``factor_row`` means over the largest axis and ``factor_col`` over the
  second-largest, and ``unfactor(r, c, x) = r ⊗ c / mean(r)`` (shaped like ``x``).
  An unfactored leaf keeps its full statistic: ``factor_row(x) = x``,
  ``factor_col(x) = mean(x)`` and ``unfactor(r, c, x) = r``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from dsl.helpers import (
    FACTOR_MIN_DIM,
    as_tensor,
    clip_scale,
    col_shape,
    factor_col,
    factor_row,
    factored_dims,
    fan_in,
    fan_out,
    interp,
    is_matrix,
    newton_schulz,
    row_shape,
    safe_div,
    sign_scale,
    unfactor,
    without,
)

Shape = tuple[int, ...]
ArgKind = Literal["any", "scalar"]

#: Named constants a program may use as arguments.
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "eps": 1e-8}


class ShapeError(Exception):
    """A shape rule refused its arguments; abstract execution adds the statement."""


class Segments(Protocol):
    """What a leaf-reducing function's engine twin (``Op.flat``) may ask of the
    engine's flat layout, where every leaf of every seed lies end to end in one
    vector and a scalar value is repeated over its leaf's elements.

    Each method returns a value of the same flat layout (a leaf's reduction is
    repeated over the leaf). ``k`` numbers the instruction's arguments.
    """

    xp: Any  # jax.numpy

    def sum(self, x: Any, *k: int) -> Any:
        """The sum over each leaf of ``x``, an elementwise value of arguments ``k``
        (their true size counts: a scalar argument is one element, not the leaf's)."""

    def mean(self, x: Any) -> Any:
        """The mean over each leaf."""

    def row_mean(self, x: Any) -> Any:
        """Adafactor's row means (over the largest axis) of each factored leaf."""

    def col_mean(self, x: Any) -> Any:
        """Adafactor's column means (over the second-largest axis; the whole leaf
        when unfactored)."""

    def leaf_shaped(self, k: int) -> Any:
        """Where argument ``k`` is a leaf-shaped value (not a repeated scalar)."""

    def factored(self, k: int) -> Any:
        """Where argument ``k`` is a leaf-shaped value of a factored leaf."""

    def matrix(self, k: int) -> Any:
        """Where argument ``k`` is a matrix (rank 2)."""

    def fan_in(self, k: int) -> Any:
        """Argument ``k``'s first dimension where it is a matrix, else 1.0."""

    def fan_out(self, k: int) -> Any:
        """Argument ``k``'s second dimension where it is a matrix, else 1.0."""

    def per_matrix(self, x: Any, k: int, fn: Callable[[Any, Any], Any]) -> Any:
        """``fn(xp, m)`` on each value ``m`` of argument ``k`` that is its leaf's
        matrix (shaped as the leaf, rank 2), ``x`` unchanged elsewhere."""


@dataclass(frozen=True)
class Op:
    """One function of the DSL.

    ``fn(xp, *args)`` computes it with the array namespace ``xp``; ``shape`` maps
    argument shapes to the result shape (``None`` is an unknown shape, which
    broadcasts like a scalar) or raises :class:`ShapeError`. ``infix`` is the
    operator printed between two arguments (``+``), or ``None`` for call syntax.
    ``factored`` ops (Adafactor's) take a keyword ``min_dim``, the factoring
    threshold, in both ``fn`` and ``shape``; :meth:`apply` and :meth:`result_shape`
    pass it. ``code`` is the expression exported code uses, over an array namespace
    ``xp`` with NumPy's names (``{0}`` is the first argument); None where export
    does not support the function yet. ``torch`` replaces ``code`` in exported
    PyTorch code where PyTorch's names differ (its ``maximum`` takes no
    numbers). ``inplace`` holds PyTorch forms that overwrite one argument with
    the result, as ``(position, template)`` pairs: the exported PyTorch step uses
    them when that argument's value is not needed afterwards, so it makes no new
    tensor. They round exactly as ``code`` does, except ``interp``'s, which
    fuse a multiply and an add as hand-written PyTorch does (``add_(y, alpha=a)``).
    ``helpers`` are the functions of :mod:`dsl.helpers` that ``code`` and ``torch``
    call, each after those it calls: an export copies their source.
    ``shape_code`` is the result's shape in exported code, a template over the
    arguments' shape expressions (``row_shape({0})``), for the functions whose
    ``shape`` rule needs a concrete shape (Adafactor's).
    ``opcode`` is the function's stable code in structural hashes (see :func:`register`).
    ``over_leaf`` marks a leaf-shaped result that depends on the whole leaf
    (``norm``, ``clip_by_global_norm``); see :attr:`leaf_reducing`. ``flat`` is
    the training engine's form of a leaf-reducing function, ``flat(seg, *args)``
    over its flat layout (see :class:`Segments`). ``matrix`` marks a function
    that reads its argument's rank and dimensions as a matrix (Muon's).
    ``scalar_last`` asks the engine for a second form that reads a per-step scalar
    as the last argument (``interp(g, m, 0.9)``), each one more branch to compile;
    ``swap_exact`` says that swapping the two arguments gives the same value bit
    for bit, so the engine may move a scalar first argument last. ``identity`` is
    the constant ``e`` with ``f(x, e) == x`` exactly (and ``f(e, x)`` when
    commutative), which simplification removes.
    """

    name: str
    arity: int
    fn: Callable[..., Any]
    shape: Callable[..., Shape | None]
    doc: str
    kinds: tuple[ArgKind, ...] = ()
    infix: str | None = None
    commutative: bool = False
    reduces: bool = False
    factored: bool = False
    code: str | None = None
    torch: str | None = None
    inplace: tuple[tuple[int, str], ...] = ()
    helpers: tuple[Callable[..., Any], ...] = ()
    shape_code: str | None = None
    opcode: int = -1
    over_leaf: bool = False
    flat: Callable[..., Any] | None = None
    matrix: bool = False
    scalar_last: bool = False
    swap_exact: bool = False
    identity: float | None = None

    @property
    def may_alias(self) -> bool:
        """Whether it may return an argument itself (Adafactor's functions on an
        unfactored leaf, ``newton_schulz`` of a value not a matrix): exported
        PyTorch code never overwrites its result in place."""
        return self.factored or (self.matrix and self.over_leaf)

    @property
    def leaf_reducing(self) -> bool:
        """Whether its value involves the whole leaf (a reduction, or a leaf-shaped
        result scaled by one, as ``norm``): the engine needs a flat twin for it."""
        return self.reduces or self.over_leaf

    def __post_init__(self) -> None:
        if not self.kinds:
            object.__setattr__(self, "kinds", ("any",) * self.arity)

    @property
    def scalar_args(self) -> tuple[int, ...]:
        """Positions of the arguments that must be scalars."""
        return tuple(j for j, kind in enumerate(self.kinds) if kind == "scalar")

    def apply(self, xp: Any, *args: Any, min_dim: int = FACTOR_MIN_DIM) -> Any:
        """Its value on ``args`` with the namespace ``xp``, factoring leaves whose
        second-largest dimension is at least ``min_dim`` (Adafactor's functions)."""
        return self.fn(xp, *args, min_dim=min_dim) if self.factored else self.fn(xp, *args)

    def result_shape(self, *shapes: Shape | None, min_dim: int = FACTOR_MIN_DIM) -> Shape | None:
        """Its result's shape for arguments of ``shapes`` (see :meth:`apply`)."""
        if self.factored:
            return self.shape(*shapes, min_dim=min_dim)
        return self.shape(*shapes)


# --- shape rules ---------------------------------------------------------------


def elementwise(*shapes: Shape | None) -> Shape | None:
    """Arguments of one shape, or scalars: the result has the non-scalar shape."""
    out: Shape | None = None
    for s in shapes:
        if not s:  # None (unknown) or () (scalar)
            continue
        if out is None:
            out = s
        elif s != out:
            raise ShapeError(f"shapes {out} and {s} differ (only equal shapes or scalars mix)")
    if out is None:
        return None if any(s is None for s in shapes) else ()
    return out


def to_scalar(*shapes: Shape | None) -> Shape:
    """A reduction over the leaf: the result is a scalar."""
    elementwise(*shapes)
    return ()


def _row_shape(x: Shape | None, *, min_dim: int) -> Shape | None:
    return None if x is None else row_shape(x, min_dim)


def _col_shape(x: Shape | None, *, min_dim: int) -> Shape | None:
    return None if x is None else col_shape(x, min_dim)


def _unfactor_shape(
    r: Shape | None, c: Shape | None, like: Shape | None, *, min_dim: int
) -> Shape | None:
    if like is None:
        return None
    want = (row_shape(like, min_dim), col_shape(like, min_dim))
    for name, got, expected in (("row", r, want[0]), ("column", c, want[1])):
        if got is not None and got != expected:
            raise ShapeError(
                f"the {name} statistic has shape {got}, but a leaf of shape {like} needs {expected}"
            )
    return like


# --- implementations that need more than one line --------------------------------
# (the longer ones, which exports copy, are in dsl/helpers.py)


def _l2(xp: Any, x: Any) -> Any:
    return xp.sqrt(xp.sum(x * x))


def _clip_by_norm(xp: Any, x: Any, c: Any) -> Any:
    return clip_scale(xp, x, c, _l2(xp, x))


def _flat_l2(seg: Segments, x: Any, k: int) -> Any:
    return seg.xp.sqrt(seg.sum(x * x, k))


# --- the table -------------------------------------------------------------------

OPS: dict[str, Op] = {}
#: Infix operators accepted and printed between two arguments.
INFIX: dict[str, str] = {}
#: Names a program may not assign to: functions and named constants.
RESERVED: set[str] = set(CONSTANTS)


def register(opcode: int, name: str, arity: int, fn: Callable[..., Any], doc: str,
             **kw: Any) -> Op:
    """Add a function to the DSL: the one edit that adding a function takes (every
    other part of the project reads this table).

    ``opcode`` is its code in structural hashes, given once and never changed (a new
    function takes the next unused code: adding one leaves every program's hash,
    and so a resumed run's cache, as it was). ``kw`` are :class:`Op`'s fields; a
    leaf-reducing function (``reduces`` or ``over_leaf``) needs its engine twin
    ``flat``, an exportable one its ``code``.
    """
    kw.setdefault("shape", elementwise)
    taken = {op.opcode: op.name for op in OPS.values()}
    if opcode in taken or name in OPS or name in CONSTANTS:
        raise ValueError(f"function {name!r}: opcode {opcode} or the name is taken "
                         f"(by {taken.get(opcode, name)!r})")
    op = Op(name=name, arity=arity, fn=fn, doc=doc, opcode=opcode, **kw)
    if op.leaf_reducing and op.flat is None:
        raise ValueError(f"function {name!r} reduces over the leaf but has no engine twin "
                         "(flat=...)")
    OPS[name] = op
    RESERVED.add(name)
    if op.infix:
        INFIX[op.infix] = name
    return op


_add = register


def _unary(opcode: int, name: str, fn: Callable[..., Any], doc: str, **kw: Any) -> None:
    register(opcode, name, 1, fn, doc, **kw)


# Primitives.
_add(1, "add", 2, lambda xp, a, b: a + b, "a + b", infix="+", commutative=True, code="{0} + {1}",
     inplace=((0, "{0}.add_({1})"),), scalar_last=True, swap_exact=True, identity=0.0)
_add(50, "sub", 2, lambda xp, a, b: a - b, "a - b", infix="-", code="{0} - {1}",
     inplace=((0, "{0}.sub_({1})"), (1, "{1}.neg_().add_({0})")), identity=0.0)
_add(39, "mul", 2, lambda xp, a, b: a * b, "a * b", infix="*", commutative=True, code="{0} * {1}",
     inplace=((0, "{0}.mul_({1})"),), scalar_last=True, swap_exact=True, identity=1.0)
_add(15, "div", 2, lambda xp, a, b: a / b, "a / b", infix="/", code="{0} / {1}",
     inplace=((0, "{0}.div_({1})"),), scalar_last=True, identity=1.0)
_add(
    35, "max",
    2,
    lambda xp, a, b: xp.maximum(a, b),
    "elementwise maximum",
    commutative=True,
    code="xp.maximum({0}, {1})",
    torch="torch.maximum(as_tensor(torch, {0}), as_tensor(torch, {1}))",
    inplace=((0, "torch.maximum({0}, as_tensor(torch, {1}), out={0})"),),
    helpers=(as_tensor,),
    scalar_last=True,
)
_add(
    37, "min",
    2,
    lambda xp, a, b: xp.minimum(a, b),
    "elementwise minimum",
    commutative=True,
    code="xp.minimum({0}, {1})",
    torch="torch.minimum(as_tensor(torch, {0}), as_tensor(torch, {1}))",
    inplace=((0, "torch.minimum({0}, as_tensor(torch, {1}), out={0})"),),
    helpers=(as_tensor,),
    scalar_last=True,
)

# Unary, elementwise.
_unary(0, "abs", lambda xp, x: xp.abs(x), "|x|", code="xp.abs({0})", inplace=((0, "{0}.abs_()"),))
_unary(11, "cos", lambda xp, x: xp.cos(x), "cosine", code="xp.cos({0})",
       inplace=((0, "{0}.cos_()"),))
_unary(46, "sin", lambda xp, x: xp.sin(x), "sine", code="xp.sin({0})", inplace=((0, "{0}.sin_()"),))
_unary(51, "tan", lambda xp, x: xp.tan(x), "tangent", code="xp.tan({0})",
       inplace=((0, "{0}.tan_()"),))
_unary(
    4, "arcsin",
    lambda xp, x: xp.arcsin(x),
    "inverse sine (NaN outside [-1, 1])",
    code="xp.arcsin({0})",
    inplace=((0, "{0}.arcsin_()"),),
)
_unary(
    2, "arccos",
    lambda xp, x: xp.arccos(x),
    "inverse cosine (NaN outside [-1, 1])",
    code="xp.arccos({0})",
    inplace=((0, "{0}.arccos_()"),),
)
_unary(6, "arctan", lambda xp, x: xp.arctan(x), "inverse tangent", code="xp.arctan({0})",
       inplace=((0, "{0}.arctan_()"),))
_unary(47, "sinh", lambda xp, x: xp.sinh(x), "hyperbolic sine", code="xp.sinh({0})",
       inplace=((0, "{0}.sinh_()"),))
_unary(12, "cosh", lambda xp, x: xp.cosh(x), "hyperbolic cosine", code="xp.cosh({0})",
       inplace=((0, "{0}.cosh_()"),))
_unary(52, "tanh", lambda xp, x: xp.tanh(x), "hyperbolic tangent", code="xp.tanh({0})",
       inplace=((0, "{0}.tanh_()"),))
_unary(5, "arcsinh", lambda xp, x: xp.arcsinh(x), "inverse hyperbolic sine", code="xp.arcsinh({0})",
       inplace=((0, "{0}.arcsinh_()"),))
_unary(
    3, "arccosh",
    lambda xp, x: xp.arccosh(x),
    "inverse hyperbolic cosine (NaN below 1)",
    code="xp.arccosh({0})",
    inplace=((0, "{0}.arccosh_()"),),
)
_unary(7, "arctanh", lambda xp, x: xp.arctanh(x), "inverse hyperbolic tangent",
       code="xp.arctanh({0})",
       inplace=((0, "{0}.arctanh_()"),))
_unary(18, "exp", lambda xp, x: xp.exp(x), "e^x", code="xp.exp({0})", inplace=((0, "{0}.exp_()"),))
_unary(20, "exp2", lambda xp, x: xp.exp2(x), "2^x", code="xp.exp2({0})",
       inplace=((0, "{0}.exp2_()"),))
_unary(19, "exp10", lambda xp, x: xp.power(10.0, x), "10^x", code="xp.exp({0} * 2.302585092994046)",
       inplace=((0, "{0}.mul_(2.302585092994046).exp_()"),))
_unary(21, "expm1", lambda xp, x: xp.expm1(x), "e^x - 1", code="xp.expm1({0})",
       inplace=((0, "{0}.expm1_()"),))
_unary(30, "log", lambda xp, x: xp.log(xp.abs(x)), "log|x|", code="xp.log(xp.abs({0}))",
       inplace=((0, "{0}.abs_().log_()"),))
_unary(31, "log10", lambda xp, x: xp.log10(xp.abs(x)), "log10|x|", code="xp.log10(xp.abs({0}))",
       inplace=((0, "{0}.abs_().log10_()"),))
_unary(33, "log2", lambda xp, x: xp.log2(xp.abs(x)), "log2|x|", code="xp.log2(xp.abs({0}))",
       inplace=((0, "{0}.abs_().log2_()"),))
_unary(32, "log1p", lambda xp, x: xp.log1p(xp.abs(x)), "log(1 + |x|)", code="xp.log1p(xp.abs({0}))",
       inplace=((0, "{0}.abs_().log1p_()"),))
_unary(49, "square", lambda xp, x: x * x, "x^2", code="{0} * {0}", inplace=((0, "{0}.square_()"),))
_unary(48, "sqrt", lambda xp, x: xp.sqrt(xp.abs(x)), "sqrt|x|", code="xp.sqrt(xp.abs({0}))",
       inplace=((0, "{0}.abs_().sqrt_()"),))
_unary(14, "cube", lambda xp, x: x * x * x, "x^3", code="{0} * {0} * {0}")
_unary(8, "cbrt", lambda xp, x: xp.cbrt(x), "cube root",
       code="xp.cbrt({0})", torch="torch.sign({0}) * torch.abs({0}) ** (1.0 / 3.0)")
# PyTorch's sign of NaN is 0 (NumPy's and JAX's is NaN): the exported step scales x past 1
# and clips it instead, which keeps a NaN (a NaN gradient then shows in the weights, as with
# torch.optim.AdamW) and costs one pass more than torch.sign; only a subnormal number below
# 1 / (its dtype's largest) keeps a fraction of its sign
_unary(45, "sign", lambda xp, x: xp.sign(x), "sign: -1, 0 or 1", code="xp.sign({0})",
       torch="torch.mul({0}, sign_scale(torch, {0})).clamp_(-1.0, 1.0)",
       inplace=((0, "{0}.mul_(sign_scale(torch, {0})).clamp_(-1.0, 1.0)"),),
       helpers=(sign_scale,))
_unary(43, "reciprocal", lambda xp, x: 1.0 / x, "1 / x", code="1.0 / {0}",
       inplace=((0, "{0}.reciprocal_()"),))
_unary(41, "norm", lambda xp, x: safe_div(xp, x, _l2(xp, x)), "x / ||x|| over the leaf",
       code="safe_div(xp, {0}, xp.sqrt(xp.sum({0} * {0})))", over_leaf=True,
       helpers=(safe_div,), flat=lambda seg, x: safe_div(seg.xp, x, _flat_l2(seg, x, 0)))
_unary(28, "invert", lambda xp, x: 1.0 - x, "1 - x", code="1.0 - {0}",
       inplace=((0, "{0}.neg_().add_(1.0)"),))
_unary(40, "negative", lambda xp, x: -x, "-x", code="-{0}", inplace=((0, "{0}.neg_()"),))

# Others of the Lion search.
_add(
    25, "global_norm",
    1,
    lambda xp, x: _l2(xp, x),
    "||x||, the L2 norm of the leaf",
    shape=to_scalar,
    reduces=True,
    code="xp.sqrt(xp.sum({0} * {0}))",
    flat=lambda seg, x: _flat_l2(seg, x, 0),
)
_add(
    27, "interp",
    3,
    interp,
    "(1 - c) * a + c * b",
    code="interp(xp, {0}, {1}, {2})",
    helpers=(interp,),
    scalar_last=True,
    inplace=(
        (0, "{0}.mul_(1.0 - {2}).add_({1}, alpha={2})"),
        (1, "{1}.mul_({2}).add_({0}, alpha=1.0 - {2})"),
    ),
)
_add(
    16, "dot",
    2,
    lambda xp, x, y: xp.sum(x * y),
    "sum(a * b) over the leaf",
    shape=to_scalar,
    commutative=True,
    reduces=True,
    code="xp.sum({0} * {1})",
    flat=lambda seg, x, y: seg.sum(x * y, 0, 1),
)
_add(
    13, "cosine_sim",
    2,
    lambda xp, x, y: safe_div(xp, xp.sum(x * y), _l2(xp, x) * _l2(xp, y)),
    "dot(a, b) / (||a|| ||b||)",
    shape=to_scalar,
    commutative=True,
    reduces=True,
    code="safe_div(xp, xp.sum({0} * {1}), xp.sqrt(xp.sum({0} * {0})) * xp.sqrt(xp.sum({1} * {1})))",
    helpers=(safe_div,),
    flat=lambda seg, x, y: safe_div(seg.xp, seg.sum(x * y, 0, 1),
                                    _flat_l2(seg, x, 0) * _flat_l2(seg, y, 1)),
)
_add(
    10, "clip_by_global_norm",
    2,
    _clip_by_norm,
    "a * min(1, |b| / ||a||)",
    shape=lambda x, c: x,
    kinds=("any", "scalar"),
    code="clip_scale(xp, {0}, {1}, xp.sqrt(xp.sum({0} * {0})))",
    over_leaf=True,
    helpers=(safe_div, clip_scale),
    flat=lambda seg, x, c: clip_scale(seg.xp, x, c, _flat_l2(seg, x, 0)),
    scalar_last=True,
)
_add(42, "power", 2, lambda xp, b, x: xp.power(b, x), "a^b", code="xp.power({0}, {1})",
     torch="torch.pow(as_tensor(torch, {0}), {1})", helpers=(as_tensor,),
     inplace=((0, "{0}.pow_({1})"),))
_add(
    9, "clip",
    2,
    lambda xp, x, c: xp.clip(x, -xp.abs(c), xp.abs(c)),
    "a clipped to [-|b|, |b|]",
    code="xp.clip({0}, -abs({1}), abs({1}))",
    torch="torch.clip(as_tensor(torch, {0}), -abs({1}), abs({1}))",
    helpers=(as_tensor,),
    inplace=((0, "{0}.clamp_(-abs({1}), abs({1}))"),),
)

# For the seed optimizers: step logic, reductions, factored moments.
_add(38, "mod", 2, lambda xp, a, b: xp.mod(a, b), "a mod b (floored)", code="{0} % {1}",
     inplace=((0, "{0}.remainder_({1})"),))
_add(26, "gt", 2, lambda xp, a, b: (a > b) * 1.0, "1 where a > b, else 0", code="({0} > {1}) * 1.0")
_add(24, "ge", 2, lambda xp, a, b: (a >= b) * 1.0, "1 where a >= b, else 0",
     code="({0} >= {1}) * 1.0")
_add(34, "lt", 2, lambda xp, a, b: (a < b) * 1.0, "1 where a < b, else 0", code="({0} < {1}) * 1.0")
_add(29, "le", 2, lambda xp, a, b: (a <= b) * 1.0, "1 where a <= b, else 0",
     code="({0} <= {1}) * 1.0")
_add(
    17, "eq",
    2,
    lambda xp, a, b: (a == b) * 1.0,
    "1 where a == b, else 0",
    commutative=True,
    code="({0} == {1}) * 1.0",
)
_add(
    54, "where",
    3,
    lambda xp, c, a, b: xp.where(c != 0, a, b),
    "b where a != 0, else c",
    code="xp.where({0} != 0, {1}, {2})",
    torch="torch.where(as_tensor(torch, {0}) != 0, {1}, {2})",
    helpers=(as_tensor,),
)
_add(36, "mean", 1, lambda xp, x: xp.mean(x), "mean of the leaf", shape=to_scalar, reduces=True,
     code="xp.mean({0})", flat=lambda seg, x: seg.mean(x))
_add(
    44, "rms",
    1,
    lambda xp, x: xp.sqrt(xp.mean(x * x)),
    "root mean square of the leaf",
    shape=to_scalar,
    reduces=True,
    code="xp.sqrt(xp.mean({0} * {0}))",
    flat=lambda seg, x: seg.xp.sqrt(seg.mean(x * x)),
)
_add(
    23, "factor_row",
    1,
    factor_row,
    "Adafactor row statistic (mean over the largest axis)",
    shape=_row_shape,
    reduces=True,
    factored=True,
    code="factor_row(xp, {0})",
    helpers=(factored_dims, without, row_shape, factor_row),
    shape_code="row_shape({0})",
    flat=lambda seg, x: seg.xp.where(seg.factored(0), seg.row_mean(x), x),
)
_add(
    22, "factor_col",
    1,
    factor_col,
    "Adafactor column statistic (mean over the 2nd-largest axis)",
    shape=_col_shape,
    reduces=True,
    factored=True,
    code="factor_col(xp, {0})",
    helpers=(factored_dims, without, col_shape, factor_col),
    shape_code="col_shape({0})",
    flat=lambda seg, x: seg.xp.where(seg.leaf_shaped(0), seg.col_mean(x), seg.mean(x)),
)
_add(
    53, "unfactor",
    3,
    unfactor,
    "a ⊗ b / mean(a), shaped like c",
    shape=_unfactor_shape,
    reduces=True,
    factored=True,
    code="unfactor(xp, {0}, {1}, {2})",
    helpers=(factored_dims, without, unfactor),
    shape_code="{2}",
    flat=lambda seg, r, c, like: seg.xp.where(seg.factored(2), r * c / seg.mean(r), r),
)

# Muon's: matrices apart from the rest.
_add(55, "is_matrix", 1, is_matrix, "1 where x is a matrix (rank 2), else 0", shape=to_scalar,
     reduces=True, matrix=True, code="is_matrix(xp, {0})", helpers=(is_matrix,),
     flat=lambda seg, x: seg.xp.where(seg.matrix(0), 1.0, 0.0))
_add(56, "fan_in", 1, fan_in, "a matrix's first dimension (1 for any other value)",
     shape=to_scalar, reduces=True, matrix=True, code="fan_in(xp, {0})", helpers=(fan_in,),
     flat=lambda seg, x: seg.fan_in(0))
_add(57, "fan_out", 1, fan_out, "a matrix's second dimension (1 for any other value)",
     shape=to_scalar, reduces=True, matrix=True, code="fan_out(xp, {0})", helpers=(fan_out,),
     flat=lambda seg, x: seg.fan_out(0))
_add(58, "newton_schulz", 1, newton_schulz,
     "Muon's orthogonalization of a matrix (any other value unchanged)", over_leaf=True,
     matrix=True, code="newton_schulz(xp, {0})", helpers=(newton_schulz,),
     flat=lambda seg, x: seg.per_matrix(x, 0, newton_schulz))


def get(name: str) -> Op:
    """The op called ``name``; a KeyError names the unknown function."""
    try:
        return OPS[name]
    except KeyError:
        raise KeyError(f"unknown function {name!r}") from None
