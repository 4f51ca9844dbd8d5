"""Executors: where evaluations run. The only module that knows search and evaluators.

A job is plain data (id, program source, tasks, seeds); a result is plain data
too (fitness, per-task metrics, error, worker, timing). ``evaluate_job`` never
raises: a crash is a failed result. Two executors share one interface:

- :class:`SerialExecutor` runs jobs in-process, in submission order:
  deterministic, for tests and debugging;
- :class:`RayExecutor` runs them on Ray, an embedded local instance by default
  or a cluster (``address`` or ``RAY_ADDRESS``), takes results as they complete,
  kills an evaluation that runs past its timeout, and retries one whose worker
  or node was lost (``retries`` times) before recording it as failed.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any

from search.evolution import FAILED

Job = dict[str, Any]
Result = dict[str, Any]


def worker_env(gpus_per_eval: float, cpus_per_eval: float = 1.0,
               compile_cache: str | None = None) -> dict[str, str]:
    """Environment for workers, set before JAX is imported there.

    No GPU memory preallocation (several workers share a GPU); CPU-only JAX on
    CPU workers; XLA's CPU threads limited to the CPUs Ray reserved, so that
    workers do not oversubscribe the machine; and JAX's persistent compilation
    cache in ``compile_cache`` (see :func:`compile_cache_env`).
    """
    env = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", **compile_cache_env(compile_cache)}
    if gpus_per_eval == 0:
        env["JAX_PLATFORMS"] = "cpu"
    threads = max(1, int(cpus_per_eval))
    env["XLA_FLAGS"] = (f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'} "
                        f"intra_op_parallelism_threads={threads}")
    return env


def compile_cache_env(path: str | None) -> dict[str, str]:
    """JAX's persistent compilation cache in ``path`` (``~`` expanded and the folder
    made here; nothing if it cannot be), for what takes at least a second to
    compile: the engine's training loops, one per task and bucket, which a process
    then loads instead of compiling."""
    if path is None:
        return {}
    path = os.path.expanduser(path)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:  # read-only home, say: compile every time rather than fail
        return {}
    return {"JAX_COMPILATION_CACHE_DIR": path, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "1"}


def failed_result(job: Job, error: str, wall: float = 0.0) -> Result:
    return {"id": job["id"], "fitness": FAILED, "tasks": {}, "error": error,
            "worker": f"{socket.gethostname()}:{os.getpid()}",
            "timing": {"wall_time": wall, "compile_time": 0.0}}


def evaluate_job(job: Job) -> Result:
    """Train the job's program on its tasks and seeds; never raises."""
    start = time.perf_counter()
    try:
        from dsl import parse
        from evaluators import evaluate_all

        results, fitness = evaluate_all(parse(job["source"]), job["tasks"], tuple(job["seeds"]))
        tasks = {r.task: {"fitness": r.fitness, "metrics": list(r.metrics), "steps": list(r.steps),
                          "diverged": r.diverged, "error": r.error} for r in results}
        return {"id": job["id"], "fitness": fitness, "tasks": tasks, "error": None,
                "worker": f"{socket.gethostname()}:{os.getpid()}",
                "timing": {"wall_time": time.perf_counter() - start,
                           "compile_time": sum(r.compile_time for r in results)}}
    except Exception as e:  # a crash is a failed candidate, not the end of a search
        return failed_result(job, f"{type(e).__name__}: {e}", time.perf_counter() - start)


class SerialExecutor:
    """Runs each job in this process when results are asked for, in order.

    ``compile_cache`` takes effect if JAX is not imported yet in this process
    (it reads the setting when imported).
    """

    def __init__(self, evaluate: Callable[[Job], Result] = evaluate_job,
                 compile_cache: str | None = None) -> None:
        self.evaluate = evaluate
        self.queue: list[Job] = []
        for key, value in compile_cache_env(compile_cache).items():
            os.environ.setdefault(key, value)

    @property
    def pending(self) -> int:
        return len(self.queue)

    def submit(self, job: Job) -> None:
        self.queue.append(job)

    def wait(self) -> list[Result]:
        return [self.evaluate(self.queue.pop(0))] if self.queue else []

    def shutdown(self) -> None:
        self.queue.clear()


class RayExecutor:
    """Runs jobs as Ray tasks; results in completion order."""

    def __init__(
        self, *, workers: int, address: str | None = None, cpus_per_eval: float = 1.0,
        gpus_per_eval: float = 0.0, timeout_s: float = 600.0, retries: int = 2,
        evaluate: Callable[[Job], Result] = evaluate_job, compile_cache: str | None = None,
    ) -> None:
        import ray

        self.ray = ray
        env = {"env_vars": worker_env(gpus_per_eval, cpus_per_eval, compile_cache)}
        if not ray.is_initialized():
            address = address or os.environ.get("RAY_ADDRESS")
            if address:
                ray.init(address=address, runtime_env=env, log_to_driver=False)
            else:
                ray.init(num_cpus=max(1, int(workers * cpus_per_eval)), include_dashboard=False,
                         runtime_env=env, log_to_driver=False)
        self.remote = ray.remote(evaluate).options(
            num_cpus=cpus_per_eval, num_gpus=gpus_per_eval, max_retries=retries,
            retry_exceptions=False)
        self.timeout_s = timeout_s
        self.inflight: dict[Any, tuple[Job, float]] = {}

    @property
    def pending(self) -> int:
        return len(self.inflight)

    def submit(self, job: Job) -> None:
        self.inflight[self.remote.remote(job)] = (job, time.monotonic())

    def wait(self, poll_s: float = 0.5) -> list[Result]:
        """At least one result (or a timeout failure) unless nothing is in flight."""
        ray = self.ray
        results: list[Result] = []
        while self.inflight and not results:
            done, _ = ray.wait(list(self.inflight), num_returns=1, timeout=poll_s)
            for ref in done:
                job, _ = self.inflight.pop(ref)
                try:
                    results.append(ray.get(ref))
                except Exception as e:  # worker or node lost after the retries, cancelled
                    results.append(failed_result(job, f"{type(e).__name__}: {e}"))
            now = time.monotonic()
            for ref, (job, started) in list(self.inflight.items()):
                if now - started > self.timeout_s:
                    ray.cancel(ref, force=True)  # kills the worker process, not a thread
                    self.inflight.pop(ref)
                    results.append(failed_result(
                        job, f"timeout: still running after {self.timeout_s:.0f} s",
                        now - started))
        return results

    def shutdown(self) -> None:
        for ref in list(self.inflight):
            self.ray.cancel(ref, force=True)
        self.inflight.clear()


def make_executor(cfg, evaluate: Callable[[Job], Result] = evaluate_job):
    """The executor a :class:`~search.config.SearchConfig` asks for."""
    if cfg.executor == "serial":
        return SerialExecutor(evaluate, cfg.compile_cache)
    return RayExecutor(workers=cfg.workers, address=cfg.address, cpus_per_eval=cfg.cpus_per_eval,
                       gpus_per_eval=cfg.gpus_per_eval, timeout_s=cfg.timeout_s,
                       retries=cfg.retries, evaluate=evaluate, compile_cache=cfg.compile_cache)
