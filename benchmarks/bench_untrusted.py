"""Untrusted inputs tried as an attacker and a careless user would: how many cases hold?

    python benchmarks/bench_untrusted.py            # every class, about a thousand cases
    python benchmarks/bench_untrusted.py --classes links,records

Each case hands the command line (in this process, as ``run_search.main``) a run
directory, a config, a program file or a flag made hostile or odd, in one of these
classes, each built from cases of its own (not the reproductions of the issue that
fixed them):

- ``code``: hostile strings (quotes, triple quotes, backslashes, newlines, escape
  sequences, lone surrogates, NUL) as task names in a run's history, as the run
  directory's name, as a program file's name and as ``--name``, then ``export``;
- ``links``: a symbolic link planted at each file name a run directory uses (to a file,
  a folder, nowhere), then ``--resume``, ``inspect --plots``, ``export`` and ``simplify``;
- ``records``: every field of a history record, and a baseline's metric, set to values
  of the wrong kind (NaN, 1e400, "0.5", true, null, [], a huge integer, ...), then
  ``inspect``, ``--resume`` and ``export``;
- ``resume``: a field of ``config.json`` edited, then ``--resume --max-evals N``;
- ``sizes``: devices, FIFOs, folders and sparse files of gigabytes where a program, a
  config, a warm start or a run directory's file is read;
- ``names``: names the system refuses (too long, with NUL) or that are odd (a newline,
  empty, a folder that is not there) for every path the command line takes;
- ``numbers``: every numeric flag given values out of its range.

A case *holds* when the command exits 0, or 2 with one line on standard error and no
traceback; writes nothing outside the run directory (a planted link's target and a
folder beside the run are unchanged); leaves a run it refused as it was (its ``lock``
aside); and every module that ``export`` reports as written imports and takes a step.
Any exception that escapes the command line fails the case.

Last line: ``untrusted_cases_failed: N`` (the goal: 0).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

STRINGS = ['q""";open("PWNED","w");"""', "x'''y", 'a"b', "back\\slash", "\\N{BULLET}",
           "new\nline", "cr\rret", "\x1b]0;title\x07", "\x1b[2J", "tab\tv\vf\f", "\x7f",
           "\u2028sep", "\u0085nel", "\ud800", "zero\u200bwidth", "{0}{name}", "%s%n",
           "$(touch PWNED)", "`id`", "é ünï 中文", "#comment", "x" * 3000, "../../etc",
           "__import__('os').system('touch PWNED')"]
RUN_FILES = ["config.json", "history.jsonl", "checkpoint.json", "baselines.json",
             "funnel.json", "lock", "history.torn", "config.json.tmp", "checkpoint.json.tmp",
             "baselines.json.tmp", "funnel.json.tmp", "progress.png", "funnel.png",
             "progress.png.tmp"]
BAD_VALUES = ["NaN", "Infinity", "-Infinity", "1e400", '"0.5"', "true", "null", "[]", "{}",
              "-1", "1" + "0" * 40, '""', '"\\u001b[2J"']
RECORD_FIELDS = ["fitness", "id", "parent", "round", "cached", "cached_from", "source",
                 "fingerprint", "structural_hash", "tasks", "mutation", "skeleton", "timing",
                 "infra", "error", "T.fitness", "T.metrics", "T.lr_multiplier", "T.baseline",
                 "T.steps"]


def fake_run(root: Path, name: str = "run", tasks=("quadratic/A",)):
    """A finished run directory: the warm start (id 0) and AdamW (id 1) on ``tasks``,
    each scored against a baseline of 1.0 (``baselines.json`` holds it), ``max_evals``
    reached; nothing trained, so that a case takes milliseconds."""
    from dsl import abstract, library, parse
    from search.config import SearchConfig
    from search.rundir import RunDir

    cfg = SearchConfig(tasks=list(tasks), seeds=[0], population=4, executor="serial",
                       judge="warm_start", max_evals=2)
    run = RunDir.create(root / name, cfg)
    for i, source in enumerate([library.source("warmstart"), library.source("adamw")]):
        p = parse(source)
        run.append({"id": i, "parent": None if i == 0 else 0, "round": 0,
                    "mutation": {"kind": "warm_start" if i == 0 else "insert"},
                    "source": p.to_source(), "structural_hash": abstract.structural_hash(p),
                    "fingerprint": abstract.fingerprint(p), "cached": False,
                    "cached_from": None, "fitness": 0.1 * i, "infra": False, "error": None,
                    "config_hash": cfg.identity_hash(),
                    "tasks": {t: {"fitness": 0.1 * i, "metrics": [0.9], "steps": [100],
                                  "diverged": False, "error": None, "baseline": 1.0,
                                  "lr_multiplier": 1.0} for t in tasks}})
    run.write_baselines({t: {"metric": 1.0, "lr_multiplier": 1.0} for t in tasks})
    return run


class Case:
    """One command on one prepared folder, and what must hold afterwards."""

    def __init__(self, cls: str, label: str, prepare: Callable[[Path], list[str]]) -> None:
        self.cls, self.label, self.prepare = cls, label, prepare


def snapshot(folder: Path) -> dict[str, bytes]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(folder))] = b"->" + os.readlink(p).encode("utf-8", "replace")
        elif p.is_file() and p.name != "lock":  # a sparse file of gigabytes: its size
            size = p.stat().st_size
            out[str(p.relative_to(folder))] = p.read_bytes() if size < 1 << 24 else b"%d" % size
    return out


class Hung(Exception):
    """A case that did not answer in time (a FIFO read without end, say)."""


def run_case(case: Case, base: Path, limit: int = 60) -> str | None:
    """None if the case held, else why not (``limit``: seconds it may take)."""
    import run_search

    work = Path(tempfile.mkdtemp(dir=base))
    old = os.getcwd()
    os.chdir(work)
    try:
        beside = work / "beside"
        beside.mkdir()
        (beside / "victim").write_text("precious\n")
        args = case.prepare(work)
        runs = [p for p in work.iterdir() if (p / "config.json").exists()
                and not (p / "config.json").is_symlink()]
        before = {p: snapshot(p) for p in runs}
        out, err = io.StringIO(), io.StringIO()

        def hung(signum, frame):
            raise Hung(f"no answer in {limit} s")

        previous = signal.signal(signal.SIGALRM, hung)
        signal.alarm(limit)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = run_search.main(args)
                except SystemExit as e:  # argparse's own refusal: its usage, then one line
                    code = e.code
        except BaseException as e:  # noqa: BLE001 - what escapes is the finding
            return f"raised {type(e).__name__}: {str(e)[:120]}"
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
        text = err.getvalue()
        if "Traceback" in text:
            return "a traceback"
        if code not in (0, 2):
            return f"exit {code}: {text.strip()[:160]}"
        said = [ln for ln in text.splitlines()
                if ln.strip() and not ln.startswith(("usage:", " "))]
        if code == 2 and len(said) != 1:
            return f"not one line: {text[:160]!r}"
        if any(c in text for c in "\x1b\x07\x00"):
            return "a control character reached the terminal"
        if snapshot(beside) != {"victim": b"precious\n"}:
            return "wrote outside the run directory"
        if (work / "PWNED").exists() or (ROOT / "PWNED").exists():
            return "ran code"
        if code == 2:
            for p in runs:
                if snapshot(p) != before[p]:
                    return "a refused run was changed"
        if code == 0 and args[:1] == ["export"]:
            written = list(work.rglob("*.py"))
            if not written:
                return "export said it wrote a module, and none is there"
            for path in written:
                problem = _imports_and_steps(path)
                if problem:
                    return problem
        return None
    finally:
        os.chdir(old)
        shutil.rmtree(work, ignore_errors=True)


def _imports_and_steps(path: Path) -> str | None:
    import jax.numpy as jnp
    import optax

    try:
        spec = importlib.util.spec_from_file_location(f"untrusted_{abs(hash(path))}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        opt = getattr(module, path.stem)(learning_rate=1e-2)
        params = {"w": jnp.ones(3)}
        updates, _ = opt.update({"w": jnp.ones(3)}, opt.init(params), params)
        if not bool(jnp.all(jnp.isfinite(optax.apply_updates(params, updates)["w"]))):
            return "the export's step is not finite"
    except Exception as e:  # noqa: BLE001
        return f"the export does not import and step: {type(e).__name__}: {str(e)[:100]}"
    if (path.parent / "PWNED").exists():
        return "importing the export ran code"
    return None


# --- the classes -------------------------------------------------------------------


def code_cases() -> Iterator[Case]:
    for k, s in enumerate(STRINGS):
        def task_name(work: Path, s=s) -> list[str]:
            run = fake_run(work)
            text = run.history_path.read_text().replace(
                "quadratic/A", json.dumps(s + "/A")[1:-1])
            run.history_path.write_text(text)
            return ["export", str(run.path), "--name", "t", "--out", "out"]

        def run_name(work: Path, s=s, k=k) -> list[str]:
            name = s.replace("/", "_").replace("\0", "_")[:200] or "_"
            try:
                run = fake_run(work, name=name)
            except Exception:  # noqa: BLE001 - a name this system cannot hold
                run = fake_run(work, name=f"r{k}")
            return ["export", str(run.path), "--name", "t", "--out", "out"]

        def file_name(work: Path, s=s) -> list[str]:
            from dsl import library
            name = (s.replace("/", "_").replace("\0", "_")[:200] or "_") + ".dsl"
            try:
                (work / name).write_text(library.source("lion"))
            except (OSError, UnicodeError):
                name = "plain.dsl"
                (work / name).write_text(library.source("lion"))
            return ["export", name, "--name", "f", "--out", "out"]

        def export_name(work: Path, s=s) -> list[str]:
            return ["export", "lion", "--name", s, "--out", "out"]

        for make in (task_name, run_name, file_name, export_name):
            yield Case("code", f"{make.__name__} {s[:20]!r}", make)


def link_cases() -> Iterator[Case]:
    commands = {"resume": lambda r: ["--resume", str(r.path), "--serial"],
                "inspect": lambda r: ["inspect", str(r.path), "--plots"],
                "export": lambda r: ["export", str(r.path), "--name", "l", "--out", "out"],
                "simplify": lambda r: ["simplify", str(r.path), "--exact-only"]}
    for name in RUN_FILES:
        for target in ("file", "folder", "nowhere"):
            for command, argv in commands.items():
                def make(work: Path, name=name, target=target, argv=argv) -> list[str]:
                    run = fake_run(work)
                    path = run.path / name
                    if path.exists():
                        path.unlink()
                    to = {"file": work / "beside" / "victim", "folder": work / "beside",
                          "nowhere": work / "beside" / "gone"}[target]
                    path.symlink_to(to)
                    return argv(run)
                yield Case("links", f"{name} -> {target}, {command}", make)


def record_cases() -> Iterator[Case]:
    for field in RECORD_FIELDS:
        for value in BAD_VALUES:
            for command in ("inspect", "resume", "export"):
                def make(work: Path, field=field, value=value, command=command) -> list[str]:
                    run = fake_run(work)
                    lines = run.history_path.read_text().splitlines()
                    record = json.loads(lines[1])
                    marker = "\"@@MARK@@\""
                    if field.startswith("T."):
                        record["tasks"]["quadratic/A"][field[2:]] = "@@MARK@@"
                    else:
                        record[field] = "@@MARK@@"
                    lines[1] = json.dumps(record).replace(marker, value)
                    run.history_path.write_text("\n".join(lines) + "\n")
                    return {"inspect": ["inspect", str(run.path)],
                            "resume": ["--resume", str(run.path), "--serial"],
                            "export": ["export", str(run.path), "--name", "r", "--out",
                                       "out"]}[command]
                yield Case("records", f"{field}={value[:12]} {command}", make)
    for value in BAD_VALUES + ["1e300", "1e-300", "0.0"]:
        for key in ("metric", "lr_multiplier"):
            def make(work: Path, value=value, key=key) -> list[str]:
                run = fake_run(work)
                data = json.dumps({"quadratic/A": {"metric": 1.0, "lr_multiplier": 1.0}})
                run.baselines_path.write_text(data.replace(f'"{key}": 1.0', f'"{key}": {value}'))
                return ["--resume", str(run.path), "--serial"]
            yield Case("records", f"baselines {key}={value[:12]} resume", make)


def resume_cases() -> Iterator[Case]:
    edits = {"tasks": ["mlp_mnist1d/A"], "seeds": [5], "population": 8, "tournament": 3,
             "warm_start": "lion", "judge": "tuned", "lr_grid": None, "seed": 9,
             "restarts": 5, "mutation": {"max_length": 20}, "plateau": 3}
    for key, value in edits.items():
        def make(work: Path, key=key, value=value) -> list[str]:
            run = fake_run(work)
            fields = json.loads(run.config_path.read_text())
            fields[key] = value
            run.config_path.write_text(json.dumps(fields))
            return ["--resume", str(run.path), "--serial", "--max-evals", "3"]
        yield Case("resume", f"{key} edited", make)


def size_cases() -> Iterator[Case]:
    def kind(work: Path, what: str, at: Path) -> None:
        if what == "fifo":
            os.mkfifo(at)
        elif what == "folder":
            at.mkdir()
        elif what == "sparse":
            with at.open("wb") as f:
                f.truncate(3 << 30)  # 3 GiB, nothing written
        else:
            at.symlink_to(what)

    for what in ("/dev/zero", "/dev/urandom", "fifo", "folder", "sparse"):
        def check(work: Path, what=what) -> list[str]:
            kind(work, what, work / "p.dsl")
            return ["check", "p.dsl"]

        def config(work: Path, what=what) -> list[str]:
            kind(work, what, work / "c.json")
            return ["--config", "c.json"]

        def warm(work: Path, what=what) -> list[str]:
            kind(work, what, work / "w.dsl")
            (work / "c.json").write_text('{"warm_start": "w.dsl"}')
            return ["--config", "c.json"]

        def export(work: Path, what=what) -> list[str]:
            kind(work, what, work / "e.dsl")
            return ["export", "e.dsl", "--name", "e", "--out", "out"]

        for make in (check, config, warm, export):
            yield Case("sizes", f"{make.__name__} {what}", make)
    for name in ("config.json", "history.jsonl", "baselines.json", "checkpoint.json",
                 "funnel.json"):
        for what in ("fifo", "folder", "sparse"):
            for command in ("inspect", "resume"):
                def make(work: Path, name=name, what=what, command=command) -> list[str]:
                    run = fake_run(work)
                    if (run.path / name).exists():
                        (run.path / name).unlink()
                    kind(work, what, run.path / name)
                    return (["inspect", str(run.path)] if command == "inspect"
                            else ["--resume", str(run.path), "--serial"])
                yield Case("sizes", f"{name} {what} {command}", make)


def name_cases() -> Iterator[Case]:
    names = {"long": "n" * 300, "long path": "/".join(["d" * 200] * 30), "nul": "a\0b",
             "newline": "a\nb", "empty": "", "missing folder": "nowhere/at/all"}
    uses = {
        "check": lambda n: ["check", n + ".dsl"],
        "--config": lambda n: ["--config", n + ".yaml"],
        "--run-dir": lambda n: ["--serial", "--max-evals", "1", "--run-dir", n + "/r",
                                "--config", "small.yaml"],
        "--resume": lambda n: ["--resume", n],
        "inspect": lambda n: ["inspect", n],
        "export program": lambda n: ["export", n + ".dsl", "--name", "x"],
        "export --out": lambda n: ["export", "lion", "--name", "x", "--out", n],
        "simplify program": lambda n: ["simplify", n + ".dsl", "--exact-only"],
        "simplify --out": lambda n: ["simplify", "lion", "--exact-only", "--out", n + ".dsl"],
        "funnel": lambda n: ["funnel", n],
        "tasks --task-modules": lambda n: ["tasks", "--task-modules", n + ".py"],
        "warm_start": lambda n: ["--config", "warm.json"],
    }
    for label, n in names.items():
        for use, argv in uses.items():
            def make(work: Path, n=n, use=use, argv=argv) -> list[str]:
                (work / "small.yaml").write_text("tasks: [bogus/A]\n")
                (work / "warm.json").write_text(json.dumps({"warm_start": n + ".dsl"}))
                return argv(n)
            yield Case("names", f"{use} {label}", make)


def number_cases() -> Iterator[Case]:
    bad = ["-1", "nan", "inf", "-inf", "1e400", "abc", "", "0x10"]
    flags = {
        "inspect --top": (lambda r, v: ["inspect", r, "--top", v], bad + ["0"]),
        "inspect --id": (lambda r, v: ["inspect", r, "--id", v], bad + ["99", "1" + "0" * 30]),
        "export --id": (lambda r, v: ["export", r, "--id", v, "--name", "i", "--out", "o"],
                        bad + ["99"]),
        "export --lr": (lambda r, v: ["export", r, "--lr", v, "--name", "i", "--out", "o"],
                        bad + ["0"]),
        "simplify --tolerance": (lambda r, v: ["simplify", r, "--tolerance", v], bad),
        "funnel --top": (lambda r, v: ["funnel", r, "--top", v], bad + ["0"]),
        "funnel --seeds": (lambda r, v: ["funnel", r, "--seeds", v],
                           bad + ["0", "1", "100000000"]),
        "funnel --trials": (lambda r, v: ["funnel", r, "--trials", v], bad + ["100000"]),
        "funnel --margin": (lambda r, v: ["funnel", r, "--margin", v], ["nan", "inf", "abc"]),
        "--max-evals": (lambda r, v: ["--resume", r, "--max-evals", v, "--serial"],
                        bad + ["0", "1" + "0" * 30]),
        "--workers": (lambda r, v: ["--resume", r, "--workers", v, "--serial"], bad + ["0"]),
        "--seed": (lambda r, v: ["--resume", r, "--seed", v, "--serial"], bad),
        "check --shape": (lambda r, v: ["check", "adamw", "--shape", v],
                          bad + ["0x3", "1.5x2", "9" * 30]),
        "baselines --seeds": (lambda r, v: ["baselines", "--seeds", v], bad),
        "baselines --trials": (lambda r, v: ["baselines", "--trials", v], bad + ["100000"]),
    }
    for flag, (argv, values) in flags.items():
        for v in values:
            def make(work: Path, argv=argv, v=v) -> list[str]:
                return argv(str(fake_run(work).path), v)
            yield Case("numbers", f"{flag} {v[:12]!r}", make)


CLASSES: dict[str, Callable[[], Iterator[Case]]] = {
    "code": code_cases, "links": link_cases, "records": record_cases,
    "resume": resume_cases, "sizes": size_cases, "names": name_cases,
    "numbers": number_cases}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", default=",".join(CLASSES),
                        help=f"comma-separated, of {', '.join(CLASSES)}")
    parser.add_argument("--slow", type=float, default=0.0,
                        help="name the cases that take longer than this many seconds")
    args = parser.parse_args(argv)
    chosen = [c.strip() for c in args.classes.split(",") if c.strip()]
    unknown = [c for c in chosen if c not in CLASSES]
    if unknown or not chosen:
        parser.error(f"--classes: {', '.join(unknown) or 'none'}: choose among "
                     f"{', '.join(CLASSES)}")
    held, failed = Counter(), Counter()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as base:
        for name in chosen:
            for case in CLASSES[name]():
                began = time.perf_counter()
                why = run_case(case, Path(base))
                if args.slow and time.perf_counter() - began > args.slow:
                    print(f"slow: {name}: {case.label}: {time.perf_counter() - began:.1f} s")
                if why is None:
                    held[name] += 1
                else:
                    failed[name] += 1
                    print(f"FAILED {name}: {case.label}: {why}", flush=True)
    print(f"{'class':<10} {'cases':>6} {'held':>6} {'failed':>7}")
    for name in chosen:
        print(f"{name:<10} {held[name] + failed[name]:>6} {held[name]:>6} {failed[name]:>7}")
    total = sum(held.values()) + sum(failed.values())
    print(f"{'all':<10} {total:>6} {sum(held.values()):>6} {sum(failed.values()):>7}  "
          f"({time.perf_counter() - start:.0f} s)")
    print(f"untrusted_cases_failed: {sum(failed.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
