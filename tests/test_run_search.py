"""Tests for run_search.py as it stands: the DSL commands and their input errors."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

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


def run_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "run_search.py", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_a_small_search_runs_end_to_end(tmp_path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tasks: [quadratic/A]\nseeds: [0]\npopulation: 4\nplateau: 5\n")
    r = run_cli("--config", str(cfg), "--serial", "--max-evals", "6", "--run-dir",
                str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    from search.rundir import RunDir

    run = RunDir(tmp_path / "run")
    best, records = run.best(), list(run.history())
    lines = r.stdout.splitlines()
    assert lines[0] == (f"run directory: {run.path}  (serial, 2 workers, tasks quadratic/A)")
    progress = [line for line in lines if line.startswith("evals ")]
    assert sum(not x["cached"] for x in records) == 6 and run.checkpoint()["evaluated"] == 6
    # the best program: the run's, its fitness and its text (dead code removed) as stored
    head = next(i for i, line in enumerate(lines) if line.startswith("best program"))
    warm = records[0]["fitness"]
    assert lines[head] == (f"best program (id {best.id}, fitness {best.fitness:+.4f} against "
                           "AdamW tuned on its learning rate, betas and weight decay (the warm "
                           f"start warmstart scores {warm:+.4f}), at its best learning rate on "
                           "quadratic/A"
                           + (f", {len(best.genome.statements) - len(best.program.statements)}"
                              " dead statements removed" if best.genome != best.program
                              else "") + "):")
    source = best.program.to_source().rstrip("\n").split("\n")
    assert lines[head + 1: head + 1 + len(source)] == source
    assert lines[head + 1 + len(source)] == f"what it is: {run.identify(best).describe()}"
    # the run's report named at once; then the judge: AdamW tuned on the run's task
    assert lines[1] == f"report: {run.path / 'report.html'} (rewritten at each checkpoint: " \
                       "reload it)"
    assert lines[2].startswith("the judge: tuning AdamW (16 quasi-random trials x 3 learning "
                               "rates, on lr, betas and weight decay) on quadratic/A, seeds 0")
    assert lines[3].startswith("judge on quadratic/A: adamw tuned (16 quasi-random trials")
    assert run.baselines()["quadratic/A"]["tuned"]["program"] == "adamw"
    cache = run.checkpoint()["cache"]
    rate = cache["hits"] / cache["lookups"] if cache["lookups"] else 0.0
    assert lines[-1] == f"cache hit rate {rate:.1%}; run directory: {run.path}"
    # the warm start alone first, against the judge
    assert re.fullmatch(r"evals 1/6 \| [0-9.]+/s \| proposed 1, 0% cache hits \| best "
                        + re.escape(f"{warm:+.4f}") + r" vs tuned AdamW \| failed 0 \| infra "
                        r"errors 0 \| round 0 \(explore\)", progress[0]), progress[0]


BAD_INPUT = [
    (["--max-evals", "0"], "flags: max_evals: Input should be greater than or equal to 1"),
    (["--workers", "two"], "argument --workers: invalid int value: 'two'"),
    (["--seed", "-1"], "flags: seed: Input should be greater than or equal to 0"),
    (["--config", "missing.yaml"],
     "--config missing.yaml: cannot read it: No such file or directory"),
    (["--resume", "nowhere"], "--resume nowhere: not a run directory (no config.json)"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT)
def test_bad_flags_exit_2_with_one_line(args, message) -> None:
    r = run_cli(*args, timeout=60)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(("text", "message"), [
    ("population: [1, 2]\n", "population: Input should be a valid integer"),
    ("tasks: [cnn_digits/A]\n", "'cnn_digits/A' is held out"),
    ("tasks: [mlp/A]\n", "unknown task 'mlp/A'"),
    ("seeds: [0, -1]\n", "seeds.1: Input should be greater than or equal to 0"),
    ("popsize: 3\n", "popsize: Extra inputs are not permitted"),
    ("tournament: 9\npopulation: 4\n", "tournament (9) is larger than population (4)"),
    ("timeout_s: .inf\n", "timeout_s: Input should be a finite number"),
    ("population: 1000000000000000000000000000000\n",
     "population: Input should be less than or equal to 1000000"),
    ("lr_grid: {ratio: .nan}\n", "lr_grid.ratio: Input should be a finite number"),
    ("seeds: [0, 0]\n", "seeds names 0 twice"),
    ("tasks: [quadratic/A, quadratic/A]\n", "tasks names 'quadratic/A' twice"),
    ("mutation: {check_shapes: [[-1]]}\n",
     "mutation.check_shapes.0.0: Input should be greater than or equal to 1"),
    ("mutation: {check_shapes: []}\n", "mutation.check_shapes: List should have at least 1"),
    ("warm_start: nope\n", "warm_start: no library program 'nope'"),
    ("a: [1\n", "not valid yaml"),
    ("- 1\n", "expected a mapping of fields, got list"),
])
def test_bad_config_files_name_the_field(tmp_path, text, message) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    r = run_cli("--config", str(cfg), "--run-dir", str(tmp_path / "run"), timeout=60)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_an_existing_run_directory_is_not_overwritten(tmp_path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    r = run_cli("--run-dir", str(tmp_path / "run"), "--serial", timeout=60)
    assert r.returncode == 2 and "already holds a search" in r.stderr
    assert (tmp_path / "run" / "config.json").read_text() == "{}"


@pytest.mark.parametrize(("signum", "status"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_ctrl_c_and_sigterm_write_the_checkpoint_and_say_how_to_resume(tmp_path, signum,
                                                                       status) -> None:
    import json
    import signal
    import time

    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"tasks": ["quadratic/A"], "seeds": [0], "max_evals": 500,
                               "population": 4, "executor": "serial"}))
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "run_search.py", "--config", str(cfg), "--run-dir",
                             str(run)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    history = run / "history.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (history.exists() and
                                          sum(1 for _ in history.open()) >= 5):
        time.sleep(0.2)
    proc.send_signal(getattr(signal, signum))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err
    assert f"resume with --resume {run}" in out and "Traceback" not in err
    checkpoint = json.loads((run / "checkpoint.json").read_text())
    assert checkpoint["history_lines"] == sum(1 for _ in history.open())


def test_export_from_a_run_directory_and_no_overwrite(tmp_path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tasks: [quadratic/A]\nseeds: [0]\npopulation: 4\n")
    assert run_cli("--config", str(cfg), "--serial", "--max-evals", "4", "--run-dir",
                   str(tmp_path / "run")).returncode == 0
    r = run_cli("export", str(tmp_path / "run"), "--name", "found", "--out", str(tmp_path / "d"))
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "d" / "found.py").read_text()
    assert "def found(" in text and "class Found(torch.optim.Optimizer)" in text
    assert f"run {tmp_path / 'run'}" in text
    again = run_cli("export", str(tmp_path / "run"), "--name", "found", "--out",
                    str(tmp_path / "d"))
    assert again.returncode == 2 and "exists; pass --force" in again.stderr
    assert (tmp_path / "d" / "found.py").read_text() == text
    empty = run_cli("export", str(tmp_path), "--name", "x", "--out", str(tmp_path / "d"))
    assert empty.returncode == 2 and "is not a run directory: no config.json" in empty.stderr


def test_search_then_funnel_end_to_end(tmp_path) -> None:
    """The funnel at the end of a search, stopped by a held-out task that cannot load (a
    stand-in scikit-learn that fails to import), then resumed from funnel.json."""
    import json
    import os

    fake = tmp_path / "site" / "sklearn"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'sklearn'\")\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tasks: [quadratic/A]\nseeds: [0]\npopulation: 4\nfunnel_top: 1\n"
                   "funnel_trials: 2\n")
    r = subprocess.run([sys.executable, "run_search.py", "--config", str(cfg), "--serial",
                        "--max-evals", "3", "--run-dir", str(tmp_path / "run")], cwd=ROOT,
                       capture_output=True, text=True, timeout=600,
                       env=os.environ | {"PYTHONPATH": str(tmp_path / "site")})
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(
        "error: funnel stopped: autoencoder_digits/A: ModuleNotFoundError: No module named "
        "'sklearn' (what it finished is kept in ")
    assert re.search(r"baseline lion: quadratic/B\n(?: +.*\n)*? +lion on quadratic/B: defaults "
                     r"[\d.]+ at lr x", r.stdout)  # each baseline, tuned, then the finalist
    # and inside each calibration, a line per pass of multipliers
    assert re.search(r" +lion defaults on quadratic/B: lr x[\d.e-]+ ([\d.]+|diverged), x[\d.e-]+ ",
                     r.stdout)
    assert re.search(r"quadratic/B: lion tuned: metric [\d.]+ at lr x[\d.e-]+, b1=", r.stdout)
    saved = json.loads((tmp_path / "run" / "funnel.json").read_text())
    assert list(saved["rows"][0]["tiers"]) == ["B"] and saved["seeds"] == [1, 2, 3]
    assert set(saved["baseline_runs"]) == {"adamw", "lion", "momentum"}
    again = run_cli("funnel", str(tmp_path / "run"), "--top", "1", "--tiers", "B,held_out",
                    "--trials", "2")
    assert again.returncode == 0, again.stderr
    assert re.search(r": B [-+]\d\.\d{4} \(from funnel.json\)", again.stdout)  # not trained again
    assert "baseline adamw: quadratic/B" not in again.stdout  # nor its baselines
    assert "held out" in again.stdout and "columns: fitness = log(baseline metric / metric) " \
        "against the best of the tuned baselines" in again.stdout
    assert re.search(r"autoencoder_digits/A +[\d.]+ at lr x[\d.e-]+, b1 [\d.e-]+, b2 [\d.e-]+, "
                     r"weight_decay [\d.e-]+ +[\d.]+ at lr x", again.stdout), again.stdout
    assert re.search(r"program \d+: (the warm start|library program|a new structure)",
                     again.stdout)
    assert re.search(r"(beats|within noise of|worse than) the best baseline", again.stdout)
    bad = run_cli("funnel", str(tmp_path / "run"), "--held-out", "mlp_mnist1d/A", timeout=60)
    assert bad.returncode == 2 and "is not a held-out task" in bad.stderr


def test_search_simplify_export_then_train_with_the_export(tmp_path) -> None:
    import importlib.util
    import inspect

    import jax
    import jax.numpy as jnp

    from evaluators.engine import device_data, direct_runner, seed_inputs
    from evaluators.tasks import get

    cfg = tmp_path / "c.yaml"
    cfg.write_text("tasks: [quadratic/A]\nseeds: [0]\npopulation: 4\n")
    assert run_cli("--config", str(cfg), "--serial", "--max-evals", "6", "--run-dir",
                   str(tmp_path / "run")).returncode == 0
    simplified = run_cli("simplify", str(tmp_path / "run"), "--exact-only", "--out",
                         str(tmp_path / "best.dsl"))
    assert simplified.returncode == 0 and "def train(" in simplified.stdout
    trained = run_cli("simplify", str(tmp_path / "run"))  # ablation judged as the search judged
    assert trained.returncode == 0, trained.stderr
    assert ("(seeds 0, each variant at its best of 3 learning rates x3.16 apart around the "
            "program's)") in trained.stdout
    # the run's best, exported with the learning rate its calibration chose as the default
    exported = run_cli("export", str(tmp_path / "run"), "--name", "found", "--out",
                       str(tmp_path / "out"))
    assert exported.returncode == 0, exported.stderr
    spec = importlib.util.spec_from_file_location("found", tmp_path / "out" / "found.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    default = inspect.signature(module.found).parameters["learning_rate"].default
    assert f"The default, {default:.4g}, is what calibration chose on the search's tasks " \
           "(quadratic/A" in " ".join(module.__doc__.split())
    task = get("quadratic/A")
    train, val = device_data(task)
    params, batches = seed_inputs(task, (0,))
    schedule = lambda count: task.schedule(count) * default  # noqa: E731  (the task's shape)
    metric, steps, ok = direct_runner(task, module.found(schedule))(params, batches, train, val)
    start = task.metric(jax.tree.map(lambda p: p[0], params), tuple(map(jnp.asarray, val)))
    assert bool(ok[0]) and float(metric[0]) < 0.5 * float(start)


def test_a_search_whose_tasks_cannot_load_stops_at_once(tmp_path) -> None:
    """A missing package (here a stand-in mnist1d that fails to import): exit 1 within
    seconds, the error on one line, nothing but the warm start spent, nothing cached."""
    import json
    import os
    import time

    fake = tmp_path / "site" / "mnist1d"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'mnist1d'\")\n")
    # a machine that has not generated MNIST-1D before (else its cache serves the data)
    env = os.environ | {"PYTHONPATH": str(tmp_path / "site"),
                        "OPTSEARCH_CACHE_DIR": str(tmp_path / "cache")}
    start = time.monotonic()
    r = subprocess.run([sys.executable, "run_search.py", "--serial", "--run-dir",
                        str(tmp_path / "run")], cwd=ROOT, capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 1, r.stderr
    assert time.monotonic() - start < 60
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: search stopped: the judge could not be tuned: tuning adamw on "
                      "mlp_mnist1d/A: ModuleNotFoundError: No module named 'mnist1d'"]
    assert "Traceback" not in r.stderr and "--resume" in r.stderr
    history = tmp_path / "run" / "history.jsonl"  # no program was judged
    assert not history.exists() or not history.read_text()
    cache = json.loads((tmp_path / "run" / "checkpoint.json").read_text())["cache"]
    assert cache["results"] == {}


def test_a_run_read_by_id_from_the_command_line_and_from_python(tmp_path) -> None:
    from search.rundir import RunDir

    cfg = tmp_path / "c.yaml"
    cfg.write_text("tasks: [quadratic/A]\nseeds: [0]\npopulation: 4\n")
    r = run_cli("--config", str(cfg), "--serial", "--max-evals", "6", "--run-dir",
                str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    assert "| failed 0 | infra errors 0 |" in r.stdout
    run = RunDir(tmp_path / "run")
    best = run.best()
    assert best.fitness == max(rec.fitness for rec in run.top(10))
    assert best.program.to_source() in r.stdout  # printed without dead code
    assert [p.id for p in run.top(2)] == sorted((p.id for p in run.top(2)),
                                                key=lambda i: -run.program(i).fitness)
    assert run.program(0).record["mutation"] == {"kind": "warm_start"}
    exported = run_cli("export", str(tmp_path / "run"), "--id", "0", "--name", "w", "--out",
                       str(tmp_path / "d"))
    assert exported.returncode == 0, exported.stderr
    assert (f"program 0 (fitness {run.program(0).fitness:+.4f}): the warm start itself"
            in (tmp_path / "d" / "w.py").read_text())
    missing = run_cli("export", str(tmp_path / "run"), "--id", "99", "--name", "w", "--out",
                      str(tmp_path / "e"))
    assert missing.returncode == 2 and "no evaluated program with id 99" in missing.stderr
    not_run = run_cli("export", "lion", "--id", "3", "--name", "w", "--out", str(tmp_path / "e"))
    assert not_run.returncode == 2 and "only a run directory has program ids" in not_run.stderr
    simplified = run_cli("simplify", str(tmp_path / "run"), "--id", "0", "--tolerance", "0.5")
    assert simplified.returncode == 0, simplified.stderr
    assert "simplifying on quadratic/A (seeds 0, each variant" in simplified.stdout  # its own tasks
    shown = run_cli("inspect", str(tmp_path / "run"), "--id", "0")
    assert shown.returncode == 0
    assert f"program 0  fitness {run.program(0).fitness:+.4f}" in shown.stdout
    assert "what it is: the warm start itself" in shown.stdout


def test_every_subcommand_help_shows_its_defaults() -> None:
    for args, default in [(["funnel", "--help"], "(default: 3)"),
                          (["simplify", "--help"], "(default: 0.01)"),
                          (["export", "--help"], "(default: discovered)"),
                          (["check", "--help"], "(default: (256, 128))"),
                          (["--help"], "default: 160, or the config's")]:
        r = run_cli(*args)
        assert r.returncode == 0 and default in " ".join(r.stdout.split()), (args, r.stdout)


def test_library_tasks_and_functions_list_what_they_hold(capsys) -> None:
    assert run_search.main(["library"]) == 0
    out = capsys.readouterr().out
    assert "Lion (Chen et al. 2023, Program 1), as optax.lion" in out
    assert "hyperparameters: b1=0.9, b2=0.99, weight_decay=0.001; states: m" in out
    assert run_search.main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "mlp_mnist1d/A" in out and "(held out: never searched on)" in out
    assert run_search.main(["functions"]) == 0
    out = capsys.readouterr().out
    assert "a + b" in out and len(out.splitlines()) >= 50
    # each formula names the arguments as the form does
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    # the names a program reads without defining them, the built-in eps among them
    assert lines["eps"].split() == ["eps", "constant", "1e-08"]
    assert lines["lr"].split()[1] == "input" and lines["t"].split()[1] == "input"
    assert lines["interp"].split()[1:] == ["interp(a,", "b,", "c)", "(1", "-", "c)", "*", "a",
                                           "+", "c", "*", "b"]
    assert lines["where"].endswith("b where a != 0, else c")
    assert lines["power"].endswith("a^b") and lines["abs"].split()[1] == "abs(x)"


def test_abstract_errors_name_the_line_and_nested_expressions_are_explained(tmp_path,
                                                                         capsys) -> None:
    f = tmp_path / "shape.dsl"
    f.write_text("# a comment\ndef train(w, g, lr, t):\n  r = factor_row(g)\n"
                 "  # another\n  u = r * g\n  u = u * lr\n  return u\n")
    assert run_search.main(["check", str(f), "--shape", "256x128"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {f}: line 5 (u = r * g): ")
    f.write_text("def train(w, g, lr, t, m):\n  update = sign(m) * lr\n  return update, m\n")
    assert run_search.main(["check", str(f)]) == 2
    assert "line 2, column 20: one function per statement: assign `sign(m)` to a variable " \
           "first" in capsys.readouterr().err


def test_check_warns_when_the_update_never_reads_lr(tmp_path, capsys) -> None:
    f = tmp_path / "nolr.dsl"
    f.write_text("def train(w, g, lr, t):\n  u = sign(g)\n  return u\n")
    assert run_search.main(["check", str(f)]) == 0
    assert "warning: " in capsys.readouterr().err
    assert run_search.main(["check", "lion"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_output_piped_into_head_prints_no_traceback() -> None:
    r = subprocess.run(f"{sys.executable} run_search.py functions | head -1", shell=True,
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert len(r.stdout.splitlines()) == 1 and r.stderr == ""


def test_export_writes_under_the_current_folder_and_the_contract_can_hold_it(tmp_path) -> None:
    r = subprocess.run([sys.executable, str(ROOT / "run_search.py"), "export", "lion", "--name",
                        "found"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "discovered" / "found.py").is_file()
    assert not (ROOT / "discovered" / "found.py").exists()
    held = subprocess.run([sys.executable, "-m", "pytest", "-o", "addopts=", "-q", "-p",
                           "no:cacheprovider",
                           "tests/discovered/test_contract.py", "-k", "parity or contained",
                           "--module", str(tmp_path / "discovered" / "found.py")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert held.returncode == 0, held.stdout[-2000:]
    assert "8 passed" in held.stdout  # lion, adafactor, muon and the export: 2 tests each


def test_tasks_time_trains_the_warm_start_on_tier_a_only(capsys) -> None:
    assert run_search.main(["tasks", "--time"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert re.match(r"quadratic/A\s+192\s+300\s+16\s+4096\s+\d+\.\d\d\s", rows["quadratic/A"])
    assert re.match(r"quadratic/B\s+\d+\s+\d+\s+\d+\s+4096\s+noisy", rows["quadratic/B"])
    assert re.match(r"mlp_mnist1d/B\s+\d+\s+2400\s+64\s+40000\s+MLP", rows["mlp_mnist1d/B"])


def small_run(tmp_path, max_evals: int = 4) -> Path:
    """A finished serial search on the quadratic task; its run directory."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tasks: [quadratic/A]\nseeds: [0]\npopulation: 4\nexecutor: serial\n")
    run = tmp_path / "run"
    r = run_cli("--config", str(cfg), "--max-evals", str(max_evals), "--run-dir", str(run))
    assert r.returncode == 0, r.stderr
    return run


def test_a_resume_is_of_the_same_search_or_refused(tmp_path) -> None:
    import json

    from search.rundir import RunDir

    run = small_run(tmp_path)
    refused = {
        ("--resume", str(run), "--config", str(tmp_path / "c.yaml")):
            "a resumed run keeps its own config.json",
        ("--resume", str(run), "--seed", "7"): "--seed 7: the run searches with seed 0",
        ("--resume", str(run), "--run-dir", str(tmp_path / "x")): "--resume names the run",
    }
    for args, message in refused.items():
        r = run_cli(*args, timeout=60)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    holder = RunDir(run)
    holder.lock()  # this process holds the run: a second search is told who
    r = run_cli("--resume", str(run), timeout=60)
    assert r.returncode == 2 and f"in use by another search (process {os.getpid()} on" in r.stderr
    holder.unlock()
    # max_evals may grow a run, for good
    r = run_cli("--resume", str(run), "--max-evals", "6", "--seed", "0")
    assert r.returncode == 0, r.stderr
    assert json.loads((run / "config.json").read_text())["max_evals"] == 6
    assert sum(not rec["cached"] for rec in RunDir(run).history()) == 6
    # an edited config.json is named
    fields = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(fields | {"tasks": ["quadratic/B"]}))
    r = run_cli("--resume", str(run), timeout=60)
    assert r.returncode == 2 and "config.json: tasks was [\"quadratic/A\"] when the run " \
                                 "began, now [\"quadratic/B\"]" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_resume_mends_a_torn_tail_and_a_bad_checkpoint_and_says_so(tmp_path) -> None:
    from search.rundir import RunDir

    run = small_run(tmp_path)
    with (run / "history.jsonl").open("a") as f:
        f.write('{"id": 9, "sour')
    (run / "checkpoint.json").write_text("{")
    r = run_cli("--resume", str(run), "--max-evals", "6")
    assert r.returncode == 0, r.stderr
    assert "note: " in r.stderr and "cut a torn last line (15 bytes" in r.stderr
    assert "checkpoint.json: not valid JSON" in r.stderr and "rebuilt from the history" in r.stderr
    records = list(RunDir(run).history())
    assert sum(not rec["cached"] for rec in records) == 6
    assert len({rec["id"] for rec in records}) == len(records)


@pytest.mark.parametrize(("contents", "message"), [
    (b"\xff\xfe", "not UTF-8 text"),
    (b"[1, 2]", "expected a JSON object of config fields, got list"),
    (b'{"seed": 0', "not valid JSON"),
])
def test_a_corrupt_config_json_is_one_line(tmp_path, contents, message) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_bytes(contents)
    r = run_cli("--resume", str(run), timeout=60)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert (run / "config.json").read_bytes() == contents


def test_run_dir_and_config_mistakes_are_one_line(tmp_path) -> None:
    (tmp_path / "afile").write_text("x")
    r = run_cli("--run-dir", str(tmp_path / "afile"), "--serial", timeout=60)
    assert r.returncode == 2 and "afile is a file, not a folder" in r.stderr
    r = run_cli("--run-dir", str(tmp_path / "afile" / "run"), "--serial", timeout=60)
    assert r.returncode == 2 and "cannot make the folder" in r.stderr
    cfg = tmp_path / "latin1.yaml"
    cfg.write_bytes("warm_start: caf\xe9\n".encode("latin-1"))
    r = run_cli("--config", str(cfg), timeout=60)
    assert r.returncode == 2 and f"--config {cfg}: not UTF-8 text" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_library_name_is_the_librarys_even_with_a_file_of_that_name_here(tmp_path, capsys,
                                                                          monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lion").write_text("not a program\n")
    assert run_search.main(["check", "lion"]) == 0
    assert "update = sign(update)" in capsys.readouterr().out
    assert run_search.main(["check", "./lion"]) == 2  # written as a path: the file
    assert "./lion: line 1" in capsys.readouterr().err


def test_an_export_that_cannot_be_written_is_one_line(tmp_path, capsys) -> None:
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "sub"
    assert run_search.main(["export", "lion", "--name", "lion", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--out {out / 'lion.py'}: cannot write it" in err and "Traceback" not in err
    assert (tmp_path / "afile").read_text() == "x"


@pytest.mark.parametrize(("args", "message"), [
    (["export", "lion", "--name", "lion", "--lr", "inf"],
     "--lr must be a positive finite number, got inf"),
    (["export", "lion", "--name", "lion", "--lr", "-1"],
     "--lr must be a positive finite number, got -1.0"),
    (["simplify", "lion", "--tolerance", "nan", "--exact-only"],
     "--tolerance must be a finite number >= 0, got nan"),
    (["tasks", "--time-tiers", "Z"],
     "--time-tiers 'Z': choose among A, B and C, comma-separated"),
    (["funnel", "nowhere", "--margin", "nan"], "--margin must be a finite number, got nan"),
    (["inspect", "nowhere"], "nowhere is not a run directory: no config.json"),
])
def test_bad_subcommand_values_are_one_line(args, message, capsys, tmp_path,
                                            monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_search.main(args) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {message}"
    assert not (tmp_path / "discovered").exists()


def test_inspect_plots_of_a_broken_funnel_json_is_one_line(tmp_path, capsys) -> None:
    from tests.search.test_loop import run_numpy_search

    run = run_numpy_search(tmp_path / "run", max_evals=6)
    run.funnel_path.write_text('{"rows": 3}')
    assert run_search.main(["inspect", str(run.path), "--plots"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {run.funnel_path}: ") and len(err.strip().splitlines()) == 1
    assert not (run.path / "progress.png").exists()  # a refused run is left as it was


def test_a_search_from_muon_runs_end_to_end(tmp_path) -> None:
    """Muon as the warm start: search, funnel (Muon among the tuned baselines),
    simplify and export, each through the command line."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("warm_start: muon\ntasks: [quadratic/A]\nseeds: [0]\npopulation: 4\n")
    searched = run_cli("--config", str(cfg), "--serial", "--max-evals", "6", "--run-dir",
                       str(tmp_path / "run"))
    assert searched.returncode == 0, searched.stderr
    assert re.search(r"against AdamW tuned on its learning rate, betas and weight decay \(the "
                     r"warm start muon scores [-+]\d+\.\d{4}\), at its best learning rate on "
                     r"quadratic/A", searched.stdout), searched.stdout
    from search.rundir import RunDir

    run = RunDir(tmp_path / "run")
    warm = next(r for r in run.history() if r["id"] == 0)
    assert warm["mutation"]["kind"] == "warm_start" and "newton_schulz" in warm["source"]
    assert math.isfinite(warm["fitness"]) and warm["fitness"] > -1e9
    funneled = run_cli("funnel", str(tmp_path / "run"), "--top", "1", "--tiers", "B",
                       "--seeds", "2", "--baselines", "adamw,muon", "--trials", "2",
                       timeout=600)
    assert funneled.returncode == 0, funneled.stderr
    assert "on each task (adamw, muon;" in funneled.stdout
    saved = run.funnel()
    assert saved["baselines"] == ["adamw", "muon"]
    muon_runs = saved["baseline_runs"]["muon"]
    assert set(muon_runs) == {"quadratic/B"}
    assert all(m is not None and math.isfinite(m) for m in muon_runs["quadratic/B"]["metrics"])
    simplified = run_cli("simplify", str(tmp_path / "run"), "--exact-only")
    assert simplified.returncode == 0 and "def train(" in simplified.stdout
    exported = run_cli("export", str(tmp_path / "run"), "--id", "0", "--name", "from_muon",
                       "--out", str(tmp_path / "out"))
    assert exported.returncode == 0, exported.stderr
    text = (tmp_path / "out" / "from_muon.py").read_text()
    assert "def newton_schulz(xp" in text and "class FromMuon(" in text


def test_the_progress_line_counts_the_programs_below_the_hurdle(capsys) -> None:
    from search.loop import Stats

    run_search._progress(Stats(10, 20, 160, 5.0, 0.5, 0.01, 0, True, failed=2, screened=3))
    assert "| failed 2 | below hurdle 3 | infra errors 0 |" in capsys.readouterr().out
    run_search._progress(Stats(10, 20, 160, 5.0, 0.5, 0.01, 0, True, failed=2))
    assert "| failed 2 | infra errors 0 |" in capsys.readouterr().out  # none: not shown


def test_a_configs_paths_are_its_folders_and_tasks_are_flags_too(tmp_path, capsys,
                                                                   monkeypatch) -> None:
    """task_modules and warm_start files resolve beside the config file, wherever the
    command runs from; --tasks and --task-modules set a search's as a config does."""
    folder = tmp_path / "cfg"
    folder.mkdir()
    (folder / "c.yaml").write_text("task_modules: [missing_tasks.py]\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert run_search.main(["--config", "../cfg/c.yaml"]) == 2
    err = capsys.readouterr().err
    assert "task module" in err and str(folder / "missing_tasks.py") in err
    (folder / "c.yaml").write_text("warm_start: mine.dsl\n")
    (folder / "mine.dsl").write_text("def train(w, g, lr, t):\n  u = g * lr\n  return u\n")
    assert run_search._load_config_file("../cfg/c.yaml")["warm_start"] == "../cfg/mine.dsl"
    (folder / "c.yaml").write_text("warm_starts: [lion, mine.dsl, bad.dsl]\n")
    (folder / "bad.dsl").write_text("def train(w, g, lr, t):\n  u = sqr(g)\n  return u\n")
    assert run_search._load_config_file("../cfg/c.yaml")["warm_starts"] == [
        "lion", "../cfg/mine.dsl", "../cfg/bad.dsl"]
    assert run_search.main(["--config", "../cfg/c.yaml"]) == 2
    assert ("c.yaml: warm_starts.2: ../cfg/bad.dsl: line 2, column 7: unknown function 'sqr'"
            in capsys.readouterr().err)
    for args, message in ((["--tasks", "bogus/A"], "flags: tasks: unknown task 'bogus/A'"),
                          (["--tasks", " , "], "--tasks: name at least one"),
                          (["--task-modules", "nowhere_tasks.py", "--tasks", "x/A"],
                           "elsewhere/nowhere_tasks.py")):
        assert run_search.main(args) == 2
        assert message in capsys.readouterr().err


def test_export_never_writes_into_the_projects_own_discovered_unless_named(
        capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(Path(run_search.__file__).resolve().parent)
    before = sorted(p.name for p in Path("discovered").iterdir())
    assert run_search.main(["export", "lion", "--name", "untrusted_zz"]) == 2
    assert "this project's own package" in capsys.readouterr().err
    assert sorted(p.name for p in Path("discovered").iterdir()) == before
    monkeypatch.chdir(tmp_path)  # elsewhere, ./discovered is the user's
    assert run_search.main(["export", "lion", "--name", "zz"]) == 0
    assert (tmp_path / "discovered" / "zz.py").is_file()


def test_ctrl_c_in_a_subcommand_is_one_line_and_exit_130(capsys, monkeypatch) -> None:
    def interrupted(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_search, "_baselines", interrupted)
    assert run_search.main(["baselines", "--tasks", "quadratic/A"]) == 130
    err = capsys.readouterr().err
    assert err.strip() == ("stopped (Ctrl-C): what was written is kept; run the same command "
                           "to go on")



SLOW_TASKS = '''\
"""quick/A, quick/B and slow/A train in a second; one compiled call of slow/B takes
minutes (a 1024 x 1024 matmul of 256 rows a step, 4000 steps)."""
import jax.numpy as jnp
import numpy as np

from evaluators import tasks

rng = np.random.default_rng(0)


def loss(params, batch):
    return jnp.mean((batch[0] @ params["w"] - batch[1]) ** 2) + 0.01


def register(name, n, steps, batch):
    x = rng.standard_normal((2048, n)).astype(np.float32)
    y = (x @ rng.standard_normal((n, n)) / np.sqrt(n)).astype(np.float32)
    tasks.register(tasks.from_arrays(
        name, init=lambda rng: {"w": np.zeros((n, n), np.float32)}, loss=loss,
        train=(x, y), val=(x[:256], y[:256]), steps=steps, batch_size=batch))


register("quick/A", 16, 20, 16)
register("quick/B", 16, 40, 16)
register("slow/A", 16, 20, 16)
register("slow/B", 1024, 4000, 256)
'''


def test_ctrl_c_stops_a_funnel_within_seconds_and_keeps_finished_tunings(tmp_path) -> None:
    """Ctrl-C during a calibration whose compiled call takes minutes: the funnel ends
    within 10 s with one line (exit 130), and the next run does not tune again what the
    first finished (quick/B's baseline)."""
    import signal
    import time

    (tmp_path / "slow_tasks.py").write_text(SLOW_TASKS)
    (tmp_path / "c.yaml").write_text("tasks: [quick/A, slow/A]\ntask_modules: [slow_tasks.py]\n"
                                     "seeds: [0]\npopulation: 2\njudge: warm_start\n")
    r = run_cli("--config", str(tmp_path / "c.yaml"), "--serial", "--max-evals", "2",
                "--run-dir", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr

    def interrupted(after: str) -> tuple[str, str, float]:
        """The funnel, sent SIGINT 2 s after its output shows ``after``."""
        p = subprocess.Popen([sys.executable, "run_search.py", "funnel", str(tmp_path / "run"),
                              "--top", "1", "--tiers", "B", "--baselines", "adamw", "--trials",
                              "1"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        seen = []
        for line in p.stdout:
            seen.append(line)
            if after in line:
                break
        else:
            raise AssertionError(f"ended before {after!r}:\n{''.join(seen)}{p.stderr.read()}")
        time.sleep(2)
        start = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
        assert p.returncode == 130, err
        return "".join(seen) + out, err, time.monotonic() - start

    out, err, took = interrupted("quick/B: adamw tuned")
    assert took < 10, f"Ctrl-C took {took:.1f} s"
    assert "Traceback" not in err and err.strip().splitlines() == [
        "stopped (Ctrl-C): every finished tuning and tier is kept (in this machine's cache and "
        f"{tmp_path / 'run' / 'funnel.json'}); run the same command to continue"]
    assert "adamw defaults on slow/B: lr" not in out  # stopped inside slow/B's first call

    again, err, took = interrupted("baseline adamw: ")
    assert took < 10 and "Traceback" not in err
    assert "baseline adamw: slow/B\n" in again  # quick/B's tuning was kept, not redone
    assert "adamw defaults on quick/B" not in again


def test_export_calibrate_chooses_the_learning_rate_by_training(tmp_path) -> None:
    """--calibrate TASK trains the program there; the warm start's lr * 0.001 is folded,
    so the default is the multiplier times 0.001, and the docstring says where."""
    r = run_cli("export", "warmstart", "--name", "w", "--out", str(tmp_path), "--calibrate",
                "quadratic/A")
    assert r.returncode == 0, r.stderr
    assert re.search(r"  quadratic/A: lr x[\d.e-]+ [\d.]+", r.stdout)  # a line per pass
    m = re.search(r"default learning rate ([\d.e-]+) \(by --calibrate on quadratic/A "
                  r"\(metric [\d.]+\).*times 0\.001, the program's constant scale", r.stdout)
    assert m, r.stdout
    text = (tmp_path / "w.py").read_text()
    assert f"lr: float = {float(m.group(1))!r}" in text and "lr = lr * 0.001" not in text
    both = run_cli("export", "warmstart", "--name", "w2", "--out", str(tmp_path), "--lr", "0.1",
                   "--calibrate", "quadratic/A")
    assert both.returncode == 2 and "--lr and --calibrate: give one" in both.stderr
    unknown = run_cli("export", "warmstart", "--name", "w3", "--out", str(tmp_path),
                      "--calibrate", "nope/A")
    assert unknown.returncode == 2 and "--calibrate: unknown task 'nope/A'" in unknown.stderr


def test_report_writes_the_runs_page_and_a_search_names_it(tmp_path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tasks: [quadratic/A]\nseeds: [0]\npopulation: 4\njudge: warm_start\n"
                   "checkpoint_every: 2\n")
    r = run_cli("--config", str(cfg), "--serial", "--max-evals", "4", "--run-dir",
                str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    page = tmp_path / "run" / "report.html"
    assert f"report: {page} (rewritten at each checkpoint: reload it)" in r.stdout
    assert page.exists()  # the search wrote it at its checkpoints
    page.unlink()
    again = run_cli("report", str(tmp_path / "run"), "--top", "2")
    assert again.returncode == 0 and f"wrote {page} (" in again.stdout and page.exists()
    for args, message in ((["report", str(tmp_path)], "is not a run directory"),
                          (["report", str(tmp_path / "run"), "--top", "0"],
                           "--top must be from 1 to 1000")):
        bad = run_cli(*args)
        assert bad.returncode == 2 and message in bad.stderr and "Traceback" not in bad.stderr


def test_a_report_that_cannot_be_written_never_stops_the_search(tmp_path) -> None:
    """The report is a view: a search whose report.html cannot be written (here a folder
    stands in its place) goes on to its end and says so once, at the end."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tasks: [quadratic/A]\nseeds: [0]\npopulation: 4\njudge: warm_start\n")
    first = run_cli("--config", str(cfg), "--serial", "--max-evals", "2", "--run-dir",
                    str(tmp_path / "run"))
    assert first.returncode == 0, first.stderr
    (tmp_path / "run" / "report.html").unlink()
    (tmp_path / "run" / "report.html").mkdir()
    r = run_cli("--resume", str(tmp_path / "run"), "--serial", "--max-evals", "4")
    assert r.returncode == 0, r.stderr
    notes = [line for line in r.stderr.splitlines() if "report.html" in line]
    assert len(notes) == 1 and notes[0].startswith(
        f"note: {tmp_path / 'run' / 'report.html'} was not rewritten: "), r.stderr
    assert "best program" in r.stdout and "Traceback" not in r.stderr
