"""A run directory, a config, a program file or a task module handed to the project is
untrusted input (issue: untrusted inputs, round two). One test class per defect class:
generated code, links, record values, refused resumes, exports, size bounds, names the
system refuses, and answers that were wrong or silent. Every case answers in one line
naming the problem and where, exit 2, writes nothing outside the run directory and
changes nothing in a refused run."""

from __future__ import annotations

import errno
import importlib.util
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

import run_search
from benchmarks import bench_untrusted
from benchmarks.bench_untrusted import fake_run
from dsl import ProgramError, abstract, library, parse
from dsl.export import export_source
from search import files
from search.inspect import terminal_safe
from search.rundir import RunDir, RunDirError

SOURCE = library.source("adamw")
HOSTILE = ['q""";open("PWNED","w");"""', 'q"""x', "data\\x", "data\\N", "a\nb", "\x1b[31mred",
           "'''", "\\", '"', "\r", "\x00", "{0}", "%s", "é ünï", "\\u0041", "#", "\t\v\f"]


def cli(capsys, *args: str) -> tuple[int, str]:
    """Exit status and standard error of the command line, run in this process."""
    code = run_search.main([str(a) for a in args])
    return code, capsys.readouterr().err


def one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def config_refused(tmp_path: Path, capsys, text: str) -> str:
    """The one line a search refuses a config file ``text`` with (exit 2)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    code, err = cli(capsys, "--config", cfg)
    assert code == 2, err
    return one_line(err)


def snapshot(path: Path) -> dict[str, bytes]:
    """The run's files, but its ``lock`` (taken before the run is read: it holds only the
    process id of the last to open it)."""
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()
            and not p.is_symlink() and p.name != "lock"}


def load(path: Path):
    spec = importlib.util.spec_from_file_location(f"gen_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def steps(module, name: str) -> None:
    """The optax recipe of an exported module takes a step (finite, moved)."""
    import jax.numpy as jnp
    import optax

    opt = getattr(module, name)(learning_rate=1e-2)
    params = {"w": jnp.ones(3)}
    updates, _ = opt.update({"w": jnp.ones(3)}, opt.init(params), params)
    moved = optax.apply_updates(params, updates)["w"]
    assert bool(jnp.all(jnp.isfinite(moved))) and not bool(jnp.all(moved == 1.0))


class TestGeneratedCode:
    """No text from a run directory, a task, a config or a program reaches generated code
    unescaped."""

    @pytest.mark.parametrize("text", HOSTILE)
    def test_hostile_origin_note_and_name_import_and_read_back(self, tmp_path, monkeypatch,
                                                               text) -> None:
        monkeypatch.chdir(tmp_path)
        origin, note = f"run {text}, program 3", f"on tier B of the funnel ({text}/A 0.01)"
        source = export_source(library.get("lion"), f"lion{text}", origin=origin,
                               learning_rate=0.01, learning_rate_note=note)
        path = tmp_path / "m.py"
        path.write_text(source)
        module = load(path)
        assert not (tmp_path / "PWNED").exists()
        doc = " ".join(module.__doc__.split())
        assert " ".join(origin.split()) in doc and " ".join(note.split()) in doc
        steps(module, [n for n in dir(module) if n.startswith("lion") and not
                       n.endswith(("_rule", "_torch"))][0])

    def test_task_names_of_a_run_directory_in_an_export(self, tmp_path, capsys,
                                                        monkeypatch) -> None:
        monkeypatch.chdir(tmp_path)
        run = fake_run(tmp_path)
        lines = run.history_path.read_text().replace(
            "quadratic/A", 'q\\"\\"\\";open(\\"PWNED\\",\\"w\\");\\"\\"\\"/A')
        run.history_path.write_text(lines)
        code, err = cli(capsys, "export", run.path, "--name", "inj", "--out", tmp_path)
        assert code == 0, err
        steps(load(tmp_path / "inj.py"), "inj")
        assert not (tmp_path / "PWNED").exists()

    @pytest.mark.parametrize("name", ["None", "True", "False", "class", "3d", "jnp", "-"])
    def test_names_that_are_keywords_or_taken_make_modules_that_import(
            self, tmp_path, capsys, monkeypatch, name) -> None:
        monkeypatch.chdir(tmp_path)
        code, err = cli(capsys, "export", "lion", "--name", name, "--out", "out")
        assert code == 0, err
        written = next((tmp_path / "out").glob("*.py"))
        module = load(written)
        steps(module, written.stem)

    @pytest.mark.parametrize("state", ["_m", "__name__", "__m", "xp", "jax"])
    def test_state_names_a_module_cannot_hold_are_renamed(self, tmp_path, state) -> None:
        text = (f"_b = 0.9\ndef train(w, g, lr, t, {state}):\n  {state} = interp(g, {state}, _b)"
                f"\n  u = {state} * lr\n  return u, {state}\n")
        path = tmp_path / "states.py"
        path.write_text(export_source(parse(text), "states"))
        steps(load(path), "states")


class TestLinks:
    """Nothing is written outside a run directory through a link planted in it, and a
    refused run is left as it was."""

    @pytest.fixture
    def victim(self, tmp_path) -> Path:
        path = tmp_path / "victim"
        path.write_text("precious\n")
        return path

    @pytest.mark.parametrize("planted", ["lock", "history.jsonl", "config.json",
                                         "baselines.json"])
    def test_a_resume_through_a_link_is_refused(self, tmp_path, capsys, victim,
                                                planted) -> None:
        run = fake_run(tmp_path)
        if (run.path / planted).exists():
            victim.write_bytes((run.path / planted).read_bytes()
                               + (b'{"torn' if planted == "history.jsonl" else b""))
            (run.path / planted).unlink()
        before = victim.read_bytes()
        (run.path / planted).symlink_to(victim)
        code, err = cli(capsys, "--resume", run.path, "--serial", "--max-evals", "3")
        assert code == 2
        line = one_line(err)
        assert planted in line and "symbolic link" in line
        assert victim.read_bytes() == before

    @pytest.mark.parametrize("planted", ["checkpoint.json.tmp", "config.json.tmp",
                                         "baselines.json.tmp", "funnel.json.tmp"])
    def test_a_planted_temporary_is_replaced_never_followed(self, tmp_path, victim,
                                                            planted) -> None:
        run = fake_run(tmp_path)
        (run.path / planted).symlink_to(victim)
        run.write_checkpoint({"x": 1})
        run.write_config(run.config())
        run.write_baselines(run.baselines())
        run.write_funnel({"rows": []})  # type: ignore[typeddict-item]
        assert victim.read_text() == "precious\n"
        assert not (run.path / planted).exists()
        assert json.loads((run.path / "checkpoint.json").read_text()) == {"x": 1}

    def test_a_linked_checkpoint_is_not_read_and_is_replaced(self, tmp_path, victim) -> None:
        """(A resume then rebuilds the search from the history, with a note.)"""
        run = fake_run(tmp_path)
        run.checkpoint_path.symlink_to(victim)
        with pytest.raises(RunDirError, match="checkpoint.json: .*symbolic link"):
            run.checkpoint()
        run.write_checkpoint({"x": 1})
        assert victim.read_text() == "precious\n" and not run.checkpoint_path.is_symlink()

    def test_a_linked_torn_record_keeper_is_refused_and_the_history_kept(self, tmp_path,
                                                                       victim) -> None:
        run = fake_run(tmp_path)
        with run.history_path.open("a") as f:
            f.write('{"id": 2, "fit')
        history = run.history_path.read_bytes()
        run.torn_path.symlink_to(victim)
        with pytest.raises(RunDirError, match="history.torn: .*symbolic link"):
            RunDir(run.path).append({"id": 3})
        assert victim.read_text() == "precious\n"
        assert run.history_path.read_bytes() == history


class TestRecordValues:
    """One record check rejects non-finite and mistyped values."""

    @pytest.mark.parametrize("field,value,message", [
        ("fitness", "NaN", "NaN is not a number JSON allows"),
        ("fitness", "Infinity", "Infinity is not a number JSON allows"),
        ("fitness", "-Infinity", "-Infinity is not a number JSON allows"),
        ("fitness", '"0.5"', "fitness"),
        ("id", '"7"', "id"),
        ("round", "true", "round"),
        ("cached", "0", "cached"),
    ])
    def test_a_history_value_is_refused_naming_the_line(self, tmp_path, capsys, field, value,
                                                        message) -> None:
        run = fake_run(tmp_path)
        lines = run.history_path.read_text().splitlines()
        record = json.loads(lines[1])
        lines[1] = json.dumps(record).replace(f'"{field}": {json.dumps(record[field])}',
                                              f'"{field}": {value}')
        run.history_path.write_text("\n".join(lines) + "\n")
        before = snapshot(run.path)
        for args in (["inspect", run.path], ["--resume", run.path, "--serial"],
                     ["export", run.path, "--name", "x", "--out", tmp_path / "o"]):
            code, err = cli(capsys, *args)
            assert code == 2, args
            line = one_line(err)
            assert "history.jsonl: line 2" in line and message in line, line
        assert snapshot(run.path) == before
        assert not (tmp_path / "o").exists()

    @pytest.mark.parametrize("metric,message", [
        ("NaN", "NaN is not a number JSON allows"),
        ("-1.0", "metric -1.0 is not a positive finite number"),
        ("0.0", "metric 0.0 is not a positive finite number"),
        ("1e300", "metric 1e+300 is not the 1.0 that history.jsonl line of program 0 was "
                  "scored against"),
        ('"1.0"', "expected"),
    ])
    def test_a_baselines_metric_is_refused(self, tmp_path, capsys, metric, message) -> None:
        run = fake_run(tmp_path)
        run.baselines_path.write_text('{"quadratic/A": {"metric": ' + metric
                                      + ', "lr_multiplier": 1.0}}')
        before = snapshot(run.path)
        code, err = cli(capsys, "--resume", run.path, "--serial", "--max-evals", "3")
        assert code == 2
        assert "baselines.json" in one_line(err) and message in err, err
        assert snapshot(run.path) == before

    def test_the_funnel_file_may_hold_infinities_but_no_nan(self, tmp_path) -> None:
        run = fake_run(tmp_path)
        run.funnel_path.write_text('{"seeds": NaN}')
        with pytest.raises(RunDirError, match="funnel.json: not valid JSON .NaN"):
            run.funnel()


class TestRefusedResume:
    def test_a_refused_resume_changes_nothing(self, tmp_path, capsys) -> None:
        run = fake_run(tmp_path)
        fields = json.loads(run.config_path.read_text())
        fields["tasks"] = ["mlp_mnist1d/A"]
        run.config_path.write_text(json.dumps(fields))
        with run.history_path.open("a") as f:
            f.write('{"id": 2, "fit')  # a torn tail: the repair is not made either
        before = snapshot(run.path)
        code, err = cli(capsys, "--resume", run.path, "--serial", "--max-evals", "16")
        assert code == 2 and "configuration changed" in one_line(err)
        assert snapshot(run.path) == before


class TestExports:
    def test_a_full_disk_leaves_no_module_and_says_so(self, tmp_path, capsys, monkeypatch) -> None:
        monkeypatch.chdir(tmp_path)

        def full(fd, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(files.os, "write", full)
        code, err = cli(capsys, "export", "lion", "--name", "lion", "--out", "out")
        assert code == 1
        assert "No space left on device" in one_line(err)
        assert list((tmp_path / "out").iterdir()) == []

    def test_a_calibrated_rate_that_is_no_rate_is_left_out(self, tmp_path, capsys,
                                                          monkeypatch) -> None:
        monkeypatch.chdir(tmp_path)
        run = fake_run(tmp_path)
        run.history_path.write_text(run.history_path.read_text().replace(
            '"lr_multiplier": 1.0', '"lr_multiplier": 0.0'))
        code, err = cli(capsys, "export", run.path, "--name", "z", "--out", "out")
        assert code == 0, err
        steps(load(tmp_path / "out" / "z.py"), "z")


class TestSizes:
    """Every file is bounded before it is read."""

    @pytest.mark.parametrize("args", [["check", "/dev/zero"], ["--config", "/dev/zero"],
                                      ["check", "/dev/null"]])
    def test_devices_are_refused_unread(self, capsys, args) -> None:
        code, err = cli(capsys, *args)
        assert code == 2 and "not a regular file" in one_line(err)

    def test_a_warm_start_of_dev_zero(self, tmp_path, capsys) -> None:
        assert "warm_start: /dev/zero: not a regular file" in config_refused(
            tmp_path, capsys, "warm_start: /dev/zero\n")

    def test_files_over_their_limit_are_refused_by_their_size(self, tmp_path, capsys) -> None:
        big = tmp_path / "big.dsl"
        with big.open("wb") as f:
            f.truncate(files.PROGRAM_LIMIT + 1)  # sparse: nothing to read is written
        code, err = cli(capsys, "check", big)
        assert code == 2 and "more than the 4,000,000 this file may hold" in one_line(err)
        run = fake_run(tmp_path)
        with run.config_path.open("ab") as f:
            f.truncate(files.CONFIG_LIMIT + 1)
        code, err = cli(capsys, "inspect", run.path)
        assert code == 2 and "config.json" in one_line(err) and "bytes" in err

    def test_a_history_line_over_its_limit_is_named(self, tmp_path, monkeypatch) -> None:
        run = fake_run(tmp_path)
        monkeypatch.setattr(files, "LINE_LIMIT", 100)
        with pytest.raises(RunDirError, match="line 1 is longer than 100 bytes"):
            list(run.history())


class TestNames:
    """Names the system refuses, and numbers too large to use, are one line."""

    LONG = "x" * 300

    @pytest.mark.parametrize("args", [
        ["check", LONG + ".dsl"], ["--serial", "--run-dir", LONG + "/" + LONG],
        ["export", "lion", "--name", "a", "--out", LONG], ["check", LONG],
        ["simplify", LONG + ".dsl", "--exact-only"], ["inspect", LONG],
    ])
    def test_names_too_long(self, tmp_path, capsys, monkeypatch, args) -> None:
        monkeypatch.chdir(tmp_path)
        code, err = cli(capsys, *args)
        assert code == 2
        one_line(err)

    def test_a_warm_start_name_too_long(self, tmp_path, capsys) -> None:
        assert "File name too long" in config_refused(tmp_path, capsys,
                                                      f"warm_start: {self.LONG}\n")

    @pytest.mark.parametrize("seeds", ["100000000", "1", "65"])
    def test_funnel_seeds_are_bounded(self, tmp_path, capsys, seeds) -> None:
        code, err = cli(capsys, "funnel", fake_run(tmp_path).path, "--seeds", seeds)
        assert code == 2 and "--seeds must be from 2" in one_line(err)

    def test_overflowing_hyperparameters_and_bad_shapes(self) -> None:
        with pytest.raises(ProgramError, match="'b1' must be a finite number, got a huge int"):
            parse(SOURCE, b1=10 ** 400)
        for shape in [(-1, 3), (1.5, 2), (True, 2)]:
            with pytest.raises(ProgramError, match="leaf shape is a tuple of integers"):
                abstract.check(library.get("adamw"), shape)


class TestTaskModules:
    @pytest.mark.parametrize("body,message", [
        ("import sys\nsys.exit(3)\n", "called sys.exit(3) when imported"),
        ("raise KeyboardInterrupt\n", "interrupted while it was imported"),
        ("raise SystemExit\n", "called sys.exit(None) when imported"),
    ])
    def test_a_module_that_exits_when_imported(self, tmp_path, capsys, body, message) -> None:
        module = tmp_path / f"exits{abs(hash(body))}.py"
        module.write_text(body)
        code, err = cli(capsys, "tasks", "--task-modules", module)
        assert code == 2 and message in one_line(err)

    def test_simplify_of_a_run_on_its_own_tasks_loads_them(self, tmp_path, capsys) -> None:
        module = tmp_path / "mytask.py"
        module.write_text(
            "import numpy as np\nfrom evaluators import tasks\n"
            "x = np.ones((40, 2), np.float32)\n"
            "tasks.register(tasks.from_arrays('untrusted_mine/A', init={'w': np.zeros(2, "
            "np.float32)}, loss=lambda p, b: ((b[0] @ p['w'] - 1.0) ** 2).mean(), "
            "train=(x,), val=(x,), steps=5, batch_size=4))\n")
        run = fake_run(tmp_path, tasks=("quadratic/A",))
        fields = json.loads(run.config_path.read_text())
        fields |= {"tasks": ["untrusted_mine/A"], "task_modules": [str(module)]}
        run.config_path.write_text(json.dumps(fields))
        code = run_search.main(["simplify", str(run.path), "--exact-only"])
        out = capsys.readouterr()
        assert code == 0, out.err
        assert "unknown task" not in out.err

    def test_a_negative_metric_is_the_tasks_mistake(self) -> None:
        from evaluators import evaluate, tasks
        from evaluators.tasks.base import TaskError

        x = np.ones((40, 2), np.float32)
        task = tasks.from_arrays("untrusted_negative/A", init={"w": np.zeros(2, np.float32)},
                                 loss=lambda p, b: ((b[0] @ p["w"] - 1.0) ** 2).mean(),
                                 metric=lambda p, v: ((v[0] @ p["w"] - 1.0) ** 2).mean() - 5.0,
                                 train=(x,), val=(x,), steps=5, batch_size=4)
        with pytest.raises(TaskError, match="'untrusted_negative/A': its metric came out -4"):
            evaluate(library.get("warmstart"), task, seeds=(0,), baseline_value=1.0)


class TestAnswers:
    """Answers that were wrong or silent."""

    def test_programs_the_engine_cannot_train_are_refused_where_they_enter(
            self, tmp_path, capsys) -> None:
        body = "".join("  u = u + g\n" for _ in range(65))
        path = tmp_path / "long.dsl"
        path.write_text(f"def train(w, g, lr, t):\n  u = g * lr\n{body}  return u\n")
        code, err = cli(capsys, "check", path)
        assert code == 2 and "66 live statements: the engine trains programs of at most 64" \
            in one_line(err)
        line = config_refused(tmp_path, capsys, f"warm_start: {path}\n")
        assert "warm_start:" in line and "at most 64" in line
        assert "mutation.max_length" in config_refused(tmp_path, capsys,
                                                       "mutation: {max_length: 65}\n")

    def test_a_grid_centre_that_underflows_is_refused(self, tmp_path, capsys) -> None:
        assert "lr_grid.centre" in config_refused(tmp_path, capsys,
                                                  "lr_grid: {centre: 1.0e-300}\n")

    def test_inspect_escapes_what_a_run_holds(self, tmp_path, capsys) -> None:
        run = fake_run(tmp_path)
        run.history_path.write_text(run.history_path.read_text().replace(
            '"error": null', '"error": "\\u001b]0;pwned\\u0007\\u001b[2J boom"', 1).replace(
            '"fitness": 0.0,', '"fitness": -1000000000.0,', 1))
        code = run_search.main(["inspect", str(run.path)])
        out = capsys.readouterr().out
        assert code == 0 and "\x1b" not in out and "\x07" not in out
        assert "\\x1b]0;pwned\\x07\\x1b[2J boom" in out
        assert terminal_safe("ok\n") == "ok\n"

    def test_simplify_out_keeps_a_file_name_on_its_comment_line(self, tmp_path, capsys,
                                                               monkeypatch) -> None:
        monkeypatch.chdir(tmp_path)
        odd = tmp_path / "a\nu = w.dsl"
        odd.write_text(SOURCE)
        code = run_search.main(["simplify", str(odd), "--exact-only", "--out", "s.dsl"])
        assert code == 0, capsys.readouterr().err
        text = (tmp_path / "s.dsl").read_text()
        assert text.splitlines()[0].startswith("# simplified from ")
        assert parse(text).to_source() == parse(SOURCE).to_source()

    def test_a_source_that_is_no_program_names_the_file_and_line(self, tmp_path,
                                                                 capsys) -> None:
        run = fake_run(tmp_path)
        lines = run.history_path.read_text().splitlines()
        record = json.loads(lines[1])
        record["source"] = "import os\n"
        lines[1] = json.dumps(record)
        run.history_path.write_text("\n".join(lines) + "\n")
        for args in (["inspect", run.path], ["--resume", run.path, "--serial"]):
            code, err = cli(capsys, *args)
            assert code == 2 and "history.jsonl: line 2: source is not a program" \
                in one_line(err), err


def test_file_helpers_answer_in_one_line(tmp_path) -> None:
    assert not files.exists(tmp_path / "none")
    with pytest.raises(files.FileError, match="File name too long"):
        files.exists(tmp_path / ("y" * 300))
    with pytest.raises(files.FileError, match="not a regular file"):
        files.read_text(tmp_path, 10)
    (tmp_path / "t").write_bytes(b"\xff\xfe")
    with pytest.raises(files.FileError, match="not UTF-8 text"):
        files.read_text(tmp_path / "t", 10)
    assert math.isfinite(len(files.read_bytes(tmp_path / "t", 2)))
    with pytest.raises(files.FileError, match="2 bytes, more than the 1 this file may hold"):
        files.read_bytes(tmp_path / "t", 1)
    os.symlink(tmp_path / "t", tmp_path / "link")
    assert files.read_bytes(tmp_path / "link", 2) == b"\xff\xfe"  # a user's own link
    with pytest.raises(files.FileError, match="symbolic link"):
        files.read_bytes(tmp_path / "link", 2, links=False)


def test_the_benchmark_of_untrusted_inputs_holds_on_links_resumes_and_sizes(capsys) -> None:
    """``benchmarks/bench_untrusted.py`` (every class: docs/reliability.md) on three of its
    classes: every case holds."""
    assert bench_untrusted.main(["--classes", "links,resume,sizes"]) == 0
    out = capsys.readouterr().out
    assert "FAILED" not in out
    assert out.strip().splitlines()[-1] == "untrusted_cases_failed: 0"
    assert "all           229    229       0" in out


def test_export_says_on_stdout_when_its_learning_rate_is_a_placeholder_or_at_an_edge(
        tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_search.main(["export", "lion", "--name", "plain", "--out", "o"]) == 0
    assert "note: no calibrated learning rate is known" in capsys.readouterr().out
    run = fake_run(tmp_path)
    run.history_path.write_text(run.history_path.read_text().replace(
        '"lr_multiplier": 1.0', '"lr_at_edge": true, "lr_multiplier": 1.0'))
    assert run_search.main(["export", str(run.path), "--name", "edge", "--out", "o"]) == 0
    out = capsys.readouterr().out
    assert "at the edge of its grid on quadratic/A" in out
    assert "edge of its grid" in " ".join(load(tmp_path / "o" / "edge.py").__doc__.split())
