"""A new user's journey, from a folder outside the repository with a task module beside
the config: search -> inspect -> funnel -> simplify -> export -> a PyTorch model trained
with the exported optimizer at its default learning rate learns (issue 36).

Every step is the installed ``optsearch`` command, as the README says, run from the
user's folder; the sizes are small so that the whole journey takes about a minute.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]

TASKS = '''\
"""My own task: a small MLP classifying scikit-learn's digits, at two sizes."""
import jax
import jax.numpy as jnp
import numpy as np
from sklearn.datasets import load_digits

from evaluators import tasks

x, y = load_digits(return_X_y=True)
order = np.random.default_rng(0).permutation(len(x))
x, y = (x[order] / 16.0).astype(np.float32), y[order].astype(np.int32)


def init(rng):
    return {"w1": (rng.standard_normal((64, 32)) / 8).astype(np.float32),
            "b1": np.zeros(32, np.float32),
            "w2": (rng.standard_normal((32, 10)) / 6).astype(np.float32),
            "b2": np.zeros(10, np.float32)}


def loss(params, batch):
    h = jnp.tanh(batch[0] @ params["w1"] + params["b1"])
    logp = jax.nn.log_softmax(h @ params["w2"] + params["b2"])
    return -jnp.mean(jnp.take_along_axis(logp, batch[1][:, None], axis=1))


for tier, steps in (("A", 150), ("B", 300)):
    tasks.register(tasks.from_arrays(f"digits_mlp/{tier}", init=init, loss=loss,
                                     train=(x[:1400], y[:1400]), val=(x[1400:], y[1400:]),
                                     steps=steps, batch_size=32))
'''

CONFIG = """\
tasks: [digits_mlp/A]
task_modules: [my_tasks.py]
seeds: [0]
population: 4
plateau: 4
max_evals: 10
"""


def _command() -> list[str]:
    """The installed command (the README's ``optsearch``), else the script itself."""
    installed = Path(sys.executable).parent / "optsearch"
    return [str(installed)] if installed.exists() else [sys.executable, str(ROOT / "run_search.py")]


def _run(home: Path, *args: str) -> str:
    r = subprocess.run([*_command(), *args], cwd=home, capture_output=True, text=True,
                       timeout=900, env=os.environ | {"PYTHONPATH": ""})
    assert r.returncode == 0, f"optsearch {' '.join(args)}:\n{r.stdout[-3000:]}\n{r.stderr}"
    assert "Traceback" not in r.stderr
    return r.stdout


def _accuracy(module: Path, cls: str) -> float:
    """A small PyTorch MLP trained on digits with ``cls`` at its default learning rate
    (no lr given): the fraction of held-out digits it classifies right."""
    from sklearn.datasets import load_digits

    spec = importlib.util.spec_from_file_location(module.stem, module)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(1).permutation(len(x))
    x = torch.tensor(x[order] / 16.0, dtype=torch.float32)
    y = torch.tensor(y[order])
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10))
    opt = getattr(mod, cls)(model.parameters())  # its defaults: nothing tuned by hand
    rng = np.random.default_rng(0)
    for _ in range(400):
        idx = torch.tensor(rng.integers(0, 1400, 32))
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    with torch.no_grad():
        return float((model(x[1400:]).argmax(1) == y[1400:]).float().mean())


def test_search_inspect_funnel_simplify_export_train(tmp_path) -> None:
    home = tmp_path / "my project"
    home.mkdir()
    (home / "my_tasks.py").write_text(TASKS)
    (home / "mine.yaml").write_text(CONFIG)

    out = _run(home, "--config", "mine.yaml", "--serial", "--run-dir", "run")
    assert "best program" in out and (home / "run" / "history.jsonl").exists()
    assert "what it is:" in _run(home, "inspect", "run")

    funnel = _run(home, "funnel", "run", "--top", "1", "--tiers", "B", "--baselines", "adamw",
                  "--trials", "2")
    assert "funnel plan: tier B: digits_mlp/B" in funnel and "of unknown cost" in funnel
    assert re.search(r"digits_mlp/B: lr x[\d.e-]+ [\d.]+", funnel)  # a line per pass

    simplified = _run(home, "simplify", "run", "--out", "best.dsl")
    assert "(with its learning rate" in simplified
    assert "# learning_rate: " in (home / "best.dsl").read_text()

    found = _run(home, "export", "run", "--name", "found", "--out", "opts")
    best = _run(home, "export", "best.dsl", "--name", "best", "--out", "opts")
    for text in (found, best):
        assert "default learning rate" in text and "placeholder" not in text
    assert not (ROOT / "discovered" / "found.py").exists()  # nothing written into the project

    # chance is 0.1: both learn at the defaults the export chose
    assert _accuracy(home / "opts" / "found.py", "Found") > 0.8
    assert _accuracy(home / "opts" / "best.py", "Best") > 0.8
