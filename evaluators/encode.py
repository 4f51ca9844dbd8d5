"""A program as arrays, for the engine: opcodes, argument registers, constants.

The engine keeps every value of a step in a register file of flat vectors, one
entry per parameter element of the whole model (the layout). A value whose true
shape is smaller than its leaf (a scalar, an Adafactor row or column statistic)
is stored replicated over the leaf, so elementwise functions need nothing more;
reductions need each argument's true size per leaf, which abstract execution
gives here, on the host, once per program.

Registers: 0 ``w``, 1 ``g``, 2 ``lr``, 3 ``t``, then :data:`MAX_STATES` states,
then the constants of the bucket, then one register per statement (statements
are renamed so each writes its own register), then a staging area for the next
states. Only live statements are encoded.

A step is one list of instructions, each writing one register: four loads of
the step's inputs, the statements, then moves of each next state to staging and
from staging to its state register (a program may swap states). Keeping every
write inside the one instruction loop matters: XLA copies the whole register
file when a step writes a row and then reads the updated file outside the loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import numpy as np

from dsl import Program, ProgramError, abstract, graph, ops
from dsl.program import MAX_STATES

#: Program-length buckets: the engine compiles once per task and bucket.
BUCKETS = (8, 16, 32, 64)
#: Function index of each opcode; the pseudo-instructions follow the functions.
OP_NAMES: tuple[str, ...] = tuple(sorted(ops.OPS))
PSEUDO: tuple[str, ...] = ("load_w", "load_g", "load_lr", "load_t", "move")
OPCODE = {name: k for k, name in enumerate(OP_NAMES + PSEUDO)}
STATE_BASE = 4
CONST_BASE = STATE_BASE + MAX_STATES


def consts_for(bucket: int) -> int:
    """How many distinct constants a program of this bucket may use."""
    return 2 * bucket


def stmt_base(bucket: int) -> int:
    return CONST_BASE + consts_for(bucket)


def staging_base(bucket: int) -> int:
    return stmt_base(bucket) + bucket


def n_registers(bucket: int) -> int:
    return staging_base(bucket) + MAX_STATES


def n_instructions(bucket: int) -> int:
    return 4 + bucket + 2 * MAX_STATES


@dataclass(frozen=True)
class Layout:
    """How a model's parameter tree lies in one flat vector, with group ids.

    ``leaf_id`` names each element's leaf; ``row_group`` and ``col_group`` group
    the elements that Adafactor's row and column means average together
    (``col_group`` is the whole leaf for an unfactored leaf); ``factored`` marks
    elements of factored leaves.
    """

    shapes: tuple[tuple[int, ...], ...]
    treedef: Any
    leaf_id: np.ndarray
    row_group: np.ndarray
    col_group: np.ndarray
    factored: np.ndarray
    n_rows: int
    n_cols: int

    @property
    def size(self) -> int:
        return int(self.leaf_id.shape[0])

    @property
    def n_leaves(self) -> int:
        return len(self.shapes)

    @staticmethod
    def of(params: Any) -> Layout:
        leaves, treedef = jax.tree.flatten(params)
        shapes = tuple(tuple(int(d) for d in np.shape(x)) for x in leaves)
        leaf_id, rows, cols, fact = [], [], [], []
        n_rows = n_cols = 0
        for k, shape in enumerate(shapes):
            n = math.prod(shape)
            leaf_id.append(np.full(n, k, np.int32))
            dims = ops.factored_dims(shape)
            fact.append(np.full(n, dims is not None))
            if dims is None:
                rows.append(n_rows + np.arange(n, dtype=np.int32))
                n_rows += n
                cols.append(np.full(n, n_cols, np.int32))
                n_cols += 1
                continue
            second, largest = dims
            idx = np.indices(shape).reshape(len(shape), -1)

            def group(drop: int, shape=shape, idx=idx) -> tuple[np.ndarray, int]:
                keep = [a for a in range(len(shape)) if a != drop]
                dims_kept = [shape[a] for a in keep]
                return np.ravel_multi_index(idx[keep], dims_kept), math.prod(dims_kept)

            # Elements that differ only along the largest axis share a row group
            # (factor_row averages over it); likewise columns and the second axis.
            row_ids, n_r = group(largest)
            col_ids, n_c = group(second)
            rows.append(n_rows + row_ids)
            cols.append(n_cols + col_ids)
            n_rows += n_r
            n_cols += n_c
        cat = np.concatenate
        return Layout(shapes, treedef, cat(leaf_id), cat(rows).astype(np.int32),
                      cat(cols).astype(np.int32), cat(fact), n_rows, n_cols)


class Encoded(NamedTuple):
    """A program as arrays whose shapes depend only on its bucket and the layout.

    ``I`` is :func:`n_instructions` of the bucket.
    """

    length: np.ndarray  # () int32: instructions per step
    opcode: np.ndarray  # (I,) int32
    args: np.ndarray  # (I, 3) int32 registers read
    dest: np.ndarray  # (I,) int32 register written
    consts: np.ndarray  # (2L,) float32
    update_reg: np.ndarray  # () int32
    state_init: np.ndarray  # (MAX_STATES,) int32: 1 where the state starts as w
    size: np.ndarray  # (I, 3, n_leaves) float32: true size of each argument per leaf
    leafarg: np.ndarray  # (I, 3, n_leaves) bool: argument has its leaf's full shape


def bucket_of(program: Program) -> int:
    """The smallest bucket that holds the live statements and their constants."""
    live = graph.remove_dead(program)
    n = len(live.statements)
    n_consts = len({a for st in live.statements for a in st.args if not _is_var(a)})
    for bucket in BUCKETS:
        if n <= bucket and n_consts <= consts_for(bucket):
            return bucket
    raise ProgramError(f"{n} live statements: longer than the largest bucket ({BUCKETS[-1]})")


def _is_var(a: Any) -> bool:
    return isinstance(a, str) and a not in ops.CONSTANTS


def encode(program: Program, layout: Layout, bucket: int | None = None) -> Encoded:
    """Encode the live part of ``program`` for ``layout``.

    Raises :class:`ProgramError` when the program is invalid for one of the
    layout's leaf shapes (abstract execution per leaf) or too long.
    """
    p = graph.remove_dead(program)
    bucket = bucket or bucket_of(program)
    if len(p.states) > MAX_STATES:
        raise ProgramError(f"{len(p.states)} states; at most {MAX_STATES}")
    checks = [abstract.check(p, shape) for shape in layout.shapes]
    base = stmt_base(bucket)
    current = {"w": 0, "g": 1, "lr": 2, "t": 3}
    current.update({name: STATE_BASE + k for k, name in enumerate(p.state_names)})
    consts: dict[float, int] = {}
    n_ins = n_instructions(bucket)
    opcode = np.zeros(n_ins, np.int32)
    args = np.zeros((n_ins, 3), np.int32)
    dest = np.zeros(n_ins, np.int32)
    for k, load in enumerate(("load_w", "load_g", "load_lr", "load_t")):
        opcode[k], dest[k] = OPCODE[load], k
    for i, st in enumerate(p.statements):
        row = 4 + i
        opcode[row], dest[row] = OPCODE[st.op], base + i
        for j, a in enumerate(st.args):
            if _is_var(a):
                args[row, j] = current[a]
            else:
                value = float(ops.CONSTANTS.get(a, a)) if isinstance(a, str) else float(a)
                args[row, j] = CONST_BASE + consts.setdefault(value, len(consts))
        current[st.target] = base + i
    if len(consts) > consts_for(bucket):
        raise ProgramError(f"{len(consts)} constants: more than bucket {bucket} holds")
    const_values = np.zeros(consts_for(bucket), np.float32)
    for value, k in consts.items():
        const_values[k] = value

    row = 4 + len(p.statements)
    n_states = len(p.states)
    for k in range(n_states):  # next values to staging, then staging to the states
        opcode[row + k], args[row + k, 0] = OPCODE["move"], current[p.outputs[k + 1]]
        dest[row + k] = staging_base(bucket) + k
        opcode[row + n_states + k], args[row + n_states + k, 0] = OPCODE["move"], dest[row + k]
        dest[row + n_states + k] = STATE_BASE + k
    state_init = np.array([s.init == "w" for s in p.states] + [False] * (MAX_STATES - n_states),
                          np.int32)

    size = np.ones((n_ins, 3, layout.n_leaves), np.float32)
    leafarg = np.zeros((n_ins, 3, layout.n_leaves), bool)
    for leaf, (shape, result) in enumerate(zip(layout.shapes, checks, strict=True)):
        reg_shape = {0: shape, 1: shape, 2: (), 3: ()}
        reg_shape.update({STATE_BASE + k: result.states[n].shape
                          for k, n in enumerate(p.state_names)})
        reg_shape.update({base + i: a.shape for i, a in enumerate(result.statements)})
        for i, st in enumerate(p.statements):
            for j in range(len(st.args)):
                s = reg_shape.get(int(args[4 + i, j]), ())
                size[4 + i, j, leaf] = math.prod(s)
                leafarg[4 + i, j, leaf] = s == shape
    return Encoded(
        length=np.asarray(row + 2 * n_states, np.int32), opcode=opcode, args=args, dest=dest,
        consts=const_values, update_reg=np.asarray(current[p.outputs[0]], np.int32),
        state_init=state_init, size=size, leafarg=leafarg,
    )
