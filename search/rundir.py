"""The run directory, the truth of a search: config, history, checkpoint.

- ``config.json``: the search's configuration, written once.
- ``history.jsonl``: one line per candidate (evaluated or answered by the
  cache), appended and flushed as results arrive; timing fields are kept under
  ``"timing"`` so everything else is reproducible from the seed.
- ``checkpoint.json``: the proposer, the cache index and the counters, written
  atomically (a temporary file, then a rename) every N results and at exit.
- ``baselines.json``: with a learning-rate grid, the warm start calibrated on
  each task (its best metric and multiplier), from the search's first
  evaluation; every later evaluation is scored against these values.

No pickle: everything is JSON a person can read. A run is read from Python
with :meth:`RunDir.best`, :meth:`RunDir.top` and :meth:`RunDir.program`:

>>> import tempfile
>>> from search.config import SearchConfig
>>> run = RunDir.create(tempfile.mkdtemp() + "/run", SearchConfig())
>>> run.best() is None  # nothing evaluated yet
True
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dsl import Program, graph, parse
from search.config import SearchConfig
from search.evolution import FAILED


@dataclass(frozen=True)
class RunProgram:
    """One evaluated program of a run.

    ``program`` is what a person reads and exports: the genome with its dead
    statements and states removed (the same update rule); ``genome`` is the
    program exactly as the search evaluated it (the history keeps it).
    """

    id: int
    fitness: float
    round: int
    parent: int | None
    genome: Program
    program: Program
    tasks: dict[str, float]
    record: dict[str, Any]
    lr: dict[str, float]

    @staticmethod
    def from_record(record: dict[str, Any]) -> RunProgram:
        genome = parse(record["source"])
        tasks = record.get("tasks", {})
        return RunProgram(record["id"], record["fitness"], record["round"], record["parent"],
                          genome, graph.remove_dead(genome),
                          {t: v["fitness"] for t, v in tasks.items()}, record, lr_of(tasks))

    @property
    def failed(self) -> bool:
        return self.fitness <= FAILED


def lr_of(tasks: dict[str, Any]) -> dict[str, float]:
    """Per task, the learning-rate multiplier an evaluation chose (records of
    searches without a grid have none)."""
    return {t: v["lr_multiplier"] for t, v in tasks.items() if v.get("lr_multiplier")}


class RunDirError(ValueError):
    """A run directory that cannot be used; the message names the file and the problem."""


class RunDir:
    """A search's run directory."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.config_path = self.path / "config.json"
        self.history_path = self.path / "history.jsonl"
        self.checkpoint_path = self.path / "checkpoint.json"
        self.baselines_path = self.path / "baselines.json"

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

    def evaluated(self) -> list[dict[str, Any]]:
        """The records of programs actually evaluated: not cache answers, not
        infrastructure errors (a retried program's later record is kept)."""
        return [r for r in self.history() if not r["cached"] and not r.get("infra")]

    def top(self, k: int = 3) -> list[RunProgram]:
        """The ``k`` best distinct programs (one per fingerprint), best first;
        failed ones never."""
        best: dict[str, dict[str, Any]] = {}
        for rec in self.evaluated():
            if rec["fitness"] <= FAILED:
                continue
            kept = best.get(rec["fingerprint"])
            if kept is None or rec["fitness"] > kept["fitness"]:
                best[rec["fingerprint"]] = rec
        ranked = sorted(best.values(), key=lambda r: (-r["fitness"], r["id"]))[:k]
        return [RunProgram.from_record(r) for r in ranked]

    def best(self) -> RunProgram | None:
        """The run's best program so far (None until one finished without failing)."""
        top = self.top(1)
        return top[0] if top else None

    def program(self, program_id: int) -> RunProgram:
        """Program ``program_id`` of the run (a cache answer reads its original's result)."""
        records = {r["id"]: r for r in self.history() if not r.get("infra")}
        if program_id not in records:
            raise RunDirError(f"{self.history_path}: no evaluated program with id {program_id}"
                              f" (ids 0 to {max(records, default=-1)})")
        rec = records[program_id]
        if rec["cached"] and rec.get("cached_from") in records:
            rec = rec | {"tasks": records[rec["cached_from"]].get("tasks", {})}
        return RunProgram.from_record(rec)

    def baselines(self) -> dict[str, dict[str, Any]]:
        """Per task, the calibrated warm start: ``{"metric", "lr_multiplier"}`` ({} before
        the first evaluation, or without a learning-rate grid)."""
        if not self.baselines_path.exists():
            return {}
        try:
            data = json.loads(self.baselines_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise RunDirError(f"{self.baselines_path}: not valid JSON ({e})") from None
        if not isinstance(data, dict) or not all(
                isinstance(v, dict) and isinstance(v.get("metric"), float) for v in data.values()):
            raise RunDirError(f"{self.baselines_path}: expected {{task: {{\"metric\": ...}}}}")
        return data

    def write_baselines(self, baselines: dict[str, dict[str, Any]]) -> None:
        tmp = self.baselines_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(baselines, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.baselines_path)

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
