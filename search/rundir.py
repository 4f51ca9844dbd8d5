"""The run directory, the truth of a search: config, history, checkpoint.

- ``config.json``: the search's configuration, written once.
- ``history.jsonl``: one line per candidate (evaluated or answered by the
  cache), appended and flushed as results arrive; timing fields are kept under
  ``"timing"`` so everything else is reproducible from the seed.
- ``checkpoint.json``: the proposer, the cache index and the counters, written
  atomically (a temporary file, then a rename) every N results and at exit.

No pickle: everything is JSON a person can read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from search.config import SearchConfig


class RunDirError(ValueError):
    """A run directory that cannot be used; the message names the file and the problem."""


class RunDir:
    """A search's run directory."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.config_path = self.path / "config.json"
        self.history_path = self.path / "history.jsonl"
        self.checkpoint_path = self.path / "checkpoint.json"

    @staticmethod
    def create(path: str | os.PathLike, config: SearchConfig) -> RunDir:
        run = RunDir(path)
        if run.config_path.exists():
            raise RunDirError(f"{run.path} already holds a search; resume it with --resume")
        run.path.mkdir(parents=True, exist_ok=True)
        run.config_path.write_text(config.model_dump_json(indent=2) + "\n", encoding="utf-8")
        run.history_path.touch()
        return run

    def config(self) -> SearchConfig:
        if not self.config_path.is_file():
            raise RunDirError(f"{self.path} is not a run directory: no config.json")
        try:
            return SearchConfig.model_validate_json(self.config_path.read_text(encoding="utf-8"))
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(x) for x in err["loc"]) or "(file)"
            raise RunDirError(f"{self.config_path}: {where}: {err['msg']}") from None

    def append(self, record: dict[str, Any]) -> None:
        """Add one line to the history and flush it to the operating system."""
        with self.history_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()

    def history(self) -> Iterator[dict[str, Any]]:
        """The history's records, in order. A last line cut by a crash is skipped."""
        if not self.history_path.exists():
            return
        with self.history_path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    rest = f.read()
                    if rest.strip():
                        raise RunDirError(f"{self.history_path}: line {n} is not JSON") from None
                    return  # a torn final line: the write was interrupted

    def write_checkpoint(self, state: dict[str, Any]) -> None:
        tmp = self.checkpoint_path.with_suffix(".json.tmp")
        with tmp.open("w", encoding="utf-8") as f:
            json.dump(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.checkpoint_path)

    def checkpoint(self) -> dict[str, Any] | None:
        if not self.checkpoint_path.exists():
            return None
        try:
            return json.loads(self.checkpoint_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise RunDirError(f"{self.checkpoint_path}: not valid JSON ({e.msg})") from None
