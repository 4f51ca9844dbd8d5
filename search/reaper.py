"""Stop an embedded Ray instance's processes when its driver ends, even by SIGKILL.

A driver that exits calls ``ray.shutdown``; one killed with SIGKILL cannot, and
some of the Ray processes it started (its dashboard and runtime-environment
agents) then live on for good. :func:`start` runs this file as a small
watchdog process of its own: every second it notes the driver's descendants
that are Ray's, and when the driver ends (the pipe it holds closes, however it
ended) it sends each of them that still runs SIGTERM, then SIGKILL after a
grace period, with every worker that one of them (the raylet) started since
(found by the ``RAY_RAYLET_PID`` in its environment: an orphan is no longer a
descendant). A process is known by its id and start time, so a reused id is
never hit. Linux only (it reads ``/proc``); elsewhere nothing is started.

It imports nothing of the project, so it runs as a plain script.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent id, start time) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), fields[19]


def _is_ray(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"ray" in f.read()
    except OSError:
        return False


def ray_descendants(root: int) -> dict[int, str]:
    """The Ray processes descending from ``root``: id -> start time."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                children.setdefault(stat[0], []).append(int(entry))
    found: dict[int, str] = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        stat = _stat(pid)
        if stat is None:
            continue
        if _is_ray(pid) and pid != os.getpid():  # (this watchdog is a child too)
            found[pid] = stat[1]
        todo.extend(children.get(pid, []))
    return found


def started_by(raylets: set[int]) -> dict[int, str]:
    """Processes whose environment names one of ``raylets`` as their raylet: the
    workers a raylet started, found even once their parent died (they are then
    children of init, no longer descendants of the driver)."""
    marks = {f"RAY_RAYLET_PID={pid}".encode() for pid in raylets}
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = set(f.read().split(b"\0"))
        except OSError:
            continue
        if env & marks and (stat := _stat(int(entry))) is not None:
            found[int(entry)] = stat[1]
    return found


def _alive(known: dict[int, str]) -> dict[int, str]:
    return {pid: start for pid, start in known.items()
            if (stat := _stat(pid)) is not None and stat[1] == start}


def watch(driver: int, period_s: float = 1.0, grace_s: float = 3.0) -> None:
    """Note ``driver``'s Ray descendants until standard input closes, then stop them."""
    ended = threading.Event()

    def wait_for_eof() -> None:
        sys.stdin.buffer.read()
        ended.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    known = ray_descendants(driver)  # the instance ray.init started, at once
    while not ended.wait(period_s):
        known.update(ray_descendants(driver))
    known.update(started_by(set(known)))  # a worker started after the last look
    alive = _signal(_alive(known), signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = _alive(alive)
    _signal(alive, signal.SIGKILL)


def _signal(processes: dict[int, str], signum: int) -> dict[int, str]:
    for pid in processes:
        try:
            os.kill(pid, signum)
        except OSError:  # gone already
            pass
    return processes


_WATCHDOG: subprocess.Popen | None = None


def start() -> subprocess.Popen | None:
    """Watch this process (once); None where there is no ``/proc``. The pipe to the
    watchdog stays open for this process's life: its closing is the signal."""
    global _WATCHDOG
    if _WATCHDOG is not None or not os.path.isdir("/proc/self"):
        return _WATCHDOG
    _WATCHDOG = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), str(os.getpid())], stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return _WATCHDOG


if __name__ == "__main__":
    watch(int(sys.argv[1]))
