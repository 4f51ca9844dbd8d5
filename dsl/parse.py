"""Program text → :class:`~dsl.program.Program`, with a small hand-written parser.

The text is read, never run: no eval, exec or compile of user input. Every
problem is a :class:`~dsl.errors.ProgramError` with the 1-based line and column
of the offending token. The accepted text is a subset of Python::

    b1 = 0.9                      # optional named hyperparameters, before the def
    def train(w, g, lr, t, m, slow=w):
      m = interp(g, m, b1)        # x = fn(a, b, ...)
      u = m * lr                  # or x = a (+ - * /) b; or x = -a
      return u, m, slow           # the update, then each state

One statement per line; ``#`` starts a comment. The inputs ``w, g, lr`` must
appear in the signature and ``t`` may; any other parameter is a state
(``name=w`` starts it as a copy of ``w``), so the paper's listings
(``def train(w, g, m, v, lr)``) parse as written. Hyperparameter names are
replaced by their values; ``parse(text, b1=0.95)`` overrides one.

Size limits, each refused with a message that names it: a text of at most
:data:`MAX_TEXT_CHARS` characters, lines of at most :data:`MAX_LINE_CHARS`
characters before any comment, at most :data:`~dsl.program.MAX_STATEMENTS`
statements and :data:`~dsl.program.MAX_STATES` states. Parsing takes time
linear in the text.
"""

from __future__ import annotations

import keyword
import math
import re
from typing import NoReturn

from dsl import ops
from dsl.errors import ProgramError
from dsl.program import INPUTS, MAX_STATES, Arg, Program, State, Statement, validate_structure

#: The longest program text :func:`parse` reads (a program of the largest size has
#: about 50,000).
MAX_TEXT_CHARS = 1_000_000
#: The longest line, comments aside (a statement rarely needs 60).
MAX_LINE_CHARS = 1000

_TOKEN = re.compile(
    r"[ \t]*(?:"
    r"(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>\*\*|//|[-+*/(),=:%@])"
    r"|(?P<bad>\S)"
    r")"
)
_ALLOWED_INFIX = {"+", "-", "*", "/"}
_DISALLOWED = {"**": "power(a, b)", "//": "a function", "%": "mod(a, b)", "@": "dot(a, b)"}

Token = tuple[str, str, int]  # (kind, text, 1-based column)


def parse(text: str, **hyperparameters: float) -> Program:
    """Parse program text; keyword arguments override its named hyperparameters.

    >>> p = parse("def train(w, g, lr, t, m):\\n  m = interp(g, m, 0.9)\\n"
    ...           "  u = sign(m)\\n  u = u * lr\\n  return u, m\\n")
    >>> p.state_names
    ('m',)
    """
    if not isinstance(text, str):
        raise ProgramError(f"program text must be a str, got {type(text).__name__}")
    if len(text) > MAX_TEXT_CHARS:
        raise ProgramError(f"the program text has {len(text):,} characters; at most "
                           f"{MAX_TEXT_CHARS:,} are allowed")
    return _Reader(text, hyperparameters).program()


def locate(error: ProgramError, text: str) -> ProgramError:
    """``error`` about statement k of the program parsed from ``text``, located by
    the statement's line in the text (1-based) instead of its index.

    >>> text = "def train(w, g, lr, t):\\n  # the rule\\n  u = g * lr\\n  return u\\n"
    >>> str(locate(ProgramError("bad", statement=0, source="u = g * lr"), text))
    'line 3 (u = g * lr): bad'
    """
    if error.statement is None or error.line is not None:
        return error
    lines = _lines(text)
    start = next((i for i, ln in enumerate(lines) if ln.first_word in ("def", "def(")), None)
    if start is None or start + 1 + error.statement >= len(lines):
        return error
    return ProgramError(error.message, line=lines[start + 1 + error.statement].number,
                        source=error.source)


class _Line:
    """One non-blank line: its number, indentation and tokens."""

    __slots__ = ("number", "indent", "text", "_tokens", "pos")

    def __init__(self, number: int, indent: str, text: str) -> None:
        self.number = number
        self.indent = indent
        self.text = text
        self._tokens: list[Token] | None = None
        self.pos = 0

    @property
    def tokens(self) -> list[Token]:
        if self._tokens is None:
            self._tokens = _tokenize(self.text, self.number, len(self.indent))
        return self._tokens

    @property
    def first_word(self) -> str:
        return self.text[len(self.indent) :].split(None, 1)[0]

    def fail(self, message: str, column: int | None = None) -> NoReturn:
        if column is None:
            column = self.tokens[self.pos][2] if self.pos < len(self.tokens) else self.end()
        raise ProgramError(message, line=self.number, column=column)

    def end(self) -> int:
        if not self.tokens:
            return len(self.indent) + 1
        kind, text, col = self.tokens[-1]
        return col + len(text)

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, what: str) -> Token:
        tok = self.peek()
        if tok is None:
            self.fail(f"expected {what} at the end of the line")
        self.pos += 1
        return tok

    def expect(self, text: str) -> Token:
        tok = self.take(repr(text))
        if tok[1] != text:
            self.fail(f"expected {text!r}, found {tok[1]!r}", tok[2])
        return tok

    def name(self, what: str) -> Token:
        tok = self.take(what)
        if tok[0] != "name":
            self.fail(f"expected {what}, found {tok[1]!r}", tok[2])
        if keyword.iskeyword(tok[1]):
            self.fail(f"{tok[1]!r} is a Python keyword, not {what}", tok[2])
        return tok

    def done(self) -> None:
        tok = self.peek()
        if tok is not None:
            self.fail(f"unexpected {tok[1]!r}", tok[2])

    def one_function(self) -> None:
        """The end of a statement's expression: a further operator is a nested expression."""
        tok = self.peek()
        if tok is not None and tok[0] == "op" and tok[1] in _ALLOWED_INFIX | set(_DISALLOWED):
            inner = self.text[self.text.index("=") + 1 : tok[2] - 1].strip()
            self.fail(f"one function per statement: assign `{inner}` to a variable first "
                      f"(`x = {inner}`), then use x", tok[2])
        self.done()


def _tokenize(line: str, number: int, start: int) -> list[Token]:
    tokens: list[Token] = []
    for m in _TOKEN.finditer(line, start):
        kind = m.lastgroup
        value = m.group(kind)
        column = m.start(kind) + 1
        if kind == "bad":
            raise ProgramError(f"unexpected character {value!r}", line=number, column=column)
        tokens.append((kind, value, column))
    return tokens


def _lines(text: str) -> list[_Line]:
    out = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.split("#", 1)[0].rstrip(" \t\r\f")
        if not line.strip():
            continue
        if len(line) > MAX_LINE_CHARS:
            raise ProgramError(f"line of {len(line):,} characters; at most {MAX_LINE_CHARS:,} "
                               "are allowed (comments aside)", line=number,
                               column=MAX_LINE_CHARS + 1)
        body = line.lstrip(" \t")
        out.append(_Line(number, line[: len(line) - len(body)], line))
    return out


# Fast paths for the two common statement forms; anything they do not match
# exactly goes through the tokenizer, which also produces the error messages.
_FAST_CALL = re.compile(r"[ \t]*([A-Za-z_]\w*) *= *([A-Za-z_]\w*)\(([^()]*)\)$")
# An operand is a name or a number, either signed: no '-' inside a name, so that a
# failed match backtracks in time linear in the line (``a-a-a-...`` once was quadratic).
_OPERAND = r"(-?[A-Za-z_]\w*|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
_FAST_INFIX = re.compile(rf"[ \t]*([A-Za-z_]\w*) *= *{_OPERAND} *([-+*/]) *{_OPERAND}$")
_FAST_DEF = re.compile(r"def train\(([A-Za-z0-9_, =]*)\):$")
_FAST_RETURN = re.compile(r"[ \t]*return ([A-Za-z0-9_, ]+)$")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


class _Reader:
    """Reads the lines of one program text, accepting only the DSL's forms."""

    def __init__(self, text: str, overrides: dict[str, float]) -> None:
        self.lines = _lines(text)
        self.overrides = overrides
        self.hyper: dict[str, float] = {}

    def program(self) -> Program:
        lines = self.lines
        i = 0
        while i < len(lines) and lines[i].first_word not in ("def", "def("):
            self.hyperparameter(lines[i])
            i += 1
        self.apply_overrides()
        if i == len(lines):
            last = lines[-1].number if lines else 1
            raise ProgramError("no `def train(...)` found", line=last, column=1)
        states = self.signature(lines[i])
        body = lines[i + 1 :]
        if not body:
            lines[i].fail("the function has no body; it must end with `return update, ...`")
        indent = body[0].indent
        statements: list[Statement] = []
        for k, line in enumerate(body):
            if line.indent != indent or not indent:
                line.fail(
                    "inconsistent indentation" if indent else "the function body must be indented",
                    1,
                )
            if line.first_word == "return":
                if k != len(body) - 1:
                    body[k + 1].fail("nothing may follow the return")
                outputs = self.returns(line)
                break
            statements.append(self.statement(line))
        else:
            body[-1].fail("the function must end with `return update, ...`", 1)
        try:
            validate_structure(states, tuple(statements), outputs)
        except ProgramError as e:
            line = body[e.statement] if e.statement is not None else body[-1]
            line.pos = 0
            line.fail(e.message, len(line.indent) + 1)
        return Program.model_construct(
            states=states, statements=tuple(statements), outputs=outputs
        )

    def hyperparameter(self, line: _Line) -> None:
        if line.indent:
            line.fail("expected `def train(w, g, lr, t, ...)` or a `name = number` line", 1)
        kind, name, col = line.name("a hyperparameter name or `def train(...)`")
        if name in ops.RESERVED or name in INPUTS:
            line.fail(f"hyperparameter name {name!r} is reserved", col)
        if name in self.hyper:
            line.fail(f"hyperparameter {name!r} is declared twice", col)
        line.expect("=")
        value = self.number(line)
        if value is None:
            line.fail(f"hyperparameter {name!r} must be a number")
        line.done()
        self.hyper[name] = value

    def apply_overrides(self) -> None:
        unknown = sorted(set(self.overrides) - set(self.hyper))
        if unknown:
            declared = ", ".join(sorted(self.hyper)) or "none"
            raise ProgramError(
                f"unknown hyperparameter {unknown[0]!r} (declared: {declared})", line=1, column=1
            )
        for k, v in self.overrides.items():
            try:  # an int too large for a float (10**400) overflows here
                value = float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None
            except OverflowError:
                value = None
            if value is None or not math.isfinite(value):
                shown = repr(v) if not isinstance(v, int) or v.bit_length() < 64 else "a huge int"
                raise ProgramError(f"hyperparameter {k!r} must be a finite number, got {shown}")
            self.hyper[k] = value

    def signature(self, line: _Line) -> tuple[State, ...]:
        m = _FAST_DEF.match(line.text)
        if m:
            states = []
            names = set()
            for param in m.group(1).split(","):
                name, _, init = param.strip().partition("=")
                name, init = name.strip(), init.strip()
                if not _NAME.match(name) or keyword.iskeyword(name) or name in ops.RESERVED:
                    break
                if name in names or (init and (init != "w" or name in INPUTS)):
                    break
                names.add(name)
                if name not in INPUTS:
                    states.append(State(name, "w" if init else "zeros"))
            else:
                if {"w", "g", "lr"} <= names and len(states) <= MAX_STATES:
                    return tuple(states)
        return self.slow_signature(line)

    def slow_signature(self, line: _Line) -> tuple[State, ...]:
        if line.indent:
            line.fail("`def` must start at the beginning of the line", 1)
        line.expect("def")
        _, fname, col = line.name("the function name")
        if fname != "train":
            line.fail(f"the function must be called 'train', not {fname!r}", col)
        line.expect("(")
        params: list[tuple[str, str, int]] = []
        seen: set[str] = set()
        while True:
            tok = line.peek()
            if tok is not None and tok[1] == ")":
                break
            _, name, col = line.name("a parameter name")
            init = "zeros"
            if line.peek() is not None and line.peek()[1] == "=":
                line.take("=")
                _, default, dcol = line.name("`w`")
                if default != "w" or name in INPUTS:
                    line.fail(f"only a state may have a default, and only `={'w'}`", dcol)
                init = "w"
            if name in seen:
                line.fail(f"duplicate parameter {name!r}", col)
            seen.add(name)
            if name in ops.RESERVED:
                line.fail(f"parameter name {name!r} is reserved for a function or constant", col)
            params.append((name, init, col))
            sep = line.take("',' or ')'")
            if sep[1] == ")":
                line.pos -= 1
                break
            if sep[1] != ",":
                line.fail(f"expected ',' or ')', found {sep[1]!r}", sep[2])
        line.expect(")")
        line.expect(":")
        line.done()
        names = [p[0] for p in params]
        for required in ("w", "g", "lr"):
            if required not in names:
                line.fail(f"the signature must include the input {required!r}", 1)
        states = tuple(State(name, init) for name, init, _ in params if name not in INPUTS)
        if len(states) > MAX_STATES:
            line.fail(f"{len(states)} states; at most {MAX_STATES} are allowed", 1)
        return states

    def fast_statement(self, line: _Line) -> Statement | None:
        m = _FAST_CALL.match(line.text)
        if m:
            target, fn, inner = m.groups()
            op = ops.OPS.get(fn)
            texts = [a.strip() for a in inner.split(",")] if inner.strip() else []
            if op is None or len(texts) != op.arity:
                return None
        else:
            m = _FAST_INFIX.match(line.text)
            if not m:
                return None
            target, left, symbol, right = m.groups()
            fn, texts = ops.INFIX[symbol], [left, right]
        if not _NAME.match(target) or target in self.hyper or keyword.iskeyword(target):
            return None
        args: list[Arg] = []
        for text in texts:
            if _NAME.match(text):
                if keyword.iskeyword(text) or text in ops.OPS:
                    return None
                args.append(self.hyper.get(text, text))
            elif _NUMBER.match(text):
                value = float(text)
                if not math.isfinite(value):
                    return None
                args.append(value)
            else:
                return None
        return Statement(target, fn, tuple(args))

    def statement(self, line: _Line) -> Statement:
        fast = self.fast_statement(line)
        if fast is not None:
            return fast
        _, target, col = line.name("a variable to assign")
        if target in self.hyper:
            line.fail(f"{target!r} is a hyperparameter and cannot be assigned", col)
        tok = line.take("'='")
        if tok[1] != "=":
            if tok[0] == "op" and tok[1] in "+-*/" and line.peek() and line.peek()[1] == "=":
                line.fail("augmented assignment is not allowed; write `x = x + y`", tok[2])
            line.fail(f"expected '=' after {target!r}, found {tok[1]!r}", tok[2])
        first = line.peek()
        if first is None:
            line.fail("expected an expression after '='")
        nxt = line.tokens[line.pos + 1] if line.pos + 1 < len(line.tokens) else None
        if first[0] == "name" and nxt is not None and nxt[1] == "(":
            return self.call(line, target)
        if first[1] == "-" and nxt is not None and nxt[0] == "name" and line.pos + 2 == len(
            line.tokens
        ):
            line.pos += 2
            return Statement(target, "negative", (self.variable(nxt, line),))
        left = self.arg(line)
        tok = line.peek()
        if tok is None:
            line.fail(
                "a statement must apply a function: write `x = fn(a)` or `x = a * b`", first[2]
            )
        line.pos += 1
        if tok[1] in _DISALLOWED:
            line.fail(f"operator {tok[1]!r} is not allowed; use {_DISALLOWED[tok[1]]}", tok[2])
        if tok[1] not in _ALLOWED_INFIX:
            line.fail(f"expected an operator (+ - * /), found {tok[1]!r}", tok[2])
        right = self.arg(line)
        line.one_function()
        return Statement(target, ops.INFIX[tok[1]], (left, right))

    def call(self, line: _Line, target: str) -> Statement:
        _, fn, col = line.take("a function")
        if fn not in ops.OPS:
            line.fail(f"unknown function {fn!r}", col)
        line.expect("(")
        args: list[Arg] = []
        while line.peek() is not None and line.peek()[1] != ")":
            args.append(self.arg(line))
            tok = line.peek()
            if tok is not None and tok[1] == ",":
                line.pos += 1
            elif tok is not None and tok[1] != ")":
                line.fail(f"expected ',' or ')', found {tok[1]!r}", tok[2])
        line.expect(")")
        line.one_function()
        op = ops.OPS[fn]
        if len(args) != op.arity:
            line.fail(
                f"{fn} takes {op.arity} argument{'s' * (op.arity != 1)}, got {len(args)}", col
            )
        return Statement(target, fn, tuple(args))

    def arg(self, line: _Line) -> Arg:
        value = self.number(line)
        if value is not None:
            return value
        tok = line.take("an argument")
        if tok[0] != "name":
            line.fail(f"an argument must be a variable or a number, found {tok[1]!r}", tok[2])
        if line.peek() is not None and line.peek()[1] == "(":
            line.fail("calls cannot be nested: assign the inner call to a variable first", tok[2])
        return self.variable(tok, line)

    def variable(self, tok: Token, line: _Line) -> Arg:
        name = tok[1]
        if keyword.iskeyword(name):
            line.fail(f"{name!r} is a Python keyword, not a variable", tok[2])
        if name in ops.OPS:
            line.fail(f"{name!r} is a function; call it as {name}(...)", tok[2])
        return self.hyper.get(name, name)

    def number(self, line: _Line) -> float | None:
        start = line.pos
        sign = 1.0
        tok = line.peek()
        if tok is not None and tok[1] in ("-", "+"):
            sign = -1.0 if tok[1] == "-" else 1.0
            line.pos += 1
            tok = line.peek()
        if tok is None or tok[0] != "num":
            line.pos = start
            return None
        line.pos += 1
        value = sign * float(tok[1])
        if not math.isfinite(value):
            line.fail(f"constant {tok[1]!r} is not finite", tok[2])
        return value

    def returns(self, line: _Line) -> tuple[str, ...]:
        m = _FAST_RETURN.match(line.text)
        if m:
            names = tuple(n.strip() for n in m.group(1).split(","))
            if all(
                _NAME.match(n) and n not in self.hyper and not keyword.iskeyword(n) for n in names
            ):
                return names
        return self.slow_returns(line)

    def slow_returns(self, line: _Line) -> tuple[str, ...]:
        line.expect("return")
        names = []
        while True:
            tok = line.take("a variable to return")
            if tok[0] != "name" or tok[1] in self.hyper or keyword.iskeyword(tok[1]):
                line.fail(f"return variable names only, found {tok[1]!r}", tok[2])
            names.append(tok[1])
            sep = line.peek()
            if sep is None:
                break
            line.pos += 1
            if sep[1] != ",":
                line.fail(f"expected ',' between returned names, found {sep[1]!r}", sep[2])
            if line.peek() is None:
                break
        return tuple(names)
