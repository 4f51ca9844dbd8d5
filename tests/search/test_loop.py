"""Tests for search/loop.py: determinism, the golden run, resume after SIGKILL."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from dsl import abstract, parse
from evaluators.grid import WIDE
from search.config import SearchConfig
from search.executor import SerialExecutor
from search.loop import Search
from search.rundir import RunDir

ROOT = Path(__file__).resolve().parents[2]
VOLATILE = ("timing", "worker")


def numpy_evaluate(job):
    """A deterministic, JAX-free evaluator: 20 NumPy steps on a fixed noisy quadratic."""
    program = parse(job["source"])
    rng = np.random.default_rng(0)
    h = np.logspace(-1, 1, 16)
    w = rng.standard_normal(16)
    start = 0.5 * float(np.sum(h * w * w))
    states = None
    with np.errstate(all="ignore"):
        for step in range(20):
            g = h * w + 0.1 * rng.standard_normal(16)
            out = abstract.run_numpy(program, w, [g], [0.5], [float(step + 1)], states=states)[0]
            states = list(out[1:])
            w = w - np.broadcast_to(out[0], w.shape)
        final = 0.5 * float(np.sum(h * w * w))
    fitness = float(np.log(start / final)) if np.isfinite(final) and 0 < final < 1e6 else -1e9
    return {"id": job["id"], "fitness": fitness, "tasks": {}, "error": None, "worker": "test",
            "timing": {"wall_time": 0.0}}


def small_config(**kw) -> SearchConfig:
    return SearchConfig(**({"executor": "serial", "judge": "warm_start", "population": 6,
                            "plateau": 8, "restarts": 2,
                            "max_evals": 30, "seed": 4, "tasks": ["quadratic/A"],
                            "seeds": [0]} | kw))


def stable(run: RunDir) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in run.history()]


def run_numpy_search(path: Path, **kw) -> RunDir:
    cfg = small_config(**kw)
    run = RunDir.create(path, cfg)
    Search.open(cfg, run).run_until_done(SerialExecutor(numpy_evaluate))
    return run


def test_same_seed_same_history_and_golden(tmp_path) -> None:
    a = stable(run_numpy_search(tmp_path / "a"))
    b = stable(run_numpy_search(tmp_path / "b"))
    assert a == b
    assert len([r for r in a if not r["cached"]]) == 30
    c = stable(run_numpy_search(tmp_path / "c", seed=5))
    assert c != a
    digest = hashlib.sha256(json.dumps(a, sort_keys=True).encode()).hexdigest()[:16]
    # Pinned: any change to mutation, evolution, caching or recording shows here.
    assert digest == GOLDEN, digest
    # the records gained their skeleton and nothing else changed
    before = [{k: v for k, v in r.items() if k != "skeleton"} for r in a]
    assert hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:16] == (
        "3523f327f41c9621")


GOLDEN = "81511fb51372e78e"  # records gained "skeleton" (without it: 3523f327f41c9621; the
# config gained hurdle, and with hurdle=None: 0358d088e57621cc)


def test_real_evaluator_is_deterministic(tmp_path) -> None:
    histories = []
    for name in ("a", "b"):
        cfg = small_config(max_evals=8)
        run = RunDir.create(tmp_path / name, cfg)
        Search.open(cfg, run).run_until_done(SerialExecutor())
        histories.append(stable(run))
    assert histories[0] == histories[1]
    assert histories[0][0]["mutation"] == {"kind": "warm_start"}
    assert histories[0][0]["fitness"] == 0.0


def test_sigkill_then_resume_loses_nothing_but_in_flight_work(tmp_path) -> None:
    run_dir = tmp_path / "run"
    config = tmp_path / "c.json"
    config.write_text(json.dumps(small_config(max_evals=40, checkpoint_every=3).model_dump()))
    cmd = [sys.executable, "run_search.py", "--config", str(config), "--run-dir", str(run_dir)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history = run_dir / "history.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline:
        if history.exists() and sum(1 for _ in history.open()) >= 15:
            break
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = [json.loads(line) for line in history.open() if line.strip()]
    assert len(before) >= 15
    done = subprocess.run([sys.executable, "run_search.py", "--resume", str(run_dir)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    after = list(RunDir(run_dir).history())
    ids = [r["id"] for r in after]
    assert len(ids) == len(set(ids))  # no duplicate ids
    assert after[: len(before)] == before[: len(after)]  # nothing written was lost
    assert sum(not r["cached"] for r in after) == 40  # every evaluation accounted for


def flaky(broken_ids: set[int], error: str = "mlp_mnist1d/A: ModuleNotFoundError: x"):
    """``numpy_evaluate``, except that jobs whose id is in ``broken_ids`` (emptied as
    they are hit once) come back as infrastructure errors."""
    def evaluate(job):
        if job["id"] in broken_ids:
            broken_ids.discard(job["id"])
            return {"id": job["id"], "fitness": None, "infra": True, "tasks": {},
                    "error": error, "worker": "test", "timing": {}}
        return numpy_evaluate(job)
    return evaluate


def test_a_warm_start_that_cannot_run_stops_before_anything_else(tmp_path) -> None:
    import pytest

    from search.loop import SearchStopped

    cfg = small_config(workers=3)
    run = RunDir.create(tmp_path / "run", cfg)
    submitted = []

    def evaluate(job):
        submitted.append(job["id"])
        return flaky({job["id"]}, "mlp_mnist1d/A: ModuleNotFoundError: No module named 'x'")(job)

    with pytest.raises(SearchStopped, match="warm start could not be evaluated: mlp_mnist1d/A: "
                                            "ModuleNotFoundError: No module named 'x'"):
        Search.open(cfg, run).run_until_done(SerialExecutor(evaluate))
    assert submitted == [0]  # nothing spent beyond the warm start
    (record,) = run.history()
    assert record["infra"] and record["fitness"] is None
    state = run.checkpoint()
    assert state["cache"]["results"] == {} and state["cache"]["by_structure"] == {}
    assert state["infra"] == 1 and state["evaluated"] == 0
    # Fixed, then resumed: the warm start is evaluated again, with its own id.
    Search.open(cfg, run).run_until_done(SerialExecutor(numpy_evaluate))
    records = list(run.history())
    assert [r["id"] for r in records[:2]] == [0, 0]
    assert records[1]["mutation"] == {"kind": "warm_start"} and not records[1]["infra"]
    assert sum(not r["cached"] and not r["infra"] for r in records) == 30


def test_a_warm_start_that_fails_on_a_task_stops_the_search(tmp_path) -> None:
    import pytest

    from search.loop import SearchStopped

    def evaluate(job):
        return {"id": job["id"], "fitness": -1e9, "error": None, "worker": "t", "timing": {},
                "tasks": {"quadratic/A": {"fitness": -1e9, "diverged": True, "error": None}}}

    cfg = small_config()
    run = RunDir.create(tmp_path / "run", cfg)
    with pytest.raises(SearchStopped, match="quadratic/A: training diverged"):
        Search.open(cfg, run).run_until_done(SerialExecutor(evaluate))
    assert len(list(run.history())) == 1


def test_infrastructure_errors_are_retried_never_cached_and_stop_when_in_a_row(tmp_path) -> None:
    import pytest

    from search.loop import SearchStopped

    cfg = small_config()
    run = RunDir.create(tmp_path / "a", cfg)
    search = Search.open(cfg, run)
    search.run_until_done(SerialExecutor(flaky({3, 7, 11})))  # apart: the search goes on
    records = list(run.history())
    infra = [r for r in records if r["infra"]]
    assert [r["id"] for r in infra] == [3, 7, 11] and search.infra == 3
    for r in infra:  # each retried with the same program, and then judged
        again = [x for x in records if x["id"] == r["id"] and not x["infra"]]
        assert len(again) == 1 and again[0]["source"] == r["source"]
    assert sum(not r["cached"] and not r["infra"] for r in records) == 30
    cached = search.cache.state_dict()["results"].values()
    assert all(v["fitness"] is not None for v in cached)  # an infrastructure error is no result

    def lost_after_4(job):  # a worker that breaks for good after program 3
        return flaky({job["id"]} if job["id"] >= 4 else set(), "boom")(job)

    run = RunDir.create(tmp_path / "b", cfg)
    with pytest.raises(SearchStopped, match=r"3 infrastructure errors in a row.*the last: boom"):
        Search.open(cfg, run).run_until_done(SerialExecutor(lost_after_4))
    assert [r["id"] for r in run.history() if r["infra"]] == [4, 5, 4]  # 2 in flight; 4 retried
    assert run.checkpoint()["infra"] == 3 and run.checkpoint()["evaluated"] == 4
    # 5, in flight when the search stopped, is kept to be evaluated first on resume
    assert [c["id"] for c in run.checkpoint()["evolution"]["retries"]] == [4, 5]
    Search.open(cfg, RunDir(run.path)).run_until_done(SerialExecutor(numpy_evaluate))
    judged = [r["id"] for r in run.history() if not r["infra"]]
    assert judged[4:6] == [4, 5] and len(judged) == len(set(judged))


def test_a_grid_search_sends_baselines_and_parents_multipliers(tmp_path) -> None:
    """The warm start is calibrated by the wide grid; its baselines go to baselines.json
    and into every later job; each child is centred on its parent's multipliers."""
    jobs = []

    def fake(job):
        jobs.append(job)
        lr = 2.0 + job["id"]  # each program "chooses" its own multiplier
        return {"id": job["id"], "fitness": -0.1 * job["id"], "error": None, "worker": "test",
                "tasks": {"quadratic/A": {"fitness": -0.1 * job["id"], "baseline": 0.04,
                                          "baseline_lr": 17.0, "lr_multiplier": lr}},
                "timing": {}}

    cfg = small_config(max_evals=6)
    run = RunDir.create(tmp_path / "run", cfg)
    Search.open(cfg, run).run_until_done(SerialExecutor(fake))
    assert jobs[0]["lr_grid"] == WIDE.model_dump() and jobs[0]["baselines"] is None
    assert all(j["lr_grid"] == cfg.lr_grid.model_dump() for j in jobs[1:])
    assert all(j["baselines"] == {"quadratic/A": 0.04} for j in jobs[1:])
    assert run.baselines() == {"quadratic/A": {"metric": 0.04, "lr_multiplier": 17.0}}
    records = {r["id"]: r for r in run.history()}
    for job in jobs[1:]:
        parent = records[records[job["id"]]["parent"]]
        want = {"quadratic/A": parent["tasks"]["quadratic/A"]["lr_multiplier"]}
        assert job["lr_centre"] == want == records[job["id"]]["lr_centre"]
    # the paper's protocol: no grid, no calibration, nothing extra in the jobs
    jobs.clear()
    plain = small_config(max_evals=3, lr_grid=None)
    run = RunDir.create(tmp_path / "plain", plain)
    Search.open(plain, run).run_until_done(SerialExecutor(fake))
    assert all(set(j) == {"id", "source", "tasks", "seeds"} | ({"hurdle"} if j["id"] else set())
               for j in jobs)
    assert run.baselines() == {}


def test_a_checkpoint_that_disagrees_with_the_history_is_rebuilt_from_it(tmp_path) -> None:
    run = run_numpy_search(tmp_path / "run", max_evals=20)
    good = run.checkpoint_path.read_text()
    state = json.loads(good)
    cases = {
        "{": "not valid JSON",
        json.dumps(state | {"history_lines": state["history_lines"] + 5}):
            f"counts {state['history_lines'] + 5} history lines",
        json.dumps(state | {"evaluated": 3}): "it counts 3 evaluations",
        json.dumps(state | {"last_id": 999}): "does not match history.jsonl",
        json.dumps(state | {"evolution": {"population": []}}): "cannot be loaded (KeyError",
    }
    for text, why in cases.items():
        run.checkpoint_path.write_text(text)
        search = Search.open(small_config(), run)
        (note,) = search.notes
        assert why in note and note.endswith("rebuilt from the history, which is the truth")
        assert search.evaluated == 20 and search.lines == len(list(run.history()))
    run.checkpoint_path.write_text(good)
    assert Search.open(small_config(), run).notes == []
    run.checkpoint_path.write_text("[]")
    search = Search.open(small_config(max_evals=30), run)
    search.run_until_done(SerialExecutor(numpy_evaluate))
    records = list(run.history())
    assert sum(not r["cached"] for r in records) == 30
    assert len({r["id"] for r in records}) == len(records)


def test_a_resume_of_another_configuration_is_refused_naming_the_field(tmp_path) -> None:
    import pytest

    from search.rundir import RunDirError

    run = run_numpy_search(tmp_path / "run", max_evals=8)
    with pytest.raises(RunDirError, match="population was 6 when the run began, now 7"):
        Search.open(small_config(population=7), run)
    run.checkpoint_path.unlink()  # the history alone still knows
    with pytest.raises(RunDirError, match="changed since line 1 of history.jsonl"):
        Search.open(small_config(tasks=["quadratic/B"]), run)
    # how much and where it runs may change
    search = Search.open(small_config(max_evals=12, workers=3, timeout_s=5.0), run)
    assert search.evaluated == 8


def test_a_run_made_before_a_field_was_added_resumes_as_the_search_it_was(tmp_path) -> None:
    from search.config import ADDED_FIELDS

    run = run_numpy_search(tmp_path / "run", max_evals=8, hurdle=None)
    fields = json.loads(run.config_path.read_text())
    for name in ADDED_FIELDS:  # config.json as a version without these fields wrote it
        del fields[name]
    run.config_path.write_text(json.dumps(fields))
    assert run.config().hurdle is None and run.config_fields()["hurdle"] is None
    assert run.config().judge == "warm_start"  # judged as it was, not by tuned AdamW
    legacy = json.dumps(small_config(hurdle=None).identity(), sort_keys=True,
                        separators=(",", ":"))
    assert "hurdle" not in legacy  # the identity such a run had: its records still match
    assert {r["config_hash"] for r in run.history()} == {run.config().identity_hash()}
    search = Search.open(run.config().model_copy(update={"max_evals": 12}), run)
    assert search.evaluated == 8
    search.run_until_done(SerialExecutor(numpy_evaluate))
    assert search.evaluated == 12
    # the default (a hurdle) is another search: refused, naming the field
    import pytest

    from search.rundir import RunDirError

    with pytest.raises(RunDirError, match="hurdle was null when the run began, now -0.1"):
        Search.open(small_config(max_evals=12), run)


def tuning_evaluate(jobs: list, tuned: dict | None = None, error: str | None = None):
    """numpy_evaluate, answering tuning jobs with ``tuned`` (or ``error``); jobs kept."""
    def evaluate(job):
        jobs.append(job)
        if not job.get("tune"):
            return numpy_evaluate(job)
        return {"id": job["id"], "fitness": None, "tasks": {}, "error": error, "worker": "t",
                "timing": {"wall_time": 0.0}} | ({} if error else {"tuned": tuned})
    return evaluate


TUNED = {"metric": 2.0, "lr_multiplier": 0.1, "hyperparameters": {"b1": 0.8, "b2": 0.95},
         "protocol": "16 quasi-random trials x 3 learning rates", "default_metric": 2.5,
         "seconds": 12.0, "seed_noise": 0.01}


def test_the_judge_is_tuned_before_anything_is_judged_and_kept_in_the_run(tmp_path) -> None:
    jobs: list = []
    cfg = small_config(judge="tuned", max_evals=6, tasks=["quadratic/A", "quadratic/B"])
    run = RunDir.create(tmp_path / "run", cfg)
    search = Search.open(cfg, run)
    said: list[str] = []
    search.say = said.append
    search.run_until_done(SerialExecutor(tuning_evaluate(jobs, TUNED)))
    assert [(j.get("tune"), j["tasks"]) for j in jobs[:2]] == [
        ("adamw", ["quadratic/A"]), ("adamw", ["quadratic/B"])]
    assert not any(j.get("tune") for j in jobs[2:])
    assert jobs[2]["id"] == 0  # then the warm start, judged like every program after it
    assert all(j["baselines"] == {"quadratic/A": 2.0, "quadratic/B": 2.0} for j in jobs[2:])
    # and the tasks' scales in the multi-task rule: the judge's seed noise
    assert all(j["scales"] == {"quadratic/A": 0.01, "quadratic/B": 0.01} for j in jobs[2:])
    saved = run.baselines()
    assert saved["quadratic/B"]["tuned"]["hyperparameters"] == {"b1": 0.8, "b2": 0.95}
    assert said[0] == ("judge on quadratic/A: adamw tuned (16 quasi-random trials x 3 learning "
                       "rates): metric 2 at lr x0.1, b1=0.8, b2=0.95 (defaults 2.5), in 12 s")
    assert search.evaluated == 6 and all(r["id"] >= 0 for r in run.history())
    jobs.clear()  # resumed: the run's judge is its own, never tuned again
    Search.open(cfg.model_copy(update={"max_evals": 8}), run).run_until_done(
        SerialExecutor(tuning_evaluate(jobs, TUNED)))
    assert jobs and not any(j.get("tune") for j in jobs)


def test_a_judge_that_cannot_be_tuned_stops_the_search_before_anything_is_spent(
        tmp_path) -> None:
    import pytest

    from search.loop import SearchStopped

    jobs: list = []
    cfg = small_config(judge="tuned")
    run = RunDir.create(tmp_path / "run", cfg)
    with pytest.raises(SearchStopped, match="the judge cannot be set, so no program can be "
                                            "judged: tuning adamw on quadratic/A: diverged"):
        Search.open(cfg, run).run_until_done(SerialExecutor(tuning_evaluate(
            jobs, error="tuning adamw on quadratic/A: diverged")))
    assert len(jobs) == 1 and run.history() is not None and not list(run.history())


def test_a_tuning_lost_to_the_infrastructure_stops_the_search_and_a_resume_tunes_it(
        tmp_path) -> None:
    import pytest

    from search.loop import SearchStopped

    jobs: list = []
    lost = [True]

    def flaky(job):
        if job.get("tune") and lost and lost.pop():
            jobs.append(job)
            return {"id": job["id"], "fitness": None, "infra": True, "tasks": {},
                    "error": "tuning adamw on quadratic/A: worker lost", "worker": "t",
                    "timing": {}}
        return tuning_evaluate(jobs, TUNED)(job)

    cfg = small_config(judge="tuned", max_evals=3)
    run = RunDir.create(tmp_path / "run", cfg)
    with pytest.raises(SearchStopped, match="the judge could not be tuned: tuning adamw on "
                                            "quadratic/A: worker lost"):
        Search.open(cfg, run).run_until_done(SerialExecutor(flaky))
    assert len(jobs) == 1 and not list(run.history())  # nothing else was spent
    search = Search.open(cfg, run)
    search.run_until_done(SerialExecutor(flaky))
    assert [j.get("tune") for j in jobs[:2]] == ["adamw", "adamw"]
    assert run.baselines()["quadratic/A"]["metric"] == 2.0 and search.evaluated == 3


def test_a_full_disk_stops_the_search_and_it_resumes_once_space_is_free(tmp_path,
                                                                        monkeypatch) -> None:
    import errno

    import pytest

    from search import rundir
    from search.loop import SearchStopped

    disk = {"full": False, "fills_at": 12}
    real_write, real_fsync = os.write, os.fsync

    def write(fd, data):
        if disk["full"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    def fsync(fd):
        if disk["full"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    def evaluate(job):
        if job["id"] == disk["fills_at"]:
            disk["full"], disk["fills_at"] = True, None  # once
        return numpy_evaluate(job)

    monkeypatch.setattr(rundir.os, "write", write)
    monkeypatch.setattr(rundir.os, "fsync", fsync)
    cfg = small_config()
    run = RunDir.create(tmp_path / "run", cfg)
    search = Search.open(cfg, run)
    with pytest.raises(SearchStopped, match="cannot write .*history.jsonl: No space left"):
        search.run_until_done(SerialExecutor(evaluate))
    assert "checkpoint.json: No space left" in search.checkpoint_error
    records = list(run.history())
    assert run.history_path.read_bytes().endswith(b"\n") and records
    disk["full"] = False
    resumed = Search.open(cfg, RunDir(run.path))
    assert resumed.notes == []
    resumed.run_until_done(SerialExecutor(evaluate))
    after = list(run.history())
    assert after[: len(records)] == records
    assert sum(not r["cached"] for r in after) == 30
    assert len({r["id"] for r in after}) == len(after)


def test_a_run_directory_made_read_only_mid_search_stops_it_in_one_line(tmp_path,
                                                                       monkeypatch) -> None:
    import errno

    import pytest

    from search import rundir
    from search.loop import SearchStopped

    real_open = os.open
    denied = {"on": False}

    def guarded_open(path, flags, *args):
        if denied["on"] and str(path).startswith(str(tmp_path)):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, flags, *args)

    def evaluate(job):
        denied["on"] = denied["on"] or job["id"] == 6
        return numpy_evaluate(job)

    monkeypatch.setattr(rundir.os, "open", guarded_open)
    cfg = small_config()
    run = RunDir.create(tmp_path / "run", cfg)
    search = Search.open(cfg, run)
    with pytest.raises(SearchStopped, match=r"history.jsonl: cannot write there \(Permission"):
        search.run_until_done(SerialExecutor(evaluate))
    denied["on"] = False
    monkeypatch.undo()
    before = list(run.history())
    Search.open(cfg, RunDir(run.path)).run_until_done(SerialExecutor(numpy_evaluate))
    after = list(run.history())
    assert after[: len(before)] == before and sum(not r["cached"] for r in after) == 30


def test_opening_a_run_is_a_step_of_its_own_and_the_executor_is_given_to_the_run(
        tmp_path) -> None:
    import pytest

    run = run_numpy_search(tmp_path / "run", max_evals=8)
    before = run.history_path.read_bytes()
    unopened = Search(small_config(max_evals=12), run)  # reads nothing
    assert unopened.evaluated == 0 and unopened.notes == []
    with pytest.raises(RuntimeError, match=r"not read: make the search with Search.open"):
        unopened.run_until_done(SerialExecutor(numpy_evaluate))
    assert run.history_path.read_bytes() == before  # nothing written over the run
    search = Search.open(small_config(max_evals=12), run)
    assert search.evaluated == 8 and search.executor is None
    executor = SerialExecutor(numpy_evaluate)
    search.run_until_done(executor)
    assert search.evaluated == 12 and search.executor is executor


def test_the_rate_after_a_resume_counts_this_process_only(tmp_path) -> None:
    run = run_numpy_search(tmp_path / "run", max_evals=8)
    search = Search.open(small_config(max_evals=12), run)
    search.run_until_done(SerialExecutor(numpy_evaluate))
    stats = search.stats(2.0)
    assert (stats.evaluated, stats.before) == (12, 8) and stats.rate == 2.0
