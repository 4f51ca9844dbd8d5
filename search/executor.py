"""Executors: where evaluations run. The only module that knows search and evaluators.

A job is plain data (id, program source, tasks, seeds, and with calibration
the learning-rate grid, the multipliers to centre it on per task and the
baseline metric per task); a result is plain data too (fitness, per-task
metrics and chosen multipliers, error, worker, timing): both typed in
:mod:`search.records`. ``evaluate_job`` never
raises. A result is one of two kinds:

- the program's own: a fitness, ``evaluators.FAILED`` when the program is
  invalid on a task or its training diverges;
- an *infrastructure error* (``"infra": True``, fitness ``None``): the
  evaluation could not run for a reason that is not the program's (an import
  error, missing data, a lost worker, out of memory, a timeout). It is no
  fitness: the search neither caches it nor tells it to the proposer.

Two executors share one interface:

- :class:`SerialExecutor` runs jobs in-process, in submission order:
  deterministic, for tests and debugging;
- :class:`RayExecutor` runs them on Ray, an embedded local instance by default
  (whose processes end with the driver, even one killed: :mod:`search.reaper`)
  or a cluster (``address`` or ``RAY_ADDRESS``), takes results as they complete,
  kills an evaluation that runs past its timeout, and retries one whose worker
  or node was lost (``retries`` times) before reporting an infrastructure error.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable
from typing import Any

from search.evolution import FAILED
from search.records import Job, Result


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


class ClusterError(RuntimeError):
    """The Ray cluster cannot be joined (refused, unreachable, no token); one line."""


def cluster_token() -> str | None:
    """Where this machine holds a Ray authentication token (``RAY_AUTH_TOKEN``,
    ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``, Ray's own order), or None."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    return path if os.path.isfile(path) else None


def cluster_auth_env() -> None:
    """Before Ray is imported: send the token this machine holds.

    ``ray start --head`` turns token authentication on when its machine holds a
    token (Ray 2.59 and later), but a driver given an explicit address sends none
    unless ``RAY_AUTH_MODE=token``, and the cluster refuses it. So with a token
    here and no mode chosen, token mode is set (a cluster without authentication
    accepts such a driver as well).
    """
    if cluster_token() and "RAY_AUTH_MODE" not in os.environ:
        os.environ["RAY_AUTH_MODE"] = "token"


def probe(address: str, timeout_s: float = 5.0) -> None:
    """Fail at once, in one line, when nothing listens at ``address`` (HOST:PORT or
    ray://HOST:PORT): Ray itself retries for minutes."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"--address {address!r}: expected HOST:PORT, e.g. 10.0.0.1:6379")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise ClusterError(f"cannot join the Ray cluster at {address}: nothing answers there "
                           f"({e.strerror or type(e).__name__}); is `ray start --head "
                           f"--port={port}` running on {host}? See docs/cluster.md") from None


def join_cluster(ray: Any, address: str, runtime_env: dict[str, Any]) -> None:
    """``ray.init`` on a running cluster (after :func:`cluster_auth_env`). Ray's own
    retry warnings are kept off the terminal; a failure becomes a
    :class:`ClusterError` of one line that says whether the token was refused."""
    probe(address)
    with tempfile.TemporaryFile() as log:
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)  # Ray's C++ warnings, one a second while it retries
        try:
            ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
            return
        except Exception as e:  # ConnectionError, AuthenticationError, ValueError, ...
            error = " ".join(str(e).split())[:300] or type(e).__name__
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        log.seek(0)
        refused = b"InvalidAuthToken" in log.read()
    token = cluster_token()
    if refused:
        why = (f"the cluster refused this machine's token ({token}); use the head node's "
               "~/.ray/auth_token" if token and os.environ.get("RAY_AUTH_MODE") == "token"
               else "the cluster wants a token: copy ~/.ray/auth_token from the head node")
    else:
        why = error
    raise ClusterError(f"cannot join the Ray cluster at {address}: {why} (see "
                       "docs/cluster.md)")


def infra_result(job: Job, error: str, wall: float = 0.0) -> Result:
    """An evaluation that could not run, through no fault of the program."""
    return {"id": job["id"], "fitness": None, "infra": True, "tasks": {}, "error": error,
            "worker": f"{socket.gethostname()}:{os.getpid()}",
            "timing": {"wall_time": wall, "compile_time": 0.0}}


def tune_job(job: Job) -> Result:
    """Tune the job's baseline (``tune``, a library name) on its one task and seeds
    (:func:`evaluators.tuning.tune`, the machine's cache first); never raises. The
    result's ``tuned`` holds the tuning. A baseline that diverges at every learning rate
    is the result's ``error`` (the judge cannot be set: no retry helps); any other
    exception is an infrastructure error."""
    start = time.perf_counter()
    task = job["tasks"][0]
    where = f"tuning {job['tune']} on {task}"
    try:
        from evaluators.tasks import load_modules
        from evaluators.tuning import tune

        load_modules(job.get("task_modules") or [])
        tuned = tune(job["tune"], task, tuple(job["seeds"]))
    except RuntimeError as e:
        return {"id": job["id"], "fitness": None, "tasks": {}, "error": f"{where}: {e}",
                "worker": f"{socket.gethostname()}:{os.getpid()}",
                "timing": {"wall_time": time.perf_counter() - start, "compile_time": 0.0}}
    except Exception as e:  # not the baseline's fault: retried
        return infra_result(job, f"{where}: {type(e).__name__}: {e}",
                            time.perf_counter() - start)
    return {"id": job["id"], "fitness": None, "tasks": {}, "error": None,
            "worker": f"{socket.gethostname()}:{os.getpid()}",
            "timing": {"wall_time": time.perf_counter() - start, "compile_time": 0.0},
            "tuned": tuned.model_dump(mode="json")}


def evaluate_job(job: Job) -> Result:
    """Train the job's program on its tasks and seeds; never raises. A job that names
    a baseline to ``tune`` is :func:`tune_job`'s.

    A program that does not parse fails (``FAILED``); an exception while loading
    or training a task is an infrastructure error naming the task. Tasks run in
    the job's order, and a program that fails one (invalid, or diverged at every
    learning rate) is not trained on the rest: its fitness is ``FAILED`` whatever
    they give. With the job's ``hurdle``, a program whose fitness on the tasks
    trained so far is below it is not trained on the rest either (``screened``): its
    fitness is that so far. The result names the tasks not trained (``skipped``), so
    list cheap tasks first. Tasks combine by the job's ``scales``
    (:func:`evaluators.fitness.judge_tasks`: the one multi-task rule).
    """
    if job.get("tune"):
        return tune_job(job)
    start = time.perf_counter()
    from dsl import ProgramError, parse

    try:
        program = parse(job["source"])
    except ProgramError as e:
        return {"id": job["id"], "fitness": FAILED, "tasks": {}, "error": str(e),
                "worker": f"{socket.gethostname()}:{os.getpid()}",
                "timing": {"wall_time": time.perf_counter() - start, "compile_time": 0.0}}
    where = "loading the evaluators"
    try:
        from evaluators import evaluate
        from evaluators.fitness import judge_tasks
        from evaluators.grid import LrGrid
        from evaluators.tasks import load_modules

        load_modules(job.get("task_modules") or [])

        grid = None if job.get("lr_grid") is None else LrGrid.model_validate(job["lr_grid"])
        centres, bases = job.get("lr_centre") or {}, job.get("baselines") or {}

        def train(task: str):
            nonlocal where
            where = task
            return evaluate(program, task, tuple(job["seeds"]), lr_grid=grid,
                            centre=centres.get(task), baseline_value=bases.get(task))

        outcome = judge_tasks(job["tasks"], train, lambda r: r.fitness, hurdle=job.get("hurdle"),
                              scales=job.get("scales"))
    except Exception as e:  # not the program's fault: never its fitness
        return infra_result(job, f"{where}: {type(e).__name__}: {e}",
                            time.perf_counter() - start)
    results, skipped = outcome.results, outcome.skipped
    tasks = {r.task: {"fitness": r.fitness, "metrics": list(r.metrics), "steps": list(r.steps),
                      "diverged": r.diverged, "error": r.error, "baseline": r.baseline}
             | ({"lr_multiplier": r.lr_multiplier, "lr_at_edge": r.lr_at_edge,
                 "baseline_lr": r.baseline_lr,
                 "lr_grid": [list(p) for p in r.lr_grid]} if grid is not None else {})
             for r in results}
    return {"id": job["id"], "fitness": outcome.fitness, "tasks": tasks,
            "error": None, "worker": f"{socket.gethostname()}:{os.getpid()}",
            "timing": {"wall_time": time.perf_counter() - start,
                       "compile_time": sum(r.compile_time for r in results)}} | (
                {"skipped": skipped} if skipped else {}) | (
                {"screened": True} if outcome.screened else {})


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
        address = address or os.environ.get("RAY_ADDRESS")
        if address:
            cluster_auth_env()  # read by Ray when it is imported
        import ray

        self.ray = ray
        env = {"env_vars": worker_env(gpus_per_eval, cpus_per_eval, compile_cache)}
        if not ray.is_initialized():
            if address:
                join_cluster(ray, address, env)
            else:
                # "local": always an instance of its own, even where `ray start` left a
                # cluster running on this machine (plain ray.init() would join that one).
                # Ray's note that it enabled token authentication (its default for a new
                # local instance, kept) is not printed on every search
                logging.getLogger("ray._private.authentication.authentication_token_setup"
                                  ).setLevel(logging.ERROR)
                ray.init(address="local", num_cpus=max(1, int(workers * cpus_per_eval)),
                         include_dashboard=False, runtime_env=env, log_to_driver=False)
                from search import reaper

                reaper.start()  # its processes end with this one, even after a SIGKILL
        self.remote = ray.remote(evaluate).options(
            num_cpus=cpus_per_eval, num_gpus=gpus_per_eval, max_retries=retries,
            retry_exceptions=False)
        self.timeout_s = timeout_s
        self.inflight: dict[Any, tuple[Job, float]] = {}
        #: Jobs Ray refused at submission (its raylet gone, say): their results.
        self.refused: list[Result] = []

    @property
    def pending(self) -> int:
        return len(self.inflight) + len(self.refused)

    def submit(self, job: Job) -> None:
        try:
            self.inflight[self.remote.remote(job)] = (job, time.monotonic())
        except Exception as e:  # Ray itself failing: an infrastructure error, not a traceback
            self.refused.append(infra_result(job, f"submitting to Ray: {type(e).__name__}: "
                                                  f"{' '.join(str(e).split())[:300]}"))

    def wait(self, poll_s: float = 0.5) -> list[Result]:
        """At least one result (or a timeout failure) unless nothing is in flight."""
        ray = self.ray
        results, self.refused = self.refused, []
        while self.inflight and not results:
            try:
                done, _ = ray.wait(list(self.inflight), num_returns=1, timeout=poll_s)
            except Exception as e:  # Ray itself gone: every job in flight is lost
                why = f"waiting on Ray: {type(e).__name__}: {' '.join(str(e).split())[:300]}"
                results += [infra_result(job, why) for job, _ in self.inflight.values()]
                self.inflight.clear()
                break
            for ref in done:
                job, _ = self.inflight.pop(ref)
                try:
                    results.append(ray.get(ref))
                except Exception as e:  # worker or node lost after the retries, cancelled
                    results.append(infra_result(job, f"{type(e).__name__}: "
                                                     f"{str(e).strip().splitlines()[-1]}"))
            now = time.monotonic()
            for ref, (job, started) in list(self.inflight.items()):
                if now - started > self.timeout_s:
                    ray.cancel(ref, force=True)  # kills the worker process, not a thread
                    self.inflight.pop(ref)
                    results.append(infra_result(
                        job, f"timeout: still running after {self.timeout_s:.0f} s "
                             "(raise timeout_s for slow machines)", now - started))
        return results

    def shutdown(self) -> None:
        for ref in list(self.inflight):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # Ray already gone: nothing left to cancel
                pass
        self.inflight.clear()
        self.refused.clear()


def make_executor(cfg, evaluate: Callable[[Job], Result] = evaluate_job):
    """The executor a :class:`~search.config.SearchConfig` asks for."""
    if cfg.executor == "serial":
        return SerialExecutor(evaluate, cfg.compile_cache)
    return RayExecutor(workers=cfg.workers, address=cfg.address, cpus_per_eval=cfg.cpus_per_eval,
                       gpus_per_eval=cfg.gpus_per_eval, timeout_s=cfg.timeout_s,
                       retries=cfg.retries, evaluate=evaluate, compile_cache=cfg.compile_cache)
