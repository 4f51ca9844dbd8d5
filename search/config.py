"""The search's configuration: pydantic models, every field documented with its default.

A config file (JSON or YAML) holds any subset of these fields; flags override
them. A bad value is answered with one line naming the field. Numbers must be
finite and sizes bounded (a value that would break the search later, such as an
infinite timeout that JSON cannot store, is refused when the config is read).

A resumed search keeps its configuration, except for the fields of
:data:`RUNTIME_FIELDS`, which say how much to run and where, not what the
search is: :meth:`SearchConfig.identity_hash` covers the others.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, field_validator, model_validator

from dsl.program import MAX_LIVE
from evaluators.grid import SEARCH, LrGrid


class MutationConfig(BaseModel):
    """How children are made from parents (Chen et al. 2023, section 2)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    insert: float = Field(0.3, ge=0, description="Weight of inserting a random statement.")
    delete: float = Field(0.3, ge=0, description="Weight of deleting a random statement.")
    change_arg: float = Field(
        0.2, ge=0, description="Weight of changing one argument to a variable or a new constant.")
    perturb_constant: float = Field(
        0.2, ge=0, description="Weight of multiplying a constant by 2^a, a ~ N(0, 1).")
    fragment: float = Field(
        0.0, ge=0, description="Weight of splicing in a live fragment of a library program "
        "(search/fragments.py): a structural leap. 0 (off) until measured over search seeds.")
    crossover: float = Field(
        0.0, ge=0, description="Weight of splicing in a live fragment of a second parent "
        "(a second tournament's winner): a function the first parent's live code lacks, "
        "with its slice. 0 (off) until measured over search seeds.")
    fragment_exclude: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=64,
        description="Library programs whose fragments are never spliced in, nor any "
        "fragment holding a function of theirs the warm start lacks (a rediscovery "
        "search leaves its target out: benchmarks/bench_rediscovery.py).")
    max_length: int = Field(30, ge=1, le=MAX_LIVE, description=(
        "Most statements a program may have (at most 64: the engine's largest program)."))
    max_tries: int = Field(
        50, ge=1, le=10_000, description="Draws of a mutation kind before trying the next kind.")
    check_shapes: list[tuple[Annotated[int, Field(ge=1, le=1_000_000)], ...]] = Field(
        default_factory=lambda: [(256, 128), (128,), ()], min_length=1, max_length=16,
        description="Leaf shapes a child must pass abstract execution on (at least one; "
        "positive dimensions).")

    @model_validator(mode="after")
    def _some_weight(self) -> MutationConfig:
        if (self.insert + self.delete + self.change_arg + self.perturb_constant
                + self.fragment + self.crossover <= 0):
            raise ValueError("at least one mutation weight must be positive")
        from dsl import library

        unknown = [name for name in self.fragment_exclude if name not in library.names()]
        if unknown:
            raise ValueError(f"fragment_exclude: {', '.join(map(repr, unknown))} is not a "
                             "library program")
        return self


class SearchConfig(BaseModel):
    """A whole search. The defaults are a small search that runs on a laptop.

    The search dynamics (population, tournament, plateau, restarts, mutation weights,
    grid) were compared with ``benchmarks/bench_dynamics.py`` over ten search seeds,
    each search's best re-tested on unseen seeds: no alternative tried found more
    beyond seed noise, and a 2-point grid found less (``docs/benchmarks.md``). The
    hurdle halves the default search's time and found as much over six search seeds.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    seed: NonNegativeInt = Field(
        0, le=2**63 - 1,
        description="Seeds the search's random generator (not the training); >= 0.")
    method: str = Field(
        "evolution", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64,
        description="The search strategy, by its name in search.strategies' registry: "
        "'evolution' (regularized evolution with restarts), or a baseline: 'random' "
        "(random programs) or 'constants' (mutating only the warm start's constants: "
        "hyperparameter tuning); a module in task_modules may register another.")
    warm_start: str = Field(
        "warmstart", description="Library program name or path of a program file.")
    warm_starts: list[Annotated[str, Field(min_length=1, max_length=4096)]] = Field(
        default_factory=list, max_length=64,
        description="More programs (library names or program files) the exploration "
        "rounds start from: round r of the first `restarts` starts from the r-th of "
        "[warm_start, *warm_starts], cyclically, its population that program (evaluated "
        "first, as the round's first proposal). Empty: every round from warm_start.")
    population: int = Field(32, ge=2, le=1_000_000,
                            description="Population size P (the paper used 1,000).")
    tournament: int = Field(2, ge=1, le=1_000_000, description="Tournament size T.")
    max_evals: int = Field(
        160, ge=1, le=10**9, description="Programs to train: a cache hit (a program "
        "equivalent to one already trained) is recorded but not counted.")
    restarts: int = Field(
        2, ge=1, le=1_000_000,
        description="Independent rounds from the warm start before exploiting the best.")
    plateau: int = Field(
        40, ge=1, le=10**9,
        description="A round ends after this many evaluations without improvement.")
    tasks: list[str] = Field(
        default_factory=lambda: ["mlp_mnist1d/A", "transformer_lm/A"],
        description="Proxy tasks the fitness is measured on (never held-out ones), trained "
        "in this order: a program that fails one is not trained on the rest, so cheap tasks "
        "first.")
    judge: Literal["tuned", "warm_start"] = Field(
        "tuned", description="What fitness is measured against, per task (log of the ratio "
        "of mean metrics): 'tuned', AdamW tuned on its learning rate, betas and weight decay "
        "by evaluators.tuning's protocol on the search's tasks and seeds (computed once per "
        "machine, before the warm start; kept in the run's baselines.json), so a known "
        "optimizer with other constants scores at most about 0 and only a different "
        "algorithm scores above; 'warm_start', the warm start at its best learning rate "
        "(runs made before this field: they resume so).")
    hurdle: float | None = Field(
        -0.1, le=0, description="A program whose fitness on the tasks trained so far (their "
        "mean) is below this after a task is not trained on the tasks after it: its fitness "
        "is that mean, and its record lists them as skipped (a hurdle, as AutoML-Zero's). "
        "-0.1 is a metric about 10% worse than the warm start's, which the later tasks, "
        "each within a few percent of it for every program measured, cannot make up; at most "
        "0, so a program as good as the warm start is always trained on every task. null "
        "trains every program on every task.")
    task_modules: list[str] = Field(
        default_factory=list,
        description="Python modules that register a user's own tasks "
        "(evaluators.tasks.register), imported in the driver and in every worker before the "
        "tasks are looked up: dotted module names, or paths to .py files (made absolute).")
    seeds: list[Annotated[int, Field(ge=0, le=2**31 - 1)]] = Field(
        default_factory=lambda: [0, 1], max_length=1000,
        description="Training seeds per task (integers from 0 to 2**31 - 1).")
    lr_grid: LrGrid | None = Field(
        SEARCH, description="Learning-rate calibration: each program is trained at these "
        "multipliers of the schedule and scored by the best, against the warm start calibrated "
        "by the wide grid (evaluators.grid.WIDE), which the warm start's own evaluation uses. "
        "The default: 3 multipliers half a decade apart around the parent's choice. null: each "
        "program at its own constants, against the warm start at its own (the Lion paper's "
        "protocol).")
    mutation: MutationConfig = Field(default_factory=MutationConfig)
    workers: int = Field(2, ge=1, le=100_000, description="Evaluations run at once.")
    executor: Literal["ray", "serial"] = Field(
        "ray", description="Ray (embedded, or a cluster) or in-process serial.")
    address: str | None = Field(
        None, description="Ray cluster address; None starts an embedded local Ray "
        "(RAY_ADDRESS also works).")
    compile_cache: str | None = Field(
        "~/.cache/optsearch/xla", description="Directory where JAX keeps the compiled training "
        "loops, so that every later worker and search on the machine loads in a fraction of a "
        "second what took seconds to compile (JAX's persistent compilation cache); None turns "
        "it off.")
    cpus_per_eval: float = Field(1.0, gt=0, le=10_000,
                                 description="CPUs Ray reserves per evaluation.")
    gpus_per_eval: float = Field(0.0, ge=0, le=1_000,
                                 description="GPUs Ray reserves per evaluation.")
    timeout_s: float = Field(
        600.0, gt=0, le=10**7, description="An evaluation running longer is killed: an "
        "infrastructure error (not the program's fitness), retried later. Counted from the "
        "job's submission to Ray, so it includes a worker's start-up, imports and first "
        "compilation (tens of seconds on a fresh worker): keep it well above an evaluation's "
        "time.")
    retries: int = Field(
        2, ge=0, le=100, description="Retries of an evaluation whose worker or node was lost.")
    max_infra_errors: int = Field(
        3, ge=1, le=10**6, description="Consecutive infrastructure errors (an import error, "
        "missing data, a lost worker, out of memory, a timeout) after which the search "
        "stops, checkpointed.")
    checkpoint_every: int = Field(10, ge=1, le=10**6,
                                  description="Write checkpoint.json every N results.")
    funnel_top: int = Field(
        0, ge=0, le=1000, description="At the end, verify this many best programs on tiers B "
        "and C and held-out tasks (run_search.py funnel does it later); 0 skips it.")
    funnel_trials: int = Field(
        16, ge=0, le=1024, description="That funnel's tuning budget for its baselines: "
        "quasi-random hyperparameter points after their defaults (funnel --trials).")

    @field_validator("task_modules")
    @classmethod
    def _absolute_paths(cls, modules: list[str]) -> list[str]:
        """Workers may start elsewhere: a file path must not depend on the folder."""
        return [str(Path(m).expanduser().resolve()) if m.endswith(".py") else m
                for m in modules]

    @model_validator(mode="after")
    def _consistent(self) -> SearchConfig:
        if self.tournament > self.population:
            raise ValueError(
                f"tournament ({self.tournament}) is larger than population ({self.population})")
        if not self.tasks:
            raise ValueError("tasks must name at least one task")
        if not self.seeds:
            raise ValueError("seeds must hold at least one seed")
        for name, values in (("tasks", self.tasks), ("seeds", self.seeds)):
            twice = sorted({v for v in values if values.count(v) > 1}, key=str)
            if twice:
                raise ValueError(f"{name} names {twice[0]!r} twice")
        return self

    def identity(self) -> dict[str, Any]:
        """The fields that define the search (all but :data:`RUNTIME_FIELDS`), as JSON data;
        a field of :data:`ADDED_FIELDS` at the value runs made before it had is left out,
        so those runs keep their identity.

        >>> "hurdle" in SearchConfig().identity(), "hurdle" in SearchConfig(hurdle=None).identity()
        (True, False)
        """
        data = self.model_dump(mode="json", exclude=set(RUNTIME_FIELDS))
        data["mutation"] = {k: v for k, v in data["mutation"].items()
                            if k not in ADDED_MUTATION_FIELDS or v != ADDED_MUTATION_FIELDS[k]}
        return {k: v for k, v in data.items() if k not in ADDED_FIELDS or v != ADDED_FIELDS[k]}

    def identity_hash(self) -> str:
        """A short hash of :meth:`identity`: equal for two configs of the same search.

        >>> SearchConfig(workers=8).identity_hash() == SearchConfig().identity_hash()
        True
        >>> SearchConfig(seed=1).identity_hash() == SearchConfig().identity_hash()
        False
        """
        text = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


#: Fields added after runs were made without them, with the value that reproduces what
#: those runs did: a run's ``config.json`` that lacks one reads it so
#: (:meth:`search.rundir.RunDir.config_fields`), and :meth:`SearchConfig.identity` leaves it out
#: at that value, so such a run resumes as the search it was.
ADDED_FIELDS: dict[str, Any] = {"hurdle": None, "judge": "warm_start", "warm_starts": []}
#: The same for the fields of ``mutation`` (a pydantic default already is the old value).
ADDED_MUTATION_FIELDS: dict[str, Any] = {"fragment": 0.0, "fragment_exclude": [],
                                         "crossover": 0.0}

#: Fields a resumed search may change: how much it runs, where, and how fast; not what
#: it searches (``max_evals`` may grow a run).
RUNTIME_FIELDS = frozenset({
    "max_evals", "workers", "executor", "address", "compile_cache", "cpus_per_eval",
    "gpus_per_eval", "timeout_s", "retries", "max_infra_errors", "checkpoint_every",
    "funnel_top", "funnel_trials"})
