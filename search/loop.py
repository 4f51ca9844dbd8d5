"""The search loop: ask, look up, evaluate, tell, record. Three plain calls at heart.

Resuming reads the checkpoint, then tells the proposer every result the
history holds beyond it, so a search killed at any point loses only the
evaluations that were in flight.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsl import Program, ProgramError, library, parse
from search.cache import Cache
from search.config import SearchConfig
from search.evolution import Candidate, Evolution
from search.rundir import RunDir, RunDirError

#: Proposals allowed per evaluation before the search stops looking for new programs.
MAX_PROPOSALS_PER_EVAL = 200


def load_program(spec: str) -> Program:
    """A library program by name, or a program file by path."""
    path = Path(spec)
    if path.suffix or path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ProgramError(f"cannot read {spec}: {e.strerror}") from None
        except UnicodeDecodeError:
            raise ProgramError(f"{spec} is not UTF-8 text") from None
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

    @property
    def rate(self) -> float:
        return self.evaluated / self.elapsed if self.elapsed > 0 else 0.0


class Search:
    """One search over a run directory, with any executor."""

    def __init__(self, cfg: SearchConfig, run: RunDir, executor: Any) -> None:
        self.cfg, self.run, self.executor = cfg, run, executor
        self.warm = load_program(cfg.warm_start)
        self.inflight: dict[int, tuple[Candidate, tuple[str, str]]] = {}
        state = run.checkpoint()
        if state is None:
            self.evo, self.cache = Evolution.start(cfg, self.warm), Cache()
            self.evaluated = self.proposals = self.lines = 0
        else:
            self.evo = Evolution.from_state(cfg, self.warm, state["evolution"])
            self.cache = Cache.from_state(state["cache"])
            self.evaluated, self.proposals = state["evaluated"], state["proposals"]
            self.lines = state["history_lines"]
        self._replay()

    def _replay(self) -> None:
        """Tell what the history holds beyond the checkpoint; ids continue after the last."""
        last = -1
        for n, rec in enumerate(self.run.history()):
            last = max(last, rec["id"])
            if n < self.lines:
                continue
            program = parse(rec["source"])
            cand = Candidate(rec["id"], rec["parent"], program, rec["mutation"], rec["round"])
            keys = (rec["structural_hash"], rec["fingerprint"])
            if not rec["cached"]:
                self.cache.store(keys, {"fitness": rec["fitness"], "id": rec["id"]})
                self.evaluated += 1
            self.proposals += 1
            self.evo.tell(cand, rec["fitness"])
            self.lines = n + 1
        self.evo.next_id = max(self.evo.next_id, last + 1)

    def checkpoint(self) -> None:
        self.run.write_checkpoint({
            "version": 1, "evolution": self.evo.state_dict(), "cache": self.cache.state_dict(),
            "evaluated": self.evaluated, "proposals": self.proposals,
            "history_lines": self.lines,
        })

    def _record(self, cand: Candidate, keys: tuple[str, str], result: dict[str, Any],
                cached_from: int | None) -> None:
        self.run.append({
            "id": cand.id, "parent": cand.parent, "round": cand.round,
            "mutation": cand.mutation, "source": cand.program.to_source(),
            "structural_hash": keys[0], "fingerprint": keys[1],
            "cached": cached_from is not None, "cached_from": cached_from,
            "fitness": result["fitness"], "tasks": result.get("tasks", {}),
            "error": result.get("error"), "worker": result.get("worker"),
            "timing": result.get("timing", {}) | {"finished_at": time.time()},
        })
        self.lines += 1
        self.evo.tell(cand, result["fitness"])

    def _fill(self) -> None:
        cfg = self.cfg
        cap = MAX_PROPOSALS_PER_EVAL * cfg.max_evals
        while (self.executor.pending < cfg.workers and self.proposals < cap
               and self.evaluated + self.executor.pending < cfg.max_evals):
            cand = self.evo.ask()
            self.proposals += 1
            keys = Cache.keys(cand.program)
            hit = self.cache.lookup(keys)
            if hit is not None:
                self._record(cand, keys, {"fitness": hit["fitness"]}, cached_from=hit["id"])
                continue
            self.inflight[cand.id] = (cand, keys)
            self.executor.submit({"id": cand.id, "source": cand.program.to_source(),
                                  "tasks": list(cfg.tasks), "seeds": list(cfg.seeds)})

    def run_until_done(self, progress: Callable[[Stats], None] | None = None) -> Evolution:
        """Run to ``max_evals`` evaluations; checkpoint every N results and at the end.

        On KeyboardInterrupt, in-flight work is abandoned, the checkpoint is
        written, and the interrupt propagates.
        """
        start = time.perf_counter()
        try:
            while True:
                self._fill()
                if not self.executor.pending:
                    break
                for result in self.executor.wait():
                    cand, keys = self.inflight.pop(result["id"])
                    self.cache.store(keys, {"fitness": result["fitness"], "id": cand.id})
                    self._record(cand, keys, result, cached_from=None)
                    self.evaluated += 1
                    if self.evaluated % self.cfg.checkpoint_every == 0:
                        self.checkpoint()
                if progress:
                    progress(self.stats(time.perf_counter() - start))
        finally:
            self.executor.shutdown()
            self.inflight.clear()
            self.checkpoint()
        return self.evo

    def stats(self, elapsed: float) -> Stats:
        best = self.evo.best
        return Stats(self.evaluated, self.proposals, self.cfg.max_evals, elapsed,
                     self.cache.hit_rate, None if best is None else best.fitness,
                     self.evo.round, self.evo.exploring)


__all__ = ["RunDirError", "Search", "Stats", "load_program"]
