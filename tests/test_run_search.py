"""Tests for run_search.py as it stands: the DSL commands and their input errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import run_search

ROOT = Path(__file__).resolve().parents[1]


def test_check_a_library_program(capsys) -> None:
    assert run_search.main(["check", "adafactor", "--shape", "256x128"]) == 0
    out = capsys.readouterr().out
    assert "state v_row: shape (128,)" in out and "state v_col: shape (256,)" in out


def test_check_a_file_with_an_error_exits_2(tmp_path, capsys) -> None:
    f = tmp_path / "bad.dsl"
    f.write_text("def train(w, g, lr, t):\n  u = sqr(g)\n  return u\n")
    assert run_search.main(["check", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {f}: line 2, column 7: unknown function 'sqr'"


def test_unknown_program_exits_2(capsys) -> None:
    assert run_search.main(["check", "adamx"]) == 2
    assert "no library program 'adamx'" in capsys.readouterr().err


def test_bad_flag_exits_2_without_traceback() -> None:
    r = subprocess.run([sys.executable, "run_search.py", "check", "lion", "--shape", "4xq"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2
    assert "not a shape: '4xq'" in r.stderr and "Traceback" not in r.stderr


def test_default_job_runs() -> None:
    r = subprocess.run([sys.executable, "run_search.py"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and "not built yet" in r.stdout
