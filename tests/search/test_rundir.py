"""Tests for search/rundir.py: history, checkpoint, bad directories."""

from __future__ import annotations

import pytest

from search.config import SearchConfig
from search.rundir import RunDir, RunDirError


def test_create_append_read(tmp_path) -> None:
    run = RunDir.create(tmp_path / "r", SearchConfig(seed=3))
    assert run.config().seed == 3
    run.append({"id": 0, "x": 1})
    run.append({"id": 1, "x": 2})
    assert [r["id"] for r in run.history()] == [0, 1]
    with pytest.raises(RunDirError, match="already holds a search"):
        RunDir.create(tmp_path / "r", SearchConfig())


def test_torn_last_line_is_skipped_but_corruption_is_named(tmp_path) -> None:
    run = RunDir.create(tmp_path / "r", SearchConfig())
    run.append({"id": 0})
    with run.history_path.open("a") as f:
        f.write('{"id": 1, "fit')
    assert [r["id"] for r in run.history()] == [0]
    with run.history_path.open("a") as f:
        f.write('\n{"id": 2}\n')
    with pytest.raises(RunDirError, match="line 2 is not JSON"):
        list(run.history())


def test_checkpoint_is_atomic(tmp_path) -> None:
    run = RunDir.create(tmp_path / "r", SearchConfig())
    assert run.checkpoint() is None
    run.write_checkpoint({"a": 1})
    run.write_checkpoint({"a": 2})
    assert run.checkpoint() == {"a": 2}
    assert not list(tmp_path.glob("r/*.tmp"))


def test_bad_directories(tmp_path) -> None:
    with pytest.raises(RunDirError, match="no config.json"):
        RunDir(tmp_path).config()
    run = RunDir.create(tmp_path / "r", SearchConfig())
    run.config_path.write_text('{"population": -3}')
    with pytest.raises(RunDirError, match="population: Input should be greater than or equal"):
        run.config()
