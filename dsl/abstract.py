"""Abstract execution: is a program valid, and which programs are the same?

All of it is cheap Python, no JAX tracing, so thousands of mutants a second can
be screened before any training:

- :func:`check` infers the shape and dtype of every variable and state for a
  parameter leaf of a given shape, or raises :class:`~dsl.errors.ProgramError`;
- :func:`structural_hash` identifies how the update is computed from the inputs,
  ignoring names, statement order, dead code and argument order of commutative
  functions;
- :func:`fingerprint` identifies what the program computes: a few NumPy steps on
  fixed random inputs, rounded and hashed, so ``m / sqrt(m * m)`` and ``sign(m)``
  share one.
"""

from __future__ import annotations

import hashlib
import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dsl import ops
from dsl.errors import ProgramError
from dsl.graph import liveness
from dsl.program import INPUTS, MAX_STATES, Program
from dsl.walk import Plan, initial_env, walk

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Abstract:
    """The abstract value of a variable: its shape and dtype."""

    shape: Shape
    dtype: str


@dataclass(frozen=True)
class CheckResult:
    """What :func:`check` infers for one leaf shape.

    ``statements[i]`` is the value statement ``i`` assigns, ``variables`` the last
    value of each name, ``states`` each state's shape and dtype (what an
    optimizer's ``init`` allocates) and ``update`` the update's.
    """

    statements: tuple[Abstract, ...]
    variables: dict[str, Abstract]
    states: dict[str, Abstract]
    update: Abstract


# Abstract values while walking: a shape (None while not yet known, which
# broadcasts like a scalar), and separately a dtype with a weak flag. Weak values
# (constants, lr, t) do not widen a dtype, as in JAX: a bfloat16 gradient times
# 0.9 stays bfloat16. float32 leaves (the common case) skip the dtype walk.
_STATE_DTYPE = "float32"
_SCALAR_ARGS = {name: op.scalar_args for name, op in ops.OPS.items()}
_Dtype = tuple[str, bool]


def _shape_semantics(min_dim: int, sink: list[Shape | None] | None = None):
    """``apply`` for shapes; records each result in ``sink`` if given."""

    def apply(op: ops.Op, args: list[Shape | None]) -> Shape | None:
        for j in _SCALAR_ARGS[op.name]:
            if args[j]:
                raise ops.ShapeError(f"argument {j + 1} must be a scalar, got shape {args[j]}")
        out = op.result_shape(*args, min_dim=min_dim)
        if sink is not None:
            sink.append(out)
        return out

    return apply


def _shape_const(value: float) -> Shape:
    return ()


def _dtype_semantics(sink: list[_Dtype]):
    def apply(op: ops.Op, args: list[_Dtype]) -> _Dtype:
        dtype = None
        for d, weak in args:
            if not weak:
                dtype = d if dtype in (None, d) else "float32"
        out = (dtype or "float32", dtype is None)
        sink.append(out)
        return out

    return apply


def _dtype_const(value: float) -> _Dtype:
    return ("float32", True)


def check(
    program: Program,
    shape: Shape,
    dtype: str = "float32",
    *,
    factor_min_dim: int = ops.FACTOR_MIN_DIM,
) -> CheckResult:
    """Infer every shape and dtype for a parameter leaf of ``shape`` and ``dtype``.

    Raises :class:`ProgramError` naming the statement, the function and the reason
    for an unknown function or variable, a wrong arity, a shape mismatch, a
    variable used before assignment, a state whose shape changes from one step
    to the next, an update not shaped like the parameter, or an update that does
    not depend on ``g``. Results are cached on the program.

    >>> from dsl import library
    >>> r = check(library.get("adafactor"), (256, 128))
    >>> r.states["v_row"].shape, r.states["v_col"].shape
    ((128,), (256,))
    """
    if not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 0
               for d in shape):
        raise ProgramError(f"a leaf shape is a tuple of integers >= 0, got {tuple(shape)!r}")
    shape = tuple(int(d) for d in shape)
    return program.derived(
        ("check", shape, dtype, factor_min_dim),
        lambda: _check(program, shape, dtype, factor_min_dim),
    )


def _check(program: Program, shape: Shape, dtype: str, min_dim: int) -> CheckResult:
    plan = Plan.of(program)
    guess, env, outs, assigned = _settle_states(
        program, plan, range(len(program.states)), shape, min_dim)
    for s, out, returned in zip(program.states, outs[1:], program.outputs[1:], strict=True):
        if out != guess[s.name]:
            raise ProgramError(
                f"state {s.name!r} changes shape from one step to the next: it starts as "
                f"{guess[s.name]} and the return gives {returned!r} of shape {out}"
            )
    if outs[0] != shape:
        raise ProgramError(
            f"the update {program.outputs[0]!r} has shape {outs[0]}, but the parameter "
            f"has shape {shape}"
        )
    if "g" not in liveness(program).inputs:
        raise ProgramError(f"the update {program.outputs[0]!r} does not depend on the gradient g")

    dtypes = _dtypes(program, plan, dtype)
    names = [st.target for st in program.statements]
    variables = {k: Abstract(v, dtypes.get(k, "float32")) for k, v in env.items()}
    for name in program.state_names:
        if name not in names:
            del variables[name]
    return CheckResult(
        statements=tuple(
            Abstract(v, dtypes[i]) for i, v in enumerate(assigned)  # type: ignore[arg-type]
        ),
        variables=variables,
        states={name: Abstract(guess[name], _STATE_DTYPE) for name in program.state_names},
        update=variables.get(program.outputs[0]) or Abstract(shape, dtypes.get("w", dtype)),
    )


def _dtypes(program: Program, plan: Plan, dtype: str) -> dict:
    """Dtype per statement index and per final variable name."""
    if dtype == "float32":
        return _ALL_FLOAT32
    strong, weak = (dtype, False), ("float32", True)
    inputs = {"w": strong, "g": strong, "lr": weak, "t": weak}
    env = initial_env(program, inputs, [(_STATE_DTYPE, False)] * len(program.states))
    sink: list[_Dtype] = []
    walk(plan, env, _dtype_const, _dtype_semantics(sink))
    out: dict = {i: d for i, (d, _) in enumerate(sink)}
    out.update({k: d for k, (d, _) in env.items()})
    return out


class _Float32(dict):
    def __missing__(self, key: object) -> str:
        return "float32"


_ALL_FLOAT32 = _Float32()


# --- structural hash -------------------------------------------------------------


# Nodes are hashed with Python's hash of tuples of ints and floats, which is
# deterministic across processes (no string hashing, so PYTHONHASHSEED does not
# matter) and far cheaper than a cryptographic hash per node; only the final
# value goes through blake2b.
# Codes are non-negative (in CPython hash(-1) == hash(-2)); a function's is its
# ``Op.opcode``, never renumbered.
_INPUT_CODES = {name: 1000 + k for k, name in enumerate(INPUTS)}
_INIT_CODES = {"zeros": 2000, "w": 2001}
_CONST = 3000


def _hash_apply(op: ops.Op, args: list[int]) -> int:
    code = op.opcode  # stable: see ops._add
    if op.commutative:
        return hash((code, *sorted(args)))
    return hash((code, *args))


def _hash_const(value: float) -> int:
    return hash((_CONST, float(value)))


def structural_hash(program: Program) -> str:
    """A hash of how the update is computed from the inputs, across steps.

    Equal for programs that differ only in variable names, the order of
    independent statements, dead statements and states, or the argument order of
    commutative functions. States are identified by how they start and by their
    recurrence, unrolled once per live state (as in Weisfeiler-Lehman refinement),
    never by name or position.
    """
    return program.derived("structural_hash", lambda: _structural_hash(program))


def skeleton_hash(program: Program) -> str:
    """A hash of how the update is computed up to the values of its constants: equal for
    programs that are the same algorithm with other hyperparameters (AdamW with other
    betas and weight decay has AdamW's skeleton). Constants of 0 and 1 first drop what
    they make vanish (``x * 0``, ``x * 1``, ``x + 0``, ``x - 0``, ``x / 1``,
    ``interp(x, y, 0)``, ``interp(x, y, 1)``, ``interp(x, x, a)``), so a program without
    weight decay is one with weight decay 0; then every constant is alike. States are
    unrolled a fixed number of times, so a state that vanishes changes nothing. What
    :mod:`dsl.skeleton` names programs by."""
    return program.derived("skeleton_hash", lambda: _skeleton_hash(program))


_ANY_CONST = hash((_CONST,))
_Folded = tuple[str, Any]  # ("c", value) for a known constant, ("h", hash) otherwise


def _fold_const(value: float) -> _Folded:
    return ("c", float(value))


def _fold_apply(op: ops.Op, args: list[_Folded]) -> _Folded:
    def is_(k: int, value: float) -> bool:
        return args[k][0] == "c" and args[k][1] == value

    name = op.name
    if name == "mul" and (is_(0, 0.0) or is_(1, 0.0)):
        return ("c", 0.0)
    if name in ("mul", "add") and (is_(0, 1.0 if name == "mul" else 0.0)):
        return args[1]
    if ((name == "mul" and is_(1, 1.0)) or (name in ("add", "sub") and is_(1, 0.0))
            or (name == "div" and is_(1, 1.0))):
        return args[0]
    if name == "interp":
        if is_(2, 0.0) or args[0] == args[1]:
            return args[0]
        if is_(2, 1.0):
            return args[1]
    return ("h", _hash_apply(op, [_unfold(a) for a in args]))


def _unfold(value: _Folded) -> int:
    return value[1] if value[0] == "h" else _ANY_CONST


def _skeleton_hash(program: Program) -> str:
    live = liveness(program)
    plan = Plan.live_of(program)
    init = [hash((_INIT_CODES[s.init],)) for s in program.states]
    labels: list[_Folded] = [("h", x) for x in init]
    inputs = {name: ("h", hash((code,))) for name, code in _INPUT_CODES.items()}
    update: _Folded = ("c", 0.0)
    for _ in range(MAX_STATES + 1):  # as many unrollings whatever the states left live
        env = initial_env(program, inputs, labels)
        outs = walk(plan, env, _fold_const, _fold_apply)
        update = outs[0]
        returned = dict(zip(sorted(live.states), outs[1:], strict=True))
        labels = [("h", hash((init[k], _unfold(returned[k])))) if k in returned
                  else ("h", init[k]) for k in range(len(program.states))]
    return hashlib.blake2b(_unfold(update).to_bytes(8, "little", signed=True),
                           digest_size=12).hexdigest()


def _structural_hash(program: Program) -> str:
    live = liveness(program)
    plan = Plan.live_of(program)
    init = [hash((_INIT_CODES[s.init],)) for s in program.states]
    labels = list(init)
    inputs = {name: hash((code,)) for name, code in _INPUT_CODES.items()}
    update = 0
    for _ in range(len(live.states) + 1):
        env = initial_env(program, inputs, labels)
        outs = walk(plan, env, _hash_const, _hash_apply)
        update = outs[0]
        returned = dict(zip(sorted(live.states), outs[1:], strict=True))
        labels = [
            hash((init[k], returned[k])) if k in returned else init[k]
            for k in range(len(program.states))
        ]
    return hashlib.blake2b(update.to_bytes(8, "little", signed=True), digest_size=12).hexdigest()


# --- fingerprint -----------------------------------------------------------------

#: The fingerprint's runs: a leaf shape and the steps ``t`` fed to it. Together
#: the steps show every period from 1 to 8 differently (``mod(t, k) == 0``),
#: and the first run starts at t = 1, where first-step rules act.
FINGERPRINT_RUNS: tuple[tuple[Shape, tuple[float, ...]], ...] = (
    ((), (1.0, 2.0, 3.0, 840.0)),
    ((7,), (4.0, 5.0, 6.0, 7.0)),
)
#: For programs that use Adafactor's or Muon's functions (only they see rank): a
#: small matrix, factored with a threshold of 2.
FACTORED_RUN: tuple[Shape, tuple[float, ...]] = ((5, 3), (1.0, 2.0, 3.0, 8.0))
FINGERPRINT_MIN_DIM = 2
_MANTISSA_BITS = 24
_INPUTS_CACHE: dict[Shape, tuple[np.ndarray, list[np.ndarray], list[float]]] = {}


def _fingerprint_inputs(shape: Shape, n: int) -> tuple[np.ndarray, list[np.ndarray], list[float]]:
    if shape not in _INPUTS_CACHE:
        rng = np.random.default_rng([20230213, len(shape), *shape])
        w0 = rng.standard_normal(shape)
        grads = [rng.standard_normal(shape) for _ in range(n)]
        lrs = [float(x) for x in rng.uniform(0.1, 1.0, n)]
        _INPUTS_CACHE[shape] = (w0, grads, lrs)
    return _INPUTS_CACHE[shape]


def _np_const(value: float) -> np.float64:
    return np.float64(value)


def _numpy_semantics(min_dim: int):
    def apply(op: ops.Op, args: list[Any]) -> Any:
        return op.apply(np, *args, min_dim=min_dim)

    return apply


def _settle_states(program: Program, plan: Plan, states: Iterable[int], shape: Shape,
                   min_dim: int) -> tuple[dict[str, Shape | None], dict, tuple, list]:
    """The states' shapes on a leaf of ``shape``, and the last walk's environment,
    outputs and statement shapes (``plan`` returns the update, then ``states``).

    Zero-initialised states start with unknown shapes (they broadcast like
    scalars) and take the shape they are first returned with, until nothing
    changes; a state that only ever meets scalars is a scalar. A known shape is
    never revised (the caller checks what the last walk returned). The last walk
    has every state's shape known.
    """
    inputs: dict[str, Shape] = {"w": shape, "g": shape, "lr": (), "t": ()}
    names = [program.states[k].name for k in states]
    guess = {s.name: (shape if s.init == "w" else None) for s in program.states}

    def run() -> tuple[dict, tuple, list]:
        assigned: list[Shape | None] = []
        env = initial_env(program, inputs, [guess[s.name] for s in program.states])
        return env, walk(plan, env, _shape_const, _shape_semantics(min_dim, assigned)), assigned

    settled = False
    for _ in range(len(names) + 1):
        env, outs, assigned = run()
        new = {n: out if guess[n] is None else guess[n]
               for n, out in zip(names, outs[1:], strict=True)}
        settled = new == {n: guess[n] for n in names}
        if settled:
            break
        guess.update(new)
    if not settled or any(guess[n] is None for n in names):
        guess.update({n: () for n in names if guess[n] is None})
        env, outs, assigned = run()
    return guess, env, outs, assigned


def _state_shapes(program: Program, shape: Shape, min_dim: int) -> dict[str, Shape]:
    """The shapes :func:`check` gives the live states on a leaf of ``shape``, from the
    same fixpoint over the live statements only (cheaper: fingerprints need it for
    every program); {} where a shape rule refuses."""

    def solve() -> dict[str, Shape]:
        live = sorted(liveness(program).states)
        try:  # Plan.live_of returns the update, then the live states in order
            guess = _settle_states(program, Plan.live_of(program), live, shape, min_dim)[0]
        except ProgramError:
            return {}
        return {program.states[k].name: guess[program.states[k].name] for k in live}

    return program.derived(("state_shapes", shape, min_dim), solve)


def run_numpy(
    program: Program,
    w: np.ndarray,
    grads: list[np.ndarray],
    lrs: list[float],
    steps: list[float],
    *,
    states: list[np.ndarray] | None = None,
    factor_min_dim: int = ops.FACTOR_MIN_DIM,
    live_only: bool = False,
    dtype: Any = np.float64,
) -> list[tuple[np.ndarray, ...]]:
    """Run ``program`` with NumPy for ``len(grads)`` steps on one leaf.

    This is the NumPy semantics behind :func:`fingerprint`. ``states`` are the
    initial states; by default a state starts as a copy of ``w`` or as zeros of
    the shape :func:`check` infers, as the JAX interpreter allocates them (a
    scalar zero where the program has no reductions: it broadcasts to the same
    values, but ``global_norm`` of it would differ). Applies
    ``w ← w − update`` between steps and returns, per step, the program's
    outputs (the update, then the states). With ``live_only`` it skips dead
    statements and returns the update and the live states only. Values are
    computed in ``dtype`` (float64 for fingerprints).
    """
    plan = Plan.live_of(program) if live_only else Plan.of(program)
    w = np.asarray(w, dtype=dtype)
    if (states is None and w.shape and any(s.init == "zeros" for s in program.states)
            and any(ops.OPS[st.op].reduces for st in program.statements)):
        shapes = _state_shapes(program, w.shape, factor_min_dim)
        states = [np.zeros(shapes.get(s.name, ()), dtype) if s.init == "zeros" else w.copy()
                  for s in program.states]
    if states is None:  # a scalar leaf, or no reductions: a scalar zero gives the same values
        states = [dtype(0.0) if s.init == "zeros" else w.copy() for s in program.states]
    states = list(states)
    apply = _numpy_semantics(factor_min_dim)
    const = _np_const if dtype is np.float64 else float  # Python floats stay weak
    plan_states = sorted(liveness(program).states) if live_only else range(len(states))
    history = []
    with np.errstate(all="ignore"):
        for g, lr, t in zip(grads, lrs, steps, strict=True):
            inputs = {"w": w, "g": np.asarray(g, dtype), "lr": dtype(lr), "t": dtype(t)}
            outs = walk(plan, initial_env(program, inputs, states), const, apply)
            history.append(outs)
            for k, value in zip(plan_states, outs[1:], strict=True):
                states[k] = value
            w = w - outs[0]
    return history


def _quantize(x: Any) -> bytes:
    x = np.asarray(x, dtype=np.float64)
    mantissa, exponent = np.frexp(x)
    q = np.round(mantissa * (1 << _MANTISSA_BITS))
    finite = np.isfinite(x)
    if not finite.all():
        # NaN and ±Inf get codes of their own, stable from run to run.
        code = np.where(np.isnan(x), 3.0, np.where(x > 0, 1.0, 2.0))
        q = np.where(finite, q, code)
        exponent = np.where(finite, exponent, 1 << 20)
    return q.astype(np.int64).tobytes() + exponent.astype(np.int64).tobytes()


def fingerprint(program: Program) -> str:
    """A hash of the updates the program produces on fixed random inputs.

    Programs that compute the same function share it (``x * 2`` and ``x + x``;
    ``m / sqrt(m * m)`` and ``sign(m)``). Runs the live statements in float64
    for each of :data:`FINGERPRINT_RUNS` (a leaf shape and its steps), rounds
    each update to 24 significant bits and hashes them; NaN and Inf have stable
    codes of their own. The program must pass :func:`check`. Cached on the
    program.
    """
    return program.derived("fingerprint", lambda: _fingerprint(program))


def _fingerprint(program: Program) -> str:
    runs = FINGERPRINT_RUNS
    marker = b""
    live = liveness(program).statements
    used = [ops.OPS[program.statements[i].op] for i in live]
    if any(op.factored or op.matrix for op in used):
        try:
            check(program, FACTORED_RUN[0], factor_min_dim=FINGERPRINT_MIN_DIM)
            runs = runs + (FACTORED_RUN,)
        except ProgramError:
            # Valid only on unfactored leaves (e.g. unfactor() fed a full moment):
            # a fact about the function worth keeping apart.
            marker = b"invalid when factored"
    updates = []
    for shape, steps in runs:
        w0, grads, lrs = _fingerprint_inputs(shape, len(steps))
        history = run_numpy(
            program, w0, grads, lrs, list(steps), factor_min_dim=FINGERPRINT_MIN_DIM,
            live_only=True,
        )
        updates += [np.broadcast_to(outs[0], shape).ravel() for outs in history]
    data = _quantize(np.concatenate(updates)) + marker
    return hashlib.blake2b(data, digest_size=12).hexdigest()
