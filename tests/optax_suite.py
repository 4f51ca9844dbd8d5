"""optax's own contract tests, run on optimizers of this project.

optax ships the tests it runs on every contributed optimizer in
``optax/contrib/_common_test.py`` (extra keyword arguments, no recompilation,
convergence on a parabola, Rosenbrock and mixed tensors, ``tree.map_params``,
``inject_hyperparams``, dtype kept in bfloat16, ``MultiSteps``, state dtype
stability, learning-rate schedules). They are absl ``parameterized`` methods of
one class, each expanded over optax's own optimizers.

This module reads the installed file as it is, so a convention a later optax
adds is picked up without an edit here: every expanded method is traced back to
its test function and its parameters; the parameters that name optax's
optimizer (``opt_name``, ``opt_kwargs``, ``wrapper_name``, ``wrapper_kwargs``)
are dropped, the other axes (target, dtype, ...) are kept, and :func:`run`
calls the test function on one of ours in place of optax's.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optax

#: The parameters of a suite test that say which optax optimizer it runs.
OPTIMIZER_KEYS = ("opt_name", "opt_kwargs", "wrapper_name", "wrapper_kwargs")
MODULE = "optax.contrib._common_test"


def load() -> Any:
    """The installed suite's module, or None when this optax does not ship it."""
    try:
        return importlib.import_module(MODULE)
    except ImportError:
        return None


@dataclass(frozen=True)
class Case:
    """One suite test function with one setting of its non-optimizer axes."""

    test: str
    axes: tuple[tuple[str, Any], ...] = field(default=())

    @property
    def id(self) -> str:
        def show(value: Any) -> str:
            return getattr(value, "__name__", None) or str(value)

        return "-".join([self.test, *(f"{k}={show(v)}" for k, v in self.axes)])


def _params_of(method: Callable) -> dict[str, Any] | None:
    """The parameters absl bound to one expanded method (None for a plain one)."""
    code = getattr(method, "__code__", None)
    if code is None or "testcase_params" not in code.co_freevars:
        return None
    params = method.__closure__[code.co_freevars.index("testcase_params")].cell_contents
    return dict(params) if isinstance(params, dict) else None


def cases(suite: Any) -> list[Case]:
    """Every (test function, axes) of the suite, optax's optimizers taken out."""
    found: dict[tuple[str, tuple], Case] = {}
    for name, method in vars(suite.ContribTest).items():
        if not (name.startswith("test") and callable(method)):
            continue
        params = _params_of(method)
        test = getattr(method, "__wrapped__", method).__name__
        if params is None:
            found.setdefault((test, ()), Case(test))
            continue
        axes = tuple(sorted((k, v) for k, v in params.items() if k not in OPTIMIZER_KEYS))
        found.setdefault((test, axes), Case(test, axes))
    return list(found.values())


def _test_function(suite: Any, test: str) -> tuple[str, Callable]:
    """An expanded method's name and the test function behind it."""
    for name, method in vars(suite.ContribTest).items():
        if callable(method) and getattr(method, "__wrapped__", method).__name__ == test:
            return name, getattr(method, "__wrapped__", method)
    raise LookupError(f"the optax suite has no test {test!r}")


def run(suite: Any, case: Case, name: str, factory: Callable[..., Any],
        kwargs: dict[str, Any], monkeypatch: Any) -> None:
    """Run ``case`` on the optimizer ``factory(**kwargs)``, called ``name``.

    ``name`` must not be one of optax's optimizer names (the suite special-cases
    some of them). Subtests run in line: the first failing one raises.
    """
    def resolve(opt_name: str) -> Callable[..., Any]:
        if opt_name != name:
            raise LookupError(f"the optax suite asked for {opt_name!r}, not {name!r}")
        return factory

    monkeypatch.setattr(suite, "_get_opt_factory", resolve)
    method_name, function = _test_function(suite, case.test)
    instance = suite.ContribTest(method_name)
    wanted = inspect.signature(function).parameters
    given = {"opt_name": name, "opt_kwargs": dict(kwargs),
             "wrapper_name": None, "wrapper_kwargs": None, **dict(case.axes)}
    function(instance, **{k: v for k, v in given.items() if k in wanted})


def version() -> str:
    return optax.__version__
