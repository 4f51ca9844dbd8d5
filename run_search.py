"""The command line: search, resume, and look at programs.

    python run_search.py                          # a small search on this machine (embedded Ray)
    python run_search.py --config my.yaml --workers 8 --max-evals 2000
    python run_search.py --address ray://head:10001   # on a Ray cluster (or set RAY_ADDRESS)
    python run_search.py --resume runs/20261122-101500-seed0
    python run_search.py check adamw | FILE.dsl   # parse and abstractly execute a program
    python run_search.py library                  # the library programs
    python run_search.py tasks | functions        # the proxy tasks, the DSL's functions

Bad input (a config field, a flag, a run directory, a program file) is answered
with one line naming the problem, and exit status 2. A search that cannot go on
(its warm start fails, the infrastructure fails, the cluster refuses) says why
on one line, with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dsl import ProgramError, abstract, graph, library
from evaluators.catalog import DEFAULT_HELD_OUT
from search.funnel import BUDGET_MINUTES

SEARCH_FLAGS = {"workers", "address", "seed", "max_evals"}
#: Search flags that name lists, comma-separated (a config's fields of the same name).
LIST_FLAGS = {"tasks", "task_modules"}


class InputError(Exception):
    """A user's input mistake: printed as one line, exit status 2."""


class Stopped(Exception):
    """A failure that is not the input's (a task that cannot load, say): one line, exit 1."""


def _stoppable(work, what: str) -> None:
    """Run ``work()`` (a subcommand's training) so that Ctrl-C acts within a second: it
    runs in a thread, and the main thread, told of Ctrl-C, waits for any file being
    written (atomically) to be renamed into place, says ``what`` is kept in one line and
    ends the process (exit 130) without waiting for the compiled computation under way,
    which would hold the interrupt for minutes on a large task."""
    import threading

    from evaluators import baselines
    from search import files

    failure: list[BaseException] = []

    def target() -> None:
        try:
            work()
        except BaseException as e:  # noqa: BLE001 -- re-raised in the main thread
            failure.append(e)

    worker = threading.Thread(target=target, name="optsearch-work", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
    except KeyboardInterrupt:
        # a file under way is finished (atomic writes take milliseconds), none is begun
        for lock in (files.WRITING, baselines.WRITING):
            lock.acquire(timeout=5)
        print(f"\nstopped (Ctrl-C): {what}; run the same command to continue",
              file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(130)
    if failure:
        raise failure[0]


def _guarded(evaluate_all, what: str, after: str = ""):
    """``evaluate_all`` whose infrastructure failures stop the command in one line."""
    def run(program, tasks, *args, **kw):
        try:
            return evaluate_all(program, tasks, *args, **kw)
        except Exception as e:  # not the program's fault: it scores, fails or diverges
            raise Stopped(f"{what} stopped: {', '.join(tasks)}: {type(e).__name__}: "
                          f"{' '.join(str(e).split())[:300]}{after}") from None
    return run


# --- check / library ---------------------------------------------------------------


def _check(spec: str, shape: tuple[int, ...]) -> None:
    from dsl.parse import locate
    from search.loop import is_path, load_program, program_text

    program = load_program(spec)
    try:
        graph.trainable(program)
        result = abstract.check(program, shape)
    except ProgramError as e:
        if not is_path(spec):
            raise
        raise ProgramError(f"{spec}: {locate(e, program_text(spec))}") from None
    live = graph.liveness(program)
    print(program.to_source(), end="")
    print(f"\nleaf shape {shape}:")
    for name, value in result.states.items():
        print(f"  state {name}: shape {value.shape}, {value.dtype}")
    dead = len(program.statements) - len(live.statements)
    print(f"  statements: {len(program.statements)} ({dead} dead)")
    print(f"  structural hash: {abstract.structural_hash(program)}")
    print(f"  fingerprint:     {abstract.fingerprint(program)}")
    if "lr" not in live.inputs:
        print(f"warning: {spec}: the update never reads lr, so the task's schedule (warm-up, "
              "then cosine decay from 1.0) cannot reach it; multiply the update by lr "
              "(see docs/guide.md)", file=sys.stderr)


def _library() -> None:
    from dsl.export import hyperparameters_of

    for name in library.names():
        text = library.source(name)
        comment = []
        for line in text.splitlines():
            if not line.startswith("#"):
                break
            comment.append(line.lstrip("# ").strip())
        about = " ".join(comment) or "(no description)"
        hyper = ", ".join(f"{k}={v:g}" for k, v in hyperparameters_of(text).items()) or "none"
        states = ", ".join(library.get(name).state_names) or "none"
        lines = textwrap.wrap(about, 82) + [f"hyperparameters: {hyper}; states: {states}"]
        print(f"{name:<16} " + f"\n{'':<16} ".join(lines))


def _tasks(timed: bool, tiers: str = "A") -> None:
    import numpy as np

    from evaluators import tasks

    print(f"{'task':<22} {'params':>8} {'steps':>6} {'batch':>6} {'rows':>7} "
          f"{'s/eval' if timed else '':>7}  description")
    for name in tasks.names():
        task = tasks.get(name)
        params = task.init(np.random.default_rng(0))
        size = sum(int(np.size(a)) for a in _leaves(params))
        seconds = ""
        if timed and task.tier in tiers.split(","):
            from evaluators import evaluate

            evaluate(library.get("warmstart"), task)  # compile once (or load the cache)
            seconds = f"{evaluate(library.get('warmstart'), task).wall_time:.2f}"
        note = "  (held out: never searched on)" if task.held_out else ""
        rows = len(task.data().train[0])
        print(f"{name:<22} {size:>8} {task.steps:>6} {task.batch_size:>6} {rows:>7} {seconds:>7}  "
              f"{task.description}{note}", flush=True)
    if not timed:
        print("s/eval: `tasks --time` trains the warm start on each tier-A task here (2 "
              "seeds); `--time-tiers A,B` adds tier B (tier C takes minutes a task)")


def _leaves(tree):
    if isinstance(tree, dict):
        for v in tree.values():
            yield from _leaves(v)
    elif isinstance(tree, list | tuple):
        for v in tree:
            yield from _leaves(v)
    else:
        yield tree


def _functions() -> None:
    from dsl import ops

    for name, op in ops.OPS.items():
        args = "x" if op.arity == 1 else ", ".join("abcd"[:op.arity])  # as op.doc names them
        form = f"a {op.infix} b" if op.infix else f"{name}({args})"
        print(f"{name:<20} {form:<27} {op.doc}")
    print("\ninputs and constants every program may read (a statement may reassign an input, "
          "as the warm start rescales lr, never a constant):")
    inputs = {"w": "the parameter tensor", "g": "its gradient",
              "lr": "the learning rate: the schedule's value times the calibrated multiplier",
              "t": "the step, 1, 2, ... (a float)"}
    for name, doc in inputs.items():
        print(f"{name:<20} {'input':<27} {doc}")
    for name, value in ops.CONSTANTS.items():
        print(f"{name:<20} {'constant':<27} {value!r}")


def _shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in text.replace("x", ",").split(",") if d.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a shape: {text!r} (write e.g. 256x128)") from None
    if any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"dimensions must be positive: {text!r}")
    return dims


def _program_arg(spec: str, program_id: int | None = None):
    """(program, where its text named hyperparameters, origin, run or None) from a run
    directory (its best program, or program ``program_id``, dead code removed), a
    file or a library name (a run's programs name none)."""
    from dsl.export import hyperparameter_sites
    from search.files import FileError, is_dir
    from search.loop import is_path, load_program, program_text
    from search.rundir import RunDir, RunDirError

    try:
        folder = is_path(spec) and is_dir(spec)
    except FileError as e:
        raise InputError(str(e)) from None
    if folder:
        run = RunDir(spec)
        try:
            run.config()
            found = run.best() if program_id is None else run.program(program_id)
        except RunDirError as e:
            raise InputError(str(e)) from None
        if found is None:
            raise InputError(f"{spec}: no program has finished without failing yet "
                             "(see `inspect` for the errors)")
        fitness = "failed" if found.failed else f"{found.fitness:+.4f}"
        origin = f"run {spec}, program {found.id} (fitness {fitness})"
        return found.program, None, origin, run
    if program_id is not None:
        raise InputError(f"--id {program_id}: only a run directory has program ids, "
                         f"not {spec!r}")
    program = load_program(spec)
    if not is_path(spec):
        return (program, hyperparameter_sites(library.source(spec)),
                f"library program {spec!r}", None)
    return program, hyperparameter_sites(program_text(spec)), spec, None


def _simplify(args: argparse.Namespace) -> None:
    from evaluators.catalog import names
    from search.rundir import scales_of
    from search.simplify import reads_weights, simplify

    if not 0 <= args.tolerance < math.inf:
        raise InputError(f"--tolerance must be a finite number >= 0, got {args.tolerance}")
    program, _, origin, run = _program_arg(args.program, args.id)
    if run is not None:  # a run on its own tasks names them in its task modules
        _load_task_modules(run.config().task_modules, f"{run.config_path}")
    if args.tasks is not None:
        tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    else:  # a run's program is judged on the run's own tasks
        tasks = list(run.config().tasks) if run else ["mlp_mnist1d/A"]
    for task in tasks:
        if task not in names():
            raise InputError(f"--tasks: unknown task {task!r}")
    fitness = None
    if not args.exact_only:
        from evaluators import evaluate_all

        evaluate_all = _guarded(evaluate_all, "simplify")

        seeds = tuple(run.config().seeds) if run else (0, 1)
        # a run's program is judged as its search judged it: at its best learning rate by
        # the run's grid, centred on the multipliers its evaluation chose
        grid = run.config().lr_grid if run else None
        found = (run.best() if args.id is None else run.program(args.id)) if run else None
        centres = found.lr if grid is not None and found is not None else None

        # and against the run's judge (tuned AdamW, its tasks weighted by their seed noise)
        judged = run.baselines() if run and run.config().judge == "tuned" else {}
        bases = {t: b["metric"] for t, b in judged.items()} or None
        scales = scales_of(judged, tasks) if judged else None

        def fitness(p):
            return evaluate_all(p, tasks, seeds, lr_grid=grid, centres=centres,
                                until_failure=True, baselines=bases, scales=scales)[1]

        how = (f", each variant at its best of {grid.points} learning rates x{grid.ratio:.3g} "
               "apart around the program's" if grid is not None else "")
        print(f"simplifying on {', '.join(tasks)} (seeds {', '.join(map(str, seeds))}{how})")

    result = simplify(program, fitness, args.tolerance,
                      reads_weights if args.keep_weight_decay else None)
    print(f"simplifying {origin}:")
    for step in result.log:
        print(f"  {step}")
    print(result.program.to_source(), end="")
    if args.out:
        out = Path(args.out)
        if _exists(out, "--out"):
            raise InputError(f"--out {out}: exists; choose another name")
        from search.files import shown

        # the origin names a path, perhaps with a newline: one comment line, escaped
        header = f"# simplified from {shown(origin)}\n"
        lr = _found_lr(args.program, run, args.id)
        if lr is not None:  # what calibration chose travels with the program to export
            from search.loop import LR_COMMENT

            header += f"{LR_COMMENT} {lr[0]!r} ({' '.join(lr[1].split())})\n"
        _write(out, header + result.program.to_source(), "--out")
        print(f"wrote {out}" + (f" (with its learning rate, {lr[0]:.4g})" if lr else ""))


def _funnel(args: argparse.Namespace) -> None:
    from dsl import library as lib
    from evaluators.catalog import held_out
    from search.funnel import BASELINES, baselines_table, columns, funnel, funnel_seeds, table
    from search.rundir import RunDir, RunDirError

    if args.top < 1:
        raise InputError(f"--top must be at least 1, got {args.top}")
    if not math.isfinite(args.margin):
        raise InputError(f"--margin must be a finite number, got {args.margin}")
    if not 2 <= args.seeds <= 64:
        raise InputError(f"--seeds must be from 2 (a standard error needs two) to 64, got "
                         f"{args.seeds}")
    if not 0 <= args.trials <= 1024:
        raise InputError(f"--trials must be from 0 to 1024, got {args.trials}")
    if not 0 <= args.budget <= 10**6:
        raise InputError(f"--budget must be from 0 (no budget) to 1000000 minutes, got "
                         f"{args.budget}")
    tiers_run = tuple(t.strip() for t in args.tiers.split(",") if t.strip())
    bad = [t for t in tiers_run if t not in ("B", "held_out", "C")]
    if bad or not tiers_run:
        raise InputError(f"--tiers: {', '.join(bad) or 'none given'}: choose among B, "
                         "held_out and C")
    names = tuple(b.strip() for b in (args.baselines or ",".join(BASELINES)).split(",")
                  if b.strip())
    for name in names:
        if name not in lib.names():
            raise InputError(f"--baselines: {name!r} is not a library program (run_search.py "
                             "library lists them)")
    if not names:
        raise InputError("--baselines: name at least one library program")
    run = RunDir(args.run_dir)
    try:
        _load_task_modules(run.config().task_modules, f"{run.path / 'config.json'}")
    except RunDirError as e:
        raise InputError(str(e)) from None
    tasks = [t.strip() for t in args.held_out.split(",") if t.strip()]
    for task in tasks:
        if task not in held_out():
            raise InputError(f"--held-out: {task!r} is not a held-out task "
                             f"(choose from {', '.join(held_out())})")
    from evaluators.evaluate import train_runs
    from evaluators.grid import WIDE

    seeds = funnel_seeds(run.config().seeds, args.seeds)
    after = f" (what it finished is kept in {run.path / 'funnel.json'}: run it again to go on)"

    def say(line: str) -> None:
        print(f"  {line}", flush=True)

    def stopped(name: str, e: Exception) -> Stopped:  # not the program's fault
        return Stopped(f"funnel stopped: {name}: {type(e).__name__}: "
                       f"{' '.join(str(e).split())[:300]}{after}")

    def train(program, task_names):
        runs = {}
        for name in task_names:
            try:
                runs |= train_runs(program, [name], seeds, WIDE, progress=lambda s: say(f"  {s}"))
            except Exception as e:  # a task that cannot load
                raise stopped(name, e) from None
        return runs

    from evaluators.tuning import Protocol, tuned_run
    from evaluators.tuning import tune as tune_baseline

    protocol = Protocol(trials=args.trials)

    def tune(baseline, task_names):
        runs = {}
        for name in task_names:
            try:
                t = tune_baseline(baseline, name, seeds, protocol,
                                  progress=lambda s: say(f"  {s}"))
            except Exception as e:  # a task that cannot load; defaults that always diverge
                raise stopped(name, e) from None
            runs[name] = tuned_run(t)
            say(f"  {name}: {baseline} tuned: metric {t.metric:.4g} at {t.describe()}")
        return runs

    if not run.top(1):
        raise InputError(f"{args.run_dir}: no program has finished without failing yet")
    planned = _funnel_plan(run, tasks, tiers_run, names, protocol, seeds, args)
    how = f"baselines tuned on all their hyperparameters: {protocol.label()}"
    print(f"funnel on seeds {', '.join(map(str, seeds))} (the search used "
          f"{', '.join(map(str, run.config().seeds))}), every program at its best learning "
          f"rate ({WIDE.label()}), the {how} ({', '.join(names)}; each tuning is kept on this "
          "machine)", flush=True)
    done: list[list] = []

    def work() -> None:
        done.append(funnel(run, train, k=args.top, margin=args.margin, held_out=tasks,
                           seeds=seeds, baselines=names, grid=f"{WIDE.label()}; {how}",
                           tiers_run=tiers_run, progress=say, tune=tune, tiers=planned))

    try:
        _stoppable(work, f"every finished tuning and tier is kept (in this machine's cache and "
                   f"{run.path / 'funnel.json'})")
    except OSError as e:
        raise Stopped(f"funnel stopped: cannot write {e.filename}: {e.strerror}{after}") from None
    rows = done[0]
    print(table(rows))
    for row in rows:
        print(f"program {row['id']}: {run.identify(run.program(row['id'])).describe()}")
    print(columns(names))
    print("tuned baselines (mean metric at the tuned learning-rate multiplier and constants):")
    print(baselines_table(run.funnel()))
    print(f"wrote {run.path / 'funnel.json'}")


def _funnel_plan(run, held_out: list[str], tiers_run: tuple[str, ...], names: tuple[str, ...],
                 protocol, seeds: tuple[int, ...], args: argparse.Namespace
                 ) -> dict[str, list[str]]:
    """The tasks the funnel runs within ``--budget`` (the same on every machine), printed
    with the estimate of their cost, here and with nothing cached."""
    from evaluators.tuning import cached
    from search.funnel import minutes, plan, task_seconds, tiers_of

    every = {t: (tasks if t in tiers_run else []) for t, tasks in tiers_of(run, held_out).items()}

    def cost(task: str, tunings: int = len(names)) -> float | None:
        return task_seconds(task, tunings=tunings, trials=protocol.trials, lanes=protocol.lanes,
                            programs=args.top, seeds=len(seeds))

    chosen = plan(every, cost, args.budget * 60)
    here, kept = 0.0, 0
    for task in (t for tasks in chosen.tiers.values() for t in tasks):
        todo = sum(cached(name, task, seeds, protocol) is None for name in names)
        kept += len(names) - todo
        here += cost(task, todo) or 0.0
    labels = {"B": "tier B", "held_out": "held out", "C": "tier C (after B passes)"}
    print("funnel plan: " + "; ".join(f"{labels[t]}: {', '.join(tasks) or '-'}"
                                      for t, tasks in chosen.tiers.items()))
    cached_note = (f"; about {minutes(here)} here, where {kept} of its baseline tunings "
                   "are cached" if kept else "")
    print(f"  estimate: {chosen.describe()}{cached_note} (Ctrl-C stops within seconds and "
          "keeps what finished)", flush=True)
    return chosen.tiers


def _names_arg(text: str, flag: str) -> list[str]:
    """A comma-separated flag's names, in order, once each; one line if there are none."""
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise InputError(f"{flag}: name at least one")
    return names


def _seeds_arg(text: str, flag: str = "--seeds") -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in _names_arg(text, flag))
    except ValueError:
        raise InputError(f"{flag} {text!r}: expected integers >= 0, comma-separated") from None
    if any(not 0 <= s < 2**31 for s in seeds):
        raise InputError(f"{flag} {text!r}: seeds are integers from 0 to 2**31 - 1")
    return seeds


def _baselines(args: argparse.Namespace) -> None:
    """Tune baselines on tasks (evaluators.tuning), printing each trial; a table at the end."""
    from evaluators.catalog import names as task_names
    from evaluators.tuning import SPACES, Protocol, tune

    _task_modules_flag(args.task_modules)
    tasks = _names_arg(args.tasks, "--tasks")
    for task in tasks:
        if task not in task_names():
            raise InputError(f"--tasks: unknown task {task!r} (`run_search.py tasks` lists them)")
    programs = _names_arg(args.baselines, "--baselines")
    for name in programs:
        if name not in library.names():
            raise InputError(f"--baselines: {name!r} is not a library program (run_search.py "
                             "library lists them)")
    seeds = _seeds_arg(args.seeds)
    if not 0 <= args.trials <= 1024:
        raise InputError(f"--trials must be from 0 to 1024, got {args.trials}")
    protocol = Protocol(trials=args.trials)
    print(f"tuning {', '.join(programs)} on {', '.join(tasks)}, seeds "
          f"{', '.join(map(str, seeds))}: {protocol.label()} after the defaults' wide "
          "learning-rate calibration (answers this machine computed before come from its "
          "cache)", flush=True)
    results = []

    def work() -> None:
        for task in tasks:
            for name in programs:
                try:
                    results.append(tune(name, task, seeds, protocol,
                                        progress=lambda line: print(f"  {line}", flush=True)))
                except Exception as e:  # not the input's fault: a task that cannot load, say
                    raise Stopped(f"baselines stopped: {name} on {task}: {type(e).__name__}: "
                                  f"{' '.join(str(e).split())[:300]} (what finished is kept "
                                  "in this machine's cache: run it again to go on)") from None

    _stoppable(work, "every finished tuning is kept in this machine's cache")
    print(f"{'task':<22} {'baseline':<10} {'metric':>9} {'seed se':>8} {'tuned on':<10} "
          f"{'defaults':>9}  {'seconds':>7}  constants")
    for t in results:
        n = len(t.metrics)
        se = statistics.stdev(t.metrics) / math.sqrt(n) / t.metric if n > 1 else math.nan
        axes = "lr only" if not SPACES.get(t.program) else "all"
        took = "cached" if not t.seconds else f"{t.seconds:.0f}"
        print(f"{t.task:<22} {t.program:<10} {t.metric:>9.4g} {se:>8.2%} {axes:<10} "
              f"{t.default_metric:>9.4g}  {took:>7}  {t.describe()}"
              + ("  (lr at the grid's edge)" if t.lr_at_edge else ""))
    print("metric: mean over seeds at the tuned constants (lower is better); seed se: its "
          "standard error over seeds, relative; defaults: the library's constants at their "
          "best learning rate")


def _inspect(args: argparse.Namespace) -> None:
    from search.files import FileError
    from search.inspect import plot, report
    from search.rundir import RunDir, RunDirError

    run = RunDir(args.run_dir)
    try:
        run.config()
        if args.top < 1:
            raise InputError(f"--top must be at least 1, got {args.top}")
        print(report(run, args.top, args.id))
    except (RunDirError, KeyError) as e:
        raise InputError(str(e).strip("'\"")) from None
    if args.plots:
        try:
            for path in plot(run):
                print(f"wrote {path}")
        except FileError as e:
            if e.disk:
                raise Stopped(f"--plots: {e}") from None
            raise InputError(f"--plots: {e}") from None
        except RunDirError as e:  # a funnel.json edited or broken by hand
            raise InputError(str(e)) from None


def _report(args: argparse.Namespace) -> None:
    from search import report
    from search.files import FileError
    from search.rundir import RunDir, RunDirError

    if not 1 <= args.top <= 1000:
        raise InputError(f"--top must be from 1 to 1000, got {args.top}")
    run = RunDir(args.run_dir)
    try:
        path = report.write(run, args.top)
    except (RunDirError, KeyError) as e:
        raise InputError(str(e).strip("'\"")) from None
    except FileError as e:
        if e.disk:
            raise Stopped(str(e)) from None
        raise InputError(str(e)) from None
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB; open it in a browser, offline)")


def _export(args: argparse.Namespace) -> None:
    from dsl.export import export_source, module_name

    program, hyper, origin, run = _program_arg(args.program, args.id)
    if args.lr is not None and not 0 < args.lr < math.inf:
        raise InputError(f"--lr must be a positive finite number, got {args.lr}")
    if args.out is None:
        args.out = "discovered"
        own = Path(__file__).resolve().parent / "discovered"
        try:
            here = Path(args.out).resolve()
        except OSError:
            here = None
        if here == own:
            raise InputError(f"--out: ./discovered here is this project's own package of "
                             f"shipped optimizers ({own}); name a folder (--out my_opts), or "
                             "--out discovered to write there all the same")
    target = Path(args.out) / f"{module_name(args.name)}.py"
    if _exists(target, "--out") and not args.force:
        raise InputError(f"{target} exists; pass --force to replace it")
    if args.calibrate is not None and args.lr is not None:
        raise InputError("--lr and --calibrate: give one (--lr sets the learning rate, "
                         "--calibrate chooses it by training)")
    if run is not None:
        found = run.best() if args.id is None else run.program(args.id)
        what = run.identify(found).describe()
        origin = f"{origin}: {what}"
        print(f"what it is: {what}")
    lr, note = _export_lr(args, program, run, found.id if run is not None else None)
    from dsl.scale import fold_scale

    # a constant that only scales the update joins the learning rate: lr is the step
    folded = fold_scale(program)
    if folded.factor != 1.0:
        hyper = folded.sites(hyper)
        program = folded.program
        if lr is not None and args.lr is None:
            lr = float(f"{lr * folded.factor:.4g}")
            note += (f"{'; ' if note else ''}times {folded.factor:.4g}, the program's "
                     "constant scale of its update, folded in")
        print(f"note: the program's constant scale of its update ({folded.factor:.4g}) is "
              "folded into the learning rate: learning_rate is the effective step")
    if lr is None:
        print("note: no calibrated learning rate is known for this program: the default "
              "learning_rate 1e-3 is a placeholder that may not train; pass --lr or "
              "--calibrate TASK (the funnel calibrates a run's finalists)")
    else:
        print(f"default learning rate {lr:.4g} ({note})")
        edge = next((part for part in note.split("; ") if "edge of its grid" in part), None)
        if edge:
            print(f"note: the default learning rate {lr:.4g} was {edge}")
    text = export_source(program, args.name, hyperparameters=hyper, origin=origin,
                         learning_rate=lr, learning_rate_note=note)
    compile(text, str(target), "exec")  # a module that would not import is never written
    _write(target, text, "--out")
    print(f"wrote {target}")


def _found_lr(spec: str, run, program_id: int | None) -> tuple[float, str] | None:
    """The learning rate calibration chose for a run's program (the funnel's largest tier,
    else the search's), or a program file's ``# learning_rate:`` line; None if unknown."""
    if run is not None:
        from search.funnel import calibrated_lr

        return calibrated_lr(run, run.best().id if program_id is None else program_id)
    from search.loop import declared_lr, is_path, program_text

    return declared_lr(program_text(spec)) if is_path(spec) else None


def _export_lr(args: argparse.Namespace, program, run, program_id: int | None
               ) -> tuple[float | None, str]:
    """The exported learning rate in the program's own convention (before its scale is
    folded) and where it comes from: --lr, --calibrate TASK, a run's calibration, a
    program file's ``# learning_rate:`` line; (None, "") if none is known."""
    if args.lr is not None:
        return args.lr, "by --lr"
    if args.calibrate is not None:
        return _calibrate(program, args.calibrate, args.task_modules)
    found = _found_lr(args.program, run, program_id)
    if found is None:
        return None, ""
    return found if run is not None else (found[0], "the file's learning_rate line: "
                                                    f"{found[1] or 'no note'}")


def _calibrate(program, task: str, task_modules: str) -> tuple[float, str]:
    """The multiplier the wide grid chooses for ``program`` on ``task`` (seeds 0, 1)."""
    from evaluators.catalog import names

    _task_modules_flag(task_modules)
    if task not in names():
        raise InputError(f"--calibrate: unknown task {task!r} (`run_search.py tasks` lists "
                         "them; --task-modules registers your own)")
    from evaluators.evaluate import evaluate
    from evaluators.grid import WIDE

    print(f"calibrating the learning rate on {task} (seeds 0, 1; {WIDE.label()})", flush=True)
    done = []

    def work() -> None:
        try:
            done.append(evaluate(program, task, (0, 1), lr_grid=WIDE, baseline_value=1.0,
                                 progress=lambda line: print(f"  {line}", flush=True)))
        except Exception as e:  # a task that cannot load: not the input's fault
            raise Stopped(f"--calibrate {task}: {type(e).__name__}: "
                          f"{' '.join(str(e).split())[:300]}") from None

    _stoppable(work, "nothing was written")
    r = done[0]
    if r.failed:
        raise InputError(f"--calibrate {task}: the program "
                         f"{r.error or 'diverged at every learning rate'}: no learning rate "
                         "trains it there")
    edge = (f"; at the edge of its grid on {task}, so a better one may lie beyond: tune it"
            if r.lr_at_edge else "")
    metric = statistics.fmean(r.metrics)
    return r.lr_multiplier, f"by --calibrate on {task} (metric {metric:.4g}){edge}"


def _write(target: Path, text: str, flag: str) -> None:
    """Write a file the user asked for, whole or not at all (a full disk leaves no empty
    module), or say in one line why it cannot be."""
    from search.files import FileError, replace

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        replace(target, text)
    except OSError as e:
        raise InputError(f"{flag} {target}: cannot write it ({e.strerror})") from None
    except FileError as e:
        if e.disk:
            raise Stopped(str(e)) from None
        raise InputError(f"{flag} {e}") from None


def _exists(path: Path, flag: str) -> bool:
    """Whether ``path`` exists; a name the system refuses (too long) is the flag's error."""
    from search.files import FileError, exists

    try:
        return exists(path)
    except FileError as e:
        raise InputError(f"{flag} {e}") from None


# --- search ------------------------------------------------------------------------


def _load_config_file(path: str) -> dict[str, Any]:
    from search.files import CONFIG_LIMIT, FileError, read_text

    p = Path(path)
    try:
        text = read_text(p, CONFIG_LIMIT)
    except FileError as e:
        raise InputError(f"--config {e}") from None
    try:
        if p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as e:  # yaml and json errors alike: one line, with the position
        raise InputError(f"--config {path}: not valid {p.suffix.lstrip('.') or 'JSON'}: "
                         f"{str(e).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"--config {path}: expected a mapping of fields, got "
                         f"{type(data).__name__}")
    return _beside(data, p.parent)


def _beside(fields: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A config file's fields with its relative paths (``task_modules``' ``.py`` files, a
    ``warm_start`` file) resolved against the file's folder, not the current one: a
    config and the files it names travel together.

    >>> _beside({"task_modules": ["t.py", "pkg.mod"], "warm_start": "w.dsl"}, Path("cfg"))
    {'task_modules': ['cfg/t.py', 'pkg.mod'], 'warm_start': 'cfg/w.dsl'}
    """
    from search.loop import is_path

    out = dict(fields)
    modules = out.get("task_modules")
    if isinstance(modules, list):
        out["task_modules"] = [str(folder / m) if isinstance(m, str) and m.endswith(".py")
                               and not Path(m).expanduser().is_absolute() else m
                               for m in modules]
    def file(name: Any) -> Any:
        if (isinstance(name, str) and name and is_path(name)
                and not Path(name).expanduser().is_absolute()
                and ("/" in name or Path(name).suffix)):  # a file, not a misspelt library name
            return str(folder / name)
        return name

    if "warm_start" in out:
        out["warm_start"] = file(out["warm_start"])
    if isinstance(out.get("warm_starts"), list):
        out["warm_starts"] = [file(w) for w in out["warm_starts"]]
    return out


def _config(fields: dict[str, Any], where: str):
    from search.config import SearchConfig

    try:
        cfg = SearchConfig.model_validate(fields)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or "(config)"
        raise InputError(f"{where}: {loc}: {err['msg']}") from None
    from evaluators.catalog import held_out, names  # no JAX before Ray forks workers

    _load_task_modules(cfg.task_modules, where)
    from search import strategies

    if cfg.method not in strategies.STRATEGIES:
        raise InputError(f"{where}: method: {cfg.method!r} is no registered strategy (known: "
                         f"{', '.join(sorted(strategies.STRATEGIES))}; a module in "
                         "task_modules may register one)")
    from search.loop import load_program

    try:
        graph.trainable(load_program(cfg.warm_start))
    except ProgramError as e:
        raise InputError(f"{where}: warm_start: {e}") from None
    for k, spec in enumerate(cfg.warm_starts):
        try:
            graph.trainable(load_program(spec))
        except ProgramError as e:
            raise InputError(f"{where}: warm_starts.{k}: {e}") from None
    for task in cfg.tasks:
        if task not in names():
            raise InputError(f"{where}: tasks: unknown task {task!r}")
        if task in held_out():
            raise InputError(f"{where}: tasks: {task!r} is held out for meta-validation")
    return cfg


def _task_modules_flag(text: str) -> None:
    """Import the modules a ``--task-modules`` flag names (comma-separated), if any."""
    _load_task_modules(_names_arg(text, "--task-modules") if text else [], "--task-modules")


def _load_task_modules(modules: list[str], where: str) -> None:
    """Import a config's task modules here (their tasks' names are then known)."""
    if not modules:
        return
    from evaluators.tasks import load_modules

    try:
        load_modules(modules)
    except ImportError as e:
        raise InputError(f"{where}: task_modules: {e}") from None


def _progress(stats) -> None:
    if stats.tuning:
        return  # the judge's lines say what is happening
    best = "-" if stats.best is None else f"{stats.best:+.4f}"
    phase = "explore" if stats.exploring else "exploit"
    line = (f"evals {stats.evaluated}/{stats.max_evals} | {stats.rate:.2f}/s | "
            f"proposed {stats.proposals}, {stats.hit_rate:.0%} cache hits | best {best} vs "
            f"{_judge_name(stats.judge)} | "
            f"failed {stats.failed} | "
            + (f"below hurdle {stats.screened} | " if stats.screened else "")
            + f"infra errors {stats.infra} | "
            f"round {stats.round} ({phase})")
    if sys.stdout.isatty():
        print("\r" + line.ljust(120), end="", flush=True)
    elif stats.evaluated and (stats.evaluated % 10 == 0 or stats.evaluated == 1):
        print(line, flush=True)


def _judge_name(judge: str) -> str:
    return "tuned AdamW" if judge == "tuned" else "AdamW"


def _errors(run) -> None:
    from search.inspect import error_summary

    errors = error_summary(run)
    if errors:
        print("most frequent failures (divergences, invalid programs, infrastructure):")
        for message, n in errors:
            print(f"  {n:>5} x {message}")


def _resumed(args: argparse.Namespace, overrides: dict[str, Any]):
    """The run ``--resume`` names, refusing flags that would make it another search."""
    from search.rundir import RunDir

    run = RunDir(args.resume)
    if not _exists(run.config_path, "--resume"):
        raise InputError(f"--resume {args.resume}: not a run directory (no config.json)")
    if args.config:
        raise InputError(f"--config {args.config}: a resumed run keeps its own config.json "
                         "(drop --config, or start a new run with it)")
    if args.run_dir:
        raise InputError(f"--run-dir {args.run_dir}: --resume names the run already")
    seed = run.config_fields().get("seed")
    if "seed" in overrides and overrides["seed"] != seed:
        raise InputError(f"--seed {overrides['seed']}: the run searches with seed {seed}; a "
                         "resumed run keeps its seed (start a new run for another)")
    return run


def _live_report(run):
    """What a search calls after each checkpoint: rewrite the run's report, at most once
    in ten times the last rewrite took (and 10 s), so that drawing it never costs the
    search more than a tenth of its time; ``rewrite(final=True)`` always does. A report
    that cannot be written is no longer rewritten and never stops the search: why is kept
    in ``rewrite.failed``, said when the search ends (a full disk that stops the search is
    said once, by the search)."""
    failed: list[str] = []
    last = {"at": -math.inf, "took": 1.0}

    def rewrite(final: bool = False) -> None:
        now = time.monotonic()
        if failed or (not final and now - last["at"] < max(10.0, 10 * last["took"])):
            return
        try:
            from search import report

            report.write(run)
        except Exception as e:  # noqa: BLE001 -- a view of the search, never its failure
            failed.append(f"{type(e).__name__}: {' '.join(str(e).split())[:200]}")
        last["at"], last["took"] = time.monotonic(), time.monotonic() - now

    rewrite.failed = failed  # type: ignore[attr-defined]
    return rewrite


def _search(args: argparse.Namespace) -> int:
    from search.executor import ClusterError, make_executor
    from search.loop import Search, SearchStopped
    from search.rundir import DiskError, RunDir, RunDirError

    for flag in ("resume", "run_dir", "config", "address"):
        if getattr(args, flag) == "":
            raise InputError(f"--{flag.replace('_', '-')}: an empty name; give "
                             + ("an address" if flag == "address" else "a path"))
    overrides = {k: getattr(args, k) for k in SEARCH_FLAGS if getattr(args, k) is not None}
    for k in LIST_FLAGS:
        if getattr(args, k) is not None:
            overrides[k] = _names_arg(getattr(args, k), f"--{k.replace('_', '-')}")
    if args.serial:
        overrides["executor"] = "serial"
    try:
        if args.resume:
            run = _resumed(args, overrides)
            cfg = _config(run.config_fields() | overrides, f"--resume {args.resume}")
            run.lock()
            grown = cfg.max_evals != run.config().max_evals
        else:
            fields = _load_config_file(args.config) if args.config else {}
            cfg = _config(fields | overrides, f"--config {args.config}" if args.config
                          else "flags")
            run_dir = args.run_dir or f"runs/{time.strftime('%Y%m%d-%H%M%S')}-seed{cfg.seed}"
            run = RunDir.create(run_dir, cfg)
            run.lock()
            grown = False
        search = Search.open(cfg, run)  # reads the run directory before any worker starts
        if grown:  # only once nothing refused the run: the run grows (or shrinks) for good
            run.write_config(cfg)
    except RunDirError as e:
        raise InputError(str(e)) from None
    except DiskError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for note in search.notes:
        print(f"note: {note}", file=sys.stderr)
    try:
        executor = make_executor(cfg)
    except ClusterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"run directory: {run.path}  ({cfg.executor}, {cfg.workers} workers, "
          f"tasks {', '.join(cfg.tasks)})")
    live = search.on_checkpoint = _live_report(run)
    print(f"report: {run.path / 'report.html'} (rewritten at each checkpoint: reload it)")
    untuned = search._untuned()
    if untuned:
        from evaluators.tuning import PROTOCOL

        print(f"the judge: tuning AdamW ({PROTOCOL.label()}, on lr, betas and weight decay) "
              f"on {', '.join(untuned)}, seeds {', '.join(map(str, cfg.seeds))}; done once per "
              "machine (about a minute a tier-A task on 2 cores)", flush=True)
    search.say = lambda line: print(line, flush=True)
    received: list[int] = []

    def interrupt(signum, frame) -> None:
        # In-process (serial) evaluation runs JAX here, and a KeyboardInterrupt raised
        # inside one of its garbage-collector callbacks is ignored by Python: so the
        # first Ctrl-C there stops the loop after the current evaluation; a second, now.
        # SIGTERM (a scheduler, `kill`) is taken as Ctrl-C is.
        received.append(signum)
        again = search.interrupted
        search.interrupted = True
        if again or cfg.executor != "serial":
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    def saved() -> str:
        if search.checkpoint_error:
            return "the checkpoint could not be written, but the history is whole"
        return "checkpoint written"

    try:
        search.run_until_done(executor, _progress)
    except KeyboardInterrupt:
        print(f"\ninterrupted: {saved()}; resume with --resume {run.path}")
        return 143 if signal.SIGTERM in received else 130
    except SearchStopped as e:
        print(f"\nerror: search stopped: {e}", file=sys.stderr)
        print(f"{saved()}; once fixed, resume with --resume {run.path}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        live(final=True)  # the report as the search ended, whatever ended it
    print()
    best = run.best()
    if best is None:
        print("no program finished without failing")
    else:
        dead = len(best.genome.statements) - len(best.program.statements)
        note = f", {dead} dead statements removed" if dead else ""
        tuned = " at its best learning rate" if cfg.lr_grid is not None else ""
        warm = search.evo.warm_fitness
        started = f"{warm:+.4f}" if warm is not None else "failed"
        if cfg.judge == "tuned":
            against = (f"AdamW tuned on its learning rate, betas and weight decay (the warm "
                       f"start {cfg.warm_start} scores {started}),")
        elif cfg.warm_start != "warmstart":  # the fitness is always against the library's
            against = (f"AdamW, the library's warm start (this search started from "
                       f"{cfg.warm_start}: {started}),")
        else:
            against = "the AdamW warm start"
        print(f"best program (id {best.id}, fitness {best.fitness:+.4f} against {against}"
              f"{tuned} on {', '.join(cfg.tasks)}{note}):")
        print(best.program.to_source(), end="")
        print(f"what it is: {run.identify(best).describe()}")
    _errors(run)
    print(f"cache hit rate {search.cache.hit_rate:.1%}; run directory: {run.path}")
    if live.failed:
        print(f"note: {run.path / 'report.html'} was not rewritten: {live.failed[0]}",
              file=sys.stderr)
    if cfg.funnel_top:
        print(f"funnel: the {cfg.funnel_top} best programs on tiers B and C and held-out tasks")
        _funnel(argparse.Namespace(run_dir=str(run.path), top=cfg.funnel_top, margin=0.0,
                                   held_out=",".join(DEFAULT_HELD_OUT), seeds=3, baselines=None,
                                   tiers="B,held_out,C", trials=cfg.funnel_trials,
                                   budget=BUDGET_MINUTES))
    return 0


def _shown(message: str, one_line: bool = False) -> str:
    """An error message with its control characters escaped, its newlines too with
    ``one_line`` (a program's error may show its line and a caret below): it may quote a
    name or a field of a run directory."""
    from search.files import shown
    from search.inspect import terminal_safe

    return shown(message) if one_line else terminal_safe(message)


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows each option's default (where it has one worth showing)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False, argparse.SUPPRESS) or "default" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


def _config_default(name: str) -> str:
    from search.config import SearchConfig

    field = SearchConfig.model_fields[name]
    default = field.default_factory() if field.default_factory else field.default
    if isinstance(default, list):
        default = ",".join(map(str, default))
    return f"default: {default}, or the config's"


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status. Output piped into ``head`` that
    closes early ends it quietly."""
    try:
        return _main(argv)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes at exit
        return 141


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="run_search.py", description=__doc__.splitlines()[0],
                                     formatter_class=_Help)
    parser.add_argument("--config", help="YAML or JSON file of SearchConfig fields "
                                         "(default: the defaults of search/config.py)")
    parser.add_argument("--workers", type=int,
                        help=f"evaluations at once ({_config_default('workers')})")
    parser.add_argument("--address", help="Ray cluster address, HOST:PORT (default: "
                                          "RAY_ADDRESS, else an embedded local Ray)")
    parser.add_argument("--seed", type=int,
                        help=f"the search's random seed ({_config_default('seed')})")
    parser.add_argument("--max-evals", dest="max_evals", type=int,
                        help=f"evaluations to run ({_config_default('max_evals')})")
    parser.add_argument("--tasks", help="comma-separated tasks to search on "
                                        f"({_config_default('tasks')})")
    parser.add_argument("--task-modules", dest="task_modules",
                        help="comma-separated modules or .py files registering your own tasks "
                             "(a config's task_modules; its .py paths are relative to the "
                             "config file's folder)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue a search")
    parser.add_argument("--run-dir", help="where to write a new search "
                                          "(default: runs/DATE-TIME-seedN)")
    parser.add_argument("--serial", action="store_true", help="evaluate in-process, no Ray")
    sub = parser.add_subparsers(dest="command")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, formatter_class=_Help)

    check = command("check", "parse and abstractly execute a program")
    check.add_argument("program", help="a library name (e.g. adamw) or a .dsl file")
    check.add_argument("--shape", type=_shape, default=(256, 128), help="leaf shape, e.g. 256x128")
    command("library", "list the library programs: description, hyperparameters, states")
    tasks = command("tasks", "list the proxy tasks: parameters, steps, batch, training rows, "
                           "description")
    tasks.add_argument("--time", action="store_true",
                       help="also train the warm start on each task here and show seconds")
    tasks.add_argument("--time-tiers", default="A",
                       help="the tiers --time trains on, comma-separated (C: minutes a task)")
    tasks.add_argument("--task-modules", default="",
                       help="comma-separated modules or .py files registering your own tasks "
                            "(a config's task_modules), listed too")
    command("functions", "list the DSL's functions with their formula")
    simp = command("simplify", "simplify a program (a run's best, a file, a name)")
    simp.add_argument("program", help="a run directory, a .dsl file, or a library name")
    simp.add_argument("--id", type=int, help="a run's program id (default: its best)")
    simp.add_argument("--tasks", help="comma-separated tasks for ablation and rounding "
                                      "(default: a run's own tasks, else mlp_mnist1d/A)")
    simp.add_argument("--tolerance", type=float, default=0.01,
                      help="fitness a removal or rounding may cost")
    simp.add_argument("--exact-only", action="store_true",
                      help="only dead code and exact rewrites: no training")
    simp.add_argument("--keep-weight-decay", action="store_true",
                      help="never ablate statements that read w")
    simp.add_argument("--out", help="also write the simplified program to this .dsl file")
    fun = command("funnel", "verify a run's best programs on tiers B, C and held-out tasks")
    fun.add_argument("run_dir", help="a run directory")
    fun.add_argument("--top", type=int, default=3, help="how many distinct programs")
    fun.add_argument("--margin", type=float, default=0.0,
                     help="fitness over the best tuned baseline needed on tier B to go on to "
                          "tier C")
    fun.add_argument("--held-out", default=",".join(DEFAULT_HELD_OUT),
                     help="comma-separated held-out tasks for meta-validation")
    fun.add_argument("--tiers", default="B,held_out,C",
                     help="the tiers to run, of B, held_out and C (C only after B passes; it "
                          "costs the most)")
    fun.add_argument("--seeds", type=int, default=3,
                     help="training seeds, the ones after the search's largest")
    fun.add_argument("--baselines", default="adamw,lion,momentum",
                     help="library programs every finalist is compared with, each tuned on "
                          "its learning rate and other hyperparameters by one protocol")
    fun.add_argument("--trials", type=int, default=16,
                     help="the baselines' tuning budget: quasi-random hyperparameter points "
                          "after their defaults (0: the learning rate only)")
    fun.add_argument("--budget", type=float, default=BUDGET_MINUTES,
                     help="minutes the funnel may take on 2 cores with nothing cached: tasks "
                          "whose estimated cost does not fit are left out and named (B first, "
                          "then held-out, then C); 0 runs every task")
    bas = command("baselines", "tune baselines (the judge) on tasks: the learning rate and "
                  "every other hyperparameter, by one protocol; cached per machine")
    bas.add_argument("--tasks", default="mlp_mnist1d/A,transformer_lm/A",
                     help="comma-separated tasks")
    bas.add_argument("--baselines", default="adamw",
                     help="comma-separated library programs (adamw, lion, momentum and muon are "
                          "tuned on all their hyperparameters, others on the learning rate)")
    bas.add_argument("--seeds", default="0,1",
                     help="training seeds (a search's are its config's; the funnel's the three "
                          "after them)")
    bas.add_argument("--trials", type=int, default=16,
                     help="quasi-random hyperparameter points after the defaults")
    bas.add_argument("--task-modules", default="",
                     help="comma-separated modules or .py files registering your own tasks")
    ins = command("inspect", "top programs, diff, lineage and plots of a run")
    ins.add_argument("run_dir", help="a run directory (safe on a running search)")
    ins.add_argument("--top", type=int, default=3, help="how many best programs")
    ins.add_argument("--id", type=int, help="show this program instead")
    ins.add_argument("--plots", action="store_true", help="write progress.png (and funnel.png)")
    rep = command("report", "write the run's report.html: progress, the lineage of the best "
                  "as an interactive picture, top programs, funnel, failures (opens offline)")
    rep.add_argument("run_dir", help="a run directory (safe on a running search)")
    rep.add_argument("--top", type=int, default=5, help="how many best programs to show")
    export = command("export", "write a program as an optimizer module, OUT/NAME.py")
    export.add_argument("program", help="a run directory (its best program), a .dsl file, "
                                        "or a library name")
    export.add_argument("--id", type=int, help="a run's program id (default: its best)")
    export.add_argument("--name", required=True, help="the optimizer's name, e.g. lion")
    export.add_argument("--out", help="folder to write into, relative to the current folder "
                                      "(default: discovered), never this project's own "
                                      "discovered/ unless named")
    export.add_argument("--force", action="store_true", help="replace an existing module")
    export.add_argument("--lr", type=float,
                        help="the default learning rate, the effective peak step (default: "
                             "what calibration chose on the largest tier the funnel ran, else "
                             "on the search's tasks, else a file's '# learning_rate:' line)")
    export.add_argument("--calibrate", metavar="TASK",
                        help="choose the default learning rate by training the program on "
                             "this task (seeds 0 and 1, the wide grid of multipliers)")
    export.add_argument("--task-modules", default="",
                        help="comma-separated modules or .py files registering your own tasks "
                             "for --calibrate")
    args = parser.parse_args(argv)

    try:
        if args.command == "check":
            _check(args.program, args.shape)
        elif args.command == "library":
            _library()
        elif args.command == "tasks":
            _task_modules_flag(args.task_modules)
            tiers = [t.strip() for t in args.time_tiers.split(",") if t.strip()]
            if not tiers or set(tiers) - {"A", "B", "C"}:
                raise InputError(f"--time-tiers {args.time_tiers!r}: choose among A, B and C, "
                                 "comma-separated")
            _tasks(args.time, ",".join(tiers))
        elif args.command == "functions":
            _functions()
        elif args.command == "export":
            _export(args)
        elif args.command == "simplify":
            _simplify(args)
        elif args.command == "funnel":
            _funnel(args)
        elif args.command == "inspect":
            _inspect(args)
        elif args.command == "report":
            _report(args)
        elif args.command == "baselines":
            _baselines(args)
        else:
            return _search(args)
    except ProgramError as e:  # a program's error may show its line, a caret below
        print(f"error: {_shown(str(e))}", file=sys.stderr)
        return 2
    except InputError as e:
        print(f"error: {_shown(str(e), one_line=True)}", file=sys.stderr)
        return 2
    except Stopped as e:
        print(f"\nerror: {_shown(str(e), one_line=True)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a subcommand (a search handles its own): what finished is kept
        print("\nstopped (Ctrl-C): what was written is kept; run the same command to go on",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
