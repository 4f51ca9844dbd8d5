"""Tests for dsl/parse.py and the canonical printer of dsl/program.py."""

from __future__ import annotations

import re

import pytest

from dsl import Program, ProgramError, library, parse

LION = """\
def train(w, g, lr, t, m):
  update = interp(g, m, 0.9)
  update = sign(update)
  m = interp(g, m, 0.99)
  wd = w * 0.01
  update = update + wd
  update = update * lr
  return update, m
"""


@pytest.mark.parametrize("name", library.names())
def test_library_round_trips(name: str) -> None:
    p = library.get(name)
    text = p.to_source()
    assert parse(text) == p
    assert parse(text).to_source() == text
    assert Program.model_validate_json(p.model_dump_json()) == p


def test_canonical_text_is_a_fixed_point() -> None:
    assert parse(LION).to_source() == LION


def test_parsed_structure() -> None:
    p = parse(LION)
    assert p.state_names == ("m",)
    assert p.outputs == ("update", "m")
    assert p.statements[0] == ("update", "interp", ("g", "m", 0.9))
    assert p.statements[3] == ("wd", "mul", ("w", 0.01))


def test_paper_signature_order_and_comments_accepted() -> None:
    text = """
# the paper's Program 1, as printed
def train(w, g, m, lr):
    update = interp(g, m, 0.9)      # beta1
    update = sign(update)
    m = interp(g, m, 0.99)          # beta2
    wd = w * 0.01                   # weight decay lambda
    update = update + wd
    update = update * lr
    return update, m
"""
    assert parse(text) == parse(LION)


def test_slow_weight_state_and_negative_forms() -> None:
    p = parse("def train(w, g, lr, t, slow=w):\n  n = -g\n  u = n * -0.5\n  return u, slow\n")
    assert p.states[0].init == "w"
    assert p.statements[0] == ("n", "negative", ("g",))
    assert p.statements[1] == ("u", "mul", ("n", -0.5))
    assert "slow=w" in p.to_source()
    assert parse(p.to_source()) == p


def test_named_constants_and_scientific_numbers() -> None:
    p = parse("def train(w, g, lr, t):\n  a = g + eps\n  u = a * 1e-3\n  return u\n")
    assert p.statements[0].args == ("g", "eps")
    assert p.statements[1].args == ("a", 0.001)


def test_hyperparameters_substitute_and_override() -> None:
    text = "b = 0.5\ndef train(w, g, lr, t):\n  u = g * b\n  return u\n"
    assert parse(text).statements[0].args == ("g", 0.5)
    assert parse(text, b=0.25).statements[0].args == ("g", 0.25)
    with pytest.raises(ProgramError, match="unknown hyperparameter 'c'.*declared: b"):
        parse(text, c=1.0)
    with pytest.raises(ProgramError, match="finite number"):
        parse(text, b=float("nan"))


def test_library_hyperparameters_reach_every_use() -> None:
    p = library.get("adam", b1=0.8)
    uses = [a for st in p.statements for a in st.args if isinstance(a, float)]
    assert uses.count(0.8) == 2  # the moment and its bias correction
    assert 0.9 not in uses


def test_parsing_never_runs_the_text(tmp_path) -> None:
    marker = tmp_path / "ran"
    evil = f"def train(w, g, lr, t):\n  u = __import__('os').system('touch {marker}')\n  return u\n"
    with pytest.raises(ProgramError):
        parse(evil)
    assert not marker.exists()


def test_non_string_input() -> None:
    with pytest.raises(ProgramError, match="must be a str, got bytes"):
        parse(b"def train(w, g, lr, t): pass")  # type: ignore[arg-type]


HEAD = "def train(w, g, lr, t, m):\n"

# (text, line, column, a fragment the message must contain)
MALFORMED = [
    ("", 1, 1, "no `def train"),
    ("# only a comment\n", 1, 1, "no `def train"),
    ("def step(w, g, lr, t):\n  u = g * lr\n  return u\n", 1, 5, "'train', not 'step'"),
    ("def train(w, lr, t):\n  u = lr * 2.0\n  return u\n", 1, 1, "input 'g'"),
    ("def train(w, g, t):\n  u = g * 2.0\n  return u\n", 1, 1, "input 'lr'"),
    ("def train(w, g, lr, t, m, m):\n  u = g * lr\n  return u, m, m\n", 1, 27, "duplicate parameter 'm'"),
    ("def train(w, g, lr, t, m=g):\n  u = g * lr\n  return u, m\n", 1, 26, "=w"),
    ("def train(w=w, g, lr, t):\n  u = g * lr\n  return u\n", 1, 13, "=w"),
    ("def train(w, g, lr, t, sqrt):\n  u = g * lr\n  return u, sqrt\n", 1, 24, "'sqrt' is reserved"),
    ("def train(w, g, lr, t, a, b, c, d, e2, f, h, i, j):\n  u = g * lr\n"
     "  return u, a, b, c, d, e2, f, h, i, j\n", 1, 1, "at most 8"),
    ("def train(w, g, lr, t)\n  u = g * lr\n  return u\n", 1, 23, "expected ':'"),
    (HEAD + "  m = interpp(g, m, 0.9)\n  return m, m\n", 2, 7, "unknown function 'interpp'"),
    (HEAD + "  m = interp(g, m)\n  return m, m\n", 2, 7, "interp takes 3 arguments, got 2"),
    (HEAD + "  m = sign(g, m)\n  return m, m\n", 2, 7, "sign takes 1 argument, got 2"),
    (HEAD + "  m = g ** 2\n  return m, m\n", 2, 9, "'**' is not allowed; use power"),
    (HEAD + "  m = g % 2\n  return m, m\n", 2, 9, "'%' is not allowed; use mod"),
    (HEAD + "  m = g @ m\n  return m, m\n", 2, 9, "'@' is not allowed"),
    (HEAD + "  m = g & m\n  return m, m\n", 2, 9, "unexpected character '&'"),
    (HEAD + "  m = g\n  return m, m\n", 2, 7, "must apply a function"),
    (HEAD + "  m = 0.5\n  return m, m\n", 2, 7, "must apply a function"),
    (HEAD + "  m = sign(sqrt(g))\n  return m, m\n", 2, 12, "calls cannot be nested"),
    (HEAD + "  m = sign('g')\n  return m, m\n", 2, 12, "unexpected character"),
    (HEAD + "  m = g * lr * 2.0\n  return m, m\n", 2, 14, "one function per statement: assign `g * lr` to a variable first"),
    (HEAD + "  m += g\n  return m, m\n", 2, 5, "augmented assignment"),
    (HEAD + "  m, v = g, g\n  return m, m\n", 2, 4, "expected '=' after 'm'"),
    (HEAD + "  pi = g * 2.0\n  return pi, m\n", 2, 3, "'pi' is reserved"),
    (HEAD + "  m = interp(g, , m)\n  return m, m\n", 2, 17, "must be a variable or a number, found ','"),
    (HEAD + "  m = sign(sign)\n  return m, m\n", 2, 12, "'sign' is a function"),
    (HEAD + "  m = sign(g)\n", 2, 1, "must end with `return"),
    (HEAD + "  m = sign(g)\n  return m\n", 3, 3, "expected the update and one per state (2)"),
    (HEAD + "  return m, m\n  u = sign(g)\n", 3, 3, "nothing may follow the return"),
    (HEAD + "  return m, 0.5\n", 2, 13, "return variable names only"),
    (HEAD + "  m = sign(g)\n    u = sign(m)\n  return u, m\n", 3, 1, "inconsistent indentation"),
    (HEAD + "m = sign(g)\nreturn m, m\n", 2, 1, "must be indented"),
    ("def train(w, g, lr, t):\n", 1, 1, "no body"),
    ("x = 1\ny = 2\nb = g\ndef train(w, g, lr, t):\n  u = g * lr\n  return u\n", 3, 5,
     "hyperparameter 'b' must be a number"),
    ("b = 1\nb = 2\ndef train(w, g, lr, t):\n  u = g * lr\n  return u\n", 2, 1, "declared twice"),
    ("b = 1\ndef train(w, g, lr, t):\n  b = g * lr\n  return b\n", 3, 3,
     "'b' is a hyperparameter"),
    ("def train(w, g, lr, t):\n  u = g * 1e999\n  return u\n", 2, 11, "not finite"),
    ("def train(w, g, lr, t):\n  lambda = g * lr\n  return lambda\n", 2, 3, "keyword"),
    ("def train(w, g, lr, t):\n  u = g * lr\n  return u\ndef train(w, g, lr, t):\n", 4, 1,
     "nothing may follow the return"),
]


@pytest.mark.parametrize(("text", "line", "column", "fragment"), MALFORMED)
def test_malformed_text_is_located_and_named(text: str, line: int, column: int, fragment: str):
    with pytest.raises(ProgramError) as info:
        parse(text)
    err = info.value
    assert fragment in err.message
    assert (err.line, err.column) == (line, column), str(err)
    assert str(err).startswith(f"line {line}, column {column}: ")


def test_malformed_table_is_large_enough() -> None:
    assert len(MALFORMED) >= 30


def test_copies_do_not_share_derived_facts() -> None:
    from dsl import abstract

    p = library.get("momentum")
    h = abstract.fingerprint(p)
    st = p.statements[0]
    q = p.model_copy(update={"statements": (st._replace(args=("m", 0.5)), *p.statements[1:])})
    assert abstract.fingerprint(q) != h
    assert abstract.fingerprint(p.model_copy()) == h
    with pytest.raises(ValueError, match="unknown function"):
        p.model_copy(update={"statements": (st._replace(op="nope"), *p.statements[1:])})


def test_size_limits_are_named() -> None:
    from dsl.parse import MAX_LINE_CHARS, MAX_TEXT_CHARS
    from dsl.program import MAX_STATEMENTS

    head = "def train(w, g, lr, t):\n"
    cases = {
        head + "  u = g * lr  # " + "x" * MAX_TEXT_CHARS + "\n  return u\n":
            "at most 1,000,000 are allowed",
        head + "  u = " + "-".join(["a"] * MAX_LINE_CHARS) + " b\n  return u\n":
            f"line 2, column {MAX_LINE_CHARS + 1}: line of 2,007 characters; at most 1,000",
        head + "  u = g * lr\n" * (MAX_STATEMENTS + 1) + "  return u\n":
            f"line {MAX_STATEMENTS + 2}, column 3: 1001 statements; at most 1000 are allowed",
    }
    for text, message in cases.items():
        with pytest.raises(ProgramError, match=re.escape(message)):
            parse(text)
    # just inside the limits: parsed
    assert len(parse(head + "  u = g * lr\n" * MAX_STATEMENTS + "  return u\n").statements) \
        == MAX_STATEMENTS
    long_comment = head + "  u = g * lr  # " + "x" * 10 * MAX_LINE_CHARS + "\n  return u\n"
    assert parse(long_comment).statements[0].op == "mul"


@pytest.mark.parametrize("line", [
    "u = " + "-".join(["a"] * 490) + " b",          # once quadratic in the fast path
    "u = " + "add(" * 240,
    "u = add(" + "a, " * 320 + ")",
])
def test_pathological_lines_fail_with_a_message(line: str) -> None:
    with pytest.raises(ProgramError, match="line 2"):
        parse(f"def train(w, g, lr, t):\n  {line}\n  return u\n")


def test_a_signature_of_many_parameters_is_refused_at_once() -> None:
    params = ", ".join(f"m{i}" for i in range(150))
    with pytest.raises(ProgramError, match="150 states; at most 8"):
        parse(f"def train(w, g, lr, t, {params}):\n  u = g * lr\n  return u\n")
