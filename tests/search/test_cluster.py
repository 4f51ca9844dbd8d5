"""A real cluster, started the documented way: `ray start --head`, a second node, then
`run_search.py --address HOST:PORT`, under token authentication, on the loopback.

The nodes run with their own HOME (holding the cluster's token in
~/.ray/auth_token, as docs/cluster.md says) and in their own process sessions;
the test stops exactly those sessions, nothing else of Ray on the machine.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).with_name("ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_session(sid: int) -> None:
    """SIGTERM, then SIGKILL, to the process group `ray start` made (its daemons)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(sid, sig)
        except ProcessLookupError:
            return
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                os.killpg(sid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


@pytest.fixture
def cluster(tmp_path):
    if not RAY.exists():
        pytest.skip("the ray command is not installed beside this Python")
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(secrets.token_hex(32))
    node_env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    node_env |= {"HOME": str(home), "RAY_AUTH_MODE": "token"}
    port = free_port()
    sessions = []
    temp = tempfile.mkdtemp(prefix="osr")  # short: Ray's socket paths must fit 107 bytes

    def start(*args: str) -> None:
        proc = subprocess.Popen([str(RAY), "start", *args, "--num-cpus=1",
                                 "--disable-usage-stats"], env=node_env, cwd=tmp_path,
                                start_new_session=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        sessions.append(proc.pid)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out[-2000:]

    try:
        start("--head", f"--port={port}", "--include-dashboard=false",
              f"--temp-dir={temp}")
        start(f"--address=127.0.0.1:{port}")
        yield f"127.0.0.1:{port}", home
    finally:
        for sid in reversed(sessions):
            stop_session(sid)
        for sid in sessions:
            with pytest.raises(ProcessLookupError):
                os.killpg(sid, 0)
        shutil.rmtree(temp, ignore_errors=True)


def driver(address: str, home: Path, tmp_path: Path, name: str, **env: str):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tasks: [quadratic/A]\nseeds: [0]\npopulation: 4\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return subprocess.run(
        [sys.executable, "run_search.py", "--address", address, "--workers", "2",
         "--max-evals", "4", "--config", str(cfg), "--run-dir", str(tmp_path / name)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env=clean | {"HOME": str(home), "JAX_PLATFORMS": "cpu"} | env)


def test_a_search_on_a_token_authenticated_cluster_of_two_nodes(cluster, tmp_path) -> None:
    address, home = cluster
    r = driver(address, home, tmp_path, "run")  # no RAY_AUTH_MODE: the documented path
    assert r.returncode == 0, r.stderr[-3000:]
    assert "best program" in r.stdout and "Traceback" not in r.stderr
    workers = {line.split('"worker": "')[1].split('"')[0]
               for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()
               if '"worker": "' in line}
    assert workers  # evaluated by the cluster's worker processes
    wrong = driver(address, home, tmp_path, "wrong", RAY_AUTH_TOKEN="0" * 64)
    assert wrong.returncode == 1
    assert wrong.stderr.strip().splitlines() == [
        f"error: cannot join the Ray cluster at {address}: the cluster refused this machine's "
        "token (RAY_AUTH_TOKEN); use the head node's ~/.ray/auth_token (see docs/cluster.md)"]


def test_an_address_where_nothing_listens_is_one_line_at_once(tmp_path) -> None:
    port = free_port()
    start = time.monotonic()
    r = driver(f"127.0.0.1:{port}", tmp_path, tmp_path, "none")
    assert r.returncode == 1 and time.monotonic() - start < 60
    assert r.stderr.strip().splitlines() == [
        f"error: cannot join the Ray cluster at 127.0.0.1:{port}: nothing answers there "
        f"(Connection refused); is `ray start --head --port={port}` running on 127.0.0.1? "
        "See docs/cluster.md"]
