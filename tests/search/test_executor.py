"""Tests for search/executor.py: serial and Ray executors, timeouts, lost nodes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dsl import library
from search.config import SearchConfig
from search.executor import (
    FAILED,
    SerialExecutor,
    compile_cache_env,
    evaluate_job,
    worker_env,
)
from search.inspect import report
from search.loop import Search
from search.rundir import RunDir


def job(i: int, source: str | None = None, tasks=("quadratic/A",)) -> dict:
    return {"id": i, "source": source or library.get("warmstart").to_source(),
            "tasks": list(tasks), "seeds": [0]}


def test_evaluate_job_never_raises() -> None:
    ok = evaluate_job(job(1))
    assert ok["fitness"] == 0.0 and ok["error"] is None and "quadratic/A" in ok["tasks"]
    broken = evaluate_job(job(2, "def train(w, g, lr, t):\n  u = sqr(g)\n  return u\n"))
    assert broken["fitness"] == FAILED and "unknown function 'sqr'" in broken["error"]
    unknown = evaluate_job(job(3, tasks=("quadratic/A", "nope/A")))  # not the program's fault
    assert unknown["fitness"] is None and unknown["infra"] is True
    assert unknown["error"].startswith("nope/A: ValueError: unknown task 'nope/A'")


def test_a_program_that_fails_a_task_is_not_trained_on_the_next() -> None:
    blows_up = "def train(w, g, lr, t):\n  u = g * 1000000.0\n  return u\n"
    res = evaluate_job(job(4, blows_up, tasks=("quadratic/A", "mlp_mnist1d/A", "nope/A")))
    # FAILED by its own divergence: the tasks after it never load (no infrastructure error)
    assert res["fitness"] == FAILED and not res.get("infra") and res["error"] is None
    assert list(res["tasks"]) == ["quadratic/A"] and res["tasks"]["quadratic/A"]["diverged"]
    assert res["skipped"] == ["mlp_mnist1d/A", "nope/A"]
    # a program that runs every task has nothing skipped
    ok = evaluate_job(job(5, tasks=("quadratic/A", "quadratic/B")))
    assert list(ok["tasks"]) == ["quadratic/A", "quadratic/B"] and "skipped" not in ok


def test_a_program_below_the_hurdle_is_not_trained_on_the_next_task() -> None:
    slow = "def train(w, g, lr, t):\n  u = g * 0.0001\n  u = u * lr\n  return u\n"
    res = evaluate_job(job(6, slow, tasks=("quadratic/A", "nope/A")) | {"hurdle": -0.1})
    first = res["tasks"]["quadratic/A"]["fitness"]
    # worse than the warm start beyond the hurdle: its fitness is the first task's alone,
    # and the task after it never loads (no infrastructure error)
    assert first < -0.1 and res["fitness"] == first and not res.get("infra")
    assert res["skipped"] == ["nope/A"] and res["screened"] is True
    # without the hurdle it is trained on the next task (which cannot load here)
    assert evaluate_job(job(7, slow, tasks=("quadratic/A", "nope/A")))["infra"] is True
    # as good as the warm start: over the hurdle, trained on every task
    ok = evaluate_job(job(8, tasks=("quadratic/A", "quadratic/B")) | {"hurdle": -0.1})
    assert list(ok["tasks"]) == ["quadratic/A", "quadratic/B"]
    assert "skipped" not in ok and "screened" not in ok
    # below the hurdle on the last task: nothing left to skip, so not screened
    last = evaluate_job(job(9, slow) | {"hurdle": -0.1})
    assert last["fitness"] == first and "screened" not in last and "skipped" not in last


def test_the_search_sends_its_hurdle_and_counts_the_programs_below_it(tmp_path) -> None:
    jobs = []

    def fake(j):
        jobs.append(j)
        low = j["id"] % 2 == 1
        return {"id": j["id"], "fitness": -0.5 if low else 0.0, "error": None,
                "tasks": {"quadratic/A": {"fitness": -0.5 if low else 0.0, "metrics": [1.0],
                                          "steps": [300], "diverged": False, "error": None,
                                          "baseline": 1.0}},
                "worker": "test", "timing": {"wall_time": 0.0}} | (
                    {"skipped": ["quadratic/B"], "screened": True} if low else {})

    cfg = SearchConfig(executor="serial", population=4, max_evals=6, seed=0, seeds=[0],
                       tasks=["quadratic/A", "quadratic/B"], lr_grid=None, hurdle=-0.2,
                       judge="warm_start")
    run = RunDir.create(tmp_path / "run", cfg)
    search = Search.open(cfg, run)
    search.run_until_done(SerialExecutor(fake))
    # the warm start is every task's baseline: never screened; every other job carries it
    assert "hurdle" not in jobs[0] and {j["hurdle"] for j in jobs[1:]} == {-0.2}
    fresh = [r for r in run.history() if not r["cached"]]
    low = [r for r in fresh if r.get("screened")]
    assert low and all(r["skipped"] == ["quadratic/B"] for r in low)
    assert search.stats(1.0).screened == len(low)
    assert Search.open(cfg, run).screened == len(low)  # counted again on resume
    shown = report(run, program_id=low[0]["id"])
    assert ("quadratic/B: not trained (its fitness on the tasks before was below the hurdle)"
            in shown)
    with pytest.raises(ValueError, match="hurdle"):
        SearchConfig(hurdle=0.1)  # a program as good as the warm start always passes


def test_the_history_names_the_tasks_a_failed_program_skipped(tmp_path) -> None:
    def fake(j):
        failed = j["id"] % 2 == 1
        return {"id": j["id"], "fitness": FAILED if failed else 0.0, "error": None,
                "tasks": {"quadratic/A": {"fitness": FAILED if failed else 0.0, "metrics": [1.0],
                                          "steps": [300], "diverged": failed, "error": None,
                                          "baseline": 1.0}},
                "worker": "test", "timing": {"wall_time": 0.0}} | (
                    {"skipped": ["quadratic/B"]} if failed else {})

    cfg = SearchConfig(executor="serial", population=4, max_evals=6, seed=0, seeds=[0],
                       tasks=["quadratic/A", "quadratic/B"], lr_grid=None, judge="warm_start")
    run = RunDir.create(tmp_path / "run", cfg)
    Search.open(cfg, run).run_until_done(SerialExecutor(fake))
    fresh = [r for r in run.history() if not r["cached"]]
    assert {r.get("skipped") is not None for r in fresh} == {True, False}
    assert all(r["skipped"] == ["quadratic/B"] for r in fresh if r["fitness"] == FAILED)
    failed = next(r["id"] for r in fresh if r["fitness"] == FAILED)
    shown = report(run, program_id=failed)
    assert "quadratic/B: not trained (the program had already failed)" in shown


def test_failed_fitness_is_the_evaluators_own() -> None:
    import evaluators
    from search import evolution, funnel

    assert FAILED == evolution.FAILED == funnel.FAILED == evaluators.FAILED


def test_serial_executor_is_fifo() -> None:
    ex = SerialExecutor(lambda j: {"id": j["id"], "fitness": 0.0})
    for i in range(3):
        ex.submit({"id": i})
    assert [ex.wait()[0]["id"] for _ in range(3)] == [0, 1, 2]
    assert ex.wait() == []


def test_worker_environment() -> None:
    env = worker_env(0)
    assert env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false" and env["JAX_PLATFORMS"] == "cpu"
    assert "intra_op_parallelism_threads=1" in env["XLA_FLAGS"]
    assert "JAX_PLATFORMS" not in worker_env(1)
    assert "intra_op_parallelism_threads=4" in worker_env(0, 4)["XLA_FLAGS"]
    assert "JAX_COMPILATION_CACHE_DIR" not in env

def test_compile_cache_folder_is_made_or_skipped(tmp_path) -> None:
    env = worker_env(0, 1, str(tmp_path / "a" / "xla"))
    assert env["JAX_COMPILATION_CACHE_DIR"] == str(tmp_path / "a" / "xla")
    assert (tmp_path / "a" / "xla").is_dir()
    (tmp_path / "file").write_text("")
    assert "JAX_COMPILATION_CACHE_DIR" not in worker_env(0, 1, str(tmp_path / "file" / "xla"))


def slow_evaluate(j):
    time.sleep(j.get("sleep", 0.0))
    return {"id": j["id"], "fitness": float(j["id"]), "tasks": {}, "error": None,
            "worker": "x", "timing": {}}


@pytest.fixture
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_executor_completion_order_and_timeout(ray_local) -> None:
    from search.executor import RayExecutor

    # 4 s apart, so that a loaded machine starting the second worker late still sees 2
    # first; the timeout counts from submission, start-up included
    ex = RayExecutor(workers=2, timeout_s=8.0, evaluate=slow_evaluate)
    ex.submit({"id": 1, "sleep": 4.0})
    ex.submit({"id": 2, "sleep": 0.0})
    first = ex.wait()
    assert [r["id"] for r in first] == [2]  # completion order, not submission order
    assert ex.wait()[0]["id"] == 1
    ex.submit({"id": 3, "sleep": 60.0})
    start = time.monotonic()
    out = ex.wait()
    assert out[0]["id"] == 3 and out[0]["infra"] and out[0]["fitness"] is None
    assert "timeout" in out[0]["error"]
    assert time.monotonic() - start < 20


def test_a_node_removed_mid_search_loses_no_evaluation(tmp_path) -> None:
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    from search.executor import RayExecutor

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=2)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        cfg = SearchConfig(executor="ray", population=4, plateau=50, max_evals=12, workers=3,
                           tasks=["quadratic/A"], seeds=[0], retries=2, judge="warm_start")
        run = RunDir.create(tmp_path / "run", cfg)
        executor = RayExecutor(workers=3, evaluate=evaluate_job, retries=2, timeout_s=300)
        search = Search.open(cfg, run)
        removed = []

        def progress(stats):
            if stats.evaluated >= 3 and not removed:
                cluster.remove_node(worker)
                cluster.add_node(num_cpus=2)
                removed.append(True)

        search.run_until_done(executor, progress)
        history = list(run.history())
        assert removed
        assert sum(not r["cached"] for r in history) == 12
        assert len({r["id"] for r in history}) == len(history)
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_a_second_process_loads_the_compiled_loop_from_the_cache(tmp_path) -> None:
    """With compile_cache, the training loop one worker compiled is loaded, not
    compiled again, by the next process (JAX reports a persistent-cache hit)."""
    cache = tmp_path / "xla"
    env = {**os.environ, **compile_cache_env(str(cache)), "JAX_PLATFORMS": "cpu",
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}  # the tiny task compiles fast
    code = (
        "import jax\n"
        "hits = []\n"
        "jax.monitoring.register_event_listener(lambda e, **kw: hits.append(e))\n"
        "from dsl import library\n"
        "from evaluators import evaluate\n"
        "assert evaluate(library.get('sgd'), 'quadratic/A').error is None\n"
        "print(hits.count('/jax/compilation_cache/cache_hits'))\n"
    )
    root = Path(__file__).resolve().parents[2]
    runs = [subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True,
                           text=True, timeout=300) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr[-2000:]
    first, second = (int(r.stdout.split()[-1]) for r in runs)
    assert first == 0 and second >= 1
    assert any(cache.iterdir())


def test_ray_failing_at_submission_or_wait_gives_infrastructure_errors(ray_local) -> None:
    from search.executor import RayExecutor

    ex = RayExecutor(workers=2, timeout_s=30.0, evaluate=slow_evaluate)

    class Broken:
        def remote(self, job):
            raise ConnectionError("raylet\nis gone")

    real = ex.remote
    ex.remote = Broken()
    ex.submit({"id": 7, "sleep": 0.0})
    assert ex.pending == 1
    (result,) = ex.wait()
    assert result["id"] == 7 and result["infra"] and result["fitness"] is None
    assert result["error"] == "submitting to Ray: ConnectionError: raylet is gone"
    ex.remote = real
    ex.submit({"id": 8, "sleep": 5.0})

    class Gone:  # Ray as its control store dies: wait raises
        get, cancel = ex.ray.get, ex.ray.cancel

        @staticmethod
        def wait(*args, **kwargs):
            raise RuntimeError("GCS lost")

    ex.ray = Gone
    (result,) = ex.wait()
    assert result["id"] == 8 and result["infra"]
    assert result["error"] == "waiting on Ray: RuntimeError: GCS lost" and ex.pending == 0


def test_a_tuning_job_answers_the_tuning_an_error_or_an_infrastructure_error(
        monkeypatch) -> None:
    from evaluators import tuning
    from search.executor import evaluate_job

    job = {"id": -1, "source": "", "tasks": ["quadratic/A"], "seeds": [0], "tune": "adamw"}
    answer = tuning.Tuned(program="adamw", task="quadratic/A", seeds=(0,), protocol="p",
                          hyperparameters={"b1": 0.8}, lr_multiplier=0.1, lr_at_edge=False,
                          metric=2.0, metrics=(2.0,), default_metric=2.5, seed_noise=None,
                          trials=(),
                          seconds=1.0)
    monkeypatch.setattr(tuning, "tune", lambda *a, **k: answer)
    result = evaluate_job(job)
    assert result["tuned"]["metric"] == 2.0 and result["error"] is None
    assert not result.get("infra") and result["fitness"] is None

    def diverges(*a, **k):
        raise RuntimeError("the baseline 'adamw' diverged at every multiplier")

    monkeypatch.setattr(tuning, "tune", diverges)
    result = evaluate_job(job)  # no retry can help: the search stops on it
    assert result["error"] == ("tuning adamw on quadratic/A: the baseline 'adamw' diverged at "
                               "every multiplier") and not result.get("infra")

    def lost(*a, **k):
        raise MemoryError("out of memory")

    monkeypatch.setattr(tuning, "tune", lost)
    result = evaluate_job(job)  # not the baseline's fault: retried
    assert result["infra"] and result["error"] == ("tuning adamw on quadratic/A: MemoryError: "
                                                   "out of memory")
