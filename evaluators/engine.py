"""The training engine: one compiled loop per task and program-length bucket.

Compiling a training loop per program would spend most of a search on the
compiler (DESIGN.md decision 5). Here the program is data (see
:mod:`evaluators.encode`): inside ``lax.while_loop`` over training steps, a
``fori_loop`` over the program's live statements dispatches each one with
``lax.switch`` on a register file of flat parameter-sized vectors; each
instruction's result is scaled and shifted by per-step scalars on its way into
its register, and each row it reads is scaled on its way in (``update * lr``,
``sqrt(v) + eps`` and ``u + w * 0.01`` cost no instruction of their own); a
per-step scalar as last argument (``interp(g, m, 0.9)``, ``m / c1``) is read as
a scalar, not as a row of one repeated value. Statements that depend only on the
step (``lr * 0.001``) run once per program on the host, in NumPy
(:func:`step_only_table`). Seeds share the vectors, end to end. Elementwise
functions are the very implementations of ``dsl/ops.py``; a function that reduces
over a leaf runs its twin of the op table (``Op.flat``) over the flat layout
(per-leaf segment sums, :class:`dsl.ops.Segments`), and tests hold every one of
them to the direct path, ``dsl.to_optax``.

A seed whose loss turns NaN or Inf, or exceeds :data:`DIVERGENCE_FACTOR` times
its initial loss, stops there and counts as diverged.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dsl import library, ops
from dsl.program import MAX_STATES, Program
from evaluators.encode import (
    CONST_BASE,
    MATRIX_WORK,
    OP_NAMES,
    SCALAR_LAST,
    STATE_BASE,
    UNIT,
    ZERO,
    Encoded,
    Layout,
    bucket_of,
    consts_for,
    encode,
    n_registers,
    uses_matrix_work,
)
from evaluators.tasks import Task
from evaluators.tasks.base import TaskError

DIVERGENCE_FACTOR = 10.0
#: XLA's backend optimisation level 1 instead of the default: on CPU it cut the
#: engine's compile from 8.1 s to 4.8 s (one core, mlp_mnist1d/A) for 7% slower
#: steps, a good trade for a loop compiled once and run for many programs.
COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}
_COMPILES: dict[tuple[str, Any], int] = {}


def compile_count(task: str | None = None) -> int:
    """How many times the engine has traced a training loop (per task, or in all)."""
    return sum(n for (name, _), n in _COMPILES.items() if task in (None, name))


# --- the training loop shared by the engine and the direct path ------------------


def train_loop(
    task: Task,
    init_state: Callable[[Any], Any],
    step_state: Callable[[Any, Any, Any, jax.Array], tuple[Any, Any]],
    params: Any,
    batches: jax.Array,
    train: tuple[jax.Array, ...],
    val: tuple[jax.Array, ...],
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Train a batch of seeds: (validation metric, steps run, ok) per seed.

    ``params`` are the seeds' initial parameters (a leading seed axis) and
    ``batches`` their batch indices, (steps, seeds, batch size): see
    :func:`seed_inputs`. ``init_state`` and ``step_state`` see the whole batch
    of seeds. The loop runs while any seed is alive and masks only the
    parameters of stopped seeds (a ``vmap`` of the loop would select over the
    whole carry at every step). ``ok`` is false for a seed that diverged.
    """
    state = init_state(params)
    sample = jax.vmap(task.sample, in_axes=(0, None))
    grad = jax.vmap(jax.value_and_grad(task.loss))
    loss0 = jax.vmap(task.loss)(params, sample(batches[0], train))
    limit = DIVERGENCE_FACTOR * jnp.abs(loss0) + 1e-6
    n = batches.shape[1]

    def cond(carry):
        step, _, _, alive, _ = carry
        return (step < task.steps) & jnp.any(alive)

    def body(carry):
        step, params, state, alive, ran = carry
        loss, grads = grad(params, sample(row(batches, step), train))
        ok = alive & jnp.isfinite(loss) & (loss <= limit)
        new_params, state = step_state(params, grads, state, step)

        def keep(new, old):
            return jnp.where(ok.reshape((n,) + (1,) * (new.ndim - 1)), new, old)

        params = jax.tree.map(keep, new_params, params)
        return step + 1, params, state, ok, ran + ok.astype(jnp.int32)

    zeros = jnp.zeros((n,), jnp.int32)
    _, params, _, alive, ran = jax.lax.while_loop(
        cond, body, (jnp.zeros((), jnp.int32), params, state, jnp.ones((n,), bool), zeros))
    metric = jax.vmap(task.metric, in_axes=(0, None))(params, val)
    return metric, ran, alive & jnp.isfinite(metric)


# --- the direct path: dsl.to_optax (or any optax optimizer) in the same loop -------


def direct_runner(task: Task, optimizer: optax.GradientTransformation):
    """A jitted ``(params, batches, train, val) -> (metric, steps, ok)`` training
    ``optimizer`` (``params, batches`` as :func:`seed_inputs` gives them)."""
    update = jax.vmap(optimizer.update)

    def step_state(params, grads, state, step):
        updates, state = update(grads, state, params)
        return optax.apply_updates(params, updates), state

    def run(params, batches, train, val):
        return train_loop(task, jax.vmap(optimizer.init), step_state, params, batches, train, val)

    return jax.jit(run)


# --- the engine's flat semantics -----------------------------------------------


class StepInputs(NamedTuple):
    """What an instruction may read besides the register file."""

    # (2, 3, lanes, 1): its arguments' step-only values, its arguments' scales, per lane
    scalars: jax.Array
    size: jax.Array  # Encoded.size: true argument sizes per leaf, per instruction
    leafarg: jax.Array  # Encoded.leafarg
    matrix: jax.Array  # Encoded.matrix
    dims: jax.Array  # Encoded.dims


def row(a: jax.Array, k: jax.Array) -> jax.Array:
    """``a[k]`` for a traced ``k``: a dynamic slice along the first axis."""
    return jax.lax.dynamic_index_in_dim(a, k, keepdims=False)


def _branches(layout: Layout, seeds: int, matrix: bool) -> list[Callable[..., jax.Array]]:
    """One function per opcode: ``f(regs, meta_row, instruction, inputs) -> value``.

    With ``matrix`` false, the functions that work on whole matrices (Muon's
    orthogonalization) get a branch that computes nothing: a loop for programs
    that never call them does not compile them (22% more compile time on
    transformer_lm/A).

    ``meta_row`` is (opcode, three argument registers, destination, scale, shift,
    three argument scales);
    ``inputs`` are the step's :class:`StepInputs`.

    Values are (lanes, seeds x elements): each lane (a learning-rate multiplier)
    holds every seed's parameters end to end, and ``seeds`` counts lanes times
    seeds. Each reduction is a segment sum over the groups of one leaf of one
    seed of one lane.
    """

    def tile(ids: np.ndarray, n: int) -> tuple[jax.Array, jax.Array]:
        """Group ids for every seed, and each group's size."""
        tiled = np.concatenate([ids + k * n for k in range(seeds)])
        return jnp.asarray(tiled), jnp.asarray(np.bincount(tiled, minlength=n * seeds),
                                               jnp.float32)

    leaf_id, counts = tile(layout.leaf_id, layout.n_leaves)
    leaf_of = jnp.asarray(np.tile(layout.leaf_id, seeds))  # the leaf, whatever the seed
    rows, row_n = tile(layout.row_group, layout.n_rows)
    cols, col_n = tile(layout.col_group, layout.n_cols)
    factored = jnp.asarray(np.tile(layout.factored, seeds))

    def group_mean(x, ids, n):
        return (jax.ops.segment_sum(x, ids, num_segments=n.shape[0]) / n)[ids]

    class Flat:
        """The flat layout as a leaf-reducing function's twin sees it (the
        :class:`dsl.ops.Segments` of one instruction: its arguments' true sizes
        per leaf, ``size``, and whether each is leaf-shaped, ``leafarg``)."""

        xp = jnp

        def __init__(self, size: jax.Array, leafarg: jax.Array, matrix: jax.Array,
                     dims: jax.Array) -> None:
            self.size, self.leafarg, self.matrix_arg, self.dims = size, leafarg, matrix, dims

        def mean(self, x):  # replication is uniform, so this is the true mean
            return group_mean(x, leaf_id, counts)

        def sum(self, x, *k):
            size = self.size[k[0]]
            for j in k[1:]:
                size = jnp.maximum(size, self.size[j])
            return self.mean(x) * size[leaf_of]

        def row_mean(self, x):
            return group_mean(x, rows, row_n)

        def col_mean(self, x):
            return group_mean(x, cols, col_n)

        def leaf_shaped(self, k):
            return self.leafarg[k][leaf_of]

        def factored(self, k):
            return self.leafarg[k][leaf_of] & factored

        def matrix(self, k):
            return self.matrix_arg[k][leaf_of]

        def fan_in(self, k):
            return self.dims[k, :, 0][leaf_of]

        def fan_out(self, k):
            return self.dims[k, :, 1][leaf_of]

        def per_matrix(self, x, k, fn):
            # Each matrix leaf of every lane and seed, as a batch of matrices.
            by_seed, pieces, start = x.reshape(seeds, layout.size), [], 0
            for leaf, shape in enumerate(layout.shapes):
                part = by_seed[:, start:start + math.prod(shape)]
                start += part.shape[1]
                if len(shape) == 2:
                    done = jax.vmap(functools.partial(fn, jnp))(part.reshape(seeds, *shape))
                    part = jnp.where(self.leafarg[k][leaf], done.reshape(part.shape), part)
                pieces.append(part)
            return jnp.concatenate(pieces, axis=1).reshape(x.shape)

    # Each branch reads its own arguments from the register file: reading all
    # three before the switch costs a full pass per unused argument. ``x.scalars``
    # holds, per argument, its register's step-only value (the last argument of
    # a scalar variant) and its scale (1 unless a product was folded into it);
    # looked up once before the switch, they cost the branches no compile.
    # Only the reducing branches read the per-leaf sizes of their instruction.
    def arg(regs, m, k, x):
        return row(regs, m[1 + k]) * x.scalars[1, k]

    def read(regs, m, x, arity: int, scalar: bool) -> list:
        """The instruction's arguments: rows, the last a step-only scalar if ``scalar``."""
        if not scalar:
            return [arg(regs, m, k, x) for k in range(arity)]
        return [arg(regs, m, k, x) for k in range(arity - 1)] + [x.scalars[0, arity - 1]]

    def elementwise(op: ops.Op, scalar: bool = False):
        def branch(regs, m, i, x):
            return op.fn(jnp, *read(regs, m, x, op.arity, scalar))

        return branch

    def reducing(op: ops.Op, scalar: bool = False):
        def branch(regs, m, i, x):
            shape = regs.shape[1:]  # the segment ids run over lanes and seeds end to end
            args = [jnp.broadcast_to(v, shape).reshape(-1)
                    for v in read(regs, m, x, op.arity, scalar)]
            seg = Flat(row(x.size, i), row(x.leafarg, i), row(x.matrix, i), row(x.dims, i))
            return op.flat(seg, *args).reshape(shape)

        return branch

    pseudo = [
        lambda regs, m, i, x: jnp.broadcast_to(x.scalars[0, 0], regs.shape[1:]),  # step-only
        lambda regs, m, i, x: row(regs, m[1]),  # move
    ]
    def function(name: str, scalar: bool = False):
        op = ops.OPS[name]
        if name in MATRIX_WORK and not matrix:
            return lambda regs, m, i, x: jnp.zeros(regs.shape[1:], regs.dtype)
        return reducing(op, scalar) if op.leaf_reducing else elementwise(op, scalar)

    return ([function(name) for name in OP_NAMES]
            + [function(name, scalar=True) for name in SCALAR_LAST] + pseudo)


def step_only_table(enc: Encoded, task: Task, bucket: int, lr_scale: float = 1.0) -> np.ndarray:
    """Every step-only value at every step: (registers, steps) float32, on the host.

    Step-only statements are elementwise functions of ``lr``, ``t`` and
    constants (``lr * 0.001``, ``power(0.9, t)``): run here once per program in
    NumPy, float32, by the very functions of ``dsl/ops.py``, so the compiled
    loop carries no second switch for them. ``lr`` is the task's schedule times
    ``lr_scale`` (a point of a learning-rate grid).
    """
    table = empty_table(task, bucket)
    table[UNIT], table[ZERO] = 1.0, -0.0  # x * 1 + -0 is x, even for x = -0
    table[2] = schedule_values(task) * np.float32(lr_scale)
    table[3] = np.arange(1, task.steps + 1, dtype=np.float32)
    table[CONST_BASE:CONST_BASE + len(enc.consts)] = enc.consts[:, None]
    with np.errstate(all="ignore"):
        for i in range(int(enc.u_length)):
            op = ops.OPS[OP_NAMES[int(enc.u_opcode[i])]]
            args = (table[int(r)] for r in enc.u_args[i][: op.arity])
            table[int(enc.u_dest[i])] = np.asarray(op.fn(np, *args), np.float32)
    return table


def empty_table(task: Task, bucket: int) -> np.ndarray:
    """A step-only table of zeros: (registers, steps) float32."""
    return np.zeros((n_registers(bucket), task.steps), np.float32)


@functools.cache
def schedule_values(task: Task) -> np.ndarray:
    """The task's learning-rate schedule at every step (float32, computed by JAX)."""
    return np.asarray(jax.jit(jax.vmap(task.schedule))(jnp.arange(task.steps)), np.float32)


def engine_runner(task: Task, layout: Layout, bucket: int, matrix: bool = False):
    """A jitted ``(encoded, tables, params, batches, train, val) -> (metric, steps, ok)``
    for one bucket (and, with ``matrix``, for programs that orthogonalize matrices:
    :func:`evaluators.encode.uses_matrix_work`).

    ``tables`` are the program's :func:`step_only_table` at each point of a
    learning-rate grid, (lanes, registers, steps); one lane is a plain run. The
    register file is (registers, lanes, seeds x elements): each statement reads
    up to three rows and writes one, one kernel whatever the number of lanes and
    seeds, every row scaled per lane by that lane's step-only values. The
    lanes train as lanes x seeds seeds of one loop (each seed's initial
    parameters and batches repeated per lane), so a grid costs its extra
    training and nothing else: no batched switch, no batched stopping condition.
    Results are (lanes x seeds,), lane-major.
    """
    n_regs, n_consts = n_registers(bucket), consts_for(bucket)
    ravel, unravel = layout.ravel, layout.unravel

    def run(enc: Encoded, table, params, batches, train, val):
        _COMPILES[(task.name, bucket)] = _COMPILES.get((task.name, bucket), 0) + 1
        lanes, n = table.shape[0], batches.shape[1]
        width = n * layout.size
        branches = _branches(layout, lanes * n, matrix)
        by_step = jnp.transpose(table, (2, 1, 0))[..., None]  # (steps, regs, lanes, 1)
        params = jax.tree.map(lambda p: jnp.tile(p, (lanes,) + (1,) * (p.ndim - 1)), params)
        batches = jnp.tile(batches, (1, lanes, 1))
        # One row per instruction: (opcode, three argument registers, destination,
        # scale and shift registers of the step-only table, a scale register per
        # argument).
        meta = jnp.concatenate(
            [enc.opcode[:, None], enc.args, enc.dest[:, None], enc.epilogue, enc.prologue],
            axis=1)

        def init_state(params):
            flat = ravel(params).reshape(lanes, width)
            regs = jnp.zeros((n_regs, lanes, width), jnp.float32)
            regs = regs.at[CONST_BASE:CONST_BASE + n_consts].set(
                jnp.broadcast_to(enc.consts[:, None, None], (n_consts, lanes, width)))
            starts = jnp.where(enc.state_init[:, None, None] == 1, flat[None], 0.0)
            return regs.at[STATE_BASE:STATE_BASE + MAX_STATES].set(starts)

        def step_state(params, grads, regs, step):
            now = row(by_step, step)  # every step-only value at this step

            def instruction(i, regs):
                m = row(meta, i)
                scalars = now[jnp.stack([m[1:4], m[7:10]])]
                out = jax.lax.switch(m[0], branches, regs, m, i,
                                     StepInputs(scalars, enc.size, enc.leafarg, enc.matrix,
                                                enc.dims))
                out = out * now[m[5]] + now[m[6]]  # fused into the write
                return jax.lax.dynamic_update_index_in_dim(regs, out, m[4], 0)

            # w and g go straight into their rows before the loop (no instruction
            # writes those rows): a load instruction each would cost a pass more
            # and a trip through the switch.
            regs = regs.at[0].set(ravel(params).reshape(lanes, width))
            regs = regs.at[1].set(ravel(grads).reshape(lanes, width))
            regs = jax.lax.fori_loop(0, enc.length, instruction, regs)
            new = row(regs, 0) - row(regs, enc.update_reg)
            return unravel(new.reshape(lanes * n, layout.size)), regs

        return train_loop(task, init_state, step_state, params, batches, train, val)

    return jax.jit(run)


_RUNNERS: dict[tuple[str, int, int, int, int, bool], Any] = {}


def compiled_runner(task: Task, bucket: int, n_seeds: int, programs: int = 0,
                    lanes: int = 1, matrix: bool = False) -> tuple[Any, float]:
    """The engine's compiled loop for ``task``, ``bucket``, a number of seeds and
    of learning-rate lanes, and the seconds spent compiling it now (0.0 when it was
    compiled before). ``matrix`` compiles in the functions that orthogonalize
    matrices (for the programs that call them).

    With ``programs`` > 0 the loop is vmapped over that many encoded programs
    (arrays with a leading program axis), to train them all in one call.
    ``lanes`` > 1 trains one program at that many points of a learning-rate grid
    (see :func:`engine_runner`).
    """
    if programs and lanes != 1:
        raise ValueError("a runner is vmapped over programs or runs a grid, not both")
    key = (task.name, bucket, n_seeds, programs, lanes, matrix)
    if key in _RUNNERS:
        return _RUNNERS[key], 0.0
    train, val = device_data(task)  # making the data (once per process) is not compiling
    inputs = seed_inputs(task, tuple(range(n_seeds)))
    start = time.perf_counter()
    layout = layout_for(task)
    example = encode_example(layout, bucket)
    fn = engine_runner(task, layout, bucket, matrix)
    table = np.stack([empty_table(task, bucket)] * lanes)  # shapes only
    if programs:
        fn = jax.jit(jax.vmap(fn, in_axes=(0, 0, None, None, None, None)))
        example = jax.tree.map(lambda a: np.stack([a] * programs), example)
        table = np.stack([table] * programs)
    lowered = fn.lower(example, table, *inputs, train, val)
    compiled = lowered.compile(compiler_options=COMPILER_OPTIONS)
    _RUNNERS[key] = compiled
    return compiled, time.perf_counter() - start


def encode_example(layout: Layout, bucket: int) -> Encoded:
    """Arrays of the bucket's shapes, to compile ahead of time (SGD's, values irrelevant)."""
    return encode(library.get("sgd"), layout, bucket)


@functools.cache
def layout_for(task: Task) -> Layout:
    return Layout.of(task.init(np.random.default_rng(0)))


@functools.cache
def device_data(task: Task) -> tuple[tuple[jax.Array, ...], tuple[jax.Array, ...]]:
    """The task's arrays on the default device, loaded once per process."""
    data = task.data()
    return tuple(map(jnp.asarray, data.train)), tuple(map(jnp.asarray, data.val))


@functools.lru_cache(maxsize=32)
def seed_inputs(task: Task, seeds: tuple[int, ...]) -> tuple[Any, jax.Array]:
    """The seeds' initial parameters (a leading seed axis) and batch indices,
    (steps, seeds, batch size), on the default device: :meth:`Task.draws`."""
    draws = [task.draws(s) for s in seeds]
    params = jax.tree.map(lambda *p: jnp.asarray(np.stack(p)), *(p for p, _ in draws))
    return params, jnp.asarray(np.stack([idx for _, idx in draws], axis=1))


def run_engine(program: Program, task: Task, seeds: tuple[int, ...]):
    """Train ``program`` on ``task`` for each seed with the engine.

    Returns numpy arrays (metric, steps run, ok) per seed, and the compile time.
    Raises :class:`~dsl.ProgramError` for a program invalid on the task.
    """
    (metric, steps, ok), compile_time = run_engine_grid(program, task, seeds, (1.0,))
    return (metric[0], steps[0], ok[0]), compile_time


def run_engine_grid(program: Program, task: Task, seeds: tuple[int, ...],
                    lr_grid: tuple[float, ...]):
    """Train ``program`` once per multiplier of ``lr_grid`` (the task's schedule times
    it) and seed, in one compiled call: the multipliers are lanes of one register
    file (:func:`engine_runner`).

    Returns numpy arrays (metric, steps run, ok) of shape (multipliers, seeds),
    and the compile time. Raises :class:`~dsl.ProgramError` for a program invalid
    on the task.
    """
    bucket = bucket_of(program)
    enc = encode(program, layout_for(task), bucket)
    run, compile_time = compiled_runner(task, bucket, len(seeds), lanes=len(lr_grid),
                                        matrix=uses_matrix_work(enc))
    train, val = device_data(task)
    tables = np.stack([step_only_table(enc, task, bucket, m) for m in lr_grid])
    out = run(enc, tables, *seed_inputs(task, seeds), train, val)
    shape = (len(lr_grid), len(seeds))
    return _positive(task, tuple(np.asarray(x).reshape(shape) for x in out)), compile_time


def run_engine_batch(programs: list[Program], task: Task, seeds: tuple[int, ...]):
    """Train programs of one bucket on ``task`` in one call, vmapped over programs.

    For accelerators, where one call that trains many programs may beat many
    calls; under ``vmap`` ``lax.switch`` computes every branch of every
    instruction, so on CPU :func:`run_engine` per program is far faster (45x on
    ``quadratic/A``, docs/benchmarks.md). The batch is
    padded to a power of two (repeating the first program) so that few sizes
    compile. Returns numpy arrays (metric, steps run, ok) of shape (programs,
    seeds), and the compile time. Raises :class:`~dsl.ProgramError` for a
    program invalid on the task, ValueError for programs of different buckets.
    """
    buckets = {bucket_of(p) for p in programs}
    if len(buckets) != 1:
        raise ValueError(f"a batch must hold programs of one bucket, got buckets "
                         f"{sorted(buckets)}")
    bucket = buckets.pop()
    layout = layout_for(task)
    return run_encoded_batch([encode(p, layout, bucket) for p in programs], bucket, task, seeds)


def run_encoded_batch(encoded: list[Encoded], bucket: int, task: Task, seeds: tuple[int, ...]):
    """:func:`run_engine_batch` for programs already encoded for ``task`` and ``bucket``."""
    n = len(encoded)
    size = 1 << (n - 1).bit_length()
    encoded = encoded + [encoded[0]] * (size - n)
    run, compile_time = compiled_runner(task, bucket, len(seeds), size,
                                        matrix=any(map(uses_matrix_work, encoded)))
    train, val = device_data(task)
    stacked = jax.tree.map(lambda *a: np.stack(a), *encoded)
    tables = np.stack([step_only_table(e, task, bucket)[None] for e in encoded])
    out = run(stacked, tables, *seed_inputs(task, seeds), train, val)
    return _positive(task, tuple(np.asarray(x)[:n] for x in out)), compile_time


def _positive(task: Task, out: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """The engine's (metric, steps, ok), once no finite metric is negative: a fitness is
    ``log(baseline / metric)``, so a task's metric must be positive (a loss, an error
    rate) that never reaches 0; a metric <= 0 is the task's mistake (:class:`TaskError`),
    not a program's divergence."""
    metric, _, ok = out
    bad = np.asarray(ok, bool) & np.isfinite(metric) & (metric <= 0)
    if bad.any():
        raise TaskError(f"task {task.name!r}: its metric came out {float(metric[bad][0]):.4g}; "
                        "a task's metric must be positive, lower is better (a loss, or an "
                        "error rate plus a small constant: the fitness is log(baseline metric "
                        "/ metric))")
    return out


def run_direct(program: Program, task: Task, seeds: tuple[int, ...]):
    """The same training with ``dsl.to_optax(program)``, compiled for this program."""
    from dsl.interpreter import to_optax

    train, val = device_data(task)
    out = direct_runner(task, to_optax(program, task.schedule))(*seed_inputs(task, seeds), train,
                                                                val)
    return tuple(np.asarray(x) for x in out)
