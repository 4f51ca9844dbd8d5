"""A user's own task: a model and data given as NumPy arrays, searched like any other.

:func:`from_arrays` makes a :class:`~evaluators.tasks.base.Task` from a model's
initial parameters (or a function of a NumPy generator giving them), a loss on a
batch and training and validation arrays; :func:`register` adds it to the
registry, so that ``evaluate``, ``tasks.get`` and a search's ``tasks`` know its
name. A search runs its evaluations in worker processes, so the registration
goes in a module the search imports in each of them: a config's
``task_modules`` names it (a dotted module name, or a path to a ``.py`` file),
and :func:`load_modules` imports it once per process.

>>> import numpy as np, jax.numpy as jnp
>>> x = np.random.default_rng(0).standard_normal((512, 8)).astype(np.float32)
>>> y = x @ np.arange(8.0, dtype=np.float32)
>>> task = from_arrays(
...     "linreg_doc/A", init={"w": np.zeros(8, np.float32)},
...     loss=lambda p, b: jnp.mean((b[0] @ p["w"] - b[1]) ** 2),
...     train=(x[:400], y[:400]), val=(x[400:], y[400:]), steps=100, batch_size=16)
>>> register(task)
>>> from evaluators import tasks
>>> tasks.get("linreg_doc/A").steps
100
>>> unregister("linreg_doc/A")
>>> "linreg_doc/A" in tasks.names()
False
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from evaluators import catalog
from evaluators.tasks.base import Data, Task

#: Tasks registered in this process, by name.
REGISTERED: dict[str, Task] = {}
_LOADED: set[str] = set()


def _arrays(what: str, arrays: Any) -> tuple[np.ndarray, ...]:
    """``arrays`` as a tuple of NumPy arrays with one first dimension."""
    if isinstance(arrays, np.ndarray):
        arrays = (arrays,)
    if not isinstance(arrays, tuple | list) or not arrays:
        raise ValueError(f"{what} must be a NumPy array or a tuple of them (features first), "
                         f"got {type(arrays).__name__}")
    out = []
    for k, a in enumerate(arrays):
        a = np.asarray(a)
        if a.ndim == 0 or a.dtype == object:
            raise ValueError(f"{what}[{k}] must be an array with one row per example, got "
                             f"{a.dtype} of shape {a.shape}")
        if np.issubdtype(a.dtype, np.floating):
            a = a.astype(np.float32)
            if not np.isfinite(a).all():
                raise ValueError(f"{what}[{k}] holds NaN or infinite values")
        elif np.issubdtype(a.dtype, np.integer) or a.dtype == bool:
            a = a.astype(np.int32)
        else:
            raise ValueError(f"{what}[{k}] has dtype {a.dtype}; use floats or integers")
        out.append(a)
    rows = {len(a) for a in out}
    if len(rows) != 1:
        raise ValueError(f"the arrays of {what} differ in length: {[len(a) for a in out]}")
    return tuple(out)


def _version(data: Data, steps: int, batch_size: int, *functions: Callable) -> str:
    """A hash of the task's data, sizes and functions' code: the per-machine baseline
    cache is keyed by it, so an edited task never reuses another's numbers."""
    digest = hashlib.sha256(f"{steps}|{batch_size}".encode())
    for a in (*data.train, *data.val):
        digest.update(f"{a.dtype}{a.shape}".encode())
        digest.update(np.ascontiguousarray(a).tobytes())
    for fn in functions:
        code = getattr(fn, "__code__", None)
        digest.update(code.co_code if code is not None else repr(fn).encode())
        if code is not None:
            digest.update(repr(code.co_consts).encode())
    return digest.hexdigest()[:16]


def from_arrays(
    name: str, *, init: Any, loss: Callable[[Any, tuple], jax.Array],
    train: Any, val: Any, steps: int, batch_size: int,
    metric: Callable[[Any, tuple], jax.Array] | None = None, held_out: bool = False,
    warmup_fraction: float = 0.05, description: str = "",
) -> Task:
    """A task training ``loss`` on ``train`` and scoring ``metric`` on ``val``.

    ``name`` is ``family/tier`` (tier A, B or C; a funnel runs the same family at
    tier B and C when they are registered too). ``init`` is the initial parameters
    (a pytree of NumPy arrays: then seeds change only the batches) or a function of
    a ``numpy.random.Generator`` returning them. ``loss(params, batch)`` is a scalar
    JAX function of a batch: a tuple with ``batch_size`` rows of each training
    array. ``metric(params, val)`` (lower is better; default: ``loss``) is computed
    on the whole validation tuple. Float arrays become float32, integers int32.
    """
    family, slash, tier = name.partition("/")
    if not slash or not family or tier not in catalog.TIERS or "/" in tier:
        raise ValueError(f"task name {name!r} must be family/tier with tier one of "
                         f"{', '.join(catalog.TIERS)}")
    if family in catalog.FAMILIES:
        raise ValueError(f"task family {family!r} is one of the project's own; choose "
                         "another name")
    for what, value in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{what} must be a positive integer, got {value!r}")
    if not callable(loss) or (metric is not None and not callable(metric)):
        raise ValueError("loss and metric must be functions of (params, batch)")
    data = Data(train=_arrays("train", train), val=_arrays("val", val))
    make = init if callable(init) else (lambda _rng, fixed=init: jax.tree.map(np.copy, fixed))
    if not callable(init):
        jax.tree.map(lambda a: np.asarray(a, np.float32), init)  # fails early on non-arrays
    return Task(
        name=name, family=family, tier=tier, steps=int(steps), batch_size=int(batch_size),
        init=make, loss=loss, metric=metric or loss, data=lambda: data, held_out=held_out,
        warmup_fraction=warmup_fraction,
        description=description or f"user task: {len(data.train[0])} training rows",
        version=_version(data, int(steps), int(batch_size), loss, *([metric] if metric else [])),
    )


def register(task: Task, *, replace: bool = False) -> None:
    """Make ``task`` known by its name in this process (``replace`` to redefine one)."""
    if not isinstance(task, Task):
        raise TypeError(f"register takes a Task (from from_arrays), got {type(task).__name__}")
    if task.family in catalog.FAMILIES:
        raise ValueError(f"task family {task.family!r} is one of the project's own")
    if task.name in REGISTERED and not replace and REGISTERED[task.name] is not task:
        raise ValueError(f"task {task.name!r} is already registered (replace=True redefines it)")
    REGISTERED[task.name] = task
    catalog.USER[task.name] = task.held_out


def unregister(name: str) -> None:
    """Forget a registered task (KeyError if ``name`` is not one)."""
    if name not in REGISTERED:
        raise KeyError(f"{name!r} is not a registered task")
    del REGISTERED[name]
    catalog.USER.pop(name, None)


def load_modules(modules: list[str] | tuple[str, ...]) -> None:
    """Import each module (dotted name, or path to a ``.py`` file) once per process:
    the modules that register a search's own tasks. ImportError names the one that
    failed and why."""
    for spec in modules:
        if spec in _LOADED:
            continue
        try:
            if spec.endswith(".py"):
                path = Path(spec).expanduser().resolve()
                name = "optsearch_tasks_" + hashlib.sha256(str(path).encode()).hexdigest()[:8]
                loader = importlib.util.spec_from_file_location(name, path)
                if loader is None or not path.is_file():
                    raise FileNotFoundError(f"no such file: {path}")
                module = importlib.util.module_from_spec(loader)
                sys.modules[name] = module
                loader.loader.exec_module(module)
            else:
                importlib.import_module(spec)
        except Exception as e:
            raise ImportError(f"task module {spec!r}: {type(e).__name__}: {e}") from e
        except SystemExit as e:  # a module that calls sys.exit() when imported
            raise ImportError(f"task module {spec!r}: called sys.exit({e.code!r}) when "
                              "imported") from None
        except KeyboardInterrupt:
            raise ImportError(f"task module {spec!r}: interrupted while it was "
                              "imported") from None
        _LOADED.add(spec)
