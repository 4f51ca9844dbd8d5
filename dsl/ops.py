"""The function set: every function a program may call, each defined once.

One :class:`Op` per function holds its name, arity, argument kinds, shape rule,
array implementation and printed form. Printing, abstract execution, the NumPy
and JAX interpreters and code generation all read this table, so adding a
function is one edit here.

The implementation of each op is written once against an array namespace
``xp`` (``numpy`` or ``jax.numpy``), so the NumPy semantics (fingerprints) and
the JAX semantics (training) cannot drift apart.

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
from typing import Any, Literal

import numpy as np

Shape = tuple[int, ...]
ArgKind = Literal["any", "scalar"]

#: Adafactor's threshold: a leaf is factored when its second-largest dimension is
#: at least this (optax.adafactor's ``min_dim_size_to_factor`` default).
FACTOR_MIN_DIM = 128

#: Named constants a program may use as arguments.
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "eps": 1e-8}


class ShapeError(Exception):
    """A shape rule refused its arguments; abstract execution adds the statement."""


@dataclass(frozen=True)
class Op:
    """One function of the DSL.

    ``fn(xp, *args)`` computes it with the array namespace ``xp``; ``shape`` maps
    argument shapes to the result shape (``None`` is an unknown shape, which
    broadcasts like a scalar) or raises :class:`ShapeError`. ``infix`` is the
    operator printed between two arguments (``+``), or ``None`` for call syntax.
    ``factored`` ops (Adafactor's) take a keyword ``min_dim``, the factoring
    threshold, in both ``fn`` and ``shape``; see :func:`factored_dims`.
    ``code`` is the expression exported code uses, over an array namespace
    ``xp`` with NumPy's names (``{0}`` is the first argument); None where export
    does not support the function yet. ``torch`` replaces ``code`` in exported
    PyTorch code where PyTorch's names differ (its ``maximum`` takes no
    numbers). ``inplace`` holds PyTorch forms that overwrite one argument with
    the result, as ``(position, template)`` pairs: the exported PyTorch step uses
    them when that argument's value is not needed afterwards, so it makes no new
    tensor. They round exactly as ``code`` does, except ``interp``'s, which
    fuse a multiply and an add as hand-written PyTorch does (``add_(y, alpha=a)``).
    ``opcode`` is the function's stable code in structural hashes (see ``_add``).
    ``over_leaf`` marks a leaf-shaped result that depends on the whole leaf
    (``norm``, ``clip_by_global_norm``); see :attr:`leaf_reducing`.
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
    opcode: int = -1
    over_leaf: bool = False

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


def factored_dims(shape: Shape, min_dim: int = FACTOR_MIN_DIM) -> tuple[int, int] | None:
    """(second-largest axis, largest axis) when Adafactor factors ``shape``, else None.

    A shape is factored when it has rank >= 2 and its second-largest dimension is
    at least ``min_dim``; ties are broken as ``np.argsort`` does, like optax.
    Fingerprints use a small ``min_dim`` so a tiny matrix exercises the factored
    path; training always uses :data:`FACTOR_MIN_DIM`.
    """
    if len(shape) < 2:
        return None
    order = np.argsort(shape)
    if shape[order[-2]] < min_dim:
        return None
    return int(order[-2]), int(order[-1])


def _drop(shape: Shape, axis: int) -> Shape:
    return shape[:axis] + shape[axis + 1 :]


def _row_shape(x: Shape | None, *, min_dim: int) -> Shape | None:
    if x is None:
        return None
    dims = factored_dims(x, min_dim)
    return x if dims is None else _drop(x, dims[1])


def _col_shape(x: Shape | None, *, min_dim: int) -> Shape | None:
    if x is None:
        return None
    dims = factored_dims(x, min_dim)
    return () if dims is None else _drop(x, dims[0])


def _unfactor_shape(
    r: Shape | None, c: Shape | None, like: Shape | None, *, min_dim: int
) -> Shape | None:
    if like is None:
        return None
    want = (_row_shape(like, min_dim=min_dim), _col_shape(like, min_dim=min_dim))
    for name, got, expected in (("row", r, want[0]), ("column", c, want[1])):
        if got is not None and got != expected:
            raise ShapeError(
                f"the {name} statistic has shape {got}, but a leaf of shape {like} needs {expected}"
            )
    return like


# --- implementations that need more than one line --------------------------------


def safe_div(xp: Any, a: Any, b: Any) -> Any:
    """a / b, with 0 where b == 0 (a zero norm gives no NaN)."""
    nonzero = b != 0
    return xp.where(nonzero, a / xp.where(nonzero, b, 1.0), 0.0)


def _l2(xp: Any, x: Any) -> Any:
    return xp.sqrt(xp.sum(x * x))


def _factor_row(xp: Any, x: Any, *, min_dim: int) -> Any:
    dims = factored_dims(np.shape(x), min_dim)
    return x if dims is None else xp.mean(x, axis=dims[1])


def _factor_col(xp: Any, x: Any, *, min_dim: int) -> Any:
    dims = factored_dims(np.shape(x), min_dim)
    return xp.mean(x) if dims is None else xp.mean(x, axis=dims[0])


def _unfactor(xp: Any, r: Any, c: Any, like: Any, *, min_dim: int) -> Any:
    dims = factored_dims(np.shape(like), min_dim)
    if dims is None:
        return xp.broadcast_to(r, np.shape(like))
    second, largest = dims
    r = xp.broadcast_to(r, _drop(np.shape(like), largest))
    c = xp.broadcast_to(c, _drop(np.shape(like), second))
    return xp.expand_dims(r, largest) * xp.expand_dims(c, second) / xp.mean(r)


def clip_scale(xp: Any, x: Any, c: Any, n: Any) -> Any:
    """x * min(1, |c| / n) for n the norm of x; x itself when n is 0."""
    return x * xp.clip(safe_div(xp, abs(c), n) + (n == 0), None, 1.0)


def _clip_by_norm(xp: Any, x: Any, c: Any) -> Any:
    return clip_scale(xp, x, c, _l2(xp, x))


# --- the table -------------------------------------------------------------------

OPS: dict[str, Op] = {}


def _add(opcode: int, name: str, arity: int, fn: Callable[..., Any], doc: str,
         **kw: Any) -> None:
    """Register a function; ``opcode`` is its code in structural hashes, given once and
    never changed (a new function takes the next unused code: adding one leaves every
    program's hash, and so a resumed run's cache, as it was)."""
    kw.setdefault("shape", elementwise)
    taken = {op.opcode: op.name for op in OPS.values()}
    if opcode in taken or name in OPS:
        raise ValueError(f"function {name!r}: opcode {opcode} or the name is taken "
                         f"(by {taken.get(opcode, name)!r})")
    OPS[name] = Op(name=name, arity=arity, fn=fn, doc=doc, opcode=opcode, **kw)


def _unary(opcode: int, name: str, fn: Callable[..., Any], doc: str, **kw: Any) -> None:
    _add(opcode, name, 1, fn, doc, **kw)


# Primitives.
_add(1, "add", 2, lambda xp, a, b: a + b, "a + b", infix="+", commutative=True, code="{0} + {1}",
     inplace=((0, "{0}.add_({1})"),))
_add(50, "sub", 2, lambda xp, a, b: a - b, "a - b", infix="-", code="{0} - {1}",
     inplace=((0, "{0}.sub_({1})"), (1, "{1}.neg_().add_({0})")))
_add(39, "mul", 2, lambda xp, a, b: a * b, "a * b", infix="*", commutative=True, code="{0} * {1}",
     inplace=((0, "{0}.mul_({1})"),))
_add(15, "div", 2, lambda xp, a, b: a / b, "a / b", infix="/", code="{0} / {1}",
     inplace=((0, "{0}.div_({1})"),))
_add(
    35, "max",
    2,
    lambda xp, a, b: xp.maximum(a, b),
    "elementwise maximum",
    commutative=True,
    code="xp.maximum({0}, {1})",
    torch="torch.maximum(as_tensor(torch, {0}), as_tensor(torch, {1}))",
    inplace=((0, "torch.maximum({0}, as_tensor(torch, {1}), out={0})"),),
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
       inplace=((0, "{0}.mul_(sign_scale(torch, {0})).clamp_(-1.0, 1.0)"),))
_unary(43, "reciprocal", lambda xp, x: 1.0 / x, "1 / x", code="1.0 / {0}",
       inplace=((0, "{0}.reciprocal_()"),))
_unary(41, "norm", lambda xp, x: safe_div(xp, x, _l2(xp, x)), "x / ||x|| over the leaf",
       code="safe_div(xp, {0}, xp.sqrt(xp.sum({0} * {0})))", over_leaf=True)
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
)
_add(
    27, "interp",
    3,
    lambda xp, x, y, a: (1.0 - a) * x + a * y,
    "(1 - a) * x + a * y",
    code="interp(xp, {0}, {1}, {2})",
    inplace=(
        (0, "{0}.mul_(1.0 - {2}).add_({1}, alpha={2})"),
        (1, "{1}.mul_({2}).add_({0}, alpha=1.0 - {2})"),
    ),
)
_add(
    16, "dot",
    2,
    lambda xp, x, y: xp.sum(x * y),
    "sum(x * y) over the leaf",
    shape=to_scalar,
    commutative=True,
    reduces=True,
    code="xp.sum({0} * {1})",
)
_add(
    13, "cosine_sim",
    2,
    lambda xp, x, y: safe_div(xp, xp.sum(x * y), _l2(xp, x) * _l2(xp, y)),
    "dot(x, y) / (||x|| ||y||)",
    shape=to_scalar,
    commutative=True,
    reduces=True,
    code="safe_div(xp, xp.sum({0} * {1}), xp.sqrt(xp.sum({0} * {0})) * xp.sqrt(xp.sum({1} * {1})))",
)
_add(
    10, "clip_by_global_norm",
    2,
    _clip_by_norm,
    "x * min(1, |c| / ||x||)",
    shape=lambda x, c: x,
    kinds=("any", "scalar"),
    code="clip_scale(xp, {0}, {1}, xp.sqrt(xp.sum({0} * {0})))",
    over_leaf=True,
)
_add(42, "power", 2, lambda xp, b, x: xp.power(b, x), "b^x", code="xp.power({0}, {1})",
     torch="torch.pow(as_tensor(torch, {0}), {1})",
     inplace=((0, "{0}.pow_({1})"),))
_add(
    9, "clip",
    2,
    lambda xp, x, c: xp.clip(x, -xp.abs(c), xp.abs(c)),
    "x clipped to [-|c|, |c|]",
    code="xp.clip({0}, -abs({1}), abs({1}))",
    torch="torch.clip(as_tensor(torch, {0}), -abs({1}), abs({1}))",
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
    "a where c != 0, else b",
    code="xp.where({0} != 0, {1}, {2})",
    torch="torch.where(as_tensor(torch, {0}) != 0, {1}, {2})",
)
_add(36, "mean", 1, lambda xp, x: xp.mean(x), "mean of the leaf", shape=to_scalar, reduces=True,
       code="xp.mean({0})")
_add(
    44, "rms",
    1,
    lambda xp, x: xp.sqrt(xp.mean(x * x)),
    "root mean square of the leaf",
    shape=to_scalar,
    reduces=True,
    code="xp.sqrt(xp.mean({0} * {0}))",
)
_add(
    23, "factor_row",
    1,
    _factor_row,
    "Adafactor row statistic (mean over the largest axis)",
    shape=_row_shape,
    reduces=True,
    factored=True,
    code="factor_row(xp, {0})",
)
_add(
    22, "factor_col",
    1,
    _factor_col,
    "Adafactor column statistic (mean over the 2nd-largest axis)",
    shape=_col_shape,
    reduces=True,
    factored=True,
    code="factor_col(xp, {0})",
)
_add(
    53, "unfactor",
    3,
    _unfactor,
    "r ⊗ c / mean(r), shaped like the third argument",
    shape=_unfactor_shape,
    reduces=True,
    factored=True,
    code="unfactor(xp, {0}, {1}, {2})",
)

#: Infix operators accepted and printed between two arguments.
INFIX: dict[str, str] = {op.infix: op.name for op in OPS.values() if op.infix}

#: Names a program may not assign to: functions and named constants.
RESERVED: frozenset[str] = frozenset(OPS) | frozenset(CONSTANTS)


def get(name: str) -> Op:
    """The op called ``name``; a KeyError names the unknown function."""
    try:
        return OPS[name]
    except KeyError:
        raise KeyError(f"unknown function {name!r}") from None
