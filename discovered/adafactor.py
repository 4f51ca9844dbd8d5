"""Adafactor: an optimizer exported from library program 'adafactor' by optsearch.

Update rule for each parameter tensor w with gradient g at step t = 1, 2, ...
(lr is the learning rate; the parameter moves by w <- w - update)::

    def train(w, g, lr, t, v_row, v_col):
      g2 = square(g)
      g2 = g2 + 1e-30
      exponent = negative(0.8)
      tp = power(t, exponent)
      beta = invert(tp)
      row = factor_row(g2)
      col = factor_col(g2)
      v_row = interp(row, v_row, beta)
      v_col = interp(col, v_col, beta)
      v = unfactor(v_row, v_col, g)
      root = sqrt(v)
      step = g / root
      step_rms = rms(step)
      ratio = step_rms / 1.0
      clip_denom = max(ratio, 1.0)
      step = step / clip_denom
      w_rms = rms(w)
      scale = max(w_rms, 0.001)
      step = step * scale
      update = step * lr
      return update, v_row, v_col

Hyperparameters (defaults): epsilon = 1e-30, decay_rate = 0.8, clipping_threshold = 1.0,
min_scale = 0.001.

Learning rate: lr multiplies the update as the rule above computes it, its constants
included; in a search lr is the task's warm-up and cosine schedule times the multiplier
calibration chose (a calibrated default is a peak learning rate). No calibration is
known for this program: the 1e-3 of the examples is a placeholder to tune (run_search.py
funnel calibrates a run's finalists; export --lr sets the default).

Example (optax)::

    import jax.numpy as jnp, optax
    opt = adafactor(learning_rate=1e-3)
    params = {"w": jnp.ones(3)}
    state = opt.init(params)
    updates, state = opt.update({"w": jnp.ones(3)}, state, params)
    params = optax.apply_updates(params, updates)

Example (PyTorch)::

    from discovered.adafactor import Adafactor
    opt = Adafactor(model.parameters(), lr=1e-3)
"""

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

#: The program this module was generated from (optsearch's DSL), for provenance.
SOURCE = """\
def train(w, g, lr, t, v_row, v_col):
  g2 = square(g)
  g2 = g2 + 1e-30
  exponent = negative(0.8)
  tp = power(t, exponent)
  beta = invert(tp)
  row = factor_row(g2)
  col = factor_col(g2)
  v_row = interp(row, v_row, beta)
  v_col = interp(col, v_col, beta)
  v = unfactor(v_row, v_col, g)
  root = sqrt(v)
  step = g / root
  step_rms = rms(step)
  ratio = step_rms / 1.0
  clip_denom = max(ratio, 1.0)
  step = step / clip_denom
  w_rms = rms(w)
  scale = max(w_rms, 0.001)
  step = step * scale
  update = step * lr
  return update, v_row, v_col
"""


def interp(xp: Any, x: Any, y: Any, a: Any) -> Any:
    """(1 - a) * x + a * y; on PyTorch tensors of one shape, as hand-written PyTorch
    computes it: ``(y * a).add_(x, alpha=1 - a)``, a fused multiply-add."""
    if (xp.__name__ == "torch" and isinstance(x, xp.Tensor) and isinstance(y, xp.Tensor)
            and x.shape == y.shape and (not isinstance(a, xp.Tensor) or a.ndim == 0)):
        if y.dtype == xp.promote_types(x.dtype, y.dtype):
            return xp.mul(y, a).add_(x, alpha=1.0 - a)
        return xp.mul(x, 1.0 - a).add_(y, alpha=a)
    return (1.0 - a) * x + a * y


#: Adafactor's threshold: a leaf is factored when its second-largest dimension is
#: at least this (optax.adafactor's ``min_dim_size_to_factor`` default).
FACTOR_MIN_DIM = 128


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


def as_tensor(torch: Any, x: Any) -> Any:
    """``x`` for a PyTorch function that takes no numbers: a number becomes a 0-d
    float64 tensor, which keeps every digit and changes no other tensor's dtype."""
    return x if isinstance(x, torch.Tensor) else torch.tensor(x, dtype=torch.float64)


def adafactor_rule(
    xp,
    w,
    g,
    lr,
    t,
    v_row,
    v_col,
    *,
    epsilon: float = 1e-30,
    decay_rate: float = 0.8,
    clipping_threshold: float = 1.0,
    min_scale: float = 0.001,
):
    """One step on one tensor: (direction, v_row, v_col).

    ``xp`` is ``jax.numpy`` or ``numpy`` (:func:`adafactor_rule_torch` is for PyTorch).
    The weight decay and the learning rate are applied by the callers.
    """
    g2 = g * g
    g2 = g2 + epsilon
    exponent = -decay_rate
    tp = xp.power(t, exponent)
    beta = 1.0 - tp
    row = factor_row(xp, g2)
    col = factor_col(xp, g2)
    v_row = interp(xp, row, v_row, beta)
    v_col = interp(xp, col, v_col, beta)
    v = unfactor(xp, v_row, v_col, g)
    root = xp.sqrt(xp.abs(v))
    step = g / root
    step_rms = xp.sqrt(xp.mean(step * step))
    ratio = step_rms / clipping_threshold
    clip_denom = xp.maximum(ratio, 1.0)
    step = step / clip_denom
    w_rms = xp.sqrt(xp.mean(w * w))
    scale = xp.maximum(w_rms, min_scale)
    step = step * scale
    return step, v_row, v_col


def adafactor_rule_torch(
    w,
    g,
    lr,
    t,
    v_row,
    v_col,
    *,
    epsilon: float = 1e-30,
    decay_rate: float = 0.8,
    clipping_threshold: float = 1.0,
    min_scale: float = 0.001,
):
    """:func:`adafactor_rule` on PyTorch tensors, overwriting the values it no longer
    needs (the states' own tensors included) instead of making new ones; w and g
    are never written."""
    import torch

    g2 = g * g
    g2 = g2.add_(epsilon)
    exponent = -decay_rate
    tp = torch.pow(as_tensor(torch, t), exponent)
    beta = 1.0 - tp
    row = factor_row(torch, g2)
    col = factor_col(torch, g2)
    v_row = v_row.mul_(beta).add_(row, alpha=1.0 - beta)
    v_col = v_col.mul_(beta).add_(col, alpha=1.0 - beta)
    v = unfactor(torch, v_row, v_col, g)
    root = torch.sqrt(torch.abs(v))
    step = g / root
    step_rms = torch.sqrt(torch.mean(step * step))
    ratio = step_rms.div_(clipping_threshold)
    clip_denom = torch.maximum(ratio, as_tensor(torch, 1.0), out=ratio)
    step = step.div_(clip_denom)
    w_rms = torch.sqrt(torch.mean(w * w))
    scale = torch.maximum(w_rms, as_tensor(torch, min_scale), out=w_rms)
    step = step.mul_(scale)
    return step, v_row, v_col


class ScaleByAdafactorState(NamedTuple):
    """State of :func:`scale_by_adafactor`."""

    count: jax.Array
    v_row: optax.Updates
    v_col: optax.Updates


def scale_by_adafactor(
    epsilon: float = 1e-30,
    decay_rate: float = 0.8,
    clipping_threshold: float = 1.0,
    min_scale: float = 0.001,
) -> optax.GradientTransformationExtraArgs:
    """The Adafactor direction as an optax transform (states kept in float32)."""

    def init_fn(params: Any) -> ScaleByAdafactorState:
        return ScaleByAdafactorState(
            count=jnp.zeros([], jnp.int32),
            v_row=jax.tree.map(lambda w: jnp.zeros(row_shape(jnp.shape(w)), jnp.float32), params),
            v_col=jax.tree.map(lambda w: jnp.zeros(col_shape(jnp.shape(w)), jnp.float32), params),
        )

    def update_fn(
        updates: Any, state: Any, params: Any = None, **extra_args: Any
    ) -> tuple[Any, Any]:
        del extra_args  # optax's convention: a chain passes them to every member
        if params is None:
            params = updates
        t = (state.count + 1).astype(jnp.float32)
        lr = jnp.asarray(1.0, jnp.float32)
        leaves, treedef = jax.tree.flatten(updates)
        weights = treedef.flatten_up_to(params)
        v_row_leaves = treedef.flatten_up_to(state.v_row)
        v_col_leaves = treedef.flatten_up_to(state.v_col)
        outs = [
            adafactor_rule(
                jnp,
                w,
                g,
                lr,
                t,
                v_row_leaves[i],
                v_col_leaves[i],
                epsilon=epsilon,
                decay_rate=decay_rate,
                clipping_threshold=clipping_threshold,
                min_scale=min_scale,
            )
            for i, (w, g) in enumerate(zip(weights, leaves, strict=True))
        ]
        outs = [o if isinstance(o, tuple) else (o,) for o in outs]
        directions = [jnp.broadcast_to(o[0], jnp.shape(g)).astype(jnp.asarray(g).dtype)
                      for o, g in zip(outs, leaves, strict=True)]
        new_v_row = [jnp.broadcast_to(o[1], jnp.shape(s)).astype(jnp.float32)
                  for o, s in zip(outs, v_row_leaves, strict=True)]
        new_v_col = [jnp.broadcast_to(o[2], jnp.shape(s)).astype(jnp.float32)
                  for o, s in zip(outs, v_col_leaves, strict=True)]
        return jax.tree.unflatten(treedef, directions), ScaleByAdafactorState(
            count=optax.safe_increment(state.count),
            v_row=jax.tree.unflatten(treedef, new_v_row),
            v_col=jax.tree.unflatten(treedef, new_v_col),
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def adafactor(
    learning_rate: optax.ScalarOrSchedule,
    epsilon: float = 1e-30,
    decay_rate: float = 0.8,
    clipping_threshold: float = 1.0,
    min_scale: float = 0.001,
) -> optax.GradientTransformationExtraArgs:
    """Adafactor as an optax optimizer (see the module docstring for the rule)."""
    return optax.chain(
        scale_by_adafactor(
            epsilon=epsilon,
            decay_rate=decay_rate,
            clipping_threshold=clipping_threshold,
            min_scale=min_scale,
        ),
        optax.scale_by_learning_rate(learning_rate),
    )


@functools.cache
def _torch_optimizer() -> type:
    import torch

    class Adafactor(torch.optim.Optimizer):
        """Adafactor for PyTorch (see the module docstring for the rule)."""

        def __init__(
            self,
            params: Any,
            lr: float = 1e-3,
            epsilon: float = 1e-30,
            decay_rate: float = 0.8,
            clipping_threshold: float = 1.0,
            min_scale: float = 0.001,
        ) -> None:
            if not lr >= 0.0:
                raise ValueError(f"invalid learning rate: {lr}")
            if not math.isfinite(epsilon):
                raise ValueError(f"invalid epsilon value: {epsilon} (not finite)")
            if not math.isfinite(decay_rate):
                raise ValueError(f"invalid decay_rate value: {decay_rate} (not finite)")
            if not math.isfinite(clipping_threshold):
                raise ValueError(
                    "invalid clipping_threshold value: "
                    f"{clipping_threshold} (not finite)")
            if not math.isfinite(min_scale):
                raise ValueError(f"invalid min_scale value: {min_scale} (not finite)")
            defaults = dict(
                lr=lr,
                epsilon=epsilon,
                decay_rate=decay_rate,
                clipping_threshold=clipping_threshold,
                min_scale=min_scale,
            )
            super().__init__(params, defaults)

        @torch.no_grad()
        def step(self, closure: Any = None) -> Any:
            loss = None
            if closure is not None:
                with torch.enable_grad():
                    loss = closure()
            for group in self.param_groups:
                lr = group["lr"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    state = self.state[p]
                    if not state:
                        # a tensor, as torch.optim keeps it (torch.compile then does
                        # not recompile as it grows)
                        state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                        # float32 (float64 for float64 parameters)
                        dtype = torch.promote_types(p.dtype, torch.float32)
                        state["v_row"] = p.new_zeros(row_shape(p.shape), dtype=dtype)
                        state["v_col"] = p.new_zeros(col_shape(p.shape), dtype=dtype)
                    state["step"] += 1
                    t = state["step"]
                    out = adafactor_rule_torch(
                        p,
                        p.grad,
                        1.0,
                        t,
                        state["v_row"], state["v_col"],
                        epsilon=group['epsilon'],
                        decay_rate=group['decay_rate'],
                        clipping_threshold=group['clipping_threshold'],
                        min_scale=group['min_scale'],
                    )
                    direction, state["v_row"], state["v_col"] = out
                    p.sub_(direction.to(p.dtype), alpha=lr)
            return loss

        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            """As torch.optim does, but each state keeps the dtype it was saved in
            (torch.optim casts states to their parameter's dtype: float32 states of
            float16 parameters would lose their precision)."""
            saved = {k: dict(v) for k, v in state_dict["state"].items()}
            super().load_state_dict(state_dict)
            ids = [i for g in state_dict["param_groups"] for i in g["params"]]
            params = [p for g in self.param_groups for p in g["params"]]
            for i, p in zip(ids, params, strict=True):
                for key, value in saved.get(i, {}).items():
                    if torch.is_tensor(value):
                        self.state[p][key] = value.to(device=p.device, copy=True)

    Adafactor.__module__ = __name__
    return Adafactor


def __getattr__(name: str) -> Any:
    if name == "Adafactor":  # built on first use: importing this module needs no torch
        return _torch_optimizer()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

