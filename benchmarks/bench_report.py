"""How large is a run's report, and how fast does it load, at thousands of programs?

A small real search (serial, ``quadratic/A``) gives the records' layout; its history is
then grown to ``--programs`` records (each a mutation of an earlier one, with a random
fitness, a tenth failed and a third answered by the cache), and ``report.html`` is
written for it: the time to build it, its size, and, where Chromium is installed, the
time headless Chromium takes to load and draw it (``--dump-dom`` after the page's
scripts ran), against an empty page's as the reference. Last line:
``report_mb_at_N: X``.

    python benchmarks/bench_report.py                 # 5,000 programs
    python benchmarks/bench_report.py --programs 500
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def grow(run_path: Path, n: int, seed: int = 0) -> None:
    """Grow a run's history to ``n`` records, each a mutation of an earlier program."""
    import numpy as np

    from dsl import parse
    from search.config import MutationConfig
    from search.mutation import mutate

    lines = (run_path / "history.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    rng = np.random.default_rng(seed)
    cfg = MutationConfig()
    template = records[-1]
    programs = {r["id"]: r["source"] for r in records}
    out = list(records)
    next_id = max(programs) + 1
    while len(out) < n:
        parent = out[int(rng.integers(len(out)))]
        child, how = mutate(parse(parent["source"]), rng, cfg)
        cached = rng.random() < 1 / 3
        failed = rng.random() < 0.1
        out.append(template | {
            "id": next_id, "parent": parent["id"], "mutation": how,
            "source": child.to_source(), "cached": bool(cached),
            "cached_from": parent["id"] if cached else None,
            "fitness": -1e9 if failed else float(-abs(rng.normal(0, 0.05))),
            "structural_hash": f"h{next_id}", "fingerprint": f"f{next_id}",
            "skeleton": f"s{next_id % 300}", "error": "training diverged" if failed else None})
        next_id += 1
    (run_path / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in out))


def load_seconds(chromium: str, page: Path) -> float:
    start = time.perf_counter()
    subprocess.run([chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                   capture_output=True, timeout=300, check=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--programs", type=int, default=5000, help="records in the grown history")
    args = ap.parse_args()
    if args.programs < 20:
        ap.error("--programs must be at least 20")
    from search import report
    from search.config import SearchConfig
    from search.executor import SerialExecutor
    from search.loop import Search
    from search.rundir import RunDir

    folder = Path(tempfile.mkdtemp(prefix="bench-report-"))
    cfg = SearchConfig(executor="serial", tasks=["quadratic/A"], seeds=[0], max_evals=12,
                       population=4, judge="warm_start")
    run = RunDir.create(folder / "run", cfg)
    Search.open(cfg, run).run_until_done(SerialExecutor())
    grow(run.path, args.programs)
    run = RunDir(folder / "run")
    start = time.perf_counter()
    path = report.write(run)
    built = time.perf_counter() - start
    size = path.stat().st_size / 1e6
    print(f"{args.programs} programs: report built in {built:.2f} s, {size:.2f} MB")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium:
        empty = folder / "empty.html"
        empty.write_text("<!DOCTYPE html><html><body>empty</body></html>")
        base = min(load_seconds(chromium, empty) for _ in range(2))
        loaded = min(load_seconds(chromium, path) for _ in range(2))
        print(f"headless Chromium: loaded and drawn in {loaded:.2f} s (an empty page "
              f"{base:.2f} s: {loaded / base:.1f}x)")
    else:
        print("no Chromium here: the load time is not measured")
    print(f"report_mb_at_{args.programs}: {size:.2f}")


if __name__ == "__main__":
    main()
