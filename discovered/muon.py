"""Muon: an optimizer exported from library program 'muon' by optsearch.

Update rule for each parameter tensor w with gradient g at step t = 1, 2, ...
(lr is the learning rate; the parameter moves by w <- w - update)::

    def train(w, g, lr, t, m, v):
      matrix = is_matrix(g)
      b = where(matrix, 0.95, 0.9)
      m = interp(g, m, b)
      g2 = square(g)
      v = interp(g2, v, 0.999)
      p0 = power(b, t)
      c0 = invert(p0)
      g_hat = g / c0
      p1 = p0 * b
      c1 = invert(p1)
      m_hat = m / c1
      m_hat = interp(g_hat, m_hat, b)
      ortho = newton_schulz(m_hat)
      rows = fan_in(g)
      cols = fan_out(g)
      ratio = cols / rows
      ratio = max(ratio, 1.0)
      shape_scale = sqrt(ratio)
      ortho = ortho * shape_scale
      p2 = power(0.999, t)
      c2 = invert(p2)
      v_hat = v / c2
      root = sqrt(v_hat)
      denom = root + 1e-08
      adam = m_hat / denom
      step = where(matrix, ortho, adam)
      update = step * lr
      return update, m, v

Hyperparameters (defaults): beta = 0.95, adam_b1 = 0.9, adam_b2 = 0.999, epsilon =
1e-08.

Learning rate: lr multiplies the update as the rule above computes it, its constants
included; in a search lr is the task's warm-up and cosine schedule times the multiplier
calibration chose (a calibrated default is a peak learning rate). No calibration is
known for this program: the 1e-3 of the examples is a placeholder to tune (run_search.py
funnel calibrates a run's finalists; export --lr sets the default).

Example (optax)::

    import jax.numpy as jnp, optax
    opt = muon(learning_rate=1e-3)
    params = {"w": jnp.ones(3)}
    state = opt.init(params)
    updates, state = opt.update({"w": jnp.ones(3)}, state, params)
    params = optax.apply_updates(params, updates)

Example (PyTorch)::

    from discovered.muon import Muon
    opt = Muon(model.parameters(), lr=1e-3)
"""

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

#: The program this module was generated from (optsearch's DSL), for provenance.
SOURCE = """\
def train(w, g, lr, t, m, v):
  matrix = is_matrix(g)
  b = where(matrix, 0.95, 0.9)
  m = interp(g, m, b)
  g2 = square(g)
  v = interp(g2, v, 0.999)
  p0 = power(b, t)
  c0 = invert(p0)
  g_hat = g / c0
  p1 = p0 * b
  c1 = invert(p1)
  m_hat = m / c1
  m_hat = interp(g_hat, m_hat, b)
  ortho = newton_schulz(m_hat)
  rows = fan_in(g)
  cols = fan_out(g)
  ratio = cols / rows
  ratio = max(ratio, 1.0)
  shape_scale = sqrt(ratio)
  ortho = ortho * shape_scale
  p2 = power(0.999, t)
  c2 = invert(p2)
  v_hat = v / c2
  root = sqrt(v_hat)
  denom = root + 1e-08
  adam = m_hat / denom
  step = where(matrix, ortho, adam)
  update = step * lr
  return update, m, v
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


#: Added to the Frobenius norm that Muon's iteration first divides by.
NS_EPS = 1e-8


#: Muon's number of Newton-Schulz steps.
NS_STEPS = 5


#: Muon's Newton-Schulz coefficients (a, b, c) of X <- a X + (b A + c A^2) X, A = X X^T
#: (Jordan et al. 2024; the defaults of optax.contrib.muon and torch.optim.Muon).
NS_COEFFS = (3.4445, -4.775, 2.0315)


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


def muon_rule(
    xp,
    w,
    g,
    lr,
    t,
    m,
    v,
    *,
    beta: float = 0.95,
    adam_b1: float = 0.9,
    adam_b2: float = 0.999,
    epsilon: float = 1e-08,
):
    """One step on one tensor: (direction, m, v).

    ``xp`` is ``jax.numpy`` or ``numpy`` (:func:`muon_rule_torch` is for PyTorch).
    The weight decay and the learning rate are applied by the callers.
    """
    matrix = is_matrix(xp, g)
    b = xp.where(matrix != 0, beta, adam_b1)
    m = interp(xp, g, m, b)
    g2 = g * g
    v = interp(xp, g2, v, adam_b2)
    p0 = xp.power(b, t)
    c0 = 1.0 - p0
    g_hat = g / c0
    p1 = p0 * b
    c1 = 1.0 - p1
    m_hat = m / c1
    m_hat = interp(xp, g_hat, m_hat, b)
    ortho = newton_schulz(xp, m_hat)
    rows = fan_in(xp, g)
    cols = fan_out(xp, g)
    ratio = cols / rows
    ratio = xp.maximum(ratio, 1.0)
    shape_scale = xp.sqrt(xp.abs(ratio))
    ortho = ortho * shape_scale
    p2 = xp.power(adam_b2, t)
    c2 = 1.0 - p2
    v_hat = v / c2
    root = xp.sqrt(xp.abs(v_hat))
    denom = root + epsilon
    adam = m_hat / denom
    step = xp.where(matrix != 0, ortho, adam)
    return step, m, v


def muon_rule_torch(
    w,
    g,
    lr,
    t,
    m,
    v,
    *,
    beta: float = 0.95,
    adam_b1: float = 0.9,
    adam_b2: float = 0.999,
    epsilon: float = 1e-08,
):
    """:func:`muon_rule` on PyTorch tensors, overwriting the values it no longer
    needs (the states' own tensors included) instead of making new ones; w and g
    are never written."""
    import torch

    matrix = is_matrix(torch, g)
    b = torch.where(as_tensor(torch, matrix) != 0, beta, adam_b1)
    m = m.mul_(b).add_(g, alpha=1.0 - b)
    g2 = g * g
    v = v.mul_(adam_b2).add_(g2, alpha=1.0 - adam_b2)
    p0 = torch.pow(as_tensor(torch, b), t)
    c0 = 1.0 - p0
    g_hat = g / c0
    p1 = p0.mul_(b)
    c1 = p1.neg_().add_(1.0)
    m_hat = m / c1
    m_hat = m_hat.mul_(b).add_(g_hat, alpha=1.0 - b)
    ortho = newton_schulz(torch, m_hat)
    rows = fan_in(torch, g)
    cols = fan_out(torch, g)
    ratio = cols.div_(rows)
    ratio = torch.maximum(ratio, as_tensor(torch, 1.0), out=ratio)
    shape_scale = ratio.abs_().sqrt_()
    ortho = ortho * shape_scale
    p2 = torch.pow(as_tensor(torch, adam_b2), t)
    c2 = 1.0 - p2
    v_hat = v / c2
    root = v_hat.abs_().sqrt_()
    denom = root.add_(epsilon)
    adam = m_hat / denom
    step = torch.where(as_tensor(torch, matrix) != 0, ortho, adam)
    return step, m, v


class ScaleByMuonState(NamedTuple):
    """State of :func:`scale_by_muon`."""

    count: jax.Array
    m: optax.Updates
    v: optax.Updates


def scale_by_muon(
    beta: float = 0.95,
    adam_b1: float = 0.9,
    adam_b2: float = 0.999,
    epsilon: float = 1e-08,
) -> optax.GradientTransformationExtraArgs:
    """The Muon direction as an optax transform (states kept in float32)."""

    def init_fn(params: Any) -> ScaleByMuonState:
        return ScaleByMuonState(
            count=jnp.zeros([], jnp.int32),
            m=jax.tree.map(lambda w: jnp.zeros(jnp.shape(w), jnp.float32), params),
            v=jax.tree.map(lambda w: jnp.zeros(jnp.shape(w), jnp.float32), params),
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
        v_leaves = treedef.flatten_up_to(state.v)
        outs = [
            muon_rule(
                jnp,
                w,
                g,
                lr,
                t,
                m_leaves[i],
                v_leaves[i],
                beta=beta,
                adam_b1=adam_b1,
                adam_b2=adam_b2,
                epsilon=epsilon,
            )
            for i, (w, g) in enumerate(zip(weights, leaves, strict=True))
        ]
        outs = [o if isinstance(o, tuple) else (o,) for o in outs]
        directions = [jnp.broadcast_to(o[0], jnp.shape(g)).astype(jnp.asarray(g).dtype)
                      for o, g in zip(outs, leaves, strict=True)]
        new_m = [jnp.broadcast_to(o[1], jnp.shape(s)).astype(jnp.float32)
                  for o, s in zip(outs, m_leaves, strict=True)]
        new_v = [jnp.broadcast_to(o[2], jnp.shape(s)).astype(jnp.float32)
                  for o, s in zip(outs, v_leaves, strict=True)]
        return jax.tree.unflatten(treedef, directions), ScaleByMuonState(
            count=optax.safe_increment(state.count),
            m=jax.tree.unflatten(treedef, new_m),
            v=jax.tree.unflatten(treedef, new_v),
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def muon(
    learning_rate: optax.ScalarOrSchedule,
    beta: float = 0.95,
    adam_b1: float = 0.9,
    adam_b2: float = 0.999,
    epsilon: float = 1e-08,
) -> optax.GradientTransformationExtraArgs:
    """Muon as an optax optimizer (see the module docstring for the rule)."""
    return optax.chain(
        scale_by_muon(beta=beta, adam_b1=adam_b1, adam_b2=adam_b2, epsilon=epsilon),
        optax.scale_by_learning_rate(learning_rate),
    )


@functools.cache
def _torch_optimizer() -> type:
    import torch

    class Muon(torch.optim.Optimizer):
        """Muon for PyTorch (see the module docstring for the rule)."""

        def __init__(
            self,
            params: Any,
            lr: float = 1e-3,
            beta: float = 0.95,
            adam_b1: float = 0.9,
            adam_b2: float = 0.999,
            epsilon: float = 1e-08,
        ) -> None:
            if not lr >= 0.0:
                raise ValueError(f"invalid learning rate: {lr}")
            if not math.isfinite(beta):
                raise ValueError(f"invalid beta value: {beta} (not finite)")
            if not math.isfinite(adam_b1):
                raise ValueError(f"invalid adam_b1 value: {adam_b1} (not finite)")
            if not math.isfinite(adam_b2):
                raise ValueError(f"invalid adam_b2 value: {adam_b2} (not finite)")
            if not math.isfinite(epsilon):
                raise ValueError(f"invalid epsilon value: {epsilon} (not finite)")
            defaults = dict(lr=lr, beta=beta, adam_b1=adam_b1, adam_b2=adam_b2, epsilon=epsilon)
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
                        state["v"] = torch.zeros_like(p, dtype=dtype)
                    state["step"] += 1
                    t = state["step"]
                    out = muon_rule_torch(
                        p,
                        p.grad,
                        1.0,
                        t,
                        state["m"], state["v"],
                        beta=group['beta'],
                        adam_b1=group['adam_b1'],
                        adam_b2=group['adam_b2'],
                        epsilon=group['epsilon'],
                    )
                    direction, state["m"], state["v"] = out
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

    Muon.__module__ = __name__
    return Muon


def __getattr__(name: str) -> Any:
    if name == "Muon":  # built on first use: importing this module needs no torch
        return _torch_optimizer()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

