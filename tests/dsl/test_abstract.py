"""Tests for dsl/abstract.py: check, structural_hash, fingerprint."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl import Program, ProgramError, Statement, abstract, library, ops, parse
from tests.strategies import programs

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def prog(body: str, states: str = "m") -> Program:
    head = f"def train(w, g, lr, t{', ' + states if states else ''}):\n"
    return parse(head + "".join(f"  {line}\n" for line in body.strip().splitlines()))


# --- check ---------------------------------------------------------------------


def test_check_reports_every_variable() -> None:
    r = abstract.check(library.get("adafactor"), (256, 128))
    assert r.variables["row"].shape == (128,)
    assert r.variables["col"].shape == (256,)
    assert r.variables["step_rms"].shape == ()
    assert r.variables["v"].shape == (256, 128)
    assert r.update == abstract.Abstract((256, 128), "float32")
    assert len(r.statements) == len(library.get("adafactor").statements)
    assert r.statements[0] == abstract.Abstract((256, 128), "float32")


def test_check_dtypes_follow_weak_typing() -> None:
    r = abstract.check(library.get("adamw"), (4, 3), "bfloat16")
    assert r.variables["g2"].dtype == "bfloat16"  # g * g stays bfloat16
    assert r.variables["m"].dtype == "float32"  # states are float32
    assert r.states["v"].dtype == "float32"
    assert r.variables["p1"].dtype == "float32"  # constants and t only


def test_scalar_states_are_inferred() -> None:
    p = prog("n = n + 1.0\nu = g / n\nu = u * lr\nreturn u, n", states="n")
    assert abstract.check(p, (5, 2)).states["n"].shape == ()


CHECK_ERRORS = [
    # (program, leaf shape, statement index or None, fragment)
    (prog("u = g * lr\nu = u + x\nreturn u, m"), (3,), 1, "unknown variable 'x'"),
    (prog("u = y * lr\ny = g * 2.0\nreturn u, m"), (3,), 0, "used before assignment 'y'"),
    (prog("r = factor_row(g)\nu = g * r\nreturn u, m"), (256, 128), 1,
     "mul: shapes (256, 128) and (128,) differ"),
    (prog("u = g * lr\nm = global_norm(g)\nreturn u, m", states="m=w"), (4, 4), None,
     "state 'm' changes shape from one step to the next: it starts as (4, 4) and the return "
     "gives 'm' of shape ()"),
    (prog("u = global_norm(g)\nreturn u, m"), (4, 4), None,
     "update 'u' has shape (), but the parameter has shape (4, 4)"),
    (prog("u = w * lr\nreturn u, m"), (4,), None, "does not depend on the gradient g"),
    (prog("u = clip_by_global_norm(g, g)\nreturn u, m"), (4,), 0,
     "argument 2 must be a scalar, got shape (4,)"),
    (prog("u = g * lr\nreturn u, q"), (4,), None, "unknown variable 'q' in the return"),
]


@pytest.mark.parametrize(("program", "shape", "index", "fragment"), CHECK_ERRORS)
def test_check_errors_name_the_statement_and_reason(program, shape, index, fragment) -> None:
    with pytest.raises(ProgramError) as info:
        abstract.check(program, shape)
    assert fragment in str(info.value)
    assert info.value.statement == index
    if index is not None:
        assert program.statements[index].to_source() in str(info.value)


def test_check_rejects_malformed_data_without_other_exceptions() -> None:
    unknown = Program.model_construct(
        states=(), statements=(Statement("u", "frob", ("g",)),), outputs=("u",))
    with pytest.raises(ProgramError, match="statement 0: unknown function 'frob'"):
        abstract.check(unknown, (3,))
    arity = Program.model_construct(
        states=(), statements=(Statement("u", "interp", ("g", "g")),), outputs=("u",))
    with pytest.raises(ProgramError, match="interp takes 3 arguments, got 2"):
        abstract.check(arity, (3,))


def test_pydantic_validation_uses_the_same_rules() -> None:
    with pytest.raises(ValueError, match="unknown function 'frob'"):
        Program(statements=(Statement("u", "frob", ("g",)),), outputs=("u",))
    with pytest.raises(ValueError, match="expected the update and one per state"):
        Program(statements=(Statement("u", "sign", ("g",)),), outputs=("u", "u"))


@SETTINGS
@given(programs(), st.integers(0, 10**6))
def test_check_never_raises_anything_but_program_error(program: Program, seed: int) -> None:
    # Scramble arguments and targets; check must answer with ProgramError or a result.
    rng = np.random.default_rng(seed)
    names = ["w", "g", "lr", "t", "nope", *program.state_names, "x0", "x1"]
    statements = []
    for s in program.statements:
        args = tuple(names[rng.integers(len(names))] if rng.random() < 0.3 else a for a in s.args)
        statements.append(Statement(s.target, s.op, args))
    scrambled = Program.model_construct(
        states=program.states, statements=tuple(statements), outputs=program.outputs)
    for shape in [(), (6, 5), (130, 129)]:
        try:
            abstract.check(scrambled, shape)
        except ProgramError:
            pass


def assert_shapes_match_numpy(program: Program, shape: tuple[int, ...], min_dim: int) -> None:
    from dsl.walk import Plan, initial_env, walk

    result = abstract.check(program, shape, factor_min_dim=min_dim)
    rng = np.random.default_rng(0)
    w = rng.standard_normal(shape)
    states = [np.zeros(result.states[s.name].shape) if s.init == "zeros" else w.copy()
              for s in program.states]
    seen: list[tuple[int, ...]] = []

    def apply(op, args):
        out = op.apply(np, *args, min_dim=min_dim)
        seen.append(np.shape(out))
        return out

    inputs = {"w": w, "g": rng.standard_normal(shape), "lr": np.float64(0.1), "t": np.float64(1)}
    with np.errstate(all="ignore"):
        outs = walk(Plan(program), initial_env(program, inputs, states), np.float64, apply)
    assert seen == [a.shape for a in result.statements]
    assert [np.shape(o) for o in outs[1:]] == [result.states[n].shape for n in program.state_names]
    assert np.shape(outs[0]) == shape


@SETTINGS
@given(programs(shape=(6, 5)))
def test_check_shapes_match_a_real_numpy_run(program: Program) -> None:
    assert_shapes_match_numpy(program, (6, 5), ops.FACTOR_MIN_DIM)


@SETTINGS
@given(programs(shape=(130, 128)))
def test_check_shapes_match_a_real_numpy_run_on_factored_leaves(program: Program) -> None:
    assert_shapes_match_numpy(program, (130, 128), ops.FACTOR_MIN_DIM)


@pytest.mark.parametrize("name", library.names())
def test_library_shapes_match_numpy(name: str) -> None:
    for shape in [(256, 128), (7,), ()]:
        assert_shapes_match_numpy(library.get(name), shape, ops.FACTOR_MIN_DIM)


# --- structural hash -------------------------------------------------------------


def rename(program: Program, seed: int) -> Program:
    """Every non-input name replaced by a fresh one."""
    rng = np.random.default_rng(seed)
    names = sorted({st.target for st in program.statements} | set(program.state_names))
    fresh = [f"v{k}" for k in rng.permutation(len(names))]
    table = {n: f for n, f in zip(names, fresh, strict=True) if n not in ("w", "g", "lr", "t")}

    def r(a):
        return table.get(a, a) if isinstance(a, str) else a

    return Program.model_construct(
        states=tuple(s._replace(name=table[s.name]) for s in program.states),
        statements=tuple(Statement(r(s.target), s.op, tuple(map(r, s.args)))
                         for s in program.statements),
        outputs=tuple(map(r, program.outputs)),
    )


def reorder(program: Program, seed: int) -> Program:
    """Swap adjacent independent statements at random, many times."""
    rng = np.random.default_rng(seed)
    sts = list(program.statements)
    for _ in range(4 * len(sts)):
        if len(sts) < 2:
            break
        i = int(rng.integers(len(sts) - 1))
        a, b = sts[i], sts[i + 1]
        if a.target != b.target and a.target not in b.args and b.target not in a.args:
            sts[i], sts[i + 1] = b, a
    return program.model_copy(update={"statements": tuple(sts)})


def add_dead(program: Program, seed: int) -> Program:
    rng = np.random.default_rng(seed)
    sts = list(program.statements)
    for k in range(3):
        i = int(rng.integers(len(sts) + 1))
        sts.insert(i, Statement(f"dead{k}", "cosh", ("g",)))
    return program.model_copy(update={"statements": tuple(sts)})


def swap_commutative(program: Program) -> Program:
    sts = tuple(
        Statement(s.target, s.op, s.args[::-1]) if ops.OPS[s.op].commutative else s
        for s in program.statements
    )
    return program.model_copy(update={"statements": sts})


@SETTINGS
@given(programs(), st.integers(0, 10**6))
def test_structural_hash_ignores_names_order_dead_code_and_commutation(program, seed) -> None:
    h = abstract.structural_hash(program)
    assert abstract.structural_hash(rename(program, seed)) == h
    assert abstract.structural_hash(reorder(program, seed)) == h
    assert abstract.structural_hash(add_dead(program, seed)) == h
    assert abstract.structural_hash(swap_commutative(program)) == h


def test_structural_hash_tells_programs_apart() -> None:
    names = library.names()
    hashes = {abstract.structural_hash(library.get(n)) for n in names}
    assert len(hashes) == len(names)
    lion = library.get("lion")
    assert abstract.structural_hash(library.get("lion", b1=0.8)) != abstract.structural_hash(lion)
    # sub is not commutative
    a = prog("u = g - w\nu = u * lr\nreturn u", states="")
    b = prog("u = w - g\nu = u * lr\nreturn u", states="")
    assert abstract.structural_hash(a) != abstract.structural_hash(b)


def test_structural_hash_ignores_state_names_and_dead_states() -> None:
    a = library.get("program4")
    b = parse(a.to_source().replace("v", "velocity"))
    assert abstract.structural_hash(a) == abstract.structural_hash(b)
    from dsl.graph import remove_dead

    assert abstract.structural_hash(remove_dead(a)) == abstract.structural_hash(a)


# --- fingerprint -----------------------------------------------------------------


def test_fingerprint_identifies_equal_functions() -> None:
    sign = prog("m = interp(g, m, 0.9)\nu = sign(m)\nu = u * lr\nreturn u, m")
    ratio = prog(
        "m = interp(g, m, 0.9)\nq = m * m\nr = sqrt(q)\nu = m / r\nu = u * lr\nreturn u, m"
    )
    assert abstract.fingerprint(sign) == abstract.fingerprint(ratio)
    assert abstract.structural_hash(sign) != abstract.structural_hash(ratio)
    double = prog("u = g * 2.0\nu = u * lr\nreturn u", states="")
    twice = prog("u = g + g\nu = u * lr\nreturn u", states="")
    assert abstract.fingerprint(double) == abstract.fingerprint(twice)
    thrice = prog("u = g * 3.0\nu = u * lr\nreturn u", states="")
    assert abstract.fingerprint(thrice) != abstract.fingerprint(double)


def test_fingerprint_tells_the_library_apart() -> None:
    names = library.names()
    assert len({abstract.fingerprint(library.get(n)) for n in names}) == len(names)
    # Lookahead differs from AdamW only at sync steps; the fingerprint sees them.
    assert abstract.fingerprint(library.get("lookahead_adamw", sync_period=7.0)) != (
        abstract.fingerprint(library.get("lookahead_adamw")))


def test_fingerprint_is_stable_for_nan_and_inf() -> None:
    nan = prog("z = g - g\nu = z / z\nu = u * lr\nreturn u", states="")
    inf = prog("z = g - g\nu = g / z\nu = u * lr\nreturn u", states="")
    nan2 = prog("z = w - w\nu = z / z\nu = u + g\nu = u * lr\nreturn u", states="")
    assert abstract.fingerprint(nan) == abstract.fingerprint(nan2)
    assert abstract.fingerprint(nan) != abstract.fingerprint(inf)
    again = parse(nan.to_source())
    assert abstract.fingerprint(again) == abstract.fingerprint(nan)


#: (structural hash, fingerprint) of every library program. A change here changes every
#: cache key, so a resumed run's cache goes stale: change them only on purpose.
PINNED = {
    "adabelief": ("becdfb47cf9d46b9c0d07496", "1b972fd8eca2a92612bf2954"),
    "adafactor": ("e8d673aeaf280eb73031bc53", "7bbf2c16c5be8b5cd2fff13e"),
    "ademamix": ("de1846b0b4d648c3e8954ecd", "559e9115857eb8eb8c9e17d7"),
    "adagrad": ("e4d235bd99452b9fad9137ef", "4043dc17ac520680689b71f8"),
    "adam": ("4a56ef68edd8a875a3bc2404", "d3f069a7266e0ad7b527650b"),
    "adamw": ("61920f42402ee659bec25dcc", "9d4f95c21e395970625b1fb7"),
    "adan": ("55f1d257cbbe8267747256e3", "736213eeed463a26fb5f5439"),
    "addsign": ("375df142aa9f43f785551689", "43b6a8b7e2599dfd37a0c3b0"),
    "cadamw": ("1dfabc002a638c9e4fef7b1f", "833eb295ba66811562ca1748"),
    "clion": ("9668099e7729748195c30ce1", "41928e3e76c7981f19d04600"),
    "lion": ("c539acfc5aebdcb09bb7f084", "6f10f4a98c090ce8bd98f9e4"),
    "lookahead_adamw": ("2d4ab010259db133faf89f5a", "f73d6b8073d69164b938d66d"),
    "momentum": ("55617deb45a864ef1dde46cc", "c88677caeccef92c16bf5e42"),
    "muon": ("1caad2792003dee4754f9b6b", "bfd1004af5d3c2e79308f40b"),
    "nesterov": ("d917409bedb127aa8c1c5bb2", "9010eee905aa6013bcf7e933"),
    "powersign": ("4295b28105624032814817ea", "7c2e3bd3b1c3c9542b57e412"),
    "program3": ("63942bb92756e0ab6280501e", "64af80f66da5987b62fb75cd"),
    "program4": ("3ef395ca7b993d179bdd1e7e", "e5d1082f65aa096faee2803c"),
    "rmsprop": ("07d04d5f6909e352d946a2ec", "df0c48151f61eff848a7a620"),
    "schedule_free_adamw": ("5996604b86148ff6a580c0cb", "199aacd56dc44a26a07309e0"),
    "sgd": ("05c0acf711cf2eb675460322", "f0e9fc32cd84466b346bddff"),
    "warmstart": ("b888676a31085188f0208fb9", "a556960a1453731a06b0e4bd"),
}


def test_hashes_are_pinned() -> None:
    assert set(PINNED) == set(library.names())
    for name, (structure, fingerprint) in PINNED.items():
        program = library.get(name)
        assert abstract.structural_hash(program) == structure, name
        assert abstract.fingerprint(program) == fingerprint, name
        assert abstract.fingerprint(parse(program.to_source())) == fingerprint, name


def test_a_new_function_changes_no_existing_hash(monkeypatch) -> None:
    """Registering a function (with the next unused opcode) leaves every program's
    hashes as pinned; an opcode already taken is refused. (Before, opcodes were ranks
    by name: a function added to dsl/ops.py renumbered the others, which PINNED shows.)"""
    from dsl import ops

    monkeypatch.setattr(ops, "OPS", dict(ops.OPS))  # restored after the test
    monkeypatch.setattr(ops, "RESERVED", set(ops.RESERVED))
    ops._unary(max(op.opcode for op in ops.OPS.values()) + 1, "aaa_first_by_name",
               lambda xp, x: x * 2.0, "2x", code="{0} * 2.0")
    with pytest.raises(ValueError, match="opcode 0 or the name is taken .by 'abs'"):
        ops._unary(0, "another", lambda xp, x: x, "x")
    for name, (structure, fingerprint) in PINNED.items():
        fresh = parse(library.source(name))  # no hash cached on it yet
        assert abstract.structural_hash(fresh) == structure, name
        assert abstract.fingerprint(fresh) == fingerprint, name


def test_fingerprint_sees_factored_ops() -> None:
    # Identical on every unfactored leaf (factor_row(g) = g, unfactor(r, c, g) = r),
    # different on factored ones: only the factored run can tell them apart.
    factored = prog("r = factor_row(g)\nc = factor_col(g)\nv = unfactor(r, c, g)\n"
                    "u = v * lr\nreturn u", states="")
    plain = prog("u = g * lr\nreturn u", states="")
    for shape in [(), (7,), (256, 128)]:
        abstract.check(factored, shape)
    assert abstract.fingerprint(factored) != abstract.fingerprint(plain)


@pytest.mark.parametrize("body", ["o = newton_schulz(g)\nu = o * lr",
                                  "k = is_matrix(g)\nu = g * k\nu = u + g\nu = u * lr",
                                  "k = fan_in(g)\nu = g * k\nu = u * lr",
                                  "k = fan_out(g)\nu = g * k\nu = u * lr"])
def test_fingerprint_sees_the_matrix_functions(body: str) -> None:
    # Each equals `u = g * lr` on every vector and scalar leaf (the matrix functions
    # leave them as they are, or give 1, or 0 where added): only a matrix run tells.
    p = prog(f"{body}\nreturn u", states="")
    plain = prog("u = g * lr\nreturn u", states="")
    x = np.random.default_rng(0).standard_normal(7)
    for shape in [(), (7,)]:
        w = x[:7].reshape(shape) if shape else np.float64(x[0])
        np.testing.assert_array_equal(abstract.run_numpy(p, w, [w], [0.1], [1.0])[0][0],
                                      abstract.run_numpy(plain, w, [w], [0.1], [1.0])[0][0])
    assert abstract.fingerprint(p) != abstract.fingerprint(plain)
    assert abstract.fingerprint(p) == abstract.fingerprint(prog(f"z = g * 2.0\n{body}\n"
                                                                "return u", states=""))


def test_fingerprint_of_a_program_invalid_on_factored_leaves() -> None:
    # unfactor() fed a full-shaped statistic: valid on vectors, not on matrices.
    p = prog("x = g * g\nv = unfactor(x, 0.5, w)\nu = g * v\nu = u * lr\nreturn u", states="")
    abstract.check(p, (6, 5))
    with pytest.raises(ProgramError):
        abstract.check(p, (256, 128))
    assert abstract.fingerprint(p) != abstract.fingerprint(
        prog("x = g * g\nu = g * x\nu = u * lr\nreturn u", states=""))


def test_numpy_states_start_at_their_inferred_shapes() -> None:
    """A zero state of a matrix is zeros of the matrix, not a scalar 0: once
    transformed (1 - s) and reduced (its norm) the two differ, as the JAX
    interpreter (which allocates the inferred shape) shows."""
    p = parse("def train(w, g, lr, t, s):\n  x = invert(s)\n  n = global_norm(x)\n"
              "  u = g * n\n  s = g * 0.5\n  return u, s\n")
    g = np.ones((6, 5))
    first = abstract.run_numpy(p, np.zeros((6, 5)), [g], [1.0], [1.0])[0][0]
    np.testing.assert_allclose(first, g * np.sqrt(30.0))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(shape=(6, 5)))
def test_live_state_shapes_are_checks(program: Program) -> None:
    """The fingerprint's cheaper fixpoint gives check's shape to every live state."""
    from dsl.graph import liveness

    want = abstract.check(program, (6, 5)).states
    got = abstract._state_shapes(program, (6, 5), ops.FACTOR_MIN_DIM)
    live = {program.states[k].name for k in liveness(program).states}
    assert got == {name: want[name].shape for name in live}
