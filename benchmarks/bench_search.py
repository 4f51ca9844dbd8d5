"""Search throughput: evaluations/s with 1 and 2 Ray workers, and the default search's cache.

Evaluates the same 40 distinct warm-start mutants (one bucket) on the default
tier-A tasks through a RayExecutor with 1 worker, then with 2, each after a
warm-up in which every worker compiles; the ratio of the two rates is the
scaling (goal >= 1.8 on 2 cores). Then runs the default search (serially,
with the real evaluator) and prints its cache hit rate (the paper saw 89%).

    python benchmarks/bench_search.py [--programs 40] [--skip-default-search]

Last line: ``ray_scaling_2_workers: R``.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from dsl import library
from search.config import SearchConfig
from search.executor import RayExecutor, SerialExecutor
from search.generate import perturbed_constants
from search.loop import Search
from search.rundir import RunDir

TASKS = SearchConfig().tasks


def rate(workers: int, sources: list[str]) -> float:
    import ray

    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        ex = RayExecutor(workers=workers, timeout_s=900)
        jobs = [{"id": i, "source": s, "tasks": TASKS, "seeds": [0, 1]}
                for i, s in enumerate(sources)]
        for job in jobs[: 2 * workers]:  # warm-up: every worker compiles
            ex.submit(job)
        while ex.pending:
            ex.wait()
        start = time.perf_counter()
        queue = list(jobs[2 * workers:])
        done = 0
        while queue or ex.pending:
            while queue and ex.pending < workers:
                ex.submit(queue.pop(0))
            done += len(ex.wait())
        return done / (time.perf_counter() - start)
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=40)
    parser.add_argument("--skip-default-search", action="store_true")
    args = parser.parse_args()
    sources = [p.to_source() for p in perturbed_constants(
        library.get("warmstart"), np.random.default_rng(0), args.programs)]
    one = rate(1, sources)
    two = rate(2, sources)
    print(f"tasks: {', '.join(TASKS)}; {args.programs} programs, 2 seeds")
    print(f"evals_per_s, 1 worker: {one:.2f}")
    print(f"evals_per_s, 2 workers: {two:.2f}")
    if not args.skip_default_search:
        cfg = SearchConfig(executor="serial")
        with tempfile.TemporaryDirectory() as tmp:
            search = Search.open(cfg, RunDir.create(f"{tmp}/run", cfg))
            search.run_until_done(SerialExecutor())
            print(f"default search: {search.proposals} programs proposed, {search.evaluated} "
                  f"evaluated, cache hit rate {search.cache.hit_rate:.1%}")
    print(f"ray_scaling_2_workers: {two / one:.2f}")


if __name__ == "__main__":
    main()
