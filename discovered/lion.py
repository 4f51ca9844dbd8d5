"""Lion: an optimizer exported from library program 'lion' by optsearch.

Update rule for each parameter tensor w with gradient g at step t = 1, 2, ...
(lr is the learning rate; the parameter moves by w <- w - update)::

    def train(w, g, lr, t, m):
      update = interp(g, m, 0.9)
      update = sign(update)
      m = interp(g, m, 0.99)
      decay = w * 0.001
      update = update + decay
      update = update * lr
      return update, m

Hyperparameters (defaults): b1 = 0.9, b2 = 0.99, weight_decay = 0.001.

Learning rate: lr multiplies the update as the rule above computes it, its constants
included; in a search lr is the task's warm-up and cosine schedule times the multiplier
calibration chose (a calibrated default is a peak learning rate). No calibration is
known for this program: the 1e-3 of the examples is a placeholder to tune (run_search.py
funnel calibrates a run's finalists; export --lr sets the default).

Example (optax)::

    import jax.numpy as jnp, optax
    opt = lion(learning_rate=1e-3)
    params = {"w": jnp.ones(3)}
    state = opt.init(params)
    updates, state = opt.update({"w": jnp.ones(3)}, state, params)
    params = optax.apply_updates(params, updates)

Example (PyTorch)::

    from discovered.lion import Lion
    opt = Lion(model.parameters(), lr=1e-3)
"""

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

#: The program this module was generated from (optsearch's DSL), for provenance.
SOURCE = """\
def train(w, g, lr, t, m):
  update = interp(g, m, 0.9)
  update = sign(update)
  m = interp(g, m, 0.99)
  decay = w * 0.001
  update = update + decay
  update = update * lr
  return update, m
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


def sign_scale(torch: Any, x: Any) -> float:
    """A number that takes every normal number of x's dtype past 1: the product clipped
    to [-1, 1] is the sign of x, NaN kept (torch.sign of NaN is 0, NumPy's and JAX's
    NaN). float16 and bfloat16 tensors are multiplied in float32."""
    return 1.7976931348623157e308 if x.dtype == torch.float64 else 3.4028234663852886e38


def lion_rule(xp, w, g, lr, t, m, *, b1: float = 0.9, b2: float = 0.99):
    """One step on one tensor: (direction, m).

    ``xp`` is ``jax.numpy`` or ``numpy`` (:func:`lion_rule_torch` is for PyTorch).
    The weight decay and the learning rate are applied by the callers.
    """
    update = interp(xp, g, m, b1)
    update = xp.sign(update)
    m = interp(xp, g, m, b2)
    return update, m


def lion_rule_torch(w, g, lr, t, m, *, b1: float = 0.9, b2: float = 0.99):
    """:func:`lion_rule` on PyTorch tensors, overwriting the values it no longer
    needs (the states' own tensors included) instead of making new ones; w and g
    are never written."""
    import torch

    update = interp(torch, g, m, b1)
    update = update.mul_(sign_scale(torch, update)).clamp_(-1.0, 1.0)
    m = m.mul_(b2).add_(g, alpha=1.0 - b2)
    return update, m


class ScaleByLionState(NamedTuple):
    """State of :func:`scale_by_lion`."""

    count: jax.Array
    m: optax.Updates


def scale_by_lion(b1: float = 0.9, b2: float = 0.99) -> optax.GradientTransformationExtraArgs:
    """The Lion direction as an optax transform (states kept in float32)."""

    def init_fn(params: Any) -> ScaleByLionState:
        return ScaleByLionState(
            count=jnp.zeros([], jnp.int32),
            m=jax.tree.map(lambda w: jnp.zeros(jnp.shape(w), jnp.float32), params),
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
        m_leaves = treedef.flatten_up_to(state.m)
        outs = [
            lion_rule(jnp, w, g, lr, t, m_leaves[i], b1=b1, b2=b2)
            for i, (w, g) in enumerate(zip(weights, leaves, strict=True))
        ]
        outs = [o if isinstance(o, tuple) else (o,) for o in outs]
        directions = [jnp.broadcast_to(o[0], jnp.shape(g)).astype(jnp.asarray(g).dtype)
                      for o, g in zip(outs, leaves, strict=True)]
        new_m = [jnp.broadcast_to(o[1], jnp.shape(s)).astype(jnp.float32)
                  for o, s in zip(outs, m_leaves, strict=True)]
        return jax.tree.unflatten(treedef, directions), ScaleByLionState(
            count=optax.safe_increment(state.count),
            m=jax.tree.unflatten(treedef, new_m),
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def lion(
    learning_rate: optax.ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.99,
    weight_decay: float = 0.001,
) -> optax.GradientTransformationExtraArgs:
    """Lion as an optax optimizer (see the module docstring for the rule)."""
    return optax.chain(
        scale_by_lion(b1=b1, b2=b2),
        optax.add_decayed_weights(weight_decay),
        optax.scale_by_learning_rate(learning_rate),
    )


@functools.cache
def _torch_optimizer() -> type:
    import torch

    class Lion(torch.optim.Optimizer):
        """Lion for PyTorch (see the module docstring for the rule)."""

        def __init__(
            self,
            params: Any,
            lr: float = 1e-3,
            b1: float = 0.9,
            b2: float = 0.99,
            weight_decay: float = 0.001,
        ) -> None:
            if not lr >= 0.0:
                raise ValueError(f"invalid learning rate: {lr}")
            if not 0.0 <= b1 <= 1.0:
                raise ValueError(f"invalid b1 value: {b1} (from 0 to 1)")
            if not 0.0 <= b2 <= 1.0:
                raise ValueError(f"invalid b2 value: {b2} (from 0 to 1)")
            if not weight_decay >= 0.0:
                raise ValueError(f"invalid weight_decay value: {weight_decay}")
            defaults = dict(lr=lr, b1=b1, b2=b2, weight_decay=weight_decay)
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
                        state["m"] = torch.zeros_like(p, dtype=dtype)
                    state["step"] += 1
                    t = state["step"]
                    out = lion_rule_torch(
                        p,
                        p.grad,
                        1.0,
                        t,
                        state["m"],
                        b1=group['b1'],
                        b2=group['b2'],
                    )
                    direction, state["m"] = out
                    if group["weight_decay"]:
                        direction = direction.add_(p, alpha=group["weight_decay"])
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

    Lion.__module__ = __name__
    return Lion


def __getattr__(name: str) -> Any:
    if name == "Lion":  # built on first use: importing this module needs no torch
        return _torch_optimizer()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

