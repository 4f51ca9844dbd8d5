"""Tests for evaluators/engine.py and encode.py: compile once, agree with to_optax."""

from __future__ import annotations

from dataclasses import dataclass, fields

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl import Program, ProgramError, Statement, abstract, library, ops, parse
from evaluators import engine
from evaluators.encode import BUCKETS, Layout, bucket_of, encode, uses_matrix_work
from evaluators.tasks import Data, Task, get
from search.generate import random_program
from tests.strategies import programs

# A task small enough to compile quickly, with a factored (tall) matrix, a wide one,
# a vector and a scalar.
SHAPES = {"m": (130, 128), "k": (12, 20), "v": (7,), "s": ()}


def _tiny_data() -> Data:
    rng = np.random.default_rng(0)
    return Data(train=(rng.standard_normal((64, 4)).astype(np.float32),), val=(np.zeros((1, 4),
                                                                                 np.float32),))


def _loss(p, batch):
    noise = batch[0].mean()
    return (0.5 * jnp.mean((p["m"] - 0.3) ** 2) + jnp.sum(jnp.sin(p["v"] + noise) ** 2)
            + (p["s"] - noise) ** 2 + jnp.mean(jnp.cos(p["k"] * (1.0 + noise))))


TINY = Task(
    name="tiny/test", family="tiny", tier="test", steps=6, batch_size=4,
    init=lambda rng: {k: rng.standard_normal(s).astype(np.float32) for k, s in SHAPES.items()},
    # a metric is positive (evaluators.engine refuses a negative one): the cosine term
    # is at least -1
    loss=_loss, metric=lambda p, v: _loss(p, v) + 2.0, data=_tiny_data,
)


@dataclass(frozen=True)
class ScaledSchedule(Task):
    """A task whose learning-rate schedule peaks at 0.01 instead of 1.0."""

    def schedule(self, step):
        return 0.01 * super().schedule(step)


#: TINY at a learning rate the library's optimizers are used with. Their programs carry
#: no learning rate of their own, and at TINY's peak of 1.0 AdamW moves every parameter by
#: about +-1 a step on a loss with sin^2 terms: chaotic, so that float32 rounding alone
#: moves the metric by 5e-4 (seed 0: the engine matched a float64 run to 1e-6, to_optax
#: did not).
TINY_LR = ScaledSchedule(**{f.name: getattr(TINY, f.name) for f in fields(Task)}
                         | {"name": "tiny/lr0.01"})


def agree(program: Program, task: Task = TINY, seeds=(0, 1), rtol: float = 1e-4) -> None:
    (em, es, eo), _ = engine.run_engine(program, task, seeds)
    dm, ds, do = engine.run_direct(program, task, seeds)
    np.testing.assert_array_equal(eo, do)
    np.testing.assert_array_equal(es, ds)
    both = eo & do
    np.testing.assert_allclose(em[both], dm[both], rtol=rtol, atol=1e-6)


@pytest.mark.parametrize("name", ["warmstart", "adamw", "lion", "adafactor", "adan",
                                  "ademamix", "cadamw", "clion", "muon", "lookahead_adamw",
                                  "rmsprop", "nesterov", "program4"])
def test_engine_agrees_with_to_optax_on_the_library(name: str) -> None:
    agree(library.get(name), TINY_LR, rtol=1e-5)  # all within 5e-7 (2026-11-22)


REDUCING = [
    "u = global_norm(g)\n  u = g * u",
    "u = dot(g, w)\n  u = g * u",
    "u = dot(g, lr)\n  u = g * u",
    "u = cosine_sim(g, w)\n  u = g * u",
    "u = cosine_sim(g, lr)\n  u = g * u",
    "u = norm(g)",
    "n = global_norm(lr)\n  u = g * n",
    "u = clip_by_global_norm(g, 0.5)",
    "u = mean(g)\n  u = g - u",
    "u = rms(g)\n  u = g / u",
    "r = factor_row(g)\n  c = factor_col(g)\n  u = unfactor(r, c, g)",
    "r = factor_row(g)\n  c = factor_col(r)\n  u = g * c",
    "s = square(g)\n  r = factor_row(s)\n  c = factor_col(s)\n  v = unfactor(r, c, w)\n  u = g / v",
    "c = factor_col(lr)\n  u = g * c",
    "n = norm(lr)\n  u = g * n",
    "u = newton_schulz(g)",
    "m = interp(g, w, 0.5)\n  u = newton_schulz(m)\n  u = u + g",
    "n = newton_schulz(lr)\n  u = g * n",
    "r = factor_row(g)\n  n = newton_schulz(r)\n  c = factor_col(g)\n  u = unfactor(n, c, g)",
    "k = is_matrix(g)\n  u = g * k\n  u = u + g",
    "k = is_matrix(lr)\n  u = g + k",
    "a = fan_in(g)\n  b = fan_out(g)\n  k = a / b\n  u = g * k",
    "a = fan_in(lr)\n  b = fan_out(t)\n  k = a + b\n  u = g * k",
]


@pytest.mark.parametrize("body", REDUCING)
def test_every_reducing_function_agrees(body: str) -> None:
    program = parse(f"def train(w, g, lr, t):\n  {body}\n  u = u * lr\n  u = u * 0.01\n"
                    "  return u\n")
    agree(program)


def test_reducing_functions_are_all_covered() -> None:
    used = {st.op for body in REDUCING for st in parse(
        f"def train(w, g, lr, t):\n  {body}\n  return u\n").statements}
    # the op table says which functions are leaf-reducing; each has its engine twin
    reducing = {n for n, op in ops.OPS.items() if op.leaf_reducing}
    assert reducing <= used
    assert all(ops.OPS[n].flat is not None for n in reducing)
    assert {"norm", "clip_by_global_norm", "mean", "unfactor"} <= reducing


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(min_len=3, max_len=12, shape=(130, 128)))
def test_engine_agrees_with_to_optax_on_random_programs(program: Program) -> None:
    for shape in SHAPES.values():
        try:
            abstract.check(program, shape)
        except ProgramError:
            return  # valid for the matrix only; the task rejects it
    if bucket_of(program) > 16:
        return
    agree_where_conditioned(program)


MATRIX_FUNCTIONS = sorted(n for n, op in ops.OPS.items() if op.matrix)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(min_len=3, max_len=10, shape=(130, 128)), st.integers(0, 2**31))
def test_engine_agrees_with_to_optax_on_programs_with_matrix_functions(
        program: Program, seed: int) -> None:
    """A random program with a matrix function of one of its values added to its update."""
    rng = np.random.default_rng(seed)
    values = ["g", "w", *{s.target for s in program.statements}]
    fn = MATRIX_FUNCTIONS[rng.integers(len(MATRIX_FUNCTIONS))]
    u = program.outputs[0]
    statements = program.statements + (
        Statement("mx", fn, (values[rng.integers(len(values))],)),
        Statement("u_mx", "add", (u, "mx")),
    )
    program = program.model_copy(update={"statements": statements,
                                         "outputs": ("u_mx", *program.outputs[1:])})
    for shape in SHAPES.values():
        try:
            abstract.check(program, shape)
        except ProgramError:
            return
    if bucket_of(program) > 16:
        return
    agree_where_conditioned(program)


def agree_where_conditioned(program: Program, task: Task = TINY, seeds=(0, 1)) -> None:
    """Engine and direct path agree as far as the training run is well conditioned.

    Random programs can be chaotic (``update = w / (1 - g)`` near g = 1), where
    float32 rounding alone moves the result: the direct path is run again on
    training data scaled by 1 + 1e-6 and by 1 - 1e-6 (a few units in the last
    place, the same compiled function), and the engine may differ by 10x the
    larger spread on top of a relative 1e-3. (One direction alone under-measured
    a chaotic ``mod`` program 7x on one seed.)
    """
    from dsl.interpreter import to_optax

    (em, es, eo), _ = engine.run_engine(program, task, seeds)
    run = engine.direct_runner(task, to_optax(program, task.schedule))
    inputs = engine.seed_inputs(task, seeds)
    train, val = engine.device_data(task)
    dm, ds, do = (np.asarray(x) for x in run(*inputs, train, val))
    perturbed = [[np.asarray(x) for x in run(*inputs, tuple(a * (1 + e) for a in train), val)]
                 for e in (1e-6, -1e-6)]
    both = eo & do & np.logical_and.reduce([po for _, _, po in perturbed])
    np.testing.assert_array_equal(es[both], ds[both])
    spread = np.max([np.abs(pm - dm)[both] for pm, _, _ in perturbed], axis=0)
    assert np.all(np.abs(em - dm)[both] <= 1e-3 * np.abs(dm[both]) + 1e-6 + 10 * spread)
    if np.all(spread <= 1e-6 * np.abs(dm[both]) + 1e-7):  # well conditioned: exactly as agree
        np.testing.assert_array_equal(eo, do)


def test_fifty_programs_of_one_bucket_compile_once() -> None:
    """Once per bucket, and once more for the programs that orthogonalize matrices."""
    task = get("quadratic/A")
    rng = np.random.default_rng(0)
    programs_, matrix = [], []
    while len(programs_) < 50:
        p = random_program(rng, int(rng.integers(3, 9)), n_states=2, shape=(16, 8))
        try:
            if bucket_of(p) == 16:
                matrix.append(uses_matrix_work(encode(p, engine.layout_for(task), 16)))
                programs_.append(p)
        except ProgramError:
            continue
    assert 0 < sum(matrix) < 50  # both kinds drawn
    before = engine.compile_count("quadratic/A")
    engine.run_engine(programs_[0], task, (0, 1))
    compiled = engine.compile_count("quadratic/A") - before
    assert compiled <= 1
    for p in programs_[1:]:
        engine.run_engine(p, task, (0, 1))
    assert engine.compile_count("quadratic/A") - before <= compiled + 1


def test_layout_groups() -> None:
    layout = Layout.of({"a": jnp.zeros((130, 128)), "b": jnp.zeros(5)})
    assert layout.size == 130 * 128 + 5
    # factor_row means over the largest axis (130): 128 groups of 130 elements.
    rows = layout.row_group[: 130 * 128]
    assert len(np.unique(rows)) == 128 and np.bincount(rows)[0] == 130
    cols = layout.col_group[: 130 * 128]
    assert len(np.unique(cols)) == 130
    assert len(np.unique(layout.col_group[130 * 128:])) == 1  # the vector: one group
    assert layout.factored[: 130 * 128].all() and not layout.factored[130 * 128:].any()


def test_buckets() -> None:
    assert bucket_of(library.get("lion")) == 16
    assert bucket_of(library.get("warmstart")) == 16
    assert bucket_of(library.get("adamw")) == 16
    assert bucket_of(library.get("adan")) == 32
    assert BUCKETS[-1] == 64


def test_encoding_moves_computes_step_only_and_writes_in_place() -> None:
    from evaluators.encode import OPCODE

    layout = engine.layout_for(TINY)
    warm = encode(library.get("warmstart"), layout)
    main = warm.opcode[: int(warm.length)]
    assert OPCODE["move"] not in main  # m and v are written in place
    assert int(warm.u_length) == 1  # lr * 0.001 is computed once for all steps
    loads = warm.opcode[: int(warm.length)] == OPCODE["load_step_only"]
    assert not set(warm.args[: int(warm.length)][loads, 0]) & {2, 3}  # neither lr nor t loaded
    adamw = encode(library.get("adamw"), layout)
    assert int(adamw.u_length) == 4  # both bias corrections
    adan = encode(library.get("adan"), layout)
    assert list(adan.opcode[: int(adan.length)]).count(OPCODE["move"]) == 2  # prev_g <- g


def opcode_names(enc) -> list[str]:
    """The main instructions' opcodes, by name."""
    from evaluators.encode import OPCODE

    names = {k: name for name, k in OPCODE.items()}
    return [names[int(k)] for k in enc.opcode[: int(enc.length)]]


def register_name(enc, defaults: tuple[int, ...]):
    """A step-only register by name: None for ``defaults`` (an absent scale or
    shift), "lr", "t", a constant's value, "c" for a step-only statement, else the
    register number itself."""
    from evaluators.encode import CONST_BASE

    names = dict.fromkeys(defaults)
    names.update({2: "lr", 3: "t"})
    names.update({CONST_BASE + k: float(c) for k, c in enumerate(enc.consts) if c})
    step_only = {int(d) for d in enc.u_dest[: int(enc.u_length)]}
    return lambda r: names.get(int(r), "c" if int(r) in step_only else int(r))


def f32(x):
    """An expected constant as the encoder stores it (float32); names unchanged."""
    return float(np.float32(x)) if isinstance(x, float) else x


@pytest.mark.parametrize(("body", "length", "epilogue"), [
    # a product by lr joins the instruction before it: one instruction, scale lr
    ("def train(w, g, lr, t):\n  a = g * 0.5\n  u = a * lr\n  return u", 1, [("lr", None)]),
    # by a step-only value (a register of its own), the scalar first
    ("def train(w, g, lr, t):\n  c = power(0.9, t)\n  a = g + w\n  u = c * a\n  return u",
     1, [("c", None)]),
    # a sum with a constant is the shift; scale then shift, both on one instruction
    ("def train(w, g, lr, t):\n  a = sqrt(g)\n  b = a * 2.0\n  u = b + 1e-8\n  return u",
     1, [(2.0, 1e-8)]),
    # shift then scale is not f * scale + shift: the product stays an instruction
    # (reading lr as a scalar, no load)
    ("def train(w, g, lr, t):\n  a = sqrt(g)\n  b = 1e-8 + a\n  u = b * lr\n  return u",
     2, [(None, 1e-8), None]),
    # the value is read again later: not fused into sign (the product is folded
    # into the sum that reads it instead: an argument scale)
    ("def train(w, g, lr, t):\n  a = sign(g)\n  u = a * lr\n  v = u + a\n  return v",
     2, [None] * 2),
    # a product of two per-element values is no scale; nor is a subtraction a shift
    ("def train(w, g, lr, t):\n  a = g + w\n  u = a * a\n  v = u - 0.5\n  return v",
     3, [None] * 3),
    # the next state is scaled before it is written in place; u is not fused (n is read twice)
    ("def train(w, g, lr, t, m):\n  a = interp(g, m, 0.9)\n  n = a * 0.5\n  u = n * lr\n"
     "  return u, n", 2, [(0.5, None), None]),
])
def test_a_scaling_product_or_shift_joins_the_instruction_before(
        body: str, length: int, epilogue) -> None:
    from evaluators.encode import UNIT, ZERO

    program = parse(body + "\n")
    enc = encode(program, engine.layout_for(TINY))
    assert int(enc.length) == length
    name = register_name(enc, (UNIT, ZERO))  # the epilogue registers, by name
    got = [(name(a), name(b)) for a, b in enc.epilogue[:length]]
    assert got == [tuple(map(f32, e)) if e else (None, None) for e in epilogue]
    agree(program)


@pytest.mark.parametrize(("body", "ops_"), [
    # a constant or a step-only value as the last argument: read from the table
    ("def train(w, g, lr, t, m):\n  m = interp(g, m, 0.9)\n  c = power(0.9, t)\n"
     "  u = m / c\n  return u, m", ["interp:scalar", "div:scalar"]),
    # a scalar first argument of a product: swapped (then folded into the sum); a
    # function without a scalar variant reads the constant's row
    ("def train(w, g, lr, t):\n  a = 0.01 * w\n  b = gt(g, 0.0)\n  u = b + a\n  return u",
     ["gt", "add"]),
    # one that may not swap them (sub, power): a step-only value is loaded into a
    # row and read there
    ("def train(w, g, lr, t):\n  a = 1.0 - g\n  b = power(lr, a)\n  u = a * b\n  return u",
     ["load_step_only", "sub", "power", "mul"]),
    # a scalar norm bound; max with a scalar
    ("def train(w, g, lr, t):\n  a = clip_by_global_norm(g, 1.0)\n  b = max(a, w)\n"
     "  c = max(b, 0.5)\n  u = c * lr\n  return u",
     ["clip_by_global_norm:scalar", "max", "max:scalar"]),
])
def test_a_scalar_last_argument_is_read_from_the_step_only_table(body: str, ops_) -> None:
    program = parse(body + "\n")
    assert opcode_names(encode(program, engine.layout_for(TINY))) == ops_
    agree(program)


@pytest.mark.parametrize(("body", "ops_", "scaled"), [
    # a product by a scalar that one instruction reads: folded into that read
    ("def train(w, g, lr, t):\n  wd = w * 0.01\n  u = g + wd\n  return u",
     ["add"], [[None, 0.01]]),
    # by a step-only value, into a reducing function's argument
    ("def train(w, g, lr, t):\n  c = power(0.9, t)\n  a = c * g\n  u = norm(a)\n  return u",
     ["norm"], [["c"]]),
    # read twice: stays an instruction
    ("def train(w, g, lr, t):\n  a = g * 0.5\n  b = sign(a)\n  u = a + b\n  return u",
     ["mul:scalar", "sign", "add"], [[], [None], [None, None]]),
    # its argument (the state m) is written in place before the reader: not folded
    ("def train(w, g, lr, t, m):\n  a = m * 0.5\n  m = interp(g, m, 0.9)\n  u = a + m\n"
     "  return u, m", ["mul:scalar", "interp:scalar", "add"], [[], [None, None], [None, None]]),
])
def test_a_product_by_a_scalar_is_folded_into_the_argument_that_reads_it(
        body: str, ops_, scaled) -> None:
    from evaluators.encode import UNIT

    program = parse(body + "\n")
    enc = encode(program, engine.layout_for(TINY))
    assert opcode_names(enc) == ops_
    name = register_name(enc, (UNIT,))  # the argument scales, by name
    got = [[name(r) for r in enc.prologue[k, : len(s)]] for k, s in enumerate(scaled)]
    assert got == [[f32(x) for x in s] for s in scaled]
    agree(program)


@pytest.mark.parametrize("body", [
    # states swap: a's next value is b's old one
    "def train(w, g, lr, t, a, b):\n  c = interp(g, a, 0.5)\n  u = c + b\n  u = u * lr\n"
    "  u = u * 0.01\n  return u, b, c",
    # the old value is read after the new one is computed: no in-place write
    "def train(w, g, lr, t, m):\n  n = interp(g, m, 0.9)\n  u = n - m\n  u = u * lr\n"
    "  return u, n",
    # a state whose next value is step-only, and one that is the gradient
    "def train(w, g, lr, t, s, p):\n  s = lr * 2.0\n  u = g * s\n  u = u + p\n  u = u * 0.01\n"
    "  return u, s, g",
])
def test_engine_agrees_on_state_plumbing(body: str) -> None:
    agree(parse(body + "\n"))


def test_a_batch_of_programs_trains_as_each_alone() -> None:
    programs_ = [library.get("sgd"), library.get("momentum"), library.get("lion")]
    (metric, steps, ok), _ = engine.run_engine_batch(programs_, TINY, (0, 1))
    assert metric.shape == (3, 2)
    for k, p in enumerate(programs_):
        (m, s, o), _ = engine.run_engine(p, TINY, (0, 1))
        np.testing.assert_allclose(metric[k], m, rtol=1e-5)
        np.testing.assert_array_equal(steps[k], s)
        np.testing.assert_array_equal(ok[k], o)
    with pytest.raises(ValueError, match="one bucket"):
        engine.run_engine_batch([library.get("sgd"), library.get("adan")], TINY, (0,))


def test_a_learning_rate_grid_is_the_program_at_each_scaled_schedule() -> None:
    """``run_engine_grid`` at multiplier k trains as the program whose own scale is k times
    larger (the warm start's ``lr * 0.001`` written ``lr * 0.0005``, ``lr * 0.002``)."""
    task = get("quadratic/A")
    grid = (0.5, 1.0, 2.0)
    (metric, steps, ok), _ = engine.run_engine_grid(library.get("warmstart"), task, (0, 1), grid)
    assert metric.shape == steps.shape == ok.shape == (3, 2) and ok.all()
    text = library.source("warmstart")
    for k, scale in enumerate(grid):
        scaled = parse(text.replace("lr * 0.001", f"lr * {0.001 * scale!r}"))
        (want, want_steps, _), _ = engine.run_engine(scaled, task, (0, 1))
        np.testing.assert_allclose(metric[k], want, rtol=1e-4)
        np.testing.assert_array_equal(steps[k], want_steps)
    assert metric[0].mean() != metric[2].mean()  # the multiplier reached the update


def test_engine_refuses_to_orthogonalize_a_statistic_of_a_larger_leaf() -> None:
    """The engine orthogonalizes only a leaf's own matrix: newton_schulz of a rank-2
    Adafactor statistic of a rank-3 leaf is refused, naming the shapes (the direct
    path would orthogonalize it), while the same program is fine on matrix leaves."""
    program = parse("def train(w, g, lr, t):\n  r = factor_row(g)\n  n = newton_schulz(r)\n"
                    "  c = factor_col(g)\n  u = unfactor(n, c, g)\n  u = u * lr\n  return u\n")
    with pytest.raises(ProgramError, match=r"\(4, 128\) statistic of a \(4, 130, 128\) leaf"):
        encode(program, Layout.of({"x": np.zeros((4, 130, 128), np.float32)}))
    assert uses_matrix_work(encode(program, Layout.of({"x": np.zeros((130, 128), np.float32)})))
