"""Tests for search/rundir.py: history, checkpoint, lock, torn tails, bad directories."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time

import pytest

from search import rundir as rundir_module
from search.config import SearchConfig
from search.rundir import DiskError, RunDir, RunDirError


def record(i: int, **kw) -> dict:
    """A complete history record of candidate ``i``."""
    return {"id": i, "parent": None if i == 0 else 0, "round": 0,
            "mutation": {"kind": "warm_start" if i == 0 else "insert"},
            "source": "def train(w, g, lr, t):\n  update = g * lr\n  return update\n",
            "structural_hash": f"s{i}", "fingerprint": f"f{i}",
            "cached": False, "cached_from": None, "fitness": 0.1 * i, "infra": False,
            "tasks": {}, "error": None} | kw


def test_create_append_read(tmp_path) -> None:
    run = RunDir.create(tmp_path / "r", SearchConfig(seed=3))
    assert run.config().seed == 3
    run.append(record(0))
    run.append(record(1))
    assert [r["id"] for r in run.history()] == [0, 1]
    assert run.best().id == 1
    with pytest.raises(RunDirError, match="already holds a search"):
        RunDir.create(tmp_path / "r", SearchConfig())


def test_a_torn_tail_is_skipped_then_cut_and_kept_before_the_next_append(tmp_path) -> None:
    run = RunDir.create(tmp_path / "r", SearchConfig())
    run.append(record(0))
    with run.history_path.open("a") as f:
        f.write('{"id": 1, "fit')  # a kill in the middle of a write
    assert [r["id"] for r in run.history()] == [0]
    resumed = RunDir(run.path)
    resumed.append(record(2))
    assert [r["id"] for r in resumed.history()] == [0, 2]  # no fused line
    assert run.torn_path.read_text() == '{"id": 1, "fit\n'
    assert RunDir(run.path).cut_torn_tail() == 0  # on a line boundary now


def test_a_history_without_any_newline_is_cut_whole(tmp_path) -> None:
    run = RunDir.create(tmp_path / "r", SearchConfig())
    run.history_path.write_text('{"id": 0, "par')
    assert RunDir(run.path).cut_torn_tail() == len('{"id": 0, "par')
    assert run.history_path.read_text() == ""


def test_blank_lines_are_skipped_and_bad_lines_named(tmp_path) -> None:
    run = RunDir.create(tmp_path / "r", SearchConfig())
    good = json.dumps(record(0))
    run.history_path.write_text(f"\n{good}\n\n{json.dumps(record(1))}\n")
    assert [r["id"] for r in run.history()] == [0, 1]
    cases = {
        "garbage\n": "line 2 is not JSON",
        "[1, 2]\n": "line 2: expected a JSON object, got list",
        json.dumps({k: v for k, v in record(1).items() if k != "fingerprint"}) + "\n":
            "line 2: fingerprint: Field required",
        json.dumps(record(1, id="one")) + "\n": "line 2: id: Input should be a valid integer",
    }
    for line, message in cases.items():
        run.history_path.write_text(f"{good}\n{line}{good}\n")
        with pytest.raises(RunDirError, match=message):
            list(run.history())
    run.history_path.write_bytes(good.encode() + b"\n\xff\xfe\n")
    with pytest.raises(RunDirError, match="line 2 is not UTF-8"):
        list(run.history())


def test_a_failed_write_leaves_no_partial_record(tmp_path, monkeypatch) -> None:
    run = RunDir.create(tmp_path / "r", SearchConfig())
    run.append(record(0))
    before = run.history_path.read_bytes()
    real_write = os.write

    def half_then_full(fd, data):  # half the record reaches the disk, then it is full
        if len(data) > 100:
            real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rundir_module.os, "write", half_then_full)
    with pytest.raises(DiskError, match="history.jsonl: No space left on device"):
        run.append(record(1))
    monkeypatch.undo()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rundir_module.os, "fsync", full)
    with pytest.raises(DiskError, match="checkpoint.json: No space left on device"):
        run.write_checkpoint({"a": 1})
    monkeypatch.undo()
    assert run.history_path.read_bytes() == before
    assert not list(run.path.glob("*.tmp")) and not run.checkpoint_path.exists()
    run.append(record(1))  # once space is free, the run goes on
    assert [r["id"] for r in run.history()] == [0, 1]


def test_a_permission_problem_is_the_users_and_says_where(tmp_path, monkeypatch) -> None:
    run = RunDir.create(tmp_path / "r", SearchConfig())

    def denied(*args, **kw):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(rundir_module.os, "open", denied)
    with pytest.raises(RunDirError, match=r"lock: cannot write there \(Permission denied\)"):
        RunDir(run.path).lock()


def test_checkpoint_is_atomic_and_checked(tmp_path) -> None:
    run = RunDir.create(tmp_path / "r", SearchConfig())
    assert run.checkpoint() is None
    state = {"version": 1, "evolution": {}, "cache": {}, "evaluated": 0, "proposals": 0,
             "history_lines": 0}
    run.write_checkpoint(state | {"evaluated": 1})
    run.write_checkpoint(state | {"evaluated": 2})
    assert run.checkpoint()["evaluated"] == 2
    assert not list(tmp_path.glob("r/*.tmp"))
    for text, message in (("[]", "expected a JSON object"), ("{", "not valid JSON"),
                          ('{"version": 1}', "evolution: Field required")):
        run.checkpoint_path.write_text(text)
        with pytest.raises(RunDirError, match=message):
            run.checkpoint()


def test_one_process_per_run_and_a_dead_holder_holds_nothing(tmp_path) -> None:
    run = RunDir.create(tmp_path / "r", SearchConfig())
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from search.rundir import RunDir; "
         f"RunDir({str(run.path)!r}).lock(); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    with pytest.raises(RunDirError, match=f"in use by another search \\(process {holder.pid} "):
        RunDir(run.path).lock()
    holder.kill()  # SIGKILL: the lock file stays, the lock does not
    holder.wait()
    deadline = time.time() + 10
    mine = RunDir(run.path)
    while True:
        try:
            mine.lock()
            break
        except RunDirError:
            assert time.time() < deadline
            time.sleep(0.1)
    assert run.lock_path.read_text().startswith(f"{os.getpid()} on ")
    with pytest.raises(RunDirError, match=f"process {os.getpid()} "):
        RunDir(run.path).lock()  # a second holder in this process is refused as well
    mine.unlock()
    RunDir(run.path).lock()


def test_bad_directories(tmp_path) -> None:
    with pytest.raises(RunDirError, match="no config.json"):
        RunDir(tmp_path).config()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(RunDirError, match="afile is a file, not a folder"):
        RunDir.create(tmp_path / "afile", SearchConfig())
    with pytest.raises(RunDirError, match="cannot make the folder"):
        RunDir.create(tmp_path / "afile" / "run", SearchConfig())
    run = RunDir.create(tmp_path / "r", SearchConfig())
    run.config_path.write_text('{"population": -3}')
    with pytest.raises(RunDirError, match="population: Input should be greater than or equal"):
        run.config()
    for content, message in ((b"[1]", "expected a JSON object of config fields, got list"),
                             (b"{", "not valid JSON"), (b"\xff{}", "not UTF-8 text")):
        run.config_path.write_bytes(content)
        with pytest.raises(RunDirError, match=message):
            run.config()


def test_funnel_json_is_read_checked(tmp_path) -> None:
    run = RunDir.create(tmp_path / "run", SearchConfig())
    assert run.funnel() is None  # the funnel has not run
    good = {"seeds": [1, 2], "baselines": ["adamw"], "grid": "wide", "margin": 0.0,
            "tier_B": ["quadratic/B"], "tier_C": [], "held_out": [],
            "baseline_runs": {"adamw": {"quadratic/B": {"metrics": [1.0, None],
                                                        "lr_multiplier": 0.5,
                                                        "lr_at_edge": False}}},
            "rows": [{"id": 3, "source": "...", "search_fitness": 0.1, "tiers": {}}]}
    run.write_funnel(good)
    assert run.funnel() == good
    bad = good | {"rows": [{"id": 3, "source": "...", "search_fitness": "high", "tiers": {}}]}
    run.funnel_path.write_text(json.dumps(bad))
    with pytest.raises(RunDirError, match=r"funnel.json: rows.0.search_fitness: Input should "
                                          r"be a valid number"):
        run.funnel()
    run.funnel_path.write_text("{")
    with pytest.raises(RunDirError, match="funnel.json: not valid JSON"):
        run.funnel()
