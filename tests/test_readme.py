"""The README runs as written: its Python blocks, its DSL blocks, its commands
(and the user guide's Python and DSL blocks).

Python blocks run in order, each in a fresh namespace; a block written as a
session (``>>>``) is a doctest, so every number it shows is what it prints. DSL
blocks parse. Each ``python run_search.py ...`` line of a bash block runs in a
scratch folder that holds the README's example run directory (a small search
made here) and ``my.yaml``; searches get ``--max-evals 2`` and the funnel
``--top 1`` so they stay small, nothing else changes. The benchmark commands
run from the repository root, as the README writes them, with small sizes.
"""

from __future__ import annotations

import doctest
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
GUIDE = (ROOT / "docs" / "guide.md").read_text(encoding="utf-8")
EXAMPLE_RUN = "runs/20261122-101500-seed0"


def blocks(language: str, text: str = README) -> list[str]:
    return [body for lang, body in re.findall(r"^```(\w+)\n(.*?)^```", text, flags=re.S | re.M)
            if lang == language]


def test_the_readme_has_blocks_of_each_kind() -> None:
    assert len(blocks("python")) >= 5 and blocks("dsl") and len(blocks("bash")) >= 4


PYTHON_BLOCKS = ([("README", b) for b in blocks("python")]
                 + [("guide", b) for b in blocks("python", GUIDE)])


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_python_block_runs(index: int, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = PYTHON_BLOCKS[index][1]
    if text.lstrip().startswith(">>>"):
        test = doctest.DocTestParser().get_doctest(text, {}, f"README block {index}",
                                                   "README.md", 0)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        runner.run(test)
        assert runner.failures == 0 and runner.tries > 0
    else:
        exec(compile(text, f"README block {index}", "exec"), {"__name__": "readme"})


def test_dsl_blocks_parse() -> None:
    from dsl import abstract, parse

    for text in blocks("dsl") + blocks("dsl", GUIDE):
        abstract.check(parse(text), (4, 3))


def commands() -> list[str]:
    """Every `python run_search.py` command of the bash blocks (after `&&`, no comment)."""
    found = []
    for text in blocks("bash"):
        for line in text.replace("\\\n", " ").splitlines():
            for part in line.split("#")[0].split("&&"):
                part = part.strip()
                if part.startswith("python run_search.py"):
                    found.append(part)
    return found


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A folder with the README's example run directory and my.yaml."""
    folder = tmp_path_factory.mktemp("readme")
    (folder / "my.yaml").write_text("tasks: [quadratic/A]\nseeds: [0]\npopulation: 4\n")
    r = subprocess.run([sys.executable, str(ROOT / "run_search.py"), "--config", "my.yaml",
                        "--serial", "--max-evals", "14", "--run-dir", EXAMPLE_RUN],
                       cwd=folder, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return folder


def small(command: str) -> list[str]:
    argv = shlex.split(command)[2:]  # after `python run_search.py`
    if not argv or argv[0].startswith("--"):  # a search: two evaluations
        if "--max-evals" in argv:
            i = argv.index("--max-evals")
            del argv[i:i + 2]
        argv += ["--max-evals", "2"]
    if argv and argv[0] == "export" and "--id" in argv:  # an id the small run has
        argv[argv.index("--id") + 1] = "3"
    if argv and argv[0] == "funnel" and "--top" in argv:  # one program, two seeds, no tier C,
        argv[argv.index("--top") + 1] = "1"  # baselines tuned on two trials
        argv += ["--seeds", "2", "--tiers", "B,held_out", "--trials", "2"]
    return argv


def test_the_readme_shows_the_commands_tested_here() -> None:
    shown = {c.split()[2] if len(c.split()) > 2 else "search" for c in commands()}
    assert {"search", "--workers", "--config", "--resume", "--serial", "funnel", "inspect",
            "simplify", "export", "report"} <= shown


@pytest.mark.parametrize("command", commands())
def test_command_runs(command: str, scratch: Path) -> None:
    r = subprocess.run([sys.executable, str(ROOT / "run_search.py"), *small(command)],
                       cwd=scratch, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{command}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    assert "Traceback" not in r.stderr
    assert "Token authentication is enabled" not in r.stderr  # Ray's note, once a search


BENCHMARK_SIZES = {
    "bench_dsl.py": ["--programs", "40", "--repeats", "1"],
    "bench_step.py": ["--rounds", "2", "--steps", "5"],
    "bench_memory.py": [],
    "bench_eval.py": ["--programs", "2", "--task", "quadratic/A"],
    "bench_search.py": ["--programs", "4", "--skip-default-search"],
    "bench_export.py": ["--rounds", "2"],
    "bench_reliability.py": ["--cycles", "1", "--max-evals", "10"],
    "bench_grid.py": ["--points", "2", "--tasks", "quadratic/A", "--repeats", "1"],
    "bench_discovery.py": ["--quick", "--evals", "3", "--tasks", "quadratic/A", "--trials", "2",
                           "--search-seeds", "2"],
    "bench_dynamics.py": ["--seeds", "2", "--evals", "3", "--tasks", "quadratic/A", "--jobs",
                          "1", "--setting", "default", "--setting", "T1", "tournament=1"],
    "bench_untrusted.py": ["--classes", "resume,numbers"],
    "bench_proposals.py": ["--children", "50"],
    "bench_report.py": ["--programs", "60"],
    "bench_rediscovery.py": ["--tasks", "quadratic/A", "--search-seeds", "1", "--evals", "3",
                             "--jobs", "1", "--trials", "1"],
    "bench_tasks.py": ["--seeds", "3", "--tasks", "quadratic/A", "quadratic/B",
                       "--optimizers", "sgd", "adamw", "--programs", "4",
                       "--search-tasks", "quadratic/A", "--held-out", "quadratic/A"],
}


def test_the_readme_names_every_benchmark() -> None:
    named = set(re.findall(r"`python benchmarks/(bench_\w+\.py)`", README))
    assert named == set(BENCHMARK_SIZES) == {p.name for p in (ROOT / "benchmarks").glob("b*.py")}


@pytest.mark.parametrize("script", sorted(BENCHMARK_SIZES))
def test_benchmark_runs_as_the_readme_writes_it(script: str) -> None:
    r = subprocess.run([sys.executable, f"benchmarks/{script}", *BENCHMARK_SIZES[script]],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert re.fullmatch(r"[a-z0-9_]+: [-+0-9.e]+", r.stdout.strip().splitlines()[-1]), r.stdout
