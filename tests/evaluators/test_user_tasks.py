"""Tests for evaluators/tasks/user.py: a user's own task from NumPy arrays, registered,
evaluated, searched in fresh processes, and its bad inputs."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from dsl import library
from evaluators import baselines, catalog, evaluate, tasks
from evaluators.grid import WIDE
from evaluators.tasks import user

ROOT = Path(__file__).resolve().parents[2]

#: A task module as a user writes it: linear regression on arrays of their own.
MODULE = textwrap.dedent('''
    import jax.numpy as jnp
    import numpy as np
    from evaluators import tasks

    rng = np.random.default_rng(5)
    x = rng.standard_normal((600, 6)).astype(np.float32)
    y = (x @ np.linspace(-1, 1, 6) + 0.1 * rng.standard_normal(600)).astype(np.float32)

    def init(rng):
        return {"w": (0.1 * rng.standard_normal(6)).astype(np.float32),
                "b": np.zeros((), np.float32)}

    def loss(p, batch):
        return jnp.mean((batch[0] @ p["w"] + p["b"] - batch[1]) ** 2)

    tasks.register(tasks.from_arrays("myreg/A", init=init, loss=loss, train=(x[:500], y[:500]),
                                     val=(x[500:], y[500:]), steps=120, batch_size=16))
''')


def linreg(name: str = "linreg_test/A", scale: float = 1.0, **kw):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 4)).astype(np.float32)
    y = scale * x @ np.array([1.0, -2.0, 0.5, 3.0], np.float32)
    fields = dict(init={"w": np.zeros(4, np.float32)},
                  loss=lambda p, b: jnp.mean((b[0] @ p["w"] - b[1]) ** 2),
                  train=(x[:250], y[:250]), val=(x[250:], y[250:]), steps=150, batch_size=16)
    return tasks.from_arrays(name, **(fields | kw))


@pytest.fixture
def clean_registry():
    yield
    for name in [n for n in user.REGISTERED if n.startswith(("linreg_test", "myreg"))]:
        tasks.unregister(name)
    assert not [n for n in catalog.USER if n.startswith(("linreg_test", "myreg"))]


def test_a_registered_task_is_evaluated_and_calibrated_like_any_other(clean_registry) -> None:
    task = linreg()
    tasks.register(task)
    assert tasks.get("linreg_test/A") is task and "linreg_test/A" in tasks.names()
    assert "linreg_test/A" not in tasks.held_out()
    params, idx = task.draws(3)
    np.testing.assert_array_equal(params["w"], np.zeros(4))  # fixed init: seeds move batches
    assert idx.shape == (150, 16) and idx.max() < 250
    adamw = evaluate(library.get("adamw"), "linreg_test/A", seeds=(0, 1), lr_grid=WIDE)
    assert not adamw.failed and not adamw.lr_at_edge
    start = float(task.metric(params, tuple(map(jnp.asarray, task.data().val))))
    assert start > 10.0 and max(adamw.metrics) < 0.01 * start  # it learns the regression
    assert adamw.baseline is not None and adamw.baseline_lr is not None


def test_an_edited_task_never_reuses_the_cached_baseline(clean_registry) -> None:
    first, second = linreg(), linreg(scale=2.0)
    assert first.version != second.version and first.version == linreg().version
    tasks.register(first)
    a = evaluate(library.get("sgd"), "linreg_test/A", seeds=(0,), lr_grid=WIDE)
    tasks.register(second, replace=True)
    b = evaluate(library.get("sgd"), "linreg_test/A", seeds=(0,), lr_grid=WIDE)
    assert a.baseline != b.baseline  # the warm start calibrated again on the new data
    stored = json.loads((baselines.cache_dir() / baselines.FILE).read_text())
    versions = {k.split("|")[1] for k in stored
                if k.startswith("warmstart|linreg_test/A@") and k.split("|")[2] == "0"}
    assert versions == {f"linreg_test/A@{first.version}", f"linreg_test/A@{second.version}"}


def test_registration_refuses_clashes(clean_registry) -> None:
    tasks.register(linreg())
    with pytest.raises(ValueError, match="'linreg_test/A' is already registered"):
        tasks.register(linreg(scale=3.0))
    with pytest.raises(TypeError, match="takes a Task"):
        tasks.register("linreg_test/A")


@pytest.mark.parametrize(("change", "message"), [
    ({"name": "linreg"}, "'linreg' must be family/tier"),
    ({"name": "linreg/D"}, "tier one of A, B, C"),
    ({"name": "mlp_mnist1d/A"}, "family 'mlp_mnist1d' is one of the project's own"),
    ({"steps": 0}, "steps must be a positive integer, got 0"),
    ({"batch_size": 2.5}, "batch_size must be a positive integer, got 2.5"),
    ({"train": (np.zeros((10, 4)), np.zeros(9))}, r"arrays of train differ in length: \[10, 9\]"),
    ({"val": (np.full((5, 4), np.nan), np.zeros(5))}, r"val\[0\] holds NaN"),
    ({"train": "x.npy"}, "train must be a NumPy array or a tuple"),
    ({"train": (np.array(["a", "b"]),)}, r"train\[0\] has dtype <U1"),
    ({"loss": 3}, "loss and metric must be functions"),
])
def test_bad_task_definitions_name_the_problem(change, message) -> None:
    with pytest.raises(ValueError, match=message):
        linreg(**change)


def test_load_modules_names_the_module_that_failed(tmp_path: Path) -> None:
    with pytest.raises(ImportError, match="task module 'no_such_tasks_mod': ModuleNotFound"):
        user.load_modules(["no_such_tasks_mod"])
    with pytest.raises(ImportError, match="no such file"):
        user.load_modules([str(tmp_path / "missing.py")])
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('my data is not there')\n")
    with pytest.raises(ImportError, match="broken.py': RuntimeError: my data is not there"):
        user.load_modules([str(broken)])


def test_a_worker_process_loads_the_task_module_itself(tmp_path: Path) -> None:
    """evaluate_job in a fresh process (as a Ray worker is) registers the job's tasks."""
    module = tmp_path / "my_tasks.py"
    module.write_text(MODULE)
    job = {"id": 1, "source": library.get("adamw").to_source(), "tasks": ["myreg/A"],
           "seeds": [0, 1], "task_modules": [str(module)],
           "lr_grid": WIDE.model_dump(), "lr_centre": None, "baselines": {"myreg/A": 0.5}}
    code = ("import json, sys; from search.executor import evaluate_job; "
            "print(json.dumps(evaluate_job(json.loads(sys.argv[1]))))")
    r = subprocess.run([sys.executable, "-c", code, json.dumps(job)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["error"] is None and not result.get("infra"), result
    metric = result["tasks"]["myreg/A"]["metrics"]
    assert len(metric) == 2 and max(metric) < 0.1  # noise variance 0.01: a fit, not a guess
    bad = job | {"task_modules": [str(tmp_path / "gone.py")]}
    r = subprocess.run([sys.executable, "-c", code, json.dumps(bad)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["infra"] and "gone.py" in result["error"]  # never the program's fitness


def test_a_search_on_a_users_task_from_the_command_line(tmp_path: Path) -> None:
    module = tmp_path / "my_tasks.py"
    module.write_text(MODULE)
    config = tmp_path / "mine.yaml"
    config.write_text(f"tasks: [myreg/A]\ntask_modules: [{module}]\nmax_evals: 6\n"
                      "executor: serial\nfunnel_top: 0\n")
    run_dir = tmp_path / "run"
    r = subprocess.run([sys.executable, "run_search.py", "--config", str(config),
                        "--run-dir", str(run_dir)], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    records = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert sum(not r["cached"] for r in records) == 6
    assert all(set(r["tasks"]) == {"myreg/A"} for r in records if not r["cached"])
    # the warm start, judged against AdamW tuned on the user's task (in its worker: the
    # task module is imported there too) by the run's own baseline
    judge = json.loads((run_dir / "baselines.json").read_text())["myreg/A"]
    assert judge["tuned"]["program"] == "adamw" and judge["tuned"]["task"] == "myreg/A"
    warm = records[0]["tasks"]["myreg/A"]
    assert warm["baseline"] == judge["metric"]
    assert records[0]["fitness"] == pytest.approx(
        math.log(judge["metric"] / (sum(warm["metrics"]) / len(warm["metrics"]))), abs=1e-9)
    listed = subprocess.run([sys.executable, "run_search.py", "tasks", "--task-modules",
                             str(module)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0 and "myreg/A" in listed.stdout
    wrong = subprocess.run([sys.executable, "run_search.py", "tasks", "--task-modules",
                            "nope_mod"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert wrong.returncode == 2 and "task module 'nope_mod'" in wrong.stderr
    assert "Traceback" not in wrong.stderr
