"""Any program as an optax optimizer: the direct path from statements to jnp code.

:func:`to_optax` gives a program its JAX meaning. ``init`` allocates each state
with the shape abstract execution infers for each leaf (so Adafactor's factored
states really are O(n + m)); ``update`` walks the live statements leaf by leaf
with ``jax.numpy`` (the walker and function table shared with every other
semantics), feeds ``lr`` from the learning rate or schedule and ``t`` from a
step counter, and returns ``-update`` so ``optax.apply_updates`` works.

The search's engine (evaluators/) runs programs as data inside one compiled
loop; this path serves export, parity tests and users who want to train with a
program directly.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from dsl import abstract, ops
from dsl.graph import liveness
from dsl.program import Program
from dsl.walk import Plan, initial_env, walk

STATE_DTYPE = jnp.float32


class ProgramState(NamedTuple):
    """The optimizer state of a program.

    ``count`` is the number of updates done (``t = count + 1`` during an update);
    ``states`` holds one pytree per program state, in signature order, each
    shaped like the parameters' tree with the inferred shape per leaf.
    """

    count: jax.Array
    states: tuple[Any, ...]


def _jax_const(value: float) -> float:
    return value  # a Python float: weakly typed, so bfloat16 values stay bfloat16


def _jax_apply(op: ops.Op, args: list[Any]) -> Any:
    return op.apply(jnp, *args)


def step_leaf(
    program: Program, w: Any, g: Any, lr: Any, t: Any, states: tuple[Any, ...]
) -> tuple[Any, tuple[Any, ...]]:
    """One step of ``program`` on one leaf: ``(update, next states)``.

    Runs the live statements only (dead ones cannot change the update); a dead
    state keeps its value. The update has the dtype of ``g``; states stay in
    ``STATE_DTYPE``.
    """
    plan = Plan.live_of(program)
    env = initial_env(program, {"w": w, "g": g, "lr": lr, "t": t}, states)
    outs = walk(plan, env, _jax_const, _jax_apply)
    new_states = list(states)
    for k, value in zip(sorted(liveness(program).states), outs[1:], strict=True):
        new_states[k] = jnp.broadcast_to(value, states[k].shape).astype(states[k].dtype)
    update = jnp.broadcast_to(outs[0], jnp.shape(g)).astype(jnp.asarray(g).dtype)
    return update, tuple(new_states)


def init_leaf(program: Program, w: Any) -> tuple[Any, ...]:
    """The initial states of one leaf: zeros of the inferred shape, or a copy of w."""
    shapes = abstract.check(program, jnp.shape(w), jnp.asarray(w).dtype.name).states
    return tuple(
        jnp.zeros(shapes[s.name].shape, STATE_DTYPE) if s.init == "zeros"
        else jnp.asarray(w, STATE_DTYPE)
        for s in program.states
    )


def to_optax(
    program: Program, learning_rate: optax.ScalarOrSchedule = 1.0
) -> optax.GradientTransformationExtraArgs:
    """``program`` as an ``optax.GradientTransformation``.

    ``learning_rate`` is the value fed to the program's ``lr``: a float, or an
    optax schedule evaluated at the number of updates done so far (as
    ``optax.scale_by_learning_rate`` does). The step ``t`` fed to the program is
    1 on the first update. Programs that read ``w`` need ``params`` in
    ``update``. Raises :class:`~dsl.errors.ProgramError` at ``init`` for a
    program that is invalid for a leaf's shape.

    The result follows optax's conventions: ``update`` accepts and ignores the
    extra keyword arguments a chain passes to every member
    (``GradientTransformationExtraArgs``); ``learning_rate`` is annotated
    ``optax.ScalarOrSchedule`` and can be injected with
    ``optax.inject_hyperparams``; updates keep each gradient's dtype and the
    state keeps its dtypes from step to step.

    >>> import jax.numpy as jnp, optax
    >>> from dsl import library
    >>> opt = to_optax(library.get("lion"), learning_rate=1e-4)
    >>> params = {"w": jnp.ones((3, 2))}
    >>> state = opt.init(params)
    >>> updates, state = opt.update({"w": jnp.ones((3, 2))}, state, params)
    >>> params = optax.apply_updates(params, updates)
    >>> float(params["w"][0, 0])  # 1 - 1e-4 * (sign(0.1) + 0.001 * 1)
    0.9998999...
    """
    abstract.check(program, ())  # fail early on a program that is invalid everywhere
    needs_w = "w" in liveness(program).inputs or any(s.init == "w" for s in program.states)

    def init(params: Any) -> ProgramState:
        leaves, treedef = jax.tree.flatten(params)
        per_leaf = [init_leaf(program, leaf) for leaf in leaves]
        states = tuple(
            jax.tree.unflatten(treedef, [leaf_states[k] for leaf_states in per_leaf])
            for k in range(len(program.states))
        )
        return ProgramState(count=jnp.zeros([], jnp.int32), states=states)

    def update(
        updates: Any, state: ProgramState, params: Any = None, **extra_args: Any
    ) -> tuple[Any, ProgramState]:
        del extra_args  # optax's convention: a chain passes them to every member
        if params is None:
            if needs_w:
                raise ValueError(
                    "this program reads the weights w: pass params to update(grads, state, params)"
                )
            params = updates
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        lr = jnp.asarray(lr, jnp.float32)
        t = (state.count + 1).astype(jnp.float32)
        grads, treedef = jax.tree.flatten(updates)
        weights = treedef.flatten_up_to(params)
        per_state = [treedef.flatten_up_to(s) for s in state.states]
        new_updates, new_states = [], [[] for _ in program.states]
        for i, (w, g) in enumerate(zip(weights, grads, strict=True)):
            u, leaf_states = step_leaf(program, w, g, lr, t, tuple(s[i] for s in per_state))
            new_updates.append(-u)
            for k, value in enumerate(leaf_states):
                new_states[k].append(value)
        count = optax.safe_increment(state.count)
        return jax.tree.unflatten(treedef, new_updates), ProgramState(
            count=count, states=tuple(jax.tree.unflatten(treedef, s) for s in new_states)
        )

    return optax.GradientTransformationExtraArgs(init, update)
