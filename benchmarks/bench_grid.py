"""The cost of a learning-rate grid: k multipliers in one compiled call against one run.

``evaluators.engine.run_engine_grid`` trains one program at every multiplier of a
grid as lanes of one register file (the seeds of each lane end to end). This
measures, for the warm start on tier A of each task, the execution time of a
``--points``-point grid (compiled beforehand) divided by that of one run of the
same seeds, both the best of ``--repeats`` in this process. Goal (issue 15): <= 2.5
for 5 points on CPU. The work of a grid is ``points`` trainings, so the ratio can
only fall below ``points`` where one run leaves the machine idle (dispatch, small
kernels, an accelerator).

    python benchmarks/bench_grid.py [--points 5] [--tasks mlp_mnist1d/A transformer_lm/A]

Last line: ``lr_grid_cost_ratio: R`` (the first task's ratio).
"""

from __future__ import annotations

import argparse
import time

from dsl import library
from evaluators import tasks
from evaluators.engine import run_engine, run_engine_grid

SEEDS = (0, 1)


def best_time(fn, repeats: int) -> float:
    fn()  # compiles
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=5, help="multipliers in the grid")
    ap.add_argument("--tasks", nargs="+", default=["mlp_mnist1d/A", "transformer_lm/A"])
    ap.add_argument("--repeats", type=int, default=3, help="timed calls of each, best kept")
    args = ap.parse_args()
    program = library.get("warmstart")
    grid = tuple(10.0 ** (k / 2 - (args.points - 1) / 4) for k in range(args.points))
    ratios = []
    for name in args.tasks:
        task = tasks.get(name)
        one = best_time(lambda t=task: run_engine(program, t, SEEDS), args.repeats)
        many = best_time(lambda t=task: run_engine_grid(program, t, SEEDS, grid), args.repeats)
        ratios.append(many / one)
        print(f"{name}: one run {one:.3f} s, {args.points}-point grid {many:.3f} s, "
              f"ratio {many / one:.2f} (a loop of runs: {args.points})", flush=True)
    print(f"lr_grid_cost_ratio: {ratios[0]:.2f}")


if __name__ == "__main__":
    main()
