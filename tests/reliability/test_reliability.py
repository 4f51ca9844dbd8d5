"""Reliability with real processes: kills, lost infrastructure, two searches at once,
a full file system, corrupt files. Each checks the run directory afterwards and that
the run still resumes to its ``max_evals``."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.bench_reliability import kill_cycles, session_processes

ROOT = Path(__file__).resolve().parents[2]
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}


def config(tmp_path: Path, **fields) -> Path:
    values = {"tasks": ["quadratic/A"], "seeds": [0], "population": 4, "plateau": 20,
              "max_evals": 24, "compile_cache": str(tmp_path / "xla")} | fields
    path = tmp_path / "config.json"
    path.write_text(json.dumps(values))
    return path


def search(*args: str, timeout: float = 300, **popen) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "run_search.py", *args], cwd=ROOT, env=CLEAN_ENV,
                          capture_output=True, text=True, timeout=timeout, **popen)


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()
            if line.strip()]


def evaluated(run: Path) -> list[int]:
    return [r["id"] for r in records(run) if not r["cached"] and not r.get("infra")]


def wait_for_records(run: Path, n: int, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    history = run / "history.jsonl"
    while not (history.exists() and len(history.read_text().splitlines()) >= n):
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, f"fewer than {n} records in {timeout} s"
        time.sleep(0.1)


def test_sigkill_cycles_of_a_ray_search_lose_and_repeat_nothing(tmp_path) -> None:
    # a cycle records programs for up to 1.5 s after its first: on an idle machine 24
    # evaluations could all be recorded by the third cycle (it then ends unkilled)
    report = kill_cycles(tmp_path, cycles=3, max_evals=48)
    assert report.cycles == 3 and report.worker_kills == 1, report.notes
    assert report.lost == 0 and report.duplicates == 0, report
    assert report.leftover_processes == 0, report.notes
    assert report.evaluated == 48 and not report.notes, report


@pytest.mark.parametrize("lost", ["worker", "raylet"])
def test_lost_infrastructure_is_never_a_programs_fitness(tmp_path, lost) -> None:
    """A worker killed with no retries left, or the raylet itself: infrastructure
    errors, never cached nor told as fitness; the run resumes to its max_evals."""
    run = tmp_path / "run"
    cfg = config(tmp_path, retries=0, max_evals=16)
    proc = subprocess.Popen([sys.executable, "run_search.py", "--config", str(cfg), "--run-dir",
                             str(run)], cwd=ROOT, env=CLEAN_ENV, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_records(run, 3, proc)
    deadline = time.monotonic() + 120
    killed = None
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        for pid, cmd in session_processes(proc.pid):
            if (lost == "worker" and cmd.startswith("ray::evaluate_job")) or (
                    lost == "raylet" and cmd.split()[0].endswith("/raylet")):
                os.kill(pid, signal.SIGKILL)
                killed = pid
                break
        time.sleep(0.02)
    assert killed is not None, f"no {lost} process to kill"
    _, err = proc.communicate(timeout=300)
    infra = [r for r in records(run) if r.get("infra")]
    assert infra and all(r["fitness"] is None for r in infra), err[-2000:]
    state = json.loads((run / "checkpoint.json").read_text())
    cached_ids = {v["id"] for v in state["cache"]["results"].values()}
    assert not cached_ids & {r["id"] for r in infra if r["id"] not in evaluated(run)}
    if lost == "raylet":  # nothing can run: three in a row stop the search, in one line
        assert proc.returncode == 1, err[-2000:]
        assert "error: search stopped: 3 infrastructure errors in a row" in err
        assert "LocalRayletDiedError" in err and "Traceback" not in err
    done = search("--resume", str(run))
    assert done.returncode == 0, done.stderr[-2000:]
    ids = evaluated(run)
    assert len(ids) == 16 and len(set(ids)) == 16
    judged = {r["id"]: r for r in records(run) if not r.get("infra")}
    for r in infra:  # each retried with the same program, then judged (or a cache answer)
        assert judged[r["id"]]["source"] == r["source"]


def test_a_second_search_of_a_run_is_refused_while_the_first_goes_on(tmp_path) -> None:
    run = tmp_path / "run"
    cfg = config(tmp_path, executor="serial", max_evals=40)
    first = subprocess.Popen([sys.executable, "run_search.py", "--config", str(cfg),
                              "--run-dir", str(run)], cwd=ROOT, env=CLEAN_ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_records(run, 2, first)
    second = search("--resume", str(run), timeout=120)
    assert second.returncode == 2
    assert f"in use by another search (process {first.pid} on " in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    ids = evaluated(run)
    assert len(ids) == 40 and len(set(ids)) == 40
    state = json.loads((run / "checkpoint.json").read_text())
    assert state["history_lines"] == len(records(run)) and state["evaluated"] == 40


def _small_file_system(path: Path, size: str) -> bool:
    path.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.mark.parametrize("how", ["file size limit", "small file system"])
def test_a_full_disk_stops_the_search_in_one_line_and_it_resumes(tmp_path, how) -> None:
    """A real kernel error: EFBIG past RLIMIT_FSIZE, or ENOSPC on a 64 KiB tmpfs (where
    this machine lets the test mount one)."""
    base = tmp_path
    limit = None
    if how == "small file system":
        if not _small_file_system(tmp_path / "small", "64k"):
            pytest.skip("mounting a tmpfs needs privileges this machine does not give")
        base = tmp_path / "small"
    else:
        def limit():
            resource.setrlimit(resource.RLIMIT_FSIZE, (48_000, resource.RLIM_INFINITY))
    try:
        run = base / "run"
        cfg = config(tmp_path, executor="serial", max_evals=60, compile_cache=None,
                     checkpoint_every=5)
        full = search("--config", str(cfg), "--run-dir", str(run), preexec_fn=limit)
        assert full.returncode == 1, full.stderr[-2000:]
        message = "File too large" if limit else "No space left on device"
        lines = [ln for ln in full.stderr.strip().splitlines() if ln]
        assert lines[0].startswith("error: search stopped: cannot write ") and message in lines[0]
        assert f"resume with --resume {run}" in lines[-1] and "Traceback" not in full.stderr
        history = (run / "history.jsonl").read_bytes()
        assert history.endswith(b"\n")  # whole records only
        before = records(run)
        assert 0 < len(evaluated(run)) < 60
        if how == "small file system":  # space freed: the run moves to a roomier disk
            moved = tmp_path / "moved"
            subprocess.run(["cp", "-a", str(run), str(moved)], check=True)
            run = moved
        done = search("--resume", str(run))
        assert done.returncode == 0, done.stderr[-2000:]
        assert records(run)[: len(before)] == before
        ids = evaluated(run)
        assert len(ids) == 60 and len(set(ids)) == 60
    finally:
        if how == "small file system":
            subprocess.run(["umount", str(tmp_path / "small")], capture_output=True)


def test_a_corrupt_history_line_is_named_and_nothing_is_lost(tmp_path) -> None:
    run = tmp_path / "run"
    cfg = config(tmp_path, executor="serial", max_evals=10)
    assert search("--config", str(cfg), "--run-dir", str(run)).returncode == 0
    history = run / "history.jsonl"
    good = history.read_bytes()
    lines = good.split(b"\n")
    lines[3] = lines[3][:40] + b"#garbage"
    history.write_bytes(b"\n".join(lines))
    for args in (["--resume", str(run), "--max-evals", "12"], ["inspect", str(run)],
                 ["export", str(run), "--name", "x", "--out", str(tmp_path / "x")]):
        r = search(*args, timeout=120)
        assert r.returncode == 2, (args, r.stderr[-2000:])
        assert r.stderr.strip() == f"error: {history}: line 4 is not JSON", args
    assert history.read_bytes() == b"\n".join(lines)  # nothing rewritten
    history.write_bytes(good)  # mended by hand: the run goes on
    assert search("--resume", str(run), "--max-evals", "12").returncode == 0
    assert len(evaluated(run)) == 12
