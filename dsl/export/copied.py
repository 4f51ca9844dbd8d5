"""What a generated module copies from this project: the helpers its code calls.

The op table says which functions of :mod:`dsl.helpers` each function's exported
code calls (``Op.helpers``); their source is copied as it is, with the constants
of :mod:`dsl.helpers` they name, so an export computes what the search trained by
the very same code. Only the helpers a module's code calls (and those they call)
are copied.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable

from dsl import helpers, ops


def _helper_functions() -> list[Callable]:
    """Every helper the op table names, with ``as_tensor`` (which the PyTorch code
    of any function may call to hand a number to PyTorch), in source order."""
    found: dict[str, Callable] = {"as_tensor": helpers.as_tensor}
    for op in ops.OPS.values():
        for fn in op.helpers:
            if found.setdefault(fn.__name__, fn) is not fn:
                raise ValueError(f"two helpers are called {fn.__name__!r} "
                                 f"({op.name} names another)")
    return sorted(found.values(), key=lambda fn: (inspect.getsourcefile(fn),
                                                  fn.__code__.co_firstlineno))


def _constants() -> dict[str, str]:
    """The module-level constants of :mod:`dsl.helpers` with their ``#:`` comments."""
    text = inspect.getsource(helpers)
    return {m.group(2): m.group(0) for m in
            re.finditer(r"^((?:#:.*\n)*)([A-Z][A-Z0-9_]*) = .*\n", text, re.MULTILINE)}


#: Name -> source of every helper a generated module may hold.
HELPERS: dict[str, str] = {fn.__name__: inspect.getsource(fn) for fn in _helper_functions()}
#: Name -> definition of the constants helpers may name (``FACTOR_MIN_DIM = 128``).
CONSTANTS: dict[str, str] = _constants()


def helpers_for(lines: list[str]) -> list[str]:
    """The sources of the helpers that ``lines`` call, and of those they call, in
    order, each constant they name defined before its first use."""
    text = "\n".join(lines)
    used: set[str] = set()
    for name, source in reversed(HELPERS.items()):  # a helper calls only earlier ones
        if f"{name}(" in text:
            used.add(name)
            text += source
    out: list[str] = []
    defined: set[str] = set()
    for name, source in HELPERS.items():
        if name not in used:
            continue
        for constant, definition in CONSTANTS.items():
            if constant not in defined and re.search(rf"\b{constant}\b", source):
                defined.add(constant)
                source = definition + "\n\n" + source
        out.append(source)
    return out
