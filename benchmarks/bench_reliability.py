"""A Ray search killed again and again: does its run directory lose or repeat anything?

    python benchmarks/bench_reliability.py --cycles 20

Each cycle starts (the first) or resumes (the rest) a real ``run_search.py``
process on an embedded Ray instance, waits until it has recorded at least one
more program, then a random moment more (up to 1.5 s and 3 more records), and kills
it with SIGKILL; every third cycle first kills a Ray worker in the middle of an
evaluation (Ray retries it).
After each kill it checks that every record written before is still there,
unchanged, and that no Ray process of the killed driver lives on (its watchdog,
:mod:`search.reaper`, stops them). A last resume runs the search to
``max_evals``. Figures: records lost, evaluations recorded twice, Ray processes
left over, and the final count against ``max_evals``.

Last line: ``evaluations_lost: N``, records lost plus duplicates (the goal: 0).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Report:
    """What the kill cycles found."""

    cycles: int = 0
    worker_kills: int = 0
    lost: int = 0
    duplicates: int = 0
    leftover_processes: int = 0
    evaluated: int = 0
    max_evals: int = 0
    infra_errors: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def _records(history: Path) -> list[dict]:
    if not history.exists():
        return []
    lines = history.read_bytes().split(b"\n")
    return [json.loads(line) for line in lines[:-1] if line.strip()]  # the last: torn or ""


def session_processes(sid: int) -> list[tuple[int, str]]:
    """(id, command line) of the processes of session ``sid`` (Linux)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[3]) != sid or fields[0] == "Z":
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                found.append((int(entry), f.read().replace(b"\0", b" ").decode(errors="replace")))
        except OSError:
            continue
    return found


def _kill_a_worker(sid: int) -> bool:
    """SIGKILL one Ray worker that is evaluating a program; whether there was one."""
    for pid, cmd in session_processes(sid):
        if cmd.startswith("ray::evaluate_job"):
            os.kill(pid, signal.SIGKILL)
            return True
    return False


def kill_cycles(workdir: Path, cycles: int, *, max_evals: int = 60, seed: int = 0,
                timeout_s: float = 600.0) -> Report:
    """Run the cycles in ``workdir``; see the module docstring."""
    rng = np.random.default_rng(seed)
    run = workdir / "run"
    config = workdir / "config.yaml"
    config.write_text(
        "tasks: [quadratic/A]\nseeds: [0]\npopulation: 6\nplateau: 20\nworkers: 2\n"
        f"max_evals: {max_evals}\ncompile_cache: {workdir / 'xla'}\ncheckpoint_every: 3\n")
    history = run / "history.jsonl"
    report = Report(max_evals=max_evals)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    start = time.perf_counter()

    def launch(resume: bool) -> subprocess.Popen:
        args = ["--resume", str(run)] if resume else ["--config", str(config), "--run-dir",
                                                       str(run)]
        return subprocess.Popen([sys.executable, "run_search.py", *args], cwd=ROOT, env=env,
                                start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)

    for cycle in range(cycles):
        before = _records(history)
        proc = launch(resume=cycle > 0)
        deadline = time.monotonic() + timeout_s
        while len(_records(history)) <= len(before) and proc.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"cycle {cycle}: no new record in {timeout_s:.0f} s")
            time.sleep(0.05)
        if proc.poll() is not None:  # finished before it could be killed
            report.notes.append(f"cycle {cycle}: the search ended (status {proc.returncode}) "
                                "before it was killed: raise --max-evals")
            break
        if cycle % 3 == 2:  # a worker too, in the middle of an evaluation
            wait = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < wait:
                if _kill_a_worker(proc.pid):
                    report.worker_kills += 1
                    break
                time.sleep(0.02)
        # a random moment more: up to 1.5 s, and at most 3 more records (a search on a
        # fast, idle machine records many a second: bounded by time alone, two cycles
        # could record the whole run and leave none to kill)
        more = len(_records(history)) + int(rng.integers(0, 4))
        until = time.monotonic() + float(rng.uniform(0.0, 1.5))
        while (time.monotonic() < until and len(_records(history)) < more
               and proc.poll() is None):
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        report.cycles += 1
        after = _records(history)
        report.lost += sum(a != b for a, b in zip(before, after, strict=False))
        report.lost += max(0, len(before) - len(after))
        waited = time.monotonic() + 15
        while session_processes(proc.pid) and time.monotonic() < waited:
            time.sleep(0.2)
        left = session_processes(proc.pid)
        report.leftover_processes += len(left)
        report.notes += [f"cycle {cycle}: left over: {cmd[:100]}" for _, cmd in left]
        for pid, _ in left:  # do not let them pile up over the cycles
            os.kill(pid, signal.SIGKILL)
    last = launch(resume=True)
    _, err = last.communicate(timeout=timeout_s)
    if last.returncode != 0:
        report.notes.append(f"the last resume exited {last.returncode}: "
                            f"{err.decode(errors='replace').strip()[-500:]}")
    records = _records(history)
    evaluated = [r["id"] for r in records if not r["cached"] and not r.get("infra")]
    report.evaluated = len(evaluated)
    report.duplicates = len(evaluated) - len(set(evaluated))
    report.infra_errors = sum(bool(r.get("infra")) for r in records)
    report.seconds = time.perf_counter() - start
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--max-evals", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        r = kill_cycles(Path(tmp), args.cycles, max_evals=args.max_evals, seed=args.seed)
    print(f"SIGKILL cycles: {r.cycles} (of which {r.worker_kills} also killed a worker "
          f"mid-evaluation), {r.seconds:.0f} s")
    print(f"final count: {r.evaluated} evaluations of max_evals {r.max_evals}; "
          f"infrastructure errors recorded: {r.infra_errors}")
    print(f"records lost: {r.lost}; evaluations recorded twice: {r.duplicates}; "
          f"Ray processes left over after a kill: {r.leftover_processes}")
    for note in r.notes:
        print(f"note: {note}")
    print(f"evaluations_lost: {r.lost + r.duplicates}")


if __name__ == "__main__":
    main()
