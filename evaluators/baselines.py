"""Calibrated baselines, computed once per machine: a per-machine cache on disk.

Calibrating the warm start on a task (:data:`evaluators.grid.WIDE`: ten or so
trainings) is the same work for every program, every search and every worker
on a machine, so its result is kept in ``baselines.json`` of the cache folder
(``$OPTSEARCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/optsearch``, else
``~/.cache/optsearch``), keyed by baseline program, task, seeds, grid and the
code version (a hash of the DSL's and the evaluators' sources, their program
files and the JAX version: any change that could move a metric makes a new
key). A cache that cannot be read or written is ignored, never an error.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

FILE = "baselines.json"
#: Held while :func:`store` writes (a command that ends at once on Ctrl-C takes it first).
WRITING = threading.RLock()


def cache_dir() -> Path:
    """Where this machine keeps what it computed once."""
    if os.environ.get("OPTSEARCH_CACHE_DIR"):
        return Path(os.environ["OPTSEARCH_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "optsearch"


@functools.cache
def code_version() -> str:
    """A hash of everything a baseline's metric depends on: the DSL and evaluator
    sources, the library's program files, and the JAX version."""
    from importlib.metadata import version  # not `import jax`: a cache lookup trains nothing

    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256(version("jax").encode())
    for folder in ("dsl", "evaluators"):
        for path in sorted((root / folder).rglob("*")):
            if path.suffix in (".py", ".dsl") and path.is_file():
                digest.update(path.relative_to(root).as_posix().encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def key(baseline: str, task: str, seeds: tuple[int, ...], grid: str) -> str:
    """The cache key of one calibration (``grid`` is the grid's JSON)."""
    return f"{baseline}|{task}|{','.join(map(str, seeds))}|{grid}|{code_version()}"


def _read() -> dict[str, Any]:
    try:
        data = json.loads((cache_dir() / FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def lookup(k: str) -> dict[str, Any] | None:
    """The stored calibration under ``k``, or None."""
    value = _read().get(k)
    return value if isinstance(value, dict) else None


def store(k: str, value: dict[str, Any]) -> None:
    """Add one calibration (read, merge, replace atomically; failures ignored)."""
    folder = cache_dir()
    with WRITING:
        _store(folder, k, value)


def _store(folder: Path, k: str, value: dict[str, Any]) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        data = _read() | {k: value}
        tmp = folder / f"{FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(folder / FILE)
    except OSError:
        pass
