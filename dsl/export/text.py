"""How generated code spells things: module and class names, numbers, the
hyperparameters' names, names that never collide with the generated code's own,
docstring text and wrapped calls."""

from __future__ import annotations

import keyword
import re

from dsl.export.copied import CONSTANTS, HELPERS
from dsl.program import INPUTS, Program, State, Statement


def module_name(name: str) -> str:
    """The module (and function) name an optimizer called ``name`` is exported as."""
    return _snake(name)


def _snake(name: str) -> str:
    """``name`` as a module and function name: one that is no keyword and that the
    generated module does not use itself (``optax`` is exported as ``opt_optax``).

    >>> _snake("Lion-2"), _snake("3x"), _snake("jnp"), _snake("any")
    ('lion_2', 'opt_3x', 'opt_jnp', 'opt_any')
    """
    out = re.sub(r"[^0-9a-zA-Z_]", "_", name).lower().strip("_") or "discovered"
    if (out[0].isdigit() or keyword.iskeyword(out) or out in GENERATED_NAMES
            or _capitalized(out) in GENERATED_NAMES):
        out = f"opt_{out}"
    return out


def _capitalized(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def _camel(name: str) -> str:
    """``name`` as a class name: never a keyword (``None``, ``True`` and ``False`` are).

    >>> _camel("lion-2"), _camel("none"), _camel("True")
    ('Lion2', 'OptNone', 'OptTrue')
    """
    cls = _capitalized(_snake(name))
    return f"Opt{cls}" if keyword.iskeyword(cls) else cls


Site = tuple[int, int]  # (statement index, argument index)


def _names_for(p: Program, core: tuple[int, ...], given: dict[Site, str] | None) -> dict[Site, str]:
    """Hyperparameter names for the core's constants, by where they are used.

    With ``given`` (the names a program's text used, see
    :func:`hyperparameter_sites`), exactly those constants are named and every
    other number stays a literal. Without, or if the text named none (a search's
    program), every constant is named, one name per value: an interpolation's weight
    by its role, the decay of what it averages (``m = interp(g, m, 0.9)``: ``beta_m``;
    ``beta_m2`` for a second weight of ``m``), the rest ``c1, c2, ...``.
    """
    if given:
        return {(i, j): name for (i, j), name in given.items() if i in core}
    names: dict[Site, str] = {}
    by_value: dict[float, str] = {}
    others = 0
    for i in core:
        st = p.statements[i]
        for j, a in enumerate(st.args):
            if not isinstance(a, float):
                continue
            if a not in by_value:
                if st.op == "interp" and j == 2:
                    base = f"beta_{st.target.lstrip('_')}"
                    used = set(by_value.values())
                    by_value[a] = next(n for n in (base, *(f"{base}{k}" for k in range(2, 99)),
                                                   f"beta_{i}_{j}") if n not in used)
                else:
                    others += 1
                    by_value[a] = f"c{others}"
            names[(i, j)] = by_value[a]
    return names


def _number(value: float) -> str:
    """A number as code: negative ones in parentheses (``(-0.5) ** t``, not ``-0.5 ** t``)."""
    text = repr(float(value))
    return f"({text})" if text.startswith("-") else text


def _texts(st, args: list, names: dict[Site, str], i: int) -> list[str]:
    """The arguments' code: a named constant by its name, a number by its repr."""
    return [names.get((i, j), _number(a)) if isinstance(a, float)
            else arg if isinstance(arg, str) else arg.text
            for j, (a, arg) in enumerate(zip(st.args, args, strict=True))]


def _wrap(head: str, items: list[str], tail: str, indent: str) -> str:
    """``head(items)tail`` on one line if it fits in 100 columns, else one item per line."""
    one = f"{indent}{head}({', '.join(items)}){tail}"
    if len(one) <= 100:
        return one
    inner = "".join(f"{indent}    {item},\n" for item in items)
    return f"{indent}{head}(\n{inner}{indent}){tail}"


#: Names of the generated module itself: imports, helpers, constants, and the
#: builtins its code calls. No name of a program may be one of these.
MODULE_NAMES = frozenset({
    "functools", "math", "Any", "NamedTuple", "jax", "jnp", "optax", "torch", "SOURCE",
    *CONSTANTS, *HELPERS, "_torch_optimizer",
    "__getattr__", "__name__", "zip", "enumerate", "isinstance", "callable", "float", "dict",
    "tuple", "abs", "getattr", "sorted", "range", "len", "slice", "super", "ValueError",
    "AttributeError",
})
#: Every name the generated code uses, locals of its functions included: what a
#: hyperparameter (a keyword of the rule, the recipe and the PyTorch constructor,
#: and a key of a PyTorch param group) may not be called.
GENERATED_NAMES = MODULE_NAMES | frozenset({
    "xp", "updates", "state", "params", "extra_args", "leaves", "treedef", "weights", "outs",
    "directions", "o", "i", "s", "count", "learning_rate", "lr_fn", "init_fn", "update_fn",
    "weight_decay", "self", "closure", "loss", "group", "p", "dtype", "out", "direction",
    "defaults", "step", "state_dict", "saved", "ids", "key", "value", "name",
})
#: What a state may not be called beyond :data:`MODULE_NAMES`: the rule's ``xp``, the
#: optax state's ``count`` and the PyTorch state's ``step``.
STATE_RESERVED = frozenset({"xp", "count", "step"})


def _collision_free(p: Program, snake: str, cls: str) -> tuple[Program, set[str]]:
    """``p`` with every name that its place in the generated code would make collide
    given a trailing underscore (its rule unchanged), and the names now taken, which
    hyperparameters must avoid (:func:`_free_hyperparameters`).

    A state is a parameter of the rule, a field of the optax state, a key of the
    PyTorch state and gives the optax transform the locals ``NAME_leaves`` and
    ``new_NAME``; a variable is a local of the rule functions only. Neither may be a
    name of the module (:data:`MODULE_NAMES`, the module's own functions).
    """
    module = set(MODULE_NAMES) | {snake, cls, f"{snake}_rule", f"{snake}_rule_torch",
                                  f"ScaleBy{cls}State", f"scale_by_{snake}"}
    taken = set(module)
    rename: dict[str, str] = {}

    def claim(name: str, forbidden: frozenset[str], derived: bool) -> None:
        def forms(n: str) -> tuple[str, ...]:
            return (n, f"{n}_leaves", f"new_{n}") if derived else (n,)

        # a leading underscore is no field of a NamedTuple (the optax state), and two
        # are mangled inside the PyTorch class: such names are given a letter first
        new = f"s{name}" if name.startswith("_") else name
        while new in forbidden or any(n in taken for n in forms(new)):
            new += "_"
        taken.update(forms(new))
        rename[name] = new

    for state in p.state_names:
        claim(state, STATE_RESERVED, derived=True)
    for st in p.statements:
        if st.target not in rename and st.target not in INPUTS:
            claim(st.target, frozenset({"xp"}), derived=False)
    taken |= GENERATED_NAMES
    if all(k == v for k, v in rename.items()):
        return p, taken

    def r(a):
        return rename.get(a, a) if isinstance(a, str) else a

    return Program(
        states=tuple(State(r(st.name), st.init) for st in p.states),
        statements=tuple(Statement(r(st.target), st.op, tuple(r(a) for a in st.args))
                         for st in p.statements),
        outputs=tuple(r(o) for o in p.outputs)), taken


def _free_hyperparameters(names: dict[Site, str], taken: set[str]) -> dict[Site, str]:
    """Hyperparameter ``names`` apart from every ``taken`` name (a trailing underscore)."""
    fresh: dict[str, str] = {}
    for h in dict.fromkeys(names.values()):
        new = f"h{h}" if h.startswith("_") else h  # a keyword argument of the PyTorch class
        while new in taken:
            new += "_"
        taken.add(new)
        fresh[h] = new
    return {site: fresh[h] for site, h in names.items()}


def _docstring_text(text: str) -> str:
    r"""``text`` as it may stand inside a generated docstring: backslashes, quotes and
    control characters escaped, so that the docstring reads back as ``text``.

    >>> print(_docstring_text('C:\\Users "me"'))
    C:\\Users \"me\"
    """
    out = text.replace("\\", "\\\\").replace('"', '\\"')
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in out)


def hyperparameter_sites(text: str) -> dict[Site, str]:
    """Where a program text uses its named hyperparameters: (statement, argument)
    of ``parse(text)`` -> name. Two names of one value, or a name and a literal of
    its value, stay apart."""
    from dsl.parse import parse

    hyper = hyperparameters_of(text)
    marks = {name: 1e300 * (1.0 + k / 1024) for k, name in enumerate(hyper)}  # no literal's value
    by_mark = {v: k for k, v in marks.items()}
    program = parse(text, **marks)
    return {(i, j): by_mark[a] for i, st in enumerate(program.statements)
            for j, a in enumerate(st.args) if isinstance(a, float) and a in by_mark}


def hyperparameters_of(text: str) -> dict[str, float]:
    """The named hyperparameters declared at the top of a program text."""
    from dsl.parse import _Reader

    reader = _Reader(text, {})
    for line in reader.lines:
        if line.first_word in ("def", "def("):
            break
        reader.hyperparameter(line)
    return dict(reader.hyper)
