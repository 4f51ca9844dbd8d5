"""Tests for dsl/export.py: generated modules are valid, readable and self-contained."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings

from dsl import ProgramError, abstract, graph, library, ops, parse
from dsl.export import (
    export_source,
    hyperparameter_sites,
    inplace_forms,
    split_decay_and_lr,
    torch_fresh,
)
from tests.strategies import programs

EXPORTABLE = library.names()


def generate(name: str) -> str:
    return export_source(library.get(name), name,
                         hyperparameters=hyperparameter_sites(library.source(name)))


@pytest.mark.parametrize("name", EXPORTABLE)
def test_generated_module_imports_and_keeps_its_source(name: str, tmp_path) -> None:
    path = tmp_path / f"{name}.py"
    path.write_text(generate(name))
    spec = importlib.util.spec_from_file_location(f"gen_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert parse(module.SOURCE) == graph.remove_dead(library.get(name))
    assert callable(getattr(module, name)) and callable(getattr(module, f"scale_by_{name}"))


@pytest.mark.skipif(shutil.which("ruff") is None and importlib.util.find_spec("ruff") is None,
                    reason="ruff not installed")
def test_generated_modules_pass_ruff(tmp_path) -> None:
    for name in EXPORTABLE:
        (tmp_path / f"{name}.py").write_text(generate(name))
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated",
                        "--select", "E,F,W,I,B,UP", "--line-length", "100", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_recipes_split_decay_and_learning_rate() -> None:
    lion = split_decay_and_lr(library.get("lion"))
    assert lion is not None and lion.weight_decay == 0.001 and lion.direction == "update"
    assert split_decay_and_lr(library.get("lookahead_adamw")) is None
    text = generate("adamw")
    assert "optax.add_decayed_weights(weight_decay)" in text
    assert "optax.scale_by_learning_rate(learning_rate)" in text
    assert "def adamw(" in text and "b1: float = 0.9" in text


def test_every_function_exports_and_mixed_shapes_are_named() -> None:
    assert all(op.code is not None for op in ops.OPS.values())
    p = parse("def train(w, g, lr, t):\n  r = factor_row(g)\n  u = r + g\n  return u\n")
    with pytest.raises(ProgramError, match=r"statement 1 \(u = r \+ g\).*cannot export"):
        export_source(p, "mixed")


def test_state_shapes_follow_the_program() -> None:
    from dsl.export import shape_exprs

    p = library.get("adafactor")
    states, _ = shape_exprs(p, tuple(range(len(p.statements))))
    assert states == {"v_row": "row_shape({})", "v_col": "col_shape({})"}
    p = parse("def train(w, g, lr, t, s, m):\n  s = dot(g, g)\n  m = interp(g, m, 0.9)\n"
              "  u = m * s\n  return u, s, m\n")
    assert shape_exprs(p, (0, 1, 2))[0] == {"s": "()", "m": "{}"}


def cases(op: ops.Op, rng: np.random.Generator):
    """(arguments, positions holding numbers) to try ``op``'s code on: vectors with
    numbers mixed in; Adafactor's functions on a factored and an unfactored shape."""
    if op.factored:
        for shape, row, col in [((128, 130), (128,), (130,)), ((5,), (5,), ())]:
            x = {"factor_row": [shape], "factor_col": [shape], "unfactor": [row, col, shape]}
            yield [rng.uniform(0.2, 0.9, s) for s in x[op.name]], ()
        return
    for numbers in [(), *((k,) for k in range(op.arity))]:
        args = [rng.uniform(0.2, 0.9, 5) for _ in range(op.arity)]
        for k in numbers:
            args[k] = float(args[k][0])
        yield args, numbers


def reference(op: ops.Op, args: list):
    with np.errstate(all="ignore"):
        return np.asarray(op.apply(np, *args))


def helper_namespace(**extra) -> dict:
    from dsl.export import HELPERS, helpers_for

    namespace: dict = {"Any": object, "abs": abs, **extra}
    for src in helpers_for([f"{name}()" for name in HELPERS]):
        exec(src, namespace)  # our own helper source, as a generated module holds it
    return namespace


def test_code_templates_agree_with_the_implementations() -> None:
    helpers = helper_namespace(xp=np)
    rng = np.random.default_rng(0)
    for name, op in ops.OPS.items():
        for args, _ in cases(op, rng):
            want = reference(op, args)
            with np.errstate(all="ignore"):
                got = eval(op.code.format(*(f"a{k}" for k in range(op.arity))),  # our template
                           helpers, {f"a{k}": a for k, a in enumerate(args)})
            np.testing.assert_allclose(np.broadcast_to(got, want.shape), want, rtol=1e-12,
                                       err_msg=name)


def load_generated(text: str, name: str, tmp_path):
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(f"gen_{name}_{abs(hash(text))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rule_runs(program, tmp_path, reference: str, steps: int = 4, shape=(6, 5)):
    """(ours, reference) outputs of the in-place PyTorch rule and of a reference
    rule, step after step, each fed its own states, in float64 (so rounding
    cannot tell them apart); asserts that the in-place rule never writes w or g
    and returns each state in a tensor of its own.

    ``reference`` is ``"numpy"`` (the functional rule run by NumPy) or
    ``"fresh"`` (the PyTorch rule exported with ``inplace=False``).
    """
    torch = pytest.importorskip("torch")
    ours_mod = load_generated(export_source(program, "candidate"), "candidate", tmp_path)
    fresh_mod = load_generated(export_source(program, "fresh", inplace=False), "fresh", tmp_path)
    p = parse(ours_mod.SOURCE)
    rng = np.random.default_rng(0)
    w = rng.standard_normal(shape)
    shapes = abstract.check(p, w.shape).states  # each state at its own shape
    start = [np.zeros(shapes[s.name].shape) if s.init == "zeros" else w.copy() for s in p.states]
    as_tuple = (lambda x: x) if p.states else (lambda x: (x,))
    numbers = (torch.tensor(0.01, dtype=torch.float64),
               lambda step: torch.tensor(float(step), dtype=torch.float64))
    if reference == "numpy":
        def ref(w, g, step, states):
            with np.errstate(all="ignore"):
                return as_tuple(ours_mod.candidate_rule(np, w, g, 0.01, float(step), *states))
        ref_states = start
    else:
        def ref(w, g, step, states):
            return as_tuple(fresh_mod.fresh_rule_torch(torch.tensor(w), torch.tensor(g),
                                                       numbers[0], numbers[1](step), *states))
        ref_states = [torch.tensor(s) for s in start]
    states = [torch.tensor(s) for s in start]
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        for step in range(1, steps + 1):
            g = rng.standard_normal(w.shape)
            wt, gt = torch.tensor(w), torch.tensor(g)
            got = as_tuple(ours_mod.candidate_rule_torch(wt, gt, numbers[0], numbers[1](step),
                                                         *states))
            want = ref(w, g, step, ref_states)
            assert torch.equal(wt, torch.tensor(w)) and torch.equal(gt, torch.tensor(g))
            # each state its own tensor: none is w, g or another state
            kept = [x.data_ptr() for x in got[1:]] + [wt.data_ptr(), gt.data_ptr()]
            assert len(set(kept)) == len(kept), ours_mod.SOURCE
            yield got, want, ours_mod.SOURCE
            states, ref_states = list(got[1:]), list(want[1:])
    finally:
        torch.set_default_dtype(previous)


def assert_rule_agrees(program, tmp_path, reference: str, shape=(6, 5)) -> None:
    for got, want, source in rule_runs(program, tmp_path, reference, shape=shape):
        for a, b in zip(got, want, strict=True):
            a, b = (np.broadcast_to(np.asarray(x, np.float64), shape) for x in (a, b))
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True,
                                       err_msg=source)


@pytest.mark.parametrize("name", EXPORTABLE)
def test_torch_rule_equals_the_functional_rule(name: str, tmp_path) -> None:
    assert_rule_agrees(library.get(name), tmp_path, "numpy")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(p=programs(max_len=12))
def test_writing_in_place_changes_no_value_on_random_programs(p, tmp_path_factory) -> None:
    try:
        export_source(p, "candidate")
    except ProgramError:
        assume(False)
    assert_rule_agrees(p, tmp_path_factory.mktemp("export"), "fresh")


@pytest.mark.parametrize("shape", [(6, 5), (7,), ()])
def test_a_function_that_may_return_its_argument_shares_no_tensor_overwritten(
        shape, tmp_path) -> None:
    """newton_schulz leaves a value that is not a matrix as it is, and factor_row an
    unfactored one: the PyTorch rule overwrites neither its argument nor its result
    while the other is still read (a search's Muon variant exported wrong this way)."""
    for body in ("o = newton_schulz(h)\n  a = h / 3.0\n  u = o + a",
                 "o = newton_schulz(h)\n  o = o * 3.0\n  u = o + h",
                 "o = factor_row(h)\n  c = factor_col(h)\n  o = unfactor(o, c, h)\n"
                 "  a = h / 3.0\n  u = o + a"):
        p = parse(f"def train(w, g, lr, t, m):\n  m = interp(g, m, 0.9)\n  h = m * 2.0\n"
                  f"  {body}\n  u = u * lr\n  return u, m\n")
        assert_rule_agrees(p, tmp_path, "numpy", shape=shape)


def test_the_torch_rule_writes_in_place_where_values_die() -> None:
    text = generate("lion")
    # PyTorch's sign of NaN is 0: the exported sign keeps a NaN, so it makes a tensor
    assert "update = update.mul_(sign_scale(torch, update)).clamp_(-1.0, 1.0)" in text
    assert "m = m.mul_(b2).add_(g, alpha=1.0 - b2)" in text  # the state's own tensor
    assert 'direction = direction.add_(p, alpha=group["weight_decay"])' in text
    # a state read again later is overwritten only by its last reader
    text = export_source(parse("def train(w, g, lr, t, m):\n  u = exp(m)\n  u = u + g\n"
                               "  m = interp(g, m, 0.9)\n  return u, m\n"), "keep")
    assert "u = torch.exp(m)" in text and "u = u.add_(g)" in text
    assert "m = m.mul_(beta_m).add_(g, alpha=1.0 - beta_m)" in text


def test_torch_forms_agree_with_the_implementations() -> None:
    """Every op's PyTorch form, fresh or in place, on tensors and on numbers mixed in."""
    torch = pytest.importorskip("torch")
    helpers = helper_namespace(torch=torch)
    rng = np.random.default_rng(0)
    for name, op in ops.OPS.items():
        for args, numbers in cases(op, rng):
            want = reference(op, args)
            names = [f"a{j}" for j in range(op.arity)]
            fresh = torch_fresh(op, names, [j in numbers for j in range(op.arity)])
            forms = [(None, fresh)] + [(k, t.format(*names)) for k, t, scalars in inplace_forms(op)
                                       if k not in numbers and set(scalars) <= set(numbers)]
            for k, code in forms:
                values = {f"a{j}": torch.tensor(a) if isinstance(a, np.ndarray) else a
                          for j, a in enumerate(args)}
                got = eval(code, helpers, values)  # our own template
                if k is not None:
                    assert got is values[f"a{k}"], (name, code)  # written in place
                np.testing.assert_allclose(np.broadcast_to(np.asarray(got), want.shape), want,
                                           rtol=1e-12, err_msg=f"{name}: {code}")


def test_hyperparameters_are_the_names_the_text_used() -> None:
    text = library.source("adan")
    adan = export_source(library.get("adan"), "adan", hyperparameters=hyperparameter_sites(text))
    assert "eps_root: float = 1e-08" in adan and "epsilon: float = 1e-08" in adan
    assert "shifted = n_hat + eps_root" in adan and "denom = root + epsilon" in adan
    ada = export_source(library.get("adafactor"), "adafactor",
                        hyperparameters=hyperparameter_sites(library.source("adafactor")))
    assert "clip_denom = xp.maximum(ratio, 1.0)" in ada  # a literal, not clipping_threshold
    # a text that names nothing (a search's program): every constant becomes one
    bare = "def train(w, g, lr, t, m):\n  m = interp(g, m, 0.9)\n  u = m * 0.5\n  return u, m\n"
    out = export_source(parse(bare), "bare", hyperparameters=hyperparameter_sites(bare))
    assert "beta_m: float = 0.9" in out and "c1: float = 0.5" in out


def test_a_searchs_interpolation_weights_are_named_for_what_they_decay() -> None:
    """Named by role, not by order: with AdamW's first-moment weight gone, the
    second moment's is still beta_v, never beta1."""
    text = ("def train(w, g, lr, t, m, v):\n  g2 = square(g)\n  v = interp(g2, v, 0.95)\n"
            "  m = interp(g, m, 0.8)\n  m = interp(g, m, 0.7)\n  r = sqrt(v)\n  u = m / r\n"
            "  u = u * lr\n  return u, m, v\n")
    out = export_source(parse(text), "roles")
    assert "beta_v: float = 0.95" in out and "beta_m: float = 0.8" in out
    assert "beta_m2: float = 0.7" in out and "beta1" not in out


def test_a_calibrated_learning_rate_is_the_default_and_is_named(tmp_path) -> None:
    program = library.get("warmstart")
    note = "on tier B of the funnel (mlp_mnist1d/B 0.826)"
    text = export_source(program, "found", learning_rate=0.826, learning_rate_note=note)
    assert ("The default, 0.826, is what calibration chose on tier B of the funnel"
            in " ".join(text.split()))
    assert "lr: float = 0.826" in text and "opt = found(learning_rate=0.826)" in text
    module = load_generated(text, "found", tmp_path)
    opt = module.found()  # the default needs no argument
    params = {"w": np.ones(3, np.float32)}
    updates, _ = opt.update({"w": np.ones(3, np.float32)}, opt.init(params), params)
    direct = module.found(learning_rate=0.826)
    want, _ = direct.update({"w": np.ones(3, np.float32)}, direct.init(params), params)
    np.testing.assert_array_equal(updates["w"], want["w"])
    plain = export_source(program, "found")  # no calibration known: said, and required
    assert "No calibration is known for this program" in " ".join(plain.split())
    assert re.search(r"def found\(\s*learning_rate: optax.ScalarOrSchedule,", plain)
    assert "lr: float = 1e-3" in plain


def recipe_and_class(text: str, tmp_path, name: str = "candidate"):
    """The optax recipe and the PyTorch class exported from program ``text``."""
    source = export_source(parse(text), name, hyperparameters=hyperparameter_sites(text))
    module = load_generated(source, name, tmp_path)
    snake = name.lower()
    return module, getattr(module, snake), source


def steps_agree(text: str, tmp_path, name: str = "candidate") -> str:
    """Three steps of the exported recipe equal ``to_optax`` of the program, and three
    of the exported PyTorch class equal them too; the generated source."""
    import jax.numpy as jnp
    import optax

    from dsl import to_optax

    module, recipe, source = recipe_and_class(text, tmp_path, name)
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal((4, 3)).astype(np.float32) for _ in range(3)]
    start = rng.standard_normal((4, 3)).astype(np.float32)
    results = []
    for opt in (recipe(learning_rate=0.1), to_optax(parse(text), 0.1)):
        params = {"w": jnp.asarray(start)}
        state = opt.init(params)
        for g in grads:
            updates, state = opt.update({"w": jnp.asarray(g)}, state, params)
            params = optax.apply_updates(params, updates)
        results.append(np.asarray(params["w"]))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, err_msg=source)
    torch = pytest.importorskip("torch")
    cls_name = "".join(part.capitalize() for part in name.lower().split("_"))
    w = torch.nn.Parameter(torch.tensor(start))
    opt = getattr(module, cls_name)([w], lr=0.1)
    for g in grads:
        w.grad = torch.tensor(g)
        opt.step()
    np.testing.assert_allclose(w.detach().numpy(), results[1], rtol=1e-5, err_msg=source)
    return source


#: Names the generated code uses itself, tried as a program's own names.
COLLIDING = ["count", "xp", "self", "params", "learning_rate", "step", "torch", "jnp", "optax",
             "state", "zip", "group", "p", "direction", "math", "row_shape", "candidate_rule"]


@pytest.mark.parametrize("name", COLLIDING)
def test_a_programs_names_never_collide_with_the_generated_ones(name: str, tmp_path) -> None:
    as_state = (f"def train(w, g, lr, t, {name}):\n  {name} = interp(g, {name}, 0.9)\n"
                f"  u = {name} * lr\n  return u, {name}\n")
    as_variable = (f"def train(w, g, lr, t, m):\n  m = interp(g, m, 0.9)\n  {name} = sign(m)\n"
                   f"  u = {name} * lr\n  return u, m\n")
    as_hyperparameter = (f"{name} = 0.9\ndef train(w, g, lr, t, m):\n"
                         f"  m = interp(g, m, {name})\n  u = m * lr\n  return u, m\n")
    for text in (as_state, as_variable):
        steps_agree(text, tmp_path)
    assert f"{name}_: float = 0.9" in steps_agree(as_hyperparameter, tmp_path)


def test_states_named_like_another_states_derived_names_stay_apart(tmp_path) -> None:
    text = ("def train(w, g, lr, t, m, new_m, m_leaves):\n  m = interp(g, m, 0.9)\n"
            "  new_m = interp(m, new_m, 0.5)\n  m_leaves = new_m * 2.0\n  u = m_leaves * lr\n"
            "  return u, m, new_m, m_leaves\n")
    steps_agree(text, tmp_path)


@pytest.mark.parametrize("name", ["optax", "jnp", "Any", "named_tuple", "torch"])
def test_an_optimizer_named_like_a_module_name_is_exported_apart(name: str, tmp_path) -> None:
    source = steps_agree(library.source("momentum"), tmp_path, f"opt_{name.lower()}")
    assert f"def opt_{name.lower()}(" in source
    from dsl.export import module_name

    assert module_name(name) == f"opt_{name.lower()}"


def test_the_origin_is_escaped_in_the_docstring(tmp_path) -> None:
    origin = 'run C:\\Users\\me\\runs\\new, program 3 ("best""" of all)\nnext line'
    source = export_source(library.get("sgd"), "sgd", origin=origin)
    module = load_generated(source, "sgd", tmp_path)
    assert module.__doc__.startswith(f"Sgd: an optimizer exported from {origin} by optsearch.")


@pytest.mark.parametrize("task", ['q""";open("PWNED","w");"""/A', 'q"""x/A', "data\\x/A",
                                  "data\\N/A", "a\nb/A", "\x1b[31mred/A"])
def test_task_names_in_the_learning_rate_note_cannot_run_code_or_break_the_module(
        tmp_path, monkeypatch, task: str) -> None:
    """The note names tasks read from a run directory (history.jsonl, funnel.json): a
    hostile or odd name is text in the docstring, nothing else."""
    monkeypatch.chdir(tmp_path)
    note = f"on tier B of the funnel ({task} 0.0123)"
    source = export_source(library.get("sgd"), "sgd", learning_rate=0.0123,
                           learning_rate_note=note)
    module = load_generated(source, "sgd", tmp_path)
    assert not (tmp_path / "PWNED").exists()
    assert " ".join(note.split()) in " ".join(module.__doc__.split())


def test_the_torch_class_checks_its_arguments_as_torch_optim_does(tmp_path) -> None:
    pytest.importorskip("torch")
    text = library.source("lion")
    module, _, _ = recipe_and_class(text, tmp_path, "lion")
    import torch

    w = [torch.nn.Parameter(torch.zeros(3))]
    for kwargs, message in (({"b1": 5.0}, "invalid b1 value: 5.0 (from 0 to 1)"),
                            ({"b2": -0.1}, "invalid b2 value: -0.1"),
                            ({"weight_decay": -1.0}, "invalid weight_decay value: -1.0"),
                            ({"lr": -1.0}, "invalid learning rate: -1.0"),
                            ({"lr": float("nan")}, "invalid learning rate: nan")):
        with pytest.raises(ValueError, match=re.escape(message)):
            module.Lion(w, **kwargs)
    with pytest.raises(ValueError, match=r"invalid epsilon value: inf \(not finite\)"):
        module_eps = recipe_and_class(library.source("adamw"), tmp_path, "adamw")[0]
        module_eps.Adamw(w, epsilon=float("inf"))
    # an interpolation weight found outside [0, 1] (a search can extrapolate) is its own
    text = ("b = 1.5\ndef train(w, g, lr, t, m):\n  m = interp(g, m, b)\n  u = m * lr\n"
            "  return u, m\n")
    steps_agree(text, tmp_path)


def test_a_nan_gradient_shows_in_the_weights_as_with_adamw(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    module, _, _ = recipe_and_class(library.source("lion"), tmp_path, "lion")
    results = []
    for make in (module.Lion, torch.optim.AdamW):
        w = torch.nn.Parameter(torch.ones(4))
        opt = make([w], lr=0.1)
        w.grad = torch.tensor([1.0, float("nan"), -1.0, 0.0])
        opt.step()
        results.append(torch.isnan(w.detach()).tolist())
    assert results[0] == results[1] == [False, True, False, False]
