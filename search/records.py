"""The records passed between the loop, the executor, the run directory, the funnel
and the command line, typed: a job, its result, one history line, the checkpoint, and
the funnel's file (its training runs, comparisons, tiers and rows).

Records are JSON on disk; these types say what each field is, and
:func:`history_record` checks a line read back (a file edited by hand, or
written by another program, is named with its line rather than failing later
with a ``KeyError``). Fields added after the first release are optional, so
older runs still read.

>>> rec = history_record('{"id": 0, "parent": null, "round": 0, "mutation": {"kind": '
...     '"warm_start"}, "source": "...", "structural_hash": "a", '
...     '"fingerprint": "b", "cached": false, "fitness": 0.0, "tasks": {}}')
>>> rec["mutation"]
{'kind': 'warm_start'}
"""

from __future__ import annotations

import json
import math
from typing import Any, NotRequired

from pydantic import TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12


class Job(TypedDict):
    """What a worker needs to evaluate one program: plain data, it crosses to Ray."""

    id: int
    source: str
    tasks: list[str]
    seeds: list[int]
    task_modules: NotRequired[list[str]]
    #: With calibration: the grid (an ``LrGrid`` dumped), the multipliers to centre it
    #: on per task, and the baseline metric per task to score against.
    lr_grid: NotRequired[dict[str, Any]]
    lr_centre: NotRequired[dict[str, float] | None]
    baselines: NotRequired[dict[str, float] | None]
    #: The fitness below which the tasks after the current one are not trained.
    hurdle: NotRequired[float | None]
    #: Not a program: tune this library baseline on the job's one task (the judge).
    tune: NotRequired[str]
    #: Per task, the judge's seed noise: tasks combine weighted by its inverse
    #: (``evaluators.fitness.combine``); absent, by the plain mean.
    scales: NotRequired[dict[str, float]]


class TaskResult(TypedDict):
    """A program's evaluation on one task (the calibration's fields with a grid)."""

    fitness: float
    metrics: list[float]
    steps: list[int]
    diverged: bool
    error: str | None
    baseline: float | None
    lr_multiplier: NotRequired[float | None]
    lr_at_edge: NotRequired[bool]
    baseline_lr: NotRequired[float | None]
    lr_grid: NotRequired[list[list[float]]]


class Result(TypedDict):
    """What an evaluation gave: the program's own result, or (``infra``) an
    infrastructure error with no fitness."""

    id: int
    fitness: float | None
    tasks: dict[str, TaskResult]
    error: str | None
    worker: str
    timing: dict[str, float]
    infra: NotRequired[bool]
    #: Tasks not trained because the program had already failed on an earlier one, or
    #: (``screened``) its fitness on the earlier ones was below the search's hurdle.
    skipped: NotRequired[list[str]]
    screened: NotRequired[bool]
    #: A tuning job's answer: ``evaluators.tuning.Tuned`` as JSON data.
    tuned: NotRequired[dict[str, Any]]


class TaskRecord(TypedDict):
    """A :class:`TaskResult` as the history holds it: every field optional (older runs
    wrote fewer), each of its type when present."""

    fitness: NotRequired[float]
    metrics: NotRequired[list[float | None]]
    steps: NotRequired[list[int]]
    diverged: NotRequired[bool]
    error: NotRequired[str | None]
    baseline: NotRequired[float | None]
    lr_multiplier: NotRequired[float | None]
    lr_at_edge: NotRequired[bool]
    baseline_lr: NotRequired[float | None]
    lr_grid: NotRequired[list[list[float | None]]]


class HistoryRecord(TypedDict):
    """One line of ``history.jsonl``: a candidate and what became of it."""

    id: int
    parent: int | None
    round: int
    mutation: dict[str, Any]
    source: str
    structural_hash: str
    fingerprint: str
    #: :func:`dsl.abstract.skeleton_hash`: the same for the same algorithm with other
    #: constants (runs made before it was recorded have none).
    skeleton: NotRequired[str]
    #: Answered by the cache (no evaluation ran); ``cached_from`` names the original.
    cached: bool
    cached_from: NotRequired[int | None]
    #: None for an infrastructure error: the evaluation could not run.
    fitness: float | None
    infra: NotRequired[bool]
    #: Per task, a :class:`TaskResult` (older runs wrote fewer fields).
    tasks: dict[str, TaskRecord]
    #: Tasks not trained: the program had already failed on an earlier one, or
    #: (``screened``) scored below the search's hurdle on the earlier ones.
    skipped: NotRequired[list[str]]
    screened: NotRequired[bool]
    error: NotRequired[str | None]
    worker: NotRequired[str | None]
    lr_centre: NotRequired[dict[str, float] | None]
    timing: NotRequired[dict[str, Any]]
    #: :meth:`search.config.SearchConfig.identity_hash` of the search that wrote it.
    config_hash: NotRequired[str]


class Checkpoint(TypedDict):
    """``checkpoint.json``: enough to continue without replaying the whole history."""

    version: int
    evolution: dict[str, Any]
    cache: dict[str, Any]
    evaluated: int
    proposals: int
    #: Lines of the history already told; the rest is replayed on resume.
    history_lines: int
    failed: NotRequired[int]
    infra: NotRequired[int]
    screened: NotRequired[int]
    #: The id on the last line told, to see that the history is the one counted.
    last_id: NotRequired[int]
    #: The fields of the configuration that define the search (its identity).
    config: NotRequired[dict[str, Any]]


class TaskRun(TypedDict):
    """One program trained on one task by the funnel's ``train``, at its best
    learning rate (the :class:`TaskResult` of a calibrated evaluation, without a
    fitness: the funnel compares runs itself)."""

    metrics: list[float | None]  # per seed, at the chosen multiplier; None if not finite
    lr_multiplier: float  # the multiplier calibration chose
    lr_at_edge: bool  # the best multiplier was the grid's edge
    error: NotRequired[str | None]  # why the program could not be trained (invalid there)
    #: A tuned baseline's other hyperparameters (``evaluators.tuning``), by name, and its
    #: seed noise (the task's scale in the multi-task rule).
    hyperparameters: NotRequired[dict[str, float]]
    seed_noise: NotRequired[float | None]


class Comparison(TypedDict):
    """A program against one baseline on one task: ``log(baseline / program)`` of the
    seed means (``FAILED`` if the program failed, +inf if the baseline did) and the
    standard error of the per-seed log-ratios (None with one seed)."""

    fitness: float
    stderr: float | None


class FunnelTask(TypedDict):
    """One funnel tier of one program, on one task."""

    metric: float  # mean over seeds (inf if a seed failed)
    metrics: list[float | None]
    lr_multiplier: float
    lr_at_edge: bool
    error: str | None
    vs: dict[str, Comparison]  # against each baseline
    best_baseline: str  # the baseline with the lowest mean metric
    fitness: float  # against the best baseline
    stderr: float | None
    verdict: str


class FunnelTier(TypedDict):
    """One tier (B, C or held_out) of one program: the mean over its tasks."""

    fitness: float
    stderr: float | None
    beats_best: bool
    verdict: str
    tasks: dict[str, FunnelTask]


class FunnelRow(TypedDict):
    """One finalist of the funnel."""

    id: int
    source: str
    search_fitness: float
    tiers: dict[str, FunnelTier]
    passed_B: NotRequired[bool]
    passed_C: NotRequired[bool]
    beats_best: NotRequired[dict[str, bool]]


class FunnelFile(TypedDict):
    """``funnel.json``: how the funnel ran, the baselines' runs and the finalists."""

    seeds: list[int]
    baselines: list[str]
    grid: str
    margin: float
    tier_B: list[str]
    tier_C: list[str]
    held_out: list[str]
    baseline_runs: dict[str, dict[str, TaskRun]]  # baseline -> task -> run
    rows: list[FunnelRow]


_RECORD = TypeAdapter(HistoryRecord)
_CHECKPOINT = TypeAdapter(Checkpoint)
_FUNNEL = TypeAdapter(FunnelFile)


class RecordError(ValueError):
    """A record that is not what the run directory holds; the message names the field."""


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(x) for x in err["loc"]) or "(record)"
    return f"{where}: {err['msg']}"


def loads(text: str, *, infinity: bool = False, huge: bool = False) -> Any:
    """``text`` as JSON, strictly: ``NaN``, ``Infinity`` and ``-Infinity`` (which Python's
    ``json`` reads by default, and the history never holds) are refused; ``infinity``
    lets the infinities through (``funnel.json`` writes a failed baseline's metric so);
    integers of 19 digits or more are refused unless ``huge`` (a checkpoint's random
    generator state is one).

    >>> loads('{"fitness": 0.5}')
    {'fitness': 0.5}
    >>> loads('{"fitness": NaN}')
    Traceback (most recent call last):
    ...
    ValueError: NaN is not a number JSON allows
    """
    def constant(name: str) -> float:
        if infinity and name != "NaN":
            return float(name)
        raise ValueError(f"{name} is not a number JSON allows")

    def number(text: str) -> float:  # 1e400 is no literal of infinity, but reads as one
        value = float(text)
        if math.isinf(value) and not infinity:
            raise ValueError(f"{text[:40]} is not a number JSON allows (too large)")
        return value

    def integer(text: str) -> int:  # no id or count has 19 digits; 10**400 breaks numpy
        if len(text.lstrip("-")) > 18 and not huge:
            raise ValueError(f"{text[:40]} is not a number JSON allows here (too large)")
        return int(text)

    return json.loads(text, parse_constant=constant, parse_float=number, parse_int=integer)


def history_record(line: str) -> HistoryRecord:
    """A history line parsed and checked (the dictionary as written, not a copy)."""
    try:
        record = loads(line)
    except json.JSONDecodeError:
        raise RecordError("not JSON") from None
    except ValueError as e:
        raise RecordError(str(e)) from None
    checked = _checked(_RECORD, record)
    if checked["fitness"] is None and not checked.get("infra"):
        raise RecordError("fitness: null, and the record is no infrastructure error")
    return checked


def funnel_file(data: Any) -> FunnelFile:
    """A ``funnel.json`` read back, checked throughout."""
    return _checked(_FUNNEL, data)


def checkpoint(data: Any) -> Checkpoint:
    """A checkpoint read back, checked at its top level."""
    return _checked(_CHECKPOINT, data)


def _checked(adapter: TypeAdapter, data: Any) -> Any:
    """``data`` as read (not a copy), once ``adapter`` found it to be its type."""
    if not isinstance(data, dict):
        raise RecordError(f"expected a JSON object, got {type(data).__name__}")
    try:
        adapter.validate_python(data, strict=True)  # "0.5" is no fitness, "7" no id
    except ValidationError as e:
        raise RecordError(_first_error(e)) from None
    return data


__all__ = ["Checkpoint", "Comparison", "FunnelFile", "FunnelRow", "FunnelTask", "FunnelTier",
           "HistoryRecord", "Job", "RecordError", "Result", "TaskRecord", "TaskResult", "TaskRun",
           "checkpoint", "funnel_file", "history_record", "loads"]
