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
- ``lock``: the process searching the run holds it (:meth:`RunDir.lock`), so two
  searches never write one run; the kernel releases it when the process dies.

The project never leaves the directory corrupt: each history record is one
``write`` call, a record that could not be written whole (a full disk) is cut
off again, and a torn last line left by a crash is cut off (and kept in
``history.torn``) before anything is appended. Every record is checked when
read (:mod:`search.records`), with an error naming its line; blank lines are
skipped. The history is the truth: a checkpoint that is corrupt or disagrees
with it is rebuilt from it (see :class:`search.loop.Search`).

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
import math
import os
import socket
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dsl import Program, ProgramError, graph, parse
from dsl.skeleton import Identity, identify
from search import files
from search.config import ADDED_FIELDS, SearchConfig
from search.evolution import FAILED
from search.files import FileError
from search.records import (
    Checkpoint,
    FunnelFile,
    HistoryRecord,
    RecordError,
    funnel_file,
    history_record,
    loads,
)
from search.records import checkpoint as checked_checkpoint

try:
    import fcntl
except ImportError:  # Windows: no lock (documented in RunDir.lock)
    fcntl = None  # type: ignore[assignment]


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


def scales_of(baselines: dict[str, dict[str, Any]], tasks: list[str]) -> dict[str, float] | None:
    """Each task's scale in the multi-task rule (``evaluators.fitness.combine``): its tuned
    judge's seed noise, from ``baselines.json``; None unless every task has one (then
    tasks combine by the plain mean, as runs judged by the warm start do).

    >>> scales_of({"a": {"metric": 1.0, "tuned": {"seed_noise": 0.01}}}, ["a"])
    {'a': 0.01}
    >>> scales_of({"a": {"metric": 1.0}}, ["a"]) is None
    True
    """
    noise = {t: (baselines.get(t, {}).get("tuned") or {}).get("seed_noise") for t in tasks}
    if not all(isinstance(v, float) and v > 0 for v in noise.values()):
        return None
    return noise  # type: ignore[return-value]


def lr_of(tasks: dict[str, Any]) -> dict[str, float]:
    """Per task, the learning-rate multiplier an evaluation chose (records of
    searches without a grid have none)."""
    return {t: v["lr_multiplier"] for t, v in tasks.items() if v.get("lr_multiplier")}


def _read_json(path: Path, limit: int, *, infinity: bool = False, huge: bool = False) -> Any:
    """The run's JSON file ``path`` (None if there is none): bounded, never through a link,
    strict about numbers (:func:`search.records.loads`); any problem is a
    :class:`RunDirError` naming the file."""
    try:
        if not files.exists(path):
            return None
        text = files.read_text(path, limit, links=False)
    except FileError as e:
        raise RunDirError(str(e)) from None
    try:
        return loads(text, infinity=infinity, huge=huge)
    except ValueError as e:
        raise RunDirError(f"{files.shown(path)}: not valid JSON ({e})") from None


class RunDirError(ValueError):
    """A run directory that cannot be used; the message names the file and the problem."""


class DiskError(RuntimeError):
    """A file of the run directory could not be written (a full disk, a lost mount):
    not the user's input. One line naming the file; what was written before is intact."""


def _write_error(path: Path, e: OSError) -> Exception:
    """An ``OSError`` writing ``path``, as one line: a permission problem or a link planted
    in the run is the user's (:class:`RunDirError`), anything else the machine's
    (:class:`DiskError`)."""
    why = files.describe(e)
    if not files.input_fault(e):
        return DiskError(f"cannot write {path}: {why}")
    return RunDirError(f"{path}: cannot write there ({why})")


def _failure(e: FileError) -> Exception:
    """A :class:`~search.files.FileError` as the run directory's error: the machine's
    (:class:`DiskError`) or the input's (:class:`RunDirError`)."""
    return DiskError(str(e)) if e.disk else RunDirError(str(e))


class RunDir:
    """A search's run directory."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.config_path = self.path / "config.json"
        self.history_path = self.path / "history.jsonl"
        self.checkpoint_path = self.path / "checkpoint.json"
        self.baselines_path = self.path / "baselines.json"
        self.lock_path = self.path / "lock"
        self.torn_path = self.path / "history.torn"
        self.funnel_path = self.path / "funnel.json"
        self._lock_fd: int | None = None
        self._tail_checked = False

    @staticmethod
    def create(path: str | os.PathLike, config: SearchConfig) -> RunDir:
        run = RunDir(path)
        try:
            if files.exists(run.config_path):
                raise RunDirError(f"{run.path} already holds a search; resume it with --resume")
            made = files.exists(run.path)
        except FileError as e:
            raise RunDirError(str(e)) from None
        if made and not run.path.is_dir():
            raise RunDirError(f"{run.path} is a file, not a folder for a run")
        try:
            run.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunDirError(f"{run.path}: cannot make the folder ({e.strerror})") from None
        run.write_config(config)
        try:
            run.history_path.touch()
        except OSError as e:
            raise _write_error(run.history_path, e) from None
        return run

    def config_fields(self) -> dict[str, Any]:
        """``config.json``'s fields (checked as a config by :meth:`config`); a field added
        since the run was made (absent from the file) at the value that reproduces what
        the run did (:data:`search.config.ADDED_FIELDS`)."""
        data = _read_json(self.config_path, files.CONFIG_LIMIT)
        if data is None:
            raise RunDirError(f"{files.shown(self.path)} is not a run directory: no config.json")
        if not isinstance(data, dict):
            raise RunDirError(f"{self.config_path}: expected a JSON object of config fields, "
                              f"got {type(data).__name__}")
        return ADDED_FIELDS | data

    def config(self) -> SearchConfig:
        """:meth:`config_fields` as a config; RunDirError names a bad field."""
        try:
            return SearchConfig.model_validate(self.config_fields())
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(x) for x in err["loc"]) or "(file)"
            raise RunDirError(f"{self.config_path}: {where}: {err['msg']}") from None

    def write_config(self, config: SearchConfig) -> None:
        """Write ``config.json`` (atomically: a resume that grows ``max_evals`` rewrites it)."""
        self._replace(self.config_path, config.model_dump_json(indent=2) + "\n")

    def lock(self) -> None:
        """Hold the run for this process until it ends (or :meth:`unlock`).

        A second process is refused with the holder's process id. The lock is the
        kernel's (``flock``), so a process that died, even by SIGKILL, holds nothing:
        its stale ``lock`` file is simply taken over. Where ``fcntl`` is missing
        (Windows) runs are not locked.
        """
        if self._lock_fd is not None or fcntl is None:
            return
        try:
            fd = files.open_nofollow(self.lock_path, os.O_RDWR | os.O_CREAT)
        except OSError as e:
            raise _write_error(self.lock_path, e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "unknown"
            os.close(fd)
            raise RunDirError(f"{self.path} is in use by another search (process {holder}); "
                              "wait for it to end, or stop it, then resume") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} on {socket.gethostname()}\n".encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def cut_torn_tail(self) -> int:
        """Cut a last line that a crash left unfinished (no newline), keeping its bytes in
        ``history.torn``; the bytes cut (0 when the history ends on a line boundary).
        :meth:`append` calls it before its first write."""
        self._tail_checked = True
        try:
            fd = files.open_nofollow(self.history_path, os.O_RDWR)
        except FileNotFoundError:
            return 0
        except OSError as e:
            raise _write_error(self.history_path, e) from None
        try:
            with os.fdopen(fd, "r+b") as f:
                size = f.seek(0, os.SEEK_END)
                if size == 0:
                    return 0
                f.seek(size - 1)
                if f.read(1) == b"\n":
                    return 0
                end = size
                while end > 0:  # back to the last newline, a block at a time
                    start = max(0, end - 65536)
                    f.seek(start)
                    block = f.read(end - start)
                    cut = block.rfind(b"\n")
                    if cut >= 0:
                        end = start + cut + 1
                        break
                    end = start
                f.seek(end)
                fragment = f.read()
                kept = files.open_nofollow(self.torn_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
                try:
                    os.write(kept, fragment + b"\n")
                finally:
                    os.close(kept)
                f.truncate(end)
                return len(fragment)
        except OSError as e:
            raise _write_error(e.filename or self.history_path, e) from None

    def append(self, record: dict[str, Any]) -> None:
        """Add one line to the history in one ``write`` call, flushed to the operating
        system. A line that cannot be written whole is cut off again (:class:`DiskError`):
        the history always ends on a line boundary."""
        if not self._tail_checked:
            self.cut_torn_tail()
        data = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
        try:
            fd = files.open_nofollow(self.history_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        except OSError as e:
            raise _write_error(self.history_path, e) from None
        try:
            size = os.fstat(fd).st_size
            try:
                written = os.write(fd, data)
                while written < len(data):  # a short write: only on a nearly full disk
                    written += os.write(fd, data[written:])
            except OSError as e:
                try:
                    os.ftruncate(fd, size)
                except OSError:
                    pass
                raise _write_error(self.history_path, e) from None
        finally:
            os.close(fd)

    def history(self) -> Iterator[HistoryRecord]:
        """The history's records, in order: :meth:`numbered` without the line numbers."""
        for _, record in self.numbered():
            yield record

    def numbered(self) -> Iterator[tuple[int, HistoryRecord]]:
        """The history's records with their line numbers, in order, each checked
        (:mod:`search.records`).

        Blank lines are skipped; a last line without its newline (a write cut by a
        crash) too. Any other line that is not a record, or longer than
        :data:`search.files.LINE_LIMIT`, raises :class:`RunDirError` naming it; a history
        that is a link or not a regular file is refused.
        """
        try:
            fd = files.open_nofollow(self.history_path, os.O_RDONLY)
        except FileNotFoundError:
            return
        except OSError as e:
            why = files.describe(e)
            raise RunDirError(f"{self.history_path}: cannot read it ({why})") from None
        with os.fdopen(fd, "rb") as f:  # a regular file: open_nofollow saw to it
            n = 0
            while raw := f.readline(files.LINE_LIMIT + 1):
                n += 1
                if len(raw) > files.LINE_LIMIT:
                    raise RunDirError(f"{self.history_path}: line {n} is longer than "
                                      f"{files.LINE_LIMIT:,} bytes")
                if not raw.strip():
                    continue
                torn = not raw.endswith(b"\n")  # a write cut by a crash: skipped
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    if torn:
                        return
                    raise RunDirError(f"{self.history_path}: line {n} is not UTF-8 "
                                      "text") from None
                try:
                    record = history_record(line)
                except RecordError as e:
                    if torn:
                        return
                    what = " is not JSON" if str(e) == "not JSON" else f": {e}"
                    raise RunDirError(f"{self.history_path}: line {n}{what}") from None
                yield n, record

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
        return [self._program_of(r) for r in ranked]

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
        return self._program_of(rec)

    def _program_of(self, record: dict[str, Any]) -> RunProgram:
        """:meth:`RunProgram.from_record`; a source that is no program is named by the
        history's line."""
        try:
            return RunProgram.from_record(record)
        except ProgramError as e:
            line = next((n for n, rec in self.numbered() if rec is record or (
                rec["id"] == record["id"] and rec["source"] == record["source"])), "?")
            raise RunDirError(f"{self.history_path}: line {line}: source is not a program "
                              f"({e})") from None

    def identify(self, found: RunProgram) -> Identity:
        """What ``found`` is: the run's warm start (its first record) or a library program
        with other constants, or a new structure (:func:`dsl.skeleton.identify`)."""
        return identify(found.program, self.program(0).genome)

    def baselines(self) -> dict[str, dict[str, Any]]:
        """Per task, the calibrated warm start: ``{"metric", "lr_multiplier"}`` ({} before
        the first evaluation, or without a learning-rate grid)."""
        data = _read_json(self.baselines_path, files.JSON_LIMIT)
        if data is None:
            return {}
        if not isinstance(data, dict) or not all(
                isinstance(v, dict) and isinstance(v.get("metric"), float) for v in data.values()):
            raise RunDirError(f"{self.baselines_path}: expected {{task: {{\"metric\": ...}}}}")
        for task, v in data.items():
            if not 0 < v["metric"] < math.inf:  # the fitness is log(baseline / metric)
                raise RunDirError(f"{self.baselines_path}: {task}: metric {v['metric']!r} is "
                                  "not a positive finite number")
        return data

    def check_files(self) -> None:
        """Refuse the run if one of its files is there but is no regular file (a link, a
        folder, a FIFO): nothing is read or written through it, and a search that could
        not write its checkpoint later is refused now."""
        for path in (self.config_path, self.history_path, self.checkpoint_path,
                     self.baselines_path, self.funnel_path, self.torn_path, self.lock_path):
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                continue
            except OSError as e:
                raise RunDirError(f"{files.shown(path)}: {files.describe(e)}") from None
            if stat.S_ISLNK(mode):
                raise RunDirError(f"{files.shown(path)}: is a symbolic link; a run directory's "
                                  "files must be plain files")
            if not stat.S_ISREG(mode):
                raise RunDirError(f"{files.shown(path)}: not a regular file")

    def check_baselines(self, baselines: dict[str, dict[str, Any]]) -> None:
        """Refuse ``baselines`` (``baselines.json``) where they disagree with the baseline
        the history's first scored record was judged against: an edited judge would
        score every later child on another scale than the ones before."""
        for rec in self.history():
            scored = {t: v.get("baseline") for t, v in rec["tasks"].items()
                      if isinstance(v, dict) and isinstance(v.get("baseline"), float)}
            if not scored:
                continue
            for task, before in scored.items():
                now = baselines.get(task, {}).get("metric")
                if now is not None and not math.isclose(now, before, rel_tol=1e-9):
                    raise RunDirError(
                        f"{self.baselines_path}: {task}: metric {now!r} is not the "
                        f"{before!r} that {self.history_path.name} line of program {rec['id']} "
                        "was scored against (the file was edited); restore it")
            return

    def write_baselines(self, baselines: dict[str, dict[str, Any]]) -> None:
        self._replace(self.baselines_path, json.dumps(baselines, indent=2, sort_keys=True) + "\n")

    def write_checkpoint(self, state: Checkpoint | dict[str, Any]) -> None:
        self._replace(self.checkpoint_path, json.dumps(state))

    def _replace(self, path: Path, text: str) -> None:
        """Write ``path`` atomically: a temporary file, synced, then a rename; on failure
        the old file stays and no temporary is left."""
        try:
            files.replace(path, text)
        except FileError as e:
            raise _failure(e) from None

    def funnel(self) -> FunnelFile | None:
        """``funnel.json``, checked; None if the funnel has not run."""
        return self._read_checked(self.funnel_path, funnel_file, infinity=True)

    def write_funnel(self, data: FunnelFile) -> None:
        self._replace(self.funnel_path, json.dumps(data, indent=2))

    def checkpoint(self) -> Checkpoint | None:
        """The checkpoint, checked at its top level; None if there is none yet."""
        return self._read_checked(self.checkpoint_path, checked_checkpoint, huge=True)

    @staticmethod
    def _read_checked(path: Path, check: Callable[[Any], Any], infinity: bool = False,
                      huge: bool = False) -> Any:
        """The JSON file ``path`` read and checked by ``check`` (None if there is none);
        any problem is a :class:`RunDirError` naming the file."""
        data = _read_json(path, files.JSON_LIMIT, infinity=infinity, huge=huge)
        if data is None:
            return None
        try:
            return check(data)
        except RecordError as e:
            raise RunDirError(f"{path}: {e}") from None
