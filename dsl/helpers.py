"""Functions of the DSL longer than a line, which exported modules carry as they are.

Each is plain Python over an array namespace ``xp`` (``numpy``, ``jax.numpy``, or
``torch`` in exported PyTorch code) and imports nothing: :mod:`dsl.ops` uses them
as the functions' meaning, and an :class:`~dsl.ops.Op` lists the ones its exported
code calls (``Op.helpers``), whose source :mod:`dsl.export` copies into the
generated module. So an export computes what the search trained, by the very same
code, and a helper is written once.

>>> import numpy as np
>>> factored_dims((256, 128)), factored_dims((64, 32)), factored_dims((64, 32), min_dim=8)
((1, 0), None, (1, 0))
>>> factor_row(np, np.ones((256, 128))).shape, factor_col(np, np.ones((256, 128))).shape
((128,), (256,))
>>> o = newton_schulz(np, np.random.default_rng(0).standard_normal((4, 8)))
>>> np.round(np.linalg.svd(o)[1], 1)  # singular values near 1 (Muon's iteration)
array([1.1, 1. , 0.9, 0.8])
>>> x = np.ones((4, 8))
>>> float(is_matrix(np, x)), float(fan_in(np, x)), float(fan_out(np, 2.0))
(1.0, 4.0, 1.0)
"""

from typing import Any

#: Adafactor's threshold: a leaf is factored when its second-largest dimension is
#: at least this (optax.adafactor's ``min_dim_size_to_factor`` default).
FACTOR_MIN_DIM = 128
#: Muon's Newton-Schulz coefficients (a, b, c) of X <- a X + (b A + c A^2) X, A = X X^T
#: (Jordan et al. 2024; the defaults of optax.contrib.muon and torch.optim.Muon).
NS_COEFFS = (3.4445, -4.775, 2.0315)
#: Muon's number of Newton-Schulz steps.
NS_STEPS = 5
#: Added to the Frobenius norm that Muon's iteration first divides by.
NS_EPS = 1e-8


def safe_div(xp: Any, a: Any, b: Any) -> Any:
    """a / b, with 0 where b == 0 (a zero norm gives no NaN)."""
    nonzero = b != 0
    return xp.where(nonzero, a / xp.where(nonzero, b, 1.0), 0.0)


def clip_scale(xp: Any, x: Any, c: Any, n: Any) -> Any:
    """x * min(1, |c| / n) for n the norm of x; x itself when n is 0."""
    return x * xp.clip(safe_div(xp, abs(c), n) + (n == 0), None, 1.0)


def interp(xp: Any, x: Any, y: Any, a: Any) -> Any:
    """(1 - a) * x + a * y; on PyTorch tensors of one shape, as hand-written PyTorch
    computes it: ``(y * a).add_(x, alpha=1 - a)``, a fused multiply-add."""
    if (xp.__name__ == "torch" and isinstance(x, xp.Tensor) and isinstance(y, xp.Tensor)
            and x.shape == y.shape and (not isinstance(a, xp.Tensor) or a.ndim == 0)):
        if y.dtype == xp.promote_types(x.dtype, y.dtype):
            return xp.mul(y, a).add_(x, alpha=1.0 - a)
        return xp.mul(x, 1.0 - a).add_(y, alpha=a)
    return (1.0 - a) * x + a * y


def factored_dims(shape: Any, min_dim: int = FACTOR_MIN_DIM) -> tuple[int, int] | None:
    """(second-largest axis, largest axis) when Adafactor factors a tensor of
    ``shape``, else None: it has rank >= 2 and its second-largest dimension is at
    least ``min_dim`` (ties broken by axis order, as optax's ``np.argsort`` does)."""
    shape = tuple(shape)
    order = sorted(range(len(shape)), key=shape.__getitem__)
    if len(shape) < 2 or shape[order[-2]] < min_dim:
        return None
    return order[-2], order[-1]


def without(shape: Any, axis: int) -> tuple[int, ...]:
    """``shape`` without ``axis``."""
    return tuple(d for i, d in enumerate(shape) if i != axis)


def row_shape(shape: Any, min_dim: int = FACTOR_MIN_DIM) -> tuple[int, ...]:
    """The shape of ``factor_row`` of a tensor of ``shape``."""
    dims = factored_dims(shape, min_dim)
    return tuple(shape) if dims is None else without(shape, dims[1])


def col_shape(shape: Any, min_dim: int = FACTOR_MIN_DIM) -> tuple[int, ...]:
    """The shape of ``factor_col`` of a tensor of ``shape``."""
    dims = factored_dims(shape, min_dim)
    return () if dims is None else without(shape, dims[0])


def factor_row(xp: Any, x: Any, min_dim: int = FACTOR_MIN_DIM) -> Any:
    """Adafactor's row statistic: the mean over the largest axis (x if not factored)."""
    dims = factored_dims(getattr(x, "shape", ()), min_dim)
    return x if dims is None else xp.mean(x, axis=dims[1])


def factor_col(xp: Any, x: Any, min_dim: int = FACTOR_MIN_DIM) -> Any:
    """Adafactor's column statistic: the mean over the second-largest axis (the
    mean of x if not factored)."""
    dims = factored_dims(getattr(x, "shape", ()), min_dim)
    return xp.mean(x) if dims is None else xp.mean(x, axis=dims[0])


def unfactor(xp: Any, r: Any, c: Any, like: Any, min_dim: int = FACTOR_MIN_DIM) -> Any:
    """The second moment of a tensor shaped like ``like`` from its statistics:
    r ⊗ c / mean(r) (r itself if not factored)."""
    shape = tuple(getattr(like, "shape", ()))
    dims = factored_dims(shape, min_dim)
    if dims is None:
        return xp.broadcast_to(r, shape)
    second, largest = dims
    r = xp.broadcast_to(r, without(shape, largest))
    c = xp.broadcast_to(c, without(shape, second))
    r_full = r[(slice(None),) * largest + (None,)]
    return r_full * c[(slice(None),) * second + (None,)] / xp.mean(r)


def is_matrix(xp: Any, x: Any) -> Any:
    """1.0 where x is a matrix (rank 2), else 0.0: a 0-d array of the namespace."""
    return xp.asarray(1.0 if len(getattr(x, "shape", ())) == 2 else 0.0)


def fan_in(xp: Any, x: Any) -> Any:
    """A matrix's first dimension (its inputs, for y = x W), 1.0 for any other value."""
    shape = tuple(getattr(x, "shape", ()))
    return xp.asarray(float(shape[0]) if len(shape) == 2 else 1.0)


def fan_out(xp: Any, x: Any) -> Any:
    """A matrix's second dimension (its outputs, for y = x W), 1.0 for any other value."""
    shape = tuple(getattr(x, "shape", ()))
    return xp.asarray(float(shape[1]) if len(shape) == 2 else 1.0)


def newton_schulz(xp: Any, x: Any) -> Any:
    """Muon's orthogonalization of a matrix (as optax.contrib.muon computes it):
    x / (||x||_F + NS_EPS), transposed to be at least as wide as tall, then NS_STEPS
    steps of X <- a X + (b A + c A A) X with A = X X^T, (a, b, c) = NS_COEFFS, and
    transposed back: about U V^T for x = U S V^T. Any value not a matrix is returned
    as it is. On PyTorch tensors each step is two ``addmm`` calls."""
    if len(getattr(x, "shape", ())) != 2:
        return x
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    x = x / (xp.sqrt(xp.sum(x * x)) + NS_EPS)
    a, b, c = NS_COEFFS
    for _ in range(NS_STEPS):
        s = x @ x.T
        if xp.__name__ == "torch":  # fused as hand-written PyTorch does (one rounding less)
            x = xp.addmm(x, xp.addmm(s, s, s, beta=b, alpha=c), x, beta=a)
        else:
            x = a * x + (b * s + c * s @ s) @ x
    return x.T if tall else x


def as_tensor(torch: Any, x: Any) -> Any:
    """``x`` for a PyTorch function that takes no numbers: a number becomes a 0-d
    float64 tensor, which keeps every digit and changes no other tensor's dtype."""
    return x if isinstance(x, torch.Tensor) else torch.tensor(x, dtype=torch.float64)


def sign_scale(torch: Any, x: Any) -> float:
    """A number that takes every normal number of x's dtype past 1: the product clipped
    to [-1, 1] is the sign of x, NaN kept (torch.sign of NaN is 0, NumPy's and JAX's
    NaN). float16 and bfloat16 tensors are multiplied in float32."""
    return 1.7976931348623157e308 if x.dtype == torch.float64 else 3.4028234663852886e38
