"""The search loop: ask, look up, evaluate, tell, record. Three plain calls at heart.

Resuming reads the checkpoint, then tells the proposer every result the
history holds beyond it, so a search killed at any point loses only the
evaluations that were in flight. The history is the truth: a checkpoint that
cannot be read, or that disagrees with the history (it counts lines, or an id,
that the history does not hold), is set aside and the search rebuilt by
replaying the whole history; :attr:`Search.notes` says so. A resume is of the
same search or nothing: the configuration's identity
(:meth:`~search.config.SearchConfig.identity_hash`, kept on every record and in
the checkpoint) must match, else :class:`~search.rundir.RunDirError` names the
field that changed.

A full disk stops the search (:class:`SearchStopped`) with a directory that
resumes once space is free: a record is written whole or not at all.

The judge (``judge``) is every task's baseline, kept in ``baselines.json`` and
sent with every job, so all workers score against the same values. By default
(``"tuned"``) it is AdamW tuned on all its hyperparameters
(:mod:`evaluators.tuning`): one tuning job per task runs first, on the workers
(the machine's cache answers at once when it holds them). With
``judge: warm_start`` and a learning-rate grid, the warm start's evaluation,
its calibration by the wide grid (:data:`evaluators.grid.WIDE`), gives the baselines.

A search that cannot work says so at once: the warm start is evaluated alone
first, and if it fails on a task the search stops (:class:`SearchStopped`)
before anything else is spent. An infrastructure error (the evaluation could
not run: see :mod:`search.executor`) is recorded in the history but never
cached nor told as a fitness; the candidate is asked again, and after
``max_infra_errors`` in a row the search stops, checkpointed.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsl import Program, ProgramError, abstract, library, parse
from evaluators.grid import WIDE
from search import files
from search.cache import Cache
from search.config import SearchConfig
from search.evolution import FAILED, Candidate, Evolution
from search.records import Job
from search.rundir import DiskError, RunDir, RunDirError, lr_of, scales_of

#: Proposals allowed per evaluation before the search stops looking for new programs.
MAX_PROPOSALS_PER_EVAL = 200
#: The library program tuned as the judge (``judge: tuned``).
JUDGE = "adamw"


def is_path(spec: str) -> bool:
    """Whether ``spec`` names a file (or run directory) rather than a library program: a
    library name is always the library's, unless written as a path (``./lion``).

    >>> is_path("lion"), is_path("./lion"), is_path("mine.dsl"), is_path("mine")
    (False, True, True, True)
    """
    return ("/" in spec or os.sep in spec or bool(Path(spec).suffix)
            or spec not in library.names())


def program_text(spec: str) -> str:
    """The text of the program file ``spec``, bounded (:data:`search.files.PROGRAM_LIMIT`)
    before it is read; any problem is one :class:`ProgramError` naming the file."""
    try:
        return files.read_text(spec, files.PROGRAM_LIMIT)
    except files.FileError as e:
        raise ProgramError(str(e)) from None


#: A program file's comment naming the learning rate calibration chose for it, before the
#: ``def``: ``# learning_rate: 56.2 (calibrated on ...)``. ``simplify --out`` writes it
#: (a simplified program keeps its found one's), ``export`` of the file reads it.
LR_COMMENT = "# learning_rate:"


def declared_lr(text: str) -> tuple[float, str] | None:
    """The learning rate (a multiplier of the program's own ``lr``) and its note that a
    program file's :data:`LR_COMMENT` line declares; None without one, or where its value
    is no learning rate (not a positive finite number).

    >>> declared_lr("# learning_rate: 0.5 (on tier B)\\ndef train(w, g, lr):\\n  u = g * lr\\n"
    ...             "  return u")
    (0.5, 'on tier B')
    """
    for line in text.splitlines():
        if line.lstrip().startswith("def "):
            return None
        if line.startswith(LR_COMMENT):
            value, _, note = line[len(LR_COMMENT):].strip().partition(" ")
            try:
                lr = float(value)
            except ValueError:
                return None
            return (lr, note.strip().removeprefix("(").removesuffix(")")) if (
                0 < lr < math.inf) else None
    return None


def load_program(spec: str) -> Program:
    """A library program by name, or a program file by path (see :func:`is_path`)."""
    try:
        named = is_path(spec) and (bool(Path(spec).suffix) or files.exists(spec))
    except files.FileError as e:  # a name the system refuses (too long)
        raise ProgramError(str(e)) from None
    if named:
        text = program_text(spec)
        try:
            return parse(text)
        except ProgramError as e:
            raise ProgramError(f"{spec}: {e}") from None
    return library.get(spec)


@dataclass
class Stats:
    """What the progress display shows."""

    evaluated: int
    proposals: int
    max_evals: int
    elapsed: float
    hit_rate: float
    best: float | None
    round: int
    exploring: bool
    failed: int = 0
    infra: int = 0
    screened: int = 0  # programs below the hurdle, not trained on the later tasks
    tuning: int = 0  # tasks whose tuned baseline (the judge) is not known yet
    judge: str = "tuned"  # SearchConfig.judge
    before: int = 0  # evaluations a resumed run had made before this process

    @property
    def rate(self) -> float:
        """Evaluations per second of this process (a resumed run's earlier ones aside)."""
        return (self.evaluated - self.before) / self.elapsed if self.elapsed > 0 else 0.0


class SearchStopped(Exception):
    """A search that cannot go on (its warm start fails, or the infrastructure does);
    the message is one line naming the task and the error."""


def failure_message(record: dict[str, Any]) -> str | None:
    """Why a history record failed, on one line (None if it did not): an
    infrastructure error, or the first task the program was invalid on or diverged on."""
    if record.get("infra") or record.get("error"):
        return record["error"]
    if record["fitness"] is None or record["fitness"] > FAILED:
        return None
    for task, t in sorted(record.get("tasks", {}).items()):
        if t.get("error"):
            return f"{task}: {t['error']}"
        if t.get("diverged"):
            return f"{task}: training diverged"
    return "failed"


def _changed(run: RunDir, before: dict[str, Any], now: dict[str, Any]) -> str:
    """One line naming the first field of a search's identity that changed."""
    for key in sorted(set(before) | set(now)):
        if before.get(key) != now.get(key):
            old, new = (json.dumps(d.get(key)) for d in (before, now))
            return (f"{run.config_path}: {key} was {old} when the run began, now {new}; a "
                    "resumed run keeps its configuration (only max_evals and where and how "
                    "fast it runs may change): restore it, or start a new run")
    return f"{run.config_path}: the configuration changed"


class Search:
    """One search over a run directory: :meth:`open` reads the run (its checkpoint
    and history), :meth:`run_until_done` evaluates with the executor it is given.

    >>> import tempfile
    >>> from search.config import SearchConfig
    >>> from search.executor import SerialExecutor
    >>> from search.rundir import RunDir
    >>> cfg = SearchConfig(executor="serial", tasks=["quadratic/A"], seeds=[0], max_evals=3)
    >>> run = RunDir.create(tempfile.mkdtemp() + "/run", cfg)
    >>> search = Search.open(cfg, run)             # nothing evaluated yet
    >>> evo = search.run_until_done(SerialExecutor())
    >>> search.evaluated, run.best().id == evo.best.id
    (3, True)
    """

    def __init__(self, cfg: SearchConfig, run: RunDir) -> None:
        """A search of ``run`` under ``cfg`` that has read nothing yet: :meth:`open`
        makes one that has."""
        self.cfg, self.run = cfg, run
        self.executor: Any = None  # the executor of the current run_until_done
        self.warm = load_program(cfg.warm_start)
        self.starts = tuple(load_program(spec) for spec in cfg.warm_starts)
        self.inflight: dict[int, tuple[Candidate, tuple[str, str]]] = {}
        self.config_hash = cfg.identity_hash()
        #: What opening the run found and mended, one line each, for the user to read.
        self.notes: list[str] = []
        #: Called after each checkpoint is written (the command line rewrites the report).
        self.on_checkpoint: Callable[[], None] | None = None
        #: Why the last checkpoint could not be written (None when it was).
        self.checkpoint_error: str | None = None
        self.infra_streak = 0
        self.before = 0  # evaluations made before this run_until_done (a resumed run's)
        self.last_infra_error: str | None = None
        self.baselines: dict[str, Any] = {}
        #: Tuning jobs in flight: job id -> task.
        self.tuning: dict[int, str] = {}
        #: Where lines about the judge go (a tuned baseline found), if anywhere.
        self.say: Callable[[str], None] | None = None
        #: Set by a SIGINT handler: the loop stops at its next step even when the
        #: KeyboardInterrupt itself was swallowed (Python ignores one raised inside a
        #: garbage-collector callback, such as JAX's).
        self.interrupted = False
        self.opened = False
        self._start(None)

    @classmethod
    def open(cls, cfg: SearchConfig, run: RunDir) -> Search:
        """Open ``run`` for ``cfg``: a torn last history line is cut (kept aside), the
        checkpoint read (rebuilt from the history when it is corrupt or disagrees with
        it) and the history beyond it replayed. :attr:`notes` says what was mended. A
        run of another configuration raises :class:`RunDirError` naming the change."""
        search = cls(cfg, run)
        search._open()
        return search

    def _open(self) -> None:
        cfg, run = self.cfg, self.run
        run.check_files()
        self.baselines = run.baselines()
        run.check_baselines(self.baselines)
        try:
            state = run.checkpoint()
        except RunDirError as e:
            state, problem = None, str(e)
        else:
            if state is not None and state.get("config", cfg.identity()) != cfg.identity():
                raise RunDirError(_changed(run, state["config"], cfg.identity()))
            problem = None if state is None else self._disagreement(state)
        self._start(state if problem is None else None)
        if problem is not None:
            self.notes.append(f"{problem}: the search is rebuilt from the history, which is "
                              "the truth")
            self._start(None)
        self._replay()
        # the one repair of opening, made once nothing refused the run
        cut = run.cut_torn_tail()
        if cut:
            self.notes.append(f"{run.history_path}: cut a torn last line ({cut} bytes, an "
                              f"interrupted write; kept in {run.torn_path.name})")
        self.opened = True

    def _start(self, state: dict[str, Any] | None) -> None:
        """The proposer, cache and counters from a checkpoint, or afresh."""
        cfg = self.cfg
        self.evo, self.cache = Evolution.start(cfg, self.warm, self.starts), Cache()
        self.evaluated = self.proposals = self.lines = 0
        self.failed = self.infra = self.screened = 0
        self.last_id: int | None = None
        if state is None:
            return
        self.evo = Evolution.from_state(cfg, self.warm, state["evolution"], self.starts)
        self.cache = Cache.from_state(state["cache"])
        self.evaluated, self.proposals = state["evaluated"], state["proposals"]
        self.lines = state["history_lines"]
        self.failed, self.infra = state.get("failed", 0), state.get("infra", 0)
        self.screened = state.get("screened", 0)

    def _disagreement(self, state: dict[str, Any]) -> str | None:
        """Why ``state`` cannot be continued from (None if it can): it does not match
        the history, or cannot be loaded."""
        where = self.run.checkpoint_path
        lines = evaluated = 0
        last = None
        for rec in self.run.history():
            if lines < state["history_lines"]:
                evaluated += not rec["cached"] and not rec.get("infra")
                last = rec["id"]
            lines += 1
        if lines < state["history_lines"]:
            return (f"{where} counts {state['history_lines']} history lines, "
                    f"{self.run.history_path.name} holds {lines}")
        if evaluated != state["evaluated"] or state.get("last_id", last) != last:
            return (f"{where} does not match {self.run.history_path.name} (it counts "
                    f"{state['evaluated']} evaluations in its first {state['history_lines']} "
                    f"lines, which hold {evaluated})")
        try:
            Evolution.from_state(self.cfg, self.warm, state["evolution"], self.starts)
            Cache.from_state(state["cache"])
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            return f"{where}: cannot be loaded ({type(e).__name__}: {e})"
        return None

    def _replay(self) -> None:
        """Tell what the history holds beyond the checkpoint; ids continue after the last.
        A record of another configuration is refused (:class:`RunDirError`)."""
        last = -1
        for n, (line, rec) in enumerate(self.run.numbered()):
            last = max(last, rec["id"])
            if rec.get("config_hash", self.config_hash) != self.config_hash:
                raise RunDirError(
                    f"{self.run.config_path}: the run's configuration changed since line "
                    f"{line} of {self.run.history_path.name} was written (identity "
                    f"{rec['config_hash']}, now {self.config_hash}); a resumed run keeps its "
                    "configuration (only max_evals and where and how fast it runs may "
                    "change): restore it, or start a new run")
            if n < self.lines:
                self.last_id = rec["id"]
                continue
            self.last_id = rec["id"]
            try:
                program = parse(rec["source"])
            except ProgramError as e:
                raise RunDirError(f"{self.run.history_path}: line {line}: source is not a "
                                  f"program ({e})") from None
            cand = Candidate(rec["id"], rec["parent"], program, rec["mutation"], rec["round"])
            keys = (rec["structural_hash"], rec["fingerprint"])
            self.lines = n + 1
            self.proposals += not rec.get("infra")
            self._absorb(cand, keys, rec, self._lr(rec))
        self.evo.next_id = max(self.evo.next_id, last + 1)

    def _absorb(self, cand: Candidate, keys: tuple[str, str], rec: dict[str, Any],
                lr: dict[str, float] | None) -> None:
        """What one history record means to the search, the same whether it was just
        written or is replayed on resume: a candidate to evaluate again (an
        infrastructure error), or a result for the cache, the counters and the proposer."""
        if rec.get("infra"):
            self.infra += 1
            self.evo.retry(cand)
            return
        self.evo.retries = [c for c in self.evo.retries if c.id != cand.id]
        if not rec["cached"]:
            self.cache.store(keys, {"fitness": rec["fitness"], "id": rec["id"],
                                    "lr": lr_of(rec.get("tasks", {})) or None})
            self.evaluated += 1
            self.failed += rec["fitness"] <= FAILED
            self.screened += bool(rec.get("screened"))
        self.evo.tell(cand, rec["fitness"], lr=lr, fresh=not rec["cached"])

    def _lr(self, record: dict[str, Any]) -> dict[str, float] | None:
        """The multipliers a record's evaluation chose per task (a cache answer: its
        original's), or None without a grid."""
        if record.get("cached"):
            hit = self.cache.results.get(record["fingerprint"]) or {}
            return hit.get("lr")
        return lr_of(record.get("tasks", {})) or None

    def checkpoint(self) -> None:
        self.run.write_checkpoint({
            "version": 1, "evolution": self.evo.state_dict(), "cache": self.cache.state_dict(),
            "evaluated": self.evaluated, "proposals": self.proposals,
            "history_lines": self.lines, "failed": self.failed, "infra": self.infra,
            "screened": self.screened,
            "last_id": self.last_id, "config": self.cfg.identity(),
        })
        if self.on_checkpoint is not None:
            self.on_checkpoint()

    def _record(self, cand: Candidate, keys: tuple[str, str], result: dict[str, Any],
                cached_from: int | None) -> None:
        """Append a result to the history, then absorb it (:meth:`_absorb`)."""
        infra = bool(result.get("infra"))
        record = {
            "id": cand.id, "parent": cand.parent, "round": cand.round,
            "mutation": cand.mutation, "source": cand.program.to_source(),
            "structural_hash": keys[0], "fingerprint": keys[1],
            "skeleton": abstract.skeleton_hash(cand.program),
            "cached": cached_from is not None, "cached_from": cached_from,
            "fitness": None if infra else result["fitness"], "infra": infra,
            "tasks": result.get("tasks", {}), "error": result.get("error"),
            "worker": result.get("worker"), "lr_centre": cand.lr_centre,
            "timing": result.get("timing", {}) | {"finished_at": time.time()},
            "config_hash": self.config_hash,
        } | {key: result[key] for key in ("skipped", "screened") if result.get(key)}
        self.run.append(record)
        self.lines += 1
        self.last_id = cand.id
        lr = result.get("lr") if cached_from is not None else lr_of(result.get("tasks", {}))
        self._absorb(cand, keys, record, lr or None)
        if infra:
            return
        if cand.id == 0 and self.cfg.lr_grid is not None and not self.baselines:
            self._keep_baselines(result.get("tasks", {}))

    def _keep_baselines(self, tasks: dict[str, Any]) -> None:
        """The warm start's calibration gave every task's baseline: keep them."""
        found = {t: {"metric": v["baseline"], "lr_multiplier": v.get("baseline_lr")}
                 for t, v in tasks.items() if isinstance(v.get("baseline"), float)}
        if set(found) == set(self.cfg.tasks):
            self.baselines = found
            self.run.write_baselines(found)

    def _untuned(self) -> list[str]:
        """The tasks whose judge, tuned AdamW, is not known yet (none with
        ``judge: warm_start``)."""
        if self.cfg.judge != "tuned":
            return []
        return [t for t in self.cfg.tasks if t not in self.baselines]

    def _fill_tuning(self, untuned: list[str]) -> None:
        """The tuning jobs of the tasks not tuned yet, as many at once as workers."""
        cfg = self.cfg
        for task in untuned:
            if self.executor.pending >= cfg.workers:
                return
            if task in self.tuning.values():
                continue
            job: Job = {"id": -1 - cfg.tasks.index(task), "source": "", "tasks": [task],
                        "seeds": list(cfg.seeds), "tune": JUDGE}
            if cfg.task_modules:
                job["task_modules"] = list(cfg.task_modules)
            self.tuning[job["id"]] = task
            self.executor.submit(job)

    def _tuned(self, result: dict[str, Any]) -> None:
        """A tuning job's result: the task's judge, kept in ``baselines.json``."""
        task = self.tuning.pop(result["id"])
        if result.get("infra"):  # as the warm start's: nothing more is spent before a fix
            self.infra += 1
            raise SearchStopped(f"the judge could not be tuned: {result['error']}")
        if result.get("error"):
            raise SearchStopped(f"the judge cannot be set, so no program can be judged: "
                                f"{result['error']}")
        self.infra_streak = 0
        tuned = result["tuned"]
        self.baselines[task] = {"metric": tuned["metric"],
                                "lr_multiplier": tuned["lr_multiplier"], "tuned": tuned}
        self.run.write_baselines(self.baselines)
        if self.say:
            hp = "".join(f", {k}={v:.4g}" for k, v in tuned["hyperparameters"].items())
            took = (f"in {tuned['seconds']:.0f} s" if tuned["seconds"]
                    else "from this machine's cache")
            self.say(f"judge on {task}: {JUDGE} tuned ({tuned['protocol']}): metric "
                     f"{tuned['metric']:.4g} at lr x{tuned['lr_multiplier']:.3g}{hp} "
                     f"(defaults {tuned['default_metric']:.4g}), {took}")

    def _fill(self) -> None:
        cfg = self.cfg
        untuned = self._untuned()
        if untuned:  # nothing is judged before the judge is known
            self._fill_tuning(untuned)
            return
        cap = MAX_PROPOSALS_PER_EVAL * cfg.max_evals
        # The warm start runs alone: if it cannot be evaluated, nothing else is spent.
        width = cfg.workers if self.evo.warm_fitness is not None else 1
        while (self.executor.pending < width and self.proposals < cap
               and self.evaluated + self.executor.pending < cfg.max_evals):
            cand = self.evo.ask()
            self.proposals += 1
            keys = Cache.keys(cand.program)
            hit = self.cache.lookup(keys)
            if hit is not None:
                self._record(cand, keys, {"fitness": hit["fitness"], "lr": hit.get("lr")},
                             cached_from=hit["id"])
                continue
            self.inflight[cand.id] = (cand, keys)
            self.executor.submit(self._job(cand))

    def _job(self, cand: Candidate) -> Job:
        """What a worker needs to evaluate ``cand``: with a grid, the warm start is
        calibrated by the wide grid (it is the baseline); later jobs carry the
        baselines it found and the multipliers to centre on."""
        cfg = self.cfg
        job: Job = {"id": cand.id, "source": cand.program.to_source(),
                               "tasks": list(cfg.tasks), "seeds": list(cfg.seeds)}
        if cfg.task_modules:
            job["task_modules"] = list(cfg.task_modules)
        warm = cand.id == 0
        if cfg.hurdle is not None and not warm:  # the warm start is every task's baseline
            job["hurdle"] = cfg.hurdle
        if cfg.lr_grid is not None:
            job["lr_grid"] = (WIDE if warm else cfg.lr_grid).model_dump()
            job["lr_centre"] = None if warm else cand.lr_centre
            job["baselines"] = None
        if self.baselines:
            job["baselines"] = {t: b["metric"] for t, b in self.baselines.items()}
        scales = scales_of(self.baselines, self.cfg.tasks)
        if scales:
            job["scales"] = scales
        return job

    def run_until_done(self, executor: Any,
                       progress: Callable[[Stats], None] | None = None) -> Evolution:
        """Run to ``max_evals`` evaluations with ``executor`` (a
        :class:`~search.executor.SerialExecutor` or ``RayExecutor``, shut down at the
        end); checkpoint every N results and at the end.

        Raises :class:`SearchStopped` (checkpointed) when the warm start fails,
        ``max_infra_errors`` infrastructure errors come in a row, or a file of the
        run cannot be written (a full disk: :attr:`checkpoint_error` then says
        whether the checkpoint could be; the history is whole either way). On
        KeyboardInterrupt, in-flight work is abandoned (its candidates, kept in the
        checkpoint, are evaluated first when the search resumes), the checkpoint is
        written, and the interrupt propagates.
        """
        if not self.opened:  # it would start afresh over a run that has a history
            raise RuntimeError("the run was not read: make the search with Search.open(cfg, run)")
        start = time.perf_counter()
        self.before = self.evaluated
        self.executor = executor
        try:
            self._run(start, progress)
        except (DiskError, RunDirError) as e:  # a full disk; a folder made read-only
            raise SearchStopped(str(e)) from None
        finally:
            self.executor.shutdown()
            for cand, _ in self.inflight.values():  # evaluated first when resumed
                self.evo.retry(cand)
            self.inflight.clear()
            self.tuning.clear()
            try:
                self.checkpoint()
                self.checkpoint_error = None
            except (DiskError, RunDirError) as e:
                self.checkpoint_error = str(e)
        if self.checkpoint_error is not None:
            raise SearchStopped(self.checkpoint_error)
        return self.evo

    def _run(self, start: float, progress: Callable[[Stats], None] | None) -> None:
        self._check_warm_start()
        while True:
            self._fill()
            if not self.executor.pending:
                break
            for result in self.executor.wait():
                if result["id"] in self.tuning:
                    self._tuned(result)
                    continue
                cand, keys = self.inflight.pop(result["id"])
                self._record(cand, keys, result, cached_from=None)
                if result.get("infra"):
                    self.infra_streak += 1
                    self.last_infra_error = result["error"]
                    continue
                self.infra_streak = 0
                if self.evaluated % self.cfg.checkpoint_every == 0:
                    self.checkpoint()
            if progress:
                progress(self.stats(time.perf_counter() - start))
            if self.interrupted:
                raise KeyboardInterrupt
            self._check_warm_start()
            if self.infra_streak >= self.cfg.max_infra_errors:
                raise SearchStopped(
                    f"{self.infra_streak} infrastructure errors in a row (not the programs' "
                    f"fault), the last: {self.last_infra_error}")

    def _check_warm_start(self) -> None:
        """Stop if the warm start failed on a task, or its evaluation could not run (a
        resumed search evaluates it again first)."""
        if self.evo.warm_fitness is not None and self.evo.warm_fitness > FAILED:
            return
        if self.evo.warm_fitness is None and not self.infra_streak:
            return  # not evaluated yet
        warm = [r for r in self.run.history() if r["mutation"].get("kind") == "warm_start"]
        if not warm:
            return
        if warm[-1].get("infra"):
            raise SearchStopped(f"the warm start could not be evaluated: {warm[-1]['error']}")
        raise SearchStopped(f"the warm start {self.cfg.warm_start!r} fails, so no program can "
                            f"be judged: {failure_message(warm[-1])}")

    def stats(self, elapsed: float) -> Stats:
        best = self.evo.best
        return Stats(self.evaluated, self.proposals, self.cfg.max_evals, elapsed,
                     self.cache.hit_rate, None if best is None else best.fitness,
                     self.evo.round, self.evo.exploring, self.failed, self.infra,
                     self.screened, len(self._untuned()), self.cfg.judge, self.before)


__all__ = ["RunDirError", "Search", "SearchStopped", "Stats", "failure_message", "is_path",
           "load_program"]
