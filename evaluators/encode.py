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

The engine writes ``w`` and ``g`` into their registers before a step's
instructions; the instructions are loads of the step-only values (``lr`` and
``t`` among them) that per-element statements read as rows, the statements, then
moves of each next state to staging and from staging to its state register (a
program may swap states). An instruction is ``dest = f(a * sa, b * sb, c * sc) *
scale + shift`` with every ``s`` a step-only register (1 by default), and a
function with a scalar variant reads a per-step scalar last argument from the
step-only table instead of a row. Every other write stays inside the one
instruction loop: XLA copies the whole register file when a step writes a row
after the loop and reads the file again.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dsl import Program, ProgramError, abstract, graph, ops
from dsl.program import MAX_LIVE, MAX_STATES

#: Program-length buckets: the engine compiles once per task and bucket. A step
#: runs the program's own instructions whatever its bucket (on mlp_mnist1d/A a
#: 4-instruction program trains in the same time in buckets 8, 16 and 32), so a
#: bucket costs a compile and buys only a smaller register file: the smallest
#: holds the warm start and nearly every mutant of it (a search with an
#: 8-statement bucket split its programs 86 / 184 between two compiles).
BUCKETS = (16, 32, MAX_LIVE)
#: Function index of each opcode; the scalar variants and the pseudo-instructions
#: follow the functions.
OP_NAMES: tuple[str, ...] = tuple(sorted(ops.OPS))
#: Leaf-reducing functions (never step-only: they need the flat layout), as the op
#: table marks them (:attr:`dsl.ops.Op.leaf_reducing`).
LEAF_REDUCING = frozenset(name for name, op in ops.OPS.items() if op.leaf_reducing)
#: Functions with a second opcode whose last argument is a per-step scalar read
#: from the step-only table (``interp(g, m, 0.9)``, ``m / c1``,
#: ``clip_by_global_norm(g, 1.0)``) instead of a register row: a full read of a
#: row of one repeated value saved, and no load for a step-only value. Each
#: variant is one more branch to compile (about 25 ms on one core), so only the
#: functions mutants of the warm start use with a constant most.
SCALAR_LAST: tuple[str, ...] = tuple(name for name in OP_NAMES if ops.OPS[name].scalar_last)
#: Swapping the arguments of these gives the same value, bit for bit: a scalar
#: first argument (``0.01 * w``) becomes the last one.
SWAPPABLE = frozenset(name for name, op in ops.OPS.items() if op.swap_exact)
#: Functions that work on a matrix as a whole (Muon's orthogonalization): costly to
#: compile, so compiled only for the programs that call them.
MATRIX_WORK = frozenset(name for name, op in ops.OPS.items() if op.matrix and op.over_leaf)
PSEUDO: tuple[str, ...] = ("load_step_only", "move")
OPCODE = {name: k for k, name in enumerate(
    OP_NAMES + tuple(f"{n}:scalar" for n in SCALAR_LAST) + PSEUDO)}
STATE_BASE = 4
#: The step-only table's rows of ones and of -0.0: an instruction's scale and
#: shift when it has none (x + -0.0 is x for every x, -0.0 included). Rows 0
#: and 1 are the registers of ``w`` and ``g``, which are never step-only values.
UNIT, ZERO = 0, 1
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
    return 4 + 2 * bucket + 2 * MAX_STATES


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

    def ravel(self, params: Any) -> jax.Array:
        """Parameters with a leading seed axis -> (seeds, size), leaves end to end.

        Traced, never run eagerly: building the flat layout costs no compile of
        its own (``jax.flatten_util.ravel_pytree`` compiled five small programs,
        0.3 s a process).
        """
        leaves = jax.tree.leaves(params)
        return jnp.concatenate([x.reshape(x.shape[0], -1) for x in leaves], axis=1)

    def unravel(self, flat: jax.Array) -> Any:
        """(seeds, size) -> parameters with a leading seed axis (the inverse of ravel)."""
        n, leaves, start = flat.shape[0], [], 0
        for shape in self.shapes:
            size = math.prod(shape)
            leaves.append(flat[:, start:start + size].reshape((n, *shape)))
            start += size
        return jax.tree.unflatten(self.treedef, leaves)

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

    Two instruction lists over the same register numbering: the step-only list
    (``u_*``) runs once before training over vectors indexed by step; the main
    list (``length``, ``opcode``, ``args``, ``dest``) runs at every step over the
    flat parameter vectors. ``I`` is :func:`n_instructions` of the bucket.
    """

    length: np.ndarray  # () int32: main instructions per step
    opcode: np.ndarray  # (I,) int32
    args: np.ndarray  # (I, 3) int32 registers read
    dest: np.ndarray  # (I,) int32 register written
    epilogue: np.ndarray  # (I, 2) int32 step-only registers: result * first + second
    prologue: np.ndarray  # (I, 3) int32 step-only registers: argument k is row * k-th
    u_length: np.ndarray  # () int32: step-only instructions
    u_opcode: np.ndarray  # (I,) int32
    u_args: np.ndarray  # (I, 3) int32
    u_dest: np.ndarray  # (I,) int32
    consts: np.ndarray  # (2L,) float32
    update_reg: np.ndarray  # () int32
    state_init: np.ndarray  # (MAX_STATES,) int32: 1 where the state starts as w
    size: np.ndarray  # (I, 3, n_leaves) float32: true size of each argument per leaf
    leafarg: np.ndarray  # (I, 3, n_leaves) bool: argument has its leaf's full shape
    matrix: np.ndarray  # (I, 3, n_leaves) bool: argument is a matrix (rank 2)
    dims: np.ndarray  # (I, 3, n_leaves, 2) float32: its (fan_in, fan_out), 1 if no matrix


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


Value = tuple  # ("in", name) | ("state", k) | ("const", value) | ("stmt", i)


def encode(program: Program, layout: Layout, bucket: int | None = None) -> Encoded:
    """Encode the live part of ``program`` for ``layout``.

    Step-only statements (elementwise functions of ``lr``, ``t`` and constants,
    such as ``lr * 0.001`` or ``power(0.9, t)``) go to the step-only list; a
    state whose old value is not read after its new value is computed is
    written in place; an input no per-step instruction reads is not loaded.
    Raises :class:`ProgramError` when the program is invalid for one of the
    layout's leaf shapes (abstract execution per leaf) or too long.
    """
    p = graph.remove_dead(program)
    bucket = bucket or bucket_of(program)
    if len(p.states) > MAX_STATES:
        raise ProgramError(f"{len(p.states)} states; at most {MAX_STATES}")
    checks = [abstract.check(p, shape) for shape in layout.shapes]

    # 1. Values: what each statement reads, and which statements are step-only.
    current: dict[str, Value] = {n: ("in", n) for n in ("w", "g", "lr", "t")}
    current.update({name: ("state", k) for k, name in enumerate(p.state_names)})
    reads: list[tuple[Value, ...]] = []
    step_only: set[Value] = {("in", "lr"), ("in", "t")}
    for i, st in enumerate(p.statements):
        vals = tuple(current[a] if _is_var(a) else
                     ("const", float(ops.CONSTANTS.get(a, a)) if isinstance(a, str) else float(a))
                     for a in st.args)
        reads.append(vals)
        if st.op not in LEAF_REDUCING and all(v[0] == "const" or v in step_only for v in vals):
            step_only.add(("stmt", i))
        current[st.target] = ("stmt", i)
    update = current[p.outputs[0]]
    nexts = [current[name] for name in p.outputs[1:]]

    # 2. Registers. States written in place where nothing reads the old value later.
    consts: dict[float, int] = {}
    for vals in reads:
        for v in vals:
            if v[0] == "const":
                consts.setdefault(v[1], len(consts))
    if len(consts) > consts_for(bucket):
        raise ProgramError(f"{len(consts)} constants: more than bucket {bucket} holds")
    base = stmt_base(bucket)
    register: dict[Value, int] = {("in", n): k for k, n in enumerate(("w", "g", "lr", "t"))}
    register.update({("state", k): STATE_BASE + k for k in range(len(p.states))})
    register.update({("const", v): CONST_BASE + k for v, k in consts.items()})
    register.update({("stmt", i): base + i for i in range(len(p.statements))})
    in_place: set[tuple[int, int]] = set()  # (statement, state) written in place
    for k, nxt in enumerate(nexts):
        if nxt[0] != "stmt" or nxt in step_only or nxt[1] in {i for i, _ in in_place}:
            continue
        i = nxt[1]
        later = [v for vals in reads[i + 1:] for v in vals] + [update] + [
            n for j, n in enumerate(nexts) if j != k]
        if ("state", k) not in later:
            register[nxt] = STATE_BASE + k
            in_place.add((i, k))

    # 3. Instructions: step-only list, then loads, statements and state moves.
    n_ins = n_instructions(bucket)
    u_ops: list[_Instruction] = []
    main_ops: list[_Instruction] = []
    uses = Counter(v for vals in reads for v in vals) + Counter([update, *nexts])

    def scalar(v: Value) -> bool:
        return v[0] == "const" or v in step_only

    for i, st in enumerate(p.statements):
        ins = _Instruction(OPCODE[st.op], tuple(register[v] for v in reads[i]),
                           register[("stmt", i)], reads[i], ("stmt", i))
        if ("stmt", i) in step_only:
            u_ops.append(ins)
            continue
        # A product or a sum of the value computed just before (read nowhere else)
        # and a per-step scalar -- update * lr, sqrt(v) + eps -- joins that
        # instruction as its scale or its shift, out = f(...) * scale + shift: one
        # instruction and one row write fewer per step.
        prev = main_ops[-1] if main_ops else None
        scalars = [v for v in reads[i] if scalar(v)]
        if (prev is not None and len(scalars) == 1 and prev.value in reads[i]
                and uses[prev.value] == 1 and prev.join(st.op, register[scalars[0]])):
            prev.dest, prev.value = ins.dest, ins.value
            continue
        main_ops.append(_scaled_arguments(_scalar_last(ins, st.op, scalar), main_ops, uses))
    moves = [(k, nxt) for k, nxt in enumerate(nexts) if (_stmt(nxt), k) not in in_place]
    main_reads = {a for ins in main_ops for a in ins.rows}
    main_reads |= {register[update]} | {register[nxt] for _, nxt in moves}
    # lr and t are step-only values too: the step-only table holds them in their
    # registers, and one load serves them all.
    step_regs = [register[v] for v in (("in", "lr"), ("in", "t"))] + [
        register[("stmt", i)] for i in range(len(p.statements)) if ("stmt", i) in step_only]
    loads = [_Instruction(OPCODE["load_step_only"], (r,), r) for r in step_regs
             if r in main_reads]
    staging = staging_base(bucket)
    move_ops = [_Instruction(OPCODE["move"], (register[nxt],), staging + j)
                for j, (_, nxt) in enumerate(moves)]
    move_ops += [_Instruction(OPCODE["move"], (staging + j,), STATE_BASE + k)
                 for j, (k, _) in enumerate(moves)]
    program_ops = loads + main_ops + move_ops
    if len(program_ops) > n_ins or len(u_ops) > n_ins:
        raise ProgramError(f"program too long for bucket {bucket}")

    def table(entries: list[_Instruction]):
        opcode, dest = np.zeros(n_ins, np.int32), np.zeros(n_ins, np.int32)
        args = np.zeros((n_ins, 3), np.int32)
        epilogue = np.tile(np.array([UNIT, ZERO], np.int32), (n_ins, 1))
        prologue = np.full((n_ins, 3), UNIT, np.int32)
        for row, ins in enumerate(entries):
            opcode[row], dest[row] = ins.opcode, ins.dest
            args[row, : len(ins.args)] = ins.args
            epilogue[row] = ins.scale, ins.shift
            prologue[row, : len(ins.arg_scales)] = ins.arg_scales
        return opcode, args, dest, epilogue, prologue

    opcode, args, dest, epilogue, prologue = table(program_ops)
    u_opcode, u_args, u_dest, _, _ = table(u_ops)
    const_values = np.zeros(consts_for(bucket), np.float32)
    for value, k in consts.items():
        const_values[k] = value
    state_init = np.zeros(MAX_STATES, np.int32)
    state_init[: len(p.states)] = [s.init == "w" for s in p.states]

    size = np.ones((n_ins, 3, layout.n_leaves), np.float32)
    leafarg = np.zeros((n_ins, 3, layout.n_leaves), bool)
    matrix = np.zeros((n_ins, 3, layout.n_leaves), bool)
    dims = np.ones((n_ins, 3, layout.n_leaves, 2), np.float32)
    for leaf, (shape, result) in enumerate(zip(layout.shapes, checks, strict=True)):
        value_shape = {("in", "w"): shape, ("in", "g"): shape}
        value_shape.update({("state", k): result.states[n].shape
                            for k, n in enumerate(p.state_names)})
        value_shape.update({("stmt", i): a.shape for i, a in enumerate(result.statements)})
        for row, ins in enumerate(program_ops):
            for j, v in enumerate(ins.reads):
                s_ = value_shape.get(v, ())
                size[row, j, leaf] = math.prod(s_)
                leafarg[row, j, leaf] = s_ == shape
                if len(s_) == 2:
                    matrix[row, j, leaf], dims[row, j, leaf] = True, s_
                    if ins.opcode in _MATRIX_WORK and s_ != shape:
                        raise ProgramError(
                            f"{OP_NAMES[ins.opcode]} of a {s_} statistic of a {shape} leaf: "
                            "the training engine orthogonalizes only matrices shaped as "
                            "their leaf")
    return Encoded(
        length=np.asarray(len(program_ops), np.int32), opcode=opcode, args=args, dest=dest,
        epilogue=epilogue, prologue=prologue,
        u_length=np.asarray(len(u_ops), np.int32), u_opcode=u_opcode, u_args=u_args,
        u_dest=u_dest, consts=const_values, update_reg=np.asarray(register[update], np.int32),
        state_init=state_init, size=size, leafarg=leafarg, matrix=matrix, dims=dims,
    )


@dataclass
class _Instruction:
    """One instruction while encoding: ``dest = f(args) * scale + shift``."""

    opcode: int
    args: tuple[int, ...]
    dest: int
    reads: tuple[Value, ...] = ()  # the values of ``args`` (a statement's), in order
    value: Value | None = None  # the value it computes (after any fused scale, shift)
    scale: int = UNIT
    shift: int = ZERO
    arg_scales: tuple[int, ...] = ()  # per row argument: read as row * table[scale]

    def join(self, op: str, scalar: int) -> bool:
        """Take a following ``* scalar`` as the scale or ``+ scalar`` as the shift;
        False where the epilogue cannot (a shift then a scale is not f * scale + shift)."""
        if op == "mul" and (self.scale, self.shift) == (UNIT, ZERO):
            self.scale = scalar
        elif op == "add" and self.shift == ZERO:
            self.shift = scalar
        else:
            return False
        return True

    @property
    def rows(self) -> tuple[int, ...]:
        """The registers read as rows (a scalar variant reads its last one from the table)."""
        return self.args[:-1] if self.opcode in _SCALAR_OPCODES else self.args


_SCALAR_OPCODES = frozenset(OPCODE[f"{n}:scalar"] for n in SCALAR_LAST)
_MUL_SCALAR = OPCODE["mul:scalar"]
_MATRIX_WORK = frozenset(OPCODE[n] for n in MATRIX_WORK)


def uses_matrix_work(enc: Encoded) -> bool:
    """Whether an encoded program calls a function of :data:`MATRIX_WORK` (the
    engine compiles those only into the loops of programs that do)."""
    return bool(np.isin(enc.opcode[: int(enc.length)], list(_MATRIX_WORK)).any())


def _scalar_last(ins: _Instruction, op: str, scalar: Callable[[Value], bool]) -> _Instruction:
    """``ins`` as its function's scalar variant when its last argument is a per-step
    scalar and another is not (after swapping a scalar first argument where the
    value stays the same bit for bit); else ``ins`` unchanged."""
    reads, args = ins.reads, ins.args
    if len(reads) == 2 and op in SWAPPABLE and scalar(reads[0]) and not scalar(reads[1]):
        reads, args = reads[::-1], args[::-1]
    if op not in SCALAR_LAST or not scalar(reads[-1]) or all(map(scalar, reads[:-1])):
        return ins
    ins.opcode, ins.reads, ins.args = OPCODE[f"{op}:scalar"], reads, args
    return ins


def _scaled_arguments(ins: _Instruction, before: list[_Instruction],
                      uses: Counter) -> _Instruction:
    """Fold into ``ins`` each product by a per-step scalar that only ``ins`` reads.

    ``wd = w * 0.01; u = u + wd`` becomes one instruction reading ``w`` and
    scaling it by 0.01 on the way in (``before`` loses the product): a row
    written and read again saved. Not when the product's own argument is
    overwritten in between (a state written in place), nor for a product
    already scaled or shifted.
    """
    scales = [UNIT] * len(ins.rows)
    reads, args = list(ins.reads), list(ins.args)
    for k in range(len(ins.rows)):
        v = reads[k]
        producer = next((j for j in range(len(before) - 1, -1, -1)
                         if before[j].value == v), None)
        if producer is None or uses[v] != 1:
            continue
        p = before[producer]
        later_dests = {q.dest for q in before[producer + 1:]}
        if (p.opcode != _MUL_SCALAR or (p.scale, p.shift) != (UNIT, ZERO)
                or p.arg_scales != () or p.args[0] in later_dests):
            continue
        reads[k], args[k], scales[k] = p.reads[0], p.args[0], p.args[1]
        del before[producer]
    if scales != [UNIT] * len(ins.rows):
        ins.reads, ins.args, ins.arg_scales = tuple(reads), tuple(args), tuple(scales)
    return ins


def _stmt(value: Value) -> int | None:
    return value[1] if value[0] == "stmt" else None

