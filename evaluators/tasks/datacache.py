"""Generated data sets, made once per machine: NumPy arrays in the cache folder.

Some proxy tasks generate their data (MNIST-1D: about 11 s per 50,000 rows on one
core). Every worker of every search would pay that on its first evaluation, so a
generated data set is kept in ``data/NAME.npz`` of the per-machine cache folder
(:func:`evaluators.baselines.cache_dir`), under a name that says everything it
depends on (generator version, sizes, seed). A file that cannot be read or
written is ignored and the data made again, never an error; writes are atomic,
so workers racing to make the same file each leave a whole one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from evaluators.baselines import cache_dir


def arrays(name: str, make: Callable[[], dict[str, np.ndarray]],
           folder: Path | None = None) -> dict[str, np.ndarray]:
    """The arrays ``make()`` returns, read from ``data/{name}.npz`` of ``folder``
    (default: the cache folder) if a previous call on this machine stored them.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> arrays("example-v1", lambda: {"x": np.arange(3)}, folder)["x"]
    array([0, 1, 2])
    >>> arrays("example-v1", lambda: {"x": np.zeros(1)}, folder)["x"]  # made once: read back
    array([0, 1, 2])
    """
    path = (folder or cache_dir()) / "data" / f"{name}.npz"
    try:
        with np.load(path) as stored:
            return {k: stored[k] for k in stored.files}
    except (OSError, ValueError, EOFError):
        pass
    made = make()
    _store(path, made)
    return made


def _store(path: Path, made: dict[str, np.ndarray]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **made)
        tmp.replace(path)
    except OSError:
        pass
