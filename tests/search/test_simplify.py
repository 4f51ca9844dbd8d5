"""Tests for search/simplify.py, and the paper's Program 4 simplified to Lion."""

from __future__ import annotations

from dsl import abstract, graph, library, parse
from search.simplify import reads_weights, simplify


def test_exact_passes_keep_the_fingerprint_and_say_why() -> None:
    p4 = library.get("program4")
    result = simplify(p4)
    assert abstract.fingerprint(result.program) == abstract.fingerprint(graph.remove_dead(p4))
    assert result.log[0] == "dead code: removed 1 statement(s) and state(s) m"
    assert any("one interpolation with weight 0.996991" in s for s in result.log)
    assert any("x / |x| is sign(x)" in s for s in result.log)
    ops_left = [st.op for st in result.program.statements]
    assert "sqrt" not in ops_left and "cosh" not in ops_left and ops_left.count("interp") == 2


def test_identities_and_constants_fold() -> None:
    p = parse("def train(w, g, lr, t):\n  a = g * 1.0\n  b = a + 0.0\n  c = negative(b)\n"
              "  d = negative(c)\n  k = power(2.0, 3.0)\n  u = d * k\n  u = u * lr\n  return u\n")
    result = simplify(p)
    assert result.program.to_source() == (
        "def train(w, g, lr, t):\n  u = g * 8.0\n  u = u * lr\n  return u\n")
    assert abstract.fingerprint(result.program) == abstract.fingerprint(p)


def test_degenerate_interpolations_disappear() -> None:
    # mutation makes these (a search from Muon found interp(g, g, g)): x, x, or one end
    p = parse("def train(w, g, lr, t, m):\n  a = interp(g, g, 0.7)\n  m = interp(m, a, 1.0)\n"
              "  b = interp(m, w, 0.0)\n  u = b * lr\n  return u, m\n")
    result = simplify(p)
    assert result.program.to_source() == "def train(w, g, lr, t):\n  u = g * lr\n  return u\n"
    assert abstract.fingerprint(result.program) == abstract.fingerprint(p)
    assert result.log == ["rewrite: a = interp(g, g, 0.7): an interpolation between x and x is x",
                          "rewrite: m = interp(m, g, 1.0): weight 1.0",
                          "rewrite: b = interp(g, w, 0.0): weight 0.0"]
    # a real interpolation stays
    ema = parse("def train(w, g, lr, t, m):\n  m = interp(g, m, 0.9)\n  u = m * lr\n"
                "  return u, m\n")
    assert simplify(ema).program == ema


def test_without_fitness_nothing_that_changes_the_function_happens() -> None:
    lion = library.get("lion")
    assert simplify(lion).program == lion
    assert simplify(lion).log == []


def test_program4_simplifies_to_lion() -> None:
    from evaluators import evaluate_all

    def fitness(p):
        return evaluate_all(p, ["mlp_mnist1d/A"], seeds=(0, 1))[1]

    result = simplify(library.get("program4"), fitness, tolerance=0.01, protect=reads_weights)
    p = result.program
    assert any("removed g = clip(g, lr)" in s for s in result.log)
    assert any("removed g = arcsin(g)" in s for s in result.log)
    # Lion form: sign(interp(g, v, b1)), v <- interp(g, v, b2), weight decay, lr.
    by_op = {st.op: st for st in p.statements}
    b1 = next(st.args[2] for st in p.statements if st.op == "interp" and st.target != "v")
    b2 = next(st.args[2] for st in p.statements if st.op == "interp" and st.target == "v")
    wd = next(a for st in p.statements if "w" in st.args for a in st.args if isinstance(a, float))
    scale = next(a for st in p.statements if st.target == "lr" for a in st.args
                 if isinstance(a, float))
    assert "sign" in by_op and p.state_names == ("v",)
    assert (b1, b2) == (0.9, 0.997)
    lion = library.get("lion", b1=b1, b2=b2, weight_decay=wd)
    lion_scaled = parse(lion.to_source().replace(
        "  update = interp", f"  lr = lr * {scale!r}\n  update = interp", 1))
    assert abstract.fingerprint(p) == abstract.fingerprint(lion_scaled)
